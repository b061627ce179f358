//! Intervention reports: their shape, validation, import and history.
//!
//! A report is stored whole, as JSON, with its times normalised to UTC. An
//! import is all or nothing: one bad record and nothing is written, and the
//! error names the record and the field. A report that changes keeps its
//! earlier version, with the time it was replaced.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::inventory::Inventory;
use crate::output::csv_uncell;
use crate::store::{format_utc, to_micros, Store};
use crate::BadInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Fault,
    Change,
    Emergency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Remote,
    OnSite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootCause {
    Hardware,
    Configuration,
    Network,
    Cyber,
    Power,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Draft,
    Signed,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnSite {
    pub arrival: Option<String>,
    pub departure: Option<String>,
    pub travel_minutes: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remote {
    pub start: Option<String>,
    pub end: Option<String>,
    /// Device names or IP addresses.
    #[serde(default)]
    pub devices: Option<Vec<String>>,
    pub tunnel: Option<String>,
}

impl Remote {
    /// Nothing declared: no times, no tunnel, no device.
    fn is_empty(&self) -> bool {
        self.start.is_none()
            && self.end.is_none()
            && self.tunnel.is_none()
            && self.devices.as_ref().is_none_or(|d| d.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    pub symptoms: Option<String>,
    #[serde(default)]
    pub hypotheses: Vec<String>,
    pub root_cause: Option<RootCause>,
    pub details: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub at: Option<String>,
    pub action: String,
    pub result: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    pub designation: String,
    pub reference: Option<String>,
    pub removed_serial: Option<String>,
    pub installed_serial: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestResult {
    pub test: String,
    pub result: Option<String>,
    pub passed: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub name: String,
    pub at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    pub technician: Option<Signature>,
    pub client: Option<Signature>,
}

/// An intervention report, every part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub id: String,
    pub site: Option<String>,
    /// `YYYY-MM-DD`, the day of the intervention.
    pub date: Option<String>,
    pub contract: Option<String>,
    pub reason: Option<Reason>,
    pub ticket: Option<String>,
    pub technician: Option<String>,
    pub mode: Option<Mode>,
    pub on_site: Option<OnSite>,
    pub remote: Option<Remote>,
    pub diagnosis: Option<Diagnosis>,
    #[serde(default)]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default)]
    pub tests: Vec<TestResult>,
    pub recommendations: Option<String>,
    pub signatures: Option<Signatures>,
    #[serde(default)]
    pub status: Status,
}

/// Reads a report time: RFC 3339, or `YYYY-MM-DD HH:MM` local to the site.
pub fn parse_report_time(text: &str, zone: chrono_tz::Tz) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .map_err(|_| format!("{text:?} is not RFC 3339 nor a local YYYY-MM-DD HH:MM"))?;
    zone.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?} does not exist in {zone} (clocks went forward)"))
}

impl Report {
    /// Parses a time of this report, in UTC.
    pub fn time(field: &Option<String>) -> Option<DateTime<Utc>> {
        field
            .as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    }

    pub fn remote_start(&self) -> Option<DateTime<Utc>> {
        self.remote.as_ref().and_then(|r| Report::time(&r.start))
    }

    pub fn remote_end(&self) -> Option<DateTime<Utc>> {
        self.remote.as_ref().and_then(|r| Report::time(&r.end))
    }

    pub fn is_remote(&self) -> bool {
        self.mode == Some(Mode::Remote)
    }

    /// Checks the report against the inventory and turns every time into
    /// UTC RFC 3339. Errors name the field.
    fn validate(&mut self, inventory: &Inventory) -> Result<(), (String, String)> {
        if self.id.trim().is_empty() {
            return Err(("id".into(), "must not be empty".into()));
        }
        if let Some(site) = &self.site {
            if !inventory.sites.is_empty() && inventory.site(site).is_none() {
                return Err(("site".into(), format!("unknown site {site:?}")));
            }
        }
        if let Some(tech) = &self.technician {
            if !inventory.technicians.is_empty() && inventory.technician(tech).is_none() {
                return Err(("technician".into(), format!("unknown technician {tech:?}")));
            }
        }
        if let Some(date) = &self.date {
            NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| {
                (
                    "date".to_owned(),
                    format!("{date:?} is not a date YYYY-MM-DD"),
                )
            })?;
        }
        let zone = self.site.as_deref().map_or(
            inventory.default_zone.unwrap_or(chrono_tz::Europe::Paris),
            |s| inventory.zone_of(s),
        );
        let normalise = |field: &mut Option<String>, name: &str| -> Result<(), (String, String)> {
            if let Some(text) = field.as_deref() {
                let t = parse_report_time(text, zone).map_err(|e| (name.to_owned(), e))?;
                *field = Some(format_utc(t));
            }
            Ok(())
        };
        if let Some(on_site) = &mut self.on_site {
            normalise(&mut on_site.arrival, "on_site.arrival")?;
            normalise(&mut on_site.departure, "on_site.departure")?;
        }
        if let Some(remote) = &mut self.remote {
            normalise(&mut remote.start, "remote.start")?;
            normalise(&mut remote.end, "remote.end")?;
            if let (Some(s), Some(e)) = (Report::time(&remote.start), Report::time(&remote.end)) {
                if e < s {
                    return Err(("remote.end".into(), "is before remote.start".into()));
                }
            }
        }
        for (i, action) in self.actions.iter_mut().enumerate() {
            normalise(&mut action.at, &format!("actions[{i}].at"))?;
        }
        if let Some(signatures) = &mut self.signatures {
            for (who, sig) in [
                ("technician", &mut signatures.technician),
                ("client", &mut signatures.client),
            ] {
                if let Some(sig) = sig {
                    normalise(&mut sig.at, &format!("signatures.{who}.at"))?;
                }
            }
        }
        Ok(())
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Devices whose serial a replaced part changed.
    pub serials_changed: usize,
}

/// Parses a JSON array of reports; errors name the record and field.
pub fn parse_reports(
    text: &str,
    inventory: &Inventory,
    file: &str,
) -> Result<Vec<Report>, BadInput> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
        BadInput(format!(
            "{file}: line {}: not a JSON array of reports: {e}",
            e.line()
        ))
    })?;
    let labels: Vec<String> = (0..values.len()).map(|i| format!("report {i}")).collect();
    from_values(values, &labels, inventory, file)
}

/// Checks each report; errors name the record (`label`) and the field.
fn from_values(
    values: Vec<serde_json::Value>,
    labels: &[String],
    inventory: &Inventory,
    file: &str,
) -> Result<Vec<Report>, BadInput> {
    let mut reports = Vec::with_capacity(values.len());
    let mut ids = std::collections::HashSet::new();
    for (value, label) in values.into_iter().zip(labels) {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned();
        let mut report: Report = serde_path_to_error::deserialize(value).map_err(|e| {
            // A missing key is an error of the record itself.
            let path = e.path().to_string();
            let field = if path == "." { "(the record)" } else { &path };
            BadInput(format!(
                "{file}: {label} (id {id:?}): field {field}: {}",
                e.inner()
            ))
        })?;
        // An empty remote part is no remote part: a CSV export writes both
        // as empty cells, and reading it back must not make a new version.
        if report.remote.as_ref().is_some_and(Remote::is_empty) {
            report.remote = None;
        }
        report.validate(inventory).map_err(|(field, message)| {
            BadInput(format!(
                "{file}: {label} (id {id:?}): field {field}: {message}"
            ))
        })?;
        if !ids.insert(report.id.clone()) {
            return Err(BadInput(format!(
                "{file}: {label}: field id: {id:?} appears twice in the file"
            )));
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The columns of a report in CSV: one row a report; lists of names are
/// joined with `; `, the ordered parts (actions, parts, tests) are JSON.
pub const CSV_COLUMNS: [&str; 28] = [
    "id",
    "site",
    "date",
    "contract",
    "reason",
    "ticket",
    "technician",
    "mode",
    "on_site_arrival",
    "on_site_departure",
    "travel_minutes",
    "remote_start",
    "remote_end",
    "remote_devices",
    "remote_tunnel",
    "symptoms",
    "hypotheses",
    "root_cause",
    "diagnosis_details",
    "actions",
    "parts",
    "tests",
    "recommendations",
    "technician_signature",
    "technician_signed_at",
    "client_signature",
    "client_signed_at",
    "status",
];

/// A report as a CSV row, in [`CSV_COLUMNS`] order.
pub fn to_csv_row(r: &Report) -> Vec<String> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let json_list = |v: serde_json::Value| {
        if v.as_array().is_some_and(|a| a.is_empty()) {
            String::new()
        } else {
            v.to_string()
        }
    };
    let on_site = r.on_site.clone().unwrap_or_default();
    let remote = r.remote.clone().unwrap_or_default();
    let diagnosis = r.diagnosis.clone().unwrap_or_default();
    let signatures = r.signatures.clone().unwrap_or_default();
    vec![
        r.id.clone(),
        text(&r.site),
        text(&r.date),
        text(&r.contract),
        name(serde_json::json!(r.reason)),
        text(&r.ticket),
        text(&r.technician),
        name(serde_json::json!(r.mode)),
        text(&on_site.arrival),
        text(&on_site.departure),
        on_site
            .travel_minutes
            .map(|m| m.to_string())
            .unwrap_or_default(),
        text(&remote.start),
        text(&remote.end),
        remote.devices.unwrap_or_default().join("; "),
        text(&remote.tunnel),
        text(&diagnosis.symptoms),
        diagnosis.hypotheses.join("; "),
        name(serde_json::json!(diagnosis.root_cause)),
        text(&diagnosis.details),
        json_list(serde_json::json!(r.actions)),
        json_list(serde_json::json!(r.parts)),
        json_list(serde_json::json!(r.tests)),
        text(&r.recommendations),
        signatures
            .technician
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        signatures
            .technician
            .as_ref()
            .and_then(|s| s.at.clone())
            .unwrap_or_default(),
        signatures
            .client
            .as_ref()
            .map(|s| s.name.clone())
            .unwrap_or_default(),
        signatures
            .client
            .as_ref()
            .and_then(|s| s.at.clone())
            .unwrap_or_default(),
        name(serde_json::json!(r.status)),
    ]
}

/// Parses reports from CSV with a header row of [`CSV_COLUMNS`] (any
/// order, any subset but `id`). Errors name the line and the field.
pub fn parse_reports_csv(
    text: &str,
    inventory: &Inventory,
    file: &str,
) -> Result<Vec<Report>, BadInput> {
    use serde_json::{json, Map, Value};
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| BadInput(format!("{file}: line 1: not a CSV header: {e}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    if let Some(unknown) = header.iter().find(|h| !CSV_COLUMNS.contains(&h.as_str())) {
        return Err(BadInput(format!(
            "{file}: line 1: unknown column {unknown:?}; expected some of {}",
            CSV_COLUMNS.join(", ")
        )));
    }
    if !header.iter().any(|h| h == "id") {
        return Err(BadInput(format!(
            "{file}: line 1: the header has no id column"
        )));
    }
    let mut values = Vec::new();
    let mut labels = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            BadInput(format!("{file}: line {line}: {e}"))
        })?;
        let line = row.position().map_or(0, |p| p.line());
        let cell = |name: &str| -> Option<String> {
            let i = header.iter().position(|h| h == name)?;
            let v = csv_uncell(row.get(i)?.trim());
            (!v.is_empty()).then(|| v.to_owned())
        };
        let list = |name: &str| -> Option<Value> {
            cell(name).map(|v| {
                json!(v
                    .split(';')
                    .map(|x| x.trim())
                    .filter(|x| !x.is_empty())
                    .collect::<Vec<_>>())
            })
        };
        let nested = |name: &str| -> Result<Option<Value>, BadInput> {
            cell(name)
                .map(|v| {
                    serde_json::from_str::<Value>(&v).map_err(|e| {
                        BadInput(format!(
                            "{file}: line {line}: field {name}: not a JSON list: {e}"
                        ))
                    })
                })
                .transpose()
        };
        let text = |name: &str| cell(name).map(Value::String).unwrap_or(Value::Null);
        let mut v = Map::new();
        for key in [
            "id",
            "site",
            "date",
            "contract",
            "reason",
            "ticket",
            "technician",
            "mode",
            "recommendations",
            "status",
        ] {
            v.insert(key.into(), text(key));
        }
        if v["status"].is_null() {
            v.remove("status");
        }
        if cell("on_site_arrival").is_some()
            || cell("on_site_departure").is_some()
            || cell("travel_minutes").is_some()
        {
            let minutes = match cell("travel_minutes") {
                Some(m) => json!(m.parse::<u32>().map_err(|_| BadInput(format!(
                    "{file}: line {line}: field travel_minutes: {m:?} is not a number of minutes"
                )))?),
                None => Value::Null,
            };
            v.insert("on_site".into(), json!({"arrival": text("on_site_arrival"), "departure": text("on_site_departure"), "travel_minutes": minutes}));
        }
        if [
            "remote_start",
            "remote_end",
            "remote_devices",
            "remote_tunnel",
        ]
        .iter()
        .any(|c| cell(c).is_some())
        {
            v.insert(
                "remote".into(),
                json!({"start": text("remote_start"), "end": text("remote_end"), "devices": list("remote_devices"), "tunnel": text("remote_tunnel")}),
            );
        }
        if ["symptoms", "hypotheses", "root_cause", "diagnosis_details"]
            .iter()
            .any(|c| cell(c).is_some())
        {
            v.insert(
                "diagnosis".into(),
                json!({"symptoms": text("symptoms"), "hypotheses": list("hypotheses").unwrap_or(json!([])), "root_cause": text("root_cause"), "details": text("diagnosis_details")}),
            );
        }
        for key in ["actions", "parts", "tests"] {
            if let Some(n) = nested(key)? {
                v.insert(key.into(), n);
            }
        }
        let signature =
            |name: &str, at: &str| cell(name).map(|n| json!({"name": n, "at": text(at)}));
        let (tech, client) = (
            signature("technician_signature", "technician_signed_at"),
            signature("client_signature", "client_signed_at"),
        );
        if tech.is_some() || client.is_some() {
            v.insert(
                "signatures".into(),
                json!({"technician": tech, "client": client}),
            );
        }
        values.push(Value::Object(v));
        labels.push(format!("line {line}"));
    }
    from_values(values, &labels, inventory, file)
}

/// Stores reports, all in one transaction: new ones are added, changed
/// ones keep their earlier version.
pub fn import(
    store: &mut Store,
    reports: &[Report],
    inventory: &Inventory,
    now: DateTime<Utc>,
) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let tx = store.write_transaction()?;
    for report in reports {
        if report.status == Status::Signed {
            summary.serials_changed += record_part_replacements(&tx, report, inventory, now)?;
        }
        let body = serde_json::to_string(report)?;
        let existing: Option<(i64, String, String)> = tx
            .query_row(
                "SELECT version, status, body FROM reports WHERE id = ?1",
                [&report.id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let status = status_name(report.status);
        match existing {
            None => {
                tx.execute(
                    "INSERT INTO reports (id, version, status, site, technician, body, updated) VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6)",
                    params![report.id, status, report.site, report.technician, body, to_micros(now)],
                )?;
                summary.added += 1;
            }
            Some((_, _, old_body)) if old_body == body => summary.unchanged += 1,
            Some((version, old_status, old_body)) => {
                tx.execute(
                    "INSERT INTO report_versions (id, version, status, body, replaced) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![report.id, version, old_status, old_body, to_micros(now)],
                )?;
                tx.execute(
                    "UPDATE reports SET version = ?2, status = ?3, site = ?4, technician = ?5, body = ?6, updated = ?7 WHERE id = ?1",
                    params![report.id, version + 1, status, report.site, report.technician, body, to_micros(now)],
                )?;
                summary.updated += 1;
            }
        }
    }
    tx.commit()?;
    Ok(summary)
}

/// A device whose serial a signed report's replaced part changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceChange {
    pub site: String,
    pub device: String,
    pub serial_before: Option<String>,
    pub serial_after: String,
    pub report: String,
    pub at: String,
}

/// When a report's work was done: the technician's signature, else the end
/// of the remote or on-site work, else its date.
fn work_time(report: &Report, now: DateTime<Utc>) -> DateTime<Utc> {
    let signed = report
        .signatures
        .as_ref()
        .and_then(|s| s.technician.as_ref())
        .and_then(|t| Report::time(&t.at));
    let end = report.remote_end().or_else(|| {
        report
            .on_site
            .as_ref()
            .and_then(|o| Report::time(&o.departure))
    });
    let date = report
        .date
        .as_deref()
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .map(|d| Utc.from_utc_datetime(&d));
    signed.or(end).or(date).unwrap_or(now)
}

/// The serial a device has now: its last change, else the configuration's.
fn current_serial(
    tx: &rusqlite::Transaction<'_>,
    site: &str,
    device: &crate::inventory::Device,
) -> anyhow::Result<Option<String>> {
    let changed: Option<String> = tx
        .query_row(
            "SELECT serial_after FROM device_changes WHERE site = ?1 AND device = ?2 ORDER BY at DESC, rowid DESC LIMIT 1",
            params![site, device.name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(changed.or_else(|| device.serial.clone()))
}

/// Records the serials that a signed report's replaced parts change: the
/// device whose serial is the removed part's (else whose name is the
/// part's designation) takes the installed part's serial.
fn record_part_replacements(
    tx: &rusqlite::Transaction<'_>,
    report: &Report,
    inventory: &Inventory,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let Some(site) = report.site.as_deref().and_then(|s| inventory.site(s)) else {
        return Ok(0);
    };
    let at = to_micros(work_time(report, now));
    let mut changed = 0;
    for part in &report.parts {
        let Some(installed) = &part.installed_serial else {
            continue;
        };
        let mut target = None;
        for device in &site.devices {
            let serial = current_serial(tx, &site.id, device)?;
            let by_serial = part.removed_serial.is_some() && serial == part.removed_serial;
            if by_serial || device.name.eq_ignore_ascii_case(&part.designation) {
                target = Some((device, serial));
                if by_serial {
                    break;
                }
            }
        }
        let Some((device, before)) = target else {
            continue;
        };
        if before.as_deref() == Some(installed.as_str()) {
            continue;
        }
        changed += tx.execute(
            "INSERT OR REPLACE INTO device_changes (site, device, serial_before, serial_after, report, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![site.id, device.name, before, installed, report.id, at],
        )?;
    }
    Ok(changed)
}

/// Every recorded serial change, oldest first.
pub fn device_changes(store: &Store) -> anyhow::Result<Vec<DeviceChange>> {
    let mut stmt = store.conn.prepare(
        "SELECT site, device, serial_before, serial_after, report, at FROM device_changes ORDER BY at, rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(DeviceChange {
            site: r.get(0)?,
            device: r.get(1)?,
            serial_before: r.get(2)?,
            serial_after: r.get(3)?,
            report: r.get(4)?,
            at: format_utc(crate::store::from_micros(r.get(5)?)),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Draft => "draft",
        Status::Signed => "signed",
    }
}

/// A stored report and its version number.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub report: Report,
    pub version: i64,
}

pub fn load(store: &Store, id: &str) -> anyhow::Result<Option<StoredReport>> {
    let row: Option<(String, i64)> = store
        .conn
        .query_row(
            "SELECT body, version FROM reports WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    row.map(|(body, version)| {
        Ok(StoredReport {
            report: serde_json::from_str(&body)?,
            version,
        })
    })
    .transpose()
}

pub fn load_all(store: &Store) -> anyhow::Result<Vec<Report>> {
    let mut stmt = store.conn.prepare("SELECT body FROM reports ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for body in rows {
        out.push(serde_json::from_str(&body?)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_report_times_are_read_in_the_site_zone() {
        let t = parse_report_time("2024-03-12 09:14", chrono_tz::Europe::Paris).unwrap();
        assert_eq!(format_utc(t), "2024-03-12T08:14:00Z");
        let t = parse_report_time("2024-07-12 09:14", chrono_tz::Europe::Paris).unwrap();
        assert_eq!(format_utc(t), "2024-07-12T07:14:00Z");
        assert!(parse_report_time("12/03/2024", chrono_tz::Europe::Paris).is_err());
    }

    #[test]
    fn errors_name_the_record_and_field() {
        let inv = Inventory::default();
        let text =
            r#"[{"id": "R1", "mode": "remote"}, {"id": "R2", "remote": {"start": "yesterday"}}]"#;
        let err = parse_reports(text, &inv, "r.json").unwrap_err();
        assert_eq!(
            err.0,
            "r.json: report 1 (id \"R2\"): field remote.start: \"yesterday\" is not RFC 3339 nor a local YYYY-MM-DD HH:MM"
        );
        let text = r#"[{"id": "R1", "reason": "whim"}]"#;
        let err = parse_reports(text, &inv, "r.json").unwrap_err();
        assert!(
            err.0
                .starts_with("r.json: report 0 (id \"R1\"): field reason: unknown variant `whim`"),
            "{}",
            err.0
        );
    }

    #[test]
    fn a_changed_report_keeps_its_earlier_version() {
        let mut store = Store::in_memory();
        let inv = Inventory::default();
        let now = Utc::now();
        let v1 = parse_reports(
            r#"[{"id": "R1", "status": "signed", "recommendations": "a"}]"#,
            &inv,
            "x",
        )
        .unwrap();
        assert_eq!(
            import(&mut store, &v1, &inv, now).unwrap(),
            ImportSummary {
                added: 1,
                updated: 0,
                unchanged: 0,
                serials_changed: 0
            }
        );
        assert_eq!(
            import(&mut store, &v1, &inv, now).unwrap(),
            ImportSummary {
                added: 0,
                updated: 0,
                unchanged: 1,
                serials_changed: 0
            }
        );
        let v2 = parse_reports(
            r#"[{"id": "R1", "status": "signed", "recommendations": "b"}]"#,
            &inv,
            "x",
        )
        .unwrap();
        assert_eq!(
            import(&mut store, &v2, &inv, now).unwrap(),
            ImportSummary {
                added: 0,
                updated: 1,
                unchanged: 0,
                serials_changed: 0
            }
        );
        let stored = load(&store, "R1").unwrap().unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(stored.report.recommendations.as_deref(), Some("b"));
        let old: String = store
            .conn
            .query_row(
                "SELECT body FROM report_versions WHERE id = 'R1' AND version = 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(old.contains("\"recommendations\":\"a\""));
    }
}
