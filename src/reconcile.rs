//! The join between reports and sessions: pre-fills and discrepancies.
//!
//! A report is backed by its technician's sessions at its site (through one
//! of the site's tunnels, or with traffic to its subnets) that overlap its
//! window: the declared remote times, else the on-site times, else its
//! date, widened by `match_margin`. The audit compares what the report
//! declares with what those sessions show, and lists every difference with
//! the log lines behind it. It is computed afresh each time from the store,
//! so running it twice gives the same list.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::config::ReconcileConfig;
use crate::ingest::decode;
use crate::inventory::{Inventory, Site};
use crate::reports::Report;
use crate::sessions::Session;
use crate::store::{format_utc, from_micros, to_micros, RUN_MICROS};

/// Tolerances and margins, from `[reconcile]`.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub start_tolerance: Duration,
    pub end_tolerance: Duration,
    pub duration_tolerance: Duration,
    pub match_margin: Duration,
}

impl Rules {
    pub fn from_config(c: &ReconcileConfig) -> Rules {
        let d = |v: std::time::Duration| Duration::from_std(v).unwrap_or(Duration::MAX);
        Rules {
            start_tolerance: d(c.start_tolerance),
            end_tolerance: d(c.end_tolerance),
            duration_tolerance: d(c.duration_tolerance),
            match_margin: d(c.match_margin),
        }
    }
}

/// One log line behind a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    pub source: String,
    pub line: Option<i64>,
    pub received: String,
    pub text: String,
    #[serde(skip)]
    pub record: i64,
}

/// Loads the log lines of records, in the order given.
pub fn evidence(conn: &Connection, records: &[i64]) -> anyhow::Result<Vec<Evidence>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.source, r.line, r.received, r.raw
             FROM records r JOIN streams s ON s.id = r.stream WHERE r.id = ?1",
    )?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for &id in records {
        if !seen.insert(id) {
            continue;
        }
        let row = stmt
            .query_row([id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })
            .optional()?;
        if let Some((source, line, received, raw)) = row {
            let (text, _) = decode(&raw, encoding_rs::WINDOWS_1252);
            out.push(Evidence {
                source,
                line,
                received: format_utc(from_micros(received)),
                text: text.into_owned(),
                record: id,
            });
        }
    }
    Ok(out)
}

/// The first allowed traffic line from a session to a device: the evidence
/// that it was reached.
fn device_record(conn: &Connection, session: &Session, ip: &str) -> anyhow::Result<Option<i64>> {
    let Some(vip) = &session.virtual_ip else {
        return Ok(None);
    };
    let end = session.end.map_or(i64::MAX, to_micros);
    Ok(conn
        .prepare_cached(
            "SELECT r.id FROM traffic_runs t
             JOIN records r ON r.id BETWEEN t.first AND t.last
             WHERE t.gateway = ?1 AND t.src = ?2 AND t.hour BETWEEN ?6 AND ?7
               AND r.gateway = ?1 AND r.src = ?2 AND r.dst = ?3
               AND r.ts >= ?4 AND r.ts <= ?5 AND r.allowed = 1
             ORDER BY r.ts, r.id LIMIT 1",
        )?
        .query_row(
            params![
                session.gateway,
                vip,
                ip,
                to_micros(session.start),
                end,
                to_micros(session.start) / RUN_MICROS,
                end / RUN_MICROS
            ],
            |r| r.get(0),
        )
        .optional()?)
}

/// The time a report claims, before the margin: declared remote times,
/// else on-site times, else its whole date in the site's zone.
pub fn declared_window(
    report: &Report,
    inventory: &Inventory,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let (Some(s), Some(e)) = (report.remote_start(), report.remote_end()) {
        return Some((s, e));
    }
    if let Some(remote) = &report.remote {
        if let Some(s) = Report::time(&remote.start).or(Report::time(&remote.end)) {
            return Some((s, s));
        }
    }
    if let Some(on_site) = &report.on_site {
        let a = Report::time(&on_site.arrival);
        let d = Report::time(&on_site.departure);
        if let Some((s, e)) = a.zip(d).or(a.map(|a| (a, a))).or(d.map(|d| (d, d))) {
            return Some((s, e));
        }
    }
    let date = NaiveDate::parse_from_str(report.date.as_deref()?, "%Y-%m-%d").ok()?;
    let zone = report
        .site
        .as_deref()
        .map_or(chrono_tz::Europe::Paris, |s| inventory.zone_of(s));
    let start = zone
        .from_local_datetime(&date.and_hms_opt(0, 0, 0)?)
        .earliest()?
        .with_timezone(&Utc);
    let end = zone
        .from_local_datetime(&date.succ_opt()?.and_hms_opt(0, 0, 0)?)
        .earliest()?
        .with_timezone(&Utc);
    Some((start, end))
}

fn overlaps(s: &Session, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    s.start <= to && s.end.is_none_or(|e| e >= from)
}

/// Whether a session was at a site: one of its tunnels, or its subnets.
fn at_site(s: &Session, site: &str) -> bool {
    s.sites.iter().any(|x| x == site)
}

fn is_technicians(s: &Session, report: &Report, inventory: &Inventory) -> bool {
    match (&report.technician, &s.technician) {
        (Some(t), Some(st)) => t == st,
        (Some(t), None) => {
            inventory.technician(t).is_none()
                && crate::inventory::normalize_identity(&s.user)
                    == crate::inventory::normalize_identity(t)
        }
        (None, _) => false,
    }
}

/// The sessions that back a report.
pub fn backing_sessions<'s>(
    report: &Report,
    sessions: &'s [Session],
    inventory: &Inventory,
    rules: &Rules,
) -> Vec<&'s Session> {
    let (Some(site), Some((from, to))) =
        (report.site.as_deref(), declared_window(report, inventory))
    else {
        return Vec::new();
    };
    let (from, to) = (from - rules.match_margin, to + rules.match_margin);
    sessions
        .iter()
        .filter(|s| {
            at_site(s, site) && overlaps(s, from, to) && is_technicians(s, report, inventory)
        })
        .collect()
}

/// A device as a report would name it: the inventory's name, else the IP.
fn device_label(site: Option<&Site>, inventory: &Inventory, ip: &str) -> String {
    let parsed: Option<IpAddr> = ip.parse().ok();
    site.and_then(|s| s.devices.iter().find(|d| Some(d.ip) == parsed))
        .or_else(|| parsed.and_then(|p| inventory.device_at(p)).map(|(_, d)| d))
        .map_or_else(|| ip.to_owned(), |d| d.name.clone())
}

/// Devices of the sessions that belong to the site, in order of first
/// appearance, each with the session that reached it.
fn devices_at_site<'s>(
    sessions: &[&'s Session],
    site: Option<&Site>,
) -> Vec<(String, &'s Session)> {
    let mut out: Vec<(String, &Session)> = Vec::new();
    for s in sessions {
        for d in &s.devices {
            let inside = match (site, d.ip.parse::<IpAddr>()) {
                (Some(site), Ok(ip)) => site.contains(ip) || site.subnets.is_empty(),
                _ => true,
            };
            if inside && !out.iter().any(|(ip, _)| *ip == d.ip) {
                out.push((d.ip.clone(), s));
            }
        }
    }
    out
}

/// A pre-filled value with the evidence behind it.
#[derive(Debug, Clone, Serialize)]
pub struct Filled {
    pub value: Value,
    pub sessions: Vec<String>,
    pub evidence: Vec<Evidence>,
}

/// The remote part of a report as the logs give it.
#[derive(Debug, Clone, Serialize)]
pub struct Prefill {
    pub report: String,
    pub start: Filled,
    pub end: Filled,
    pub devices: Filled,
    pub tunnel: Filled,
    pub sessions: Vec<String>,
}

pub fn prefill(
    conn: &Connection,
    report: &Report,
    sessions: &[Session],
    inventory: &Inventory,
    rules: &Rules,
) -> anyhow::Result<Prefill> {
    let backing = backing_sessions(report, sessions, inventory, rules);
    let ids: Vec<String> = backing.iter().map(|s| s.id.clone()).collect();
    let site = report.site.as_deref().and_then(|s| inventory.site(s));

    let first = backing.iter().min_by_key(|s| s.start);
    let start = Filled {
        value: first.map_or(Value::Null, |s| json!(format_utc(s.start))),
        sessions: first.iter().map(|s| s.id.clone()).collect(),
        evidence: evidence(
            conn,
            &first
                .and_then(|s| s.start_record)
                .into_iter()
                .collect::<Vec<_>>(),
        )?,
    };

    // The end is unknown while any backing session is open.
    let any_open = backing.iter().any(|s| s.end.is_none());
    let last = if any_open {
        None
    } else {
        backing.iter().max_by_key(|s| s.end)
    };
    let end = Filled {
        value: last
            .and_then(|s| s.end)
            .map_or(Value::Null, |e| json!(format_utc(e))),
        sessions: last.iter().map(|s| s.id.clone()).collect(),
        evidence: evidence(
            conn,
            &last
                .and_then(|s| s.end_record)
                .into_iter()
                .collect::<Vec<_>>(),
        )?,
    };

    let reached = devices_at_site(&backing, site);
    let mut device_records = Vec::new();
    for (ip, s) in &reached {
        device_records.extend(device_record(conn, s, ip)?);
    }
    let devices = Filled {
        value: json!(reached
            .iter()
            .map(|(ip, _)| device_label(site, inventory, ip))
            .collect::<Vec<_>>()),
        sessions: unique(reached.iter().map(|(_, s)| s.id.clone())),
        evidence: evidence(conn, &device_records)?,
    };

    let tunnels: Vec<&str> = unique_str(backing.iter().map(|s| s.tunnel.as_str()));
    let tunnel = Filled {
        value: match tunnels.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many.join(", ")),
        },
        sessions: ids.clone(),
        evidence: evidence(
            conn,
            &backing
                .iter()
                .filter_map(|s| s.start_record)
                .collect::<Vec<_>>(),
        )?,
    };
    Ok(Prefill {
        report: report.id.clone(),
        start,
        end,
        devices,
        tunnel,
        sessions: ids,
    })
}

/// A pre-fill as `reports prefill --json` and the API print it.
pub fn prefill_json(p: &Prefill) -> Value {
    let value =
        |f: &Filled| json!({"value": f.value, "sessions": f.sessions, "evidence": f.evidence});
    json!({
        "report": p.report,
        "start": value(&p.start),
        "end": value(&p.end),
        "devices": value(&p.devices),
        "tunnel": value(&p.tunnel),
        "sessions": p.sessions,
    })
}

fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

fn unique_str<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Every kind of discrepancy, as DESIGN.md names them.
pub const KINDS: [&str; 11] = [
    "no_session",
    "start_mismatch",
    "end_mismatch",
    "duration_overstated",
    "device_not_reached",
    "device_not_declared",
    "tunnel_mismatch",
    "technician_mismatch",
    "unreported_session",
    "overlapping_reports",
    "session_open",
];

/// An auditor's explanation of a discrepancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    pub by: String,
    pub at: String,
    pub note: String,
}

/// A finding of the cross-check.
#[derive(Debug, Clone, Serialize)]
pub struct Discrepancy {
    pub id: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub report: Option<String>,
    pub related_report: Option<String>,
    pub session: Option<String>,
    pub site: Option<String>,
    pub technician: Option<String>,
    pub expected: Value,
    pub observed: Value,
    pub detail: String,
    pub resolution: Option<Resolution>,
    pub evidence: Vec<Evidence>,
    /// When the finding happened, for period filters.
    #[serde(skip)]
    pub span: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
}

struct Finding {
    kind: &'static str,
    severity: Severity,
    report: Option<String>,
    related_report: Option<String>,
    session: Option<String>,
    site: Option<String>,
    technician: Option<String>,
    expected: Value,
    observed: Value,
    detail: String,
    records: Vec<i64>,
    span: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    /// Every session the finding is about (`session` names the first).
    sessions: Vec<String>,
}

impl Finding {
    fn new(kind: &'static str, severity: Severity, report: &Report) -> Finding {
        Finding {
            kind,
            severity,
            report: Some(report.id.clone()),
            related_report: None,
            session: None,
            site: report.site.clone(),
            technician: report.technician.clone(),
            expected: Value::Null,
            observed: Value::Null,
            detail: String::new(),
            records: Vec::new(),
            span: None,
            sessions: Vec::new(),
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    let secs = d.num_seconds().abs();
    let sign = if d.num_seconds() < 0 { "-" } else { "" };
    format!(
        "{sign}{}h{:02}m{:02}s",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The union of the sessions' spans, clipped to nothing: the logged time.
fn logged_time(sessions: &[&Session], now: DateTime<Utc>) -> Duration {
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = sessions
        .iter()
        .map(|s| (s.start, s.end.unwrap_or(now)))
        .collect();
    spans.sort();
    let mut total = Duration::zero();
    let mut current: Option<(DateTime<Utc>, DateTime<Utc>)> = None;
    for (s, e) in spans {
        current = match current {
            Some((cs, ce)) if s <= ce => Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                Some((s, e))
            }
            None => Some((s, e)),
        };
    }
    if let Some((cs, ce)) = current {
        total += ce - cs;
    }
    total
}

/// Runs the whole cross-check. `now` closes open sessions for the logged
/// time only; it never becomes an end.
pub fn audit(
    conn: &Connection,
    reports: &[Report],
    sessions: &[Session],
    inventory: &Inventory,
    rules: &Rules,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Discrepancy>> {
    let mut findings: Vec<Finding> = Vec::new();
    // Which sessions some report covers, for unreported_session.
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();

    for report in reports {
        let backing = backing_sessions(report, sessions, inventory, rules);
        if let Some(site) = &report.site {
            for s in &backing {
                covered.insert((s.id.clone(), site.clone()));
            }
        }
        if !report.is_remote() {
            continue;
        }
        let before = findings.len();
        check_remote_report(
            conn,
            report,
            &backing,
            sessions,
            inventory,
            rules,
            now,
            &mut findings,
        )?;
        // Sessions a technician_mismatch names are accounted for by that
        // finding: not also unreported.
        if let Some(site) = &report.site {
            for f in findings[before..]
                .iter()
                .filter(|f| f.kind == "technician_mismatch")
            {
                for id in &f.sessions {
                    covered.insert((id.clone(), site.clone()));
                }
            }
        }
    }

    unreported_sessions(sessions, &covered, inventory, &mut findings);
    overlapping_reports(reports, &mut findings);

    let resolutions = load_resolutions(conn)?;
    let mut out = Vec::with_capacity(findings.len());
    for f in findings {
        let id = discrepancy_id(&f);
        out.push(Discrepancy {
            resolution: resolutions.get(&id).cloned(),
            id,
            kind: f.kind,
            severity: f.severity,
            report: f.report,
            related_report: f.related_report,
            session: f.session,
            site: f.site,
            technician: f.technician,
            expected: f.expected,
            observed: f.observed,
            detail: f.detail,
            evidence: evidence(conn, &f.records)?,
            span: f.span,
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn check_remote_report(
    conn: &Connection,
    report: &Report,
    backing: &[&Session],
    sessions: &[Session],
    inventory: &Inventory,
    rules: &Rules,
    now: DateTime<Utc>,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<()> {
    let window = declared_window(report, inventory);
    let span = window.map(|(s, e)| (s, Some(e)));
    let site = report.site.as_deref().and_then(|s| inventory.site(s));

    if backing.is_empty() {
        // Someone else's sessions at the site in the window?
        let others: Vec<&Session> = match (report.site.as_deref(), window) {
            (Some(site_id), Some((from, to))) => sessions
                .iter()
                .filter(|s| {
                    at_site(s, site_id)
                        && overlaps(s, from - rules.match_margin, to + rules.match_margin)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut f = if others.is_empty() {
            let mut f = Finding::new("no_session", Severity::Critical, report);
            f.detail =
                "no VPN session of the technician at the site backs this remote report".into();
            f
        } else {
            let mut f = Finding::new("technician_mismatch", Severity::Critical, report);
            let users = unique(
                others
                    .iter()
                    .map(|s| s.technician.clone().unwrap_or_else(|| s.user.clone())),
            );
            f.observed = json!(users);
            f.session = Some(others[0].id.clone());
            f.detail = format!(
                "the sessions at the site in the window belong to {}",
                users.join(", ")
            );
            f.records = others.iter().filter_map(|s| s.start_record).collect();
            f.sessions = others.iter().map(|s| s.id.clone()).collect();
            f
        };
        f.expected = json!(report.technician);
        f.span = span;
        findings.push(f);
        return Ok(());
    }

    let first = backing.iter().min_by_key(|s| s.start).expect("not empty");
    let open: Vec<&&Session> = backing.iter().filter(|s| s.end.is_none()).collect();
    let last = backing
        .iter()
        .filter(|s| s.end.is_some())
        .max_by_key(|s| s.end);
    let session_span = Some((
        first.start,
        if open.is_empty() {
            last.and_then(|s| s.end)
        } else {
            None
        },
    ));

    if let Some(declared) = report.remote_start() {
        let diff = declared - first.start;
        if diff.abs() > rules.start_tolerance {
            let mut f = Finding::new("start_mismatch", Severity::Warning, report);
            f.expected = json!(format_utc(declared));
            f.observed = json!(format_utc(first.start));
            f.session = Some(first.id.clone());
            f.detail = format!(
                "declared start is {} from the logged start (tolerance {})",
                fmt_duration(diff),
                fmt_duration(rules.start_tolerance)
            );
            f.records = first.start_record.into_iter().collect();
            f.span = session_span;
            findings.push(f);
        }
    }

    for s in &open {
        let mut f = Finding::new("session_open", Severity::Info, report);
        f.session = Some(s.id.clone());
        f.observed = Value::Null;
        f.detail =
            "the logs hold no end for this session: it is open, or its end was not logged".into();
        f.records = s.start_record.into_iter().collect();
        f.span = Some((s.start, None));
        findings.push(f);
    }

    if let (Some(declared), Some(last), true) = (report.remote_end(), last, open.is_empty()) {
        let logged = last.end.expect("closed");
        let diff = declared - logged;
        if diff.abs() > rules.end_tolerance {
            let mut f = Finding::new("end_mismatch", Severity::Warning, report);
            f.expected = json!(format_utc(declared));
            f.observed = json!(format_utc(logged));
            f.session = Some(last.id.clone());
            f.detail = format!(
                "declared end is {} from the logged end (tolerance {})",
                fmt_duration(diff),
                fmt_duration(rules.end_tolerance)
            );
            f.records = last.end_record.into_iter().collect();
            f.span = session_span;
            findings.push(f);
        }
    }

    if let (Some(s), Some(e)) = (report.remote_start(), report.remote_end()) {
        let declared = e - s;
        let logged = logged_time(backing, now);
        if open.is_empty() && declared - logged > rules.duration_tolerance {
            let mut f = Finding::new("duration_overstated", Severity::Critical, report);
            f.expected = json!(fmt_duration(declared));
            f.observed = json!(fmt_duration(logged));
            f.detail = format!(
                "declared {} of remote time, the logs show {}",
                fmt_duration(declared),
                fmt_duration(logged)
            );
            f.records = backing
                .iter()
                .flat_map(|s| s.start_record.into_iter().chain(s.end_record))
                .collect();
            f.span = session_span;
            findings.push(f);
        }
    }

    // Devices: declared ones resolved to addresses through the inventory.
    let reached = devices_at_site(backing, site);
    let declared: Vec<String> = report
        .remote
        .as_ref()
        .and_then(|r| r.devices.clone())
        .unwrap_or_default();
    // The sessions' own lines frame the time in which a device was not
    // reached: they are the evidence of an absence.
    let session_lines: Vec<i64> = backing
        .iter()
        .flat_map(|s| s.start_record.into_iter().chain(s.end_record))
        .collect();
    let reached_labels: Vec<String> = reached
        .iter()
        .map(|(ip, _)| device_label(site, inventory, ip))
        .collect();
    let mut declared_ips: Vec<String> = Vec::new();
    for name in &declared {
        let ip = site
            .and_then(|s| s.device(name))
            .map(|d| d.ip.to_string())
            .or_else(|| name.parse::<IpAddr>().ok().map(|ip| ip.to_string()));
        let detail = match &ip {
            Some(ip) if reached.iter().any(|(r, _)| r == ip) => None,
            Some(ip) => Some(format!("{name} ({ip}) is declared but no session of the report reached it")),
            None => Some(format!(
                "{name:?} is neither a device of the site's inventory nor an IP address: nothing shows it was reached"
            )),
        };
        if let Some(detail) = detail {
            let mut f = Finding::new("device_not_reached", Severity::Warning, report);
            f.expected = json!(name);
            f.observed = json!(reached_labels);
            f.detail = detail;
            f.records = session_lines.clone();
            f.span = session_span;
            findings.push(f);
        }
        declared_ips.extend(ip);
    }
    for (ip, s) in &reached {
        if !declared_ips.contains(ip) {
            let mut f = Finding::new("device_not_declared", Severity::Warning, report);
            let label = device_label(site, inventory, ip);
            f.expected = json!(declared);
            f.observed = json!(label);
            f.session = Some(s.id.clone());
            f.detail = format!(
                "{label} ({ip}) was reached during the report's sessions but is not declared"
            );
            f.records = device_record(conn, s, ip)?.into_iter().collect();
            f.span = session_span;
            findings.push(f);
        }
    }

    if let Some(tunnel) = report.remote.as_ref().and_then(|r| r.tunnel.as_deref()) {
        let used = unique_str(backing.iter().map(|s| s.tunnel.as_str()));
        let of_site = site.is_none_or(|s| s.has_tunnel(tunnel));
        let used_it = used.iter().any(|u| u.eq_ignore_ascii_case(tunnel));
        if !of_site || !used_it {
            let mut f = Finding::new("tunnel_mismatch", Severity::Warning, report);
            f.expected = json!(tunnel);
            f.observed = json!(used);
            f.session = Some(first.id.clone());
            f.detail = match (of_site, used_it) {
                (false, _) => format!(
                    "{tunnel:?} is not one of the site's tunnels; the sessions used {}",
                    used.join(", ")
                ),
                _ => format!("the sessions used {}, not {tunnel:?}", used.join(", ")),
            };
            f.records = backing.iter().filter_map(|s| s.start_record).collect();
            f.span = session_span;
            findings.push(f);
        }
    }
    Ok(())
}

/// Sessions at a site that no report covers, once per visit (a
/// reconnection continues the visit it resumes). A session is at a site as
/// a report is backed by it: through one of the site's tunnels, or with
/// traffic to its subnets; a session through a site's tunnel that reached
/// no device is still work at that site. An identity that is no
/// technician's is listed too (its technician null): someone at a client's
/// site whom no report can cover is what an auditor most wants to see.
fn unreported_sessions(
    sessions: &[Session],
    covered: &BTreeSet<(String, String)>,
    inventory: &Inventory,
    findings: &mut Vec<Finding>,
) {
    let by_id: BTreeMap<&str, &Session> = sessions.iter().map(|s| (s.id.as_str(), s)).collect();
    // Every session of each visit, under the start and id of its first
    // session, so that visits come out in the order they began.
    let mut visits: BTreeMap<(DateTime<Utc>, String), Vec<&Session>> = BTreeMap::new();
    for s in sessions {
        let mut head = s;
        let mut hops = 0;
        while let Some(prev) = head.continues.as_deref().and_then(|id| by_id.get(id)) {
            head = prev;
            hops += 1;
            if hops > sessions.len() {
                break;
            }
        }
        visits
            .entry((head.start, head.id.clone()))
            .or_default()
            .push(s);
    }
    for (_, visit) in visits {
        let head = visit[0];
        let mut sites: Vec<&String> = Vec::new();
        for s in &visit {
            for site in &s.sites {
                if !sites.contains(&site) {
                    sites.push(site);
                }
            }
        }

        // A visit is open while any of its sessions is: it has no end yet.
        let last_end = if visit.iter().any(|s| s.end.is_none()) {
            None
        } else {
            visit.iter().filter_map(|s| s.end).max()
        };
        for site in sites {
            if visit
                .iter()
                .any(|s| covered.contains(&(s.id.clone(), site.clone())))
            {
                continue;
            }

            // What puts the visit at this site: the site's tunnels it went
            // through, and the devices inside the site it reached.
            let inventory_site = inventory.site(site);
            let tunnels = unique_str(
                visit
                    .iter()
                    .map(|s| s.tunnel.as_str())
                    .filter(|t| inventory_site.is_some_and(|i| i.has_tunnel(t))),
            );
            let devices: BTreeSet<String> = devices_at_site(&visit, inventory_site)
                .into_iter()
                .map(|(ip, _)| ip)
                .collect();
            let mut how = Vec::new();
            if !tunnels.is_empty() {
                how.push(format!("through its tunnel {}", tunnels.join(", ")));
            }
            if !devices.is_empty() {
                how.push(format!(
                    "reaching {}",
                    devices.iter().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            findings.push(Finding {
                kind: "unreported_session",
                severity: Severity::Warning,
                report: None,
                related_report: None,
                session: Some(head.id.clone()),
                site: Some(site.clone()),
                technician: head.technician.clone(),
                expected: json!("a report covering this session"),
                observed: json!({
                    "user": head.user,
                    "start": format_utc(head.start),
                    "end": last_end.map(format_utc),
                    "devices": devices,
                }),
                detail: if how.is_empty() {
                    format!("{} was at site {site} and no report covers it", head.user)
                } else {
                    format!(
                        "{} was at site {site} ({}) and no report covers it",
                        head.user,
                        how.join(", ")
                    )
                },
                records: visit
                    .iter()
                    .flat_map(|s| s.start_record.into_iter().chain(s.end_record))
                    .collect(),
                span: Some((head.start, last_end)),
                sessions: visit.iter().map(|s| s.id.clone()).collect(),
            });
        }
    }
}

/// Two reports of one technician that claim the same time.
fn overlapping_reports(reports: &[Report], findings: &mut Vec<Finding>) {
    let claimed = |r: &Report| -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if let (Some(s), Some(e)) = (r.remote_start(), r.remote_end()) {
            return Some((s, e));
        }
        let on = r.on_site.as_ref()?;
        Some((Report::time(&on.arrival)?, Report::time(&on.departure)?))
    };
    for (i, a) in reports.iter().enumerate() {
        for b in &reports[i + 1..] {
            if a.technician.is_none() || a.technician != b.technician {
                continue;
            }
            let (Some((a0, a1)), Some((b0, b1))) = (claimed(a), claimed(b)) else {
                continue;
            };
            if a0 < b1 && b0 < a1 {
                let (from, to) = (a0.max(b0), a1.min(b1));
                let mut f = Finding::new("overlapping_reports", Severity::Warning, b);
                f.related_report = Some(a.id.clone());
                f.expected = json!("no two reports of one technician at the same time");
                f.observed = json!({"from": format_utc(from), "to": format_utc(to)});
                f.detail = format!(
                    "{} and {} both claim {} from {}",
                    a.id,
                    b.id,
                    fmt_duration(to - from),
                    format_utc(from)
                );
                f.span = Some((from, Some(to)));
                findings.push(f);
            }
        }
    }
}

/// Stable while the finding and its evidence are unchanged.
fn discrepancy_id(f: &Finding) -> String {
    let mut h = Sha256::new();
    let parts = [
        f.kind.to_owned(),
        f.report.clone().unwrap_or_default(),
        f.related_report.clone().unwrap_or_default(),
        f.session.clone().unwrap_or_default(),
        f.site.clone().unwrap_or_default(),
        f.expected.to_string(),
        f.observed.to_string(),
        format!("{:?}", f.records),
    ];
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    format!("d-{}", crate::store::hex(&digest[..6]))
}

fn load_resolutions(conn: &Connection) -> anyhow::Result<BTreeMap<String, Resolution>> {
    let mut stmt = conn.prepare("SELECT discrepancy, note, by, at FROM resolutions")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            Resolution {
                note: r.get(1)?,
                by: r.get(2)?,
                at: format_utc(from_micros(r.get(3)?)),
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records an auditor's explanation.
pub fn resolve(
    conn: &Connection,
    id: &str,
    note: &str,
    by: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    conn.execute(
        "INSERT INTO resolutions (discrepancy, note, by, at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(discrepancy) DO UPDATE SET note = excluded.note, by = excluded.by, at = excluded.at",
        params![id, note, by, to_micros(at)],
    )?;
    Ok(())
}

/// The audit's filters.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub site: Option<String>,
    pub technician: Option<String>,
    pub kind: Option<String>,
    /// The lowest severity shown.
    pub severity: Option<Severity>,
}

impl AuditFilter {
    pub fn keeps(&self, d: &Discrepancy) -> bool {
        if self
            .site
            .as_ref()
            .is_some_and(|s| d.site.as_ref() != Some(s))
        {
            return false;
        }
        if self
            .technician
            .as_ref()
            .is_some_and(|t| d.technician.as_ref() != Some(t))
        {
            return false;
        }
        if self.kind.as_ref().is_some_and(|k| d.kind != k) {
            return false;
        }
        if self.severity.is_some_and(|s| d.severity < s) {
            return false;
        }
        if let Some((start, end)) = d.span {
            if self.until.is_some_and(|u| start > u) {
                return false;
            }
            if let (Some(since), Some(end)) = (self.since, end) {
                if end < since {
                    return false;
                }
            }
        }
        true
    }
}
