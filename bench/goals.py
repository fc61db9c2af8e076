#!/usr/bin/env python3
"""Prints the performance goals (docs: bench/README.md) against the results of one `bench/run`.

Usage: bench/goals.py RESULTS_DIR SINCE_EPOCH_SECONDS

Only result files written at or after SINCE count, so every ratio is between figures of the
same invocation; a goal whose benchmark did not run in it says so.
"""

import json
import os
import sys

results, since = sys.argv[1], float(sys.argv[2])


def load(name):
    path = os.path.join(results, name)
    if not os.path.exists(path) or os.path.getmtime(path) < since:
        return None
    with open(path) as f:
        return json.load(f)


def mark(ok):
    return "✓" if ok else "✗"


rows = []
queue, graphile = load("queue.json"), load("graphile-batched.json")
if queue and graphile and "drain" in queue:
    peer = graphile["runs_per_sec"]
    drain = queue["drain"]["runs_per_sec"] / peer
    rows.append(("drain 50,000 no-op runs, 2 processes, vs graphile-worker batched", "≥ 2×",
                 f"{queue['drain']['runs_per_sec']:.0f} vs {peer:.0f} runs/s: {drain:.2f}×", mark(drain >= 2)))
    if "drain_relayed" in queue:
        relayed = queue["drain_relayed"]["runs_per_sec"] / peer
        rows.append(("the same until every event is on the Redis stream", "≥ 1×",
                     f"{queue['drain_relayed']['runs_per_sec']:.0f} runs/s: {relayed:.2f}×", mark(relayed >= 1)))
else:
    rows.append(("queue drain vs graphile-worker", "", "not run (bench/run queue)", ""))

every = queue.get("every") if queue else None
if every:
    for phase in every:
        p99 = phase["lag_ms"]["p99"]
        if phase.get("tasks") == 1000 and not phase.get("with_drain"):
            rows.append(("lag, 1,000 `every: 1s` Tasks due on the same second, p99", "< 50 ms",
                         f"{p99:.1f} ms", mark(p99 < 50)))
        if phase.get("with_drain"):
            rows.append(("lag of on-time runs during a 50,000-run drain, p99", "< 100 ms",
                         f"{p99:.1f} ms", mark(p99 < 100)))
else:
    rows.append(("schedule lag", "", "not run (bench/run queue)", ""))

operator = load("operator-100000.json")
if operator:
    secs, rss = operator["steady_state_secs"], operator["peak_rss_kib"] / 1024
    change = operator["spec_change_ms"]
    rows.append(("operator, 100,000 Tasks to steady state", "< 20 s", f"{secs:.1f} s", mark(secs < 20)))
    rows.append(("operator, 100,000 Tasks, peak RSS", "< 200 MiB", f"{rss:.1f} MiB", mark(rss < 200)))
    rows.append(("operator, one spec change effective at that scale", "< 2 s", f"{change:.1f} ms",
                 mark(change < 2000)))
else:
    rows.append(("operator at 100,000 Tasks", "", "not run (bench/run operator)", ""))

schedule = load("schedule.json")
if schedule:
    expand = [r for r in schedule["results"] if r["kind"] == "expand"]
    low = min(expand, key=lambda r: r["ratio"])
    each = ", ".join(f"{r['case']} {r['ratio']:.1f}×" for r in expand)
    rows.append(("schedule engine vs python-dateutil, every rule", "≥ 50×", each, mark(low["ratio"] >= 50)))
else:
    rows.append(("schedule engine vs python-dateutil", "", "not run (bench/run schedule)", ""))

memory = load("memory.json")
if memory:
    idle = memory["worker_idle_rss_kib"] / 1024
    rows.append(("worker idle RSS", "< 20 MiB", f"{idle:.1f} MiB", mark(idle < 20)))
    loaded = memory.get("operator_loaded")
    if loaded:
        n, peak = memory["operator_tasks"], loaded["peak_rss_kib"] / 1024
        rows.append((f"operator binary, {n:,} Tasks (fake API over HTTP), peak RSS", "< 200 MiB",
                     f"{peak:.1f} MiB (all Ready after {loaded['ready_secs']:.1f} s)", mark(peak < 200)))
else:
    rows.append(("worker idle RSS", "", "not run (bench/run memory)", ""))

print("| goal | target | this run | met |")
print("|---|---|---|---|")
for goal, target, value, met in rows:
    print(f"| {goal} | {target} | {value} | {met} |")
