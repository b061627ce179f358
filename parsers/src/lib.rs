//! Pure parsers for the logs vpnledger reads: bytes in, typed values out.
//!
//! Nothing here does I/O or reads the clock: the year and zone of a line
//! that lacks them come from the caller (see [`time`]), so every result can
//! be pinned by a test. Parsers borrow from the input line.
//!
//! Layout:
//! - [`syslog`]: RFC 3164 envelopes and the [`Envelope`] they yield;
//!   [`rfc5424`]: RFC 5424 envelopes;
//! - [`openvpn`]: OpenVPN's own log file, server messages and status files;
//! - [`strongswan`], [`cisco_asa`], [`fortigate`], [`paloalto`],
//!   [`stormshield`], [`wireguard`]: the other gateways;
//! - [`netfilter`], [`conntrack`], [`filterlog`]: firewalls' records of
//!   connections, as traffic; [`kv`]: the `key=value` lines of FortiGate
//!   and Stormshield;
//! - [`event`]: the VPN facts vendor parsers extract;
//! - [`time`]: from what a line wrote to a UTC instant;
//! - [`error`]: what was expected, and where.
//!
//! [`LineReader`] puts them together: it reads each line of a stream in a
//! given (or detected) format and returns its envelope and event.

pub mod cisco_asa;
pub mod conntrack;
pub mod error;
pub mod event;
pub mod filterlog;
pub mod fortigate;
pub mod kv;
pub mod netfilter;
pub mod openvpn;
pub mod paloalto;
pub mod rfc5424;
pub mod stormshield;
pub mod strongswan;
pub mod syslog;
pub mod time;
pub mod wireguard;

use std::fmt;
use std::str::FromStr;

pub use error::ParseError;
pub use event::{EndReason, Event, Extracted, PeerStatus, StatusClient, Traffic, Verdict};
pub use syslog::Envelope;
pub use time::{LineTime, Resolved, TimeFlag, TimeResolver, YearRule};

/// A line format vpnledger reads: how a line is framed and where its time
/// and host are. The message inside goes to the vendor parser its program
/// or content calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// BSD syslog, RFC 3164 and its variants in the field.
    Rfc3164,
    /// Syslog RFC 5424.
    Rfc5424,
    /// OpenVPN's own log file (`--log`).
    OpenVpnLog,
    /// OpenVPN's status file (`--status`), read as a whole snapshot.
    OpenVpnStatus,
    /// FortiGate `key=value` lines without a syslog header (`<185>date=...`).
    FortiGate,
    /// Stormshield SNS `key=value` lines without a syslog header.
    Stormshield,
    /// `wg show all dump` output, each poll headed by `# poll <RFC 3339>`.
    WireGuard,
    /// `conntrack -E -o timestamp` events.
    Conntrack,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 8] = [
        Format::Rfc3164,
        Format::Rfc5424,
        Format::OpenVpnLog,
        Format::OpenVpnStatus,
        Format::FortiGate,
        Format::Stormshield,
        Format::WireGuard,
        Format::Conntrack,
    ];

    /// The name used on the command line, in configuration and in output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Rfc3164 => "rfc3164",
            Format::Rfc5424 => "rfc5424",
            Format::OpenVpnLog => "openvpn",
            Format::OpenVpnStatus => "openvpn-status",
            Format::FortiGate => "fortigate",
            Format::Stormshield => "stormshield",
            Format::WireGuard => "wireguard",
            Format::Conntrack => "conntrack",
        }
    }

    /// Whether the format is a whole-file snapshot rather than a stream of
    /// independent lines.
    pub fn is_snapshot(self) -> bool {
        matches!(self, Format::OpenVpnStatus)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!(
                    "unknown format {s:?}; expected auto or one of {}",
                    names.join(", ")
                )
            })
    }
}

/// Which format to read a line in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    /// Recognise each line's format.
    Auto,
    Fixed(Format),
}

impl FromStr for FormatChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(FormatChoice::Auto)
        } else {
            s.parse().map(FormatChoice::Fixed)
        }
    }
}

/// Strips an optional `<PRI>`.
fn after_priority(line: &str) -> (Option<u8>, &str) {
    match syslog::priority(line) {
        Ok((rest, p)) => (Some(p), rest),
        Err(_) => (None, line),
    }
}

/// Recognises the format of one line of a stream; `None` when no format
/// matches. Status files are recognised by their first line, see
/// [`openvpn::status::is_status_file`].
pub fn detect(line: &str) -> Option<Format> {
    if openvpn::log::starts_with_timestamp(line) {
        return Some(Format::OpenVpnLog);
    }
    // A WireGuard dump line has tabs (or is a `# poll` line), a Stormshield
    // line a `"` (in ` fw="`, or begins `id=firewall`): one scan for either
    // byte rules both out on most lines, before their own checks.
    let tab_or_quote = memchr::memchr2(b'\t', b'"', line.as_bytes()).is_some();
    if (tab_or_quote || line.starts_with("# poll ")) && wireguard::is_wireguard(line) {
        return Some(Format::WireGuard);
    }
    if conntrack::is_conntrack(line) {
        return Some(Format::Conntrack);
    }
    let (_, rest) = after_priority(line);
    if rfc5424::is_rfc5424(rest) {
        return Some(Format::Rfc5424);
    }
    if fortigate::is_fortigate(rest) {
        return Some(Format::FortiGate);
    }
    if (tab_or_quote || rest.starts_with("id=firewall ")) && stormshield::is_stormshield(rest) {
        return Some(Format::Stormshield);
    }
    let first = rest.trim_start_matches(|c: char| {
        c == '*' || c == '.' || c.is_ascii_digit() || c == ':' || c == ' '
    });
    if syslog::month(first).is_ok() || syslog::month(rest).is_ok() {
        return Some(Format::Rfc3164);
    }
    None
}

/// A line read: its envelope, the VPN fact it carries, if any, and the
/// device that wrote it when the message names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub envelope: Envelope<'a>,
    pub event: Option<Event<'a>>,
    /// FortiGate `devname`, Stormshield `fw`: the gateway when the
    /// envelope names no host.
    pub device: Option<&'a str>,
}

/// Reads the lines of one stream, in order. It remembers what a stream
/// format says for the lines that follow (the time of a WireGuard poll).
#[derive(Debug, Clone)]
pub struct LineReader {
    choice: FormatChoice,
    /// The time of the last `# poll` line, for the dump lines after it.
    poll_time: Option<LineTime>,
}

impl LineReader {
    pub fn new(choice: FormatChoice) -> Self {
        LineReader {
            choice,
            poll_time: None,
        }
    }

    /// Reads one line (without its newline).
    pub fn read<'a>(&mut self, line: &'a str) -> Result<Parsed<'a>, ParseError> {
        let format = self.format_of(line)?;
        if format == Format::WireGuard {
            return self.dump_line(line);
        }
        let mut envelope = envelope(format, line)?;

        // Vendor parsers count columns in the message: count them in the line.
        let message_offset =
            (envelope.message.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
        let extracted = message_event(&envelope).map_err(|mut e| {
            e.column += message_offset;
            e
        })?;
        if let Some(time) = extracted.time {
            envelope.time = time;
        }
        Ok(Parsed {
            envelope,
            event: extracted.event,
            device: extracted.device,
        })
    }

    /// The envelope alone (format, time, host, program, message) of a line
    /// whose message [`LineReader::read`] could not read: what the line
    /// still says. `None` when the envelope itself is wrong.
    pub fn envelope<'a>(&self, line: &'a str) -> Option<Envelope<'a>> {
        match self.format_of(line).ok()? {
            Format::WireGuard => None,
            format => envelope(format, line).ok(),
        }
    }

    fn format_of(&self, line: &str) -> Result<Format, ParseError> {
        match self.choice {
            FormatChoice::Fixed(format) => Ok(format),
            FormatChoice::Auto => detect(line).ok_or_else(|| {
                ParseError::at(
                    line,
                    line,
                    "a syslog header, a log timestamp or a known log format",
                )
            }),
        }
    }

    /// A line of `wg show all dump` output, or the `# poll` line that
    /// dates the dump lines after it.
    fn dump_line<'a>(&mut self, line: &'a str) -> Result<Parsed<'a>, ParseError> {
        let mut envelope = bare_envelope(Format::WireGuard, line);
        envelope.time = self.poll_time.unwrap_or(LineTime::Missing);
        let event = match wireguard::line(line)? {
            wireguard::DumpLine::Poll(at) => {
                self.poll_time = Some(at);
                envelope.time = at;
                None
            }
            wireguard::DumpLine::Interface { .. } => None,
            wireguard::DumpLine::Peer(peer) => Some(Event::PeerStatus(peer)),
        };
        Ok(Parsed {
            envelope,
            event,
            device: None,
        })
    }
}

/// The envelope of a line in `format`, for every format read line by line
/// but WireGuard dumps, which need their poll line.
fn envelope(format: Format, line: &str) -> Result<Envelope<'_>, ParseError> {
    match format {
        Format::Rfc3164 => syslog::rfc3164(line),
        Format::Rfc5424 => rfc5424::rfc5424(line),
        Format::OpenVpnLog => Ok(openvpn::log_line(line)),
        Format::FortiGate | Format::Stormshield | Format::Conntrack | Format::WireGuard => {
            Ok(bare_envelope(format, line))
        }
        Format::OpenVpnStatus => Err(ParseError::at(
            line,
            line,
            "a whole status file, not a single line",
        )),
    }
}

/// The envelope of a format with no header of its own: an optional
/// `<PRI>`, then the message; its time, if any, is in the message.
fn bare_envelope(format: Format, line: &str) -> Envelope<'_> {
    let (priority, message) = after_priority(line);
    Envelope {
        format,
        priority,
        time: LineTime::Missing,
        host: None,
        app: None,
        pid: None,
        message,
    }
}

/// Reads one line of a stream format on its own. Status files are read
/// whole with [`openvpn::status::parse_status`]; WireGuard dumps need the
/// [`LineReader`] that saw their poll line.
pub fn parse_line(line: &str, choice: FormatChoice) -> Result<Parsed<'_>, ParseError> {
    LineReader::new(choice).read(line)
}

/// The vendor grammar a message is read with, chosen by the envelope's
/// format, then its program name, then the message's own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    OpenVpn,
    StrongSwan,
    Netfilter,
    Filterlog,
    CiscoAsa,
    PanOs,
    FortiGate,
    Stormshield,
    Conntrack,
    WireGuard,
}

impl Vendor {
    /// The name `parse --json` prints.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::OpenVpn => "openvpn",
            Vendor::StrongSwan => "strongswan",
            Vendor::Netfilter => "netfilter",
            Vendor::Filterlog => "filterlog",
            Vendor::CiscoAsa => "cisco-asa",
            Vendor::PanOs => "paloalto",
            Vendor::FortiGate => "fortigate",
            Vendor::Stormshield => "stormshield",
            Vendor::Conntrack => "conntrack",
            Vendor::WireGuard => "wireguard",
        }
    }
}

/// Which vendor grammar reads this envelope's message; `None` when no
/// parser knows the program or the message (a line kept, with no event).
pub fn vendor(envelope: &Envelope<'_>) -> Option<Vendor> {
    let message = envelope.message;
    let app = envelope.app.unwrap_or("");
    match envelope.format {
        Format::FortiGate => return Some(Vendor::FortiGate),
        Format::Stormshield => return Some(Vendor::Stormshield),
        Format::Conntrack => return Some(Vendor::Conntrack),
        Format::OpenVpnLog => return Some(Vendor::OpenVpn),
        Format::WireGuard => return Some(Vendor::WireGuard),
        _ => {}
    }
    if app == "kernel" && netfilter::is_netfilter(message) {
        Some(Vendor::Netfilter)
    } else if app.starts_with("openvpn") {
        Some(Vendor::OpenVpn)
    } else if strongswan::is_strongswan_app(app) {
        Some(Vendor::StrongSwan)
    } else if app == "filterlog" {
        Some(Vendor::Filterlog)
    } else if cisco_asa::is_asa(message) {
        Some(Vendor::CiscoAsa)
    } else if paloalto::is_panos(message) {
        Some(Vendor::PanOs)
    } else if fortigate::is_fortigate(message) {
        Some(Vendor::FortiGate)
    } else if stormshield::is_stormshield(message) {
        Some(Vendor::Stormshield)
    } else if netfilter::is_netfilter(message) {
        Some(Vendor::Netfilter)
    } else {
        None
    }
}

/// Hands the message to the vendor parser its program or content calls
/// for.
pub fn message_event<'a>(envelope: &Envelope<'a>) -> Result<Extracted<'a>, ParseError> {
    let message = envelope.message;
    let event = |r: Result<Option<Event<'a>>, ParseError>| {
        r.map(|e| Extracted {
            event: e,
            time: None,
            device: None,
        })
    };
    match vendor(envelope) {
        Some(Vendor::FortiGate) => fortigate::message(message),
        Some(Vendor::Stormshield) => stormshield::message(message),
        Some(Vendor::Conntrack) => conntrack::line(message),
        Some(Vendor::OpenVpn) => event(openvpn::message(message)),
        Some(Vendor::Netfilter) => {
            event(netfilter::log_line(message).map(|t| Some(Event::Traffic(t))))
        }
        Some(Vendor::StrongSwan) => strongswan::message(message),
        Some(Vendor::Filterlog) => filterlog::message(message),
        Some(Vendor::CiscoAsa) => cisco_asa::message(message),
        Some(Vendor::PanOs) => paloalto::message(message),
        Some(Vendor::WireGuard) => event(wireguard::line(message).map(|line| match line {
            wireguard::DumpLine::Peer(peer) => Some(Event::PeerStatus(peer)),
            wireguard::DumpLine::Poll(_) | wireguard::DumpLine::Interface { .. } => None,
        })),
        None => Ok(Extracted::nothing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        // `detect` skips these two checks on a line without a tab or a
        // `"`: what they accept must have one (or the prefix they name).
        #[test]
        fn wireguard_and_stormshield_lines_have_what_detect_looks_for(
            line in "(# poll |id=firewall )?[ -~\t]{0,80}( fw=\"[a-z]{1,4}\" logtype=[a-z]{1,5})?"
        ) {
            if wireguard::is_wireguard(&line) {
                proptest::prop_assert!(line.contains('\t') || line.starts_with("# poll "));
            }
            if stormshield::is_stormshield(&line) {
                proptest::prop_assert!(line.contains('"') || line.starts_with("id=firewall "));
            }
        }
    }

    #[test]
    fn detects_each_stream_format() {
        assert_eq!(
            detect("Mar 12 09:14:03 vpn-lyon openvpn[1873]: x"),
            Some(Format::Rfc3164)
        );
        assert_eq!(
            detect("<30>Mar 12 09:14:03 vpn-lyon openvpn[1873]: x"),
            Some(Format::Rfc3164)
        );
        assert_eq!(
            detect("2024-06-18 09:41:58 Initialization Sequence Completed"),
            Some(Format::OpenVpnLog)
        );
        assert_eq!(
            detect("Tue Jun 18 09:41:58 2024 Initialization Sequence Completed"),
            Some(Format::OpenVpnLog)
        );
        assert_eq!(detect("hello world"), None);
    }

    #[test]
    fn syslog_openvpn_line_gives_its_event() {
        let p = parse_line(
            "Mar 12 09:47:55 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting",
            FormatChoice::Auto,
        )
        .unwrap();
        assert_eq!(p.envelope.host, Some("vpn-lyon"));
        assert_eq!(
            p.event,
            Some(Event::SessionEnded {
                user: Some("j.martin"),
                instance: "198.51.100.23:51734",
                reason: EndReason::UserExit,
                detail: "SIGTERM[soft,remote-exit] received, client-instance exiting",
                bytes_in: None,
                bytes_out: None,
                duration_s: None,
                remote_ip: None,
                tunnel: None,
            })
        );
    }

    /// A session's end from an ASA, in each header shape ASAs and relays
    /// write: the host (or none), the time in UTC, and the event.
    #[test]
    fn asa_session_end_is_read_in_every_header_shape() {
        use chrono::{TimeZone, Utc};
        use std::net::IpAddr;

        let message = "%ASA-4-113019: Group = GP-Techniciens, Username = j.martin, IP = 198.51.100.23, Session disconnected. Session Type: SSL, Duration: 0h:42m:12s, Bytes xmt: 48211904, Bytes rcv: 9120443, Reason: User Requested";
        // The resolver's year is 2023: a year in the line wins over it. Paris
        // is an hour ahead of UTC on March 21 of both years.
        let in_2024 = Utc.with_ymd_and_hms(2024, 3, 21, 8, 37, 14).unwrap();
        let in_2023 = Utc.with_ymd_and_hms(2023, 3, 21, 8, 37, 14).unwrap();
        let shapes = [
            ("<166>Mar 21 2024 09:37:14: ", None, in_2024),
            ("<166>Mar 21 2024 09:37:14 ", None, in_2024),
            ("Mar 21 2024 09:37:14 asa1 : ", Some("asa1"), in_2024),
            ("Mar 21 09:37:14 asa1 ", Some("asa1"), in_2023),
            ("Mar 21 09:37:14 asa1: ", Some("asa1"), in_2023),
        ];
        for (header, host, at) in shapes {
            let line = format!("{header}{message}");
            let p = parse_line(&line, FormatChoice::Auto).unwrap();
            assert_eq!(p.envelope.format, Format::Rfc3164, "{line}");
            assert_eq!(vendor(&p.envelope), Some(Vendor::CiscoAsa), "{line}");
            assert_eq!(p.envelope.host, host, "{line}");
            assert_eq!(p.envelope.app, None, "{line}");
            assert_eq!(p.device, None, "{line}");

            let mut resolver = TimeResolver::new(
                chrono_tz::Europe::Paris,
                YearRule::Sequential {
                    year: 2023,
                    latest: None,
                },
            );
            let resolved = resolver.resolve(&p.envelope.time, in_2024).unwrap();
            assert_eq!(resolved.at, at, "{line}");
            assert_eq!(resolved.flag, None, "{line}");

            assert_eq!(
                p.event,
                Some(Event::SessionEnded {
                    user: Some("j.martin"),
                    instance: "j.martin",
                    reason: EndReason::UserExit,
                    detail: "User Requested",
                    bytes_in: Some(9120443),
                    bytes_out: Some(48211904),
                    duration_s: Some(2532),
                    remote_ip: Some("198.51.100.23".parse::<IpAddr>().unwrap()),
                    tunnel: Some("GP-Techniciens"),
                }),
                "{line}"
            );
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("nope"
            .parse::<FormatChoice>()
            .unwrap_err()
            .contains("rfc3164, rfc5424, openvpn, openvpn-status, fortigate, stormshield, wireguard, conntrack"));
    }
}
