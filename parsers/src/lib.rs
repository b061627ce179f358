//! Pure parsers for the logs vpnledger reads: bytes in, typed values out.
//!
//! Nothing here does I/O or reads the clock: the year and zone of a line
//! that lacks them come from the caller (see [`time`]), so every result can
//! be pinned by a test. Parsers borrow from the input line.
//!
//! Layout:
//! - [`syslog`]: syslog envelopes (RFC 3164) and the [`Envelope`] they yield;
//! - [`openvpn`]: OpenVPN's own log file, server messages and status files;
//! - [`netfilter`]: Linux firewall LOG lines, as traffic;
//! - [`event`]: the VPN facts vendor parsers extract;
//! - [`time`]: from what a line wrote to a UTC instant;
//! - [`error`]: what was expected, and where.
//!
//! [`parse_line`] puts them together: it reads one line in a given (or
//! detected) format and returns its envelope and event.

pub mod error;
pub mod event;
pub mod netfilter;
pub mod openvpn;
pub mod syslog;
pub mod time;

use std::fmt;
use std::str::FromStr;

pub use error::ParseError;
pub use event::{EndReason, Event, StatusClient, Traffic, Verdict};
pub use syslog::Envelope;
pub use time::{LineTime, Resolved, TimeFlag, TimeResolver, YearRule};

/// A line format vpnledger reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// BSD syslog, RFC 3164 and its variants in the field.
    Rfc3164,
    /// OpenVPN's own log file (`--log`).
    OpenVpnLog,
    /// OpenVPN's status file (`--status`), read as a whole snapshot.
    OpenVpnStatus,
}

impl Format {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Format; 3] = [Format::Rfc3164, Format::OpenVpnLog, Format::OpenVpnStatus];

    /// The name used on the command line, in configuration and in output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Rfc3164 => "rfc3164",
            Format::OpenVpnLog => "openvpn",
            Format::OpenVpnStatus => "openvpn-status",
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

/// Recognises the format of one line of a stream; `None` when no format
/// matches. Status files are recognised by their first line, see
/// [`openvpn::status::is_status_file`].
pub fn detect(line: &str) -> Option<Format> {
    if openvpn::log::starts_with_timestamp(line) {
        return Some(Format::OpenVpnLog);
    }
    let after_priority = match syslog::priority(line) {
        Ok((rest, _)) => rest,
        Err(_) => line,
    };
    let first = after_priority.trim_start_matches(|c: char| {
        c == '*' || c == '.' || c.is_ascii_digit() || c == ':' || c == ' '
    });
    if syslog::month(first).is_ok() || syslog::month(after_priority).is_ok() {
        return Some(Format::Rfc3164);
    }
    None
}

/// A line read: its envelope, and the VPN fact it carries, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub envelope: Envelope<'a>,
    pub event: Option<Event<'a>>,
}

/// Reads one line of a stream format. Status files are read whole with
/// [`openvpn::status::parse_status`].
pub fn parse_line(line: &str, choice: FormatChoice) -> Result<Parsed<'_>, ParseError> {
    let format = match choice {
        FormatChoice::Fixed(format) => format,
        FormatChoice::Auto => detect(line).ok_or_else(|| {
            ParseError::at(line, line, "a syslog header or an OpenVPN log timestamp")
        })?,
    };
    let envelope = match format {
        Format::Rfc3164 => syslog::rfc3164(line)?,
        Format::OpenVpnLog => openvpn::log_line(line),
        Format::OpenVpnStatus => {
            return Err(ParseError::at(
                line,
                line,
                "a whole status file, not a single line",
            ))
        }
    };
    // Vendor parsers count columns in the message: count them in the line.
    let message_offset =
        (envelope.message.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
    let event = message_event(&envelope).map_err(|mut e| {
        e.column += message_offset;
        e
    })?;
    Ok(Parsed { envelope, event })
}

/// Hands the message to the vendor parser its program calls for.
pub fn message_event<'a>(envelope: &Envelope<'a>) -> Result<Option<Event<'a>>, ParseError> {
    let message = envelope.message;
    match envelope.app {
        Some("kernel") if netfilter::is_netfilter(message) => {
            netfilter::log_line(message).map(|t| Some(Event::Traffic(t)))
        }
        Some(app) if app.starts_with("openvpn") => openvpn::message(message),
        None if envelope.format == Format::OpenVpnLog => openvpn::message(message),
        _ if netfilter::is_netfilter(message) => {
            netfilter::log_line(message).map(|t| Some(Event::Traffic(t)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            })
        );
    }

    #[test]
    fn format_names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
        }
        assert!("nope"
            .parse::<FormatChoice>()
            .unwrap_err()
            .contains("rfc3164, openvpn, openvpn-status"));
    }
}
