//! Connection-tracking events as `conntrack -E -o timestamp` prints them:
//! the kernel's record of each connection the firewall let through.
//!
//! ```text
//! [1710493442.118204]     [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 [UNREPLIED] src=192.168.60.15 dst=10.20.0.2 sport=443 dport=49822
//! [1710494095.310078] [DESTROY] tcp      6 src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 packets=2210 bytes=150882 src=... [ASSURED]
//! ```
//!
//! The timestamp, followed by a tab, is when `conntrack` printed the
//! event, in UTC; without `-o timestamp` the line starts with the event
//! type, right-aligned with spaces. A line names the connection twice: as
//! its first packet went (the original direction), then as the answers
//! come back (the reply direction, which shows NAT).
//!
//! The kernel confirms an entry, and sends its `[NEW]` event, only once
//! the first packet has passed the ruleset: `[NEW]` is an access.
//! `[UPDATE]` and `[DESTROY]` lines are the same connection again and give
//! no event, so that it counts once.

use std::net::IpAddr;

use chrono::{DateTime, FixedOffset};
use nom::{
    branch::alt,
    bytes::complete::{tag, take_while, take_while1, take_while_m_n},
    character::complete::char,
    combinator::{map, map_res, opt, value},
    sequence::{delimited, terminated},
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult};
use crate::event::{Traffic, Verdict};
use crate::{Event, Extracted, LineTime, ParseError};

/// What happened to the tracked connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    /// The first packet of a connection was accepted.
    New,
    /// Its state changed (handshake done, assured, timeout renewed).
    Update,
    /// It was closed or timed out.
    Destroy,
}

/// Whether a line looks like a conntrack event: an optional
/// `[seconds.microseconds]`, blanks, then `[NEW]`, `[UPDATE]` or
/// `[DESTROY]`.
pub fn is_conntrack(line: &str) -> bool {
    let rest = match stamp_then_blanks(line) {
        Ok((rest, _)) => rest,
        Err(_) => return false,
    };
    ["[NEW] ", "[UPDATE] ", "[DESTROY] "]
        .iter()
        .any(|kind| rest.starts_with(kind))
}

/// Reads one conntrack event: its time, and for a `[NEW]` line the
/// connection as [`Traffic`].
pub fn line(line: &str) -> Result<Extracted<'_>, ParseError> {
    let (rest, header) = header(line).map_err(|e| to_parse_error(line, e))?;
    let tuple = original_tuple(line, rest)?;

    let time = header.at.map(|at| LineTime::Absolute { at });
    let event = match header.event_type {
        EventType::New => Some(Event::Traffic(Traffic {
            src: tuple.src,
            dst: tuple.dst,
            proto: header.protocol,
            src_port: tuple.src_port,
            dst_port: tuple.dst_port,
            // Tracked means accepted: a dropped first packet makes no entry.
            verdict: Verdict::Allowed,
            label: None,
        })),
        EventType::Update | EventType::Destroy => None,
    };
    Ok(Extracted {
        event,
        time,
        device: None,
    })
}

/// What comes before the connection's addresses.
struct Header<'a> {
    at: Option<DateTime<FixedOffset>>,
    event_type: EventType,
    /// The protocol's name, or its number when conntrack has no name for it.
    protocol: &'a str,
}

/// `[1710493442.118204]\t    [NEW] tcp      6 120 SYN_SENT `: everything up
/// to the original direction's `src=`.
fn header(input: &str) -> PResult<'_, Header<'_>> {
    let (rest, at) = stamp_then_blanks(input)?;
    let (rest, event_type) = terminated(event_type, blanks).parse(rest)?;
    let (rest, _) = opt(layer3).parse(rest)?;
    let (rest, protocol) = protocol(rest)?;
    let (rest, _) = opt((blanks, timeout)).parse(rest)?;
    let (rest, _) = opt((blanks, state)).parse(rest)?;
    let (rest, _) = expect("a blank before src=", blanks).parse(rest)?;
    Ok((
        rest,
        Header {
            at,
            event_type,
            protocol,
        },
    ))
}

/// The optional timestamp and the blanks that pad the event type to the
/// right.
fn stamp_then_blanks(input: &str) -> PResult<'_, Option<DateTime<FixedOffset>>> {
    // A `[` and a digit can only start a timestamp: commit to it, so that
    // a broken one is reported as such rather than as a bad event type.
    let stamped = input
        .strip_prefix('[')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    if stamped {
        let (rest, at) = timestamp(input)?;
        let (rest, _) = expect("a blank after the timestamp", blanks).parse(rest)?;
        Ok((rest, Some(at)))
    } else {
        let (rest, _) = take_while(is_blank).parse(input)?;
        Ok((rest, None))
    }
}

/// `[1710493442.118204]`: epoch seconds and microseconds, UTC.
///
/// Older conntrack-tools printed the microseconds left-aligned without
/// zeros (`[1710493442.5000  ]` is 5000 µs past the second), newer ones
/// zero-padded (`.005000`): the digits are read as a count of microseconds,
/// which is right for both.
fn timestamp(input: &str) -> PResult<'_, DateTime<FixedOffset>> {
    let seconds = map_res(take_while1(|c: char| c.is_ascii_digit()), str::parse::<i64>);
    let micros = map_res(
        take_while_m_n(1, 6, |c: char| c.is_ascii_digit()),
        str::parse::<u32>,
    );
    let (rest, (seconds, micros)) = expect(
        "a timestamp [seconds.microseconds]",
        delimited(
            char('['),
            (
                terminated(seconds, char('.')),
                terminated(micros, take_while(|c: char| c == ' ')),
            ),
            char(']'),
        ),
    )
    .parse(input)?;
    match DateTime::from_timestamp(seconds, micros * 1000) {
        Some(at) => Ok((rest, at.fixed_offset())),
        None => Err(nom::Err::Error(Expected {
            input,
            expected: "a timestamp within chrono's range",
        })),
    }
}

/// `[NEW]`, `[UPDATE]` or `[DESTROY]`.
fn event_type(input: &str) -> PResult<'_, EventType> {
    expect(
        "[NEW], [UPDATE] or [DESTROY]",
        alt((
            value(EventType::New, tag("[NEW]")),
            value(EventType::Update, tag("[UPDATE]")),
            value(EventType::Destroy, tag("[DESTROY]")),
        )),
    )
    .parse(input)
}

/// `ipv4     2 `: the network layer, printed with `-o extended`.
fn layer3(input: &str) -> PResult<'_, &str> {
    terminated(
        alt((tag("ipv4"), tag("ipv6"))),
        (blanks, take_while1(|c: char| c.is_ascii_digit()), blanks),
    )
    .parse(input)
}

/// `tcp      6`: the protocol's name and number. Protocols conntrack has
/// no name for are printed `unknown 50`; the number names them then.
fn protocol(input: &str) -> PResult<'_, &str> {
    let name = take_while1(|c: char| c.is_ascii_alphanumeric());
    let number = take_while_m_n(1, 3, |c: char| c.is_ascii_digit());
    expect(
        "a protocol name and number (tcp 6)",
        map((name, blanks, number), |(name, _, number)| {
            if name == "unknown" {
                number
            } else {
                name
            }
        }),
    )
    .parse(input)
}

/// `120`: seconds before the entry expires; `[DESTROY]` lines have none.
fn timeout(input: &str) -> PResult<'_, &str> {
    take_while1(|c: char| c.is_ascii_digit()).parse(input)
}

/// `SYN_SENT`, `ESTABLISHED`: the state of a protocol that has states.
fn state(input: &str) -> PResult<'_, &str> {
    take_while1(|c: char| c.is_ascii_uppercase() || c == '_').parse(input)
}

fn blanks(input: &str) -> PResult<'_, &str> {
    take_while1(is_blank).parse(input)
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// The connection as its first packet went.
struct Tuple {
    src: IpAddr,
    dst: IpAddr,
    src_port: Option<u16>,
    dst_port: Option<u16>,
}

/// `src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 packets=2 bytes=120`:
/// the original direction, which ends where the reply's `src=` starts.
/// ICMP has `type= code= id=` instead of ports.
fn original_tuple(line: &str, rest: &str) -> Result<Tuple, ParseError> {
    let mut tokens = rest.split([' ', '\t']).filter(|t| !t.is_empty());
    let src = match tokens.next().and_then(|t| t.strip_prefix("src=")) {
        Some(value) => address(line, value, "src=, an IP address")?,
        None => return Err(ParseError::at(line, rest, "src=, an IP address")),
    };

    let mut dst = None;
    let mut src_port = None;
    let mut dst_port = None;
    let mut reply = None;
    for token in tokens {
        let Some((key, value)) = token.split_once('=') else {
            // Flags such as `[UNREPLIED]` sit between the two directions.
            continue;
        };
        match key {
            "src" => {
                reply = Some(token);
                break;
            }
            "dst" if dst.is_none() => dst = Some(address(line, value, "dst=, an IP address")?),
            "sport" if src_port.is_none() => src_port = Some(port(line, value, "sport=, a port")?),
            "dport" if dst_port.is_none() => dst_port = Some(port(line, value, "dport=, a port")?),
            _ => {}
        }
    }

    let Some(dst) = dst else {
        // Point where the original direction ended.
        let expected = "dst= in the original direction";
        return Err(match reply {
            Some(token) => ParseError::at_slice(line, token, expected),
            None => ParseError::at(line, "", expected),
        });
    };
    Ok(Tuple {
        src,
        dst,
        src_port,
        dst_port,
    })
}

fn address(line: &str, value: &str, expected: &'static str) -> Result<IpAddr, ParseError> {
    value
        .parse()
        .map_err(|_| ParseError::at_slice(line, value, expected))
}

fn port(line: &str, value: &str, expected: &'static str) -> Result<u16, ParseError> {
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::at_slice(line, value, expected));
    }
    value
        .parse()
        .map_err(|_| ParseError::at_slice(line, value, expected))
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    /// UTC time with microseconds, as conntrack stamps its events.
    fn utc(h: u32, mi: u32, s: u32, micro: u32) -> Option<LineTime> {
        let naive = NaiveDate::from_ymd_opt(2024, 3, 15)
            .unwrap()
            .and_hms_micro_opt(h, mi, s, micro)
            .unwrap();
        let at = FixedOffset::east_opt(0).unwrap().from_utc_datetime(&naive);
        Some(LineTime::Absolute { at })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn traffic<'a>(
        src: &str,
        dst: &str,
        proto: &'a str,
        ports: Option<(u16, u16)>,
    ) -> Option<Event<'a>> {
        Some(Event::Traffic(Traffic {
            src: ip(src),
            dst: ip(dst),
            proto,
            src_port: ports.map(|(s, _)| s),
            dst_port: ports.map(|(_, d)| d),
            verdict: Verdict::Allowed,
            label: None,
        }))
    }

    fn read(text: &str) -> Extracted<'_> {
        assert!(is_conntrack(text), "{text}");
        line(text).unwrap()
    }

    #[test]
    fn corpus_new_https_from_the_tunnel() {
        let e = read("[1710493442.118204]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 [UNREPLIED] src=192.168.60.15 dst=10.20.0.2 sport=443 dport=49822");
        assert_eq!(e.time, utc(9, 4, 2, 118_204));
        assert_eq!(
            e.event,
            traffic("10.20.0.2", "192.168.60.15", "tcp", Some((49822, 443)))
        );
        assert_eq!(e.device, None);
    }

    #[test]
    fn corpus_update_gives_time_and_no_event() {
        let e = read("[1710493442.141877]\t [UPDATE] tcp      6 60 SYN_RECV src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 src=192.168.60.15 dst=10.20.0.2 sport=443 dport=49822");
        assert_eq!(
            e,
            Extracted {
                event: None,
                time: utc(9, 4, 2, 141_877),
                device: None
            }
        );
    }

    #[test]
    fn corpus_new_rtsp_between_two_lan_hosts() {
        let e = read("[1710493590.500120]\t    [NEW] tcp      6 120 SYN_SENT src=192.168.60.5 dst=192.168.60.15 sport=40110 dport=554 [UNREPLIED] src=192.168.60.15 dst=192.168.60.5 sport=554 dport=40110");
        assert_eq!(e.time, utc(9, 6, 30, 500_120));
        assert_eq!(
            e.event,
            traffic("192.168.60.5", "192.168.60.15", "tcp", Some((40110, 554)))
        );
    }

    #[test]
    fn corpus_new_port_8000_from_the_tunnel() {
        let e = read("[1710493725.020931]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.40 sport=49840 dport=8000 [UNREPLIED] src=192.168.60.40 dst=10.20.0.2 sport=8000 dport=49840");
        assert_eq!(e.time, utc(9, 8, 45, 20_931));
        assert_eq!(
            e.event,
            traffic("10.20.0.2", "192.168.60.40", "tcp", Some((49840, 8000)))
        );
    }

    #[test]
    fn corpus_new_udp_snmp_has_no_state() {
        let e = read("[1710493930.773402]\t    [NEW] udp      17 30 src=10.20.0.2 dst=192.168.60.41 sport=53011 dport=161 [UNREPLIED] src=192.168.60.41 dst=10.20.0.2 sport=161 dport=53011");
        assert_eq!(e.time, utc(9, 12, 10, 773_402));
        assert_eq!(
            e.event,
            traffic("10.20.0.2", "192.168.60.41", "udp", Some((53011, 161)))
        );
    }

    #[test]
    fn corpus_destroy_with_counters_gives_time_and_no_event() {
        let e = read("[1710494095.310078]\t[DESTROY] tcp      6 src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 packets=2210 bytes=150882 src=192.168.60.15 dst=10.20.0.2 sport=443 dport=49822 packets=9812 bytes=12001442 [ASSURED]");
        assert_eq!(
            e,
            Extracted {
                event: None,
                time: utc(9, 14, 55, 310_078),
                device: None
            }
        );
    }

    #[test]
    fn line_without_timestamp_has_no_time() {
        let e = read("    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443 [UNREPLIED] src=192.168.60.15 dst=10.20.0.2 sport=443 dport=49822");
        assert_eq!(e.time, None);
        assert_eq!(
            e.event,
            traffic("10.20.0.2", "192.168.60.15", "tcp", Some((49822, 443)))
        );

        let e = read("[DESTROY] udp      17 src=10.20.0.2 dst=192.168.60.41 sport=53011 dport=161 src=192.168.60.41 dst=10.20.0.2 sport=161 dport=53011");
        assert_eq!(e, Extracted::nothing());
    }

    #[test]
    fn icmp_has_no_ports() {
        let e = read("[1710493500.000042]\t    [NEW] icmp     1 30 src=10.20.0.2 dst=192.168.60.1 type=8 code=0 id=7 [UNREPLIED] src=192.168.60.1 dst=10.20.0.2 type=0 code=0 id=7");
        assert_eq!(e.time, utc(9, 5, 0, 42));
        assert_eq!(e.event, traffic("10.20.0.2", "192.168.60.1", "icmp", None));
    }

    #[test]
    fn ipv6_and_extended_output() {
        let e = read("[1710493500.250000]\t    [NEW] ipv6     10 tcp      6 120 SYN_SENT src=fd00:20::2 dst=2001:db8:60::15 sport=49900 dport=22 [UNREPLIED] src=2001:db8:60::15 dst=fd00:20::2 sport=22 dport=49900");
        assert_eq!(e.time, utc(9, 5, 0, 250_000));
        assert_eq!(
            e.event,
            traffic("fd00:20::2", "2001:db8:60::15", "tcp", Some((49900, 22)))
        );
    }

    #[test]
    fn protocol_without_a_name_is_its_number() {
        let e = read("[1710493500.000001]\t    [NEW] unknown  50 600 src=10.20.0.2 dst=198.51.100.9 src=198.51.100.9 dst=10.20.0.2");
        assert_eq!(e.event, traffic("10.20.0.2", "198.51.100.9", "50", None));
    }

    #[test]
    fn unpadded_microseconds_of_older_conntrack() {
        let e = read("[1710493442.5000  ]\t    [NEW] udp      17 30 src=10.20.0.2 dst=192.168.60.41 sport=53011 dport=161 [UNREPLIED] src=192.168.60.41 dst=10.20.0.2 sport=161 dport=53011");
        assert_eq!(e.time, utc(9, 4, 2, 5000));
    }

    #[test]
    fn reply_direction_is_not_the_connection() {
        // A NATed connection: the reply's addresses differ from the original's.
        let e = read("[1710493442.118204]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.0.2.80 sport=49822 dport=443 [UNREPLIED] src=192.168.60.15 dst=203.0.113.1 sport=443 dport=1024");
        assert_eq!(
            e.event,
            traffic("10.20.0.2", "192.0.2.80", "tcp", Some((49822, 443)))
        );
    }

    #[test]
    fn other_lines_are_not_conntrack() {
        assert!(!is_conntrack(
            "[812345.118204] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10"
        ));
        assert!(!is_conntrack("# poll 2024-03-15T10:00:00+01:00"));
        assert!(!is_conntrack("[NEWS] tcp"));
        assert!(!is_conntrack(
            "[1710493442]\t    [NEW] tcp      6 120 SYN_SENT"
        ));
        assert!(is_conntrack(
            "[1710493442.118204]\t [UPDATE] tcp      6 60 SYN_RECV"
        ));
    }

    #[test]
    fn bad_source_address_names_the_field_and_column() {
        let err = line("[1710493442.118204]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.300 dst=192.168.60.15 sport=49822 dport=443").unwrap_err();
        assert_eq!(err.expected, "src=, an IP address");
        assert_eq!(err.column, 59);
        assert_eq!(err.found, "10.20.0.300");
    }

    #[test]
    fn bad_port_and_missing_destination() {
        let err = line(
            "    [NEW] udp      17 30 src=10.20.0.2 dst=192.168.60.41 sport=53011 dport=99999",
        )
        .unwrap_err();
        assert_eq!(err.expected, "dport=, a port");
        assert_eq!(err.column, 76);
        assert_eq!(err.found, "99999");

        let err = line("    [NEW] udp      17 30 src=10.20.0.2 sport=53011 dport=161 src=192.168.60.41 dst=10.20.0.2").unwrap_err();
        assert_eq!(err.expected, "dst= in the original direction");
        assert_eq!(err.column, 62);
    }

    #[test]
    fn bad_header_parts_point_at_themselves() {
        let err = line("[1710493442.1182045]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15").unwrap_err();
        assert_eq!(err.expected, "a timestamp [seconds.microseconds]");
        assert_eq!(err.column, 1);

        let err = line("[1710493442.118204]\t    [OPEN] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15").unwrap_err();
        assert_eq!(err.expected, "[NEW], [UPDATE] or [DESTROY]");
        assert_eq!(err.column, 25);

        let err = line("    [NEW] tcp      6 120 SYN_SENT dst=192.168.60.15").unwrap_err();
        assert_eq!(err.expected, "src=, an IP address");
        assert_eq!(err.column, 35);
    }
}
