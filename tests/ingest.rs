//! Ingest end to end: idempotence, growth, unparsed lines, and the
//! sessionizer's rules on small, real-looking logs.

mod support;

use std::io::Write;

use serde_json::{json, Value};
use support::{fixture, path_str, Ledger};

/// Writes lines to a file in the ledger's folder.
fn write_log(ledger: &Ledger, name: &str, lines: &[&str]) -> String {
    let path = ledger.dir.path().join(name);
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path_str(&path).to_owned()
}

fn tables(ledger: &Ledger) -> Vec<i64> {
    [
        "records",
        "events",
        "traffic",
        "unparsed",
        "checkpoints",
        "sessions",
    ]
    .iter()
    .map(|t| ledger.count(t))
    .collect()
}

#[test]
fn ingesting_the_same_file_twice_adds_nothing() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let args = ["ingest", "--year", "2024", path_str(&log)];
    ledger.ok(&args);
    let sessions = ledger.sessions();
    let counts = tables(&ledger);
    assert_eq!(counts, vec![17, 11, 6, 0, 1, 2]);

    let second = ledger.ok(&args);
    assert!(second.contains("0 new line(s)"), "{second}");
    assert!(second.contains("1 file(s) had nothing new"), "{second}");
    assert_eq!(ledger.sessions(), sessions);
    assert_eq!(tables(&ledger), counts);
}

#[test]
fn a_grown_file_is_read_from_where_it_stopped_and_closes_open_sessions() {
    let ledger = Ledger::new();
    let full = std::fs::read_to_string(fixture("corpus/openvpn/syslog-rfc3164.log")).unwrap();
    let lines: Vec<&str> = full.lines().collect();
    let path = ledger.dir.path().join("openvpn.log");

    // Up to s.bernard's traffic: both sessions open.
    let first_part: String = lines[..27].iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, &first_part).unwrap();
    ledger.ok(&["ingest", "--year", "2024", path_str(&path)]);
    let open = ledger.sessions();
    assert_eq!(open.len(), 2);
    assert!(open.iter().all(|s| s["end"].is_null()), "{open:#?}");

    // The rest arrives: the same sessions, now closed, nothing counted twice.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    for l in &lines[27..] {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let out = ledger.ok(&["ingest", "--year", "2024", path_str(&path)]);
    assert!(
        out.contains(&format!("{} new line(s)", lines.len() - 27)),
        "{out}"
    );
    let closed = ledger.sessions();
    assert_eq!(closed.len(), 2);
    assert_eq!(
        closed[0]["id"], open[0]["id"],
        "a session keeps its id when it closes"
    );
    assert_eq!(closed[0]["end"], "2024-03-12T08:47:55Z");
    assert_eq!(closed[1]["end"], "2024-03-12T09:05:31Z");
    assert_eq!(tables(&ledger), vec![17, 11, 6, 0, 1, 2]);
}

#[test]
fn a_partial_last_line_waits_for_its_newline() {
    let ledger = Ledger::new();
    let path = ledger.dir.path().join("partial.log");
    let start = "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734\n";
    let end = "Mar 12 09:47:55 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting";
    std::fs::write(&path, format!("{start}{}", &end[..40])).unwrap();
    let out = ledger.ok(&["ingest", "--year", "2024", path_str(&path)]);
    assert!(
        out.contains("1 last line(s) without a newline left for a later read"),
        "{out}"
    );
    assert!(ledger.sessions()[0]["end"].is_null());

    std::fs::write(&path, format!("{start}{end}\n")).unwrap();
    ledger.ok(&["ingest", "--year", "2024", path_str(&path)]);
    let s = ledger.sessions();
    assert_eq!(s[0]["end"], "2024-03-12T08:47:55Z");
    assert_eq!(ledger.count("unparsed"), 0);
}

#[test]
fn complete_reads_a_last_line_without_its_newline() {
    // A rotated file whose last line never got its newline, and a file
    // of one such line.
    let ledger = Ledger::new();
    let rotated = ledger.dir.path().join("openvpn.log.1");
    let start = "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734\n";
    let end = "Mar 12 09:47:55 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting";
    std::fs::write(&rotated, format!("{start}{end}")).unwrap();
    let single = ledger.dir.path().join("single.log");
    std::fs::write(&single, "Mar 12 10:02:00 vpn-lyon openvpn[1873]: 198.51.100.40:40000 [s.bernard] Peer Connection Initiated with [AF_INET]198.51.100.40:40000").unwrap();
    let out = ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        path_str(&rotated),
        path_str(&single),
    ]);
    assert!(
        out.contains(
            "2 last line(s) without a newline left for a later read (--complete reads them"
        ),
        "{out}"
    );
    assert_eq!(ledger.count("records"), 1);
    let out = ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        "--complete",
        path_str(&rotated),
        path_str(&single),
    ]);
    assert!(out.contains("2 new line(s)"), "{out}");
    assert!(!out.contains("without a newline"), "{out}");
    let s = ledger.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0]["user"], "j.martin");
    assert_eq!(s[0]["end"], "2024-03-12T08:47:55Z");
    assert_eq!(s[1]["user"], "s.bernard");
    assert_eq!(s[1]["start"], "2024-03-12T09:02:00Z");
    // Read to their end: nothing more the next time.
    let out = ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        "--complete",
        path_str(&rotated),
        path_str(&single),
    ]);
    assert!(out.contains("0 new line(s)"), "{out}");
    assert_eq!(ledger.count("records"), 3);

    // The one-line file was not finished after all: its newline ends the
    // line read before, and the next line is line 2, nothing unparsed.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&single)
        .unwrap();
    write!(f, "\nMar 12 10:30:00 vpn-lyon openvpn[1873]: s.bernard/198.51.100.40:40000 SIGTERM[soft,remote-exit] received, client-instance exiting\n").unwrap();
    drop(f);
    let out = ledger.ok(&["ingest", "--year", "2024", path_str(&single)]);
    assert!(out.contains("1 new line(s)"), "{out}");
    assert_eq!(ledger.count("unparsed"), 0);
    assert_eq!(ledger.count("records"), 4);
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let line: i64 = conn
        .query_row(
            "SELECT line FROM record_lines WHERE CAST(raw AS TEXT) LIKE '%SIGTERM%' AND CAST(raw AS TEXT) LIKE '%s.bernard%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(line, 2);
    assert_eq!(ledger.sessions()[1]["end"], "2024-03-12T09:30:00Z");
}

#[test]
fn lines_no_parser_understands_are_kept_and_counted() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "mixed.log",
        &[
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734",
            "this is not a log line",
            "Mar 12 09:1x:03 vpn-lyon openvpn[1873]: broken time",
            "Mar 12 09:20:00 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 MULTI_sva: pool returned IPv4=10.8.0.999, IPv6=(Not enabled)",
        ],
    );
    let out = ledger.ok(&["ingest", "--year", "2024", &log]);
    assert!(out.contains("3 unparsed line(s) kept"), "{out}");
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT line, CAST(raw AS TEXT), reason FROM unparsed ORDER BY line")
        .unwrap();
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows[0].0, 2);
    assert_eq!(rows[0].1, "this is not a log line");
    assert_eq!(rows[0].2, "expected a syslog header, a log timestamp or a known log format at column 1, found \"this is not a log line\"");
    assert_eq!(rows[1].0, 3);
    assert_eq!(
        rows[1].2,
        "expected a time hh:mm:ss at column 8, found \"09:1x:03 vpn-lyon openvp\""
    );
    assert_eq!(rows[2].0, 4);
    assert_eq!(
        rows[2].2,
        "expected an IP address after IPv4= or IPv6= at column 100, found \"10.8.0.999\""
    );
}

/// Session lines whose client address is damaged were read as chatter:
/// the exit was lost and the session stayed open with nothing to show why.
#[test]
fn damaged_openvpn_session_lines_are_kept_as_unparsed() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "damaged.log",
        &[
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 192.0.2.40:6000 [dave] Peer Connection Initiated with [AF_INET]192.0.2.40:6000",
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 192.0.2.41:6001 [erin] Peer Connection Initiated with [AF_INET]192.0.2.401:6001",
            "Mar 12 09:30:00 vpn-lyon openvpn[1873]: dave/192.0.2.40:99999 SIGTERM[soft,remote-exit] received, client-instance exiting",
            "Mar 12 09:30:00 vpn-lyon openvpn[1873]: dave/192.0.2.40:6000x CC-EEN exit message received by peer",
            "Mar 12 09:30:01 vpn-lyon openvpn[1873]: dave/192.0.2.40:6000x TLS: soft reset sec=3600/3600 bytes=0/-1 pkts=0/0",
        ],
    );
    let out = ledger.ok(&["ingest", "--year", "2024", &log]);
    assert!(
        out.contains("5 new line(s), 1 record(s) with events (0 traffic), 3 unparsed line(s) kept, 1 read without a VPN fact (not stored)"),
        "{out}"
    );
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT line, reason FROM unparsed ORDER BY line")
        .unwrap();
    let rows: Vec<(i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                2,
                "expected an IPv4 address part from 0 to 255 at column 112, found \"401\""
                    .to_owned()
            ),
            (
                3,
                "expected a port number from 0 to 65535 at column 57, found \"99999\"".to_owned()
            ),
            (
                4,
                "expected a port number from 0 to 65535 at column 57, found \"6000x\"".to_owned()
            ),
        ]
    );
}

#[test]
fn two_undef_clients_stay_two_sessions_named_by_their_usernames() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "undef.log",
        &[
            "2024-05-02 10:00:01 198.51.100.7:40001 TLS: Username/Password authentication succeeded for username 'a.petit'",
            "2024-05-02 10:00:01 198.51.100.7:40001 [UNDEF] Peer Connection Initiated with [AF_INET]198.51.100.7:40001",
            "2024-05-02 10:00:01 UNDEF/198.51.100.7:40001 MULTI_sva: pool returned IPv4=10.9.0.5, IPv6=(Not enabled)",
            "2024-05-02 10:00:09 198.51.100.7:40002 TLS: Username/Password authentication succeeded for username 'l.roux'",
            "2024-05-02 10:00:09 198.51.100.7:40002 [UNDEF] Peer Connection Initiated with [AF_INET]198.51.100.7:40002",
            "2024-05-02 10:00:09 UNDEF/198.51.100.7:40002 MULTI_sva: pool returned IPv4=10.9.0.6, IPv6=(Not enabled)",
            "2024-05-02 10:30:00 UNDEF/198.51.100.7:40001 SIGTERM[soft,remote-exit] received, client-instance exiting",
        ],
    );
    ledger.ok(&["ingest", "--source", "vpn-annecy", "--tz", "UTC", &log]);
    let s = ledger.sessions();
    assert_eq!(s.len(), 2, "{s:#?}");
    assert_eq!(
        (s[0]["user"].as_str(), s[0]["virtual_ip"].as_str()),
        (Some("a.petit"), Some("10.9.0.5"))
    );
    assert_eq!(s[0]["end"], "2024-05-02T10:30:00Z");
    assert_eq!(
        (s[1]["user"].as_str(), s[1]["virtual_ip"].as_str()),
        (Some("l.roux"), Some("10.9.0.6"))
    );
    assert!(s[1]["end"].is_null());
    assert_eq!(s[0]["remote_port"], 40001);
    assert_eq!(s[1]["remote_port"], 40002);
}

#[test]
fn restart_replacement_and_reconnection() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "restart.log",
        &[
            "2024-05-02 10:00:00 198.51.100.23:50001 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:50001",
            // The same CN connects again without --duplicate-cn: the first is dropped.
            "2024-05-02 10:10:00 198.51.100.23:50002 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:50002",
            "2024-05-02 10:10:00 j.martin/198.51.100.23:50002 MULTI: new connection by client 'j.martin' will cause previous active sessions by this client to be dropped.  Remember to use the --duplicate-cn option if you want multiple connections by the same Common Name.",
            "2024-05-02 10:20:00 203.0.113.45:40112 [s.bernard] Peer Connection Initiated with [AF_INET]203.0.113.45:40112",
            // The server stops: every open session ends, by inference.
            "2024-05-02 10:40:00 SIGTERM[hard,] received, process exiting",
            // j.martin comes back 30 s after the restart: it continues the visit.
            "2024-05-02 10:40:30 198.51.100.23:50003 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:50003",
        ],
    );
    ledger.ok(&["ingest", "--source", "vpn-annecy", "--tz", "UTC", &log]);
    let s = ledger.sessions();
    assert_eq!(s.len(), 4, "{s:#?}");
    assert_eq!(s[0]["end"], "2024-05-02T10:10:00Z");
    assert_eq!(s[0]["end_reason"], "replaced");
    assert_eq!(s[0]["end_inferred"], false);
    assert_eq!(s[1]["end"], "2024-05-02T10:40:00Z");
    assert_eq!(s[1]["end_reason"], "gateway_restart");
    assert_eq!(s[1]["end_inferred"], true);
    assert_eq!(
        s[1]["end_detail"],
        "SIGTERM[hard,] received, process exiting"
    );
    assert_eq!(s[2]["user"], "s.bernard");
    assert_eq!(s[2]["end_reason"], "gateway_restart");
    assert_eq!(s[3]["user"], "j.martin");
    assert!(s[3]["end"].is_null());
    assert_eq!(s[3]["continues"], s[1]["id"]);
    assert_eq!(
        s[1]["continues"], s[0]["id"],
        "the replacing connection resumes the visit"
    );
    assert!(s[2]["continues"].is_null());
}

#[test]
fn dropped_traffic_and_reused_addresses_are_not_devices() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "devices.log",
        &[
            "Mar 12 09:00:00 vpn-lyon openvpn[1]: 198.51.100.23:1 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:1",
            "Mar 12 09:00:00 vpn-lyon openvpn[1]: j.martin/198.51.100.23:1 MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)",
            "Mar 12 09:01:00 vpn-lyon kernel: [1.0] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10 LEN=60 PROTO=TCP SPT=1 DPT=443",
            "Mar 12 09:02:00 vpn-lyon kernel: [2.0] VPN-DROP IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.99 LEN=60 PROTO=TCP SPT=1 DPT=445",
            "Mar 12 09:03:00 other-gw kernel: [3.0] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.77 LEN=60 PROTO=TCP SPT=1 DPT=80",
            "Mar 12 09:04:00 vpn-lyon kernel: [4.0] VPN-FWD IN=tun0 OUT=eth0 MAC= SRC=10.8.0.6 DST=192.0.2.44 LEN=60 PROTO=TCP SPT=1 DPT=443",
            "Mar 12 09:05:00 vpn-lyon kernel: [5.0] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10 LEN=60 PROTO=UDP SPT=1 DPT=161",
            "Mar 12 09:10:00 vpn-lyon openvpn[1]: j.martin/198.51.100.23:1 SIGTERM[soft,remote-exit] received, client-instance exiting",
            // The pool gives 10.8.0.6 to the next client.
            "Mar 12 09:20:00 vpn-lyon openvpn[1]: 203.0.113.45:2 [s.bernard] Peer Connection Initiated with [AF_INET]203.0.113.45:2",
            "Mar 12 09:20:00 vpn-lyon openvpn[1]: s.bernard/203.0.113.45:2 MULTI_sva: pool returned IPv4=10.8.0.6, IPv6=(Not enabled)",
            "Mar 12 09:21:00 vpn-lyon kernel: [6.0] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.30.5 LEN=60 PROTO=TCP SPT=1 DPT=22",
        ],
    );
    ledger.ok(&["ingest", "--year", "2024", &log]);
    let s = ledger.sessions();
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[0]["devices"],
        json!([{"ip": "192.168.20.10", "name": null, "ports": ["tcp/443", "udp/161"]}])
    );
    assert_eq!(s[0]["public_destinations"], 1);
    assert_eq!(
        s[1]["devices"],
        json!([{"ip": "192.168.30.5", "name": null, "ports": ["tcp/22"]}])
    );
}

#[test]
fn status_file_and_log_of_one_connection_make_one_session() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/file-log-iso.log");
    let status = fixture("corpus/openvpn/status-v2.log");
    ledger.ok(&[
        "ingest",
        "--source",
        "vpn-annecy",
        "--tz",
        "Europe/Paris",
        path_str(&status),
    ]);
    ledger.ok(&[
        "ingest",
        "--source",
        "vpn-annecy",
        "--tz",
        "Europe/Paris",
        path_str(&log),
    ]);
    let s = ledger.sessions();
    assert_eq!(s.len(), 2, "{s:#?}");
    let t = s.iter().find(|x| x["user"] == "t.moreau").unwrap();
    assert_eq!(t["start"], "2024-06-18T07:41:58Z");
    assert_eq!(t["end"], "2024-06-18T09:12:35Z");
    assert_eq!(t["end_reason"], "user_exit");
    assert_eq!(
        (t["bytes_in"].as_u64(), t["bytes_out"].as_u64()),
        (Some(3_145_728), Some(15_728_640))
    );
    let a = s.iter().find(|x| x["user"] == "a.petit").unwrap();
    assert!(a["end"].is_null());
}

#[test]
fn a_status_snapshot_that_no_longer_lists_a_client_ends_it() {
    let ledger = Ledger::new();
    let first = write_log(
        &ledger,
        "status-1.log",
        &[
            "TITLE,OpenVPN 2.6.9",
            "TIME,2024-06-18 10:30:00,1718699400",
            "HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher",
            "CLIENT_LIST,a.petit,198.51.100.140:1194,10.9.0.3,,51200,204800,2024-06-18 10:27:13,1718699233,a.petit,5,1,AES-256-GCM",
            "END",
        ],
    );
    let second = write_log(
        &ledger,
        "status-2.log",
        &[
            "TITLE,OpenVPN 2.6.9",
            "TIME,2024-06-18 10:31:00,1718699460",
            "HEADER,CLIENT_LIST,Common Name,Real Address,Virtual Address,Virtual IPv6 Address,Bytes Received,Bytes Sent,Connected Since,Connected Since (time_t),Username,Client ID,Peer ID,Data Channel Cipher",
            "END",
        ],
    );
    ledger.ok(&["ingest", "--source", "vpn-annecy", &first, &second]);
    let s = ledger.sessions();
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["end"], "2024-06-18T08:31:00Z");
    assert_eq!(s[0]["end_reason"], "left_status");
    assert_eq!(s[0]["end_inferred"], true);
}

#[test]
fn a_name_in_windows_1252_stays_the_same_person() {
    let ledger = Ledger::new();
    let path = ledger.dir.path().join("latin.log");
    let mut bytes = b"Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [r.lef".to_vec();
    bytes.push(0xe8);
    bytes.extend_from_slice(b"vre] Peer Connection Initiated with [AF_INET]198.51.100.23:51734\n");
    std::fs::write(&path, bytes).unwrap();
    ledger.ok(&["ingest", "--year", "2024", path_str(&path)]);
    assert_eq!(ledger.sessions()[0]["user"], "r.lefèvre");
}

#[test]
fn without_year_the_modification_time_dates_the_last_line() {
    let ledger = Ledger::new();
    // December then January: the file ends in January of the mtime's year.
    let log = write_log(
        &ledger,
        "newyear.log",
        &[
            "Dec 31 23:59:00 vpn-lyon openvpn[1]: 198.51.100.23:1 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:1",
            "Jan  1 00:10:00 vpn-lyon openvpn[1]: j.martin/198.51.100.23:1 SIGTERM[soft,remote-exit] received, client-instance exiting",
        ],
    );
    let file = std::fs::File::options().write(true).open(&log).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_736_000_000); // 2025-01-04
    file.set_modified(mtime).unwrap();
    drop(file);
    ledger.ok(&["ingest", "--tz", "UTC", &log]);
    let s = ledger.sessions();
    assert_eq!(s[0]["start"], "2024-12-31T23:59:00Z");
    assert_eq!(s[0]["end"], "2025-01-01T00:10:00Z");
}

#[test]
fn a_late_line_of_the_old_year_keeps_both_years_right() {
    // A central syslog file writes lines as they arrive: alice's exit,
    // stamped a second before midnight, comes after bob's connection.
    let lines = [
        "Dec 31 23:59:58 vpn-lyon openvpn[10]: 198.51.100.20:5000 [a.petit] Peer Connection Initiated with [AF_INET]198.51.100.20:5000",
        "Jan  1 00:00:01 vpn-lyon openvpn[10]: 198.51.100.21:5000 [b.roux] Peer Connection Initiated with [AF_INET]198.51.100.21:5000",
        "Dec 31 23:59:59 vpn-lyon openvpn[10]: a.petit/198.51.100.20:5000 SIGTERM[soft,remote-exit] received, client-instance exiting",
        "Jan  1 00:00:02 vpn-lyon openvpn[10]: b.roux/198.51.100.21:5000 SIGTERM[soft,remote-exit] received, client-instance exiting",
    ];
    let expected = [
        ("a.petit", "2023-12-31T23:59:58Z", "2023-12-31T23:59:59Z"),
        ("b.roux", "2024-01-01T00:00:01Z", "2024-01-01T00:00:02Z"),
    ];
    let check = |ledger: &Ledger| {
        let got: Vec<(String, String, String)> = ledger
            .sessions()
            .iter()
            .map(|s| {
                let text = |k: &str| s[k].as_str().unwrap_or("open").to_owned();
                (text("user"), text("start"), text("end"))
            })
            .collect();
        let want: Vec<(String, String, String)> = expected
            .iter()
            .map(|(u, a, b)| ((*u).to_owned(), (*a).to_owned(), (*b).to_owned()))
            .collect();
        assert_eq!(got, want);
    };

    // Read in two parts, the late line first thing after the restart:
    // the checkpoint keeps the latest line's day.
    let ledger = Ledger::new();
    let log = write_log(&ledger, "late.log", &lines[..2]);
    ledger.ok(&["ingest", "--year", "2023", "--tz", "UTC", &log]);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    for l in &lines[2..] {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    ledger.ok(&["ingest", "--year", "2023", "--tz", "UTC", &log]);
    check(&ledger);

    // Without --year, the modification time (4 January 2024) dates the
    // last line; the late line begins no year of its own.
    let ledger = Ledger::new();
    let log = write_log(&ledger, "late.log", &lines);
    let file = std::fs::File::options().write(true).open(&log).unwrap();
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_704_326_400);
    file.set_modified(mtime).unwrap();
    drop(file);
    ledger.ok(&["ingest", "--tz", "UTC", &log]);
    check(&ledger);
}

#[test]
fn parse_json_names_format_event_and_error_of_each_line() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "parse.log",
        &[
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734",
            "2024-06-18 11:12:35 t.moreau/192.0.2.88:60344 CC-EEN exit message received by peer",
            "garbage",
            // In the spring gap: read with the offset before it, flagged.
            "Mar 31 02:30:00 vpn-lyon openvpn[1873]: t.moreau/192.0.2.88:60344 CC-EEN exit message received by peer",
            // FortiGate writes its time in the message: a message that does
            // not read has no time to show.
            r#"date=2024-07-01 time=12:00:00 devname="FGT-A" tz="+9999" logid="0101039947" action="tunnel-up" tunnelid=3 remip=192.0.2.82 tunnelip=10.212.134.202 user="c.blanc""#,
        ],
    );
    let out = ledger.ok(&[
        "parse",
        "--json",
        "--year",
        "2024",
        "--tz",
        "Europe/Paris",
        &log,
    ]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["line"], 1);
    assert_eq!(lines[0]["format"], "rfc3164");
    assert_eq!(lines[0]["timestamp"], "2024-03-12T08:14:03Z");
    assert_eq!(lines[0]["host"], "vpn-lyon");
    assert_eq!(lines[0]["app"], "openvpn");
    assert_eq!(lines[0]["pid"], 1873);
    assert_eq!(lines[0]["event"]["kind"], "session_started");
    assert_eq!(lines[0]["event"]["user"], "j.martin");
    assert!(lines[0]["error"].is_null());
    assert_eq!(lines[1]["format"], "openvpn");
    assert_eq!(lines[1]["timestamp"], "2024-06-18T09:12:35Z");
    assert_eq!(lines[1]["event"]["kind"], "session_ended");
    assert_eq!(lines[1]["event"]["reason"], "user_exit");
    assert!(lines[2]["event"].is_null());
    assert_eq!(
        lines[2]["error"],
        "expected a syslog header, a log timestamp or a known log format at column 1, found \"garbage\""
    );
    assert!(lines[0]["time_flag"].is_null());
    assert_eq!(lines[3]["timestamp"], "2024-03-31T01:30:00Z");
    assert_eq!(lines[3]["time_flag"], "nonexistent_local_time");
    assert_eq!(lines[4]["format"], "fortigate");
    assert!(lines[4]["timestamp"].is_null(), "{}", lines[4]);
    assert!(lines[4]["time_flag"].is_null());
    assert_eq!(
        lines[4]["error"],
        "expected tz=<UTC offset such as +0100> at column 51, found \"+9999\""
    );
    let stats = ledger.ok(&["parse", "--stats", "--year", "2024", &log]);
    assert!(stats.contains("rfc3164 session_started"), "{stats}");
    assert!(stats.contains("error"), "{stats}");
}

#[test]
fn a_fifo_or_a_pipe_named_by_path_is_read_once_through() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let text = std::fs::read(&log).unwrap();

    // A FIFO: opened once, read through (before, it was opened a second
    // time to be sought, and waited for a writer forever).
    let fifo = ledger.dir.path().join("central.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = {
        let (fifo, text) = (fifo.clone(), text.clone());
        std::thread::spawn(move || std::fs::write(fifo, text).unwrap())
    };
    let out = ledger.ok(&["ingest", "--year", "2024", path_str(&fifo)]);
    writer.join().unwrap();
    assert!(out.contains("31 new line(s)"), "{out}");

    // A pipe named /dev/stdin: the same lines, known by their first line,
    // add nothing.
    let mut child = ledger
        .command(&["ingest", "--year", "2024", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("0 new line(s)"), "{stdout}");
    assert_eq!(ledger.count("records"), 17);
    assert_eq!(ledger.sessions().len(), 2);
}

#[test]
fn a_source_the_configuration_does_not_know_is_read_with_a_warning() {
    let ledger = Ledger::sample();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let out = ledger.run(&[
        "ingest",
        "--year",
        "2024",
        "--source",
        "vpn-anecy",
        path_str(&log),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--source vpn-anecy: no source of that name in the configuration (it has vpn-annecy, gateways, loki, annecy-status)"),
        "{stderr}"
    );
    // A configured one says nothing of the kind.
    let out = ledger.run(&[
        "ingest",
        "--year",
        "2024",
        "--source",
        "vpn-annecy",
        path_str(&log),
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("no source of that name"));
}

#[test]
fn a_log_forced_as_a_status_file_is_refused_not_kept_again() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    ledger.ok(&["ingest", "--year", "2024", path_str(&log)]);
    let counts = tables(&ledger);
    let out = ledger.run(&[
        "ingest",
        "--year",
        "2024",
        "--format",
        "openvpn-status",
        path_str(&log),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("syslog-rfc3164.log: read as openvpn-status, but its first line is not that of an OpenVPN status file"),
        "{stderr}"
    );
    assert_eq!(tables(&ledger), counts);
    // A real status file forced as one is read.
    let status = fixture("corpus/openvpn/status-v2.log");
    ledger.ok(&["ingest", "--format", "openvpn-status", path_str(&status)]);
    assert!(ledger.count("records") > counts[0]);
}

#[test]
fn a_missing_file_is_bad_input() {
    let ledger = Ledger::new();
    let out = ledger.run(&["ingest", "/nonexistent/openvpn.log"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/openvpn.log: cannot open"),
        "{err}"
    );
}

#[test]
fn verify_finds_an_altered_record() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    ledger.ok(&["ingest", "--year", "2024", path_str(&log)]);
    let out = ledger.ok(&["verify"]);
    assert!(out.contains("17 record(s) verified"), "{out}");

    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let id: i64 = conn
        .query_row(
            "SELECT id FROM records WHERE CAST(raw AS TEXT) LIKE '%09:47:55%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE records SET raw = CAST(replace(CAST(raw AS TEXT), '09:47:55', '10:47:55') AS BLOB) WHERE id = ?1",
        [id],
    )
    .unwrap();
    drop(conn);
    let out = ledger.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("record {id} or its event was altered")),
        "{text}"
    );
}

#[test]
fn verify_finds_an_unparsed_line_altered_or_removed() {
    let lines = [
        "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734",
        "Feb 30 09:20:00 vpn-lyon openvpn[1873]: a date no year has",
        "garbage one",
        "garbage two",
        "Mar 12 09:47:55 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting",
    ];
    // Each case: the change made by hand, and what verify says of it.
    let cases = [
        (
            "UPDATE unparsed SET raw = CAST('garbage 2' AS BLOB) WHERE id = 3",
            "unparsed line 3 was altered",
        ),
        (
            "UPDATE unparsed SET reason = 'fine' WHERE id = 1",
            "unparsed line 1 was altered",
        ),
        (
            "DELETE FROM unparsed WHERE id = 2",
            "unparsed line 3 was altered, or an unparsed line before it removed",
        ),
        (
            "DELETE FROM unparsed WHERE id = 3",
            "the unparsed lines' chain head names unparsed line 3, but the last unparsed line is 2: the newest unparsed line(s) were removed",
        ),
        (
            // Made to look as if kept before the chain: still a line after
            // the chain's start without a digest.
            "UPDATE unparsed SET digest = NULL, raw = CAST('edited' AS BLOB); DELETE FROM unparsed_head",
            "unparsed line 1 was altered",
        ),
        (
            "UPDATE unparsed SET raw = CAST(raw AS TEXT) WHERE id = 2",
            "unparsed line 2 was altered",
        ),
        (
            "DELETE FROM unparsed_chain",
            "the unparsed lines' chain start (table unparsed_chain) is gone or altered",
        ),
        (
            "DELETE FROM unparsed",
            "the store has no unparsed line on its chain, but its unparsed lines' chain head names unparsed line 3: unparsed lines were removed",
        ),
    ];
    for (edit, said) in cases {
        let ledger = Ledger::new();
        let log = write_log(&ledger, "kept.log", &lines);
        ledger.ok(&["ingest", "--year", "2024", &log]);
        let out = ledger.ok(&["verify"]);
        assert!(
            out.contains("3 unparsed line(s) verified: their chain is intact"),
            "{out}"
        );
        let conn = rusqlite::Connection::open(&ledger.db).unwrap();
        conn.execute_batch(edit).unwrap();
        drop(conn);
        let out = ledger.run(&["verify"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{edit}: {text}");
        assert!(text.contains(said), "{edit}: {text}");
    }
}

#[test]
fn unparsed_lines_kept_before_their_chain_are_counted_apart() {
    let ledger = Ledger::new();
    let old = write_log(&ledger, "old.log", &["garbage one", "garbage two"]);
    ledger.ok(&["ingest", "--year", "2024", &old]);
    // As a store written before schema 14 left them: no digest, no head,
    // and the migration's note of the last line kept before the chain.
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    conn.execute_batch(
        "UPDATE unparsed SET digest = NULL; DELETE FROM unparsed_head;
         UPDATE unparsed_chain SET before = (SELECT max(id) FROM unparsed);",
    )
    .unwrap();
    drop(conn);
    let new = write_log(&ledger, "new.log", &["garbage three"]);
    ledger.ok(&["ingest", "--year", "2024", &new]);
    let out = ledger.ok(&["verify"]);
    assert!(
        out.contains("1 unparsed line(s) verified: their chain is intact (2 kept before unparsed lines were chained, not covered)"),
        "{out}"
    );
}

#[test]
fn site_tunnels_are_stored_as_tunnel_events_and_make_no_session() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "charon.log",
        &[
            "Mar 14 08:00:01 vpn-nantes charon: 07[IKE] CHILD_SA site-lyon{3} established with SPIs c1d2e3f4_i 0a0b0c0d_o and TS 192.168.50.0/24 === 192.168.80.0/24",
            "Mar 14 13:02:11 vpn-nantes charon: 14[IKE] received EAP identity 'j.martin'",
            "Mar 14 13:02:12 vpn-nantes charon: 14[IKE] assigning virtual IP 10.10.10.1 to peer 'j.martin'",
            "Mar 14 13:02:12 vpn-nantes charon: 14[IKE] IKE_SA rw-techs[7] established between 192.0.2.10[vpn-nantes.example.net]...198.51.100.61[192.168.1.23]",
            "Mar 14 13:40:00 vpn-nantes charon: 11[IKE] closing CHILD_SA site-lyon{3} with SPIs c1d2e3f4_i (400 bytes) 0a0b0c0d_o (500 bytes) and TS 192.168.50.0/24 === 192.168.80.0/24",
            "Mar 14 14:05:40 vpn-nantes charon: 16[IKE] received DELETE for IKE_SA rw-techs[7]",
        ],
    );
    ledger.ok(&["ingest", "--year", "2024", "--tz", "Europe/Paris", &log]);

    // Only the technician's connection is a session.
    let sessions = ledger.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert_eq!(sessions[0]["user"], "j.martin");
    assert_eq!(sessions[0]["tunnel"], "rw-techs");
    assert_eq!(sessions[0]["start"], "2024-03-14T12:02:12Z");
    assert_eq!(sessions[0]["end"], "2024-03-14T13:05:40Z");

    // The site tunnel's two facts are kept with their name and bytes.
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT tunnel, reason, detail, bytes_in, bytes_out FROM events
             WHERE kind = 'site_tunnel' ORDER BY ts",
        )
        .unwrap();
    type TunnelRow = (String, String, String, Option<i64>, Option<i64>);
    let rows: Vec<TunnelRow> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let selectors = "192.168.50.0/24 === 192.168.80.0/24".to_owned();
    assert_eq!(
        rows,
        vec![
            (
                "site-lyon".to_owned(),
                "up".to_owned(),
                selectors.clone(),
                None,
                None
            ),
            (
                "site-lyon".to_owned(),
                "down".to_owned(),
                selectors,
                Some(400),
                Some(500)
            ),
        ]
    );
}

#[test]
fn reading_commands_refuse_a_store_that_does_not_exist() {
    let ledger = Ledger::new();
    for args in [
        &["sessions"][..],
        &["audit"],
        &["verify"],
        &["reports", "export", "--json"],
    ] {
        let out = ledger.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no store here"), "{args:?}: {stderr}");
    }
    assert!(!ledger.db.exists(), "a reading command created the store");
}

#[test]
fn lines_without_a_vpn_fact_are_counted_in_the_summary() {
    let ledger = Ledger::new();
    let log = write_log(
        &ledger,
        "noise.log",
        &[
            "Mar 12 09:14:00 vpn-lyon openvpn[1873]: 198.51.100.23:51734 VERIFY OK: depth=0, CN=j.martin",
            "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734",
            "Mar 12 09:14:04 vpn-lyon cron[311]: (root) CMD (run-parts /etc/cron.hourly)",
        ],
    );
    let out = ledger.ok(&["ingest", "--year", "2024", &log]);
    assert!(
        out.contains("3 new line(s), 1 record(s) with events (0 traffic), 0 unparsed line(s) kept, 2 read without a VPN fact (not stored)"),
        "{out}"
    );
}

/// Two files can begin with the same line (a banner, a header): the second
/// is not taken for the first grown, and none of its lines is skipped.
#[test]
fn a_file_with_another_files_first_line_is_read_whole() {
    let ledger = Ledger::new();
    let banner = "Mar 12 09:00:00 vpn-lyon syslogd: restart";
    let start = |n: u32, user: &str, port: u32| {
        format!("Mar 12 09:{n:02}:03 vpn-lyon openvpn[1873]: 198.51.100.23:{port} [{user}] Peer Connection Initiated with [AF_INET]198.51.100.23:{port}")
    };
    let a = write_log(
        &ledger,
        "a.log",
        &[
            banner,
            &start(10, "j.martin", 51734),
            &start(11, "j.martin", 51735),
        ],
    );
    let c = write_log(
        &ledger,
        "c.log",
        &[
            banner,
            &start(20, "s.bernard", 40112),
            &start(21, "s.bernard", 40113),
            &start(22, "s.bernard", 40114),
        ],
    );
    ledger.ok(&["ingest", "--year", "2024", "--source", "vpn-lyon", &a]);
    let out = ledger.ok(&["ingest", "--year", "2024", "--source", "vpn-lyon", &c]);
    assert!(out.contains("4 new line(s), 3 record(s)"), "{out}");
    let users: Vec<String> = ledger
        .sessions()
        .iter()
        .map(|s| s["user"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        users.iter().filter(|u| *u == "s.bernard").count(),
        3,
        "{users:?}"
    );
    assert_eq!(ledger.count("unparsed"), 0);

    // Both again, and from standard input: nothing new.
    for file in [&a, &c] {
        let out = ledger.ok(&["ingest", "--year", "2024", "--source", "vpn-lyon", file]);
        assert!(out.contains(" 0 new line(s)"), "{out}");
    }
    let out = ledger
        .command(&["ingest", "--year", "2024", "--source", "vpn-lyon", "-"])
        .stdin(std::fs::File::open(&a).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(" 0 new line(s)"));

    // c grown: read on from where it stopped.
    let mut grown = std::fs::read_to_string(&c).unwrap();
    grown.push_str(&start(23, "s.bernard", 40115));
    grown.push('\n');
    std::fs::write(&c, grown).unwrap();
    let out = ledger.ok(&["ingest", "--year", "2024", "--source", "vpn-lyon", &c]);
    assert!(out.contains("1 new line(s), 1 record(s)"), "{out}");
    assert_eq!(ledger.sessions().len(), 6);
}

#[test]
fn verify_finds_a_line_stored_twice() {
    let ledger = Ledger::new();
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    ledger.ok(&["ingest", "--year", "2024", path_str(&log)]);
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    conn.execute(
        "INSERT INTO records (stream, line, offset, received, ts, time_flag, format, gateway, host, app, pid, raw, encoding, digest, truncated, chain)
         SELECT stream, line, offset, received, ts, time_flag, format, gateway, host, app, pid, raw, encoding, digest, truncated, chain
         FROM records WHERE id = 3",
        [],
    )
    .unwrap();
    let line: i64 = conn
        .query_row("SELECT line FROM records WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let out = ledger.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("line {line} of file ")), "{text}");
    assert!(text.contains("is stored more than once"), "{text}");
}

#[test]
fn verify_finds_an_altered_or_removed_event() {
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let changes = [
        "UPDATE events SET user = 's.bernard' WHERE user = 'j.martin'",
        "UPDATE records SET dst = '192.168.30.99'
         WHERE id = (SELECT record_id FROM traffic ORDER BY record_id LIMIT 1 OFFSET 1)",
        // A traffic line's facts removed: it reads as a record of nothing.
        "UPDATE records SET src = NULL, dst = NULL, proto = NULL, dst_port = NULL, allowed = NULL
         WHERE id = (SELECT max(record_id) FROM traffic)",
        "DELETE FROM events WHERE id = 3",
        "UPDATE events SET user = CAST(user AS BLOB) WHERE user = 'j.martin'",
        "DELETE FROM records WHERE id = (SELECT max(record_id) FROM events)",
        "DELETE FROM records WHERE id = (SELECT min(record_id) FROM traffic)",
        // A file's row removed: its records name nothing.
        "DELETE FROM streams WHERE id = (SELECT min(id) FROM streams)",
        // Another type than ingest writes.
        "UPDATE records SET raw = 'hello' WHERE id = 3",
        "UPDATE records SET ts = 'soon' WHERE id = 4",
    ];
    for change in changes {
        let text = verify_fails_after(&log, change);
        assert!(
            text.starts_with("record ") || text.contains("belong to no record"),
            "{change}: {text}"
        );
    }
}

#[test]
fn verify_finds_traffic_the_device_look_up_cannot_see() {
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    // Each change, and what verify must say of it.
    let changes = [
        (
            "DELETE FROM traffic_runs WHERE first = (SELECT max(first) FROM traffic_runs)",
            "is in no traffic run",
        ),
        (
            "UPDATE traffic_runs SET last = first WHERE first = (SELECT min(first) FROM traffic_runs WHERE last > first)",
            "is in no traffic run",
        ),
        (
            "UPDATE traffic_runs SET src = '10.8.0.99' WHERE first = (SELECT min(first) FROM traffic_runs)",
            "is gone or is not traffic of that source in that hour",
        ),
        // The last records removed: their run still names them.
        (
            "DELETE FROM records WHERE id >= (SELECT max(first) FROM traffic_runs)",
            "is gone or is not traffic of that source in that hour",
        ),
        // A run that also names a record of the run beside it.
        (
            "UPDATE traffic_runs SET last = last + 1 WHERE first = (SELECT min(first) FROM traffic_runs)",
            "is gone or is not traffic of that source in that hour",
        ),
        (
            "INSERT INTO traffic_runs SELECT gateway, src, hour, first + 1, last FROM traffic_runs
             WHERE last > first LIMIT 1",
            "both name record",
        ),
        // Traffic facts on a record that carries an event, with a run to
        // show them to the look-up.
        (
            "UPDATE records SET src = '10.8.0.6', dst = '192.168.30.99', proto = 'TCP', dst_port = 22, allowed = 1
             WHERE id = (SELECT max(record_id) FROM events);
             INSERT INTO traffic_runs SELECT gateway, src, ts / 3600000000, id, id FROM records
             WHERE id = (SELECT max(record_id) FROM events)",
            "has an event and traffic facts",
        ),
        (
            "UPDATE records SET src = NULL WHERE id = (SELECT min(record_id) FROM traffic)",
            "has traffic facts but no source address",
        ),
        // A run inside another: its record would be counted twice.
        (
            "INSERT INTO traffic_runs SELECT gateway, src, hour, first + 1, first + 1 FROM traffic_runs
             WHERE last > first LIMIT 1",
            "both name record",
        ),
        // A record moved to the next hour, out of its run's.
        (
            "UPDATE records SET ts = ts + 3600000000 WHERE id = (SELECT min(first) FROM traffic_runs)",
            "is gone or is not traffic of that source in that hour",
        ),
        // The same bytes as a blob: they hash the same, but no look-up
        // matches them any more.
        (
            "UPDATE records SET src = CAST(src AS BLOB) WHERE id = (SELECT min(first) FROM traffic_runs)",
            "of another type than ingest writes (the record was altered)",
        ),
        (
            "UPDATE traffic_runs SET src = CAST(src AS BLOB) WHERE first = (SELECT min(first) FROM traffic_runs)",
            "of another type than ingest writes (the run was altered)",
        ),
        ("DROP TABLE traffic_runs", "has no table traffic_runs"),
        ("DROP TABLE events", "has no table events"),
        ("DROP TABLE streams", "has no table streams"),
        ("DROP TABLE traffic_unmatched", "has no table traffic_unmatched"),
    ];
    verify_says_after(&log, &changes);
}

/// Ingests `log`, makes each change to the store as a hand edit would,
/// and checks that `verify` then fails saying what was expected.
fn verify_says_after(log: &std::path::Path, changes: &[(&str, &str)]) {
    for (change, said) in changes {
        let text = verify_fails_after(log, change);
        assert!(text.contains(said), "{change}: {text}");
    }
}

/// Ingests `log` into a new store, makes `change` to it as someone
/// editing the file by hand would (references not enforced), and returns
/// what `verify` says, having checked that it fails, and says nothing on
/// standard error.
fn verify_fails_after(log: &std::path::Path, change: &str) -> String {
    let ledger = Ledger::new();
    ledger.ok(&["ingest", "--year", "2024", path_str(log)]);
    ledger.ok(&["verify"]);
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    let before = conn.total_changes();
    conn.execute_batch(change).unwrap();
    assert!(
        conn.total_changes() > before || change.contains("DROP"),
        "{change}"
    );
    drop(conn);
    let out = ledger.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1), "{change}");
    assert!(
        out.stderr.is_empty(),
        "{change}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_newest_records_removed_stay_seen_after_more_are_written() {
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let more = fixture("corpus/strongswan/charon-syslog.log");
    let ledger = Ledger::new();
    ledger.ok(&["ingest", "--year", "2024", path_str(&log)]);
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    let last: i64 = conn
        .query_row("SELECT max(id) FROM records", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "UPDATE traffic_runs SET last = last - 1
         WHERE last = (SELECT max(id) FROM records) AND first < last;
         DELETE FROM traffic_runs WHERE first = (SELECT max(id) FROM records);
         DELETE FROM events WHERE record_id = (SELECT max(id) FROM records);
         DELETE FROM records WHERE id = (SELECT max(id) FROM records);",
    )
    .unwrap();
    drop(conn);
    // The next ingest chains onto the head, the removed record's digest:
    // its first record takes the removed id and does not follow from the
    // record before it.
    ledger.ok(&["ingest", "--year", "2024", path_str(&more)]);
    let out = ledger.run(&["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!(
            "record {last} or its event was altered, or a record before it removed"
        )),
        "{text}"
    );
}

#[test]
fn verify_finds_the_newest_records_removed() {
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    // The last record removed with everything that names it: its event
    // or its place in a run.
    let remove_last = "
        UPDATE traffic_runs SET last = last - 1
        WHERE last = (SELECT max(id) FROM records) AND first < last;
        DELETE FROM traffic_runs WHERE first = (SELECT max(id) FROM records);
        DELETE FROM events WHERE record_id = (SELECT max(id) FROM records);
        DELETE FROM records WHERE id = (SELECT max(id) FROM records);";
    verify_says_after(
        &log,
        &[
            (remove_last, "the newest record(s) were removed"),
            ("DELETE FROM chain_head", "the store's chain head is gone"),
            (
                "UPDATE chain_head SET digest = zeroblob(32)",
                "the chain head's digest is not that of record",
            ),
            (
                "UPDATE chain_head SET record_id = record_id - 1",
                "were written without moving it",
            ),
            ("DROP TABLE chain_head", "has no table chain_head"),
        ],
    );
}

#[test]
fn verify_passes_when_a_raw_line_is_the_same_bytes_as_text() {
    let log = fixture("corpus/openvpn/syslog-rfc3164.log");
    let ledger = Ledger::new();
    ledger.ok(&["ingest", "--year", "2024", path_str(&log)]);
    let conn = rusqlite::Connection::open(&ledger.db).unwrap();
    conn.execute(
        "UPDATE records SET raw = CAST(raw AS TEXT) WHERE id = 3",
        [],
    )
    .unwrap();
    drop(conn);
    let out = ledger.ok(&["verify"]);
    assert!(out.contains("evidence chain is intact"), "{out}");
}
