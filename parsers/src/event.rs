//! The VPN facts that vendor parsers extract from records.
//!
//! Events borrow from the line they came from. They say what the gateway
//! wrote, nothing more: joining events into sessions is the sessionizer's job.

use std::net::IpAddr;

use serde::Serialize;

use crate::time::LineTime;

/// Why a gateway ended a session, in DESIGN.md's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client said it was leaving (exit notification, logout).
    UserExit,
    /// The gateway stopped hearing from the client and gave up.
    Timeout,
    /// The transport broke (TCP reset, TLS error).
    ConnectionLost,
    /// The same identity connected again and the old instance was dropped.
    Replaced,
    /// An administrator or a management command ended it.
    Admin,
    /// The gateway stopped or restarted.
    GatewayRestart,
    /// A WireGuard peer whose handshake was not renewed.
    PeerExpired,
    /// A status snapshot stopped listing it.
    LeftStatus,
    Unknown,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::UserExit => "user_exit",
            EndReason::Timeout => "timeout",
            EndReason::ConnectionLost => "connection_lost",
            EndReason::Replaced => "replaced",
            EndReason::Admin => "admin",
            EndReason::GatewayRestart => "gateway_restart",
            EndReason::PeerExpired => "peer_expired",
            EndReason::LeftStatus => "left_status",
            EndReason::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "user_exit" => EndReason::UserExit,
            "timeout" => EndReason::Timeout,
            "connection_lost" => EndReason::ConnectionLost,
            "replaced" => EndReason::Replaced,
            "admin" => EndReason::Admin,
            "gateway_restart" => EndReason::GatewayRestart,
            "peer_expired" => EndReason::PeerExpired,
            "left_status" => EndReason::LeftStatus,
            "unknown" => EndReason::Unknown,
            _ => return None,
        })
    }
}

/// Whether a firewall let a connection through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Dropped,
    /// The line does not say (a netfilter LOG line): the source's
    /// `drop_prefixes` decide from the log prefix.
    FromPrefix,
}

/// A connection a firewall saw: the evidence of devices reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Traffic<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Lower-case protocol name (`tcp`, `udp`, `icmp`) or number.
    pub proto: &'a str,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub verdict: Verdict,
    /// The admin's label for the rule (netfilter LOG prefix), if any.
    pub label: Option<&'a str>,
}

/// One WireGuard peer line of `wg show all dump`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerStatus<'a> {
    /// The interface: the tunnel, named as its configuration is.
    pub interface: &'a str,
    /// The peer's public key: its identity.
    pub public_key: &'a str,
    pub endpoint_ip: Option<IpAddr>,
    pub endpoint_port: Option<u16>,
    /// The first address of allowed-ips: the peer's address in the tunnel.
    pub allowed_ip: Option<IpAddr>,
    /// Epoch seconds of the latest handshake; `None` for never (0).
    pub latest_handshake: Option<i64>,
    /// Received from the peer since the interface came up.
    pub rx: u64,
    /// Sent to the peer since the interface came up.
    pub tx: u64,
}

/// What a vendor parser found in a message: the fact, and what the
/// message says of its own time and device, which win over the envelope's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted<'a> {
    pub event: Option<Event<'a>>,
    /// A time written in the message itself (FortiGate `date= time= tz=`,
    /// a GlobalProtect record's generated time, a conntrack epoch).
    pub time: Option<LineTime>,
    /// The device that wrote it (FortiGate `devname`, Stormshield `fw`):
    /// the gateway when the envelope names no host.
    pub device: Option<&'a str>,
}

impl<'a> Extracted<'a> {
    /// Just an event, with the envelope's time and host.
    pub fn event(event: Event<'a>) -> Self {
        Extracted {
            event: Some(event),
            time: None,
            device: None,
        }
    }

    /// Understood, and no session fact in it.
    pub fn nothing() -> Self {
        Extracted::default()
    }
}

/// One client in an OpenVPN status snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusClient<'a> {
    /// The identity: the CN, or the username when the CN is `UNDEF`.
    pub user: &'a str,
    pub common_name: &'a str,
    pub username: Option<&'a str>,
    pub remote_ip: IpAddr,
    pub remote_port: Option<u16>,
    pub virtual_ip: Option<IpAddr>,
    /// Received by the gateway from the client.
    pub bytes_in: u64,
    /// Sent by the gateway to the client.
    pub bytes_out: u64,
    pub connected_since: LineTime,
    /// When the snapshot was written.
    pub snapshot: LineTime,
}

/// A VPN fact extracted from one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event<'a> {
    /// A client authenticated and its connection is up: the session starts.
    SessionStarted {
        /// The identity as the line writes it. When `correlation` names
        /// earlier lines of the same negotiation that gave the person's
        /// identity (strongSwan's EAP identity), that identity wins.
        user: &'a str,
        /// The gateway's key for this client's instance (OpenVPN: the real
        /// `ip:port`; FortiGate: the tunnel id), shared by the later lines
        /// of the same connection.
        instance: &'a str,
        remote_ip: Option<IpAddr>,
        remote_port: Option<u16>,
        /// The address inside the tunnel, when the start line gives it.
        virtual_ip: Option<IpAddr>,
        /// The VPN profile or connection, when the log names one, without
        /// per-client instance marks (`rw-techs`, not `rw-techs[7]`).
        tunnel: Option<&'a str>,
        /// The key of the earlier lines of the same negotiation, whose
        /// `AddressAssigned`/`UserAuthenticated` used it as instance.
        correlation: Option<&'a str>,
    },
    /// The gateway gave the client its address inside the tunnel.
    AddressAssigned {
        user: Option<&'a str>,
        instance: &'a str,
        virtual_ip: IpAddr,
    },
    /// The session ended.
    SessionEnded {
        user: Option<&'a str>,
        instance: &'a str,
        reason: EndReason,
        /// The gateway's own words.
        detail: &'a str,
        /// Received by the gateway from the client, when the end line says.
        bytes_in: Option<u64>,
        /// Sent by the gateway to the client, when the end line says.
        bytes_out: Option<u64>,
        /// The session's length, when the end line says (ASA, FortiGate,
        /// GlobalProtect): with no start line, start = end - duration.
        duration_s: Option<u64>,
        remote_ip: Option<IpAddr>,
        tunnel: Option<&'a str>,
    },
    /// Bytes of a part of a session (a strongSwan CHILD_SA) or a running
    /// total (FortiGate statistics).
    BytesCounted {
        /// The session's instance, when the line names it.
        instance: Option<&'a str>,
        /// Else the session holding this address inside the tunnel.
        virtual_ip: Option<IpAddr>,
        bytes_in: u64,
        bytes_out: u64,
        /// A running total that replaces the last one; else a part to add.
        cumulative: bool,
    },
    /// A WireGuard peer as one poll of `wg show all dump` shows it.
    PeerStatus(PeerStatus<'a>),
    /// A username/password check succeeded; it names clients whose
    /// certificate CN is `UNDEF`.
    UserAuthenticated {
        user: &'a str,
        instance: Option<&'a str>,
    },
    /// A failed attempt: never a session.
    AuthFailed {
        user: Option<&'a str>,
        instance: Option<&'a str>,
        detail: &'a str,
    },
    /// A new connection of `user` that drops that identity's older instances.
    ClientReplaced {
        user: &'a str,
        instance: &'a str,
    },
    /// The gateway process stopped or restarted: every session on it ends.
    GatewayStopped {
        detail: &'a str,
    },
    /// The gateway process finished starting: sessions it had are gone.
    GatewayStarted {
        detail: &'a str,
    },
    Traffic(Traffic<'a>),
    /// A site-to-site tunnel (network to network, nobody's login) came up
    /// or went down: evidence of a site's link, never a session.
    SiteTunnel {
        /// The connection or phase 1 name, without instance marks.
        tunnel: &'a str,
        up: bool,
        /// The gateway's own words: the traffic selectors or the reason.
        detail: &'a str,
        remote_ip: Option<IpAddr>,
        /// Received by the gateway through the tunnel, when counted.
        bytes_in: Option<u64>,
        /// Sent by the gateway through the tunnel, when counted.
        bytes_out: Option<u64>,
    },
    StatusClient(StatusClient<'a>),
    /// The end of a status snapshot that listed `clients` clients: an open
    /// session it no longer lists is gone.
    StatusSnapshot {
        clients: usize,
        snapshot: LineTime,
    },
}

impl Event<'_> {
    /// The event's kind as `parse --stats` and the store name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::SessionStarted { .. } => "session_started",
            Event::AddressAssigned { .. } => "address_assigned",
            Event::SessionEnded { .. } => "session_ended",
            Event::UserAuthenticated { .. } => "user_authenticated",
            Event::AuthFailed { .. } => "auth_failed",
            Event::ClientReplaced { .. } => "client_replaced",
            Event::GatewayStopped { .. } => "gateway_stopped",
            Event::GatewayStarted { .. } => "gateway_started",
            Event::Traffic(_) => "traffic",
            Event::SiteTunnel { .. } => "site_tunnel",
            Event::StatusClient(_) => "status_client",
            Event::BytesCounted { .. } => "bytes_counted",
            Event::PeerStatus(_) => "peer_status",
            Event::StatusSnapshot { .. } => "status_snapshot",
        }
    }
}
