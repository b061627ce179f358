//! `vpnledger parse` on one file of mixed formats: every line names its
//! format, the parser that read its message and the event it carries, and
//! every line it did not understand says why and where. `--stats` counts
//! the same lines. Nothing is stored.

mod support;

use serde_json::Value;

use support::{fixture, path_str, Ledger};

/// One line of `parse --json`, reduced to what this test checks.
#[derive(Debug, PartialEq)]
struct Read {
    line: u64,
    format: Option<String>,
    parser: Option<String>,
    event: Option<String>,
    host: Option<String>,
    timestamp: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

fn read(v: &Value) -> Read {
    Read {
        line: v["line"].as_u64().expect("line number"),
        format: text(&v["format"]),
        parser: text(&v["parser"]),
        event: text(&v["event"]["kind"]),
        host: text(&v["host"]),
        timestamp: text(&v["timestamp"]),
    }
}

fn expected(
    line: u64,
    format: Option<&str>,
    parser: Option<&str>,
    event: Option<&str>,
    host: Option<&str>,
    timestamp: Option<&str>,
) -> Read {
    let own = |s: Option<&str>| s.map(str::to_owned);
    Read {
        line,
        format: own(format),
        parser: own(parser),
        event: own(event),
        host: own(host),
        timestamp: own(timestamp),
    }
}

fn parse_mixed(ledger: &Ledger, extra: &[&str]) -> String {
    let file = fixture("mixed/mixed-formats.log");
    let mut args = vec!["parse", "--tz", "Europe/Paris", "--year", "2024"];
    args.extend_from_slice(extra);
    args.push(path_str(&file));
    ledger.ok(&args)
}

#[test]
fn mixed_formats_name_each_line_and_say_why_for_the_rest() {
    let ledger = Ledger::new();
    let out = parse_mixed(&ledger, &["--json"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 17, "one object per input line:\n{out}");
    for v in &lines {
        assert!(
            v["file"]
                .as_str()
                .unwrap()
                .ends_with("mixed/mixed-formats.log"),
            "{v}"
        );
    }

    let got: Vec<Read> = lines.iter().map(read).collect();
    let some = Some;
    let want = vec![
        // An OpenVPN line that is no VPN fact: read, no event.
        expected(
            1,
            some("rfc3164"),
            some("openvpn"),
            None,
            some("vpn-lyon"),
            some("2024-03-12T08:14:03Z"),
        ),
        expected(
            2,
            some("rfc5424"),
            some("openvpn"),
            some("session_started"),
            some("fw-chambery.example.net"),
            some("2024-07-09T14:20:11.015733Z"),
        ),
        expected(
            3,
            some("openvpn"),
            some("openvpn"),
            some("session_started"),
            None,
            some("2024-06-18T07:41:58Z"),
        ),
        expected(
            4,
            some("fortigate"),
            some("fortigate"),
            some("session_started"),
            None,
            some("2024-03-19T13:02:33Z"),
        ),
        expected(
            5,
            some("stormshield"),
            some("stormshield"),
            some("session_started"),
            None,
            some("2024-04-09T08:20:41Z"),
        ),
        expected(
            6,
            some("rfc3164"),
            some("cisco-asa"),
            some("address_assigned"),
            some("asa-paris"),
            some("2024-03-21T07:55:03Z"),
        ),
        expected(
            7,
            some("rfc3164"),
            some("strongswan"),
            some("address_assigned"),
            some("vpn-nantes"),
            some("2024-03-14T12:02:12Z"),
        ),
        // GlobalProtect's own generated time, not the relay's header.
        expected(
            8,
            some("rfc3164"),
            some("paloalto"),
            some("session_started"),
            some("PA-LYON"),
            some("2024-03-26T13:00:06Z"),
        ),
        expected(
            9,
            some("rfc5424"),
            some("filterlog"),
            some("traffic"),
            some("fw-chambery.example.net"),
            some("2024-07-09T14:21:02.118877Z"),
        ),
        expected(
            10,
            some("rfc3164"),
            some("netfilter"),
            some("traffic"),
            some("vpn-lyon"),
            some("2024-03-12T08:15:10Z"),
        ),
        expected(
            11,
            some("wireguard"),
            some("wireguard"),
            None,
            None,
            some("2024-03-15T09:05:00Z"),
        ),
        // A dump line is dated by the poll line before it.
        expected(
            12,
            some("wireguard"),
            some("wireguard"),
            some("peer_status"),
            None,
            some("2024-03-15T09:05:00Z"),
        ),
        expected(
            13,
            some("conntrack"),
            some("conntrack"),
            some("traffic"),
            None,
            some("2024-03-15T09:04:02.118204Z"),
        ),
        // A whole envelope around a damaged message: the envelope is told.
        expected(
            14,
            some("rfc3164"),
            some("openvpn"),
            None,
            some("vpn-lyon"),
            some("2024-03-12T08:20:00Z"),
        ),
        expected(15, None, None, None, None, None),
        expected(16, None, None, None, None, None),
        // Bytes that are no text in any message: kept, no event, no error.
        expected(
            17,
            some("rfc3164"),
            None,
            None,
            some("vpn-lyon"),
            some("2024-03-12T08:21:00Z"),
        ),
    ];
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "line {}: {}", w.line, lines[w.line as usize - 1]);
    }

    // Details of the events, as the vendors wrote them.
    assert_eq!(lines[3]["event"]["user"], "j.martin");
    assert_eq!(lines[3]["event"]["virtual_ip"], "10.212.134.200");
    assert_eq!(lines[5]["event"]["virtual_ip"], "10.50.0.12");
    assert_eq!(lines[7]["event"]["user"], "INTEG\\j.martin");
    assert_eq!(lines[8]["event"]["verdict"], "dropped");
    assert_eq!(lines[9]["event"]["dst"], "192.168.20.10");
    assert_eq!(lines[9]["event"]["dst_port"], 443);
    assert_eq!(lines[11]["event"]["allowed_ip"], "10.20.0.2");
    assert_eq!(lines[12]["event"]["dst"], "192.168.60.15");

    // The lines understood say no error; the others say what was expected,
    // at which column, and what was found.
    for (i, v) in lines.iter().enumerate() {
        if ![13, 14, 15].contains(&i) {
            assert!(v["error"].is_null(), "line {}: {v}", i + 1);
        }
    }
    assert_eq!(
        lines[13]["error"],
        "expected the learned virtual IP address at column 84, found \"10.8.0.999\""
    );
    assert_eq!(
        lines[14]["error"],
        "expected a timestamp (RFC 3339 or -) at column 7, found \"2024-07-09T25:61:00+02:0\""
    );
    assert_eq!(
        lines[15]["error"],
        "expected a syslog header, a log timestamp or a known log format at column 1, found \
         \"this line is no log form\""
    );
    assert_eq!(lines[15]["message"], "this line is no log format at all");

    // parse stores nothing.
    assert!(!ledger.db.exists(), "parse created the store");
}

#[test]
fn stats_count_the_same_lines_by_format_and_event() {
    let ledger = Ledger::new();
    let out = parse_mixed(&ledger, &["--stats"]);
    // Rows of the table read `│ label ┆ count │`.
    let count = |label: &str| -> u64 {
        out.lines()
            .filter_map(|l| l.trim_matches('│').split_once('┆'))
            .find(|(cell, _)| cell.trim() == label)
            .and_then(|(_, n)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no row {label:?} in\n{out}"))
    };
    assert_eq!(count("rfc3164 traffic"), 1, "{out}");
    assert_eq!(count("rfc3164 address_assigned"), 2, "{out}");
    assert_eq!(count("rfc3164 session_started"), 1, "{out}");
    assert_eq!(count("rfc3164 (no event)"), 2, "{out}");
    assert_eq!(count("rfc5424 traffic"), 1, "{out}");
    assert_eq!(count("wireguard peer_status"), 1, "{out}");
    assert_eq!(count("conntrack traffic"), 1, "{out}");
    assert_eq!(count("error"), 3, "{out}");
    assert_eq!(count("total"), 17, "{out}");
}

#[test]
fn an_unknown_format_is_refused_with_the_names_it_takes() {
    let ledger = Ledger::new();
    let file = fixture("mixed/mixed-formats.log");
    let out = ledger.run(&["parse", "--format", "syslog", path_str(&file)]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("syslog") && stderr.contains("rfc5424") && stderr.contains("wireguard"),
        "{stderr}"
    );
}

#[test]
fn a_line_not_read_moves_no_year_rule() {
    // Line 1 is not understood (a bad address); its December must not
    // carry line 2 into the next year, as it does not in `ingest`.
    let ledger = Ledger::new();
    let log = ledger.dir.path().join("year.log");
    std::fs::write(
        &log,
        "Dec 31 23:59:00 vpn-lyon openvpn[1873]: j.martin/198.51.100.23:51734 MULTI: Learn: 10.8.0.999 -> j.martin/198.51.100.23:51734\n\
         Jan 02 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 peer info: IV_VER=2.6.8\n",
    )
    .unwrap();
    let out = ledger.ok(&[
        "parse",
        "--json",
        "--tz",
        "UTC",
        "--year",
        "2023",
        path_str(&log),
    ]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines[0]["error"].is_string(), "{out}");
    assert_eq!(lines[0]["timestamp"], "2023-12-31T23:59:00Z");
    assert_eq!(lines[1]["timestamp"], "2023-01-02T09:14:03Z");
    let stats = ledger.ok(&[
        "parse",
        "--stats",
        "--tz",
        "UTC",
        "--year",
        "2023",
        path_str(&log),
    ]);
    assert!(!stats.contains("time not placed"), "{stats}");
}
