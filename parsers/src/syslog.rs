//! Syslog envelopes: the header in front of a gateway's message.
//!
//! RFC 3164 (BSD syslog) as gateways and relays really write it:
//!
//! ```text
//! [<PRI>][SEQ: ][*|.]Mmm dd [YYYY ]hh:mm:ss[.frac][:] [HOST ]TAG[[PID]]: MESSAGE
//! <166>Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 VERIFY OK: ...
//! ```
//!
//! A Cisco ASA message has no TAG: its `%ASA-` mark follows the time or the
//! host, whatever punctuation the device or a relay put between them (see
//! `asa_host_and_message`).
//!
//! The year and zone are not in the line: the caller resolves the returned
//! [`LineTime`] with a [`crate::time::TimeResolver`].

use chrono::NaiveTime;
use nom::{
    bytes::complete::{tag, take_while, take_while1, take_while_m_n},
    character::complete::{char, one_of},
    combinator::{map_res, opt, recognize},
    sequence::{delimited, preceded, terminated},
    Parser,
};

use crate::cisco_asa::is_asa;
use crate::error::{expect, to_parse_error, PResult, ParseError};
use crate::time::LineTime;
use crate::Format;

/// What the envelope of one line says, borrowing from the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub format: Format,
    /// Facility and severity, when the line carries `<PRI>`.
    pub priority: Option<u8>,
    pub time: LineTime,
    /// The sending host: a gateway's name in syslog.
    pub host: Option<&'a str>,
    /// The program (syslog TAG / APP-NAME).
    pub app: Option<&'a str>,
    pub pid: Option<u32>,
    /// The message: what the vendor parsers read.
    pub message: &'a str,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `<PRI>`: one to three digits in angle brackets, at most 191.
pub(crate) fn priority(input: &str) -> PResult<'_, u8> {
    expect(
        "a priority <0> to <191>",
        map_res(
            delimited(char('<'), take_while_m_n(1, 3, is_digit), char('>')),
            |d: &str| {
                d.parse::<u8>()
                    .map_err(|_| ())
                    .and_then(|p| if p <= 191 { Ok(p) } else { Err(()) })
            },
        ),
    )(input)
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// `Mmm`: an English month abbreviation, as every syslog daemon writes it.
pub(crate) fn month(input: &str) -> PResult<'_, u32> {
    // Three bytes compared with twelve names: the whole rule, without the
    // combinators' cost on every line a stream's format is guessed for.
    let found = input
        .as_bytes()
        .get(..3)
        .and_then(|name| MONTHS.iter().position(|m| m.as_bytes() == name));
    match found {
        Some(i) => Ok((&input[3..], i as u32 + 1)),
        None => Err(nom::Err::Error(crate::error::Expected {
            input,
            expected: "a month name (Jan..Dec)",
        })),
    }
}

/// `dd`: the day, space-padded (`Mar  2`) or not (`Mar 2`).
fn day(input: &str) -> PResult<'_, u32> {
    expect(
        "a day of month",
        map_res(
            preceded(take_while1(|c| c == ' '), take_while_m_n(1, 2, is_digit)),
            |d: &str| {
                d.parse::<u32>().map_err(|_| ()).and_then(|d| {
                    if (1..=31).contains(&d) {
                        Ok(d)
                    } else {
                        Err(())
                    }
                })
            },
        ),
    )(input)
}

fn two_digits(input: &str) -> PResult<'_, u32> {
    map_res(take_while_m_n(2, 2, is_digit), str::parse::<u32>).parse(input)
}

/// `hh:mm:ss[.frac]`: the time of day, with an optional fraction of a second.
pub(crate) fn time_of_day(input: &str) -> PResult<'_, NaiveTime> {
    let (rest, (h, _, m, _, s, frac)) = expect(
        "a time hh:mm:ss",
        (
            two_digits,
            char(':'),
            two_digits,
            char(':'),
            two_digits,
            opt(preceded(one_of(".,"), take_while_m_n(1, 9, is_digit))),
        ),
    )(input)?;
    let nanos = frac.map_or(0, |f: &str| {
        let digits: u32 = f.parse().unwrap_or(0);
        digits * 10u32.pow(9 - f.len() as u32)
    });
    match NaiveTime::from_hms_nano_opt(h, m, s, nanos) {
        Some(t) => Ok((rest, t)),
        None => Err(nom::Err::Error(crate::error::Expected {
            input,
            expected: "a valid time of day",
        })),
    }
}

/// Cisco's `NNNNNN: ` message sequence number before the time.
fn sequence_number(input: &str) -> PResult<'_, &str> {
    terminated(take_while1(is_digit), tag(": ")).parse(input)
}

/// The RFC 3164 timestamp: `[*|.]Mmm dd [YYYY ]hh:mm:ss[.frac][:]`.
///
/// Cisco marks an unsynchronised clock with `*` and a clock that lost sync
/// with `.`; the ASA writes the year between the day and the time.
fn timestamp(input: &str) -> PResult<'_, (u32, u32, Option<i32>, NaiveTime)> {
    let (rest, _) = opt(one_of("*.")).parse(input)?;
    let (rest, month) = month(rest)?;
    let (rest, day) = day(rest)?;
    let (rest, _) = expect("a space after the day", char(' '))(rest)?;
    let (rest, year) = opt(terminated(
        map_res(take_while_m_n(4, 4, is_digit), str::parse::<i32>),
        char(' '),
    ))
    .parse(rest)?;
    let (rest, time) = time_of_day(rest)?;
    let (rest, _) = opt(char(':')).parse(rest)?;
    Ok((rest, (month, day, year, time)))
}

/// `TAG[PID]:` — the program name and its process id.
fn tag_and_pid(input: &str) -> PResult<'_, (&str, Option<u32>)> {
    let (rest, app) =
        take_while1(|c: char| c != '[' && c != ':' && c != ' ' && !c.is_control()).parse(input)?;
    let (rest, pid) = opt(delimited(
        char('['),
        map_res(take_while1(is_digit), str::parse::<u32>),
        char(']'),
    ))
    .parse(rest)?;
    let (rest, _) = char(':').parse(rest)?;
    Ok((rest, (app, pid)))
}

/// Parses one RFC 3164 line.
pub fn rfc3164(line: &str) -> Result<Envelope<'_>, ParseError> {
    rfc3164_inner(line).map_err(|e| to_parse_error(line, e))
}

fn rfc3164_inner(line: &str) -> Result<Envelope<'_>, nom::Err<crate::error::Expected<'_>>> {
    // Most lines take the common shape, read byte by byte; anything else,
    // and every error, goes through the grammar.
    match common_rfc3164(line) {
        Some(envelope) => Ok(envelope),
        None => grammar_rfc3164(line),
    }
}

/// The RFC 3164 grammar, every variant that gateways write.
fn grammar_rfc3164(line: &str) -> Result<Envelope<'_>, nom::Err<crate::error::Expected<'_>>> {
    let (rest, priority) = opt(priority).parse(line)?;
    let (rest, _) = opt(sequence_number).parse(rest)?;
    let (rest, (month, day, year, time)) = timestamp(rest)?;
    let (rest, _) = expect("a space after the time", take_while1(|c| c == ' '))(rest)?;

    let line_time = match year.and_then(|y| chrono::NaiveDate::from_ymd_opt(y, month, day)) {
        Some(date) => LineTime::Local {
            at: date.and_time(time),
        },
        None => LineTime::YearLess { month, day, time },
    };

    // A host name is short: a plain loop finds its end sooner than a
    // vectorised search would start.
    let word_end = rest.bytes().position(|b| b == b' ').unwrap_or(rest.len());
    let first_word = &rest[..word_end];

    // An ASA message carries no tag, and its host, if any, may end with a
    // colon that would otherwise make it the tag.
    if let Some((host, message)) = asa_host_and_message(first_word, rest) {
        return Ok(envelope(priority, line_time, host, None, None, message));
    }

    // The first word is the host, unless it already is the tag: some
    // daemons leave the host out and write `TAG[PID]:` right after the time.
    let (rest, host) = if first_word.ends_with(':') || first_word.contains('[') {
        (rest, None)
    } else {
        let (rest, host) = recognize(take_while1(|c: char| c != ' ')).parse(rest)?;
        let (rest, _) = take_while(|c| c == ' ').parse(rest)?;
        (rest, Some(host))
    };

    // An ASA with `logging device-id hostname` writes `host : %ASA-...`: no
    // tag at all.
    if let Some(after) = rest.strip_prefix(':') {
        let message = after.strip_prefix(' ').unwrap_or(after);
        return Ok(envelope(priority, line_time, host, None, None, message));
    }
    match tag_and_pid(rest) {
        Ok((after, (app, pid))) => {
            let message = after.strip_prefix(' ').unwrap_or(after);
            Ok(envelope(priority, line_time, host, Some(app), pid, message))
        }
        // No `TAG:` in front of the message: the whole rest is the message.
        Err(_) => Ok(envelope(priority, line_time, host, None, None, rest)),
    }
}

/// The shape nearly every gateway and relay writes, read without the
/// grammar's combinators:
///
/// ```text
/// [<PRI>]Mmm dd hh:mm:ss [HOST ]TAG[[PID]]: MESSAGE
/// ```
///
/// Returns `None` for anything else (a sequence number, a clock mark, a
/// year, a fraction, no tag, an ASA message, an error, text that is not
/// ASCII where the tag is): [`grammar_rfc3164`] then reads the line with
/// the full grammar, which gives the same envelope for every line this
/// function accepts.
fn common_rfc3164(line: &str) -> Option<Envelope<'_>> {
    let bytes = line.as_bytes();
    let mut at = 0;

    // `<PRI>`: one to three digits, at most 191.
    let mut priority = None;
    if bytes.first() == Some(&b'<') {
        let (value, used) = number(&bytes[1..], 3)?;
        if used == 0 || bytes.get(1 + used) != Some(&b'>') || value > 191 {
            return None;
        }
        priority = Some(value as u8);
        at = used + 2;
    }

    // `Mmm`: an English month abbreviation.
    let name = bytes.get(at..at + 3)?;
    let month = MONTHS.iter().position(|m| m.as_bytes() == name)? as u32 + 1;
    at += 3;

    // ` dd `, the day space-padded or not.
    if bytes.get(at) != Some(&b' ') {
        return None;
    }
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }
    let (day, used) = number(&bytes[at..], 2)?;
    if !(1..=31).contains(&day) || bytes.get(at + used) != Some(&b' ') {
        return None;
    }
    at += used + 1;

    // `hh:mm:ss`, then spaces; a year, a fraction or a colon goes to the
    // grammar.
    let clock = bytes.get(at..at + 9)?;
    if clock[2] != b':' || clock[5] != b':' || clock[8] != b' ' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        let (d1, d2) = (clock[i], clock[i + 1]);
        (d1.is_ascii_digit() && d2.is_ascii_digit())
            .then(|| u32::from(d1 - b'0') * 10 + u32::from(d2 - b'0'))
    };
    let time = NaiveTime::from_hms_opt(two(0)?, two(3)?, two(6)?)?;
    at += 9;
    while bytes.get(at) == Some(&b' ') {
        at += 1;
    }

    // A `%` after the time or the host may start an ASA message, which has
    // no tag: the grammar reads those lines (one byte compared here, rather
    // than a call on every line).
    let rest = &line[at..];
    if rest.as_bytes().first() == Some(&b'%') {
        return None;
    }

    // The host, unless the first word already is the tag.
    // A host name is short: a plain loop finds its end sooner than a
    // vectorised search would start.
    let word_end = rest.bytes().position(|b| b == b' ').unwrap_or(rest.len());
    let first_word = &rest[..word_end];
    let (host, rest) = if first_word.is_empty() {
        return None;
    } else if first_word.ends_with(':') || first_word.contains('[') {
        // `asa1: %ASA-...`: this word may be an ASA's host, not a tag.
        if rest[word_end..].bytes().find(|&b| b != b' ') == Some(b'%') {
            return None;
        }
        (None, rest)
    } else {
        let rest = rest[word_end..].trim_start_matches(' ');
        if rest.as_bytes().first() == Some(&b'%') {
            return None;
        }
        (Some(first_word), rest)
    };

    // `TAG[[PID]]:`, in ASCII.
    let tag = rest.as_bytes();
    let app_end = tag
        .iter()
        .position(|&b| matches!(b, b'[' | b':' | b' ') || b.is_ascii_control() || !b.is_ascii())?;
    if app_end == 0 || !matches!(tag[app_end], b'[' | b':') {
        return None;
    }
    let mut after = app_end;
    let mut pid = None;
    if tag[after] == b'[' {
        let digits = tag[after + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || tag.get(after + 1 + digits) != Some(&b']') {
            return None;
        }
        pid = Some(rest[after + 1..after + 1 + digits].parse::<u32>().ok()?);
        after += digits + 2;
    }
    if tag.get(after) != Some(&b':') {
        return None;
    }
    let message = &rest[after + 1..];
    let message = message.strip_prefix(' ').unwrap_or(message);
    Some(envelope(
        priority,
        LineTime::YearLess { month, day, time },
        host,
        Some(&rest[..app_end]),
        pid,
        message,
    ))
}

/// The host and the message of an ASA (or FTD) line, read from what
/// follows the time (`rest`, whose first word is `first_word`), in the
/// shapes with no tag:
///
/// ```text
/// %ASA-4-113019: ...          no device id: no host (the time may end in `:`)
/// asa1 %ASA-4-113019: ...     a relay that added the host
/// asa1: %ASA-4-113019: ...    the host as the ASA or a relay wrote it
/// ```
///
/// The word before the `%ASA-` mark is the device's name, never a program's:
/// the ASA writes none. `None` for any other line, and for `asa1 : %ASA-`,
/// which the general grammar reads as host and empty tag.
fn asa_host_and_message<'a>(
    first_word: &'a str,
    rest: &'a str,
) -> Option<(Option<&'a str>, &'a str)> {
    if is_asa(rest) {
        return Some((None, rest));
    }
    let message = rest[first_word.len()..].trim_start_matches(' ');
    if !is_asa(message) {
        return None;
    }
    let host = first_word.strip_suffix(':').unwrap_or(first_word);
    // `TAG[PID]: %ASA-...` is a program's line quoting an ASA message.
    (!host.is_empty() && !host.contains('[')).then_some((Some(host), message))
}

/// Up to `max` leading ASCII digits of `bytes` as a number, and how many
/// there were (`None` when there is none).
fn number(bytes: &[u8], max: usize) -> Option<(u32, usize)> {
    let used = bytes
        .iter()
        .take(max)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if used == 0 {
        return None;
    }
    let value = bytes[..used]
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    Some((value, used))
}

fn envelope<'a>(
    priority: Option<u8>,
    time: LineTime,
    host: Option<&'a str>,
    app: Option<&'a str>,
    pid: Option<u32>,
    message: &'a str,
) -> Envelope<'a> {
    Envelope {
        format: Format::Rfc3164,
        priority,
        time,
        host,
        app,
        pid,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32, s: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, s).unwrap()
    }

    #[test]
    fn openvpn_line_with_host_tag_and_pid() {
        let e = rfc3164(
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 VERIFY OK: depth=1",
        )
        .unwrap();
        assert_eq!(e.priority, None);
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 12,
                time: t(9, 14, 3)
            }
        );
        assert_eq!(e.host, Some("vpn-lyon"));
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(1873));
        assert_eq!(e.message, "198.51.100.23:51734 VERIFY OK: depth=1");
    }

    #[test]
    fn priority_and_space_padded_day() {
        let e = rfc3164("<30>Mar  2 01:02:03 gw charon: 09[IKE] x").unwrap();
        assert_eq!(e.priority, Some(30));
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 2,
                time: t(1, 2, 3)
            }
        );
        assert_eq!(e.app, Some("charon"));
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "09[IKE] x");
    }

    #[test]
    fn unpadded_day() {
        let e = rfc3164("Mar 2 01:02:03 gw kernel: [1.0] X").unwrap();
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 2,
                time: t(1, 2, 3)
            }
        );
        assert_eq!(e.message, "[1.0] X");
    }

    #[test]
    fn no_hostname_tag_right_after_time() {
        let e = rfc3164("Mar 12 09:14:02 openvpn[1873]: hello").unwrap();
        assert_eq!(e.host, None);
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(1873));
        assert_eq!(e.message, "hello");
    }

    #[test]
    fn asa_line_with_year_and_no_tag() {
        let e = rfc3164("<166>Mar 21 2024 08:55:02 asa-paris : %ASA-6-113039: Group <G>").unwrap();
        let at = chrono::NaiveDate::from_ymd_opt(2024, 3, 21)
            .unwrap()
            .and_time(t(8, 55, 2));
        assert_eq!(e.time, LineTime::Local { at });
        assert_eq!(e.host, Some("asa-paris"));
        assert_eq!(e.app, None);
        assert_eq!(e.message, "%ASA-6-113039: Group <G>");
    }

    /// The corpus's 113019 message, as every ASA header shape below carries it.
    const ASA_END: &str = "%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested";

    fn asa_line(header: &str) -> String {
        format!("{header}{ASA_END}")
    }

    fn mar_21_2024(h: u32, m: u32, s: u32) -> LineTime {
        let at = chrono::NaiveDate::from_ymd_opt(2024, 3, 21)
            .unwrap()
            .and_time(t(h, m, s));
        LineTime::Local { at }
    }

    #[test]
    fn asa_line_without_device_id_has_no_host_and_no_tag() {
        // The ASA's own header with no device id: the time ends in a colon.
        for header in ["<166>Mar 21 2024 09:37:14: ", "<166>Mar 21 2024 09:37:14 "] {
            let line = asa_line(header);
            let e = rfc3164(&line).unwrap();
            assert_eq!(e.priority, Some(166), "{line}");
            assert_eq!(e.time, mar_21_2024(9, 37, 14), "{line}");
            assert_eq!(e.host, None, "{line}");
            assert_eq!(e.app, None, "{line}");
            assert_eq!(e.pid, None, "{line}");
            assert_eq!(e.message, ASA_END, "{line}");
        }
    }

    #[test]
    fn asa_mark_right_after_the_host_is_no_tag() {
        let line = asa_line("Mar 21 09:37:14 asa1 ");
        let e = rfc3164(&line).unwrap();
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 21,
                time: t(9, 37, 14)
            }
        );
        assert_eq!(e.host, Some("asa1"));
        assert_eq!(e.app, None);
        assert_eq!(e.message, ASA_END);
    }

    #[test]
    fn word_with_a_colon_before_the_asa_mark_is_the_host() {
        let line = asa_line("Mar 21 09:37:14 asa1: ");
        let e = rfc3164(&line).unwrap();
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 21,
                time: t(9, 37, 14)
            }
        );
        assert_eq!(e.host, Some("asa1"));
        assert_eq!(e.app, None);
        assert_eq!(e.message, ASA_END);

        // A program's line that quotes an ASA message keeps its program.
        let line = asa_line("Mar 21 09:37:14 relay[12]: ");
        let e = rfc3164(&line).unwrap();
        assert_eq!(e.host, None);
        assert_eq!(e.app, Some("relay"));
        assert_eq!(e.pid, Some(12));
        assert_eq!(e.message, ASA_END);
    }

    #[test]
    fn asa_device_id_with_year_and_spaced_colon() {
        let line = asa_line("Mar 21 2024 09:37:14 asa1 : ");
        let e = rfc3164(&line).unwrap();
        assert_eq!(e.priority, None);
        assert_eq!(e.time, mar_21_2024(9, 37, 14));
        assert_eq!(e.host, Some("asa1"));
        assert_eq!(e.app, None);
        assert_eq!(e.message, ASA_END);
    }

    #[test]
    fn cisco_sequence_number_and_clock_mark() {
        let e = rfc3164("<189>000123: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: x").unwrap();
        assert_eq!(e.priority, Some(189));
        let time = NaiveTime::from_hms_milli_opt(0, 1, 2, 345).unwrap();
        assert_eq!(
            e.time,
            LineTime::YearLess {
                month: 3,
                day: 1,
                time
            }
        );
        assert_eq!(e.host, None);
        assert_eq!(e.app, Some("%SYS-5-CONFIG_I"));
        assert_eq!(e.message, "x");
    }

    #[test]
    fn message_starting_with_bracket() {
        let e =
            rfc3164("Mar 12 09:15:10 vpn-lyon kernel: [812345.118204] VPN-FWD IN=tun0").unwrap();
        assert_eq!(e.app, Some("kernel"));
        assert_eq!(e.message, "[812345.118204] VPN-FWD IN=tun0");
    }

    #[test]
    fn bad_month_names_the_place() {
        let err = rfc3164("Foo 12 09:15:10 vpn-lyon kernel: x").unwrap_err();
        assert_eq!(err.expected, "a month name (Jan..Dec)");
        assert_eq!(err.column, 1);
        let err = rfc3164("Mar 12 09:1x:10 vpn-lyon kernel: x").unwrap_err();
        assert_eq!(err.expected, "a time hh:mm:ss");
        assert_eq!(err.column, 8);
        assert_eq!(
            err.to_string(),
            "expected a time hh:mm:ss at column 8, found \"09:1x:10 vpn-lyon kernel\""
        );
    }

    #[test]
    fn priority_over_191_is_rejected() {
        let err = rfc3164("<999>Mar 12 09:15:10 h t: x").unwrap_err();
        assert_eq!(err.expected, "a month name (Jan..Dec)");
        assert_eq!(err.column, 1);
    }

    proptest::proptest! {
        /// The byte-by-byte reading of common lines is a shortcut, never
        /// another reading: whatever it accepts, the grammar reads alike.
        #[test]
        fn common_shape_reads_as_the_grammar_does(
            at in 0usize..80,
            junk in r#"[ \[\]:<>*.,0-9a-zA-Z\t\u{e9}-]{0,4}"#,
        ) {
            for line in [
                "<166>Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 VERIFY OK",
                "May  6 08:00:01 vpn-tours-02 kernel: [812345.118204] VPN-FWD IN=tun0",
                "Dec 31 23:59:59 charon[12]: 05[IKE] message",
                "Jan  1 00:00:00 host : %ASA-6-113039: Group",
                "Jan  1 00:00:00 asa1 %ASA-6-113039: Group",
                "Jan  1 00:00:00 asa1: %ASA-6-113039: Group",
                "Jan  1 00:00:00 %FTD-6-113039: Group",
            ] {
                let mut at = at.min(line.len());
                while !line.is_char_boundary(at) {
                    at -= 1;
                }
                let line = format!("{}{junk}{}", &line[..at], &line[at..]);
                if let Some(fast) = common_rfc3164(&line) {
                    proptest::prop_assert_eq!(Ok(fast), grammar_rfc3164(&line), "{:?}", line);
                }
            }
        }
    }
}
