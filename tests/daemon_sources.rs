//! `vpnledger run` with its live network and polled sources: the syslog
//! listeners fed by `logger` (util-linux), a Loki source pulling from a
//! fake Loki server in this process, and status sources polling a file
//! and a command. All traffic stays on 127.0.0.1.
//!
//! Lines sent carry VPN events (OpenVPN session lines, netfilter traffic
//! lines), since the store keeps a record for each line with an event;
//! the tests compare the stored lines byte for byte with what was sent
//! and the sessions field by field.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/net.rs"]
mod net;
mod support;

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use daemon::{netfilter_message, query_i64, wait_for_records, wait_until, Daemon};
use net::{host_name, logger, logger_with_input, stored_records, stored_unparsed, FakeLoki};
use support::Ledger;

/// Generous: other builds may be loading the machine.
const WAIT: Duration = Duration::from_secs(60);

/// A ledger whose configuration is `sources` after a `[defaults]` in UTC.
fn ledger(sources: &str) -> Ledger {
    Ledger::with_config(&format!("[defaults]\ntimezone = \"UTC\"\n\n{sources}"))
}

/// `sessions --json` once it holds `count` sessions and `ready` holds for
/// them; fails with the daemon's log otherwise.
fn wait_for_sessions(
    ledger: &Ledger,
    daemon: &Daemon,
    what: &str,
    ready: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    for _ in 0..(WAIT.as_millis() / 200) {
        last = ledger.sessions();
        if ready(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!(
        "sessions never showed {what} within {WAIT:?}; last:\n{}\n----- log -----\n{}",
        serde_json::to_string_pretty(&last).unwrap_or_default(),
        daemon.log()
    );
}

fn session<'a>(sessions: &'a [Value], user: &str) -> &'a Value {
    sessions
        .iter()
        .find(|s| s["user"] == user)
        .unwrap_or_else(|| panic!("no session of {user} in {sessions:#?}"))
}

/// A JSON time as µs since the epoch.
fn micros(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_micros()
}

fn utc(text: &str) -> i64 {
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .timestamp_micros()
}

/// The stored record that carries `message`; exactly one must.
fn record_of<'a>(records: &'a [net::StoredLine], message: &str) -> &'a net::StoredLine {
    let found: Vec<_> = records
        .iter()
        .filter(|r| r.raw.ends_with(message))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{message:?} should be stored once, in {records:#?}"
    );
    found[0]
}

/// Checks an RFC 3164 line as `logger` writes it, `<PRI>Mmm dd hh:mm:ss
/// HOST TAG[PID]: MSG`, and returns the time it carries (µs): the stamp
/// must lie in `[from, to]` (whole seconds) and be the stored time.
fn check_rfc3164(
    record: &net::StoredLine,
    pri: u8,
    tag: &str,
    pid: Option<i64>,
    message: &str,
    (from, to): (i64, i64),
) -> i64 {
    let head = format!("<{pri}>");
    assert!(record.raw.starts_with(&head), "{record:?}");
    let stamp = &record.raw[head.len()..head.len() + 15];
    let tag_part = match pid {
        Some(p) => format!("{tag}[{p}]"),
        None => tag.to_owned(),
    };
    assert_eq!(
        record.raw,
        format!("{head}{stamp} {} {tag_part}: {message}", short_host()),
        "raw line as sent"
    );
    let year = DateTime::from_timestamp_micros(from)
        .expect("time")
        .format("%Y");
    let at = NaiveDateTime::parse_from_str(&format!("{year} {stamp}"), "%Y %b %e %H:%M:%S")
        .unwrap_or_else(|e| panic!("stamp {stamp:?}: {e}"));
    let at = Utc.from_utc_datetime(&at).timestamp_micros();
    assert!(
        at >= from / 1_000_000 * 1_000_000 && at <= to,
        "stamp {stamp} outside the sending window"
    );
    assert_eq!(record.ts, Some(at), "stored time of {record:?}");
    assert_eq!(record.host.as_deref(), Some(short_host().as_str()));
    assert_eq!(record.app.as_deref(), Some(tag));
    assert_eq!(record.pid, pid);
    assert!(!record.truncated);
    at
}

/// Checks an RFC 5424 line as `logger` writes it, `<PRI>1 TIMESTAMP HOST
/// TAG PID - [timeQuality ...] MSG`, and returns its time (µs).
fn check_rfc5424(
    record: &net::StoredLine,
    pri: u8,
    tag: &str,
    pid: Option<i64>,
    message: &str,
    (from, to): (i64, i64),
) -> i64 {
    let head = format!("<{pri}>1 ");
    assert!(record.raw.starts_with(&head), "{record:?}");
    let stamp = record.raw[head.len()..]
        .split(' ')
        .next()
        .expect("timestamp");
    let pid_text = pid.map_or("-".to_owned(), |p| p.to_string());
    assert_eq!(
        record.raw,
        format!(
            "{head}{stamp} {} {tag} {pid_text} - [timeQuality tzKnown=\"1\" isSynced=\"0\"] {message}",
            host_name()
        ),
        "raw line as sent"
    );
    let at = utc(stamp);
    assert!(
        at >= from && at <= to,
        "stamp {stamp} outside the sending window"
    );
    assert_eq!(record.ts, Some(at), "stored time of {record:?}");
    assert_eq!(record.host.as_deref(), Some(host_name().as_str()));
    assert_eq!(record.app.as_deref(), Some(tag));
    assert_eq!(record.pid, pid);
    assert!(!record.truncated);
    at
}

/// RFC 3164 headers from `logger` carry the host name up to its first dot.
fn short_host() -> String {
    host_name().split('.').next().unwrap_or_default().to_owned()
}

fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

fn syslog_ledger(port: u16, max_message: Option<usize>) -> Ledger {
    let max = max_message.map_or(String::new(), |m| format!("max_message = {m}\n"));
    ledger(&format!(
        "[[source]]\nname = \"gateways\"\nkind = \"syslog\"\nudp = \"127.0.0.1:{port}\"\ntcp = \"127.0.0.1:{port}\"\n{max}"
    ))
}

fn start_listening(ledger: &Ledger) -> Daemon {
    let daemon = Daemon::start(ledger);
    daemon.wait_for_log("listening for syslog over UDP", WAIT);
    daemon.wait_for_log("listening for syslog over TCP", WAIT);
    daemon
}

const J_MARTIN_UP: &str =
    "198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734";
const J_MARTIN_IP: &str =
    "j.martin/198.51.100.23:51734 MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)";
const J_MARTIN_EXIT: &str =
    "j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting";
const S_BERNARD_UP: &str =
    "203.0.113.45:40112 [s.bernard] Peer Connection Initiated with [AF_INET]203.0.113.45:40112";
const S_BERNARD_IP: &str =
    "s.bernard/203.0.113.45:40112 MULTI_sva: pool returned IPv4=10.8.0.10, IPv6=(Not enabled)";
const A_PETIT_UP: &str =
    "198.51.100.140:1194 [a.petit] Peer Connection Initiated with [AF_INET]198.51.100.140:1194";
const R_LEROY_UP: &str =
    "192.0.2.61:40001 [r.leroy] Peer Connection Initiated with [AF_INET]192.0.2.61:40001";

#[test]
fn logger_rfc3164_and_rfc5424_over_udp_and_tcp_become_records_and_sessions() {
    let port = daemon::free_port();
    let ledger = syslog_ledger(port, None);
    let mut daemon = start_listening(&ledger);
    let p = port.to_string();
    let to = |transport: &'static str| ["-n", "127.0.0.1", "-P", p.as_str(), transport];

    // Four clients' sessions, each sent in another way; j.martin's ends
    // with a line sent over TCP after two sent over UDP.
    let from = now_micros();
    for m in [J_MARTIN_UP, J_MARTIN_IP] {
        let mut args = to("-d").to_vec();
        args.extend([
            "--rfc3164",
            "-p",
            "daemon.notice",
            "-t",
            "openvpn",
            "--id=1873",
            m,
        ]);
        logger(&args);
    }
    let mut args = to("-T").to_vec();
    args.extend(["--rfc5424", "-p", "daemon.info", "-t", "openvpn"]);
    logger_with_input(
        &args,
        Some(format!("{S_BERNARD_UP}\n{S_BERNARD_IP}\n").as_bytes()),
    );
    let mut args = to("-T").to_vec();
    args.extend([
        "--octet-count",
        "--rfc5424",
        "-t",
        "openvpn",
        "--id=2001",
        A_PETIT_UP,
    ]);
    logger(&args);
    let mut args = to("-d").to_vec();
    args.extend(["--rfc5424", "-t", "openvpn", R_LEROY_UP]);
    logger(&args);
    let mut args = to("-T").to_vec();
    args.extend([
        "--rfc3164",
        "-p",
        "daemon.notice",
        "-t",
        "openvpn",
        "--id=1873",
        J_MARTIN_EXIT,
    ]);
    logger(&args);
    let window = (from, now_micros());

    // Every line once, exactly as sent, with its envelope read.
    wait_for_records(&ledger.db, 7, WAIT);
    let records = stored_records(&ledger.db);
    assert!(
        records.iter().all(|r| r.source == "gateways"),
        "{records:#?}"
    );
    let j_up = check_rfc3164(
        record_of(&records, J_MARTIN_UP),
        29,
        "openvpn",
        Some(1873),
        J_MARTIN_UP,
        window,
    );
    check_rfc3164(
        record_of(&records, J_MARTIN_IP),
        29,
        "openvpn",
        Some(1873),
        J_MARTIN_IP,
        window,
    );
    let j_exit = check_rfc3164(
        record_of(&records, J_MARTIN_EXIT),
        29,
        "openvpn",
        Some(1873),
        J_MARTIN_EXIT,
        window,
    );
    let s_up = check_rfc5424(
        record_of(&records, S_BERNARD_UP),
        30,
        "openvpn",
        None,
        S_BERNARD_UP,
        window,
    );
    check_rfc5424(
        record_of(&records, S_BERNARD_IP),
        30,
        "openvpn",
        None,
        S_BERNARD_IP,
        window,
    );
    let a_up = check_rfc5424(
        record_of(&records, A_PETIT_UP),
        13,
        "openvpn",
        Some(2001),
        A_PETIT_UP,
        window,
    );
    let r_up = check_rfc5424(
        record_of(&records, R_LEROY_UP),
        13,
        "openvpn",
        None,
        R_LEROY_UP,
        window,
    );

    // The sessions those lines make: the gateway is the header's host.
    let sessions = wait_for_sessions(&ledger, &daemon, "four sessions, j.martin's ended", |s| {
        s.len() == 4
            && s.iter()
                .any(|s| s["user"] == "j.martin" && !s["end"].is_null())
    });
    let j = session(&sessions, "j.martin");
    assert_eq!(j["gateway"], short_host());
    assert_eq!(micros(&j["start"]), j_up);
    assert_eq!(micros(&j["end"]), j_exit);
    assert_eq!(j["end_reason"], "user_exit");
    assert_eq!(j["end_inferred"], false);
    assert_eq!(j["virtual_ip"], "10.8.0.6");
    assert_eq!(j["remote_ip"], "198.51.100.23");
    assert_eq!(j["remote_port"], 51734);
    for (user, start, ip, remote) in [
        ("s.bernard", s_up, Value::from("10.8.0.10"), "203.0.113.45"),
        ("a.petit", a_up, Value::Null, "198.51.100.140"),
        ("r.leroy", r_up, Value::Null, "192.0.2.61"),
    ] {
        let s = session(&sessions, user);
        assert_eq!(s["gateway"], host_name(), "{s}");
        assert_eq!(micros(&s["start"]), start, "{s}");
        assert!(s["end"].is_null(), "an open session: {s}");
        assert!(s["end_reason"].is_null(), "{s}");
        assert_eq!(s["virtual_ip"], ip, "{s}");
        assert_eq!(s["remote_ip"], remote, "{s}");
    }
    daemon.stop();
}

#[test]
fn concurrent_tcp_clients_newline_and_octet_counted_lose_nothing() {
    const CLIENTS: u64 = 6;
    const LINES: u64 = 150;
    let port = daemon::free_port();
    let ledger = syslog_ledger(port, None);
    let mut daemon = start_listening(&ledger);

    // Six `logger`s at once, each one TCP connection; half count octets.
    let p = port.to_string();
    std::thread::scope(|scope| {
        for client in 0..CLIENTS {
            let p = p.clone();
            scope.spawn(move || {
                let input: String = (0..LINES)
                    .map(|i| netfilter_message(client * LINES + i) + "\n")
                    .collect();
                let mut args = vec!["-n", "127.0.0.1", "-P", p.as_str(), "-T", "-t", "kernel"];
                args.push(if client % 2 == 0 {
                    "--rfc3164"
                } else {
                    "--rfc5424"
                });
                if client % 3 == 0 {
                    args.push("--octet-count");
                }
                logger_with_input(&args, Some(input.as_bytes()));
            });
        }
    });

    // Each line once, whole, with its traffic event.
    wait_for_records(&ledger.db, (CLIENTS * LINES) as i64, WAIT);
    let records = stored_records(&ledger.db);
    let mut messages = BTreeSet::new();
    for r in &records {
        // After `kernel: ` (RFC 3164) or the structured data (RFC 5424).
        let body = ["kernel: ", "isSynced=\"0\"] "]
            .iter()
            .find_map(|h| r.raw.find(h).map(|at| &r.raw[at + h.len()..]))
            .unwrap_or_else(|| panic!("no header in {r:?}"));
        let message = body.to_owned();
        assert_eq!(r.app.as_deref(), Some("kernel"), "{r:?}");
        assert!(!r.truncated, "{r:?}");
        messages.insert(message);
    }
    let expected: BTreeSet<String> = (0..CLIENTS * LINES).map(netfilter_message).collect();
    assert_eq!(messages.len(), expected.len());
    assert!(
        messages == expected,
        "stored messages differ from those sent"
    );
    assert_eq!(
        query_i64(&ledger.db, "SELECT count(*) FROM traffic"),
        (CLIENTS * LINES) as i64
    );
    daemon.stop();
}

#[test]
fn messages_over_max_message_are_kept_cut_and_flagged() {
    const MAX: usize = 300;
    let port = daemon::free_port();
    let ledger = syslog_ledger(port, Some(MAX));
    let mut daemon = start_listening(&ledger);
    let p = port.to_string();

    // A traffic line padded past the limit at its end (its fields fit),
    // a line no parser reads, and a short line after them on the same
    // connection, through each framing.
    let padded = |n: u64| format!("{} {}", netfilter_message(n), "PAD=".repeat(120));
    let garbage = "z".repeat(700);
    let cases: [(&str, &[&str]); 3] = [
        ("octet-counted TCP", &["-T", "--octet-count"]),
        ("newline TCP", &["-T"]),
        ("UDP", &["-d"]),
    ];
    for (i, (_, how)) in cases.iter().enumerate() {
        let n = i as u64 * 10;
        let mut args = vec![
            "-n",
            "127.0.0.1",
            "-P",
            p.as_str(),
            "--rfc3164",
            "-t",
            "kernel",
            "-S",
            "4096",
        ];
        args.extend_from_slice(how);
        let input = format!("{}\n{garbage}\n{}\n", padded(n), netfilter_message(n + 1));
        logger_with_input(&args, Some(input.as_bytes()));
    }

    // Kept cut to the limit and flagged; the next message whole.
    wait_for_records(&ledger.db, 6, WAIT);
    let records = stored_records(&ledger.db);
    for (i, (how, _)) in cases.iter().enumerate() {
        let n = i as u64 * 10;
        let head_end = |raw: &str| raw.find("kernel: ").expect("tag") + "kernel: ".len();
        let cut = records
            .iter()
            .find(|r| r.raw.contains(&netfilter_message(n)[..60]))
            .unwrap_or_else(|| panic!("{how}: the padded line is missing: {records:#?}"));
        let sent = format!("{}{}", &cut.raw[..head_end(&cut.raw)], padded(n));
        assert_eq!(cut.raw.len(), MAX, "{how}: {cut:?}");
        assert_eq!(cut.raw, sent[..MAX], "{how}: the first {MAX} bytes as sent");
        assert!(cut.truncated, "{how}: not flagged: {cut:?}");
        let whole = record_of(&records, &netfilter_message(n + 1));
        assert!(!whole.truncated, "{how}: {whole:?}");
    }
    let unparsed = stored_unparsed(&ledger.db);
    assert_eq!(unparsed.len(), 3, "{unparsed:#?}");
    for u in &unparsed {
        assert_eq!(u.raw.len(), MAX, "{u:?}");
        assert!(u.raw.ends_with(&"z".repeat(100)), "{u:?}");
        assert!(u.truncated, "{u:?}");
    }
    daemon.stop();
}

/// At SIGTERM, a TCP sender still connected in the middle of a line
/// handed us its bytes: they are stored, flagged as cut. An empty UDP
/// datagram is no message.
#[test]
fn a_line_unfinished_at_sigterm_is_kept_flagged_and_empty_datagrams_are_not() {
    use std::io::Write;

    let port = daemon::free_port();
    let ledger = syslog_ledger(port, None);
    let mut daemon = start_listening(&ledger);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp socket");
    udp.send_to(b"", ("127.0.0.1", port))
        .expect("empty datagram");
    udp.send_to(b"\n", ("127.0.0.1", port))
        .expect("blank datagram");

    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let whole = format!(
        "<4>Mar 12 09:14:03 vpn-lyon kernel: {}\n",
        netfilter_message(1)
    );
    let unfinished = format!("<30>Mar 12 09:14:04 vpn-lyon openvpn[1873]: {J_MARTIN_UP}");
    tcp.write_all(whole.as_bytes()).expect("send");
    tcp.write_all(unfinished.as_bytes()).expect("send");
    tcp.flush().expect("flush");
    wait_for_records(&ledger.db, 1, WAIT);

    let (status, _) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", daemon.log());
    drop(tcp);
    let records = stored_records(&ledger.db);
    assert_eq!(records.len(), 2, "{records:#?}");
    let cut = record_of(&records, J_MARTIN_UP);
    assert!(cut.raw.ends_with(J_MARTIN_UP), "{cut:?}");
    assert!(cut.truncated, "{cut:?}");
    assert!(!record_of(&records, &netfilter_message(1)).truncated);
    assert_eq!(stored_unparsed(&ledger.db).len(), 0);
}

/// A Loki source pulling `{job="vpn"}` every second.
fn loki_ledger(url: &str) -> Ledger {
    ledger(&format!(
        "[[source]]\nname = \"central\"\nkind = \"loki\"\nurl = \"{url}\"\nquery = '{{job=\"vpn\"}}'\ninterval = \"1s\"\n"
    ))
}

/// An RFC 5424 line as Promtail would ship it from a gateway.
fn gateway_line(at: &str, app: &str, message: &str) -> String {
    format!("<30>1 {at} vpn-paris {app} 1873 - - {message}")
}

fn loki_cursor(db: &Path) -> i64 {
    query_i64(
        db,
        "SELECT offset FROM checkpoints WHERE fingerprint = 'loki:central'",
    )
}

#[test]
fn loki_lines_are_stored_once_and_the_cursor_survives_a_restart() {
    let loki = FakeLoki::start();
    let base = (Utc::now() - chrono::Duration::minutes(10))
        .timestamp_nanos_opt()
        .expect("time");
    let first = [
        gateway_line("2024-03-12T09:14:03+01:00", "openvpn", J_MARTIN_UP),
        gateway_line("2024-03-12T09:14:03+01:00", "openvpn", J_MARTIN_IP),
        gateway_line("2024-03-12T09:15:10+01:00", "kernel", &netfilter_message(1)),
        gateway_line("2024-03-12T09:16:42+01:00", "kernel", &netfilter_message(2)),
        gateway_line("2024-03-12T09:47:55+01:00", "openvpn", J_MARTIN_EXIT),
    ];
    // Two streams, interleaved in time: the source orders them.
    for (i, line) in first.iter().enumerate() {
        let stream = if line.contains(" kernel ") {
            "firewall"
        } else {
            "openvpn"
        };
        loki.push(base + i as i64 * 1_000_000_000, stream, line);
    }
    let ledger = loki_ledger(&loki.url());
    let mut daemon = Daemon::start(&ledger);

    wait_for_records(&ledger.db, 5, WAIT);
    let stored: Vec<String> = stored_records(&ledger.db)
        .into_iter()
        .map(|r| r.raw)
        .collect();
    assert_eq!(stored, first.to_vec(), "stored once each, oldest first");
    wait_until("the cursor at the last line", WAIT, || {
        let c = loki_cursor(&ledger.db);
        (c == base + 4_000_000_000)
            .then_some(())
            .ok_or(format!("cursor {c}"))
    });
    let sessions = wait_for_sessions(&ledger, &daemon, "j.martin's session", |s| s.len() == 1);
    let j = session(&sessions, "j.martin");
    assert_eq!(j["gateway"], "vpn-paris");
    assert_eq!(micros(&j["start"]), utc("2024-03-12T08:14:03Z"));
    assert_eq!(micros(&j["end"]), utc("2024-03-12T08:47:55Z"));
    assert_eq!(j["virtual_ip"], "10.8.0.6");
    let devices: Vec<&str> = j["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| d["ip"].as_str().expect("ip"))
        .collect();
    assert_eq!(devices, ["192.168.20.2", "192.168.20.3"]);

    // What the source asked: Loki's parameters, from an hour back.
    let requests = loki.requests();
    let asked = &requests[0];
    assert_eq!(asked["query"], "{job=\"vpn\"}");
    assert_eq!(asked["direction"], "forward");
    assert_eq!(asked["limit"], "1000");
    let start: i64 = asked["start"].parse().expect("start in ns");
    let end: i64 = asked["end"].parse().expect("end in ns");
    let hour = 3_600_000_000_000i64;
    assert!(
        start < base && start > end - hour - 120_000_000_000,
        "start {start}, end {end}"
    );
    daemon.stop();

    // While it is down, three more lines; after the restart it asks from
    // just past its cursor and stores only them.
    for i in 5..8 {
        let line = gateway_line("2024-03-12T10:00:00+01:00", "kernel", &netfilter_message(i));
        loki.push(base + i as i64 * 1_000_000_000, "firewall", &line);
    }
    let before = loki.requests().len();
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 8, WAIT);
    let resumed = &loki.requests()[before];
    assert_eq!(resumed["start"], (base + 4_000_000_001).to_string());
    let cursor = wait_until("the cursor at the newest line", WAIT, || {
        let c = loki_cursor(&ledger.db);
        (c == base + 7_000_000_000)
            .then_some(c)
            .ok_or(format!("cursor {c}"))
    });
    assert_eq!(cursor, base + 7_000_000_000);
    daemon.stop();
}

#[test]
fn loki_pages_of_a_thousand_lines_never_cut_a_nanosecond() {
    const LINES: usize = 2_300;
    let loki = FakeLoki::start();
    let base = (Utc::now() - chrono::Duration::minutes(20))
        .timestamp_nanos_opt()
        .expect("time");
    // Lines 997 to 1002 share one nanosecond, across the first page's end.
    for i in 0..LINES {
        let ns = if (997..=1002).contains(&i) {
            997
        } else {
            i as i64
        };
        let line = gateway_line(
            "2024-03-12T09:15:10+01:00",
            "kernel",
            &netfilter_message(i as u64),
        );
        loki.push(base + ns * 1_000, if i % 2 == 0 { "a" } else { "b" }, &line);
    }
    let ledger = loki_ledger(&loki.url());
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, LINES as i64, WAIT);
    assert_eq!(
        query_i64(&ledger.db, "SELECT count(*) FROM traffic"),
        LINES as i64
    );
    wait_until("the cursor at the last line", WAIT, || {
        let c = loki_cursor(&ledger.db);
        (c == base + (LINES as i64 - 1) * 1_000)
            .then_some(())
            .ok_or(format!("cursor {c}"))
    });
    daemon.stop();
}

#[test]
fn loki_a_line_shipped_late_behind_a_newer_one_is_still_stored() {
    // A line of one stream reaches Loki at once; an older line of another
    // stream a couple of seconds later, as shippers batch per stream.
    let loki = FakeLoki::start();
    let ledger = loki_ledger(&loki.url());
    let mut daemon = Daemon::start(&ledger);
    loki.wait_for_requests(1, WAIT);
    let now = Utc::now().timestamp_nanos_opt().expect("time");
    let newer = gateway_line("2024-03-12T09:15:11+01:00", "kernel", &netfilter_message(2));
    loki.push(now, "firewall-a", &newer);
    let asked = loki.requests().len();
    loki.wait_for_requests(asked + 2, WAIT);
    let older = gateway_line("2024-03-12T09:15:10+01:00", "kernel", &netfilter_message(1));
    loki.push(now - 1_000_000_000, "firewall-b", &older);

    wait_for_records(&ledger.db, 2, WAIT);
    let stored: Vec<String> = stored_records(&ledger.db)
        .into_iter()
        .map(|r| r.raw)
        .collect();
    assert_eq!(stored, [older, newer]);
    daemon.stop();
}

#[test]
fn loki_down_then_failing_is_retried_with_backoff_and_lines_arrive() {
    // Nothing listens yet: the source logs each failure and waits longer.
    let port = daemon::free_port();
    let ledger = loki_ledger(&format!("http://127.0.0.1:{port}"));
    let mut daemon = Daemon::start(&ledger);
    daemon.wait_for_log("Loki request failed; retrying", WAIT);

    // Loki comes up but answers 500 once more, then works.
    let loki = FakeLoki::start_on(port);
    loki.fail_next(1);
    let base = (Utc::now() - chrono::Duration::minutes(5))
        .timestamp_nanos_opt()
        .expect("time");
    for i in 0..3 {
        let line = gateway_line("2024-03-12T09:15:10+01:00", "kernel", &netfilter_message(i));
        loki.push(base + i as i64, "firewall", &line);
    }
    wait_for_records(&ledger.db, 3, WAIT);
    let log = daemon.log();
    assert!(log.contains("retry_in=1s"), "first wait 1 s:\n{log}");
    assert!(log.contains("retry_in=2s"), "then 2 s:\n{log}");
    assert!(
        log.contains("Loki answered 500 Internal Server Error: rpc error: code = Unavailable desc = no healthy ingester"),
        "the HTTP error and Loki's reason are logged:\n{log}"
    );
    daemon.wait_for_log("Loki answers again", WAIT);
    daemon.stop();
}

/// An OpenVPN status file (version 2, or 3 with `tabs`) at `time`
/// (Europe/Paris) listing `clients`: (name, real address, virtual
/// address, received, sent, connected since).
fn openvpn_status(
    tabs: bool,
    time: &str,
    clients: &[(&str, &str, &str, u64, u64, &str)],
) -> String {
    let epoch = |local: &str| {
        chrono_tz::Europe::Paris
            .from_local_datetime(
                &NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").expect("time"),
            )
            .unwrap()
            .timestamp()
    };
    let mut lines = vec![
        "TITLE,OpenVPN 2.6.9 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]".to_owned(),
        format!("TIME,{time},{}", epoch(time)),
        "HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher".to_owned(),
    ];
    for (i, (name, real, virt, rx, tx, since)) in clients.iter().enumerate() {
        lines.push(format!(
            "CLIENT_LIST,{name},{real},{virt},,{rx},{tx},{since},{},{name},{i},{i},AES-256-GCM",
            epoch(since)
        ));
    }
    lines.push(
        "HEADER,ROUTING_TABLE,Virtual Address,Common Name,Real Address,Last Ref,Last Ref (time_t)"
            .to_owned(),
    );
    for (name, real, virt, _, _, _) in clients {
        lines.push(format!(
            "ROUTING_TABLE,{virt},{name},{real},{time},{}",
            epoch(time)
        ));
    }
    lines.push("GLOBAL_STATS,Max bcast/mcast queue length,0".to_owned());
    lines.push("END".to_owned());
    let text = lines.join("\n") + "\n";
    if tabs {
        text.replace(',', "\t")
    } else {
        text
    }
}

const T_MOREAU: (&str, &str, &str, u64, u64, &str) = (
    "t.moreau",
    "192.0.2.88:60344",
    "10.9.0.2",
    3_145_728,
    15_728_640,
    "2024-06-18 09:41:58",
);

#[test]
fn status_file_sessions_appear_and_update_as_the_file_changes() {
    let probe = ledger("");
    let status = probe.dir.path().join("openvpn-status.log");
    let ledger = ledger(&format!(
        "[[source]]\nname = \"annecy-status\"\nkind = \"status\"\npath = \"{}\"\ngateway = \"vpn-annecy\"\ntimezone = \"Europe/Paris\"\ninterval = \"1s\"\n",
        status.display()
    ));

    // The corpus's version 2 file: two clients connected.
    fs::copy(support::fixture("corpus/openvpn/status-v2.log"), &status).expect("copy");
    let mut daemon = Daemon::start(&ledger);
    let sessions = wait_for_sessions(&ledger, &daemon, "two open sessions", |s| s.len() == 2);
    let t = session(&sessions, "t.moreau");
    assert_eq!(micros(&t["start"]), utc("2024-06-18T07:41:58Z"));
    assert!(t["end"].is_null(), "{t}");
    assert_eq!(
        (t["bytes_in"].as_i64(), t["bytes_out"].as_i64()),
        (Some(3_145_728), Some(15_728_640))
    );
    assert_eq!(t["gateway"], "vpn-annecy");
    assert_eq!(t["virtual_ip"], "10.9.0.2");
    assert_eq!(t["remote_ip"], "192.0.2.88");
    let a = session(&sessions, "a.petit");
    assert_eq!(micros(&a["start"]), utc("2024-06-18T08:27:13Z"));
    assert_eq!(
        (a["bytes_in"].as_i64(), a["bytes_out"].as_i64()),
        (Some(51_200), Some(204_800))
    );

    // A minute later, in version 3: t.moreau has left, a.petit moved more.
    let a_petit = (
        "a.petit",
        "198.51.100.140:1194",
        "10.9.0.3",
        61_200,
        254_800,
        "2024-06-18 10:27:13",
    );
    write_replacing(
        &status,
        &openvpn_status(true, "2024-06-18 10:31:00", &[a_petit]),
    );
    let sessions = wait_for_sessions(&ledger, &daemon, "t.moreau ended, a.petit's bytes", |s| {
        s.len() == 2
            && !session(s, "t.moreau")["end"].is_null()
            && session(s, "a.petit")["bytes_in"] == 61_200
    });
    let t = session(&sessions, "t.moreau");
    assert_eq!(micros(&t["end"]), utc("2024-06-18T08:31:00Z"), "{t}");
    assert_eq!(t["end_inferred"], true);
    assert_eq!(t["end_reason"], "left_status");
    assert_eq!(t["bytes_in"], 3_145_728, "the last bytes seen");
    let a = session(&sessions, "a.petit");
    assert!(a["end"].is_null(), "{a}");
    assert_eq!(a["bytes_out"], 254_800);
    assert_eq!(micros(&a["start"]), utc("2024-06-18T08:27:13Z"));
    daemon.stop();
}

/// Writes a status file as OpenVPN does: in place, truncated first.
fn write_replacing(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[test]
fn a_status_file_caught_half_written_is_not_read_as_clients_leaving() {
    let probe = ledger("");
    let status = probe.dir.path().join("openvpn-status.log");
    let ledger = ledger(&format!(
        "[[source]]\nname = \"annecy-status\"\nkind = \"status\"\npath = \"{}\"\ngateway = \"vpn-annecy\"\ntimezone = \"Europe/Paris\"\ninterval = \"1s\"\n",
        status.display()
    ));
    let a_petit = (
        "a.petit",
        "198.51.100.140:1194",
        "10.9.0.3",
        51_200,
        204_800,
        "2024-06-18 10:27:13",
    );
    write_replacing(
        &status,
        &openvpn_status(false, "2024-06-18 10:30:00", &[T_MOREAU, a_petit]),
    );
    let mut daemon = Daemon::start(&ledger);
    wait_for_sessions(&ledger, &daemon, "two open sessions", |s| s.len() == 2);

    // OpenVPN rewrites the file in place: a poll may read its first part
    // only. That part, which lists a.petit alone, must not end t.moreau.
    let whole = openvpn_status(false, "2024-06-18 10:31:00", &[a_petit, T_MOREAU]);
    let cut = whole.find("CLIENT_LIST,t.moreau").expect("t.moreau's line");
    write_replacing(&status, &whole[..cut]);
    // Three polls (one a second) and a rebuild find it so.
    std::thread::sleep(Duration::from_millis(3500));
    let snapshots = query_i64(&ledger.db, "SELECT count(*) FROM checkpoints");
    let sessions = ledger.sessions();
    assert_eq!(
        snapshots, 1,
        "the part was stored as a snapshot: {sessions:#?}"
    );
    for s in &sessions {
        assert!(s["end"].is_null(), "ended by a half-written file: {s}");
    }
    daemon.wait_for_log("status file incomplete", WAIT);
    write_replacing(&status, &whole);
    wait_until("the complete file read", WAIT, || {
        let n = query_i64(&ledger.db, "SELECT count(*) FROM checkpoints");
        (n == 2).then_some(()).ok_or(format!("{n} snapshots"))
    });
    std::thread::sleep(Duration::from_millis(1500));
    let sessions = ledger.sessions();
    assert_eq!(sessions.len(), 2, "{sessions:#?}");
    for s in &sessions {
        assert!(s["end"].is_null(), "still connected: {s}");
    }
    daemon.stop();
}

/// `wg show all dump` as printed for one interface and one peer whose
/// latest handshake is `handshake` (s since the epoch).
fn wg_dump(handshake: i64, rx: u64, tx: u64) -> String {
    format!(
        "wg0\tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\t51820\toff\n\
         wg0\tJmartinFakeLaptopKey000000000000000000000Qw=\t(none)\t198.51.100.77:51820\t10.20.0.2/32\t{handshake}\t{rx}\t{tx}\toff\n"
    )
}

#[test]
fn a_polled_wireguard_dump_command_opens_and_updates_a_session() {
    let probe = ledger("");
    let dump = probe.dir.path().join("wg-dump.txt");
    let ledger = ledger(&format!(
        "[[source]]\nname = \"wg-paris\"\nkind = \"status\"\ncommand = [\"cat\", \"{}\"]\ngateway = \"vpn-wg\"\ninterval = \"1s\"\n",
        dump.display()
    ));
    let first = Utc::now().timestamp() - 100;
    fs::write(&dump, wg_dump(first, 124_000, 380_000)).expect("write dump");
    let mut daemon = Daemon::start(&ledger);
    let key = "JmartinFakeLaptopKey000000000000000000000Qw=";
    let sessions = wait_for_sessions(&ledger, &daemon, "the peer's session", |s| s.len() == 1);
    let s = session(&sessions, key);
    assert_eq!(micros(&s["start"]), first * 1_000_000);
    assert!(s["end"].is_null(), "handshake 100 s ago: open: {s}");
    assert_eq!(s["tunnel"], "wg0");
    assert_eq!(s["gateway"], "vpn-wg");
    assert_eq!(s["virtual_ip"], "10.20.0.2");
    assert_eq!(s["remote_ip"], "198.51.100.77");
    assert_eq!(
        (s["bytes_in"].as_i64(), s["bytes_out"].as_i64()),
        (Some(124_000), Some(380_000))
    );
    let id = s["id"].clone();

    // The handshake renewed, more traffic: the same session, updated.
    let renewed = Utc::now().timestamp() - 5;
    fs::write(&dump, wg_dump(renewed, 2_200_000, 9_100_000)).expect("write dump");
    let sessions = wait_for_sessions(&ledger, &daemon, "the peer's bytes updated", |s| {
        s.len() == 1 && s[0]["bytes_in"] == 2_200_000
    });
    let s = &sessions[0];
    assert_eq!(s["id"], id, "the same session");
    assert_eq!(micros(&s["start"]), first * 1_000_000);
    assert!(s["end"].is_null(), "{s}");
    assert_eq!(s["bytes_out"], 9_100_000);
    daemon.stop();
}

#[test]
fn failing_sources_are_retried_and_do_not_stop_the_others() {
    // The syslog TCP port is taken (its UDP port is free); Loki does not
    // answer; the file works.
    let port = daemon::free_port();
    let taken = TcpListener::bind(("127.0.0.1", port)).expect("take the port");
    let dead = daemon::free_port();
    let probe = ledger("");
    let logs = probe.dir.path().join("fw.log");
    fs::write(&logs, "").expect("create the log");
    let ledger = ledger(&format!(
        "[[source]]\nname = \"gateways\"\nkind = \"syslog\"\nudp = \"127.0.0.1:{port}\"\ntcp = \"127.0.0.1:{port}\"\n\n\
         [[source]]\nname = \"central\"\nkind = \"loki\"\nurl = \"http://127.0.0.1:{dead}\"\nquery = '{{job=\"vpn\"}}'\ninterval = \"1s\"\n\n\
         [[source]]\nname = \"fw-file\"\nkind = \"file\"\npath = \"{}\"\n",
        logs.display()
    ));
    let mut daemon = Daemon::start(&ledger);

    // The file source stores while the two others fail and are retried.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(&logs)
        .expect("open");
    for n in 0..20 {
        use std::io::Write;
        file.write_all(daemon::netfilter_line(n).as_bytes())
            .expect("write");
    }
    wait_for_records(&ledger.db, 20, WAIT);
    daemon.wait_for_log_count("Loki request failed; retrying", 2, WAIT);
    daemon.wait_for_log_count("source failed; starting it again later", 2, WAIT);
    let log = daemon.log();
    let syslog_failure = log
        .lines()
        .find(|l| l.contains("source failed") && l.contains("source=gateways"))
        .unwrap_or_else(|| panic!("the syslog failure is not logged:\n{log}"));
    assert!(
        syslog_failure.contains(&format!("tcp 127.0.0.1:{port}")),
        "{syslog_failure}"
    );
    assert!(syslog_failure.contains("in use"), "{syslog_failure}");

    // The port freed, both listeners start at the next retry: the UDP
    // socket bound by a failed try was not left open.
    drop(taken);
    daemon.wait_for_log("listening for syslog over TCP", WAIT);
    assert_eq!(
        daemon.log_count("listening for syslog over UDP"),
        1,
        "{}",
        daemon.log()
    );
    let p = port.to_string();
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        p.as_str(),
        "-d",
        "--rfc3164",
        "-t",
        "kernel",
        &netfilter_message(101),
    ]);
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        p.as_str(),
        "-T",
        "--rfc3164",
        "-t",
        "kernel",
        &netfilter_message(100),
    ]);
    for n in 20..25 {
        use std::io::Write;
        file.write_all(daemon::netfilter_line(n).as_bytes())
            .expect("write");
    }
    wait_for_records(&ledger.db, 27, WAIT);
    daemon.stop();
}

#[test]
fn syslog_messages_sent_before_sigterm_are_all_stored() {
    const TCP_LINES: u64 = 3_000;
    const UDP_LINES: u64 = 500;
    let port = daemon::free_port();
    let ledger = syslog_ledger(port, None);
    let mut daemon = start_listening(&ledger);

    // The senders are done (their bytes are in our sockets) when SIGTERM
    // comes: the daemon reads what it was sent, commits it, and exits 0.
    let p = port.to_string();
    let tcp: String = (0..TCP_LINES)
        .map(|n| netfilter_message(n) + "\n")
        .collect();
    let args = [
        "-n",
        "127.0.0.1",
        "-P",
        p.as_str(),
        "-T",
        "--rfc3164",
        "-t",
        "kernel",
    ];
    logger_with_input(&args, Some(tcp.as_bytes()));
    let udp: String = (TCP_LINES..TCP_LINES + UDP_LINES)
        .map(|n| netfilter_message(n) + "\n")
        .collect();
    let args = [
        "-n",
        "127.0.0.1",
        "-P",
        p.as_str(),
        "-d",
        "--rfc3164",
        "-t",
        "kernel",
    ];
    logger_with_input(&args, Some(udp.as_bytes()));
    daemon.stop();

    let expected = (TCP_LINES + UDP_LINES) as i64;
    let counts = daemon::record_counts(&ledger.db);
    assert_eq!(
        counts.records,
        expected,
        "{counts:?}\n----- log -----\n{}",
        daemon.log()
    );
    assert_eq!(counts.distinct, expected);
}
