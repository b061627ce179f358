//! The inventory: sites with their tunnels, subnets and devices, and the
//! technicians with their VPN identities, as the configuration lists them.
//!
//! It answers the questions the sessionizer and the reconciler ask: whose
//! identity is this, which site does this tunnel or address belong to,
//! which device has this address.

use std::net::IpAddr;

use chrono_tz::Tz;
use ipnet::IpNet;
use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub name: String,
    pub ip: IpAddr,
    pub kind: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub id: String,
    pub client: Option<String>,
    pub timezone: Tz,
    pub tunnels: Vec<String>,
    pub subnets: Vec<IpNet>,
    pub devices: Vec<Device>,
}

impl Site {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnets.iter().any(|net| net.contains(&ip)) || self.devices.iter().any(|d| d.ip == ip)
    }

    pub fn has_tunnel(&self, tunnel: &str) -> bool {
        self.tunnels.iter().any(|t| t.eq_ignore_ascii_case(tunnel))
    }

    /// A device of this site by name (any case) or address.
    pub fn device(&self, name_or_ip: &str) -> Option<&Device> {
        let ip: Option<IpAddr> = name_or_ip.parse().ok();
        self.devices
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name_or_ip) || Some(d.ip) == ip)
    }
}

#[derive(Debug, Clone)]
pub struct Technician {
    pub id: String,
    pub name: Option<String>,
    /// Identities, normalised (see [`normalize_identity`]).
    pub identities: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub sites: Vec<Site>,
    pub technicians: Vec<Technician>,
    /// The zone for sites that name none.
    pub default_zone: Option<Tz>,
}

/// Reduces an identity to what names the person: no case, no `DOMAIN\`,
/// no `@realm`. `INTEG\J.Martin` and `j.martin@integ.local` are `j.martin`.
pub fn normalize_identity(identity: &str) -> String {
    let without_domain = identity.rsplit('\\').next().unwrap_or(identity);
    let without_realm = without_domain.split('@').next().unwrap_or(without_domain);
    without_realm.trim().to_lowercase()
}

/// Private and local ranges: destinations inside a client's network even
/// when no site lists them.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_private() || v4.is_link_local() || {
                // 100.64.0.0/10, carrier-grade NAT, often used inside sites.
                let o = v4.octets();
                o[0] == 100 && (64..128).contains(&o[1])
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

impl Inventory {
    pub fn from_config(config: &Config) -> Inventory {
        let default_zone = config.defaults.timezone;
        Inventory {
            default_zone: Some(default_zone),
            sites: config
                .sites
                .iter()
                .map(|s| Site {
                    id: s.id.get_ref().clone(),
                    client: s.client.clone(),
                    timezone: s.timezone.unwrap_or(default_zone),
                    tunnels: s.tunnels.clone(),
                    subnets: s.subnets.clone(),
                    devices: s
                        .devices
                        .iter()
                        .map(|d| Device {
                            name: d.name.get_ref().clone(),
                            ip: d.ip,
                            kind: d.kind.clone(),
                            serial: d.serial.clone(),
                        })
                        .collect(),
                })
                .collect(),
            technicians: config
                .technicians
                .iter()
                .map(|t| Technician {
                    id: t.id.get_ref().clone(),
                    name: t.name.clone(),
                    identities: t
                        .vpn
                        .iter()
                        .map(|v| normalize_identity(v.get_ref()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The technician a VPN identity belongs to.
    pub fn technician_of(&self, identity: &str) -> Option<&Technician> {
        let key = normalize_identity(identity);
        self.technicians
            .iter()
            .find(|t| t.identities.contains(&key))
    }

    pub fn technician(&self, id: &str) -> Option<&Technician> {
        self.technicians.iter().find(|t| t.id == id)
    }

    pub fn site(&self, id: &str) -> Option<&Site> {
        self.sites.iter().find(|s| s.id == id)
    }

    /// The site whose subnets hold an address.
    pub fn site_of_ip(&self, ip: IpAddr) -> Option<&Site> {
        self.sites.iter().find(|s| s.contains(ip))
    }

    /// The named device at an address, if the inventory lists one.
    pub fn device_at(&self, ip: IpAddr) -> Option<(&Site, &Device)> {
        self.sites
            .iter()
            .find_map(|s| s.devices.iter().find(|d| d.ip == ip).map(|d| (s, d)))
    }

    /// Whether a destination is inside a client's network: a site subnet or
    /// a private range. Other destinations are public: counted, not listed.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        is_private(ip) || self.site_of_ip(ip).is_some()
    }

    /// The zone a site's local times are read in.
    pub fn zone_of(&self, site: &str) -> Tz {
        self.site(site)
            .map(|s| s.timezone)
            .or(self.default_zone)
            .unwrap_or(chrono_tz::Europe::Paris)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_match_ignoring_case_domain_and_realm() {
        assert_eq!(normalize_identity("INTEG\\J.Martin"), "j.martin");
        assert_eq!(normalize_identity("j.martin@integ.local"), "j.martin");
        assert_eq!(
            normalize_identity("Le Gall, Jean-Marc"),
            "le gall, jean-marc"
        );
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.20.10",
            "100.64.0.1",
            "fd00::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["192.0.2.44", "8.8.8.8", "2001:db8::1", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
