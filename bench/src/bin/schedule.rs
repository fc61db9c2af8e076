//! Benchmark of the schedule engine against python-dateutil (+ zoneinfo) doing the same work
//! in the same run: expanding 100,000 occurrences, and `next after` on typical rules.
//!
//! Usage: `schedule [--python PATH] [--out FILE] [--no-peer]`; `bench/run schedule` builds and runs it.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use ordinaut_schedule::{Schedule, ScheduleSource};
use serde_json::{Value, json};

struct Case {
    name: &'static str,
    /// `expand`: first `n` occurrences; `next`: one `next_after`, repeated `calls` times.
    kind: &'static str,
    zone: &'static str,
    dtstart: &'static str,
    rule: &'static str,
    after: &'static str,
    n: usize,
    calls: usize,
    /// Whether python-dateutil runs it too (it walks COUNT rules from DTSTART: billions of
    /// steps for the abusive ones).
    peer: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "expand 100k DAILY 06,12,18h (Berlin)",
        kind: "expand",
        zone: "Europe/Berlin",
        dtstart: "2000-01-01T00:00:00",
        rule: "FREQ=DAILY;BYHOUR=6,12,18;BYMINUTE=0",
        after: "1999-12-31T00:00:00Z",
        n: 100_000,
        calls: 1,
        peer: true,
    },
    Case {
        name: "expand 100k HOURLY (New York)",
        kind: "expand",
        zone: "America/New_York",
        dtstart: "2020-01-01T00:00:00",
        rule: "FREQ=HOURLY",
        after: "2019-12-31T00:00:00Z",
        n: 100_000,
        calls: 1,
        peer: true,
    },
    Case {
        name: "expand 100k MINUTELY;INTERVAL=15 (Chisinau)",
        kind: "expand",
        zone: "Europe/Chisinau",
        dtstart: "2020-01-01T00:00:00",
        rule: "FREQ=MINUTELY;INTERVAL=15",
        after: "2019-12-31T00:00:00Z",
        n: 100_000,
        calls: 1,
        peer: true,
    },
    Case {
        name: "expand 100k WEEKLY MO,WE,FR 08:30 (UTC)",
        kind: "expand",
        zone: "UTC",
        dtstart: "2000-01-01T00:00:00",
        rule: "FREQ=WEEKLY;BYDAY=MO,WE,FR;BYHOUR=8;BYMINUTE=30",
        after: "1999-12-31T00:00:00Z",
        n: 100_000,
        calls: 1,
        peer: true,
    },
    Case {
        name: "expand 100k MONTHLY workdays 4x/day (Lord Howe)",
        kind: "expand",
        zone: "Australia/Lord_Howe",
        dtstart: "2000-01-01T00:00:00",
        rule: "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=6,10,14,18",
        after: "1999-12-31T00:00:00Z",
        n: 100_000,
        calls: 1,
        peer: true,
    },
    Case {
        name: "next_after DAILY 08:00, DTSTART 2000",
        kind: "next",
        zone: "Europe/Berlin",
        dtstart: "2000-01-01T00:00:00",
        rule: "FREQ=DAILY;BYHOUR=8;BYMINUTE=0",
        after: "2025-06-15T10:00:00Z",
        n: 1,
        calls: 2_000,
        peer: true,
    },
    Case {
        name: "next_after WEEKLY;INTERVAL=2 TU,TH, DTSTART 2000",
        kind: "next",
        zone: "America/New_York",
        dtstart: "2000-01-04T00:00:00",
        rule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH;BYHOUR=17",
        after: "2025-06-15T10:00:00Z",
        n: 1,
        calls: 2_000,
        peer: true,
    },
    Case {
        name: "next_after MONTHLY last workday, DTSTART 2000",
        kind: "next",
        zone: "Europe/London",
        dtstart: "2000-01-01T00:00:00",
        rule: "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=18",
        after: "2025-06-15T10:00:00Z",
        n: 1,
        calls: 2_000,
        peer: true,
    },
    Case {
        name: "next_after SECONDLY;COUNT=4e9, DTSTART 1970",
        kind: "next",
        zone: "UTC",
        dtstart: "1970-01-01T00:00:00",
        rule: "FREQ=SECONDLY;COUNT=4000000000",
        after: "2026-12-06T12:00:00Z",
        n: 1,
        calls: 5,
        peer: false,
    },
    Case {
        name: "next_after MINUTELY;INTERVAL=7 filtered COUNT, 1970",
        kind: "next",
        zone: "America/New_York",
        dtstart: "1970-01-01T00:00:00",
        rule: "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,17;BYDAY=MO,WE;COUNT=2000000000",
        after: "2026-12-06T12:00:00Z",
        n: 1,
        calls: 5,
        peer: false,
    },
];

fn run_ours(case: &Case) -> (Duration, String) {
    let dtstart =
        NaiveDateTime::parse_from_str(case.dtstart, "%Y-%m-%dT%H:%M:%S").expect("dtstart");
    let after: DateTime<Utc> = DateTime::parse_from_rfc3339(case.after)
        .expect("after")
        .to_utc();
    let schedule =
        Schedule::new(&ScheduleSource::Rrule(case.rule.into()), case.zone, dtstart).expect("rule");
    let mut best = Duration::MAX;
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    for round in 0.. {
        let t0 = Instant::now();
        let got = if case.kind == "expand" {
            let v: Vec<_> = schedule
                .iter_after(after)
                .take(case.n)
                .collect::<Result<_, _>>()
                .expect("expand");
            std::hint::black_box(&v);
            v.last().copied()
        } else {
            let mut r = None;
            for _ in 0..case.calls {
                r = std::hint::black_box(
                    schedule
                        .next_after(std::hint::black_box(after))
                        .expect("next"),
                );
            }
            r
        };
        let per = t0.elapsed() / u32::try_from(case.calls).unwrap_or(1);
        best = best.min(per);
        last = got
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
            .unwrap_or_default();
        if round >= 4 && Instant::now() > deadline {
            break;
        }
    }
    (best, last)
}

fn run_dateutil(python: &str) -> Result<Value, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/schedule_dateutil.py");
    let cases: Vec<Value> = CASES
        .iter()
        .filter(|c| c.peer)
        .map(|c| json!({"name": c.name, "kind": c.kind, "zone": c.zone, "dtstart": c.dtstart, "rule": c.rule, "after": c.after, "n": c.n,
                // dateutil walks from DTSTART on every call: fewer calls keep the run short.
                "peer_calls": c.calls.min(50)}))
        .collect();
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(Value::Array(cases).to_string().as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{script} failed ({})", out.status));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad output from {script}: {e}"))
}

fn fmt_time(d: f64) -> String {
    if d.is_nan() {
        "—".to_string()
    } else if d >= 1.0 {
        format!("{d:.2} s")
    } else if d >= 1e-3 {
        format!("{:.2} ms", d * 1e3)
    } else if d >= 1e-6 {
        format!("{:.2} µs", d * 1e6)
    } else {
        format!("{:.0} ns", d * 1e9)
    }
}

fn main() -> std::process::ExitCode {
    let mut python = "/var/cache/ordinaut/venv/bin/python".to_string();
    let mut out_path = None;
    let mut no_peer = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--python" => python = args.next().unwrap_or(python),
            "--out" => out_path = args.next(),
            "--no-peer" => no_peer = true,
            other => {
                eprintln!(
                    "unknown argument {other}; usage: schedule [--python PATH] [--out FILE] [--no-peer]"
                );
                return std::process::ExitCode::from(2);
            }
        }
    }
    let peer = if no_peer {
        Ok(Value::Null)
    } else {
        eprintln!("running python-dateutil ({python}) ...");
        run_dateutil(&python)
    };
    let peer = match peer {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "{:<50} {:>12} {:>12} {:>9}  same result",
        "case", "ordinaut", "dateutil", "ratio"
    );
    let mut rows = Vec::new();
    for case in CASES {
        let (ours, last) = run_ours(case);
        let ours = ours.as_secs_f64();
        let theirs = peer[case.name]["seconds"].as_f64().unwrap_or(f64::NAN);
        let their_last = peer[case.name]["last"].as_str().unwrap_or("");
        let ratio = theirs / ours;
        // Without the peer's run (`--no-peer`, or a case it does not run) nothing is compared.
        let compared = case.peer && !peer.is_null();
        let same = !compared || their_last == last;
        println!(
            "{:<50} {:>12} {:>12} {:>8.0}×  {}",
            case.name,
            fmt_time(ours),
            fmt_time(theirs),
            ratio,
            if !compared {
                "—".to_string()
            } else if same {
                "yes".to_string()
            } else {
                format!("NO: {last} vs {their_last}")
            }
        );
        rows.push(json!({"case": case.name, "kind": case.kind, "ordinaut_seconds": ours, "dateutil_seconds": theirs, "ratio": ratio, "same_result": same, "last": last}));
    }
    if let Some(path) = out_path {
        let doc = json!({"benchmark": "schedule", "peer": "python-dateutil + zoneinfo", "at": Utc::now().to_rfc3339(), "results": rows});
        if let Err(e) = std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).unwrap_or_default(),
        ) {
            eprintln!("error: cannot write {path}: {e}");
            return std::process::ExitCode::FAILURE;
        }
        eprintln!("results written to {path}");
    }
    std::process::ExitCode::SUCCESS
}
