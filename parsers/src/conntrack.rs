//! (being written) conntrack -E -o timestamp events.
use crate::{Extracted, ParseError};
pub fn is_conntrack(line: &str) -> bool {
    line.starts_with('[') && line.contains("] ") && false
}
pub fn line(_line: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
