//! A real OpenVPN 2.6 server and client on loopback, for the tests that
//! read what OpenVPN logs: a throw-away PKI, the two configurations, and
//! the processes, killed on every way out of a test.
//!
//! Needs the `openvpn` and `openssl` commands and a TUN device (root, or
//! CAP_NET_ADMIN, and `/dev/net/tun`). Where either is missing the tests
//! fail and say why: a silent skip would hide that nothing was checked.
//! No traffic goes through the tunnel and neither side touches the host's
//! addresses or routes (`ifconfig-noexec`, `route-noexec`).

#![allow(dead_code)]

use std::fs;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

/// The client's identity: its certificate's CN.
pub const USER: &str = "t.moreau";
/// The first address of `server 10.88.0.0 255.255.255.0` with `topology subnet`.
pub const VIRTUAL_IP: &str = "10.88.0.2";
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// What the client logs once its tunnel is up, and the server once it
/// listens.
pub const READY_LINE: &str = "Initialization Sequence Completed";

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

/// A folder ready for a server and a client: the PKI, `server.conf` and
/// `client.conf` for a free UDP port on loopback.
pub struct Setup {
    pub openvpn: PathBuf,
    pub port: u16,
}

impl Setup {
    pub fn new(dir: &Path) -> Setup {
        let openvpn =
            find_openvpn().expect("openvpn is not installed: .ci/run installs the Debian package");
        make_pki(dir);
        let port = free_udp_port();
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
        Setup { openvpn, port }
    }
}

/// An OpenVPN process writing its own log file. Dropping it kills the
/// process, so no exit path of the test leaves one behind.
pub struct OpenVpn {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl OpenVpn {
    /// Starts `openvpn --config <name>.conf` in `dir`, logging to `log`.
    pub fn spawn(openvpn: &Path, name: &'static str, dir: &Path, log: &Path) -> OpenVpn {
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
        OpenVpn {
            name,
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn read_log(&self) -> String {
        read_lossy(&self.log)
    }

    /// Polls the log until it holds one of `needles`. Gives up early when
    /// the process died or could not open its TUN device.
    pub fn wait_for_log(&mut self, needles: &[&str], timeout: Duration) -> Result<(), String> {
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
    pub fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {} failed", self.child.id());
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Result<(), String> {
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

impl Drop for OpenVpn {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Panics with `what` and every process's log (and `more`), saying
/// plainly when the reason is a missing TUN device rather than a fault in
/// OpenVPN's setup.
pub fn fail(what: &str, processes: &[&OpenVpn], more: &str) -> ! {
    let logs: String = processes
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
             CAP_NET_ADMIN); this test needs a real tunnel and does not skip.\n{what}{logs}{more}"
        );
    }
    panic!("{what}{logs}{more}");
}

fn tun_failed(log: &str) -> bool {
    TUN_ERRORS.iter().any(|e| log.contains(e))
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
pub fn client_port(log: &str) -> Option<u64> {
    let marker = format!("[{USER}] Peer Connection Initiated with [AF_INET]127.0.0.1:");
    let rest = &log[log.find(&marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A session time, which must be an RFC 3339 instant written in UTC (`Z`).
pub fn utc_field(session: &Value, key: &str, ctx: &str) -> DateTime<Utc> {
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

pub fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// A log as text; empty while the file does not exist yet.
pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
