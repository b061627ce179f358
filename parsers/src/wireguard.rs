//! (being written) wg show all dump.
use crate::{LineTime, ParseError, PeerStatus};
pub enum DumpLine<'a> {
    Poll(LineTime),
    Interface { name: &'a str },
    Peer(PeerStatus<'a>),
}
pub fn is_wireguard(_line: &str) -> bool {
    false
}
pub fn line(line: &str) -> Result<DumpLine<'_>, ParseError> {
    Err(ParseError::at(line, line, "a wg dump line"))
}
