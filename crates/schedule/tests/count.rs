//! COUNT rules whose DTSTART lies far in the past: the instances used up before "now" are
//! counted, not listed one by one, and the answer is the same as listing them.
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use ordinaut_schedule::{Schedule, ScheduleSource};
use proptest::prelude::*;

#[test]
fn secondly_count_of_four_billion_from_1970_answers_for_today() {
    let s = rrule(
        "FREQ=SECONDLY;COUNT=4000000000",
        "UTC",
        "1970-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2026-12-06T12:00:00Z", 2),
        ["2026-12-06T12:00:01+00:00", "2026-12-06T12:00:02+00:00"]
    );
}

#[test]
fn an_exhausted_count_ends_exactly_at_its_last_instance() {
    // One billion seconds from 1970 end at 2001-09-09T01:46:39Z.
    let s = rrule(
        "FREQ=SECONDLY;COUNT=1000000000",
        "UTC",
        "1970-01-01T00:00:00",
    );
    assert_eq!(
        take(&s, "2001-09-09T01:46:37Z", 5),
        ["2001-09-09T01:46:38+00:00", "2001-09-09T01:46:39+00:00"]
    );
    assert_eq!(s.next_after(utc("2026-01-01T00:00:00Z")).unwrap(), None);
    // Minutely in a zone with DST: COUNT counts wall-clock instances.
    let s = rrule(
        "FREQ=MINUTELY;COUNT=30000000",
        "Europe/Chisinau",
        "1990-01-01T00:00:00",
    );
    // The 30,000,000th wall-clock minute from 1990-01-01T00:00 is 2047-01-15T07:59 local.
    assert_eq!(
        take(&s, "2047-01-15T05:57:00Z", 5),
        ["2047-01-15T07:58:00+02:00", "2047-01-15T07:59:00+02:00"]
    );
}

#[test]
fn filtered_minutely_count_from_2000_matches_listing() {
    let rule = "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,17;BYDAY=MO,WE;COUNT=2000000";
    let s = rrule(rule, "America/New_York", "2000-01-03T00:00:00");
    let got = take(&s, "2025-06-01T00:00:00Z", 3);
    // Listing from the start (an `after` before DTSTART does not skip) gives the same.
    let listed: Vec<String> = s
        .iter_after(utc("1999-12-31T00:00:00Z"))
        .map(|r| r.unwrap())
        .skip_while(|t| t.to_utc() <= utc("2025-06-01T00:00:00Z"))
        .take(3)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string())
        .collect();
    assert_eq!(got, listed);
    assert_eq!(got.len(), 3);
}

const FREQS: &[&str] = &[
    "YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY",
];

fn listed(
    s: &Schedule,
    dtstart: NaiveDateTime,
    after: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    s.iter_after(dtstart.and_utc() - TimeDelta::days(2))
        .map(|r| r.unwrap().to_utc())
        .take_while(|t| *t < utc("2300-01-01T00:00:00Z"))
        .filter(|t| *t > after)
        .take(n)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Starting near `after` (counting what came before) gives the same occurrences as
    /// listing every instance from DTSTART.
    #[test]
    fn counted_start_equals_listing_from_dtstart(
        freq in 0usize..7,
        interval in 1u32..9,
        sub_daily_interval in 1u32..3000,
        byhour in prop::collection::vec(0u32..24, 0..3),
        byminute in prop::collection::vec(0u32..60, 0..3),
        bysecond in prop::collection::vec(0u32..60, 0..2),
        byday in prop::collection::vec(0usize..7, 0..3),
        bymonth in prop::collection::vec(1u32..13, 0..2),
        bysetpos in prop::option::of(prop_oneof![1i32..3, -2i32..0]),
        count in 1u32..4000,
        zone in prop::sample::select(vec!["UTC", "America/New_York", "Australia/Lord_Howe", "Antarctica/Troll", "Asia/Kolkata"]),
        start_secs in 0i64..(40 * 365 * 86_400),
        after_frac in 0.0f64..1.2,
    ) {
        // Sub-daily rules need long intervals for their COUNT to span more than a few days.
        let interval = if freq >= 4 { sub_daily_interval } else { interval };
        let mut text = format!("FREQ={};INTERVAL={interval};COUNT={count}", FREQS[freq]);
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        if !byhour.is_empty() { text += &format!(";BYHOUR={}", list(&byhour)); }
        if !byminute.is_empty() { text += &format!(";BYMINUTE={}", list(&byminute)); }
        if !bysecond.is_empty() { text += &format!(";BYSECOND={}", list(&bysecond)); }
        if !bymonth.is_empty() { text += &format!(";BYMONTH={}", list(&bymonth)); }
        if !byday.is_empty() {
            let d: Vec<&str> = byday.iter().map(|&i| ["MO", "TU", "WE", "TH", "FR", "SA", "SU"][i]).collect();
            text += &format!(";BYDAY={}", d.join(","));
        }
        if let Some(p) = bysetpos { text += &format!(";BYSETPOS={p}"); }
        let dtstart = DateTime::from_timestamp(start_secs, 0).unwrap().naive_utc();
        let Ok(s) = Schedule::new(&ScheduleSource::Rrule(text.clone()), zone, dtstart) else {
            return Ok(());
        };
        // The span of the whole COUNT, to pick `after` inside it (and a little past it).
        // (Listing stops in 2300: rules that take millennia to use up their COUNT are cut.)
        let all: Vec<DateTime<Utc>> = listed(&s, dtstart, DateTime::<Utc>::MIN_UTC, count as usize);
        let (Some(first), Some(last)) = (all.first(), all.last()) else { return Ok(()) };
        let span = (*last - *first).num_seconds() as f64;
        let after = *first + TimeDelta::seconds((span * after_frac) as i64) - TimeDelta::days(1);
        let got: Vec<DateTime<Utc>> = s.iter_after(after).map(|r| r.unwrap().to_utc()).take(4).collect();
        let want = listed(&s, dtstart, after, 4);
        let got: Vec<DateTime<Utc>> = got.into_iter().take(want.len()).collect();
        prop_assert_eq!(got, want, "{} from {} in {} after {}", text, dtstart, zone, after);
    }
}
