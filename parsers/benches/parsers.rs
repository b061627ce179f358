//! Throughput of every parser on the corpus lines, in lines/s and bytes/s.
//!
//! `cargo bench -p vpnledger-parsers --bench parsers`. Four kinds of
//! benchmarks, each measured twice, once per line (`*-lines` groups,
//! `Throughput::Elements`) and once per byte (`*-bytes` groups):
//!
//! - `envelope`: the RFC 3164 and RFC 5424 headers, times resolved to UTC
//!   (Europe/Paris, year 2024) by [`TimeResolver`], side by side with
//!   syslog_loose's exact zone-aware parse of the same lines; the setup
//!   checks that both read each line to the same time, host, app and
//!   message;
//! - `vendor`: each vendor parser on the messages the corpus routes to it;
//! - `line-reader`: [`LineReader::read`] end to end, format detected, on
//!   each corpus file.
//!
//! [`TimeResolver`]: vpnledger_parsers::TimeResolver
//! [`LineReader::read`]: vpnledger_parsers::LineReader::read

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use syslog_loose::Variant;
use vpnledger_parsers::{FormatChoice, LineReader};

use common::{LineSet, STREAM_FILES};

/// The two ways each set is measured: per line and per byte.
#[derive(Clone, Copy)]
enum Unit {
    Lines,
    Bytes,
}

impl Unit {
    const BOTH: [Unit; 2] = [Unit::Lines, Unit::Bytes];

    fn group<'c>(self, c: &'c mut Criterion, kind: &str) -> BenchmarkGroup<'c, WallTime> {
        let suffix = match self {
            Unit::Lines => "lines",
            Unit::Bytes => "bytes",
        };
        c.benchmark_group(format!("{kind}-{suffix}"))
    }

    fn throughput(self, set: &LineSet) -> Throughput {
        match self {
            Unit::Lines => Throughput::Elements(set.lines.len() as u64),
            Unit::Bytes => Throughput::Bytes(set.bytes()),
        }
    }
}

fn envelopes(c: &mut Criterion) {
    let rfc3164 = common::rfc3164_lines();
    let rfc3164_all = common::rfc3164_all_lines();
    let rfc5424 = common::rfc5424_lines();
    // Same work on both sides, or the ratio means nothing.
    common::assert_same_headers(&rfc3164, Variant::RFC3164);
    common::assert_same_headers(&rfc5424, Variant::RFC5424);

    for unit in Unit::BOTH {
        let mut group = unit.group(c, "envelope");

        // Ours: a resolver per pass over the set, as per file in `ingest`,
        // so the year rule never rolls from one pass to the next.
        group.throughput(unit.throughput(&rfc3164));
        group.bench_function("rfc3164/vpnledger", |b| {
            b.iter(|| {
                let mut resolver = common::resolver();
                for line in &rfc3164.lines {
                    black_box(common::ours_rfc3164(black_box(line), &mut resolver));
                }
            })
        });
        group.bench_function("rfc3164/syslog_loose", |b| {
            b.iter(|| {
                for line in &rfc3164.lines {
                    black_box(common::peer(black_box(line), Variant::RFC3164));
                }
            })
        });

        group.throughput(unit.throughput(&rfc3164_all));
        group.bench_function("rfc3164-all/vpnledger", |b| {
            b.iter(|| {
                let mut resolver = common::resolver();
                for line in &rfc3164_all.lines {
                    black_box(common::ours_rfc3164(black_box(line), &mut resolver));
                }
            })
        });

        group.throughput(unit.throughput(&rfc5424));
        group.bench_function("rfc5424/vpnledger", |b| {
            b.iter(|| {
                let mut resolver = common::resolver();
                for line in &rfc5424.lines {
                    black_box(common::ours_rfc5424(black_box(line), &mut resolver));
                }
            })
        });
        group.bench_function("rfc5424/syslog_loose", |b| {
            b.iter(|| {
                for line in &rfc5424.lines {
                    black_box(common::peer(black_box(line), Variant::RFC5424));
                }
            })
        });
        group.finish();
    }
}

fn vendors(c: &mut Criterion) {
    let sets = common::vendor_sets();
    for unit in Unit::BOTH {
        let mut group = unit.group(c, "vendor");
        for vendor in &sets {
            group.throughput(unit.throughput(&vendor.set));
            group.bench_function(vendor.set.name, |b| {
                b.iter(|| {
                    for message in &vendor.set.lines {
                        // Checked at setup: every message parses.
                        let _ = black_box((vendor.parse)(black_box(message)));
                    }
                })
            });
        }
        group.finish();
    }
}

fn line_reader(c: &mut Criterion) {
    let files: Vec<LineSet> = STREAM_FILES
        .iter()
        .map(|f| LineSet {
            name: f.name,
            lines: f.text.lines().collect(),
        })
        .collect();
    for unit in Unit::BOTH {
        let mut group = unit.group(c, "line-reader");
        for file in &files {
            group.throughput(unit.throughput(file));
            group.bench_function(file.name, |b| {
                b.iter(|| {
                    // A reader per file, as `ingest` and `parse` make one.
                    let mut reader = LineReader::new(FormatChoice::Auto);
                    for line in &file.lines {
                        let _ = black_box(reader.read(black_box(line)));
                    }
                })
            });
        }
        group.finish();
    }
}

/// Short runs: 52 benchmarks, and a 2-core machine shared with builds.
/// Criterion's command line (`--measurement-time`, `--sample-size`)
/// overrides these.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = envelopes, vendors, line_reader
}
criterion_main!(benches);
