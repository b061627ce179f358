//! Palo Alto Networks PAN-OS logs, sent through syslog as CSV records:
//! GlobalProtect logins and logouts (PAN-OS 9.1 and later), and the
//! TRAFFIC records that show the devices a VPN user reached.
//!
//! ```text
//! 1,2024/03/26 14:00:07,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:00:06,vsys1,gateway-connected,...
//! 1,2024/03/26 14:08:12,012801000001,TRAFFIC,end,2817,2024/03/26 14:08:12,10.30.0.25,192.168.80.12,...
//! ```
//!
//! Every record starts with the same seven fields: a reserved `1`, the
//! receive time, the firewall's serial, the log type, the subtype, a
//! reserved field and the generated time. The rest depends on the type.
//!
//! Older PAN-OS releases logged GlobalProtect as SYSTEM records of subtype
//! `globalprotect` in free text ("GlobalProtect gateway user logout
//! succeeded"): those are not read, so sessions of such a firewall are only
//! seen through its TRAFFIC records.

use std::net::IpAddr;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use nom::{
    branch::alt,
    bytes::complete::{is_not, tag, take_while, take_while_m_n},
    character::complete::char,
    combinator::{cut, map_opt, map_res, recognize},
    multi::many0_count,
    sequence::{preceded, terminated},
    Parser,
};

use crate::error::{expect, to_parse_error, Expected, PResult, ParseError};
use crate::event::{EndReason, Event, Extracted, Traffic, Verdict};
use crate::time::LineTime;

/// Where the fields every record shares are.
mod common {
    pub(super) const TYPE: usize = 3;
    pub(super) const GENERATED_TIME: usize = 6;
}

/// Where a GLOBALPROTECT record (PAN-OS 9.1 and later) puts what we read.
mod globalprotect_field {
    pub(super) const EVENT_ID: usize = 8;
    pub(super) const SOURCE_USER: usize = 12;
    pub(super) const PUBLIC_IP: usize = 15;
    pub(super) const PUBLIC_IPV6: usize = 16;
    pub(super) const PRIVATE_IP: usize = 17;
    pub(super) const PRIVATE_IPV6: usize = 18;
    pub(super) const REASON: usize = 25;
    pub(super) const ERROR: usize = 26;
    pub(super) const DESCRIPTION: usize = 27;
    pub(super) const STATUS: usize = 28;
    pub(super) const LOGIN_DURATION: usize = 30;
    pub(super) const PORTAL: usize = 33;
}

/// Where a TRAFFIC record puts what we read.
mod traffic_field {
    pub(super) const SOURCE: usize = 7;
    pub(super) const DESTINATION: usize = 8;
    pub(super) const RULE: usize = 11;
    pub(super) const SOURCE_PORT: usize = 24;
    pub(super) const DESTINATION_PORT: usize = 25;
    pub(super) const PROTOCOL: usize = 29;
    pub(super) const ACTION: usize = 30;
}

/// The log types whose records [`message`] reads (and the types it knows
/// to carry no session fact).
const LOG_TYPES: [&str; 4] = ["GLOBALPROTECT", "TRAFFIC", "THREAT", "SYSTEM"];

/// Whether a message is a PAN-OS CSV record:
/// `1,YYYY/MM/DD hh:mm:ss,SERIAL,TYPE,` with a type from [`LOG_TYPES`].
///
/// These first fields are never quoted, so a plain split is enough.
pub fn is_panos(message: &str) -> bool {
    let mut fields = message.splitn(5, ',');
    let (Some(reserved), Some(receive_time), Some(serial), Some(log_type), Some(_)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return false;
    };
    reserved.bytes().all(|b| b.is_ascii_digit())
        && date_time(receive_time).is_ok_and(|(rest, _)| rest.is_empty())
        && !serial.is_empty()
        && LOG_TYPES.contains(&log_type)
}

/// Reads one PAN-OS record: its generated time, and the session fact of a
/// GLOBALPROTECT record or the connection of a TRAFFIC record.
///
/// The generated time is when the firewall saw the event; the receive time
/// (second field) is when its log process stored the record, which can be
/// later, so the generated time is the one kept. The firewall writes it in
/// its own zone, without an offset. The device is left to the syslog host,
/// which names the firewall.
pub fn message(message: &str) -> Result<Extracted<'_>, ParseError> {
    let record = Record::split(message)?;

    let generated = record.field(
        common::GENERATED_TIME,
        "a Generated Time (YYYY/MM/DD hh:mm:ss)",
    )?;
    let at = match date_time(generated) {
        Ok(("", at)) => at,
        _ => {
            return Err(ParseError::at_slice(
                message,
                generated,
                "a Generated Time (YYYY/MM/DD hh:mm:ss)",
            ))
        }
    };

    let event = match record.field(common::TYPE, "a log type")? {
        "GLOBALPROTECT" => globalprotect(&record)?,
        "TRAFFIC" => Some(Event::Traffic(traffic(&record)?)),
        _ => None,
    };
    Ok(Extracted {
        event,
        time: Some(LineTime::Local { at }),
        device: None,
    })
}

/// A GLOBALPROTECT record's session fact:
///
/// - `gateway-connected`: the session starts, with the client's public
///   address and its address inside the tunnel;
/// - `gateway-logout`: it ends, with the login duration in seconds;
/// - `portal-auth` or `gateway-auth` with status `failure`: a failed login.
///
/// The other events (prelogin, getconfig, HIP checks, latency) are steps of
/// a connection, not its bounds. A `gateway-connected` whose status is
/// `failure` starts nothing.
///
/// GlobalProtect gives no per-connection key in both its connect and logout
/// records other than the user, so the user is the instance: two devices of
/// one user on the same gateway at once are taken for one session.
fn globalprotect<'a>(record: &Record<'a>) -> Result<Option<Event<'a>>, ParseError> {
    use globalprotect_field as f;

    let event_id = record.field(f::EVENT_ID, "an Event ID")?;
    let status = record.field(f::STATUS, "a Status")?;
    let failed = status.eq_ignore_ascii_case("failure");
    let user = record.field(f::SOURCE_USER, "a Source User")?;
    let tunnel = record.optional(f::PORTAL, "a Portal/Gateway name")?;

    let event = match event_id {
        "gateway-connected" if !failed => Event::SessionStarted {
            user,
            instance: user,
            remote_ip: record.address(
                f::PUBLIC_IP,
                "an IP address as Public IP",
                f::PUBLIC_IPV6,
                "an IP address as Public IPv6",
            )?,
            remote_port: None,
            virtual_ip: record.address(
                f::PRIVATE_IP,
                "an IP address as Private IP",
                f::PRIVATE_IPV6,
                "an IP address as Private IPv6",
            )?,
            tunnel,
            correlation: None,
        },
        "gateway-logout" => {
            let reason = record.field(f::REASON, "a Reason")?;
            let detail = if reason.is_empty() {
                record.field(f::DESCRIPTION, "a Description")?
            } else {
                reason
            };
            Event::SessionEnded {
                user: (!user.is_empty()).then_some(user),
                instance: user,
                reason: end_reason(reason),
                detail,
                bytes_in: None,
                bytes_out: None,
                duration_s: record
                    .number(f::LOGIN_DURATION, "a number of seconds as Login Duration")?,
                remote_ip: record.address(
                    f::PUBLIC_IP,
                    "an IP address as Public IP",
                    f::PUBLIC_IPV6,
                    "an IP address as Public IPv6",
                )?,
                tunnel,
            }
        }
        // The instance stays unset: the user is GlobalProtect's only key,
        // and a failed attempt must not touch that user's open session.
        "portal-auth" | "gateway-auth" if failed => Event::AuthFailed {
            user: (!user.is_empty()).then_some(user),
            instance: None,
            detail: record.first_non_empty(&[f::ERROR, f::DESCRIPTION, f::REASON], event_id),
        },
        _ => return Ok(None),
    };
    Ok(Some(event))
}

/// The end reason from a logout's Reason field, in PAN-OS's words
/// (`client logout`, `inactivity timeout`, `login lifetime expired`,
/// `admin logout`).
fn end_reason(reason: &str) -> EndReason {
    let reason = reason.to_ascii_lowercase();
    if reason.contains("timeout") || reason.contains("expired") {
        EndReason::Timeout
    } else if reason.contains("admin") || reason.contains("kicked") {
        EndReason::Admin
    } else if reason.contains("client logout") || reason.contains("user logout") {
        EndReason::UserExit
    } else {
        EndReason::Unknown
    }
}

/// A TRAFFIC record's connection: source, destination, protocol, ports,
/// what the firewall did with it and the rule that matched.
///
/// Every action but `allow` (`deny`, `drop`, `reset-client`,
/// `reset-server`, `reset-both`) kept the connection from its destination.
/// A port of 0, as ICMP records write, is no port.
fn traffic<'a>(record: &Record<'a>) -> Result<Traffic<'a>, ParseError> {
    use traffic_field as f;

    let action = record.field(f::ACTION, "an Action")?;
    let rule = record.field(f::RULE, "a Rule name")?;
    Ok(Traffic {
        src: record.ip(f::SOURCE, "an IP address as Source address")?,
        dst: record.ip(f::DESTINATION, "an IP address as Destination address")?,
        proto: record.field(f::PROTOCOL, "an IP Protocol")?,
        src_port: record.port(f::SOURCE_PORT, "a port number as Source Port")?,
        dst_port: record.port(f::DESTINATION_PORT, "a port number as Destination Port")?,
        verdict: if action == "allow" {
            Verdict::Allowed
        } else {
            Verdict::Dropped
        },
        label: (!rule.is_empty()).then_some(rule),
    })
}

/// `YYYY/MM/DD hh:mm:ss`: how PAN-OS writes the receive and generated
/// times, in the firewall's zone.
fn date_time(input: &str) -> PResult<'_, NaiveDateTime> {
    map_opt(
        (
            digits(4),
            char('/'),
            digits(2),
            char('/'),
            digits(2),
            char(' '),
            digits(2),
            char(':'),
            digits(2),
            char(':'),
            digits(2),
        ),
        |(year, _, month, _, day, _, hour, _, minute, _, second)| {
            let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
            Some(date.and_time(NaiveTime::from_hms_opt(hour, minute, second)?))
        },
    )
    .parse(input)
}

/// `n` decimal digits, as a number.
fn digits<'a>(n: usize) -> impl Parser<&'a str, Output = u32, Error = Expected<'a>> {
    map_res(
        take_while_m_n(n, n, |c: char| c.is_ascii_digit()),
        str::parse::<u32>,
    )
}

/// One CSV field: quoted (`"Microsoft Windows 11 Pro , 64-bit"`) or bare
/// (`gateway-connected`, or nothing between two commas).
fn csv_field(input: &str) -> PResult<'_, &str> {
    alt((quoted_field, bare_field)).parse(input)
}

/// `"..."`, with `""` standing for a quote inside: returns what is between
/// the outer quotes. Borrowing, it cannot undo the doubling: a field with a
/// quote inside keeps its `""` (`a ""b""` for the text `a "b"`).
fn quoted_field(input: &str) -> PResult<'_, &str> {
    // Past the opening quote the field must close: `cut` keeps it from
    // being read again as a bare field.
    preceded(
        char('"'),
        cut(terminated(
            recognize(many0_count(alt((is_not("\""), tag("\"\""))))),
            expect("a \" closing the quoted field", char('"')),
        )),
    )
    .parse(input)
}

/// A field without quotes: everything up to the next comma.
fn bare_field(input: &str) -> PResult<'_, &str> {
    take_while(|c| c != ',').parse(input)
}

/// A record split into its fields, and the message they borrow from, to
/// place errors in it.
#[derive(Debug)]
struct Record<'a> {
    message: &'a str,
    fields: Vec<&'a str>,
}

impl<'a> Record<'a> {
    /// `field,field,"quoted, field",...`: splits a whole record.
    fn split(message: &'a str) -> Result<Self, ParseError> {
        let mut fields = Vec::with_capacity(64);
        let mut rest = message;
        loop {
            let (after, field) = csv_field(rest).map_err(|e| to_parse_error(message, e))?;
            fields.push(field);
            match after.strip_prefix(',') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                // Only a quoted field can stop before a comma.
                None => {
                    return Err(ParseError::at(
                        message,
                        after,
                        "a comma after the quoted field",
                    ))
                }
            }
        }
        Ok(Record { message, fields })
    }

    /// The field at `index`; a record that stops before it is an error at
    /// the end of the message.
    fn field(&self, index: usize, what: &'static str) -> Result<&'a str, ParseError> {
        self.fields
            .get(index)
            .copied()
            .ok_or_else(|| ParseError::at(self.message, "", what))
    }

    /// The field at `index`, `None` when empty.
    fn optional(&self, index: usize, what: &'static str) -> Result<Option<&'a str>, ParseError> {
        self.field(index, what)
            .map(|f| (!f.is_empty()).then_some(f))
    }

    /// The first of `indexes` with text, else `fallback`; fields beyond
    /// the record's end count as empty.
    fn first_non_empty(&self, indexes: &[usize], fallback: &'a str) -> &'a str {
        indexes
            .iter()
            .filter_map(|&i| self.fields.get(i).copied())
            .find(|f| !f.is_empty())
            .unwrap_or(fallback)
    }

    /// A required address.
    fn ip(&self, index: usize, what: &'static str) -> Result<IpAddr, ParseError> {
        let field = self.field(index, what)?;
        field
            .parse()
            .map_err(|_| ParseError::at_slice(self.message, field, what))
    }

    /// An address that may be absent: empty, or `0.0.0.0` as PAN-OS
    /// writes for none (in its IPv6 fields too).
    fn optional_ip(&self, index: usize, what: &'static str) -> Result<Option<IpAddr>, ParseError> {
        let field = self.field(index, what)?;
        if field.is_empty() {
            return Ok(None);
        }
        let ip: IpAddr = field
            .parse()
            .map_err(|_| ParseError::at_slice(self.message, field, what))?;
        Ok((!ip.is_unspecified()).then_some(ip))
    }

    /// The IPv4 field's address, else the IPv6 field's, for a client that
    /// connected or was given an address over IPv6 only.
    fn address(
        &self,
        v4: usize,
        v4_what: &'static str,
        v6: usize,
        v6_what: &'static str,
    ) -> Result<Option<IpAddr>, ParseError> {
        match self.optional_ip(v4, v4_what)? {
            Some(ip) => Ok(Some(ip)),
            None => self.optional_ip(v6, v6_what),
        }
    }

    /// A port; empty or 0 is none.
    fn port(&self, index: usize, what: &'static str) -> Result<Option<u16>, ParseError> {
        let field = self.field(index, what)?;
        if field.is_empty() {
            return Ok(None);
        }
        let port: u16 = field
            .parse()
            .map_err(|_| ParseError::at_slice(self.message, field, what))?;
        Ok((port != 0).then_some(port))
    }

    /// A count; empty is none.
    fn number(&self, index: usize, what: &'static str) -> Result<Option<u64>, ParseError> {
        let field = self.field(index, what)?;
        if field.is_empty() {
            return Ok(None);
        }
        field
            .parse()
            .map(Some)
            .map_err(|_| ParseError::at_slice(self.message, field, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PORTAL_AUTH: &str = r#"1,2024/03/26 13:59:58,012801000001,GLOBALPROTECT,0,2817,2024/03/26 13:59:57,vsys1,portal-auth,login,LDAP,,INTEG\j.martin,FR,LT-JMARTIN,198.51.100.23,0.0.0.0,0.0.0.0,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000001,FAKESN0001,6.2.1,Microsoft Windows,"Microsoft Windows 11 Pro , 64-bit",1,,,"Client region: FR, Client version: 6.2.1",success,,0,user-logon,0,GP-PORTAL,7300000000000000101,0x8000000000000000,2024-03-26T13:59:57.884+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
    const GATEWAY_AUTH: &str = r#"1,2024/03/26 14:00:05,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:00:04,vsys1,gateway-auth,login,LDAP,,INTEG\j.martin,FR,LT-JMARTIN,198.51.100.23,0.0.0.0,0.0.0.0,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000001,FAKESN0001,6.2.1,Microsoft Windows,"Microsoft Windows 11 Pro , 64-bit",1,,,"",success,,0,user-logon,0,GP-GW-LYON,7300000000000000102,0x8000000000000000,2024-03-26T14:00:04.112+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
    const GATEWAY_CONNECTED: &str = r#"1,2024/03/26 14:00:07,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:00:06,vsys1,gateway-connected,tunnel,,IPSec,INTEG\j.martin,FR,LT-JMARTIN,198.51.100.23,0.0.0.0,10.30.0.25,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000001,FAKESN0001,6.2.1,Microsoft Windows,"Microsoft Windows 11 Pro , 64-bit",1,,,"",success,,0,user-logon,0,GP-GW-LYON,7300000000000000103,0x8000000000000000,2024-03-26T14:00:06.530+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
    const HIP_CHECK: &str = r#"1,2024/03/26 14:00:09,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:00:08,vsys1,gateway-hip-check,host-info,,,INTEG\j.martin,FR,LT-JMARTIN,198.51.100.23,0.0.0.0,10.30.0.25,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000001,FAKESN0001,6.2.1,,"",1,,,"HIP report is not needed",success,,0,,0,GP-GW-LYON,7300000000000000104,0x8000000000000000,2024-03-26T14:00:08.001+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
    const TRAFFIC_HTTPS: &str = r#"1,2024/03/26 14:08:12,012801000001,TRAFFIC,end,2817,2024/03/26 14:08:12,10.30.0.25,192.168.80.12,0.0.0.0,0.0.0.0,gp-to-site,integ\j.martin,,ssl,vsys1,gp-vpn,site-lan,tunnel.1,ethernet1/3,fwd-syslog,2024/03/26 14:08:12,40112,1,52210,443,0,0,0x40005e,tcp,allow,2409512,220101,2189411,2001,2024/03/26 14:02:40,332,any,0,7300000000000000201,0x0,10.0.0.0-10.255.255.255,192.168.0.0-192.168.255.255,0,820,1181,tcp-fin,0,0,0,0,,PA-LYON,from-policy,,,0,,0,,N/A,0,0,0,0"#;
    const TRAFFIC_LAN: &str = r#"1,2024/03/26 14:12:40,012801000001,TRAFFIC,end,2817,2024/03/26 14:12:40,192.168.80.5,192.168.80.12,0.0.0.0,0.0.0.0,lan-intra,,,ssl,vsys1,site-lan,site-lan,ethernet1/3,ethernet1/3,fwd-syslog,2024/03/26 14:12:40,40190,1,41002,443,0,0,0x40005e,tcp,allow,5120,2010,3110,22,2024/03/26 14:12:30,10,any,0,7300000000000000202,0x0,192.168.0.0-192.168.255.255,192.168.0.0-192.168.255.255,0,11,11,tcp-fin,0,0,0,0,,PA-LYON,from-policy,,,0,,0,,N/A,0,0,0,0"#;
    const TRAFFIC_RTSP: &str = r#"1,2024/03/26 14:30:01,012801000001,TRAFFIC,end,2817,2024/03/26 14:30:01,10.30.0.25,192.168.80.20,0.0.0.0,0.0.0.0,gp-to-site,integ\j.martin,,rtsp,vsys1,gp-vpn,site-lan,tunnel.1,ethernet1/3,fwd-syslog,2024/03/26 14:30:01,40388,1,52301,554,0,0,0x40005e,tcp,allow,31022101,120203,30901898,24120,2024/03/26 14:10:15,1186,any,0,7300000000000000203,0x0,10.0.0.0-10.255.255.255,192.168.0.0-192.168.255.255,0,1020,23100,tcp-fin,0,0,0,0,,PA-LYON,from-policy,,,0,,0,,N/A,0,0,0,0"#;
    const TRAFFIC_HTTP: &str = r#"1,2024/03/26 14:41:19,012801000001,TRAFFIC,end,2817,2024/03/26 14:41:19,10.30.0.25,192.168.80.40,0.0.0.0,0.0.0.0,gp-to-site,integ\j.martin,,web-browsing,vsys1,gp-vpn,site-lan,tunnel.1,ethernet1/3,fwd-syslog,2024/03/26 14:41:19,40512,1,52388,80,0,0,0x40005e,tcp,allow,88213,12010,76203,140,2024/03/26 14:39:02,137,any,0,7300000000000000204,0x0,10.0.0.0-10.255.255.255,192.168.0.0-192.168.255.255,0,60,80,tcp-fin,0,0,0,0,,PA-LYON,from-policy,,,0,,0,,N/A,0,0,0,0"#;
    const GATEWAY_LOGOUT: &str = r#"1,2024/03/26 14:45:29,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:45:28,vsys1,gateway-logout,logout,,IPSec,INTEG\j.martin,FR,LT-JMARTIN,198.51.100.23,0.0.0.0,10.30.0.25,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000001,FAKESN0001,6.2.1,Microsoft Windows,"Microsoft Windows 11 Pro , 64-bit",1,client logout,,"",success,,2722,user-logon,0,GP-GW-LYON,7300000000000000105,0x8000000000000000,2024-03-26T14:45:28.660+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;

    fn local(s: &str) -> Option<LineTime> {
        Some(LineTime::Local {
            at: NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn recognises_the_record_prefix() {
        for m in [
            PORTAL_AUTH,
            GATEWAY_CONNECTED,
            TRAFFIC_HTTPS,
            GATEWAY_LOGOUT,
            "1,2024/03/26 14:00:00,012801000001,SYSTEM,globalprotect,0,2024/03/26 14:00:00,",
            "1,2024/03/26 14:00:00,012801000001,THREAT,url,0,2024/03/26 14:00:00,",
        ] {
            assert!(is_panos(m), "{m}");
        }
        assert!(!is_panos("1,2024/03/26 14:00:00,012801000001,CONFIG,0,"));
        assert!(!is_panos("a,b,c,TRAFFIC,d"));
        assert!(!is_panos("1,yesterday,012801000001,TRAFFIC,end,"));
        assert!(!is_panos(
            "%ASA-6-113039: Group <G> User <u> IP <192.0.2.1>"
        ));
        assert!(!is_panos("1,2024/03/26 14:00:00,012801000001,TRAFFIC"));
        assert!(!is_panos(""));
    }

    #[test]
    fn portal_auth_success_is_no_event() {
        let x = message(PORTAL_AUTH).unwrap();
        assert_eq!(x.event, None);
        assert_eq!(x.time, local("2024-03-26 13:59:57"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn gateway_auth_success_is_no_event() {
        let x = message(GATEWAY_AUTH).unwrap();
        assert_eq!(x.event, None);
        assert_eq!(x.time, local("2024-03-26 14:00:04"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn gateway_connected_starts_a_session() {
        let x = message(GATEWAY_CONNECTED).unwrap();
        assert_eq!(
            x.event,
            Some(Event::SessionStarted {
                user: r"INTEG\j.martin",
                instance: r"INTEG\j.martin",
                remote_ip: Some(ip("198.51.100.23")),
                remote_port: None,
                virtual_ip: Some(ip("10.30.0.25")),
                tunnel: Some("GP-GW-LYON"),
                correlation: None,
            })
        );
        // The generated time, one second before the receive time.
        assert_eq!(x.time, local("2024-03-26 14:00:06"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn hip_check_is_no_event() {
        let x = message(HIP_CHECK).unwrap();
        assert_eq!(x.event, None);
        assert_eq!(x.time, local("2024-03-26 14:00:08"));
    }

    #[test]
    fn vpn_user_traffic() {
        let x = message(TRAFFIC_HTTPS).unwrap();
        assert_eq!(
            x.event,
            Some(Event::Traffic(Traffic {
                src: ip("10.30.0.25"),
                dst: ip("192.168.80.12"),
                proto: "tcp",
                src_port: Some(52210),
                dst_port: Some(443),
                verdict: Verdict::Allowed,
                label: Some("gp-to-site"),
            }))
        );
        assert_eq!(x.time, local("2024-03-26 14:08:12"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn lan_traffic() {
        let x = message(TRAFFIC_LAN).unwrap();
        assert_eq!(
            x.event,
            Some(Event::Traffic(Traffic {
                src: ip("192.168.80.5"),
                dst: ip("192.168.80.12"),
                proto: "tcp",
                src_port: Some(41002),
                dst_port: Some(443),
                verdict: Verdict::Allowed,
                label: Some("lan-intra"),
            }))
        );
        assert_eq!(x.time, local("2024-03-26 14:12:40"));
    }

    #[test]
    fn rtsp_and_web_traffic() {
        let x = message(TRAFFIC_RTSP).unwrap();
        assert_eq!(
            x.event,
            Some(Event::Traffic(Traffic {
                src: ip("10.30.0.25"),
                dst: ip("192.168.80.20"),
                proto: "tcp",
                src_port: Some(52301),
                dst_port: Some(554),
                verdict: Verdict::Allowed,
                label: Some("gp-to-site"),
            }))
        );
        assert_eq!(x.time, local("2024-03-26 14:30:01"));

        let x = message(TRAFFIC_HTTP).unwrap();
        assert_eq!(
            x.event,
            Some(Event::Traffic(Traffic {
                src: ip("10.30.0.25"),
                dst: ip("192.168.80.40"),
                proto: "tcp",
                src_port: Some(52388),
                dst_port: Some(80),
                verdict: Verdict::Allowed,
                label: Some("gp-to-site"),
            }))
        );
        assert_eq!(x.time, local("2024-03-26 14:41:19"));
    }

    #[test]
    fn gateway_logout_ends_the_session_with_its_duration() {
        let x = message(GATEWAY_LOGOUT).unwrap();
        assert_eq!(
            x.event,
            Some(Event::SessionEnded {
                user: Some(r"INTEG\j.martin"),
                instance: r"INTEG\j.martin",
                reason: EndReason::UserExit,
                detail: "client logout",
                bytes_in: None,
                bytes_out: None,
                duration_s: Some(2722),
                remote_ip: Some(ip("198.51.100.23")),
                tunnel: Some("GP-GW-LYON"),
            })
        );
        assert_eq!(x.time, local("2024-03-26 14:45:28"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn failed_gateway_auth() {
        let m = r#"1,2024/03/26 14:00:05,012801000001,GLOBALPROTECT,0,2817,2024/03/26 14:00:04,vsys1,gateway-auth,login,LDAP,,INTEG\k.durand,FR,LT-KDURAND,203.0.113.7,0.0.0.0,0.0.0.0,0.0.0.0,4c2d9a1e-7f3b-4d20-9a11-000000000002,FAKESN0002,6.2.1,Microsoft Windows,"Microsoft Windows 11 Pro , 64-bit",1,,Authentication failed: Invalid username or password,"",failure,,0,user-logon,0,GP-GW-LYON,7300000000000000106,0x8000000000000000,2024-03-26T14:00:04.112+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
        let x = message(m).unwrap();
        assert_eq!(
            x.event,
            Some(Event::AuthFailed {
                user: Some(r"INTEG\k.durand"),
                instance: None,
                detail: "Authentication failed: Invalid username or password",
            })
        );
        assert_eq!(x.time, local("2024-03-26 14:00:04"));
    }

    #[test]
    fn failed_connect_starts_nothing() {
        let m = GATEWAY_CONNECTED.replace(",success,", ",failure,");
        assert_eq!(message(&m).unwrap().event, None);
    }

    #[test]
    fn logout_reasons() {
        assert_eq!(end_reason("client logout"), EndReason::UserExit);
        assert_eq!(end_reason("inactivity timeout"), EndReason::Timeout);
        assert_eq!(end_reason("login lifetime expired"), EndReason::Timeout);
        assert_eq!(end_reason("admin logout"), EndReason::Admin);
        assert_eq!(end_reason("Kicked by administrator"), EndReason::Admin);
        assert_eq!(end_reason(""), EndReason::Unknown);
        assert_eq!(end_reason("network change"), EndReason::Unknown);
    }

    #[test]
    fn logout_on_timeout_with_ipv6_addresses() {
        let m = r#"1,2024/03/26 18:00:01,012801000001,GLOBALPROTECT,0,2817,2024/03/26 18:00:00,vsys1,gateway-logout,logout,,SSL,INTEG\k.durand,FR,LT-KDURAND,0.0.0.0,2001:db8:1::7,0.0.0.0,2001:db8:ff::25,4c2d9a1e-7f3b-4d20-9a11-000000000002,FAKESN0002,6.2.1,Microsoft Windows,"",1,inactivity timeout,,"",success,,10800,user-logon,0,GP-GW-LYON,7300000000000000107,0x8000000000000000,2024-03-26T18:00:00.000+01:00,,0,,,,,0,0,0,0,,PA-LYON,1,"#;
        let x = message(m).unwrap();
        assert_eq!(
            x.event,
            Some(Event::SessionEnded {
                user: Some(r"INTEG\k.durand"),
                instance: r"INTEG\k.durand",
                reason: EndReason::Timeout,
                detail: "inactivity timeout",
                bytes_in: None,
                bytes_out: None,
                duration_s: Some(10800),
                remote_ip: Some(ip("2001:db8:1::7")),
                tunnel: Some("GP-GW-LYON"),
            })
        );
    }

    #[test]
    fn denied_traffic_and_icmp_without_ports() {
        let m = "1,2024/03/26 14:08:12,012801000001,TRAFFIC,drop,2817,2024/03/26 14:08:11,10.30.0.25,192.168.90.1,0.0.0.0,0.0.0.0,deny-other-sites,,,ping,vsys1,gp-vpn,site-b,tunnel.1,ethernet1/4,fwd-syslog,2024/03/26 14:08:12,0,1,0,0,0,0,0x0,icmp,deny,84,84,0,1,2024/03/26 14:08:11,0,any,0,7300000000000000205";
        let x = message(m).unwrap();
        assert_eq!(
            x.event,
            Some(Event::Traffic(Traffic {
                src: ip("10.30.0.25"),
                dst: ip("192.168.90.1"),
                proto: "icmp",
                src_port: None,
                dst_port: None,
                verdict: Verdict::Dropped,
                label: Some("deny-other-sites"),
            }))
        );
        assert_eq!(x.time, local("2024-03-26 14:08:11"));
    }

    #[test]
    fn other_log_types_give_only_their_time() {
        let m = "1,2024/03/26 14:00:00,012801000001,SYSTEM,general,0,2024/03/26 13:59:59,,general,,0,0,general,informational,\"User admin logged in via Web from 192.0.2.10\",7300000000000000300";
        let x = message(m).unwrap();
        assert_eq!(x.event, None);
        assert_eq!(x.time, local("2024-03-26 13:59:59"));
        assert_eq!(x.device, None);
    }

    #[test]
    fn splits_quoted_fields_with_commas_and_doubled_quotes() {
        let r = Record::split(r#"a,"b, c",,"say ""hi""","",d"#).unwrap();
        assert_eq!(r.fields, ["a", "b, c", "", r#"say ""hi"""#, "", "d"]);

        let r = Record::split("").unwrap();
        assert_eq!(r.fields, [""]);

        let r = Record::split("a,").unwrap();
        assert_eq!(r.fields, ["a", ""]);
    }

    #[test]
    fn os_version_with_a_comma_stays_one_field() {
        let r = Record::split(GATEWAY_CONNECTED).unwrap();
        assert_eq!(r.fields.len(), 51);
        assert_eq!(r.fields[23], "Microsoft Windows 11 Pro , 64-bit");
        assert_eq!(r.fields[27], "");
        assert_eq!(r.fields[33], "GP-GW-LYON");
    }

    #[test]
    fn bad_quoting_names_the_column() {
        let err = Record::split(r#"a,"b"c,d"#).unwrap_err();
        assert_eq!(err.expected, "a comma after the quoted field");
        assert_eq!(err.column, 6);

        let err = Record::split(r#"a,"b,c"#).unwrap_err();
        assert_eq!(err.expected, "a \" closing the quoted field");
        assert_eq!(err.column, 7);
    }

    #[test]
    fn bad_public_ip_names_the_field_and_column() {
        let m = GATEWAY_CONNECTED.replace("198.51.100.23", "198.51.100.300");
        let err = message(&m).unwrap_err();
        assert_eq!(err.expected, "an IP address as Public IP");
        assert_eq!(err.column, 144);
        assert_eq!(&m[143..157], "198.51.100.300");
        assert_eq!(
            err.to_string(),
            "expected an IP address as Public IP at column 144, found \"198.51.100.300\""
        );
    }

    #[test]
    fn bad_traffic_fields_name_the_field_and_column() {
        let m = TRAFFIC_HTTPS.replace(",192.168.80.12,", ",192.168.80.x,");
        let err = message(&m).unwrap_err();
        assert_eq!(err.expected, "an IP address as Destination address");
        assert_eq!(err.column, 84);

        let m = TRAFFIC_HTTPS.replace(",52210,", ",70000,");
        let err = message(&m).unwrap_err();
        assert_eq!(err.expected, "a port number as Source Port");
        assert_eq!(err.column, 227);
    }

    #[test]
    fn truncated_record_is_an_error_at_its_end() {
        let m =
            "1,2024/03/26 14:08:12,012801000001,TRAFFIC,end,2817,2024/03/26 14:08:12,10.30.0.25";
        let err = message(m).unwrap_err();
        assert_eq!(err.expected, "an Action");
        assert_eq!(err.column, m.len() + 1);
        assert_eq!(err.found, "");
    }

    #[test]
    fn bad_generated_time_names_the_column() {
        let m = GATEWAY_LOGOUT.replace("2024/03/26 14:45:28,vsys1", "2024/13/26 14:45:28,vsys1");
        let err = message(&m).unwrap_err();
        assert_eq!(err.expected, "a Generated Time (YYYY/MM/DD hh:mm:ss)");
        assert_eq!(err.column, 57);
    }

    proptest! {
        #[test]
        fn arbitrary_messages_never_panic(text in any::<String>()) {
            let _ = is_panos(&text);
            let _ = message(&text);
        }

        #[test]
        fn damaged_corpus_records_never_panic(at in 0usize..600, junk in r#"[ ,"\\a-z0-9./:]{0,6}"#) {
            for record in [GATEWAY_CONNECTED, GATEWAY_LOGOUT, TRAFFIC_HTTPS] {
                let mut at = at.min(record.len());
                while !record.is_char_boundary(at) {
                    at -= 1;
                }
                let damaged = format!("{}{junk}{}", &record[..at], &record[at..]);
                let _ = message(&damaged);
            }
        }
    }
}
