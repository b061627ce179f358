#!/usr/bin/env bash
# Whole-process benchmarks of vpnledger on generated fleet logs.
#
#   bench/run.sh                      # 1 and 10 million lines, best of 3
#   SIZES=1000000 RUNS=1 bench/run.sh # a quick look
#
# For each size it generates the log and its truth with
# `examples/generate.rs` (seed 1, kept between runs under target/bench,
# never committed), then times, best wall-clock time of RUNS runs, with
# the peak memory of that run:
#
# - the floors: `cat FILE > /dev/null` and `wc -l FILE`;
# - `vpnledger parse --stats FILE`;
# - `vpnledger ingest FILE` into a fresh database (parse, store, checkpoint
#   and sessions rebuilt: the whole command);
#
# with, for each, the CPU time of that run (user + system, all threads:
# above the wall-clock time when more than one core worked), then the
# store's size and `vpnledger verify` on it;
#
# and checks that the sessions of the last ingest equal the generator's
# truth, every field (bench/compare_sessions.py). It exits non-zero if
# they differ.
#
# Needs GNU time (/usr/bin/time, Debian package `time`) and python3.

set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-$root/target/bench}
sizes=${SIZES:-"1000000 10000000"}
runs=${RUNS:-3}
seed=${SEED:-1}
year=2024
zone=Europe/Paris

if [ ! -x /usr/bin/time ]; then
    echo "GNU time is missing: apt-get install time" >&2
    exit 2
fi
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 2; }

mkdir -p "$work"
cd "$root"
cargo build --release --quiet --bin vpnledger --example generate
vpnledger=$root/target/release/vpnledger
generate=$root/target/release/examples/generate

echo "machine: $(nproc) CPU(s), $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
echo "rustc:   $(rustc --version)"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min) at start"
echo "runs:    best of $runs"
echo

# time_best NAME COMMAND...: runs COMMAND $runs times, prints
# "seconds peak_kib cpu_seconds" of the fastest run (cpu: user + system,
# all threads).
time_best() {
    local best="" best_rss="" best_cpu="" t rss user sys out
    out=$(mktemp)
    for _ in $(seq "$runs"); do
        if [ -n "${before_each:-}" ]; then eval "$before_each"; fi
        /usr/bin/time -f "%e %M %U %S" -o "$out" "$@" >/dev/null 2>"$work/last-stderr" || {
            echo "failed: $*" >&2
            cat "$work/last-stderr" >&2
            exit 1
        }
        read -r t rss user sys <"$out"
        if [ -z "$best" ] || awk "BEGIN { exit !($t < $best) }"; then
            best=$t
            best_rss=$rss
            best_cpu=$(awk "BEGIN { print $user + $sys }")
        fi
    done
    rm -f "$out"
    echo "$best $best_rss $best_cpu"
}

printf '%-10s %-28s %9s %14s %10s %12s %9s\n' lines command seconds lines/s MB/s "peak RSS" "CPU s"
for lines in $sizes; do
    log=$work/fleet-$lines-$seed.log
    truth=$work/fleet-$lines-$seed.truth.json
    if [ ! -s "$log" ] || [ ! -s "$truth" ]; then
        "$generate" --lines "$lines" --seed "$seed" --year "$year" --tz "$zone" \
            --out "$log" --truth "$truth" 2>"$work/generate.log"
    fi
    bytes=$(stat -c %s "$log")
    db=$work/fleet-$lines.db

    report() {
        local name=$1 seconds=$2 rss=$3 cpu=$4
        awk -v n="$lines" -v b="$bytes" -v s="$seconds" -v r="$rss" -v c="$name" -v u="$cpu" 'BEGIN {
            s = (s > 0 ? s : 0.005)
            printf "%-10d %-28s %9.2f %14.0f %10.1f %8.1f MiB %9.2f\n", n, c, s, n / s, b / s / 1e6, r / 1024, u
        }'
    }

    read -r s r c < <(time_best sh -c 'cat "$1" > /dev/null' cat "$log")
    report "cat > /dev/null" "$s" "$r" "$c"
    read -r s r c < <(time_best wc -l "$log")
    report "wc -l" "$s" "$r" "$c"
    wc_seconds=$s
    read -r s r c < <(time_best "$vpnledger" parse --stats --year "$year" --tz "$zone" "$log")
    report "vpnledger parse --stats" "$s" "$r" "$c"
    parse_seconds=$s
    read -r s r c < <(before_each="rm -f '$db' '$db-wal' '$db-shm'" time_best \
        "$vpnledger" --db "$db" ingest --year "$year" --tz "$zone" "$log")
    report "vpnledger ingest (fresh db)" "$s" "$r" "$c"
    ls -l "$db" | awk -v b="$bytes" '{ printf "%-10s store: %.0f MB, %.2f bytes per byte of log\n", "", $5 / 1e6, $5 / b }'
    "$vpnledger" --db "$db" verify | sed "s/^/$(printf '%-10s ' '')/"
    awk -v p="$parse_seconds" -v w="$wc_seconds" 'BEGIN {
        printf "%-10s parse --stats takes %.1fx the time of wc -l\n", "", p / (w > 0 ? w : 0.005)
    }'

    "$vpnledger" --db "$db" sessions --json >"$work/fleet-$lines.sessions.json"
    printf '%-10s ' ""
    python3 "$root/bench/compare_sessions.py" "$truth" "$work/fleet-$lines.sessions.json"
    rm -f "$db" "$db-wal" "$db-shm"
done
