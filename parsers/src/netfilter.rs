//! Linux netfilter `LOG` target lines (iptables `-j LOG`, nftables `log`):
//! the firewall's record of a connection, and our evidence of devices
//! reached.
//!
//! ```text
//! [812345.118204] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10 LEN=60 ...
//!     PROTO=TCP SPT=50412 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0
//! ```
//!
//! The line does not say whether the packet was accepted: the admin's
//! prefix (`VPN-FWD`, `VPN-DROP`) does, and the source's configuration
//! decides which prefixes name a drop.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use std::net::{IpAddr, Ipv4Addr};

use crate::error::ParseError;
use crate::event::{Traffic, Verdict};

/// Whether a message looks like a netfilter LOG line.
pub fn is_netfilter(message: &str) -> bool {
    static IN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("IN="));
    static SRC: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" SRC="));
    static DST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" DST="));
    let m = message.as_bytes();
    IN.find(m).is_some() && SRC.find(m).is_some() && DST.find(m).is_some()
}

/// `[uptime] `: the kernel's seconds since boot, not a wall-clock time.
fn strip_uptime(message: &str) -> &str {
    let Some(rest) = message.strip_prefix('[') else {
        return message;
    };
    // The first `] `.
    let close = memchr::memchr_iter(b']', rest.as_bytes())
        .find(|&i| rest.as_bytes().get(i + 1) == Some(&b' '));
    match close {
        Some(i) if is_uptime(rest[..i].trim()) => &rest[i + 2..],
        _ => message,
    }
}

/// Seconds as the kernel writes them: digits, with a fraction or not.
fn is_uptime(stamp: &str) -> bool {
    let (seconds, fraction) = stamp.split_once('.').unwrap_or((stamp, ""));
    !seconds.is_empty()
        && seconds.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

/// The first `=` or `[` at or after `from`. The gaps between them are a
/// few bytes, too short for a vector search to pay its set-up: eight
/// bytes are tested at a time in a `u64`.
fn next_marker(bytes: &[u8], from: usize) -> Option<usize> {
    /// The high bit of each byte of `v` that is zero, and no other bit.
    fn zero_bytes(v: u64) -> u64 {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        !(((v & LOW7) + LOW7) | v | LOW7)
    }
    const EQUALS: u64 = u64::from_ne_bytes([b'='; 8]);
    const BRACKET: u64 = u64::from_ne_bytes([b'['; 8]);
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let v = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = zero_bytes(v ^ EQUALS) | zero_bytes(v ^ BRACKET);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes
        .get(at..)?
        .iter()
        .position(|&b| b == b'=' || b == b'[')
        .map(|n| at + n)
}

/// An IPv4 address as the kernel writes it (four decimal numbers up to
/// 255, no leading zero), read without the general parser; anything else
/// is left to `IpAddr`'s parser, which reads and refuses exactly as
/// before.
fn canonical_ipv4(text: &str) -> Option<Ipv4Addr> {
    let bytes = text.as_bytes();
    let mut octets = [0u8; 4];
    let mut at = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if bytes.get(at) != Some(&b'.') {
                return None;
            }
            at += 1;
        }
        let start = at;
        let mut value = 0u32;
        while let Some(&b) = bytes.get(at).filter(|b| b.is_ascii_digit()) {
            value = value * 10 + u32::from(b - b'0');
            at += 1;
            if at - start > 3 {
                return None;
            }
        }
        let len = at - start;
        if len == 0 || (len > 1 && bytes[start] == b'0') {
            return None;
        }
        *octet = u8::try_from(value).ok()?;
    }
    (at == bytes.len()).then_some(Ipv4Addr::from(octets))
}

fn protocol(name: &str) -> &str {
    match name {
        "TCP" | "tcp" => "tcp",
        "UDP" | "udp" => "udp",
        "ICMP" | "icmp" => "icmp",
        "ICMPv6" | "ICMPV6" | "icmpv6" => "icmpv6",
        "SCTP" | "sctp" => "sctp",
        "GRE" | "gre" => "gre",
        "ESP" | "esp" => "esp",
        other => other,
    }
}

/// Reads a LOG line into the connection it shows.
pub fn log_line(message: &str) -> Result<Traffic<'_>, ParseError> {
    let body = strip_uptime(message);
    let fields_start = if body.starts_with("IN=") {
        0
    } else {
        static IN: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" IN="));
        IN.find(body.as_bytes())
            .map(|i| i + 1)
            .ok_or_else(|| ParseError::at(message, body, "IN= after the log prefix"))?
    };
    let label = body[..fields_start].trim();
    let fields = &body[fields_start..];

    let bytes = fields.as_bytes();
    let mut src = None;
    let mut dst = None;
    let mut proto = None;
    let mut spt = None;
    let mut dpt = None;
    // Only five keys are read, and each field has an `=`: the key is what
    // comes before it back to the blank that starts the field, the value
    // what follows it up to the next blank. An `=` inside a value is no
    // key, as no blank comes right before its name.
    let starts_field = |at: usize| at == 0 || bytes[at - 1].is_ascii_whitespace();
    let mut i = 0;
    while let Some(eq) = next_marker(bytes, i) {
        i = eq + 1;
        match bytes[eq] {
            b'=' => {}
            // The packet's own fields end where a quoted packet begins:
            // an ICMP error carries the header of the packet it answers,
            // in `[ ]`, with SRC=, DST=, PROTO= and ports of its own.
            b'[' if starts_field(eq) => break,
            _ => continue,
        }
        let slot = match bytes[..eq] {
            [.., b'S', b'R', b'C'] if starts_field(eq - 3) => &mut src,
            [.., b'D', b'S', b'T'] if starts_field(eq - 3) => &mut dst,
            [.., b'S', b'P', b'T'] if starts_field(eq - 3) => &mut spt,
            [.., b'D', b'P', b'T'] if starts_field(eq - 3) => &mut dpt,
            [.., b'P', b'R', b'O', b'T', b'O'] if starts_field(eq - 5) => &mut proto,
            _ => continue,
        };
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        *slot = Some(&fields[eq + 1..i]);
        // The kernel writes these five before the TCP flags and window:
        // the rest of the line has nothing more to read.
        if src.is_some() && dst.is_some() && proto.is_some() && spt.is_some() && dpt.is_some() {
            break;
        }
    }

    let address = |value: Option<&str>, what: &'static str| -> Result<IpAddr, ParseError> {
        let value = value.ok_or_else(|| ParseError::at(message, "", what))?;
        canonical_ipv4(value)
            .map(IpAddr::V4)
            .map_or_else(|| value.parse(), Ok)
            .map_err(|_| ParseError::at_slice(message, value, what))
    };
    let port = |value: Option<&str>, what: &'static str| -> Result<Option<u16>, ParseError> {
        value
            .map(|v| {
                v.parse()
                    .map_err(|_| ParseError::at_slice(message, v, what))
            })
            .transpose()
    };
    Ok(Traffic {
        src: address(src, "SRC=<ip address>")?,
        dst: address(dst, "DST=<ip address>")?,
        proto: protocol(proto.unwrap_or("")),
        src_port: port(spt, "SPT=<port>")?,
        dst_port: port(dpt, "DPT=<port>")?,
        verdict: Verdict::FromPrefix,
        label: (!label.is_empty()).then_some(label),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_line_with_prefix() {
        let t = log_line("[812345.118204] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40211 DF PROTO=TCP SPT=50412 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0").unwrap();
        assert_eq!(t.src, "10.8.0.6".parse::<IpAddr>().unwrap());
        assert_eq!(t.dst, "192.168.20.10".parse::<IpAddr>().unwrap());
        assert_eq!(t.proto, "tcp");
        assert_eq!(t.src_port, Some(50412));
        assert_eq!(t.dst_port, Some(443));
        assert_eq!(t.label, Some("VPN-FWD"));
        assert_eq!(t.verdict, Verdict::FromPrefix);
    }

    #[test]
    fn udp_line_with_two_len_fields() {
        let t = log_line("[813302.331870] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.30.5 LEN=78 TOS=0x00 PREC=0x00 TTL=63 ID=29001 PROTO=UDP SPT=50600 DPT=161 LEN=58").unwrap();
        assert_eq!(t.proto, "udp");
        assert_eq!(t.dst_port, Some(161));
    }

    #[test]
    fn icmp_has_no_ports_and_no_prefix() {
        let t = log_line("IN=tun0 OUT=eth1 SRC=10.8.0.6 DST=192.168.20.1 LEN=84 PROTO=ICMP TYPE=8 CODE=0 ID=7 SEQ=1").unwrap();
        assert_eq!(t.proto, "icmp");
        assert_eq!(t.dst_port, None);
        assert_eq!(t.label, None);
    }

    #[test]
    fn an_icmp_error_is_read_for_its_own_packet_not_the_one_it_quotes() {
        // A port unreachable sent back through the tunnel: the quoted
        // header, in [ ], is the UDP packet that caused it.
        let t = log_line("[813401.004512] VPN-FWD IN=eth1 OUT=tun0 MAC= SRC=192.168.30.5 DST=10.8.0.6 LEN=106 TOS=0x00 PREC=0xC0 TTL=63 ID=5531 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.8.0.6 DST=192.168.30.5 LEN=78 TOS=0x00 PREC=0x00 TTL=63 ID=29001 PROTO=UDP SPT=50600 DPT=161 LEN=58 ] ").unwrap();
        assert_eq!(t.src, "192.168.30.5".parse::<IpAddr>().unwrap());
        assert_eq!(t.dst, "10.8.0.6".parse::<IpAddr>().unwrap());
        assert_eq!(t.proto, "icmp");
        assert_eq!((t.src_port, t.dst_port), (None, None));
    }

    #[test]
    fn a_key_is_read_only_where_a_field_begins() {
        // `XSRC=` and `=SRC=` name no source; a value may hold an `=`;
        // fields may be apart by tabs or several blanks.
        let t = log_line(
            "IN=tun0 XSRC=10.8.0.99 MAC=a=SRC=10.8.0.98 SRC=10.8.0.6\tDST=192.168.20.10  PROTO=TCP SPT=1 DPT=502",
        )
        .unwrap();
        assert_eq!(t.src, "10.8.0.6".parse::<IpAddr>().unwrap());
        assert_eq!(t.dst, "192.168.20.10".parse::<IpAddr>().unwrap());
        assert_eq!(t.dst_port, Some(502));
    }

    #[test]
    fn ipv6_addresses_are_read_by_the_general_parser() {
        let t = log_line("IN=tun0 OUT=eth1 SRC=2001:db8::6 DST=2001:db8:30::5 LEN=80 PROTO=TCP SPT=50412 DPT=443").unwrap();
        assert_eq!(t.src, "2001:db8::6".parse::<IpAddr>().unwrap());
        assert_eq!(t.dst, "2001:db8:30::5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_quick_ipv4_reading_agrees_with_the_general_parser() {
        let samples = [
            "10.8.0.6",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.2.3.04",
            "1..3.4",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4 ",
            "1.2.3.1000",
            "1.2.3.-4",
            "1.2.3.+4",
            "",
            "a.b.c.d",
            "192.168.300.1",
            "00.1.1.1",
            "1.0.0.0",
        ];
        for text in samples {
            let quick = canonical_ipv4(text).map(IpAddr::V4);
            let general = text.parse::<IpAddr>().ok();
            assert_eq!(quick, general, "{text}");
        }
    }

    #[test]
    fn markers_are_found_in_every_place_of_an_eight_byte_word() {
        for len in 0..20 {
            for at in 0..len {
                for marker in [b'=', b'['] {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = marker;
                    for from in 0..=len {
                        let want = (at >= from).then_some(at);
                        assert_eq!(next_marker(&bytes, from), want, "{len} {at} {from}");
                    }
                }
            }
            // Bytes one away from a marker, and high bytes, are not one.
            let near = [b'<', b'>', b'Z', b'\\', 0xbd, 0xdb, 0x3d ^ 0x80, 0];
            let bytes: Vec<u8> = (0..len).map(|n| near[n % near.len()]).collect();
            assert_eq!(next_marker(&bytes, 0), None, "{len}");
        }
    }

    proptest::proptest! {
        // Any digits and dots, and dotted quads (which random digits and
        // dots seldom make).
        #[test]
        fn the_quick_ipv4_reading_agrees_on_digits_and_dots(
            text in "[0-9.]{0,17}|[0-9]{1,3}(\\.[0-9]{1,3}){3}"
        ) {
            let general = text.parse::<std::net::Ipv4Addr>().ok();
            proptest::prop_assert_eq!(canonical_ipv4(&text), general, "{}", text);
        }
    }

    #[test]
    fn bad_source_address_names_the_field() {
        let err =
            log_line("DROP IN=tun0 OUT= SRC=10.8.0.300 DST=192.168.20.1 PROTO=TCP").unwrap_err();
        assert_eq!(err.expected, "SRC=<ip address>");
        assert_eq!(err.column, 23);
    }
}
