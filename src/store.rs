//! The SQLite store: records, events, checkpoints, sessions, reports.
//!
//! One file, in WAL mode so readers never block the writer. The schema is
//! created and upgraded by numbered migrations, recorded in SQLite's
//! `user_version`. Times are stored as microseconds since the epoch, UTC.
//!
//! What each table holds:
//! - `checkpoints`: per file identity, how far it was read;
//! - `streams`: the files and live streams records come from (source and
//!   file identity), by number;
//! - `records`: the log lines that carried an event or a firewall's
//!   traffic (the evidence), with their raw bytes and a digest chain that
//!   `verify` walks; a traffic line's facts (source, destination, protocol,
//!   port, allowed) are columns of its record. The view `record_lines`
//!   shows records with their source, identity and digest in hexadecimal,
//!   the view `traffic` the traffic records;
//! - `events`: the session facts of the records that carry one;
//! - `traffic_runs`: per gateway, source address and hour, the ranges of
//!   record ids that hold its traffic, which the device look-up reads;
//!   `traffic_unmatched`: traffic rows an upgrade could not put on their
//!   record, kept for `verify` to report;
//! - `unparsed`: lines no parser understood, kept raw with the reason;
//! - `sessions`: rebuilt from events, per gateway;
//! - `reports`, `report_versions`: intervention reports and their history;
//! - `resolutions`: auditors' explanations of discrepancies;
//! - `chain_head`: the last record written and its digest.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// How long a command waits for another writer (the daemon) to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// SQLite's page cache, in KiB. The events index and `traffic_runs` take
/// rows in gateway order, not time order, so their pages are touched all
/// over; with SQLite's 2 MiB default a bulk ingest spends its time reading
/// back pages it has just written. This is most of the process's memory.
const CACHE_KIB: i64 = 32 * 1024;

/// Bytes written to the WAL before SQLite copies them into the database.
/// Index pages change in every batch: the larger the WAL, the more of
/// those changes are copied once rather than batch after batch.
const WAL_CHECKPOINT_BYTES: i64 = 64 << 20;

/// The page size of a new store. Records are log lines of a few hundred
/// bytes written in bulk: larger pages mean fewer pages to find, fill,
/// checksum and copy per line. A store made with another size keeps it.
const PAGE_SIZE: i64 = 8_192;

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
    // 10: a compact record row, for bulk ingests: a record names its file
    // by an integer (`streams`) rather than by its source and identity
    // text, and keeps its digest as 32 bytes rather than 64 hex
    // characters; traffic is kept in the order the device look-up reads
    // it (gateway, source address, time), without a second copy in an
    // index. `record_lines` shows records as they were before.
    r#"
    CREATE TABLE streams (
        id          INTEGER PRIMARY KEY,
        source      TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        UNIQUE (fingerprint, source)
    );
    INSERT INTO streams (source, fingerprint)
        SELECT source, fingerprint FROM records GROUP BY source, fingerprint ORDER BY min(id);
    CREATE TABLE records_compact (
        id          INTEGER PRIMARY KEY,
        stream      INTEGER NOT NULL REFERENCES streams(id),
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
        digest      BLOB NOT NULL,
        truncated   INTEGER NOT NULL DEFAULT 0,
        chain       INTEGER NOT NULL
    );
    INSERT INTO records_compact
        SELECT r.id, s.id, r.line, r.offset, r.received, r.ts, r.time_flag, r.format,
               r.gateway, r.host, r.app, r.pid, r.raw, r.encoding, unhex(r.digest),
               r.truncated, r.chain
        FROM records r JOIN streams s ON s.source = r.source AND s.fingerprint = r.fingerprint;
    DROP TABLE records;
    ALTER TABLE records_compact RENAME TO records;
    CREATE TABLE traffic_compact (
        gateway     TEXT NOT NULL,
        src         TEXT NOT NULL,
        ts          INTEGER NOT NULL,
        record_id   INTEGER NOT NULL REFERENCES records(id),
        allowed     INTEGER NOT NULL,
        dst         TEXT NOT NULL,
        proto       TEXT NOT NULL,
        dst_port    INTEGER,
        PRIMARY KEY (gateway, src, ts, record_id)
    ) WITHOUT ROWID;
    INSERT INTO traffic_compact
        SELECT gateway, src, ts, record_id, allowed, dst, proto, dst_port FROM traffic;
    DROP TABLE traffic;
    ALTER TABLE traffic_compact RENAME TO traffic;
    CREATE VIEW record_lines AS
        SELECT r.id, s.source, s.fingerprint, r.line, r.offset, r.received, r.ts,
               r.time_flag, r.format, r.gateway, r.host, r.app, r.pid, r.raw,
               r.encoding, lower(hex(r.digest)) AS digest, r.truncated, r.chain
        FROM records r JOIN streams s ON s.id = r.stream;
    "#,
    // 11: a traffic line is one row, its record's, not two: the traffic
    // facts are columns of `records`, so a bulk ingest appends instead of
    // inserting into a second tree in address order. The device look-up
    // finds them through `traffic_runs`: ingest writes a batch's traffic
    // records grouped by gateway and source address, and a run names the
    // ids of one group within one time slot. `traffic` stays, as a view.
    // Traffic rows that did not match their record (another gateway or
    // time, a second row, a record with an event, or no record: hand
    // edits) are kept in `traffic_unmatched`, for `verify` to report,
    // rather than dropped.
    r#"
    ALTER TABLE records ADD COLUMN src TEXT;
    ALTER TABLE records ADD COLUMN dst TEXT;
    ALTER TABLE records ADD COLUMN proto TEXT;
    ALTER TABLE records ADD COLUMN dst_port INTEGER;
    ALTER TABLE records ADD COLUMN allowed INTEGER;
    CREATE INDEX traffic_record ON traffic(record_id);
    CREATE TABLE traffic_unmatched AS
        SELECT t.* FROM traffic t LEFT JOIN records r ON r.id = t.record_id
        WHERE r.id IS NULL OR r.gateway IS NOT t.gateway OR r.ts IS NOT t.ts
           OR t.record_id IN (SELECT record_id FROM events)
           OR t.record_id IN (SELECT record_id FROM traffic GROUP BY record_id HAVING count(*) > 1);
    UPDATE records SET (src, dst, proto, dst_port, allowed) =
        (SELECT t.src, t.dst, t.proto, t.dst_port, t.allowed FROM traffic t WHERE t.record_id = records.id)
    WHERE id IN (SELECT record_id FROM traffic EXCEPT SELECT record_id FROM traffic_unmatched);
    DROP TABLE traffic;
    CREATE TABLE traffic_runs (
        gateway TEXT NOT NULL,
        src     TEXT NOT NULL,
        hour    INTEGER NOT NULL,
        first   INTEGER NOT NULL,
        last    INTEGER NOT NULL,
        PRIMARY KEY (gateway, src, hour, first)
    ) WITHOUT ROWID;
    INSERT INTO traffic_runs
        SELECT gateway, src, ts / 3600000000, id, id FROM records WHERE src IS NOT NULL;
    CREATE VIEW traffic AS
        SELECT id AS record_id, gateway, ts, src, dst, proto, dst_port, allowed
        FROM records WHERE src IS NOT NULL;
    "#,
    // 12: the chain's head, the last record written and its digest, kept
    // beside the records by each commit: removing the newest records
    // leaves the head naming one that is gone, for `verify` to report.
    r#"
    CREATE TABLE chain_head (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        record_id INTEGER NOT NULL,
        digest    BLOB NOT NULL
    );
    INSERT INTO chain_head (one, record_id, digest)
        SELECT 1, id, digest FROM records ORDER BY id DESC LIMIT 1;
    "#,
    // 13: a file's checkpoint keeps the day of its latest line beside the
    // month, so a late line read after a restart is still known as late.
    r#"
    ALTER TABLE checkpoints ADD COLUMN last_day INTEGER;
    "#,
    // 14: unparsed lines are evidence too: each one written from now on
    // carries a digest chained to the one before (a chain of their own,
    // beside the records'), and `unparsed_head` names the last, so that
    // `verify` sees one altered or removed. Lines kept before have none:
    // `unparsed_chain.before` is the last of them, and a line after it
    // without a digest was altered.
    r#"
    ALTER TABLE unparsed ADD COLUMN digest BLOB;
    CREATE TABLE unparsed_head (
        one         INTEGER PRIMARY KEY CHECK (one = 1),
        unparsed_id INTEGER NOT NULL,
        digest      BLOB NOT NULL
    );
    CREATE TABLE unparsed_chain (
        one    INTEGER PRIMARY KEY CHECK (one = 1),
        before INTEGER NOT NULL
    );
    INSERT INTO unparsed_chain (one, before) SELECT 1, coalesce(max(id), 0) FROM unparsed;
    "#,
];

/// The width of a traffic run's time slot, in microseconds (an hour):
/// `traffic_runs.hour` is a record's `ts` divided by it, truncated, in
/// Rust and in SQL alike.
pub const RUN_MICROS: i64 = 3_600_000_000;

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
        // Only a new, empty file takes it (before WAL mode is set).
        conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        // Two commands creating the store at once: the second to switch
        // it to WAL may be told it is locked, busy timeout or not; it
        // tries again for as long as a write would wait.
        let started = std::time::Instant::now();
        loop {
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && started.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => {
                    other.with_context(|| format!("cannot use the store {}", path.display()))?;
                    break;
                }
            }
        }
        // With WAL, NORMAL syncs at checkpoints only: a power cut may lose
        // the last commits, never corrupt the file or split a commit, so a
        // checkpoint and its data still land together or not at all.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        conn.pragma_update(
            None,
            "wal_autocheckpoint",
            WAL_CHECKPOINT_BYTES / page_size.max(512),
        )?;
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
        // two commands opening a new store at once migrate it once. A
        // migration that rebuilds a table drops the one other tables
        // refer to before its copy takes the name, so references are not
        // enforced meanwhile (SQLite's own way to change a table's
        // layout). Rows keep their ids: a row that referred to nothing
        // before (a hand edit) still does, and `verify` reports it.
        self.conn.pragma_update(None, "foreign_keys", "OFF")?;
        let tx = self.write_transaction()?;
        let version = current(&tx)?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", index + 1)?;
        }
        tx.commit()?;
        self.conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }
}

/// Lower-case hexadecimal of bytes: digests and ids.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = vec![0; bytes.len() * 2];
    hex_into(bytes, &mut out);
    String::from_utf8(out).expect("hexadecimal digits are ASCII")
}

/// Writes the lower-case hexadecimal of `bytes` into `out`, two digits a
/// byte (`out` is twice as long as `bytes`).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
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
    fn a_store_of_version_9_keeps_its_records_chain_and_traffic() {
        let conn = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS[..9].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index + 1).unwrap();
        }
        let digest = crate::ingest::record_digest(
            &crate::ingest::GENESIS,
            "lyon",
            "ab12",
            7,
            1_710_231_243_000_000,
            b"Mar 12 09:14:03 vpn-lyon kernel: x",
            1,
            None,
            None,
        );
        conn.execute_batch(&format!(
            "INSERT INTO records (id, source, fingerprint, line, offset, received, ts, format, gateway, host, app, raw, digest, chain)
             VALUES (5, 'lyon', 'ab12', 7, 640, 1, 1710231243000000, 'rfc3164', 'vpn-lyon', 'vpn-lyon', 'kernel',
                     CAST('Mar 12 09:14:03 vpn-lyon kernel: x' AS BLOB), '{}', 1);
             INSERT INTO traffic (record_id, gateway, ts, src, dst, proto, dst_port, allowed)
             VALUES (5, 'vpn-lyon', 1710231243000000, '10.8.0.6', '192.168.20.10', 'tcp', 443, 1);",
            hex(&digest)
        ))
        .unwrap();

        let mut store = Store { conn };
        store.migrate().unwrap();
        let (stream, stored): (i64, Vec<u8>) = store
            .conn
            .query_row("SELECT stream, digest FROM records WHERE id = 5", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(stored, digest);
        let (source, fingerprint): (String, String) = store
            .conn
            .query_row(
                "SELECT source, fingerprint FROM streams WHERE id = ?1",
                [stream],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((source.as_str(), fingerprint.as_str()), ("lyon", "ab12"));
        let seen: (String, String, i64) = store
            .conn
            .query_row(
                "SELECT digest, fingerprint, line FROM record_lines WHERE id = 5",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(seen, (hex(&digest), "ab12".to_owned(), 7));
        let traffic: (i64, String, Option<i64>) = store
            .conn
            .query_row(
                "SELECT record_id, dst, dst_port FROM traffic WHERE gateway = 'vpn-lyon' AND src = '10.8.0.6'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(traffic, (5, "192.168.20.10".to_owned(), Some(443)));
        let enforced: i64 = store
            .conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(enforced, 1);
    }

    #[test]
    fn a_store_of_version_10_moves_traffic_onto_its_records_and_keeps_what_does_not_fit() {
        let conn = Connection::open_in_memory().unwrap();
        for (index, sql) in MIGRATIONS[..10].iter().enumerate() {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", index + 1).unwrap();
        }
        // A traffic row of no record, as a hand edit leaves it.
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute_batch(
            "INSERT INTO streams (id, source, fingerprint) VALUES (1, 'lyon', 'ab12');
             INSERT INTO records (id, stream, line, offset, received, ts, format, gateway, raw, digest, chain)
             VALUES (5, 1, 7, 640, 1, 1710231243000000, 'rfc3164', 'vpn-lyon', x'00', x'00', 2),
                    (6, 1, 8, 700, 1, 1710231250000000, 'rfc3164', 'vpn-lyon', x'00', x'00', 2),
                    (7, 1, 9, 760, 1, 1710238000000000, 'rfc3164', 'vpn-lyon', x'00', x'00', 2);
             INSERT INTO traffic (gateway, src, ts, record_id, allowed, dst, proto, dst_port) VALUES
                 ('vpn-lyon', '10.8.0.6', 1710231243000000, 5, 1, '192.168.20.10', 'tcp', 443),
                 ('vpn-lyon', '10.8.0.6', 1710238000000000, 7, 0, '192.168.20.11', 'udp', NULL),
                 ('vpn-nice', '10.8.0.6', 1710231250000000, 6, 1, '192.168.20.12', 'tcp', 22),
                 ('vpn-lyon', '10.8.0.7', 1710231250000000, 99, 1, '192.168.20.13', 'tcp', 22);",
        )
        .unwrap();
        let mut store = Store { conn };
        store.migrate().unwrap();
        // The traffic columns of a record, as SQL literals.
        let facts = |id: i64| -> String {
            store
                .conn
                .query_row(
                    "SELECT quote(src) || ' ' || quote(dst) || ' ' || quote(proto) || ' '
                            || quote(dst_port) || ' ' || quote(allowed)
                     FROM records WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .unwrap()
        };
        assert_eq!(facts(5), "'10.8.0.6' '192.168.20.10' 'tcp' 443 1");
        assert_eq!(facts(7), "'10.8.0.6' '192.168.20.11' 'udp' NULL 0");
        // Another gateway than its record's: kept aside, not moved.
        assert_eq!(facts(6), "NULL NULL NULL NULL NULL");
        let unmatched: Vec<(i64, String)> = store
            .conn
            .prepare("SELECT record_id, gateway FROM traffic_unmatched ORDER BY record_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(unmatched, [(6, "vpn-nice".into()), (99, "vpn-lyon".into())]);
        // One run per record moved, in its hour.
        let runs: Vec<(String, String, i64, i64, i64)> = store
            .conn
            .prepare("SELECT gateway, src, hour, first, last FROM traffic_runs ORDER BY first")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            runs,
            [
                (
                    "vpn-lyon".into(),
                    "10.8.0.6".into(),
                    1_710_231_243 / 3600,
                    5,
                    5
                ),
                (
                    "vpn-lyon".into(),
                    "10.8.0.6".into(),
                    1_710_238_000 / 3600,
                    7,
                    7
                ),
            ]
        );
        let through_view: i64 = store
            .conn
            .query_row("SELECT count(*) FROM traffic", [], |r| r.get(0))
            .unwrap();
        assert_eq!(through_view, 2);
        // The chain's head is the last record (schema 12).
        let head: (i64, Vec<u8>) = store
            .conn
            .query_row("SELECT record_id, digest FROM chain_head", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(head, (7, vec![0]));
    }

    #[test]
    fn an_empty_store_gets_an_empty_chain_head() {
        let store = Store::in_memory();
        let heads: i64 = store
            .conn
            .query_row("SELECT count(*) FROM chain_head", [], |r| r.get(0))
            .unwrap();
        assert_eq!(heads, 0);
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
