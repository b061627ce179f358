//! Polling a status: an OpenVPN status file, or the output of a command
//! such as `wg show all dump`.
//!
//! Each poll is one snapshot. WireGuard's dump carries no time, so the
//! poller writes `# poll <time>` before it, as the corpus files do; a
//! snapshot the store already holds (the same content) adds nothing.
//!
//! OpenVPN rewrites its status file in place, so a poll can read the
//! first part of a new snapshot only. Read as a whole, that part would
//! say the clients past the cut have left; so an OpenVPN status file is
//! read only when it ends with its `END` line, and read again a moment
//! later when it does not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use tracing::{info, warn};

use vpnledger_parsers::openvpn::status::is_status_file;

use super::{Batch, BatchSender, StopSignal};
use crate::ingest::SourceSettings;

/// The least time a polled command is given before it is killed.
const MIN_COMMAND_TIME: Duration = Duration::from_secs(10);
/// How often, and how far apart, a status file caught half-written is
/// read again before the poll is skipped: OpenVPN writes it in
/// milliseconds.
const INCOMPLETE_READS: usize = 3;
const INCOMPLETE_WAIT: Duration = Duration::from_millis(100);

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
        let mut incomplete = false;
        loop {
            match self.poll().await {
                Ok(None) => {
                    if !incomplete {
                        warn!(source = %self.settings.name, status = %label, "status file incomplete at each read; poll skipped");
                    }
                    incomplete = true;
                }
                Ok(Some(content)) => {
                    incomplete = false;
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

    /// One snapshot, or `None` when the status file was half-written at
    /// each read.
    async fn poll(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        if let Some(path) = &self.path {
            for attempt in 0..INCOMPLETE_READS {
                if attempt > 0 {
                    tokio::time::sleep(INCOMPLETE_WAIT).await;
                }
                let content = tokio::fs::read(path).await?;
                if is_complete(&content) {
                    return Ok(Some(content));
                }
            }
            return Ok(None);
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
        Ok(Some(content))
    }
}

/// Whether a status file is whole: an OpenVPN status file (any version)
/// ends with a line `END`; other files cannot tell and count as whole.
fn is_complete(content: &[u8]) -> bool {
    let text = String::from_utf8_lossy(content);
    let first = text.lines().next().unwrap_or_default();
    if !is_status_file(first) {
        return true;
    }
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(str::trim)
        == Some("END")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_openvpn_status_file_is_whole_only_with_its_end_line() {
        let whole = "TITLE,OpenVPN 2.6.9\nTIME,2024-06-18 10:30:00,1718699400\nEND\n";
        assert!(is_complete(whole.as_bytes()));
        assert!(is_complete(b"OpenVPN CLIENT LIST\nUpdated,x\nEND\r\n"));
        assert!(!is_complete(&whole.as_bytes()[..whole.len() - 4]));
        assert!(!is_complete(b"TITLE\tOpenVPN 2.6.9\nHEADER\tCLIENT_LIST"));
        assert!(is_complete(b"wg0\tkey\t(none)\n"));
    }
}
