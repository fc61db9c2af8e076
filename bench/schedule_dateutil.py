"""The same work as bench/src/bin/schedule.rs, done by python-dateutil + zoneinfo.

stdin: a JSON list of cases {name, kind: "expand"|"next", zone, dtstart, rule, after, n,
peer_calls}. For "expand": produce the first n occurrences strictly after `after` (naive rrule
output localized with ZoneInfo fold=0, de-duplicated, strictly increasing, as Ordinaut's
rules say). For "next": `peer_calls` times, the first occurrence after `after` via rrule.after.
stdout: a JSON object {name: {"seconds": per-run seconds (best of the repeats), "last": the
last occurrence, RFC 3339}}.
"""
import json
import sys
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr


def expand(case):
    z = ZoneInfo(case["zone"])
    start = datetime.strptime(case["dtstart"], "%Y-%m-%dT%H:%M:%S")
    after = datetime.fromisoformat(case["after"].replace("Z", "+00:00"))
    n = case["n"]
    out = []
    last = None
    for occ in rrulestr(case["rule"], dtstart=start):
        instant = occ.replace(tzinfo=z).astimezone(timezone.utc)
        if last is not None and instant <= last:
            continue
        last = instant
        if instant > after:
            out.append(instant)
            if len(out) >= n:
                break
    return out[-1].astimezone(z).isoformat()


def next_after(case):
    z = ZoneInfo(case["zone"])
    start = datetime.strptime(case["dtstart"], "%Y-%m-%dT%H:%M:%S")
    after = datetime.fromisoformat(case["after"].replace("Z", "+00:00")).astimezone(z)
    rule = rrulestr(case["rule"], dtstart=start)
    naive_after = after.replace(tzinfo=None)
    result = None
    for _ in range(case["peer_calls"]):
        occ = rule.after(naive_after)
        result = occ.replace(tzinfo=z)
    return result.isoformat()


def main():
    cases = json.load(sys.stdin)
    results = {}
    for case in cases:
        fn = expand if case["kind"] == "expand" else next_after
        best = None
        last = None
        for _ in range(case.get("repeats", 3)):
            t0 = time.perf_counter()
            last = fn(case)
            elapsed = time.perf_counter() - t0
            best = elapsed if best is None else min(best, elapsed)
        per = best / case["peer_calls"] if case["kind"] == "next" else best
        results[case["name"]] = {"seconds": per, "last": last}
    json.dump(results, sys.stdout)


main()
