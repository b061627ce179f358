//! The configuration file: store, defaults, sources, inventory, tolerances.
//!
//! One TOML file, read whole and checked whole: `check-config` lists every
//! error with the file, line and key it is about. An unknown key is an error,
//! so a typo never silently falls back to a default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// Where the configuration is read from when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vpnledger/vpnledger.toml";
/// Where the store lives when neither `--db` nor `[store] path` says.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/vpnledger/vpnledger.db";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    #[serde(default, rename = "site")]
    pub sites: Vec<SiteConfig>,
    #[serde(default, rename = "technician")]
    pub technicians: Vec<TechnicianConfig>,
    #[serde(default)]
    pub reconcile: ReconcileConfig,
    #[serde(default)]
    pub api: ApiConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// The zone of log lines that carry no offset.
    #[serde(default = "paris")]
    pub timezone: Tz,
    /// How bytes that are not UTF-8 are read.
    #[serde(default = "windows_1252")]
    pub encoding: String,
    /// Netfilter LOG prefixes that name a drop, matched as words in any case.
    #[serde(default = "default_drop_prefixes")]
    pub drop_prefixes: Vec<String>,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timezone: paris(),
            encoding: windows_1252(),
            drop_prefixes: default_drop_prefixes(),
        }
    }
}

fn paris() -> Tz {
    chrono_tz::Europe::Paris
}

fn windows_1252() -> String {
    "windows-1252".to_owned()
}

pub fn default_drop_prefixes() -> Vec<String> {
    ["DROP", "REJECT", "BLOCK", "DENY"]
        .map(String::from)
        .to_vec()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    File,
    Syslog,
    Loki,
    Status,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: Spanned<String>,
    pub kind: SourceKind,
    /// A path or a glob (file), or the status file to poll (status).
    pub path: Option<String>,
    /// `auto` or a format name.
    pub format: Option<Spanned<String>>,
    /// The gateway's name for lines that carry no host.
    pub gateway: Option<String>,
    pub timezone: Option<Tz>,
    pub encoding: Option<Spanned<String>>,
    pub drop_prefixes: Option<Vec<String>>,
    pub udp: Option<SocketAddr>,
    pub tcp: Option<SocketAddr>,
    /// The largest syslog message kept whole, in bytes.
    pub max_message: Option<usize>,
    pub url: Option<String>,
    pub query: Option<String>,
    pub command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "duration_opt")]
    pub interval: Option<Duration>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub id: Spanned<String>,
    pub client: Option<String>,
    pub address: Option<String>,
    pub timezone: Option<Tz>,
    #[serde(default)]
    pub tunnels: Vec<String>,
    #[serde(default)]
    pub subnets: Vec<IpNet>,
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub name: Spanned<String>,
    pub ip: IpAddr,
    pub kind: Option<String>,
    pub serial: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechnicianConfig {
    pub id: Spanned<String>,
    pub name: Option<String>,
    /// Every identity this person has on the gateways.
    #[serde(default)]
    pub vpn: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    #[serde(default = "ten_minutes", deserialize_with = "duration")]
    pub start_tolerance: Duration,
    #[serde(default = "ten_minutes", deserialize_with = "duration")]
    pub end_tolerance: Duration,
    #[serde(default = "ten_minutes", deserialize_with = "duration")]
    pub duration_tolerance: Duration,
    #[serde(default = "one_hour", deserialize_with = "duration")]
    pub match_margin: Duration,
    #[serde(default = "one_minute", deserialize_with = "duration")]
    pub reconnect_grace: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            start_tolerance: ten_minutes(),
            end_tolerance: ten_minutes(),
            duration_tolerance: ten_minutes(),
            match_margin: one_hour(),
            reconnect_grace: one_minute(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Where `run` serves the HTTP API and web page.
    pub listen: Option<SocketAddr>,
}

fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}

fn one_hour() -> Duration {
    Duration::from_secs(3600)
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

/// Reads `30s`, `10m`, `1h30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration like 30s, 10m or 1h30m ({e})"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

fn duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// A configuration problem, with the place it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                line,
                self.field,
                self.message
            ),
            None => write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.message
            ),
        }
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                field: "file".into(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and checks configuration text; `path` names it in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let to_error = |e: &toml::de::Error| ConfigError {
            file: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            field: field_at(text, e.span().map_or(0, |s| s.start)),
            message: e.message().to_owned(),
        };
        let config: Config = match toml::from_str(text) {
            Ok(config) => config,
            // A syntax error stops the reading: nothing after it can be
            // trusted.
            Err(e) if toml::from_str::<toml::Table>(text).is_err() => {
                return Err(ConfigErrors(vec![to_error(&e)]))
            }
            // A wrong key or value does not: each table is read again on
            // its own, so that every one of them is listed.
            Err(e) => {
                let mut errors: Vec<ConfigError> = sections(text)
                    .into_iter()
                    .flat_map(|section| section_errors(text, &section))
                    .map(|e| to_error(&e))
                    .collect();
                let first = to_error(&e);
                if !errors.iter().any(|known| known.line == first.line) {
                    errors.push(first);
                }
                errors.sort_by_key(|e| e.line);
                return Err(ConfigErrors(errors));
            }
        };
        let errors = config.check(text, path);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The checks TOML types cannot express: names unique, the keys a
    /// source kind needs, encodings and formats known, one owner per
    /// identity.
    fn check(&self, text: &str, path: &Path) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut error = |start: usize, field: String, message: String| {
            errors.push(ConfigError {
                file: path.to_owned(),
                line: Some(line_of(text, start)),
                field,
                message,
            });
        };

        if encoding_rs::Encoding::for_label(self.defaults.encoding.as_bytes()).is_none() {
            let at = text.find("encoding").unwrap_or(0);
            error(
                at,
                "defaults.encoding".into(),
                format!("unknown encoding {:?}", self.defaults.encoding),
            );
        }

        let mut seen = std::collections::HashMap::new();
        for (i, s) in self.sources.iter().enumerate() {
            let at = s.name.span().start;
            let field = |key: &str| format!("source[{i}].{key}");
            if let Some(first) = seen.insert(s.name.get_ref().clone(), at) {
                error(
                    at,
                    field("name"),
                    format!(
                        "{:?} is already the name of the source at line {}",
                        s.name.get_ref(),
                        line_of(text, first)
                    ),
                );
            }
            if let Some(format) = &s.format {
                if let Err(e) = format.get_ref().parse::<vpnledger_parsers::FormatChoice>() {
                    error(format.span().start, field("format"), e);
                }
            }
            if let Some(enc) = &s.encoding {
                if encoding_rs::Encoding::for_label(enc.get_ref().as_bytes()).is_none() {
                    error(
                        enc.span().start,
                        field("encoding"),
                        format!("unknown encoding {:?}", enc.get_ref()),
                    );
                }
            }
            let missing = match s.kind {
                SourceKind::File if s.path.is_none() => Some("a file source needs path"),
                SourceKind::Syslog if s.udp.is_none() && s.tcp.is_none() => {
                    Some("a syslog source needs udp, tcp or both")
                }
                SourceKind::Loki if s.url.is_none() || s.query.is_none() => {
                    Some("a loki source needs url and query")
                }
                SourceKind::Status if s.path.is_none() && s.command.is_none() => {
                    Some("a status source needs path or command")
                }
                _ => None,
            };
            if let Some(message) = missing {
                error(at, field("kind"), message.into());
            }
        }

        let mut site_ids = std::collections::HashMap::new();
        for (i, site) in self.sites.iter().enumerate() {
            let at = site.id.span().start;
            if let Some(first) = site_ids.insert(site.id.get_ref().clone(), at) {
                error(
                    at,
                    format!("site[{i}].id"),
                    format!(
                        "{:?} is already the id of the site at line {}",
                        site.id.get_ref(),
                        line_of(text, first)
                    ),
                );
            }
            let mut names = std::collections::HashSet::new();
            for (j, device) in site.devices.iter().enumerate() {
                if !names.insert(device.name.get_ref().to_lowercase()) {
                    error(
                        device.name.span().start,
                        format!("site[{i}].device[{j}].name"),
                        format!(
                            "{:?} appears twice in site {:?}",
                            device.name.get_ref(),
                            site.id.get_ref()
                        ),
                    );
                }
            }
        }

        let mut tech_ids = std::collections::HashMap::new();
        let mut identities: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        for (i, tech) in self.technicians.iter().enumerate() {
            let at = tech.id.span().start;
            if let Some(first) = tech_ids.insert(tech.id.get_ref().clone(), at) {
                error(
                    at,
                    format!("technician[{i}].id"),
                    format!(
                        "{:?} is already the id of the technician at line {}",
                        tech.id.get_ref(),
                        line_of(text, first)
                    ),
                );
            }
            for (j, identity) in tech.vpn.iter().enumerate() {
                let key = crate::inventory::normalize_identity(identity.get_ref());
                if let Some(owner) = identities.insert(key, tech.id.get_ref().clone()) {
                    if owner != *tech.id.get_ref() {
                        error(
                            identity.span().start,
                            format!("technician[{i}].vpn[{j}]"),
                            format!(
                                "identity {:?} already belongs to technician {owner:?}",
                                identity.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        errors
    }

    /// The store path: `--db` wins over `[store] path`.
    pub fn store_path(&self, flag: Option<&Path>) -> PathBuf {
        flag.map(Path::to_owned)
            .or_else(|| self.store.path.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH))
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.get_ref() == name)
    }
}

/// The most errors listed for one table.
const MAX_ERRORS_PER_TABLE: usize = 32;

/// One table of a configuration file: its header's name (`""` for the
/// keys before any header) and the byte range of its keys.
struct Section {
    name: String,
    keys: std::ops::Range<usize>,
}

/// The tables of a configuration, each `[[site.device]]` apart from its
/// `[[site]]`.
fn sections(text: &str) -> Vec<Section> {
    let mut sections = vec![Section {
        name: String::new(),
        keys: 0..0,
    }];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let header = trimmed
            .strip_prefix("[[")
            .and_then(|h| h.split_once("]]"))
            .or_else(|| trimmed.strip_prefix('[').and_then(|h| h.split_once(']')))
            .filter(|(_, rest)| rest.trim().is_empty() || rest.trim().starts_with('#'));
        offset += line.len();
        match header {
            Some((name, _)) => sections.push(Section {
                name: name.trim().to_owned(),
                keys: offset..offset,
            }),
            None => sections.last_mut().expect("one at least").keys.end = offset,
        }
    }
    sections
}

/// Every wrong key or value of one table, read alone as the type its
/// header names. After each error its line is blanked and the table read
/// again, until it reads or a required key is what is missing.
fn section_errors(text: &str, section: &Section) -> Vec<toml::de::Error> {
    fn read<T: serde::de::DeserializeOwned>(block: &str) -> Option<toml::de::Error> {
        toml::from_str::<T>(block).err()
    }
    let read: fn(&str) -> Option<toml::de::Error> = match section.name.as_str() {
        "" => read::<Config>,
        "store" => read::<StoreConfig>,
        "defaults" => read::<Defaults>,
        "source" => read::<SourceConfig>,
        "site" => read::<SiteConfig>,
        "site.device" => read::<DeviceConfig>,
        "technician" => read::<TechnicianConfig>,
        "reconcile" => read::<ReconcileConfig>,
        "api" => read::<ApiConfig>,
        // An unknown table: the whole file's error names it.
        _ => return Vec::new(),
    };

    // The table's keys where they are in the file, all else blanked byte
    // for byte, so that offsets and lines stay the file's.
    let blank = |part: &str| -> String {
        part.bytes()
            .map(|b| if b == b'\n' { '\n' } else { ' ' })
            .collect()
    };
    let (from, to) = (section.keys.start, section.keys.end);
    let mut block = format!(
        "{}{}{}",
        blank(&text[..from]),
        &text[from..to],
        blank(&text[to..])
    );

    let mut errors = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    while let Some(e) = read(&block) {
        let missing_blanked = blanked
            .iter()
            .any(|key| e.message().contains(&format!("missing field `{key}`")));
        if missing_blanked {
            break;
        }
        let Some(at) = e
            .span()
            .map(|s| s.start)
            .filter(|at| (from..to).contains(at))
        else {
            errors.push(e);
            break;
        };
        let line_start = block[..at].rfind('\n').map_or(0, |i| i + 1);
        let line_end = block[at..].find('\n').map_or(block.len(), |i| at + i);
        blanked.push(field_at(&block, at));
        errors.push(e);
        let blank_line = blank(&block[line_start..line_end]);
        block.replace_range(line_start..line_end, &blank_line);
        // A value over several lines, cut by the blanking: stop there.
        if errors.len() >= MAX_ERRORS_PER_TABLE || toml::from_str::<toml::Table>(&block).is_err() {
            break;
        }
    }
    errors
}

/// The 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key on the line of `offset`, to name the field of a TOML error.
fn field_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) => key.trim().to_owned(),
        None => line.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let err = load("[defaults]\ntimezone = \"Europe/Paris\"\ntimezon = \"UTC\"\n").unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].line, Some(3));
        assert_eq!(err.0[0].field, "timezon");
        assert!(
            err.0[0].message.contains("unknown field `timezon`"),
            "{}",
            err.0[0].message
        );
    }

    #[test]
    fn bad_duration_names_line_and_key() {
        let err = load("[reconcile]\nstart_tolerance = \"ten minutes\"\n").unwrap_err();
        assert_eq!(err.0[0].line, Some(2));
        assert_eq!(err.0[0].field, "start_tolerance");
        assert!(err.0[0].message.contains("not a duration"));
    }

    #[test]
    fn every_semantic_error_is_listed() {
        let text = "[[source]]\nname = \"a\"\nkind = \"file\"\n\n[[source]]\nname = \"a\"\nkind = \"syslog\"\nformat = \"cisco\"\n\n[[technician]]\nid = \"x\"\nvpn = [\"J.Martin\"]\n\n[[technician]]\nid = \"y\"\nvpn = [\"DOM\\\\j.martin\"]\n";
        let err = load(text).unwrap_err();
        let lines: Vec<String> = err.0.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 5, "{lines:#?}");
        assert!(lines[0].starts_with("test.toml:2: source[0].kind: a file source needs path"));
        assert!(lines[1].starts_with(
            "test.toml:6: source[1].name: \"a\" is already the name of the source at line 2"
        ));
        assert!(lines[2].starts_with("test.toml:8: source[1].format: unknown format \"cisco\""));
        assert!(lines[3].starts_with("test.toml:6: source[1].kind: a syslog source needs udp"));
        assert!(lines[4].starts_with("test.toml:16: technician[1].vpn[0]: identity \"DOM\\\\j.martin\" already belongs to technician \"x\""));
    }

    #[test]
    fn a_wrong_value_in_each_of_two_tables_lists_both() {
        let text = "[defaults]\ntimezone = \"Europe/Nowhere\"\n\n[[source]]\nname = \"a\"\nkind = \"tape\"\n\n[[site]]\nid = \"lyon-01\"\nsubnets = [\"10.20.0.0/24\"]\n  [[site.device]]\n  name = \"NVR-01\"\n  ip = \"10.20.0.999\"\n\n[reconcile]\nmatch_margin = \"an hour\"\n";
        let err = load(text).unwrap_err();
        let at: Vec<(Option<usize>, &str)> =
            err.0.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            at,
            [
                (Some(2), "timezone"),
                (Some(6), "kind"),
                (Some(13), "ip"),
                (Some(16), "match_margin")
            ]
        );
    }

    #[test]
    fn every_wrong_key_and_value_of_one_site_is_listed() {
        let text = "[[site]]\nid = \"lyon-01\"\ncolour = \"blue\"\nsubnets = [\"172.16.40.0/33\"]\n\n  [[site.device]]\n  name = \"NVR-01\"\n  ip = \"10.20.0.300\"\n\n  [[site.device]]\n  name = \"CAM-01\"\n  ip = \"10.20.0.13\"\n\n  [[site.device]]\n  name = \"CAM-02\"\n  ip = \"10.20.0.1.4\"\n  serial = 7\n";
        let err = load(text).unwrap_err();
        let at: Vec<(Option<usize>, &str)> =
            err.0.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            at,
            [
                (Some(3), "colour"),
                (Some(4), "subnets"),
                (Some(8), "ip"),
                (Some(16), "ip"),
                (Some(17), "serial")
            ],
            "{err}"
        );
    }

    #[test]
    fn a_syntax_error_is_the_only_error_listed() {
        let err =
            load("[defaults]\ntimezone = \"UTC\n[reconcile]\nmatch_margin = 3\n").unwrap_err();
        assert_eq!(err.0.len(), 1);
        assert_eq!(err.0[0].line, Some(2));
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load("").unwrap();
        assert_eq!(c.defaults.timezone, chrono_tz::Europe::Paris);
        assert_eq!(c.reconcile.match_margin, Duration::from_secs(3600));
        assert_eq!(c.store_path(None), PathBuf::from(DEFAULT_STORE_PATH));
        assert_eq!(c.store_path(Some(Path::new("x.db"))), PathBuf::from("x.db"));
    }
}
