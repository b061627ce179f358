//! OpenVPN status snapshots (`--status FILE`, `--status-version 1|2|3`).
//!
//! Version 1:
//! ```text
//! OpenVPN CLIENT LIST
//! Updated,Tue Jun 18 10:30:00 2024
//! Common Name,Real Address,Bytes Received,Bytes Sent,Connected Since
//! t.moreau,192.0.2.88:60344,3145728,15728640,Tue Jun 18 09:41:58 2024
//! ROUTING TABLE
//! Virtual Address,Common Name,Real Address,Last Ref
//! 10.9.0.2,t.moreau,192.0.2.88:60344,Tue Jun 18 10:29:58 2024
//! GLOBAL STATS
//! END
//! ```
//!
//! Versions 2 (commas) and 3 (tabs) tag every line (`TITLE`, `TIME`,
//! `HEADER`, `CLIENT_LIST`, `ROUTING_TABLE`, `GLOBAL_STATS`, `END`) and name
//! their columns in `HEADER` lines, which we follow rather than fixed
//! positions: columns were added across releases.
//!
//! A snapshot is read whole: version 1 gives a client's virtual address
//! only in the routing table, after the client list.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use chrono::{DateTime, FixedOffset};

use crate::error::ParseError;
use crate::event::{Event, StatusClient};
use crate::openvpn::log::{ctime, iso_datetime};
use crate::time::LineTime;

/// One line of a status file and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusLine<'a> {
    /// Line number from 1.
    pub number: usize,
    pub text: &'a str,
    /// The snapshot's time, once the file has said it.
    pub time: LineTime,
    pub event: Option<Event<'a>>,
    pub error: Option<ParseError>,
}

/// Whether the text looks like an OpenVPN status file (its first line).
pub fn is_status_file(first_line: &str) -> bool {
    let first_line = first_line.trim_end_matches(['\r', '\n']);
    first_line == "OpenVPN CLIENT LIST"
        || first_line.starts_with("TITLE,")
        || first_line.starts_with("TITLE\t")
}

/// The parts of a snapshot, by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Preamble,
    Clients,
    Routes,
    Other,
}

/// Parses a whole status file (one or more snapshots).
pub fn parse_status(text: &str) -> Vec<StatusLine<'_>> {
    let mut out = Vec::new();
    let mut snapshot: Vec<(usize, &str)> = Vec::new();
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let line = raw.trim_end_matches(['\r', '\n']);
        let number = index + 1;
        let starts_snapshot = line == "OpenVPN CLIENT LIST" || is_tagged(line, "TITLE");
        if starts_snapshot && !snapshot.is_empty() {
            out.extend(parse_snapshot(&snapshot));
            snapshot.clear();
        }
        snapshot.push((number, line));
        if line == "END" {
            out.extend(parse_snapshot(&snapshot));
            snapshot.clear();
        }
    }
    if !snapshot.is_empty() {
        out.extend(parse_snapshot(&snapshot));
    }
    out
}

fn is_tagged(line: &str, tag: &str) -> bool {
    line.strip_prefix(tag)
        .is_some_and(|rest| rest.starts_with([',', '\t']))
}

/// Splits a v2/v3 line on its separator (the character after the tag).
fn fields(line: &str) -> Vec<&str> {
    let separator = if line.contains('\t') { '\t' } else { ',' };
    line.split(separator).collect()
}

/// One client row, before its virtual address is known.
struct Row<'a> {
    number: usize,
    text: &'a str,
    common_name: &'a str,
    username: Option<&'a str>,
    real: SocketAddr,
    real_text: &'a str,
    virtual_ip: Option<IpAddr>,
    bytes_in: u64,
    bytes_out: u64,
    since: LineTime,
}

fn parse_snapshot<'a>(lines: &[(usize, &'a str)]) -> Vec<StatusLine<'a>> {
    let mut section = Section::Preamble;
    let mut snapshot_time = LineTime::Missing;
    let mut client_header: Vec<&str> = Vec::new();
    let mut rows: Vec<Row<'a>> = Vec::new();
    // (CN, real address) -> virtual address, from the routing table.
    let mut routes: HashMap<(&str, &str), IpAddr> = HashMap::new();
    let mut out: Vec<StatusLine<'a>> = Vec::new();
    let mut row_slots: Vec<usize> = Vec::new();

    for &(number, text) in lines {
        let mut error = None;
        let v2_tag = text.split([',', '\t']).next().unwrap_or("");
        match (text, v2_tag) {
            ("OpenVPN CLIENT LIST", _) => section = Section::Preamble,
            ("ROUTING TABLE", _) => section = Section::Routes,
            ("GLOBAL STATS", _) | ("END", _) => section = Section::Other,
            (_, "TITLE") | (_, "GLOBAL_STATS") => {}
            (_, "TIME") => match fields(text).get(2).and_then(|e| epoch(e)) {
                Some(at) => snapshot_time = LineTime::Absolute { at },
                None => {
                    error = Some(ParseError::at(
                        text,
                        "",
                        "TIME,<local time>,<epoch seconds>",
                    ))
                }
            },
            (_, "HEADER") => {
                let f = fields(text);
                if f.get(1) == Some(&"CLIENT_LIST") {
                    client_header = f[2..].to_vec();
                }
            }
            (_, "CLIENT_LIST") => {
                let f = fields(text);
                match client_row_v2(text, &f[1..], &client_header, number) {
                    Ok(row) => {
                        row_slots.push(out.len());
                        rows.push(row);
                    }
                    Err(e) => error = Some(e),
                }
            }
            (_, "ROUTING_TABLE") => {
                let f = fields(text);
                if let (Some(vip), Some(cn), Some(real)) = (f.get(1), f.get(2), f.get(3)) {
                    if let Some(ip) = route_address(vip) {
                        routes.insert((cn, real), ip);
                    }
                }
            }
            _ if text.starts_with("Updated,") => {
                let value = &text["Updated,".len()..];
                match local_time(value) {
                    Some(at) => snapshot_time = LineTime::Local { at },
                    None => error = Some(ParseError::at(text, value, "a date after Updated,")),
                }
            }
            _ if text.starts_with("Common Name,") => section = Section::Clients,
            _ if text.starts_with("Virtual Address,") => section = Section::Routes,
            _ if section == Section::Clients => match client_row_v1(text, number) {
                Ok(row) => {
                    row_slots.push(out.len());
                    rows.push(row);
                }
                Err(e) => error = Some(e),
            },
            _ if section == Section::Routes => {
                let f: Vec<&str> = text.split(',').collect();
                // The CN may hold commas: the real address is the field
                // before the last one.
                if f.len() >= 4 {
                    let real = f[f.len() - 2];
                    let cn_end = text.len() - f[f.len() - 1].len() - real.len() - 2;
                    let cn = &text[f[0].len() + 1..cn_end];
                    if let Some(ip) = route_address(f[0]) {
                        routes.insert((cn, real), ip);
                    }
                } else {
                    error = Some(ParseError::at(
                        text,
                        "",
                        "Virtual Address,Common Name,Real Address,Last Ref",
                    ));
                }
            }
            _ if section == Section::Other => {}
            _ => error = Some(ParseError::at(text, text, "a status file line")),
        }
        out.push(StatusLine {
            number,
            text,
            time: LineTime::Missing,
            event: None,
            error,
        });
    }

    for line in &mut out {
        line.time = snapshot_time;
    }
    let client_count = rows.len();
    if let Some(end) = out.iter_mut().rev().find(|l| l.text == "END") {
        end.event = Some(Event::StatusSnapshot {
            clients: client_count,
            snapshot: snapshot_time,
        });
    }
    for (row, slot) in rows.into_iter().zip(row_slots) {
        let virtual_ip = row
            .virtual_ip
            .or_else(|| routes.get(&(row.common_name, row.real_text)).copied());
        let user = match (row.common_name, row.username) {
            ("UNDEF", Some(name)) => name,
            (cn, _) => cn,
        };
        debug_assert_eq!(out[slot].number, row.number);
        debug_assert_eq!(out[slot].text, row.text);
        out[slot].event = Some(Event::StatusClient(StatusClient {
            user,
            common_name: row.common_name,
            username: row.username,
            remote_ip: row.real.ip(),
            remote_port: Some(row.real.port()),
            virtual_ip,
            bytes_in: row.bytes_in,
            bytes_out: row.bytes_out,
            connected_since: row.since,
            snapshot: snapshot_time,
        }));
    }
    out
}

/// A routing-table address: `10.9.0.2`, or `10.9.0.2C` when cached. Subnets
/// (iroutes) and MAC addresses (TAP) are not a client's own address.
fn route_address(text: &str) -> Option<IpAddr> {
    text.trim_end_matches('C').parse().ok()
}

fn epoch(text: &str) -> Option<DateTime<FixedOffset>> {
    let secs: i64 = text.trim().parse().ok()?;
    DateTime::from_timestamp(secs, 0).map(|t| t.fixed_offset())
}

fn local_time(text: &str) -> Option<chrono::NaiveDateTime> {
    let full = |r: (&str, chrono::NaiveDateTime)| r.0.is_empty().then_some(r.1);
    iso_datetime(text)
        .ok()
        .and_then(full)
        .or_else(|| ctime(text).ok().and_then(full))
}

fn real_address(text: &str) -> Option<SocketAddr> {
    text.parse().ok().or_else(|| {
        let (ip, port) = text.rsplit_once(':')?;
        Some(SocketAddr::new(ip.parse().ok()?, port.parse().ok()?))
    })
}

/// Finds the real address among the fields, from `cn_index + 1` on: a CN
/// holding the separator spreads over several fields.
fn split_common_name<'a>(
    text: &'a str,
    f: &[&'a str],
    cn_index: usize,
) -> Option<(&'a str, usize)> {
    let real_index = (cn_index + 1..f.len()).find(|&i| real_address(f[i]).is_some())?;
    let start = f[cn_index].as_ptr() as usize - text.as_ptr() as usize;
    let last = f[real_index - 1];
    let end = last.as_ptr() as usize - text.as_ptr() as usize + last.len();
    Some((&text[start..end], real_index - cn_index - 1))
}

fn number_field(text: &str, value: Option<&&str>, what: &'static str) -> Result<u64, ParseError> {
    let value = value.copied().unwrap_or("");
    value
        .parse()
        .map_err(|_| ParseError::at_slice(text, value, what))
}

/// `t.moreau,192.0.2.88:60344,3145728,15728640,Tue Jun 18 09:41:58 2024`
fn client_row_v1(text: &str, number: usize) -> Result<Row<'_>, ParseError> {
    let f: Vec<&str> = text.split(',').collect();
    let (common_name, shift) = split_common_name(text, &f, 0).ok_or_else(|| {
        ParseError::at(text, text, "Common Name,Real Address,... with an ip:port")
    })?;
    let at = |i: usize| f.get(i + shift);
    let real_text = at(1).copied().unwrap_or("");
    let real = real_address(real_text)
        .ok_or_else(|| ParseError::at_slice(text, real_text, "a Real Address ip:port"))?;
    let since_text = at(4).copied().unwrap_or("");
    let since = local_time(since_text)
        .map(|at| LineTime::Local { at })
        .ok_or_else(|| ParseError::at_slice(text, since_text, "the Connected Since date"))?;
    Ok(Row {
        number,
        text,
        common_name,
        username: None,
        real,
        real_text,
        virtual_ip: None,
        bytes_in: number_field(text, at(2), "Bytes Received, a number")?,
        bytes_out: number_field(text, at(3), "Bytes Sent, a number")?,
        since,
    })
}

/// A `CLIENT_LIST` row of version 2 or 3, read by its `HEADER`'s names.
fn client_row_v2<'a>(
    text: &'a str,
    f: &[&'a str],
    header: &[&str],
    number: usize,
) -> Result<Row<'a>, ParseError> {
    let column = |name: &str| header.iter().position(|h| *h == name);
    let cn_index = column("Common Name").unwrap_or(0);
    let (common_name, shift) = split_common_name(text, f, cn_index).ok_or_else(|| {
        ParseError::at(text, text, "a CLIENT_LIST row with a Real Address ip:port")
    })?;
    let get = |name: &str, default: usize| f.get(column(name).unwrap_or(default) + shift).copied();
    // A header that does not put the Real Address right after the Common
    // Name (a column repeated, moved or renamed) does not fit the row.
    let real_text = get("Real Address", 1).unwrap_or("");
    let real = real_address(real_text).ok_or_else(|| {
        ParseError::at_slice(
            text,
            real_text,
            "a Real Address ip:port where the HEADER puts it",
        )
    })?;
    let virtual_ip = get("Virtual Address", 2).and_then(|v| v.parse().ok());
    let username = get("Username", 8).filter(|u| !u.is_empty() && *u != "UNDEF");
    let since = match get("Connected Since (time_t)", 7).and_then(epoch) {
        Some(at) => LineTime::Absolute { at },
        None => {
            let local = get("Connected Since", 6).unwrap_or("");
            let at = local_time(local)
                .ok_or_else(|| ParseError::at_slice(text, local, "the Connected Since date"))?;
            LineTime::Local { at }
        }
    };
    let bytes_in = get("Bytes Received", 4);
    let bytes_out = get("Bytes Sent", 5);
    Ok(Row {
        number,
        text,
        common_name,
        username,
        real,
        real_text,
        virtual_ip,
        bytes_in: number_field(text, bytes_in.as_ref(), "Bytes Received, a number")?,
        bytes_out: number_field(text, bytes_out.as_ref(), "Bytes Sent, a number")?,
        since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client<'a>(line: &StatusLine<'a>) -> StatusClient<'a> {
        match &line.event {
            Some(Event::StatusClient(c)) => c.clone(),
            other => panic!("line {}: {other:?}", line.number),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn version_1_takes_the_virtual_address_from_the_routing_table() {
        let text = "OpenVPN CLIENT LIST\nUpdated,Tue Jun 18 10:30:00 2024\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\nt.moreau,192.0.2.88:60344,3145728,15728640,Tue Jun 18 09:41:58 2024\nROUTING TABLE\nVirtual Address,Common Name,Real Address,Last Ref\n10.9.0.2,t.moreau,192.0.2.88:60344,Tue Jun 18 10:29:58 2024\nGLOBAL STATS\nMax bcast/mcast queue length,0\nEND\n";
        let lines = parse_status(text);
        assert_eq!(lines.len(), 10);
        assert!(matches!(
            lines[9].event,
            Some(Event::StatusSnapshot { clients: 1, .. })
        ));
        assert!(lines.iter().all(|l| l.error.is_none()), "{lines:?}");
        let c = client(&lines[3]);
        assert_eq!(c.user, "t.moreau");
        assert_eq!(c.remote_ip, ip("192.0.2.88"));
        assert_eq!(c.remote_port, Some(60344));
        assert_eq!(c.virtual_ip, Some(ip("10.9.0.2")));
        assert_eq!((c.bytes_in, c.bytes_out), (3_145_728, 15_728_640));
        let since = chrono::NaiveDate::from_ymd_opt(2024, 6, 18)
            .unwrap()
            .and_hms_opt(9, 41, 58)
            .unwrap();
        assert_eq!(c.connected_since, LineTime::Local { at: since });
    }

    #[test]
    fn version_3_with_tabs_and_undef_username() {
        let text = "TITLE\tOpenVPN 2.6.9\nTIME\t2024-06-18 10:30:00\t1718699400\nHEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher\nCLIENT_LIST\tt.moreau\t192.0.2.88:60344\t10.9.0.2\t\t3145728\t15728640\t2024-06-18 09:41:58\t1718696518\tUNDEF\t4\t0\tAES-256-GCM\nEND\n";
        let lines = parse_status(text);
        let c = client(&lines[3]);
        assert_eq!(c.user, "t.moreau");
        assert_eq!(c.username, None);
        assert_eq!(c.virtual_ip, Some(ip("10.9.0.2")));
        let since = DateTime::from_timestamp(1_718_696_518, 0)
            .unwrap()
            .fixed_offset();
        assert_eq!(c.connected_since, LineTime::Absolute { at: since });
        let snap = DateTime::from_timestamp(1_718_699_400, 0)
            .unwrap()
            .fixed_offset();
        assert_eq!(c.snapshot, LineTime::Absolute { at: snap });
    }

    #[test]
    fn common_name_with_a_comma_in_version_2() {
        let text = "TITLE,OpenVPN\nTIME,2024-06-18 10:30:00,1718699400\nHEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username\nCLIENT_LIST,Le Gall, Jean-Marc,127.0.0.1:51127,10.88.0.2,,10,20,2024-06-18 09:41:58,1718696518,UNDEF\nEND\n";
        let c = client(&parse_status(text)[3]);
        assert_eq!(c.user, "Le Gall, Jean-Marc");
        assert_eq!(c.virtual_ip, Some(ip("10.88.0.2")));
        assert_eq!((c.bytes_in, c.bytes_out), (10, 20));
    }

    #[test]
    fn undef_common_name_takes_the_username() {
        let text = "TITLE,x\nTIME,t,1718699400\nHEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username\nCLIENT_LIST,UNDEF,198.51.100.7:40000,10.9.0.7,,1,2,2024-06-18 09:41:58,1718696518,a.petit\nEND\n";
        let c = client(&parse_status(text)[3]);
        assert_eq!(c.user, "a.petit");
        assert_eq!(c.common_name, "UNDEF");
    }

    #[test]
    fn header_that_misplaces_the_real_address_is_an_error_not_a_panic() {
        // `Common Name` written twice: the row's real address is no longer
        // where the HEADER says. Found by the property tests.
        let text = "TITLE,x\nTIME,t,1718699400\nHEADER,CLIENT_LIST,Common Name,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username\nCLIENT_LIST,t.moreau,192.0.2.88:60344,10.9.0.2,,1,2,2024-06-18 09:41:58,1718696518,UNDEF\nEND\n";
        let lines = parse_status(text);
        let row = &lines[3];
        assert_eq!(row.event, None);
        let err = row.error.as_ref().expect("an error");
        assert_eq!(
            err.expected,
            "a Real Address ip:port where the HEADER puts it"
        );
        assert_eq!(err.column, 39);
        assert_eq!(err.found, "10.9.0.2");
        assert_eq!(
            lines[4].event,
            Some(Event::StatusSnapshot {
                clients: 0,
                snapshot: lines[4].time
            })
        );
    }

    #[test]
    fn bad_byte_count_names_the_field() {
        let text = "OpenVPN CLIENT LIST\nUpdated,Tue Jun 18 10:30:00 2024\nCommon Name,Real Address,Bytes Received,Bytes Sent,Connected Since\nt.moreau,192.0.2.88:60344,31x5,15728640,Tue Jun 18 09:41:58 2024\nEND\n";
        let lines = parse_status(text);
        let err = lines[3].error.clone().unwrap();
        assert_eq!(err.expected, "Bytes Received, a number");
        assert_eq!(err.column, 27);
        assert_eq!(lines[3].event, None);
    }
}
