//! (being written) RFC 5424.
use crate::{Envelope, ParseError};
pub fn is_rfc5424(_line: &str) -> bool {
    false
}
pub fn rfc5424(line: &str) -> Result<Envelope<'_>, ParseError> {
    Err(ParseError::at(line, line, "RFC 5424"))
}
