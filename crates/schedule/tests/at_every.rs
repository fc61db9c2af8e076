//! `at` (one instant) and `every` (elapsed time, ignores the wall clock).
#![allow(clippy::unwrap_used)]
use ordinaut_schedule::{Schedule, ScheduleSource};
use ordinaut_test_support::schedule::*;

fn sched(src: ScheduleSource, tz: &str, anchor: &str) -> Schedule {
    Schedule::new(&src, tz, local(anchor)).unwrap()
}

#[test]
fn at_fires_once_and_is_shown_in_the_schedule_zone() {
    let s = sched(
        ScheduleSource::At("2025-06-01T07:00:00Z".into()),
        "Europe/Berlin",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 5),
        ["2025-06-01T09:00:00+02:00"]
    );
    assert_eq!(
        s.next_after(utc("2025-06-01T07:00:00Z")).unwrap(),
        None,
        "after is exclusive"
    );
    assert_eq!(s.describe(), "at 2025-06-01T09:00:00+02:00");
    let e = Schedule::new(
        &ScheduleSource::At("2025-06-01 07:00".into()),
        "UTC",
        local("2025-01-01T00:00:00"),
    )
    .unwrap_err();
    assert_eq!(e.field, "at");
}

#[test]
fn every_counts_elapsed_time_across_dst() {
    let s = sched(
        ScheduleSource::Every("6h".into()),
        "Europe/Chisinau",
        "2025-03-29T12:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-29T20:00:00Z", 3),
        // 18:00+02 + 6h = 00:00+02 = 01:00+03 ... wall time shifts, the interval does not.
        [
            "2025-03-30T00:00:00+02:00",
            "2025-03-30T07:00:00+03:00",
            "2025-03-30T13:00:00+03:00"
        ]
    );
    assert_eq!(
        take(&s, "2025-03-01T00:00:00Z", 1),
        ["2025-03-29T12:00:00+02:00"],
        "the anchor is the first"
    );
    assert_eq!(s.describe(), "every 6h");
}

#[test]
fn every_rejects_bad_and_sub_second_intervals() {
    for bad in ["", "fast", "500ms", "0s"] {
        let e = Schedule::new(
            &ScheduleSource::Every(bad.into()),
            "UTC",
            local("2025-01-01T00:00:00"),
        )
        .unwrap_err();
        assert_eq!(e.field, "every", "{bad}");
    }
}

/// An anchor given as an instant (a Task's `startAt`) in the second pass of a repeated hour
/// stays there: as a wall time it would name the first pass, an hour (Lord Howe: 30 minutes)
/// before the start.
#[test]
fn every_from_an_instant_in_the_second_pass_of_a_repeated_hour() {
    let every = |spec: &str, tz: &str, start: &str| {
        Schedule::new_from_instant(&ScheduleSource::Every(spec.into()), tz, utc(start)).unwrap()
    };
    // 01:30 EST, the second 01:30 of 2 November 2025 in New York.
    let s = every("90m", "America/New_York", "2025-11-02T06:30:00Z");
    assert_eq!(
        take(&s, "2025-11-02T06:00:00Z", 3),
        [
            "2025-11-02T01:30:00-05:00",
            "2025-11-02T03:00:00-05:00",
            "2025-11-02T04:30:00-05:00"
        ]
    );
    let s = every("1d", "America/New_York", "2025-11-02T06:30:00Z");
    assert_eq!(
        take(&s, "2025-11-02T06:29:59Z", 2),
        ["2025-11-02T01:30:00-05:00", "2025-11-03T01:30:00-05:00"]
    );
    // 01:45 +10:30, the second 01:45 of 6 April 2025 on Lord Howe (the clocks go back 30 min).
    let s = every("1h", "Australia/Lord_Howe", "2025-04-05T15:15:00Z");
    assert_eq!(
        take(&s, "2025-04-05T15:00:00Z", 2),
        ["2025-04-06T01:45:00+10:30", "2025-04-06T02:45:00+10:30"]
    );
}
