//! Tailing files through every way logs rotate.
//!
//! A file is followed by its identity (a digest of its first line) and its
//! open handle, not by its name:
//! - rename and create, or a file moved onto the path: the old handle is
//!   read to its end (the writer may still finish a line in it), then the
//!   new file is read from its start;
//! - copytruncate: the copy keeps the old identity, so what was written
//!   between our last read and the copy is read from the copy; the
//!   truncated file gets a new first line, a new identity;
//! - truncation while the daemon was down, a deleted and recreated file,
//!   inode reuse: the identity is the content's, so a new file is never
//!   mistaken for an old one.
//!
//! Reading starts from the checkpoint the writer committed with the data,
//! so after a crash the lines not yet committed are read again and the
//! writer, which knows how far each identity was stored, keeps none twice.
//! A last line without its newline waits for it.
//!
//! The source waits on notify's file events, with a slow rescan as a
//! safety net for file systems that do not report events.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use notify::{RecursiveMode, Watcher};
use rusqlite::OptionalExtension;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use super::{Batch, BatchSender};
use crate::ingest::SourceSettings;

/// The most lines one batch carries.
const BATCH_LINES: usize = 5_000;
/// The most bytes read from one file per pass, so one busy file does not
/// starve the others.
const READ_CHUNK: usize = 8 << 20;
/// How long a file that left the watched paths is still read, for the
/// lines its writer adds before reopening.
const DRAIN_AFTER_ROTATION: Duration = Duration::from_secs(30);
/// The safety rescan when no file event arrives.
const RESCAN: Duration = Duration::from_secs(5);
/// The longest first line looked at to name a file.
const MAX_FIRST_LINE: usize = 64 << 10;

/// One file identity being followed.
struct Tail {
    file: File,
    dev: u64,
    ino: u64,
    fingerprint: String,
    path: PathBuf,
    /// Offset after the last complete line handed to the writer.
    offset: u64,
    /// When the file last grew, or was last seen at a watched path.
    last_seen: Instant,
    /// Whether it is still at a watched path.
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

/// The identity of a file from its first line, as `ingest` computes it.
pub fn fingerprint(first_line: &[u8]) -> String {
    let digest = Sha256::digest(first_line);
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The tailer of one `kind = "file"` source.
pub struct FileSource {
    pub settings: Arc<SourceSettings>,
    /// A path or a glob.
    pub pattern: String,
    pub db: PathBuf,
    pub tx: BatchSender,
    pub stop: Arc<AtomicBool>,
}

impl FileSource {
    /// Runs until `stop` is set. Blocking: give it a thread.
    pub fn run(self) {
        let name = self.settings.name.clone();
        let (events_tx, events_rx) = std::sync::mpsc::channel();
        let mut watcher = match notify::recommended_watcher(move |event| {
            let _ = events_tx.send(event);
        }) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(source = %name, error = %e, "file events unavailable, rescanning every 5 s");
                None
            }
        };
        let mut watched_dirs: Vec<PathBuf> = Vec::new();
        let mut tails: HashMap<String, Tail> = HashMap::new();
        let store = match rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        ) {
            Ok(c) => c,
            Err(e) => {
                warn!(source = %name, error = %e, "cannot read checkpoints");
                return;
            }
        };
        let _ = store.busy_timeout(Duration::from_secs(30));
        info!(source = %name, pattern = %self.pattern, "tailing");

        while !self.stop.load(Ordering::Relaxed) {
            // Watch the folders of the pattern, as they appear.
            if let Some(w) = watcher.as_mut() {
                for dir in folders_of(&self.pattern) {
                    if !watched_dirs.contains(&dir) && dir.is_dir() {
                        match w.watch(&dir, RecursiveMode::NonRecursive) {
                            Ok(()) => watched_dirs.push(dir),
                            Err(e) => {
                                warn!(source = %name, folder = %dir.display(), error = %e, "cannot watch")
                            }
                        }
                    }
                }
            }

            if let Err(e) = self.scan(&mut tails, &store) {
                warn!(source = %name, error = %e, "reading files failed; retrying");
            }

            // Sleep until a file event, the rescan, or a stop.
            let deadline = Instant::now() + RESCAN;
            while !self.stop.load(Ordering::Relaxed) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                match events_rx.recv_timeout(left.min(Duration::from_millis(250))) {
                    Ok(_) => {
                        // Take the burst of events that came with it.
                        while events_rx.try_recv().is_ok() {}
                        break;
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        std::thread::sleep(left.min(Duration::from_millis(250)))
                    }
                }
            }
        }
        info!(source = %name, "stopped");
    }

    /// One pass: find the files at the watched paths, read what is new.
    fn scan(
        &self,
        tails: &mut HashMap<String, Tail>,
        store: &rusqlite::Connection,
    ) -> anyhow::Result<()> {
        let now = Instant::now();
        for tail in tails.values_mut() {
            tail.watched = false;
        }

        let paths: Vec<PathBuf> = match glob::glob(&self.pattern) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(_) => vec![PathBuf::from(&self.pattern)],
        };
        for path in paths {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // A file we follow, perhaps under a new name.
            let known = tails
                .iter()
                .find(|(_, t)| t.dev == meta.dev() && t.ino == meta.ino())
                .map(|(fp, _)| fp.clone());
            if let Some(known) = known {
                let mut probe = File::open(&path)?;
                let same = first_line(&mut probe)?
                    .is_some_and(|line| known.starts_with(&fingerprint(&line)));
                if same {
                    let tail = tails.get_mut(&known).expect("found above");
                    tail.path = path.clone();
                    tail.watched = true;
                    tail.last_seen = now;
                    continue;
                }
                // Rewritten in place: that identity is over. What it had
                // not handed over yet is in a copy, if any, which the
                // checkpoint finds again.
                tails.remove(&known);
            }
            let mut file = File::open(&path)?;
            let Some(line) = first_line(&mut file)? else {
                continue;
            };
            let mut fp = fingerprint(&line);
            if let Some(tail) = tails.get_mut(&fp) {
                // The identity we follow, at another inode: a copy made by
                // copytruncate, or the file moved and our handle is gone.
                let truncated = tail
                    .file
                    .metadata()
                    .map(|m| m.len() < tail.offset)
                    .unwrap_or(true);
                if truncated && meta.len() >= tail.offset {
                    info!(source = %self.settings.name, path = %path.display(), "following the copy of a truncated file");
                    tail.file = file;
                    tail.dev = meta.dev();
                    tail.ino = meta.ino();
                }
                tail.path = path.clone();
                tail.watched = true;
                tail.last_seen = now;
                continue;
            }
            let committed: Option<i64> = store
                .query_row(
                    "SELECT offset FROM checkpoints WHERE fingerprint = ?1",
                    [&fp],
                    |r| r.get(0),
                )
                .optional()?;
            let mut offset = committed.unwrap_or(0) as u64;
            if offset > meta.len() {
                // Shorter than what we stored with the same first line: it
                // was truncated and rewritten while we were away. A new
                // identity, read from its start.
                warn!(source = %self.settings.name, path = %path.display(), "file shorter than its checkpoint: read as a new file");
                fp = format!("{fp}-{}", meta.len());
                offset = 0;
                if tails.contains_key(&fp) {
                    continue;
                }
            }
            info!(source = %self.settings.name, path = %path.display(), offset, "following file");
            tails.insert(
                fp.clone(),
                Tail {
                    file,
                    dev: meta.dev(),
                    ino: meta.ino(),
                    fingerprint: fp,
                    path,
                    offset,
                    last_seen: now,
                    watched: true,
                },
            );
        }

        // Read every identity; forget those gone and quiet for a while.
        let mut finished = Vec::new();
        for (fp, tail) in tails.iter_mut() {
            let len = tail.file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < tail.offset {
                debug!(source = %self.settings.name, path = %tail.path.display(), "truncated: this identity is complete");
                finished.push(fp.clone());
                continue;
            }
            if len > tail.offset {
                tail.last_seen = now;
                self.read_new(tail)?;
            }
            if !tail.watched && now.duration_since(tail.last_seen) > DRAIN_AFTER_ROTATION {
                finished.push(fp.clone());
            }
        }
        for fp in finished {
            if let Some(t) = tails.remove(&fp) {
                debug!(source = %self.settings.name, path = %t.path.display(), "no longer followed");
            }
        }
        Ok(())
    }

    /// Reads the complete lines after `tail.offset` and hands them over.
    fn read_new(&self, tail: &mut Tail) -> anyhow::Result<()> {
        loop {
            tail.file.seek(SeekFrom::Start(tail.offset))?;
            let mut chunk = Vec::with_capacity(64 << 10);
            (&mut tail.file)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut chunk)?;
            let Some(last_newline) = chunk.iter().rposition(|&b| b == b'\n') else {
                // Only a partial line: it waits for its newline.
                return Ok(());
            };
            let complete = &chunk[..=last_newline];
            let mut start = tail.offset;
            let mut lines: Vec<Vec<u8>> = Vec::with_capacity(BATCH_LINES);
            let mut batch_start = start;
            for line in complete.split_inclusive(|&b| b == b'\n') {
                lines.push(line.to_vec());
                start += line.len() as u64;
                if lines.len() >= BATCH_LINES {
                    self.send(tail, batch_start, std::mem::take(&mut lines))?;
                    batch_start = start;
                }
            }
            if !lines.is_empty() {
                self.send(tail, batch_start, lines)?;
            }
            tail.offset = start;
            if chunk.len() < READ_CHUNK {
                return Ok(());
            }
        }
    }

    fn send(&self, tail: &Tail, start_offset: u64, lines: Vec<Vec<u8>>) -> anyhow::Result<()> {
        self.tx
            .blocking_send(Batch::FileLines {
                settings: self.settings.clone(),
                fingerprint: tail.fingerprint.clone(),
                path: tail.path.display().to_string(),
                start_offset,
                lines,
                received: Utc::now(),
            })
            .map_err(|_| anyhow::anyhow!("the store writer has stopped"))
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
}
