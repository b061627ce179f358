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

/// The first characters that make a spreadsheet run a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether [`csv_cell`] puts a quote before a text: when it starts like a
/// formula, so `=HYPERLINK(...)` in a report stays text, or with a quote of
/// its own, so that import, which takes one quote off such a cell, gives
/// `'=x` back as `'=x` and not as `=x`.
fn csv_needs_quote(value: &str) -> bool {
    value.starts_with(FORMULA_STARTS) || value.starts_with('\'')
}

/// A CSV cell as exported: the text, behind a `'` where a spreadsheet would
/// run it or where the text itself starts with `'`.
pub fn csv_cell(value: &str) -> String {
    if csv_needs_quote(value) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

/// Undoes [`csv_cell`]: takes off one leading `'`, and only where export
/// would have added it, so every text comes back as it went out. A cell
/// like `'note`, a quote before text that needs none, was not escaped and
/// keeps its quote, as in exports made before quotes were escaped too.
pub fn csv_uncell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if csv_needs_quote(rest) => rest,
        _ => cell,
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

    #[test]
    fn a_text_that_starts_with_a_quote_survives_export_and_import() {
        assert_eq!(csv_cell("'=not a formula"), "''=not a formula");
        assert_eq!(csv_cell("'plain"), "''plain");
        assert_eq!(csv_uncell("''=not a formula"), "'=not a formula");
        assert_eq!(csv_uncell("''plain"), "'plain");
        assert_eq!(csv_uncell("'''"), "''");
        for text in [
            "'=not a formula",
            "'+33 4 72 00 00 00",
            "'-",
            "'@home",
            "''",
            "'",
            "'plain",
            "=1+1",
            "-3",
            "\tindented",
            "plain",
            "",
        ] {
            assert_eq!(csv_uncell(&csv_cell(text)), text, "{text:?}");
        }
    }

    #[test]
    fn older_exports_read_as_before_where_unambiguous() {
        // An escaped formula loses its quote; a quote before ordinary text,
        // which older versions exported as it was, stays.
        assert_eq!(csv_uncell("'=1+1"), "=1+1");
        assert_eq!(csv_uncell("'-3"), "-3");
        assert_eq!(csv_uncell("'note"), "'note");
        assert_eq!(csv_uncell("'"), "'");
        assert_eq!(csv_uncell("NVR-01"), "NVR-01");
    }
}
