//! No parser panics, loops or misplaces an error, whatever it is given.
//!
//! Every public entry point of the crate is run on arbitrary strings,
//! arbitrary bytes read as text, and real lines of the sample logs damaged
//! in transit (bytes inserted, deleted, replaced, repeated, the line cut),
//! so that the checks reach deep into each grammar rather than stopping at
//! its first character. Each call must return within a time bound, and
//! every `ParseError` must point inside the text it was computed on, at the
//! excerpt it quotes.

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use vpnledger_parsers::openvpn::{self, status};
use vpnledger_parsers::{
    cisco_asa, conntrack, detect, filterlog, fortigate, kv, message_event, netfilter, paloalto,
    rfc5424, stormshield, strongswan, syslog, wireguard, Format, FormatChoice, LineReader,
    ParseError,
};

/// How long one parser may take on one line of these tests before it is
/// taken to loop (a debug build on a busy machine reads them in
/// microseconds).
const PER_CALL: Duration = Duration::from_secs(2);

/// Lines the sample logs lack, for the grammar they do not reach.
const EXTRA_LINES: &[&str] = &[
    "<164>Mar 21 2024 18:02:55 asa-paris : %ASA-4-113019: Group = GP Techniciens, Username = o'brien, IP = 203.0.113.45, Session disconnected. Session Type: SSL, Duration: 1d 2h:03m:04s, Bytes xmt: 1, Bytes rcv: 2, Reason: Idle Timeout",
    "<164>Mar 21 2024 18:02:55 asa-paris : %ASA-4-113019: Group = G, Username = u, IP = 203.0.113.45, Session disconnected. Session Type: IKEv2, Duration: 0:00:41, Bytes xmt: 0, Bytes rcv: 0, Reason: Lost Service",
    "<166>Mar 21 2024 08:55:03 asa-paris : %ASA-6-722051: Group <G> User <u> IP <198.51.100.23> Address <10.50.0.12> assigned to session",
    "<166>Mar 21 2024 08:55:03 asa-paris : %FTD-session-6-302015: Built outbound UDP connection 9 for outside:192.0.2.53/53 (192.0.2.53/53) to inside:10.50.0.12/5353 (10.50.0.12/5353)",
    "<166>Mar 21 2024 08:54:58 asa-paris : %ASA-6-113005: AAA user authentication Rejected : reason = AAA failure : server = 192.168.70.2 : user = ***** : user IP = 198.51.100.23",
    "<189>000123: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console",
    "<30>Mar 2 01:02:03 gw charon-systemd: 14[IKE] <rw-techs|7> IKE_SA rw-techs[7] established between 192.0.2.10[C=FR, O=Example [Lab], CN=gw]...198.51.100.61[C=FR, CN=j.martin]",
    "Mar 14 13:20:46 vpn-nantes charon: 06[IKE] authentication of 'CN=j.martin, O=Example' with RSA signature failed",
    "Mar 14 13:20:46 vpn-nantes charon: 06[IKE1] EAP method EAP_MSCHAPV2 failed for peer 192.168.1.23",
    "Mar 14 13:47:12 vpn-nantes charon: 11[IKE] closing CHILD_SA net-net{3} with SPIs c8a1f2e3_i (1 bytes) 0b7d6e5f_o (2 bytes) and TS 192.168.50.0/24 === 2001:db8::7/128[tcp/443]",
    "<190>date=2024-03-19 time=15:00:00 devname=\"FGT\" tz=\"+01:00\" logid=\"0101037138\" type=\"event\" subtype=\"vpn\" action=\"tunnel-up\" remip=198.51.100.23 user=\"C = FR, CN = j.martin\" xauthuser=\"j.martin\" assignip=10.212.134.5 vpntunnel=\"Dialup-cert_0\" tunnelid=77 tunneltype=\"ipsec\"",
    "<190>date=2024-03-19 time=15:30:00 devname=\"FGT\" tz=\"-0500\" logid=\"0101037138\" type=\"event\" subtype=\"vpn\" action=\"tunnel-down\" remip=198.51.100.23 xauthuser=\"j.martin\" vpntunnel=\"Dialup-cert_0\" tunnelid=77 duration=1800 sentbyte=1 rcvdbyte=2 reason=\"idle timeout\" msg=\"a \\\"quoted\\\" word, with = and \\\\\"",
    "id=firewall time=\"2024-04-09 11:00:00\" fw=\"SN210W\" tz=+0200 user=\"j.martin\" src=198.51.100.23 sent=1 rcvd=2 duration=3600.5 msg=\"SSL tunnel destroyed\" logtype=\"xvpn\"",
    "id=firewall time=\"2024-04-09 11:00:00\" fw=\"SN210W\" tz=+0200 method=\"OPENVPN\" user=\"x\" msg=\"authentication failed\" logtype=\"auth\"",
    "id=firewall time=\"2024-04-09 11:00:00\" fw=\"SN210W\" ipproto=udp src=10.61.0.6 dst=172.20.5.10 dstport=161 action=block logtype=\"filter\"",
    "[1710493442.5000  ]\t[NEW] ipv4     2 icmp     1 30 src=10.20.0.2 dst=192.168.60.15 type=8 code=0 id=7 [UNREPLIED] src=192.168.60.15 dst=10.20.0.2 type=0 code=0 id=7",
    "    [NEW] unknown  50 600 src=10.20.0.2 dst=192.168.60.15 src=192.168.60.15 dst=10.20.0.2",
    "wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t[2001:db8::1%eth0]:51820\t10.20.0.2/32,fd00::2/128\t1710493397\t1\t2\t25",
    "JmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t(none)\t0\t0\t0\toff",
    "cFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\t0xca6c",
    "# poll 2024-03-15T09:00:00.250Z",
    "<134>1 2024-07-09T16:22:05Z fw filterlog 70112 - - 95,,,1700000001,ovpns1,match,pass,in,6,0x00,0x00000,64,tcp,6,40,2001:db8:8::2,2001:db8:1::20,50233,443,0",
    "<134>1 2024-07-09T16:22:05Z fw filterlog 70112 - - 95,,,1700000001,enc0,match,pass,in,4,0x0,,127,29411,0,none,1,icmp,84,10.0.8.2,192.168.1.20,request,1,2",
    "<29>1 2024-07-09T16:58:47+02:00 fw openvpn 44120 - [meta a=\"\\\"\\\\\\]\"][b c=\"d\"] \u{FEFF}user 'j.martin' could not authenticate",
    "Mar 12 09:15:10 vpn-lyon kernel: [812345.118204] VPN-DROP IN=tun0 OUT=eth1 MAC= SRC=2001:db8::6 DST=2001:db8:1::10 LEN=60 PROTO=ICMPv6 TYPE=128 CODE=0",
    "Mar 12 10:05:31 vpn-lyon openvpn[1873]: 2001:db8::7:51234 TLS: Username/Password authentication succeeded for username 'j.martin'",
    "Mar 12 10:05:31 vpn-lyon openvpn[1873]: a/b c/198.51.100.23:1 MULTI: new connection by client 'a/b c' will cause previous active sessions by this client to be dropped.",
    "Mar 12 10:05:31 vpn-lyon openvpn[1873]: x/198.51.100.23:1 Connection reset, restarting [0]",
    "Tue Jun 18 09:41:58 2024 us=120931 t.moreau/192.0.2.88:60344 MULTI: Learn: 10.9.0.2 -> t.moreau/192.0.2.88:60344",
];

/// The sample logs of the repository, for what their files hold whole.
fn samples() -> &'static [(String, String)] {
    static FILES: OnceLock<Vec<(String, String)>> = OnceLock::new();
    FILES.get_or_init(|| {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let mut files = Vec::new();
        for dir in [fixtures.join("logs")].into_iter().chain(
            std::fs::read_dir(fixtures.join("corpus"))
                .expect("fixtures/corpus")
                .map(|e| e.expect("corpus entry").path())
                .filter(|p| p.is_dir()),
        ) {
            for entry in std::fs::read_dir(&dir).expect("sample folder") {
                let path = entry.expect("sample file").path();
                if path.extension().is_some_and(|e| e == "log") {
                    let bytes = std::fs::read(&path).expect("read sample");
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    files.push((path.display().to_string(), text));
                }
            }
        }
        files.sort();
        assert!(files.len() >= 14, "the sample logs are missing");
        files
    })
}

/// Every line of the sample logs, and [`EXTRA_LINES`].
fn sample_lines() -> Vec<String> {
    let mut lines: Vec<String> = samples()
        .iter()
        .flat_map(|(_, text)| text.lines().map(str::to_owned))
        .filter(|l| !l.is_empty())
        .collect();
    lines.extend(EXTRA_LINES.iter().map(|l| (*l).to_owned()));
    lines
}

/// The status files among the samples, whole.
fn status_files() -> Vec<String> {
    samples()
        .iter()
        .filter(|(_, text)| status::is_status_file(text.lines().next().unwrap_or("")))
        .map(|(_, text)| text.clone())
        .collect()
}

/// One damage done to a line.
#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Delete(usize, usize),
    Replace(usize, usize, String),
    /// Repeats a stretch of the line right after itself.
    Repeat(usize, usize),
    Truncate(usize),
}

/// What damage inserts: the characters that grammars split on, digits,
/// letters, and characters of several bytes.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,8}",
        "[0-9]{1,20}",
        r#"[=",:;/\\\[\]<>{}()' \t.%*+-]{1,6}"#,
        "[\u{e8}\u{20ac}\u{feff}\u{0}\r\u{85}\u{1f600}]{1,3}",
        any::<String>().prop_map(|s| s.chars().take(4).collect()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), junk()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1usize..12).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), 1usize..6, junk()).prop_map(|(at, n, s)| Edit::Replace(at, n, s)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Repeat(at, n)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

/// `at` brought into `text` and back to a character boundary.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(line: &str, edits: &[Edit]) -> String {
    let mut text = line.to_owned();
    for edit in edits {
        match edit {
            Edit::Insert(at, s) => {
                let at = boundary(&text, *at);
                text.insert_str(at, s);
            }
            Edit::Delete(at, n) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + n).min(text.len()));
                text.replace_range(start..end.max(start), "");
            }
            Edit::Replace(at, n, s) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + n).min(text.len()));
                text.replace_range(start..end.max(start), s);
            }
            Edit::Repeat(at, n) => {
                let start = boundary(&text, *at);
                let end = boundary(&text, (start + n).min(text.len())).max(start);
                let stretch = text[start..end].to_owned();
                text.insert_str(end, &stretch);
            }
            Edit::Truncate(at) => {
                let at = boundary(&text, *at);
                text.truncate(at);
            }
        }
    }
    text
}

/// A sample line damaged by one to four edits.
fn damaged_line() -> impl Strategy<Value = String> {
    (select(sample_lines()), prop::collection::vec(edit(), 1..5))
        .prop_map(|(line, edits)| apply(&line, &edits))
}

/// Bytes read as text the two ways a reader may: one character per byte
/// (Latin-1), or UTF-8 with replacement characters.
fn bytes_as_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..200).prop_flat_map(|bytes| {
        let latin1: String = bytes.iter().map(|&b| char::from(b)).collect();
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        select(vec![latin1, lossy])
    })
}

/// Any text a parser may meet.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => any::<String>(),
        1 => bytes_as_text(),
        3 => damaged_line(),
        1 => select(sample_lines()),
    ]
}

/// Checks an error against the text it was computed on: its column lies
/// within 1..=len+1 and falls on a character boundary, and the excerpt it
/// quotes is what stands there.
fn check_error(input: &str, e: &ParseError) -> Result<(), TestCaseError> {
    prop_assert!(
        (1..=input.len() + 1).contains(&e.column),
        "column {} outside 1..={} of {:?}: {}",
        e.column,
        input.len() + 1,
        input,
        e
    );
    let Some(at) = input.get(e.column - 1..) else {
        return Err(TestCaseError::fail(format!(
            "column {} falls inside a character of {input:?}",
            e.column
        )));
    };
    // A WireGuard line of unknown shape is described by its field count,
    // never quoted: it may hold a private key.
    if !e.expected.starts_with("a wg dump line") {
        prop_assert!(
            at.starts_with(e.found.as_str()),
            "found {:?} is not at column {} of {:?}",
            e.found,
            e.column,
            input
        );
    }
    Ok(())
}

fn check<T>(input: &str, result: &Result<T, ParseError>) -> Result<(), TestCaseError> {
    match result {
        Ok(_) => Ok(()),
        Err(e) => check_error(input, e),
    }
}

/// Runs `f`, which must end within [`PER_CALL`].
fn timed<T>(what: &str, input: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    prop_assert!(
        took < PER_CALL,
        "{what} took {took:?} on a line of {} bytes",
        input.len()
    );
    Ok(out)
}

/// Every vendor parser on one message, with its errors checked against it.
fn every_message_parser(m: &str) -> Result<(), TestCaseError> {
    let _ = (
        netfilter::is_netfilter(m),
        cisco_asa::is_asa(m),
        fortigate::is_fortigate(m),
        stormshield::is_stormshield(m),
        paloalto::is_panos(m),
        strongswan::is_strongswan_app(m),
        conntrack::is_conntrack(m),
        wireguard::is_wireguard(m),
        rfc5424::is_rfc5424(m),
        status::is_status_file(m),
    );
    check(m, &timed("openvpn::message", m, || openvpn::message(m))?)?;
    check(
        m,
        &timed("netfilter::log_line", m, || netfilter::log_line(m))?,
    )?;
    check(
        m,
        &timed("strongswan::message", m, || strongswan::message(m))?,
    )?;
    check(
        m,
        &timed("cisco_asa::message", m, || cisco_asa::message(m))?,
    )?;
    check(
        m,
        &timed("fortigate::message", m, || fortigate::message(m))?,
    )?;
    check(
        m,
        &timed("stormshield::message", m, || stormshield::message(m))?,
    )?;
    check(m, &timed("paloalto::message", m, || paloalto::message(m))?)?;
    check(
        m,
        &timed("filterlog::message", m, || filterlog::message(m))?,
    )?;
    check(m, &timed("wireguard::line", m, || wireguard::line(m))?)?;
    check(m, &timed("conntrack::line", m, || conntrack::line(m))?)?;
    check(m, &timed("kv::fields", m, || kv::fields(m))?)?;
    Ok(())
}

/// Every parser on one line: the envelopes, the vendor parsers on the line
/// and on the message its envelope finds, and a fresh `LineReader` in each
/// format.
fn every_parser(line: &str) -> Result<(), TestCaseError> {
    let _ = timed("detect", line, || detect(line))?;
    let openvpn_log = timed("openvpn::log_line", line, || openvpn::log_line(line))?;
    every_message_parser(openvpn_log.message)?;

    let rfc3164 = timed("syslog::rfc3164", line, || syslog::rfc3164(line))?;
    check(line, &rfc3164)?;
    let rfc5424 = timed("rfc5424::rfc5424", line, || rfc5424::rfc5424(line))?;
    check(line, &rfc5424)?;
    for envelope in [rfc3164.ok(), rfc5424.ok()].into_iter().flatten() {
        every_message_parser(envelope.message)?;
        check(
            envelope.message,
            &timed("message_event", line, || message_event(&envelope))?,
        )?;
    }
    every_message_parser(line)?;

    for choice in choices() {
        let result = timed("LineReader::read", line, || {
            LineReader::new(choice).read(line)
        })?;
        check(line, &result)?;
    }
    Ok(())
}

/// `auto` and every fixed format.
fn choices() -> Vec<FormatChoice> {
    std::iter::once(FormatChoice::Auto)
        .chain(Format::ALL.into_iter().map(FormatChoice::Fixed))
        .collect()
}

/// A whole status file through `parse_status`, each line's error checked
/// against that line.
fn status_file(text: &str) -> Result<(), TestCaseError> {
    let lines = timed("status::parse_status", text, || status::parse_status(text))?;
    let mut previous = 0;
    for line in &lines {
        prop_assert!(line.number > previous, "line numbers go up");
        previous = line.number;
        if let Some(e) = &line.error {
            check_error(line.text, e)?;
        }
    }
    prop_assert_eq!(lines.len(), text.split_inclusive('\n').count());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_any_line(line in any_text()) {
        every_parser(&line)?;
    }

    #[test]
    fn no_vendor_parser_panics_on_a_damaged_message(line in damaged_line()) {
        // The messages of the samples, damaged after their envelope, so
        // that the vendor grammar rather than the header takes the damage.
        every_message_parser(&line)?;
        for prefix_end in [line.find(": "), line.find(" - - ")].into_iter().flatten() {
            every_message_parser(&line[prefix_end + 2..])?;
        }
    }

    #[test]
    fn a_line_reader_reads_any_stream(lines in prop::collection::vec(any_text(), 1..12)) {
        // One reader per stream, so that a WireGuard `# poll` line gives
        // its time to the dump lines after it, damaged or not.
        for choice in choices() {
            let mut reader = LineReader::new(choice);
            for line in &lines {
                let result = timed("LineReader::read", line, || reader.read(line))?;
                check(line, &result)?;
            }
        }
    }

    #[test]
    fn parse_status_reads_any_text(text in any_text()) {
        status_file(&text)?;
    }

    #[test]
    fn parse_status_reads_any_damaged_status_file(
        file in select(status_files()),
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        status_file(&apply(&file, &edits))?;
    }

    #[test]
    fn error_columns_lie_within_the_input(line in any_text()) {
        // Every error of every parser, gathered here once more to state
        // the property on its own: 1 <= column <= len + 1.
        let mut errors: Vec<(String, ParseError)> = Vec::new();
        let mut keep = |input: &str, e: Option<ParseError>| {
            if let Some(e) = e {
                errors.push((input.to_owned(), e));
            }
        };
        keep(&line, syslog::rfc3164(&line).err());
        keep(&line, rfc5424::rfc5424(&line).err());
        keep(&line, openvpn::message(&line).err());
        keep(&line, netfilter::log_line(&line).err());
        keep(&line, strongswan::message(&line).err());
        keep(&line, cisco_asa::message(&line).err());
        keep(&line, fortigate::message(&line).err());
        keep(&line, stormshield::message(&line).err());
        keep(&line, paloalto::message(&line).err());
        keep(&line, filterlog::message(&line).err());
        keep(&line, wireguard::line(&line).err());
        keep(&line, conntrack::line(&line).err());
        keep(&line, kv::fields(&line).err());
        for choice in choices() {
            keep(&line, LineReader::new(choice).read(&line).err());
        }
        for status_line in status::parse_status(&line) {
            keep(status_line.text, status_line.error);
        }
        for (input, e) in &errors {
            prop_assert!(
                e.column >= 1 && e.column <= input.len() + 1,
                "column {} of {:?} on {:?}",
                e.column,
                e.to_string(),
                input
            );
        }
    }
}

/// Reads `line` with every reader and the parsers that split whole lines;
/// returns how long it took.
fn read_everywhere(line: &str) -> Duration {
    let start = Instant::now();
    for choice in choices() {
        if let Err(e) = LineReader::new(choice).read(line) {
            assert!((1..=line.len() + 1).contains(&e.column), "{e}");
        }
    }
    let _ = openvpn::message(line);
    let _ = kv::fields(line);
    let _ = paloalto::message(line);
    let _ = status::parse_status(line);
    start.elapsed()
}

/// Long lines made of what the grammars search for, repeated: each parser
/// must read them in a time that grows with the line, not with its square.
/// Each line is read at 64 KiB (the default `max_message`) and at an
/// eighth of that: a linear parser takes about 8 times longer on the long
/// one, a quadratic one about 64 times (a word of slashes once took
/// `openvpn::message` that long).
#[test]
fn long_repetitive_lines_are_read_in_linear_time() {
    const LONG: usize = 64 * 1024;
    let pieces = [
        "/",
        "a/",
        "/1.2.3.4:5",
        "[",
        "]",
        "\"",
        "a=\"",
        "a=",
        "=",
        "...",
        ",",
        "\t",
        "'",
        "<",
        ">",
        ":",
        "1:",
        " ",
        "[1]",
        "SIG[",
        "% ",
        "IN= SRC= DST=",
        "IKE_SA a[",
        "\\",
        "# poll ",
        "src=",
        "1,",
        "\"\",",
        "Group <",
    ];
    let heads = [
        "",
        "Mar 12 09:14:03 vpn-lyon openvpn[1873]: ",
        "<29>1 2024-07-09T16:20:10Z fw openvpn 1 - - ",
        "Mar 14 13:02:10 vpn-nantes charon: 14[IKE] ",
        "<166>Mar 21 2024 08:55:02 asa-paris : %ASA-6-113039: Group <",
        "<190>date=2024-03-19 time=14:02:33 logid=\"0101039947\" ",
        "<14>Mar 26 14:00:07 PA-LYON 1,2024/03/26 14:00:07,0128,GLOBALPROTECT,0,2817,",
        "2024-06-18 09:41:58 ",
    ];
    for head in heads {
        for (piece, tail) in pieces.iter().flat_map(|p| [(p, ""), (p, " x")]) {
            let line = |size: usize| format!("{head}{}{tail}", piece.repeat(size / piece.len()));
            let short = read_everywhere(&line(LONG / 8));
            let long = read_everywhere(&line(LONG));
            let case = format!("{head:?} then {piece:?} repeated, then {tail:?}");
            assert!(long < Duration::from_secs(5), "{long:?} for {case}");
            // Below a few milliseconds, timing says little.
            if long > Duration::from_millis(50) {
                assert!(
                    long < short.max(Duration::from_millis(1)) * 24,
                    "{short:?} at {} bytes but {long:?} at {} bytes for {case}",
                    LONG / 8,
                    LONG
                );
            }
        }
    }
}

/// Every sample line is read by the auto reader without an error about
/// its framing: the corpus keeps the properties above honest.
#[test]
fn the_samples_reach_the_vendor_grammars() {
    let lines = sample_lines();
    assert!(lines.len() > 200, "only {} sample lines", lines.len());
    let mut events = 0;
    for line in &lines {
        if let Ok(parsed) = LineReader::new(FormatChoice::Auto).read(line) {
            events += usize::from(parsed.event.is_some());
        }
    }
    assert!(events > 80, "only {events} sample lines give an event");
}
