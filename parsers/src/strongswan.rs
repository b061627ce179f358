//! (being written) strongSwan charon.
use crate::{Extracted, ParseError};
pub fn is_strongswan_app(app: &str) -> bool {
    app == "charon" || app == "charon-systemd"
}
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
