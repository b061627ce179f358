//! The `vpnledger` command line: parses arguments, runs one command, maps
//! failures to exit codes (0 success, 1 runtime failure or altered
//! evidence, 2 bad usage, configuration, input or id).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vpnledger::config::{Config, ConfigErrors, DEFAULT_CONFIG_PATH};
use vpnledger::ingest::{self, decode, SourceSettings, YearChoice};
use vpnledger::inventory::Inventory;
use vpnledger::output::{local_time, local_time_opt, table, write_csv};
use vpnledger::reconcile::{self, AuditFilter, Rules, Severity};
use vpnledger::sessions::{self, SessionFilter, SessionRules};
use vpnledger::store::{self, format_utc, Store};
use vpnledger::{reports, BadInput};
use vpnledger_parsers::openvpn::status::{is_status_file, parse_status};
use vpnledger_parsers::{
    vendor, Format, FormatChoice, LineReader, LineTime, TimeResolver, Vendor, YearRule,
};

#[derive(Parser)]
#[command(
    name = "vpnledger",
    version,
    about = "Rebuilds VPN remote-access sessions from gateway logs and checks intervention reports against them"
)]
struct Cli {
    /// The configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The SQLite store (wins over [store] path).
    #[arg(long, global = true, value_name = "FILE")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The daemon: live sources, store writer, sessions, HTTP API.
    Run,
    /// Import log files once (idempotent); `-` reads standard input.
    Ingest {
        /// Where the lines come from (names the gateway of host-less lines).
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        reading: Reading,
        /// The files are complete (closed, rotated): a last line without
        /// its newline is read too, not left for a later read.
        #[arg(long)]
        complete: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// List sessions.
    Sessions {
        /// A VPN identity or a technician id, ignoring case, `DOMAIN\` and
        /// `@realm` as identities are matched everywhere.
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Only sessions that no report covers yet: ready to become one.
        #[arg(long)]
        unreported: bool,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Intervention reports.
    #[command(subcommand)]
    Reports(ReportsCommand),
    /// Cross-check reports and sessions.
    Audit {
        #[command(subcommand)]
        action: Option<AuditAction>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        site: Option<String>,
        #[arg(long)]
        technician: Option<String>,
        /// One of the discrepancy kinds.
        #[arg(long)]
        kind: Option<String>,
        /// The lowest severity shown: info, warning or critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
    /// Check the configuration and say where it is wrong.
    CheckConfig,
    /// Check that the stored evidence was not altered.
    Verify,
    /// Show what vpnledger reads in each line; stores nothing.
    Parse {
        #[command(flatten)]
        reading: Reading,
        /// One JSON object per line (what is printed without `--stats`).
        #[arg(long, conflicts_with = "stats")]
        json: bool,
        /// Counts per format and event kind.
        #[arg(long)]
        stats: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct Reading {
    /// The zone of lines without an offset (wins over the source's).
    #[arg(long)]
    tz: Option<Tz>,
    /// The year of the file's first line, for lines without a year.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1970..=9999))]
    year: Option<i32>,
    /// How lines are read: `auto` recognises each line's format.
    #[arg(long, default_value = "auto", value_parser = format_names())]
    format: String,
}

/// `auto` and every format's name, as `--help` lists them.
fn format_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(
        std::iter::once("auto").chain(Format::ALL.iter().map(|f| f.name())),
    )
}

#[derive(Subcommand)]
enum ReportsCommand {
    /// Import a JSON array of reports (upsert by id, all or nothing).
    Import { file: PathBuf },
    /// Show one report.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The remote part of a report as the logs give it.
    Prefill {
        id: String,
        #[arg(long)]
        json: bool,
        /// Fill the empty remote fields of a draft.
        #[arg(long)]
        write: bool,
    },
    /// Every report.
    Export {
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        #[arg(long)]
        csv: bool,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Mark a discrepancy as explained.
    Resolve {
        id: String,
        /// Why the finding is not a fault.
        #[arg(long)]
        note: String,
        /// Who explains it; else the login name of whoever runs the command.
        #[arg(long)]
        by: Option<String>,
    },
}

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as with other Unix tools.
    // SAFETY: setting a signal to its default disposition before any
    // thread starts has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VPNLEDGER_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in the journal or
        // a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let usage = e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<ConfigErrors>().is_some();
            eprintln!("vpnledger: {e:#}");
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// What every command needs: the configuration and where the store is.
struct Context {
    config: Config,
    db: Option<PathBuf>,
}

impl Context {
    fn load(cli: &Cli) -> anyhow::Result<Context> {
        let config = match &cli.config {
            Some(path) => Config::load(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Config::load(Path::new(DEFAULT_CONFIG_PATH))?
            }
            // No configuration at all: the defaults, an empty inventory.
            None => Config::default(),
        };
        Ok(Context {
            config,
            db: cli.db.clone(),
        })
    }

    /// The store, created if there is none yet: for the commands that
    /// write into it.
    fn store(&self) -> anyhow::Result<Store> {
        Store::open(&self.config.store_path(self.db.as_deref()))
    }

    /// The store, which must exist: a command that only reads it answers
    /// from a mistyped path with an error, not with an empty new store.
    fn existing_store(&self) -> anyhow::Result<Store> {
        let path = self.config.store_path(self.db.as_deref());
        if !path.exists() {
            return Err(BadInput(format!(
                "{}: no store here (`ingest`, `reports import` or `run` creates it)",
                path.display()
            ))
            .into());
        }
        Store::open(&path)
    }

    fn inventory(&self) -> Inventory {
        Inventory::from_config(&self.config)
    }

    fn zone(&self) -> Tz {
        self.config.defaults.timezone
    }

    fn rules(&self) -> Rules {
        Rules::from_config(&self.config.reconcile)
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::CheckConfig = cli.command {
        let path = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        let config = Config::load(&path)?;
        println!("{}: configuration is valid", path.display());
        // Where the store's history of the inventory differs from it.
        let db = config.store_path(cli.db.as_deref());
        if db.exists() {
            let store = Store::open(&db)?;
            let inventory = Inventory::from_config(&config);
            let mut latest: BTreeMap<(String, String), reports::DeviceChange> = BTreeMap::new();
            for change in reports::device_changes(&store)? {
                latest.insert((change.site.clone(), change.device.clone()), change);
            }
            for ((site, device), change) in latest {
                let configured = inventory
                    .site(&site)
                    .and_then(|s| s.devices.iter().find(|d| d.name == device))
                    .and_then(|d| d.serial.clone());
                if configured.as_deref() != Some(change.serial_after.as_str()) {
                    println!(
                        "{site} {device}: serial {} in the configuration, {} since report {} ({})",
                        configured.as_deref().unwrap_or("(none)"),
                        change.serial_after,
                        change.report,
                        change.at
                    );
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Run = cli.command {
        let path = cli
            .config
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
        vpnledger::daemon::run(&path, cli.db.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }
    let ctx = Context::load(&cli)?;
    match cli.command {
        Command::Run => unreachable!("handled above"),
        Command::Ingest {
            source,
            reading,
            complete,
            files,
        } => cmd_ingest(&ctx, source, &reading, complete, &files),
        Command::Sessions {
            user,
            site,
            since,
            until,
            unreported,
            json,
            csv,
        } => {
            let (since, until) = vpnledger::period_range(
                since.as_deref(),
                until.as_deref(),
                ctx.zone(),
                ["--since", "--until"],
            )?;
            let filter = SessionFilter {
                user,
                site,
                since,
                until,
            };
            cmd_sessions(&ctx, &filter, unreported, json, csv)
        }
        Command::Reports(command) => cmd_reports(&ctx, command),
        Command::Audit {
            action: Some(AuditAction::Resolve { id, note, by }),
            ..
        } => cmd_resolve(&ctx, &id, &note, by),
        Command::Audit {
            action: None,
            since,
            until,
            site,
            technician,
            kind,
            severity,
            json,
            csv,
        } => {
            if let Some(k) = &kind {
                if !reconcile::KINDS.contains(&k.as_str()) {
                    return Err(BadInput(format!(
                        "--kind: unknown kind {k:?}; expected one of {}",
                        reconcile::KINDS.join(", ")
                    ))
                    .into());
                }
            }
            let (since, until) = vpnledger::period_range(
                since.as_deref(),
                until.as_deref(),
                ctx.zone(),
                ["--since", "--until"],
            )?;
            let filter = AuditFilter {
                since,
                until,
                site,
                technician,
                kind,
                severity: severity
                    .as_deref()
                    .map(|s| {
                        Severity::parse(s).ok_or_else(|| {
                            BadInput(format!(
                                "--severity: {s:?} is not info, warning or critical"
                            ))
                        })
                    })
                    .transpose()?,
            };
            cmd_audit(&ctx, &filter, json, csv)
        }
        Command::CheckConfig => unreachable!("handled above"),
        Command::Verify => cmd_verify(&ctx),
        Command::Parse {
            reading,
            json: _,
            stats,
            files,
        } => cmd_parse(&ctx, &reading, stats, &files),
    }
}

fn format_choice(text: &str) -> anyhow::Result<FormatChoice> {
    text.parse::<FormatChoice>()
        .map_err(|e| BadInput(format!("--format: {e}")).into())
}

fn year_choice(year: Option<i32>) -> YearChoice {
    year.map_or(YearChoice::FromModificationTime, YearChoice::FirstLine)
}

fn cmd_ingest(
    ctx: &Context,
    source: Option<String>,
    reading: &Reading,
    complete: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let format = format_choice(&reading.format)?;
    let explicit = (reading.format != "auto").then_some(format);
    // Inputs that cannot be read are refused before a store is made.
    for file in files.iter().filter(|f| f.as_os_str() != "-") {
        if file.is_dir() {
            return Err(BadInput(format!("{}: a folder, not a file", file.display())).into());
        }
        if !file.exists() {
            return Err(BadInput(format!("{}: cannot open: no such file", file.display())).into());
        }
    }
    // A name the configuration does not know may be a typo: it still
    // names the gateway of host-less lines, with the default settings.
    if let Some(name) = source.as_deref() {
        if ctx.config.source(name).is_none() && !ctx.config.sources.is_empty() {
            let known: Vec<&str> = ctx
                .config
                .sources
                .iter()
                .map(|s| s.name.get_ref().as_str())
                .collect();
            tracing::warn!(
                "--source {name}: no source of that name in the configuration (it has {}): read with the default settings, lines without a host go to gateway {name:?}",
                known.join(", ")
            );
        }
    }
    let mut store = ctx.store()?;
    let received = Utc::now();
    let mut total = ingest::IngestSummary::default();
    for file in files {
        // Without --source, a file names its own source.
        let name = source.clone().unwrap_or_else(|| file.display().to_string());
        let settings = SourceSettings::resolve(&ctx.config, &name, reading.tz, explicit)?;
        let summary = ingest::ingest_inputs(
            &mut store,
            std::slice::from_ref(file),
            &settings,
            year_choice(reading.year),
            complete,
            received,
        )?;
        if summary.unparsed > 0 {
            tracing::warn!(file = %file.display(), unparsed = summary.unparsed, "lines not understood were kept in the unparsed table");
        }
        total.add(summary);
    }
    let rules = SessionRules {
        reconnect_grace: chrono::Duration::from_std(ctx.config.reconcile.reconnect_grace)
            .unwrap_or(chrono::Duration::MAX),
    };
    // This run's gateways, and any an earlier run stored events for and
    // stopped before rebuilding.
    let mut gateways = total.gateways.clone();
    gateways.extend(sessions::stale_gateways(&store.conn)?);
    let count = sessions::rebuild(
        &mut store,
        &ctx.inventory(),
        rules,
        gateways.iter().cloned(),
    )?;
    println!(
        "ingested {} file(s): {} new line(s), {} record(s) with events ({} traffic), {} unparsed line(s) kept, {} read without a VPN fact (not stored); {} file(s) had nothing new",
        total.files,
        total.lines,
        total.records,
        total.traffic,
        total.unparsed,
        total.lines.saturating_sub(total.records + total.unparsed),
        total.unchanged_files
    );
    if total.partial_lines > 0 {
        println!(
            "{} last line(s) without a newline left for a later read (--complete reads them: a file that is closed or rotated)",
            total.partial_lines
        );
    }
    if !gateways.is_empty() {
        println!(
            "sessions rebuilt for {}: {count} session(s)",
            gateways.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_sessions(
    ctx: &Context,
    filter: &SessionFilter,
    unreported: bool,
    json: bool,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    let store = ctx.existing_store()?;
    let mut list = sessions::load(&store.conn, filter)?;
    if unreported {
        // What some report already covers, at its site.
        let all = sessions::load(&store.conn, &SessionFilter::default())?;
        let inventory = ctx.inventory();
        let rules = ctx.rules();
        let mut covered = std::collections::BTreeSet::new();
        for report in reports::load_all(&store)? {
            for s in reconcile::backing_sessions(&report, &all, &inventory, &rules) {
                covered.insert(s.id.clone());
            }
        }
        list.retain(|s| !covered.contains(&s.id));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(ExitCode::SUCCESS);
    }
    let devices = |s: &sessions::Session| {
        s.devices
            .iter()
            .map(|d| d.name.clone().unwrap_or_else(|| d.ip.clone()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if csv {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|s| {
                vec![
                    s.id.clone(),
                    s.user.clone(),
                    s.technician.clone().unwrap_or_default(),
                    format_utc(s.start),
                    s.end.map(format_utc).unwrap_or_default(),
                    s.end_reason.clone().unwrap_or_default(),
                    s.end_inferred.to_string(),
                    s.gateway.clone(),
                    s.tunnel.clone(),
                    s.sites.join(" "),
                    s.virtual_ip.clone().unwrap_or_default(),
                    s.remote_ip.clone().unwrap_or_default(),
                    s.bytes_in.map(|b| b.to_string()).unwrap_or_default(),
                    s.bytes_out.map(|b| b.to_string()).unwrap_or_default(),
                    devices(s),
                    s.continues.clone().unwrap_or_default(),
                ]
            })
            .collect();
        write_csv(
            &[
                "id",
                "user",
                "technician",
                "start",
                "end",
                "end_reason",
                "end_inferred",
                "gateway",
                "tunnel",
                "sites",
                "virtual_ip",
                "remote_ip",
                "bytes_in",
                "bytes_out",
                "devices",
                "continues",
            ],
            &rows,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let zone = ctx.zone();
    let mut t = table(&[
        "id",
        "user",
        "start",
        "end",
        "reason",
        "tunnel",
        "virtual ip",
        "remote ip",
        "devices",
    ]);
    for s in &list {
        let reason = match (&s.end_reason, s.end_inferred) {
            (Some(r), true) => format!("{r} (inferred)"),
            (Some(r), false) => r.clone(),
            (None, _) => String::new(),
        };
        t.add_row(vec![
            s.id.clone(),
            s.user.clone(),
            local_time(s.start, zone),
            local_time_opt(s.end, zone),
            reason,
            s.tunnel.clone(),
            s.virtual_ip.clone().unwrap_or_default(),
            s.remote_ip.clone().unwrap_or_default(),
            devices(s),
        ]);
    }
    println!("{t}");
    println!("{} session(s)", list.len());
    Ok(ExitCode::SUCCESS)
}

fn cmd_reports(ctx: &Context, command: ReportsCommand) -> anyhow::Result<ExitCode> {
    let mut store = match command {
        ReportsCommand::Import { .. } => ctx.store()?,
        _ => ctx.existing_store()?,
    };
    let inventory = ctx.inventory();
    match command {
        ReportsCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| BadInput(format!("{}: cannot read: {e}", file.display())))?;
            let name = file.display().to_string();
            let is_csv = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
                || text.trim_start().starts_with("id,");
            let parsed = if is_csv {
                reports::parse_reports_csv(&text, &inventory, &name)?
            } else {
                reports::parse_reports(&text, &inventory, &name)?
            };
            let summary = reports::import(&mut store, &parsed, &inventory, Utc::now())?;
            println!(
                "{} report(s): {} added, {} updated (earlier version kept), {} unchanged",
                parsed.len(),
                summary.added,
                summary.updated,
                summary.unchanged
            );
            if summary.serials_changed > 0 {
                println!(
                    "{} device serial(s) changed by replaced parts",
                    summary.serials_changed
                );
            }
        }
        ReportsCommand::Show { id, json } => {
            let stored = reports::load(&store, &id)?
                .ok_or_else(|| BadInput(format!("no report with id {id:?}")))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stored.report)?);
            } else {
                print_report(&stored.report, stored.version, ctx.zone());
            }
        }
        ReportsCommand::Prefill { id, json, write } => {
            let stored = reports::load(&store, &id)?
                .ok_or_else(|| BadInput(format!("no report with id {id:?}")))?;
            let all = sessions::load(&store.conn, &SessionFilter::default())?;
            let prefill =
                reconcile::prefill(&store.conn, &stored.report, &all, &inventory, &ctx.rules())?;
            if write {
                write_prefill(&mut store, &inventory, &stored.report, &prefill)?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reconcile::prefill_json(&prefill))?
                );
            } else {
                print_prefill(&prefill, ctx.zone());
            }
        }
        ReportsCommand::Export { json, csv } => {
            let all = reports::load_all(&store)?;
            if csv {
                let rows: Vec<Vec<String>> = all.iter().map(reports::to_csv_row).collect();
                write_csv(&reports::CSV_COLUMNS, &rows)?;
            } else {
                let _ = json;
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Fills the empty remote fields of a draft from the pre-fill.
fn write_prefill(
    store: &mut Store,
    inventory: &Inventory,
    report: &reports::Report,
    prefill: &reconcile::Prefill,
) -> anyhow::Result<()> {
    if report.status == reports::Status::Signed {
        return Err(BadInput(format!(
            "report {:?} is signed: a pre-fill never changes a signed report",
            report.id
        ))
        .into());
    }
    let mut updated = report.clone();
    let remote = updated.remote.get_or_insert_with(Default::default);
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    if remote.start.is_none() {
        remote.start = text(&prefill.start.value);
    }
    if remote.end.is_none() {
        remote.end = text(&prefill.end.value);
    }
    if remote.devices.as_ref().is_none_or(|d| d.is_empty()) {
        let devices: Vec<String> = prefill
            .devices
            .value
            .as_array()
            .map(|a| a.iter().filter_map(text).collect())
            .unwrap_or_default();
        if !devices.is_empty() {
            remote.devices = Some(devices);
        }
    }
    if remote.tunnel.is_none() {
        remote.tunnel = text(&prefill.tunnel.value);
    }
    let summary = reports::import(store, std::slice::from_ref(&updated), inventory, Utc::now())?;
    if summary.updated > 0 {
        eprintln!(
            "report {} updated from the logs (earlier version kept)",
            report.id
        );
    }
    Ok(())
}

fn print_report(r: &reports::Report, version: i64, zone: Tz) {
    let time = |v: &Option<String>| {
        reports::Report::time(v).map_or_else(|| "-".to_owned(), |t| local_time(t, zone))
    };
    println!(
        "report {} (version {version}, {})",
        r.id,
        json!(r.status).as_str().unwrap_or("")
    );
    println!(
        "  site: {}   date: {}   technician: {}",
        r.site.as_deref().unwrap_or("-"),
        r.date.as_deref().unwrap_or("-"),
        r.technician.as_deref().unwrap_or("-")
    );
    println!(
        "  mode: {}   reason: {}   ticket: {}",
        json!(r.mode).as_str().unwrap_or("-"),
        json!(r.reason).as_str().unwrap_or("-"),
        r.ticket.as_deref().unwrap_or("-")
    );
    if let Some(remote) = &r.remote {
        println!(
            "  remote: {} to {} via {}",
            time(&remote.start),
            time(&remote.end),
            remote.tunnel.as_deref().unwrap_or("-")
        );
        println!(
            "  devices: {}",
            remote.devices.clone().unwrap_or_default().join(", ")
        );
    }
    if let Some(on_site) = &r.on_site {
        println!(
            "  on site: {} to {}",
            time(&on_site.arrival),
            time(&on_site.departure)
        );
    }
}

fn print_prefill(p: &reconcile::Prefill, zone: Tz) {
    let time = |v: &serde_json::Value| {
        v.as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or_else(
                || "unknown".to_owned(),
                |t| local_time(t.with_timezone(&Utc), zone),
            )
    };
    println!(
        "pre-fill of report {} from {} session(s): {}",
        p.report,
        p.sessions.len(),
        p.sessions.join(", ")
    );
    let mut t = table(&["field", "value", "evidence"]);
    let lines = |f: &reconcile::Filled| {
        f.evidence
            .iter()
            .map(|e| format!("{}:{} {}", e.source, e.line.unwrap_or(0), e.text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    t.add_row(vec![
        "start".to_owned(),
        time(&p.start.value),
        lines(&p.start),
    ]);
    t.add_row(vec!["end".to_owned(), time(&p.end.value), lines(&p.end)]);
    let devices = p
        .devices
        .value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    t.add_row(vec!["devices".to_owned(), devices, lines(&p.devices)]);
    t.add_row(vec![
        "tunnel".to_owned(),
        p.tunnel.value.as_str().unwrap_or("unknown").to_owned(),
        lines(&p.tunnel),
    ]);
    println!("{t}");
}

fn cmd_audit(
    ctx: &Context,
    filter: &AuditFilter,
    json: bool,
    csv: bool,
) -> anyhow::Result<ExitCode> {
    let store = ctx.existing_store()?;
    let all_reports = reports::load_all(&store)?;
    let all_sessions = sessions::load(&store.conn, &SessionFilter::default())?;
    let found = reconcile::audit(
        &store.conn,
        &all_reports,
        &all_sessions,
        &ctx.inventory(),
        &ctx.rules(),
        Utc::now(),
    )?;
    let shown: Vec<_> = found.into_iter().filter(|d| filter.keeps(d)).collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    if csv {
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.kind.to_owned(),
                    d.severity.as_str().to_owned(),
                    d.report.clone().unwrap_or_default(),
                    d.session.clone().unwrap_or_default(),
                    d.site.clone().unwrap_or_default(),
                    d.technician.clone().unwrap_or_default(),
                    text(&d.expected),
                    text(&d.observed),
                    d.detail.clone(),
                    d.resolution
                        .as_ref()
                        .map(|r| format!("{} ({}): {}", r.by, r.at, r.note))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        write_csv(
            &[
                "id",
                "kind",
                "severity",
                "report",
                "session",
                "site",
                "technician",
                "expected",
                "observed",
                "detail",
                "resolution",
            ],
            &rows,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&["id", "severity", "kind", "report", "site", "detail"]);
    for d in &shown {
        let detail = match &d.resolution {
            Some(r) => format!("{} [explained by {}: {}]", d.detail, r.by, r.note),
            None => d.detail.clone(),
        };
        t.add_row(vec![
            d.id.clone(),
            d.severity.as_str().to_owned(),
            d.kind.to_owned(),
            d.report.clone().unwrap_or_default(),
            d.site.clone().unwrap_or_default(),
            detail,
        ]);
    }
    println!("{t}");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &shown {
        *counts.entry(d.kind).or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    println!(
        "{} discrepancy(ies){}{}",
        shown.len(),
        if summary.is_empty() { "" } else { ": " },
        summary.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_resolve(
    ctx: &Context,
    id: &str,
    note: &str,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    // An explanation is the point of resolving: a blank one would mark the
    // finding explained while saying nothing.
    if note.trim().is_empty() {
        return Err(BadInput(
            "--note: the note is empty; say why the finding is not a fault".to_owned(),
        )
        .into());
    }
    let store = ctx.existing_store()?;
    let all_reports = reports::load_all(&store)?;
    let all_sessions = sessions::load(&store.conn, &SessionFilter::default())?;
    let found = reconcile::audit(
        &store.conn,
        &all_reports,
        &all_sessions,
        &ctx.inventory(),
        &ctx.rules(),
        Utc::now(),
    )?;
    if !found.iter().any(|d| d.id == id) {
        return Err(BadInput(format!(
            "no current discrepancy with id {id:?} (run `vpnledger audit` to list them)"
        ))
        .into());
    }
    // The person behind sudo, else the login; a service account without
    // either is named by its uid, so an explanation always says who.
    let by = by
        .or_else(|| {
            ["SUDO_USER", "USER", "LOGNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| format!("uid {}", process_uid()));
    reconcile::resolve(&store.conn, id, note, &by, Utc::now())?;
    println!("{id} explained by {by}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_verify(ctx: &Context) -> anyhow::Result<ExitCode> {
    let store = ctx.existing_store()?;
    // One read transaction: every check sees the same commit, while a
    // daemon beside it goes on writing (the chain's head and the last
    // record must be of one moment).
    let _snapshot = store.conn.unchecked_transaction()?;
    // The tables verify reads are there: a store damaged by hand says so,
    // not "no such table".
    for table in [
        "records",
        "streams",
        "events",
        "traffic_runs",
        "traffic_unmatched",
        "chain_head",
        "unparsed_head",
        "unparsed_chain",
    ] {
        let present: bool = store.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if !present {
            println!(
                "the store has no table {table}: it was removed by hand or by another program"
            );
            return Ok(ExitCode::from(1));
        }
    }
    // Each position of a file is stored once.
    use rusqlite::OptionalExtension;
    let twice: Option<(String, i64)> = store
        .conn
        .query_row(
            "SELECT coalesce(s.fingerprint, '#' || r.stream), r.line
             FROM records r LEFT JOIN streams s ON s.id = r.stream
             WHERE r.line IS NOT NULL
             GROUP BY r.stream, r.line HAVING count(*) > 1 LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((file, line)) = twice {
        println!("line {line} of file {file} is stored more than once");
        return Ok(ExitCode::from(1));
    }

    // Every record names a file that is there.
    let lost: Option<(i64, i64)> = store
        .conn
        .query_row(
            "SELECT r.id, r.stream FROM records r LEFT JOIN streams s ON s.id = r.stream
             WHERE s.id IS NULL ORDER BY r.id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, stream)) = lost {
        println!(
            "record {id} names file number {stream}, which is not in the streams table: the file's row was removed or the record altered"
        );
        return Ok(ExitCode::from(1));
    }

    // Every event row belongs to a record.
    let orphans: i64 = store.conn.query_row(
        "SELECT count(*) FROM events WHERE record_id NOT IN (SELECT id FROM records)",
        [],
        |r| r.get(0),
    )?;
    if orphans > 0 {
        println!("{orphans} event row(s) belong to no record: their records were removed");
        return Ok(ExitCode::from(1));
    }
    // Traffic rows the upgrade to one row per line could not put on
    // their record: they differed from it, or it was gone.
    let (unmatched, first): (i64, Option<i64>) = store.conn.query_row(
        "SELECT count(*), min(record_id) FROM traffic_unmatched",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if unmatched > 0 {
        let first = first.map_or_else(|| "none".to_owned(), |id| id.to_string());
        println!(
            "{unmatched} traffic row(s) written before the upgrade to schema 11 did not match their record (another gateway or time, a second row, or no record), the first for record {first}: they are kept in traffic_unmatched"
        );
        return Ok(ExitCode::from(1));
    }
    if let Some(problem) = traffic_problem(&store.conn)? {
        println!("{problem}");
        return Ok(ExitCode::from(1));
    }

    // The chain: each record's digest follows from the one before, its
    // line and (chain version 2) its event or traffic row.
    let prefixed = |table: &str, columns: &str| {
        columns
            .split(", ")
            .map(|c| format!("{table}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let event_columns = ingest::EVENT_FACTS.split(", ").count();
    let traffic_columns = ingest::TRAFFIC_FACTS.split(", ").count();
    let mut stmt = store.conn.prepare(&format!(
        "SELECT r.id, s.source, s.fingerprint, r.line, r.ts, r.raw, r.digest, r.chain,
                e.id, r.src, {}, {}
         FROM records r
         LEFT JOIN streams s ON s.id = r.stream
         LEFT JOIN events e ON e.record_id = r.id
         ORDER BY r.id",
        prefixed("e", ingest::EVENT_FACTS),
        prefixed("r", ingest::TRAFFIC_FACTS),
    ))?;
    let mut rows = stmt.query([])?;
    let mut previous = ingest::GENESIS;
    let mut count = 0u64;
    let mut last_id = None;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        last_id = Some(id);
        let columns = |from: usize, n: usize| -> rusqlite::Result<Vec<_>> {
            (from..from + n).map(|i| row.get_ref(i)).collect()
        };
        let event = columns(10, event_columns)?;
        let traffic = columns(10 + event_columns, traffic_columns)?;
        let has_event = row.get_ref(8)? != rusqlite::types::ValueRef::Null;
        let has_traffic = row.get_ref(9)? != rusqlite::types::ValueRef::Null;
        // Ingest writes no fact as a blob: the same bytes as a blob are
        // not the same value to SQL (the look-ups would no longer match
        // them), though they hash the same.
        let blob_fact = (has_event && event.iter().any(|v| v.as_blob().is_ok()))
            || (has_traffic && traffic.iter().any(|v| v.as_blob().is_ok()));
        // A value of another type than ingest writes (text for a
        // number, a raw line made text) is an alteration too, not an
        // internal error; the same bytes as text are the same line.
        let recomputed = (|| -> rusqlite::Result<_> {
            use rusqlite::types::ValueRef;
            let raw = match row.get_ref(5)? {
                ValueRef::Blob(b) | ValueRef::Text(b) => b,
                other => {
                    return Err(rusqlite::Error::InvalidColumnType(
                        5,
                        "raw".into(),
                        other.data_type(),
                    ))
                }
            };
            Ok(ingest::record_digest(
                &previous,
                &row.get::<_, String>(1)?,
                &row.get::<_, String>(2)?,
                row.get::<_, i64>(3)? as u64,
                row.get(4)?,
                raw,
                row.get(7)?,
                has_event.then_some(&event[..]),
                has_traffic.then_some(&traffic[..]),
            ))
        })();
        let stored = row.get_ref(6)?;
        let Some(expected) = recomputed
            .ok()
            .filter(|d| !blob_fact && stored.as_blob().ok() == Some(&d[..]))
        else {
            println!("record {id} or its event was altered, or a record before it removed: its digest does not follow from the records before it");
            return Ok(ExitCode::from(1));
        };
        previous = expected;
        count += 1;
    }
    // The chain ends where the last commit left its head: newer records
    // removed, or records written without moving it, show here.
    let head: Option<(i64, Vec<u8>)> = match store
        .conn
        .query_row("SELECT record_id, digest FROM chain_head", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
    {
        Ok(head) => head,
        Err(_) => {
            println!("the store's chain head cannot be read as ingest writes it (a value of another type, or columns changed): it was altered");
            return Ok(ExitCode::from(1));
        }
    };
    let head_problem = chain_end_problem(head, last_id, &previous, &RECORD_CHAIN);
    if let Some(problem) = head_problem {
        println!("{problem}");
        return Ok(ExitCode::from(1));
    }
    let unparsed = match unparsed_chain(&store.conn)? {
        Ok(unparsed) => unparsed,
        Err(problem) => {
            println!("{problem}");
            return Ok(ExitCode::from(1));
        }
    };
    println!("{count} record(s) verified: the evidence chain is intact, no line stored twice");
    if unparsed.verified > 0 || unparsed.before_chain > 0 {
        print!(
            "{} unparsed line(s) verified: their chain is intact",
            unparsed.verified
        );
        if unparsed.before_chain > 0 {
            print!(
                " ({} kept before unparsed lines were chained, not covered)",
                unparsed.before_chain
            );
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// How `verify` names a chain and its links.
struct ChainNames {
    /// One link (`record`), several (`records`).
    one: &'static str,
    many: &'static str,
    /// The chain's head.
    head: &'static str,
    /// Who writes links without moving the head, besides a hand.
    other_writer: &'static str,
}

const RECORD_CHAIN: ChainNames = ChainNames {
    one: "record",
    many: "records",
    head: "chain head",
    other_writer: ", or by an earlier vpnledger running beside this one",
};

const UNPARSED_CHAIN: ChainNames = ChainNames {
    one: "unparsed line",
    many: "unparsed lines",
    head: "unparsed lines' chain head",
    other_writer: "",
};

/// Whether a chain ends where its head says: the head's id and digest
/// against the last link's id and the digest recomputed up to it.
fn chain_end_problem(
    head: Option<(i64, impl AsRef<[u8]>)>,
    last: Option<i64>,
    last_digest: &[u8],
    names: &ChainNames,
) -> Option<String> {
    let ChainNames {
        one,
        many,
        head: head_name,
        other_writer,
    } = names;
    match (head, last) {
        (None, None) => None,
        (Some((head, _)), None) => Some(format!(
            "the store has no {one} on its chain, but its {head_name} names {one} {head}: {many} were removed"
        )),
        (None, Some(last)) => Some(format!(
            "the store's {head_name} is gone, and {one} {last} is the last: the head was removed"
        )),
        (Some((head, _)), Some(last)) if head > last => Some(format!(
            "the {head_name} names {one} {head}, but the last {one} is {last}: the newest {one}(s) were removed"
        )),
        (Some((head, _)), Some(last)) if head < last => Some(format!(
            "{many} after {head} (the {head_name}) up to {last} were written without moving it: by hand{other_writer}"
        )),
        (Some((_, digest)), Some(last)) if digest.as_ref() != last_digest => Some(format!(
            "the {head_name}'s digest is not that of {one} {last}, the last: the {one} or the head was altered"
        )),
        _ => None,
    }
}

/// What `verify` found of the unparsed lines' chain.
struct UnparsedChain {
    verified: u64,
    /// Lines kept before the chain covered them (schema 14): no digest.
    before_chain: u64,
}

/// Walks the unparsed lines' chain: each digest follows from the one
/// before and the line's fields, and the head names the last. The error
/// says what is wrong. (`cmd_verify` made sure its tables are there.)
fn unparsed_chain(conn: &rusqlite::Connection) -> anyhow::Result<Result<UnparsedChain, String>> {
    // The last line kept before the chain: lines after it all have a digest.
    let before: Option<i64> = {
        use rusqlite::OptionalExtension;
        conn.query_row("SELECT before FROM unparsed_chain", [], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    };
    let Some(before) = before else {
        return Ok(Err(
            "the unparsed lines' chain start (table unparsed_chain) is gone or altered".to_owned(),
        ));
    };
    let mut stmt = conn.prepare(
        "SELECT id, source, fingerprint, path, line, offset, received, raw, reason, truncated, digest
         FROM unparsed ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    let mut previous = ingest::GENESIS;
    let mut found = UnparsedChain {
        verified: 0,
        before_chain: 0,
    };
    let mut last = None;
    let altered = |id: i64| {
        format!("unparsed line {id} was altered, or an unparsed line before it removed: its digest does not follow from the ones before it")
    };
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let stored = row.get_ref(10)?;
        if stored == rusqlite::types::ValueRef::Null && last.is_none() && id <= before {
            found.before_chain += 1;
            continue;
        }
        let recomputed = (|| -> rusqlite::Result<_> {
            use rusqlite::types::ValueRef;
            // Of the type ingest writes, or altered: the raw line a blob,
            // the names and the reason text.
            let bytes = |i: usize| match row.get_ref(i)? {
                ValueRef::Blob(b) => Ok(b),
                other => Err(rusqlite::Error::InvalidColumnType(
                    i,
                    "raw".into(),
                    other.data_type(),
                )),
            };
            let text = |i: usize| match row.get_ref(i)? {
                ValueRef::Text(b) => std::str::from_utf8(b).map_err(rusqlite::Error::Utf8Error),
                other => Err(rusqlite::Error::InvalidColumnType(
                    i,
                    "text".into(),
                    other.data_type(),
                )),
            };
            Ok(ingest::UnparsedLine {
                source: text(1)?,
                fingerprint: text(2)?,
                path: text(3)?,
                line: row.get(4)?,
                offset: row.get(5)?,
                received: row.get(6)?,
                raw: bytes(7)?,
                reason: text(8)?,
                truncated: row.get(9)?,
            }
            .digest(&previous))
        })();
        let Some(digest) = recomputed
            .ok()
            .filter(|d| stored.as_blob().ok() == Some(&d[..]))
        else {
            return Ok(Err(altered(id)));
        };
        previous = digest;
        last = Some(id);
        found.verified += 1;
    }
    let head =
        match ingest::unparsed_head(conn) {
            Ok(head) => head,
            Err(_) => return Ok(Err(
                "the unparsed lines' chain head cannot be read as ingest writes it: it was altered"
                    .to_owned(),
            )),
        };
    let problem = chain_end_problem(head, last, &previous, &UNPARSED_CHAIN);
    Ok(problem.map_or(Ok(found), Err))
}

/// What is wrong with the traffic facts and their runs, if anything.
/// A record is a line of traffic or carries an event, never both; a
/// traffic record has a source; every traffic record is in exactly one
/// run, where the device look-up finds it; and a run names only traffic
/// records of its gateway, source and hour, all of them present. Each
/// check is one pass or one seek per row, so a store of millions of
/// lines is walked in seconds.
fn traffic_problem(conn: &rusqlite::Connection) -> anyhow::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    let first = |sql: &str| -> rusqlite::Result<Option<i64>> {
        conn.query_row(sql, [], |r| r.get(0)).optional()
    };
    if let Some(id) = first(
        "SELECT r.id FROM records r JOIN events e ON e.record_id = r.id
         WHERE r.src IS NOT NULL OR r.dst IS NOT NULL OR r.proto IS NOT NULL
            OR r.dst_port IS NOT NULL OR r.allowed IS NOT NULL
         ORDER BY r.id LIMIT 1",
    )? {
        return Ok(Some(format!(
            "record {id} has an event and traffic facts: ingest writes one or the other (the record was altered)"
        )));
    }
    if let Some(id) = first(
        "SELECT id FROM records
         WHERE src IS NULL AND (dst IS NOT NULL OR proto IS NOT NULL
            OR dst_port IS NOT NULL OR allowed IS NOT NULL)
         ORDER BY id LIMIT 1",
    )? {
        return Ok(Some(format!(
            "record {id} has traffic facts but no source address (the record was altered)"
        )));
    }
    // The types ingest writes: the same bytes as a blob, or a number as
    // text, are not the same value to the look-ups.
    if let Some(id) = first(
        "SELECT id FROM records
         WHERE typeof(gateway) NOT IN ('text', 'null') OR typeof(ts) NOT IN ('integer', 'null')
            OR typeof(src) NOT IN ('text', 'null')
            OR typeof(dst) NOT IN ('text', 'null') OR typeof(proto) NOT IN ('text', 'null')
            OR typeof(dst_port) NOT IN ('integer', 'null') OR typeof(allowed) NOT IN ('integer', 'null')
         ORDER BY id LIMIT 1",
    )? {
        return Ok(Some(format!(
            "record {id} holds a gateway, time or traffic fact of another type than ingest writes (the record was altered)"
        )));
    }
    if let Some(first) = first(
        "SELECT CAST(first AS INTEGER) FROM traffic_runs
         WHERE typeof(gateway) != 'text' OR typeof(src) != 'text' OR typeof(hour) != 'integer'
            OR typeof(first) != 'integer' OR typeof(last) != 'integer'
         LIMIT 1",
    )? {
        return Ok(Some(format!(
            "the traffic run from record {first} holds a value of another type than ingest writes (the run was altered)"
        )));
    }
    let run: Option<(String, String, i64, i64, i64)> = conn
        .query_row(
            &format!(
                "SELECT t.gateway, t.src, t.hour, t.first, t.last FROM traffic_runs t
                 WHERE t.last < t.first OR t.last - t.first + 1 != (
                     SELECT count(*) FROM records r
                     WHERE r.id BETWEEN t.first AND t.last AND r.gateway = t.gateway
                       AND r.src = t.src AND r.ts / {} = t.hour)
                 LIMIT 1",
                store::RUN_MICROS
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    if let Some((gateway, src, hour, first, last)) = run {
        // The first id of the run that is not one of its records.
        let mut stmt = conn.prepare(&format!(
            "SELECT id FROM records WHERE id BETWEEN ?1 AND ?2 AND gateway = ?3 AND src = ?4
               AND ts / {} = ?5 ORDER BY id",
            store::RUN_MICROS
        ))?;
        let mut expected = first;
        let mut ids = stmt.query(rusqlite::params![first, last, gateway, src, hour])?;
        while let Some(row) = ids.next()? {
            if row.get::<_, i64>(0)? != expected {
                break;
            }
            expected += 1;
        }
        return Ok(Some(if first <= last {
            format!(
                "record {expected}, named by the traffic run of {gateway}, source {src}, records {first} to {last}, \
                 is gone or is not traffic of that source in that hour: it was removed or altered, or the run was"
            )
        } else {
            format!(
                "the traffic run of {gateway}, source {src}, from record {first} ends before it, at {last}: the run was altered"
            )
        }));
    }
    let overlap: Option<(String, String, i64)> = conn
        .query_row(
            "SELECT gateway, src, first FROM (
                 SELECT gateway, src, first,
                        lag(last) OVER (PARTITION BY gateway, src, hour ORDER BY first) AS before
                 FROM traffic_runs)
             WHERE before >= first LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    if let Some((gateway, src, first)) = overlap {
        return Ok(Some(format!(
            "two traffic runs of {gateway}, source {src}, both name record {first}: the look-up would count its traffic twice (a run was added or altered)"
        )));
    }
    // Checked last: a record altered, or runs that overlap, are named as
    // such above rather than as a record outside every run.
    // The run that could hold a record is the last one of its group that
    // begins at or before it: one seek in the runs' key.
    if let Some(id) = first(&format!(
        "SELECT r.id FROM records r
         WHERE r.src IS NOT NULL AND coalesce((
             SELECT t.last FROM traffic_runs t
             WHERE t.gateway = r.gateway AND t.src = r.src
               AND t.hour = r.ts / {} AND t.first <= r.id
             ORDER BY t.first DESC LIMIT 1), r.id - 1) < r.id
         ORDER BY r.id LIMIT 1",
        store::RUN_MICROS
    ))? {
        return Ok(Some(format!(
            "traffic record {id} is in no traffic run: the device look-up cannot see it (the record or a run was altered, or its run removed)"
        )));
    }
    Ok(None)
}

fn cmd_parse(
    ctx: &Context,
    reading: &Reading,
    stats: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let format = format_choice(&reading.format)?;
    let zone = reading.tz.unwrap_or(ctx.zone());
    let received = Utc::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    // `--stats` counts (it cannot be given with `--json`); else each line
    // is printed.
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut total = 0u64;
    // Lines understood whose time could not be placed, or that wrote none.
    let (mut time_errors, mut received_time) = (0u64, 0u64);
    for file in files {
        let cannot_read =
            |e: std::io::Error| BadInput(format!("{}: cannot read: {e}", file.display()));
        // A log is read line by line, so memory does not grow with it; a
        // status file is read whole.
        let is_stdin = file.as_os_str() == "-";
        // `--stats` reads pieces of a MiB: a small buffer lets those reads
        // go straight into the piece rather than through it.
        let capacity = if stats { 64 << 10 } else { 1 << 20 };
        let mut input: Box<dyn BufRead> = if is_stdin {
            Box::new(BufReader::with_capacity(capacity, std::io::stdin()))
        } else {
            Box::new(BufReader::with_capacity(
                capacity,
                File::open(file).map_err(cannot_read)?,
            ))
        };
        let mut bytes = Vec::new();
        input.read_until(b'\n', &mut bytes).map_err(cannot_read)?;
        let name = file.display().to_string();
        let settings = SourceSettings::resolve(&ctx.config, &name, reading.tz, None)?;
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
        let is_status = match format {
            FormatChoice::Fixed(f) => f.is_snapshot(),
            FormatChoice::Auto => is_status_file(&String::from_utf8_lossy(first_line)),
        };
        let year = match reading.year {
            Some(y) => y,
            None if is_stdin => chrono::Datelike::year(&received.with_timezone(&zone)),
            None => {
                let modified = std::fs::metadata(file)
                    .and_then(|m| m.modified())
                    .map(DateTime::<Utc>::from)
                    .unwrap_or(received);
                ingest_year_from(file, modified, zone)?
            }
        };
        let mut resolver = TimeResolver::new(zone, YearRule::Sequential { year, latest: None });
        if is_status {
            input.read_to_end(&mut bytes).map_err(cannot_read)?;
            let (text, _) = decode(&bytes, settings.encoding);
            for line in parse_status(&text) {
                total += 1;
                let timestamp = resolver
                    .resolve(&line.time, received)
                    .ok()
                    .map(|r| format_utc(r.at));
                let key = match (&line.event, &line.error) {
                    (_, Some(_)) => "error".to_owned(),
                    (Some(e), None) => format!("openvpn-status {}", e.kind()),
                    (None, None) => "openvpn-status (no event)".to_owned(),
                };
                *counts.entry(key).or_default() += 1;
                if !stats {
                    let value = json!({
                        "file": name, "line": line.number, "format": Format::OpenVpnStatus.name(),
                        "parser": Vendor::OpenVpn.name(),
                        "timestamp": timestamp, "host": null, "app": null, "pid": null, "message": line.text,
                        "event": line.event, "error": line.error.as_ref().map(|e| e.to_string()),
                    });
                    writeln!(out, "{value}")?;
                }
            }
            continue;
        }
        if stats {
            // Counting only: the lines are parsed on every core.
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let counted = vpnledger::parse_stats::count_lines(
                std::mem::take(&mut bytes),
                &mut input,
                format,
                settings.encoding,
                &mut resolver,
                received,
                threads,
            )
            .map_err(cannot_read)?;
            total += counted.lines;
            if counted.errors > 0 {
                *counts.entry("error".to_owned()).or_default() += counted.errors;
            }
            for ((format, kind), n) in counted.by_kind {
                *counts.entry(format!("{format} {kind}")).or_default() += n;
            }
            time_errors += counted.time_errors;
            received_time += counted.received_time;
            continue;
        }
        let mut reader = LineReader::new(format);
        let mut index = 0;
        while !bytes.is_empty() {
            index += 1;
            let raw = bytes.as_slice();
            let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let (text, _) = decode(raw, settings.encoding);
            let parsed = reader.read(&text);
            let value = match &parsed {
                Ok(p) => {
                    let ts = resolver.resolve(&p.envelope.time, received);
                    json!({
                        "file": name, "line": index, "format": p.envelope.format.name(),
                        "parser": vendor(&p.envelope).map(Vendor::name),
                        "timestamp": ts.as_ref().ok().map(|r| format_utc(r.at)),
                        "time_flag": ts.as_ref().ok().and_then(|r| r.flag),
                        "host": p.envelope.host, "app": p.envelope.app, "pid": p.envelope.pid,
                        "message": p.envelope.message, "event": p.event,
                        "error": ts.err().map(|e| format!("time: {e}")),
                    })
                }
                Err(e) => {
                    // The envelope may be whole and the message wrong:
                    // say what the envelope says.
                    let envelope = reader.envelope(&text);
                    // Shown, not followed: a line that is not read moves no
                    // year rule (as `ingest` and `--stats`). A line whose
                    // time is in the message it failed to read (FortiGate's
                    // date= and time=) shows none, not the time of reading.
                    let resolved = envelope
                        .as_ref()
                        .filter(|env| env.time != LineTime::Missing)
                        .and_then(|env| resolver.clone().resolve(&env.time, received).ok());
                    let env = envelope.as_ref();
                    json!({
                        "file": name, "line": index,
                        "format": env.map(|env| env.format.name()),
                        "parser": env.and_then(vendor).map(Vendor::name),
                        "timestamp": resolved.map(|r| format_utc(r.at)),
                        "time_flag": resolved.and_then(|r| r.flag),
                        "host": env.and_then(|env| env.host),
                        "app": env.and_then(|env| env.app),
                        "pid": env.and_then(|env| env.pid),
                        "message": env.map_or(&*text, |env| env.message),
                        "event": null, "error": e.to_string(),
                    })
                }
            };
            writeln!(out, "{value}")?;
            bytes.clear();
            input.read_until(b'\n', &mut bytes).map_err(cannot_read)?;
        }
    }
    if stats {
        let mut t = table(&["format and event", "lines"]);
        for (k, n) in &counts {
            t.add_row(vec![k.clone(), n.to_string()]);
        }
        if time_errors > 0 {
            t.add_row(vec![
                "(of these, time not placed)".to_owned(),
                time_errors.to_string(),
            ]);
        }
        if received_time > 0 {
            t.add_row(vec![
                "(of these, no time: dated when read)".to_owned(),
                received_time.to_string(),
            ]);
        }
        t.add_row(vec!["total".to_owned(), total.to_string()]);
        writeln!(out, "{t}")?;
    }
    out.flush().context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// The real user id of this process.
fn process_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The year of a file's first line from its modification time.
fn ingest_year_from(file: &Path, modified: DateTime<Utc>, zone: Tz) -> anyhow::Result<i32> {
    vpnledger::ingest::first_line_year(file, modified, zone)
}
