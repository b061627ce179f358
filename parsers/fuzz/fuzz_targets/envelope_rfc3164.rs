#![no_main]
//! RFC 3164 envelopes: `syslog::rfc3164`.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::syslog;

fuzz_target!(|data: &[u8]| {
    let line = text::text(data);
    match syslog::rfc3164(&line) {
        Ok(e) => {
            text::check_within(&line, e.message);
            if let Some(host) = e.host {
                text::check_within(&line, host);
            }
        }
        Err(e) => text::check_error(&line, &e),
    }
});
