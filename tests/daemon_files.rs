//! `vpnledger run` tailing files while a program writes them and they are
//! rotated in every common way: each line written is stored exactly once.
//!
//! A writer thread plays the program that logs (it appends to its open
//! file and reopens the path when told, as syslog daemons do after a
//! rotation); the test thread plays logrotate, in an order drawn from a
//! fixed seed. Every line is a netfilter LOG line carrying one traffic
//! event, unique, so the count of stored records and of distinct raw lines
//! must both equal the count of lines written.

#[path = "support/daemon.rs"]
mod daemon;
mod support;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::Duration;

use daemon::{append, netfilter_line, query_i64, record_counts, wait_for_records, Daemon, Rng};
use support::Ledger;

/// The order of rotations and the pauses between them come from here.
const SEED: u64 = 0x005e_ed0f_11e5;
const STORE_TIMEOUT: Duration = Duration::from_secs(90);

/// A ledger tailing `<its folder>/logs/*.log`, and that folder.
fn tailing_ledger() -> (Ledger, PathBuf) {
    let probe = Ledger::new();
    let logs = probe.dir.path().join("logs");
    fs::create_dir_all(&logs).expect("logs folder");
    let config = format!(
        "[defaults]\ntimezone = \"UTC\"\n\n[[source]]\nname = \"fw-lyon\"\nkind = \"file\"\npath = \"{}/*.log\"\n",
        logs.display()
    );
    fs::write(&probe.config, config).expect("write config");
    (probe, logs)
}

/// Makes an empty file at `path` whose inode is `inode`, freed before:
/// files are created in `dir` (where the file system looks first) until
/// one is given it. False when none was within a bounded number of tries.
fn create_at_inode(dir: &Path, path: &Path, inode: u64) -> bool {
    let mut spares = Vec::new();
    let mut found = false;
    for n in 0..20_000 {
        // Not `*.log`: the daemon's glob never sees them.
        let spare = dir.join(format!("spare-{n}.tmp"));
        File::create(&spare).expect("create a spare file");
        if fs::metadata(&spare).expect("stat").ino() == inode {
            fs::rename(&spare, path).expect("rename onto the log");
            found = true;
            break;
        }
        spares.push(spare);
    }
    for spare in spares {
        fs::remove_file(spare).expect("remove a spare file");
    }
    found
}

/// The program writing its log.
struct Program {
    path: PathBuf,
    file: File,
    /// The number of the next line: every line has its own.
    next: u64,
    /// After a rotation, lines still written to the old file before the
    /// program reopens its path (it has not been told yet).
    reopen_after: Option<u64>,
}

impl Program {
    fn new(path: &Path) -> Program {
        Program {
            path: path.to_owned(),
            file: append(path),
            next: 0,
            reopen_after: None,
        }
    }

    /// Writes one line; every third one in two writes, so the daemon sees
    /// partial lines.
    fn write_line(&mut self) {
        let line = netfilter_line(self.next);
        self.next += 1;
        if self.next.is_multiple_of(3) {
            let (head, tail) = line.split_at(line.len() / 2);
            self.file.write_all(head.as_bytes()).expect("write");
            sleep(Duration::from_micros(300));
            self.file.write_all(tail.as_bytes()).expect("write");
        } else {
            self.file.write_all(line.as_bytes()).expect("write");
        }
        match self.reopen_after {
            Some(0) => {
                self.file = append(&self.path);
                self.reopen_after = None;
            }
            Some(n) => self.reopen_after = Some(n - 1),
            None => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Rotation {
    RenameAndCreate,
    CopyTruncate,
    MovedOntoPath,
    DeleteAndRecreate,
}

#[test]
fn every_rotation_while_writing_stores_each_line_once() {
    let (ledger, logs) = tailing_ledger();
    let live = logs.join("a.log");
    let program = Arc::new(Mutex::new(Program::new(&live)));
    let mut daemon = Daemon::start(&ledger);

    // The program writes a few lines every millisecond or two until told
    // to stop.
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (program, done) = (program.clone(), done.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(SEED ^ 0xabc);
            while !done.load(Ordering::Relaxed) {
                {
                    let mut p = program.lock().expect("program lock");
                    for _ in 0..rng.between(1, 6) {
                        p.write_line();
                    }
                }
                sleep(Duration::from_micros(rng.between(500, 2_000)));
            }
        })
    };

    // Each way of rotating, twice, in an order drawn from the seed.
    let mut rng = Rng::new(SEED);
    let mut rotations = Vec::new();
    for _ in 0..2 {
        rotations.extend([
            Rotation::RenameAndCreate,
            Rotation::CopyTruncate,
            Rotation::MovedOntoPath,
            Rotation::DeleteAndRecreate,
        ]);
    }
    for i in (1..rotations.len()).rev() {
        rotations.swap(i, rng.between(0, i as u64 + 1) as usize);
    }
    for (k, rotation) in rotations.iter().enumerate() {
        sleep(Duration::from_millis(rng.between(150, 400)));
        let old = logs.join(format!("a.log.{k}"));
        match rotation {
            Rotation::RenameAndCreate => {
                let mut p = program.lock().expect("program lock");
                fs::rename(&live, &old).expect("rename");
                p.reopen_after = Some(rng.between(3, 30));
            }
            Rotation::CopyTruncate => {
                // logrotate's copytruncate loses what is written between
                // the copy and the truncation; the program is held still
                // for it here, so every line has a file.
                let p = program.lock().expect("program lock");
                fs::copy(&live, &old).expect("copy");
                OpenOptions::new()
                    .write(true)
                    .open(&live)
                    .and_then(|f| f.set_len(0))
                    .expect("truncate");
                drop(p);
            }
            Rotation::MovedOntoPath => {
                // A file written elsewhere (outside the pattern), then
                // moved onto the watched path; the program goes on writing
                // to the replaced file a little before it reopens.
                let incoming = logs.join("incoming.tmp");
                let mut p = program.lock().expect("program lock");
                let mut text = String::new();
                for _ in 0..rng.between(20, 60) {
                    text.push_str(&netfilter_line(p.next));
                    p.next += 1;
                }
                fs::write(&incoming, text).expect("write incoming");
                fs::rename(&incoming, &live).expect("move onto the path");
                p.reopen_after = Some(rng.between(3, 30));
            }
            Rotation::DeleteAndRecreate => {
                let mut p = program.lock().expect("program lock");
                fs::remove_file(&live).expect("delete");
                p.reopen_after = Some(rng.between(3, 30));
            }
        }
    }
    sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    writer.join().expect("writer thread");

    // Every line written, once: the program reopens its path at once so
    // its last lines are in the live file.
    let written = {
        let mut p = program.lock().expect("program lock");
        p.reopen_after = None;
        p.next as i64
    };
    let counts = wait_for_records(&ledger.db, written, STORE_TIMEOUT);
    eprintln!("rotations {rotations:?}: {written} lines written, {counts:?} stored");
    assert_eq!(query_i64(&ledger.db, "SELECT count(*) FROM unparsed"), 0);
    let log = daemon.log();
    assert!(
        log.contains("reading the rest from its copy"),
        "copytruncate was not followed to its copy\n{log}"
    );

    // A last line without its newline waits for it, then is stored once.
    let partial = netfilter_line(written as u64);
    let (head, tail) = partial.split_at(40);
    let mut p = program.lock().expect("program lock");
    p.file = append(&live);
    p.file.write_all(head.as_bytes()).expect("write");
    sleep(Duration::from_millis(1_500));
    assert_eq!(record_counts(&ledger.db).records, written);
    assert_eq!(query_i64(&ledger.db, "SELECT count(*) FROM unparsed"), 0);
    p.file.write_all(tail.as_bytes()).expect("write");
    wait_for_records(&ledger.db, written + 1, STORE_TIMEOUT);

    daemon.stop();
}

/// Changes made while the daemon was down, on a file whose first line is
/// a header that stays the same (so the first line alone cannot tell the
/// files apart): a truncation, growth after it, a new file at the same
/// inode.
#[test]
fn restarts_follow_truncation_and_inode_reuse_while_down() {
    let (ledger, logs) = tailing_ledger();
    let live = logs.join("a.log");
    // A line without an event: read, not stored.
    let header = "Mar 12 09:00:00 vpn-lyon syslogd: restart\n";
    let write = |first: u64, count: u64, truncate: bool| {
        let mut file = if truncate {
            let mut f = File::create(&live).expect("create");
            f.write_all(header.as_bytes()).expect("header");
            f
        } else {
            append(&live)
        };
        for n in first..first + count {
            file.write_all(netfilter_line(n).as_bytes()).expect("write");
        }
    };

    // The first file: 100 lines.
    write(0, 100, true);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 100, STORE_TIMEOUT);
    daemon.stop();

    // Truncated and rewritten, shorter, with the same header: new lines.
    write(100, 50, true);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 150, STORE_TIMEOUT);
    daemon.stop();

    // The rewritten file grew while we were away: read on from where it
    // was, not again from its start.
    write(150, 30, false);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 180, STORE_TIMEOUT);
    daemon.stop();

    // Deleted, and a new file created at the same inode, same header,
    // shorter. ext4 hands a freed inode to a later file of the folder, but
    // not always to the very next one (other files come and go), so files
    // are made until one gets it.
    let inode = fs::metadata(&live).expect("stat").ino();
    fs::remove_file(&live).expect("delete");
    let reused = create_at_inode(&logs, &live, inode);
    write(180, 20, true);
    assert_eq!(fs::metadata(&live).expect("stat").ino() == inode, reused);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 200, STORE_TIMEOUT);

    // And once more while running, a plain append.
    write(200, 25, false);
    wait_for_records(&ledger.db, 225, STORE_TIMEOUT);
    daemon.stop();
    let mut daemon = Daemon::start(&ledger);
    sleep(Duration::from_secs(1));
    wait_for_records(&ledger.db, 225, STORE_TIMEOUT);
    daemon.stop();
    eprintln!("inode reused by the new file: {reused}");
    assert!(
        reused,
        "the file system did not reuse the inode; this test needs one that does (ext4)"
    );
}

#[test]
fn files_rotated_while_down_are_read_to_their_end_first() {
    let (ledger, logs) = tailing_ledger();
    let live = logs.join("a.log");
    let write = |path: &Path, first: u64, count: u64| {
        let mut file = append(path);
        for n in first..first + count {
            file.write_all(netfilter_line(n).as_bytes()).expect("write");
        }
    };

    write(&live, 0, 40);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 40, STORE_TIMEOUT);
    daemon.stop();

    // Down: the program writes on, then logrotate renames the file out of
    // the watched names and the program starts a new one.
    write(&live, 40, 15);
    fs::rename(&live, logs.join("a.log.1")).expect("rotate");
    write(&live, 55, 6);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 61, STORE_TIMEOUT);
    daemon.wait_for_log(
        "reading the rest of a file rotated while stopped",
        Duration::from_secs(5),
    );
    daemon.stop();

    // Down again: copytruncate this time, the copy out of the watched
    // names, the emptied file written again.
    write(&live, 61, 9);
    fs::copy(&live, logs.join("a.log.2")).expect("copy");
    File::create(&live).expect("truncate");
    write(&live, 70, 5);
    let mut daemon = Daemon::start(&ledger);
    wait_for_records(&ledger.db, 75, STORE_TIMEOUT);
    daemon.stop();

    // The files read before and now at other names are not read again.
    let mut daemon = Daemon::start(&ledger);
    sleep(Duration::from_secs(1));
    wait_for_records(&ledger.db, 75, STORE_TIMEOUT);
    daemon.stop();
}
