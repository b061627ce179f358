#![no_main]
//! A whole stream through one `LineReader`: the first byte picks the
//! format (auto, or one of `Format::ALL`), the rest is split into lines.

mod text;

use libfuzzer_sys::fuzz_target;
use vpnledger_parsers::{detect, message_event, Format, FormatChoice, LineReader};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let choice = match usize::from(pick) % (Format::ALL.len() + 1) {
        0 => FormatChoice::Auto,
        i => FormatChoice::Fixed(Format::ALL[i - 1]),
    };
    let stream = text::text(rest);
    let mut reader = LineReader::new(choice);
    for line in stream.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let _ = detect(line);
        match reader.read(line) {
            Ok(parsed) => {
                text::check_within(line, parsed.envelope.message);
                if let Some(device) = parsed.device {
                    text::check_within(line, device);
                }
                // The envelope's message alone gives the same event again.
                let again = message_event(&parsed.envelope);
                if parsed.envelope.format != Format::WireGuard {
                    assert!(again.is_ok(), "{line:?}: a second read failed");
                }
            }
            Err(e) => {
                if !e.expected.starts_with("a wg dump line") {
                    text::check_error(line, &e);
                }
            }
        }
    }
});
