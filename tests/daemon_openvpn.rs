//! `vpnledger run` tailing the log of a real OpenVPN 2.6 server on
//! loopback: while the client is connected, `sessions --json` shows its
//! session open; once the client has left with an exit notification, the
//! same session is closed, at the client's exit, by `user_exit`. Nothing
//! is ingested by hand: the daemon follows the file as OpenVPN writes it.

#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/openvpn.rs"]
mod openvpn;
mod support;

use std::fs;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use serde_json::Value;

use daemon::{file_sources_config, wait_until, Daemon};
use openvpn::{
    client_port, fail, utc_field, OpenVpn, Setup, EXIT_TIMEOUT, READY_LINE, START_TIMEOUT, USER,
    VIRTUAL_IP,
};
use support::Ledger;

const SOURCE: &str = "vpn-loopback";
/// How far a logged time may be from the test's own clock: OpenVPN's log
/// has whole seconds, and the processes take a moment to react.
const SLACK: TimeDelta = TimeDelta::seconds(2);
/// How long the daemon may take to show what OpenVPN logged: generous,
/// for a loaded machine; sessions are rebuilt about once a second.
const SHOW_TIMEOUT: Duration = Duration::from_secs(30);

/// The sessions of [`USER`]; fails when there is more than one.
fn user_session(ledger: &Ledger) -> Option<Value> {
    let sessions: Vec<Value> = ledger
        .sessions()
        .into_iter()
        .filter(|s| s["user"] == USER)
        .collect();
    assert!(sessions.len() <= 1, "more than one session: {sessions:#?}");
    sessions.into_iter().next()
}

#[test]
fn daemon_shows_an_openvpn_session_open_then_closed() {
    let ledger = Ledger::new();
    let dir = ledger.dir.path();
    let setup = Setup::new(dir);
    let server_log = dir.join("server.log");
    let client_log = dir.join("client.log");
    fs::write(
        &ledger.config,
        file_sources_config(&[(SOURCE, &server_log)], ""),
    )
    .expect("write config");

    // The daemon first, waiting for a log that does not exist yet.
    let mut daemon = Daemon::start(&ledger);
    let mut server = OpenVpn::spawn(&setup.openvpn, "server", dir, &server_log);
    let context = |d: &Daemon| format!("\n----- vpnledger log -----\n{}", d.log());
    if let Err(why) = server.wait_for_log(&[READY_LINE], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN server did not start: {why}"),
            &[&server],
            &context(&daemon),
        );
    }

    let t_connect = Utc::now();
    let mut client = OpenVpn::spawn(&setup.openvpn, "client", dir, &client_log);
    if let Err(why) = client.wait_for_log(&[READY_LINE], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN client did not connect: {why}"),
            &[&server, &client],
            &context(&daemon),
        );
    }
    let t_ready = Utc::now();

    // Connected: the session shows, open.
    let open = wait_until(
        "an open session of the client",
        SHOW_TIMEOUT,
        || match user_session(&ledger) {
            Some(s) if s["virtual_ip"] == VIRTUAL_IP => Ok(s),
            other => Err(format!("{other:?}\n{}", context(&daemon))),
        },
    );
    let ctx = format!(
        "open session {open:#}\nt_connect={t_connect:?} t_ready={t_ready:?}\n\
         ----- server log -----\n{}{}",
        server.read_log(),
        context(&daemon)
    );
    assert_eq!(open["end"], Value::Null, "end while connected\n{ctx}");
    assert_eq!(open["end_reason"], Value::Null, "end_reason\n{ctx}");
    assert_eq!(open["gateway"], SOURCE, "gateway\n{ctx}");
    assert_eq!(open["remote_ip"], "127.0.0.1", "remote_ip\n{ctx}");
    let port = client_port(&server.read_log())
        .unwrap_or_else(|| panic!("no client port in the server log\n{ctx}"));
    assert_eq!(open["remote_port"], port, "remote_port\n{ctx}");
    let start = utc_field(&open, "start", &ctx);
    assert!(
        start >= t_connect - SLACK && start <= t_ready + SLACK,
        "start {start} is not between t_connect - 2 s and t_ready + 2 s\n{ctx}"
    );

    // The client leaves: the same session, closed at its exit.
    let t_exit = Utc::now();
    client.terminate();
    let closed = wait_until(
        "the client's session to close",
        SHOW_TIMEOUT,
        || match user_session(&ledger) {
            Some(s) if !s["end"].is_null() => Ok(s),
            other => Err(format!(
                "{other:?}\n----- server log -----\n{}{}",
                server.read_log(),
                context(&daemon)
            )),
        },
    );
    let ctx = format!(
        "closed session {closed:#}\nt_exit={t_exit:?}\n----- server log -----\n{}{}",
        server.read_log(),
        context(&daemon)
    );
    assert_eq!(closed["id"], open["id"], "the session keeps its id\n{ctx}");
    assert_eq!(closed["start"], open["start"], "start\n{ctx}");
    assert_eq!(closed["end_reason"], "user_exit", "end_reason\n{ctx}");
    assert_eq!(closed["end_inferred"], false, "end_inferred\n{ctx}");
    let end = utc_field(&closed, "end", &ctx);
    assert!(
        (end - t_exit).abs() <= SLACK,
        "end {end} is more than 2 s from t_exit\n{ctx}"
    );

    // OpenVPN drops the client's instance seconds later: the session
    // neither moves nor doubles.
    if let Err(why) = server.wait_for_log(&["client-instance exiting"], EXIT_TIMEOUT) {
        fail(
            &format!("the server did not drop the client's instance: {why}"),
            &[&server, &client],
            &context(&daemon),
        );
    }
    let dropped_at = fs::metadata(&server_log).expect("stat").len();
    wait_until(
        "the daemon to read the instance's end",
        SHOW_TIMEOUT,
        || {
            let read = daemon::checkpoints(&ledger.db)
                .iter()
                .map(|(offset, _)| *offset as u64)
                .max()
                .unwrap_or(0);
            if read >= dropped_at {
                Ok(())
            } else {
                Err(format!("read to {read} of {dropped_at}"))
            }
        },
    );
    // One rebuild later (they come about once a second).
    std::thread::sleep(Duration::from_millis(2_500));
    let last = user_session(&ledger).expect("the session is still there");
    assert_eq!(
        last, closed,
        "the instance's end changed the session\n{ctx}"
    );
    daemon.stop();
}
