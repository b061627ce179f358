#![no_main]
//! FortiGate `key=value` messages, and the `key=value` splitter under them.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::{fortigate, kv};

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = fortigate::is_fortigate(&message);
    if let Err(e) = kv::fields(&message) {
        text::check_error(&message, &e);
    }
    if let Err(e) = fortigate::message(&message) {
        text::check_error(&message, &e);
    }
});
