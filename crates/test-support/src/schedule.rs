//! The schedule tests' builders (RRULE, cron, local and UTC instants) and `take`, the first
//! occurrences as strings (feature `schedule`).

use chrono::{DateTime, NaiveDateTime, Utc};
use ordinaut_schedule::{Schedule, ScheduleError, ScheduleSource};

pub fn local(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

pub fn rrule(rule: &str, tz: &str, dtstart: &str) -> Schedule {
    Schedule::new(&ScheduleSource::Rrule(rule.into()), tz, local(dtstart))
        .unwrap_or_else(|e| panic!("{rule} in {tz}: {e}"))
}

pub fn rrule_err(rule: &str) -> ScheduleError {
    match Schedule::new(
        &ScheduleSource::Rrule(rule.into()),
        "UTC",
        local("2025-01-01T09:00:00"),
    ) {
        Ok(_) => panic!("{rule} should be rejected"),
        Err(e) => e,
    }
}

pub fn cron(expr: &str, tz: &str) -> Schedule {
    Schedule::new(
        &ScheduleSource::Cron(expr.into()),
        tz,
        local("2025-01-01T00:00:00"),
    )
    .unwrap_or_else(|e| panic!("{expr} in {tz}: {e}"))
}

/// The first `n` occurrences after `after`, as RFC 3339 strings with seconds precision.
pub fn take(s: &Schedule, after: &str, n: usize) -> Vec<String> {
    s.iter_after(utc(after))
        .take(n)
        .map(|r| r.unwrap().format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect()
}

/// The Python with python-dateutil: `$ORDINAUT_PYTHON`, else the venv `scripts/test.sh`
/// makes.
pub fn dateutil_python() -> String {
    std::env::var("ORDINAUT_PYTHON")
        .unwrap_or_else(|_| "/var/cache/ordinaut/venv/bin/python".to_string())
}

/// Runs the schedule tests' reference script (`script`, python-dateutil with zoneinfo) on
/// `cases` (zone, local DTSTART, RRULE, `after` in RFC 3339, how many), and returns its answer: one list
/// of RFC 3339 instants per case. Fails the test, saying how to set it up, when the Python
/// lacks python-dateutil; never passes silently.
pub fn dateutil_reference<S: AsRef<str>>(
    script: &str,
    cases: &[(S, S, S, S, usize)],
) -> Vec<Vec<String>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let py = dateutil_python();
    let setup = "set it up with `python3 -m venv /var/cache/ordinaut/venv && \
                 /var/cache/ordinaut/venv/bin/pip install python-dateutil` or point \
                 ORDINAUT_PYTHON at a python with dateutil";
    match Command::new(&py)
        .args(["-c", "import dateutil.rrule, zoneinfo"])
        .output()
    {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "{py} lacks python-dateutil ({}); {setup}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("cannot run {py} ({e}); {setup}"),
    }
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Written from another thread: the script prints as it reads, and a pipe holds only so
    // much before both sides would wait on each other.
    let input: String = cases
        .iter()
        .map(|(zone, dtstart, rule, after, n)| {
            let (zone, dtstart, rule, after) = (
                zone.as_ref(),
                dtstart.as_ref(),
                rule.as_ref(),
                after.as_ref(),
            );
            format!("{zone}\t{dtstart}\t{rule}\t{after}\t{n}\n")
        })
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "reference script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<String>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), cases.len(), "one reference line per case");
    lines
}
