//! RRULE semantics that do not depend on DST (those live in dst.rs and dateutil_reference.rs).
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

#[test]
fn dtstart_is_not_emitted_unless_it_matches_and_count_counts_from_it() {
    // DTSTART is a Wednesday; the rule fires Mondays and Fridays.
    let s = rrule(
        "FREQ=WEEKLY;BYDAY=MO,FR;COUNT=3",
        "UTC",
        "2025-01-01T09:00:00",
    );
    assert_eq!(
        take(&s, "2000-01-01T00:00:00Z", 10),
        [
            "2025-01-03T09:00:00+00:00",
            "2025-01-06T09:00:00+00:00",
            "2025-01-10T09:00:00+00:00"
        ]
    );
    // COUNT counts from DTSTART, not from `after`.
    assert_eq!(
        take(&s, "2025-01-04T00:00:00Z", 10),
        ["2025-01-06T09:00:00+00:00", "2025-01-10T09:00:00+00:00"]
    );
}

#[test]
fn missing_by_values_default_from_dtstart() {
    let s = rrule("FREQ=DAILY", "UTC", "2025-01-01T08:15:30");
    assert_eq!(
        take(&s, "2025-01-01T10:00:00Z", 1),
        ["2025-01-02T08:15:30+00:00"]
    );
    let s = rrule("FREQ=MONTHLY", "UTC", "2025-01-31T12:00:00");
    // Months without a 31st are skipped, as RFC 5545 and dateutil do.
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 3),
        [
            "2025-01-31T12:00:00+00:00",
            "2025-03-31T12:00:00+00:00",
            "2025-05-31T12:00:00+00:00"
        ]
    );
    let s = rrule("FREQ=YEARLY", "UTC", "2024-02-29T00:00:00");
    assert_eq!(
        take(&s, "2024-03-01T00:00:00Z", 1),
        ["2028-02-29T00:00:00+00:00"]
    );
}

#[test]
fn until_is_inclusive_in_local_and_utc_forms() {
    // Local UNTIL compares wall times: 09:00 on the 3rd is included.
    let s = rrule(
        "FREQ=DAILY;UNTIL=20250103T090000",
        "Europe/Berlin",
        "2025-01-01T09:00:00",
    );
    assert_eq!(take(&s, "2024-12-01T00:00:00Z", 10).len(), 3);
    // UTC UNTIL compares instants: 09:00 Berlin is 08:00Z, so 08:00Z includes the 3rd ...
    let s = rrule(
        "FREQ=DAILY;UNTIL=20250103T080000Z",
        "Europe/Berlin",
        "2025-01-01T09:00:00",
    );
    assert_eq!(take(&s, "2024-12-01T00:00:00Z", 10).len(), 3);
    // ... and 07:59:59Z excludes it.
    let s = rrule(
        "FREQ=DAILY;UNTIL=20250103T075959Z",
        "Europe/Berlin",
        "2025-01-01T09:00:00",
    );
    assert_eq!(take(&s, "2024-12-01T00:00:00Z", 10).len(), 2);
}

#[test]
fn dtstart_line_forms_are_accepted() {
    let a = rrule(
        "DTSTART;TZID=Europe/Berlin:20250106T073000\nRRULE:FREQ=WEEKLY;BYDAY=MO",
        "Europe/Berlin",
        "2000-01-01T00:00:00",
    );
    let b = rrule(
        "DTSTART;TZID=Europe/Berlin:20250106T073000\\nFREQ=WEEKLY;BYDAY=MO",
        "Europe/Berlin",
        "2000-01-01T00:00:00",
    );
    // 06:30Z is 07:30 in Berlin in winter.
    let c = rrule(
        "DTSTART:20250106T063000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO",
        "Europe/Berlin",
        "2000-01-01T00:00:00",
    );
    let want = ["2025-01-06T07:30:00+01:00", "2025-01-13T07:30:00+01:00"];
    for s in [&a, &b, &c] {
        assert_eq!(take(s, "2020-01-01T00:00:00Z", 2), want);
        assert_eq!(s.describe(), "RRULE FREQ=WEEKLY;BYDAY=MO");
    }
}

#[test]
fn monthly_bysetpos_picks_last_workday() {
    let s = rrule(
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=17;BYMINUTE=0;BYSECOND=0",
        "UTC",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 3),
        [
            "2025-01-31T17:00:00+00:00",
            "2025-02-28T17:00:00+00:00",
            "2025-03-31T17:00:00+00:00"
        ]
    );
}

#[test]
fn yearly_byweekno_and_negative_byyearday() {
    let s = rrule(
        "FREQ=YEARLY;BYWEEKNO=1;BYDAY=MO",
        "UTC",
        "2025-01-01T00:00:00",
    );
    // ISO week 1 of 2026 starts Monday 2025-12-29 (counted in 2025's year set).
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 2),
        ["2025-12-29T00:00:00+00:00", "2027-01-04T00:00:00+00:00"]
    );
    let s = rrule("FREQ=YEARLY;BYYEARDAY=-1", "UTC", "2025-01-01T00:00:00");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 2),
        ["2025-12-31T00:00:00+00:00", "2026-12-31T00:00:00+00:00"]
    );
}

#[test]
fn jumping_close_to_after_matches_iterating_from_dtstart() {
    for rule in [
        "FREQ=DAILY;INTERVAL=3;BYHOUR=7,19",
        "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,SU",
        "FREQ=MONTHLY;INTERVAL=5;BYDAY=-1FR",
        "FREQ=YEARLY;INTERVAL=3;BYMONTH=3,11;BYDAY=1SU",
        "FREQ=HOURLY;INTERVAL=7;BYMINUTE=5",
        "FREQ=MINUTELY;INTERVAL=13;BYHOUR=1,2,3",
    ] {
        let s = rrule(rule, "America/New_York", "2019-05-17T01:02:03");
        let full: Vec<String> = take(&s, "2010-01-01T00:00:00Z", 3000);
        let cut = &full[1500];
        let after = utc(cut);
        let jumped = take(&s, &after.to_rfc3339(), 20);
        assert_eq!(jumped, full[1501..1521], "{rule}");
    }
}

#[test]
fn between_is_half_open_and_limited() {
    let s = rrule("FREQ=DAILY;BYHOUR=12", "UTC", "2025-01-01T00:00:00");
    let got = s
        .between(
            utc("2025-01-01T12:00:00Z"),
            utc("2025-01-05T12:00:00Z"),
            100,
        )
        .unwrap();
    assert_eq!(got.len(), 4, "(from, to]: the 2nd through the 5th");
    let got = s
        .between(utc("2025-01-01T12:00:00Z"), utc("2025-01-05T12:00:00Z"), 2)
        .unwrap();
    assert_eq!(got.len(), 2);
    assert!(
        s.between(utc("2025-01-05T12:00:00Z"), utc("2025-01-01T12:00:00Z"), 9)
            .unwrap()
            .is_empty()
    );
}

/// RFC 5545 reads `BYDAY=MO,1TU` as "every Monday, and the first Tuesday". python-dateutil
/// intersects the two lists and yields nothing; we follow the RFC.
#[test]
fn mixed_plain_and_ordinal_byday_is_a_union() {
    let s = rrule("FREQ=MONTHLY;BYDAY=MO,1TU", "UTC", "2025-01-01T00:00:00");
    assert_eq!(
        take(&s, "2024-12-31T00:00:00Z", 3),
        [
            "2025-01-06T00:00:00+00:00",
            "2025-01-07T00:00:00+00:00",
            "2025-01-13T00:00:00+00:00"
        ]
    );
}

#[test]
fn describe_is_short() {
    assert_eq!(
        rrule("RRULE:FREQ=DAILY;BYHOUR=8", "UTC", "2025-01-01T00:00:00").describe(),
        "RRULE FREQ=DAILY;BYHOUR=8"
    );
    assert_eq!(cron("*/5 * * * *", "UTC").describe(), "cron */5 * * * *");
}

#[test]
fn schedule_is_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<ordinaut_schedule::Schedule>();
    let s = rrule("FREQ=DAILY", "UTC", "2025-01-01T00:00:00");
    let t = s.clone();
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 2),
        take(&t, "2025-01-01T00:00:00Z", 2)
    );
    assert_eq!(t.timezone(), chrono_tz::Tz::UTC);
}

#[test]
fn byweekno_at_year_boundaries_follows_rfc_5545() {
    // ISO week 52 of 2021 runs 27 Dec 2021 - 2 Jan 2022; week 52 of 2022, 26 Dec - 1 Jan.
    let s = rrule(
        "FREQ=YEARLY;BYWEEKNO=52;BYDAY=SA,SU",
        "UTC",
        "2021-01-01T09:00:00",
    );
    assert_eq!(
        take(&s, "2021-12-20T00:00:00Z", 4),
        [
            "2022-01-01T09:00:00+00:00",
            "2022-01-02T09:00:00+00:00",
            "2022-12-31T09:00:00+00:00",
            "2023-01-01T09:00:00+00:00",
        ]
    );
    // 2020 has 53 weeks (its week 53 ends on Sunday 3 January 2021); 2021-2025 have 52.
    let s = rrule(
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=SU",
        "UTC",
        "2020-01-01T09:00:00",
    );
    assert_eq!(
        take(&s, "2020-12-01T00:00:00Z", 2),
        ["2021-01-03T09:00:00+00:00", "2027-01-03T09:00:00+00:00"]
    );
    // With weeks starting on Sunday, week 1 of 2023 starts on Sunday 1 January 2023, and
    // Saturday 31 December 2022 is in week 53 of 2022 (which starts on 25 December).
    let s = rrule(
        "FREQ=YEARLY;BYWEEKNO=-1;WKST=SU;BYDAY=SA",
        "UTC",
        "2022-01-01T09:00:00",
    );
    assert_eq!(
        take(&s, "2022-06-01T00:00:00Z", 1),
        ["2022-12-31T09:00:00+00:00"]
    );
}
