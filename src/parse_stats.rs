//! `parse --stats`: lines counted by format and event, on every core.
//!
//! The file is cut into pieces at line ends; each piece is parsed on a
//! thread of its own, and the counts added up. What carries from line to
//! line is kept in order on the calling thread: each line's time is
//! resolved there, in file order (the year rule follows the file's
//! sequence), and a WireGuard dump line takes the time of the last
//! `# poll` line before it, even one in an earlier piece.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use encoding_rs::Encoding;
use vpnledger_parsers::{Format, FormatChoice, LineReader, LineTime, TimeFlag, TimeResolver};

use crate::ingest::decode;

/// About this many bytes go to a thread at a time (cut at a line end).
const PIECE_BYTES: usize = 1 << 20;

/// Lines counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LineStats {
    pub lines: u64,
    /// Lines no parser understood.
    pub errors: u64,
    /// Lines understood whose time could not be placed (a local time the
    /// zone skips is placed, and flagged; a line without a time is counted
    /// in `received_time`).
    pub time_errors: u64,
    /// Lines understood that wrote no time: dated when they were read.
    pub received_time: u64,
    /// Lines understood, by format and event kind (`(no event)`).
    pub by_kind: HashMap<(Format, &'static str), u64>,
}

impl LineStats {
    fn add(&mut self, other: &LineStats) {
        self.lines += other.lines;
        self.errors += other.errors;
        self.time_errors += other.time_errors;
        self.received_time += other.received_time;
        for (key, n) in &other.by_kind {
            *self.by_kind.entry(*key).or_default() += n;
        }
    }
}

/// What a thread read from one piece: its counts and the time each
/// understood line wrote, in order, for the calling thread to resolve.
struct Piece {
    stats: LineStats,
    times: Vec<(bool, LineTime)>,
    /// The piece's bytes, for the next piece to reuse.
    buffer: Vec<u8>,
}

fn parse_piece(bytes: Vec<u8>, format: FormatChoice, encoding: &'static Encoding) -> Piece {
    let mut reader = LineReader::new(format);
    let mut stats = LineStats::default();
    // About one line per 100 bytes: grown once or not at all.
    let mut times = Vec::with_capacity(bytes.len() / 100);
    // A handful of (format, kind) pairs: a list beats a hash per line.
    let mut by_kind: Vec<((Format, &'static str), u64)> = Vec::new();
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', &bytes).chain(
        // A last line without a newline.
        (!bytes.ends_with(b"\n") && !bytes.is_empty()).then_some(bytes.len()),
    );
    for end in ends {
        let raw = &bytes[start..end];
        start = end + 1;
        stats.lines += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let (text, _) = decode(raw, encoding);
        match reader.read(&text) {
            Ok(p) => {
                let key = (
                    p.envelope.format,
                    p.event.as_ref().map_or("(no event)", |e| e.kind()),
                );
                match by_kind.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => by_kind.push((key, 1)),
                }
                times.push((p.envelope.format == Format::WireGuard, p.envelope.time));
            }
            Err(_) => stats.errors += 1,
        }
    }
    stats.by_kind = by_kind.into_iter().collect();
    Piece {
        stats,
        times,
        buffer: bytes,
    }
}

/// Cuts the input into pieces of whole lines, read straight into the
/// piece (no copy through a reader's buffer).
#[derive(Default)]
struct Pieces {
    /// What followed the last line end of the piece before.
    rest: Vec<u8>,
}

impl Pieces {
    /// The next piece, in `piece` (a buffer to reuse): about
    /// [`PIECE_BYTES`], whole lines, the last one without a newline only
    /// at the end of the input. Empty at the end.
    fn next(&mut self, input: &mut dyn Read, mut piece: Vec<u8>) -> std::io::Result<Vec<u8>> {
        piece.clear();
        piece.append(&mut self.rest);
        // Where a line end is looked for: the carried-over bytes have none
        // after their first line, so from the start.
        let mut scanned = 0;
        loop {
            // A line longer than a piece is read on, in reads as long as
            // what is already there, each scanned once.
            let want = PIECE_BYTES
                .saturating_sub(piece.len())
                .max(piece.len())
                .max(4096);
            let read = input.take(want as u64).read_to_end(&mut piece)?;
            if read < want {
                // The end of the input: all of it, whatever its last line.
                return Ok(piece);
            }
            // Else up to the last line end.
            if let Some(end) = memchr::memrchr(b'\n', &piece[scanned..]) {
                let end = scanned + end;
                self.rest.extend_from_slice(&piece[end + 1..]);
                piece.truncate(end + 1);
                return Ok(piece);
            }
            scanned = piece.len();
        }
    }
}

/// Counts the lines of `input`, `first` (already read) before them, on
/// `threads` threads; times are resolved with `resolver` in file order.
pub fn count_lines(
    first: Vec<u8>,
    input: &mut dyn Read,
    format: FormatChoice,
    encoding: &'static Encoding,
    resolver: &mut TimeResolver,
    received: DateTime<Utc>,
    threads: usize,
) -> std::io::Result<LineStats> {
    let threads = threads.max(1);
    let mut total = LineStats::default();
    let mut last_poll: Option<LineTime> = None;
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut resolve_in_order = |piece: Piece, total: &mut LineStats, spare: &mut Vec<Vec<u8>>| {
        total.add(&piece.stats);
        spare.push(piece.buffer);
        for (is_dump, time) in piece.times {
            let time = match (is_dump, time) {
                (true, LineTime::Missing) => last_poll.unwrap_or(LineTime::Missing),
                (true, polled) => {
                    last_poll = Some(polled);
                    polled
                }
                (false, time) => time,
            };
            match resolver.resolve(&time, received) {
                Ok(r) if r.flag == Some(TimeFlag::ReceivedTime) => total.received_time += 1,
                Ok(_) => {}
                Err(_) => total.time_errors += 1,
            }
        }
    };

    std::thread::scope(|scope| -> std::io::Result<()> {
        let (results, finished) = mpsc::channel::<(u64, Piece)>();
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            // One piece waits per thread at most: memory stays bounded.
            let (to_worker, pieces) = mpsc::sync_channel::<(u64, Vec<u8>)>(1);
            let results = results.clone();
            scope.spawn(move || {
                for (index, bytes) in pieces {
                    let piece = parse_piece(bytes, format, encoding);
                    if results.send((index, piece)).is_err() {
                        return;
                    }
                }
            });
            workers.push(to_worker);
        }
        drop(results);

        let mut waiting: BTreeMap<u64, Piece> = BTreeMap::new();
        let mut next = 0u64;
        let mut sent = 0u64;
        let mut pieces = Pieces { rest: first };
        let read: std::io::Result<()> = (|| {
            loop {
                let buffer = spare.pop().unwrap_or_default();
                let bytes = pieces.next(input, buffer)?;
                if bytes.is_empty() {
                    return Ok(());
                }
                // Round robin; a result is taken in whenever one is ready,
                // so pieces done out of order do not pile up.
                let worker = &workers[(sent % threads as u64) as usize];
                if worker.send((sent, bytes)).is_err() {
                    return Ok(());
                }
                sent += 1;
                while let Ok((index, piece)) = finished.try_recv() {
                    waiting.insert(index, piece);
                }
                while let Some(piece) = waiting.remove(&next) {
                    resolve_in_order(piece, &mut total, &mut spare);
                    next += 1;
                }
            }
        })();
        drop(workers);
        for (index, piece) in finished {
            waiting.insert(index, piece);
        }
        while let Some(piece) = waiting.remove(&next) {
            resolve_in_order(piece, &mut total, &mut spare);
            next += 1;
        }
        read
    })?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use vpnledger_parsers::YearRule;

    fn resolver() -> TimeResolver {
        TimeResolver::new(
            chrono_tz::Europe::Paris,
            YearRule::Sequential {
                year: 2024,
                latest: None,
            },
        )
    }

    fn count(text: &str, threads: usize) -> LineStats {
        let received = Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap();
        let bytes = text.as_bytes();
        let cut = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut rest = &bytes[cut..];
        count_lines(
            bytes[..cut].to_vec(),
            &mut rest,
            FormatChoice::Auto,
            encoding_rs::WINDOWS_1252,
            &mut resolver(),
            received,
            threads,
        )
        .unwrap()
    }

    const OPEN: &str = "Mar 12 09:14:03 vpn-lyon openvpn[1873]: 198.51.100.23:51734 [j.martin] Peer Connection Initiated with [AF_INET]198.51.100.23:51734\n";
    const TRAFFIC: &str = "Mar 12 09:15:10 vpn-lyon kernel: [812345.118204] VPN-FWD IN=tun0 OUT=eth1 MAC= SRC=10.8.0.6 DST=192.168.20.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=40211 DF PROTO=TCP SPT=50412 DPT=443 WINDOW=64240 RES=0x00 SYN URGP=0\n";
    const NOISE: &str = "Mar 12 09:15:11 vpn-lyon sshd[901]: Accepted publickey for admin\n";
    const BAD: &str = "this is no log line\n";

    #[test]
    fn pieces_on_several_threads_count_as_one_pass() {
        // Over 3 MiB: several pieces, cut in the middle of the pattern.
        let block = [OPEN, TRAFFIC, TRAFFIC, NOISE, BAD].concat();
        let n = (3 << 20) / block.len() + 1;
        let text = block.repeat(n);
        let one = count(&text, 1);
        let two = count(&text, 2);
        let n = n as u64;
        assert_eq!(one.lines, 5 * n);
        assert_eq!(one.errors, n);
        assert_eq!(one.time_errors, 0);
        assert_eq!(one.by_kind[&(Format::Rfc3164, "traffic")], 2 * n);
        assert_eq!(one.by_kind[&(Format::Rfc3164, "(no event)")], n);
        assert_eq!(one, two);
    }

    #[test]
    fn a_last_line_without_newline_and_crlf_lines_count() {
        let text = format!(
            "{}{}{}",
            OPEN.replace('\n', "\r\n"),
            TRAFFIC,
            NOISE.trim_end()
        );
        let stats = count(&text, 2);
        assert_eq!(stats.lines, 3);
        assert_eq!(stats.errors, 0);
        assert_eq!(stats.by_kind.values().sum::<u64>(), 3);
    }

    #[test]
    fn a_line_longer_than_a_piece_is_one_line() {
        let long = format!("{}\n", "x".repeat(PIECE_BYTES * 3 / 2));
        let text = [OPEN, &long, TRAFFIC, &long, NOISE].concat();
        let stats = count(&text, 2);
        assert_eq!(stats.lines, 5);
        assert_eq!(stats.errors, 2);
        assert_eq!(stats.by_kind[&(Format::Rfc3164, "traffic")], 1);
    }

    #[test]
    fn dump_lines_take_the_poll_time_of_an_earlier_piece() {
        // A poll, then more than a piece of dump lines: all are placed.
        let peer = "wg0\tx5b3TjYr8Qs2kZJvVf0mUo1bL4cN7pE9gH6dA2wRtKs=\t(none)\t203.0.113.7:51820\t10.44.0.2/32\t1718000000\t1024\t2048\t25\n";
        let peers = PIECE_BYTES / peer.len() + 10;
        let text = format!("# poll 2024-06-10T06:15:00Z\n{}", peer.repeat(peers));
        let stats = count(&text, 2);
        assert_eq!(stats.lines, peers as u64 + 1);
        assert_eq!(stats.errors, 0, "{stats:?}");
        assert_eq!(stats.received_time, 0, "{stats:?}");
        assert!(stats.by_kind.keys().all(|(f, _)| *f == Format::WireGuard));
        // Without a poll, they are dated when read.
        let stats = count(&peer.repeat(peers), 2);
        assert_eq!(stats.received_time, peers as u64, "{stats:?}");
    }
}
