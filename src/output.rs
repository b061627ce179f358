//! How results are printed: aligned tables for people (times in the
//! configured zone), JSON and CSV for programs (times in UTC).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};

/// A table with our house style.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().copied());
    t
}

/// A time for people: local to the zone, with its offset.
pub fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

pub fn local_time_opt(t: Option<DateTime<Utc>>, zone: Tz) -> String {
    t.map_or_else(|| "open".to_owned(), |t| local_time(t, zone))
}

/// A CSV cell that a spreadsheet would run as a formula is escaped with a
/// leading quote, so `=HYPERLINK(...)` in a report stays text.
pub fn csv_cell(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// Writes rows as CSV to stdout, every cell escaped.
pub fn write_csv(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout().lock());
    w.write_record(header)?;
    for row in rows {
        w.write_record(row.iter().map(|c| csv_cell(c)))?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_escaped() {
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-3"), "'-3");
        assert_eq!(csv_cell("NVR-01"), "NVR-01");
    }
}
