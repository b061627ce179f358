//! Pulling lines from Grafana Loki, where logs are already centralised.
//!
//! The source asks `query_range` for the lines after its cursor, oldest
//! first, and hands them to the writer with the cursor after them; the
//! writer commits both together. Lines Loki stores with the very same
//! nanosecond as the cursor after a pull are not asked for again: Loki
//! orders each stream by time, so they came in that pull. When Loki is
//! down the source waits, doubling the wait up to a minute, and says so.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{Batch, BatchSender, Message};
use crate::ingest::SourceSettings;

/// Lines asked for in one request.
const LIMIT: usize = 1_000;
/// How far back a source without a cursor starts.
const FIRST_LOOK_BACK: Duration = Duration::from_secs(3600);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
    pub interval: Duration,
    /// The cursor committed by the writer, in ns, if any.
    pub cursor: Option<i64>,
    pub tx: BatchSender,
    pub stop: watch::Receiver<bool>,
}

/// The checkpoint key of a Loki source.
pub fn checkpoint_key(name: &str) -> String {
    format!("loki:{name}")
}

impl LokiSource {
    pub async fn run(mut self) {
        let client = match reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                warn!(source = %self.settings.name, error = %e, "cannot build the HTTP client");
                return;
            }
        };
        let endpoint = format!("{}/loki/api/v1/query_range", self.url.trim_end_matches('/'));
        let mut cursor = self.cursor.unwrap_or_else(|| {
            let start =
                Utc::now() - chrono::Duration::from_std(FIRST_LOOK_BACK).unwrap_or_default();
            start.timestamp_nanos_opt().unwrap_or(0)
        });
        let mut backoff = Duration::from_secs(1);
        let mut healthy = true;
        info!(source = %self.settings.name, url = %self.url, "pulling from Loki");
        loop {
            let wait = match self.pull(&client, &endpoint, cursor).await {
                Ok((lines, next)) => {
                    if !healthy {
                        info!(source = %self.settings.name, "Loki answers again");
                        healthy = true;
                    }
                    backoff = Duration::from_secs(1);
                    let full = lines.len() >= LIMIT;
                    if !lines.is_empty() {
                        cursor = next;
                        let batch = Batch::Pulled {
                            settings: self.settings.clone(),
                            key: checkpoint_key(&self.settings.name),
                            messages: lines,
                            cursor,
                        };
                        if self.tx.send(batch).await.is_err() {
                            return;
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
                    warn!(source = %self.settings.name, error = %e, retry_in = ?backoff, "Loki unreachable");
                    healthy = false;
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.changed() => return,
            }
        }
    }

    /// One request: the lines after `cursor`, oldest first, and the new
    /// cursor.
    async fn pull(
        &mut self,
        client: &reqwest::Client,
        endpoint: &str,
        cursor: i64,
    ) -> anyhow::Result<(Vec<Message>, i64)> {
        let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let response = client
            .get(endpoint)
            .query(&[
                ("query", self.query.as_str()),
                ("start", &(cursor + 1).to_string()),
                ("end", &now.to_string()),
                ("limit", &LIMIT.to_string()),
                ("direction", "forward"),
            ])
            .send()
            .await?
            .error_for_status()?;
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
        lines.sort_by_key(|(ts, _)| *ts);
        lines.truncate(LIMIT);
        let next = lines.last().map_or(cursor, |(ts, _)| *ts);
        let messages = lines
            .into_iter()
            .map(|(ts, line)| Message {
                bytes: line.into_bytes(),
                received: DateTime::from_timestamp_nanos(ts),
                truncated: false,
            })
            .collect();
        Ok((messages, next))
    }
}
