//! Tailing files through every way logs rotate.
//!
//! A file is followed by its open handle and known by its identity, a
//! digest of its first line, never by its name:
//! - rename and create, or a file moved onto the path: the old handle is
//!   kept and read to its end for a while (its writer may still add lines
//!   before it reopens), and read before the new file in each pass; the new
//!   file is a new identity, read from its start;
//! - copytruncate: when the followed file shrinks, the lines not read yet
//!   are in the copy, which is found in the same folder by its first line
//!   and read to its end; the emptied file gets a new first line, a new
//!   identity. Lines the program writes between the copy and the
//!   truncation are lost by copytruncate itself, before we can see them;
//! - a deleted and recreated file: as rename and create;
//! - a rotation while the daemon was down (rename, or copytruncate): at
//!   start, a file of the watched folders that this source had begun and
//!   that no longer sits at a watched path is read on from its checkpoint
//!   to its end, before the files at the watched paths;
//! - truncation while the daemon was down, inode reuse: the identity is the
//!   content's, so a new file is never mistaken for an old one. When the
//!   new content starts with the same first line as the old (a header), a
//!   file shorter than its checkpoint is a new identity (the digest and the
//!   inode); one rewritten past its old length while we were away cannot be
//!   told apart, and is read on from the old offset.
//!
//! Reading starts from the checkpoint the writer committed with the data,
//! so after a crash the lines not yet committed are read again and the
//! writer, which knows how far each identity was stored, keeps none twice.
//! A last line without its newline waits for it.
//!
//! The source waits on notify's file events, with a slow rescan as a
//! safety net for file systems that do not report events.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use notify::{RecursiveMode, Watcher};
use tracing::{debug, info, warn};

use super::{Batch, BatchSender, StopSignal};
use crate::ingest::{fingerprint, SourceSettings};

/// The most lines one batch carries: one transaction in the writer.
const BATCH_LINES: usize = 2_000;
/// The most bytes read from one file per pass, so one busy file does not
/// starve the others.
const READ_CHUNK: u64 = 4 << 20;
/// How long a file that left the watched paths is still read after it last
/// grew, for the lines its writer adds before reopening the new file.
const DRAIN_AFTER_ROTATION: Duration = Duration::from_secs(30);
/// The safety rescan when no file event arrives.
const RESCAN: Duration = Duration::from_secs(5);
/// How often the stop signal is looked at while waiting for events.
const STOP_CHECK: Duration = Duration::from_millis(100);
/// On stop, how long the last pass may read what writers added since the
/// last wake-up: short of the daemon's bound on a source's stop, and what
/// it leaves is read from the checkpoint at the next start.
const LAST_PASS: Duration = Duration::from_secs(2);
/// The longest first line looked at to name a file.
const MAX_FIRST_LINE: usize = 64 << 10;
/// A copy made by copytruncate was written moments ago; older files in
/// the folder are not looked at.
const COPY_MAX_AGE: Duration = Duration::from_secs(300);

/// One file identity being followed.
struct Tail {
    /// The handle read from: it stays valid when the file is renamed or
    /// deleted, which is how the end of a rotated file is read.
    file: File,
    /// Device and inode of `file`, to recognise it under another name.
    dev: u64,
    ino: u64,
    /// The identity lines and checkpoint are filed under.
    identity: String,
    /// Where the file was last seen, for logs and records.
    path: PathBuf,
    /// Offset after the last complete line handed to the writer.
    offset: u64,
    /// When the file last grew or was last seen at a watched path: a
    /// rotated file is let go `DRAIN_AFTER_ROTATION` after this.
    last_active: Instant,
    /// Whether it is at a watched path in this pass.
    watched: bool,
}

/// The first complete line of a file, if it has one yet.
fn first_line(file: &mut File) -> std::io::Result<Option<Vec<u8>>> {
    file.seek(SeekFrom::Start(0))?;
    let mut buffer = vec![0u8; 4096];
    let mut head = Vec::new();
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buffer[..n]);
        if let Some(end) = head.iter().position(|&b| b == b'\n') {
            head.truncate(end + 1);
            return Ok(Some(head));
        }
        if head.len() > MAX_FIRST_LINE {
            head.truncate(MAX_FIRST_LINE);
            return Ok(Some(head));
        }
    }
}

/// The first-line digest an identity starts with (`digest`, or `digest#2`
/// and on for other files that begin with the same line).
fn digest_of(identity: &str) -> &str {
    identity.split('#').next().unwrap_or(identity)
}

/// The tailer of one `kind = "file"` source.
pub struct FileSource {
    pub settings: Arc<SourceSettings>,
    /// A path or a glob.
    pub pattern: String,
    /// The store, read (never written) for the committed checkpoints.
    pub db: PathBuf,
    /// To the writer; full means the writer is behind, and the tailer
    /// waits (backpressure) instead of reading further.
    pub tx: BatchSender,
    pub stop: StopSignal,
}

impl FileSource {
    /// Runs until stopped. Blocking: give it a thread. An error means the
    /// source could not run at all (no checkpoints to read); the caller
    /// reports it and starts the source again later.
    pub fn run(self) -> anyhow::Result<()> {
        let name = self.settings.name.clone();

        // Checkpoints are read from the store through a connection of our
        // own, read-only: the writer is the only one that writes.
        let checkpoints = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        checkpoints.busy_timeout(Duration::from_secs(30))?;

        // File events wake the loop; without them the rescan still works.
        let (events_tx, events_rx) = std::sync::mpsc::channel();
        let mut watcher = match notify::recommended_watcher(move |event| {
            let _ = events_tx.send(event);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(source = %name, error = %e, "file events unavailable; rescanning every 5 s");
                None
            }
        };
        let mut watched_dirs: Vec<PathBuf> = Vec::new();
        let mut tails: HashMap<String, Tail> = HashMap::new();
        let mut reported_missing = false;
        info!(source = %name, pattern = %self.pattern, "tailing");
        // Files rotated while the daemon was stopped are no longer at the
        // watched paths; those it had begun are read to their end first.
        if let Err(e) = self.find_rotated_while_stopped(&mut tails, &checkpoints) {
            warn!(source = %name, error = %e, "looking for files rotated while stopped failed");
        }

        while !self.stopped() {
            // Watch the folders of the pattern, as they appear.
            if let Some(w) = watcher.as_mut() {
                for dir in folders_of(&self.pattern) {
                    if !watched_dirs.contains(&dir) && dir.is_dir() {
                        match w.watch(&dir, RecursiveMode::NonRecursive) {
                            Ok(()) => watched_dirs.push(dir),
                            Err(e) => {
                                warn!(source = %name, folder = %dir.display(), error = %e, "cannot watch a folder; rescanning it every 5 s")
                            }
                        }
                    }
                }
            }

            // Read what is new; a failure here is retried at the next pass.
            match self.scan(&mut tails, &checkpoints, None) {
                Ok(found) => {
                    if found == 0 && !reported_missing {
                        warn!(source = %name, pattern = %self.pattern, "no file matches yet; waiting for one");
                        reported_missing = true;
                    } else if found > 0 && reported_missing {
                        reported_missing = false;
                    }
                }
                Err(e) if self.stopped() => debug!(source = %name, error = %e, "stopped mid-read"),
                Err(e) => warn!(source = %name, error = %e, "reading files failed; retrying"),
            }

            // Sleep until a file event, the rescan, or a stop.
            let deadline = Instant::now() + RESCAN;
            while !self.stopped() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match events_rx.recv_timeout(left.min(STOP_CHECK)) {
                    Ok(_) => {
                        // Take the burst of events that came with it.
                        while events_rx.try_recv().is_ok() {}
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(left.min(STOP_CHECK))
                    }
                }
            }
        }
        // Stopping: lines written just before the signal (a burst whose
        // file event has not woken us yet) are read now, so the store is
        // current when the daemon exits.
        let until = Instant::now() + LAST_PASS;
        if let Err(e) = self.scan(&mut tails, &checkpoints, Some(until)) {
            debug!(source = %name, error = %e, "last pass cut short");
        }
        info!(source = %name, "stopped");
        Ok(())
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// One pass: find the files at the watched paths, read what is new in
    /// every followed file. Returns how many files match the pattern.
    /// Reading ends at the stop signal, or for the last pass (`last_pass`)
    /// at that instant.
    fn scan(
        &self,
        tails: &mut HashMap<String, Tail>,
        checkpoints: &rusqlite::Connection,
        last_pass: Option<Instant>,
    ) -> anyhow::Result<usize> {
        let now = Instant::now();

        // What sits at the watched paths now: files we follow (perhaps
        // under a new name) and new ones, which start at their checkpoint.
        for tail in tails.values_mut() {
            tail.watched = false;
        }
        let paths = self.matching_paths();
        for path in &paths {
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            if let Some(tail) = tails
                .values_mut()
                .find(|t| t.dev == meta.dev() && t.ino == meta.ino())
            {
                if tail.path != *path {
                    info!(source = %self.settings.name, from = %tail.path.display(), to = %path.display(), "file renamed");
                    tail.path = path.clone();
                }
                tail.watched = true;
                tail.last_active = now;
                continue;
            }
            match self.open_new(path, &meta, checkpoints) {
                Ok(Some(tail)) => {
                    if tails.contains_key(&tail.identity) {
                        // The content of a file we follow, at another
                        // inode: a copy. It is read only if ours shrinks.
                        continue;
                    }
                    tails.insert(tail.identity.clone(), tail);
                }
                Ok(None) => {}
                // Gone between the listing and the opening: a rotation.
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    warn!(source = %self.settings.name, path = %path.display(), error = %e, "cannot open a file; retrying")
                }
            }
        }

        // Read every identity, the rotated ones first: the end of an old
        // file goes to the writer before the start of the new one.
        let mut order: Vec<(bool, String)> = tails
            .iter()
            .map(|(id, t)| (t.watched, id.clone()))
            .collect();
        order.sort();
        let mut finished = Vec::new();
        for (_, identity) in order {
            let tail = tails.get_mut(&identity).expect("listed above");
            if self.was_rewritten(tail)? {
                // Truncated (copytruncate) or rewritten in place: this
                // handle no longer holds our lines, a copy may.
                if !self.follow_copy(tail)? {
                    warn!(source = %self.settings.name, path = %tail.path.display(), offset = tail.offset, "file truncated and no copy of it found: lines written since the last read are lost");
                    finished.push(identity);
                    continue;
                }
                tail.watched = false;
                tail.last_active = now;
            }
            let len = tail.file.metadata()?.len();
            if len > tail.offset {
                tail.last_active = now;
                self.read_new(tail, last_pass)?;
            }
            if !tail.watched && now.duration_since(tail.last_active) > DRAIN_AFTER_ROTATION {
                finished.push(identity);
            }
        }
        for identity in finished {
            if let Some(t) = tails.remove(&identity) {
                info!(source = %self.settings.name, path = %t.path.display(), offset = t.offset, "finished reading a rotated file");
            }
        }
        Ok(paths.len())
    }

    /// Files of the watched folders that are not at a watched path but
    /// that this source read part of (its checkpoint says so, short of
    /// their end): renamed or copied by a rotation while the daemon was
    /// stopped. They are followed as rotated files, read to their end
    /// before the files at the watched paths, then let go.
    fn find_rotated_while_stopped(
        &self,
        tails: &mut HashMap<String, Tail>,
        checkpoints: &rusqlite::Connection,
    ) -> anyhow::Result<()> {
        let watched = self.matching_paths();
        let mut source_of =
            checkpoints.prepare("SELECT source FROM checkpoints WHERE fingerprint = ?1")?;
        for folder in folders_of(&self.pattern) {
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() || watched.contains(&path) || is_store_file(&self.db, &path) {
                    continue;
                }
                let Ok(mut file) = File::open(&path) else {
                    continue;
                };
                let Ok(Some(line)) = first_line(&mut file) else {
                    continue;
                };
                // The identity and offset of its checkpoint, if it has one;
                // a file without is a new identity at offset 0.
                let (identity, offset) =
                    crate::ingest::resume_point(checkpoints, &fingerprint(&line), &file)?;
                let source: Option<String> = {
                    use rusqlite::OptionalExtension;
                    source_of.query_row([&identity], |r| r.get(0)).optional()?
                };
                let begun = source.is_some_and(|source| source == self.settings.name);
                if !begun || offset >= meta.len() || tails.contains_key(&identity) {
                    continue;
                }
                info!(source = %self.settings.name, path = %path.display(), offset, "reading the rest of a file rotated while stopped");
                tails.insert(
                    identity.clone(),
                    Tail {
                        file,
                        dev: meta.dev(),
                        ino: meta.ino(),
                        identity,
                        path,
                        offset,
                        last_active: Instant::now(),
                        watched: false,
                    },
                );
            }
        }
        Ok(())
    }

    /// The regular files the pattern names now.
    fn matching_paths(&self) -> Vec<PathBuf> {
        match glob::glob(&self.pattern) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(_) => vec![PathBuf::from(&self.pattern)]
                .into_iter()
                .filter(|p| p.is_file())
                .collect(),
        }
    }

    /// Opens a file not followed yet at its identity's checkpoint; `None`
    /// while it has no complete first line.
    fn open_new(
        &self,
        path: &Path,
        meta: &Metadata,
        checkpoints: &rusqlite::Connection,
    ) -> anyhow::Result<Option<Tail>> {
        let mut file = File::open(path)?;
        let Some(line) = first_line(&mut file)? else {
            return Ok(None);
        };
        // The identity is the first line's digest, told apart from other
        // files with that first line (one rewritten while we were away) by
        // the bytes before each checkpoint.
        let digest = fingerprint(&line);
        let (identity, offset) = crate::ingest::resume_point(checkpoints, &digest, &file)?;
        if identity != digest {
            info!(source = %self.settings.name, path = %path.display(), identity = %identity, "file begins like one read before but does not go on like it: read as another file");
        }

        info!(source = %self.settings.name, path = %path.display(), offset, "following file");
        Ok(Some(Tail {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            identity,
            path: path.to_owned(),
            offset,
            last_active: Instant::now(),
            watched: true,
        }))
    }

    /// Whether the followed file was truncated or rewritten in place since
    /// the last read: shorter than what we read, or another first line.
    fn was_rewritten(&self, tail: &mut Tail) -> anyhow::Result<bool> {
        let len = tail.file.metadata()?.len();
        if len < tail.offset {
            return Ok(true);
        }
        if tail.offset == 0 {
            return Ok(false);
        }
        Ok(match first_line(&mut tail.file)? {
            Some(line) => fingerprint(&line) != digest_of(&tail.identity),
            None => true,
        })
    }

    /// After a truncation, switches the tail to the copy that holds the
    /// rest of its lines: a file of the same folder, written moments ago,
    /// with the same first line and at least as long as what we read.
    fn follow_copy(&self, tail: &mut Tail) -> anyhow::Result<bool> {
        let Some(folder) = tail.path.parent() else {
            return Ok(false);
        };
        let folder = if folder.as_os_str().is_empty() {
            Path::new(".")
        } else {
            folder
        };
        for entry in std::fs::read_dir(folder)?.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            let recent = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age <= COPY_MAX_AGE);
            if !meta.is_file()
                || is_store_file(&self.db, &entry.path())
                || (meta.dev(), meta.ino()) == (tail.dev, tail.ino)
                || meta.len() < tail.offset
                || !recent
            {
                continue;
            }
            let Ok(mut file) = File::open(entry.path()) else {
                continue;
            };
            let same = first_line(&mut file)?
                .is_some_and(|line| fingerprint(&line) == digest_of(&tail.identity));
            if same {
                info!(source = %self.settings.name, path = %tail.path.display(), copy = %entry.path().display(), "file truncated: reading the rest from its copy");
                tail.file = file;
                tail.dev = meta.dev();
                tail.ino = meta.ino();
                tail.path = entry.path();
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads the complete lines after `tail.offset` and hands them over,
    /// until the stop signal or the end of the last pass.
    fn read_new(&self, tail: &mut Tail, last_pass: Option<Instant>) -> anyhow::Result<()> {
        loop {
            // What is not read when we stop is read from the checkpoint at
            // the next start.
            let over = match last_pass {
                Some(until) => Instant::now() >= until,
                None => self.stopped(),
            };
            if over {
                return Ok(());
            }

            // A chunk from where we stopped; a partial last line is left
            // in the file for the next pass.
            tail.file.seek(SeekFrom::Start(tail.offset))?;
            let mut chunk = Vec::with_capacity(64 << 10);
            (&mut tail.file).take(READ_CHUNK).read_to_end(&mut chunk)?;
            let Some(last_newline) = chunk.iter().rposition(|&b| b == b'\n') else {
                return Ok(());
            };

            // Its complete lines, in batches, each with its start offset
            // so the writer can skip what it already stored.
            let mut at = tail.offset;
            let mut batch_start = at;
            let mut lines: Vec<Vec<u8>> = Vec::with_capacity(BATCH_LINES);
            for line in chunk[..=last_newline].split_inclusive(|&b| b == b'\n') {
                lines.push(line.to_vec());
                at += line.len() as u64;
                if lines.len() >= BATCH_LINES {
                    self.send(tail, batch_start, std::mem::take(&mut lines))?;
                    batch_start = at;
                }
            }
            if !lines.is_empty() {
                self.send(tail, batch_start, lines)?;
            }
            tail.offset = at;
            if (chunk.len() as u64) < READ_CHUNK {
                return Ok(());
            }
        }
    }

    fn send(&self, tail: &Tail, start_offset: u64, lines: Vec<Vec<u8>>) -> anyhow::Result<()> {
        debug!(source = %self.settings.name, path = %tail.path.display(), start_offset, lines = lines.len(), "batch read");
        self.tx
            .blocking_send(Batch::FileLines {
                settings: self.settings.clone(),
                identity: tail.identity.clone(),
                path: tail.path.display().to_string(),
                start_offset,
                lines,
                received: Utc::now(),
            })
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Whether `path` is the store `db` or one of SQLite's files beside it
/// (`-wal`, `-shm`, `-journal`), which may share a folder with the logs.
/// They are never opened here: closing a descriptor of a file drops every
/// POSIX lock this process holds on it, SQLite's included.
fn is_store_file(db: &Path, path: &Path) -> bool {
    let (Some(name), Some(store)) = (path.file_name(), db.file_name()) else {
        return false;
    };
    let (name, store) = (name.to_string_lossy(), store.to_string_lossy());
    let companion = name
        .strip_prefix(&*store)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'));
    let folder = |p: &Path| {
        let parent = p.parent().filter(|p| !p.as_os_str().is_empty());
        std::fs::canonicalize(parent.unwrap_or(Path::new(".")))
    };
    companion
        && match (folder(path), folder(db)) {
            (Ok(a), Ok(b)) => a == b,
            _ => true,
        }
}

/// The folders a pattern's files live in (the part before any wildcard).
fn folders_of(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let mut dir = PathBuf::new();
    for part in path.parent().map(|p| p.components()).into_iter().flatten() {
        let text = part.as_os_str().to_string_lossy();
        if text.contains(['*', '?', '[']) {
            // A wildcard folder: watch each match.
            let mut out = Vec::new();
            if let Ok(found) = glob::glob(&path.parent().expect("has parent").display().to_string())
            {
                out.extend(found.filter_map(Result::ok).filter(|p| p.is_dir()));
            }
            return out;
        }
        dir.push(part);
    }
    if dir.as_os_str().is_empty() {
        dir.push(".");
    }
    vec![dir]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_of_patterns() {
        assert_eq!(
            folders_of("/var/log/openvpn/*.log"),
            vec![PathBuf::from("/var/log/openvpn")]
        );
        assert_eq!(folders_of("server.log"), vec![PathBuf::from(".")]);
    }

    #[test]
    fn the_store_and_its_companions_are_told_apart_from_logs() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vpnledger.db");
        for name in [
            "vpnledger.db",
            "vpnledger.db-wal",
            "vpnledger.db-shm",
            "vpnledger.db-journal",
        ] {
            assert!(is_store_file(&db, &dir.path().join(name)), "{name}");
        }
        for name in ["vpnledger.db.log", "server.log", "vpnledger.dbx"] {
            assert!(!is_store_file(&db, &dir.path().join(name)), "{name}");
        }
        // The same name in another folder is another file.
        let other = tempfile::tempdir().unwrap();
        assert!(!is_store_file(&db, &other.path().join("vpnledger.db")));
    }

    #[test]
    fn identities_keep_their_first_line_digest() {
        assert_eq!(digest_of("abc"), "abc");
        assert_eq!(digest_of("abc#2"), "abc");
        assert_eq!(digest_of("abc#13"), "abc");
    }
}
