//! OpenVPN: its own log file, its server messages and its status file.
//!
//! - [`log`] reads the line prefix of OpenVPN's `--log` file (ISO or the
//!   older ctime dates, or no time at all);
//! - [`message`] reads the server's messages, wherever they came from (its
//!   own file or syslog), into [`crate::Event`]s;
//! - [`status`] reads `--status` snapshots, versions 1, 2 and 3.

pub mod log;
pub mod message;
pub mod status;

pub use log::log_line;
pub use message::message;
pub use status::parse_status;
