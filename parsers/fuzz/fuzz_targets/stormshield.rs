#![no_main]
//! Stormshield SNS `key=value` messages.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::stormshield;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = stormshield::is_stormshield(&message);
    if let Err(e) = stormshield::message(&message) {
        text::check_error(&message, &e);
    }
});
