#![no_main]
//! strongSwan charon messages (after the syslog header).

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::strongswan;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = strongswan::is_strongswan_app(&message);
    if let Err(e) = strongswan::message(&message) {
        text::check_error(&message, &e);
    }
});
