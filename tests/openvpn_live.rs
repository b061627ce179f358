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

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

const USER: &str = "t.moreau";
const SOURCE: &str = "vpn-loopback";
/// The first address of `server 10.88.0.0 255.255.255.0` with `topology subnet`.
const VIRTUAL_IP: &str = "10.88.0.2";
/// How far a logged time may be from the test's own clock: OpenVPN's log
/// has whole seconds, and the processes take a moment to react.
const SLACK: TimeDelta = TimeDelta::seconds(2);
const START_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// What OpenVPN logs when it cannot create its tunnel interface: no
/// `/dev/net/tun`, or no right to it (open fails), or no CAP_NET_ADMIN
/// (the open works, creating the interface does not).
const TUN_ERRORS: [&str; 2] = ["Cannot open TUN/TAP", "Cannot ioctl TUNSETIFF"];

/// Extensions for the throw-away PKI. Given with `-config`, so the host's
/// `openssl.cnf` cannot change what gets issued.
const PKI_CNF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

#[test]
fn openvpn_session_is_reported() {
    let openvpn =
        find_openvpn().expect("openvpn is not installed: .ci/run installs the Debian package");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    make_pki(dir);

    let port = free_udp_port();
    let server_log = dir.join("server.log");
    let client_log = dir.join("client.log");
    write(
        &dir.join("server.conf"),
        &format!(
            "dev tun
ifconfig-noexec
route-noexec
topology subnet
server 10.88.0.0 255.255.255.0
proto udp
local 127.0.0.1
port {port}
ca ca.crt
cert server.crt
key server.key
dh none
keepalive 10 60
verb 3
# The classic data path: what the ledger reads must not depend on whether
# this kernel happens to have the ovpn-dco module.
disable-dco
"
        ),
    );
    write(
        &dir.join("client.conf"),
        &format!(
            "client
dev tun
ifconfig-noexec
route-noexec
remote 127.0.0.1 {port} udp
nobind
explicit-exit-notify 1
remote-cert-tls server
ca ca.crt
cert {USER}.crt
key {USER}.key
verb 3
disable-dco
"
        ),
    );

    // Declared after `tmp`, so dropped (killed) before the directory goes.
    let mut server = Daemon::spawn(&openvpn, "server", dir, &server_log);
    if let Err(why) = server.wait_for_log(&["Initialization Sequence Completed"], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN server did not start: {why}"),
            &[&server],
        );
    }

    let t_connect = Utc::now();
    let mut client = Daemon::spawn(&openvpn, "client", dir, &client_log);
    if let Err(why) = client.wait_for_log(&["Initialization Sequence Completed"], START_TIMEOUT) {
        fail(
            &format!("the OpenVPN client did not connect: {why}"),
            &[&server, &client],
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
        );
    }
    // The client leaves by itself after its SIGTERM; the server needs one.
    if let Err(why) = client.wait_exit(EXIT_TIMEOUT) {
        fail(
            &format!("the OpenVPN client did not stop: {why}"),
            &[&server, &client],
        );
    }
    server.terminate();
    if let Err(why) = server.wait_exit(EXIT_TIMEOUT) {
        fail(
            &format!("the OpenVPN server did not stop: {why}"),
            &[&server, &client],
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

/// An OpenVPN process writing its own log file. Dropping it kills the
/// process, so no exit path of the test leaves one behind.
struct Daemon {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// Starts `openvpn --config <name>.conf` in `dir`, logging to `log`.
    fn spawn(openvpn: &Path, name: &'static str, dir: &Path, log: &Path) -> Daemon {
        let child = Command::new(openvpn)
            .arg("--config")
            .arg(format!("{name}.conf"))
            .arg("--log")
            .arg(log)
            .current_dir(dir)
            // OpenVPN writes local time; UTC makes the log's times the test's.
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", openvpn.display()));
        Daemon {
            name,
            child,
            log: log.to_path_buf(),
        }
    }

    fn read_log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Polls the log until it holds one of `needles`. Gives up early when
    /// the process died or could not open its TUN device.
    fn wait_for_log(&mut self, needles: &[&str], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.read_log();
            if needles.iter().any(|n| log.contains(n)) {
                return Ok(());
            }
            if tun_failed(&log) {
                return Err(format!("the {} could not open its TUN device", self.name));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the {} exited ({status}) before logging {needles:?}",
                    self.name
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {needles:?}"
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM, OpenVPN's clean shutdown (the client then notifies
    /// the server). A process already gone is left alone.
    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) => sleep(Duration::from_millis(100)),
                Err(e) => return Err(e.to_string()),
            }
        }
        Err(format!("still running after {timeout:?}"))
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

/// Panics with `what` and every daemon's log, saying plainly when the
/// reason is a missing TUN device rather than a fault in OpenVPN's setup.
fn fail(what: &str, daemons: &[&Daemon]) -> ! {
    let logs: String = daemons
        .iter()
        .map(|d| {
            format!(
                "\n----- {} log ({}) -----\n{}",
                d.name,
                d.log.display(),
                d.read_log()
            )
        })
        .collect();
    if tun_failed(&logs) {
        panic!(
            "OpenVPN cannot open a TUN device here (it needs /dev/net/tun and root or \
             CAP_NET_ADMIN); this test needs a real tunnel and does not skip.\n{what}{logs}"
        );
    }
    panic!("{what}{logs}");
}

fn tun_failed(log: &str) -> bool {
    TUN_ERRORS.iter().any(|e| log.contains(e))
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

/// `openvpn` on PATH, or where Debian puts it: `/usr/sbin` is not on every
/// user's PATH.
fn find_openvpn() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("openvpn"))
        .find(|p| p.is_file())
}

/// A UDP port free on loopback now. The socket is closed before OpenVPN
/// binds the port; another process taking it in between is unlikely.
fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on loopback");
    socket.local_addr().expect("local address").port()
}

/// A CA, a server certificate and a client certificate for [`USER`], all
/// prime256v1 keys (quick to make), valid for a day.
fn make_pki(dir: &Path) {
    write(&dir.join("pki.cnf"), PKI_CNF);
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    openssl(
        dir,
        &format!(
            "req -config pki.cnf -x509 {ec} -keyout ca.key -out ca.crt -days 1 \
             -subj /CN=vpnledger-test-ca -extensions ca"
        ),
    );
    for (name, serial, ext) in [("server", 2, "server"), (USER, 3, "client")] {
        openssl(
            dir,
            &format!(
                "req -config pki.cnf {ec} -keyout {name}.key -out {name}.csr -subj /CN={name}"
            ),
        );
        openssl(
            dir,
            &format!(
                "x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -set_serial {serial} \
                 -out {name}.crt -days 1 -extfile pki.cnf -extensions {ext}"
            ),
        );
    }
}

/// Runs `openssl` in `dir` with `args`, split at white space (none of them
/// holds any); it must succeed.
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .args(args.split_whitespace())
        .current_dir(dir)
        .output()
        .expect("cannot run openssl: is it installed?");
    assert!(
        out.status.success(),
        "openssl {args} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client's source port, from
/// `127.0.0.1:38981 [t.moreau] Peer Connection Initiated with [AF_INET]127.0.0.1:38981`.
fn client_port(log: &str) -> Option<u64> {
    let marker = format!("[{USER}] Peer Connection Initiated with [AF_INET]127.0.0.1:");
    let rest = &log[log.find(&marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A session time, which must be an RFC 3339 instant written in UTC (`Z`).
fn utc_field(session: &Value, key: &str, ctx: &str) -> DateTime<Utc> {
    let text = session[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string\n{ctx}"));
    assert!(
        text.ends_with('Z'),
        "{key} {text:?} is not written in UTC (Z)\n{ctx}"
    );
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{key} {text:?} is not RFC 3339: {e}\n{ctx}"))
        .with_timezone(&Utc)
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A log as text; empty while the file does not exist yet.
fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
