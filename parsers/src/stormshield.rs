//! (being written) Stormshield SNS.
use crate::{Extracted, ParseError};
pub fn is_stormshield(message: &str) -> bool {
    message.starts_with("id=firewall ")
}
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
