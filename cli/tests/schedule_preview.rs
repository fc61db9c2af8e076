//! `ordinaut schedule preview`, run as the built binary.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn preview(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordinaut"))
        .args(["schedule", "preview"])
        .args(args)
        .env_remove("ORDINAUT_TIMEZONE")
        .env_remove("ORDINAUT_OUTPUT")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn chisinau_spring_forward_example() {
    let o = preview(&[
        "--rrule",
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "--timezone",
        "Europe/Chisinau",
        "--after",
        "2025-03-29T00:00:00Z",
        "--count",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout(&o),
        "2025-03-29T02:30:00+02:00\n2025-03-30T03:30:00+03:00\n2025-03-31T02:30:00+03:00\n"
    );
}

#[test]
fn new_york_fall_back_example_and_json_output() {
    let o = preview(&[
        "--rrule",
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "--timezone",
        "America/New_York",
        "--after",
        "2025-11-02T00:00:00Z",
        "--count",
        "2",
    ]);
    assert_eq!(
        stdout(&o),
        "2025-11-02T01:30:00-04:00\n2025-11-03T01:30:00-05:00\n"
    );
    let o = preview(&[
        "--rrule",
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "--timezone",
        "America/New_York",
        "--after",
        "2025-11-02T00:00:00Z",
        "--count",
        "2",
        "--output",
        "json",
    ]);
    assert_eq!(
        stdout(&o),
        "[\"2025-11-02T01:30:00-04:00\",\"2025-11-03T01:30:00-05:00\"]\n"
    );
}

#[test]
fn utc_prints_plus_zero_offset_and_other_sources_work() {
    let o = preview(&[
        "--cron",
        "0 9 * * MON",
        "--after",
        "2025-01-01T00:00:00Z",
        "--count",
        "1",
    ]);
    assert_eq!(stdout(&o), "2025-01-06T09:00:00+00:00\n");
    let o = preview(&[
        "--at",
        "2025-06-01T07:00:00Z",
        "--timezone",
        "Europe/Berlin",
        "--after",
        "2025-01-01T00:00:00Z",
    ]);
    assert_eq!(stdout(&o), "2025-06-01T09:00:00+02:00\n");
    let o = preview(&[
        "--every",
        "90m",
        "--dtstart",
        "2025-01-01T09:00:00",
        "--after",
        "2025-01-01T09:00:00Z",
        "--count",
        "2",
    ]);
    assert_eq!(
        stdout(&o),
        "2025-01-01T10:30:00+00:00\n2025-01-01T12:00:00+00:00\n"
    );
}

#[test]
fn dtstart_defaults_to_local_midnight_of_the_after_day() {
    // FREQ=HOURLY;INTERVAL=5 counts from local midnight of 2025-01-01 (Berlin): 00, 05, 10...
    let o = preview(&[
        "--rrule",
        "FREQ=HOURLY;INTERVAL=5",
        "--timezone",
        "Europe/Berlin",
        "--after",
        "2025-01-01T06:00:00+01:00",
        "--count",
        "2",
    ]);
    assert_eq!(
        stdout(&o),
        "2025-01-01T10:00:00+01:00\n2025-01-01T15:00:00+01:00\n"
    );
}

#[test]
fn invalid_input_exits_2_with_the_reason_on_stderr() {
    for args in [
        &["--rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"][..],
        &["--rrule", "FREQ=DAILY;BYHOUR=24"],
        &["--cron", "0 0 * *"],
        &["--rrule", "FREQ=DAILY", "--timezone", "Nowhere/Land"],
        &["--rrule", "FREQ=DAILY", "--after", "yesterday"],
        &["--every", "5m", "--dtstart", "noon"],
        &["--rrule", "FREQ=DAILY", "--cron", "@daily"],
        &[],
    ] {
        let o = preview(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}");
    }
    let o = preview(&["--rrule", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"]);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.starts_with("error: rrule.BYMONTHDAY: "), "{err}");
}

#[test]
fn help_mentions_every_flag() {
    let o = preview(&["--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for flag in [
        "--rrule",
        "--cron",
        "--at",
        "--every",
        "--timezone",
        "--dtstart",
        "--after",
        "--count",
        "--output",
    ] {
        assert!(help.contains(flag), "help lacks {flag}:\n{help}");
    }
}
