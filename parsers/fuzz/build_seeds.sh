#!/bin/sh
# Builds the seed corpora of the fuzz targets from the sample logs in
# fixtures/corpus and fixtures/logs: one file per seed, named by its hash,
# in corpus/<target>/. Run it before the first `cargo fuzz run`; running it
# again only adds what is missing.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
corpus="$repo/fixtures/corpus"
logs="$repo/fixtures/logs"
out="$here/corpus"

# seed TARGET: each line of standard input becomes one seed of TARGET.
seed() {
    mkdir -p "$out/$1"
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        name=$(printf '%s' "$line" | sha1sum | cut -c1-16)
        printf '%s' "$line" > "$out/$1/$name"
    done
}

# seed_file TARGET PREFIX FILE: the whole file, after PREFIX (for the
# line reader, one byte that picks the format), as one seed.
seed_file() {
    mkdir -p "$out/$1"
    name=$( { printf "$2"; cat "$3"; } | sha1sum | cut -c1-16)
    { printf "$2"; cat "$3"; } > "$out/$1/$name"
}

all_lines() { cat "$corpus"/*/*.log "$logs"/*.log; }

all_lines | seed envelope_rfc3164
printf '%s\n' \
    '<189>000123: *Mar  1 00:01:02.345: %SYS-5-CONFIG_I: Configured from console' \
    'Mar 2 01:02:03 gw kernel: [1.0] X' \
    'Mar 12 09:14:02 openvpn[1873]: hello' \
    | seed envelope_rfc3164
all_lines | seed envelope_rfc5424
printf '%s\n' \
    '<165>1 2003-10-11T22:14:15.003Z host1.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="App\]"][p class="high"] ﻿entry' \
    '<13>1 - - - - - -' \
    | seed envelope_rfc5424

# OpenVPN: whole --log lines, and the messages of its syslog lines.
cat "$corpus"/openvpn/file-log-iso.log "$corpus"/openvpn/real-2.6-loopback.log \
    "$logs"/vpn-annecy-openvpn.log | seed openvpn_message
cat "$corpus"/*/*.log "$logs"/*.log | sed -n 's/^.* openvpn\[[0-9]*\]: //p; s/^.* openvpn [0-9]* - - //p' \
    | seed openvpn_message
for f in "$corpus"/openvpn/status-*.log; do seed_file openvpn_status '' "$f"; done

all_lines | sed -n 's/^.* kernel: //p' | seed netfilter
all_lines | sed -n 's/^.* charon: //p' | seed strongswan
all_lines | grep -o '%ASA-.*' | seed cisco_asa
sed 's/^<[0-9]*>//' "$corpus"/fortigate/*.log | seed fortigate
seed stormshield < "$corpus"/stormshield/xvpn-and-connection.log
sed -E 's/^<[0-9]+>[A-Z][a-z]{2} +[0-9]+ [0-9:]{8} [^ ]+ //' \
    "$corpus"/paloalto-globalprotect/*.log | seed paloalto
all_lines | sed -n 's/^.* filterlog [0-9]* - - //p' | seed filterlog
grep -v '^\[' "$corpus"/wireguard/*.log | seed wireguard
grep '^\[' "$corpus"/wireguard/*.log | seed conntrack

# The line reader: every sample file, read in auto (byte 0) and in the
# format it is written in (its index in Format::ALL, from 1).
for f in "$corpus"/*/*.log "$logs"/*.log; do seed_file line_reader '\000' "$f"; done
for f in "$corpus"/openvpn/syslog-rfc3164.log "$corpus"/strongswan/*.log \
    "$corpus"/cisco-asa/*.log "$corpus"/paloalto-globalprotect/*.log; do
    seed_file line_reader '\001' "$f"
done
seed_file line_reader '\002' "$corpus"/pfsense/openvpn-filterlog-rfc5424.log
seed_file line_reader '\003' "$corpus"/openvpn/file-log-iso.log
seed_file line_reader '\005' "$corpus"/fortigate/sslvpn-and-traffic.log
seed_file line_reader '\006' "$corpus"/stormshield/xvpn-and-connection.log
seed_file line_reader '\007' "$corpus"/wireguard/wg-polls-with-conntrack.log

for d in "$out"/*/; do
    printf '%-18s %4d seeds\n' "$(basename "$d")" "$(ls "$d" | wc -l)"
done
