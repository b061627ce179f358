//! (being written) pfSense / OPNsense filterlog CSV.
use crate::{Extracted, ParseError};
pub fn message(_message: &str) -> Result<Extracted<'_>, ParseError> {
    Ok(Extracted::nothing())
}
