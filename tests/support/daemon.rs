//! Runs `vpnledger run` for the daemon tests: the real binary on a store
//! of its own, its log collected, and killed on every way out of a test.
//!
//! Every wait is bounded and says what it waited for; anything random
//! comes from a [`Rng`] with a fixed seed, so a failure can be replayed.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::support::Ledger;

/// How long the daemon may take to say it runs.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `vpnledger run`. Dropping it kills the process, so no exit
/// path of a test, a panic included, leaves one behind.
pub struct Daemon {
    child: Child,
    /// Its standard error (the tracing log), line by line as it comes.
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `run` and waits until it says it runs.
    pub fn start(ledger: &Ledger) -> Daemon {
        Daemon::start_with(ledger, &[])
    }

    /// Starts `run` with more environment variables, and waits until it
    /// says it runs.
    pub fn start_with(ledger: &Ledger, env: &[(&str, &str)]) -> Daemon {
        let daemon = Daemon::spawn(ledger, env);
        daemon.wait_for_log("vpnledger running", START_TIMEOUT);
        daemon
    }

    /// Starts `run` without waiting for anything.
    pub fn spawn(ledger: &Ledger, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_command(ledger.command(&["run"]), env)
    }

    /// Starts `run` with `WATCHDOG_PID` set to its own pid, as systemd
    /// does: a shell exports its pid and `exec`s the daemon in its place.
    pub fn spawn_with_own_watchdog_pid(ledger: &Ledger, env: &[(&str, &str)]) -> Daemon {
        let run = ledger.command(&["run"]);
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("WATCHDOG_PID=$$; export WATCHDOG_PID; exec \"$0\" \"$@\"")
            .arg(run.get_program())
            .args(run.get_args());
        Daemon::spawn_command(command, env)
    }

    /// Starts `command` (a `run`) with the daemon tests' environment.
    fn spawn_command(mut command: std::process::Command, env: &[(&str, &str)]) -> Daemon {
        command
            .stdin(Stdio::null())
            .env("VPNLEDGER_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start vpnledger run");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let collected = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut log = collected.lock().expect("log lock");
                log.push_str(&line);
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    /// How many log lines hold `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until the log holds `needle`; fails with the log otherwise.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_for_log_count(needle, 1, timeout);
    }

    /// Waits until `count` log lines hold `needle`.
    pub fn wait_for_log_count(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.log_count(needle) < count {
            if Instant::now() >= deadline {
                panic!(
                    "vpnledger did not log {needle:?} {count} time(s) within {timeout:?}\n----- log -----\n{}",
                    self.log()
                );
            }
            sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.pid());
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; returns the exit status and how long the stop took. Fails
    /// when the daemon is still running after `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let asked = Instant::now();
        self.signal(libc::SIGTERM);
        match self.wait_exit(timeout) {
            Some(status) => (status, asked.elapsed()),
            None => panic!(
                "vpnledger still runs {timeout:?} after SIGTERM\n----- log -----\n{}",
                self.log()
            ),
        }
    }

    /// SIGTERM, which must end the process cleanly (exit 0) within 10 s.
    pub fn stop(&mut self) {
        let (status, _) = self.terminate(Duration::from_secs(10));
        assert!(
            status.success(),
            "vpnledger run exited with {status} after SIGTERM\n----- log -----\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `probe` until it gives a value; fails with `what` (and what the
/// probe last said) after `timeout`.
/// A file opened for appending, as a program that logs opens it.
pub fn append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() >= deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
                }
            }
        }
        sleep(Duration::from_millis(50));
    }
}

/// Rows stored from log lines: all of them, and distinct raw texts. Equal
/// when nothing was stored twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub records: i64,
    pub distinct: i64,
}

/// The counts in `records` (0 while the store is not created yet).
pub fn record_counts(db: &Path) -> Counts {
    let query = |conn: &rusqlite::Connection| -> rusqlite::Result<Counts> {
        conn.query_row(
            "SELECT count(*), count(DISTINCT raw) FROM records",
            [],
            |r| {
                Ok(Counts {
                    records: r.get(0)?,
                    distinct: r.get(1)?,
                })
            },
        )
    };
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Counts {
            records: 0,
            distinct: 0,
        };
    };
    let _ = conn.busy_timeout(Duration::from_secs(10));
    query(&conn).unwrap_or(Counts {
        records: 0,
        distinct: 0,
    })
}

/// One value from the store.
pub fn query_i64(db: &Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Waits until `records` holds exactly `expected` rows, then checks that
/// none is there twice. Fails at once when there are more.
pub fn wait_for_records(db: &Path, expected: i64, timeout: Duration) -> Counts {
    let counts = wait_until(&format!("{expected} records"), timeout, || {
        let c = record_counts(db);
        assert!(
            c.records <= expected,
            "more records than lines written: {c:?}, expected {expected}"
        );
        if c.records == expected {
            Ok(c)
        } else {
            Err(format!("{c:?}"))
        }
    });
    assert_eq!(
        counts.distinct, expected,
        "a line was stored twice: {counts:?}"
    );
    counts
}

/// A port free on loopback for both TCP and UDP now. The sockets are
/// closed before the daemon binds it; another process taking it in
/// between is unlikely.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind TCP on loopback");
        let port = tcp.local_addr().expect("address").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on loopback");
}

/// xorshift64*: a tiny generator with a fixed seed, so a rotation or kill
/// sequence can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `low..high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// A netfilter LOG line as a Linux gateway writes it through syslog: one
/// allowed connection from a VPN client to a device, so one record with a
/// traffic event. `n` makes it unique (the kernel's uptime stamp and the
/// source port).
pub fn netfilter_line(n: u64) -> String {
    format!(
        "Mar 12 09:15:10 vpn-lyon kernel: [{}.{:06}] VPN-FWD IN=tun0 OUT=eth1 MAC= \
         SRC=10.8.0.6 DST=192.168.20.{} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={} DF \
         PROTO=TCP SPT={} DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0\n",
        812_345 + n / 1000,
        n % 1000,
        n % 250 + 1,
        n % 65_536,
        1024 + n % 60_000,
    )
}

/// The message part of [`netfilter_line`] (after `kernel: `), for senders
/// that write their own syslog header.
pub fn netfilter_message(n: u64) -> String {
    let line = netfilter_line(n);
    let at = line.find("kernel: ").expect("kernel tag") + "kernel: ".len();
    line[at..].trim_end().to_owned()
}

/// A configuration tailing files: one `kind = "file"` source per
/// `(name, path or glob)`, times read in UTC, and `extra` appended (an
/// inventory, more sources).
pub fn file_sources_config(sources: &[(&str, &Path)], extra: &str) -> String {
    let mut text = String::from("[defaults]\ntimezone = \"UTC\"\n");
    for (name, path) in sources {
        text.push_str(&format!(
            "\n[[source]]\nname = \"{name}\"\nkind = \"file\"\npath = \"{}\"\n",
            path.display()
        ));
    }
    text.push_str(extra);
    text
}

/// The checkpoints the daemon committed: `(offset, lines read)` per
/// identity, in no particular order.
pub fn checkpoints(db: &Path) -> Vec<(i64, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    let mut statement = conn
        .prepare("SELECT offset, lines_read FROM checkpoints")
        .expect("checkpoints query");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("checkpoints")
        .map(|r| r.expect("checkpoint row"))
        .collect()
}

/// A Unix datagram socket playing systemd's side of the `NOTIFY_SOCKET`
/// protocol: every datagram the daemon sends, with when it came.
pub struct NotifySocket {
    pub path: std::path::PathBuf,
    received: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    /// Binds `path` and collects what arrives on a thread of its own.
    pub fn bind(path: &Path) -> NotifySocket {
        let socket = std::os::unix::net::UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("bind the notify socket {}: {e}", path.display()));
        let received = Arc::new(Mutex::new(Vec::new()));
        let collected = received.clone();
        std::thread::spawn(move || {
            let mut buffer = vec![0u8; 64 << 10];
            // Ends when the test process does; a datagram per message.
            while let Ok(n) = socket.recv(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
                collected
                    .lock()
                    .expect("notify lock")
                    .push((Instant::now(), text));
            }
        });
        NotifySocket {
            path: path.to_owned(),
            received,
        }
    }

    /// Every assignment received (`READY=1`, `STATUS=…`), in order, with
    /// the time of its datagram.
    pub fn assignments(&self) -> Vec<(Instant, String)> {
        self.received
            .lock()
            .expect("notify lock")
            .iter()
            .flat_map(|(at, text)| text.lines().map(move |l| (*at, l.to_owned())))
            .collect()
    }

    /// Waits until `count` assignments satisfy `wanted`; returns them.
    pub fn wait_for(
        &self,
        what: &str,
        count: usize,
        timeout: Duration,
        daemon: &Daemon,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let found: Vec<_> = self
                .assignments()
                .into_iter()
                .filter(|(_, a)| wanted(a))
                .collect();
            if found.len() >= count {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the notify socket did not get {count} × {what} within {timeout:?}; got {:?}\n----- log -----\n{}",
                    self.assignments().iter().map(|(_, a)| a).collect::<Vec<_>>(),
                    daemon.log()
                );
            }
            sleep(Duration::from_millis(20));
        }
    }
}
