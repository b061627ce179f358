//! Writes realistic input for the benchmarks, and the sessions a correct
//! reader must find in it.
//!
//! ```text
//! cargo run --release --example generate -- --lines 1000000 --seed 1 \
//!     --out /tmp/fleet.log --truth /tmp/fleet.truth.json
//! vpnledger --db /tmp/fleet.db ingest --year 2024 --tz Europe/Paris /tmp/fleet.log
//! ```
//!
//! The log is one central syslog file (RFC 3164) of a fleet of OpenVPN 2.6
//! gateways, one per site, with the Linux firewall of each gateway logging
//! the connections it forwards:
//!
//! - technicians connect (`Peer Connection Initiated`, then `MULTI_sva:
//!   pool returned IPv4=`), renegotiate every hour (`TLS: soft reset`),
//!   and leave with an exit notification (`CC-EEN exit message received by
//!   peer`, the instance torn down 5 s later), an older client's
//!   `SIGTERM[soft,remote-exit]`, or vanish (`Inactivity timeout
//!   (--ping-restart)`);
//! - while connected, their virtual IP reaches devices of the site's subnet
//!   (netfilter `VPN-FWD` lines), some public addresses, and is refused by
//!   the firewall now and then (`VPN-DROP` lines, which are no access);
//! - noise: LAN traffic between devices, stray TLS packets.
//!
//! Each gateway hands out the lowest free address of its pool, so addresses
//! are reused from one session to the next but never held by two sessions
//! at once; a technician holds one session at a time. Times only go
//! forward; lines carry no year (pass `--year` when reading) and are
//! written in the zone given by `--tz` (pass the same `--tz`).
//!
//! The truth file is a JSON array in the shape of the corpus's
//! `*.expected.json`: `user`, `start`, `end` (`null` while open at the end
//! of the file), `tunnel` (the gateway: OpenVPN over syslog names no
//! profile), `virtual_ip`, `remote_ip`, `devices` (the internal addresses
//! the session reached, in order of first access) and `bytes_in` /
//! `bytes_out` (`null`: these logs carry no byte counts). It is computed
//! from the lines actually written, so a session cut by the end of the file
//! is as a reader of that file sees it.
//!
//! The same arguments always write the same bytes: every choice comes from
//! one SplitMix64 stream seeded by `--seed`.
//!
//! This is an example rather than a binary of the package: it is a
//! developer's tool, not part of what is installed, yet `cargo test` and
//! `cargo clippy --all-targets` build it, so it keeps up with the code.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use clap::Parser;
use serde::Serialize;

#[derive(Parser)]
#[command(about = "Writes a realistic fleet log and the sessions it holds")]
struct Args {
    /// Number of lines to write.
    #[arg(long)]
    lines: u64,
    /// Seed of every random choice: the same seed writes the same file.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Year of the first line (the lines carry none).
    #[arg(long, default_value_t = 2024)]
    year: i32,
    /// Zone the gateways write their local time in.
    #[arg(long, default_value = "Europe/Paris", value_parser = parse_zone)]
    tz: Tz,
    /// First instant, RFC 3339; default May 6 of `--year`, 06:00 UTC.
    #[arg(long)]
    start: Option<DateTime<Utc>>,
    /// Gateways, one per site.
    #[arg(long, default_value_t = 200)]
    gateways: usize,
    /// Technicians (at most 762: each has a home address of its own in the
    /// documentation ranges).
    #[arg(long, default_value_t = 600)]
    technicians: usize,
    /// The log to write.
    #[arg(long)]
    out: PathBuf,
    /// The sessions a correct reader finds, as JSON.
    #[arg(long)]
    truth: PathBuf,
}

fn parse_zone(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>().map_err(|e| e.to_string())
}

/// Fleet events (a connection, or a line of noise) per second, on average.
const EVENTS_PER_SECOND: f64 = 0.12;
/// Of those events, the share that are connections.
const CONNECTION_SHARE: f64 = 0.85;
/// Mean time between two connections a session's firewall logs.
const TRAFFIC_MEAN_GAP_S: f64 = 55.0;
/// A client renegotiates its keys this often (OpenVPN's `reneg-sec`).
const RENEG_S: i64 = 3600;
/// OpenVPN 2.6 tears an instance down this long after its exit message.
const DELAYED_EXIT_S: i64 = 5;
/// With ping-restart 120, the server gives up this long after the last
/// packet.
const PING_RESTART_S: i64 = 120;
/// Addresses of each gateway's pool: 10.8.0.2 to 10.8.0.254.
const POOL_SIZE: usize = 253;

/// SplitMix64: small, fast, and the same numbers on every machine.
struct Random(u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high].
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low + 1)
    }

    fn index(&mut self, len: usize) -> usize {
        (self.next_u64() % len as u64) as usize
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponential with the given mean (Poisson arrivals).
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// A device of a site, and the port it is reached on.
struct Device {
    ip: Ipv4Addr,
    proto: &'static str,
    port: u16,
}

struct Gateway {
    name: String,
    /// The OpenVPN server's process id, in every `openvpn[pid]` tag.
    pid: u32,
    devices: Vec<Device>,
    /// Until when each pool address is held (the instance's teardown).
    pool_held_until: Vec<i64>,
    /// Kernel uptime at the first instant, for the `[uptime]` of LOG lines.
    uptime_at_start: f64,
    next_peer_id: u32,
}

struct Technician {
    name: String,
    home: Ipv4Addr,
    /// Until when the technician's current session lasts.
    busy_until: i64,
}

/// What a reader must find, filled in as the lines are written.
#[derive(Serialize)]
struct TruthSession {
    user: String,
    #[serde(serialize_with = "utc")]
    start: i64,
    #[serde(serialize_with = "utc_opt")]
    end: Option<i64>,
    tunnel: String,
    virtual_ip: Option<String>,
    remote_ip: String,
    devices: Vec<String>,
    bytes_in: Option<u64>,
    bytes_out: Option<u64>,
}

fn utc<S: serde::Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&instant(*t).format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn utc_opt<S: serde::Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => utc(t, s),
        None => s.serialize_none(),
    }
}

fn instant(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(t, 0).single().expect("instant in range")
}

/// What writing a line tells the truth.
#[derive(Clone, Copy)]
enum Effect {
    None,
    Start { session: usize },
    VirtualIp { session: usize, ip: Ipv4Addr },
    Device { session: usize, ip: Ipv4Addr },
    End { session: usize },
}

/// Which program wrote a line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Program {
    OpenVpn,
    Kernel,
}

/// A line scheduled for its time; `seq` keeps the order of lines of the
/// same second as they were scheduled.
struct Pending {
    at: i64,
    seq: u64,
    gateway: usize,
    program: Program,
    body: String,
    effect: Effect,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

const CITIES: [&str; 20] = [
    "lyon", "paris", "nantes", "lille", "annecy", "grenoble", "chambery", "bordeaux", "rennes",
    "nice", "dijon", "metz", "reims", "tours", "brest", "caen", "nimes", "pau", "vannes", "angers",
];

const SURNAMES: [&str; 30] = [
    "martin", "bernard", "thomas", "petit", "robert", "richard", "durand", "dubois", "moreau",
    "laurent", "simon", "michel", "lefebvre", "leroy", "roux", "david", "bertrand", "morel",
    "fournier", "girard", "bonnet", "dupont", "lambert", "fontaine", "rousseau", "vincent",
    "muller", "lefevre", "faure", "andre",
];

/// Devices a site has, with the port each is reached on.
const DEVICE_KINDS: [(&str, u16); 8] = [
    ("tcp", 443),
    ("tcp", 554),
    ("tcp", 80),
    ("tcp", 22),
    ("tcp", 8000),
    ("tcp", 37777),
    ("udp", 161),
    ("tcp", 3389),
];

/// The documentation ranges: 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24.
fn documentation_addresses() -> Vec<Ipv4Addr> {
    [[192, 0, 2], [198, 51, 100], [203, 0, 113]]
        .iter()
        .flat_map(|p| (1..=254).map(move |h| Ipv4Addr::new(p[0], p[1], p[2], h)))
        .collect()
}

fn pool_address(index: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 8, 0, 2 + index as u8)
}

struct Fleet {
    random: Random,
    gateways: Vec<Gateway>,
    technicians: Vec<Technician>,
    truth: Vec<TruthSession>,
    pending: BinaryHeap<Reverse<Pending>>,
    seq: u64,
    first_instant: i64,
}

impl Fleet {
    fn new(args: &Args, first_instant: i64) -> anyhow::Result<Fleet> {
        let mut random = Random(args.seed);
        let homes = documentation_addresses();
        anyhow::ensure!(
            args.technicians >= 1 && args.technicians <= homes.len(),
            "--technicians: 1 to {} (each needs a home address of its own)",
            homes.len()
        );
        anyhow::ensure!(
            (1..=4096).contains(&args.gateways),
            "--gateways: 1 to 4096 (one 172.16.0.0/12 subnet each)"
        );

        // Sites: a /24 of 172.16.0.0/12 each, with 8 to 40 devices.
        let gateways = (0..args.gateways)
            .map(|g| {
                let subnet = (16 + (g / 256) as u8, (g % 256) as u8);
                let devices = (0..random.range(8, 40))
                    .map(|d| {
                        let (proto, port) = DEVICE_KINDS[random.index(DEVICE_KINDS.len())];
                        Device {
                            ip: Ipv4Addr::new(172, subnet.0, subnet.1, 10 + d as u8),
                            proto,
                            port,
                        }
                    })
                    .collect();
                Gateway {
                    name: format!(
                        "vpn-{}-{:02}",
                        CITIES[g % CITIES.len()],
                        g / CITIES.len() + 1
                    ),
                    pid: 900 + random.range(0, 30000) as u32,
                    devices,
                    pool_held_until: vec![i64::MIN; POOL_SIZE],
                    uptime_at_start: random.range(50_000, 9_000_000) as f64,
                    next_peer_id: 0,
                }
            })
            .collect();

        // Technicians: initial.surname, each with a home address, in an
        // order drawn from the seed.
        let mut names: Vec<String> = (b'a'..=b'z')
            .flat_map(|i| SURNAMES.iter().map(move |s| format!("{}.{s}", i as char)))
            .collect();
        for i in (1..names.len()).rev() {
            names.swap(i, random.index(i + 1));
        }
        let mut homes = homes;
        for i in (1..homes.len()).rev() {
            homes.swap(i, random.index(i + 1));
        }
        let technicians = names
            .into_iter()
            .zip(homes)
            .take(args.technicians)
            .map(|(name, home)| Technician {
                name,
                home,
                busy_until: i64::MIN,
            })
            .collect();

        Ok(Fleet {
            random,
            gateways,
            technicians,
            truth: Vec::new(),
            pending: BinaryHeap::new(),
            seq: 0,
            first_instant,
        })
    }

    fn schedule(
        &mut self,
        at: i64,
        gateway: usize,
        program: Program,
        body: String,
        effect: Effect,
    ) {
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            at,
            seq: self.seq,
            gateway,
            program,
            body,
            effect,
        }));
    }

    /// One fleet event at `now`: a connection, or noise.
    fn event(&mut self, now: i64) {
        // Busy sites: the first gateways see more traffic than the last.
        let u = self.random.unit();
        let gateway = ((u * u) * self.gateways.len() as f64) as usize;
        if !self.random.chance(CONNECTION_SHARE) || !self.connect(now, gateway) {
            self.noise(now, gateway);
        }
    }

    fn noise(&mut self, now: i64, g: usize) {
        if self.random.chance(0.5) {
            let stray = Ipv4Addr::new(203, 0, 113, self.random.range(1, 254) as u8);
            let port = self.random.range(1025, 65535);
            let body = format!(
                "TLS Error: cannot locate HMAC in incoming packet from [AF_INET]{stray}:{port}"
            );
            self.schedule(now, g, Program::OpenVpn, body, Effect::None);
        } else {
            // A device talking to another on the site's LAN: no VPN source.
            let devices = &self.gateways[g].devices;
            let src = devices[self.random.index(devices.len())].ip;
            let dst = &devices[self.random.index(devices.len())];
            let (dst, proto, port) = (dst.ip, dst.proto, dst.port);
            let body = self.netfilter(now, g, "LAN-FWD", "eth1", "eth1", src, dst, proto, port);
            self.schedule(now, g, Program::Kernel, body, Effect::None);
        }
    }

    /// A kernel LOG line for a connection from `src` to `dst:port`.
    #[allow(clippy::too_many_arguments)]
    fn netfilter(
        &mut self,
        at: i64,
        g: usize,
        prefix: &str,
        inside: &str,
        outside: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: &str,
        port: u16,
    ) -> String {
        let uptime = self.gateways[g].uptime_at_start
            + (at - self.first_instant) as f64
            + self.random.unit();
        let id = self.random.range(1, 65535);
        let sport = self.random.range(32768, 60999);
        let mac = if inside == "tun0" {
            String::new()
        } else {
            "00:16:3e:2a:11:01:00:16:3e:2a:11:50:08:00".to_owned()
        };
        if proto == "udp" {
            format!(
                "[{uptime:.6}] {prefix} IN={inside} OUT={outside} MAC={mac} SRC={src} DST={dst} LEN=78 TOS=0x00 PREC=0x00 TTL=63 ID={id} PROTO=UDP SPT={sport} DPT={port} LEN=58"
            )
        } else {
            format!(
                "[{uptime:.6}] {prefix} IN={inside} OUT={outside} MAC={mac} SRC={src} DST={dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID={id} DF PROTO=TCP SPT={sport} DPT={port} WINDOW=64240 RES=0x00 SYN URGP=0"
            )
        }
    }

    /// A technician connects to gateway `g` at `now`; false when no
    /// technician or pool address is free.
    fn connect(&mut self, now: i64, g: usize) -> bool {
        // A free technician, and the lowest address free in the pool.
        let Some(tech) = (0..20)
            .map(|_| self.random.index(self.technicians.len()))
            .find(|&t| self.technicians[t].busy_until < now)
        else {
            return false;
        };
        let Some(pool_index) = self.gateways[g]
            .pool_held_until
            .iter()
            .position(|&until| until < now)
        else {
            return false;
        };

        // How long, and how it ends.
        let duration = match self.random.unit() {
            u if u < 0.70 => self.random.range(5 * 60, 60 * 60),
            u if u < 0.95 => self.random.range(60 * 60, 4 * 3600),
            _ => self.random.range(4 * 3600, 10 * 3600),
        } as i64;
        let ending = self.random.unit();
        let (start, established) = (now + 1, now + 2);
        let end = start + duration;
        let teardown = if ending < 0.55 {
            end + DELAYED_EXIT_S
        } else {
            end
        };
        self.technicians[tech].busy_until = teardown;
        self.gateways[g].pool_held_until[pool_index] = teardown;

        let session = self.truth.len();
        let user = self.technicians[tech].name.clone();
        let home = self.technicians[tech].home;
        let vip = pool_address(pool_index);
        let port = self.random.range(1025, 65535);
        let real = format!("{home}:{port}");
        let client = format!("{user}/{real}");
        let peer_id = self.gateways[g].next_peer_id;
        self.gateways[g].next_peer_id += 1;
        self.truth.push(TruthSession {
            user: user.clone(),
            start,
            end: None,
            tunnel: self.gateways[g].name.clone(),
            virtual_ip: None,
            remote_ip: home.to_string(),
            devices: Vec::new(),
            bytes_in: None,
            bytes_out: None,
        });

        // The handshake, as an OpenVPN 2.6 server logs it.
        let sid = (self.random.next_u64(), self.random.next_u64());
        let lines: Vec<(i64, String, Effect)> = vec![
            (
                now,
                format!(
                    "{real} TLS: Initial packet from [AF_INET]{real}, sid={:08x} {:08x}",
                    sid.0 as u32, sid.1 as u32
                ),
                Effect::None,
            ),
            (start, format!("{real} VERIFY OK: depth=1, CN=Integrateur-CA"), Effect::None),
            (start, format!("{real} VERIFY OK: depth=0, CN={user}"), Effect::None),
            (start, format!("{real} peer info: IV_VER=2.6.8"), Effect::None),
            (
                start,
                format!("{real} Control Channel: TLSv1.3, cipher TLSv1.3 TLS_AES_256_GCM_SHA384, peer certificate: 2048 bits RSA, signature: RSA-SHA256, peer temporary key: 253 bits X25519"),
                Effect::None,
            ),
            (
                start,
                format!("{real} [{user}] Peer Connection Initiated with [AF_INET]{real}"),
                Effect::Start { session },
            ),
            (
                start,
                format!("{client} MULTI_sva: pool returned IPv4={vip}, IPv6=(Not enabled)"),
                Effect::VirtualIp { session, ip: vip },
            ),
            (start, format!("{client} MULTI: Learn: {vip} -> {client}"), Effect::None),
            (
                start,
                format!("{client} MULTI: primary virtual IP for {client}: {vip}"),
                Effect::None,
            ),
            (
                established,
                format!("{client} PUSH: Received control message: 'PUSH_REQUEST'"),
                Effect::None,
            ),
            (
                established,
                format!("{client} SENT CONTROL [{user}]: 'PUSH_REPLY,route 172.16.0.0 255.240.0.0,route-gateway 10.8.0.1,topology subnet,ping 10,ping-restart 120,ifconfig {vip} 255.255.255.0,peer-id {peer_id},cipher AES-256-GCM' (status=1)"),
                Effect::None,
            ),
            (
                established,
                format!("{client} Data Channel: cipher 'AES-256-GCM', peer-id: {peer_id}"),
                Effect::None,
            ),
        ];
        for (at, body, effect) in lines {
            self.schedule(at, g, Program::OpenVpn, body, effect);
        }

        // Hourly renegotiations.
        let mut reneg = start + RENEG_S;
        while reneg < end {
            let sent = self.random.range(100_000, 90_000_000);
            let packets = sent / 900 + 1;
            let body = format!(
                "{client} TLS: soft reset sec={RENEG_S}/{RENEG_S} bytes={sent}/-1 pkts={packets}/0"
            );
            self.schedule(reneg, g, Program::OpenVpn, body, Effect::None);
            let body = format!("{client} VERIFY OK: depth=1, CN=Integrateur-CA");
            self.schedule(reneg + 1, g, Program::OpenVpn, body, Effect::None);
            let body = format!("{client} VERIFY OK: depth=0, CN={user}");
            self.schedule(reneg + 1, g, Program::OpenVpn, body, Effect::None);
            reneg += RENEG_S;
        }

        // The technician's work: a few devices reached, one refused now
        // and then, a public address or two.
        let site_devices = self.gateways[g].devices.len();
        let targets: Vec<usize> = (0..self.random.range(1, 5))
            .map(|_| self.random.index(site_devices))
            .collect();
        let refused = self.random.index(site_devices);
        let last_packet = if ending < 0.75 {
            end - 1
        } else {
            end - PING_RESTART_S
        };
        let mut at = established + 1 + self.random.exponential(TRAFFIC_MEAN_GAP_S) as i64;
        while at <= last_packet {
            let kind = self.random.unit();
            let (body, effect) = if kind < 0.85 {
                let d = &self.gateways[g].devices[targets[self.random.index(targets.len())]];
                let (ip, proto, port) = (d.ip, d.proto, d.port);
                let body = self.netfilter(at, g, "VPN-FWD", "tun0", "eth1", vip, ip, proto, port);
                (body, Effect::Device { session, ip })
            } else if kind < 0.93 {
                let d = &self.gateways[g].devices[refused];
                let (ip, proto, port) = (d.ip, d.proto, d.port);
                let body = self.netfilter(at, g, "VPN-DROP", "tun0", "eth1", vip, ip, proto, port);
                (body, Effect::None)
            } else {
                let public = Ipv4Addr::new(192, 0, 2, self.random.range(200, 250) as u8);
                let body =
                    self.netfilter(at, g, "VPN-FWD", "tun0", "eth0", vip, public, "tcp", 443);
                (body, Effect::None)
            };
            self.schedule(at, g, Program::Kernel, body, effect);
            at += 1 + self.random.exponential(TRAFFIC_MEAN_GAP_S) as i64;
        }

        // The end.
        let ends: Vec<(i64, String, Effect)> = if ending < 0.55 {
            vec![
                (
                    end,
                    format!("{client} CC-EEN exit message received by peer"),
                    Effect::End { session },
                ),
                (
                    end,
                    format!("{client} Delayed exit in {DELAYED_EXIT_S} seconds"),
                    Effect::None,
                ),
                (
                    teardown,
                    format!(
                        "{client} SIGTERM[soft,delayed-exit] received, client-instance exiting"
                    ),
                    Effect::None,
                ),
            ]
        } else if ending < 0.75 {
            vec![(
                end,
                format!("{client} SIGTERM[soft,remote-exit] received, client-instance exiting"),
                Effect::End { session },
            )]
        } else {
            vec![
                (
                    end,
                    format!("{client} [{user}] Inactivity timeout (--ping-restart), restarting"),
                    Effect::End { session },
                ),
                (
                    end,
                    format!(
                        "{client} SIGUSR1[soft,ping-restart] received, client-instance restarting"
                    ),
                    Effect::None,
                ),
            ]
        };
        for (at, body, effect) in ends {
            self.schedule(at, g, Program::OpenVpn, body, effect);
        }
        true
    }
}

/// Formats `Mmm dd hh:mm:ss` in the zone, remembering the last second
/// (many lines share it).
struct Stamp {
    zone: Tz,
    second: i64,
    text: String,
}

impl Stamp {
    fn at(&mut self, t: i64) -> &str {
        if t != self.second {
            self.second = t;
            self.text = instant(t)
                .with_timezone(&self.zone)
                .format("%b %e %H:%M:%S")
                .to_string();
        }
        &self.text
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let start = match args.start {
        Some(t) => t,
        None => NaiveDate::from_ymd_opt(args.year, 5, 6)
            .and_then(|d| d.and_hms_opt(6, 0, 0))
            .context("--year out of range")?
            .and_utc(),
    };
    let first_instant = start.timestamp();
    let mut fleet = Fleet::new(&args, first_instant)?;

    let mut out = BufWriter::with_capacity(
        1 << 20,
        File::create(&args.out)
            .with_context(|| format!("{}: cannot create", args.out.display()))?,
    );
    let mut stamp = Stamp {
        zone: args.tz,
        second: i64::MIN,
        text: String::new(),
    };
    let mut written = 0u64;
    let mut bytes = 0u64;
    let mut last = first_instant;
    let mut next_event = first_instant;
    let mut emitted_start = Vec::new();
    while written < args.lines {
        // Every line before the next event is final: events only schedule
        // lines at or after their own time.
        let due = fleet
            .pending
            .peek()
            .is_some_and(|Reverse(p)| p.at < next_event);
        if !due {
            fleet.event(next_event);
            next_event += 1 + fleet.random.exponential(1.0 / EVENTS_PER_SECOND) as i64;
            continue;
        }
        let Reverse(line) = fleet.pending.pop().expect("a due line");
        let gateway = &fleet.gateways[line.gateway];
        let program = match line.program {
            Program::OpenVpn => format!("openvpn[{}]", gateway.pid),
            Program::Kernel => "kernel".to_owned(),
        };
        let text = format!(
            "{} {} {program}: {}\n",
            stamp.at(line.at),
            gateway.name,
            line.body
        );
        out.write_all(text.as_bytes())?;
        written += 1;
        bytes += text.len() as u64;
        last = line.at;
        match line.effect {
            Effect::None => {}
            Effect::Start { session } => {
                if emitted_start.len() <= session {
                    emitted_start.resize(session + 1, false);
                }
                emitted_start[session] = true;
            }
            Effect::VirtualIp { session, ip } => {
                fleet.truth[session].virtual_ip = Some(ip.to_string());
            }
            Effect::Device { session, ip } => {
                let ip = ip.to_string();
                let devices = &mut fleet.truth[session].devices;
                if !devices.contains(&ip) {
                    devices.push(ip);
                }
            }
            Effect::End { session } => {
                fleet.truth[session].end = Some(line.at);
            }
        }
    }
    out.flush()?;

    // Sessions whose start was written, in the order they started.
    let truth: Vec<&TruthSession> = fleet
        .truth
        .iter()
        .enumerate()
        .filter(|(i, _)| emitted_start.get(*i).copied().unwrap_or(false))
        .map(|(_, s)| s)
        .collect();
    let mut file = BufWriter::new(
        File::create(&args.truth)
            .with_context(|| format!("{}: cannot create", args.truth.display()))?,
    );
    writeln!(file, "[")?;
    for (i, session) in truth.iter().enumerate() {
        let comma = if i + 1 < truth.len() { "," } else { "" };
        writeln!(file, "  {}{comma}", serde_json::to_string(session)?)?;
    }
    writeln!(file, "]")?;
    file.flush()?;

    let open = truth.iter().filter(|s| s.end.is_none()).count();
    eprintln!(
        "wrote {written} lines ({bytes} bytes) from {} to {} ({}); {} sessions ({open} open at the end) over {} gateways and {} technicians",
        instant(first_instant).format("%Y-%m-%dT%H:%M:%SZ"),
        instant(last).format("%Y-%m-%dT%H:%M:%SZ"),
        args.tz,
        truth.len(),
        args.gateways,
        args.technicians,
    );
    Ok(())
}
