#!/usr/bin/env python3
"""Checks that the sessions vpnledger rebuilt equal the generator's truth.

    compare_sessions.py TRUTH.json SESSIONS.json

TRUTH.json is what `examples/generate.rs` writes; SESSIONS.json is the
output of `vpnledger sessions --json`. Every field the truth holds (user,
start, end, tunnel, virtual and remote IP, devices in order of first
access, bytes) must be equal, session for session, and neither side may
hold a session the other lacks. Exit status 0 when equal, 1 otherwise,
with the first differences printed.
"""

import json
import sys


def key(session):
    # One technician holds one session at a time: user and start name it.
    return (session["user"], session["start"])


def observed(session):
    return {
        "user": session["user"],
        "start": session["start"],
        "end": session["end"],
        "tunnel": session["tunnel"],
        "virtual_ip": session["virtual_ip"],
        "remote_ip": session["remote_ip"],
        "devices": [d["ip"] for d in session["devices"]],
        "bytes_in": session["bytes_in"],
        "bytes_out": session["bytes_out"],
    }


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        truth = {key(s): s for s in json.load(f)}
    with open(sys.argv[2]) as f:
        found = {key(s): observed(s) for s in json.load(f)}

    problems = []
    for k in sorted(truth.keys() - found.keys()):
        problems.append(f"missing: {json.dumps(truth[k])}")
    for k in sorted(found.keys() - truth.keys()):
        problems.append(f"not in the truth: {json.dumps(found[k])}")
    for k in sorted(truth.keys() & found.keys()):
        for field, expected in truth[k].items():
            if found[k].get(field) != expected:
                problems.append(
                    f"{k[0]} {k[1]}: {field} is {found[k].get(field)!r}, expected {expected!r}"
                )

    if problems:
        for p in problems[:20]:
            print(p)
        print(f"sessions differ from the truth: {len(problems)} difference(s) "
              f"({len(truth)} expected, {len(found)} found)")
        sys.exit(1)
    print(f"sessions equal the truth: {len(truth)} sessions, every field")


if __name__ == "__main__":
    main()
