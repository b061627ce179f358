#![no_main]
//! Cisco ASA / FTD messages (`%ASA-6-113039: ...`).

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::cisco_asa;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = cisco_asa::is_asa(&message);
    if let Err(e) = cisco_asa::message(&message) {
        text::check_error(&message, &e);
    }
});
