//! The line prefix of OpenVPN's own log file (`--log`, `--log-append`).
//!
//! ```text
//! 2024-06-18 09:41:58 t.moreau/192.0.2.88:60344 MULTI: Learn: ...      (2.5 and later)
//! 2024-06-18 09:41:58 us=120931 ...                                      (high --verb)
//! Tue Jun 18 09:41:58 2024 t.moreau/192.0.2.88:60344 MULTI: Learn: ...  (before 2.5)
//! t.moreau/192.0.2.88:60344 MULTI: Learn: ...                           (--suppress-timestamps)
//! ```

use chrono::{NaiveDate, NaiveDateTime};
use nom::{
    bytes::complete::{tag, take_while_m_n},
    character::complete::char,
    combinator::{map_res, opt},
    sequence::preceded,
    Parser,
};

use crate::error::{expect, PResult};
use crate::syslog::{month, time_of_day, Envelope};
use crate::time::LineTime;
use crate::Format;

fn digits<'a>(n: usize) -> impl FnMut(&'a str) -> PResult<'a, u32> {
    move |i| {
        map_res(
            take_while_m_n(n, n, |c: char| c.is_ascii_digit()),
            str::parse::<u32>,
        )
        .parse(i)
    }
}

/// `YYYY-MM-DD`
pub(crate) fn iso_date(input: &str) -> PResult<'_, NaiveDate> {
    let (rest, (y, _, m, _, d)) = expect(
        "a date YYYY-MM-DD",
        (digits(4), char('-'), digits(2), char('-'), digits(2)),
    )(input)?;
    match NaiveDate::from_ymd_opt(y as i32, m, d) {
        Some(date) => Ok((rest, date)),
        None => Err(nom::Err::Error(crate::error::Expected {
            input,
            expected: "a valid date",
        })),
    }
}

/// `YYYY-MM-DD hh:mm:ss`, as OpenVPN 2.5+ and its status files write it.
pub(crate) fn iso_datetime(input: &str) -> PResult<'_, NaiveDateTime> {
    let (rest, date) = iso_date(input)?;
    let (rest, _) = expect("a space between date and time", char(' '))(rest)?;
    let (rest, time) = time_of_day(rest)?;
    Ok((rest, date.and_time(time)))
}

/// `Tue Jun 18 09:41:58 2024`: C's `ctime`, as OpenVPN before 2.5 wrote it.
pub(crate) fn ctime(input: &str) -> PResult<'_, NaiveDateTime> {
    let (rest, _) = expect(
        "a weekday name",
        take_while_m_n(3, 3, |c: char| c.is_ascii_alphabetic()),
    )(input)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, month) = month(rest)?;
    let (rest, _) = nom::bytes::complete::take_while1(|c| c == ' ').parse(rest)?;
    let (rest, day) = expect(
        "a day of month",
        map_res(
            take_while_m_n(1, 2, |c: char| c.is_ascii_digit()),
            str::parse::<u32>,
        ),
    )(rest)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, time) = time_of_day(rest)?;
    let (rest, _) = char(' ').parse(rest)?;
    let (rest, year) = expect("a year", digits(4))(rest)?;
    match NaiveDate::from_ymd_opt(year as i32, month, day) {
        Some(date) => Ok((rest, date.and_time(time))),
        None => Err(nom::Err::Error(crate::error::Expected {
            input,
            expected: "a valid date",
        })),
    }
}

/// The ` us=NNNNNN` microseconds OpenVPN adds at high verbosity.
fn microseconds(input: &str) -> PResult<'_, u32> {
    preceded(tag(" us="), digits(6)).parse(input)
}

/// The timestamp at the start of a `--log` line, if there is one.
pub(crate) fn log_timestamp(input: &str) -> PResult<'_, NaiveDateTime> {
    let (rest, at) = match iso_datetime(input) {
        Ok(ok) => ok,
        Err(_) => ctime(input)?,
    };
    let (rest, micros) = opt(microseconds).parse(rest)?;
    let at = match micros {
        Some(us) => at + chrono::Duration::microseconds(i64::from(us)),
        None => at,
    };
    Ok((rest, at))
}

/// Reads one line of OpenVPN's own log file. A line without a timestamp is
/// the message alone (`--suppress-timestamps`).
pub fn log_line(line: &str) -> Envelope<'_> {
    match log_timestamp(line) {
        Ok((rest, at)) => {
            let message = rest.strip_prefix(' ').unwrap_or(rest);
            Envelope {
                format: Format::OpenVpnLog,
                priority: None,
                time: LineTime::Local { at },
                host: None,
                app: None,
                pid: None,
                message,
            }
        }
        Err(_) => Envelope {
            format: Format::OpenVpnLog,
            priority: None,
            time: LineTime::Missing,
            host: None,
            app: None,
            pid: None,
            message: line,
        },
    }
}

/// Whether a line starts with an OpenVPN log timestamp (used by detection).
pub(crate) fn starts_with_timestamp(line: &str) -> bool {
    // Most lines of a mixed stream are syslog lines: what either form must
    // begin with (`YYYY-`, or three letters, a blank and a month's first
    // letter) rules them out before the parser runs.
    let could_be = match line.as_bytes() {
        [y0, y1, y2, y3, b'-', ..] => [y0, y1, y2, y3].iter().all(|b| b.is_ascii_digit()),
        [w0, w1, w2, b' ', m0, ..] => {
            [w0, w1, w2].iter().all(|b| b.is_ascii_alphabetic()) && m0.is_ascii_alphabetic()
        }
        _ => false,
    };
    could_be && log_timestamp(line).is_ok_and(|(rest, _)| rest.starts_with(' ') || rest.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> LineTime {
        let at = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        LineTime::Local { at }
    }

    #[test]
    fn iso_prefix() {
        let e = log_line("2024-06-18 09:41:58 192.0.2.88:60344 VERIFY OK: depth=0, CN=t.moreau");
        assert_eq!(e.time, local(2024, 6, 18, 9, 41, 58));
        assert_eq!(
            e.message,
            "192.0.2.88:60344 VERIFY OK: depth=0, CN=t.moreau"
        );
    }

    #[test]
    fn ctime_prefix_of_old_servers() {
        let e = log_line("Tue Jun 18 09:41:58 2024 Initialization Sequence Completed");
        assert_eq!(e.time, local(2024, 6, 18, 9, 41, 58));
        assert_eq!(e.message, "Initialization Sequence Completed");
    }

    #[test]
    fn microsecond_suffix() {
        let e = log_line("2024-06-18 09:41:58 us=120931 MULTI: multi_init called");
        let at = NaiveDate::from_ymd_opt(2024, 6, 18)
            .unwrap()
            .and_hms_micro_opt(9, 41, 58, 120_931)
            .unwrap();
        assert_eq!(e.time, LineTime::Local { at });
        assert_eq!(e.message, "MULTI: multi_init called");
    }

    #[test]
    fn no_timestamp() {
        let e = log_line(
            "t.moreau/192.0.2.88:60344 MULTI: Learn: 10.9.0.2 -> t.moreau/192.0.2.88:60344",
        );
        assert_eq!(e.time, LineTime::Missing);
        assert!(e.message.starts_with("t.moreau/"));
    }

    #[test]
    fn invalid_date_is_not_a_timestamp() {
        assert!(!starts_with_timestamp("2024-02-30 09:41:58 x"));
        assert!(starts_with_timestamp("2024-02-29 09:41:58 x"));
    }
}
