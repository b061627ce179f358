#![no_main]
//! OpenVPN status files (versions 1, 2 and 3), read whole.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::openvpn::status;

fuzz_target!(|data: &[u8]| {
    let file = text::text(data);
    let _ = status::is_status_file(&file);
    let mut last = 0;
    for line in status::parse_status(&file) {
        assert!(line.number > last, "line numbers go up");
        last = line.number;
        text::check_within(&file, line.text);
        if let Some(e) = &line.error {
            text::check_error(line.text, e);
        }
    }
});
