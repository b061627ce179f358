//! (being written) PAN-OS CSV.
use crate::{Extracted, ParseError};
pub fn is_panos(message: &str) -> bool {
    message.contains(",GLOBALPROTECT,") || message.contains(",TRAFFIC,")
}
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
