//! Pulling lines from Grafana Loki, where logs are already centralised.
//!
//! The source asks `query_range` for the lines after its cursor, oldest
//! first, and hands them to the writer with the cursor after them; the
//! writer commits both together, so a restart asks for the lines after
//! the last committed one and stores nothing twice. When a page is full,
//! the lines of its last nanosecond are left for the next page (more of
//! them may be beyond the limit), so the cursor never cuts a nanosecond in
//! two; only a single nanosecond holding more lines than a page cannot be
//! read whole. Lines are asked for only once they are a few seconds old,
//! so that a line shipped late behind a newer one is not skipped. When
//! Loki is down or answers an error the source waits, doubling the wait
//! up to a minute, and says so.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tracing::{debug, info, warn};

use super::{Batch, BatchSender, Message, StopSignal};
use crate::ingest::SourceSettings;

/// Lines asked for in one request.
const LIMIT: usize = 1_000;
/// How far back a source without a cursor starts.
const FIRST_LOOK_BACK: Duration = Duration::from_secs(3600);
/// The first wait after a failed request; it doubles at each failure...
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// ...up to this, so a Loki back after a long outage is seen within it.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long one request may take before it counts as a failure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines younger than this are left for a later pull. Shippers (Promtail,
/// Alloy) push each stream in batches a second or so apart, so a line of
/// one stream can reach Loki after a newer line of another; a cursor
/// already past it would never ask for it again. A line that reaches Loki
/// later than this after its timestamp (a shipper retrying through an
/// outage) is still missed.
const SETTLE: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Response {
    status: String,
    data: Data,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<StreamResult>,
}

#[derive(Deserialize)]
struct StreamResult {
    /// `[timestamp in ns as text, line]` pairs.
    values: Vec<(String, String)>,
}

/// One `kind = "loki"` source.
pub struct LokiSource {
    pub settings: Arc<SourceSettings>,
    pub url: String,
    pub query: String,
    /// The wait between two pulls that found the end of what Loki holds.
    pub interval: Duration,
    /// The cursor the writer committed with the lines before it (ns since
    /// the epoch), if any: where this run starts.
    pub cursor: Option<i64>,
    pub tx: BatchSender,
    pub stop: StopSignal,
}

/// The checkpoint key of a Loki source.
pub fn checkpoint_key(name: &str) -> String {
    format!("loki:{name}")
}

impl LokiSource {
    /// Pulls until stopped. An error means the source could not start.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let endpoint = format!("{}/loki/api/v1/query_range", self.url.trim_end_matches('/'));
        let mut cursor = self.cursor.unwrap_or_else(|| {
            let start =
                Utc::now() - chrono::Duration::from_std(FIRST_LOOK_BACK).unwrap_or_default();
            start.timestamp_nanos_opt().unwrap_or(0)
        });
        let mut backoff = FIRST_BACKOFF;
        let mut healthy = true;
        info!(source = %self.settings.name, url = %self.url, cursor, "pulling from Loki");
        loop {
            let wait = match self.pull(&client, &endpoint, cursor).await {
                Ok((lines, next, full)) => {
                    if !healthy {
                        info!(source = %self.settings.name, "Loki answers again");
                        healthy = true;
                    }
                    backoff = FIRST_BACKOFF;
                    debug!(source = %self.settings.name, lines = lines.len(), cursor = next, "pulled");
                    if !lines.is_empty() {
                        cursor = next;
                        let batch = Batch::Pulled {
                            settings: self.settings.clone(),
                            key: checkpoint_key(&self.settings.name),
                            messages: lines,
                            cursor,
                        };
                        if self.tx.send(batch).await.is_err() {
                            return Ok(());
                        }
                    }
                    // A full page: there is more right now.
                    if full {
                        Duration::ZERO
                    } else {
                        self.interval
                    }
                }
                Err(e) => {
                    warn!(source = %self.settings.name, error = %format!("{e:#}"), retry_in = ?backoff, "Loki request failed; retrying");
                    healthy = false;
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.changed() => return Ok(()),
            }
        }
    }

    /// One request: the lines after `cursor`, oldest first, the new
    /// cursor, and whether the page was full (more is waiting).
    async fn pull(
        &mut self,
        client: &reqwest::Client,
        endpoint: &str,
        cursor: i64,
    ) -> anyhow::Result<(Vec<(i64, Message)>, i64, bool)> {
        let settled = Utc::now() - chrono::Duration::from_std(SETTLE).unwrap_or_default();
        let end = settled.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let response = client
            .get(endpoint)
            .query(&[
                ("query", self.query.as_str()),
                ("start", &(cursor + 1).to_string()),
                ("end", &end.to_string()),
                ("limit", &LIMIT.to_string()),
                ("direction", "forward"),
            ])
            .send()
            .await?;
        // Loki says why in the body of an error (a bad query, an
        // ingester down): that text is what the operator needs.
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let text: String = text.trim().chars().take(300).collect();
            anyhow::bail!("Loki answered {status}: {text}");
        }
        let body: Response = response.json().await?;
        if body.status != "success" || body.data.result_type != "streams" {
            anyhow::bail!(
                "Loki answered status {:?} with {:?}",
                body.status,
                body.data.result_type
            );
        }
        let mut lines: Vec<(i64, String)> = Vec::new();
        for stream in body.data.result {
            for (ts, line) in stream.values {
                let ts: i64 = ts
                    .parse()
                    .map_err(|_| anyhow::anyhow!("bad Loki timestamp {ts:?}"))?;
                lines.push((ts, line));
            }
        }
        // Oldest first, across streams; a full page gives back the lines
        // of its last nanosecond, unless they are all it holds.
        lines.sort_by_key(|(ts, _)| *ts);
        lines.truncate(LIMIT);
        let full = lines.len() >= LIMIT;
        if full {
            let last = lines.last().map(|(ts, _)| *ts);
            let before_last = lines.iter().rposition(|(ts, _)| Some(*ts) != last);
            if let Some(i) = before_last {
                lines.truncate(i + 1);
            }
        }
        let next = lines.last().map_or(cursor, |(ts, _)| *ts);
        let messages = lines
            .into_iter()
            .map(|(ts, line)| {
                let message = Message {
                    bytes: line.into_bytes(),
                    received: DateTime::from_timestamp_nanos(ts),
                    truncated: false,
                };
                (ts, message)
            })
            .collect();
        Ok((messages, next, full))
    }
}
