//! The sessionizer: from a gateway's events to its sessions.
//!
//! Sessions are derived state: they are rebuilt from the stored events of
//! a gateway, in time order, whenever new lines of that gateway arrive. So
//! an open session stays open in the store until a later line (from the
//! same file grown, or another source) closes it, and re-reading the same
//! evidence always gives the same sessions with the same ids.
//!
//! The rules, from DESIGN.md:
//! - one session per connection as the gateway saw it (OpenVPN: per real
//!   `ip:port` instance); renegotiations are not new sessions;
//! - the end is the gateway's end line (the exit message when the client
//!   sent one); a restart or a status snapshot that stops listing a session
//!   ends it by inference; otherwise it is open;
//! - evidence of one connection from the log and from status snapshots
//!   (same identity, real address and start) is one session;
//! - devices are the internal destinations that the session's virtual IP
//!   reached on the same gateway while the session held it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{params, Connection};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::inventory::{normalize_identity, Inventory};
use crate::store::{format_utc, from_micros, Store, RUN_MICROS};

/// How far apart a status snapshot's "connected since" and a log's start
/// may be and still be the same connection: the status file counts from
/// the first packet, the log from the end of authentication.
const SAME_START_WINDOW: i64 = 120_000_000;

/// How long a username logged by an auth helper without a client prefix
/// stays the name of the next `UNDEF` client.
const AUTH_HELPER_WINDOW: i64 = 10_000_000;

/// A device reached: an internal destination of a session's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeviceReached {
    pub ip: String,
    pub name: Option<String>,
    pub ports: Vec<String>,
}

/// A session as the store and the interfaces show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Session {
    pub id: String,
    pub user: String,
    pub technician: Option<String>,
    #[serde(serialize_with = "utc")]
    pub start: DateTime<Utc>,
    #[serde(serialize_with = "utc_opt")]
    pub end: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
    pub end_inferred: bool,
    pub end_detail: Option<String>,
    pub gateway: String,
    pub tunnel: String,
    pub sites: Vec<String>,
    pub virtual_ip: Option<String>,
    pub remote_ip: Option<String>,
    pub remote_port: Option<u16>,
    pub bytes_in: Option<u64>,
    pub bytes_out: Option<u64>,
    pub devices: Vec<DeviceReached>,
    /// Connections to public addresses: counted, not listed.
    pub public_destinations: u64,
    pub continues: Option<String>,
    /// The records behind the session: start, address, end, status.
    #[serde(skip)]
    pub evidence: Vec<i64>,
    #[serde(skip)]
    pub start_record: Option<i64>,
    #[serde(skip)]
    pub end_record: Option<i64>,
}

fn utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_utc(*t))
}

fn utc_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_utc(*t)),
        None => s.serialize_none(),
    }
}

/// One stored event, as the sessionizer reads it.
#[derive(Debug, Clone)]
struct StoredEvent {
    record_id: i64,
    ts: i64,
    kind: String,
    user: Option<String>,
    instance: Option<String>,
    remote_ip: Option<String>,
    remote_port: Option<u16>,
    virtual_ip: Option<String>,
    tunnel: Option<String>,
    reason: Option<String>,
    detail: Option<String>,
    bytes_in: Option<i64>,
    bytes_out: Option<i64>,
    since: Option<i64>,
    duration: Option<i64>,
    correlation: Option<String>,
}

/// A session being built.
#[derive(Debug, Clone)]
struct Draft {
    user: String,
    instance: String,
    start: i64,
    end: Option<i64>,
    end_reason: Option<String>,
    end_inferred: bool,
    end_detail: Option<String>,
    tunnel: Option<String>,
    virtual_ip: Option<String>,
    remote_ip: Option<String>,
    remote_port: Option<u16>,
    bytes_in: Option<i64>,
    bytes_out: Option<i64>,
    evidence: Vec<i64>,
    start_record: i64,
    end_record: Option<i64>,
    /// The time of the last status snapshot that listed it.
    listed_at: Option<i64>,
}

impl Draft {
    fn close(
        &mut self,
        ts: i64,
        reason: &str,
        inferred: bool,
        detail: Option<String>,
        record: i64,
    ) {
        self.end = Some(ts);
        self.end_reason = Some(reason.to_owned());
        self.end_inferred = inferred;
        self.end_detail = detail;
        self.end_record = Some(record);
        self.evidence.push(record);
    }
}

/// Options of the sessionizer that come from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SessionRules {
    /// A reconnection this soon after an end continues the earlier session.
    pub reconnect_grace: Duration,
}

/// Rebuilds the sessions of the given gateways and stores them.
pub fn rebuild(
    store: &mut Store,
    inventory: &Inventory,
    rules: SessionRules,
    gateways: impl IntoIterator<Item = String>,
) -> anyhow::Result<usize> {
    let mut count = 0;
    for gateway in gateways {
        let events = load_events(&store.conn, &gateway)?;
        let drafts = sessionize(&events);
        let mut sessions: Vec<Session> = drafts
            .into_iter()
            .map(|d| finish(&gateway, d, inventory))
            .collect();
        for session in &mut sessions {
            attach_devices(&store.conn, &gateway, session, inventory)?;
        }
        link_reconnections(&mut sessions, rules.reconnect_grace);
        count += sessions.len();
        save(store, &gateway, &sessions)?;
    }
    Ok(count)
}

/// Gateways whose stored events are newer than their sessions: a run that
/// stopped between a commit and the rebuild after it.
pub fn stale_gateways(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT gateway FROM stale_sessions ORDER BY gateway")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every gateway that has events, to rebuild all sessions.
pub fn all_gateways(conn: &Connection) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT DISTINCT gateway FROM events ORDER BY gateway")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_events(conn: &Connection, gateway: &str) -> anyhow::Result<Vec<StoredEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT record_id, ts, kind, user, instance, remote_ip, remote_port, virtual_ip, tunnel,
                reason, detail, bytes_in, bytes_out, since, duration, correlation
         FROM events WHERE gateway = ?1 AND kind != 'auth_failed' ORDER BY ts, record_id",
    )?;
    let rows = stmt.query_map([gateway], |r| {
        Ok(StoredEvent {
            record_id: r.get(0)?,
            ts: r.get(1)?,
            kind: r.get(2)?,
            user: r.get(3)?,
            instance: r.get(4)?,
            remote_ip: r.get(5)?,
            remote_port: r.get(6)?,
            virtual_ip: r.get(7)?,
            tunnel: r.get(8)?,
            reason: r.get(9)?,
            detail: r.get(10)?,
            bytes_in: r.get(11)?,
            bytes_out: r.get(12)?,
            since: r.get(13)?,
            duration: r.get(14)?,
            correlation: r.get(15)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// How long after its last handshake a WireGuard peer's key is dropped:
/// with no newer handshake the peer cannot be connected any more.
const WIREGUARD_KEY_LIFETIME: i64 = 180_000_000;

/// How close two end lines of one instance are to be the same end
/// (strongSwan logs `received DELETE` and `deleting IKE_SA` together).
const SAME_END_WINDOW: i64 = 5_000_000;

/// What the sessionizer knows of one WireGuard peer between polls.
#[derive(Debug, Default)]
struct Peer {
    /// Counters at the last poll: the baseline of a session that starts
    /// at the next handshake.
    last_counters: Option<(i64, i64)>,
    /// The session this peer's handshakes belong to: its place in `done`
    /// once closed, so later polls that still show its last handshake
    /// update its bytes.
    session: Option<PeerSession>,
}

#[derive(Debug)]
struct PeerSession {
    /// Instance key in `open` while open; index in `done` once closed.
    closed_at: Option<usize>,
    last_handshake: i64,
    baseline: (i64, i64),
}

/// The sessionizer's state while it walks one gateway's events.
#[derive(Default)]
struct Sessionizer {
    done: Vec<Draft>,
    /// Open sessions by instance key.
    open: BTreeMap<String, Draft>,
    /// Identities and addresses learned before their session started, by
    /// the key the later start line refers to (OpenVPN's real address, a
    /// charon thread).
    pending: HashMap<String, Pending>,
    /// The last username an auth helper logged without a prefix.
    helper_username: Option<(i64, String)>,
    peers: HashMap<String, Peer>,
}

#[derive(Debug, Default, Clone)]
struct Pending {
    user: Option<String>,
    virtual_ip: Option<String>,
}

/// The heart of it: one pass over a gateway's events in time order.
fn sessionize(events: &[StoredEvent]) -> Vec<Draft> {
    let mut state = Sessionizer::default();
    for e in events {
        state.apply(e);
    }
    let mut done = state.done;
    done.extend(state.open.into_values());
    done.sort_by(|a, b| (a.start, &a.user).cmp(&(b.start, &b.user)));
    done
}

impl Sessionizer {
    fn apply(&mut self, e: &StoredEvent) {
        let instance = e.instance.clone().unwrap_or_default();
        match e.kind.as_str() {
            "user_authenticated" => {
                let user = e.user.clone().unwrap_or_default();
                match &e.instance {
                    Some(i) => {
                        if let Some(d) = self.open.get_mut(i).filter(|d| d.user == "UNDEF") {
                            d.user = user.clone();
                            d.evidence.push(e.record_id);
                        }
                        self.pending.entry(i.clone()).or_default().user = Some(user);
                    }
                    None => self.helper_username = Some((e.ts, user)),
                }
            }
            "session_started" => self.start(e, instance),
            "address_assigned" => match self.open.get_mut(&instance) {
                Some(d) => {
                    if d.virtual_ip.is_none() {
                        d.virtual_ip = e.virtual_ip.clone();
                        d.evidence.push(e.record_id);
                    }
                }
                None => {
                    let pending = self.pending.entry(instance).or_default();
                    pending.virtual_ip = e.virtual_ip.clone();
                    if pending.user.is_none() {
                        pending.user = e.user.clone();
                    }
                }
            },
            "session_ended" => self.end(e, instance),
            "bytes_counted" => self.count_bytes(e),
            "client_replaced" => {
                let user = e.user.clone().unwrap_or_default();
                let replaced: Vec<String> = self
                    .open
                    .iter()
                    .filter(|(key, d)| **key != instance && d.user == user)
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in replaced {
                    self.close(&key, e.ts, "replaced", false, e.detail.clone(), e.record_id);
                }
            }
            "gateway_stopped" | "gateway_started" => {
                let keys: Vec<String> = self.open.keys().cloned().collect();
                for key in keys {
                    self.close(
                        &key,
                        e.ts,
                        "gateway_restart",
                        true,
                        e.detail.clone(),
                        e.record_id,
                    );
                }
            }
            "status_client" => self.status_client(e),
            "status_snapshot" => {
                // Sessions a status file listed before but not in this
                // snapshot have left.
                let gone: Vec<String> = self
                    .open
                    .iter()
                    .filter(|(_, d)| d.listed_at.is_some_and(|at| at < e.ts))
                    .map(|(key, _)| key.clone())
                    .collect();
                for key in gone {
                    let detail = Some("no longer listed in the status file".to_owned());
                    self.close(&key, e.ts, "left_status", true, detail, e.record_id);
                }
            }
            "peer_status" => self.peer_status(e, instance),
            _ => {}
        }
    }

    /// Closes the open session `key` and moves it to `done`.
    fn close(
        &mut self,
        key: &str,
        ts: i64,
        reason: &str,
        inferred: bool,
        detail: Option<String>,
        record: i64,
    ) -> Option<usize> {
        let mut d = self.open.remove(key)?;
        d.close(ts, reason, inferred, detail, record);
        self.done.push(d);
        Some(self.done.len() - 1)
    }

    fn start(&mut self, e: &StoredEvent, instance: String) {
        let mut user = e.user.clone().unwrap_or_default();
        let mut virtual_ip = e.virtual_ip.clone();

        // What earlier lines of the same negotiation said of the person:
        // their correlation key (a charon thread), or the instance itself
        // (OpenVPN's address, for `UNDEF` clients).
        let from_correlation = e.correlation.as_ref().and_then(|c| self.pending.remove(c));
        let from_instance = self.pending.remove(&instance);
        if let Some(p) = &from_correlation {
            if let Some(u) = &p.user {
                user = u.clone();
            }
            virtual_ip = virtual_ip.or(p.virtual_ip.clone());
        }
        if user == "UNDEF" {
            if let Some(name) = from_instance.as_ref().and_then(|p| p.user.clone()) {
                user = name;
            } else if let Some((at, name)) = &self.helper_username {
                if e.ts - at <= AUTH_HELPER_WINDOW {
                    user = name.clone();
                }
            }
        }
        if virtual_ip.is_none() {
            virtual_ip = from_instance.and_then(|p| p.virtual_ip);
        }

        if let Some(existing) = self.open.get_mut(&instance) {
            if existing.user == user {
                // The same connection logged again: not a new one.
                existing.evidence.push(e.record_id);
                return;
            }
            // Another identity on the same instance: the old one is gone.
            self.close(&instance, e.ts, "replaced", true, None, e.record_id);
        }

        // An IKE rekey or reauthentication: a new IKE_SA for the same
        // person, address and tunnel continues the session under a new key.
        if e.correlation.is_some() {
            let same = self
                .open
                .iter()
                .find(|(_, d)| d.user == user && d.remote_ip == e.remote_ip && d.tunnel == e.tunnel)
                .map(|(k, _)| k.clone());
            if let Some(old_key) = same {
                let mut d = self.open.remove(&old_key).expect("present");
                d.evidence.push(e.record_id);
                d.instance = instance.clone();
                self.open.insert(instance, d);
                return;
            }
        }

        self.open.insert(
            instance.clone(),
            Draft {
                user,
                instance,
                start: e.ts,
                end: None,
                end_reason: None,
                end_inferred: false,
                end_detail: None,
                tunnel: e.tunnel.clone(),
                virtual_ip,
                remote_ip: e.remote_ip.clone(),
                remote_port: e.remote_port,
                bytes_in: None,
                bytes_out: None,
                evidence: vec![e.record_id],
                start_record: e.record_id,
                end_record: None,
                listed_at: None,
            },
        );
    }

    fn end(&mut self, e: &StoredEvent, instance: String) {
        let reason = e.reason.clone().unwrap_or_else(|| "unknown".into());
        if self.open.contains_key(&instance) {
            let d = self.open.get_mut(&instance).expect("present");
            if e.bytes_in.is_some() {
                d.bytes_in = e.bytes_in;
                d.bytes_out = e.bytes_out;
            }
            if d.tunnel.is_none() {
                d.tunnel = e.tunnel.clone();
            }
            self.close(
                &instance,
                e.ts,
                &reason,
                false,
                e.detail.clone(),
                e.record_id,
            );
            return;
        }

        // A second end line of an instance that just ended adds nothing.
        let just_ended = self.done.iter().any(|d| {
            d.instance == instance
                && d.end
                    .is_some_and(|end| (e.ts - end).abs() <= SAME_END_WINDOW)
        });
        if just_ended {
            return;
        }

        // An end that says how long the session lasted stands for its start
        // when the start line is not in the logs (ASA 113019).
        if let (Some(duration), Some(user)) = (e.duration, &e.user) {
            let start = e.ts - duration.saturating_mul(1_000_000);
            let mut d = Draft {
                user: user.clone(),
                instance,
                start,
                end: None,
                end_reason: None,
                end_inferred: false,
                end_detail: None,
                tunnel: e.tunnel.clone(),
                virtual_ip: e.virtual_ip.clone(),
                remote_ip: e.remote_ip.clone(),
                remote_port: e.remote_port,
                bytes_in: e.bytes_in,
                bytes_out: e.bytes_out,
                evidence: vec![],
                start_record: e.record_id,
                end_record: None,
                listed_at: None,
            };
            d.close(e.ts, &reason, false, e.detail.clone(), e.record_id);
            self.done.push(d);
        }
    }

    /// Bytes of a part of a session (added) or a running total (set).
    fn count_bytes(&mut self, e: &StoredEvent) {
        let by_instance = e
            .instance
            .as_ref()
            .filter(|i| self.open.contains_key(*i))
            .cloned();
        let key = by_instance.or_else(|| {
            let vip = e.virtual_ip.as_ref()?;
            self.open
                .iter()
                .find(|(_, d)| d.virtual_ip.as_ref() == Some(vip))
                .map(|(k, _)| k.clone())
        });
        let Some(d) = key.and_then(|k| self.open.get_mut(&k)) else {
            return;
        };
        if e.reason.as_deref() == Some("cumulative") {
            d.bytes_in = e.bytes_in;
            d.bytes_out = e.bytes_out;
        } else {
            d.bytes_in = Some(d.bytes_in.unwrap_or(0) + e.bytes_in.unwrap_or(0));
            d.bytes_out = Some(d.bytes_out.unwrap_or(0) + e.bytes_out.unwrap_or(0));
        }
        d.evidence.push(e.record_id);
    }

    /// A WireGuard peer at one poll. A session starts at the first
    /// handshake seen, goes on while handshakes renew, and ends, inferred,
    /// 180 s after the last one when a poll shows it was not renewed.
    fn peer_status(&mut self, e: &StoredEvent, instance: String) {
        let counters = (e.bytes_in.unwrap_or(0), e.bytes_out.unwrap_or(0));
        let handshake = e.since;
        let mut peer = self.peers.remove(&instance).unwrap_or_default();

        // A session whose key has expired by this poll ends.
        if let Some(ps) = &mut peer.session {
            let renewed = handshake.is_some_and(|h| h > ps.last_handshake);
            if ps.closed_at.is_none() {
                if !renewed {
                    // This poll still shows the last handshake: its bytes count.
                    if let Some(d) = self.open.get_mut(&instance) {
                        d.bytes_in = Some(counters.0 - ps.baseline.0);
                        d.bytes_out = Some(counters.1 - ps.baseline.1);
                    }
                }
                // Handshakes between two polls are not seen: only a poll
                // that still shows the last one, later than its key's
                // life, proves the peer gone.
                let expires = ps.last_handshake + WIREGUARD_KEY_LIFETIME;
                if !renewed && e.ts > expires {
                    let detail = Some("no handshake renewed the key within 180 s".to_owned());
                    ps.closed_at = self.close(
                        &instance,
                        expires,
                        "peer_expired",
                        true,
                        detail,
                        e.record_id,
                    );
                }
            } else if !renewed {
                // Closed, and this poll still shows its last handshake.
                if let Some(d) = ps.closed_at.and_then(|i| self.done.get_mut(i)) {
                    d.bytes_in = Some(counters.0 - ps.baseline.0);
                    d.bytes_out = Some(counters.1 - ps.baseline.1);
                }
            }
        }

        match (handshake, &mut peer.session) {
            // Renewed within the key's life: the same session goes on.
            (Some(h), Some(ps)) if ps.closed_at.is_none() && h > ps.last_handshake => {
                ps.last_handshake = h;
                if let Some(d) = self.open.get_mut(&instance) {
                    d.bytes_in = Some(counters.0 - ps.baseline.0);
                    d.bytes_out = Some(counters.1 - ps.baseline.1);
                    if e.remote_ip.is_some() {
                        d.remote_ip = e.remote_ip.clone();
                        d.remote_port = e.remote_port;
                    }
                    d.evidence.push(e.record_id);
                }
            }
            // A first handshake, or one after the last session expired.
            (Some(h), session)
                if session
                    .as_ref()
                    .is_none_or(|ps| ps.closed_at.is_some() && h > ps.last_handshake) =>
            {
                let baseline = peer.last_counters.unwrap_or((0, 0));
                self.open.insert(
                    instance.clone(),
                    Draft {
                        user: e.user.clone().unwrap_or_default(),
                        instance: instance.clone(),
                        start: h,
                        end: None,
                        end_reason: None,
                        end_inferred: false,
                        end_detail: None,
                        tunnel: e.tunnel.clone(),
                        virtual_ip: e.virtual_ip.clone(),
                        remote_ip: e.remote_ip.clone(),
                        remote_port: e.remote_port,
                        bytes_in: Some(counters.0 - baseline.0),
                        bytes_out: Some(counters.1 - baseline.1),
                        evidence: vec![e.record_id],
                        start_record: e.record_id,
                        end_record: None,
                        listed_at: None,
                    },
                );
                *session = Some(PeerSession {
                    closed_at: None,
                    last_handshake: h,
                    baseline,
                });
            }
            _ => {}
        }
        peer.last_counters = Some(counters);
        self.peers.insert(instance, peer);
    }

    /// A client listed in a status snapshot: the same connection as a
    /// logged session when identity, real address and start agree; else a
    /// session of its own that starts at "connected since".
    fn status_client(&mut self, e: &StoredEvent) {
        let user = e.user.clone().unwrap_or_default();
        let since = e.since.unwrap_or(e.ts);
        let same = |d: &Draft| {
            d.user == user
                && d.remote_ip == e.remote_ip
                && d.remote_port == e.remote_port
                && (d.start - since).abs() <= SAME_START_WINDOW
        };
        let update = |d: &mut Draft| {
            d.bytes_in = e.bytes_in.max(d.bytes_in);
            d.bytes_out = e.bytes_out.max(d.bytes_out);
            if d.virtual_ip.is_none() {
                d.virtual_ip = e.virtual_ip.clone();
            }
            d.evidence.push(e.record_id);
        };
        if let Some(d) = self.open.values_mut().find(|d| same(d)) {
            update(d);
            d.listed_at = Some(e.ts);
            return;
        }
        if let Some(d) = self.done.iter_mut().find(|d| same(d)) {
            // A snapshot written before the end line was read: its bytes count.
            update(d);
            return;
        }
        let instance = e.instance.clone().unwrap_or_default();
        self.open.insert(
            instance.clone(),
            Draft {
                user,
                instance,
                start: since,
                end: None,
                end_reason: None,
                end_inferred: false,
                end_detail: None,
                tunnel: None,
                virtual_ip: e.virtual_ip.clone(),
                remote_ip: e.remote_ip.clone(),
                remote_port: e.remote_port,
                bytes_in: e.bytes_in,
                bytes_out: e.bytes_out,
                evidence: vec![e.record_id],
                start_record: e.record_id,
                end_record: None,
                listed_at: Some(e.ts),
            },
        );
    }
}

/// A stable id: the same connection keeps it across re-ingests.
fn session_id(gateway: &str, d: &Draft) -> String {
    let mut h = Sha256::new();
    for part in [
        gateway,
        d.user.as_str(),
        d.remote_ip.as_deref().unwrap_or(""),
        d.instance.as_str(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(d.start.to_le_bytes());
    let digest = h.finalize();
    let hex = crate::store::hex(&digest[..8]);
    format!("s-{hex}")
}

fn finish(gateway: &str, d: Draft, inventory: &Inventory) -> Session {
    let tunnel = d.tunnel.clone().unwrap_or_else(|| gateway.to_owned());
    Session {
        id: session_id(gateway, &d),
        technician: inventory.technician_of(&d.user).map(|t| t.id.clone()),
        user: d.user,
        start: from_micros(d.start),
        end: d.end.map(from_micros),
        end_reason: d.end_reason,
        end_inferred: d.end_inferred,
        end_detail: d.end_detail,
        gateway: gateway.to_owned(),
        sites: inventory
            .sites
            .iter()
            .filter(|s| s.has_tunnel(&tunnel))
            .map(|s| s.id.clone())
            .collect(),
        tunnel,
        virtual_ip: d.virtual_ip,
        remote_ip: d.remote_ip,
        remote_port: d.remote_port,
        bytes_in: d.bytes_in.map(|b| b as u64),
        bytes_out: d.bytes_out.map(|b| b as u64),
        devices: Vec::new(),
        public_destinations: 0,
        continues: None,
        evidence: d.evidence,
        start_record: Some(d.start_record),
        end_record: d.end_record,
    }
}

/// Finds the devices a session reached: allowed traffic from its virtual IP
/// on its gateway between its start and end (to the end of time while open).
fn attach_devices(
    conn: &Connection,
    gateway: &str,
    session: &mut Session,
    inventory: &Inventory,
) -> anyhow::Result<()> {
    let Some(vip) = &session.virtual_ip else {
        return Ok(());
    };
    let start = session.start.timestamp_micros();
    let end = session.end.map_or(i64::MAX, |e| e.timestamp_micros());
    // Rows come in run order and are put in time order here: a sort of
    // one session's rows in memory costs less than SQLite's sorter.
    let mut stmt = conn.prepare_cached(
        "SELECT r.ts, r.id, r.dst, r.proto, r.dst_port FROM traffic_runs t
         JOIN records r ON r.id BETWEEN t.first AND t.last
         WHERE t.gateway = ?1 AND t.src = ?2 AND t.hour BETWEEN ?5 AND ?6
           AND r.gateway = ?1 AND r.src = ?2 AND r.ts >= ?3 AND r.ts <= ?4 AND r.allowed = 1",
    )?;
    let (first_slot, last_slot) = (start / RUN_MICROS, end / RUN_MICROS);
    let mut rows = stmt.query(params![gateway, vip, start, end, first_slot, last_slot])?;
    // Internal destinations reached: time, record id, address and the
    // index of their protocol and port in `ports`.
    let mut reached: Vec<(i64, i64, IpAddr, usize)> = Vec::new();
    let mut ports: Vec<(String, Option<u16>)> = Vec::new();
    while let Some(row) = rows.next()? {
        let Ok(ip) = text_column(row, 2)?.parse::<IpAddr>() else {
            continue;
        };
        if !inventory.is_internal(ip) {
            session.public_destinations += 1;
            continue;
        }
        let proto = text_column(row, 3)?;
        let port: Option<u16> = row.get(4)?;
        let label = match ports.iter().position(|(p, n)| p == proto && *n == port) {
            Some(i) => i,
            None => {
                ports.push((proto.to_owned(), port));
                ports.len() - 1
            }
        };
        reached.push((row.get(0)?, row.get(1)?, ip, label));
    }
    reached.sort_unstable_by_key(|&(ts, id, ..)| (ts, id));
    let labels: Vec<String> = ports
        .into_iter()
        .map(|(proto, port)| match port {
            Some(p) => format!("{proto}/{p}"),
            None => proto,
        })
        .collect();
    // Devices in the order they were first reached, each with its ports
    // in the order they were first used.
    let mut devices: Vec<(IpAddr, Vec<usize>)> = Vec::new();
    for (_, _, ip, label) in reached {
        match devices.iter_mut().find(|(d, _)| *d == ip) {
            Some((_, used)) => {
                if !used.contains(&label) {
                    used.push(label);
                }
            }
            None => {
                devices.push((ip, vec![label]));
                if let Some(site) = inventory.site_of_ip(ip) {
                    if !session.sites.contains(&site.id) {
                        session.sites.push(site.id.clone());
                    }
                }
            }
        }
    }
    let devices = devices
        .into_iter()
        .map(|(ip, used)| DeviceReached {
            ip: ip.to_string(),
            name: inventory.device_at(ip).map(|(_, d)| d.name.clone()),
            ports: used.into_iter().map(|i| labels[i].clone()).collect(),
        })
        .collect();
    session.devices = devices;
    Ok(())
}

/// A text column of a traffic row: an error naming the column if a hand
/// edit stored another type there.
fn text_column<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> anyhow::Result<&'r str> {
    row.get_ref(index)?.as_str().map_err(|e| {
        anyhow::anyhow!(
            "traffic column {} of a record is not text: {e}",
            row.as_ref().column_name(index).unwrap_or("?")
        )
    })
}

/// Marks a session that resumes the same identity's previous one on the
/// same gateway within `grace` of its end.
fn link_reconnections(sessions: &mut [Session], grace: Duration) {
    let mut order: Vec<usize> = (0..sessions.len()).collect();
    order.sort_by_key(|&i| sessions[i].start);
    for (pos, &i) in order.iter().enumerate() {
        let start = sessions[i].start;
        let user = sessions[i].user.clone();
        let previous = order[..pos].iter().rev().copied().find(|&j| {
            sessions[j].user == user
                && sessions[j]
                    .end
                    .is_some_and(|end| end <= start && start - end <= grace)
        });
        sessions[i].continues = previous.map(|j| sessions[j].id.clone());
    }
}

fn save(store: &mut Store, gateway: &str, sessions: &[Session]) -> anyhow::Result<()> {
    let tx = store.write_transaction()?;
    tx.execute("DELETE FROM sessions WHERE gateway = ?1", [gateway])?;
    tx.execute("DELETE FROM stale_sessions WHERE gateway = ?1", [gateway])?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR REPLACE INTO sessions (id, gateway, user, technician, start, end, end_reason, end_inferred,
                end_detail, tunnel, sites, virtual_ip, remote_ip, remote_port, bytes_in, bytes_out, devices,
                public_destinations, continues, start_record, end_record, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)",
        )?;
        for s in sessions {
            insert.execute(params![
                s.id,
                s.gateway,
                s.user,
                s.technician,
                s.start.timestamp_micros(),
                s.end.map(|e| e.timestamp_micros()),
                s.end_reason,
                s.end_inferred,
                s.end_detail,
                s.tunnel,
                serde_json::to_string(&s.sites)?,
                s.virtual_ip,
                s.remote_ip,
                s.remote_port,
                s.bytes_in.map(|b| b as i64),
                s.bytes_out.map(|b| b as i64),
                serde_json::to_string(&s.devices)?,
                s.public_destinations as i64,
                s.continues,
                s.start_record,
                s.end_record,
                serde_json::to_string(&s.evidence)?,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// A VPN identity or a technician id, matched as identities are
    /// everywhere: ignoring case, `DOMAIN\` and `@realm` (see
    /// [`normalize_identity`]), so `J.MARTIN` finds `INTEG\j.martin`.
    pub user: Option<String>,
    pub site: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Loads stored sessions, oldest first.
pub fn load(conn: &Connection, filter: &SessionFilter) -> anyhow::Result<Vec<Session>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, gateway, user, technician, start, end, end_reason, end_inferred, end_detail, tunnel,
                sites, virtual_ip, remote_ip, remote_port, bytes_in, bytes_out, devices, public_destinations,
                continues, start_record, end_record, evidence
         FROM sessions ORDER BY start, gateway, user, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let text = |i: usize| -> rusqlite::Result<String> { r.get(i) };
        Ok(Session {
            id: r.get(0)?,
            gateway: r.get(1)?,
            user: r.get(2)?,
            technician: r.get(3)?,
            start: from_micros(r.get(4)?),
            end: r.get::<_, Option<i64>>(5)?.map(from_micros),
            end_reason: r.get(6)?,
            end_inferred: r.get(7)?,
            end_detail: r.get(8)?,
            tunnel: r.get(9)?,
            sites: serde_json::from_str(&text(10)?).unwrap_or_default(),
            virtual_ip: r.get(11)?,
            remote_ip: r.get(12)?,
            remote_port: r.get(13)?,
            bytes_in: r.get::<_, Option<i64>>(14)?.map(|b| b as u64),
            bytes_out: r.get::<_, Option<i64>>(15)?.map(|b| b as u64),
            devices: serde_json::from_str(&text(16)?).unwrap_or_default(),
            public_destinations: r.get::<_, i64>(17)? as u64,
            continues: r.get(18)?,
            start_record: r.get(19)?,
            end_record: r.get(20)?,
            evidence: serde_json::from_str(&text(21)?).unwrap_or_default(),
        })
    })?;
    let user = filter.user.as_deref().map(normalize_identity);
    let mut out = Vec::new();
    for row in rows {
        let s = row?;
        if let Some(user) = &user {
            let by_identity = normalize_identity(&s.user) == *user;
            let by_technician = s
                .technician
                .as_deref()
                .is_some_and(|t| normalize_identity(t) == *user);
            if !by_identity && !by_technician {
                continue;
            }
        }
        if let Some(site) = &filter.site {
            if !s.sites.contains(site) {
                continue;
            }
        }
        if filter.until.is_some_and(|until| s.start > until) {
            continue;
        }
        if let (Some(since), Some(end)) = (filter.since, s.end) {
            if end < since {
                continue;
            }
        }
        out.push(s);
    }
    Ok(out)
}
