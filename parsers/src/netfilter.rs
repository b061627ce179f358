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
use std::net::IpAddr;

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

    let mut src = None;
    let mut dst = None;
    let mut proto = None;
    let mut spt = None;
    let mut dpt = None;
    for token in fields.split_ascii_whitespace() {
        // Only five keys are read: most tokens are passed over on their
        // first byte.
        match token.as_bytes() {
            [b'S', b'R', b'C', b'=', ..] => src = Some(&token[4..]),
            [b'D', b'S', b'T', b'=', ..] => dst = Some(&token[4..]),
            [b'P', b'R', b'O', b'T', b'O', b'=', ..] => proto = Some(&token[6..]),
            [b'S', b'P', b'T', b'=', ..] => spt = Some(&token[4..]),
            [b'D', b'P', b'T', b'=', ..] => dpt = Some(&token[4..]),
            _ => {}
        }
        // The kernel writes these five before the TCP flags and window:
        // the rest of the line has nothing more to read.
        if src.is_some() && dst.is_some() && proto.is_some() && spt.is_some() && dpt.is_some() {
            break;
        }
    }

    let address = |value: Option<&str>, what: &'static str| -> Result<IpAddr, ParseError> {
        let value = value.ok_or_else(|| ParseError::at(message, "", what))?;
        value
            .parse()
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
    fn bad_source_address_names_the_field() {
        let err =
            log_line("DROP IN=tun0 OUT= SRC=10.8.0.300 DST=192.168.20.1 PROTO=TCP").unwrap_err();
        assert_eq!(err.expected, "SRC=<ip address>");
        assert_eq!(err.column, 23);
    }
}
