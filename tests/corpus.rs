//! Every corpus file ingests, alone into a fresh store, to exactly the
//! sessions its `.expected.json` lists, field by field.
//!
//! The corpus rules (fixtures/corpus/README.md): `--tz Europe/Paris --year
//! 2024`, and `--source vpn-annecy` for host-less OpenVPN files; times are
//! compared as instants within 1 s; devices as a set of IPs.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::{fixture, path_str, Ledger};

fn instant(v: &Value, what: &str) -> Option<DateTime<Utc>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(
            DateTime::parse_from_rfc3339(s)
                .unwrap_or_else(|e| panic!("{what}: {s:?} is not RFC 3339: {e}"))
                .with_timezone(&Utc),
        ),
        other => panic!("{what}: {other} is not a time"),
    }
}

fn same_instant(expected: &Value, got: &Value, what: &str) {
    match (instant(expected, what), instant(got, what)) {
        (None, None) => {}
        (Some(e), Some(g)) => {
            assert!(
                (e - g).num_milliseconds().abs() <= 1000,
                "{what}: expected {e}, got {g}"
            )
        }
        (e, g) => panic!("{what}: expected {e:?}, got {g:?}"),
    }
}

fn device_ips(v: &Value) -> Vec<String> {
    let mut ips: Vec<String> = v
        .as_array()
        .expect("devices array")
        .iter()
        .map(|d| match d {
            Value::String(ip) => ip.clone(),
            Value::Object(o) => o["ip"].as_str().expect("device ip").to_owned(),
            other => panic!("device {other}"),
        })
        .collect();
    ips.sort();
    ips
}

/// Ingests `rel` as the corpus rules say and compares with its expectation.
fn check(rel: &str, source: Option<&str>) {
    let log = fixture(&format!("corpus/{rel}.log"));
    let expected: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("corpus/{rel}.expected.json"))).unwrap(),
    )
    .unwrap();
    let ledger = Ledger::new();
    let mut args = vec!["ingest", "--tz", "Europe/Paris", "--year", "2024"];
    if let Some(s) = source {
        args.extend(["--source", s]);
    }
    args.push(path_str(&log));
    ledger.ok(&args);
    let got = ledger.sessions();
    assert_eq!(
        got.len(),
        expected.len(),
        "{rel}: expected {} sessions, got {}:\n{}",
        expected.len(),
        got.len(),
        serde_json::to_string_pretty(&got).unwrap()
    );
    for want in &expected {
        let user = want["user"].as_str().unwrap();
        let start = instant(&want["start"], "start").unwrap();
        let found = got
            .iter()
            .find(|g| {
                g["user"] == want["user"]
                    && instant(&g["start"], "start")
                        .is_some_and(|s| (s - start).num_milliseconds().abs() <= 1000)
            })
            .unwrap_or_else(|| {
                panic!(
                    "{rel}: no session of {user} starting {start}; got:\n{}",
                    serde_json::to_string_pretty(&got).unwrap()
                )
            });
        let what = |f: &str| format!("{rel}: {user}: {f}");
        same_instant(&want["end"], &found["end"], &what("end"));
        for field in ["tunnel", "virtual_ip", "remote_ip", "bytes_in", "bytes_out"] {
            assert_eq!(found[field], want[field], "{}", what(field));
        }
        assert_eq!(
            device_ips(&found["devices"]),
            device_ips(&want["devices"]),
            "{}",
            what("devices")
        );
    }
}

#[test]
fn openvpn_syslog_rfc3164() {
    check("openvpn/syslog-rfc3164", Some("vpn-annecy"));
}

#[test]
fn openvpn_file_log_iso() {
    check("openvpn/file-log-iso", Some("vpn-annecy"));
}

#[test]
fn openvpn_real_2_6_loopback() {
    check("openvpn/real-2.6-loopback", Some("vpn-annecy"));
}

#[test]
fn openvpn_status_v1_legacy_dates() {
    check("openvpn/status-v1-legacy-dates", Some("vpn-annecy"));
}

#[test]
fn openvpn_status_v2() {
    check("openvpn/status-v2", Some("vpn-annecy"));
}

#[test]
fn openvpn_status_v3() {
    check("openvpn/status-v3", Some("vpn-annecy"));
}

#[test]
fn strongswan_charon_syslog() {
    check("strongswan/charon-syslog", None);
}

#[test]
fn wireguard_polls_with_conntrack() {
    check("wireguard/wg-polls-with-conntrack", None);
}

#[test]
fn fortigate_sslvpn_and_traffic() {
    check("fortigate/sslvpn-and-traffic", None);
}

#[test]
fn cisco_asa_anyconnect() {
    check("cisco-asa/anyconnect", None);
}

#[test]
fn paloalto_globalprotect_and_traffic() {
    check("paloalto-globalprotect/globalprotect-and-traffic", None);
}

#[test]
fn pfsense_openvpn_filterlog_rfc5424() {
    check("pfsense/openvpn-filterlog-rfc5424", None);
}

#[test]
fn stormshield_xvpn_and_connection() {
    check("stormshield/xvpn-and-connection", None);
}

/// Every corpus file has its test above: a file added to the corpus
/// without one fails here.
#[test]
fn every_corpus_file_is_checked() {
    let this = include_str!("corpus.rs");
    let mut missing = Vec::new();
    for dir in std::fs::read_dir(fixture("corpus")).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "log") {
                let rel = format!(
                    "\"{}/{}\"",
                    dir.file_name().unwrap().to_string_lossy(),
                    file.file_stem().unwrap().to_string_lossy()
                );
                if !this.contains(&rel) {
                    missing.push(rel);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "corpus files without a test: {missing:?}"
    );
}
