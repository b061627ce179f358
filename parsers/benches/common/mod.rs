//! What both benchmarks read: the corpus lines, grouped by the parser that
//! reads them, and the two envelope parsers compared (ours, resolving the
//! time to UTC, and syslog_loose's exact zone-aware parse).
//!
//! Lines come from `fixtures/corpus/*/*.log`, compiled in, so the figures
//! are for the logs the tests hold and need no file at run time.

#![allow(dead_code)] // each benchmark uses a part

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use syslog_loose::Variant;
use vpnledger_parsers::{
    cisco_asa, conntrack, filterlog, fortigate, netfilter, openvpn, paloalto, rfc5424, stormshield,
    strongswan, syslog, wireguard, Envelope, Format, FormatChoice, LineReader, TimeResolver,
    YearRule,
};

/// The year of the corpus's RFC 3164 lines (fixtures/corpus/README.md).
pub const YEAR: i32 = 2024;
/// The zone of the corpus's lines without an offset.
pub const ZONE: Tz = chrono_tz::Europe::Paris;

/// One corpus file, with the name it is benchmarked under.
pub struct CorpusFile {
    pub name: &'static str,
    pub text: &'static str,
}

macro_rules! corpus {
    ($($name:literal => $path:literal),* $(,)?) => {
        &[$(CorpusFile { name: $name, text: include_str!(concat!("../../../fixtures/corpus/", $path)) }),*]
    };
}

/// Every stream file of the corpus (status files are snapshots, read whole,
/// not line by line).
pub const STREAM_FILES: &[CorpusFile] = corpus! {
    "openvpn-rfc3164" => "openvpn/syslog-rfc3164.log",
    "openvpn-log" => "openvpn/file-log-iso.log",
    "openvpn-2.6-real" => "openvpn/real-2.6-loopback.log",
    "strongswan" => "strongswan/charon-syslog.log",
    "cisco-asa" => "cisco-asa/anyconnect.log",
    "fortigate" => "fortigate/sslvpn-and-traffic.log",
    "stormshield" => "stormshield/xvpn-and-connection.log",
    "paloalto" => "paloalto-globalprotect/globalprotect-and-traffic.log",
    "pfsense-rfc5424" => "pfsense/openvpn-filterlog-rfc5424.log",
    "wireguard-conntrack" => "wireguard/wg-polls-with-conntrack.log",
};

/// A set of lines one parser reads, and their size.
pub struct LineSet {
    pub name: &'static str,
    pub lines: Vec<&'static str>,
}

impl LineSet {
    pub fn bytes(&self) -> u64 {
        // Count the newline too: it is part of what a reader goes through.
        self.lines.iter().map(|l| l.len() as u64 + 1).sum()
    }
}

fn lines_of(name: &str) -> impl Iterator<Item = &'static str> {
    STREAM_FILES
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no corpus file {name}"))
        .text
        .lines()
        .filter(|l| !l.trim().is_empty())
}

/// The RFC 3164 lines both envelope parsers read alike: OpenVPN (its
/// messages and the kernel's netfilter lines) and strongSwan.
///
/// Two corpus files are left out of the comparison because syslog_loose
/// reads them differently, not because of the work done: the ASA's
/// `Mmm dd yyyy hh:mm:ss` lines, whose local time it takes for UTC before
/// applying the zone's offset (an hour off in Paris), and PAN-OS lines,
/// which have no tag and whose first CSV field it takes for one.
pub fn rfc3164_lines() -> LineSet {
    LineSet {
        name: "rfc3164",
        lines: ["openvpn-rfc3164", "strongswan"]
            .into_iter()
            .flat_map(lines_of)
            .collect(),
    }
}

/// Every RFC 3164 line of the corpus, the ASA and PAN-OS included.
pub fn rfc3164_all_lines() -> LineSet {
    LineSet {
        name: "rfc3164-all",
        lines: ["openvpn-rfc3164", "strongswan", "cisco-asa", "paloalto"]
            .into_iter()
            .flat_map(lines_of)
            .collect(),
    }
}

/// The RFC 5424 lines of the corpus (pfSense: OpenVPN and filterlog).
pub fn rfc5424_lines() -> LineSet {
    LineSet {
        name: "rfc5424",
        lines: lines_of("pfsense-rfc5424").collect(),
    }
}

/// A vendor parser, as the benchmarks call it: its result is only kept
/// from being optimised away, and a line it rejects fails the setup.
pub type VendorParser = fn(&str) -> Result<(), vpnledger_parsers::ParseError>;

/// The messages one vendor parser reads, taken from the corpus lines whose
/// envelope routes them to it (as [`vpnledger_parsers::message_event`]
/// does), and that parser.
pub struct VendorSet {
    pub set: LineSet,
    pub parse: VendorParser,
}

fn keep<T>(
    r: Result<T, vpnledger_parsers::ParseError>,
) -> Result<(), vpnledger_parsers::ParseError> {
    r.map(|t| {
        std::hint::black_box(t);
    })
}

/// The message sets of every vendor parser.
pub fn vendor_sets() -> Vec<VendorSet> {
    let mut sets: Vec<VendorSet> = vec![
        vendor("openvpn::message", |m| keep(openvpn::message(m))),
        vendor("netfilter::log_line", |m| keep(netfilter::log_line(m))),
        vendor("strongswan::message", |m| keep(strongswan::message(m))),
        vendor("cisco_asa::message", |m| keep(cisco_asa::message(m))),
        vendor("fortigate::message", |m| keep(fortigate::message(m))),
        vendor("stormshield::message", |m| keep(stormshield::message(m))),
        vendor("paloalto::message", |m| keep(paloalto::message(m))),
        vendor("filterlog::message", |m| keep(filterlog::message(m))),
        vendor("wireguard::line", |m| keep(wireguard::line(m))),
        vendor("conntrack::line", |m| keep(conntrack::line(m))),
    ];
    for file in STREAM_FILES {
        let mut reader = LineReader::new(FormatChoice::Auto);
        for line in file.text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(parsed) = reader.read(line) else {
                continue;
            };
            let envelope = parsed.envelope;
            let message = envelope.message;
            let app = envelope.app.unwrap_or("");
            let target = match envelope.format {
                Format::OpenVpnLog => "openvpn::message",
                Format::FortiGate => "fortigate::message",
                Format::Stormshield => "stormshield::message",
                Format::Conntrack => "conntrack::line",
                Format::WireGuard => "wireguard::line",
                _ if netfilter::is_netfilter(message) => "netfilter::log_line",
                _ if app.starts_with("openvpn") => "openvpn::message",
                _ if strongswan::is_strongswan_app(app) => "strongswan::message",
                _ if app == "filterlog" => "filterlog::message",
                _ if cisco_asa::is_asa(message) => "cisco_asa::message",
                _ if paloalto::is_panos(message) => "paloalto::message",
                _ => continue,
            };
            // WireGuard's parser reads the whole line, the others the
            // message inside the envelope.
            let text = if target == "wireguard::line" {
                line
            } else {
                message
            };
            let set = sets
                .iter_mut()
                .find(|s| s.set.name == target)
                .expect("known parser");
            set.set.lines.push(text);
        }
    }
    for s in &sets {
        assert!(!s.set.lines.is_empty(), "{}: no corpus line", s.set.name);
        for m in &s.set.lines {
            if let Err(e) = (s.parse)(m) {
                panic!("{}: corpus message rejected: {e}\n{m}", s.set.name);
            }
        }
    }
    sets
}

fn vendor(name: &'static str, parse: VendorParser) -> VendorSet {
    VendorSet {
        set: LineSet {
            name,
            lines: Vec::new(),
        },
        parse,
    }
}

/// What both envelope parsers must agree on for a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub at: DateTime<Utc>,
    pub host: Option<&'a str>,
    pub app: Option<&'a str>,
    pub message: &'a str,
}

/// A resolver as `ingest --year 2024 --tz Europe/Paris` makes one.
pub fn resolver() -> TimeResolver {
    TimeResolver::new(
        ZONE,
        YearRule::Sequential {
            year: YEAR,
            latest: None,
        },
    )
}

/// The received time passed to the resolver; lines of a one-shot read with
/// `--year` take nothing from it.
pub fn received() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn header<'a>(envelope: Envelope<'a>, resolver: &mut TimeResolver) -> Header<'a> {
    // Made once, as `ingest` takes one received time per file.
    static RECEIVED: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(received);
    let at = resolver
        .resolve(&envelope.time, *RECEIVED)
        .expect("corpus times resolve")
        .at;
    Header {
        at,
        host: envelope.host,
        app: envelope.app,
        message: envelope.message,
    }
}

/// Ours: the RFC 3164 envelope, its time resolved to UTC.
#[inline]
pub fn ours_rfc3164<'a>(line: &'a str, resolver: &mut TimeResolver) -> Header<'a> {
    header(syslog::rfc3164(line).expect("corpus line"), resolver)
}

/// Ours: the RFC 5424 envelope, its time resolved to UTC.
#[inline]
pub fn ours_rfc5424<'a>(line: &'a str, resolver: &mut TimeResolver) -> Header<'a> {
    header(rfc5424::rfc5424(line).expect("corpus line"), resolver)
}

/// The peer: syslog_loose's exact parse, given the year and the zone, its
/// timestamp converted to UTC like ours.
#[inline]
pub fn peer(line: &str, variant: Variant) -> Header<'_> {
    let message =
        syslog_loose::parse_message_with_year_exact_tz(line, |_| YEAR, Some(ZONE), variant)
            .expect("syslog_loose reads the corpus line");
    Header {
        at: message
            .timestamp
            .expect("syslog_loose finds the time")
            .with_timezone(&Utc),
        host: message.hostname,
        app: message.appname,
        message: message.msg,
    }
}

/// Checks that both parsers read every line of `set` to the same time,
/// host, app and message, so the comparison is of the same work.
pub fn assert_same_headers(set: &LineSet, variant: Variant) {
    let mut resolver = resolver();
    for line in &set.lines {
        let ours = match variant {
            Variant::RFC5424 => ours_rfc5424(line, &mut resolver),
            _ => ours_rfc3164(line, &mut resolver),
        };
        let theirs = peer(line, variant);
        assert_eq!(ours, theirs, "{}: parsers disagree on {line:?}", set.name);
    }
}
