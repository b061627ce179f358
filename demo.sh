#!/usr/bin/env bash
# The main job on the shipped sample: ingest two gateways' logs into a fresh
# SQLite file, import the sample reports, then print the sessions found, a
# pre-filled report and the audit. Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --quiet --bin vpnledger
db=target/demo/vpnledger.db
rm -f "$db" "$db-wal" "$db-shm"
vpnledger() { target/debug/vpnledger --config config/vpnledger.toml --db "$db" "$@"; }

echo "== ingest: vpn-lyon (syslog) and vpn-annecy (OpenVPN's own log)"
vpnledger ingest --year 2024 --source vpn-lyon fixtures/logs/vpn-lyon-syslog.log
vpnledger ingest --year 2024 --source vpn-annecy fixtures/logs/vpn-annecy-openvpn.log
echo
echo "== reports import"
vpnledger reports import fixtures/reports/sample.json
echo
echo "== sessions"
vpnledger sessions
echo
echo "== reports prefill R-2024-0618-01 (a draft without its remote part)"
vpnledger reports prefill R-2024-0618-01
echo
echo "== audit"
vpnledger audit
