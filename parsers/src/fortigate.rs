//! (being written) FortiGate key=value logs.
use crate::{Extracted, ParseError};
pub fn is_fortigate(message: &str) -> bool {
    message.starts_with("date=") && message.contains("logid=")
}
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
