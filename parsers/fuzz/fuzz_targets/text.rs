//! What every target shares: bytes to text as vpnledger reads them, and
//! the checks every parse error must pass.

use std::borrow::Cow;

use vpnledger_parsers::ParseError;

/// The input as text: UTF-8 when it is, else one character per byte
/// (Latin-1), as a legacy-encoded line reaches the parsers after decoding.
pub fn text(data: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(data) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(data.iter().map(|&b| char::from(b)).collect()),
    }
}

/// An error's column lies within the text it was computed on (1 to
/// len + 1), and its excerpt is what stands at that column.
pub fn check_error(input: &str, e: &ParseError) {
    assert!(
        (1..=input.len() + 1).contains(&e.column),
        "column {} outside 1..={} for {input:?}: {e}",
        e.column,
        input.len() + 1
    );
    let at = input
        .get(e.column - 1..)
        .unwrap_or_else(|| panic!("column {} is inside a character of {input:?}", e.column));
    assert!(
        at.starts_with(e.found.as_str()),
        "found {:?} is not at column {} of {input:?}",
        e.found,
        e.column
    );
}

/// `part` borrows from `whole`.
#[allow(dead_code)]
pub fn check_within(whole: &str, part: &str) {
    let start = whole.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    assert!(
        part.is_empty() || (p >= start && p + part.len() <= start + whole.len()),
        "{part:?} is not a part of {whole:?}"
    );
}
