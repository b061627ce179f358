//! Polling a status: an OpenVPN status file, or the output of a command
//! such as `wg show all dump`.
//!
//! Each poll is one snapshot. WireGuard's dump carries no time, so the
//! poller writes `# poll <time>` before it, as the corpus files do; a
//! snapshot the store already holds (the same content) adds nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use tracing::{info, warn};

use super::{Batch, BatchSender, StopSignal};
use crate::ingest::SourceSettings;

/// The least time a polled command is given before it is killed.
const MIN_COMMAND_TIME: Duration = Duration::from_secs(10);

/// One `kind = "status"` source.
pub struct StatusSource {
    pub settings: Arc<SourceSettings>,
    pub path: Option<PathBuf>,
    pub command: Option<Vec<String>>,
    /// The time between two polls: a session that ends shows as ended at
    /// most this late (a status file only lists who is connected).
    pub interval: Duration,
    pub tx: BatchSender,
    pub stop: StopSignal,
}

impl StatusSource {
    /// Polls until stopped. A failed poll is reported once and retried
    /// at each interval.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let label = match (&self.path, &self.command) {
            (Some(p), _) => p.display().to_string(),
            (None, Some(c)) => c.join(" "),
            (None, None) => anyhow::bail!("a status source needs path or command"),
        };
        info!(source = %self.settings.name, status = %label, interval = ?self.interval, "polling");
        let mut failing = false;
        loop {
            match self.poll().await {
                Ok(content) => {
                    if failing {
                        info!(source = %self.settings.name, "status poll works again");
                    }
                    failing = false;
                    let batch = Batch::Snapshot {
                        settings: self.settings.clone(),
                        label: label.clone(),
                        content,
                        received: Utc::now(),
                    };
                    if self.tx.send(batch).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(source = %self.settings.name, error = %e, "status poll failed; retrying each interval");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }

    async fn poll(&mut self) -> anyhow::Result<Vec<u8>> {
        if let Some(path) = &self.path {
            return Ok(tokio::fs::read(path).await?);
        }
        let command = self.command.as_ref().expect("path or command");
        let (program, args) = command
            .split_first()
            .ok_or_else(|| anyhow::anyhow!("empty command"))?;
        let started = Utc::now();
        // A command that hangs is killed at the next poll's time, so one
        // stuck `wg` does not stop the polling.
        let run = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let output = tokio::time::timeout(self.interval.max(MIN_COMMAND_TIME), run)
            .await
            .map_err(|_| anyhow::anyhow!("{} did not finish in time", command.join(" ")))?
            .map_err(|e| anyhow::anyhow!("cannot run {program}: {e}"))?;
        if !output.status.success() {
            anyhow::bail!(
                "{} exited with {}: {}",
                command.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        let mut content = format!(
            "# poll {}\n",
            started.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
        .into_bytes();
        content.extend_from_slice(&output.stdout);
        Ok(content)
    }
}
