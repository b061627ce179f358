#![no_main]
//! `conntrack -E -o timestamp` events.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::conntrack;

fuzz_target!(|data: &[u8]| {
    let line = text::text(data);
    let _ = conntrack::is_conntrack(&line);
    if let Err(e) = conntrack::line(&line) {
        text::check_error(&line, &e);
    }
});
