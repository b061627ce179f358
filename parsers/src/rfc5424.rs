//! RFC 5424 syslog envelopes, as pfSense 2.6+, OPNsense and rsyslog's
//! `RSYSLOG_SyslogProtocol23Format` write them (RFC 5424 section 6):
//!
//! ```text
//! <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA [SP MSG]
//! <29>1 2024-07-09T16:20:10.882011+02:00 fw-chambery.example.net openvpn 44120 - - 198.51.100.23:50123 peer info: IV_PLAT=win
//! ```
//!
//! Unlike RFC 3164, the line carries its full date and its offset, so its
//! time needs nothing from the caller. MSGID and STRUCTURED-DATA are checked
//! and passed over: no vendor parser reads them, and [`Envelope`] has no
//! place for them.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};
use nom::{
    branch::alt,
    bytes::complete::{take_while1, take_while_m_n},
    character::complete::{char, one_of, satisfy},
    combinator::{cut, map, map_opt, map_res, opt, recognize, value, verify},
    multi::{many0_count, many1_count},
    sequence::preceded,
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult, ParseError};
use crate::syslog::{priority, Envelope};
use crate::time::LineTime;
use crate::Format;

/// Whether `line`, after its optional `<PRI>`, starts like an RFC 5424
/// header: a version, a space, then a timestamp's first digit or the `-`
/// of a missing one. RFC 3164 lines start with a month name instead.
pub fn is_rfc5424(line: &str) -> bool {
    (
        version,
        char(' '),
        satisfy(|c| c.is_ascii_digit() || c == '-'),
    )
        .parse(line)
        .is_ok()
}

/// Parses one RFC 5424 line, `<PRI>` included.
///
/// The RFC requires `<PRI>`; a line without it (a file template that leaves
/// it out) is read all the same, with no priority.
pub fn rfc5424(line: &str) -> Result<Envelope<'_>, ParseError> {
    rfc5424_inner(line).map_err(|e| to_parse_error(line, e))
}

fn rfc5424_inner(line: &str) -> Result<Envelope<'_>, nom::Err<Expected<'_>>> {
    // Most lines take the common shape, read byte by byte; anything else,
    // and every error, goes through the grammar.
    match common_rfc5424(line) {
        Some(envelope) => Ok(envelope),
        None => grammar_rfc5424(line),
    }
}

/// The RFC 5424 grammar, section 6 in full.
fn grammar_rfc5424(line: &str) -> Result<Envelope<'_>, nom::Err<Expected<'_>>> {
    // A `<` can only open a priority: when it is there it must be valid.
    let (rest, priority) = if line.starts_with('<') {
        map(priority, Some).parse(line)?
    } else {
        (line, None)
    };

    let (rest, _) = version(rest)?;
    let (rest, _) = space("a space after the version")(rest)?;
    let (rest, time) = timestamp(rest)?;
    let (rest, _) = space("a space after the timestamp")(rest)?;
    let (rest, host) = hostname(rest)?;
    let (rest, _) = space("a space after the HOSTNAME")(rest)?;
    let (rest, app) = app_name(rest)?;
    let (rest, _) = space("a space after the APP-NAME")(rest)?;
    let (rest, procid) = procid(rest)?;
    let (rest, _) = space("a space after the PROCID")(rest)?;
    let (rest, _) = msgid(rest)?;
    let (rest, _) = space("a space after the MSGID")(rest)?;
    let (rest, _) = structured_data(rest)?;
    let message = msg(rest)?;

    // PROCID is any printable word; only a number is a process id.
    let pid = procid.and_then(|p| p.parse::<u32>().ok());
    Ok(Envelope {
        format: Format::Rfc5424,
        priority,
        time,
        host,
        app,
        pid,
        message,
    })
}

/// The shape senders write, read without the grammar's combinators:
///
/// ```text
/// [<PRI>]V YYYY-MM-DDThh:mm:ss[.frac](Z|+hh:mm) HOST APP PROCID MSGID - [MSG]
/// ```
///
/// Returns `None` for anything else (a version above 9, a missing
/// timestamp, structured data, an error): [`grammar_rfc5424`] then reads the
/// line with the full grammar, which gives the same envelope for every
/// line this function accepts.
fn common_rfc5424(line: &str) -> Option<Envelope<'_>> {
    let bytes = line.as_bytes();
    let mut at = 0;

    // `<PRI>`: one to three digits, at most 191.
    let mut priority = None;
    if bytes.first() == Some(&b'<') {
        let end = bytes.iter().take(5).position(|&b| b == b'>')?;
        let value = ascii_number(bytes.get(1..end)?)?;
        if !(1..=3).contains(&(end - 1)) || value > 191 {
            return None;
        }
        priority = Some(value as u8);
        at = end + 1;
    }

    // `VERSION SP`: one nonzero digit.
    if !matches!(bytes.get(at..at + 2)?, [b'1'..=b'9', b' ']) {
        return None;
    }
    at += 2;

    // `YYYY-MM-DDThh:mm:ss`, a fraction, an offset.
    let stamp = bytes.get(at..at + 19)?;
    if stamp[4] != b'-'
        || stamp[7] != b'-'
        || stamp[10] != b'T'
        || stamp[13] != b':'
        || stamp[16] != b':'
    {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(
        ascii_number(&stamp[0..4])? as i32,
        ascii_number(&stamp[5..7])?,
        ascii_number(&stamp[8..10])?,
    )?;
    at += 19;
    let mut nanos = 0;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=9).contains(&digits) {
            return None;
        }
        nanos = ascii_number(&bytes[at + 1..at + 1 + digits])? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let time = NaiveTime::from_hms_nano_opt(
        ascii_number(&stamp[11..13])?,
        ascii_number(&stamp[14..16])?,
        ascii_number(&stamp[17..19])?,
        nanos,
    )?;
    let offset = match *bytes.get(at)? {
        b'Z' => {
            at += 1;
            FixedOffset::east_opt(0)?
        }
        sign @ (b'+' | b'-') => {
            let zone = bytes.get(at + 1..at + 6)?;
            if zone[2] != b':' {
                return None;
            }
            let (hours, minutes) = (ascii_number(&zone[..2])?, ascii_number(&zone[3..])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            at += 6;
            FixedOffset::east_opt(if sign == b'-' { -seconds } else { seconds })?
        }
        _ => return None,
    };
    // The same instant `offset.from_local_datetime` gives, without its
    // detour through a `LocalResult`.
    let utc = date.and_time(time).checked_sub_offset(offset)?;
    let at_time = DateTime::from_naive_utc_and_offset(utc, offset);
    if bytes.get(at) != Some(&b' ') {
        return None;
    }
    at += 1;

    // HOSTNAME, APP-NAME, PROCID and MSGID, each followed by a space.
    let mut fields = [None; 4];
    for (field, max) in fields.iter_mut().zip([255, 48, 128, 32]) {
        let len = bytes[at..]
            .iter()
            .take_while(|b| (b'!'..=b'~').contains(b))
            .count();
        if len == 0 || len > max || bytes.get(at + len) != Some(&b' ') {
            return None;
        }
        let text = &line[at..at + len];
        *field = (text != "-").then_some(text);
        at += len + 1;
    }
    let [host, app, procid, _] = fields;

    // No structured data, then the message.
    if bytes.get(at) != Some(&b'-') {
        return None;
    }
    at += 1;
    let message = match bytes.get(at) {
        None => "",
        Some(b' ') => {
            let message = &line[at + 1..];
            message.strip_prefix('\u{FEFF}').unwrap_or(message)
        }
        Some(_) => return None,
    };

    Some(Envelope {
        format: Format::Rfc5424,
        priority,
        time: LineTime::Absolute { at: at_time },
        host,
        app,
        pid: procid.and_then(|p| p.parse::<u32>().ok()),
        message,
    })
}

/// ASCII digits as a number; `None` if any byte is not a digit.
fn ascii_number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
    })
}

/// `SP`: the single space between two header fields.
fn space<'a>(what: &'static str) -> impl FnMut(&'a str) -> PResult<'a, char> {
    expect(what, char(' '))
}

/// `VERSION = NONZERO-DIGIT 0*2DIGIT`: `1` for every sender so far. Other
/// versions are read with the same grammar, as none is defined.
fn version(input: &str) -> PResult<'_, u16> {
    expect(
        "a syslog version (1 to 999)",
        map_res(
            recognize((
                satisfy(|c| matches!(c, '1'..='9')),
                take_while_m_n(0, 2, |c: char| c.is_ascii_digit()),
            )),
            str::parse::<u16>,
        ),
    )(input)
}

/// `NILVALUE = "-"`: a header field or the structured data left out.
fn nil(input: &str) -> PResult<'_, char> {
    char('-').parse(input)
}

/// `TIMESTAMP = NILVALUE / FULL-DATE "T" FULL-TIME`, e.g.
/// `2024-07-09T16:20:10.882011+02:00`, `2003-10-11T22:14:15.003Z` or `-`.
fn timestamp(input: &str) -> PResult<'_, LineTime> {
    expect(
        "a timestamp (RFC 3339 or -)",
        alt((
            value(LineTime::Missing, nil),
            map_opt(
                (full_date, char('T'), full_time),
                |(date, _, (time, offset))| {
                    offset
                        .from_local_datetime(&date.and_time(time))
                        .single()
                        .map(|at| LineTime::Absolute { at })
                },
            ),
        )),
    )(input)
}

/// `n` decimal digits, as a number.
fn digits<'a>(n: usize) -> impl Parser<&'a str, Output = u32, Error = Expected<'a>> {
    map_res(
        take_while_m_n(n, n, |c: char| c.is_ascii_digit()),
        str::parse::<u32>,
    )
}

/// `FULL-DATE = DATE-FULLYEAR "-" DATE-MONTH "-" DATE-MDAY`: `2024-07-09`,
/// a date that exists.
fn full_date(input: &str) -> PResult<'_, NaiveDate> {
    map_opt(
        (digits(4), char('-'), digits(2), char('-'), digits(2)),
        |(year, _, month, _, day)| NaiveDate::from_ymd_opt(year as i32, month, day),
    )
    .parse(input)
}

/// `FULL-TIME = PARTIAL-TIME TIME-OFFSET`: `16:20:10.882011+02:00`.
fn full_time(input: &str) -> PResult<'_, (NaiveTime, FixedOffset)> {
    (partial_time, time_offset).parse(input)
}

/// `PARTIAL-TIME = TIME-HOUR ":" TIME-MINUTE ":" TIME-SECOND [TIME-SECFRAC]`:
/// `16:20:10.882011`. RFC 5424 forbids leap seconds, so `:60` is refused.
fn partial_time(input: &str) -> PResult<'_, NaiveTime> {
    map_opt(
        (
            digits(2),
            char(':'),
            digits(2),
            char(':'),
            digits(2),
            opt(time_secfrac),
        ),
        |(hour, _, minute, _, second, nanos)| {
            NaiveTime::from_hms_nano_opt(hour, minute, second, nanos.unwrap_or(0))
        },
    )
    .parse(input)
}

/// `TIME-SECFRAC = "." 1*6DIGIT`: `.882011`, kept exactly, as nanoseconds.
///
/// Senders that format with nanoseconds (Go's `RFC3339Nano`) write up to
/// nine digits, beyond the RFC's six: they are read too, nothing is lost.
fn time_secfrac(input: &str) -> PResult<'_, u32> {
    map_res(
        preceded(
            char('.'),
            take_while_m_n(1, 9, |c: char| c.is_ascii_digit()),
        ),
        |fraction: &str| {
            // Scale to nanoseconds: `.003` is 3 ms, `.000003` is 3 µs.
            fraction
                .parse::<u32>()
                .map(|n| n * 10u32.pow(9 - fraction.len() as u32))
        },
    )
    .parse(input)
}

/// `TIME-OFFSET = "Z" / ("+" / "-") TIME-HOUR ":" TIME-MINUTE`: `Z`,
/// `+02:00`, `-07:00`.
fn time_offset(input: &str) -> PResult<'_, FixedOffset> {
    alt((
        map_opt(char('Z'), |_| FixedOffset::east_opt(0)),
        map_opt(
            (one_of("+-"), digits(2), char(':'), digits(2)),
            |(sign, hours, _, minutes)| {
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let seconds = (hours * 3600 + minutes * 60) as i32;
                FixedOffset::east_opt(if sign == '-' { -seconds } else { seconds })
            },
        ),
    ))
    .parse(input)
}

/// `PRINTUSASCII = %d33-126`: a visible ASCII character.
fn is_printusascii(c: char) -> bool {
    matches!(c, '!'..='~')
}

/// A header field of at most `max` visible ASCII characters, or `-` for
/// none.
fn header_field<'a>(
    what: &'static str,
    max: usize,
) -> impl FnMut(&'a str) -> PResult<'a, Option<&'a str>> {
    expect(
        what,
        map(
            verify(take_while1(is_printusascii), move |s: &str| s.len() <= max),
            |s: &str| (s != "-").then_some(s),
        ),
    )
}

/// `HOSTNAME = NILVALUE / 1*255PRINTUSASCII`: `fw-chambery.example.net`,
/// `192.0.2.1` or `-`.
fn hostname(input: &str) -> PResult<'_, Option<&str>> {
    header_field("a HOSTNAME (1 to 255 printable characters or -)", 255)(input)
}

/// `APP-NAME = NILVALUE / 1*48PRINTUSASCII`: `openvpn`, `filterlog` or `-`.
fn app_name(input: &str) -> PResult<'_, Option<&str>> {
    header_field("an APP-NAME (1 to 48 printable characters or -)", 48)(input)
}

/// `PROCID = NILVALUE / 1*128PRINTUSASCII`: `44120` or `-`.
fn procid(input: &str) -> PResult<'_, Option<&str>> {
    header_field("a PROCID (1 to 128 printable characters or -)", 128)(input)
}

/// `MSGID = NILVALUE / 1*32PRINTUSASCII`: `ID47` or `-`.
fn msgid(input: &str) -> PResult<'_, Option<&str>> {
    header_field("a MSGID (1 to 32 printable characters or -)", 32)(input)
}

/// `STRUCTURED-DATA = NILVALUE / 1*SD-ELEMENT`: `-`, or elements written
/// one after the other, `[origin ip="192.0.2.1"][meta sequenceId="7"]`.
/// Returns them as written.
fn structured_data(input: &str) -> PResult<'_, &str> {
    expect(
        "STRUCTURED-DATA (- or [id name=\"value\"...])",
        alt((recognize(nil), recognize(many1_count(sd_element)))),
    )(input)
}

/// `SD-ELEMENT = "[" SD-ID *(SP SD-PARAM) "]"`:
/// `[exampleSDID@32473 iut="3" eventSource="Application"]`.
fn sd_element(input: &str) -> PResult<'_, &str> {
    // Past the `[`, the element must be whole: `cut` keeps its error from
    // being taken for the end of the structured data.
    recognize(preceded(
        char('['),
        cut((
            expect("an SD-ID", sd_name),
            many0_count(preceded(char(' '), cut(sd_param))),
            expect("a space and SD-PARAM, or ] closing the element", char(']')),
        )),
    ))
    .parse(input)
}

/// `SD-PARAM = PARAM-NAME "=" %d34 PARAM-VALUE %d34`: `iut="3"`.
fn sd_param(input: &str) -> PResult<'_, (&str, &str)> {
    let (rest, name) = expect("a PARAM-NAME", sd_name)(input)?;
    let (rest, _) = expect("= after the PARAM-NAME", char('='))(rest)?;
    let (rest, _) = expect("a \" opening the PARAM-VALUE", char('"'))(rest)?;
    let (rest, value) = param_value(rest)?;
    let (rest, _) = expect("a \" closing the PARAM-VALUE", char('"'))(rest)?;
    Ok((rest, (name, value)))
}

/// `SD-NAME = 1*32PRINTUSASCII` except `=`, SP, `]` and `"`: `iut`,
/// `exampleSDID@32473`.
fn sd_name(input: &str) -> PResult<'_, &str> {
    take_while_m_n(1, 32, |c: char| {
        is_printusascii(c) && !matches!(c, '=' | ' ' | ']' | '"')
    })
    .parse(input)
}

/// `PARAM-VALUE = UTF-8-STRING` with `"`, `\` and `]` escaped by a
/// backslash: `a \"quoted\" word`. Returns the value as written, escapes
/// left in place (nothing here reads the values).
///
/// A backslash always takes the next character with it, so `\"` does not
/// end the value; an unescaped `]`, which some senders write, is just a
/// character of the value.
fn param_value(input: &str) -> PResult<'_, &str> {
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((&input[i..], &input[..i])),
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    // No closing quote: the caller reports it where the line ends.
    Ok(("", input))
}

/// `[SP MSG]`: the message, without the UTF-8 BOM that marks `MSG-UTF8`;
/// `""` when the line ends after the structured data.
fn msg(input: &str) -> Result<&str, nom::Err<Expected<'_>>> {
    if input.is_empty() {
        return Ok("");
    }
    let (message, _) = space("a space before the message")(input)?;
    Ok(message.strip_prefix('\u{FEFF}').unwrap_or(message))
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Timelike};
    use proptest::prelude::*;

    use super::*;

    fn absolute(rfc3339: &str) -> LineTime {
        LineTime::Absolute {
            at: DateTime::parse_from_rfc3339(rfc3339).unwrap(),
        }
    }

    #[test]
    fn detects_a_version_then_a_timestamp() {
        assert!(is_rfc5424(
            "1 2024-07-09T16:20:10.882011+02:00 fw openvpn 1 - -"
        ));
        assert!(is_rfc5424("1 - - - - - -"));
        assert!(is_rfc5424("12 2024-07-09T16:20:10Z h a - - -"));
        assert!(!is_rfc5424("Mar 12 09:14:03 vpn-lyon openvpn[1873]: x"));
        assert!(!is_rfc5424(
            "000123: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: x"
        ));
        assert!(!is_rfc5424("0 2024-07-09T16:20:10Z h a - - -"));
        assert!(!is_rfc5424("1 host"));
        assert!(!is_rfc5424("1"));
        assert!(!is_rfc5424(""));
    }

    #[test]
    fn pfsense_openvpn_peer_info() {
        let e = rfc5424(
            "<29>1 2024-07-09T16:20:10.882011+02:00 fw-chambery.example.net openvpn 44120 - - \
             198.51.100.23:50123 peer info: IV_PLAT=win",
        )
        .unwrap();
        assert_eq!(e.format, Format::Rfc5424);
        assert_eq!(e.priority, Some(29));
        assert_eq!(e.time, absolute("2024-07-09T16:20:10.882011+02:00"));
        assert_eq!(e.host, Some("fw-chambery.example.net"));
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(44120));
        assert_eq!(e.message, "198.51.100.23:50123 peer info: IV_PLAT=win");
    }

    #[test]
    fn fraction_is_kept_to_the_microsecond() {
        let e = rfc5424("<29>1 2024-07-09T16:20:10.882011+02:00 fw openvpn 44120 - - x").unwrap();
        let LineTime::Absolute { at } = e.time else {
            panic!("not absolute: {:?}", e.time);
        };
        assert_eq!(at.nanosecond(), 882_011_000);
        assert_eq!(at.offset().local_minus_utc(), 7200);
    }

    #[test]
    fn pfsense_auth_helper_line() {
        let e = rfc5424(
            "<37>1 2024-07-09T16:20:11.004512+02:00 fw-chambery.example.net openvpn 51877 - - \
             user 'j.martin' authenticated",
        )
        .unwrap();
        assert_eq!(e.priority, Some(37));
        assert_eq!(e.time, absolute("2024-07-09T16:20:11.004512+02:00"));
        assert_eq!(e.host, Some("fw-chambery.example.net"));
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(51877));
        assert_eq!(e.message, "user 'j.martin' authenticated");
    }

    #[test]
    fn pfsense_openvpn_peer_connection_initiated() {
        let e = rfc5424(
            "<29>1 2024-07-09T16:20:11.015733+02:00 fw-chambery.example.net openvpn 44120 - - \
             198.51.100.23:50123 [j.martin] Peer Connection Initiated with \
             [AF_INET]198.51.100.23:50123",
        )
        .unwrap();
        assert_eq!(e.priority, Some(29));
        assert_eq!(e.time, absolute("2024-07-09T16:20:11.015733+02:00"));
        assert_eq!(e.host, Some("fw-chambery.example.net"));
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(44120));
        // The message's `[...]` is not structured data: SD was `-`.
        assert_eq!(
            e.message,
            "198.51.100.23:50123 [j.martin] Peer Connection Initiated with \
             [AF_INET]198.51.100.23:50123"
        );
    }

    #[test]
    fn pfsense_openvpn_pool_address() {
        let e = rfc5424(
            "<29>1 2024-07-09T16:20:11.016102+02:00 fw-chambery.example.net openvpn 44120 - - \
             j.martin/198.51.100.23:50123 MULTI_sva: pool returned IPv4=10.0.8.2, \
             IPv6=(Not enabled)",
        )
        .unwrap();
        assert_eq!(e.time, absolute("2024-07-09T16:20:11.016102+02:00"));
        assert_eq!(e.pid, Some(44120));
        assert_eq!(
            e.message,
            "j.martin/198.51.100.23:50123 MULTI_sva: pool returned IPv4=10.0.8.2, \
             IPv6=(Not enabled)"
        );
    }

    #[test]
    fn pfsense_filterlog_lines() {
        let lines = [
            (
                "<134>1 2024-07-09T16:21:02.118877+02:00 fw-chambery.example.net filterlog 70112 - - 5,,,1000000103,igb0,match,block,in,4,0x0,,244,54321,0,none,6,tcp,40,203.0.113.250,192.0.2.30,41322,3389,0,S,2113244101,,1024,,",
                "2024-07-09T16:21:02.118877+02:00",
                "5,,,1000000103,igb0,match,block,in,4,0x0,,244,54321,0,none,6,tcp,40,203.0.113.250,192.0.2.30,41322,3389,0,S,2113244101,,1024,,",
            ),
            (
                "<134>1 2024-07-09T16:22:05.338201+02:00 fw-chambery.example.net filterlog 70112 - - 95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,443,0,S,1294811201,,64240,,mss;nop;wscale;nop;nop;sackOK",
                "2024-07-09T16:22:05.338201+02:00",
                "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,443,0,S,1294811201,,64240,,mss;nop;wscale;nop;nop;sackOK",
            ),
            (
                "<134>1 2024-07-09T16:25:40.902114+02:00 fw-chambery.example.net filterlog 70112 - - 95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29502,0,DF,6,tcp,52,10.0.8.2,192.168.1.31,50251,554,0,S,3981200112,,64240,,mss;nop;wscale;nop;nop;sackOK",
                "2024-07-09T16:25:40.902114+02:00",
                "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29502,0,DF,6,tcp,52,10.0.8.2,192.168.1.31,50251,554,0,S,3981200112,,64240,,mss;nop;wscale;nop;nop;sackOK",
            ),
            (
                "<134>1 2024-07-09T16:31:18.440021+02:00 fw-chambery.example.net filterlog 70112 - - 95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29720,0,none,17,udp,76,10.0.8.2,192.168.1.45,50313,161,56",
                "2024-07-09T16:31:18.440021+02:00",
                "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29720,0,none,17,udp,76,10.0.8.2,192.168.1.45,50313,161,56",
            ),
            (
                "<134>1 2024-07-09T16:40:03.000412+02:00 fw-chambery.example.net filterlog 70112 - - 96,,,1700000002,ovpns1,match,block,in,4,0x0,,127,29901,0,DF,6,tcp,52,10.0.8.2,192.168.2.10,50402,445,0,S,1200331888,,64240,,mss;nop;wscale;nop;nop;sackOK",
                "2024-07-09T16:40:03.000412+02:00",
                "96,,,1700000002,ovpns1,match,block,in,4,0x0,,127,29901,0,DF,6,tcp,52,10.0.8.2,192.168.2.10,50402,445,0,S,1200331888,,64240,,mss;nop;wscale;nop;nop;sackOK",
            ),
        ];
        for (line, time, message) in lines {
            let e = rfc5424(line).unwrap();
            assert_eq!(e.priority, Some(134), "{line}");
            assert_eq!(e.time, absolute(time), "{line}");
            assert_eq!(e.host, Some("fw-chambery.example.net"), "{line}");
            assert_eq!(e.app, Some("filterlog"), "{line}");
            assert_eq!(e.pid, Some(70112), "{line}");
            assert_eq!(e.message, message, "{line}");
        }
    }

    #[test]
    fn pfsense_openvpn_client_exiting() {
        let e = rfc5424(
            "<29>1 2024-07-09T16:58:47.512003+02:00 fw-chambery.example.net openvpn 44120 - - \
             j.martin/198.51.100.23:50123 SIGTERM[soft,remote-exit] received, \
             client-instance exiting",
        )
        .unwrap();
        assert_eq!(e.time, absolute("2024-07-09T16:58:47.512003+02:00"));
        assert_eq!(e.host, Some("fw-chambery.example.net"));
        assert_eq!(e.app, Some("openvpn"));
        assert_eq!(e.pid, Some(44120));
        assert_eq!(
            e.message,
            "j.martin/198.51.100.23:50123 SIGTERM[soft,remote-exit] received, \
             client-instance exiting"
        );
    }

    // RFC 5424 section 6.5, example 1, with a neutral host and user.
    #[test]
    fn rfc_example_utc_millis_nil_procid_and_bom() {
        let e = rfc5424(
            "<34>1 2003-10-11T22:14:15.003Z host1.example.com su - ID47 - \
             \u{FEFF}'su root' failed for operator on /dev/pts/8",
        )
        .unwrap();
        assert_eq!(e.priority, Some(34));
        assert_eq!(e.time, absolute("2003-10-11T22:14:15.003Z"));
        assert_eq!(e.host, Some("host1.example.com"));
        assert_eq!(e.app, Some("su"));
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "'su root' failed for operator on /dev/pts/8");
    }

    // Example 2: an address as host, microseconds and a negative offset.
    #[test]
    fn rfc_example_negative_offset_and_address_host() {
        let e = rfc5424(
            "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - \
             %% It's time to make the do-nuts.",
        )
        .unwrap();
        assert_eq!(e.priority, Some(165));
        assert_eq!(e.time, absolute("2003-08-24T05:14:15.000003-07:00"));
        let LineTime::Absolute { at } = e.time else {
            panic!("not absolute");
        };
        assert_eq!(at.nanosecond(), 3_000);
        assert_eq!(at.offset().local_minus_utc(), -7 * 3600);
        assert_eq!(e.host, Some("192.0.2.1"));
        assert_eq!(e.app, Some("myproc"));
        assert_eq!(e.pid, Some(8710));
        assert_eq!(e.message, "%% It's time to make the do-nuts.");
    }

    // Example 3: one SD element, then a BOM-marked message.
    #[test]
    fn rfc_example_structured_data_then_message() {
        let e = rfc5424(
            "<165>1 2003-10-11T22:14:15.003Z host1.example.com evntslog - ID47 \
             [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \
             \u{FEFF}An application event log entry...",
        )
        .unwrap();
        assert_eq!(e.app, Some("evntslog"));
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "An application event log entry...");
    }

    // Example 4: two SD elements and no message at all.
    #[test]
    fn rfc_example_two_elements_and_no_message() {
        let e = rfc5424(
            "<165>1 2003-10-11T22:14:15.003Z host1.example.com evntslog - ID47 \
             [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"]\
             [examplePriority@32473 class=\"high\"]",
        )
        .unwrap();
        assert_eq!(e.time, absolute("2003-10-11T22:14:15.003Z"));
        assert_eq!(e.host, Some("host1.example.com"));
        assert_eq!(e.message, "");
    }

    #[test]
    fn structured_data_rule_returns_the_elements_as_written() {
        assert_eq!(
            structured_data("[a x=\"1\"][b@32473 y=\"2\" z=\"\"] rest"),
            Ok((" rest", "[a x=\"1\"][b@32473 y=\"2\" z=\"\"]"))
        );
        assert_eq!(structured_data("- rest"), Ok((" rest", "-")));
        assert_eq!(structured_data("[origin]"), Ok(("", "[origin]")));
    }

    #[test]
    fn escaped_quote_backslash_and_bracket_stay_inside_the_value() {
        let sd = r#"[meta note="say \"hi\"" path="C:\\vpn\\" tag="a\]b"]"#;
        assert_eq!(structured_data(sd), Ok(("", sd)));
        assert_eq!(
            sd_param(r#"note="say \"hi\"""#),
            Ok(("", ("note", r#"say \"hi\""#)))
        );
        // `\\` escapes the backslash: the quote after it closes the value.
        assert_eq!(
            param_value(r#"C:\\vpn\\" x"#),
            Ok((r#"" x"#, r#"C:\\vpn\\"#))
        );

        let line = format!("<13>1 2024-07-09T16:20:10Z fw app 1 - {sd} after");
        let e = rfc5424(&line).unwrap();
        assert_eq!(e.message, "after");
    }

    #[test]
    fn unescaped_bracket_in_a_value_does_not_end_the_element() {
        let e =
            rfc5424(r#"<13>1 2024-07-09T16:20:10Z fw app 1 - [meta rule="[vpn]"] msg"#).unwrap();
        assert_eq!(e.message, "msg");
    }

    #[test]
    fn all_nil_header() {
        let e = rfc5424("<13>1 - - - - - -").unwrap();
        assert_eq!(e.priority, Some(13));
        assert_eq!(e.time, LineTime::Missing);
        assert_eq!(e.host, None);
        assert_eq!(e.app, None);
        assert_eq!(e.pid, None);
        assert_eq!(e.message, "");

        let e = rfc5424("<13>1 - - - - - - hello").unwrap();
        assert_eq!(e.message, "hello");
    }

    #[test]
    fn zulu_time_without_fraction() {
        let e = rfc5424("<13>1 2024-07-09T14:20:10Z fw app - - - x").unwrap();
        assert_eq!(e.time, absolute("2024-07-09T14:20:10+00:00"));
    }

    #[test]
    fn negative_half_hour_offset() {
        let e = rfc5424("<13>1 2024-07-09T10:50:10.5-03:30 fw app - - - x").unwrap();
        assert_eq!(e.time, absolute("2024-07-09T10:50:10.500-03:30"));
    }

    #[test]
    fn nanosecond_fraction_is_kept() {
        let e = rfc5424("<13>1 2024-07-09T14:20:10.123456789Z fw app - - - x").unwrap();
        let LineTime::Absolute { at } = e.time else {
            panic!("not absolute");
        };
        assert_eq!(at.nanosecond(), 123_456_789);
    }

    #[test]
    fn non_numeric_procid_is_no_pid() {
        let e = rfc5424("<13>1 2024-07-09T14:20:10Z fw app worker-3 - - x").unwrap();
        assert_eq!(e.pid, None);
        assert_eq!(e.app, Some("app"));
    }

    #[test]
    fn line_without_priority() {
        let e = rfc5424("1 2024-07-09T14:20:10Z fw app 7 - - x").unwrap();
        assert_eq!(e.priority, None);
        assert_eq!(e.pid, Some(7));
        assert_eq!(e.message, "x");
    }

    #[test]
    fn bom_only_removed_at_the_start_of_msg() {
        let e = rfc5424("<13>1 - fw app - - - a\u{FEFF}b").unwrap();
        assert_eq!(e.message, "a\u{FEFF}b");
    }

    #[test]
    fn bad_timestamp_names_the_column() {
        let err = rfc5424("<165>1 2003-10-11 22:14:15Z host app - - - x").unwrap_err();
        assert_eq!(err.expected, "a timestamp (RFC 3339 or -)");
        assert_eq!(err.column, 8);
        assert_eq!(
            err.to_string(),
            "expected a timestamp (RFC 3339 or -) at column 8, found \"2003-10-11 22:14:15Z hos\""
        );

        // A date that does not exist, an hour out of range, no offset.
        for line in [
            "<165>1 2023-02-29T22:14:15Z host app - - - x",
            "<165>1 2023-02-28T24:14:15Z host app - - - x",
            "<165>1 2023-02-28T22:14:15 host app - - - x",
            "<165>1 2023-02-28T22:14:15+24:00 host app - - - x",
            "<165>1 2023-02-28T22:14:60Z host app - - - x",
        ] {
            let err = rfc5424(line).unwrap_err();
            assert_eq!(err.expected, "a timestamp (RFC 3339 or -)", "{line}");
            assert_eq!(err.column, 8, "{line}");
        }
    }

    #[test]
    fn header_errors_name_the_field_and_column() {
        let err = rfc5424("<13>x 2024-07-09T14:20:10Z fw app - - - x").unwrap_err();
        assert_eq!(err.expected, "a syslog version (1 to 999)");
        assert_eq!(err.column, 5);

        let err = rfc5424("<999>1 - fw app - - - x").unwrap_err();
        assert_eq!(err.expected, "a priority <0> to <191>");
        assert_eq!(err.column, 1);

        let err = rfc5424("<13>1 2024-07-09T14:20:10Z  app - - - x").unwrap_err();
        assert_eq!(
            err.expected,
            "a HOSTNAME (1 to 255 printable characters or -)"
        );
        assert_eq!(err.column, 28);

        let long_app = "a".repeat(49);
        let err = rfc5424(&format!("<13>1 - fw {long_app} - - - x")).unwrap_err();
        assert_eq!(
            err.expected,
            "an APP-NAME (1 to 48 printable characters or -)"
        );
        assert_eq!(err.column, 12);

        // A header that stops after the MSGID.
        let err = rfc5424("<13>1 - fw app 12 ID47").unwrap_err();
        assert_eq!(err.expected, "a space after the MSGID");
        assert_eq!(err.column, 23);
        assert_eq!(
            err.to_string(),
            "expected a space after the MSGID at column 23, found end of line"
        );
    }

    #[test]
    fn structured_data_errors_name_the_place() {
        // Structured data left out altogether: the message is not SD.
        let err = rfc5424("<13>1 - fw app 12 - hello").unwrap_err();
        assert_eq!(
            err.expected,
            "STRUCTURED-DATA (- or [id name=\"value\"...])"
        );
        assert_eq!(err.column, 21);

        let err = rfc5424("<13>1 - fw app 12 - [meta x=1] hello").unwrap_err();
        assert_eq!(err.expected, "a \" opening the PARAM-VALUE");
        assert_eq!(err.column, 29);

        let err = rfc5424(r#"<13>1 - fw app 12 - [meta x="1 hello"#).unwrap_err();
        assert_eq!(err.expected, "a \" closing the PARAM-VALUE");
        assert_eq!(err.column, 37);

        let err = rfc5424(r#"<13>1 - fw app 12 - [meta x="1"]hello"#).unwrap_err();
        assert_eq!(err.expected, "a space before the message");
        assert_eq!(err.column, 33);
    }

    /// Inserts `junk` into `line` at byte `at` (moved back to a character
    /// boundary): a line damaged in transit.
    fn damaged(line: &str, at: usize, junk: &str) -> String {
        let mut at = at.min(line.len());
        while !line.is_char_boundary(at) {
            at -= 1;
        }
        format!("{}{junk}{}", &line[..at], &line[at..])
    }

    proptest! {
        #[test]
        fn arbitrary_lines_never_panic(line in any::<String>()) {
            let _ = is_rfc5424(&line);
            let _ = rfc5424(&line);
        }

        #[test]
        fn damaged_lines_never_panic(at in 0usize..200, junk in r#"[ \[\]="\\a-z0-9.:+-]{0,6}"#) {
            for line in [
                "<29>1 2024-07-09T16:20:10.882011+02:00 fw-chambery.example.net openvpn 44120 - - 198.51.100.23:50123 peer info",
                "<165>1 2003-10-11T22:14:15.003Z host1.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"App\\]\"][p class=\"high\"] \u{FEFF}entry",
            ] {
                let _ = rfc5424(&damaged(line, at, &junk));
            }
        }

        /// The byte-by-byte reading of common lines is a shortcut, never
        /// another reading: whatever it accepts, the grammar reads alike.
        #[test]
        fn common_shape_reads_as_the_grammar_does(at in 0usize..120, junk in r#"[ \[\]="\\a-z0-9.:+TZ-]{0,4}"#) {
            for line in [
                "<29>1 2024-07-09T16:20:10.882011+02:00 fw-chambery.example.net openvpn 44120 - - 198.51.100.23:50123 peer info",
                "<13>1 2003-10-11T22:14:15Z host app - - -",
                "1 2024-03-31T02:30:00.5-07:00 - - - ID47 - \u{FEFF}entry",
            ] {
                let line = damaged(line, at, &junk);
                if let Some(fast) = common_rfc5424(&line) {
                    prop_assert_eq!(Ok(fast), grammar_rfc5424(&line), "{:?}", line);
                }
            }
        }
    }
}
