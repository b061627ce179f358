#![no_main]
//! OpenVPN's `--log` line prefix and its server messages.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::openvpn;

fuzz_target!(|data: &[u8]| {
    let line = text::text(data);
    let envelope = openvpn::log_line(&line);
    text::check_within(&line, envelope.message);
    if let Err(e) = openvpn::message(envelope.message) {
        text::check_error(envelope.message, &e);
    }
    if let Err(e) = openvpn::message(&line) {
        text::check_error(&line, &e);
    }
});
