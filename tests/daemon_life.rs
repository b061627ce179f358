//! `vpnledger run` as a process: killed with SIGKILL mid-ingest, stopped
//! with SIGTERM, reloaded with SIGHUP, started twice on one store, talking
//! to a service manager over `NOTIFY_SOCKET`, and living with sources that
//! fail.
//!
//! Every test runs the real binary on files a thread of the test writes.
//! Lines are netfilter LOG lines, each one unique and carrying one traffic
//! event, with now and then an OpenVPN client connecting or leaving, so a
//! count of records, of distinct raw lines, of traffic rows and of
//! sessions says exactly whether a line was lost or stored twice.

#[path = "support/daemon.rs"]
mod daemon;
mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use daemon::{
    append, checkpoints, file_sources_config, netfilter_line, query_i64, record_counts,
    wait_for_records, wait_until, Daemon, NotifySocket, Rng,
};
use support::Ledger;

/// Kill points and pauses come from here; printed so a failure replays.
const SEED: u64 = 0x0c0f_fee0_d1e5;
/// Waits for the store: generous, for a loaded two-core machine.
const STORE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long SIGTERM may take, start to exit: "within a few seconds".
const STOP_BOUND: Duration = Duration::from_secs(5);

/// Line `n` of the generated logs: every 400th line a client connects,
/// 200 lines later it leaves; the others are traffic.
fn log_line(n: u64) -> String {
    match n % 400 {
        0 => {
            let k = n / 400;
            format!(
                "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.{}:{} [u{k}] Peer Connection \
                 Initiated with [AF_INET]198.51.100.{}:{}\n",
                k % 250,
                20_000 + k,
                k % 250,
                20_000 + k
            )
        }
        200 => {
            let k = n / 400;
            format!(
                "Mar 12 09:47:55 vpn-lyon openvpn[1873]: u{k}/198.51.100.{}:{} \
                 SIGTERM[soft,remote-exit] received, client-instance exiting\n",
                k % 250,
                20_000 + k
            )
        }
        _ => netfilter_line(n),
    }
}

/// What `count` lines from 0 hold: (records, traffic rows, sessions,
/// closed sessions).
fn expected_rows(count: u64) -> (i64, i64, i64, i64) {
    let connects = count.div_ceil(400) as i64;
    let exits = (count + 199) / 400;
    let events = connects + exits as i64;
    (count as i64, count as i64 - events, connects, exits as i64)
}

/// Appends lines `from..to` to `path` in one write.
fn write_lines(path: &Path, from: u64, to: u64) {
    let text: String = (from..to).map(log_line).collect();
    append(path)
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A ledger with one file source per `(name, pattern)` under its `logs/`
/// folder, and that folder.
fn ledger_tailing(sources: &[(&str, &str)], extra: &str) -> (Ledger, PathBuf) {
    let ledger = Ledger::new();
    let logs = ledger.dir.path().join("logs");
    fs::create_dir_all(&logs).expect("logs folder");
    let paths: Vec<(&str, PathBuf)> = sources
        .iter()
        .map(|(name, pattern)| (*name, logs.join(pattern)))
        .collect();
    let refs: Vec<(&str, &Path)> = paths.iter().map(|(n, p)| (*n, p.as_path())).collect();
    fs::write(&ledger.config, file_sources_config(&refs, extra)).expect("write config");
    (ledger, logs)
}

/// Checks the store against `count` lines written from 0: each stored
/// once, with its event or traffic row, and the sessions they make.
fn assert_store_holds(ledger: &Ledger, count: u64, context: &str) {
    let (records, traffic, sessions, closed) = expected_rows(count);
    let counts = wait_for_records(&ledger.db, records, STORE_TIMEOUT);
    assert_eq!(counts.distinct, records, "{context}");
    assert_eq!(
        query_i64(&ledger.db, "SELECT count(*) FROM traffic"),
        traffic,
        "traffic rows; {context}"
    );
    assert_eq!(
        query_i64(&ledger.db, "SELECT count(*) FROM events"),
        records - traffic,
        "event rows; {context}"
    );
    assert_eq!(
        query_i64(&ledger.db, "SELECT count(*) FROM unparsed"),
        0,
        "unparsed; {context}"
    );
    let listed = wait_until("the sessions of every connect line", STORE_TIMEOUT, || {
        let s = ledger.sessions();
        if s.len() as i64 == sessions
            && s.iter().filter(|s| !s["end"].is_null()).count() as i64 == closed
        {
            Ok(s)
        } else {
            Err(format!("{} sessions", s.len()))
        }
    });
    let open: Vec<_> = listed.iter().filter(|s| s["end"].is_null()).collect();
    assert_eq!(open.len() as i64, sessions - closed, "{context}");
}

#[test]
fn kill_9_at_random_points_stores_every_line_once() {
    const LINES: u64 = 40_000;
    const KILLS: usize = 9;
    eprintln!("kill loop seed {SEED:#x}: {KILLS} kills during {LINES} lines");
    let (ledger, logs) = ledger_tailing(&[("fw-lyon", "*.log")], "");
    let live = logs.join("gw.log");
    fs::write(&live, "").expect("create the log");

    // The program logging: chunks of lines at a pace the daemon can follow,
    // so the kills fall while the file grows and while it is read.
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (written, live) = (written.clone(), live.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(SEED ^ 0x77);
            let mut next = 0;
            while next < LINES {
                let to = (next + rng.between(50, 400)).min(LINES);
                write_lines(&live, next, to);
                next = to;
                written.store(next, Ordering::Relaxed);
                sleep(Duration::from_millis(rng.between(5, 25)));
            }
        })
    };

    // Kill, restart, at points drawn from the seed.
    let mut rng = Rng::new(SEED);
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        let mut daemon = Daemon::start(&ledger);
        sleep(Duration::from_millis(rng.between(100, 900)));
        let stored = record_counts(&ledger.db).records;
        daemon.kill9();
        kills.push((written.load(Ordering::Relaxed), stored));
    }
    writer.join().expect("writer thread");
    eprintln!("(lines written, records stored) at each kill: {kills:?}");
    assert!(
        kills.iter().any(|&(w, s)| s > 0 && (s as u64) < w),
        "no kill fell while lines were waiting to be stored: {kills:?}"
    );

    // One last start reads the rest; every line once, the checkpoint at
    // the end of the file, and the evidence chain whole.
    let mut daemon = Daemon::start(&ledger);
    let context = format!("seed {SEED:#x}, kills {kills:?}");
    assert_store_holds(&ledger, LINES, &context);
    let length = fs::metadata(&live).expect("stat").len() as i64;
    assert_eq!(
        checkpoints(&ledger.db),
        vec![(length, LINES as i64)],
        "checkpoint; {context}"
    );
    daemon.stop();
    ledger.ok(&["verify"]);
}

/// A program writing lines until told to stop; counts what it wrote.
struct Writer {
    written: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Writes lines from `first` to `path`, a few hundred at a time.
    fn start(path: &Path, first: u64, seed: u64) -> Writer {
        let written = Arc::new(AtomicU64::new(first));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (written, done, path) = (written.clone(), done.clone(), path.to_owned());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed);
                while !done.load(Ordering::Relaxed) {
                    let from = written.load(Ordering::Relaxed);
                    let to = from + rng.between(20, 200);
                    write_lines(&path, from, to);
                    written.store(to, Ordering::Relaxed);
                    sleep(Duration::from_millis(rng.between(2, 15)));
                }
            })
        };
        Writer {
            written,
            done,
            thread,
        }
    }

    /// Stops writing; returns how many lines were written in all.
    fn finish(self) -> u64 {
        self.done.store(true, Ordering::Relaxed);
        self.thread.join().expect("writer thread");
        self.written.load(Ordering::Relaxed)
    }
}

#[test]
fn sigterm_stores_every_line_written_before_it_and_exits_0_promptly() {
    let (ledger, logs) = ledger_tailing(&[("fw-lyon", "*.log")], "");
    let live = logs.join("gw.log");
    write_lines(&live, 0, 1_000);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 1_000, STORE_TIMEOUT);

    // A program writing steadily, then a burst of 5,000 lines written
    // just before the signal: read, perhaps, but not stored yet.
    let writer = Writer::start(&live, 1_000, SEED);
    sleep(Duration::from_millis(500));
    let before_burst = writer.finish();
    write_lines(&live, before_burst, before_burst + 5_000);
    let before_signal = before_burst + 5_000;
    let (status, took) = daemon.terminate(Duration::from_secs(30));
    let log = daemon.log();
    eprintln!("SIGTERM with {before_signal} lines written: exit {status} after {took:?}");
    assert!(status.success(), "exit status {status}\n{log}");
    assert!(
        took < STOP_BOUND,
        "SIGTERM took {took:?}, more than {STOP_BOUND:?}\n{log}"
    );
    assert!(log.contains("stopping"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    // Everything written before the signal, once, committed with its
    // checkpoint: what the daemon stored is all there is.
    assert_store_holds(&ledger, before_signal, &format!("stored at SIGTERM\n{log}"));
    let length = fs::metadata(&live).expect("stat").len() as i64;
    assert_eq!(
        checkpoints(&ledger.db),
        vec![(length, before_signal as i64)]
    );

    // Logs: lifecycle lines at INFO, never one per record.
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        lines.len() < 20,
        "{} log lines for {before_signal} records:\n{log}",
        lines.len()
    );
    for line in &lines {
        assert!(
            !line.contains("VPN-FWD") && !line.contains("Peer Connection"),
            "a log line per record: {line}"
        );
        assert!(
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|l| line.contains(l)),
            "not a tracing line with its level: {line}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.contains("stopped") && l.contains(&format!("records={before_signal}"))),
        "the last line says how many records this run stored\n{log}"
    );
}

#[test]
fn sighup_applies_a_good_configuration_and_refuses_a_bad_one() {
    let (ledger, logs) = ledger_tailing(&[("fw-a", "a/*.log")], "");
    let (dir_a, dir_b) = (logs.join("a"), logs.join("b"));
    fs::create_dir_all(&dir_a).expect("folder a");
    fs::create_dir_all(&dir_b).expect("folder b");
    let (log_a, log_b) = (dir_a.join("gw.log"), dir_b.join("gw.log"));
    // Distinct lines in each file: a from 0, b from 100,000.
    write_lines(&log_a, 0, 100);
    let b_line = |n: u64| netfilter_line(100_000 + n);
    let write_b = |from: u64, to: u64| {
        let text: String = (from..to).map(b_line).collect();
        append(&log_b).write_all(text.as_bytes()).expect("write b");
    };
    write_b(0, 50);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 100, STORE_TIMEOUT);

    // A good configuration adds source b: its lines start being stored.
    let good = file_sources_config(
        &[
            ("fw-a", &dir_a.join("*.log")),
            ("fw-b", &dir_b.join("*.log")),
        ],
        "",
    );
    fs::write(&ledger.config, &good).expect("write config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("configuration reloaded", STORE_TIMEOUT);
    let log = daemon.log();
    let reloaded = log
        .lines()
        .find(|l| l.contains("configuration reloaded"))
        .expect("found above");
    assert!(
        reloaded.contains("started=1")
            && reloaded.contains("unchanged=1")
            && reloaded.contains("stopped=0"),
        "{reloaded}"
    );
    wait_for_records(&ledger.db, 150, STORE_TIMEOUT);

    // A bad one (a misspelt key on line 9) is refused with the file, the
    // line and the field; both sources keep running.
    let bad = good.replacen("path = ", "pathh = ", 1);
    let bad_line = bad
        .lines()
        .position(|l| l.starts_with("pathh"))
        .expect("misspelt")
        + 1;
    fs::write(&ledger.config, &bad).expect("write config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log("configuration refused", STORE_TIMEOUT);
    let log = daemon.log();
    let refused = log
        .lines()
        .find(|l| l.contains("configuration refused"))
        .expect("found above");
    let place = format!("{}:{bad_line}:", ledger.config.display());
    assert!(
        refused.contains(" ERROR ") && refused.contains(&place) && refused.contains("pathh"),
        "the refusal names level, file:line and field ({place} pathh): {refused}"
    );

    // A second bad one, valid TOML but not a valid configuration.
    let duplicate = good.replace("name = \"fw-b\"", "name = \"fw-a\"");
    fs::write(&ledger.config, &duplicate).expect("write config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for_log_count("configuration refused", 2, STORE_TIMEOUT);
    let log = daemon.log();
    let refused = log
        .lines()
        .filter(|l| l.contains("configuration refused"))
        .nth(1)
        .expect("found above");
    assert!(
        refused.contains("source[1].name") && refused.contains("already the name"),
        "{refused}"
    );

    // The old configuration still runs: new lines of both files arrive.
    write_lines(&log_a, 100, 130);
    write_b(50, 70);
    wait_for_records(&ledger.db, 200, STORE_TIMEOUT);
    assert_eq!(daemon.log_count("stopping source"), 0, "{}", daemon.log());
    daemon.stop();
}

/// A minimal inventory for the report fixture: its site, tunnel and
/// technician.
const INVENTORY: &str = r#"
[[site]]
id = "lyon-01"
client = "Example Client SA"
tunnels = ["vpn-lyon"]
subnets = ["192.168.20.0/24"]

[[technician]]
id = "j.martin"
name = "J. Martin"
vpn = ["j.martin"]
"#;

/// A remote report of the inventory's technician, whom no line of the
/// generated logs names.
const REPORT: &str = r#"[{
  "id": "R-2024-0312-01", "site": "lyon-01", "date": "2024-03-12",
  "reason": "fault", "technician": "j.martin", "mode": "remote",
  "remote": {"start": "2024-03-12 09:15", "end": "2024-03-12 09:48",
             "devices": ["192.168.20.10"], "tunnel": "vpn-lyon"},
  "status": "draft"
}]"#;

#[test]
fn a_second_run_is_refused_and_other_commands_work_beside_the_daemon() {
    let (ledger, logs) = ledger_tailing(&[("fw-lyon", "*.log")], INVENTORY);
    let live = logs.join("gw.log");
    write_lines(&live, 0, 2_000);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 2_000, STORE_TIMEOUT);

    // The daemon keeps writing while the other commands run.
    let writer = Writer::start(&live, 2_000, SEED ^ 0x2);

    // A second daemon on the same store: refused, exit 2, a clear reason.
    let second = ledger.run(&["run"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(2), "second run: {stderr}");
    assert!(
        stderr.contains("another `vpnledger run` already holds the store")
            && stderr.contains(ledger.db.to_str().expect("UTF-8")),
        "second run: {stderr}"
    );

    // Reading and writing commands work on the store the daemon holds.
    wait_until(
        "the sessions of the first 2,000 lines",
        STORE_TIMEOUT,
        || {
            let n = ledger.sessions().len();
            if n >= 5 {
                Ok(())
            } else {
                Err(format!("{n} sessions"))
            }
        },
    );
    let report = ledger.dir.path().join("report.json");
    fs::write(&report, REPORT).expect("write the report");
    ledger.ok(&["reports", "import", support::path_str(&report)]);
    let shown = ledger.json(&["reports", "show", "R-2024-0312-01", "--json"]);
    assert_eq!(shown["id"], "R-2024-0312-01");
    assert_eq!(shown["technician"], "j.martin");
    let audit = ledger.json(&["audit", "--json"]);
    let findings = audit.as_array().expect("audit is an array");
    assert!(
        findings
            .iter()
            .any(|f| f["kind"] == "no_session" && f["report"] == "R-2024-0312-01"),
        "the remote report has no session of j.martin: {audit:#}"
    );
    ledger.ok(&["verify"]);

    // The daemon did not notice: it goes on storing every line.
    let written = writer.finish();
    assert_store_holds(&ledger, written, "lines written beside the commands");
    assert!(daemon.log().contains(" INFO "), "{}", daemon.log());
    daemon.stop();

    // Once it stopped, a new `run` starts.
    let mut again = Daemon::start(&ledger);
    again.stop();
}

#[test]
fn notify_socket_gets_ready_status_watchdog_and_stopping() {
    let (ledger, logs) = ledger_tailing(&[("fw-lyon", "*.log")], "");
    let live = logs.join("gw.log");
    write_lines(&live, 0, 1_234);
    let socket = NotifySocket::bind(&ledger.dir.path().join("notify.sock"));
    let socket_path = socket.path.to_str().expect("UTF-8 path").to_owned();
    // A 3 s watchdog, for this very process (WATCHDOG_PID is its pid).
    let watchdog = Duration::from_secs(3);
    let usec = watchdog.as_micros().to_string();
    let mut daemon = Daemon::spawn_with_own_watchdog_pid(
        &ledger,
        &[("NOTIFY_SOCKET", &socket_path), ("WATCHDOG_USEC", &usec)],
    );
    let spawned = Instant::now();
    socket.wait_for("READY=1", 1, daemon::START_TIMEOUT, &daemon, |a| {
        a == "READY=1"
    });
    let first_status = socket.wait_for("STATUS=", 1, daemon::START_TIMEOUT, &daemon, |a| {
        a.starts_with("STATUS=")
    });
    assert!(first_status[0].1.contains("1 source"), "{first_status:?}");

    // STATUS follows what is stored.
    socket.wait_for("STATUS with 1234 records", 1, STORE_TIMEOUT, &daemon, |a| {
        a.starts_with("STATUS=") && a.contains("1234 records")
    });

    // The watchdog is pinged again and again, never as late as its
    // interval (the first ping counts from the start).
    let pings = socket.wait_for("WATCHDOG=1", 5, STORE_TIMEOUT, &daemon, |a| {
        a == "WATCHDOG=1"
    });
    let mut last = spawned;
    for (at, _) in &pings {
        let gap = at.duration_since(last);
        assert!(
            gap < watchdog,
            "a watchdog ping came {gap:?} after the previous one (interval {watchdog:?})\n{}",
            daemon.log()
        );
        last = *at;
    }

    // SIGTERM: STOPPING=1, then exit 0.
    daemon.stop();
    socket.wait_for("STOPPING=1", 1, STORE_TIMEOUT, &daemon, |a| {
        a == "STOPPING=1"
    });
}

#[test]
fn watchdog_of_another_process_is_not_pinged() {
    let (ledger, logs) = ledger_tailing(&[("fw-lyon", "*.log")], "");
    write_lines(&logs.join("gw.log"), 0, 10);
    let socket = NotifySocket::bind(&ledger.dir.path().join("notify.sock"));
    let socket_path = socket.path.to_str().expect("UTF-8 path").to_owned();
    // WATCHDOG_PID names pid 1: the watchdog is someone else's.
    let mut daemon = Daemon::start_with(
        &ledger,
        &[
            ("NOTIFY_SOCKET", &socket_path),
            ("WATCHDOG_USEC", "1000000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    socket.wait_for("READY=1", 1, daemon::START_TIMEOUT, &daemon, |a| {
        a == "READY=1"
    });
    wait_for_records(&ledger.db, 10, STORE_TIMEOUT);
    daemon.stop();
    socket.wait_for("STOPPING=1", 1, STORE_TIMEOUT, &daemon, |a| {
        a == "STOPPING=1"
    });
    let pings = socket
        .assignments()
        .into_iter()
        .filter(|(_, a)| a == "WATCHDOG=1")
        .count();
    assert_eq!(pings, 0, "{:?}", socket.assignments());
}

#[test]
fn failing_sources_are_reported_retried_and_never_stop_the_others() {
    // Held by the test: the syslog source cannot bind it at first.
    let holder = std::net::UdpSocket::bind(("127.0.0.1", 0)).expect("hold a port");
    let port = holder.local_addr().expect("held port").port();
    let extra =
        format!("\n[[source]]\nname = \"relay\"\nkind = \"syslog\"\nudp = \"127.0.0.1:{port}\"\n");
    let (ledger, logs) = ledger_tailing(
        &[
            ("present", "present.log"),
            ("later-file", "later.log"),
            ("later-folder", "not-yet/*.log"),
        ],
        &extra,
    );
    write_lines(&logs.join("present.log"), 0, 100);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 100, STORE_TIMEOUT);

    // Each failure is reported: the files not there, the port in use.
    daemon.wait_for_log("source failed; starting it again later", STORE_TIMEOUT);
    let log = daemon.log();
    for name in ["later-file", "later-folder"] {
        assert!(
            log.lines()
                .any(|l| l.contains("no file matches yet") && l.contains(&format!("source={name}"))),
            "{name} not reported\n{log}"
        );
    }
    assert!(
        log.lines().any(|l| l.contains("source failed")
            && l.contains("source=relay")
            && l.contains(" ERROR ")),
        "{log}"
    );

    // The source that works goes on.
    write_lines(&logs.join("present.log"), 100, 150);
    wait_for_records(&ledger.db, 150, STORE_TIMEOUT);

    // The missing file, then the missing folder, appear: read from their
    // first line.
    let later = |n: u64| netfilter_line(200_000 + n);
    fs::write(
        logs.join("later.log"),
        (0..40).map(later).collect::<String>(),
    )
    .expect("write");
    wait_for_records(&ledger.db, 190, STORE_TIMEOUT);
    fs::create_dir_all(logs.join("not-yet")).expect("folder");
    fs::write(
        logs.join("not-yet/gw.log"),
        (40..70).map(later).collect::<String>(),
    )
    .expect("write");
    wait_for_records(&ledger.db, 220, STORE_TIMEOUT);

    // The port is freed: the listener starts at its next try and stores
    // what it receives.
    drop(holder);
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("sender");
    wait_until(
        "the syslog listener to store a message",
        STORE_TIMEOUT,
        || {
            let n = record_counts(&ledger.db).records;
            if n > 220 {
                return Ok(());
            }
            sender
                .send_to(
                    format!("<4>{}", netfilter_line(300_000)).as_bytes(),
                    ("127.0.0.1", port),
                )
                .map_err(|e| e.to_string())?;
            sleep(Duration::from_millis(200));
            Err(format!("{n} records"))
        },
    );
    daemon.stop();
}
