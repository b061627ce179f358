//! Network peers for the daemon's live-source tests: `logger` (util-linux)
//! as the syslog sender, and a small HTTP server that answers Loki's
//! `query_range` as Loki does. Everything stays on 127.0.0.1.
//!
//! Grafana Loki cannot be installed on the test machines; [`FakeLoki`]
//! speaks enough of its API (query parameters, the `streams` answer, a
//! `limit` applied oldest first) for the daemon not to tell the
//! difference, and can be told to fail.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{sleep, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The host name `logger` writes in its headers: the kernel's, up to the
/// first dot for RFC 3164 (util-linux cuts it there).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host name")
        .trim()
        .to_owned()
}

/// Runs `logger` with `args` (in UTC, so its RFC 3164 stamps read the
/// same as ours); fails with its output when it fails.
pub fn logger(args: &[&str]) -> Output {
    logger_with_input(args, None)
}

/// Runs `logger` with `input` on its standard input (one message a line).
pub fn logger_with_input(args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = Command::new("logger")
        .args(args)
        .env("TZ", "UTC")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run logger (util-linux)");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input).expect("write to logger");
    }
    let out = child.wait_with_output().expect("wait for logger");
    assert!(
        out.status.success(),
        "logger {args:?} failed with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One row of `records` (or of `unparsed`, where the envelope fields are
/// empty), as the tests compare them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub source: String,
    pub raw: String,
    pub host: Option<String>,
    pub app: Option<String>,
    pub pid: Option<i64>,
    /// The time read in the line, in µs since the epoch (records only).
    pub ts: Option<i64>,
    pub truncated: bool,
}

fn open_read_only(db: &Path) -> rusqlite::Connection {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the store");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn
}

/// Every record, in the order its stream read it (a record's id is the
/// order of writing: within a batch, traffic records come after the
/// others, grouped by gateway and address).
pub fn stored_records(db: &Path) -> Vec<StoredLine> {
    let conn = open_read_only(db);
    let mut stmt = conn
        .prepare(
            "SELECT s.source, r.raw, r.host, r.app, r.pid, r.ts, r.truncated
             FROM records r JOIN streams s ON s.id = r.stream ORDER BY r.stream, r.line, r.id",
        )
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(StoredLine {
            source: r.get(0)?,
            raw: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
            host: r.get(2)?,
            app: r.get(3)?,
            pid: r.get(4)?,
            ts: Some(r.get(5)?),
            truncated: r.get::<_, i64>(6)? != 0,
        })
    })
    .expect("query records")
    .map(|r| r.expect("record row"))
    .collect()
}

/// Every unparsed line, in the order stored.
pub fn stored_unparsed(db: &Path) -> Vec<StoredLine> {
    let conn = open_read_only(db);
    let mut stmt = conn
        .prepare("SELECT source, raw, truncated FROM unparsed ORDER BY id")
        .expect("prepare");
    stmt.query_map([], |r| {
        Ok(StoredLine {
            source: r.get(0)?,
            raw: String::from_utf8_lossy(&r.get::<_, Vec<u8>>(1)?).into_owned(),
            host: None,
            app: None,
            pid: None,
            ts: None,
            truncated: r.get::<_, i64>(2)? != 0,
        })
    })
    .expect("query unparsed")
    .map(|r| r.expect("unparsed row"))
    .collect()
}

/// What [`FakeLoki`] holds and how it behaves.
#[derive(Default)]
struct LokiState {
    /// `(ns since the epoch, stream labels, line)`, in any order: the
    /// server sorts, as Loki does.
    lines: Vec<(i64, String, String)>,
    /// Requests still to answer with HTTP 500.
    failures: usize,
    /// The query parameters of every request, in order.
    requests: Vec<HashMap<String, String>>,
}

/// An HTTP server on 127.0.0.1 that answers `GET
/// /loki/api/v1/query_range` like Loki: the lines with `start <= ts <
/// end` (nanoseconds), at most `limit`, oldest first with `direction =
/// forward`, grouped by stream. One request per connection.
pub struct FakeLoki {
    pub port: u16,
    state: Arc<Mutex<LokiState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeLoki {
    /// Listens on a port of its own.
    pub fn start() -> FakeLoki {
        FakeLoki::listen(TcpListener::bind("127.0.0.1:0").expect("bind the fake Loki"))
    }

    /// Listens on `port` (one the daemon already knows).
    pub fn start_on(port: u16) -> FakeLoki {
        FakeLoki::listen(
            TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("bind the fake Loki on {port}: {e}")),
        )
    }

    fn listen(listener: TcpListener) -> FakeLoki {
        let port = listener.local_addr().expect("address").port();
        listener.set_nonblocking(true).expect("non-blocking accept");
        let state = Arc::new(Mutex::new(LokiState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => answer(stream, &state),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            sleep(Duration::from_millis(10))
                        }
                        Err(_) => sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        FakeLoki {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a line to a stream.
    pub fn push(&self, ns: i64, stream: &str, line: &str) {
        let mut state = self.state.lock().expect("loki state");
        state.lines.push((ns, stream.to_owned(), line.to_owned()));
    }

    /// Answers the next `n` requests with HTTP 500.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().expect("loki state").failures = n;
    }

    /// The query parameters of every request so far.
    pub fn requests(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().expect("loki state").requests.clone()
    }

    /// Waits until at least `n` requests came in.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.requests().len() < n {
            assert!(
                Instant::now() < deadline,
                "the fake Loki got {} request(s), not {n}, within {timeout:?}",
                self.requests().len()
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeLoki {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request, writes one answer, closes.
fn answer(mut stream: TcpStream, state: &Mutex<LokiState>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 << 10 {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split_whitespace().nth(1).unwrap_or("").to_owned();
    let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
    let params: HashMap<String, String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();

    let (status, body) = {
        let mut state = state.lock().expect("loki state");
        state.requests.push(params.clone());
        if path != "/loki/api/v1/query_range" {
            ("404 Not Found", "404 page not found\n".to_owned())
        } else if state.failures > 0 {
            state.failures -= 1;
            (
                "500 Internal Server Error",
                "rpc error: code = Unavailable desc = no healthy ingester\n".to_owned(),
            )
        } else {
            ("200 OK", query_range(&state.lines, &params).to_string())
        }
    };
    let content_type = if status.starts_with("200") {
        "application/json; charset=UTF-8"
    } else {
        "text/plain; charset=utf-8"
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body.as_bytes());
    let _ = stream.flush();
}

/// Loki's answer to a log query: the selected lines by stream.
fn query_range(lines: &[(i64, String, String)], params: &HashMap<String, String>) -> Value {
    let number = |key: &str, default: i64| -> i64 {
        params
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let start = number("start", 0);
    let end = number("end", i64::MAX);
    let limit = number("limit", 100) as usize;
    let forward = params.get("direction").map(String::as_str) == Some("forward");

    let mut selected: Vec<&(i64, String, String)> = lines
        .iter()
        .filter(|(ts, _, _)| *ts >= start && *ts < end)
        .collect();
    selected.sort_by_key(|(ts, _, _)| *ts);
    if !forward {
        selected.reverse();
    }
    selected.truncate(limit);

    let mut streams: Vec<(String, Vec<Value>)> = Vec::new();
    for (ts, labels, line) in selected {
        let values = match streams.iter_mut().find(|(l, _)| l == labels) {
            Some((_, v)) => v,
            None => {
                streams.push((labels.clone(), Vec::new()));
                &mut streams.last_mut().expect("just pushed").1
            }
        };
        values.push(json!([ts.to_string(), line]));
    }
    let result: Vec<Value> = streams
        .into_iter()
        .map(|(labels, values)| json!({"stream": {"job": labels}, "values": values}))
        .collect();
    json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": result,
            "stats": {}
        }
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
