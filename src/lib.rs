//! vpnledger: remote-access sessions rebuilt from VPN and firewall logs,
//! held against technicians' intervention reports.
//!
//! The binary (`src/main.rs`) is a thin command line over these modules:
//! - [`config`]: the TOML configuration, checked whole;
//! - [`inventory`]: sites, devices and technicians from the configuration;
//! - [`store`]: the SQLite store and its migrations;
//! - [`ingest`]: files into the store, from their checkpoints;
//! - [`sessions`]: the sessionizer, from events to sessions;
//! - [`reports`]: intervention reports, their import and history;
//! - [`reconcile`]: pre-fills and the audit's discrepancies;
//! - [`output`]: tables for people, JSON and CSV for programs.
//!
//! Log parsing itself lives in the `vpnledger-parsers` crate.

pub mod config;
pub mod ingest;
pub mod inventory;
pub mod output;
pub mod reconcile;
pub mod reports;
pub mod sessions;
pub mod store;

/// A problem with what the user gave us (a file, an id, a value): the
/// command exits with status 2 and this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}
