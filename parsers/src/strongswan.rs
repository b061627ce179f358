//! strongSwan's IKE daemon, charon, as it writes to syslog.
//!
//! Every message starts with the number of the thread that logged it and
//! the subsystem it logged for:
//!
//! ```text
//! 13[IKE] received EAP identity 'j.martin'
//! 14[IKE] assigning virtual IP 10.10.10.1 to peer 'j.martin'
//! 14[IKE] IKE_SA rw-techs[7] established between 192.0.2.10[vpn-nantes.example.net]...198.51.100.61[192.168.1.23]
//! 11[IKE] closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (5242880 bytes) and TS 0.0.0.0/0 === 10.10.10.1/32
//! 16[IKE] received DELETE for IKE_SA rw-techs[7]
//! ```
//!
//! The person is the EAP (or XAuth) identity, while the start line names
//! the peer's IKE identity, often its LAN address. The lines of one
//! negotiation share a thread only while that job runs: the start line
//! carries its thread as `correlation` and the sessionizer joins it to the
//! identity and address lines logged by the same thread. Every session
//! fact is logged by the IKE subsystem; lines of other subsystems (`CFG`,
//! `NET`, `KNL`...) carry none.

use std::net::IpAddr;

use nom::{
    bytes::complete::{tag, take_till1, take_while1},
    character::complete::{alpha1, char, digit1, hex_digit1},
    combinator::{cut, map_res, opt},
    sequence::{delimited, preceded, terminated},
    Parser,
};

use crate::error::{expect, to_parse_error, PResult};
use crate::event::{EndReason, Event};
use crate::{Extracted, ParseError};

/// Whether a syslog program name is charon's: `charon` (starter-based
/// setups), `charon-systemd` (swanctl), or the `ipsec`/`strongswan` names
/// some distributions log under.
pub fn is_strongswan_app(app: &str) -> bool {
    matches!(app, "charon" | "charon-systemd" | "ipsec" | "strongswan")
}

/// The `NN[XXX] ` in front of every charon message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ThreadPrefix<'a> {
    /// The thread number as written (`14`): the key that joins the lines
    /// of one negotiation.
    thread: &'a str,
    /// `IKE`, `CFG`, `NET`...: which part of charon logged.
    subsystem: &'a str,
}

/// `14[IKE] `: the thread number, the subsystem, and the space after them.
///
/// Two charon options change this prefix, and both are read: `log_level`
/// appends the level to the subsystem (`14[IKE1] `) and `ike_name` adds the
/// IKE_SA's name and unique id (`14[IKE] <rw-techs|7> `).
fn thread_prefix(input: &str) -> PResult<'_, ThreadPrefix<'_>> {
    let (rest, (thread, subsystem)) = expect(
        "a thread prefix such as 14[IKE]",
        (
            digit1,
            delimited(char('['), terminated(alpha1, opt(digit1)), char(']')),
        ),
    )(input)?;
    let (rest, _) = opt(preceded(
        tag(" <"),
        terminated(take_till1(|c| c == '>'), char('>')),
    ))
    .parse(rest)?;
    let (rest, _) = expect("a space after the thread prefix", char(' '))(rest)?;
    Ok((rest, ThreadPrefix { thread, subsystem }))
}

/// An IKE_SA as charon names it: its connection and its unique id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IkeSa<'a> {
    /// `rw-techs[7]`: the key of the session's instance.
    instance: &'a str,
    /// `rw-techs`: the connection, the session's tunnel.
    connection: &'a str,
}

/// `rw-techs[7]`: a connection name and the IKE_SA's unique id.
fn ike_sa(input: &str) -> PResult<'_, IkeSa<'_>> {
    expect("an IKE_SA name[unique id]", ike_sa_parts)(input)
}

/// The steps of [`ike_sa`], which names their failure.
fn ike_sa_parts(input: &str) -> PResult<'_, IkeSa<'_>> {
    let (rest, connection) = take_while1(|c: char| c != '[' && c != ' ').parse(input)?;
    let (rest, _) = delimited(char('['), digit1, char(']')).parse(rest)?;
    let instance = &input[..input.len() - rest.len()];
    Ok((
        rest,
        IkeSa {
            instance,
            connection,
        },
    ))
}

/// Reads a charon message. A message without the thread prefix is not an
/// IKE daemon message charon's loggers write, and carries nothing.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    let Ok((body, prefix)) = thread_prefix(message) else {
        return Ok(Extracted::nothing());
    };
    if prefix.subsystem != "IKE" {
        return Ok(Extracted::nothing());
    }
    let event = ike_message(message, prefix.thread, body)?;
    Ok(event.map_or_else(Extracted::nothing, Extracted::event))
}

/// The body of an `IKE` message, after its prefix.
fn ike_message<'a>(
    message: &'a str,
    thread: &'a str,
    body: &'a str,
) -> Result<Option<Event<'a>>, ParseError> {
    if let Some(quoted) = body.strip_prefix("received EAP identity ") {
        return received_eap_identity(message, quoted).map(|user| {
            user.map(|user| Event::UserAuthenticated {
                user,
                instance: Some(thread),
            })
        });
    }
    if body.starts_with("assigning virtual IP ") {
        let (virtual_ip, user) = assigning_virtual_ip(message, body)?;
        return Ok(Some(Event::AddressAssigned {
            user: Some(user),
            instance: thread,
            virtual_ip,
        }));
    }
    if body.starts_with("IKE_SA ") {
        return ike_sa_established(message, thread, body);
    }
    if body.starts_with("closing CHILD_SA ") {
        return closing_child_sa(message, body);
    }
    if body.starts_with("CHILD_SA ") {
        return child_sa_established(message, body);
    }
    if let Some(rest) = body.strip_prefix("received DELETE for IKE_SA ") {
        return ike_sa_deleted(message, body, rest, EndReason::UserExit).map(Some);
    }
    if let Some(rest) = body.strip_prefix("deleting IKE_SA ") {
        // The gateway deletes the SA itself: its reason is not in the line.
        return ike_sa_deleted(message, body, rest, EndReason::Unknown).map(Some);
    }
    Ok(authentication_failed(body).map(|user| Event::AuthFailed {
        user,
        instance: Some(thread),
        detail: body,
    }))
}

/// `'j.martin'` after `received EAP identity `: the person connecting.
///
/// The identity is what the client typed; it may hold quotes, so it runs
/// to the last quote. An empty identity names nobody and gives nothing.
fn received_eap_identity<'a>(
    message: &'a str,
    quoted: &'a str,
) -> Result<Option<&'a str>, ParseError> {
    let identity = quoted_identity(quoted)
        .ok_or_else(|| ParseError::at_slice(message, quoted, "a quoted EAP identity"))?;
    Ok((!identity.is_empty()).then_some(identity))
}

/// The text between a leading quote and the last quote of `text`.
fn quoted_identity(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('\'')?;
    let end = inner.rfind('\'')?;
    Some(&inner[..end])
}

/// `assigning virtual IP 10.10.10.1 to peer 'j.martin'`: the address the
/// gateway leased, and to whom.
fn assigning_virtual_ip<'a>(
    message: &'a str,
    body: &'a str,
) -> Result<(IpAddr, &'a str), ParseError> {
    let address = |input: &'a str| -> PResult<'a, IpAddr> {
        expect(
            "the virtual IP address",
            map_res(take_till1(|c| c == ' '), str::parse::<IpAddr>),
        )(input)
    };
    let (quoted, virtual_ip) = preceded(
        tag("assigning virtual IP "),
        terminated(
            address,
            expect("` to peer ` after the address", tag(" to peer ")),
        ),
    )
    .parse(body)
    .map_err(|e| to_parse_error(message, e))?;
    let user = quoted_identity(quoted)
        .ok_or_else(|| ParseError::at_slice(message, quoted, "the peer's quoted identity"))?;
    Ok((virtual_ip, user))
}

/// The session starts:
///
/// ```text
/// IKE_SA rw-techs[7] established between 192.0.2.10[gw-id]...198.51.100.61[peer-id]
/// ```
///
/// Other `IKE_SA ` lines (`IKE_SA deleted`, `IKE_SA ... state change`) are
/// no start and give nothing.
fn ike_sa_established<'a>(
    message: &'a str,
    thread: &'a str,
    body: &'a str,
) -> Result<Option<Event<'a>>, ParseError> {
    let head = preceded(tag("IKE_SA "), ike_sa).parse(body);
    let Ok((rest, sa)) = head else {
        return Ok(None);
    };
    let Some(endpoints) = rest.strip_prefix(" established between ") else {
        return Ok(None);
    };
    let (remote_ip, peer_id) = peer_endpoint(message, endpoints)?;
    Ok(Some(Event::SessionStarted {
        user: peer_id,
        instance: sa.instance,
        remote_ip: Some(remote_ip),
        remote_port: None,
        virtual_ip: None,
        tunnel: Some(sa.connection),
        correlation: Some(thread),
    }))
}

/// `192.0.2.10[gw-id]...198.51.100.61[peer-id]`: the peer's address and
/// identity.
///
/// An identity is whatever the certificate or client says: a DN such as
/// `C=FR, O=Example [Lab], CN=j.martin` holds spaces, commas and brackets,
/// and nothing forbids `...` inside. So each `...` is tried in turn, and the
/// first that splits the text into `address[id]` on both sides wins; the
/// peer's identity runs to the last `]`.
fn peer_endpoint<'a>(
    message: &'a str,
    endpoints: &'a str,
) -> Result<(IpAddr, &'a str), ParseError> {
    for (at, _) in endpoints.match_indices("...") {
        let local = &endpoints[..at];
        let remote = &endpoints[at + 3..];
        if let (Some(_), Some((ip, id))) = (endpoint(local), endpoint(remote)) {
            return Ok((ip, id));
        }
    }

    // No split works: point at the peer's address after the first `...`,
    // or at the whole when there is no separator at all.
    let Some((_, remote)) = endpoints.split_once("...") else {
        return Err(ParseError::at_slice(
            message,
            endpoints,
            "local and peer endpoints address[id]...address[id]",
        ));
    };
    let host = remote.split('[').next().unwrap_or(remote);
    if host.parse::<IpAddr>().is_err() {
        return Err(ParseError::at_slice(
            message,
            host,
            "the peer's IP address after `...`",
        ));
    }
    Err(ParseError::at_slice(
        message,
        remote,
        "the peer's identity in brackets after its address",
    ))
}

/// `198.51.100.61[192.168.1.23]`: one side of an IKE_SA, address and
/// identity, the identity running to the text's last `]`.
fn endpoint(text: &str) -> Option<(IpAddr, &str)> {
    let (host, rest) = text.split_once('[')?;
    let id = rest.strip_suffix(']')?;
    Some((host.parse().ok()?, id))
}

/// The bytes one CHILD_SA carried, counted at the gateway: `_i` what it
/// received from the peer, `_o` what it sent.
///
/// ```text
/// closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (5242880 bytes)
///     and TS 0.0.0.0/0 === 10.10.10.1/32
/// ```
///
/// The line names the CHILD_SA, not its IKE_SA: the bytes reach the session
/// through the peer's side of the traffic selectors, its virtual IP. A
/// CHILD_SA without a single-host selector on the peer's side is a site
/// tunnel going down, with its bytes; a line without byte counts (an
/// expired SA being replaced) gives nothing.
fn closing_child_sa<'a>(message: &'a str, body: &'a str) -> Result<Option<Event<'a>>, ParseError> {
    let (selectors, counts) = child_sa_counts(body).map_err(|e| to_parse_error(message, e))?;
    let Some((bytes_in, bytes_out)) = counts else {
        return Ok(None);
    };
    let remote = remote_selectors(message, selectors)?;
    let Some(virtual_ip) = single_host_selector(message, remote)? else {
        return Ok(Some(Event::SiteTunnel {
            tunnel: child_sa_name(body),
            up: false,
            detail: selectors,
            remote_ip: None,
            bytes_in: Some(bytes_in),
            bytes_out: Some(bytes_out),
        }));
    };
    Ok(Some(Event::BytesCounted {
        instance: None,
        virtual_ip: Some(virtual_ip),
        bytes_in,
        bytes_out,
        cumulative: false,
    }))
}

/// The peer's side of `local === remote` traffic selectors.
fn remote_selectors<'a>(message: &'a str, selectors: &'a str) -> Result<&'a str, ParseError> {
    match selectors.split_once(" === ") {
        Some((_, remote)) => Ok(remote),
        None => Err(ParseError::at_slice(
            message,
            selectors,
            "traffic selectors local === remote",
        )),
    }
}

/// A CHILD_SA set up:
///
/// ```text
/// CHILD_SA site-lyon{3} established with SPIs c8a1f2e3_i 0b7d6e5f_o and TS 192.168.50.0/24 === 192.168.80.0/24
/// ```
///
/// A road-warrior's CHILD_SA (a single host on the peer's side) adds
/// nothing to the session its IKE_SA started; a site's is the site
/// tunnel coming up. A rekey logs the line again with a new id: the tunnel
/// is up again, never twice a new link.
fn child_sa_established<'a>(
    message: &'a str,
    body: &'a str,
) -> Result<Option<Event<'a>>, ParseError> {
    let Some((_, selectors)) = body.split_once(" and TS ") else {
        return Ok(None);
    };
    if !body[..body.len() - selectors.len()].contains(" established with SPIs ") {
        return Ok(None);
    }
    let remote = remote_selectors(message, selectors)?;
    if single_host_selector(message, remote)?.is_some() {
        return Ok(None);
    }
    Ok(Some(Event::SiteTunnel {
        tunnel: child_sa_name(body),
        up: true,
        detail: selectors,
        remote_ip: None,
        bytes_in: None,
        bytes_out: None,
    }))
}

/// `site-lyon` of `closing CHILD_SA site-lyon{3} ...` or `CHILD_SA
/// site-lyon{3} established ...`: the connection, without its `{id}`.
fn child_sa_name(body: &str) -> &str {
    let after = body.strip_prefix("closing ").unwrap_or(body);
    let after = after.strip_prefix("CHILD_SA ").unwrap_or(after);
    let end = after.find(['{', ' ']).unwrap_or(after.len());
    &after[..end]
}

/// `closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (5242880 bytes) and TS `
/// up to the traffic selectors: the inbound and outbound byte counts, when
/// the line has them.
fn child_sa_counts(body: &str) -> PResult<'_, Option<(u64, u64)>> {
    let (rest, _) = expect(
        "closing CHILD_SA name{id} with SPIs",
        (
            tag("closing CHILD_SA "),
            take_while1(|c: char| c != '{' && c != ' '),
            delimited(char('{'), digit1, char('}')),
            tag(" with SPIs "),
        ),
    )(body)?;
    let (rest, bytes_in) = spi_with_bytes("_i", "the inbound byte count")(rest)?;
    let (rest, _) = expect("a space between the SPIs", char(' '))(rest)?;
    let (rest, bytes_out) = spi_with_bytes("_o", "the outbound byte count")(rest)?;
    let (rest, _) = expect("` and TS ` after the SPIs", tag(" and TS "))(rest)?;
    Ok((rest, bytes_in.zip(bytes_out)))
}

/// `c8a1f2e3_i (1048576 bytes)`: an SPI, its direction, and the bytes the
/// SA carried that way when the line counts them.
fn spi_with_bytes<'a>(
    direction: &'static str,
    count: &'static str,
) -> impl FnMut(&'a str) -> PResult<'a, Option<u64>> {
    move |input| {
        let (rest, _) = expect(
            "an SPI in hex with its direction",
            (hex_digit1, tag(direction)),
        )(input)?;
        // Once ` (` opens a count, the count must be whole: a broken one is
        // an error, not a line without counts.
        opt(preceded(
            tag(" ("),
            cut(terminated(
                expect(count, map_res(digit1, str::parse::<u64>)),
                expect("` bytes)` after the count", tag(" bytes)")),
            )),
        ))
        .parse(rest)
    }
}

/// `0.0.0.0/0 10.10.10.1/32[tcp/443]`: the first selector that is a
/// single host (`/32`, `/128`), with its protocol and port stripped.
fn single_host_selector(message: &str, selectors: &str) -> Result<Option<IpAddr>, ParseError> {
    for selector in selectors.split(' ') {
        let subnet = selector.split('[').next().unwrap_or(selector);
        let Some((address, prefix)) = subnet.split_once('/') else {
            continue;
        };
        if prefix != "32" && prefix != "128" {
            continue;
        }
        return address
            .parse()
            .map(Some)
            .map_err(|_| ParseError::at_slice(message, address, "a traffic selector's address"));
    }
    Ok(None)
}

/// `received DELETE for IKE_SA rw-techs[7]` (the peer leaves) or
/// `deleting IKE_SA rw-techs[7] between ...` (the gateway ends it): the
/// session ends. `rest` is what follows `IKE_SA `.
fn ike_sa_deleted<'a>(
    message: &'a str,
    body: &'a str,
    rest: &'a str,
    reason: EndReason,
) -> Result<Event<'a>, ParseError> {
    let (_, sa) = ike_sa(rest).map_err(|e| to_parse_error(message, e))?;
    Ok(Event::SessionEnded {
        user: None,
        instance: sa.instance,
        reason,
        detail: body,
        bytes_in: None,
        bytes_out: None,
        duration_s: None,
        remote_ip: None,
        tunnel: Some(sa.connection),
    })
}

/// A failed authentication, and the identity it names when it quotes one:
///
/// ```text
/// received AUTHENTICATION_FAILED notify error
/// EAP method EAP_MSCHAPV2 failed for peer 192.168.1.23
/// authentication of 'CN=j.martin, O=Example' with RSA signature failed
/// XAuth authentication of 'j.martin' failed
/// ```
///
/// `None` when the body is no failure; `Some(None)` for a failure that
/// quotes no identity.
fn authentication_failed(body: &str) -> Option<Option<&str>> {
    if body.starts_with("received AUTHENTICATION_FAILED notify error") {
        return Some(None);
    }
    let is_eap_method =
        body.starts_with("EAP method ") || body.starts_with("EAP vendor specific method ");
    if is_eap_method && body.contains(" failed") {
        return Some(None);
    }
    let (_, after) = body.split_once("authentication of '")?;
    if !body.ends_with(" failed") {
        return None;
    }
    let end = after.rfind('\'')?;
    Some(Some(&after[..end]))
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

    #[test]
    fn app_names() {
        for app in ["charon", "charon-systemd", "ipsec", "strongswan"] {
            assert!(is_strongswan_app(app), "{app}");
        }
        for app in ["pluto", "charon-nm", "openvpn", ""] {
            assert!(!is_strongswan_app(app), "{app}");
        }
    }

    #[test]
    fn thread_prefix_gives_thread_and_subsystem() {
        assert_eq!(
            thread_prefix("14[IKE] IKE_SA deleted"),
            Ok((
                "IKE_SA deleted",
                ThreadPrefix {
                    thread: "14",
                    subsystem: "IKE"
                }
            ))
        );
        assert_eq!(
            thread_prefix("05[CFG1] selected peer config 'rw-techs'"),
            Ok((
                "selected peer config 'rw-techs'",
                ThreadPrefix {
                    thread: "05",
                    subsystem: "CFG"
                }
            ))
        );
        assert_eq!(
            thread_prefix("16[IKE] <rw-techs|7> IKE_SA deleted"),
            Ok((
                "IKE_SA deleted",
                ThreadPrefix {
                    thread: "16",
                    subsystem: "IKE"
                }
            ))
        );
    }

    #[test]
    fn message_without_thread_prefix_is_nothing() {
        nothing("Starting IKE charon daemon (strongSwan 5.9.13, Linux 6.1.0, x86_64)");
        nothing("IKE[14] received EAP identity 'j.martin'");
        nothing("14[IKE]received EAP identity 'j.martin'");
        nothing("");
    }

    #[test]
    fn eap_identity_authenticates_the_user_on_its_thread() {
        assert_eq!(
            event("13[IKE] received EAP identity 'j.martin'"),
            Event::UserAuthenticated {
                user: "j.martin",
                instance: Some("13"),
            }
        );
    }

    #[test]
    fn eap_identity_with_a_quote_runs_to_the_last_quote() {
        assert_eq!(
            event("13[IKE] received EAP identity 'l.o'brien@example.org'"),
            Event::UserAuthenticated {
                user: "l.o'brien@example.org",
                instance: Some("13"),
            }
        );
    }

    #[test]
    fn empty_eap_identity_is_nothing() {
        nothing("13[IKE] received EAP identity ''");
    }

    #[test]
    fn unquoted_eap_identity_is_an_error() {
        let err = message("13[IKE] received EAP identity j.martin").unwrap_err();
        assert_eq!(err.expected, "a quoted EAP identity");
        assert_eq!(err.column, 31);
        assert_eq!(err.found, "j.martin");
    }

    #[test]
    fn assigning_virtual_ip_gives_the_address_on_its_thread() {
        assert_eq!(
            event("14[IKE] assigning virtual IP 10.10.10.1 to peer 'j.martin'"),
            Event::AddressAssigned {
                user: Some("j.martin"),
                instance: "14",
                virtual_ip: ip("10.10.10.1"),
            }
        );
        assert_eq!(
            event("14[IKE] assigning virtual IP fd00:10::1 to peer 'CN=j.martin, O=Example'"),
            Event::AddressAssigned {
                user: Some("CN=j.martin, O=Example"),
                instance: "14",
                virtual_ip: ip("fd00:10::1"),
            }
        );
    }

    #[test]
    fn bad_virtual_ip_names_the_field_and_column() {
        let err =
            message("14[IKE] assigning virtual IP 10.10.10.300 to peer 'j.martin'").unwrap_err();
        assert_eq!(err.expected, "the virtual IP address");
        assert_eq!(err.column, 30);
        assert_eq!(err.found, "10.10.10.300 to peer 'j.");
    }

    #[test]
    fn ike_sa_established_starts_a_session() {
        assert_eq!(
            event("14[IKE] IKE_SA rw-techs[7] established between 192.0.2.10[vpn-nantes.example.net]...198.51.100.61[192.168.1.23]"),
            Event::SessionStarted {
                user: "192.168.1.23",
                instance: "rw-techs[7]",
                remote_ip: Some(ip("198.51.100.61")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("rw-techs"),
                correlation: Some("14"),
            }
        );
    }

    #[test]
    fn peer_id_as_a_dn_with_spaces_commas_and_brackets() {
        assert_eq!(
            event("08[IKE] IKE_SA rw-certs[3] established between 192.0.2.10[C=FR, O=Example, CN=vpn-gw]...203.0.113.7[C=FR, O=Example [Lab], CN=j.martin]"),
            Event::SessionStarted {
                user: "C=FR, O=Example [Lab], CN=j.martin",
                instance: "rw-certs[3]",
                remote_ip: Some(ip("203.0.113.7")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("rw-certs"),
                correlation: Some("08"),
            }
        );
    }

    #[test]
    fn identities_holding_dots_and_an_ipv6_peer() {
        assert_eq!(
            event("09[IKE] IKE_SA rw-techs[21] established between 2001:db8::10[CN=gw...paris]...2001:db8:7::61[s.bernard@example.org]"),
            Event::SessionStarted {
                user: "s.bernard@example.org",
                instance: "rw-techs[21]",
                remote_ip: Some(ip("2001:db8:7::61")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("rw-techs"),
                correlation: Some("09"),
            }
        );
        assert_eq!(
            event("09[IKE] IKE_SA rw-techs[22] established between 192.0.2.10[gw]...198.51.100.8[CN=a...b]"),
            Event::SessionStarted {
                user: "CN=a...b",
                instance: "rw-techs[22]",
                remote_ip: Some(ip("198.51.100.8")),
                remote_port: None,
                virtual_ip: None,
                tunnel: Some("rw-techs"),
                correlation: Some("09"),
            }
        );
    }

    #[test]
    fn bad_peer_address_names_the_field_and_column() {
        let err = message("14[IKE] IKE_SA rw-techs[7] established between 192.0.2.10[gw]...198.51.100.610[192.168.1.23]").unwrap_err();
        assert_eq!(err.expected, "the peer's IP address after `...`");
        assert_eq!(err.column, 65);
        assert_eq!(err.found, "198.51.100.610");

        let err = message(
            "14[IKE] IKE_SA rw-techs[7] established between 192.0.2.10[gw] 198.51.100.61[x]",
        )
        .unwrap_err();
        assert_eq!(
            err.expected,
            "local and peer endpoints address[id]...address[id]"
        );
        assert_eq!(err.column, 48);
    }

    #[test]
    fn closing_child_sa_counts_its_bytes_by_virtual_ip() {
        assert_eq!(
            event("11[IKE] closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (5242880 bytes) and TS 0.0.0.0/0 === 10.10.10.1/32"),
            Event::BytesCounted {
                instance: None,
                virtual_ip: Some(ip("10.10.10.1")),
                bytes_in: 1048576,
                bytes_out: 5242880,
                cumulative: false,
            }
        );
    }

    #[test]
    fn closing_child_sa_takes_the_first_single_host_selector() {
        assert_eq!(
            event("11[IKE] closing CHILD_SA rw-techs{14} with SPIs c8a1f2e3_i (0 bytes) 0b7d6e5f_o (96 bytes) and TS 192.168.50.0/24 192.168.60.0/24 === 10.10.0.0/16 10.10.10.4/32[tcp/443] fd00::4/128"),
            Event::BytesCounted {
                instance: None,
                virtual_ip: Some(ip("10.10.10.4")),
                bytes_in: 0,
                bytes_out: 96,
                cumulative: false,
            }
        );
    }

    #[test]
    fn closing_site_child_sa_is_the_site_tunnel_down_with_its_bytes() {
        assert_eq!(
            event("11[IKE] closing CHILD_SA site-lyon{3} with SPIs c8a1f2e3_i (400 bytes) 0b7d6e5f_o (500 bytes) and TS 192.168.50.0/24 === 192.168.80.0/24"),
            Event::SiteTunnel {
                tunnel: "site-lyon",
                up: false,
                detail: "192.168.50.0/24 === 192.168.80.0/24",
                remote_ip: None,
                bytes_in: Some(400),
                bytes_out: Some(500),
            }
        );
    }

    #[test]
    fn site_child_sa_established_is_the_site_tunnel_up() {
        assert_eq!(
            event("07[IKE] CHILD_SA site-lyon{3} established with SPIs c1d2e3f4_i 0a0b0c0d_o and TS 192.168.50.0/24 === 192.168.80.0/24 192.168.81.0/24"),
            Event::SiteTunnel {
                tunnel: "site-lyon",
                up: true,
                detail: "192.168.50.0/24 === 192.168.80.0/24 192.168.81.0/24",
                remote_ip: None,
                bytes_in: None,
                bytes_out: None,
            }
        );
        // Without ` === ` between the sides the selectors are damaged.
        let line = "07[IKE] CHILD_SA site-lyon{3} established with SPIs c1d2e3f4_i 0a0b0c0d_o and TS 192.168.50.0/24";
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "traffic selectors local === remote");
        assert_eq!(err.column, line.find("192.168.50.0/24").unwrap() + 1);
    }

    #[test]
    fn closing_expired_child_sa_is_nothing() {
        nothing("07[IKE] closing expired CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i 0b7d6e5f_o and TS 0.0.0.0/0 === 10.10.10.1/32");
    }

    #[test]
    fn bad_byte_count_names_the_field_and_column() {
        let err = message("11[IKE] closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (52428x bytes) and TS 0.0.0.0/0 === 10.10.10.1/32").unwrap_err();
        assert_eq!(err.expected, "` bytes)` after the count");
        assert_eq!(err.column, 93);

        let err = message("11[IKE] closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1048576 bytes) 0b7d6e5f_o (99999999999999999999 bytes) and TS 0.0.0.0/0 === 10.10.10.1/32").unwrap_err();
        assert_eq!(err.expected, "the outbound byte count");
        assert_eq!(err.column, 88);
    }

    #[test]
    fn bad_selector_address_names_the_field_and_column() {
        let err = message("11[IKE] closing CHILD_SA rw-techs{12} with SPIs c8a1f2e3_i (1 bytes) 0b7d6e5f_o (2 bytes) and TS 0.0.0.0/0 === 10.10.10.999/32").unwrap_err();
        assert_eq!(err.expected, "a traffic selector's address");
        assert_eq!(err.column, 112);
        assert_eq!(err.found, "10.10.10.999");
    }

    #[test]
    fn delete_received_from_the_peer_ends_the_session() {
        assert_eq!(
            event("16[IKE] received DELETE for IKE_SA rw-techs[7]"),
            Event::SessionEnded {
                user: None,
                instance: "rw-techs[7]",
                reason: EndReason::UserExit,
                detail: "received DELETE for IKE_SA rw-techs[7]",
                bytes_in: None,
                bytes_out: None,
                duration_s: None,
                remote_ip: None,
                tunnel: Some("rw-techs"),
            }
        );
    }

    #[test]
    fn gateway_deleting_the_ike_sa_ends_it_for_an_unknown_reason() {
        assert_eq!(
            event("16[IKE] deleting IKE_SA rw-techs[7] between 192.0.2.10[vpn-nantes.example.net]...198.51.100.61[192.168.1.23]"),
            Event::SessionEnded {
                user: None,
                instance: "rw-techs[7]",
                reason: EndReason::Unknown,
                detail: "deleting IKE_SA rw-techs[7] between 192.0.2.10[vpn-nantes.example.net]...198.51.100.61[192.168.1.23]",
                bytes_in: None,
                bytes_out: None,
                duration_s: None,
                remote_ip: None,
                tunnel: Some("rw-techs"),
            }
        );
    }

    #[test]
    fn delete_of_a_badly_named_ike_sa_is_an_error() {
        let err = message("16[IKE] received DELETE for IKE_SA rw-techs[x]").unwrap_err();
        assert_eq!(err.expected, "an IKE_SA name[unique id]");
        assert_eq!(err.column, 36);
    }

    #[test]
    fn authentication_failures() {
        assert_eq!(
            event("06[IKE] received AUTHENTICATION_FAILED notify error"),
            Event::AuthFailed {
                user: None,
                instance: Some("06"),
                detail: "received AUTHENTICATION_FAILED notify error",
            }
        );
        assert_eq!(
            event("12[IKE] EAP method EAP_MSCHAPV2 failed for peer 192.168.1.23"),
            Event::AuthFailed {
                user: None,
                instance: Some("12"),
                detail: "EAP method EAP_MSCHAPV2 failed for peer 192.168.1.23",
            }
        );
        assert_eq!(
            event("12[IKE] authentication of 'CN=j.martin, O=Example' with RSA signature failed"),
            Event::AuthFailed {
                user: Some("CN=j.martin, O=Example"),
                instance: Some("12"),
                detail: "authentication of 'CN=j.martin, O=Example' with RSA signature failed",
            }
        );
        assert_eq!(
            event("03[IKE] XAuth authentication of 'j.martin' failed"),
            Event::AuthFailed {
                user: Some("j.martin"),
                instance: Some("03"),
                detail: "XAuth authentication of 'j.martin' failed",
            }
        );
    }

    #[test]
    fn lines_without_a_session_fact_are_nothing() {
        for line in [
            "09[IKE] 198.51.100.61 is initiating an IKE_SA",
            "14[IKE] EAP method EAP_MSCHAPV2 succeeded, MSK established",
            "14[IKE] authentication of '192.168.1.23' with EAP successful",
            "14[IKE] CHILD_SA rw-techs{12} established with SPIs c8a1f2e3_i 0b7d6e5f_o and TS 0.0.0.0/0 === 10.10.10.1/32",
            "10[IKE] inbound CHILD_SA rw-techs{13} established with SPIs cf00d1e2_i 0e9a8b7c_o and TS 0.0.0.0/0 === 10.10.10.1/32",
            "11[IKE] outbound CHILD_SA rw-techs{13} established with SPIs cf00d1e2_i 0e9a8b7c_o and TS 0.0.0.0/0 === 10.10.10.1/32",
            "16[IKE] IKE_SA deleted",
            "16[CFG] lease 10.10.10.1 by 'j.martin' went offline",
            "11[IKE] sending DELETE for ESP CHILD_SA with SPI c8a1f2e3",
            "11[IKE] received DELETE for ESP CHILD_SA with SPI 0b7d6e5f",
            "09[NET] received packet: from 198.51.100.61[500] to 192.0.2.10[500] (1032 bytes)",
            "14[CFG] assigning new lease to 'j.martin'",
            "12[CFG] looking for peer configs matching 192.0.2.10[%any]...198.51.100.61[192.168.1.23]",
        ] {
            nothing(line);
        }
    }

    /// The corpus, message by message: the line number in the file and the
    /// event kind each charon line gives (kernel lines are not charon's).
    #[test]
    fn corpus_lines_give_their_events_and_never_an_error() {
        let corpus = include_str!("../../fixtures/corpus/strongswan/charon-syslog.log");
        let mut kinds = Vec::new();
        for (n, line) in corpus.lines().enumerate() {
            let Some((_, msg)) = line.split_once(" charon: ") else {
                continue;
            };
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
                (8, "user_authenticated"),
                (15, "address_assigned"),
                (18, "session_started"),
                (25, "auth_failed"),
                (28, "bytes_counted"),
                (34, "bytes_counted"),
                (37, "session_ended"),
                (38, "session_ended"),
            ]
        );
    }

    #[test]
    fn corpus_second_child_sa_bytes() {
        assert_eq!(
            event("15[IKE] closing CHILD_SA rw-techs{13} with SPIs cf00d1e2_i (262144 bytes) 0e9a8b7c_o (786432 bytes) and TS 0.0.0.0/0 === 10.10.10.1/32"),
            Event::BytesCounted {
                instance: None,
                virtual_ip: Some(ip("10.10.10.1")),
                bytes_in: 262144,
                bytes_out: 786432,
                cumulative: false,
            }
        );
    }

    #[test]
    fn ike_name_in_the_prefix_leaves_the_body_whole() {
        assert_eq!(
            event("16[IKE] <rw-techs|7> received DELETE for IKE_SA rw-techs[7]"),
            Event::SessionEnded {
                user: None,
                instance: "rw-techs[7]",
                reason: EndReason::UserExit,
                detail: "received DELETE for IKE_SA rw-techs[7]",
                bytes_in: None,
                bytes_out: None,
                duration_s: None,
                remote_ip: None,
                tunnel: Some("rw-techs"),
            }
        );
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(text in any::<String>()) {
            let _ = message(&text);
        }

        /// Bodies built from the words of the lines read, so that the
        /// parsers get past their first tags; an error points inside the
        /// message.
        #[test]
        fn near_miss_bodies_never_panic(
            words in proptest::collection::vec(
                prop_oneof![
                    Just("received EAP identity "), Just("assigning virtual IP "),
                    Just("IKE_SA "), Just("closing CHILD_SA "), Just("received DELETE for IKE_SA "),
                    Just("deleting IKE_SA "), Just(" established between "), Just("..."),
                    Just("["), Just("]"), Just("{12}"), Just(" with SPIs "), Just("c8a1f2e3_i"),
                    Just(" ("), Just(" bytes)"), Just(" and TS "), Just(" === "), Just("/32"),
                    Just("'"), Just("10.10.10.1"), Just("é"), Just(" failed"), Just("7"),
                ],
                0..12,
            )
        ) {
            let text = format!("14[IKE] {}", words.concat());
            if let Err(e) = message(&text) {
                prop_assert!(e.column >= 1 && e.column <= text.len() + 1, "{e}");
            }
        }
    }
}
