//! FortiGate (FortiOS 6.2-7.4) `key=value` logs: SSL VPN and IPsec dial-up
//! sessions, and the traffic logs that show which devices they reached.
//!
//! ```text
//! date=2024-03-19 time=14:02:33 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" tz="+0100"
//!     logid="0101039947" type="event" subtype="vpn" action="tunnel-up" tunneltype="ssl-tunnel"
//!     tunnelid=1529032756 remip=198.51.100.23 tunnelip=10.212.134.200 user="j.martin" ...
//! ```
//!
//! The message is what follows the syslog priority. Strings are quoted,
//! numbers usually bare, and either may come the other way: fields are read
//! the same whatever the quoting. `N/A` means a field has no value.

use std::net::IpAddr;

use crate::error::ParseError;
use crate::event::{EndReason, Event, Extracted, Traffic, Verdict};
use crate::kv::{self, Fields};
use crate::time::LineTime;

/// SSL VPN tunnel mode: tunnel up, tunnel down, periodic statistics.
const SSL_TUNNEL_UP: &str = "0101039947";
const SSL_TUNNEL_DOWN: &str = "0101039948";
const SSL_TUNNEL_STATS: &str = "0101039949";
/// IPsec "connection status changed": `action` says up or down.
const IPSEC_STATUS: &str = "0101037138";
/// IPsec tunnel statistics (inferred, see vpn-formats.md section 4).
const IPSEC_TUNNEL_STATS: &str = "0101037141";

/// Whether a message looks like a FortiGate log: it opens with the header
/// FortiOS writes first and carries a `logid`.
pub fn is_fortigate(message: &str) -> bool {
    (message.starts_with("date=")
        || message.starts_with("logver=")
        || message.starts_with("eventtime="))
        && message.contains(" logid=")
}

/// Reads a FortiGate message: its time and device always, and the VPN fact
/// when its `logid` or `type` carries one.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    let fields = kv::fields(message)?;
    Ok(Extracted {
        time: header_time(&fields)?,
        event: event(&fields)?,
        device: fields.present("devname"),
    })
}

/// `date=2024-03-19 time=14:02:33 tz="+0100"`: an instant with the offset,
/// a local time without it; `None` when the date or time is missing.
fn header_time(fields: &Fields<'_>) -> Result<Option<LineTime>, ParseError> {
    let (Some(date), Some(time)) = (fields.present("date"), fields.present("time")) else {
        return Ok(None);
    };
    let date = kv::read_value(fields, date, kv::date, "date=<YYYY-MM-DD>")?;
    let time = kv::read_value(fields, time, crate::syslog::time_of_day, "time=<hh:mm:ss>")?;
    let offset = fields
        .present("tz")
        .map(|tz| kv::read_value(fields, tz, kv::utc_offset, "tz=<UTC offset such as +0100>"))
        .transpose()?;
    Ok(Some(kv::line_time(date.and_time(time), offset)))
}

/// Picks the event a message carries from its `logid`, `action` and `type`.
fn event<'a>(fields: &Fields<'a>) -> Result<Option<Event<'a>>, ParseError> {
    let logid = fields.get("logid").unwrap_or("");
    let action = fields.get("action").unwrap_or("");
    match (logid, action) {
        (SSL_TUNNEL_UP, _) => tunnel_up(fields, Mode::Ssl).map(Some),
        (SSL_TUNNEL_DOWN, _) => tunnel_down(fields, Mode::Ssl).map(Some),
        // The same logs tell of site-to-site tunnels, which name no one.
        (IPSEC_STATUS, "tunnel-up" | "tunnel-down") if identity(fields, Mode::Ipsec).is_none() => {
            site_tunnel(fields, action == "tunnel-up")
        }
        (IPSEC_STATUS, _) if identity(fields, Mode::Ipsec).is_none() => Ok(None),
        (IPSEC_STATUS, "tunnel-up") => tunnel_up(fields, Mode::Ipsec).map(Some),
        (IPSEC_STATUS, "tunnel-down") => tunnel_down(fields, Mode::Ipsec).map(Some),
        (SSL_TUNNEL_STATS | IPSEC_TUNNEL_STATS, _) => tunnel_stats(fields).map(Some),
        _ if action.ends_with("-fail") && fields.get("type") == Some("event") => {
            Ok(Some(login_failed(fields)))
        }
        _ if fields.get("type") == Some("traffic") => {
            traffic(fields).map(|t| Some(Event::Traffic(t)))
        }
        _ => Ok(None),
    }
}

/// Which kind of remote-access tunnel a VPN log is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SSL VPN tunnel mode: the gateway is the only "tunnel".
    Ssl,
    /// IPsec dial-up: the phase 1 named in `vpntunnel`.
    Ipsec,
}

/// The person behind a tunnel. IPsec writes the certificate subject in
/// `user` and the XAuth login in `xauthuser`; the login names the person
/// better, when there is one.
///
/// An IPsec tunnel with neither is a site-to-site tunnel (or a dial-up
/// peer that gave no identity): not a remote-access session.
fn identity<'a>(fields: &Fields<'a>, mode: Mode) -> Option<&'a str> {
    match mode {
        Mode::Ssl => fields.present("user"),
        Mode::Ipsec => fields
            .present("xauthuser")
            .or_else(|| fields.present("user")),
    }
}

/// `tunnelid=1529032756`: the key shared by the up, statistics and down
/// logs of one tunnel.
fn tunnel_id<'a>(fields: &Fields<'a>) -> Result<&'a str, ParseError> {
    let id = fields.require("tunnelid", "tunnelid=<number>")?;
    if id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(fields.error_at(id, "tunnelid=<number>"))
    }
}

/// `tunnelip=10.212.134.200` (SSL) or `assignip=` (IPsec): the address
/// inside the tunnel; either may be `N/A` or `0.0.0.0`.
fn virtual_ip(fields: &Fields<'_>) -> Result<Option<IpAddr>, ParseError> {
    let tunnel_ip = fields.address("tunnelip", "tunnelip=<ip address>")?;
    if tunnel_ip.is_some() {
        return Ok(tunnel_ip);
    }
    fields.address("assignip", "assignip=<ip address>")
}

/// `vpntunnel="Dialup-cert_0"`: the dial-up phase 1, without the `_N` that
/// FortiOS appends for each connected client.
fn dialup_tunnel<'a>(fields: &Fields<'a>, mode: Mode) -> Option<&'a str> {
    if mode == Mode::Ssl {
        return None;
    }
    fields.present("vpntunnel").map(without_instance_suffix)
}

fn without_instance_suffix(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    }
}

/// An IPsec tunnel that names no one, up or down: a site-to-site tunnel,
/// named by its phase 1 (`vpntunnel`). One without a name says nothing of
/// any site and gives nothing.
fn site_tunnel<'a>(fields: &Fields<'a>, up: bool) -> Result<Option<Event<'a>>, ParseError> {
    let Some(tunnel) = fields.present("vpntunnel") else {
        return Ok(None);
    };
    let (bytes_in, bytes_out) = if up {
        (None, None)
    } else {
        (
            fields.parsed("rcvdbyte", "rcvdbyte=<number>")?,
            fields.parsed("sentbyte", "sentbyte=<number>")?,
        )
    };
    Ok(Some(Event::SiteTunnel {
        tunnel,
        up,
        detail: fields
            .present("reason")
            .or_else(|| fields.present("msg"))
            .unwrap_or(""),
        remote_ip: fields.address("remip", "remip=<ip address>")?,
        bytes_in,
        bytes_out,
    }))
}

/// `action="tunnel-up"`: the session starts.
fn tunnel_up<'a>(fields: &Fields<'a>, mode: Mode) -> Result<Event<'a>, ParseError> {
    Ok(Event::SessionStarted {
        user: identity(fields, mode).ok_or_else(|| fields.missing("user=<name>"))?,
        instance: tunnel_id(fields)?,
        remote_ip: Some(fields.required_address("remip", "remip=<ip address>")?),
        remote_port: None,
        virtual_ip: virtual_ip(fields)?,
        tunnel: dialup_tunnel(fields, mode),
        correlation: None,
    })
}

/// `action="tunnel-down"`: the session ends, with its length and bytes.
///
/// FortiOS does not say which way `sentbyte` and `rcvdbyte` count; like
/// vpn-formats.md we read them from the gateway's side (sent = to the
/// client), which a real unit should confirm.
fn tunnel_down<'a>(fields: &Fields<'a>, mode: Mode) -> Result<Event<'a>, ParseError> {
    let detail = fields
        .present("reason")
        .or_else(|| fields.present("msg"))
        .unwrap_or("");
    Ok(Event::SessionEnded {
        user: identity(fields, mode),
        instance: tunnel_id(fields)?,
        reason: end_reason(detail),
        detail,
        bytes_in: fields.parsed("rcvdbyte", "rcvdbyte=<number>")?,
        bytes_out: fields.parsed("sentbyte", "sentbyte=<number>")?,
        duration_s: fields.parsed("duration", "duration=<seconds>")?,
        remote_ip: fields.address("remip", "remip=<ip address>")?,
        tunnel: dialup_tunnel(fields, mode),
    })
}

/// `reason="User requested termination of service"`: why the tunnel went
/// down, in the gateway's words.
fn end_reason(reason: &str) -> EndReason {
    let has = |word| kv::contains_ignoring_case(reason, word);
    if has("user requested") {
        EndReason::UserExit
    } else if has("idle") || has("timeout") {
        EndReason::Timeout
    } else if has("admin") || has("kicked") || has("deleted by") {
        EndReason::Admin
    } else {
        EndReason::Unknown
    }
}

/// `action="tunnel-stats"`: the running totals of an open tunnel.
fn tunnel_stats<'a>(fields: &Fields<'a>) -> Result<Event<'a>, ParseError> {
    Ok(Event::BytesCounted {
        instance: Some(tunnel_id(fields)?),
        virtual_ip: virtual_ip(fields)?,
        bytes_in: fields.required("rcvdbyte", "rcvdbyte=<number>")?,
        bytes_out: fields.required("sentbyte", "sentbyte=<number>")?,
        cumulative: true,
    })
}

/// `action="ssl-login-fail"` and the other `*-fail` actions: an attempt
/// that opened nothing.
fn login_failed<'a>(fields: &Fields<'a>) -> Event<'a> {
    Event::AuthFailed {
        user: fields.present("user"),
        instance: None,
        detail: fields
            .present("msg")
            .or_else(|| fields.present("reason"))
            .or_else(|| fields.present("action"))
            .unwrap_or(""),
    }
}

/// `type="traffic"`: one connection through the firewall, logged when it
/// ends.
///
/// ```text
/// srcip=10.212.134.200 srcport=51022 dstip=192.168.10.21 dstport=443 proto=6
///     action="close" policyname="SSLVPN-to-LAN"
/// ```
fn traffic<'a>(fields: &Fields<'a>) -> Result<Traffic<'a>, ParseError> {
    Ok(Traffic {
        src: fields.required_address("srcip", "srcip=<ip address>")?,
        dst: fields.required_address("dstip", "dstip=<ip address>")?,
        proto: protocol(fields)?,
        src_port: fields.parsed("srcport", "srcport=<port>")?,
        dst_port: fields.parsed("dstport", "dstport=<port>")?,
        verdict: verdict(fields)?,
        label: fields.present("policyname"),
    })
}

/// `proto=6`: the IP protocol number, named when it is a common one.
fn protocol<'a>(fields: &Fields<'a>) -> Result<&'a str, ParseError> {
    const EXPECTED: &str = "proto=<protocol number>";
    let number = fields.require("proto", EXPECTED)?;
    if number.parse::<u8>().is_err() {
        return Err(fields.error_at(number, EXPECTED));
    }
    Ok(match number {
        "1" => "icmp",
        "6" => "tcp",
        "17" => "udp",
        "58" => "icmpv6",
        other => other,
    })
}

/// `action="close"`: how the flow ended, which tells whether it was let
/// through. `start` is the log some policies write when a flow opens.
fn verdict(fields: &Fields<'_>) -> Result<Verdict, ParseError> {
    const EXPECTED: &str =
        "action=accept|close|timeout|server-rst|client-rst|start|deny|block|dropped|ip-conn";
    let action = fields.require("action", EXPECTED)?;
    match action {
        "accept" | "close" | "timeout" | "server-rst" | "client-rst" | "start" => {
            Ok(Verdict::Allowed)
        }
        "deny" | "block" | "dropped" | "ip-conn" => Ok(Verdict::Dropped),
        _ => Err(fields.error_at(action, EXPECTED)),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, NaiveDateTime};
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn absolute(rfc3339: &str) -> Option<LineTime> {
        Some(LineTime::Absolute {
            at: DateTime::parse_from_rfc3339(rfc3339).unwrap(),
        })
    }

    /// The lines of fixtures/corpus/fortigate/sslvpn-and-traffic.log,
    /// without their syslog priority.
    const LOGIN_FAIL: &str = r#"date=2024-03-19 time=13:58:02 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853082114000113 tz="+0100" logid="0101039426" type="event" subtype="vpn" level="alert" vd="root" logdesc="SSL VPN login fail" action="ssl-login-fail" tunneltype="ssl-web" tunnelid=0 remip=203.0.113.150 user="m.dupont" group="N/A" dst_host="N/A" reason="sslvpn_login_permission_denied" msg="SSL user failed to logged in""#;
    const NEW_CONNECTION: &str = r#"date=2024-03-19 time=14:02:31 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853351552310977 tz="+0100" logid="0101039943" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN new connection" action="ssl-new-con" tunneltype="ssl" tunnelid=0 remip=198.51.100.23 user="N/A" group="N/A" dst_host="N/A" reason="N/A" msg="SSL new connection""#;
    const TUNNEL_UP: &str = r#"date=2024-03-19 time=14:02:33 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853353901233451 tz="+0100" logid="0101039947" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN tunnel up" action="tunnel-up" tunneltype="ssl-tunnel" tunnelid=1529032756 remip=198.51.100.23 tunnelip=10.212.134.200 user="j.martin" group="Techniciens" dst_host="N/A" reason="tunnel established" msg="SSL tunnel established""#;
    const TRAFFIC_HTTPS: &str = r#"date=2024-03-19 time=14:05:12 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853512330120440 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=10.212.134.200 srcport=51022 srcintf="ssl.root" srcintfrole="undefined" dstip=192.168.10.21 dstport=443 dstintf="internal" dstintfrole="lan" srcuuid="1f0c6a2e-0c3b-51ef-1111-000000000001" srccountry="Reserved" dstcountry="Reserved" sessionid=8812041 proto=6 action="close" policyid=12 policytype="policy" poluuid="5d2f7a10-0c3b-51ef-2222-000000000012" policyname="SSLVPN-to-LAN" user="j.martin" group="Techniciens" authserver="LDAP-AD" service="HTTPS" trandisp="noop" duration=95 sentbyte=184220 rcvdbyte=2210331 sentpkt=602 rcvdpkt=1810 appcat="unscanned""#;
    const TRAFFIC_LAN_TO_WAN: &str = r#"date=2024-03-19 time=14:09:40 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853780877402211 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=192.168.10.50 srcport=40022 srcintf="internal" srcintfrole="lan" dstip=192.0.2.44 dstport=443 dstintf="wan1" dstintfrole="wan" srccountry="Reserved" dstcountry="Reserved" sessionid=8812311 proto=6 action="close" policyid=1 policytype="policy" poluuid="5d2f7a10-0c3b-51ef-2222-000000000001" policyname="LAN-to-WAN" service="HTTPS" trandisp="snat" transip=192.0.2.2 transport=40022 duration=12 sentbyte=3120 rcvdbyte=8221 sentpkt=14 rcvdpkt=12 appcat="unscanned""#;
    const TUNNEL_STATS: &str = r#"date=2024-03-19 time=14:12:33 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710853953901001876 tz="+0100" logid="0101039949" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN statistics" action="tunnel-stats" tunneltype="ssl-tunnel" tunnelid=1529032756 remip=198.51.100.23 tunnelip=10.212.134.200 user="j.martin" group="Techniciens" dst_host="N/A" nextstat=600 duration=600 sentbyte=12044871 rcvdbyte=1204022 msg="SSL tunnel statistics""#;
    const TRAFFIC_RTSP: &str = r#"date=2024-03-19 time=14:21:58 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710854518101223344 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=10.212.134.200 srcport=51101 srcintf="ssl.root" srcintfrole="undefined" dstip=192.168.10.35 dstport=554 dstintf="internal" dstintfrole="lan" srccountry="Reserved" dstcountry="Reserved" sessionid=8813390 proto=6 action="close" policyid=12 policytype="policy" poluuid="5d2f7a10-0c3b-51ef-2222-000000000012" policyname="SSLVPN-to-LAN" user="j.martin" group="Techniciens" authserver="LDAP-AD" service="RTSP" trandisp="noop" duration=611 sentbyte=51020 rcvdbyte=30120455 sentpkt=812 rcvdpkt=21044 appcat="unscanned""#;
    const TRAFFIC_RDP_TIMEOUT: &str = r#"date=2024-03-19 time=14:33:07 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710855187662001245 tz="+0100" logid="0000000013" type="traffic" subtype="forward" level="notice" vd="root" srcip=10.212.134.200 srcport=51188 srcintf="ssl.root" srcintfrole="undefined" dstip=192.168.10.60 dstport=3389 dstintf="internal" dstintfrole="lan" srccountry="Reserved" dstcountry="Reserved" sessionid=8814002 proto=6 action="timeout" policyid=12 policytype="policy" poluuid="5d2f7a10-0c3b-51ef-2222-000000000012" policyname="SSLVPN-to-LAN" user="j.martin" group="Techniciens" authserver="LDAP-AD" service="RDP" trandisp="noop" duration=420 sentbyte=1922030 rcvdbyte=7420112 sentpkt=8120 rcvdpkt=9001 appcat="unscanned""#;
    const TUNNEL_DOWN: &str = r#"date=2024-03-19 time=14:47:45 devname="FGT-GRENOBLE" devid="FGT60FTK20000001" eventtime=1710856065204511873 tz="+0100" logid="0101039948" type="event" subtype="vpn" level="information" vd="root" logdesc="SSL VPN tunnel down" action="tunnel-down" tunneltype="ssl-tunnel" tunnelid=1529032756 remip=198.51.100.23 tunnelip=10.212.134.200 user="j.martin" group="Techniciens" dst_host="N/A" reason="User requested termination of service" duration=2712 sentbyte=48211904 rcvdbyte=9120443 msg="SSL tunnel shutdown""#;

    /// An IPsec dial-up pair after vpn-formats.md section 4: a certificate
    /// subject in `user`, the XAuth login in `xauthuser`.
    const IPSEC_UP: &str = r#"date=2024-05-14 time=09:12:40 devname="FGT-ANNECY" devid="FGT60FTK20000002" eventtime=1715670760123456789 tz="+0200" logid="0101037138" type="event" subtype="vpn" level="notice" vd="root" logdesc="IPsec connection status changed" msg="IPsec connection status change" action="tunnel-up" remip=203.0.113.77 locip=192.0.2.10 remport=4500 locport=4500 outintf="wan1" cookies="6f1c2a9e4b7d0a31/9e03b5c4d2a1f870" user="C = FR, O = Integrateur, CN = p.bernard" group="N/A" useralt="N/A" xauthuser="p.bernard" xauthgroup="Techniciens" assignip=10.20.30.2 vpntunnel="Dialup-cert_0" tunnelip=N/A tunnelid=2271504173 tunneltype="ipsec" duration=0 sentbyte=0 rcvdbyte=0 nextstat=0"#;
    const IPSEC_DOWN: &str = r#"date=2024-05-14 time=09:53:31 devname="FGT-ANNECY" devid="FGT60FTK20000002" eventtime=1715673211987654321 tz="+0200" logid="0101037138" type="event" subtype="vpn" level="notice" vd="root" logdesc="IPsec connection status changed" msg="IPsec connection status change" action="tunnel-down" remip=203.0.113.77 locip=192.0.2.10 remport=4500 locport=4500 outintf="wan1" cookies="6f1c2a9e4b7d0a31/9e03b5c4d2a1f870" user="C = FR, O = Integrateur, CN = p.bernard" group="N/A" useralt="N/A" xauthuser="p.bernard" xauthgroup="Techniciens" assignip=10.20.30.2 vpntunnel="Dialup-cert_0" tunnelip=N/A tunnelid=2271504173 tunneltype="ipsec" duration=2451 sentbyte=18231004 rcvdbyte=2204117 nextstat=0"#;

    fn at_grenoble(time: &str) -> Option<LineTime> {
        absolute(&format!("2024-03-19T{time}+01:00"))
    }

    #[test]
    fn corpus_file_holds_the_lines_tested_here() {
        let file = include_str!("../../fixtures/corpus/fortigate/sslvpn-and-traffic.log");
        let messages: Vec<&str> = file
            .lines()
            .map(|line| line.split_once('>').unwrap().1)
            .collect();
        assert_eq!(
            messages,
            [
                LOGIN_FAIL,
                NEW_CONNECTION,
                TUNNEL_UP,
                TRAFFIC_HTTPS,
                TRAFFIC_LAN_TO_WAN,
                TUNNEL_STATS,
                TRAFFIC_RTSP,
                TRAFFIC_RDP_TIMEOUT,
                TUNNEL_DOWN,
            ]
        );
        assert!(messages.iter().all(|m| is_fortigate(m)));
    }

    #[test]
    fn ssl_login_failure() {
        assert_eq!(
            message(LOGIN_FAIL).unwrap(),
            Extracted {
                event: Some(Event::AuthFailed {
                    user: Some("m.dupont"),
                    instance: None,
                    detail: "SSL user failed to logged in",
                }),
                time: at_grenoble("13:58:02"),
                device: Some("FGT-GRENOBLE"),
            }
        );
    }

    #[test]
    fn new_tls_connection_is_not_a_session() {
        assert_eq!(
            message(NEW_CONNECTION).unwrap(),
            Extracted {
                event: None,
                time: at_grenoble("14:02:31"),
                device: Some("FGT-GRENOBLE"),
            }
        );
    }

    #[test]
    fn ssl_tunnel_up_starts_a_session() {
        assert_eq!(
            message(TUNNEL_UP).unwrap(),
            Extracted {
                event: Some(Event::SessionStarted {
                    user: "j.martin",
                    instance: "1529032756",
                    remote_ip: Some(ip("198.51.100.23")),
                    remote_port: None,
                    virtual_ip: Some(ip("10.212.134.200")),
                    tunnel: None,
                    correlation: None,
                }),
                time: at_grenoble("14:02:33"),
                device: Some("FGT-GRENOBLE"),
            }
        );
    }

    #[test]
    fn traffic_from_the_tunnel() {
        let cases = [
            (
                TRAFFIC_HTTPS,
                "14:05:12",
                "10.212.134.200",
                51022,
                "192.168.10.21",
                443,
                "SSLVPN-to-LAN",
            ),
            (
                TRAFFIC_LAN_TO_WAN,
                "14:09:40",
                "192.168.10.50",
                40022,
                "192.0.2.44",
                443,
                "LAN-to-WAN",
            ),
            (
                TRAFFIC_RTSP,
                "14:21:58",
                "10.212.134.200",
                51101,
                "192.168.10.35",
                554,
                "SSLVPN-to-LAN",
            ),
            (
                TRAFFIC_RDP_TIMEOUT,
                "14:33:07",
                "10.212.134.200",
                51188,
                "192.168.10.60",
                3389,
                "SSLVPN-to-LAN",
            ),
        ];
        for (line, time, src, src_port, dst, dst_port, label) in cases {
            assert_eq!(
                message(line).unwrap(),
                Extracted {
                    event: Some(Event::Traffic(Traffic {
                        src: ip(src),
                        dst: ip(dst),
                        proto: "tcp",
                        src_port: Some(src_port),
                        dst_port: Some(dst_port),
                        verdict: Verdict::Allowed,
                        label: Some(label),
                    })),
                    time: at_grenoble(time),
                    device: Some("FGT-GRENOBLE"),
                },
                "{line}"
            );
        }
    }

    #[test]
    fn ssl_statistics_are_running_totals() {
        assert_eq!(
            message(TUNNEL_STATS).unwrap(),
            Extracted {
                event: Some(Event::BytesCounted {
                    instance: Some("1529032756"),
                    virtual_ip: Some(ip("10.212.134.200")),
                    bytes_in: 1204022,
                    bytes_out: 12044871,
                    cumulative: true,
                }),
                time: at_grenoble("14:12:33"),
                device: Some("FGT-GRENOBLE"),
            }
        );
    }

    #[test]
    fn ssl_tunnel_down_ends_the_session() {
        assert_eq!(
            message(TUNNEL_DOWN).unwrap(),
            Extracted {
                event: Some(Event::SessionEnded {
                    user: Some("j.martin"),
                    instance: "1529032756",
                    reason: EndReason::UserExit,
                    detail: "User requested termination of service",
                    bytes_in: Some(9120443),
                    bytes_out: Some(48211904),
                    duration_s: Some(2712),
                    remote_ip: Some(ip("198.51.100.23")),
                    tunnel: None,
                }),
                time: at_grenoble("14:47:45"),
                device: Some("FGT-GRENOBLE"),
            }
        );
    }

    #[test]
    fn ipsec_dialup_up_and_down() {
        assert_eq!(
            message(IPSEC_UP).unwrap(),
            Extracted {
                event: Some(Event::SessionStarted {
                    user: "p.bernard",
                    instance: "2271504173",
                    remote_ip: Some(ip("203.0.113.77")),
                    remote_port: None,
                    virtual_ip: Some(ip("10.20.30.2")),
                    tunnel: Some("Dialup-cert"),
                    correlation: None,
                }),
                time: absolute("2024-05-14T09:12:40+02:00"),
                device: Some("FGT-ANNECY"),
            }
        );
        assert_eq!(
            message(IPSEC_DOWN).unwrap(),
            Extracted {
                event: Some(Event::SessionEnded {
                    user: Some("p.bernard"),
                    instance: "2271504173",
                    reason: EndReason::Unknown,
                    detail: "IPsec connection status change",
                    bytes_in: Some(2204117),
                    bytes_out: Some(18231004),
                    duration_s: Some(2451),
                    remote_ip: Some(ip("203.0.113.77")),
                    tunnel: Some("Dialup-cert"),
                }),
                time: absolute("2024-05-14T09:53:31+02:00"),
                device: Some("FGT-ANNECY"),
            }
        );
    }

    #[test]
    fn ipsec_certificate_subject_when_there_is_no_xauth_login() {
        let line = r#"date=2024-05-14 time=10:01:02 devname="FGT-ANNECY" tz="+0200" logid="0101037138" type="event" subtype="vpn" action="tunnel-up" remip=198.51.100.61 user="CN=Martin\, J.,OU=Tech" xauthuser="N/A" assignip=10.20.30.3 vpntunnel="Dialup_12" tunnelip=0.0.0.0 tunnelid=4100 tunneltype="ipsec""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::SessionStarted {
                user: r"CN=Martin\, J.,OU=Tech",
                instance: "4100",
                remote_ip: Some(ip("198.51.100.61")),
                remote_port: None,
                virtual_ip: Some(ip("10.20.30.3")),
                tunnel: Some("Dialup"),
                correlation: None,
            })
        );
    }

    #[test]
    fn site_to_site_ipsec_is_a_site_tunnel_not_a_session() {
        let line = r#"date=2024-05-14 time=08:00:00 devname="FGT-ANNECY" tz="+0200" logid="0101037138" type="event" subtype="vpn" msg="IPsec connection status change" action="tunnel-up" remip=192.0.2.200 user="N/A" xauthuser="N/A" assignip=N/A vpntunnel="to-lyon" tunnelip=N/A tunnelid=7 tunneltype="ipsec""#;
        let got = message(line).unwrap();
        assert_eq!(
            got.event,
            Some(Event::SiteTunnel {
                tunnel: "to-lyon",
                up: true,
                detail: "IPsec connection status change",
                remote_ip: Some(ip("192.0.2.200")),
                bytes_in: None,
                bytes_out: None,
            })
        );
        assert_eq!(got.device, Some("FGT-ANNECY"));

        let down = r#"date=2024-05-14 time=18:00:00 devname="FGT-ANNECY" tz="+0200" logid="0101037138" type="event" subtype="vpn" msg="IPsec connection status change" action="tunnel-down" remip=192.0.2.200 user="N/A" xauthuser="N/A" vpntunnel="to-lyon" tunnelid=7 tunneltype="ipsec" duration=36000 sentbyte=7340032 rcvdbyte=1048576"#;
        assert_eq!(
            message(down).unwrap().event,
            Some(Event::SiteTunnel {
                tunnel: "to-lyon",
                up: false,
                detail: "IPsec connection status change",
                remote_ip: Some(ip("192.0.2.200")),
                bytes_in: Some(1_048_576),
                bytes_out: Some(7_340_032),
            })
        );
    }

    #[test]
    fn ipsec_statistics() {
        let line = r#"date=2024-05-14 time=09:22:40 devname="FGT-ANNECY" tz="+0200" logid="0101037141" type="event" subtype="vpn" action="tunnel-stats" remip=203.0.113.77 xauthuser="p.bernard" assignip=10.20.30.2 vpntunnel="Dialup-cert_0" tunnelip=N/A tunnelid=2271504173 duration=600 sentbyte="4100" rcvdbyte="880""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::BytesCounted {
                instance: Some("2271504173"),
                virtual_ip: Some(ip("10.20.30.2")),
                bytes_in: 880,
                bytes_out: 4100,
                cumulative: true,
            })
        );
    }

    #[test]
    fn quoted_numbers_and_addresses_read_like_bare_ones() {
        let line = r#"date="2024-03-19" time="14:02:33" devname="FGT-GRENOBLE" tz="+0100" logid="0101039947" type="event" action="tunnel-up" tunnelid="1529032756" remip="198.51.100.23" tunnelip="10.212.134.200" user="j.martin""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::SessionStarted {
                user: "j.martin",
                instance: "1529032756",
                remote_ip: Some(ip("198.51.100.23")),
                remote_port: None,
                virtual_ip: Some(ip("10.212.134.200")),
                tunnel: None,
                correlation: None,
            })
        );
    }

    #[test]
    fn reason_text_with_commas_equals_and_escaped_quotes() {
        let line = r#"date=2024-03-19 time=15:00:00 devname="FGT-GRENOBLE" tz="+0100" logid="0101039948" type="event" action="tunnel-down" tunnelid=77 remip=198.51.100.23 user="j.martin" reason="Idle timeout, limit=\"300s\"" duration=310 sentbyte=10 rcvdbyte=20 msg="SSL tunnel shutdown""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::SessionEnded {
                user: Some("j.martin"),
                instance: "77",
                reason: EndReason::Timeout,
                detail: r#"Idle timeout, limit=\"300s\""#,
                bytes_in: Some(20),
                bytes_out: Some(10),
                duration_s: Some(310),
                remote_ip: Some(ip("198.51.100.23")),
                tunnel: None,
            })
        );
    }

    #[test]
    fn end_reasons_from_the_gateway_words() {
        assert_eq!(
            end_reason("User requested termination of service"),
            EndReason::UserExit
        );
        assert_eq!(end_reason("idle-timeout"), EndReason::Timeout);
        assert_eq!(end_reason("Session TIMEOUT"), EndReason::Timeout);
        assert_eq!(end_reason("Kicked out by admin"), EndReason::Admin);
        assert_eq!(
            end_reason("tunnel deleted by peer request"),
            EndReason::Admin
        );
        assert_eq!(end_reason("SSL tunnel shutdown"), EndReason::Unknown);
    }

    #[test]
    fn down_without_reason_takes_the_message() {
        let line = r#"date=2024-03-19 time=15:00:00 devname="FGT-GRENOBLE" logid="0101039948" type="event" action="tunnel-down" tunnelid=77 user="j.martin" reason="N/A" msg="SSL tunnel shutdown""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::SessionEnded {
                user: Some("j.martin"),
                instance: "77",
                reason: EndReason::Unknown,
                detail: "SSL tunnel shutdown",
                bytes_in: None,
                bytes_out: None,
                duration_s: None,
                remote_ip: None,
                tunnel: None,
            })
        );
    }

    #[test]
    fn zone_forms() {
        let head = r#"date=2024-03-19 time=14:02:33 devname="FGT-GRENOBLE" "#;
        let tail = r#" logid="0101039943" type="event" action="ssl-new-con""#;
        for tz in [r#"tz="+0100""#, "tz=+0100", r#"tz="+01:00""#] {
            let line = format!("{head}{tz}{tail}");
            assert_eq!(
                message(&line).unwrap().time,
                at_grenoble("14:02:33"),
                "{tz}"
            );
        }
        let line = format!("{head}tz=-0330{tail}");
        assert_eq!(
            message(&line).unwrap().time,
            absolute("2024-03-19T14:02:33-03:30")
        );

        let line = format!("{}{tail}", head.trim_end());
        assert_eq!(
            message(&line).unwrap().time,
            Some(LineTime::Local {
                at: NaiveDateTime::parse_from_str("2024-03-19 14:02:33", "%Y-%m-%d %H:%M:%S")
                    .unwrap(),
            })
        );

        let line = format!("{head}tz=\"CET\"{tail}");
        let err = message(&line).unwrap_err();
        assert_eq!(err.expected, "tz=<UTC offset such as +0100>");
        assert_eq!(err.column, 58);
        assert_eq!(err.found, "CET");
    }

    #[test]
    fn traffic_deny_and_other_protocols() {
        let line = r#"date=2024-03-19 time=14:40:00 devname="FGT-GRENOBLE" tz="+0100" logid="0000000013" type="traffic" subtype="forward" srcip=10.212.134.200 srcport=53122 dstip=192.168.20.5 dstport=161 proto=17 action="deny" policyid=0 policyname="Implicit Deny""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::Traffic(Traffic {
                src: ip("10.212.134.200"),
                dst: ip("192.168.20.5"),
                proto: "udp",
                src_port: Some(53122),
                dst_port: Some(161),
                verdict: Verdict::Dropped,
                label: Some("Implicit Deny"),
            }))
        );
        let line = r#"date=2024-03-19 time=14:41:00 devname="FGT-GRENOBLE" logid="0000000013" type="traffic" srcip=10.212.134.200 dstip=192.168.20.5 proto=47 action="accept""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::Traffic(Traffic {
                src: ip("10.212.134.200"),
                dst: ip("192.168.20.5"),
                proto: "47",
                src_port: None,
                dst_port: None,
                verdict: Verdict::Allowed,
                label: None,
            }))
        );
    }

    #[test]
    fn tunnel_up_without_tunnel_id_is_an_error_at_the_end() {
        let line = r#"date=2024-03-19 time=14:02:33 logid="0101039947" action="tunnel-up" remip=198.51.100.23 user="j.martin""#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "tunnelid=<number>");
        assert_eq!(err.column, 104);
        assert_eq!(err.found, "");
    }

    #[test]
    fn bad_remote_address_is_an_error_at_its_column() {
        let line = r#"date=2024-03-19 time=14:02:33 logid="0101039947" action="tunnel-up" tunnelid=5 remip=198.51.100.256 user="j.martin""#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "remip=<ip address>");
        assert_eq!(err.column, 86);
        assert_eq!(err.found, "198.51.100.256");
    }

    #[test]
    fn bad_byte_count_and_unknown_traffic_action_are_errors() {
        let line = r#"logid="0101039948" action="tunnel-down" tunnelid=5 sentbyte=12k"#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "sentbyte=<number>");
        assert_eq!(err.column, 61);

        let line = r#"logid="0000000013" type="traffic" srcip=10.0.0.1 dstip=10.0.0.2 proto=6 action="teleport""#;
        let err = message(line).unwrap_err();
        assert_eq!(
            err.expected,
            "action=accept|close|timeout|server-rst|client-rst|start|deny|block|dropped|ip-conn"
        );
        assert_eq!(err.column, 81);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = message(r#"date=2024-03-19 logid="0101039947 user=x"#).unwrap_err();
        assert_eq!(err.expected, "a closing '\"' for the quote opened here");
        assert_eq!(err.column, 23);
    }

    #[test]
    fn recognises_its_headers() {
        assert!(is_fortigate(
            r#"logver=700140601 timestamp=1710853353 devname="FGT" logid="0101039947""#
        ));
        assert!(is_fortigate(
            "eventtime=1710853353901233451 tz=\"+0100\" logid=\"0101039947\""
        ));
        assert!(!is_fortigate(
            "date=2024-03-19 time=14:02:33 devname=\"FGT\""
        ));
        assert!(!is_fortigate(
            r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W" logtype="xvpn""#
        ));
    }

    #[test]
    fn dialup_instance_suffix() {
        assert_eq!(without_instance_suffix("Dialup-cert_0"), "Dialup-cert");
        assert_eq!(without_instance_suffix("rw_techs_17"), "rw_techs");
        assert_eq!(without_instance_suffix("to_lyon"), "to_lyon");
        assert_eq!(without_instance_suffix("_3"), "_3");
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(message_text in any::<String>()) {
            let _ = message(&message_text);
        }

        #[test]
        fn damaged_corpus_lines_never_panic(cut in 0usize..800, junk in r#"[ ="\\a-z0-9.]{0,6}"#) {
            for line in [TUNNEL_UP, TUNNEL_STATS, TUNNEL_DOWN, TRAFFIC_HTTPS, IPSEC_UP] {
                let mut cut = cut.min(line.len());
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                let damaged = format!("{}{junk}{}", &line[..cut], &line[cut..]);
                let _ = message(&damaged);
            }
        }
    }
}
