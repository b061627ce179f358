//! `wg show all dump` as our poller records it: each poll headed by a
//! `# poll <RFC 3339>` line, since `wg` itself prints no time.
//!
//! ```text
//! # poll 2024-03-15T10:05:00+01:00
//! wg0  <private-key>  <public-key>  51820  off
//! wg0  <public-key>  (none)  198.51.100.77:51820  10.20.0.2/32  1710493397  124000  380000  off
//! ```
//!
//! Fields are separated by tabs. The first line of each interface describes
//! the interface, the lines after it its peers. WireGuard logs no sessions:
//! a peer's handshake times and counters, poll after poll, are the evidence.
//!
//! The dump holds secrets, the interface's private key and each peer's
//! preshared key. They are skipped, never read: no value and no error
//! message of this module carries them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use chrono::{DateTime, FixedOffset};
use nom::{
    branch::alt,
    bytes::complete::{tag, take_while_m_n},
    character::complete::{char, one_of},
    combinator::{eof, map, map_res},
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult};
use crate::openvpn::log::iso_date;
use crate::syslog::time_of_day;
use crate::{LineTime, ParseError, PeerStatus};

/// One line of a recorded dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DumpLine<'a> {
    /// `# poll <RFC 3339>`: the time of the dump lines that follow.
    Poll(LineTime),
    /// An interface line. Only its name is kept: its private key is not
    /// evidence of anything, and it must not travel further.
    Interface { name: &'a str },
    /// A peer line, as it stands at the last poll.
    Peer(PeerStatus<'a>),
}

/// What `wg` prints for a key, endpoint or address list that is not set.
const NONE: &str = "(none)";

/// Whether a line looks like a poll header or a dump line: a poll header,
/// or 4, 5, 8 or 9 tab-separated fields with a WireGuard key where the
/// public key belongs.
///
/// An interface that has no private key prints `(none)` for both keys and
/// is not recognised here; a source configured as `wireguard` still reads
/// it. True only for a line with a tab or one that begins `# poll `:
/// [`crate::detect`] rules out the others before calling it.
pub fn is_wireguard(line: &str) -> bool {
    if line.starts_with("# poll ") {
        return true;
    }
    // Most lines of a mixed stream are syslog lines without a tab: one
    // fast scan rules them out.
    if memchr::memchr(b'\t', line.as_bytes()).is_none() {
        return false;
    }
    let count = line.bytes().filter(|&b| b == b'\t').count() + 1;
    let public_key_field = match count {
        4 => 1, // private-key public-key listen-port fwmark
        5 => 2, // ifname private-key public-key listen-port fwmark
        8 => 0, // public-key preshared-key endpoint ...
        9 => 1, // ifname public-key preshared-key endpoint ...
        _ => return false,
    };
    line.split('\t').nth(public_key_field).is_some_and(is_key)
}

/// Reads one line of a recorded dump: a poll header, an interface or a
/// peer.
///
/// `wg show all dump` starts each line with the interface name (5-field
/// interface lines, 9-field peer lines). `wg show <if> dump` leaves it out
/// (4 and 8 fields): the interface is then returned as `""`, and the
/// source's configuration names it.
pub fn line(line: &str) -> Result<DumpLine<'_>, ParseError> {
    if line.starts_with('#') {
        return poll(line)
            .map(|(_, at)| DumpLine::Poll(at))
            .map_err(|e| to_parse_error(line, e));
    }

    let (fields, count) = tab_fields(line);
    let all = &fields[..count.min(fields.len())];

    // With `all`, each line starts with its interface; the counts of the
    // two dump forms never overlap, so the count tells which form this is.
    let (interface, columns) = match count {
        5 | 9 => (interface_name(line, all[0])?, &all[1..]),
        _ => ("", all),
    };

    match *columns {
        [_private_key, public_key, port, mark] => {
            interface_public_key(line, public_key)?;
            listen_port(line, port)?;
            fwmark(line, mark)?;
            Ok(DumpLine::Interface { name: interface })
        }
        [key, _preshared_key, endpoint_field, allowed, handshake, rx, tx, keepalive] => {
            let public_key = peer_public_key(line, key)?;
            let (endpoint_ip, endpoint_port) = endpoint(line, endpoint_field)?;
            let allowed_ip = allowed_ips(line, allowed)?;
            let latest_handshake = latest_handshake(line, handshake)?;
            let rx = counter(line, rx, "transfer-rx, a number")?;
            let tx = counter(line, tx, "transfer-tx, a number")?;
            persistent_keepalive(line, keepalive)?;
            Ok(DumpLine::Peer(PeerStatus {
                interface,
                public_key,
                endpoint_ip,
                endpoint_port,
                allowed_ip,
                latest_handshake,
                rx,
                tx,
            }))
        }
        _ => Err(ParseError {
            expected: "a wg dump line of 4, 5, 8 or 9 tab-separated fields, or # poll <time>",
            column: 1,
            // Not an excerpt of the line: a line of unexpected shape may
            // hold a private key anywhere.
            found: format!("{count} tab-separated fields"),
        }),
    }
}

/// Splits a dump line at its tabs, without allocating. Returns the first
/// nine fields and how many there are in all.
fn tab_fields(line: &str) -> ([&str; 9], usize) {
    let mut fields = [""; 9];
    let mut count = 0;
    for field in line.split('\t') {
        if let Some(slot) = fields.get_mut(count) {
            *slot = field;
        }
        count += 1;
    }
    (fields, count)
}

/// `# poll 2024-03-15T10:00:00+01:00`: written by our poller before each
/// dump.
fn poll(input: &str) -> PResult<'_, LineTime> {
    let (rest, _) = expect("# poll <RFC 3339 time>", tag("# poll ")).parse(input)?;
    let (rest, at) = rfc3339(rest)?;
    let (rest, _) = expect("end of line after the poll time", eof).parse(rest)?;
    Ok((rest, LineTime::Absolute { at }))
}

/// `2024-03-15T10:00:00+01:00`, `2024-03-15T09:00:00.250Z`: an RFC 3339
/// date-time, with its offset.
fn rfc3339(input: &str) -> PResult<'_, DateTime<FixedOffset>> {
    let (rest, date) = iso_date(input)?;
    let (rest, _) = expect("T between date and time", one_of("Tt")).parse(rest)?;
    let (rest, time) = time_of_day(rest)?;
    let (rest, offset) = utc_offset(rest)?;
    match date.and_time(time).and_local_timezone(offset).single() {
        Some(at) => Ok((rest, at)),
        None => Err(nom::Err::Error(Expected {
            input,
            expected: "a date-time within chrono's range",
        })),
    }
}

/// `Z` or `+01:00`: the offset from UTC that ends an RFC 3339 time.
fn utc_offset(input: &str) -> PResult<'_, FixedOffset> {
    let zulu = map(one_of("Zz"), |_| 0);
    let numeric = map_res(
        (one_of("+-"), two_digits, char(':'), two_digits),
        |(sign, hours, _, minutes)| {
            if hours > 23 || minutes > 59 {
                return Err(());
            }
            let seconds = (hours * 3600 + minutes * 60) as i32;
            Ok(if sign == '-' { -seconds } else { seconds })
        },
    );
    let (rest, seconds) =
        expect("a UTC offset, Z or +hh:mm or -hh:mm", alt((zulu, numeric))).parse(input)?;
    match FixedOffset::east_opt(seconds) {
        Some(offset) => Ok((rest, offset)),
        None => Err(nom::Err::Error(Expected {
            input,
            expected: "a UTC offset, Z or +hh:mm or -hh:mm",
        })),
    }
}

fn two_digits(input: &str) -> PResult<'_, u32> {
    map_res(
        take_while_m_n(2, 2, |c: char| c.is_ascii_digit()),
        str::parse::<u32>,
    )
    .parse(input)
}

/// `wg0`: the interface, named as its configuration file is.
fn interface_name<'a>(line: &'a str, field: &'a str) -> Result<&'a str, ParseError> {
    if field.is_empty() || field.contains(char::is_whitespace) {
        return Err(ParseError::at_slice(
            line,
            field,
            "ifname, an interface name",
        ));
    }
    Ok(field)
}

/// Whether a field is a WireGuard key as `wg` prints it: 32 bytes in
/// base64, 43 characters and a `=`.
fn is_key(field: &str) -> bool {
    let bytes = field.as_bytes();
    bytes.len() == 44
        && bytes[43] == b'='
        && bytes[..43]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// `hHzB7p...Jk0=`: the interface's public key, or `(none)` when it has no
/// private key yet.
fn interface_public_key<'a>(line: &'a str, field: &'a str) -> Result<(), ParseError> {
    if field == NONE || is_key(field) {
        Ok(())
    } else {
        Err(ParseError::at_slice(
            line,
            field,
            "public-key, a 44-character base64 key or (none)",
        ))
    }
}

/// `hHzB7p...Jk0=`: the peer's public key, its only identity.
fn peer_public_key<'a>(line: &'a str, field: &'a str) -> Result<&'a str, ParseError> {
    if is_key(field) {
        Ok(field)
    } else {
        Err(ParseError::at_slice(
            line,
            field,
            "public-key, a 44-character base64 key",
        ))
    }
}

/// `51820`: the UDP port the interface listens on.
fn listen_port(line: &str, field: &str) -> Result<u16, ParseError> {
    number(field)
        .ok_or_else(|| ParseError::at_slice(line, field, "listen-port, a number up to 65535"))
}

/// `off`, `0xca6c`: the mark put on the interface's outgoing packets.
fn fwmark(line: &str, field: &str) -> Result<(), ParseError> {
    let valid = match field.strip_prefix("0x") {
        Some(hex) => (1..=8).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => field == "off" || number::<u32>(field).is_some(),
    };
    if valid {
        Ok(())
    } else {
        Err(ParseError::at_slice(line, field, "fwmark, off or a number"))
    }
}

/// `198.51.100.77:51820`, `[2001:db8::1]:51820`, or `(none)` for a peer
/// never heard from: where the peer's packets last came from.
fn endpoint<'a>(
    line: &'a str,
    field: &'a str,
) -> Result<(Option<IpAddr>, Option<u16>), ParseError> {
    const EXPECTED: &str = "endpoint, (none), address:port or [IPv6 address]:port";
    if field == NONE {
        return Ok((None, None));
    }
    let bad = || ParseError::at_slice(line, field, EXPECTED);

    let (host, port) = field.rsplit_once(':').ok_or_else(bad)?;
    let address = match host.strip_prefix('[') {
        Some(bracketed) => {
            let inner = bracketed.strip_suffix(']').ok_or_else(bad)?;
            // A link-local endpoint carries its scope (`%eth0`), which an
            // address alone cannot hold; the address is what we report.
            let inner = inner.split_once('%').map_or(inner, |(address, _)| address);
            inner.parse::<Ipv6Addr>().map(IpAddr::V6)
        }
        None => host.parse::<Ipv4Addr>().map(IpAddr::V4),
    }
    .map_err(|_| bad())?;
    let port = number::<u16>(port).ok_or_else(bad)?;
    Ok((Some(address), Some(port)))
}

/// `10.20.0.9/32,192.168.99.0/24` or `(none)`: the addresses routed to the
/// peer. The first is the peer's own address in the tunnel, the others
/// networks behind it (a site's router).
fn allowed_ips(line: &str, field: &str) -> Result<Option<IpAddr>, ParseError> {
    if field == NONE {
        return Ok(None);
    }
    let mut first = None;
    for network in field.split(',') {
        let address = allowed_ip(line, network)?;
        first.get_or_insert(address);
    }
    Ok(first)
}

/// `10.20.0.2/32`: one network of allowed-ips, whose address is returned
/// without its prefix length.
fn allowed_ip(line: &str, network: &str) -> Result<IpAddr, ParseError> {
    let bad = || {
        ParseError::at_slice(
            line,
            network,
            "allowed-ips, (none) or address/prefix-length, comma-separated",
        )
    };
    let (address, prefix) = network.split_once('/').ok_or_else(bad)?;
    let address: IpAddr = address.parse().map_err(|_| bad())?;
    let longest = if address.is_ipv4() { 32 } else { 128 };
    match number::<u8>(prefix) {
        Some(length) if length <= longest => Ok(address),
        _ => Err(bad()),
    }
}

/// `1710493397`: epoch seconds of the latest handshake, `0` for never.
fn latest_handshake(line: &str, field: &str) -> Result<Option<i64>, ParseError> {
    match number::<i64>(field) {
        Some(0) => Ok(None),
        Some(seconds) => Ok(Some(seconds)),
        None => Err(ParseError::at_slice(
            line,
            field,
            "latest-handshake, epoch seconds",
        )),
    }
}

/// `124000`: transfer-rx or transfer-tx, bytes since the interface came up.
fn counter(line: &str, field: &str, expected: &'static str) -> Result<u64, ParseError> {
    number(field).ok_or_else(|| ParseError::at_slice(line, field, expected))
}

/// `off` or `25`: the seconds between keepalives the gateway sends.
fn persistent_keepalive(line: &str, field: &str) -> Result<(), ParseError> {
    if field == "off" || number::<u16>(field).is_some() {
        Ok(())
    } else {
        Err(ParseError::at_slice(
            line,
            field,
            "persistent-keepalive, off or a number of seconds",
        ))
    }
}

/// A decimal number written with digits only (no sign, no spaces).
fn number<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interface line of every poll in
    /// `fixtures/corpus/wireguard/wg-polls-with-conntrack.log`.
    const CORPUS_INTERFACE: &str = "wg0\tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\toff";
    const JMARTIN: &str = "JmartinFakeLaptopKey000000000000000000000Qw=";
    const SITE: &str = "SiteAnnecyFakeRouterKey000000000000000000gw=";

    fn at(offset_hours: i32, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> LineTime {
        use chrono::TimeZone;
        let offset = FixedOffset::east_opt(offset_hours * 3600).unwrap();
        LineTime::Absolute {
            at: offset.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn peer(line_text: &str) -> PeerStatus<'_> {
        match line(line_text).unwrap() {
            DumpLine::Peer(p) => p,
            other => panic!("expected a peer line, got {other:?}"),
        }
    }

    fn jmartin(
        endpoint: Option<(&str, u16)>,
        handshake: Option<i64>,
        rx: u64,
        tx: u64,
    ) -> PeerStatus<'static> {
        PeerStatus {
            interface: "wg0",
            public_key: JMARTIN,
            endpoint_ip: endpoint.map(|(a, _)| ip(a)),
            endpoint_port: endpoint.map(|(_, p)| p),
            allowed_ip: Some(ip("10.20.0.2")),
            latest_handshake: handshake,
            rx,
            tx,
        }
    }

    #[test]
    fn corpus_poll_lines_give_their_time() {
        let polls = [
            (
                "# poll 2024-03-15T10:00:00+01:00",
                at(1, 2024, 3, 15, 10, 0, 0),
            ),
            (
                "# poll 2024-03-15T10:05:00+01:00",
                at(1, 2024, 3, 15, 10, 5, 0),
            ),
            (
                "# poll 2024-03-15T10:10:00+01:00",
                at(1, 2024, 3, 15, 10, 10, 0),
            ),
            (
                "# poll 2024-03-15T10:15:00+01:00",
                at(1, 2024, 3, 15, 10, 15, 0),
            ),
            (
                "# poll 2024-03-15T10:20:00+01:00",
                at(1, 2024, 3, 15, 10, 20, 0),
            ),
            (
                "# poll 2024-03-15T10:25:00+01:00",
                at(1, 2024, 3, 15, 10, 25, 0),
            ),
        ];
        for (text, time) in polls {
            assert!(is_wireguard(text), "{text}");
            assert_eq!(line(text), Ok(DumpLine::Poll(time)), "{text}");
        }
    }

    #[test]
    fn poll_in_utc_with_a_fraction() {
        use chrono::TimeZone;
        let utc = FixedOffset::east_opt(0).unwrap();
        let expected = utc
            .with_ymd_and_hms(2024, 3, 15, 9, 0, 0)
            .unwrap()
            .checked_add_signed(chrono::Duration::milliseconds(250))
            .unwrap();
        assert_eq!(
            line("# poll 2024-03-15T09:00:00.250Z"),
            Ok(DumpLine::Poll(LineTime::Absolute { at: expected }))
        );
        assert_eq!(
            line("# poll 2024-07-01T04:30:00-02:30"),
            Ok(DumpLine::Poll(LineTime::Absolute {
                at: FixedOffset::west_opt(2 * 3600 + 1800)
                    .unwrap()
                    .with_ymd_and_hms(2024, 7, 1, 4, 30, 0)
                    .unwrap()
            }))
        );
    }

    #[test]
    fn corpus_interface_line_gives_only_its_name() {
        assert!(is_wireguard(CORPUS_INTERFACE));
        assert_eq!(
            line(CORPUS_INTERFACE),
            Ok(DumpLine::Interface { name: "wg0" })
        );
    }

    #[test]
    fn corpus_jmartin_at_10_00_never_handshaked() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t(none)\t10.20.0.2/32\t0\t0\t0\toff";
        assert!(is_wireguard(text));
        assert_eq!(peer(text), jmartin(None, None, 0, 0));
    }

    #[test]
    fn corpus_jmartin_at_10_05() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710493397\t124000\t380000\toff";
        assert_eq!(
            peer(text),
            jmartin(
                Some(("198.51.100.77", 51820)),
                Some(1_710_493_397),
                124_000,
                380_000
            )
        );
    }

    #[test]
    fn corpus_jmartin_at_10_10() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710493639\t2200000\t9100000\toff";
        assert_eq!(
            peer(text),
            jmartin(
                Some(("198.51.100.77", 51820)),
                Some(1_710_493_639),
                2_200_000,
                9_100_000
            )
        );
    }

    #[test]
    fn corpus_jmartin_at_10_15() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710494001\t3500000\t15000000\toff";
        assert_eq!(
            peer(text),
            jmartin(
                Some(("198.51.100.77", 51820)),
                Some(1_710_494_001),
                3_500_000,
                15_000_000
            )
        );
    }

    /// The same line is printed at 10:20 and 10:25.
    #[test]
    fn corpus_jmartin_at_10_20_and_10_25() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710494001\t3510000\t15020000\toff";
        assert_eq!(
            peer(text),
            jmartin(
                Some(("198.51.100.77", 51820)),
                Some(1_710_494_001),
                3_510_000,
                15_020_000
            )
        );
    }

    /// The same line is printed at every poll: a site router listed but
    /// never connected, with a keepalive and several allowed-ips.
    #[test]
    fn corpus_site_router_never_handshaked() {
        let text = "wg0\tSiteAnnecyFakeRouterKey000000000000000000gw=\t(none)\t(none)\t10.20.0.9/32,192.168.99.0/24\t0\t0\t0\t25";
        assert!(is_wireguard(text));
        assert_eq!(
            peer(text),
            PeerStatus {
                interface: "wg0",
                public_key: SITE,
                endpoint_ip: None,
                endpoint_port: None,
                allowed_ip: Some(ip("10.20.0.9")),
                latest_handshake: None,
                rx: 0,
                tx: 0,
            }
        );
    }

    #[test]
    fn ipv6_endpoint_and_ipv6_allowed_ips() {
        let text = "wg1\tFakeIpv6PeerKeyForTests00000000000000000000=\t(none)\t[2001:db8::1]:51820\tfd00:20::2/128,2001:db8:60::/64\t1710493397\t1\t2\t25";
        assert_eq!(
            peer(text),
            PeerStatus {
                interface: "wg1",
                public_key: "FakeIpv6PeerKeyForTests00000000000000000000=",
                endpoint_ip: Some(ip("2001:db8::1")),
                endpoint_port: Some(51820),
                allowed_ip: Some(ip("fd00:20::2")),
                latest_handshake: Some(1_710_493_397),
                rx: 1,
                tx: 2,
            }
        );
    }

    #[test]
    fn link_local_endpoint_drops_its_scope() {
        let text = "wg0\tFakeLinkLocalPeerKey0000000000000000000000A=\t(none)\t[fe80::1%eth0]:51820\t10.20.0.3/32\t0\t0\t0\toff";
        let p = peer(text);
        assert_eq!(p.endpoint_ip, Some(ip("fe80::1")));
        assert_eq!(p.endpoint_port, Some(51820));
    }

    #[test]
    fn none_allowed_ips_and_a_preshared_key() {
        let text = "wg0\tFakeNoAddressPeerKey0000000000000000000000A=\tFakePresharedKeyNotARealSecret000000000000A=\t203.0.113.9:40000\t(none)\t1710493000\t10\t20\toff";
        assert_eq!(
            peer(text),
            PeerStatus {
                interface: "wg0",
                public_key: "FakeNoAddressPeerKey0000000000000000000000A=",
                endpoint_ip: Some(ip("203.0.113.9")),
                endpoint_port: Some(40000),
                allowed_ip: None,
                latest_handshake: Some(1_710_493_000),
                rx: 10,
                tx: 20,
            }
        );
    }

    #[test]
    fn several_allowed_ips_give_the_first_address() {
        let text = "wg0\tSiteAnnecyFakeRouterKey000000000000000000gw=\t(none)\t192.0.2.44:51820\t192.168.99.0/24,10.20.0.9/32,172.16.5.0/24\t1710493500\t5\t6\t25";
        assert_eq!(peer(text).allowed_ip, Some(ip("192.168.99.0")));
    }

    #[test]
    fn dump_of_one_interface_has_no_ifname_column() {
        let interface = "cFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\t0xca6c";
        assert!(is_wireguard(interface));
        assert_eq!(line(interface), Ok(DumpLine::Interface { name: "" }));

        let text = "JmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710493397\t124000\t380000\toff";
        assert!(is_wireguard(text));
        assert_eq!(
            peer(text),
            PeerStatus {
                interface: "",
                public_key: JMARTIN,
                endpoint_ip: Some(ip("198.51.100.77")),
                endpoint_port: Some(51820),
                allowed_ip: Some(ip("10.20.0.2")),
                latest_handshake: Some(1_710_493_397),
                rx: 124_000,
                tx: 380_000,
            }
        );
    }

    #[test]
    fn interface_without_keys() {
        let text = "wg2\t(none)\t(none)\t0\toff";
        assert_eq!(line(text), Ok(DumpLine::Interface { name: "wg2" }));
        assert!(!is_wireguard(text));
    }

    #[test]
    fn other_lines_are_not_wireguard() {
        assert!(!is_wireguard("[1710493442.118204]\t    [NEW] tcp      6 120 SYN_SENT src=10.20.0.2 dst=192.168.60.15 sport=49822 dport=443"));
        assert!(!is_wireguard("Mar 15 10:00:00 gw kernel: a\tb\tc\td\te"));
        assert!(!is_wireguard("a\tb\tc\td\te\tf\tg\th\ti"));
        // A key one character short.
        assert!(!is_wireguard(
            "wg0\tJmartinFakeLaptopKey00000000000000000000Qw=\t(none)\t(none)\t10.20.0.2/32\t0\t0\t0\toff"
        ));
        assert!(!is_wireguard("# pollen count"));
    }

    #[test]
    fn non_numeric_counter_names_the_field_and_column() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710493397\t12x000\t380000\toff";
        let err = line(text).unwrap_err();
        assert_eq!(err.expected, "transfer-rx, a number");
        assert_eq!(err.column, 101);
        assert_eq!(err.found, "12x000");

        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t1710493397\t124000\t-1\toff";
        let err = line(text).unwrap_err();
        assert_eq!(err.expected, "transfer-tx, a number");
        assert_eq!(err.column, 108);
    }

    #[test]
    fn bad_endpoint_names_the_field_and_column() {
        let cases = [
            "198.51.100.300:51820",
            "198.51.100.77",
            "2001:db8::1:51820",
            "[2001:db8::1:51820",
            "198.51.100.77:70000",
        ];
        for bad in cases {
            let text = format!("wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t{bad}\t10.20.0.2/32\t0\t0\t0\toff");
            let err = line(&text).unwrap_err();
            assert_eq!(
                err.expected, "endpoint, (none), address:port or [IPv6 address]:port",
                "{bad}"
            );
            assert_eq!(err.column, 57, "{bad}");
            assert_eq!(err.found, bad);
        }
    }

    #[test]
    fn bad_allowed_ip_points_at_the_network() {
        let text = "wg0\tSiteAnnecyFakeRouterKey000000000000000000gw=\t(none)\t(none)\t10.20.0.9/32,192.168.99.0/33\t0\t0\t0\t25";
        let err = line(text).unwrap_err();
        assert_eq!(
            err.expected,
            "allowed-ips, (none) or address/prefix-length, comma-separated"
        );
        assert_eq!(err.column, 77);
        assert_eq!(err.found, "192.168.99.0/33");
    }

    #[test]
    fn bad_handshake_and_keepalive() {
        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t(none)\t10.20.0.2/32\tyesterday\t0\t0\toff";
        let err = line(text).unwrap_err();
        assert_eq!(err.expected, "latest-handshake, epoch seconds");
        assert_eq!(err.column, 77);

        let text = "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t(none)\t10.20.0.2/32\t0\t0\t0\tsometimes";
        let err = line(text).unwrap_err();
        assert_eq!(
            err.expected,
            "persistent-keepalive, off or a number of seconds"
        );
        assert_eq!(err.column, 83);
    }

    #[test]
    fn bad_public_key_of_a_peer() {
        let text = "wg0\tnot-a-key\t(none)\t(none)\t10.20.0.2/32\t0\t0\t0\toff";
        let err = line(text).unwrap_err();
        assert_eq!(err.expected, "public-key, a 44-character base64 key");
        assert_eq!(err.column, 5);
        assert_eq!(err.found, "not-a-key");
    }

    #[test]
    fn interface_errors_never_show_the_private_key() {
        let bad_port = "wg0\tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\tport\toff";
        let err = line(bad_port).unwrap_err();
        assert_eq!(err.expected, "listen-port, a number up to 65535");
        assert_eq!(err.column, 95);
        assert_eq!(err.found, "port");

        let bad_name = " \tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\toff";
        let err = line(bad_name).unwrap_err();
        assert_eq!(err.expected, "ifname, an interface name");
        assert_eq!(err.column, 1);
        assert_eq!(err.found, " ");

        let extra_field = "cFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tx\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\toff\tmore";
        let err = line(extra_field).unwrap_err();
        assert_eq!(err.column, 1);
        assert_eq!(err.found, "6 tab-separated fields");

        for err in [line(bad_port), line(bad_name), line(extra_field)] {
            let message = err.unwrap_err().to_string();
            assert!(!message.contains("PrivKey"), "{message}");
        }
    }

    #[test]
    fn bad_fwmark() {
        let text = "wg0\tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\t0xZZ";
        let err = line(text).unwrap_err();
        assert_eq!(err.expected, "fwmark, off or a number");
        assert_eq!(err.column, 101);
    }

    #[test]
    fn bad_poll_time_points_at_its_part() {
        let err = line("# poll 2024-03-15 10:00:00+01:00").unwrap_err();
        assert_eq!(err.expected, "T between date and time");
        assert_eq!(err.column, 18);

        let err = line("# poll 2024-03-15T10:00:00").unwrap_err();
        assert_eq!(err.expected, "a UTC offset, Z or +hh:mm or -hh:mm");
        assert_eq!(err.column, 27);

        let err = line("# poll 2024-03-15T10:00:00+25:00").unwrap_err();
        assert_eq!(err.expected, "a UTC offset, Z or +hh:mm or -hh:mm");
        assert_eq!(err.column, 27);

        let err = line("# poll 2024-02-30T10:00:00Z").unwrap_err();
        assert_eq!(err.expected, "a valid date");
        assert_eq!(err.column, 8);

        let err = line("# poll 2024-03-15T10:00:00Z trailing").unwrap_err();
        assert_eq!(err.expected, "end of line after the poll time");
        assert_eq!(err.column, 28);

        let err = line("# comment").unwrap_err();
        assert_eq!(err.expected, "# poll <RFC 3339 time>");
        assert_eq!(err.column, 1);
    }
}
