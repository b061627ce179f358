//! The SQLite store: records, events, checkpoints, sessions, reports.
//!
//! One file, in WAL mode so readers never block the writer. The schema is
//! created and upgraded by numbered migrations, recorded in SQLite's
//! `user_version`. Times are stored as microseconds since the epoch, UTC.
//!
//! What each table holds:
//! - `checkpoints`: per file identity, how far it was read;
//! - `records`: the log lines that carried an event (the evidence), with
//!   their raw bytes and a digest chain that `verify` walks;
//! - `events`: the session facts of those records; `traffic`: connections
//!   a firewall saw;
//! - `unparsed`: lines no parser understood, kept raw with the reason;
//! - `sessions`: rebuilt from events, per gateway;
//! - `reports`, `report_versions`: intervention reports and their history;
//! - `resolutions`: auditors' explanations of discrepancies.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// How long a command waits for another writer (the daemon) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite's page cache, in KiB. The indexes on traffic and events take
/// rows in gateway order, not time order, so their pages are touched all
/// over; with SQLite's 2 MiB default a bulk ingest spends its time reading
/// back pages it has just written. This is most of the process's memory.
const CACHE_KIB: i64 = 32 * 1024;

/// Pages written to the WAL before SQLite copies them into the database.
/// Index pages change in every batch: the larger the WAL, the more of
/// those changes are copied once rather than batch after batch.
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Each migration moves the schema one version up; never edit a published
/// one, add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE checkpoints (
        fingerprint TEXT PRIMARY KEY,
        source      TEXT NOT NULL,
        path        TEXT NOT NULL,
        offset      INTEGER NOT NULL,
        line        INTEGER NOT NULL,
        year        INTEGER,
        last_month  INTEGER,
        lines_read  INTEGER NOT NULL DEFAULT 0,
        updated     INTEGER NOT NULL
    );
    CREATE TABLE records (
        id          INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        line        INTEGER,
        offset      INTEGER,
        received    INTEGER NOT NULL,
        ts          INTEGER NOT NULL,
        time_flag   TEXT,
        format      TEXT NOT NULL,
        gateway     TEXT NOT NULL,
        host        TEXT,
        app         TEXT,
        pid         INTEGER,
        raw         BLOB NOT NULL,
        encoding    TEXT,
        digest      TEXT NOT NULL
    );
    CREATE UNIQUE INDEX records_position ON records(fingerprint, line);
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        record_id   INTEGER NOT NULL REFERENCES records(id),
        gateway     TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        user        TEXT,
        instance    TEXT,
        remote_ip   TEXT,
        remote_port INTEGER,
        virtual_ip  TEXT,
        tunnel      TEXT,
        reason      TEXT,
        detail      TEXT,
        bytes_in    INTEGER,
        bytes_out   INTEGER,
        since       INTEGER,
        pid         INTEGER
    );
    CREATE INDEX events_gateway ON events(gateway, ts);
    CREATE TABLE traffic (
        id          INTEGER PRIMARY KEY,
        record_id   INTEGER NOT NULL REFERENCES records(id),
        gateway     TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        src         TEXT NOT NULL,
        dst         TEXT NOT NULL,
        proto       TEXT NOT NULL,
        dst_port    INTEGER,
        allowed     INTEGER NOT NULL
    );
    CREATE INDEX traffic_source ON traffic(gateway, src, ts);
    CREATE TABLE unparsed (
        id          INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        path        TEXT NOT NULL,
        line        INTEGER NOT NULL,
        offset      INTEGER NOT NULL,
        received    INTEGER NOT NULL,
        raw         BLOB NOT NULL,
        reason      TEXT NOT NULL
    );
    CREATE UNIQUE INDEX unparsed_position ON unparsed(fingerprint, line);
    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,
        gateway       TEXT NOT NULL,
        user          TEXT NOT NULL,
        technician    TEXT,
        start         INTEGER NOT NULL,
        end           INTEGER,
        end_reason    TEXT,
        end_inferred  INTEGER NOT NULL,
        end_detail    TEXT,
        tunnel        TEXT NOT NULL,
        sites         TEXT NOT NULL,
        virtual_ip    TEXT,
        remote_ip     TEXT,
        remote_port   INTEGER,
        bytes_in      INTEGER,
        bytes_out     INTEGER,
        devices       TEXT NOT NULL,
        public_destinations INTEGER NOT NULL,
        continues     TEXT,
        start_record  INTEGER,
        end_record    INTEGER,
        evidence      TEXT NOT NULL
    );
    CREATE INDEX sessions_gateway ON sessions(gateway);
    CREATE INDEX sessions_start ON sessions(start);
    CREATE TABLE reports (
        id          TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        status      TEXT NOT NULL,
        site        TEXT,
        technician  TEXT,
        body        TEXT NOT NULL,
        updated     INTEGER NOT NULL
    );
    CREATE TABLE report_versions (
        id          TEXT NOT NULL,
        version     INTEGER NOT NULL,
        status      TEXT NOT NULL,
        body        TEXT NOT NULL,
        replaced    INTEGER NOT NULL,
        PRIMARY KEY (id, version)
    );
    CREATE TABLE resolutions (
        discrepancy TEXT PRIMARY KEY,
        note        TEXT NOT NULL,
        by          TEXT NOT NULL,
        at          INTEGER NOT NULL
    );
    "#,
    // 2: what other gateways than OpenVPN say of a session.
    r#"
    ALTER TABLE events ADD COLUMN duration INTEGER;
    ALTER TABLE events ADD COLUMN correlation TEXT;
    "#,
    // 3: syslog messages cut at the source's size limit are flagged.
    r#"
    ALTER TABLE records ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE unparsed ADD COLUMN truncated INTEGER NOT NULL DEFAULT 0;
    "#,
    // 4: parts replaced by signed reports change the inventory's serials.
    r#"
    CREATE TABLE device_changes (
        site          TEXT NOT NULL,
        device        TEXT NOT NULL,
        serial_before TEXT,
        serial_after  TEXT NOT NULL,
        report        TEXT NOT NULL,
        at            INTEGER NOT NULL,
        PRIMARY KEY (report, site, device)
    );
    "#,
    // 5: the devices a session reached are read from the index alone, in
    // time and line order, without a visit to each traffic row.
    r#"
    DROP INDEX traffic_source;
    CREATE INDEX traffic_source ON traffic(gateway, src, ts, id, allowed, dst, proto, dst_port);
    "#,
    // 6: gateways whose sessions lag behind their events, written in the
    // same transaction as the events: a crash between a commit and the
    // rebuild that follows it leaves the mark, and the next start rebuilds.
    r#"
    CREATE TABLE stale_sessions (gateway TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT OR IGNORE INTO stale_sessions SELECT DISTINCT gateway FROM events;
    "#,
    // 7: a file checkpoint keeps a digest of the bytes just before its
    // offset, so that another file with the same first line is not taken
    // for the one read before (0 bytes: nothing to compare, as before).
    r#"
    ALTER TABLE checkpoints ADD COLUMN tail_len INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE checkpoints ADD COLUMN tail TEXT;
    "#,
    // 8: no unique index on a record's position. A line is stored once
    // because its checkpoint commits with it; the index only guarded that,
    // at a third of a bulk ingest's time. `verify` checks it instead.
    r#"
    DROP INDEX records_position;
    "#,
    // 9: the digest of a record written from now on covers its event or
    // traffic row too (chain version 2), so `verify` sees a changed or
    // removed event; earlier records keep version 1, the line alone.
    r#"
    ALTER TABLE records ADD COLUMN chain INTEGER NOT NULL DEFAULT 1;
    "#,
];

/// An open store.
pub struct Store {
    pub conn: Connection,
}

impl Store {
    /// Begins a transaction that writes. It takes the write lock at once
    /// (waiting up to the busy timeout): a transaction that read first
    /// and then wrote would fail outright, not wait, when another process
    /// (the daemon, an `ingest`) committed in between.
    pub fn write_transaction(&mut self) -> rusqlite::Result<Transaction<'_>> {
        self.conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
    }

    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).with_context(|| {
                format!("cannot create the store's folder {}", parent.display())
            })?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .with_context(|| format!("cannot use the store {}", path.display()))?;
        // With WAL, NORMAL syncs at checkpoints only: a power cut may lose
        // the last commits, never corrupt the file or split a commit, so a
        // checkpoint and its data still land together or not at all.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store
            .migrate()
            .with_context(|| format!("cannot upgrade the store {}", path.display()))?;
        Ok(store)
    }

    /// An in-memory store, for tests.
    #[cfg(test)]
    pub fn in_memory() -> Store {
        let conn = Connection::open_in_memory().expect("in-memory database");
        let mut store = Store { conn };
        store.migrate().expect("migrations apply");
        store
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let current = |conn: &Connection| -> anyhow::Result<usize> {
            let version: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > MIGRATIONS.len() {
                anyhow::bail!(
                    "the store has schema version {version}, newer than this vpnledger knows ({})",
                    MIGRATIONS.len()
                );
            }
            Ok(version)
        };
        if current(&self.conn)? == MIGRATIONS.len() {
            return Ok(());
        }

        // Upgraded under the write lock, the version read again inside it:
        // two commands opening a new store at once migrate it once.
        let tx = self.write_transaction()?;
        let version = current(&tx)?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index + 1)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Lower-case hexadecimal of bytes: digests and ids.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Microseconds since the epoch, as the store keeps times.
pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}

/// RFC 3339 in UTC with `Z`, with a fraction only when there is one.
pub fn format_utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_bring_a_new_store_to_the_last_version() {
        let store = Store::in_memory();
        let version: usize = store
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    #[test]
    fn hex_of_bytes() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn utc_format_keeps_fractions_only_when_present() {
        let t = DateTime::parse_from_rfc3339("2024-07-09T16:20:11.015733+02:00").unwrap();
        assert_eq!(
            format_utc(t.with_timezone(&Utc)),
            "2024-07-09T14:20:11.015733Z"
        );
        let t = DateTime::parse_from_rfc3339("2024-03-12T09:14:03+01:00").unwrap();
        assert_eq!(format_utc(t.with_timezone(&Utc)), "2024-03-12T08:14:03Z");
    }
}
