//! A month at three sites, four technicians, 39 reports: the audit finds
//! every planted fault with its kind and report and nothing on the honest
//! reports; the pre-fill of each honest report gives the logged start, end,
//! devices and tunnel. Expectations are written out in fixtures/month/.

mod support;

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::{fixture, path_str, Ledger};

fn month() -> Ledger {
    let config = std::fs::read_to_string(fixture("month/vpnledger.toml")).unwrap();
    let ledger = Ledger::with_config(&config);
    let logs: Vec<String> = ["vpn-lyon.log", "fgt-grenoble.log", "vpn-nantes.log"]
        .iter()
        .map(|f| path_str(&fixture(&format!("month/{f}"))).to_owned())
        .collect();
    let mut args = vec!["ingest", "--year", "2024"];
    args.extend(logs.iter().map(String::as_str));
    ledger.ok(&args);
    let out = ledger.ok(&[
        "reports",
        "import",
        path_str(&fixture("month/reports.json")),
    ]);
    assert!(out.contains("39 added"), "{out}");
    ledger
}

/// (kind, report, related report, site, technician) of a discrepancy.
fn key(d: &Value) -> (String, String, String, String, String) {
    let text = |f: &str| d[f].as_str().unwrap_or("-").to_owned();
    (
        text("kind"),
        text("report"),
        text("related_report"),
        text("site"),
        text("technician"),
    )
}

#[test]
fn the_audit_finds_every_planted_fault_and_nothing_else() {
    let ledger = month();
    let audit = ledger.json(&["audit", "--json"]);
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("month/expected-audit.json")).unwrap(),
    )
    .unwrap();
    let mut got: Vec<_> = audit.as_array().unwrap().iter().map(key).collect();
    let mut want: Vec<_> = expected.as_array().unwrap().iter().map(key).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);

    // Nothing on an honest report.
    for d in audit.as_array().unwrap() {
        let report = d["report"].as_str().unwrap_or("");
        assert!(!report.starts_with('H'), "finding on honest report: {d:#}");
        if d["kind"] != "no_session" && d["kind"] != "overlapping_reports" {
            assert!(
                !d["evidence"].as_array().unwrap().is_empty(),
                "no evidence: {d:#}"
            );
        }
    }

    // Unreported visits: s.bernard's two sessions at nantes-03 are one visit.
    let unreported: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "unreported_session")
        .collect();
    let nantes = unreported
        .iter()
        .find(|d| d["site"] == "nantes-03")
        .unwrap();
    assert_eq!(nantes["observed"]["start"], "2024-02-13T14:00:00Z");
    assert_eq!(nantes["observed"]["end"], "2024-02-13T14:45:00Z");
    assert_eq!(nantes["evidence"].as_array().unwrap().len(), 4);

    // Reproducible, filterable.
    assert_eq!(ledger.json(&["audit", "--json"]), audit);
    let grenoble = ledger.json(&["audit", "--json", "--site", "grenoble-02"]);
    assert_eq!(grenoble.as_array().unwrap().len(), 9);
    let a_petit = ledger.json(&["audit", "--json", "--technician", "a.petit"]);
    assert_eq!(a_petit.as_array().unwrap().len(), 6);
    let week = ledger.json(&[
        "audit",
        "--json",
        "--since",
        "2024-02-12",
        "--until",
        "2024-02-16",
    ]);
    assert_eq!(week.as_array().unwrap().len(), 16);
    let csv = ledger.ok(&["audit", "--csv", "--kind", "tunnel_mismatch"]);
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("id,kind,severity,report,"), "{csv}");
}

#[test]
fn the_prefill_of_each_honest_report_is_what_the_logs_show() {
    let ledger = month();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("month/expected-prefill.json")).unwrap(),
    )
    .unwrap();
    let reports: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("month/reports.json")).unwrap())
            .unwrap();
    let tolerance = chrono::Duration::minutes(10);
    let utc = |v: &Value| {
        DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    let paris = |v: &Value| {
        let local =
            chrono::NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d %H:%M").unwrap();
        local
            .and_local_timezone(chrono_tz::Europe::Paris)
            .unwrap()
            .with_timezone(&Utc)
    };
    for (id, want) in expected.as_object().unwrap() {
        let p = ledger.json(&["reports", "prefill", id, "--json"]);
        assert_eq!(p["start"]["value"], want["start"], "{id} start");
        assert_eq!(p["end"]["value"], want["end"], "{id} end");
        assert_eq!(p["devices"]["value"], want["devices"], "{id} devices");
        assert_eq!(p["tunnel"]["value"], want["tunnel"], "{id} tunnel");
        assert_eq!(
            p["sessions"].as_array().unwrap().len() as u64,
            want["sessions"].as_u64().unwrap(),
            "{id}"
        );
        assert!(
            !p["start"]["evidence"].as_array().unwrap().is_empty(),
            "{id} start evidence"
        );

        // And it agrees with what the honest report declares.
        let report = reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap();
        let remote = &report["remote"];
        assert!(
            (utc(&p["start"]["value"]) - paris(&remote["start"])).abs() <= tolerance,
            "{id}"
        );
        assert!(
            (utc(&p["end"]["value"]) - paris(&remote["end"])).abs() <= tolerance,
            "{id}"
        );
        assert_eq!(p["tunnel"]["value"], remote["tunnel"], "{id}");
    }
}
