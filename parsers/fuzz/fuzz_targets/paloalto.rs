#![no_main]
//! PAN-OS CSV records (GLOBALPROTECT, TRAFFIC).

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::paloalto;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = paloalto::is_panos(&message);
    if let Err(e) = paloalto::message(&message) {
        text::check_error(&message, &e);
    }
});
