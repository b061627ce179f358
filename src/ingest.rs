//! Reading a log file into the store, once, from where it was left.
//!
//! A file is known by its identity (a digest of its first line, or of the
//! whole content for a status snapshot), not by its path: a rotated file
//! keeps its identity, and a file read before, by `ingest` or by the daemon,
//! is read on from its checkpoint. Records, events and the checkpoint are
//! committed in the same transaction, batch by batch, so a crash never
//! loses or doubles a line.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;
use encoding_rs::Encoding;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql, Transaction};
use sha2::{Digest as _, Sha256};
use vpnledger_parsers::openvpn::status::{is_status_file, parse_status};
use vpnledger_parsers::{
    Event, Format, FormatChoice, LineReader, LineTime, Parsed, TimeResolver, Verdict, YearRule,
};

use crate::config::{default_drop_prefixes, Config};
use crate::store::{to_micros, Store, RUN_MICROS};
use crate::BadInput;

/// Lines per transaction: large enough to amortise the commit, small
/// enough that a crash loses little work (none of the data: it is re-read).
const BATCH_LINES: usize = 20_000;

/// The largest status file read whole.
const MAX_STATUS_BYTES: u64 = 64 << 20;

/// How one source's lines are read.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// The source's name, stored with every record.
    pub name: String,
    /// The gateway of lines that name no host.
    pub gateway: Option<String>,
    pub format: FormatChoice,
    /// The zone of lines that carry no offset.
    pub zone: Tz,
    /// How bytes that are not UTF-8 are read.
    pub encoding: &'static Encoding,
    /// LOG prefixes that name a drop.
    pub drop_prefixes: Vec<String>,
}

impl SourceSettings {
    /// The settings of source `name`: its configuration if it has one, else
    /// the defaults; `zone` and `format` are command-line overrides.
    pub fn resolve(
        config: &Config,
        name: &str,
        zone: Option<Tz>,
        format: Option<FormatChoice>,
    ) -> anyhow::Result<SourceSettings> {
        let source = config.source(name);
        let encoding_label = source
            .and_then(|s| s.encoding.as_ref().map(|e| e.get_ref().clone()))
            .unwrap_or_else(|| config.defaults.encoding.clone());
        let encoding = Encoding::for_label(encoding_label.as_bytes())
            .ok_or_else(|| BadInput(format!("unknown encoding {encoding_label:?}")))?;
        let configured_format = match source.and_then(|s| s.format.as_ref()) {
            Some(f) => f.get_ref().parse().map_err(BadInput)?,
            None => FormatChoice::Auto,
        };
        Ok(SourceSettings {
            name: name.to_owned(),
            gateway: source.and_then(|s| s.gateway.clone()),
            format: format.unwrap_or(configured_format),
            zone: zone
                .or(source.and_then(|s| s.timezone))
                .unwrap_or(config.defaults.timezone),
            encoding,
            drop_prefixes: source
                .and_then(|s| s.drop_prefixes.clone())
                .unwrap_or_else(|| config.defaults.drop_prefixes.clone()),
        })
    }

    /// Settings for tests and for sources with every default.
    pub fn plain(name: &str, zone: Tz) -> SourceSettings {
        SourceSettings {
            name: name.to_owned(),
            gateway: None,
            format: FormatChoice::Auto,
            zone,
            encoding: encoding_rs::WINDOWS_1252,
            drop_prefixes: default_drop_prefixes(),
        }
    }

    fn gateway_of<'a>(&'a self, host: Option<&'a str>) -> &'a str {
        host.or(self.gateway.as_deref()).unwrap_or(&self.name)
    }

    /// Whether a LOG prefix names a drop.
    pub fn names_a_drop(&self, label: Option<&str>) -> bool {
        let Some(label) = label else { return false };
        let label = label.as_bytes();
        self.drop_prefixes.iter().any(|word| {
            let word = word.as_bytes();
            word.is_empty()
                || label
                    .windows(word.len())
                    .any(|w| w.eq_ignore_ascii_case(word))
        })
    }
}

/// What one ingest did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IngestSummary {
    pub files: usize,
    /// Lines read in this run (lines read before are skipped, not counted).
    pub lines: u64,
    /// Lines that carried an event, stored as evidence.
    pub records: u64,
    /// Of those, connections a firewall saw.
    pub traffic: u64,
    /// Lines no parser understood, kept in `unparsed`.
    pub unparsed: u64,
    /// Files that had nothing new.
    pub unchanged_files: usize,
    /// Files whose last line had no newline yet: left for a later read.
    pub partial_lines: usize,
    /// Gateways whose sessions must be rebuilt.
    #[serde(skip)]
    pub gateways: BTreeSet<String>,
}

impl IngestSummary {
    /// Adds another summary's counts to this one.
    pub fn add(&mut self, other: IngestSummary) {
        self.files += other.files;
        self.lines += other.lines;
        self.records += other.records;
        self.traffic += other.traffic;
        self.unparsed += other.unparsed;
        self.unchanged_files += other.unchanged_files;
        self.partial_lines += other.partial_lines;
        self.gateways.extend(other.gateways);
    }
}

/// How the year of lines that have none is chosen for a one-shot read.
#[derive(Debug, Clone, Copy)]
pub enum YearChoice {
    /// `--year Y`: the year of the file's first line.
    FirstLine(i32),
    /// From the file's modification time, which dates its last line.
    FromModificationTime,
}

/// Where lines come from: a path, or standard input (`-`).
pub enum Input<'a> {
    Path(&'a Path),
    Stdin,
}

/// Ingests several inputs with one source's settings.
pub fn ingest_inputs(
    store: &mut Store,
    inputs: &[PathBuf],
    settings: &SourceSettings,
    year: YearChoice,
    complete: bool,
    received: DateTime<Utc>,
) -> anyhow::Result<IngestSummary> {
    let mut total = IngestSummary::default();
    for path in inputs {
        let input = if path.as_os_str() == "-" {
            Input::Stdin
        } else {
            Input::Path(path)
        };
        total.add(ingest(store, input, settings, year, complete, received)?);
    }
    Ok(total)
}

/// The identity of a file: a digest of its first line.
pub fn fingerprint(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    crate::store::hex(&digest[..16])
}

struct Checkpoint {
    offset: u64,
    line: u64,
    year: Option<i32>,
    /// Month and day of the latest line read (the day is unknown in a
    /// checkpoint written before it was kept).
    last_month: Option<u32>,
    last_day: Option<u32>,
    /// How many bytes before `offset` `tail` covers.
    tail_len: u64,
    /// The digest of those bytes.
    tail: Option<String>,
}

fn load_checkpoint(conn: &Connection, fingerprint: &str) -> anyhow::Result<Option<Checkpoint>> {
    Ok(conn
        .query_row(
            "SELECT offset, line, year, last_month, tail_len, tail, last_day FROM checkpoints WHERE fingerprint = ?1",
            [fingerprint],
            |r| {
                Ok(Checkpoint {
                    offset: r.get::<_, i64>(0)? as u64,
                    line: r.get::<_, i64>(1)? as u64,
                    year: r.get(2)?,
                    last_month: r.get(3)?,
                    tail_len: r.get::<_, i64>(4)? as u64,
                    tail: r.get(5)?,
                    last_day: r.get(6)?,
                })
            },
        )
        .optional()?)
}

/// The most bytes before a checkpoint's offset that its digest covers.
const TAIL_BYTES: usize = 256;
/// The most files with one first line told apart.
const MAX_GENERATIONS: u32 = 10_000;

/// The digest of the bytes just before a checkpoint's offset.
fn tail_digest(bytes: &[u8]) -> String {
    crate::store::hex(&Sha256::digest(bytes)[..16])
}

/// Which identity a file whose first line has digest `digest` is, and
/// where reading it resumes. Files are named by their first line, but two
/// files can share one (a header, a banner, a file rewritten from the
/// start): a checkpoint is this file's only if the bytes before its offset
/// are the ones read then. Otherwise the next identity of that first line
/// is tried (`digest#2`, `digest#3`, ...), and the first one never used
/// names a new file, read from its start.
pub fn resume_point(conn: &Connection, digest: &str, file: &File) -> anyhow::Result<(String, u64)> {
    use std::os::unix::fs::FileExt;

    let len = file.metadata()?.len();
    for generation in 1..=MAX_GENERATIONS {
        let identity = match generation {
            1 => digest.to_owned(),
            g => format!("{digest}#{g}"),
        };
        let Some(checkpoint) = load_checkpoint(conn, &identity)? else {
            return Ok((identity, 0));
        };
        if checkpoint.offset > len {
            continue;
        }
        let Some(tail) = checkpoint.tail.filter(|_| checkpoint.tail_len > 0) else {
            return Ok((identity, checkpoint.offset));
        };
        let tail_len = checkpoint.tail_len.min(checkpoint.offset);
        let mut bytes = vec![0; tail_len as usize];
        file.read_exact_at(&mut bytes, checkpoint.offset - tail_len)?;
        if tail_digest(&bytes) == tail {
            return Ok((identity, checkpoint.offset));
        }
    }
    anyhow::bail!("more than {MAX_GENERATIONS} different files begin with the same line")
}

/// The committed position of an identity (a file offset, a Loki cursor).
pub fn checkpoint_offset(store: &Store, key: &str) -> anyhow::Result<Option<u64>> {
    Ok(load_checkpoint(&store.conn, key)?.map(|c| c.offset))
}

/// Reads one input into the store. A last line without its newline is
/// left for a later read (it may be being written), unless the input is
/// `complete`.
pub fn ingest(
    store: &mut Store,
    input: Input<'_>,
    settings: &SourceSettings,
    year: YearChoice,
    complete: bool,
    received: DateTime<Utc>,
) -> anyhow::Result<IngestSummary> {
    // `reopen`: the path of a regular file, which can be opened again and
    // sought; standard input, a pipe or a FIFO is read once, through.
    let (label, mut reader, modified, reopen): (
        String,
        Box<dyn BufRead>,
        Option<DateTime<Utc>>,
        Option<PathBuf>,
    ) = match input {
        Input::Stdin => (
            "-".into(),
            Box::new(BufReader::new(std::io::stdin())),
            None,
            None,
        ),
        Input::Path(path) => {
            if path.is_dir() {
                return Err(BadInput(format!("{}: a folder, not a file", path.display())).into());
            }
            let file = File::open(path)
                .map_err(|e| BadInput(format!("{}: cannot open: {e}", path.display())))?;
            let metadata = file.metadata().ok();
            let regular = metadata.as_ref().is_some_and(|m| m.file_type().is_file());
            let modified = metadata
                .filter(|_| regular)
                .and_then(|m| m.modified().ok())
                .map(DateTime::<Utc>::from);
            (
                path.display().to_string(),
                Box::new(BufReader::with_capacity(1 << 20, file)),
                modified,
                regular.then(|| path.to_path_buf()),
            )
        }
    };

    // The first line names the file and tells a status snapshot apart.
    let mut first = Vec::new();
    reader
        .read_until(b'\n', &mut first)
        .with_context(|| format!("{label}: cannot read"))?;
    if first.is_empty() {
        return Ok(IngestSummary {
            files: 1,
            unchanged_files: 1,
            ..Default::default()
        });
    }
    let first_text = String::from_utf8_lossy(&first);
    let is_status = match settings.format {
        FormatChoice::Fixed(f) if f.is_snapshot() && !is_status_file(&first_text) => {
            // Read as a snapshot, a log would be kept again, whole, as
            // lines no parser understood.
            return Err(BadInput(format!(
                "{label}: read as {f}, but its first line is not that of an OpenVPN status file \
                 (\"OpenVPN CLIENT LIST\", or TITLE then a comma or a tab): {:?}",
                first_text.trim_end()
            ))
            .into());
        }
        FormatChoice::Fixed(f) => f.is_snapshot(),
        FormatChoice::Auto => is_status_file(&first_text),
    };
    if is_status {
        let mut content = first;
        reader
            .take(MAX_STATUS_BYTES)
            .read_to_end(&mut content)
            .with_context(|| format!("{label}: cannot read"))?;
        return ingest_status(store, &label, &content, settings, received);
    }
    if !first.ends_with(b"\n") && !complete {
        return Ok(IngestSummary {
            files: 1,
            partial_lines: 1,
            unchanged_files: 1,
            ..Default::default()
        });
    }

    // The file's identity: its first line's, told apart from other files
    // with the same first line by what lies before the checkpoint.
    // Standard input cannot be read back: it is checked as it is skipped.
    // A first line read without its newline (`--complete`) is named as
    // it will be once its newline comes, so the file stays the same file.
    let digest = if first.ends_with(b"\n") {
        fingerprint(&first)
    } else {
        fingerprint(&[&first[..], b"\n"].concat())
    };
    let fingerprint = match &reopen {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| BadInput(format!("{}: cannot open: {e}", path.display())))?;
            resume_point(&store.conn, &digest, &file)?.0
        }
        None => digest,
    };
    let checkpoint = load_checkpoint(&store.conn, &fingerprint)?;
    let has_checkpoint = checkpoint.is_some();
    // What standard input must skip to end with.
    let expected_tail =
        checkpoint.and_then(|c| c.tail.filter(|_| c.tail_len > 0).map(|t| (c.tail_len, t)));

    // The year of the first line, when the file is new to the store.
    let first_year = if has_checkpoint {
        received.with_timezone(&settings.zone).year()
    } else {
        match (year, &reopen) {
            (YearChoice::FirstLine(y), _) => y,
            (YearChoice::FromModificationTime, Some(path)) => {
                first_line_year(path, modified.unwrap_or(received), settings.zone)?
            }
            (YearChoice::FromModificationTime, None) => {
                received.with_timezone(&settings.zone).year()
            }
        }
    };
    let year_rule = YearRule::Sequential {
        year: first_year,
        latest: None,
    };
    let mut stream = Stream::for_file(
        store,
        Arc::new(settings.clone()),
        fingerprint,
        label.clone(),
        year_rule,
    )?;

    let (mut reader, newline_after_last) = reader_at(
        &label,
        reopen.as_deref(),
        reader,
        first,
        stream.offset,
        expected_tail,
    )?;
    if newline_after_last {
        stream.skip(b"\n");
    }
    let mut buffer = Vec::with_capacity(4096);
    loop {
        buffer.clear();
        let n = reader
            .read_until(b'\n', &mut buffer)
            .with_context(|| format!("{label}: cannot read"))?;
        if n == 0 {
            break;
        }
        if !buffer.ends_with(b"\n") && !complete {
            // A line still being written: it waits for its newline.
            stream.summary.partial_lines += 1;
            break;
        }
        stream.read_line(&buffer, received);
        if stream.summary.lines % BATCH_LINES as u64 == 0 {
            stream.commit(store, received)?;
        }
    }
    stream.commit(store, received)?;
    if stream.summary.lines == 0 {
        stream.summary.unchanged_files += 1;
    }
    Ok(stream.summary)
}

/// A reader of the input from `offset` on. A regular file is opened
/// again and sought; standard input (or a pipe) is read through, and what
/// it skips must end with the bytes the checkpoint's digest covers
/// (`expected_tail`). True with it when the file's next byte is the
/// newline of a last line read without it (`--complete`): that newline
/// ends the line already read, no empty line of its own, and the reader
/// starts past it.
fn reader_at(
    label: &str,
    path: Option<&Path>,
    mut reader: Box<dyn BufRead>,
    first: Vec<u8>,
    offset: u64,
    expected_tail: Option<(u64, String)>,
) -> anyhow::Result<(Box<dyn BufRead>, bool)> {
    if let Some(path) = path {
        let mut file = File::open(path)
            .map_err(|e| BadInput(format!("{}: cannot open: {e}", path.display())))?;
        let mut around = [0u8; 2];
        let newline_after_last = offset.checked_sub(1).is_some_and(|before| {
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut around, before).is_ok()
                && around[0] != b'\n'
                && around[1] == b'\n'
        });
        let start = offset + u64::from(newline_after_last);
        file.seek(SeekFrom::Start(start))
            .with_context(|| format!("{label}: cannot seek to byte {start}"))?;
        return Ok((
            Box::new(BufReader::with_capacity(1 << 20, file)),
            newline_after_last,
        ));
    }
    if offset == 0 {
        return Ok((Box::new(std::io::Cursor::new(first).chain(reader)), false));
    }
    let mut skipped = TailWindow::default();
    skipped.push(&first);
    std::io::copy(
        &mut (&mut reader).take(offset.saturating_sub(first.len() as u64)),
        &mut skipped,
    )
    .with_context(|| format!("{label}: cannot read"))?;
    if let Some((len, digest)) = expected_tail {
        if tail_digest(skipped.last(len as usize)) != digest {
            return Err(BadInput(format!(
                "{label}: this stream begins like a file read before but does not go on like it; \
                 give the file's path, so that it is told apart from the other"
            ))
            .into());
        }
    }
    Ok((reader, false))
}

/// The last bytes read, up to [`TAIL_BYTES`]: what a checkpoint's digest
/// covers.
#[derive(Default)]
struct TailWindow {
    bytes: Vec<u8>,
}

impl TailWindow {
    fn push(&mut self, more: &[u8]) {
        let more = &more[more.len().saturating_sub(TAIL_BYTES)..];
        let excess = (self.bytes.len() + more.len()).saturating_sub(TAIL_BYTES);
        self.bytes.drain(..excess);
        self.bytes.extend_from_slice(more);
    }

    fn last(&self, n: usize) -> &[u8] {
        &self.bytes[self.bytes.len().saturating_sub(n)..]
    }

    fn clear(&mut self) {
        self.bytes.clear();
    }
}

impl std::io::Write for TailWindow {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The year of a file's first line when `--year` is not given: the
/// modification time dates the last line, and the years between are
/// counted with the rule that reads the file ([`YearRule::Sequential`]:
/// a month going back begins a year, a late line does not).
pub fn first_line_year(path: &Path, modified: DateTime<Utc>, zone: Tz) -> anyhow::Result<i32> {
    // Any leap year: the count starts from it.
    const START: i32 = 2000;
    let file =
        File::open(path).map_err(|e| BadInput(format!("{}: cannot open: {e}", path.display())))?;
    let mut counter = TimeResolver::new(
        chrono_tz::UTC,
        YearRule::Sequential {
            year: START,
            latest: None,
        },
    );
    let mut buffer = Vec::new();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buffer);
        if let Ok(envelope) = vpnledger_parsers::syslog::rfc3164(text.trim_end()) {
            if let LineTime::YearLess { .. } = envelope.time {
                // A date that exists in no year of the count (29 February
                // after it rolled) moves nothing, as when the file is read.
                let _ = counter.resolve(&envelope.time, modified);
            }
        }
    }
    let YearRule::Sequential { year, latest } = counter.year_rule() else {
        unreachable!("the counter was made with the sequential rule");
    };
    let modified_local = modified.with_timezone(&zone);
    let mut last_year = modified_local.year();
    if latest.is_some_and(|(month, _)| month > modified_local.month()) {
        last_year -= 1;
    }
    Ok(last_year - (year - START))
}

/// A row waiting for the next commit.
enum Row {
    Record {
        record: Box<RecordRow>,
        event: Option<Box<EventRow>>,
        traffic: Option<TrafficRow>,
    },
    Unparsed {
        line: u64,
        offset: u64,
        raw: Vec<u8>,
        reason: String,
        received: i64,
        truncated: bool,
    },
}

struct RecordRow {
    line: u64,
    offset: u64,
    received: i64,
    truncated: bool,
    ts: i64,
    time_flag: Option<&'static str>,
    format: &'static str,
    gateway: Arc<str>,
    host: Option<Arc<str>>,
    app: Option<Arc<str>>,
    pid: Option<u32>,
    /// Where its line lies in the stream's `raw` buffer.
    raw: Range<usize>,
    encoding: Option<&'static str>,
}

#[derive(Default)]
struct EventRow {
    kind: &'static str,
    user: Option<String>,
    instance: Option<String>,
    remote_ip: Option<String>,
    remote_port: Option<u16>,
    virtual_ip: Option<String>,
    tunnel: Option<String>,
    reason: Option<&'static str>,
    detail: Option<String>,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
    /// When the connection began as the source says: a status file's
    /// "connected since", a WireGuard peer's latest handshake.
    since: Option<i64>,
    duration: Option<u64>,
    correlation: Option<String>,
}

struct TrafficRow {
    src: IpAddr,
    dst: IpAddr,
    proto: Arc<str>,
    dst_port: Option<u16>,
    allowed: bool,
}

/// One file identity (or one live stream) being read: the state that
/// carries from line to line, and the rows waiting for the next commit.
pub struct Stream {
    settings: Arc<SourceSettings>,
    /// The identity records and the checkpoint are filed under.
    fingerprint: String,
    /// Where the lines were read, for people (a path, `-`, a listener).
    path: String,
    resolver: TimeResolver,
    /// Reads the lines in order (a WireGuard poll times the dump lines
    /// after it).
    lines: LineReader,
    /// Byte offset after the last line read.
    pub offset: u64,
    /// Number of the last line read.
    pub line: u64,
    /// The bytes just before `offset`, as far as this stream read them:
    /// their digest goes into the checkpoint.
    tail: TailWindow,
    /// Whether a checkpoint is kept: files and Loki cursors yes; a syslog
    /// listener's stream has nothing to resume from.
    checkpointed: bool,
    /// Offset and line number of the checkpoint this stream last read or
    /// wrote: where its pending rows begin.
    committed: (u64, u64),
    /// The line being read was cut at the source's size limit.
    truncated: bool,
    rows: Vec<Row>,
    /// The lines of the records in `rows`, one after the other.
    raw: Vec<u8>,
    /// Gateway, host, program and protocol names, one copy of each: a
    /// record refers to them rather than owning its own. (A name read from
    /// a line is hashed with a seeded hash, not SipHash: it costs less per
    /// line and still keeps crafted names from colliding at will.)
    names: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// The gateways of the pending rows, by where their name lies in
    /// `names`: each is looked for in the summary once per batch. (The
    /// daemon takes the summary's gateways after each commit.)
    gateways_seen: HashSet<usize, foldhash::fast::RandomState>,
    pub summary: IngestSummary,
}

fn time_flag_name(flag: vpnledger_parsers::TimeFlag) -> &'static str {
    match flag {
        vpnledger_parsers::TimeFlag::NonexistentLocalTime => "nonexistent_local_time",
        vpnledger_parsers::TimeFlag::SecondPassOfRepeatedHour => "second_pass_of_repeated_hour",
        vpnledger_parsers::TimeFlag::ReceivedTime => "received_time",
    }
}

/// Decodes a line: UTF-8 when it is, else the source's legacy encoding —
/// never U+FFFD in place of a letter.
pub fn decode<'b>(
    raw: &'b [u8],
    encoding: &'static Encoding,
) -> (Cow<'b, str>, Option<&'static str>) {
    match simdutf8::basic::from_utf8(raw) {
        Ok(text) => (Cow::Borrowed(text), None),
        Err(_) => {
            let (text, _) = encoding.decode_without_bom_handling(raw);
            (text, Some(encoding.name()))
        }
    }
}

impl Stream {
    /// A file identity, from its checkpoint if it has one.
    pub fn for_file(
        store: &Store,
        settings: Arc<SourceSettings>,
        fingerprint: String,
        path: String,
        new_year: YearRule,
    ) -> anyhow::Result<Stream> {
        let checkpoint = load_checkpoint(&store.conn, &fingerprint)?;
        let (offset, line, year) = match checkpoint {
            Some(c) => {
                let year = match (new_year, c.year) {
                    (YearRule::ClosestToReceived, _) | (_, None) => new_year,
                    (YearRule::Sequential { .. }, Some(year)) => YearRule::Sequential {
                        year,
                        latest: c.last_month.map(|m| (m, c.last_day.unwrap_or(31))),
                    },
                };
                (c.offset, c.line, year)
            }
            None => (0, 0, new_year),
        };
        Ok(Stream {
            resolver: TimeResolver::new(settings.zone, year),
            lines: LineReader::new(settings.format),
            settings,
            fingerprint,
            path,
            offset,
            line,
            committed: (offset, line),
            tail: TailWindow::default(),
            checkpointed: true,
            truncated: false,
            rows: Vec::new(),
            raw: Vec::new(),
            names: HashSet::default(),
            gateways_seen: HashSet::default(),
            summary: IngestSummary {
                files: 1,
                ..Default::default()
            },
        })
    }

    /// A live stream without checkpoint (a syslog listener): `key` names
    /// it in the records.
    pub fn live(settings: Arc<SourceSettings>, key: String, path: String) -> Stream {
        Stream {
            resolver: TimeResolver::new(settings.zone, YearRule::ClosestToReceived),
            lines: LineReader::new(settings.format),
            settings,
            fingerprint: key,
            path,
            offset: 0,
            line: 0,
            tail: TailWindow::default(),
            checkpointed: false,
            committed: (0, 0),
            truncated: false,
            rows: Vec::new(),
            raw: Vec::new(),
            names: HashSet::default(),
            gateways_seen: HashSet::default(),
            summary: IngestSummary::default(),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The one copy of `name`.
    fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.names.get(name) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(name);
        self.names.insert(new.clone());
        new
    }

    /// Keeps a record's line until the commit.
    fn keep_raw(&mut self, line: &[u8]) -> Range<usize> {
        let start = self.raw.len();
        self.raw.extend_from_slice(line);
        start..self.raw.len()
    }

    /// Rows waiting for a commit.
    pub fn pending(&self) -> usize {
        self.rows.len()
    }

    /// Reads one message of a live stream; `truncated` when it was cut at
    /// the source's size limit (it is kept, and flagged).
    pub fn read_message(&mut self, bytes: &[u8], received: DateTime<Utc>, truncated: bool) {
        self.truncated = truncated;
        self.read_line(bytes, received);
        self.truncated = false;
    }

    /// Passes over bytes that are no line (the newline of a line read
    /// before it came): the checkpoint moves past them.
    pub fn skip(&mut self, bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        self.tail.push(bytes);
    }

    /// Moves the checkpoint to a position of the source's own (a Loki
    /// cursor) after reading its lines.
    pub fn set_position(&mut self, offset: u64) {
        if offset != self.offset {
            self.tail.clear();
        }
        self.offset = offset;
    }

    /// Reads one line, with its newline if it had one; `received` is when
    /// it reached us.
    pub fn read_line(&mut self, raw_with_newline: &[u8], received: DateTime<Utc>) {
        let line_offset = self.offset;
        self.offset += raw_with_newline.len() as u64;
        self.tail.push(raw_with_newline);
        self.line += 1;
        self.summary.lines += 1;
        let raw = trim_newline(raw_with_newline);
        let (text, encoding) = decode(raw, self.settings.encoding);
        match self.lines.read(&text) {
            Ok(parsed) => self.keep_parsed(parsed, raw, encoding, line_offset, received),
            Err(e) => self.keep_unparsed(raw, line_offset, e.to_string(), received),
        }
    }

    fn keep_unparsed(&mut self, raw: &[u8], offset: u64, reason: String, received: DateTime<Utc>) {
        self.summary.unparsed += 1;
        self.rows.push(Row::Unparsed {
            line: self.line,
            offset,
            raw: redact_private_keys(raw),
            reason,
            received: to_micros(received),
            truncated: self.truncated,
        });
    }

    fn keep_parsed(
        &mut self,
        parsed: Parsed<'_>,
        raw: &[u8],
        encoding: Option<&'static str>,
        offset: u64,
        received: DateTime<Utc>,
    ) {
        // The time is resolved for every line, not only those with an
        // event: the year and DST rules follow the file's sequence.
        let resolved = match self.resolver.resolve(&parsed.envelope.time, received) {
            Ok(r) => r,
            Err(e) => return self.keep_unparsed(raw, offset, format!("time: {e}"), received),
        };
        let Some(event) = parsed.event else {
            // A message cut at the size limit may have lost what a parser
            // needed: it is kept, flagged, rather than passed over.
            if self.truncated {
                let reason = "cut at the size limit; no event read".to_owned();
                return self.keep_unparsed(raw, offset, reason, received);
            }
            return;
        };
        let envelope = &parsed.envelope;
        let settings = self.settings.clone();
        let gateway = self.intern(settings.gateway_of(envelope.host.or(parsed.device)));
        let host = envelope.host.map(|h| self.intern(h));
        let app = envelope.app.map(|a| self.intern(a));
        let record = RecordRow {
            line: self.line,
            offset,
            received: to_micros(received),
            truncated: self.truncated,
            ts: to_micros(resolved.at),
            time_flag: resolved.flag.map(time_flag_name),
            format: envelope.format.name(),
            gateway,
            host,
            app,
            pid: envelope.pid,
            raw: self.keep_raw(raw),
            encoding,
        };
        self.push_event(record, &event, None);
    }

    fn push_event(&mut self, record: RecordRow, event: &Event<'_>, since: Option<i64>) {
        self.summary.records += 1;
        let at = Arc::as_ptr(&record.gateway).cast::<u8>() as usize;
        if self.gateways_seen.insert(at) && !self.summary.gateways.contains(&*record.gateway) {
            self.summary.gateways.insert(record.gateway.to_string());
        }
        let (event_row, traffic_row) = match event {
            Event::Traffic(t) => {
                self.summary.traffic += 1;
                let allowed = match t.verdict {
                    Verdict::Allowed => true,
                    Verdict::Dropped => false,
                    Verdict::FromPrefix => !self.settings.names_a_drop(t.label),
                };
                let row = TrafficRow {
                    src: t.src,
                    dst: t.dst,
                    proto: self.intern(t.proto),
                    dst_port: t.dst_port,
                    allowed,
                };
                (None, Some(row))
            }
            other => (Some(Box::new(event_row(other, since))), None),
        };
        self.rows.push(Row::Record {
            record: Box::new(record),
            event: event_row,
            traffic: traffic_row,
        });
    }

    /// Writes the pending rows and the checkpoint in one transaction.
    pub fn commit(&mut self, store: &mut Store, now: DateTime<Utc>) -> anyhow::Result<()> {
        // Immediate: the digest chain reads the last record and appends
        // to it, so no other writer may slip in between.
        let tx = store.write_transaction()?;
        let stored_ahead = if self.checkpointed {
            self.drop_rows_stored_meanwhile(&tx)?
        } else {
            false
        };
        let mut digest = chain_link(&tx)?;
        let link = digest;
        write_rows(
            &tx,
            &self.settings.name,
            &self.fingerprint,
            &self.path,
            &self.rows,
            &self.raw,
            &mut digest,
        )?;
        if digest != link {
            // The chain's new head, in the same transaction as its records.
            tx.prepare_cached(
                "INSERT OR REPLACE INTO chain_head (one, record_id, digest)
                 SELECT 1, id, digest FROM records ORDER BY id DESC LIMIT 1",
            )?
            .execute([])?;
        }
        self.rows.clear();
        self.raw.clear();
        self.gateways_seen.clear();
        // Their sessions are rebuilt after this commit; should that never
        // happen (a crash), the mark says so to the next start.
        {
            let mut mark =
                tx.prepare_cached("INSERT OR IGNORE INTO stale_sessions (gateway) VALUES (?1)")?;
            for gateway in &self.summary.gateways {
                mark.execute([gateway])?;
            }
        }
        if !self.checkpointed || stored_ahead {
            tx.commit()?;
            self.committed = (self.offset, self.line);
            return Ok(());
        }
        let (year, latest) = match self.resolver.year_rule() {
            YearRule::Sequential { year, latest } => (Some(year), latest),
            YearRule::ClosestToReceived => (None, None),
        };
        // The digest of the bytes before the offset; a stream that read
        // nothing since it resumed keeps the one committed before.
        let tail = &self.tail.bytes;
        tx.execute(
            "INSERT INTO checkpoints (fingerprint, source, path, offset, line, year, last_month, last_day, lines_read, updated, tail_len, tail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?11, ?5, ?8, ?9, ?10)
             ON CONFLICT(fingerprint) DO UPDATE SET
               source = excluded.source, path = excluded.path,
               tail_len = CASE WHEN excluded.tail_len > 0 OR excluded.offset != checkpoints.offset
                               THEN excluded.tail_len ELSE checkpoints.tail_len END,
               tail = CASE WHEN excluded.tail_len > 0 OR excluded.offset != checkpoints.offset
                           THEN excluded.tail ELSE checkpoints.tail END,
               offset = excluded.offset,
               line = excluded.line, year = excluded.year, last_month = excluded.last_month, last_day = excluded.last_day,
               lines_read = excluded.lines_read, updated = excluded.updated",
            params![
                self.fingerprint,
                self.settings.name,
                self.path,
                self.offset as i64,
                self.line as i64,
                year,
                latest.map(|(month, _)| month),
                to_micros(now),
                tail.len() as i64,
                (!tail.is_empty()).then(|| tail_digest(tail)),
                latest.map(|(_, day)| day),
            ],
        )?;
        tx.commit()?;
        self.committed = (self.offset, self.line);
        Ok(())
    }

    /// Another process reading the same file (a second `ingest`, the
    /// daemon) may have stored some of the pending lines since this stream
    /// read its checkpoint: its checkpoint, read under the write lock,
    /// says how far. Those lines are dropped here, not stored twice.
    /// Returns whether the stored checkpoint is at or past this stream's
    /// position (nothing of the checkpoint to write then).
    fn drop_rows_stored_meanwhile(&mut self, tx: &Connection) -> anyhow::Result<bool> {
        let Some(stored) = load_checkpoint(tx, &self.fingerprint)? else {
            return Ok(false);
        };
        let (committed_offset, committed_line) = self.committed;
        if stored.offset <= committed_offset {
            return Ok(false);
        }
        let cut = stored.offset.min(self.offset);
        let mut dropped = IngestSummary::default();
        self.rows.retain(|row| {
            let (offset, traffic) = match row {
                Row::Record {
                    record, traffic, ..
                } => (record.offset, traffic.is_some()),
                Row::Unparsed { offset, .. } => (*offset, false),
            };
            if offset >= cut {
                return true;
            }
            match row {
                Row::Record { .. } => dropped.records += 1,
                Row::Unparsed { .. } => dropped.unparsed += 1,
            }
            dropped.traffic += u64::from(traffic);
            false
        });
        let lines = stored.line.min(self.line).saturating_sub(committed_line);
        self.summary.lines = self.summary.lines.saturating_sub(lines);
        self.summary.records -= dropped.records;
        self.summary.traffic -= dropped.traffic;
        self.summary.unparsed -= dropped.unparsed;
        if lines > 0 {
            tracing::warn!(
                file = %self.path,
                "lines {} to {} were stored meanwhile by another process reading this file: skipped, not stored twice",
                committed_line + 1,
                committed_line + lines
            );
        }
        Ok(stored.offset >= self.offset)
    }
}

/// A WireGuard interface line (`[ifname] private-key public-key port
/// fwmark`) holds the interface's private key: a malformed one is kept
/// without it. Other lines are kept as they are.
fn redact_private_keys(raw: &[u8]) -> Vec<u8> {
    let fields: Vec<&[u8]> = raw.split(|&b| b == b'\t').collect();
    let is_key = |f: &[u8]| {
        f.len() == 44
            && f.ends_with(b"=")
            && f[..43]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    };
    if !(4..=5).contains(&fields.len()) || !fields.iter().any(|f| is_key(f)) {
        return raw.to_vec();
    }
    // The private key comes before the public one: the first key field.
    let mut redacted = false;
    let kept: Vec<&[u8]> = fields
        .into_iter()
        .map(|f| {
            if !redacted && is_key(f) {
                redacted = true;
                &b"(private key not kept)"[..]
            } else {
                f
            }
        })
        .collect();
    kept.join(&b'\t')
}

fn trim_newline(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

fn event_row(event: &Event<'_>, since: Option<i64>) -> EventRow {
    let s = |v: &str| Some(v.to_owned());
    let o = |v: Option<&str>| v.map(str::to_owned);
    let kind = event.kind();
    match event {
        Event::SessionStarted {
            user,
            instance,
            remote_ip,
            remote_port,
            virtual_ip,
            tunnel,
            correlation,
        } => EventRow {
            kind,
            user: s(user),
            instance: s(instance),
            remote_ip: remote_ip.map(|ip| ip.to_string()),
            remote_port: *remote_port,
            virtual_ip: virtual_ip.map(|ip| ip.to_string()),
            tunnel: o(*tunnel),
            correlation: o(*correlation),
            ..Default::default()
        },
        Event::AddressAssigned {
            user,
            instance,
            virtual_ip,
        } => EventRow {
            kind,
            user: o(*user),
            instance: s(instance),
            virtual_ip: Some(virtual_ip.to_string()),
            ..Default::default()
        },
        Event::SessionEnded {
            user,
            instance,
            reason,
            detail,
            bytes_in,
            bytes_out,
            duration_s,
            remote_ip,
            tunnel,
        } => EventRow {
            kind,
            user: o(*user),
            instance: s(instance),
            reason: Some(reason.as_str()),
            detail: s(detail),
            bytes_in: *bytes_in,
            bytes_out: *bytes_out,
            duration: *duration_s,
            remote_ip: remote_ip.map(|ip| ip.to_string()),
            tunnel: o(*tunnel),
            ..Default::default()
        },
        Event::BytesCounted {
            instance,
            virtual_ip,
            bytes_in,
            bytes_out,
            cumulative,
        } => EventRow {
            kind,
            instance: o(*instance),
            virtual_ip: virtual_ip.map(|ip| ip.to_string()),
            bytes_in: Some(*bytes_in),
            bytes_out: Some(*bytes_out),
            reason: Some(if *cumulative { "cumulative" } else { "part" }),
            ..Default::default()
        },
        Event::PeerStatus(p) => EventRow {
            kind,
            user: s(p.public_key),
            instance: Some(format!("{}/{}", p.interface, p.public_key)),
            remote_ip: p.endpoint_ip.map(|ip| ip.to_string()),
            remote_port: p.endpoint_port,
            virtual_ip: p.allowed_ip.map(|ip| ip.to_string()),
            tunnel: (!p.interface.is_empty()).then(|| p.interface.to_owned()),
            bytes_in: Some(p.rx),
            bytes_out: Some(p.tx),
            since: p
                .latest_handshake
                .map(|secs| secs.saturating_mul(1_000_000)),
            ..Default::default()
        },
        Event::UserAuthenticated { user, instance } => EventRow {
            kind,
            user: s(user),
            instance: o(*instance),
            ..Default::default()
        },
        Event::AuthFailed {
            user,
            instance,
            detail,
        } => EventRow {
            kind,
            user: o(*user),
            instance: o(*instance),
            detail: s(detail),
            ..Default::default()
        },
        Event::ClientReplaced { user, instance } => EventRow {
            kind,
            user: s(user),
            instance: s(instance),
            ..Default::default()
        },
        Event::GatewayStopped { detail } | Event::GatewayStarted { detail } => EventRow {
            kind,
            detail: s(detail),
            ..Default::default()
        },
        Event::StatusClient(c) => EventRow {
            kind,
            user: s(c.user),
            instance: Some(match c.remote_port {
                Some(port) => format!("{}:{port}", c.remote_ip),
                None => c.remote_ip.to_string(),
            }),
            remote_ip: Some(c.remote_ip.to_string()),
            remote_port: c.remote_port,
            virtual_ip: c.virtual_ip.map(|ip| ip.to_string()),
            bytes_in: Some(c.bytes_in),
            bytes_out: Some(c.bytes_out),
            since,
            ..Default::default()
        },
        Event::StatusSnapshot { clients, .. } => EventRow {
            kind,
            detail: Some(format!("{clients} clients listed")),
            ..Default::default()
        },
        Event::SiteTunnel {
            tunnel,
            up,
            detail,
            remote_ip,
            bytes_in,
            bytes_out,
        } => EventRow {
            kind,
            tunnel: s(tunnel),
            reason: Some(if *up { "up" } else { "down" }),
            detail: s(detail),
            remote_ip: remote_ip.map(|ip| ip.to_string()),
            bytes_in: *bytes_in,
            bytes_out: *bytes_out,
            ..Default::default()
        },
        Event::Traffic(_) => EventRow {
            kind,
            ..Default::default()
        },
    }
}

/// The digest that chains a record to the one before it. `facts` are the
/// columns of the event or traffic row the record carries, in their
/// table's order (`None` for records of the first chain version, which
/// covered the line alone).
fn chain(
    previous: &RecordDigest,
    source: &str,
    fingerprint: &str,
    line: u64,
    ts: i64,
    raw: &[u8],
    facts: Option<(&str, &[ValueRef<'_>])>,
) -> RecordDigest {
    let mut h = Sha256::new();
    // The link is the previous digest in lower-case hexadecimal, as the
    // first stores kept it: chains written then still verify.
    let mut link = [0u8; 64];
    crate::store::hex_into(previous, &mut link);
    h.update(link);
    h.update(source.as_bytes());
    h.update([0]);
    h.update(fingerprint.as_bytes());
    h.update(line.to_le_bytes());
    h.update(ts.to_le_bytes());
    h.update(raw);
    if let Some((table, values)) = facts {
        h.update([0]);
        h.update(table.as_bytes());
        for value in values {
            // A type tag and, for text and bytes, the length: no two
            // rows hash alike.
            match value {
                ValueRef::Null => h.update([0]),
                ValueRef::Integer(i) => {
                    h.update([1]);
                    h.update(i.to_le_bytes());
                }
                ValueRef::Real(f) => {
                    h.update([2]);
                    h.update(f.to_le_bytes());
                }
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    h.update([3]);
                    h.update((t.len() as u64).to_le_bytes());
                    h.update(t);
                }
            }
        }
    }
    h.finalize().into()
}

/// A record's digest: SHA-256.
pub type RecordDigest = [u8; 32];

/// The link the first record chains to.
pub const GENESIS: RecordDigest = [0; 32];

/// The chain version of the records written now: the digest covers the
/// line and the event or traffic row read from it.
const CHAIN_VERSION: i64 = 2;

/// The link the next record chains to: the last record's digest, unless
/// the chain's head names a record that is gone or altered (the newest
/// records removed by hand). Then the head's own digest is the link, so
/// the removal stays in the chain, for `verify` to report, rather than
/// being covered by the records written after it.
fn chain_link(tx: &Transaction<'_>) -> anyhow::Result<RecordDigest> {
    // The head's digest as bytes, and whether its record still has it.
    let head: Option<(Vec<u8>, bool)> = tx
        .query_row(
            "SELECT coalesce(CAST(h.digest AS BLOB), x''), r.digest IS h.digest
             FROM chain_head h LEFT JOIN records r ON r.id = h.record_id",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let head = match head {
        Some((head, false)) => head,
        _ => return last_digest(tx),
    };
    tracing::warn!(
        "the chain's head names a record that is gone or altered (records removed by hand): new records chain onto the head, and verify will report the gap"
    );
    Ok(stored_digest(&head))
}

/// A chain head's digest as stored. One of another length than a digest
/// (altered) still gives a link, one that no stored digest matches.
fn stored_digest(bytes: &[u8]) -> RecordDigest {
    RecordDigest::try_from(bytes).unwrap_or_else(|_| Sha256::digest(bytes).into())
}

/// The digest of the last record.
fn last_digest(tx: &Transaction<'_>) -> anyhow::Result<RecordDigest> {
    Ok(tx
        .query_row(
            "SELECT digest FROM records ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(GENESIS))
}

/// The id of a stream (a source's file identity, or a live stream's
/// key), added on first use.
fn stream_id(tx: &Transaction<'_>, source: &str, fingerprint: &str) -> anyhow::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO streams (source, fingerprint) VALUES (?1, ?2)
         ON CONFLICT (fingerprint, source) DO NOTHING",
    )?
    .execute(params![source, fingerprint])?;
    Ok(tx
        .prepare_cached("SELECT id FROM streams WHERE fingerprint = ?1 AND source = ?2")?
        .query_row(params![fingerprint, source], |r| r.get(0))?)
}

/// The columns of an event row after `record_id`, in order: written,
/// chained, and read back by `verify` alike.
pub const EVENT_FACTS: &str = "gateway, ts, kind, user, instance, remote_ip, remote_port, virtual_ip, tunnel, reason, detail, bytes_in, bytes_out, since, pid, duration, correlation";
/// The same for a traffic row.
pub const TRAFFIC_FACTS: &str = "gateway, ts, src, dst, proto, dst_port, allowed";

/// Recomputes a record's digest, for `verify`: `version` is the record's
/// chain version, `event` and `traffic` its rows' columns as stored.
#[allow(clippy::too_many_arguments)]
pub fn record_digest(
    previous: &RecordDigest,
    source: &str,
    fingerprint: &str,
    line: u64,
    ts: i64,
    raw: &[u8],
    version: i64,
    event: Option<&[ValueRef<'_>]>,
    traffic: Option<&[ValueRef<'_>]>,
) -> RecordDigest {
    let facts = match (version, event, traffic) {
        (1, _, _) => None,
        (_, Some(e), _) => Some(("events", e)),
        (_, None, Some(t)) => Some(("traffic", t)),
        (_, None, None) => Some(("none", &[][..])),
    };
    chain(previous, source, fingerprint, line, ts, raw, facts)
}

/// An unparsed line as it is stored: what its digest covers.
pub struct UnparsedLine<'a> {
    pub source: &'a str,
    pub fingerprint: &'a str,
    pub path: &'a str,
    pub line: i64,
    pub offset: i64,
    pub received: i64,
    pub raw: &'a [u8],
    pub reason: &'a str,
    pub truncated: bool,
}

impl UnparsedLine<'_> {
    /// Its digest, chained to `previous` (the unparsed line kept before
    /// it, or [`GENESIS`]): every field, text and bytes with their length,
    /// so no two lines hash alike by moving bytes from one field to the
    /// next.
    pub fn digest(&self, previous: &RecordDigest) -> RecordDigest {
        let mut h = Sha256::new();
        h.update(previous);
        for text in [
            self.source.as_bytes(),
            self.fingerprint.as_bytes(),
            self.path.as_bytes(),
            self.raw,
            self.reason.as_bytes(),
        ] {
            h.update((text.len() as u64).to_le_bytes());
            h.update(text);
        }
        for number in [self.line, self.offset, self.received] {
            h.update(number.to_le_bytes());
        }
        h.update([u8::from(self.truncated)]);
        h.finalize().into()
    }
}

/// The unparsed lines' chain head: the id and digest of the last one
/// kept, when any was kept with a digest.
pub fn unparsed_head(conn: &Connection) -> rusqlite::Result<Option<(i64, RecordDigest)>> {
    conn.query_row("SELECT unparsed_id, digest FROM unparsed_head", [], |r| {
        Ok((r.get(0)?, stored_digest(&r.get::<_, Vec<u8>>(1)?)))
    })
    .optional()
}

/// The values of a row's columns as they are bound.
fn value_refs<'a>(values: &'a [&'a dyn ToSql]) -> rusqlite::Result<Vec<ToSqlOutput<'a>>> {
    values.iter().map(|v| v.to_sql()).collect()
}

fn as_value_ref<'a>(output: &'a ToSqlOutput<'a>) -> ValueRef<'a> {
    match output {
        ToSqlOutput::Borrowed(v) => *v,
        ToSqlOutput::Owned(v) => v.into(),
        _ => ValueRef::Null,
    }
}

/// Writes a batch's rows, chaining each record to the one before.
///
/// Records take their ids in the order they are written: first the
/// records with an event, in the file's order, then the traffic records
/// grouped by gateway and source address, each group in time and file
/// order, with a `traffic_runs` row naming each group's ids within one
/// time slot. The device look-up reads those runs rather than a second
/// tree of traffic in address order, which every line would have to be
/// inserted into.
fn write_rows(
    tx: &Transaction<'_>,
    source: &str,
    fingerprint: &str,
    path: &str,
    rows: &[Row],
    lines: &[u8],
    digest: &mut RecordDigest,
) -> anyhow::Result<()> {
    let stream = if rows.iter().any(|r| matches!(r, Row::Record { .. })) {
        stream_id(tx, source, fingerprint)?
    } else {
        0
    };
    let mut insert_record = tx.prepare_cached(
        "INSERT INTO records (stream, line, offset, received, ts, time_flag, format, gateway, host, app, pid, raw, encoding, digest, truncated, chain, src, dst, proto, dst_port, allowed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
    )?;
    let mut insert_event = tx.prepare_cached(&format!(
        "INSERT INTO events (record_id, {EVENT_FACTS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    ))?;
    let mut insert_run = tx.prepare_cached(
        "INSERT INTO traffic_runs (gateway, src, hour, first, last) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut insert_unparsed = tx.prepare_cached(
        "INSERT OR IGNORE INTO unparsed (source, fingerprint, path, line, offset, received, raw, reason, truncated, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    // The unparsed lines' chain: its head, read at the first one.
    let mut unparsed_link: Option<RecordDigest> = None;
    let mut unparsed_last = None;
    let mut binder = Binder::default();
    // Appends one record with its traffic facts, if any, and returns its
    // id; `facts` are the values its digest covers.
    let mut append = |r: &RecordRow,
                      digest: &mut RecordDigest,
                      table: &str,
                      facts: &[ValueRef<'_>],
                      traffic: Option<(&str, &str, &TrafficRow)>|
     -> rusqlite::Result<i64> {
        *digest = chain(
            digest,
            source,
            fingerprint,
            r.line,
            r.ts,
            &lines[r.raw.clone()],
            Some((table, facts)),
        );
        fn text(t: &str) -> ValueRef<'_> {
            ValueRef::Text(t.as_bytes())
        }
        fn maybe(v: Option<ValueRef<'_>>) -> ValueRef<'_> {
            v.unwrap_or(ValueRef::Null)
        }
        let int = ValueRef::Integer;
        let binder = &mut binder;
        let stmt = &mut insert_record;
        binder.bind(stmt, 1, int(stream))?;
        binder.bind_new(stmt, 2, int(r.line as i64))?;
        binder.bind_new(stmt, 3, int(r.offset as i64))?;
        binder.bind(stmt, 4, int(r.received))?;
        binder.bind(stmt, 5, int(r.ts))?;
        binder.bind(stmt, 6, maybe(r.time_flag.map(text)))?;
        binder.bind(stmt, 7, text(r.format))?;
        binder.bind(stmt, 8, text(&r.gateway))?;
        binder.bind(stmt, 9, maybe(r.host.as_deref().map(text)))?;
        binder.bind(stmt, 10, maybe(r.app.as_deref().map(text)))?;
        binder.bind(stmt, 11, maybe(r.pid.map(|p| int(i64::from(p)))))?;
        binder.bind_new(stmt, 12, ValueRef::Blob(&lines[r.raw.clone()]))?;
        binder.bind(stmt, 13, maybe(r.encoding.map(text)))?;
        binder.bind_new(stmt, 14, ValueRef::Blob(&digest[..]))?;
        binder.bind(stmt, 15, int(i64::from(r.truncated)))?;
        binder.bind(stmt, 16, int(CHAIN_VERSION))?;
        binder.bind(stmt, 17, maybe(traffic.map(|t| text(t.0))))?;
        binder.bind(stmt, 18, maybe(traffic.map(|t| text(t.1))))?;
        binder.bind(stmt, 19, maybe(traffic.map(|t| text(&t.2.proto))))?;
        let port = traffic.and_then(|t| t.2.dst_port);
        binder.bind(stmt, 20, maybe(port.map(|p| int(i64::from(p)))))?;
        let allowed = traffic.map(|t| int(i64::from(t.2.allowed)));
        binder.bind(stmt, 21, maybe(allowed))?;
        stmt.raw_execute()?;
        Ok(tx.last_insert_rowid())
    };

    // Unparsed lines, and records with an event (or nothing), in order.
    let mut traffic_rows: Vec<(&RecordRow, &TrafficRow)> = Vec::new();
    for row in rows {
        match row {
            Row::Unparsed {
                line,
                offset,
                raw,
                reason,
                received,
                truncated,
            } => {
                let link = match unparsed_link {
                    Some(link) => link,
                    None => unparsed_head(tx)?.map_or(GENESIS, |(_, digest)| digest),
                };
                let kept = UnparsedLine {
                    source,
                    fingerprint,
                    path,
                    line: *line as i64,
                    offset: *offset as i64,
                    received: *received,
                    raw,
                    reason,
                    truncated: *truncated,
                };
                let digest = kept.digest(&link);
                let inserted = insert_unparsed.execute(params![
                    source,
                    fingerprint,
                    path,
                    kept.line,
                    kept.offset,
                    received,
                    raw,
                    reason,
                    truncated,
                    &digest[..],
                ])?;
                // A line kept before (the same position) is not chained
                // again.
                if inserted == 1 {
                    unparsed_link = Some(digest);
                    unparsed_last = Some(tx.last_insert_rowid());
                } else {
                    unparsed_link = Some(link);
                }
            }
            Row::Record {
                record,
                traffic: Some(t),
                ..
            } => traffic_rows.push((record, t)),
            Row::Record {
                record: r,
                event: Some(e),
                traffic: None,
            } => {
                let values: [&dyn ToSql; 17] = [
                    &r.gateway as &dyn ToSql,
                    &r.ts,
                    &e.kind,
                    &e.user,
                    &e.instance,
                    &e.remote_ip,
                    &e.remote_port,
                    &e.virtual_ip,
                    &e.tunnel,
                    &e.reason,
                    &e.detail,
                    &e.bytes_in,
                    &e.bytes_out,
                    &e.since,
                    &r.pid,
                    &e.duration,
                    &e.correlation,
                ];
                let outputs = value_refs(&values)?;
                let refs: Vec<ValueRef<'_>> = outputs.iter().map(as_value_ref).collect();
                let record_id = append(r, digest, "events", &refs, None)?;
                insert_event.execute(params_from_iter(
                    std::iter::once(&record_id as &dyn ToSql).chain(values),
                ))?;
            }
            Row::Record {
                record: r,
                event: None,
                traffic: None,
            } => {
                append(r, digest, "none", &[], None)?;
            }
        }
    }

    if let (Some(id), Some(digest)) = (unparsed_last, unparsed_link) {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO unparsed_head (one, unparsed_id, digest) VALUES (1, ?1, ?2)",
        )?
        .execute(params![id, &digest[..]])?;
    }

    // Traffic records, grouped; a run per group and time slot.
    // Gateway names are shared within a stream: the same one is the same
    // pointer, and only different ones are compared as text.
    traffic_rows.sort_unstable_by(|(ra, ta), (rb, tb)| {
        let gateway = if Arc::ptr_eq(&ra.gateway, &rb.gateway) {
            std::cmp::Ordering::Equal
        } else {
            ra.gateway.cmp(&rb.gateway)
        };
        gateway.then_with(|| (ta.src, ra.ts, ra.line).cmp(&(tb.src, rb.ts, rb.line)))
    });
    let (mut src, mut dst) = (String::new(), String::new());
    // The open run: gateway, source address, slot, first and last id.
    let mut run: Option<(&str, IpAddr, i64, i64, i64)> = None;
    let mut close = |run: &(&str, IpAddr, i64, i64, i64), src: &str| -> rusqlite::Result<()> {
        insert_run
            .execute(params![run.0, src, run.2, run.3, run.4])
            .map(drop)
    };
    for (r, t) in traffic_rows {
        let slot = r.ts / RUN_MICROS;
        if let Some(open) = run.filter(|o| (o.0, o.1, o.2) != (&*r.gateway, t.src, slot)) {
            close(&open, &src)?;
            run = None;
        }
        // Addresses are written as text into buffers kept from row to
        // row.
        write_ip(&mut src, t.src);
        write_ip(&mut dst, t.dst);
        let facts = [
            ValueRef::Text(r.gateway.as_bytes()),
            ValueRef::Integer(r.ts),
            ValueRef::Text(src.as_bytes()),
            ValueRef::Text(dst.as_bytes()),
            ValueRef::Text(t.proto.as_bytes()),
            t.dst_port
                .map_or(ValueRef::Null, |p| ValueRef::Integer(i64::from(p))),
            ValueRef::Integer(i64::from(t.allowed)),
        ];
        let id = append(r, digest, "traffic", &facts, Some((&src, &dst, t)))?;
        match &mut run {
            Some(open) => open.4 = id,
            None => run = Some((&r.gateway, t.src, slot, id, id)),
        }
    }
    if let Some(open) = run {
        close(&open, &src)?;
    }
    Ok(())
}

/// Binds a statement's parameters only when their value changes. SQLite
/// keeps a statement's bindings from one execution to the next, and most
/// of a record's columns (its stream, format, program, gateway, and within
/// a group of traffic its source) are those of the record before; binding
/// each copies it into SQLite anew.
#[derive(Default)]
struct Binder {
    /// The value bound to each parameter (by its index less one), when
    /// known: a fresh statement's bindings are not.
    bound: Vec<Option<Bound>>,
}

/// A value bound, kept to compare the next one with.
#[derive(Debug)]
enum Bound {
    Null,
    Integer(i64),
    Text(Vec<u8>),
    Blob(Vec<u8>),
}

impl Bound {
    fn is(&self, value: &ValueRef<'_>) -> bool {
        match (self, value) {
            (Bound::Null, ValueRef::Null) => true,
            (Bound::Integer(a), ValueRef::Integer(b)) => a == b,
            (Bound::Text(a), ValueRef::Text(b)) | (Bound::Blob(a), ValueRef::Blob(b)) => a == b,
            _ => false,
        }
    }

    /// Keeps `value`, reusing this one's buffer.
    fn keep(slot: &mut Option<Bound>, value: &ValueRef<'_>) {
        let reuse = |slot: &mut Option<Bound>, bytes: &[u8], text: bool| {
            let mut buffer = match slot.take() {
                Some(Bound::Text(b) | Bound::Blob(b)) => b,
                _ => Vec::new(),
            };
            buffer.clear();
            buffer.extend_from_slice(bytes);
            *slot = Some(if text {
                Bound::Text(buffer)
            } else {
                Bound::Blob(buffer)
            });
        };
        match *value {
            ValueRef::Text(t) => reuse(slot, t, true),
            ValueRef::Blob(b) => reuse(slot, b, false),
            ValueRef::Integer(i) => *slot = Some(Bound::Integer(i)),
            ValueRef::Null | ValueRef::Real(_) => *slot = Some(Bound::Null),
        }
    }
}

impl Binder {
    /// Binds `value` to parameter `index` (from 1) unless it is bound
    /// already.
    fn bind(
        &mut self,
        stmt: &mut rusqlite::Statement<'_>,
        index: usize,
        value: ValueRef<'_>,
    ) -> rusqlite::Result<()> {
        if self.bound.len() < index {
            self.bound.resize_with(index, || None);
        }
        let slot = &mut self.bound[index - 1];
        if slot.as_ref().is_some_and(|b| b.is(&value)) {
            return Ok(());
        }
        // A real is never kept: it is bound each time.
        if matches!(value, ValueRef::Real(_)) {
            *slot = None;
        } else {
            Bound::keep(slot, &value);
        }
        stmt.raw_bind_parameter(index, ToSqlOutput::Borrowed(value))
    }

    /// Binds a value that is new each time (a line, a digest), without
    /// comparing or keeping it.
    fn bind_new(
        &mut self,
        stmt: &mut rusqlite::Statement<'_>,
        index: usize,
        value: ValueRef<'_>,
    ) -> rusqlite::Result<()> {
        if let Some(slot) = self.bound.get_mut(index - 1) {
            *slot = None;
        }
        stmt.raw_bind_parameter(index, ToSqlOutput::Borrowed(value))
    }
}

/// Writes an address as text into `out` (emptied first), as `Display`
/// does: dotted decimal for IPv4, without going through the formatter.
fn write_ip(out: &mut String, ip: IpAddr) {
    out.clear();
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if octet >= 100 {
                    out.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    out.push(char::from(b'0' + octet / 10 % 10));
                }
                out.push(char::from(b'0' + octet % 10));
            }
        }
        IpAddr::V6(_) => {
            let _ = write!(out, "{ip}");
        }
    }
}

/// Reads a whole snapshot a status source polled: an OpenVPN status file,
/// or a WireGuard dump headed by its poll time. The same content twice adds
/// nothing.
pub fn ingest_snapshot(
    store: &mut Store,
    settings: &SourceSettings,
    label: &str,
    content: &[u8],
    received: DateTime<Utc>,
) -> anyhow::Result<IngestSummary> {
    let first = content.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let is_status = match settings.format {
        FormatChoice::Fixed(f) => f.is_snapshot(),
        FormatChoice::Auto => is_status_file(&String::from_utf8_lossy(first)),
    };
    if is_status {
        return ingest_status(store, label, content, settings, received);
    }
    let identity = fingerprint(content);
    if load_checkpoint(&store.conn, &identity)?.is_some() {
        return Ok(IngestSummary {
            files: 1,
            unchanged_files: 1,
            ..Default::default()
        });
    }
    let settings = Arc::new(settings.clone());
    let mut stream = Stream::for_file(
        store,
        settings,
        identity,
        label.to_owned(),
        YearRule::ClosestToReceived,
    )?;
    for line in content.split_inclusive(|&b| b == b'\n') {
        stream.read_line(line, received);
    }
    stream.commit(store, received)?;
    Ok(stream.summary)
}

/// Reads a status snapshot whole. Its identity is a digest of its whole
/// content: each rewrite of the file is a new snapshot.
fn ingest_status(
    store: &mut Store,
    label: &str,
    content: &[u8],
    settings: &SourceSettings,
    received: DateTime<Utc>,
) -> anyhow::Result<IngestSummary> {
    let fingerprint = fingerprint(content);
    if load_checkpoint(&store.conn, &fingerprint)?.is_some() {
        return Ok(IngestSummary {
            files: 1,
            unchanged_files: 1,
            ..Default::default()
        });
    }
    let (text, encoding) = decode(content, settings.encoding);
    let lines = parse_status(&text);
    let settings = Arc::new(settings.clone());
    let mut stream = Stream::live(settings.clone(), fingerprint, label.to_owned());
    stream.checkpointed = true;
    stream.offset = content.len() as u64;
    stream.summary.files = 1;
    let mut line_offset = 0u64;
    for line in &lines {
        stream.line = line.number as u64;
        stream.summary.lines += 1;
        let raw = line.text.as_bytes();
        let offset = line_offset;
        line_offset += raw.len() as u64 + 1;
        if let Some(e) = &line.error {
            stream.keep_unparsed(raw, offset, e.to_string(), received);
            continue;
        }
        let Some(event) = &line.event else { continue };
        let at = match stream.resolver.resolve(&line.time, received) {
            Ok(r) => r,
            Err(e) => {
                stream.keep_unparsed(raw, offset, format!("time: {e}"), received);
                continue;
            }
        };
        let since = match event {
            Event::StatusClient(c) => match stream.resolver.resolve(&c.connected_since, received) {
                Ok(r) => Some(to_micros(r.at)),
                Err(e) => {
                    stream.keep_unparsed(raw, offset, format!("time: {e}"), received);
                    continue;
                }
            },
            _ => None,
        };
        let record = RecordRow {
            line: line.number as u64,
            offset,
            received: to_micros(received),
            truncated: false,
            ts: to_micros(at.at),
            time_flag: at.flag.map(time_flag_name),
            format: Format::OpenVpnStatus.name(),
            gateway: stream.intern(settings.gateway_of(None)),
            host: None,
            app: None,
            pid: None,
            raw: stream.keep_raw(raw),
            encoding,
        };
        stream.push_event(record, event, since);
    }
    stream.commit(store, received)?;
    Ok(stream.summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn values_bound_only_when_they_change_are_stored_as_given() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY, a, b)")
            .unwrap();
        let mut stmt = conn
            .prepare("INSERT INTO t (a, b) VALUES (?1, ?2)")
            .unwrap();
        let mut binder = Binder::default();
        // The same bytes as text then as a blob, a value back to NULL, a
        // number equal to the one before, a line bound anew each time.
        let rows = [
            (ValueRef::Text(b"gw-a"), ValueRef::Integer(7)),
            (ValueRef::Text(b"gw-a"), ValueRef::Integer(7)),
            (ValueRef::Blob(b"gw-a"), ValueRef::Null),
            (ValueRef::Null, ValueRef::Null),
            (ValueRef::Text(b"gw-b"), ValueRef::Text(b"7")),
            (ValueRef::Text(b"gw-b"), ValueRef::Integer(7)),
        ];
        for (a, b) in rows {
            binder.bind(&mut stmt, 1, a).unwrap();
            binder.bind_new(&mut stmt, 2, b).unwrap();
            stmt.raw_execute().unwrap();
        }
        // Each row's type and bytes of `a`, type and text of `b`.
        type Stored = (String, Option<Vec<u8>>, String, Option<String>);
        let stored: Vec<Stored> = conn
            .prepare(
                "SELECT typeof(a), CAST(a AS BLOB), typeof(b), CAST(b AS TEXT) FROM t ORDER BY n",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected = [
            ("text", Some(&b"gw-a"[..]), "integer", Some("7")),
            ("text", Some(b"gw-a"), "integer", Some("7")),
            ("blob", Some(b"gw-a"), "null", None),
            ("null", None, "null", None),
            ("text", Some(b"gw-b"), "text", Some("7")),
            ("text", Some(b"gw-b"), "integer", Some("7")),
        ];
        assert_eq!(stored.len(), expected.len());
        for (got, want) in stored.iter().zip(expected) {
            assert_eq!(
                (
                    got.0.as_str(),
                    got.1.as_deref(),
                    got.2.as_str(),
                    got.3.as_deref()
                ),
                want
            );
        }
    }

    #[test]
    fn lines_another_process_stored_meanwhile_are_not_stored_twice() {
        let settings = Arc::new(SourceSettings {
            name: "central".into(),
            gateway: None,
            format: FormatChoice::Auto,
            zone: chrono_tz::UTC,
            encoding: encoding_rs::UTF_8,
            drop_prefixes: Vec::new(),
        });
        let lines: Vec<String> = (1..=6)
            .map(|n| format!("Mar 12 09:14:{n:02} vpn-lyon openvpn[7]: 198.51.100.{n}:50000 [tech{n}] Peer Connection Initiated with [AF_INET]198.51.100.{n}:50000\n"))
            .collect();
        // A date no year has: kept as unparsed.
        let unparsed = "Feb 30 09:15:00 vpn-lyon openvpn[7]: 198.51.100.9:50000 [tech9] Peer Connection Initiated with [AF_INET]198.51.100.9:50000\n";
        let mut store = Store::in_memory();
        let received = Utc.with_ymd_and_hms(2024, 3, 12, 10, 0, 0).unwrap();
        let year = YearRule::Sequential {
            year: 2024,
            latest: None,
        };
        let open = |store: &Store| {
            Stream::for_file(
                store,
                settings.clone(),
                "fp".into(),
                "central.log".into(),
                year,
            )
            .unwrap()
        };
        // Two readers start from the same (absent) checkpoint.
        let mut first = open(&store);
        let mut second = open(&store);
        // The first stores four lines and a malformed one.
        for line in &lines[..4] {
            first.read_line(line.as_bytes(), received);
        }
        first.read_line(unparsed.as_bytes(), received);
        first.commit(&mut store, received).unwrap();
        // The second read two of them, then the rest; only the last one is
        // new, and only it is stored and counted.
        for line in &lines[..4] {
            second.read_line(line.as_bytes(), received);
        }
        second.read_line(unparsed.as_bytes(), received);
        second.read_line(lines[4].as_bytes(), received);
        second.commit(&mut store, received).unwrap();
        assert_eq!(
            (
                second.summary.lines,
                second.summary.records,
                second.summary.unparsed
            ),
            (1, 1, 0)
        );
        // The first, behind now, stores nothing of what it reads again
        // and leaves the checkpoint where it is.
        first.read_line(lines[4].as_bytes(), received);
        first.commit(&mut store, received).unwrap();
        assert_eq!(
            (
                first.summary.lines,
                first.summary.records,
                first.summary.unparsed
            ),
            (5, 4, 1)
        );
        let count = |store: &Store, sql: &str| -> i64 {
            store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
        };
        assert_eq!(count(&store, "SELECT count(*) FROM records"), 5);
        assert_eq!(
            count(&store, "SELECT count(DISTINCT offset) FROM records"),
            5
        );
        assert_eq!(count(&store, "SELECT count(*) FROM unparsed"), 1);
        let end: i64 =
            lines[..5].iter().map(|l| l.len() as i64).sum::<i64>() + unparsed.len() as i64;
        assert_eq!(count(&store, "SELECT offset FROM checkpoints"), end);
        // Both go on from there: the sixth line once.
        first.read_line(lines[5].as_bytes(), received);
        first.commit(&mut store, received).unwrap();
        second.read_line(lines[5].as_bytes(), received);
        second.commit(&mut store, received).unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM records"), 6);
    }

    #[test]
    fn each_batch_lists_the_gateways_of_its_own_records() {
        let settings = Arc::new(SourceSettings {
            name: "syslog".into(),
            gateway: None,
            format: FormatChoice::Auto,
            zone: chrono_tz::UTC,
            encoding: encoding_rs::UTF_8,
            drop_prefixes: Vec::new(),
        });
        let mut stream = Stream::live(settings, "udp:514".into(), "udp".into());
        let mut store = Store::in_memory();
        let received = Utc.with_ymd_and_hms(2024, 3, 12, 9, 20, 0).unwrap();
        let line = |host: &str, n: u32| {
            format!("<30>Mar 12 09:14:{n:02} {host} openvpn[7]: 198.51.100.7:50000 [a.tech] Peer Connection Initiated with [AF_INET]198.51.100.7:50000")
        };
        stream.read_message(line("vpn-lyon", 1).as_bytes(), received, false);
        stream.read_message(line("vpn-nantes", 2).as_bytes(), received, false);
        stream.read_message(line("vpn-lyon", 3).as_bytes(), received, false);
        stream.commit(&mut store, received).unwrap();
        // The daemon takes the batch's gateways to rebuild their sessions.
        let first = std::mem::take(&mut stream.summary.gateways);
        assert_eq!(first.iter().collect::<Vec<_>>(), ["vpn-lyon", "vpn-nantes"]);
        // A gateway already seen in the batch before is listed again.
        stream.read_message(line("vpn-nantes", 4).as_bytes(), received, false);
        stream.commit(&mut store, received).unwrap();
        assert_eq!(
            stream.summary.gateways.iter().collect::<Vec<_>>(),
            ["vpn-nantes"]
        );
        assert_eq!(stream.summary.records, 4);
    }

    #[test]
    fn a_malformed_wireguard_interface_line_is_kept_without_its_private_key() {
        let line = b"wg0\tcFakePrivKeyDoNotUseAAAAAAAAAAAAAAAAAAAAAAA=\tSrvFakePubKey0000000000000000000000000000Aw=\tnot-a-port\toff";
        assert_eq!(
            redact_private_keys(line),
            b"wg0\t(private key not kept)\tSrvFakePubKey0000000000000000000000000000Aw=\tnot-a-port\toff".to_vec()
        );
        let other = b"Mar 12 09:14:03 vpn-lyon openvpn[1]: x";
        assert_eq!(redact_private_keys(other), other.to_vec());
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let mut out = String::from("left over");
        for text in [
            "0.0.0.0",
            "10.8.0.2",
            "172.16.79.27",
            "192.0.2.117",
            "255.255.255.255",
            "100.64.9.10",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ] {
            let ip: IpAddr = text.parse().unwrap();
            write_ip(&mut out, ip);
            assert_eq!(out, text);
            assert_eq!(out, ip.to_string());
        }
    }

    #[test]
    fn drop_prefixes_match_in_any_case() {
        let s = SourceSettings::plain("x", chrono_tz::UTC);
        assert!(s.names_a_drop(Some("VPN-DROP")));
        assert!(s.names_a_drop(Some("fw-reject:")));
        assert!(s.names_a_drop(Some("Blocked")));
        assert!(!s.names_a_drop(Some("VPN-FWD")));
        assert!(!s.names_a_drop(None));
    }

    #[test]
    fn non_utf8_is_read_in_the_legacy_encoding() {
        let (text, enc) = decode(b"r.lef\xe8vre", encoding_rs::WINDOWS_1252);
        assert_eq!(text, "r.lefèvre");
        assert_eq!(enc, Some("windows-1252"));
        let (text, enc) = decode("r.lefèvre".as_bytes(), encoding_rs::WINDOWS_1252);
        assert_eq!(text, "r.lefèvre");
        assert_eq!(enc, None);
    }
}
