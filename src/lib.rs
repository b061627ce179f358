//! vpnledger: remote-access sessions rebuilt from VPN and firewall logs,
//! held against technicians' intervention reports.
//!
//! The binary (`src/main.rs`) is a thin command line over these modules:
//! - [`config`]: the TOML configuration, checked whole;
//! - [`inventory`]: sites, devices and technicians from the configuration;
//! - [`store`]: the SQLite store and its migrations;
//! - [`ingest`]: files into the store, from their checkpoints;
//! - [`sessions`]: the sessionizer, from events to sessions;
//! - [`reports`]: intervention reports, their import and history;
//! - [`reconcile`]: pre-fills and the audit's discrepancies;
//! - [`output`]: tables for people, JSON and CSV for programs;
//! - [`daemon`], [`sources`], [`api`]: `run`, its live sources, and the
//!   HTTP API and web page.
//!
//! Log parsing itself lives in the `vpnledger-parsers` crate.

pub mod api;
pub mod config;
pub mod daemon;
pub mod ingest;
pub mod inventory;
pub mod output;
pub mod parse_stats;
pub mod reconcile;
pub mod reports;
pub mod sessions;
pub mod sources;
pub mod store;

/// A problem with what the user gave us (a file, an id, a value): the
/// command exits with status 2 and this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A period's start and end, either of them open.
pub type Period = (
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// A period's bounds as instants (a day given as the start from its
/// start, as the end to its end); `names` are the bounds' names as the
/// user gave them (`--since`, or `since` in a query), for the errors. A
/// period that ends before it starts is refused: it would list nothing,
/// which reads as "nothing happened".
pub fn period_range(
    since: Option<&str>,
    until: Option<&str>,
    zone: chrono_tz::Tz,
    names: [&str; 2],
) -> anyhow::Result<Period> {
    use anyhow::Context;
    let [since_name, until_name] = names;
    let start = since
        .map(|s| period(s, zone, false).context(since_name.to_owned()))
        .transpose()?;
    let end = until
        .map(|s| period(s, zone, true).context(until_name.to_owned()))
        .transpose()?;
    if let (Some(since), Some(until), Some(start), Some(end)) = (since, until, start, end) {
        if start > end {
            return Err(BadInput(format!(
                "{since_name} {since} is later than {until_name} {until}: the period would be empty"
            ))
            .into());
        }
    }
    Ok((start, end))
}

/// `--since`/`--until`: RFC 3339, or a date (the whole day, in the zone).
pub fn period(
    text: &str,
    zone: chrono_tz::Tz,
    end_of_day: bool,
) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| BadInput(format!("{text:?} is neither RFC 3339 nor YYYY-MM-DD")))?;
    let day = if end_of_day {
        date.succ_opt().unwrap_or(date)
    } else {
        date
    };
    let local = day.and_hms_opt(0, 0, 0).expect("midnight");
    let t = zone
        .from_local_datetime(&local)
        .earliest()
        .ok_or_else(|| BadInput(format!("{text:?} has no midnight in {zone}")))?
        .with_timezone(&chrono::Utc);
    Ok(if end_of_day {
        t - chrono::Duration::microseconds(1)
    } else {
        t
    })
}
