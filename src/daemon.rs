//! `vpnledger run`: the daemon.
//!
//! Every configured source runs as its own task (or thread, for file
//! tailing) and hands batches to the one store writer over a bounded
//! channel. The writer commits records, events and the source's checkpoint
//! in one transaction per batch, and rebuilds the sessions of the gateways
//! that changed at most once a second. After a crash or `kill -9` the
//! sources start again from the committed checkpoints: nothing is lost,
//! nothing counted twice.
//!
//! Signals: SIGTERM or SIGINT stop the sources, let the writer commit what
//! it holds, and exit 0. SIGHUP re-reads the configuration: a bad one is
//! refused with an error in the log and the old one keeps running.
//!
//! Under systemd (`Type=notify`) the daemon says READY once its sources
//! run, keeps a STATUS line current, and pings the watchdog only while the
//! writer is alive.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::{Config, SourceKind};
use crate::ingest::{self, SourceSettings, Stream};
use crate::inventory::Inventory;
use crate::sessions::{self, SessionRules};
use crate::sources::{self, Batch};
use crate::store::Store;
use crate::BadInput;

/// Batches waiting for the writer: the backpressure bound.
const CHANNEL_BATCHES: usize = 64;
/// How often sessions of changed gateways are rebuilt at most.
const REBUILD_EVERY: Duration = Duration::from_secs(1);
/// How long a failed source waits before it is started again.
const RESTART_SOURCE_AFTER: Duration = Duration::from_secs(10);

/// What the daemon shares between its tasks.
pub struct Shared {
    pub config: RwLock<Config>,
    pub db: PathBuf,
    /// The writer's last sign of life, in seconds since the epoch: the
    /// watchdog is pinged only while it moves.
    pub writer_alive: AtomicI64,
    /// Records stored since the start, for STATUS.
    pub records: AtomicI64,
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
            "another `vpnledger run` already holds the store {} (lock {})",
            db.display(),
            path.display()
        ))
        .into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e).context("cannot lock the store"),
    }
}

/// Runs the daemon until SIGTERM.
pub fn run(config_path: &Path, db_flag: Option<&Path>) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let db = config.store_path(db_flag);
    let _lock = lock_store(&db)?;
    // Create and migrate the store before anything reads it.
    drop(Store::open(&db)?);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let shared = Arc::new(Shared {
        config: RwLock::new(config),
        db,
        writer_alive: AtomicI64::new(Utc::now().timestamp()),
        records: AtomicI64::new(0),
    });
    runtime.block_on(main_loop(shared, config_path.to_owned()))
}

async fn main_loop(shared: Arc<Shared>, config_path: PathBuf) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};

    let (tx, rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
    let writer = {
        let shared = shared.clone();
        let handle = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || write_batches(rx, shared, handle))?
    };

    let mut running = start_sources(&shared, tx.clone())?;
    let listen = shared.config.read().expect("config lock").api.listen;
    let api = match listen {
        Some(addr) => Some(crate::api::serve(addr, shared.clone()).await?),
        None => None,
    };
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    info!(sources = running.count, "vpnledger running");
    tokio::spawn(watchdog(shared.clone()));

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                // systemd 253+ wants the monotonic time with RELOADING=1.
                let mut reloading = vec![sd_notify::NotifyState::Reloading];
                if let Ok(now) = sd_notify::NotifyState::monotonic_usec_now() {
                    reloading.push(now);
                }
                let _ = sd_notify::notify(false, &reloading);
                match Config::load(&config_path) {
                    Ok(new) => {
                        running.stop().await;
                        *shared.config.write().expect("config lock") = new;
                        running = start_sources(&shared, tx.clone())?;
                        info!(path = %config_path.display(), sources = running.count, "configuration reloaded");
                    }
                    Err(e) => error!(path = %config_path.display(), errors = %e, "configuration refused; the running one stays"),
                }
                let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
            }
        }
    }

    info!("stopping: sources first, then the writer commits what it holds");
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    running.stop().await;
    if let Some(api) = api {
        api.abort();
    }
    drop(tx);
    let result = tokio::task::spawn_blocking(move || writer.join()).await?;
    match result {
        Ok(Ok(())) => {
            info!("stopped");
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => anyhow::bail!("the store writer panicked"),
    }
}

/// Pings systemd's watchdog while the writer is alive.
async fn watchdog(shared: Arc<Shared>) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    let limit = (usec / 1_000_000).max(1) as i64;
    loop {
        tokio::time::sleep(every).await;
        let idle = Utc::now().timestamp() - shared.writer_alive.load(Ordering::Relaxed);
        if idle <= limit {
            let status = format!(
                "{} records stored since start",
                shared.records.load(Ordering::Relaxed)
            );
            let _ = sd_notify::notify(
                false,
                &[
                    sd_notify::NotifyState::Watchdog,
                    sd_notify::NotifyState::Status(&status),
                ],
            );
        } else {
            warn!(
                idle_seconds = idle,
                "the store writer is stuck: watchdog not pinged"
            );
        }
    }
}

/// The sources started from one configuration.
struct Running {
    count: usize,
    /// Stops the async sources.
    stop_async: watch::Sender<bool>,
    /// Stops the file tailers (threads).
    stop_files: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    async fn stop(&mut self) {
        let _ = self.stop_async.send(true);
        self.stop_files.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        let threads: Vec<_> = self.threads.drain(..).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

fn settings_of(config: &Config, name: &str) -> anyhow::Result<Arc<SourceSettings>> {
    Ok(Arc::new(SourceSettings::resolve(config, name, None, None)?))
}

/// Starts every configured source. A source that fails is reported and
/// started again later; it never stops the others.
fn start_sources(shared: &Arc<Shared>, tx: sources::BatchSender) -> anyhow::Result<Running> {
    let config = shared.config.read().expect("config lock").clone();
    let (stop_async, stop_rx) = watch::channel(false);
    let stop_files = Arc::new(AtomicBool::new(false));
    let mut running = Running {
        count: 0,
        stop_async,
        stop_files: stop_files.clone(),
        tasks: Vec::new(),
        threads: Vec::new(),
    };

    for source in &config.sources {
        let name = source.name.get_ref().clone();
        let settings = settings_of(&config, &name)?;
        running.count += 1;
        match source.kind {
            SourceKind::File => {
                let file = sources::file::FileSource {
                    settings,
                    pattern: source.path.clone().unwrap_or_default(),
                    db: shared.db.clone(),
                    tx: tx.clone(),
                    stop: stop_files.clone(),
                };
                running.threads.push(
                    std::thread::Builder::new()
                        .name(format!("file:{name}"))
                        .spawn(move || file.run())?,
                );
            }
            SourceKind::Syslog => {
                let (udp, tcp) = (source.udp, source.tcp);
                let max = source
                    .max_message
                    .unwrap_or(sources::syslog::DEFAULT_MAX_MESSAGE);
                let tx = tx.clone();
                let mut stop = stop_rx.clone();
                running.tasks.push(tokio::spawn(async move {
                    loop {
                        let listener = sources::syslog::SyslogSource {
                            settings: settings.clone(),
                            udp,
                            tcp,
                            max_message: max,
                            tx: tx.clone(),
                            stop: stop.clone(),
                        };
                        match listener.run().await {
                            Ok(()) => return,
                            Err(e) => error!(source = %settings.name, error = %e, "syslog listener failed; retrying in 10 s"),
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(RESTART_SOURCE_AFTER) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }));
            }
            SourceKind::Loki => {
                let store = Store::open(&shared.db)?;
                let cursor =
                    ingest::checkpoint_offset(&store, &sources::loki::checkpoint_key(&name))?;
                let loki = sources::loki::LokiSource {
                    settings,
                    url: source.url.clone().unwrap_or_default(),
                    query: source.query.clone().unwrap_or_default(),
                    interval: source.interval.unwrap_or(Duration::from_secs(10)),
                    cursor: cursor.map(|c| c as i64),
                    tx: tx.clone(),
                    stop: stop_rx.clone(),
                };
                running.tasks.push(tokio::spawn(loki.run()));
            }
            SourceKind::Status => {
                let status = sources::status::StatusSource {
                    settings,
                    path: source.path.clone().map(PathBuf::from),
                    command: source.command.clone(),
                    interval: source.interval.unwrap_or(Duration::from_secs(30)),
                    tx: tx.clone(),
                    stop: stop_rx.clone(),
                };
                running.tasks.push(tokio::spawn(status.run()));
            }
        }
    }
    Ok(running)
}

/// The writer: the only task that writes the store while the daemon runs.
fn write_batches(
    mut rx: mpsc::Receiver<Batch>,
    shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let mut store = Store::open(&shared.db)?;
    // Streams by identity: files by fingerprint, live streams by key.
    let mut streams: HashMap<String, Stream> = HashMap::new();
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let mut last_rebuild = Instant::now();

    loop {
        shared
            .writer_alive
            .store(Utc::now().timestamp(), Ordering::Relaxed);
        let next = handle.block_on(async { tokio::time::timeout(REBUILD_EVERY, rx.recv()).await });
        let closed = matches!(next, Ok(None));
        if let Ok(Some(batch)) = next {
            let (stored, gateways) = write_batch(&mut store, &mut streams, batch)?;
            shared.records.fetch_add(stored as i64, Ordering::Relaxed);
            dirty.extend(gateways);
        }
        let idle = rx.is_empty();
        if !dirty.is_empty() && (closed || idle || last_rebuild.elapsed() >= REBUILD_EVERY) {
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
            tracing::debug!(gateways = ?gateways, sessions = count, "sessions rebuilt");
            last_rebuild = Instant::now();
        }
        if closed {
            return Ok(());
        }
    }
}

/// Stores one batch; returns the records stored and the gateways touched.
fn write_batch(
    store: &mut Store,
    streams: &mut HashMap<String, Stream>,
    batch: Batch,
) -> anyhow::Result<(u64, BTreeSet<String>)> {
    let now = Utc::now();
    let stream = match batch {
        Batch::FileLines {
            settings,
            fingerprint,
            path,
            start_offset,
            lines,
            received,
        } => {
            let stream = match streams.entry(fingerprint.clone()) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(Stream::for_file(
                    store,
                    settings,
                    fingerprint,
                    path,
                    vpnledger_parsers::YearRule::ClosestToReceived,
                )?),
            };
            // Skip what this identity already stored (a batch read again
            // after a rotation or a restart); a gap would mean lost lines.
            let mut at = start_offset;
            if at > stream.offset {
                warn!(path = %stream_label(stream), expected = stream.offset, got = at, "lines missing before this batch");
                stream.set_position(at);
            }
            for line in &lines {
                let next = at + line.len() as u64;
                if at >= stream.offset {
                    stream.read_line(line, received);
                }
                at = next;
            }
            stream
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
            for m in &messages {
                stream.read_message(&m.bytes, m.received, m.truncated);
            }
            stream
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
            if (cursor as u64) <= stream.offset {
                return Ok((0, BTreeSet::new()));
            }
            for m in &messages {
                stream.read_message(&m.bytes, m.received, m.truncated);
            }
            stream.set_position(cursor as u64);
            stream
        }
        Batch::Snapshot {
            settings,
            label,
            content,
            received,
        } => {
            let summary = ingest::ingest_snapshot(store, &settings, &label, &content, received)?;
            return Ok((summary.records, summary.gateways));
        }
    };
    let before = stream.summary.records;
    stream.commit(store, now)?;
    let stored = stream.summary.records - before;
    let gateways = std::mem::take(&mut stream.summary.gateways);
    Ok((stored, gateways))
}

fn stream_label(stream: &Stream) -> &str {
    stream.fingerprint()
}
