//! Runs the real `vpnledger` binary against a store of its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A fresh store and configuration in a temporary folder.
pub struct Ledger {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub db: PathBuf,
}

impl Ledger {
    /// A ledger with the given configuration text.
    pub fn with_config(config: &str) -> Ledger {
        let dir = tempfile::tempdir().expect("temporary folder");
        let config_path = dir.path().join("vpnledger.toml");
        std::fs::write(&config_path, config).expect("write config");
        let db = dir.path().join("vpnledger.db");
        Ledger {
            dir,
            config: config_path,
            db,
        }
    }

    /// A ledger with an empty configuration (defaults only).
    pub fn new() -> Ledger {
        Ledger::with_config("")
    }

    /// A ledger with the repository's sample configuration.
    pub fn sample() -> Ledger {
        let text =
            std::fs::read_to_string(repo().join("config/vpnledger.toml")).expect("sample config");
        Ledger::with_config(&text)
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vpnledger"));
        c.arg("--config")
            .arg(&self.config)
            .arg("--db")
            .arg(&self.db)
            .args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs a command; returns its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run vpnledger")
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "vpnledger {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// Runs a command that prints JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{text}"))
    }

    pub fn sessions(&self) -> Vec<Value> {
        match self.json(&["sessions", "--json"]) {
            Value::Array(a) => a,
            other => panic!("sessions --json printed {other}"),
        }
    }

    /// A count of rows in a table of the store.
    pub fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).expect("open store");
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    }
}

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture's path.
pub fn fixture(rel: &str) -> PathBuf {
    repo().join("fixtures").join(rel)
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
