//! Our engine against an independent reference: python-dateutil's rrule with zoneinfo
//! (fold=0), localized and de-duplicated by the same rules (see dateutil_reference.py).
//! Python: $ORDINAUT_PYTHON, else /var/cache/ordinaut/venv/bin/python. Without dateutil this
//! test FAILS and says how to set it up; it never passes silently.
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

use std::process::Command;

/// (zone, DTSTART, RRULE, after, n). Dates were chosen where chrono-tz's bundled tzdata and
/// the system's agree (both 2025b at the time of writing).
const CASES: &[(&str, &str, &str, &str, usize)] = &[
    (
        "Europe/Chisinau",
        "2025-03-01T00:00:00",
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "2025-03-27T00:00:00Z",
        6,
    ),
    (
        "America/New_York",
        "2025-10-01T00:00:00",
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=30",
        "2025-10-31T00:00:00Z",
        5,
    ),
    (
        "America/New_York",
        "2025-03-08T00:00:00",
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=30",
        "2025-03-07T00:00:00Z",
        4,
    ),
    (
        "Australia/Lord_Howe",
        "2025-01-01T00:00:00",
        "FREQ=DAILY;BYHOUR=2;BYMINUTE=15",
        "2025-10-02T00:00:00Z",
        5,
    ),
    (
        "Australia/Lord_Howe",
        "2025-01-01T00:00:00",
        "FREQ=DAILY;BYHOUR=1;BYMINUTE=45",
        "2025-04-03T00:00:00Z",
        5,
    ),
    (
        "Australia/Lord_Howe",
        "2025-10-04T22:00:00",
        "FREQ=HOURLY;BYMINUTE=0,20,40",
        "2025-10-04T10:00:00Z",
        20,
    ),
    (
        "Australia/Lord_Howe",
        "2025-04-05T23:00:00",
        "FREQ=MINUTELY;INTERVAL=10",
        "2025-04-05T10:00:00Z",
        30,
    ),
    (
        "America/Santiago",
        "2025-09-01T00:00:00",
        "FREQ=DAILY",
        "2025-09-04T00:00:00Z",
        6,
    ),
    (
        "America/Santiago",
        "2025-04-01T00:00:00",
        "FREQ=DAILY;BYHOUR=23,0;BYMINUTE=30",
        "2025-04-04T00:00:00Z",
        8,
    ),
    (
        "America/Sao_Paulo",
        "2018-01-01T00:00:00",
        "FREQ=MONTHLY;BYMONTHDAY=1,4;BYHOUR=0",
        "2018-01-01T00:00:00Z",
        30,
    ),
    (
        "America/Sao_Paulo",
        "2018-11-01T00:00:00",
        "FREQ=DAILY;BYHOUR=0;BYMINUTE=0,30",
        "2018-11-02T00:00:00Z",
        8,
    ),
    (
        "Europe/Istanbul",
        "2015-01-01T00:00:00",
        "FREQ=YEARLY;BYMONTH=1,7;BYMONTHDAY=1;BYHOUR=12",
        "2015-01-01T00:00:00Z",
        8,
    ),
    (
        "Asia/Tehran",
        "2021-01-01T00:00:00",
        "FREQ=YEARLY;BYYEARDAY=81,82,83,265,266",
        "2021-01-01T00:00:00Z",
        12,
    ),
    (
        "Europe/Chisinau",
        "2025-03-29T22:00:00",
        "FREQ=HOURLY",
        "2025-03-29T18:00:00Z",
        10,
    ),
    (
        "America/New_York",
        "2025-03-09T00:00:00",
        "FREQ=MINUTELY;INTERVAL=7",
        "2025-03-09T06:00:00Z",
        40,
    ),
    (
        "America/New_York",
        "2025-11-02T00:00:00",
        "FREQ=MINUTELY;INTERVAL=10",
        "2025-11-02T04:30:00Z",
        30,
    ),
    (
        "Europe/Berlin",
        "2025-03-30T01:00:00",
        "FREQ=SECONDLY;INTERVAL=450",
        "2025-03-29T23:00:00Z",
        25,
    ),
    (
        "Europe/Berlin",
        "2025-01-01T00:00:00",
        "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU;BYHOUR=2;BYMINUTE=30",
        "2025-01-01T00:00:00Z",
        4,
    ),
    (
        "Europe/Berlin",
        "2025-01-01T00:00:00",
        "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU;BYHOUR=2;BYMINUTE=30",
        "2025-01-01T00:00:00Z",
        4,
    ),
    (
        "Pacific/Apia",
        "2011-12-27T00:00:00",
        "FREQ=DAILY;BYHOUR=12",
        "2011-12-27T00:00:00Z",
        6,
    ),
    (
        "America/Havana",
        "2025-03-07T00:00:00",
        "FREQ=DAILY;BYHOUR=0,1;BYMINUTE=0,30",
        "2025-03-07T00:00:00Z",
        10,
    ),
    (
        "America/St_Johns",
        "2025-03-01T00:00:00",
        "FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=15",
        "2025-03-01T00:00:00Z",
        3,
    ),
    (
        "UTC",
        "2025-01-01T09:00:00",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "2025-01-01T00:00:00Z",
        14,
    ),
    (
        "Europe/London",
        "2025-01-01T09:00:00",
        "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=1,-1",
        "2025-01-01T00:00:00Z",
        14,
    ),
    (
        "UTC",
        "2025-01-01T08:00:00",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO,WE;BYHOUR=9,17;BYSETPOS=2,-2",
        "2025-01-01T00:00:00Z",
        14,
    ),
    (
        "UTC",
        "2020-01-01T00:00:00",
        "FREQ=YEARLY;BYWEEKNO=1;BYDAY=MO",
        "2020-01-01T00:00:00Z",
        10,
    ),
    (
        "UTC",
        "2015-01-01T00:00:00",
        "FREQ=YEARLY;BYWEEKNO=53;BYDAY=TH",
        "2015-01-01T00:00:00Z",
        6,
    ),
    (
        "UTC",
        "2020-01-01T00:00:00",
        "FREQ=YEARLY;BYWEEKNO=-1;BYDAY=SU;WKST=SU",
        "2020-01-01T00:00:00Z",
        8,
    ),
    (
        "UTC",
        "2020-01-01T00:00:00",
        "FREQ=YEARLY;BYWEEKNO=1,52;WKST=SU",
        "2020-01-01T00:00:00Z",
        40,
    ),
    (
        "Europe/Paris",
        "2020-01-01T10:00:00",
        "FREQ=YEARLY;BYYEARDAY=1,-1,-100",
        "2020-01-01T00:00:00Z",
        12,
    ),
    (
        "UTC",
        "1997-09-02T09:00:00",
        "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=TU,SU;COUNT=8",
        "1990-01-01T00:00:00Z",
        10,
    ),
    (
        "UTC",
        "1997-08-05T09:00:00",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=MO;COUNT=4",
        "1990-01-01T00:00:00Z",
        10,
    ),
    (
        "UTC",
        "1997-08-05T09:00:00",
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU;COUNT=4",
        "1990-01-01T00:00:00Z",
        10,
    ),
    (
        "America/Chicago",
        "2025-01-01T07:00:00",
        "FREQ=MONTHLY;BYDAY=-1FR;COUNT=10",
        "2024-01-01T00:00:00Z",
        20,
    ),
    (
        "Asia/Kolkata",
        "2025-01-15T06:00:00",
        "FREQ=MONTHLY;BYMONTHDAY=-1,-3",
        "2025-01-01T00:00:00Z",
        12,
    ),
    (
        "UTC",
        "2025-01-31T12:00:00",
        "FREQ=MONTHLY",
        "2025-01-01T00:00:00Z",
        8,
    ),
    (
        "UTC",
        "2025-01-01T00:00:00",
        "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYDAY=MO",
        "2025-01-01T00:00:00Z",
        3,
    ),
    (
        "UTC",
        "2025-01-01T00:00:00",
        "FREQ=YEARLY;BYDAY=20MO",
        "2025-01-01T00:00:00Z",
        4,
    ),
    (
        "UTC",
        "2025-01-01T00:00:00",
        "FREQ=YEARLY;BYMONTH=1,2;BYDAY=-2TH",
        "2025-01-01T00:00:00Z",
        6,
    ),
    (
        "Europe/Berlin",
        "2025-01-01T09:00:00",
        "FREQ=DAILY;INTERVAL=3;UNTIL=20250120T090000",
        "2024-01-01T00:00:00Z",
        20,
    ),
    (
        "Europe/Berlin",
        "2025-03-20T02:30:00",
        "FREQ=DAILY;UNTIL=20250330T003000Z",
        "2024-01-01T00:00:00Z",
        20,
    ),
    (
        "America/Denver",
        "2025-03-03T00:00:00",
        "FREQ=HOURLY;INTERVAL=5;BYDAY=MO,FR;BYHOUR=0,5,10,15,20",
        "2025-03-01T00:00:00Z",
        20,
    ),
    (
        "Europe/Chisinau",
        "2025-03-25T00:00:00",
        "FREQ=MINUTELY;INTERVAL=17;BYHOUR=2,3;BYDAY=SU",
        "2025-03-25T00:00:00Z",
        20,
    ),
    (
        "UTC",
        "2025-01-01T00:00:00",
        "FREQ=SECONDLY;INTERVAL=7;BYMINUTE=0;BYSECOND=0,14,30",
        "2025-01-01T00:00:00Z",
        15,
    ),
    (
        "Europe/Chisinau",
        "2025-01-01T00:00:00",
        "FREQ=MINUTELY;BYMONTHDAY=30;BYMONTH=3;BYHOUR=1,2,3;BYMINUTE=0,59",
        "2025-01-01T00:00:00Z",
        12,
    ),
    (
        "Europe/Vilnius",
        "2025-01-01T00:00:00",
        "FREQ=HOURLY;BYYEARDAY=89,-1;BYMINUTE=0",
        "2025-01-01T00:00:00Z",
        30,
    ),
];

fn python() -> String {
    dateutil_python()
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dateutil_reference.py");

#[test]
fn matches_python_dateutil_with_zoneinfo_fold_0() {
    let expected = dateutil_reference(SCRIPT, CASES);
    let mut failures = Vec::new();
    for ((zone, dtstart, rule, after, n), want) in CASES.iter().zip(&expected) {
        assert!(
            !want.is_empty(),
            "reference produced nothing for {rule} in {zone}"
        );
        let got = take(&rrule(rule, zone, dtstart), after, *n);
        if &got != want {
            failures.push(format!("{rule} in {zone} from {dtstart} after {after}:\n  ours:     {got:?}\n  dateutil: {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Runs a short Python program and returns its stdout lines.
fn python_lines(program: &str) -> Vec<String> {
    let out = Command::new(python())
        .args(["-c", program])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} ({e})", python()));
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Where dateutil does not follow RFC 5545 we check the RFC's answer instead. BYWEEKNO uses
/// ISO 8601 week numbering (week 1 is the first week with at least four days in the year);
/// python-dateutil sizes the previous year's weeks by the current year's length, so it puts
/// 1-2 January 2022 (ISO week 52 of 2021) into a week 53 that 2021 does not have. The
/// reference here is Python's own `date.isocalendar()` (ISO 8601, weeks start on Monday).
#[test]
fn byweekno_follows_iso_8601_weeks_where_dateutil_does_not() {
    let dateutil = python_lines(
        "from dateutil.rrule import rrulestr\nfrom datetime import datetime\n\
         r = rrulestr('FREQ=YEARLY;BYWEEKNO=53', dtstart=datetime(2021, 6, 1))\n\
         print(r.after(datetime(2021, 12, 31)).date())",
    );
    assert_eq!(
        dateutil,
        ["2022-01-01"],
        "dateutil's BYWEEKNO error at year boundaries (the reason this test exists) is gone; \
         the cases above can then compare with dateutil directly"
    );
    for week in [1, 2, 52, 53, -1, -2] {
        let iso = python_lines(&format!(
            "from datetime import date, timedelta\n\
             d = date(1995, 1, 1)\n\
             while d < date(2041, 1, 1):\n\
             \x20   y, w, _ = d.isocalendar()\n\
             \x20   weeks = date(y, 12, 28).isocalendar()[1]\n\
             \x20   if w == {week} or w - weeks - 1 == {week}: print(d.isoformat())\n\
             \x20   d += timedelta(1)"
        ));
        let s = rrule(
            &format!("FREQ=YEARLY;BYWEEKNO={week}"),
            "UTC",
            "1994-06-01T00:00:00",
        );
        let ours: Vec<String> = s
            .iter_after(utc("1994-12-31T23:59:59Z"))
            .map(|r| r.unwrap().format("%Y-%m-%d").to_string())
            .take_while(|d| d.as_str() < "2041-01-01")
            .collect();
        assert_eq!(ours, iso, "BYWEEKNO={week}");
    }
}
