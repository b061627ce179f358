//! Stormshield SNS `key=value` logs: SSL VPN (`logtype="xvpn"`) sessions and
//! authentication failures, and connection logs as evidence of devices
//! reached.
//!
//! ```text
//! id=firewall time="2024-04-09 10:20:41" fw="SN210W-GRENOBLE" tz=+0200 ... user="j.martin"
//!     domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.6 port=61003
//!     msg="SSL tunnel created" logtype="xvpn"
//! ```
//!
//! `logtype` says which family a line belongs to; `msg` says what happened.

use std::sync::LazyLock;

use crate::error::ParseError;
use crate::event::{EndReason, Event, Extracted, Traffic, Verdict};
use crate::kv::{self, Fields};
use crate::time::LineTime;
use memchr::memmem::Finder;

/// Whether a message looks like a Stormshield log. True only for a message
/// that begins `id=firewall ` or holds a `"`: [`crate::detect`] rules out
/// the others before calling it.
pub fn is_stormshield(message: &str) -> bool {
    static FW: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" fw=\""));
    static LOGTYPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" logtype="));
    message.starts_with("id=firewall ")
        || (FW.find(message.as_bytes()).is_some() && LOGTYPE.find(message.as_bytes()).is_some())
}

/// Reads a Stormshield message: its time and device always, and the VPN
/// fact when its `logtype` and `msg` carry one.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    let fields = kv::fields(message)?;
    Ok(Extracted {
        time: header_time(&fields)?,
        event: event(&fields)?,
        device: fields.present("fw"),
    })
}

/// `time="2024-04-09 10:20:41" tz=+0200`: an instant with the offset, a
/// local time without it; `None` without a time.
fn header_time(fields: &Fields<'_>) -> Result<Option<LineTime>, ParseError> {
    let Some(time) = fields.present("time") else {
        return Ok(None);
    };
    let at = kv::read_value(
        fields,
        time,
        kv::date_time,
        "time=\"<YYYY-MM-DD hh:mm:ss>\"",
    )?;
    let offset = fields
        .present("tz")
        .map(|tz| kv::read_value(fields, tz, kv::utc_offset, "tz=<UTC offset such as +0200>"))
        .transpose()?;
    Ok(Some(kv::line_time(at, offset)))
}

/// Picks the event a message carries from its `logtype` and `msg`.
fn event<'a>(fields: &Fields<'a>) -> Result<Option<Event<'a>>, ParseError> {
    let logtype = fields.get("logtype").unwrap_or("");
    let msg = fields.get("msg").unwrap_or("");
    match logtype {
        "xvpn" if msg == "SSL tunnel created" => tunnel_created(fields).map(Some),
        "xvpn" if is_tunnel_closed(msg) => tunnel_closed(fields, msg).map(Some),
        "xvpn" | "auth" if is_authentication_failure(msg) => Ok(Some(Event::AuthFailed {
            user: fields.present("user"),
            instance: None,
            detail: msg,
        })),
        "connection" | "filter" => connection(fields, logtype).map(|t| Some(Event::Traffic(t))),
        // "User authenticated in ASQ" comes just before "SSL tunnel
        // created" and adds nothing to it.
        _ => Ok(None),
    }
}

/// `user="j.martin"`: the login, without its `domain=`. The SSL VPN logs
/// give no tunnel number, so the user is also the instance key.
fn user<'a>(fields: &Fields<'a>) -> Result<&'a str, ParseError> {
    fields.require("user", "user=<name>")
}

/// `msg="SSL tunnel created"`: the session starts.
///
/// ```text
/// user="j.martin" domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.6 port=61003
/// ```
fn tunnel_created<'a>(fields: &Fields<'a>) -> Result<Event<'a>, ParseError> {
    let user = user(fields)?;
    Ok(Event::SessionStarted {
        user,
        instance: user,
        remote_ip: Some(fields.required_address("src", "src=<ip address>")?),
        remote_port: fields.present("port").and_then(|p| p.parse().ok()),
        virtual_ip: fields.address("remotenet", "remotenet=<ip address>")?,
        tunnel: None,
        correlation: None,
    })
}

/// Whether `msg` says an SSL tunnel closed.
///
/// No public sample of this message was found: the wording accepted here
/// ("SSL tunnel" with closed, destroyed, deleted, terminated or
/// disconnected) is a guess to check against a real appliance.
fn is_tunnel_closed(msg: &str) -> bool {
    let has = |word| kv::contains_ignoring_case(msg, word);
    has("SSL tunnel")
        && [
            "closed",
            "destroyed",
            "deleted",
            "terminated",
            "disconnected",
        ]
        .into_iter()
        .any(has)
}

/// The SSL tunnel closed: the session ends. Its wording is unverified (see
/// [`is_tunnel_closed`]), and so are its counters: `sent=`/`rcvd=`, when
/// present, are read from the firewall's side (`rcvd` from the client).
/// Connection logs count the other way, from the connection's source (a
/// client browsing sends little and receives much), so a real close line
/// must settle which way this one counts.
fn tunnel_closed<'a>(fields: &Fields<'a>, msg: &'a str) -> Result<Event<'a>, ParseError> {
    let user = user(fields)?;
    Ok(Event::SessionEnded {
        user: Some(user),
        instance: user,
        reason: EndReason::Unknown,
        detail: msg,
        bytes_in: fields.parsed("rcvd", "rcvd=<number>")?,
        bytes_out: fields.parsed("sent", "sent=<number>")?,
        duration_s: duration(fields)?,
        remote_ip: fields.address("src", "src=<ip address>")?,
        tunnel: None,
    })
}

/// `duration=135.02`: seconds with a fraction, rounded to whole seconds.
fn duration(fields: &Fields<'_>) -> Result<Option<u64>, ParseError> {
    const EXPECTED: &str = "duration=<seconds>";
    let Some(seconds) = fields.parsed::<f64>("duration", EXPECTED)? else {
        return Ok(None);
    };
    if !seconds.is_finite() || seconds < 0.0 || seconds > u64::MAX as f64 {
        let value = fields.get("duration").unwrap_or("");
        return Err(fields.error_at(value, EXPECTED));
    }
    Ok(Some(seconds.round() as u64))
}

/// `msg="Error during authentication : authentication failed, bad
/// password"`, as the SSL VPN portal or the authentication service writes
/// it.
fn is_authentication_failure(msg: &str) -> bool {
    kv::contains_ignoring_case(msg, "Error during authentication")
        || kv::contains_ignoring_case(msg, "authentication failed")
}

/// `logtype="connection"` or `"filter"`: one connection through the
/// firewall.
///
/// ```text
/// ipproto=tcp src=10.61.0.6 srcport=52011 dst=172.20.5.10 dstport=443 action=pass
/// ```
fn connection<'a>(fields: &Fields<'a>, logtype: &str) -> Result<Traffic<'a>, ParseError> {
    Ok(Traffic {
        src: fields.required_address("src", "src=<ip address>")?,
        dst: fields.required_address("dst", "dst=<ip address>")?,
        proto: protocol(fields.require("ipproto", "ipproto=<protocol name>")?),
        src_port: fields.parsed("srcport", "srcport=<port>")?,
        dst_port: fields.parsed("dstport", "dstport=<port>")?,
        verdict: verdict(fields, logtype)?,
        label: None,
    })
}

/// `ipproto="UDP"`: the protocol in lower case. Only the names we know can
/// be lower-cased without copying; any other is kept as written.
fn protocol(name: &str) -> &str {
    const KNOWN: [&str; 8] = ["tcp", "udp", "icmp", "icmpv6", "gre", "esp", "ah", "sctp"];
    KNOWN
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(name))
        .unwrap_or(name)
}

/// `action=pass`: whether the connection was let through. A connection log
/// without an action records a connection that was accepted.
fn verdict(fields: &Fields<'_>, logtype: &str) -> Result<Verdict, ParseError> {
    const EXPECTED: &str = "action=pass|block|drop|reject";
    match fields.present("action") {
        Some("pass") => Ok(Verdict::Allowed),
        Some("block" | "drop" | "reject") => Ok(Verdict::Dropped),
        Some(other) => Err(fields.error_at(other, EXPECTED)),
        None if logtype == "connection" => Ok(Verdict::Allowed),
        None => Err(fields.missing(EXPECTED)),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use chrono::{DateTime, NaiveDateTime};
    use proptest::prelude::*;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// 2024-04-09 at `time` in the appliance's `tz=+0200`.
    fn at_grenoble(time: &str) -> Option<LineTime> {
        Some(LineTime::Absolute {
            at: DateTime::parse_from_rfc3339(&format!("2024-04-09T{time}+02:00")).unwrap(),
        })
    }

    /// The lines of fixtures/corpus/stormshield/xvpn-and-connection.log.
    const AUTH_FAILED: &str = r#"id=firewall time="2024-04-09 10:15:02" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:15:02" ipproto="TCP" user="l.roux" domain="integrateur.local" src=203.0.113.150 msg="Error during authentication : authentication failed, bad password" logtype="xvpn""#;
    const AUTHENTICATED_IN_ASQ: &str = r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:20:41" ipproto="UDP" user="j.martin" domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.6 localnet=10.61.0.5 msg="User authenticated in ASQ" logtype="xvpn""#;
    const TUNNEL_CREATED: &str = r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:20:41" ipproto="UDP" user="j.martin" domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.6 localnet=10.61.0.5 port=61003 msg="SSL tunnel created" logtype="xvpn""#;
    const CONNECTION_HTTPS: &str = r#"id=firewall time="2024-04-09 10:24:10" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:21:55" pri=5 confid=01 slotlevel=2 ruleid=14 user="j.martin" domain="integrateur.local" srcif="sslvpn1" srcifname="sslvpn_udp" ipproto=tcp dstif="Ethernet1" dstifname="in" proto=https src=10.61.0.6 srcport=52011 srcportname=ephemeral_fw_tcp dst=172.20.5.10 dstport=443 dstportname=https dstname=nvr-01 modsrc=10.61.0.6 modsrcport=52011 origdst=172.20.5.10 origdstport=443 ipv=4 sent=210331 rcvd=4120032 duration=135.02 action=pass logtype="connection""#;
    const CONNECTION_DNS: &str = r#"id=firewall time="2024-04-09 10:26:30" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:26:29" pri=5 confid=01 slotlevel=2 ruleid=3 srcif="Ethernet1" srcifname="in" ipproto=udp dstif="Ethernet0" dstifname="out" proto=dns src=172.20.5.2 srcport=40012 srcportname=ephemeral_fw_udp dst=192.0.2.53 dstport=53 dstportname=dns modsrc=192.0.2.2 modsrcport=40012 origdst=192.0.2.53 origdstport=53 ipv=4 sent=74 rcvd=158 duration=0.02 action=pass logtype="connection""#;
    const CONNECTION_HTTP: &str = r#"id=firewall time="2024-04-09 10:41:12" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:30:02" pri=5 confid=01 slotlevel=2 ruleid=14 user="j.martin" domain="integrateur.local" srcif="sslvpn1" srcifname="sslvpn_udp" ipproto=tcp dstif="Ethernet1" dstifname="in" proto=http src=10.61.0.6 srcport=52104 srcportname=ephemeral_fw_tcp dst=172.20.5.22 dstport=80 dstportname=http dstname=ctrl-acces-01 modsrc=10.61.0.6 modsrcport=52104 origdst=172.20.5.22 origdstport=80 ipv=4 sent=52110 rcvd=310442 duration=670.40 action=pass logtype="connection""#;

    #[test]
    fn corpus_file_holds_the_lines_tested_here() {
        let file = include_str!("../../fixtures/corpus/stormshield/xvpn-and-connection.log");
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(
            lines,
            [
                AUTH_FAILED,
                AUTHENTICATED_IN_ASQ,
                TUNNEL_CREATED,
                CONNECTION_HTTPS,
                CONNECTION_DNS,
                CONNECTION_HTTP,
            ]
        );
        assert!(lines.iter().all(|l| is_stormshield(l)));
    }

    #[test]
    fn bad_password_is_a_failed_attempt() {
        assert_eq!(
            message(AUTH_FAILED).unwrap(),
            Extracted {
                event: Some(Event::AuthFailed {
                    user: Some("l.roux"),
                    instance: None,
                    detail: "Error during authentication : authentication failed, bad password",
                }),
                time: at_grenoble("10:15:02"),
                device: Some("SN210W-GRENOBLE"),
            }
        );
    }

    #[test]
    fn authenticated_in_asq_adds_nothing() {
        assert_eq!(
            message(AUTHENTICATED_IN_ASQ).unwrap(),
            Extracted {
                event: None,
                time: at_grenoble("10:20:41"),
                device: Some("SN210W-GRENOBLE"),
            }
        );
    }

    #[test]
    fn tunnel_created_starts_a_session() {
        assert_eq!(
            message(TUNNEL_CREATED).unwrap(),
            Extracted {
                event: Some(Event::SessionStarted {
                    user: "j.martin",
                    instance: "j.martin",
                    remote_ip: Some(ip("198.51.100.23")),
                    remote_port: Some(61003),
                    virtual_ip: Some(ip("10.61.0.6")),
                    tunnel: None,
                    correlation: None,
                }),
                time: at_grenoble("10:20:41"),
                device: Some("SN210W-GRENOBLE"),
            }
        );
    }

    #[test]
    fn connections_are_traffic() {
        let cases = [
            (
                CONNECTION_HTTPS,
                "10:24:10",
                "10.61.0.6",
                52011,
                "172.20.5.10",
                443,
                "tcp",
            ),
            (
                CONNECTION_DNS,
                "10:26:30",
                "172.20.5.2",
                40012,
                "192.0.2.53",
                53,
                "udp",
            ),
            (
                CONNECTION_HTTP,
                "10:41:12",
                "10.61.0.6",
                52104,
                "172.20.5.22",
                80,
                "tcp",
            ),
        ];
        for (line, time, src, src_port, dst, dst_port, proto) in cases {
            assert_eq!(
                message(line).unwrap(),
                Extracted {
                    event: Some(Event::Traffic(Traffic {
                        src: ip(src),
                        dst: ip(dst),
                        proto,
                        src_port: Some(src_port),
                        dst_port: Some(dst_port),
                        verdict: Verdict::Allowed,
                        label: None,
                    })),
                    time: at_grenoble(time),
                    device: Some("SN210W-GRENOBLE"),
                },
                "{line}"
            );
        }
    }

    #[test]
    fn tunnel_closed_ends_the_session() {
        let line = r#"id=firewall time="2024-04-09 11:02:09" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:20:41" ipproto="UDP" user="j.martin" domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.6 port=61003 sent=48211904 rcvd=9120443 duration=2488.60 msg="SSL tunnel closed" logtype="xvpn""#;
        assert_eq!(
            message(line).unwrap(),
            Extracted {
                event: Some(Event::SessionEnded {
                    user: Some("j.martin"),
                    instance: "j.martin",
                    reason: EndReason::Unknown,
                    detail: "SSL tunnel closed",
                    bytes_in: Some(9120443),
                    bytes_out: Some(48211904),
                    duration_s: Some(2489),
                    remote_ip: Some(ip("198.51.100.23")),
                    tunnel: None,
                }),
                time: at_grenoble("11:02:09"),
                device: Some("SN210W-GRENOBLE"),
            }
        );
    }

    #[test]
    fn other_closing_words_without_counts() {
        for msg in [
            "SSL tunnel destroyed",
            "ssl Tunnel DELETED",
            "SSL tunnel terminated by user",
        ] {
            let line = format!(
                r#"id=firewall time="2024-04-09 11:02:09" fw="SN210W-GRENOBLE" tz=+0200 user="j.martin" src=198.51.100.23 msg="{msg}" logtype="xvpn""#
            );
            assert_eq!(
                message(&line).unwrap().event,
                Some(Event::SessionEnded {
                    user: Some("j.martin"),
                    instance: "j.martin",
                    reason: EndReason::Unknown,
                    detail: msg,
                    bytes_in: None,
                    bytes_out: None,
                    duration_s: None,
                    remote_ip: Some(ip("198.51.100.23")),
                    tunnel: None,
                }),
                "{msg}"
            );
        }
    }

    #[test]
    fn ldap_dn_user_and_escaped_quotes_read_as_written() {
        let line = r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W-GRENOBLE" tz=+0200 user="CN=Martin\, J.,OU=Tech" domain="integrateur.local" src=198.51.100.23 remotenet=10.61.0.7 port=61010 comment="said \"hello\", x=1" msg="SSL tunnel created" logtype="xvpn""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::SessionStarted {
                user: r"CN=Martin\, J.,OU=Tech",
                instance: r"CN=Martin\, J.,OU=Tech",
                remote_ip: Some(ip("198.51.100.23")),
                remote_port: Some(61010),
                virtual_ip: Some(ip("10.61.0.7")),
                tunnel: None,
                correlation: None,
            })
        );
    }

    #[test]
    fn openvpn_authentication_failure_in_auth_logs() {
        let line = r#"id=firewall time="2024-04-09 11:30:00" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 11:30:00" pri=5 user="p.bernard" src=203.0.113.9 method="OPENVPN" error=1 msg="Authentication failed" logtype="auth""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::AuthFailed {
                user: Some("p.bernard"),
                instance: None,
                detail: "Authentication failed",
            })
        );
    }

    #[test]
    fn filter_block_is_dropped_traffic() {
        let line = r#"id=firewall time="2024-04-09 10:50:00" fw="SN210W-GRENOBLE" tz=+0200 startime="2024-04-09 10:50:00" pri=1 ruleid=20 srcif="sslvpn1" ipproto="ICMP" src=10.61.0.6 dst=172.20.5.40 action=block logtype="filter""#;
        assert_eq!(
            message(line).unwrap().event,
            Some(Event::Traffic(Traffic {
                src: ip("10.61.0.6"),
                dst: ip("172.20.5.40"),
                proto: "icmp",
                src_port: None,
                dst_port: None,
                verdict: Verdict::Dropped,
                label: None,
            }))
        );
    }

    #[test]
    fn connection_without_action_was_accepted_and_filter_must_say() {
        let line = r#"id=firewall time="2024-04-09 10:50:00" fw="SN210W-GRENOBLE" ipproto=OSPF src=172.20.5.1 dst=172.20.5.2 logtype="connection""#;
        let got = message(line).unwrap().event;
        assert_eq!(
            got,
            Some(Event::Traffic(Traffic {
                src: ip("172.20.5.1"),
                dst: ip("172.20.5.2"),
                proto: "OSPF",
                src_port: None,
                dst_port: None,
                verdict: Verdict::Allowed,
                label: None,
            }))
        );

        let line = r#"id=firewall fw="SN210W-GRENOBLE" ipproto=tcp src=10.61.0.6 dst=172.20.5.40 logtype="filter""#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "action=pass|block|drop|reject");
        assert_eq!(err.column, 92);
    }

    #[test]
    fn zone_forms() {
        let tail = r#" msg="User authenticated in ASQ" logtype="xvpn""#;
        for tz in ["tz=+0200", r#"tz="+0200""#, r#"tz="+02:00""#] {
            let line = format!(r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W" {tz}{tail}"#);
            assert_eq!(
                message(&line).unwrap().time,
                at_grenoble("10:20:41"),
                "{tz}"
            );
        }
        let line = format!(r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W"{tail}"#);
        assert_eq!(
            message(&line).unwrap().time,
            Some(LineTime::Local {
                at: NaiveDateTime::parse_from_str("2024-04-09 10:20:41", "%Y-%m-%d %H:%M:%S")
                    .unwrap(),
            })
        );
        let line = format!(r#"id=firewall time="2024-04-09" fw="SN210W"{tail}"#);
        let err = message(&line).unwrap_err();
        assert_eq!(err.expected, "time=\"<YYYY-MM-DD hh:mm:ss>\"");
        assert_eq!(err.column, 19);
    }

    #[test]
    fn tunnel_created_needs_its_addresses() {
        let line = r#"id=firewall fw="SN210W" user="j.martin" remotenet=10.61.0.6 msg="SSL tunnel created" logtype="xvpn""#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "src=<ip address>");
        assert_eq!(err.column, 100);

        let line = r#"id=firewall fw="SN210W" user="j.martin" src=198.51.100.23 remotenet=10.61.0.0/24 msg="SSL tunnel created" logtype="xvpn""#;
        let err = message(line).unwrap_err();
        assert_eq!(err.expected, "remotenet=<ip address>");
        assert_eq!(err.column, 69);
        assert_eq!(err.found, "10.61.0.0/24");
    }

    #[test]
    fn port_that_is_not_a_number_is_left_out() {
        let line = r#"id=firewall fw="SN210W" user="j.martin" src=198.51.100.23 port=openvpn msg="SSL tunnel created" logtype="xvpn""#;
        assert!(matches!(
            message(line).unwrap().event,
            Some(Event::SessionStarted {
                remote_port: None,
                virtual_ip: None,
                ..
            })
        ));
    }

    #[test]
    fn recognises_its_lines() {
        assert!(is_stormshield(
            r#"id=firewall time="2024-04-09 10:20:41" fw="SN210W""#
        ));
        assert!(is_stormshield(
            r#"time="2024-04-09 10:20:41" fw="SN210W" tz=+0200 logtype="xvpn""#
        ));
        assert!(!is_stormshield(
            r#"date=2024-03-19 time=14:02:33 devname="FGT" logid="0101039947""#
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(message_text in any::<String>()) {
            let _ = message(&message_text);
        }

        #[test]
        fn damaged_corpus_lines_never_panic(cut in 0usize..600, junk in r#"[ ="\\a-z0-9.]{0,6}"#) {
            for line in [AUTH_FAILED, TUNNEL_CREATED, CONNECTION_HTTPS] {
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
