//! pfSense and OPNsense `filterlog`: pf's record of a logged packet, one
//! CSV line each (Netgate's "raw filter log format"), after the syslog
//! header:
//!
//! ```text
//! rule,subrule,anchor,tracker,interface,reason,action,dir,ipver,
//!   IPv4: tos,ecn,ttl,id,offset,flags,protonum,proto,length,src,dst,
//!   IPv6: class,flowlabel,hoplimit,proto,protonum,length,src,dst,
//!   tcp and udp: srcport,dstport,datalen,...
//! 95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,443,0,S,...
//! ```
//!
//! VPN clients' packets come in on `ovpnsN` (OpenVPN server N) or `enc0`
//! (IPsec): the interface is the traffic's label, for the source's
//! configuration to pick. The line has no time of its own.

use std::net::IpAddr;
use std::str::Split;

use crate::error::ParseError;
use crate::event::{Event, Extracted, Traffic, Verdict};

/// Reads one filterlog line into the connection it shows.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    packet(message).map(|traffic| Extracted::event(Event::Traffic(traffic)))
}

/// `rule,subrule,anchor,tracker,interface,reason,action,dir,ipver,` then
/// the IP header, then the ports of a tcp or udp packet.
fn packet(message: &str) -> Result<Traffic<'_>, ParseError> {
    let mut fields = Fields {
        message,
        rest: message.split(','),
    };

    // Which rule matched does not matter here: what it did does.
    for what in [
        "the rule field",
        "the subrule field",
        "the anchor field",
        "the tracker field",
    ] {
        fields.next(what)?;
    }
    let interface = fields.next("an interface")?;
    fields.next("the reason field")?;
    let action = fields.next("an action (pass, block or reject)")?;
    let verdict = verdict(action).ok_or_else(|| {
        ParseError::at_slice(message, action, "an action (pass, block or reject)")
    })?;
    fields.next("the dir field")?;

    let ip_version = fields.next("an IP version (4 or 6)")?;
    let header = match ip_version {
        "4" => ipv4_header(&mut fields)?,
        "6" => ipv6_header(&mut fields)?,
        _ => {
            return Err(ParseError::at_slice(
                message,
                ip_version,
                "an IP version (4 or 6)",
            ))
        }
    };

    // Only tcp and udp packets are followed by ports.
    let (src_port, dst_port) = if matches!(header.proto, "tcp" | "udp") {
        (
            Some(fields.port("a port as srcport")?),
            Some(fields.port("a port as dstport")?),
        )
    } else {
        (None, None)
    };

    Ok(Traffic {
        src: header.src,
        dst: header.dst,
        proto: header.proto,
        src_port,
        dst_port,
        verdict,
        label: Some(interface),
    })
}

/// What the IP header part of the line says that we keep.
struct IpHeader<'a> {
    /// Lower-case name or number, see [`protocol`].
    proto: &'a str,
    src: IpAddr,
    dst: IpAddr,
}

/// `tos,ecn,ttl,id,offset,flags,protonum,proto,length,src,dst`:
/// `0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20`.
fn ipv4_header<'a>(fields: &mut Fields<'a>) -> Result<IpHeader<'a>, ParseError> {
    for what in [
        "the tos field",
        "the ecn field",
        "the ttl field",
        "the id field",
        "the offset field",
        "the flags field",
    ] {
        fields.next(what)?;
    }
    let number = fields.next("the protonum field")?;
    let name = fields.next("the proto field")?;
    fields.next("the length field")?;
    Ok(IpHeader {
        proto: protocol(name, number),
        src: fields.ip("an IP address as src")?,
        dst: fields.ip("an IP address as dst")?,
    })
}

/// `class,flowlabel,hoplimit,proto,protonum,length,src,dst`:
/// `0x00,0x00000,64,tcp,6,40,2001:db8:8::2,2001:db8:1::20`. The name comes
/// before the number here, unlike IPv4.
fn ipv6_header<'a>(fields: &mut Fields<'a>) -> Result<IpHeader<'a>, ParseError> {
    for what in [
        "the class field",
        "the flowlabel field",
        "the hoplimit field",
    ] {
        fields.next(what)?;
    }
    let name = fields.next("the proto field")?;
    let number = fields.next("the protonum field")?;
    fields.next("the length field")?;
    Ok(IpHeader {
        proto: protocol(name, number),
        src: fields.ip("an IPv6 address as src")?,
        dst: fields.ip("an IPv6 address as dst")?,
    })
}

/// pf's action: `pass` let the packet through, `block` and `reject`
/// stopped it.
fn verdict(action: &str) -> Option<Verdict> {
    match action {
        "pass" => Some(Verdict::Allowed),
        "block" | "reject" => Some(Verdict::Dropped),
        _ => None,
    }
}

/// The protocol as [`Traffic`] names it: pf's name in lower case (`tcp`,
/// `udp`, `icmp`; `ICMPv6` becomes `icmpv6`), or the protocol number when
/// the name is missing or in a case not known here.
fn protocol<'a>(name: &'a str, number: &'a str) -> &'a str {
    match name {
        "TCP" => "tcp",
        "UDP" => "udp",
        "ICMP" => "icmp",
        "ICMPv6" | "ICMPV6" | "ipv6-icmp" => "icmpv6",
        "CARP" => "carp",
        "GRE" => "gre",
        "ESP" => "esp",
        _ if !name.is_empty() && !name.bytes().any(|b| b.is_ascii_uppercase()) => name,
        _ => number,
    }
}

/// The line's fields, read in order, and the line, to place errors in it.
struct Fields<'a> {
    message: &'a str,
    rest: Split<'a, char>,
}

impl<'a> Fields<'a> {
    /// The next field; a line that stops before it is an error at its end.
    fn next(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        self.rest
            .next()
            .ok_or_else(|| ParseError::at(self.message, "", what))
    }

    fn ip(&mut self, what: &'static str) -> Result<IpAddr, ParseError> {
        let field = self.next(what)?;
        field
            .parse()
            .map_err(|_| ParseError::at_slice(self.message, field, what))
    }

    fn port(&mut self, what: &'static str) -> Result<u16, ParseError> {
        let field = self.next(what)?;
        field
            .parse()
            .map_err(|_| ParseError::at_slice(self.message, field, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn traffic(message: &str) -> Traffic<'_> {
        let x = super::message(message).unwrap();
        // filterlog writes neither a time nor a device name.
        assert_eq!(x.time, None);
        assert_eq!(x.device, None);
        match x.event {
            Some(Event::Traffic(t)) => t,
            other => panic!("not traffic: {other:?}"),
        }
    }

    #[test]
    fn blocked_probe_on_the_wan() {
        let t = traffic("5,,,1000000103,igb0,match,block,in,4,0x0,,244,54321,0,none,6,tcp,40,203.0.113.250,192.0.2.30,41322,3389,0,S,2113244101,,1024,,");
        assert_eq!(
            t,
            Traffic {
                src: ip("203.0.113.250"),
                dst: ip("192.0.2.30"),
                proto: "tcp",
                src_port: Some(41322),
                dst_port: Some(3389),
                verdict: Verdict::Dropped,
                label: Some("igb0"),
            }
        );
    }

    #[test]
    fn vpn_client_reaches_https() {
        let t = traffic("95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,443,0,S,1294811201,,64240,,mss;nop;wscale;nop;nop;sackOK");
        assert_eq!(
            t,
            Traffic {
                src: ip("10.0.8.2"),
                dst: ip("192.168.1.20"),
                proto: "tcp",
                src_port: Some(50233),
                dst_port: Some(443),
                verdict: Verdict::Allowed,
                label: Some("ovpns1"),
            }
        );
    }

    #[test]
    fn vpn_client_reaches_rtsp() {
        let t = traffic("95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29502,0,DF,6,tcp,52,10.0.8.2,192.168.1.31,50251,554,0,S,3981200112,,64240,,mss;nop;wscale;nop;nop;sackOK");
        assert_eq!(
            t,
            Traffic {
                src: ip("10.0.8.2"),
                dst: ip("192.168.1.31"),
                proto: "tcp",
                src_port: Some(50251),
                dst_port: Some(554),
                verdict: Verdict::Allowed,
                label: Some("ovpns1"),
            }
        );
    }

    #[test]
    fn vpn_client_reaches_snmp_over_udp() {
        let t = traffic("95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29720,0,none,17,udp,76,10.0.8.2,192.168.1.45,50313,161,56");
        assert_eq!(
            t,
            Traffic {
                src: ip("10.0.8.2"),
                dst: ip("192.168.1.45"),
                proto: "udp",
                src_port: Some(50313),
                dst_port: Some(161),
                verdict: Verdict::Allowed,
                label: Some("ovpns1"),
            }
        );
    }

    #[test]
    fn vpn_client_blocked_from_smb() {
        let t = traffic("96,,,1700000002,ovpns1,match,block,in,4,0x0,,127,29901,0,DF,6,tcp,52,10.0.8.2,192.168.2.10,50402,445,0,S,1200331888,,64240,,mss;nop;wscale;nop;nop;sackOK");
        assert_eq!(
            t,
            Traffic {
                src: ip("10.0.8.2"),
                dst: ip("192.168.2.10"),
                proto: "tcp",
                src_port: Some(50402),
                dst_port: Some(445),
                verdict: Verdict::Dropped,
                label: Some("ovpns1"),
            }
        );
    }

    #[test]
    fn ipv6_tcp_over_ipsec() {
        let t = traffic("97,,,1700000003,enc0,match,pass,in,6,0x00,0x00000,64,tcp,6,40,2001:db8:8::2,2001:db8:1::20,50500,22,0,S,3000000001,,64800,,mss");
        assert_eq!(
            t,
            Traffic {
                src: ip("2001:db8:8::2"),
                dst: ip("2001:db8:1::20"),
                proto: "tcp",
                src_port: Some(50500),
                dst_port: Some(22),
                verdict: Verdict::Allowed,
                label: Some("enc0"),
            }
        );
    }

    #[test]
    fn ipv6_icmp_has_no_ports_and_a_lower_case_name() {
        let t = traffic("98,,,1700000004,ovpns1,match,reject,in,6,0x00,0x00000,64,ICMPv6,58,16,2001:db8:8::2,2001:db8:2::1,request,2911,1");
        assert_eq!(
            t,
            Traffic {
                src: ip("2001:db8:8::2"),
                dst: ip("2001:db8:2::1"),
                proto: "icmpv6",
                src_port: None,
                dst_port: None,
                verdict: Verdict::Dropped,
                label: Some("ovpns1"),
            }
        );
    }

    #[test]
    fn ipv4_icmp_has_no_ports() {
        let t = traffic("95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,30001,0,none,1,icmp,84,10.0.8.2,192.168.1.1,request,4711,1");
        assert_eq!(t.proto, "icmp");
        assert_eq!(t.src_port, None);
        assert_eq!(t.dst_port, None);
    }

    #[test]
    fn unknown_upper_case_name_falls_back_to_the_number() {
        assert_eq!(protocol("PIM", "103"), "103");
        assert_eq!(protocol("", "47"), "47");
        assert_eq!(protocol("sctp", "132"), "sctp");
    }

    #[test]
    fn bad_address_names_the_field_and_column() {
        let m = "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.300,192.168.1.20,50233,443";
        let err = message(m).unwrap_err();
        assert_eq!(err.expected, "an IP address as src");
        assert_eq!(err.column, 69);
        assert_eq!(
            err.to_string(),
            "expected an IP address as src at column 69, found \"10.0.8.300\""
        );
    }

    #[test]
    fn missing_ports_are_an_error_at_the_end() {
        let m = "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20";
        let err = message(m).unwrap_err();
        assert_eq!(err.expected, "a port as srcport");
        assert_eq!(err.column, 90);
        assert_eq!(
            err.to_string(),
            "expected a port as srcport at column 90, found end of line"
        );
    }

    #[test]
    fn too_few_fields_is_an_error_at_the_end() {
        let err = message("95,,,1700000001,ovpns1").unwrap_err();
        assert_eq!(err.expected, "the reason field");
        assert_eq!(err.column, 23);
    }

    #[test]
    fn bad_port_action_and_version_name_the_column() {
        let m = "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,https";
        let err = message(m).unwrap_err();
        assert_eq!(err.expected, "a port as dstport");
        assert_eq!(err.column, 97);

        let err = message("95,,,1700000001,ovpns1,match,scrub,in,4").unwrap_err();
        assert_eq!(err.expected, "an action (pass, block or reject)");
        assert_eq!(err.column, 30);

        let err = message("95,,,1700000001,ovpns1,match,pass,in,5,0x0").unwrap_err();
        assert_eq!(err.expected, "an IP version (4 or 6)");
        assert_eq!(err.column, 38);
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(text in any::<String>()) {
            let _ = message(&text);
        }

        #[test]
        fn damaged_lines_never_panic(at in 0usize..200, junk in "[ ,a-zA-Z0-9.:]{0,6}") {
            let line = "95,,,1700000001,ovpns1,match,pass,in,4,0x0,,127,29411,0,DF,6,tcp,52,10.0.8.2,192.168.1.20,50233,443,0,S,1294811201,,64240,,mss";
            let _ = message(&format!("{}{junk}{}", &line[..at.min(line.len())], &line[at.min(line.len())..]));
        }
    }
}
