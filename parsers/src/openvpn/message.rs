//! OpenVPN server messages, as the server writes them to its log or syslog.
//!
//! A message about one client starts with that client's prefix: its real
//! address before authentication, `CN/address` after.
//!
//! ```text
//! 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734
//! j.martin/198.51.100.23:51734 MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)
//! j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting
//! ```
//!
//! The CN is whatever the certificate says: it may hold spaces, commas or
//! slashes, and is `UNDEF` for clients authenticated by username only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use memchr::memmem::Finder;

use crate::error::ParseError;
use crate::event::{EndReason, Event};

/// A client's prefix: who, and from which real address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ClientPrefix<'a> {
    /// `None` before the client authenticated.
    common_name: Option<&'a str>,
    /// The `ip:port` text: the key of the client's instance.
    address: &'a str,
}

/// Parses `ip:port` as OpenVPN prints a real address (`[v6]:port` too).
fn real_address(text: &str) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    // OpenVPN prints IPv6 peers without brackets: `2001:db8::7:51234`.
    let (ip, port) = text.rsplit_once(':')?;
    Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
}

/// Where `text`, meant as a client's `ip:port`, goes wrong: the part to
/// point at and what belonged there. `None` when it reads as an address.
///
/// The address is read left to right, so the first damaged part is named:
/// an IPv4 part above 255 (`192.0.2.400:6000`), then a port above 65535 or
/// with more than digits (`192.0.2.40:99999`, `192.0.2.40:6000x`).
fn address_fault(text: &str) -> Option<(&str, &'static str)> {
    if real_address(text).is_some() {
        return None;
    }
    let Some((ip, port)) = text.rsplit_once(':') else {
        return Some((text, "a client address ip:port"));
    };

    // IPv6 peers come in brackets or bare (`2001:db8::7:51234`).
    if ip.starts_with('[') || ip.contains(':') {
        let bare = ip.strip_prefix('[').and_then(|ip| ip.strip_suffix(']'));
        if bare.unwrap_or(ip).parse::<Ipv6Addr>().is_err() {
            return Some((ip, "an IPv6 address"));
        }
    } else {
        for part in ip.split('.') {
            let digits = !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
            if digits && part.len() <= 3 && part.parse::<u8>().is_err() {
                return Some((part, "an IPv4 address part from 0 to 255"));
            }
        }
        if ip.parse::<Ipv4Addr>().is_err() {
            return Some((ip, "an IPv4 address"));
        }
    }

    if !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return Some((port, "a port number from 0 to 65535"));
    }
    Some((text, "a client address ip:port"))
}

/// Whether `word`, a client prefix's address that did not read, was meant
/// as one: a digit or `[` then a `.` or `:` somewhere, or a letter from a
/// to f then a `:` (a bare IPv6 address). A CN or a word of server chatter
/// (`MULTI:`, `UDPv4`) is not.
fn looks_like_address(word: &str) -> bool {
    let Some(&first) = word.as_bytes().first() else {
        return false;
    };
    if first.is_ascii_digit() || first == b'[' {
        word.contains(['.', ':'])
    } else {
        first.is_ascii_hexdigit() && word.contains(':')
    }
}

/// The error of a message that reads as a client's session line (a
/// connect, an end, an address, ...) but whose prefix's address is
/// damaged: `dave/192.0.2.40:99999 SIGTERM[soft,remote-exit] ...`. `None`
/// for any other message, which is server chatter.
///
/// Only the first word that could be the prefix's address is tried (the
/// first word, or the part after the last `/` of a later word, as a CN may
/// hold spaces), so a long line is read once.
fn damaged_prefix(msg: &str) -> Option<ParseError> {
    let mut start = 0;
    for (index, word) in msg.split(' ').enumerate() {
        let word_start = start;
        start += word.len() + 1;
        let (common_name, address) = match word.rfind('/') {
            Some(slash) => (Some(&msg[..word_start + slash]), &word[slash + 1..]),
            None if index == 0 => (None, word),
            None => continue,
        };
        if !looks_like_address(address) {
            continue;
        }

        // The rest must read as a message about a client (a damaged one
        // counts too); if not, the word was no prefix and the line is
        // chatter.
        let body = msg.get(start..)?;
        let prefix = ClientPrefix {
            common_name,
            address,
        };
        let is_client_line = !matches!(client_message(msg, prefix, body), Ok(None));
        let (part, expected) = address_fault(address).filter(|_| is_client_line)?;
        return Some(address_error(msg, part, expected));
    }
    None
}

/// Splits a message into its client prefix and the rest.
///
/// `CN/ip:port rest`: the CN is everything before the first `/` that is
/// followed by an address and a space, so a CN with spaces or slashes
/// still reads whole.
fn client_prefix(msg: &str) -> Option<(ClientPrefix<'_>, &str)> {
    let first_word = &msg[..msg.bytes().position(|b| b == b' ').unwrap_or(msg.len())];
    if real_address(first_word).is_some() {
        let rest = &msg[first_word.len()..];
        return Some((
            ClientPrefix {
                common_name: None,
                address: first_word,
            },
            rest.strip_prefix(' ').unwrap_or(rest),
        ));
    }
    // The first space after the slash being tried: slashes of one word
    // share it, so a long word of slashes is scanned once, not once per
    // slash.
    let mut next_space = 0;
    for (slash, _) in msg.match_indices('/') {
        if next_space <= slash {
            match msg[slash + 1..].find(' ') {
                Some(offset) => next_space = slash + 1 + offset,
                // No space after this slash, so none after the later ones.
                None => return None,
            }
        }
        let address = &msg[slash + 1..next_space];
        if slash > 0 && address.len() <= LONGEST_ADDRESS && real_address(address).is_some() {
            return Some((
                ClientPrefix {
                    common_name: Some(&msg[..slash]),
                    address,
                },
                &msg[next_space + 1..],
            ));
        }
    }
    None
}

/// The longest `ip:port` OpenVPN prints (an IPv6 address with an embedded
/// IPv4 one, a scope and a port, in brackets), with room to spare: a longer
/// word is not read as an address.
const LONGEST_ADDRESS: usize = 96;

/// Reads an OpenVPN server message. `Ok(None)` is a message understood as
/// carrying no session fact (`PUSH_REQUEST`, `TLS: soft reset`, ...); a
/// client's session message with a damaged address is an error, so the
/// line is kept as unparsed rather than read as chatter.
pub fn message(msg: &str) -> Result<Option<Event<'_>>, ParseError> {
    match client_prefix(msg) {
        Some((prefix, body)) => client_message(msg, prefix, body),
        None => match damaged_prefix(msg) {
            Some(err) => Err(err),
            None => Ok(server_message(msg)),
        },
    }
}

/// `[CN] Peer Connection Initiated with [AF_INET]198.51.100.23:51734`: the
/// CN, and the peer's address as written after `with`.
fn peer_connection_initiated(body: &str) -> Option<(&str, &str)> {
    static INITIATED: LazyLock<Finder<'static>> =
        LazyLock::new(|| Finder::new("] Peer Connection Initiated with "));
    let inner = body.strip_prefix('[')?;
    let end = INITIATED.find(inner.as_bytes())?;
    Some((&inner[..end], &inner[end + INITIATED.needle().len()..]))
}

/// Checks the peer's address of a `Peer Connection Initiated with` line,
/// written `[AF_INET]198.51.100.23:51734` (`[AF_INET6]` for IPv6), possibly
/// followed by ` (via ...)` on a multihomed server. It is the prefix's
/// address again, so a damaged one means a damaged line, not another port.
/// A form without the family tag is not checked.
fn peer_address(msg: &str, tagged: &str) -> Result<(), ParseError> {
    let Some(text) = tagged
        .strip_prefix("[AF_INET]")
        .or_else(|| tagged.strip_prefix("[AF_INET6]"))
    else {
        return Ok(());
    };
    let text = &text[..text.find(' ').unwrap_or(text.len())];
    match address_fault(text) {
        Some((part, expected)) => Err(address_error(msg, part, expected)),
        None => Ok(()),
    }
}

/// Whether `needle`, a searcher built once, occurs in `body`.
fn has(body: &str, needle: &Finder<'_>) -> bool {
    needle.find(body.as_bytes()).is_some()
}

/// `SIGTERM[soft,remote-exit] received, client-instance exiting`: the
/// signal's reason, when the line is a client instance's end.
fn client_signal(body: &str) -> Option<&str> {
    if !body.starts_with("SIG") {
        return None;
    }
    let open = body.find('[')?;
    let close = body[open..].find(']')? + open;
    let rest = &body[close + 1..];
    if !rest.starts_with(" received, client-instance ") {
        return None;
    }
    let inside = &body[open + 1..close];
    Some(inside.split_once(',').map_or("", |(_, reason)| reason))
}

fn signal_reason(reason: &str) -> EndReason {
    match reason {
        "remote-exit" | "delayed-exit" => EndReason::UserExit,
        "ping-restart" | "ping-exit" | "inactive" => EndReason::Timeout,
        "connection-reset" | "tls-error" | "connection-reset-inetd" => EndReason::ConnectionLost,
        r if r.contains("kill") || r.contains("management") => EndReason::Admin,
        _ => EndReason::Unknown,
    }
}

/// A value between single quotes after `lead`: `... username 'x' ...`.
fn quoted_after<'a>(body: &'a str, lead: &Finder<'_>) -> Option<&'a str> {
    let start = lead.find(body.as_bytes())? + lead.needle().len();
    let rest = &body[start..];
    let inner = rest.strip_prefix('\'')?;
    let end = inner.rfind('\'')?;
    Some(&inner[..end])
}

fn address_error(msg: &str, value: &str, what: &'static str) -> ParseError {
    ParseError::at_slice(msg, value, what)
}

fn client_message<'a>(
    msg: &'a str,
    prefix: ClientPrefix<'a>,
    body: &'a str,
) -> Result<Option<Event<'a>>, ParseError> {
    let instance = prefix.address;
    let user = prefix.common_name;

    if let Some((cn, peer)) = peer_connection_initiated(body) {
        peer_address(msg, peer)?;
        let remote = real_address(instance);
        return Ok(Some(Event::SessionStarted {
            user: cn,
            instance,
            remote_ip: remote.map(|a| a.ip()),
            remote_port: remote.map(|a| a.port()),
            virtual_ip: None,
            tunnel: None,
            correlation: None,
        }));
    }

    if let Some(rest) = body.strip_prefix("MULTI_sva: pool returned ") {
        // `IPv4=10.8.0.6, IPv6=(Not enabled)`: take the IPv4 address, else IPv6.
        for part in rest.split(", ") {
            let Some((_, value)) = part.split_once('=') else {
                continue;
            };
            if value.starts_with('(') {
                continue;
            }
            return match value.parse::<IpAddr>() {
                Ok(virtual_ip) => Ok(Some(Event::AddressAssigned {
                    user,
                    instance,
                    virtual_ip,
                })),
                Err(_) => Err(address_error(
                    msg,
                    value,
                    "an IP address after IPv4= or IPv6=",
                )),
            };
        }
        return Ok(None);
    }

    if let Some(rest) = body.strip_prefix("MULTI: Learn: ") {
        // A route to a client subnet (iroute) or a MAC in TAP mode is not
        // the client's own address.
        let learned = rest.split(" -> ").next().unwrap_or("");
        return match learned.parse::<IpAddr>() {
            Ok(virtual_ip) => Ok(Some(Event::AddressAssigned {
                user,
                instance,
                virtual_ip,
            })),
            // Written as a plain IPv4 address and still not one: damaged.
            Err(_)
                if !learned.is_empty()
                    && learned.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
            {
                Err(address_error(
                    msg,
                    learned,
                    "the learned virtual IP address",
                ))
            }
            Err(_) => Ok(None),
        };
    }

    if body.starts_with("MULTI: primary virtual IP for ") {
        let value = body.rsplit(": ").next().unwrap_or("");
        return match value.parse::<IpAddr>() {
            Ok(virtual_ip) => Ok(Some(Event::AddressAssigned {
                user,
                instance,
                virtual_ip,
            })),
            Err(_) => Err(address_error(msg, value, "the primary virtual IP address")),
        };
    }

    // 2.6.14 and later write the CC-EEN prefix; 2.6.3 (Debian 12) does not.
    if body == "CC-EEN exit message received by peer" || body == "Exit message received by peer" {
        return Ok(Some(ended(user, instance, EndReason::UserExit, body)));
    }
    if let Some(reason) = client_signal(body) {
        if reason == "auth-failure" {
            return Ok(Some(Event::AuthFailed {
                user,
                instance: Some(instance),
                detail: body,
            }));
        }
        return Ok(Some(ended(user, instance, signal_reason(reason), body)));
    }
    static INACTIVITY: LazyLock<Finder<'static>> =
        LazyLock::new(|| Finder::new("Inactivity timeout (--"));
    if has(body, &INACTIVITY)
        && (body.contains("Inactivity timeout (--ping-restart)")
            || body.contains("Inactivity timeout (--inactive)")
            || body.contains("Inactivity timeout (--ping-exit)"))
    {
        return Ok(Some(ended(user, instance, EndReason::Timeout, body)));
    }
    if body.starts_with("Connection reset, restarting") {
        return Ok(Some(ended(user, instance, EndReason::ConnectionLost, body)));
    }

    static NEW_CONNECTION: LazyLock<Finder<'static>> =
        LazyLock::new(|| Finder::new("MULTI: new connection by client "));
    if body.starts_with("MULTI: new connection by client ") {
        if let Some(cn) =
            quoted_after(body, &NEW_CONNECTION).and_then(|q| q.split("' will cause").next())
        {
            return Ok(Some(Event::ClientReplaced { user: cn, instance }));
        }
    }

    static AUTHENTICATED: LazyLock<Finder<'static>> = LazyLock::new(|| {
        Finder::new("TLS: Username/Password authentication succeeded for username ")
    });
    if let Some(name) = quoted_after(body, &AUTHENTICATED) {
        let name = name.split('\'').next().unwrap_or(name);
        return Ok(Some(Event::UserAuthenticated {
            user: name,
            instance: Some(instance),
        }));
    }
    static AUTH_FAILED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("AUTH_FAILED"));
    if body.starts_with("TLS Auth Error:") || has(body, &AUTH_FAILED) {
        return Ok(Some(Event::AuthFailed {
            user,
            instance: Some(instance),
            detail: body,
        }));
    }
    Ok(None)
}

fn ended<'a>(
    user: Option<&'a str>,
    instance: &'a str,
    reason: EndReason,
    detail: &'a str,
) -> Event<'a> {
    Event::SessionEnded {
        user,
        instance,
        reason,
        detail,
        bytes_in: None,
        bytes_out: None,
        duration_s: None,
        remote_ip: None,
        tunnel: None,
    }
}

/// Messages about the server itself, or from helpers that log no client
/// prefix.
fn server_message(msg: &str) -> Option<Event<'_>> {
    if msg.starts_with("SIG")
        && (msg.ends_with("received, process exiting")
            || msg.ends_with("received, process restarting"))
    {
        return Some(Event::GatewayStopped { detail: msg });
    }
    if msg == "Initialization Sequence Completed" {
        return Some(Event::GatewayStarted { detail: msg });
    }
    // pfSense/OPNsense auth helpers: `user 'j.martin' authenticated`.
    if let Some(rest) = msg.strip_prefix("user '") {
        if let Some(name) = rest.strip_suffix("' authenticated") {
            return Some(Event::UserAuthenticated {
                user: name,
                instance: None,
            });
        }
        if let Some((name, _)) = rest.split_once("' could not authenticate") {
            return Some(Event::AuthFailed {
                user: Some(name),
                instance: None,
                detail: msg,
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peer_connection_initiated_starts_a_session() {
        let e = message("198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::SessionStarted {
                user: "j.martin",
                instance: "198.51.100.23:51734",
                remote_ip: Some(ip("198.51.100.23")),
                remote_port: Some(51734),
                virtual_ip: None,
                tunnel: None,
                correlation: None,
            }
        );
    }

    #[test]
    fn common_name_with_comma_and_space() {
        let e = message("Le Gall, Jean-Marc/127.0.0.1:51127 MULTI_sva: pool returned IPv4=10.88.0.2, IPv6=(Not enabled)")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::AddressAssigned {
                user: Some("Le Gall, Jean-Marc"),
                instance: "127.0.0.1:51127",
                virtual_ip: ip("10.88.0.2"),
            }
        );
        let e = message("127.0.0.1:51127 [Le Gall, Jean-Marc] Peer Connection Initiated with [AF_INET]127.0.0.1:51127")
            .unwrap()
            .unwrap();
        assert!(matches!(
            e,
            Event::SessionStarted {
                user: "Le Gall, Jean-Marc",
                ..
            }
        ));
    }

    #[test]
    fn a_word_of_many_slashes_is_scanned_once() {
        // Each slash used to search for the next space again, and parse the
        // whole rest of the word as an address: a 64 KiB word of slashes
        // took a quadratic time. The CN still runs to the slash before the
        // address.
        let common_name = format!("x{}", "/".repeat(20_000));
        let line = format!("{common_name}/192.0.2.9:1194 CC-EEN exit message received by peer");
        let start = std::time::Instant::now();
        let e = message(&line).unwrap().unwrap();
        assert!(matches!(
            e,
            Event::SessionEnded { user: Some(user), instance: "192.0.2.9:1194", .. }
                if user == common_name
        ));
        let slashes = "/".repeat(20_000);
        assert_eq!(message(&slashes), Ok(None));
        assert_eq!(message(&format!("{slashes} x")), Ok(None));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn common_name_with_slash() {
        let e = message("ACME/Paris tech/192.0.2.9:1194 MULTI: Learn: 10.8.0.9 -> ACME/Paris tech/192.0.2.9:1194")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::AddressAssigned {
                user: Some("ACME/Paris tech"),
                instance: "192.0.2.9:1194",
                virtual_ip: ip("10.8.0.9"),
            }
        );
    }

    #[test]
    fn learn_of_a_damaged_address_is_an_error() {
        let line =
            "j.martin/198.51.100.23:51734 MULTI: Learn: 10.8.0.999 -> j.martin/198.51.100.23:51734";
        let err = message(line).unwrap_err();
        assert_eq!(err.column, line.find("10.8.0.999").unwrap() + 1);
        assert!(err.expected.contains("learned virtual IP"), "{err}");
        // A TAP-mode MAC address is not the client's IP, and no error.
        let mac = "j.martin/198.51.100.23:51734 MULTI: Learn: 52:54:00:12:34:56@0 -> j.martin/198.51.100.23:51734";
        assert_eq!(message(mac), Ok(None));
    }

    #[test]
    fn learn_of_a_subnet_is_not_an_address() {
        let got = message("j.martin/198.51.100.23:51734 MULTI: Learn: 10.8.0.0/24 -> j.martin/198.51.100.23:51734");
        assert_eq!(got, Ok(None));
    }

    #[test]
    fn primary_virtual_ip() {
        let e = message("j.martin/198.51.100.23:51734 MULTI: primary virtual IP for j.martin/198.51.100.23:51734: 10.8.0.6")
            .unwrap()
            .unwrap();
        assert!(
            matches!(e, Event::AddressAssigned { virtual_ip, .. } if virtual_ip == ip("10.8.0.6"))
        );
    }

    #[test]
    fn ends_and_their_reasons() {
        let cases = [
            (
                "SIGTERM[soft,remote-exit] received, client-instance exiting",
                EndReason::UserExit,
            ),
            ("CC-EEN exit message received by peer", EndReason::UserExit),
            ("Exit message received by peer", EndReason::UserExit),
            (
                "SIGTERM[soft,delayed-exit] received, client-instance exiting",
                EndReason::UserExit,
            ),
            (
                "[s.bernard] Inactivity timeout (--ping-restart), restarting",
                EndReason::Timeout,
            ),
            (
                "SIGUSR1[soft,ping-restart] received, client-instance restarting",
                EndReason::Timeout,
            ),
            (
                "Connection reset, restarting [0]",
                EndReason::ConnectionLost,
            ),
            (
                "SIGUSR1[soft,connection-reset] received, client-instance restarting",
                EndReason::ConnectionLost,
            ),
            (
                "SIGUSR1[soft,tls-error] received, client-instance restarting",
                EndReason::ConnectionLost,
            ),
        ];
        for (body, want) in cases {
            let line = format!("s.bernard/203.0.113.45:40112 {body}");
            match message(&line).unwrap() {
                Some(Event::SessionEnded {
                    user,
                    instance,
                    reason,
                    detail,
                    ..
                }) => {
                    assert_eq!(user, Some("s.bernard"), "{body}");
                    assert_eq!(instance, "203.0.113.45:40112", "{body}");
                    assert_eq!(reason, want, "{body}");
                    assert_eq!(detail, body);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn soft_reset_is_no_event() {
        let got = message("j.martin/198.51.100.23:51734 TLS: soft reset sec=1800/1800 bytes=1844120/-1 pkts=4102/0");
        assert_eq!(got, Ok(None));
    }

    #[test]
    fn username_of_an_undef_client() {
        let e = message("198.51.100.7:40000 TLS: Username/Password authentication succeeded for username 'a.petit'")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::UserAuthenticated {
                user: "a.petit",
                instance: Some("198.51.100.7:40000")
            }
        );
        let e = message("198.51.100.7:40000 TLS: Username/Password authentication succeeded for username 'a.petit' [CN SET]")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::UserAuthenticated {
                user: "a.petit",
                instance: Some("198.51.100.7:40000")
            }
        );
    }

    #[test]
    fn new_connection_replaces_the_old_one() {
        let e = message("j.martin/198.51.100.23:51800 MULTI: new connection by client 'j.martin' will cause previous active sessions by this client to be dropped.  Remember to use the --duplicate-cn option if you want multiple connections by the same Common Name.")
            .unwrap()
            .unwrap();
        assert_eq!(
            e,
            Event::ClientReplaced {
                user: "j.martin",
                instance: "198.51.100.23:51800"
            }
        );
    }

    #[test]
    fn server_stop_and_start() {
        assert_eq!(
            message("SIGTERM[hard,] received, process exiting"),
            Ok(Some(Event::GatewayStopped {
                detail: "SIGTERM[hard,] received, process exiting"
            }))
        );
        assert_eq!(
            message("SIGHUP[hard,] received, process restarting"),
            Ok(Some(Event::GatewayStopped {
                detail: "SIGHUP[hard,] received, process restarting"
            }))
        );
        assert_eq!(
            message("Initialization Sequence Completed"),
            Ok(Some(Event::GatewayStarted {
                detail: "Initialization Sequence Completed"
            }))
        );
    }

    #[test]
    fn bad_pool_address_is_an_error() {
        let err = message("j.martin/198.51.100.23:51734 MULTI_sva: pool returned IPv4=10.8.0.999, IPv6=(Not enabled)")
            .unwrap_err();
        assert_eq!(err.expected, "an IP address after IPv4= or IPv6=");
        assert_eq!(err.column, 60);
        assert_eq!(err.found, "10.8.0.999");
    }

    /// The error `message` gives for `line`: where, what, and what it found.
    fn error_of(line: &str) -> (usize, &'static str, String) {
        let err = message(line).unwrap_err();
        (err.column, err.expected, err.found)
    }

    const PORT: &str = "a port number from 0 to 65535";
    const IPV4_PART: &str = "an IPv4 address part from 0 to 255";

    #[test]
    fn an_end_from_a_damaged_port_is_an_error_not_chatter() {
        assert_eq!(
            error_of(
                "dave/192.0.2.40:99999 SIGTERM[soft,remote-exit] received, client-instance exiting"
            ),
            (17, PORT, "99999".to_owned())
        );
        assert_eq!(
            error_of(
                "dave/192.0.2.40:6000x SIGTERM[soft,remote-exit] received, client-instance exiting"
            ),
            (17, PORT, "6000x".to_owned())
        );
        assert_eq!(
            error_of("dave/192.0.2.40:6000x CC-EEN exit message received by peer"),
            (17, PORT, "6000x".to_owned())
        );
        assert_eq!(
            error_of(
                "dave/192.0.2.40: SIGUSR1[soft,ping-restart] received, client-instance restarting"
            ),
            (17, PORT, String::new())
        );
        assert_eq!(
            error_of("dave/2001:db8::7:99999 SIGTERM[soft,delayed-exit] received, client-instance exiting"),
            (18, PORT, "99999".to_owned())
        );
    }

    #[test]
    fn an_address_part_above_255_in_a_prefix_is_an_error() {
        assert_eq!(
            error_of("dave/192.0.2.400:6000 CC-EEN exit message received by peer"),
            (14, IPV4_PART, "400".to_owned())
        );
        assert_eq!(
            error_of(
                "192.0.2.400:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.40:6000"
            ),
            (9, IPV4_PART, "400".to_owned())
        );
        assert_eq!(
            error_of("192.0.2:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.40:6000"),
            (1, "an IPv4 address", "192.0.2".to_owned())
        );
    }

    #[test]
    fn address_lines_of_a_damaged_prefix_are_errors() {
        assert_eq!(
            error_of(
                "dave/192.0.2.40:6000x MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)"
            ),
            (17, PORT, "6000x".to_owned())
        );
        assert_eq!(
            error_of("Le Gall, Jean-Marc/127.0.0.1:99999 MULTI: Learn: 10.88.0.2 -> Le Gall, Jean-Marc/127.0.0.1:99999"),
            (30, PORT, "99999".to_owned())
        );
        assert_eq!(
            error_of("j.martin/198.51.100.23:51734x MULTI: new connection by client 'j.martin' will cause previous active sessions by this client to be dropped."),
            (24, PORT, "51734x".to_owned())
        );
    }

    #[test]
    fn a_damaged_peer_address_on_a_connect_line_is_an_error() {
        // The prefix's port was taken and the damaged one after `with`
        // passed unseen.
        assert_eq!(
            error_of(
                "192.0.2.40:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.40:99999"
            ),
            (75, PORT, "99999".to_owned())
        );
        assert_eq!(
            error_of(
                "192.0.2.40:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.400:6000"
            ),
            (72, IPV4_PART, "400".to_owned())
        );
        // A multihomed server adds the local address it answered from.
        let via = "192.0.2.40:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.40:6000 (via [AF_INET]203.0.113.1%eth0)";
        assert!(matches!(
            message(via),
            Ok(Some(Event::SessionStarted {
                remote_port: Some(6000),
                ..
            }))
        ));
        let v6 =
            "2001:db8::7:51234 [dave] Peer Connection Initiated with [AF_INET6]2001:db8::7:51234";
        assert!(matches!(
            message(v6),
            Ok(Some(Event::SessionStarted {
                remote_port: Some(51234),
                ..
            }))
        ));
    }

    #[test]
    fn chatter_of_a_damaged_prefix_stays_chatter() {
        for line in [
            "dave/192.0.2.40:99999 PUSH: Received control message: 'PUSH_REQUEST'",
            "192.0.2.400:6000 VERIFY OK: depth=0, CN=dave",
            "dave/192.0.2.40:6000x TLS: soft reset sec=3600/3600 bytes=0/-1 pkts=0/0",
            "UDPv4 link local (bound): [AF_INET]127.0.0.1:29349",
            "MULTI: multi_init called, r=256 v=256",
            "192.0.2.40:99999",
            "dave/192.0.2.40:99999",
        ] {
            assert_eq!(message(line), Ok(None), "{line}");
        }
    }

    #[test]
    fn auth_helper_lines() {
        assert_eq!(
            message("user 'j.martin' authenticated"),
            Ok(Some(Event::UserAuthenticated {
                user: "j.martin",
                instance: None
            }))
        );
    }
}
