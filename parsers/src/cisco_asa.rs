//! Cisco ASA (and Firepower Threat Defense) messages: AnyConnect sessions
//! and the connections users open through the firewall.
//!
//! ```text
//! %ASA-6-113039: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> AnyConnect parent session started.
//! %ASA-6-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> IPv4 Address <10.50.0.12> IPv6 address <::> assigned to session
//! %ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested
//! %ASA-6-302013: Built inbound TCP connection 1122334 for outside:10.50.0.12/51514 (10.50.0.12/51514)(LOCAL\j.martin) to inside:192.168.70.10/443 (192.168.70.10/443) (j.martin)
//! ```
//!
//! The message id says what the message is; the severity digit in front of
//! it changes across versions and configurations and is not read. The
//! parent session of a user is keyed by the username as written: the ASA
//! lets one user hold one AnyConnect parent session, and its child tunnels
//! (722022/722023, repeated on every reconnect) carry no session fact.

use std::net::IpAddr;

use nom::{
    branch::alt,
    bytes::complete::{tag, take_till1, take_until},
    character::complete::{alpha1, char, digit1, one_of, space0},
    combinator::{map_res, opt, value},
    sequence::{delimited, preceded, terminated},
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult};
use crate::event::{EndReason, Event, Traffic, Verdict};
use crate::{Extracted, ParseError};

/// Whether a message is an ASA or FTD message: `%ASA-` or `%FTD-`.
#[inline]
pub fn is_asa(message: &str) -> bool {
    // The `%` first: the envelope asks this of every syslog line.
    message.as_bytes().first() == Some(&b'%')
        && (message.starts_with("%ASA-") || message.starts_with("%FTD-"))
}

/// `%ASA-6-113039: `: the message id, after the platform and severity.
///
/// FTD writes `%FTD-`; some releases put a message class between the
/// platform and the severity (`%ASA-session-6-302013: `), which is read too.
fn header(input: &str) -> PResult<'_, &str> {
    let (rest, (_, _, _, id, _)) = expect(
        "a message header %ASA-<severity>-<id>:",
        (
            alt((tag("%ASA-"), tag("%FTD-"))),
            opt(terminated(alpha1, char('-'))),
            terminated(one_of("01234567"), char('-')),
            digit1,
            terminated(char(':'), space0),
        ),
    )(input)?;
    Ok((rest, id))
}

/// Reads an ASA message. A message that is no ASA message, or whose id
/// carries no session fact, gives nothing.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    if !is_asa(message) {
        return Ok(Extracted::nothing());
    }
    let (body, id) = header(message).map_err(|e| to_parse_error(message, e))?;
    let event = match id {
        "113039" => parent_session_started(body).map(Some),
        "722051" => address_assigned(body).map(|(_, event)| event),
        "113019" => session_disconnected(body),
        "302013" | "302015" => built_connection(body).map(|(_, t)| Some(Event::Traffic(t))),
        "113005" | "113015" => Ok(Some(authentication_rejected(body))),
        _ => Ok(None),
    }
    .map_err(|e| to_parse_error(message, e))?;
    Ok(event.map_or_else(Extracted::nothing, Extracted::event))
}

/// Who a 72xxxx or 113039 message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Client<'a> {
    /// The group policy: the session's tunnel.
    group: &'a str,
    /// The username as written: the key of the parent session.
    user: &'a str,
    /// The client's public address.
    ip: IpAddr,
}

/// An IP address up to the first of `end`'s characters, named `what` when
/// it does not parse.
fn address<'a>(
    what: &'static str,
    end: &'static [char],
) -> impl FnMut(&'a str) -> PResult<'a, IpAddr> {
    move |input| {
        expect(
            what,
            map_res(take_till1(|c| end.contains(&c)), str::parse::<IpAddr>),
        )(input)
    }
}

/// `Group <GP-Techniciens> User <j.martin> IP <198.51.100.23>`.
///
/// A group or username may hold spaces, `@` or quotes, so each runs to the
/// `> ` that opens the next field rather than to the first `>`.
fn client(input: &str) -> PResult<'_, Client<'_>> {
    let (rest, group) = expect(
        "Group <name> then User <name>",
        delimited(tag("Group <"), take_until("> User <"), char('>')),
    )(input)?;
    let (rest, user) = expect(
        "User <name> after the group",
        delimited(tag(" User <"), take_until("> IP <"), char('>')),
    )(rest)?;
    let (rest, ip) = delimited(
        tag(" IP <"),
        address("the client's IP address in IP <...>", &['>']),
        char('>'),
    )
    .parse(rest)?;
    Ok((rest, Client { group, user, ip }))
}

/// 113039 `Group <G> User <u> IP <ip> AnyConnect parent session started.`:
/// the session starts.
fn parent_session_started(body: &str) -> Result<Event<'_>, nom::Err<Expected<'_>>> {
    let (_, c) = client(body)?;
    Ok(Event::SessionStarted {
        user: c.user,
        instance: c.user,
        remote_ip: Some(c.ip),
        remote_port: None,
        virtual_ip: None,
        tunnel: Some(c.group),
        correlation: None,
    })
}

/// 722051: the client's address in the tunnel.
///
/// ```text
/// Group <G> User <u> IP <ip> IPv4 Address <10.50.0.12> IPv6 address <::> assigned to session
/// ```
///
/// Older releases write `Address <ip>` alone. The IPv4 address is the
/// session's unless it is `0.0.0.0` (an IPv6-only pool); when neither is
/// set the message gives nothing.
fn address_assigned(body: &str) -> PResult<'_, Option<Event<'_>>> {
    let (rest, c) = client(body)?;
    let (rest, v4) = delimited(
        expect(
            "IPv4 Address <...> after the client's address",
            alt((tag(" IPv4 Address <"), tag(" Address <"))),
        ),
        address("the IPv4 address in IPv4 Address <...>", &['>']),
        char('>'),
    )
    .parse(rest)?;
    let (rest, v6) = opt(delimited(
        tag(" IPv6 address <"),
        address("the IPv6 address in IPv6 address <...>", &['>']),
        char('>'),
    ))
    .parse(rest)?;
    let virtual_ip = Some(v4)
        .filter(|ip| !ip.is_unspecified())
        .or(v6.filter(|ip| !ip.is_unspecified()));
    let event = virtual_ip.map(|virtual_ip| Event::AddressAssigned {
        user: Some(c.user),
        instance: c.user,
        virtual_ip,
    });
    Ok((rest, event))
}

/// A whole number, as many digits as there are.
fn number(input: &str) -> PResult<'_, u64> {
    map_res(digit1, str::parse::<u64>).parse(input)
}

/// How long a session lasted, in seconds, in each form the ASA writes:
///
/// ```text
/// 0h:42m:12s          hours, minutes, seconds
/// 1d 19h:41m:14s      with days, past 24 hours
/// 0:00:41             h:mm:ss
/// ```
fn duration(input: &str) -> PResult<'_, u64> {
    let lettered = (
        opt(terminated(number, (char('d'), space0))),
        terminated(number, tag("h:")),
        terminated(number, tag("m:")),
        terminated(number, char('s')),
    );
    let colons = (
        terminated(number, char(':')),
        terminated(number, char(':')),
        number,
    )
        .map(|(h, m, s)| (None, h, m, s));
    expect(
        "a duration such as 0h:42m:12s",
        map_res(
            alt((lettered, colons)),
            |(days, h, m, s): (Option<u64>, u64, u64, u64)| {
                if m >= 60 || s >= 60 {
                    return Err(());
                }
                days.unwrap_or(0)
                    .checked_mul(24)
                    .and_then(|hours| hours.checked_add(h))
                    .and_then(|hours| hours.checked_mul(3600))
                    .and_then(|secs| secs.checked_add(m * 60 + s))
                    .ok_or(())
            },
        ),
    )(input)
}

/// 113019: the session ends, with its length and bytes.
///
/// ```text
/// Group = G, Username = u, IP = ip, Session disconnected. Session Type: SSL,
///     Duration: 0h:42m:12s, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested
/// ```
///
/// `Bytes xmt` is what the ASA sent to the client, `Bytes rcv` what it
/// received from it.
///
/// The fields are `Key = value` separated by `, `, but a group or username
/// may hold commas and spaces: each value runs to the `, ` that opens the
/// next known key. A LAN-to-LAN tunnel's disconnection names no username
/// and is no user's session: it gives nothing.
fn session_disconnected(body: &str) -> Result<Option<Event<'_>>, nom::Err<Expected<'_>>> {
    if !body.contains("Username = ") {
        return Ok(None);
    }
    let (rest, group) = opt(delimited(
        tag("Group = "),
        take_until(", Username = "),
        tag(", "),
    ))
    .parse(body)?;
    let (rest, user) = expect(
        "Username = <name>",
        preceded(tag("Username = "), take_until(", IP = ")),
    )(rest)?;
    let (rest, remote_ip) = preceded(
        tag(", IP = "),
        address("the client's IP address after IP =", &[',']),
    )
    .parse(rest)?;
    let (rest, _) = expect(
        "Session disconnected. Session Type: <type>",
        (
            tag(", Session disconnected. Session Type: "),
            take_until(", Duration: "),
            tag(", Duration: "),
        ),
    )(rest)?;
    let (rest, duration_s) = duration(rest)?;
    let (rest, bytes_out) = preceded(
        expect("Bytes xmt: after the duration", tag(", Bytes xmt: ")),
        expect("the byte count after Bytes xmt:", number),
    )
    .parse(rest)?;
    let (rest, bytes_in) = preceded(
        expect("Bytes rcv: after Bytes xmt", tag(", Bytes rcv: ")),
        expect("the byte count after Bytes rcv:", number),
    )
    .parse(rest)?;
    let (reason, _) = expect("Reason: after Bytes rcv", tag(", Reason: "))(rest)?;
    let reason = reason.trim_end();
    Ok(Some(Event::SessionEnded {
        user: Some(user),
        instance: user,
        reason: end_reason(reason),
        detail: reason,
        bytes_in: Some(bytes_in),
        bytes_out: Some(bytes_out),
        duration_s: Some(duration_s),
        remote_ip: Some(remote_ip),
        tunnel: group,
    }))
}

/// What a 113019 `Reason:` means. Every reason that speaks of something
/// lost (`Lost Service`, `Lost Carrier`) is a broken connection.
fn end_reason(reason: &str) -> EndReason {
    let is = |name: &str| reason.eq_ignore_ascii_case(name);
    if is("User Requested") {
        EndReason::UserExit
    } else if is("Idle Timeout") || is("Max time exceeded") {
        EndReason::Timeout
    } else if is("Administrator Reset") || is("Admin Reset") {
        EndReason::Admin
    } else if is("Connection Preempted") || is("Port Preempted") {
        // `Port Preempted` is the ASA's "simultaneous logins exceeded": a
        // newer login of the same user took the place.
        EndReason::Replaced
    } else if reason.to_ascii_lowercase().contains("lost") {
        EndReason::ConnectionLost
    } else {
        EndReason::Unknown
    }
}

/// `outside:10.50.0.12/51514`: an interface, an address and a port.
fn interface_address(input: &str) -> PResult<'_, (IpAddr, u16)> {
    let (rest, _) = expect(
        "an interface name before `:`",
        terminated(take_till1(|c| c == ':' || c == ' '), char(':')),
    )(input)?;
    let (rest, ip) = address("an IP address in interface:address/port", &['/', ' '])(rest)?;
    let (rest, port) = preceded(
        expect("`/` and a port after the address", char('/')),
        expect(
            "a port after the address",
            map_res(digit1, str::parse::<u16>),
        ),
    )
    .parse(rest)?;
    Ok((rest, (ip, port)))
}

/// 302013 (TCP) and 302015 (UDP): a connection through the firewall.
///
/// ```text
/// Built inbound TCP connection 1122334 for outside:10.50.0.12/51514 (10.50.0.12/51514)(LOCAL\j.martin)
///     to inside:192.168.70.10/443 (192.168.70.10/443) (j.martin)
/// ```
///
/// The first side is the less trusted interface's. An inbound connection
/// was opened from it, an outbound one from the second side: that side is
/// the source. After each side come its mapped (NAT) address in
/// parentheses and, with identity firewall, the user as `(DOMAIN\user)`.
fn built_connection(body: &str) -> PResult<'_, Traffic<'_>> {
    let (rest, (_, inbound, _, proto, _)) = expect(
        "Built inbound|outbound TCP|UDP connection",
        (
            tag("Built "),
            alt((value(true, tag("inbound")), value(false, tag("outbound")))),
            char(' '),
            alt((value("tcp", tag("TCP")), value("udp", tag("UDP")))),
            tag(" connection "),
        ),
    )(body)?;
    let (rest, _) = expect("a connection id and `for `", (digit1, tag(" for ")))(rest)?;
    let (rest, (outer_ip, outer_port)) = interface_address(rest)?;
    let (rest, _) = opt(delimited(tag(" ("), take_until(")"), char(')'))).parse(rest)?;
    let (rest, _) = opt(delimited(char('('), take_until(") to "), char(')'))).parse(rest)?;
    let (rest, _) = expect("` to ` before the second side", tag(" to "))(rest)?;
    let (rest, (inner_ip, inner_port)) = interface_address(rest)?;

    let ((src, src_port), (dst, dst_port)) = if inbound {
        ((outer_ip, outer_port), (inner_ip, inner_port))
    } else {
        ((inner_ip, inner_port), (outer_ip, outer_port))
    };
    Ok((
        rest,
        Traffic {
            src,
            dst,
            proto,
            src_port: Some(src_port),
            dst_port: Some(dst_port),
            verdict: Verdict::Allowed,
            label: None,
        },
    ))
}

/// 113005 (AAA server) and 113015 (local database): a failed login.
///
/// ```text
/// AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = j.martin : user IP = 198.51.100.23
/// ```
///
/// ASA releases that hide rejected usernames (they may be
/// a mistyped password) write `*****`: no user then.
fn authentication_rejected(body: &str) -> Event<'_> {
    let user = body.split_once(" : user = ").map(|(_, after)| {
        after
            .split_once(" : user IP = ")
            .map_or(after, |(user, _)| user)
            .trim_end()
    });
    Event::AuthFailed {
        user: user.filter(|u| !u.is_empty() && !u.chars().all(|c| c == '*')),
        instance: None,
        detail: body,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn event(message_text: &str) -> Event<'_> {
        match message(message_text) {
            Ok(Extracted {
                event: Some(e),
                time: None,
                device: None,
            }) => e,
            other => panic!("{message_text}: {other:?}"),
        }
    }

    fn nothing(message_text: &str) {
        assert_eq!(
            message(message_text),
            Ok(Extracted::nothing()),
            "{message_text}"
        );
    }

    fn traffic(message_text: &str) -> Traffic<'_> {
        match event(message_text) {
            Event::Traffic(t) => t,
            other => panic!("{message_text}: {other:?}"),
        }
    }

    #[test]
    fn is_asa_by_platform_mark() {
        assert!(is_asa("%ASA-6-113039: Group <G> User <u> IP <198.51.100.23> AnyConnect parent session started."));
        assert!(is_asa("%FTD-6-302013: Built inbound TCP connection"));
        assert!(!is_asa("ASA-6-113039: x"));
        assert!(!is_asa("%PIX-6-302013: x"));
    }

    #[test]
    fn header_gives_the_message_id() {
        assert_eq!(header("%ASA-6-113039: Group"), Ok(("Group", "113039")));
        assert_eq!(header("%ASA-4-113019: Group"), Ok(("Group", "113019")));
        assert_eq!(header("%FTD-7-722051: Group"), Ok(("Group", "722051")));
        assert_eq!(
            header("%ASA-session-6-302013: Built"),
            Ok(("Built", "302013"))
        );
    }

    #[test]
    fn bad_header_is_an_error() {
        let err = message("%ASA-9-113039: Group <G> User <u> IP <198.51.100.23>").unwrap_err();
        assert_eq!(err.expected, "a message header %ASA-<severity>-<id>:");
        assert_eq!(err.column, 1);
    }

    #[test]
    fn other_messages_are_nothing() {
        nothing("");
        nothing("Mar 21 2024 08:54:58 asa-paris : %ASA-6-113004: AAA");
        nothing("%ASA-6-113004: AAA user authentication Successful : server =  192.168.70.2 : user = j.martin");
        nothing("%ASA-6-722022: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> TCP SVC connection established without compression");
        nothing("%ASA-6-722023: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> UDP SVC connection terminated without compression");
        nothing("%ASA-4-722037: Group <GP-Techniciens> User <s.bernard> IP <203.0.113.45> SVC closing connection: Transport closing.");
        nothing("%ASA-6-302014: Teardown TCP connection 1122334 for outside:10.50.0.12/51514 to inside:192.168.70.10/443 duration 0:05:12 bytes 2210331 TCP FINs from outside (j.martin)");
        nothing("%ASA-6-302016: Teardown UDP connection 1122400 for outside:10.50.0.12/50600 to inside:192.168.70.30/161 duration 0:02:01 bytes 4410");
        nothing("%ASA-5-111008: User 'enable_15' executed the 'write memory' command.");
    }

    #[test]
    fn parent_session_started_starts_a_session() {
        assert_eq!(
            event("%ASA-6-113039: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> AnyConnect parent session started."),
            Event::SessionStarted {
                user: "j.martin",
                instance: "j.martin",
                remote_ip: Some(ip("198.51.100.23")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("GP-Techniciens"),
                correlation: None,
            }
        );
    }

    #[test]
    fn group_and_username_with_spaces_and_marks() {
        assert_eq!(
            event("%ASA-5-113039: Group <GP Techniciens Nord> User <Le Gall, Jean-Marc> IP <203.0.113.45> AnyConnect parent session started."),
            Event::SessionStarted {
                user: "Le Gall, Jean-Marc",
                instance: "Le Gall, Jean-Marc",
                remote_ip: Some(ip("203.0.113.45")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("GP Techniciens Nord"),
                correlation: None,
            }
        );
        assert_eq!(
            event("%ASA-6-113039: Group <GP-Techniciens> User <l.o'brien@example.org> IP <2001:db8::23> AnyConnect parent session started."),
            Event::SessionStarted {
                user: "l.o'brien@example.org",
                instance: "l.o'brien@example.org",
                remote_ip: Some(ip("2001:db8::23")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("GP-Techniciens"),
                correlation: None,
            }
        );
    }

    #[test]
    fn bad_client_address_names_the_field_and_column() {
        let err = message("%ASA-6-113039: Group <GP-Techniciens> User <j.martin> IP <198.51.100.300> AnyConnect parent session started.").unwrap_err();
        assert_eq!(err.expected, "the client's IP address in IP <...>");
        assert_eq!(err.column, 59);
        assert_eq!(err.found, "198.51.100.300> AnyConne");
    }

    #[test]
    fn missing_user_field_is_an_error() {
        let err = message("%ASA-6-113039: Group <GP-Techniciens> IP <198.51.100.23> AnyConnect parent session started.").unwrap_err();
        assert_eq!(err.expected, "Group <name> then User <name>");
        assert_eq!(err.column, 16);
    }

    #[test]
    fn address_assigned_gives_the_ipv4_address() {
        assert_eq!(
            event("%ASA-6-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> IPv4 Address <10.50.0.12> IPv6 address <::> assigned to session"),
            Event::AddressAssigned {
                user: Some("j.martin"),
                instance: "j.martin",
                virtual_ip: ip("10.50.0.12"),
            }
        );
    }

    #[test]
    fn address_assigned_falls_back_to_ipv6() {
        assert_eq!(
            event("%ASA-4-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> IPv4 Address <0.0.0.0> IPv6 address <fd00:50::12> assigned to session"),
            Event::AddressAssigned {
                user: Some("j.martin"),
                instance: "j.martin",
                virtual_ip: ip("fd00:50::12"),
            }
        );
        nothing("%ASA-7-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> IPv4 Address <0.0.0.0> IPv6 address <::> assigned to session");
    }

    #[test]
    fn address_assigned_in_the_older_form() {
        assert_eq!(
            event("%ASA-4-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> Address <10.50.0.14> assigned to session"),
            Event::AddressAssigned {
                user: Some("j.martin"),
                instance: "j.martin",
                virtual_ip: ip("10.50.0.14"),
            }
        );
    }

    #[test]
    fn bad_assigned_address_names_the_field_and_column() {
        let err = message("%ASA-6-722051: Group <GP-Techniciens> User <j.martin> IP <198.51.100.23> IPv4 Address <10.50.0> IPv6 address <::> assigned to session").unwrap_err();
        assert_eq!(err.expected, "the IPv4 address in IPv4 Address <...>");
        assert_eq!(err.column, 88);
        assert_eq!(err.found, "10.50.0> IPv6 address <:");
    }

    #[test]
    fn duration_forms() {
        assert_eq!(duration("0h:42m:12s"), Ok(("", 2532)));
        assert_eq!(duration("0h:12m:03s,"), Ok((",", 723)));
        assert_eq!(duration("1d 2h:03m:04s"), Ok(("", 93784)));
        assert_eq!(duration("1d 19h:41m:14s"), Ok(("", 157274)));
        assert_eq!(duration("0:00:41"), Ok(("", 41)));
        assert_eq!(duration("12:05:00"), Ok(("", 43500)));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for text in [
            "0h:60m:00s",
            "0h:12m",
            "0:61:00",
            "h:12m:03s",
            "99999999999999999999h:00m:00s",
            "",
        ] {
            let err = duration(text).unwrap_err();
            match err {
                nom::Err::Error(e) => {
                    assert_eq!(e.expected, "a duration such as 0h:42m:12s", "{text}")
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn session_disconnected_ends_the_session() {
        assert_eq!(
            event("%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested"),
            Event::SessionEnded {
                user: Some("j.martin"),
                instance: "j.martin",
                reason: EndReason::UserExit,
                detail: "User Requested",
                bytes_in: Some(9120443),
                bytes_out: Some(48211904),
                duration_s: Some(2532),
                remote_ip: Some(ip("198.51.100.23")),
                tunnel: Some("GP-Techniciens"),
            }
        );
        assert_eq!(
            event("%ASA-4-113019: Group = GP-Techniciens, Username = s.bernard, IP = 203.0.113.45, Session disconnected. Session Type: SSL, Duration: 0h:52m:15s, Bytes xmt: 1022100, Bytes rcv: 230500, Reason: Idle Timeout"),
            Event::SessionEnded {
                user: Some("s.bernard"),
                instance: "s.bernard",
                reason: EndReason::Timeout,
                detail: "Idle Timeout",
                bytes_in: Some(230500),
                bytes_out: Some(1022100),
                duration_s: Some(3135),
                remote_ip: Some(ip("203.0.113.45")),
                tunnel: Some("GP-Techniciens"),
            }
        );
    }

    #[test]
    fn session_disconnected_with_commas_and_spaces_in_names() {
        assert_eq!(
            event("%ASA-4-113019: Group = GP Techniciens, Nord, Username = Le Gall, Jean-Marc, IP = 203.0.113.45, Session disconnected. Session Type: AnyConnect-Parent, Duration: 1d 19h:41m:14s, Bytes xmt: 0, Bytes rcv: 12, Reason: Lost Service"),
            Event::SessionEnded {
                user: Some("Le Gall, Jean-Marc"),
                instance: "Le Gall, Jean-Marc",
                reason: EndReason::ConnectionLost,
                detail: "Lost Service",
                bytes_in: Some(12),
                bytes_out: Some(0),
                duration_s: Some(157274),
                remote_ip: Some(ip("203.0.113.45")),
                tunnel: Some("GP Techniciens, Nord"),
            }
        );
        assert_eq!(
            event("%ASA-4-113019: Group = GP-Techniciens, Username = l.o'brien@example.org, IP = 198.51.100.7, Session disconnected. Session Type: IKEv2, Duration: 0:00:41, Bytes xmt: 3, Bytes rcv: 4, Reason: Administrator Reset"),
            Event::SessionEnded {
                user: Some("l.o'brien@example.org"),
                instance: "l.o'brien@example.org",
                reason: EndReason::Admin,
                detail: "Administrator Reset",
                bytes_in: Some(4),
                bytes_out: Some(3),
                duration_s: Some(41),
                remote_ip: Some(ip("198.51.100.7")),
                tunnel: Some("GP-Techniciens"),
            }
        );
    }

    #[test]
    fn lan_to_lan_disconnection_is_nothing() {
        nothing("%ASA-4-113019: Group = 203.0.113.5, IP = 203.0.113.5, Session disconnected. Session Type: IPsec, Duration: 2h:10m:00s, Bytes xmt: 10, Bytes rcv: 20, Reason: Lost Service");
    }

    #[test]
    fn bad_fields_of_a_disconnection_name_the_field_and_column() {
        let err = message("%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested").unwrap_err();
        assert_eq!(err.expected, "a duration such as 0h:42m:12s");
        assert_eq!(err.column, 132);

        let err = message("%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: many, Bytes rcv: 9120443, Reason: User Requested").unwrap_err();
        assert_eq!(err.expected, "the byte count after Bytes xmt:");
        assert_eq!(err.column, 155);

        let err = message("%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.2333, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: 1, Bytes rcv: 2, Reason: User Requested").unwrap_err();
        assert_eq!(err.expected, "the client's IP address after IP =");
        assert_eq!(err.column, 66);
        assert_eq!(err.found, "198.51.100.2333, Session");
    }

    #[test]
    fn end_reasons() {
        let cases = [
            ("User Requested", EndReason::UserExit),
            ("Idle Timeout", EndReason::Timeout),
            ("Max time exceeded", EndReason::Timeout),
            ("Administrator Reset", EndReason::Admin),
            ("Admin Reset", EndReason::Admin),
            ("Connection Preempted", EndReason::Replaced),
            ("Port Preempted", EndReason::Replaced),
            ("Lost Service", EndReason::ConnectionLost),
            ("Lost Carrier", EndReason::ConnectionLost),
            ("Port Connection Lost", EndReason::ConnectionLost),
            ("NAS Error", EndReason::Unknown),
            ("Type Error: Reconnect", EndReason::Unknown),
        ];
        for (text, want) in cases {
            assert_eq!(end_reason(text), want, "{text}");
        }
    }

    #[test]
    fn built_inbound_tcp_goes_from_the_outside() {
        assert_eq!(
            traffic("%ASA-6-302013: Built inbound TCP connection 1122334 for outside:10.50.0.12/51514 (10.50.0.12/51514)(LOCAL\\j.martin) to inside:192.168.70.10/443 (192.168.70.10/443) (j.martin)"),
            Traffic {
                src: ip("10.50.0.12"),
                dst: ip("192.168.70.10"),
                proto: "tcp",
                src_port: Some(51514),
                dst_port: Some(443),
                verdict: Verdict::Allowed,
                label: None,
            }
        );
    }

    #[test]
    fn built_inbound_udp() {
        assert_eq!(
            traffic("%ASA-6-302015: Built inbound UDP connection 1122400 for outside:10.50.0.12/50600 (10.50.0.12/50600)(LOCAL\\j.martin) to inside:192.168.70.30/161 (192.168.70.30/161) (j.martin)"),
            Traffic {
                src: ip("10.50.0.12"),
                dst: ip("192.168.70.30"),
                proto: "udp",
                src_port: Some(50600),
                dst_port: Some(161),
                verdict: Verdict::Allowed,
                label: None,
            }
        );
    }

    #[test]
    fn built_outbound_goes_from_the_second_side() {
        assert_eq!(
            traffic("%ASA-6-302013: Built outbound TCP connection 1122390 for outside:192.0.2.80/443 (192.0.2.80/443) to inside:192.168.70.55/49811 (198.51.100.200/49811)"),
            Traffic {
                src: ip("192.168.70.55"),
                dst: ip("192.0.2.80"),
                proto: "tcp",
                src_port: Some(49811),
                dst_port: Some(443),
                verdict: Verdict::Allowed,
                label: None,
            }
        );
    }

    #[test]
    fn built_connection_on_other_interfaces_and_a_spaced_identity() {
        assert_eq!(
            traffic("%FTD-6-302013: Built inbound TCP connection 88 for vpn:10.50.0.13/60210 (10.50.0.13/60210)(LOCAL\\Le Gall Jean) to dmz:172.16.5.4/22 (172.16.5.4/22) (Le Gall Jean)"),
            Traffic {
                src: ip("10.50.0.13"),
                dst: ip("172.16.5.4"),
                proto: "tcp",
                src_port: Some(60210),
                dst_port: Some(22),
                verdict: Verdict::Allowed,
                label: None,
            }
        );
    }

    #[test]
    fn bad_connection_address_names_the_field_and_column() {
        let err = message("%ASA-6-302013: Built inbound TCP connection 1122334 for outside:10.50.0.12/51514 (10.50.0.12/51514) to inside:192.168.70.1x/443 (192.168.70.10/443)").unwrap_err();
        assert_eq!(err.expected, "an IP address in interface:address/port");
        assert_eq!(err.column, 111);
        assert_eq!(err.found, "192.168.70.1x/443 (192.1");

        let err = message("%ASA-6-302013: Built inbound TCP connection 1122334 for outside:10.50.0.12/70000 (10.50.0.12/70000) to inside:192.168.70.10/443 (192.168.70.10/443)").unwrap_err();
        assert_eq!(err.expected, "a port after the address");
        assert_eq!(err.column, 76);
    }

    #[test]
    fn authentication_rejected_names_the_user() {
        assert_eq!(
            event("%ASA-6-113005: AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = j.martin : user IP = 198.51.100.23"),
            Event::AuthFailed {
                user: Some("j.martin"),
                instance: None,
                detail: "AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = j.martin : user IP = 198.51.100.23",
            }
        );
        assert_eq!(
            event("%ASA-6-113015: AAA user authentication Rejected : reason = Invalid password : local database : user = s.bernard : user IP = 203.0.113.45"),
            Event::AuthFailed {
                user: Some("s.bernard"),
                instance: None,
                detail: "AAA user authentication Rejected : reason = Invalid password : local database : user = s.bernard : user IP = 203.0.113.45",
            }
        );
    }

    #[test]
    fn hidden_username_is_no_user() {
        assert_eq!(
            event("%ASA-6-113005: AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = ***** : user IP = 198.51.100.23"),
            Event::AuthFailed {
                user: None,
                instance: None,
                detail: "AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = ***** : user IP = 198.51.100.23",
            }
        );
    }

    /// The corpus, message by message: the line number in the file and the
    /// event kind each line gives.
    #[test]
    fn corpus_lines_give_their_events_and_never_an_error() {
        let corpus = include_str!("../../fixtures/corpus/cisco-asa/anyconnect.log");
        let mut kinds = Vec::new();
        for (n, line) in corpus.lines().enumerate() {
            let (_, msg) = line
                .split_once(" asa-paris : ")
                .expect("an ASA syslog header");
            assert!(is_asa(msg), "line {}", n + 1);
            match message(msg) {
                Ok(extracted) => {
                    if let Some(e) = extracted.event {
                        kinds.push((n + 1, e.kind()));
                    }
                }
                Err(e) => panic!("line {}: {e}", n + 1),
            }
        }
        assert_eq!(
            kinds,
            [
                (2, "session_started"),
                (4, "address_assigned"),
                (6, "traffic"),
                (8, "traffic"),
                (9, "traffic"),
                (10, "session_started"),
                (12, "address_assigned"),
                (13, "traffic"),
                (14, "traffic"),
                (18, "address_assigned"),
                (21, "session_ended"),
                (22, "session_ended"),
            ]
        );
    }

    #[test]
    fn corpus_second_user_address_and_traffic() {
        assert_eq!(
            event("%ASA-6-722051: Group <GP-Techniciens> User <s.bernard> IP <203.0.113.45> IPv4 Address <10.50.0.13> IPv6 address <::> assigned to session"),
            Event::AddressAssigned {
                user: Some("s.bernard"),
                instance: "s.bernard",
                virtual_ip: ip("10.50.0.13"),
            }
        );
        assert_eq!(
            traffic("%ASA-6-302013: Built inbound TCP connection 1122511 for outside:10.50.0.13/60210 (10.50.0.13/60210)(LOCAL\\s.bernard) to inside:192.168.70.8/80 (192.168.70.8/80) (s.bernard)"),
            Traffic {
                src: ip("10.50.0.13"),
                dst: ip("192.168.70.8"),
                proto: "tcp",
                src_port: Some(60210),
                dst_port: Some(80),
                verdict: Verdict::Allowed,
                label: None,
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(text in any::<String>()) {
            let _ = message(&text);
        }

        /// Bodies built from the words of the messages read, behind each
        /// id read, so that the parsers get past their first tags; an error
        /// points inside the message.
        #[test]
        fn near_miss_bodies_never_panic(
            id in prop_oneof![
                Just("113039"), Just("722051"), Just("113019"), Just("302013"), Just("113005"),
            ],
            words in proptest::collection::vec(
                prop_oneof![
                    Just("Group <"), Just("> User <"), Just("> IP <"), Just(">"),
                    Just(" IPv4 Address <"), Just("Group = "), Just(", Username = "),
                    Just(", IP = "), Just(", "), Just(", Session disconnected. Session Type: "),
                    Just(", Duration: "), Just("1d "), Just("0h:"), Just("42m:"), Just("12s"),
                    Just(", Bytes xmt: "), Just(", Bytes rcv: "), Just(", Reason: "),
                    Just("Built inbound TCP connection "), Just(" for "), Just("outside:"),
                    Just("/443"), Just(" ("), Just(")"), Just(" to "), Just(" : user = "),
                    Just("10.50.0.12"), Just("::"), Just("ü"), Just("12"),
                ],
                0..14,
            )
        ) {
            let text = format!("%ASA-6-{id}: {}", words.concat());
            if let Err(e) = message(&text) {
                prop_assert!(e.column >= 1 && e.column <= text.len() + 1, "{e}");
            }
        }
    }
}
