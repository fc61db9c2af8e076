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
