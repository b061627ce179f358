//! Heap allocations per line of each parser, on the corpus lines.
//!
//! `cargo bench -p vpnledger-parsers --bench allocations`. A counting
//! global allocator wraps the system's; each parser reads its line set once
//! to warm up, then ten times counted. The envelope parsers with UTC
//! conversion must not allocate at all (a target of ours): the run fails if
//! they do. The other figures are printed for the record.
//!
//! This is its own benchmark binary so that the counter costs the
//! throughput benchmark nothing.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use syslog_loose::Variant;
use vpnledger_parsers::{FormatChoice, LineReader};

use common::{LineSet, STREAM_FILES};

/// The system allocator, counting every allocation and reallocation.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Passes counted over each set.
const PASSES: u64 = 10;

/// Allocations per line of `pass` over `set`, after one pass to warm up.
fn per_line(set: &LineSet, mut pass: impl FnMut(&LineSet)) -> f64 {
    pass(set);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..PASSES {
        pass(set);
    }
    let counted = ALLOCATIONS.load(Ordering::Relaxed) - before;
    counted as f64 / (PASSES * set.lines.len() as u64) as f64
}

fn report(what: &str, set: &LineSet, allocations: f64) {
    println!(
        "{what:<34} {:>5} lines  {allocations:>6.2} allocations/line",
        set.lines.len()
    );
}

fn main() {
    let rfc3164 = common::rfc3164_lines();
    let rfc3164_all = common::rfc3164_all_lines();
    let rfc5424 = common::rfc5424_lines();
    common::assert_same_headers(&rfc3164, Variant::RFC3164);
    common::assert_same_headers(&rfc5424, Variant::RFC5424);
    println!("envelopes: both parsers read every compared line alike (time, host, app, message)");

    // The resolver is made once per set, outside the count, as `ingest`
    // makes one per file.
    let mut ours = Vec::new();
    for set in [&rfc3164, &rfc3164_all] {
        let mut resolver = common::resolver();
        let n = per_line(set, |s| {
            for line in &s.lines {
                black_box(common::ours_rfc3164(black_box(line), &mut resolver));
            }
        });
        report(&format!("envelope {}/vpnledger", set.name), set, n);
        ours.push((set.name, n));
    }
    let mut resolver = common::resolver();
    let n = per_line(&rfc5424, |s| {
        for line in &s.lines {
            black_box(common::ours_rfc5424(black_box(line), &mut resolver));
        }
    });
    report("envelope rfc5424/vpnledger", &rfc5424, n);
    ours.push((rfc5424.name, n));
    for (set, variant) in [(&rfc3164, Variant::RFC3164), (&rfc5424, Variant::RFC5424)] {
        let n = per_line(set, |s| {
            for line in &s.lines {
                black_box(common::peer(black_box(line), variant));
            }
        });
        report(&format!("envelope {}/syslog_loose", set.name), set, n);
    }

    for vendor in common::vendor_sets() {
        let n = per_line(&vendor.set, |s| {
            for message in &s.lines {
                let _ = black_box((vendor.parse)(black_box(message)));
            }
        });
        report(&format!("vendor {}", vendor.set.name), &vendor.set, n);
    }

    for file in STREAM_FILES {
        let set = LineSet {
            name: file.name,
            lines: file.text.lines().collect(),
        };
        let n = per_line(&set, |s| {
            let mut reader = LineReader::new(FormatChoice::Auto);
            for line in &s.lines {
                let _ = black_box(reader.read(black_box(line)));
            }
        });
        report(&format!("line-reader {}", set.name), &set, n);
    }

    let allocating: Vec<_> = ours.iter().filter(|(_, n)| *n > 0.0).collect();
    assert!(
        allocating.is_empty(),
        "envelope parsing with UTC conversion allocates: {allocating:?}"
    );
    println!("envelopes with UTC conversion: no allocation per line");
}
