//! (being written) Cisco ASA / AnyConnect messages.
use crate::{Extracted, ParseError};
pub fn is_asa(message: &str) -> bool {
    message.starts_with("%ASA-")
}
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
