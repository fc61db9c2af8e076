//! Real wall times that follow a spring-forward gap are never lost behind a gap time that was
//! shifted forward past them: every matching wall time that exists runs once, a matching one
//! that does not exist runs once shifted by the gap, and the output is strictly increasing.
//! Cases in zones whose gap is one hour at 02:00 (New York), half an hour (Lord Howe), two
//! hours (Troll), at midnight (Santiago) and at 02:45 (Chatham), for RRULE and cron alike.
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

#[test]
fn new_york_every_45_minutes_keeps_0300_after_the_shifted_0215() {
    let s = rrule(
        "FREQ=MINUTELY;INTERVAL=45",
        "America/New_York",
        "2025-03-09T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-09T04:00:00Z", 7),
        [
            "2025-03-09T00:00:00-05:00",
            "2025-03-09T00:45:00-05:00",
            "2025-03-09T01:30:00-05:00",
            // 03:00 exists; 02:15 does not and runs at 03:15, after it.
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:15:00-04:00",
            "2025-03-09T03:45:00-04:00",
            "2025-03-09T04:30:00-04:00",
        ]
    );
}

#[test]
fn santiago_midnight_gap_interleaves_shifted_and_real_times() {
    // America/Santiago: 00:00 -> 01:00 on 2025-09-07.
    let s = rrule(
        "FREQ=MINUTELY;INTERVAL=40",
        "America/Santiago",
        "2025-09-06T22:00:00",
    );
    assert_eq!(
        take(&s, "2025-09-07T01:00:00Z", 6),
        [
            "2025-09-06T22:00:00-04:00",
            "2025-09-06T22:40:00-04:00",
            "2025-09-06T23:20:00-04:00",
            "2025-09-07T01:00:00-03:00", // 00:00, shifted
            "2025-09-07T01:20:00-03:00", // real
            "2025-09-07T01:40:00-03:00", // 00:40, shifted
        ]
    );
}

#[test]
fn chatham_gap_at_0245_interleaves_three_shifted_times() {
    // Pacific/Chatham: 02:45 +12:45 -> 03:45 +13:45 on 2025-09-28.
    let s = rrule(
        "FREQ=MINUTELY;INTERVAL=25",
        "Pacific/Chatham",
        "2025-09-28T02:00:00",
    );
    assert_eq!(
        take(&s, "2025-09-27T12:00:00Z", 8),
        [
            "2025-09-28T02:00:00+12:45",
            "2025-09-28T02:25:00+12:45",
            "2025-09-28T03:50:00+13:45", // 02:50, shifted
            "2025-09-28T04:05:00+13:45", // real
            "2025-09-28T04:15:00+13:45", // 03:15, shifted
            "2025-09-28T04:30:00+13:45", // real
            "2025-09-28T04:40:00+13:45", // 03:40, shifted
            "2025-09-28T04:55:00+13:45",
        ]
    );
}

#[test]
fn lord_howe_half_hour_gap_keeps_the_real_0240() {
    // Australia/Lord_Howe: 02:00 +10:30 -> 02:30 +11:00 on 2025-10-05.
    let s = rrule(
        "FREQ=HOURLY;BYMINUTE=0,20,40",
        "Australia/Lord_Howe",
        "2025-10-05T00:00:00",
    );
    let want = [
        "2025-10-05T01:40:00+10:30",
        "2025-10-05T02:30:00+11:00", // 02:00, shifted
        "2025-10-05T02:40:00+11:00", // real
        "2025-10-05T02:50:00+11:00", // 02:20, shifted
        "2025-10-05T03:00:00+11:00",
    ];
    assert_eq!(take(&s, "2025-10-04T15:00:00Z", 5), want);
    let c = cron("0,20,40 * * * *", "Australia/Lord_Howe");
    assert_eq!(take(&c, "2025-10-04T15:00:00Z", 5), want);
}

#[test]
fn troll_two_hour_gap_cron_runs_real_0305_before_the_shifted_0205() {
    // Antarctica/Troll: 01:00 +00 -> 03:00 +02 on 2025-03-30.
    let c = cron("5,10 2,3 * * *", "Antarctica/Troll");
    assert_eq!(
        take(&c, "2025-03-30T00:00:00Z", 5),
        [
            "2025-03-30T03:05:00+02:00", // real
            "2025-03-30T03:10:00+02:00", // real
            "2025-03-30T04:05:00+02:00", // 02:05, shifted
            "2025-03-30T04:10:00+02:00", // 02:10, shifted
            "2025-03-31T02:05:00+02:00",
        ]
    );
    let s = rrule(
        "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=5,10",
        "Antarctica/Troll",
        "2025-03-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-03-30T00:00:00Z", 5),
        take(&c, "2025-03-30T00:00:00Z", 5)
    );
}

#[test]
fn cron_ranges_and_steps_in_a_new_york_gap_hour() {
    let c = cron("*/20 2-3 * * *", "America/New_York");
    assert_eq!(
        take(&c, "2025-03-09T06:00:00Z", 5),
        [
            // 02:00, 02:20 and 02:40 shift onto 03:00, 03:20 and 03:40, which also exist:
            // each instant runs once.
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:20:00-04:00",
            "2025-03-09T03:40:00-04:00",
            "2025-03-10T02:00:00-04:00",
            "2025-03-10T02:20:00-04:00",
        ]
    );
    let c = cron("50 1 * * *", "America/New_York");
    // A wall time just before the gap is untouched.
    assert_eq!(
        take(&c, "2025-03-09T06:00:00Z", 1),
        ["2025-03-09T01:50:00-05:00"]
    );
}

#[test]
fn starting_inside_the_reordered_stretch_continues_the_same_sequence() {
    let s = rrule(
        "FREQ=MINUTELY;INTERVAL=25",
        "Pacific/Chatham",
        "2025-09-28T02:00:00",
    );
    let all = take(&s, "2025-09-27T12:00:00Z", 8);
    // Right after the real 04:05 (15:20Z on the 27th), the shifted 03:15 comes next.
    assert_eq!(take(&s, "2025-09-27T14:20:00Z", 4), all[4..8]);
}
