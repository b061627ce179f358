#![no_main]
//! Linux netfilter LOG lines.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::netfilter;

fuzz_target!(|data: &[u8]| {
    let message = text::text(data);
    let _ = netfilter::is_netfilter(&message);
    if let Err(e) = netfilter::log_line(&message) {
        text::check_error(&message, &e);
    }
});
