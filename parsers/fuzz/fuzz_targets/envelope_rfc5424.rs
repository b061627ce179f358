#![no_main]
//! RFC 5424 envelopes: `rfc5424::rfc5424` and its detection.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::rfc5424;

fuzz_target!(|data: &[u8]| {
    let line = text::text(data);
    let _ = rfc5424::is_rfc5424(&line);
    match rfc5424::rfc5424(&line) {
        Ok(e) => {
            text::check_within(&line, e.message);
            assert!(!e.message.starts_with('\u{FEFF}') || line.contains("\u{FEFF}\u{FEFF}"));
        }
        Err(e) => text::check_error(&line, &e),
    }
});
