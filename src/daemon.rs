//! `vpnledger run`: the daemon.
//!
//! Every configured source runs as its own task (file tailers on the
//! blocking pool, the others as async tasks) and hands batches to the one
//! store writer, a thread, over a bounded channel. The writer commits
//! records, events and the source's checkpoint in one transaction per
//! batch, and rebuilds the sessions of the gateways that changed at most
//! once a second. After a crash or `kill -9` the sources start again from
//! the committed checkpoints: nothing is lost, nothing counted twice.
//!
//! A source that fails (a missing file, a port in use, Loki down) is
//! reported and started again a little later; it never stops the others.
//! The writer failing (the store cannot be written) stops the daemon with
//! an error, so that the service manager restarts it from the checkpoints.
//!
//! Signals: SIGTERM or SIGINT stop the sources, let the writer commit what
//! it holds, and exit 0. SIGHUP re-reads the configuration: a bad one is
//! refused with an error in the log and the old one keeps running; a good
//! one restarts only the sources it adds, removes or changes.
//!
//! Under systemd (`Type=notify`) the daemon says READY once its sources
//! run, keeps a STATUS line current, and pings the watchdog only while the
//! writer is alive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::config::{Config, SourceConfig, SourceKind};
use crate::ingest::{self, SourceSettings, Stream};
use crate::inventory::Inventory;
use crate::sessions::{self, SessionRules};
use crate::sources::{self, Batch, BatchSender, StopSignal};
use crate::store::Store;
use crate::BadInput;

/// Batches waiting for the writer: the backpressure bound. With file
/// batches of 2,000 lines this holds at most some 64,000 lines in memory.
const CHANNEL_BATCHES: usize = 32;
/// How often sessions of changed gateways are rebuilt at most: often
/// enough that an open session shows within a second or two, rarely
/// enough that a large ingest is not slowed down by rebuilds.
const REBUILD_EVERY: Duration = Duration::from_secs(1);
/// How long a failed source waits before it is started again.
const RESTART_SOURCE_AFTER: Duration = Duration::from_secs(5);
/// How long a source is given to stop before its task is dropped.
const SOURCE_STOP_TIMEOUT: Duration = Duration::from_secs(3);
/// On stop, how long the writer goes on storing batches that can be read
/// again from a checkpoint (file lines, Loki pages); past it, it stores
/// only syslog messages, which exist nowhere else, so the daemon stops
/// within seconds whatever the backlog.
const STOP_DRAIN: Duration = Duration::from_secs(3);
/// How often the STATUS line is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// What the daemon shares between its tasks and the API.
pub struct Shared {
    /// The configuration in force; replaced by a successful reload.
    pub config: RwLock<Config>,
    pub db: PathBuf,
    /// The writer's last sign of life, in ms since the daemon started:
    /// the watchdog is pinged only while it moves.
    writer_alive_ms: AtomicU64,
    /// Set when the daemon stops, so the writer can bound its last drain.
    stopping: AtomicBool,
    started: Instant,
    pub counters: Counters,
}

/// What the daemon did since it started, for STATUS and `/api/health`.
#[derive(Default)]
pub struct Counters {
    pub records: AtomicU64,
    pub unparsed: AtomicU64,
    pub batches: AtomicU64,
    /// Source failures (each one also logged): a source that keeps
    /// failing shows here.
    pub source_failures: AtomicU64,
    pub sources_running: AtomicU64,
}

impl Shared {
    /// The state of a daemon starting now with `config` on the store `db`.
    pub fn new(config: Config, db: PathBuf) -> Shared {
        Shared {
            config: RwLock::new(config),
            db,
            writer_alive_ms: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            started: Instant::now(),
            counters: Counters::default(),
        }
    }

    fn beat(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.writer_alive_ms.store(ms, Ordering::Relaxed);
    }

    fn writer_idle(&self) -> Duration {
        let now = self.started.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.writer_alive_ms.load(Ordering::Relaxed)))
    }

    fn status_line(&self) -> String {
        let c = &self.counters;
        format!(
            "{} sources; {} records and {} unparsed lines stored since start",
            c.sources_running.load(Ordering::Relaxed),
            c.records.load(Ordering::Relaxed),
            c.unparsed.load(Ordering::Relaxed),
        )
    }
}

/// Holds the store's lock file: a second `run` on the same store refuses
/// to start.
pub struct RunLock {
    _file: File,
}

pub fn lock_store(db: &Path) -> anyhow::Result<RunLock> {
    let path = PathBuf::from(format!("{}.run-lock", db.display()));
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(RunLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(BadInput(format!(
            "another `vpnledger run` already holds the store {} (lock {}); \
             one daemon per store",
            db.display(),
            path.display()
        ))
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("cannot lock the store"),
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(config_path: &Path, db_flag: Option<&Path>) -> anyhow::Result<()> {
    // The configuration, the lock, and a migrated store before anything
    // reads it: each failure here is the operator's to fix, so it stops.
    let config = Config::load(config_path)?;
    let db = config.store_path(db_flag);
    let _lock = lock_store(&db)?;
    drop(Store::open(&db)?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let shared = Arc::new(Shared::new(config, db));
    let result = runtime.block_on(main_loop(shared, config_path.to_owned()));
    // Every task was stopped above; what is left (an API request being
    // answered) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn main_loop(shared: Arc<Shared>, config_path: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    // Signals first, so a SIGTERM during the start is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    // The API first: a port already in use stops the start before any
    // source reads or the writer runs.
    let config = shared.config.read().expect("config lock").clone();
    let api = match config.api.listen {
        Some(addr) => Some(crate::api::serve(addr, shared.clone()).await?),
        None => None,
    };

    // The writer, on a thread of its own; it says when it ends.
    let (tx, rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
    let (writer_done_tx, mut writer_done) = oneshot::channel::<anyhow::Result<()>>();
    {
        let shared = shared.clone();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                let result = write_batches(rx, &shared, handle);
                let _ = writer_done_tx.send(result);
            })?;
    }

    // The sources. Should they not start, the writer is let finish
    // before the runtime goes away under it.
    let mut sources = Sources::new(tx, shared.clone());
    if let Err(e) = sources.apply(&config) {
        drop(sources);
        let _ = writer_done.await;
        return Err(e);
    }
    let status = shared.status_line();
    let _ = sd_notify::notify(
        false,
        &[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status(&status),
        ],
    );
    info!(sources = sources.running.len(), store = %shared.db.display(), "vpnledger running");
    let notifier = tokio::spawn(tell_systemd(shared.clone()));

    // Until a signal to stop, or the writer failing.
    let mut writer_result = None;
    loop {
        tokio::select! {
            _ = term.recv() => { info!(signal = "SIGTERM", "stopping"); break }
            _ = int.recv() => { info!(signal = "SIGINT", "stopping"); break }
            _ = hup.recv() => reload(&shared, &config_path, &mut sources).await,
            result = &mut writer_done => {
                writer_result = Some(result.unwrap_or_else(|_| Err(anyhow::anyhow!("the store writer panicked"))));
                break;
            }
        }
    }

    // Stop reading, then let the writer commit what it holds.
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shared.stopping.store(true, Ordering::Relaxed);
    sources.stop_all().await;
    drop(sources);
    if let Some(api) = api {
        api.abort();
    }
    notifier.abort();
    let result = match writer_result {
        Some(r) => r,
        None => writer_done
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the store writer panicked"))),
    };
    match &result {
        Ok(()) => info!(
            records = shared.counters.records.load(Ordering::Relaxed),
            "stopped"
        ),
        Err(e) => error!(error = %format!("{e:#}"), "the store writer failed; stopping"),
    }
    result
}

/// SIGHUP: the new configuration replaces the old only when it is valid.
async fn reload(shared: &Arc<Shared>, config_path: &Path, sources: &mut Sources) {
    // systemd 253+ wants the monotonic time with RELOADING=1.
    let mut reloading = vec![sd_notify::NotifyState::Reloading];
    if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
        reloading.push(now);
    }
    let _ = sd_notify::notify(false, &reloading);

    match Config::load(config_path) {
        Err(errors) => {
            error!(path = %config_path.display(), errors = %errors.to_string().replace('\n', "; "), "configuration refused; the running one stays")
        }
        Ok(new) => {
            let old = shared.config.read().expect("config lock").clone();
            if new.api.listen != old.api.listen || new.store.path != old.store.path {
                warn!("[api] listen and [store] path change only at a restart");
            }
            match sources.apply(&new) {
                Ok(change) => {
                    *shared.config.write().expect("config lock") = new;
                    info!(path = %config_path.display(), started = change.started, stopped = change.stopped, unchanged = change.unchanged, "configuration reloaded");
                }
                Err(e) => {
                    error!(path = %config_path.display(), error = %format!("{e:#}"), "configuration refused; the running one stays")
                }
            }
        }
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// Keeps systemd's STATUS line current and pings its watchdog while the
/// writer is alive. Without NOTIFY_SOCKET every notification is a no-op.
async fn tell_systemd(shared: Arc<Shared>) {
    let watchdog = watchdog_timeout();
    let every = watchdog.map_or(STATUS_EVERY, |w| (w / 2).min(STATUS_EVERY));
    let mut warned = false;
    loop {
        tokio::time::sleep(every).await;
        let status = shared.status_line();
        let mut states = vec![sd_notify::NotifyState::Status(&status)];
        if let Some(timeout) = watchdog {
            let idle = shared.writer_idle();
            if idle < timeout {
                states.push(sd_notify::NotifyState::Watchdog);
                warned = false;
            } else if !warned {
                error!(
                    idle_ms = idle.as_millis() as u64,
                    "the store writer is stuck: watchdog not pinged"
                );
                warned = true;
            }
        }
        let _ = sd_notify::notify(false, &states);
    }
}

/// The watchdog timeout systemd asks for, read as sd_watchdog_enabled(3)
/// does: `WATCHDOG_USEC`, for this process when `WATCHDOG_PID` names one.
fn watchdog_timeout() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// What a reload did to the sources.
struct Change {
    started: usize,
    stopped: usize,
    unchanged: usize,
}

/// The running sources, by name.
struct Sources {
    /// Cloned into each source; dropped with them, which lets the writer
    /// see the end of the channel.
    tx: BatchSender,
    shared: Arc<Shared>,
    running: BTreeMap<String, RunningSource>,
}

struct RunningSource {
    /// What the source was started with: a reload restarts it only when
    /// this changes.
    signature: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sources {
    fn new(tx: BatchSender, shared: Arc<Shared>) -> Sources {
        Sources {
            tx,
            shared,
            running: BTreeMap::new(),
        }
    }

    /// Makes the running sources those of `config`: stops the ones it
    /// removes or changes, starts the ones it adds or changes, leaves the
    /// others running (a syslog port stays open through a reload).
    fn apply(&mut self, config: &Config) -> anyhow::Result<Change> {
        // Everything is checked before anything is stopped.
        let mut wanted: BTreeMap<String, (&SourceConfig, String)> = BTreeMap::new();
        for source in &config.sources {
            let name = source.name.get_ref().clone();
            let signature = signature(config, source)?;
            wanted.insert(name, (source, signature));
        }

        let mut change = Change {
            started: 0,
            stopped: 0,
            unchanged: 0,
        };
        let obsolete: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(*name).is_none_or(|(_, sig)| *sig != r.signature))
            .map(|(name, _)| name.clone())
            .collect();
        for name in obsolete {
            let running = self.running.remove(&name).expect("listed above");
            info!(source = %name, "stopping source");
            let _ = running.stop.send(true);
            // The task sees the signal within a moment; it is not awaited
            // here, so a reload never blocks the signal loop.
            tokio::spawn(finish(name, running.task));
            change.stopped += 1;
        }
        for (name, (source, signature)) in wanted {
            if self.running.contains_key(&name) {
                change.unchanged += 1;
                continue;
            }
            let running = self.start(config, source, signature)?;
            self.running.insert(name, running);
            change.started += 1;
        }
        self.shared
            .counters
            .sources_running
            .store(self.running.len() as u64, Ordering::Relaxed);
        Ok(change)
    }

    /// Starts one source under a supervisor that restarts it when it fails.
    fn start(
        &self,
        config: &Config,
        source: &SourceConfig,
        signature: String,
    ) -> anyhow::Result<RunningSource> {
        let name = source.name.get_ref().clone();
        let settings = Arc::new(SourceSettings::resolve(config, &name, None, None)?);
        let (stop, stop_rx) = watch::channel(false);
        let tx = self.tx.clone();
        let shared = self.shared.clone();
        let source = source.clone();
        let task = match source.kind {
            SourceKind::File => {
                let pattern = source.path.clone().unwrap_or_default();
                tokio::spawn(supervise(name, stop_rx, shared.clone(), move |stop| {
                    let tailer = sources::file::FileSource {
                        settings: settings.clone(),
                        pattern: pattern.clone(),
                        db: shared.db.clone(),
                        tx: tx.clone(),
                        stop,
                    };
                    tokio::task::spawn_blocking(move || tailer.run())
                }))
            }
            SourceKind::Syslog => tokio::spawn(supervise(name, stop_rx, shared, move |stop| {
                let listener = sources::syslog::SyslogSource {
                    settings: settings.clone(),
                    udp: source.udp,
                    tcp: source.tcp,
                    max_message: source
                        .max_message
                        .unwrap_or(sources::syslog::DEFAULT_MAX_MESSAGE),
                    tx: tx.clone(),
                    stop,
                };
                tokio::spawn(listener.run())
            })),
            SourceKind::Loki => {
                tokio::spawn(supervise(name, stop_rx, shared.clone(), move |stop| {
                    let settings = settings.clone();
                    let (tx, db, source) = (tx.clone(), shared.db.clone(), source.clone());
                    tokio::spawn(async move {
                        // The cursor committed with the last stored lines.
                        let key = sources::loki::checkpoint_key(&settings.name);
                        let cursor = ingest::checkpoint_offset(&Store::open(&db)?, &key)?;
                        let loki = sources::loki::LokiSource {
                            settings,
                            url: source.url.clone().unwrap_or_default(),
                            query: source.query.clone().unwrap_or_default(),
                            interval: source.interval.unwrap_or(Duration::from_secs(10)),
                            cursor: cursor.map(|c| c as i64),
                            tx,
                            stop,
                        };
                        loki.run().await
                    })
                }))
            }
            SourceKind::Status => tokio::spawn(supervise(name, stop_rx, shared, move |stop| {
                let poller = sources::status::StatusSource {
                    settings: settings.clone(),
                    path: source.path.clone().map(PathBuf::from),
                    command: source.command.clone(),
                    interval: source.interval.unwrap_or(Duration::from_secs(30)),
                    tx: tx.clone(),
                    stop,
                };
                tokio::spawn(poller.run())
            })),
        };
        Ok(RunningSource {
            signature,
            stop,
            task,
        })
    }

    /// Stops every source and waits (a bounded time) for each to end.
    async fn stop_all(&mut self) {
        for running in self.running.values() {
            let _ = running.stop.send(true);
        }
        let all = std::mem::take(&mut self.running);
        for (name, running) in all {
            finish(name, running.task).await;
        }
        self.shared
            .counters
            .sources_running
            .store(0, Ordering::Relaxed);
    }
}

/// Waits for a stopped source's task, and drops it if it does not end in
/// time (its batches in flight are read again from the checkpoint).
async fn finish(name: String, mut task: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(SOURCE_STOP_TIMEOUT, &mut task)
        .await
        .is_err()
    {
        warn!(source = %name, "source did not stop in time; dropped");
        task.abort();
    }
}

/// What a source was started with: its resolved settings and every key
/// of its configuration. Also checks that the settings resolve.
fn signature(config: &Config, source: &SourceConfig) -> anyhow::Result<String> {
    let settings = SourceSettings::resolve(config, source.name.get_ref(), None, None)?;
    Ok(format!(
        "{settings:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
        source.kind,
        source.path,
        source.udp,
        source.tcp,
        source.max_message,
        source.url,
        source.query,
        source.command,
        source.interval,
    ))
}

/// Runs a source until it is told to stop; when it fails (an error or a
/// panic), says so, counts it, and starts it again after a pause.
async fn supervise<F, T>(name: String, mut stop: StopSignal, shared: Arc<Shared>, mut start: F)
where
    F: FnMut(StopSignal) -> T,
    T: Future<Output = Result<anyhow::Result<()>, tokio::task::JoinError>>,
{
    loop {
        let outcome = start(stop.clone()).await;
        if *stop.borrow() {
            return;
        }
        let why = match outcome {
            Ok(Ok(())) => "it ended".to_owned(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(e) if e.is_panic() => "it panicked".to_owned(),
            Err(e) => e.to_string(),
        };
        shared
            .counters
            .source_failures
            .fetch_add(1, Ordering::Relaxed);
        error!(source = %name, error = %why, retry_in_s = RESTART_SOURCE_AFTER.as_secs(), "source failed; starting it again later");
        tokio::select! {
            _ = tokio::time::sleep(RESTART_SOURCE_AFTER) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The writer: the only task that writes the store while the daemon runs.
/// Returns when every source has dropped its sender, or with an error when
/// the store cannot be written.
fn write_batches(
    mut rx: mpsc::Receiver<Batch>,
    shared: &Shared,
    handle: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let mut store = Store::open(&shared.db)?;
    // The stream of each identity (a file's, a listener's, a Loki query's),
    // with its line count and position between batches.
    let mut streams: HashMap<String, Stream> = HashMap::new();
    // Gateways with new events whose sessions are not rebuilt yet.
    // A run stopped before rebuilding may have left some behind.
    let mut dirty: BTreeSet<String> = sessions::stale_gateways(&store.conn)?.into_iter().collect();
    let mut last_rebuild = Instant::now();
    // When the daemon began to stop, for the bounded last drain.
    let mut stop_seen: Option<Instant> = None;
    let mut left_for_later = 0u64;

    loop {
        shared.beat();
        let next = handle.block_on(async { tokio::time::timeout(REBUILD_EVERY, rx.recv()).await });
        let closed = matches!(next, Ok(None));

        // Store the batch, unless the daemon is stopping, the drain time
        // is over, and the batch can be read again at the next start.
        if let Ok(Some(batch)) = next {
            if shared.stopping.load(Ordering::Relaxed) {
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if since.elapsed() > STOP_DRAIN && batch.can_be_read_again() {
                    left_for_later += 1;
                    continue;
                }
            }
            let stored = write_batch(&mut store, &mut streams, batch)?;
            let counters = &shared.counters;
            counters
                .records
                .fetch_add(stored.records, Ordering::Relaxed);
            counters
                .unparsed
                .fetch_add(stored.unparsed, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            dirty.extend(stored.gateways);
        }

        // Rebuild the sessions of what changed, at most once a second, and
        // a last time before stopping.
        if !dirty.is_empty() && (closed || last_rebuild.elapsed() >= REBUILD_EVERY) {
            let config = shared.config.read().expect("config lock").clone();
            let rules = SessionRules {
                reconnect_grace: chrono::Duration::from_std(config.reconcile.reconnect_grace)
                    .unwrap_or(chrono::Duration::MAX),
            };
            let gateways: Vec<String> = std::mem::take(&mut dirty).into_iter().collect();
            let count = sessions::rebuild(
                &mut store,
                &Inventory::from_config(&config),
                rules,
                gateways.iter().cloned(),
            )?;
            debug!(gateways = ?gateways, sessions = count, "sessions rebuilt");
            last_rebuild = Instant::now();
        }

        if closed {
            if left_for_later > 0 {
                info!(
                    batches = left_for_later,
                    "batches left to read again at the next start"
                );
            }
            return Ok(());
        }
    }
}

/// What one batch added to the store.
struct Stored {
    records: u64,
    unparsed: u64,
    gateways: BTreeSet<String>,
}

/// Stores one batch in one transaction with its checkpoint.
fn write_batch(
    store: &mut Store,
    streams: &mut HashMap<String, Stream>,
    batch: Batch,
) -> anyhow::Result<Stored> {
    let now = Utc::now();
    // What each stream counted before this batch: the stream counts as it
    // reads, so the batch's share is taken before its lines are read.
    let before = |s: &Stream| (s.summary.records, s.summary.unparsed);
    let (stream, (records, unparsed)) = match batch {
        Batch::FileLines {
            settings,
            identity,
            path,
            start_offset,
            lines,
            received,
        } => {
            // Another writer (a one-shot `ingest` of the same file) may
            // have moved the checkpoint: then start from its position.
            let committed = ingest::checkpoint_offset(store, &identity)?.unwrap_or(0);
            if streams
                .get(&identity)
                .is_some_and(|s| s.offset != committed)
            {
                info!(identity = %identity, committed, "checkpoint moved by another command; following it");
                streams.remove(&identity);
            }
            let stream = match streams.entry(identity.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Stream::for_file(
                    store,
                    settings,
                    identity,
                    path,
                    vpnledger_parsers::YearRule::ClosestToReceived,
                )?),
            };

            let counted = before(stream);

            // Skip what this identity already stored (a batch read again
            // after a rotation or a restart); a gap means lost lines.
            let mut at = start_offset;
            if at > stream.offset {
                error!(identity = %stream.fingerprint(), expected = stream.offset, got = at, "lines missing before this batch");
                stream.set_position(at);
            }
            for line in &lines {
                if at >= stream.offset {
                    stream.read_line(line, received);
                }
                at += line.len() as u64;
            }
            (stream, counted)
        }
        Batch::Messages {
            settings,
            key,
            path,
            messages,
        } => {
            let stream = streams
                .entry(key.clone())
                .or_insert_with(|| Stream::live(settings, key, path));
            let counted = before(stream);
            for m in &messages {
                stream.read_message(&m.bytes, m.received, m.truncated);
            }
            (stream, counted)
        }
        Batch::Pulled {
            settings,
            key,
            messages,
            cursor,
        } => {
            let stream = match streams.entry(key.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Stream::for_file(
                    store,
                    settings,
                    key.clone(),
                    key,
                    vpnledger_parsers::YearRule::ClosestToReceived,
                )?),
            };
            // Lines at or before the committed cursor are stored already.
            let counted = before(stream);
            let committed = stream.offset;
            for (ts, m) in &messages {
                if *ts as u64 > committed {
                    stream.read_message(&m.bytes, m.received, m.truncated);
                }
            }
            stream.set_position(committed.max(cursor as u64));
            (stream, counted)
        }
        Batch::Snapshot {
            settings,
            label,
            content,
            received,
        } => {
            let summary = ingest::ingest_snapshot(store, &settings, &label, &content, received)?;
            return Ok(Stored {
                records: summary.records,
                unparsed: summary.unparsed,
                gateways: summary.gateways,
            });
        }
    };

    stream.commit(store, now)?;
    debug!(identity = %stream.fingerprint(), records = stream.summary.records - records, "batch stored");
    Ok(Stored {
        records: stream.summary.records - records,
        unparsed: stream.summary.unparsed - unparsed,
        gateways: std::mem::take(&mut stream.summary.gateways),
    })
}
