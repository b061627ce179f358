//! Live sources: each runs on its own and hands batches of lines to the one
//! store writer over a bounded channel, so a slow disk slows the sources
//! down instead of filling memory.
//!
//! - [`file`]: tails a path or a glob through rotations;
//! - [`syslog`]: UDP and TCP listeners;
//! - [`loki`]: pulls from Grafana Loki with a cursor;
//! - [`status`]: polls an OpenVPN status file or `wg show all dump`.
//!
//! What each source may lose differs, and each module says so: a file and
//! a Loki query can be read again from their committed checkpoint, so a
//! batch still in the channel at a crash is read again; a syslog message
//! exists only once it has been received, so the writer commits every one
//! it was handed before the daemon stops.

pub mod file;
pub mod loki;
pub mod status;
pub mod syslog;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::ingest::SourceSettings;

/// What a source hands to the writer.
pub enum Batch {
    /// Complete lines of a file identity, from `start_offset` on.
    FileLines {
        settings: Arc<SourceSettings>,
        /// The file identity the lines and the checkpoint are filed under.
        identity: String,
        path: String,
        /// The byte offset of the first line: the writer skips what it
        /// already stored and never stores a line twice.
        start_offset: u64,
        /// Each line with its newline.
        lines: Vec<Vec<u8>>,
        received: DateTime<Utc>,
    },
    /// Messages of a live stream (a syslog listener), each with the time
    /// it arrived and whether it was cut at the size limit.
    Messages {
        settings: Arc<SourceSettings>,
        /// Names the stream in the records.
        key: String,
        path: String,
        messages: Vec<Message>,
    },
    /// Lines pulled from Loki, oldest first, and the cursor after them.
    Pulled {
        settings: Arc<SourceSettings>,
        key: String,
        /// Each line with Loki's timestamp for it (ns since the epoch):
        /// the writer skips lines at or before its committed cursor, so a
        /// page pulled twice (after a reload) is stored once.
        messages: Vec<(i64, Message)>,
        /// Nanoseconds since the epoch of the last line: the checkpoint.
        cursor: i64,
    },
    /// A whole snapshot (a status file, a WireGuard dump).
    Snapshot {
        settings: Arc<SourceSettings>,
        label: String,
        content: Vec<u8>,
        received: DateTime<Utc>,
    },
}

impl Batch {
    /// Whether the batch can be read again from a committed checkpoint if
    /// it is never stored (file lines, Loki pages, status polls), unlike
    /// syslog messages, which exist nowhere else.
    pub fn can_be_read_again(&self) -> bool {
        !matches!(self, Batch::Messages { .. })
    }
}

/// One message of a stream.
#[derive(Debug, Clone)]
pub struct Message {
    pub bytes: Vec<u8>,
    pub received: DateTime<Utc>,
    /// Cut at the source's size limit: kept, and flagged.
    pub truncated: bool,
}

/// The writer's end of the channel.
pub type BatchSender = tokio::sync::mpsc::Sender<Batch>;

/// Tells a source to stop: set to `true` once, when the daemon stops or
/// a reload removes or changes the source. Async sources await a change;
/// the file tailer, a thread, looks at it between passes.
pub type StopSignal = tokio::sync::watch::Receiver<bool>;
