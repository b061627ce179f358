#![no_main]
//! pfSense / OPNsense filterlog CSV lines.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::filterlog;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);

    if let Err(e) = filterlog::message(&message) {
        text::check_error(&message, &e);
    }
});
