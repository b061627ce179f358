//! Reports, pre-fill and audit on the shipped sample (config/vpnledger.toml,
//! fixtures/logs, fixtures/reports/sample.json), and configuration errors.

mod support;

use serde_json::{json, Value};
use support::{fixture, path_str, Ledger};

/// The demo's store: both gateways ingested and the sample reports imported.
fn sample_ledger() -> Ledger {
    let ledger = Ledger::sample();
    let lyon = fixture("logs/vpn-lyon-syslog.log");
    let annecy = fixture("logs/vpn-annecy-openvpn.log");
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        "--source",
        "vpn-lyon",
        path_str(&lyon),
    ]);
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        "--source",
        "vpn-annecy",
        path_str(&annecy),
    ]);
    let out = ledger.ok(&[
        "reports",
        "import",
        path_str(&fixture("reports/sample.json")),
    ]);
    assert!(out.contains("4 added"), "{out}");
    ledger
}

#[test]
fn sessions_carry_technicians_sites_and_named_devices() {
    let ledger = sample_ledger();
    let s = ledger.sessions();
    assert_eq!(s.len(), 3);
    assert_eq!(s[0]["user"], "j.martin");
    assert_eq!(s[0]["technician"], "j.martin");
    assert_eq!(s[0]["sites"], json!(["lyon-01"]));
    assert_eq!(
        s[0]["devices"],
        json!([
            {"ip": "192.168.20.10", "name": "NVR-01", "ports": ["tcp/443"]},
            {"ip": "192.168.20.31", "name": "CAM-ENTREE", "ports": ["tcp/554"]},
            {"ip": "192.168.30.5", "name": "SWITCH-POE", "ports": ["udp/161"]}
        ])
    );
    assert_eq!(s[2]["user"], "t.moreau");
    assert_eq!(s[2]["sites"], json!(["annecy-01"]));
    let by_tech = ledger.json(&["sessions", "--json", "--user", "s.bernard"]);
    assert_eq!(by_tech.as_array().unwrap().len(), 1);
    let by_site = ledger.json(&["sessions", "--json", "--site", "annecy-01"]);
    assert_eq!(by_site[0]["user"], "t.moreau");
    let by_day = ledger.json(&["sessions", "--json", "--since", "2024-06-01"]);
    assert_eq!(by_day.as_array().unwrap().len(), 1);
}

#[test]
fn a_period_that_ends_before_it_starts_is_refused() {
    let ledger = sample_ledger();
    for command in ["sessions", "audit"] {
        let out = ledger.run(&[command, "--since", "2024-03-13", "--until", "2024-03-12"]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--since 2024-03-13 is later than --until 2024-03-12"),
            "{command}: {err}"
        );
    }
    let out = ledger.run(&[
        "sessions",
        "--since",
        "2024-03-12T10:00:00Z",
        "--until",
        "2024-03-12T09:59:59Z",
    ]);
    assert_eq!(out.status.code(), Some(2));

    // One day is a period from its start to its end.
    let day = ledger.json(&[
        "sessions",
        "--json",
        "--since",
        "2024-03-12",
        "--until",
        "2024-03-12",
    ]);
    let users: Vec<&str> = day
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["j.martin", "s.bernard"]);

    let out = ledger.run(&["sessions", "--since", "last tuesday"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--since: \"last tuesday\" is neither"),
        "{err}"
    );
}

#[test]
fn a_user_is_found_whatever_the_case_domain_or_realm() {
    // No technicians configured: only the identity itself can match.
    let ledger = Ledger::new();
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        path_str(&fixture("logs/vpn-lyon-syslog.log")),
    ]);
    for user in ["J.MARTIN", "INTEG\\j.martin", "J.Martin@integ.local"] {
        let found = ledger.json(&["sessions", "--json", "--user", user]);
        let found = found.as_array().unwrap();
        assert_eq!(found.len(), 1, "{user}");
        assert_eq!(found[0]["user"], "j.martin", "{user}");
        assert_eq!(found[0]["start"], "2024-03-12T08:14:03Z", "{user}");
    }
    let nobody = ledger.json(&["sessions", "--json", "--user", "j.mart"]);
    assert!(nobody.as_array().unwrap().is_empty());

    // A technician id too, in any case.
    let sample = sample_ledger();
    let by_tech = sample.json(&["sessions", "--json", "--user", "S.Bernard"]);
    let by_tech = by_tech.as_array().unwrap();
    assert_eq!(by_tech.len(), 1);
    assert_eq!(by_tech[0]["technician"], "s.bernard");
}

#[test]
fn prefill_gives_the_logged_remote_part_with_its_evidence() {
    let ledger = sample_ledger();
    let p = ledger.json(&["reports", "prefill", "R-2024-0618-01", "--json"]);
    let session = ledger.sessions()[2]["id"].clone();
    assert_eq!(p["report"], "R-2024-0618-01");
    assert_eq!(p["start"]["value"], "2024-06-18T07:41:58Z");
    assert_eq!(p["end"]["value"], "2024-06-18T09:12:35Z");
    assert_eq!(p["devices"]["value"], json!([]));
    assert_eq!(p["tunnel"]["value"], "vpn-annecy");
    assert_eq!(p["sessions"], json!([session]));
    assert_eq!(p["start"]["evidence"][0]["source"], "vpn-annecy");
    assert_eq!(p["start"]["evidence"][0]["line"], 8);
    assert_eq!(
        p["start"]["evidence"][0]["text"],
        "2024-06-18 09:41:58 192.0.2.88:60344 [t.moreau] Peer Connection Initiated with [AF_INET]192.0.2.88:60344"
    );
    assert_eq!(
        p["end"]["evidence"][0]["text"],
        "2024-06-18 11:12:35 t.moreau/192.0.2.88:60344 CC-EEN exit message received by peer"
    );

    let honest = ledger.json(&["reports", "prefill", "R-2024-0312-01", "--json"]);
    assert_eq!(honest["start"]["value"], "2024-03-12T08:14:03Z");
    assert_eq!(honest["end"]["value"], "2024-03-12T08:47:55Z");
    assert_eq!(
        honest["devices"]["value"],
        json!(["NVR-01", "CAM-ENTREE", "SWITCH-POE"])
    );
    assert_eq!(honest["tunnel"]["value"], "vpn-lyon");
    assert_eq!(honest["devices"]["evidence"].as_array().unwrap().len(), 3);
}

#[test]
fn prefill_write_fills_a_draft_and_never_a_signed_report() {
    let ledger = sample_ledger();
    ledger.ok(&["reports", "prefill", "R-2024-0618-01", "--write"]);
    let r = ledger.json(&["reports", "show", "R-2024-0618-01", "--json"]);
    assert_eq!(r["remote"]["start"], "2024-06-18T07:41:58Z");
    assert_eq!(r["remote"]["end"], "2024-06-18T09:12:35Z");
    assert_eq!(r["remote"]["tunnel"], "vpn-annecy");
    assert_eq!(ledger.count("report_versions"), 1);

    let out = ledger.run(&["reports", "prefill", "R-2024-0312-01", "--write"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is signed"));
    let unchanged = ledger.json(&["reports", "show", "R-2024-0312-01", "--json"]);
    assert_eq!(unchanged["remote"]["start"], "2024-03-12T08:15:00Z");
}

fn kinds(audit: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_owned(),
                d["report"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn audit_lists_each_discrepancy_of_the_sample_with_evidence() {
    let ledger = sample_ledger();
    let audit = ledger.json(&["audit", "--json"]);
    let want: Vec<(String, String)> = [
        ("device_not_declared", "R-2024-0312-01"),
        ("duration_overstated", "R-2024-0312-02"),
        ("end_mismatch", "R-2024-0312-02"),
        ("no_session", "R-2024-0313-01"),
        ("tunnel_mismatch", "R-2024-0312-02"),
    ]
    .iter()
    .map(|(k, r)| (k.to_string(), r.to_string()))
    .collect();
    assert_eq!(kinds(&audit), want);

    let find = |kind: &str| {
        audit
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["kind"] == kind)
            .unwrap()
            .clone()
    };
    let device = find("device_not_declared");
    assert_eq!(device["observed"], "SWITCH-POE");
    assert_eq!(device["severity"], "warning");
    assert_eq!(device["site"], "lyon-01");
    assert_eq!(device["technician"], "j.martin");
    assert!(device["evidence"][0]["text"]
        .as_str()
        .unwrap()
        .contains("DST=192.168.30.5"));
    let end = find("end_mismatch");
    assert_eq!(end["expected"], "2024-03-12T09:30:00Z");
    assert_eq!(end["observed"], "2024-03-12T09:05:31Z");
    assert!(end["evidence"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Inactivity timeout (--ping-restart)"));
    let tunnel = find("tunnel_mismatch");
    assert_eq!(tunnel["expected"], "vpn-paris");
    assert_eq!(tunnel["observed"], json!(["vpn-lyon"]));
    assert_eq!(find("no_session")["severity"], "critical");
    assert!(find("no_session")["evidence"]
        .as_array()
        .unwrap()
        .is_empty());

    // Reproducible: the same list twice.
    assert_eq!(ledger.json(&["audit", "--json"]), audit);
    // Filters.
    let critical = ledger.json(&["audit", "--json", "--severity", "critical"]);
    assert_eq!(critical.as_array().unwrap().len(), 2);
    let one_kind = ledger.json(&["audit", "--json", "--kind", "end_mismatch"]);
    assert_eq!(one_kind.as_array().unwrap().len(), 1);
    let other_site = ledger.json(&["audit", "--json", "--site", "annecy-01"]);
    assert!(other_site.as_array().unwrap().is_empty());
}

#[test]
fn an_explained_discrepancy_stays_explained() {
    let ledger = sample_ledger();
    let audit = ledger.json(&["audit", "--json", "--kind", "no_session"]);
    let id = audit[0]["id"].as_str().unwrap().to_owned();
    ledger.ok(&[
        "audit",
        "resolve",
        &id,
        "--note",
        "intervention done by phone, report mode is wrong",
        "--by",
        "a.auditor",
    ]);
    let again = ledger.json(&["audit", "--json", "--kind", "no_session"]);
    assert_eq!(again[0]["id"], id.as_str());
    assert_eq!(
        again[0]["resolution"]["note"],
        "intervention done by phone, report mode is wrong"
    );
    assert_eq!(again[0]["resolution"]["by"], "a.auditor");
    let out = ledger.run(&["audit", "resolve", "d-000000000000", "--note", "x"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_blank_note_explains_nothing_and_is_refused() {
    let ledger = sample_ledger();
    let audit = ledger.json(&["audit", "--json", "--kind", "no_session"]);
    let id = audit[0]["id"].as_str().unwrap().to_owned();
    for note in ["", "  \t "] {
        let out = ledger.run(&["audit", "resolve", &id, "--note", note, "--by", "a.auditor"]);
        assert_eq!(out.status.code(), Some(2), "note {note:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--note: the note is empty"), "{err}");
    }
    assert_eq!(ledger.count("resolutions"), 0);
    let again = ledger.json(&["audit", "--json", "--kind", "no_session"]);
    assert_eq!(again[0]["id"], id.as_str());
    assert_eq!(again[0]["resolution"], Value::Null);
}

#[test]
fn an_unreported_session_is_found_once() {
    let ledger = Ledger::sample();
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        path_str(&fixture("logs/vpn-lyon-syslog.log")),
    ]);
    let audit = ledger.json(&["audit", "--json"]);
    let k = kinds(&audit);
    assert_eq!(
        k,
        vec![
            ("unreported_session".to_owned(), "-".to_owned()),
            ("unreported_session".to_owned(), "-".to_owned())
        ]
    );
    let users: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["observed"]["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["j.martin", "s.bernard"]);
    assert_eq!(audit[0]["site"], "lyon-01");
    assert_eq!(audit[0]["evidence"].as_array().unwrap().len(), 2);
}

#[test]
fn a_bad_report_imports_nothing_and_names_record_and_field() {
    let ledger = Ledger::sample();
    let path = ledger.dir.path().join("bad.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-1", "site": "lyon-01", "technician": "j.martin", "mode": "remote"},
            {"id": "R-2", "site": "lyon-01", "technician": "j.martin", "mode": "remote",
             "remote": {"start": "2024-03-12 09:15", "end": "2024-03-12 25:00"}}]"#,
    )
    .unwrap();
    let out = ledger.run(&["reports", "import", path_str(&path)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("report 1 (id \"R-2\"): field remote.end:"),
        "{err}"
    );
    assert_eq!(ledger.count("reports"), 0);

    std::fs::write(&path, r#"[{"id": "R-3", "site": "paris-99"}]"#).unwrap();
    let out = ledger.run(&["reports", "import", path_str(&path)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("field site: unknown site \"paris-99\""));

    let out = ledger.run(&["reports", "show", "R-404"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn check_config_lists_every_error_with_file_and_line() {
    let ledger = Ledger::with_config(
        "[defaults]\ntimezone = \"Europe/Paris\"\n\n[[source]]\nname = \"gw\"\nkind = \"syslog\"\n\n[[source]]\nname = \"gw\"\nkind = \"file\"\npath = \"/var/log/x.log\"\n",
    );
    let out = ledger.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let config = path_str(&ledger.config);
    assert!(
        err.contains(&format!(
            "{config}:5: source[0].kind: a syslog source needs udp, tcp or both"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{config}:9: source[1].name: \"gw\" is already the name of the source at line 5"
        )),
        "{err}"
    );

    let typo = Ledger::with_config("[reconcile]\nmatch_margn = \"1h\"\n");
    let out = typo.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2: match_margn: unknown field `match_margn`"),
        "{err}"
    );

    let good = Ledger::sample();
    assert!(good
        .ok(&["check-config"])
        .contains("configuration is valid"));
}

#[test]
fn reports_round_trip_through_csv_with_formulas_escaped() {
    let ledger = sample_ledger();
    let path = ledger.dir.path().join("formula.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-CSV-1", "site": "lyon-01", "date": "2024-03-12", "technician": "j.martin", "mode": "remote",
             "remote": {"start": "2024-03-12 09:15", "end": "2024-03-12 09:48", "devices": ["NVR-01", "CAM-ENTREE"], "tunnel": "vpn-lyon"},
             "diagnosis": {"symptoms": "=HYPERLINK(\"http://example.invalid\")", "hypotheses": ["disk", "stream"], "root_cause": "hardware"},
             "actions": [{"at": "2024-03-12 09:20", "action": "Swapped the disk", "result": "ok"}],
             "parts": [{"designation": "Disk 4 TB", "reference": "HD-4000", "removed_serial": "SN-OLD-1", "installed_serial": "SN-NEW-1"}],
             "tests": [{"test": "Recording 5 min", "result": "recorded", "passed": true}],
             "signatures": {"technician": {"name": "J. Martin", "at": "2024-03-12 09:50"}},
             "status": "draft"}]"#,
    )
    .unwrap();
    ledger.ok(&["reports", "import", path_str(&path)]);
    let csv = ledger.ok(&["reports", "export", "--csv"]);
    assert!(
        csv.starts_with("id,site,date,contract,reason,ticket,technician,mode,"),
        "{csv}"
    );
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://example.invalid\"\")\""),
        "formula not escaped:\n{csv}"
    );
    let before = ledger.json(&["reports", "show", "R-CSV-1", "--json"]);

    // The exported CSV imports into a fresh store as the same reports.
    let other = Ledger::sample();
    let file = other.dir.path().join("reports.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = other.ok(&["reports", "import", path_str(&file)]);
    assert!(out.contains("5 report(s): 5 added"), "{out}");
    // Into the store it came from: nothing changed, no new version (an
    // on-site report's empty remote part included).
    let out = ledger.ok(&["reports", "import", path_str(&file)]);
    assert!(out.contains("5 report(s): 0 added, 0 updated"), "{out}");
    assert!(out.contains("5 unchanged"), "{out}");
    assert_eq!(
        other.json(&["reports", "show", "R-CSV-1", "--json"]),
        before
    );
    assert_eq!(
        other.json(&["reports", "show", "R-2024-0312-01", "--json"]),
        ledger.json(&["reports", "show", "R-2024-0312-01", "--json"])
    );

    // A bad cell names its line and field.
    std::fs::write(&file, "id,site,travel_minutes\nR-X,lyon-01,forty\n").unwrap();
    let out = other.run(&["reports", "import", path_str(&file)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2: field travel_minutes: \"forty\" is not a number of minutes"),
        "{err}"
    );
}

#[test]
fn a_text_starting_with_a_quote_comes_back_from_csv_unchanged() {
    let ledger = Ledger::sample();
    let path = ledger.dir.path().join("q.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-Q-1", "site": "lyon-01", "date": "2024-03-12", "technician": "j.martin", "mode": "remote",
             "ticket": "'-42",
             "diagnosis": {"symptoms": "'quoted by the client'", "details": "''"},
             "recommendations": "'=not a formula",
             "signatures": {"technician": {"name": "J. Martin", "at": "2024-03-12 09:50"}},
             "status": "signed"}]"#,
    )
    .unwrap();
    ledger.ok(&["reports", "import", path_str(&path)]);
    let before = ledger.json(&["reports", "show", "R-Q-1", "--json"]);

    let csv = ledger.ok(&["reports", "export", "--csv"]);
    assert!(csv.contains(",''-42,"), "{csv}");
    assert!(csv.contains(",''quoted by the client',"), "{csv}");
    assert!(csv.contains(",''=not a formula,"), "{csv}");
    let file = ledger.dir.path().join("q.csv");
    std::fs::write(&file, &csv).unwrap();
    let out = ledger.ok(&["reports", "import", path_str(&file)]);
    assert!(out.contains("1 report(s): 0 added, 0 updated"), "{out}");
    assert!(out.contains("1 unchanged"), "{out}");

    let after = ledger.json(&["reports", "show", "R-Q-1", "--json"]);
    assert_eq!(after["recommendations"], "'=not a formula");
    assert_eq!(after["ticket"], "'-42");
    assert_eq!(after["diagnosis"]["symptoms"], "'quoted by the client'");
    assert_eq!(after["diagnosis"]["details"], "''");
    assert_eq!(after, before);

    // A file written by hand, or by an older version that left a quote
    // before ordinary text as it was, reads as before: the quote stays
    // before text, and goes before a formula that export escaped.
    std::fs::write(
        &file,
        "id,site,technician,mode,ticket,recommendations\nR-Q-2,lyon-01,j.martin,remote,'T-7,'=1+1\n",
    )
    .unwrap();
    ledger.ok(&["reports", "import", path_str(&file)]);
    let old = ledger.json(&["reports", "show", "R-Q-2", "--json"]);
    assert_eq!(old["ticket"], "'T-7");
    assert_eq!(old["recommendations"], "=1+1");
}

#[test]
fn a_replaced_part_gives_the_device_its_new_serial() {
    let ledger = sample_ledger();
    let path = ledger.dir.path().join("part.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-PART-1", "site": "lyon-01", "date": "2024-03-14", "technician": "j.martin", "mode": "on_site",
             "on_site": {"arrival": "2024-03-14 09:00", "departure": "2024-03-14 11:00", "travel_minutes": 35},
             "parts": [{"designation": "Recorder", "reference": "NVR-16CH", "removed_serial": "SN-NVR-0001", "installed_serial": "SN-NVR-0777"}],
             "status": "signed"}]"#,
    )
    .unwrap();
    let out = ledger.ok(&["reports", "import", path_str(&path)]);
    assert!(
        out.contains("1 device serial(s) changed by replaced parts"),
        "{out}"
    );
    let check = ledger.ok(&["check-config"]);
    assert!(
        check.contains("lyon-01 NVR-01: serial SN-NVR-0001 in the configuration, SN-NVR-0777 since report R-PART-1 (2024-03-14T10:00:00Z)"),
        "{check}"
    );
}

#[test]
fn a_technician_lists_sessions_no_report_covers_yet() {
    let ledger = Ledger::sample();
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        path_str(&fixture("logs/vpn-lyon-syslog.log")),
    ]);
    let path = ledger.dir.path().join("one.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-1", "site": "lyon-01", "date": "2024-03-12", "technician": "s.bernard", "mode": "remote",
             "remote": {"start": "2024-03-12 09:21", "end": "2024-03-12 10:05", "devices": ["NVR-01"], "tunnel": "vpn-lyon"}}]"#,
    )
    .unwrap();
    ledger.ok(&["reports", "import", path_str(&path)]);
    let mine = ledger.json(&["sessions", "--json", "--user", "j.martin", "--unreported"]);
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["start"], "2024-03-12T08:14:03Z");
    let theirs = ledger.json(&["sessions", "--json", "--user", "s.bernard", "--unreported"]);
    assert!(theirs.as_array().unwrap().is_empty());
}

/// One gateway, gw1, whose tunnel is site-a's; alice and carol are
/// technicians, bob is no one's identity.
const SITE_A_CONFIG: &str = r#"
[[source]]
name = "gw1"
kind = "file"
path = "/var/log/openvpn/gw1.log"
gateway = "gw1"
timezone = "Europe/Paris"

[[site]]
id = "site-a"
client = "Example Client SA"
tunnels = ["gw1"]
subnets = ["192.168.50.0/24"]

  [[site.device]]
  name = "PLC-1"
  ip = "192.168.50.10"
  kind = "controller"
  serial = "SN-PLC-0001"

[[technician]]
id = "alice"
name = "Alice"
vpn = ["alice"]

[[technician]]
id = "carol"
name = "Carol"
vpn = ["carol"]
"#;

/// A ledger of site-a with gw1's log ingested (March 2024, Paris time).
fn site_a_ledger(log: &str) -> Ledger {
    let ledger = Ledger::with_config(SITE_A_CONFIG);
    let path = ledger.dir.path().join("gw1.log");
    std::fs::write(&path, log).unwrap();
    ledger.ok(&[
        "ingest",
        "--year",
        "2024",
        "--source",
        "gw1",
        path_str(&path),
    ]);
    ledger
}

/// (session, technician, observed, evidence texts) of each finding, after
/// checking that every finding is an unreported session at site-a.
fn unreported_at_site_a(audit: &Value) -> Vec<(Value, Value, Value, Vec<String>)> {
    audit
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["kind"], "unreported_session", "{d:#}");
            assert_eq!(d["severity"], "warning", "{d:#}");
            assert_eq!(d["report"], Value::Null, "{d:#}");
            assert_eq!(d["site"], "site-a", "{d:#}");
            let texts = d["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["text"].as_str().unwrap().to_owned())
                .collect();
            (
                d["session"].clone(),
                d["technician"].clone(),
                d["observed"].clone(),
                texts,
            )
        })
        .collect()
}

#[test]
fn sessions_through_a_sites_tunnel_that_no_report_covers_are_unreported() {
    // Three visits of alice through gw1, site-a's tunnel, none reaching a
    // device; the last is still open.
    let ledger = site_a_ledger(
        "Mar  4 09:00:02 gw1 openvpn[2210]: 198.51.100.23:51734 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51734
Mar  4 09:00:02 gw1 openvpn[2210]: alice/198.51.100.23:51734 MULTI: primary virtual IP for alice/198.51.100.23:51734: 10.8.0.6
Mar  4 09:40:11 gw1 openvpn[2210]: alice/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting
Mar  5 14:00:05 gw1 openvpn[2210]: 198.51.100.23:51800 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51800
Mar  5 14:00:05 gw1 openvpn[2210]: alice/198.51.100.23:51800 MULTI: primary virtual IP for alice/198.51.100.23:51800: 10.8.0.6
Mar  5 14:20:30 gw1 openvpn[2210]: alice/198.51.100.23:51800 SIGTERM[soft,remote-exit] received, client-instance exiting
Mar  6 16:00:09 gw1 openvpn[2210]: 198.51.100.23:51911 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51911
Mar  6 16:00:09 gw1 openvpn[2210]: alice/198.51.100.23:51911 MULTI: primary virtual IP for alice/198.51.100.23:51911: 10.8.0.6
",
    );
    let sessions = ledger.sessions();
    assert_eq!(sessions.len(), 3);
    for s in &sessions {
        assert_eq!(s["sites"], json!(["site-a"]));
        assert_eq!(s["devices"], json!([]));
    }
    let unreported = ledger.json(&["sessions", "--json", "--unreported"]);
    assert_eq!(unreported.as_array().unwrap().len(), 3);

    // One finding per visit, in the order they began; no session_open, as
    // no report claims these sessions.
    let audit = ledger.json(&["audit", "--json"]);
    assert_eq!(
        unreported_at_site_a(&audit),
        vec![
            (
                sessions[0]["id"].clone(),
                json!("alice"),
                json!({"user": "alice", "start": "2024-03-04T08:00:02Z",
                       "end": "2024-03-04T08:40:11Z", "devices": []}),
                vec![
                    "Mar  4 09:00:02 gw1 openvpn[2210]: 198.51.100.23:51734 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51734".to_owned(),
                    "Mar  4 09:40:11 gw1 openvpn[2210]: alice/198.51.100.23:51734 SIGTERM[soft,remote-exit] received, client-instance exiting".to_owned(),
                ],
            ),
            (
                sessions[1]["id"].clone(),
                json!("alice"),
                json!({"user": "alice", "start": "2024-03-05T13:00:05Z",
                       "end": "2024-03-05T13:20:30Z", "devices": []}),
                vec![
                    "Mar  5 14:00:05 gw1 openvpn[2210]: 198.51.100.23:51800 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51800".to_owned(),
                    "Mar  5 14:20:30 gw1 openvpn[2210]: alice/198.51.100.23:51800 SIGTERM[soft,remote-exit] received, client-instance exiting".to_owned(),
                ],
            ),
            (
                sessions[2]["id"].clone(),
                json!("alice"),
                json!({"user": "alice", "start": "2024-03-06T15:00:09Z",
                       "end": null, "devices": []}),
                vec![
                    "Mar  6 16:00:09 gw1 openvpn[2210]: 198.51.100.23:51911 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51911".to_owned(),
                ],
            ),
        ]
    );
    assert_eq!(
        audit[0]["detail"],
        "alice was at site site-a (through its tunnel gw1) and no report covers it"
    );
    // The evidence names where each line is.
    let place = |e: &Value| (e["source"].clone(), e["line"].clone());
    let places: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["evidence"].as_array().unwrap().iter().map(place))
        .collect();
    let gw1 = |n: u64| (json!("gw1"), json!(n));
    assert_eq!(places, vec![gw1(1), gw1(3), gw1(4), gw1(6), gw1(7)]);
    let by_technician = ledger.json(&["audit", "--json", "--technician", "alice"]);
    assert_eq!(by_technician, audit);
}

#[test]
fn a_session_at_a_site_that_no_report_covers_is_unreported_whoever_it_is() {
    // carol's session is covered by her report; bob is no technician's
    // identity and reached PLC-1 (an auditor wants to see that most);
    // alice reached PLC-1 and wrote nothing.
    let ledger = site_a_ledger(
        "Mar  5 10:00:04 gw1 openvpn[2210]: 192.0.2.40:40100 [carol] Peer Connection Initiated with [AF_INET]192.0.2.40:40100
Mar  5 10:00:04 gw1 openvpn[2210]: carol/192.0.2.40:40100 MULTI: primary virtual IP for carol/192.0.2.40:40100: 10.8.0.10
Mar  5 10:05:12 gw1 kernel: [90312.118204] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.10 DST=192.168.50.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40211 DF PROTO=TCP SPT=50412 DPT=502 WINDOW=64240 RES=0x00 SYN URGP=0
Mar  5 10:29:50 gw1 openvpn[2210]: carol/192.0.2.40:40100 SIGTERM[soft,remote-exit] received, client-instance exiting
Mar  5 11:00:03 gw1 openvpn[2210]: 203.0.113.9:52000 [bob] Peer Connection Initiated with [AF_INET]203.0.113.9:52000
Mar  5 11:00:03 gw1 openvpn[2210]: bob/203.0.113.9:52000 MULTI: primary virtual IP for bob/203.0.113.9:52000: 10.8.0.14
Mar  5 11:02:00 gw1 kernel: [93580.502911] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.14 DST=192.168.50.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1187 DF PROTO=TCP SPT=50418 DPT=502 WINDOW=64240 RES=0x00 SYN URGP=0
Mar  5 11:20:00 gw1 openvpn[2210]: bob/203.0.113.9:52000 SIGTERM[soft,remote-exit] received, client-instance exiting
Mar  5 14:00:05 gw1 openvpn[2210]: 198.51.100.23:51800 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51800
Mar  5 14:00:05 gw1 openvpn[2210]: alice/198.51.100.23:51800 MULTI: primary virtual IP for alice/198.51.100.23:51800: 10.8.0.6
Mar  5 14:03:10 gw1 kernel: [104770.774120] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.50.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=7742 DF PROTO=TCP SPT=43002 DPT=502 WINDOW=64240 RES=0x00 SYN URGP=0
Mar  5 14:20:30 gw1 openvpn[2210]: alice/198.51.100.23:51800 SIGTERM[soft,remote-exit] received, client-instance exiting
",
    );
    let path = ledger.dir.path().join("carol.json");
    std::fs::write(
        &path,
        r#"[{"id": "R-A-1", "site": "site-a", "date": "2024-03-05", "technician": "carol", "mode": "remote",
             "remote": {"start": "2024-03-05 10:00", "end": "2024-03-05 10:30", "devices": ["PLC-1"], "tunnel": "gw1"},
             "status": "signed"}]"#,
    )
    .unwrap();
    ledger.ok(&["reports", "import", path_str(&path)]);

    let sessions = ledger.sessions();
    let users: Vec<&str> = sessions
        .iter()
        .map(|s| s["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, vec!["carol", "bob", "alice"]);
    assert_eq!(sessions[1]["technician"], Value::Null);
    assert_eq!(sessions[1]["devices"][0]["name"], "PLC-1");

    let audit = ledger.json(&["audit", "--json"]);
    assert_eq!(
        unreported_at_site_a(&audit),
        vec![(
            sessions[1]["id"].clone(),
            Value::Null,
            json!({"user": "bob", "start": "2024-03-05T10:00:03Z",
                   "end": "2024-03-05T10:20:00Z", "devices": ["192.168.50.10"]}),
            vec![
                "Mar  5 11:00:03 gw1 openvpn[2210]: 203.0.113.9:52000 [bob] Peer Connection Initiated with [AF_INET]203.0.113.9:52000".to_owned(),
                "Mar  5 11:20:00 gw1 openvpn[2210]: bob/203.0.113.9:52000 SIGTERM[soft,remote-exit] received, client-instance exiting".to_owned(),
            ],
        ), (
            sessions[2]["id"].clone(),
            json!("alice"),
            json!({"user": "alice", "start": "2024-03-05T13:00:05Z",
                   "end": "2024-03-05T13:20:30Z", "devices": ["192.168.50.10"]}),
            vec![
                "Mar  5 14:00:05 gw1 openvpn[2210]: 198.51.100.23:51800 [alice] Peer Connection Initiated with [AF_INET]198.51.100.23:51800".to_owned(),
                "Mar  5 14:20:30 gw1 openvpn[2210]: alice/198.51.100.23:51800 SIGTERM[soft,remote-exit] received, client-instance exiting".to_owned(),
            ],
        )]
    );
    assert_eq!(
        audit[1]["detail"],
        "alice was at site site-a (through its tunnel gw1, reaching 192.168.50.10) and no report covers it"
    );
}
