//! The HTTP API and the web page, served by `run` on `[api] listen`.
//!
//! They show the same data as the command line, read from the store on
//! each request (SQLite's WAL lets readers work beside the writer):
//!
//! - `GET /api/health`: `{"status": "ok"}`, the store's counts and what
//!   the daemon stored since it started;
//! - `GET /api/sessions?user=&site=&since=&until=`: as `sessions --json`;
//! - `GET /api/reports/{id}`: as `reports show ID --json`;
//! - `GET /api/reports/{id}/prefill`: as `reports prefill ID --json`;
//! - `GET /api/audit?since=&until=&site=&technician=&kind=&severity=`: as
//!   `audit --json`;
//! - `GET /`: a page with the open sessions, the latest sessions and the
//!   audit, for people.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use crate::config::Config;
use crate::daemon::Shared;
use crate::inventory::Inventory;
use crate::output::local_time;
use crate::reconcile::{self, AuditFilter, Rules, Severity};
use crate::sessions::{self, SessionFilter};
use crate::store::Store;
use crate::{reports, BadInput};

/// Starts the server; returns its task.
pub async fn serve(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for the API: {e}"))?;
    info!(address = %listener.local_addr()?, "serving the API and web page");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(shared)).await {
            tracing::error!(error = %e, "the API server stopped");
        }
    }))
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/health", get(health))
        .route("/api/sessions", get(list_sessions))
        .route("/api/reports/{id}", get(show_report))
        .route("/api/reports/{id}/prefill", get(prefill))
        .route("/api/audit", get(audit))
        .fallback(not_found)
        .with_state(shared)
}

/// A path the API does not serve: 404, with a JSON body as every error.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        format!("no such path: {}", uri.path()),
    )
}

/// A query string that does not read (a parameter given twice, a value of
/// the wrong kind): 400, with a JSON body as every error.
impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError(StatusCode::BAD_REQUEST, e.body_text())
    }
}

/// An error as the API answers it: 400 for bad input, 404 for an unknown
/// id, 500 otherwise, with a JSON body saying why.
struct ApiError(StatusCode, String);

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        match e.downcast_ref::<BadInput>() {
            // With what it was about (`since: ...`).
            Some(_) => ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")),
            None => ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

/// Runs a store read off the async threads.
async fn read<T, F>(shared: &Arc<Shared>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&Store, &Config) -> anyhow::Result<T> + Send + 'static,
{
    let db = shared.db.clone();
    let config = shared.config.read().expect("config lock").clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&db)?;
        f(&store, &config)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(ApiError::from)
}

/// A query's `since` and `until`, read as the command line reads them.
fn period_param(
    since: Option<&str>,
    until: Option<&str>,
    config: &Config,
) -> anyhow::Result<crate::Period> {
    crate::period_range(since, until, config.defaults.timezone, ["since", "until"])
}

async fn health(State(shared): State<Arc<Shared>>) -> Result<Json<Value>, ApiError> {
    read(&shared, |store, _| {
        let count = |table: &str| -> anyhow::Result<i64> {
            Ok(store.conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
        };
        Ok(Json(json!({
            "status": "ok",
            "records": count("records")?,
            "unparsed": count("unparsed")?,
            "sessions": count("sessions")?,
            "open_sessions": store.conn.query_row("SELECT count(*) FROM sessions WHERE end IS NULL", [], |r| r.get::<_, i64>(0))?,
        })))
    })
    .await
    .map(|Json(mut body)| {
        // What this daemon did since it started, beside what the store holds.
        let c = &shared.counters;
        body["daemon"] = json!({
            "sources": c.sources_running.load(Ordering::Relaxed),
            "records_stored": c.records.load(Ordering::Relaxed),
            "unparsed_stored": c.unparsed.load(Ordering::Relaxed),
            "batches": c.batches.load(Ordering::Relaxed),
            "source_failures": c.source_failures.load(Ordering::Relaxed),
        });
        Json(body)
    })
}

#[derive(Deserialize)]
struct SessionQuery {
    user: Option<String>,
    site: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

async fn list_sessions(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<SessionQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    read(&shared, move |store, config| {
        let (since, until) = period_param(q.since.as_deref(), q.until.as_deref(), config)?;
        let filter = SessionFilter {
            user: q.user,
            site: q.site,
            since,
            until,
        };
        Ok(Json(serde_json::to_value(sessions::load(
            &store.conn,
            &filter,
        )?)?))
    })
    .await
}

async fn show_report(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(&shared, move |store, _| match reports::load(store, &id)? {
        Some(r) => Ok(Some(serde_json::to_value(r.report)?)),
        None => Ok(None),
    })
    .await?
    .map(Json)
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no such report".into()))
}

async fn prefill(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    read(&shared, move |store, config| {
        let Some(stored) = reports::load(store, &id)? else {
            return Ok(None);
        };
        let all = sessions::load(&store.conn, &SessionFilter::default())?;
        let p = reconcile::prefill(
            &store.conn,
            &stored.report,
            &all,
            &Inventory::from_config(config),
            &Rules::from_config(&config.reconcile),
        )?;
        Ok(Some(reconcile::prefill_json(&p)))
    })
    .await?
    .map(Json)
    .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, "no such report".into()))
}

#[derive(Deserialize)]
struct AuditQuery {
    since: Option<String>,
    until: Option<String>,
    site: Option<String>,
    technician: Option<String>,
    kind: Option<String>,
    severity: Option<String>,
}

async fn audit(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query?;
    read(&shared, move |store, config| {
        if let Some(k) = q.kind.as_deref() {
            if !crate::reconcile::KINDS.contains(&k) {
                return Err(BadInput(format!(
                    "kind {k:?} is not one of {}",
                    crate::reconcile::KINDS.join(", ")
                ))
                .into());
            }
        }
        let (since, until) = period_param(q.since.as_deref(), q.until.as_deref(), config)?;
        let filter = AuditFilter {
            since,
            until,
            site: q.site,
            technician: q.technician,
            kind: q.kind,
            severity: q
                .severity
                .as_deref()
                .map(|s| {
                    Severity::parse(s).ok_or_else(|| {
                        BadInput(format!("severity {s:?} is not info, warning or critical"))
                    })
                })
                .transpose()?,
        };
        let found = run_audit(store, config)?;
        Ok(Json(serde_json::to_value(
            found
                .into_iter()
                .filter(|d| filter.keeps(d))
                .collect::<Vec<_>>(),
        )?))
    })
    .await
}

fn run_audit(store: &Store, config: &Config) -> anyhow::Result<Vec<reconcile::Discrepancy>> {
    let all_reports = reports::load_all(store)?;
    let all_sessions = sessions::load(&store.conn, &SessionFilter::default())?;
    reconcile::audit(
        &store.conn,
        &all_reports,
        &all_sessions,
        &Inventory::from_config(config),
        &Rules::from_config(&config.reconcile),
        Utc::now(),
    )
}

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vpnledger</title>
<meta http-equiv="refresh" content="30">
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; margin-bottom: 2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
.open { color: #0a6; font-weight: bold; }
.critical { color: #b00; font-weight: bold; }
.warning { color: #a60; }
</style>
</head>
<body>
<h1>vpnledger</h1>
<p>{{ sessions_total }} sessions, {{ open|length }} open; {{ findings|length }} discrepancies. Times in {{ zone }}.</p>
<h2>Open sessions</h2>
{% if open %}<table>
<tr><th>user</th><th>technician</th><th>since</th><th>gateway</th><th>tunnel</th><th>virtual ip</th><th>remote ip</th><th>devices</th></tr>
{% for s in open %}<tr><td>{{ s.user }}</td><td>{{ s.technician or "" }}</td><td class="open">{{ s.start }}</td><td>{{ s.gateway }}</td><td>{{ s.tunnel }}</td><td>{{ s.virtual_ip or "" }}</td><td>{{ s.remote_ip or "" }}</td><td>{{ s.devices }}</td></tr>
{% endfor %}</table>{% else %}<p>None.</p>{% endif %}
<h2>Latest sessions</h2>
<table>
<tr><th>user</th><th>start</th><th>end</th><th>reason</th><th>tunnel</th><th>sites</th><th>devices</th></tr>
{% for s in latest %}<tr><td>{{ s.user }}</td><td>{{ s.start }}</td><td>{{ s.end }}</td><td>{{ s.reason }}</td><td>{{ s.tunnel }}</td><td>{{ s.sites }}</td><td>{{ s.devices }}</td></tr>
{% endfor %}</table>
<h2>Audit</h2>
{% if findings %}<table>
<tr><th>severity</th><th>kind</th><th>report</th><th>site</th><th>detail</th><th>explained</th></tr>
{% for d in findings %}<tr><td class="{{ d.severity }}">{{ d.severity }}</td><td>{{ d.kind }}</td><td>{{ d.report or "" }}</td><td>{{ d.site or "" }}</td><td>{{ d.detail }}</td><td>{{ d.resolution or "" }}</td></tr>
{% endfor %}</table>{% else %}<p>No discrepancy.</p>{% endif %}
</body>
</html>
"#;

async fn page(State(shared): State<Arc<Shared>>) -> Result<Html<String>, ApiError> {
    read(&shared, |store, config| {
        let zone = config.defaults.timezone;
        let all = sessions::load(&store.conn, &SessionFilter::default())?;
        let devices = |s: &sessions::Session| {
            s.devices.iter().map(|d| d.name.clone().unwrap_or_else(|| d.ip.clone())).collect::<Vec<_>>().join(", ")
        };
        let row = |s: &sessions::Session| {
            json!({
                "user": s.user, "technician": s.technician, "gateway": s.gateway, "tunnel": s.tunnel,
                "virtual_ip": s.virtual_ip, "remote_ip": s.remote_ip, "devices": devices(s),
                "start": local_time(s.start, zone),
                "end": s.end.map_or_else(|| "open".to_owned(), |e| local_time(e, zone)),
                "reason": s.end_reason.clone().unwrap_or_default(),
                "sites": s.sites.join(", "),
            })
        };
        let open: Vec<Value> = all.iter().filter(|s| s.end.is_none()).map(row).collect();
        let latest: Vec<Value> = all.iter().rev().take(50).map(row).collect();
        let findings: Vec<Value> = run_audit(store, config)?
            .into_iter()
            .map(|d| {
                json!({
                    "severity": d.severity.as_str(), "kind": d.kind, "report": d.report, "site": d.site,
                    "detail": d.detail,
                    "resolution": d.resolution.map(|r| format!("{} ({}): {}", r.by, r.at, r.note)),
                })
            })
            .collect();
        let mut env = minijinja::Environment::new();
        env.add_template("page.html", PAGE)?;
        let html = env.get_template("page.html")?.render(minijinja::context! {
            sessions_total => all.len(), open => open, latest => latest, findings => findings, zone => zone.name(),
        })?;
        Ok(Html(html))
    })
    .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    /// Answers one GET on a fresh, empty store: status and JSON body.
    async fn get(dir: &tempfile::TempDir, uri: &str) -> (StatusCode, Value) {
        let db = dir.path().join("api.db");
        drop(Store::open(&db).unwrap());
        let shared = Arc::new(Shared::new(Config::default(), db));
        let response = router(shared)
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn queries_are_checked_as_the_command_line_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let (status, body) = get(&dir, "/api/sessions?since=2024-03-13&until=2024-03-12").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"],
            "since 2024-03-13 is later than until 2024-03-12: the period would be empty"
        );
        let (status, body) = get(&dir, "/api/audit?since=2024-03-13&until=2024-03-12").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"],
            "since 2024-03-13 is later than until 2024-03-12: the period would be empty"
        );
        let (status, body) = get(&dir, "/api/sessions?until=last%20tuesday").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["error"],
            "until: \"last tuesday\" is neither RFC 3339 nor YYYY-MM-DD"
        );
        let (status, body) = get(&dir, "/api/audit?kind=guess").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .starts_with("kind \"guess\" is not one of "),
            "{body}"
        );
        let (status, body) = get(&dir, "/api/reports/R-0").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such report");
        // The same day as both bounds is that whole day.
        let (status, body) = get(&dir, "/api/sessions?since=2024-03-12&until=2024-03-12").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([]));
        let (status, body) = get(&dir, "/api/sessions?since=2024-03-12&since=2024-03-13").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("duplicate field `since`"),
            "{body}"
        );
        let (status, body) = get(&dir, "/api/nothing").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"], "no such path: /api/nothing");
        let (status, body) = get(&dir, "/api/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
        assert_eq!(body["records"], 0);
    }
}
