//! Five-field cron: syntax, Vixie day semantics, efficient jumps.
#![allow(clippy::unwrap_used)]
use ordinaut_schedule::{Schedule, ScheduleSource};
use ordinaut_test_support::schedule::*;

fn cron_err(expr: &str) -> String {
    Schedule::new(
        &ScheduleSource::Cron(expr.into()),
        "UTC",
        local("2025-01-01T00:00:00"),
    )
    .map(|_| ())
    .expect_err(expr)
    .to_string()
}

#[test]
fn names_ranges_steps_and_lists() {
    let s = cron("*/15 9-10 * jan mon-FRI", "UTC");
    assert_eq!(
        take(&s, "2025-01-03T10:40:00Z", 3),
        [
            "2025-01-03T10:45:00+00:00",
            "2025-01-06T09:00:00+00:00",
            "2025-01-06T09:15:00+00:00"
        ]
    );
    let s = cron("5-50/20 0 1 * *", "UTC");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 3),
        [
            "2025-01-01T00:05:00+00:00",
            "2025-01-01T00:25:00+00:00",
            "2025-01-01T00:45:00+00:00"
        ]
    );
    let s = cron("10/25 0 1 1 *", "UTC");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 3),
        [
            "2025-01-01T00:10:00+00:00",
            "2025-01-01T00:35:00+00:00",
            "2026-01-01T00:10:00+00:00"
        ]
    );
    let s = cron("0 12 * * 7", "UTC");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 1),
        ["2025-01-05T12:00:00+00:00"],
        "7 is Sunday"
    );
    let s = cron("0 12 * * 0,3", "UTC");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 2),
        ["2025-01-01T12:00:00+00:00", "2025-01-05T12:00:00+00:00"]
    );
}

#[test]
fn macros() {
    for (m, want) in [
        ("@hourly", "2025-01-01T01:00:00+00:00"),
        ("@daily", "2025-01-02T00:00:00+00:00"),
        ("@midnight", "2025-01-02T00:00:00+00:00"),
        ("@weekly", "2025-01-05T00:00:00+00:00"),
        ("@monthly", "2025-02-01T00:00:00+00:00"),
        ("@yearly", "2026-01-01T00:00:00+00:00"),
        ("@ANNUALLY", "2026-01-01T00:00:00+00:00"),
    ] {
        assert_eq!(
            take(&cron(m, "UTC"), "2025-01-01T00:00:00Z", 1),
            [want],
            "{m}"
        );
    }
}

#[test]
fn day_of_month_and_day_of_week_follow_vixie_cron() {
    // Both restricted: either matches (the 13th, or any Friday).
    let s = cron("0 0 13 * FRI", "UTC");
    assert_eq!(
        take(&s, "2025-06-01T00:00:00Z", 3),
        [
            "2025-06-06T00:00:00+00:00",
            "2025-06-13T00:00:00+00:00",
            "2025-06-20T00:00:00+00:00"
        ]
    );
    // A field starting with `*` means both must match: Fridays that are odd days.
    let s = cron("0 0 */2 * FRI", "UTC");
    assert_eq!(
        take(&s, "2025-06-01T00:00:00Z", 2),
        ["2025-06-13T00:00:00+00:00", "2025-06-27T00:00:00+00:00"]
    );
    let s = cron("0 0 13 * *", "UTC");
    assert_eq!(
        take(&s, "2025-06-01T00:00:00Z", 1),
        ["2025-06-13T00:00:00+00:00"]
    );
}

#[test]
fn malformed_expressions_name_the_field() {
    assert!(cron_err("@reboot").contains("cron: `@reboot`"));
    assert!(cron_err("@fortnightly").contains("unknown macro"));
    assert!(cron_err("0 0 0 * * *").contains("has 6 fields"));
    assert!(cron_err("0 0 * *").contains("has 4 fields"));
    assert!(cron_err("60 * * * *").contains("minute (1st field): 60 is out of range"));
    assert!(cron_err("0 24 * * *").contains("hour (2nd field): 24"));
    assert!(cron_err("0 0 0 * *").contains("day-of-month (3rd field): 0"));
    assert!(cron_err("0 0 32 * *").contains("day-of-month (3rd field): 32"));
    assert!(cron_err("0 0 * 13 *").contains("month (4th field): 13"));
    assert!(cron_err("0 0 * * 8").contains("day-of-week (5th field): 8"));
    assert!(cron_err("0 0 * FOO *").contains("not a number or a name"));
    assert!(cron_err("*/0 * * * *").contains("step 0"));
    assert!(cron_err("5-1 * * * *").contains("backwards"));
    assert!(cron_err("1,,2 * * * *").contains("empty list item"));
}

#[test]
fn next_after_jumps_over_non_matching_months() {
    // (How fast the jump is, is the schedule benchmark's business: bench/run schedule.)
    let s = cron("0 0 1 1 *", "UTC");
    assert_eq!(
        take(&s, "2025-01-01T00:00:01Z", 2),
        ["2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"]
    );
    let s = cron("0 0 29 2 *", "UTC");
    assert_eq!(
        take(&s, "2024-03-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00+00:00"]
    );
}
