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
