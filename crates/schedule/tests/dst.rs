//! Wall-clock semantics across DST changes: a gap time runs once, shifted forward by the gap;
//! a repeated time runs once, at its first pass; output is strictly increasing.
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

#[test]
fn chisinau_daily_0230_shifts_to_0330_on_spring_forward_day() {
    let s = rrule(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "Europe/Chisinau",
        "2025-03-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-29T00:00:00Z", 3),
        [
            "2025-03-29T02:30:00+02:00",
            "2025-03-30T03:30:00+03:00",
            "2025-03-31T02:30:00+03:00"
        ]
    );
}

#[test]
fn new_york_daily_0130_runs_once_at_first_pass_on_fall_back_day() {
    let s = rrule(
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "America/New_York",
        "2025-10-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-11-02T00:00:00Z", 2),
        ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]
    );
}

#[test]
fn lord_howe_half_hour_gap_and_repeat() {
    // Lord Howe: +10:30 -> +11:00 at 02:00 on 2025-10-05; +11:00 -> +10:30 at 02:00 on 2025-04-06.
    let s = rrule(
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=15",
        "Australia/Lord_Howe",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-10-03T12:00:00Z", 3),
        [
            "2025-10-04T02:15:00+10:30",
            "2025-10-05T02:45:00+11:00",
            "2025-10-06T02:15:00+11:00"
        ]
    );
    let s = rrule(
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=45",
        "Australia/Lord_Howe",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-04-04T12:00:00Z", 3),
        [
            "2025-04-05T01:45:00+11:00",
            "2025-04-06T01:45:00+11:00",
            "2025-04-07T01:45:00+10:30"
        ]
    );
}

#[test]
fn santiago_midnight_in_gap_does_not_skip_the_day() {
    // America/Santiago springs forward at 00:00 on 2025-09-07: midnight does not exist.
    let s = rrule("FREQ=DAILY", "America/Santiago", "2025-09-01T00:00:00");
    assert_eq!(
        take(&s, "2025-09-06T00:00:00Z", 3),
        [
            "2025-09-06T00:00:00-04:00",
            "2025-09-07T01:00:00-03:00",
            "2025-09-08T00:00:00-03:00"
        ]
    );
    let c = cron("@daily", "America/Santiago");
    assert_eq!(
        take(&c, "2025-09-06T00:00:00Z", 3),
        [
            "2025-09-06T00:00:00-04:00",
            "2025-09-07T01:00:00-03:00",
            "2025-09-08T00:00:00-03:00"
        ]
    );
}

#[test]
fn zones_that_abolished_dst_keep_fixed_offsets_afterwards() {
    // Istanbul stayed on +03 from 2016-09-07; Sao Paulo dropped DST from 2019.
    let s = rrule(
        "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1;BYHOUR=12",
        "Europe/Istanbul",
        "2015-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2015-01-01T00:00:00Z", 6),
        [
            "2015-01-01T12:00:00+02:00",
            "2015-07-01T12:00:00+03:00",
            "2016-01-01T12:00:00+02:00",
            "2016-07-01T12:00:00+03:00",
            "2017-01-01T12:00:00+03:00",
            "2017-07-01T12:00:00+03:00",
        ]
    );
    let s = rrule(
        "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1;BYHOUR=12",
        "America/Sao_Paulo",
        "2018-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2018-01-01T00:00:00Z", 6),
        [
            "2018-01-01T12:00:00-02:00",
            "2018-07-01T12:00:00-03:00",
            "2019-01-01T12:00:00-02:00",
            "2019-07-01T12:00:00-03:00",
            "2020-01-01T12:00:00-03:00",
            "2020-07-01T12:00:00-03:00",
        ]
    );
}

#[test]
fn minutely_across_a_gap_never_repeats_or_goes_back() {
    let s = rrule(
        "FREQ=MINUTELY;INTERVAL=20",
        "Europe/Chisinau",
        "2025-03-30T01:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-29T22:30:00Z", 8),
        [
            "2025-03-30T01:00:00+02:00",
            "2025-03-30T01:20:00+02:00",
            "2025-03-30T01:40:00+02:00",
            // 02:00, 02:20, 02:40 do not exist: shifted to 03:00, 03:20, 03:40 ...
            "2025-03-30T03:00:00+03:00",
            "2025-03-30T03:20:00+03:00",
            "2025-03-30T03:40:00+03:00",
            // ... so the real 03:00..03:40 collapse into them; next is 04:00.
            "2025-03-30T04:00:00+03:00",
            "2025-03-30T04:20:00+03:00",
        ]
    );
}

#[test]
fn hourly_across_a_repeat_runs_each_wall_hour_once() {
    let s = rrule(
        "FREQ=HOURLY;BYMINUTE=30",
        "America/New_York",
        "2025-11-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-11-02T04:00:00Z", 4),
        [
            "2025-11-02T00:30:00-04:00",
            "2025-11-02T01:30:00-04:00",
            "2025-11-02T02:30:00-05:00",
            "2025-11-02T03:30:00-05:00",
        ]
    );
}

#[test]
fn cron_gap_time_runs_once_shifted_and_repeat_hour_runs_once() {
    let c = cron("30 2 * * *", "Europe/Chisinau");
    assert_eq!(
        take(&c, "2025-03-28T12:00:00Z", 3),
        [
            "2025-03-29T02:30:00+02:00",
            "2025-03-30T03:30:00+03:00",
            "2025-03-31T02:30:00+03:00"
        ]
    );
    let c = cron("0 * * * *", "America/New_York");
    assert_eq!(
        take(&c, "2025-11-02T03:30:00Z", 4),
        [
            "2025-11-02T00:00:00-04:00",
            "2025-11-02T01:00:00-04:00",
            "2025-11-02T02:00:00-05:00",
            "2025-11-02T03:00:00-05:00",
        ]
    );
}

#[test]
fn dtstart_inside_a_gap_or_a_repeat_is_accepted() {
    // 02:30 does not exist in New York on 2025-03-09; it is read as 03:30 EDT.
    let s = rrule(
        "DTSTART;TZID=America/New_York:20250309T023000\nRRULE:FREQ=DAILY",
        "America/New_York",
        "2000-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-01T00:00:00Z", 2),
        ["2025-03-09T03:30:00-04:00", "2025-03-10T02:30:00-04:00"]
    );
    // 01:30 happens twice on 2025-11-02; DTSTART takes the first pass.
    let s = rrule(
        "DTSTART;TZID=America/New_York:20251102T013000\nRRULE:FREQ=HOURLY;COUNT=3",
        "America/New_York",
        "2000-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-11-01T00:00:00Z", 5),
        [
            "2025-11-02T01:30:00-04:00",
            "2025-11-02T02:30:00-05:00",
            "2025-11-02T03:30:00-05:00"
        ]
    );
}

/// A UTC DTSTART (or a Task's `startAt`) in the second pass of a repeated hour is the first
/// instance, at that instant; the repeat's later wall times run in their second pass too (the
/// first was before the start); nothing comes before DTSTART.
#[test]
fn dtstart_in_the_second_pass_of_a_repeated_hour_is_the_first_instance() {
    use ordinaut_schedule::{Schedule, ScheduleSource};
    let daily = rrule(
        "DTSTART:20251102T063000Z\nRRULE:FREQ=DAILY;COUNT=3",
        "America/New_York",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&daily, "2025-11-01T00:00:00Z", 5),
        [
            "2025-11-02T01:30:00-05:00",
            "2025-11-03T01:30:00-05:00",
            "2025-11-04T01:30:00-05:00"
        ]
    );
    let quarter = rrule(
        "DTSTART:20251102T063000Z\nRRULE:FREQ=MINUTELY;INTERVAL=15",
        "America/New_York",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&quarter, "2025-11-02T05:00:00Z", 4),
        [
            "2025-11-02T01:30:00-05:00",
            "2025-11-02T01:45:00-05:00",
            "2025-11-02T02:00:00-05:00",
            "2025-11-02T02:15:00-05:00"
        ]
    );
    // The same with the anchor given as an instant (a Task's `startAt`, no DTSTART line).
    let from_start = Schedule::new_from_instant(
        &ScheduleSource::Rrule("FREQ=DAILY".into()),
        "America/New_York",
        utc("2025-11-02T06:30:00Z"),
    )
    .unwrap();
    assert_eq!(
        take(&from_start, "2025-11-02T00:00:00Z", 2),
        ["2025-11-02T01:30:00-05:00", "2025-11-03T01:30:00-05:00"]
    );
    // A DTSTART written as a local wall time still names the first pass.
    let wall = rrule(
        "FREQ=DAILY;COUNT=2",
        "America/New_York",
        "2025-11-02T01:30:00",
    );
    assert_eq!(
        take(&wall, "2025-11-01T00:00:00Z", 2),
        ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]
    );
}
