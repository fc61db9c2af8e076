//! Every rejection names its field and says what is wrong.
#![allow(clippy::unwrap_used)]
use ordinaut_schedule::{ErrorKind, Schedule, ScheduleSource};
use ordinaut_test_support::schedule::*;

fn assert_rejects(rule: &str, field: &str, needle: &str) {
    let e = rrule_err(rule);
    assert_eq!(e.field, field, "{rule}: {e}");
    assert!(e.message.contains(needle), "{rule}: `{e}` lacks `{needle}`");
    assert_eq!(e.to_string(), format!("{}: {}", e.field, e.message));
}

#[test]
fn freq_must_be_present_and_known() {
    assert_rejects("BYHOUR=8", "rrule.FREQ", "missing FREQ");
    assert_rejects("FREQ=FORTNIGHTLY", "rrule.FREQ", "unknown FREQ");
    assert_rejects("", "rrule.FREQ", "missing FREQ");
}

#[test]
fn interval_count_and_until_are_checked() {
    assert_rejects("FREQ=DAILY;INTERVAL=0", "rrule.INTERVAL", "positive");
    assert_rejects("FREQ=DAILY;INTERVAL=-2", "rrule.INTERVAL", "positive");
    assert_rejects("FREQ=DAILY;COUNT=0", "rrule.COUNT", "positive");
    assert_rejects(
        "FREQ=DAILY;COUNT=3;UNTIL=20260101T000000Z",
        "rrule.COUNT",
        "COUNT and UNTIL",
    );
    assert_rejects(
        "FREQ=DAILY;UNTIL=tomorrow",
        "rrule.UNTIL",
        "not a date-time",
    );
}

#[test]
fn out_of_range_values_name_their_part() {
    for (rule, field) in [
        ("FREQ=DAILY;BYHOUR=24", "rrule.BYHOUR"),
        ("FREQ=DAILY;BYMINUTE=60", "rrule.BYMINUTE"),
        ("FREQ=DAILY;BYSECOND=61", "rrule.BYSECOND"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "rrule.BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "rrule.BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTHDAY=-32", "rrule.BYMONTHDAY"),
        ("FREQ=YEARLY;BYYEARDAY=0", "rrule.BYYEARDAY"),
        ("FREQ=YEARLY;BYYEARDAY=367", "rrule.BYYEARDAY"),
        ("FREQ=YEARLY;BYWEEKNO=0", "rrule.BYWEEKNO"),
        ("FREQ=YEARLY;BYWEEKNO=54", "rrule.BYWEEKNO"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "rrule.BYSETPOS"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=367", "rrule.BYSETPOS"),
        ("FREQ=YEARLY;BYMONTH=13", "rrule.BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=0", "rrule.BYMONTH"),
    ] {
        assert_rejects(rule, field, "out of range");
    }
    assert_rejects("FREQ=YEARLY;BYDAY=54MO", "rrule.BYDAY", "1 to 53");
    assert_rejects("FREQ=MONTHLY;BYDAY=6MO", "rrule.BYDAY", "1 to 5");
    assert_rejects("FREQ=MONTHLY;BYDAY=-6FR", "rrule.BYDAY", "1 to 5");
    assert_rejects("FREQ=WEEKLY;BYDAY=XX", "rrule.BYDAY", "not a weekday");
    assert_rejects("FREQ=WEEKLY;WKST=XX", "rrule.WKST", "not a weekday");
}

#[test]
fn by_rules_the_freq_does_not_allow_are_rejected() {
    assert_rejects(
        "FREQ=MONTHLY;BYWEEKNO=1",
        "rrule.BYWEEKNO",
        "only allowed with FREQ=YEARLY",
    );
    assert_rejects(
        "FREQ=DAILY;BYWEEKNO=1",
        "rrule.BYWEEKNO",
        "only allowed with FREQ=YEARLY",
    );
    assert_rejects(
        "FREQ=WEEKLY;BYMONTHDAY=1",
        "rrule.BYMONTHDAY",
        "not allowed with FREQ=WEEKLY",
    );
    for f in ["DAILY", "WEEKLY", "MONTHLY"] {
        assert_rejects(
            &format!("FREQ={f};BYYEARDAY=1"),
            "rrule.BYYEARDAY",
            "not allowed",
        );
    }
    assert_rejects("FREQ=WEEKLY;BYDAY=1MO", "rrule.BYDAY", "ordinal weekday");
    assert_rejects("FREQ=DAILY;BYDAY=-1FR", "rrule.BYDAY", "ordinal weekday");
    assert_rejects(
        "FREQ=YEARLY;BYWEEKNO=20;BYDAY=1MO",
        "rrule.BYDAY",
        "BYWEEKNO",
    );
    assert_rejects(
        "FREQ=MONTHLY;BYSETPOS=1",
        "rrule.BYSETPOS",
        "other BY-parts",
    );
    // Allowed combinations stay accepted.
    rrule("FREQ=HOURLY;BYYEARDAY=1,-1", "UTC", "2025-01-01T00:00:00");
    rrule(
        "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
        "UTC",
        "2025-01-01T00:00:00",
    );
}

#[test]
fn unknown_duplicate_and_malformed_parts_are_rejected() {
    assert_rejects("FREQ=DAILY;BYFOO=1", "rrule.BYFOO", "unknown rule part");
    assert_rejects("FREQ=DAILY;BYHOUR=1;BYHOUR=2", "rrule.BYHOUR", "twice");
    assert_rejects("FREQ=DAILY;FREQ=WEEKLY", "rrule.FREQ", "twice");
    assert_rejects("FREQ=DAILY;BYHOUR", "rrule", "NAME=VALUE");
    assert_rejects("FREQ=DAILY;BYHOUR=", "rrule.BYHOUR", "no value");
    assert_rejects("FREQ=DAILY;BYHOUR=eight", "rrule.BYHOUR", "not an integer");
    assert_rejects(
        "EXDATE:20250101T000000\nFREQ=DAILY",
        "rrule",
        "not supported",
    );
}

#[test]
fn dtstart_line_is_parsed_and_foreign_tzid_rejected() {
    assert_rejects(
        "DTSTART;TZID=Europe/Paris:20250101T090000\nRRULE:FREQ=DAILY",
        "rrule.DTSTART",
        "differs from the schedule's timezone UTC",
    );
    assert_rejects(
        "DTSTART:2025-01-01\nFREQ=DAILY",
        "rrule.DTSTART",
        "not a date-time",
    );
    assert_rejects(
        "DTSTART;TZID=UTC:20250101T090000Z\nFREQ=DAILY",
        "rrule.DTSTART",
        "must not end in `Z`",
    );
    // A link names the same zone: `US/Eastern` and `America/New_York`, `Etc/UTC` and `UTC`.
    for (zone, tzid) in [("US/Eastern", "America/New_York"), ("UTC", "Etc/UTC")] {
        let s = Schedule::new(
            &ScheduleSource::Rrule(format!(
                "DTSTART;TZID={tzid}:20250101T090000\nRRULE:FREQ=DAILY"
            )),
            zone,
            local("2024-01-01T00:00:00"),
        )
        .unwrap_or_else(|e| panic!("{zone} / TZID={tzid}: {e}"));
        assert_eq!(s.timezone().name(), zone);
    }
    let e = Schedule::new(
        &ScheduleSource::Rrule("DTSTART;TZID=America/Chicago:20250101T090000\nFREQ=DAILY".into()),
        "America/New_York",
        local("2024-01-01T00:00:00"),
    )
    .expect_err("another zone");
    assert!(
        e.message
            .contains("differs from the schedule's timezone America/New_York"),
        "{e}"
    );
}

#[test]
fn unknown_timezone_is_rejected_with_the_timezone_field() {
    let e = Schedule::new(
        &ScheduleSource::Rrule("FREQ=DAILY".into()),
        "Europe/Atlantis",
        local("2025-01-01T00:00:00"),
    )
    .expect_err("unknown zone");
    assert_eq!(e.field, "timezone");
    assert!(e.message.contains("Europe/Atlantis"));
}

#[test]
fn rules_that_can_never_fire_are_rejected_with_a_reason() {
    let e = rrule_err("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30");
    assert_eq!(e.kind, ErrorKind::NeverFires);
    assert_eq!(e.field, "rrule.BYMONTHDAY");
    assert!(
        e.message
            .contains("BYMONTHDAY=30 never falls in BYMONTH=2 (February has at most 29 days)"),
        "{e}"
    );
    let e = rrule_err("FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31");
    assert_eq!(e.kind, ErrorKind::NeverFires);
    assert!(e.message.contains("April has at most 30 days"), "{e}");
    let e = rrule_err("FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30,31");
    assert_eq!(e.kind, ErrorKind::NeverFires);
    // A never-firing rule without a simple explanation gets the generic one.
    let e = rrule_err("FREQ=YEARLY;BYYEARDAY=366;BYMONTH=1");
    assert_eq!((e.kind, e.field.as_str()), (ErrorKind::NeverFires, "rrule"));
    assert!(e.message.contains("400-year"), "{e}");
    for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
        let e = Schedule::new(
            &ScheduleSource::Cron(expr.into()),
            "UTC",
            local("2025-01-01T00:00:00"),
        )
        .expect_err(expr);
        assert_eq!(
            (e.kind, e.field.as_str()),
            (ErrorKind::NeverFires, "cron"),
            "{e}"
        );
        assert!(e.message.contains("has at most"), "{e}");
    }
}

#[test]
fn rare_but_possible_rules_are_found_by_the_probe() {
    // 29 February on a Monday: 2044, then every 28 years (or more around 2100).
    let s = rrule(
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "UTC",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 2),
        ["2044-02-29T00:00:00+00:00", "2072-02-29T00:00:00+00:00"]
    );
    let s = rrule(
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "UTC",
        "2025-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 1),
        ["2044-02-29T00:00:00+00:00"]
    );
    let c = cron("0 0 29 2 *", "UTC");
    assert_eq!(
        take(&c, "2097-01-01T00:00:00Z", 1),
        ["2104-02-29T00:00:00+00:00"]
    );
}

#[test]
fn past_until_and_exhausted_count_are_valid_with_no_next_occurrence() {
    let s = rrule(
        "FREQ=DAILY;UNTIL=20200105T000000Z",
        "UTC",
        "2020-01-01T00:00:00",
    );
    assert_eq!(s.next_after(utc("2025-01-01T00:00:00Z")).unwrap(), None);
    assert_eq!(
        take(&s, "2019-01-01T00:00:00Z", 10).len(),
        5,
        "UNTIL is inclusive"
    );
    let s = rrule("FREQ=DAILY;COUNT=3", "UTC", "2020-01-01T00:00:00");
    assert_eq!(s.next_after(utc("2020-01-03T00:00:00Z")).unwrap(), None);
    assert_eq!(take(&s, "2019-01-01T00:00:00Z", 10).len(), 3);
}

#[test]
fn undecidable_rules_are_reported_as_gave_up_not_never() {
    // Every 2nd minute from :00 never lands on minute 1; the cycle is too long to walk.
    let e = Schedule::new(
        &ScheduleSource::Rrule("FREQ=MINUTELY;INTERVAL=2;BYMINUTE=1".into()),
        "UTC",
        local("2025-01-01T00:00:00"),
    )
    .expect_err("undecidable");
    assert_eq!(e.kind, ErrorKind::GaveUp, "{e}");
    assert!(e.is_gave_up());
    assert!(e.message.contains("cannot tell"), "{e}");
}

#[test]
fn bysetpos_beyond_the_period_size_never_fires() {
    let e = rrule_err("FREQ=MINUTELY;BYMONTH=3;BYSETPOS=2");
    assert_eq!(
        (e.kind, e.field.as_str()),
        (ErrorKind::NeverFires, "rrule.BYSETPOS"),
        "{e}"
    );
    assert!(e.message.contains("at most 1 candidate"), "{e}");
    let e = rrule_err("FREQ=DAILY;BYHOUR=8,9;BYSETPOS=-3");
    assert_eq!(e.kind, ErrorKind::NeverFires, "{e}");
    rrule(
        "FREQ=DAILY;BYHOUR=8,9;BYSETPOS=-2",
        "UTC",
        "2025-01-01T00:00:00",
    );
}

#[test]
fn a_period_with_millions_of_candidate_times_is_refused_naming_the_limit() {
    let all = |n: u32| (0..n).map(|v| v.to_string()).collect::<Vec<_>>().join(",");
    let rule = format!(
        "FREQ=YEARLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR={};BYMINUTE={};BYSECOND={};BYSETPOS=-1,1",
        all(24),
        all(60),
        all(60)
    );
    let err = rrule_err(&rule);
    assert_eq!(err.field, "rrule");
    assert!(err.message.contains("1000000"), "{err}");
    // A day of every second is fine.
    let daily = format!(
        "FREQ=DAILY;BYHOUR={};BYMINUTE={};BYSECOND={}",
        all(24),
        all(60),
        all(60)
    );
    let s = rrule(&daily, "UTC", "2025-01-01T00:00:00");
    assert_eq!(
        take(&s, "2025-01-01T00:00:00Z", 1),
        ["2025-01-01T00:00:01+00:00"]
    );
}
