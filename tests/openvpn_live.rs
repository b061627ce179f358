//! End to end against a real OpenVPN 2.6: a server and a client run on
//! loopback, the client connects as `t.moreau` and leaves with an exit
//! notification, and vpnledger, reading the server's `--log` file, must
//! report that one session with the right user, addresses, times and end.
//!
//! Needs the `openvpn` and `openssl` commands and a TUN device (root, or
//! CAP_NET_ADMIN, and `/dev/net/tun`). Where either is missing the test
//! fails and says why: a silent skip would hide that nothing was checked.
//! No traffic goes through the tunnel and neither side touches the host's
//! addresses or routes (`ifconfig-noexec`, `route-noexec`).

#[path = "support/openvpn.rs"]
mod openvpn;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::Value;

use openvpn::{
    client_port, fail, read_lossy, utc_field, write, OpenVpn, Setup, EXIT_TIMEOUT, START_TIMEOUT,
    USER, VIRTUAL_IP,
};

const SOURCE: &str = "vpn-loopback";
/// How far a logged time may be from the test's own clock: OpenVPN's log
/// has whole seconds, and the processes take a moment to react.
const SLACK: TimeDelta = TimeDelta::seconds(2);

#[test]
fn openvpn_session_is_reported() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let setup = Setup::new(dir);
    let openvpn = setup.openvpn;
    let server_log = dir.join("server.log");
    let client_log = dir.join("client.log");

    // Declared after `tmp`, so dropped (killed) before the directory goes.
    let mut server = OpenVpn::spawn(&openvpn, "server", dir, &server_log);
    if let Err(why) = server.wait_for_log(&["Initialization Sequence Completed"], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN server did not start: {why}"),
            &[&server],
            "",
        );
    }

    let t_connect = Utc::now();
    let mut client = OpenVpn::spawn(&openvpn, "client", dir, &client_log);
    if let Err(why) = client.wait_for_log(&["Initialization Sequence Completed"], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN client did not connect: {why}"),
            &[&server, &client],
            "",
        );
    }
    let t_ready = Utc::now();

    sleep(Duration::from_secs(2));
    let t_exit = Utc::now();
    client.terminate();
    let exit_lines = [
        "CC-EEN exit message received by peer",
        "client-instance exiting",
    ];
    if let Err(why) = server.wait_for_log(&exit_lines, EXIT_TIMEOUT) {
        fail(
            &format!("the server never saw the client leave: {why}"),
            &[&server, &client],
            "",
        );
    }
    // OpenVPN 2.6 logs the exit notification at once, then tears the
    // instance down 5 s later ("client-instance exiting"). Let it, so the log
    // holds both lines as a production server writes them: the session must
    // end at the first, and the second must not add or move anything.
    if let Err(why) = server.wait_for_log(&["client-instance exiting"], EXIT_TIMEOUT) {
        fail(
            &format!("the server did not drop the client's instance: {why}"),
            &[&server, &client],
            "",
        );
    }
    // The client leaves by itself after its SIGTERM; the server needs one.
    if let Err(why) = client.wait_exit(EXIT_TIMEOUT) {
        fail(
            &format!("the OpenVPN client did not stop: {why}"),
            &[&server, &client],
            "",
        );
    }
    server.terminate();
    if let Err(why) = server.wait_exit(EXIT_TIMEOUT) {
        fail(
            &format!("the OpenVPN server did not stop: {why}"),
            &[&server, &client],
            "",
        );
    }
    let log = read_lossy(&server_log);

    let ledger = Ledger::new(dir, &log);
    let log_arg = server_log.to_str().expect("UTF-8 temp path");
    ledger.run(&["ingest", "--source", SOURCE, "--tz", "UTC", log_arg]);
    let first = ledger.sessions();
    let ctx = format!(
        "sessions: {first:#}\nt_connect={t_connect:?} t_ready={t_ready:?} t_exit={t_exit:?}\n\
         ----- server log -----\n{log}"
    );

    let sessions = first
        .as_array()
        .unwrap_or_else(|| panic!("sessions is not an array\n{ctx}"));
    assert_eq!(sessions.len(), 1, "exactly one session\n{ctx}");
    let s = &sessions[0];
    for key in [
        "user",
        "start",
        "end",
        "end_reason",
        "end_inferred",
        "gateway",
        "tunnel",
        "virtual_ip",
        "remote_ip",
        "remote_port",
        "bytes_in",
        "bytes_out",
        "devices",
        "continues",
    ] {
        assert!(s.get(key).is_some(), "session has no {key:?}\n{ctx}");
    }
    assert_eq!(s["user"], USER, "user\n{ctx}");
    assert_eq!(s["virtual_ip"], VIRTUAL_IP, "virtual_ip\n{ctx}");
    assert_eq!(s["remote_ip"], "127.0.0.1", "remote_ip\n{ctx}");
    // The client's port is random (`nobind`); the server log names it.
    let client_port =
        client_port(&log).unwrap_or_else(|| panic!("no client port in the log\n{ctx}"));
    assert_eq!(s["remote_port"], client_port, "remote_port\n{ctx}");
    assert_eq!(s["end_reason"], "user_exit", "end_reason\n{ctx}");
    assert_eq!(s["end_inferred"], false, "end_inferred\n{ctx}");
    assert_eq!(s["gateway"], SOURCE, "gateway\n{ctx}");
    assert_eq!(s["tunnel"], SOURCE, "tunnel\n{ctx}");
    assert!(
        s["devices"].as_array().is_some_and(Vec::is_empty),
        "devices must be empty\n{ctx}"
    );

    let start = utc_field(s, "start", &ctx);
    assert!(
        start >= t_connect - SLACK && start <= t_ready + SLACK,
        "start {start} is not between t_connect - 2 s and t_ready + 2 s\n{ctx}"
    );
    let end = utc_field(s, "end", &ctx);
    assert!(
        (end - t_exit).abs() <= SLACK,
        "end {end} is more than 2 s from t_exit\n{ctx}"
    );

    // The same file again: already read, so the ledger must not change.
    ledger.run(&["ingest", "--source", SOURCE, "--tz", "UTC", log_arg]);
    let second = ledger.sessions();
    assert_eq!(
        second, first,
        "ingesting the same log twice changed the sessions\n{ctx}"
    );
}

/// The vpnledger binary with a fresh database and a minimal configuration.
struct Ledger<'a> {
    config: PathBuf,
    db: PathBuf,
    /// The server log, printed when a command fails.
    log: &'a str,
}

impl<'a> Ledger<'a> {
    fn new(dir: &Path, log: &'a str) -> Self {
        let config = dir.join("vpnledger.toml");
        write(&config, "[defaults]\ntimezone = \"UTC\"\n");
        Ledger {
            config,
            db: dir.join("ledger.db"),
            log,
        }
    }

    /// Runs `vpnledger --config .. --db .. <args>`, which must succeed;
    /// returns its standard output.
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_vpnledger"))
            .arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("cannot run vpnledger");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "vpnledger {args:?} failed ({})\n----- stdout -----\n{stdout}\n----- stderr -----\n{}\
             \n----- server log -----\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log,
        );
        stdout
    }

    fn sessions(&self) -> Value {
        let stdout = self.run(&["sessions", "--json"]);
        serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "`sessions --json` is not JSON: {e}\n{stdout}\n----- server log -----\n{}",
                self.log
            )
        })
    }
}
