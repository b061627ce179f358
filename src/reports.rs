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
    let mut reports = Vec::with_capacity(values.len());
    let mut ids = std::collections::HashSet::new();
    for (index, value) in values.into_iter().enumerate() {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned();
        let mut report: Report = serde_path_to_error::deserialize(value).map_err(|e| {
            BadInput(format!(
                "{file}: report {index} (id {id:?}): field {}: {}",
                e.path(),
                e.inner()
            ))
        })?;
        report.validate(inventory).map_err(|(field, message)| {
            BadInput(format!(
                "{file}: report {index} (id {id:?}): field {field}: {message}"
            ))
        })?;
        if !ids.insert(report.id.clone()) {
            return Err(BadInput(format!(
                "{file}: report {index}: field id: {id:?} appears twice in the file"
            )));
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Stores reports, all in one transaction: new ones are added, changed
/// ones keep their earlier version.
pub fn import(
    store: &mut Store,
    reports: &[Report],
    now: DateTime<Utc>,
) -> anyhow::Result<ImportSummary> {
    let mut summary = ImportSummary::default();
    let tx = store.conn.transaction()?;
    for report in reports {
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
            import(&mut store, &v1, now).unwrap(),
            ImportSummary {
                added: 1,
                updated: 0,
                unchanged: 0
            }
        );
        assert_eq!(
            import(&mut store, &v1, now).unwrap(),
            ImportSummary {
                added: 0,
                updated: 0,
                unchanged: 1
            }
        );
        let v2 = parse_reports(
            r#"[{"id": "R1", "status": "signed", "recommendations": "b"}]"#,
            &inv,
            "x",
        )
        .unwrap();
        assert_eq!(
            import(&mut store, &v2, now).unwrap(),
            ImportSummary {
                added: 0,
                updated: 1,
                unchanged: 0
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
