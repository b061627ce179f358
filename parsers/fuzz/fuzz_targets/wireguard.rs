#![no_main]
//! `wg show all dump` lines and our `# poll` headers.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::wireguard;

fuzz_target!(|data: &[u8]| {
    let line = text::text(data);
    let _ = wireguard::is_wireguard(&line);
    if let Err(e) = wireguard::line(&line) {
        // A line of unexpected shape is reported by its field count, not
        // by an excerpt that could hold a private key.
        if !e.expected.starts_with("a wg dump line") {
            text::check_error(&line, &e);
        }
        // An interface line's private key never reaches an error.
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() == 5 && fields[1].len() == 44 && line.matches(fields[1]).count() == 1 {
            assert!(!e.found.contains(fields[1]), "private key in {e}");
        }
    }
});
