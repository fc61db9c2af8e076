//! Completeness around DST transitions, for random rules, zones and transitions: every wall
//! time in the window that matches the rule appears in the output exactly once: at its own
//! instant if it exists (the first pass if it repeats), shifted by the gap if it does not;
//! and nothing else appears. The expected set is computed independently: a brute-force scan
//! of every wall minute with a matcher written from the rule's text, and chrono-tz's raw
//! offsets. (The older property tests only check that each output matches; that is how real
//! wall times lost after a shifted gap time slipped through.)
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;
use ordinaut_schedule::{Schedule, ScheduleSource};
use proptest::prelude::*;

/// Zones whose DST gaps are one hour at 02:00, half an hour, two hours, at midnight, at 02:45,
/// at 00:00 local in the Middle East, and a skipped day (Apia, December 2011).
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Chisinau",
    "Australia/Lord_Howe",
    "Antarctica/Troll",
    "America/Santiago",
    "Pacific/Chatham",
    "America/Havana",
    "Asia/Gaza",
    "America/St_Johns",
    "Pacific/Apia",
    "Africa/Casablanca",
    "America/Asuncion",
];

/// The instants (UTC) at which the zone's offset changes during `year`.
fn transitions(tz: Tz, year: i32) -> Vec<DateTime<Utc>> {
    let start = NaiveDate::from_ymd_opt(year, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let off = |t: DateTime<Utc>| {
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    };
    let mut out = Vec::new();
    let mut prev = off(start);
    for h in 1..(366 * 24) {
        let t = start + TimeDelta::hours(h);
        let o = off(t);
        if o != prev {
            // Narrow down to the minute.
            let mut lo = t - TimeDelta::hours(1);
            let mut hi = t;
            while hi - lo > TimeDelta::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if off(mid) == prev { lo = mid } else { hi = mid }
            }
            out.push(hi.with_second(0).unwrap().with_nanosecond(0).unwrap());
            prev = o;
        }
    }
    out
}

/// Resolves a wall time by the documented rules, from chrono-tz's raw answers: the first pass
/// of a repeated time; for a time in a gap, the offset in effect a day earlier (before the gap).
fn expected_instant(tz: Tz, w: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&w) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(a, b) => a.min(b).to_utc(),
        LocalResult::None => {
            let before = tz
                .offset_from_utc_datetime(&(w - TimeDelta::hours(26)))
                .fix()
                .local_minus_utc();
            (w - TimeDelta::seconds(i64::from(before))).and_utc()
        }
    }
}

/// A sub-daily or daily rule and a matcher written from its parts.
#[derive(Debug, Clone)]
struct Rule {
    /// 0 DAILY, 1 HOURLY, 2 MINUTELY
    freq: usize,
    interval: i64,
    byhour: Vec<u32>,
    byminute: Vec<u32>,
    byday: Vec<u32>,
}

const DAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

impl Rule {
    fn text(&self) -> String {
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut s = format!(
            "FREQ={};INTERVAL={}",
            ["DAILY", "HOURLY", "MINUTELY"][self.freq],
            self.interval
        );
        if !self.byhour.is_empty() {
            s += &format!(";BYHOUR={}", list(&self.byhour));
        }
        if !self.byminute.is_empty() {
            s += &format!(";BYMINUTE={}", list(&self.byminute));
        }
        if !self.byday.is_empty() {
            let d: Vec<&str> = self.byday.iter().map(|&d| DAYS[d as usize]).collect();
            s += &format!(";BYDAY={}", d.join(","));
        }
        s
    }

    fn matches(&self, t: NaiveDateTime, dtstart: NaiveDateTime) -> bool {
        if t < dtstart || t.second() != 0 {
            return false;
        }
        let unit = [86_400, 3_600, 60][self.freq];
        let floor = |x: NaiveDateTime| x.and_utc().timestamp().div_euclid(unit);
        if (floor(t) - floor(dtstart)).rem_euclid(self.interval) != 0 {
            return false;
        }
        let hours = if self.byhour.is_empty() && self.freq == 0 {
            vec![dtstart.hour()]
        } else {
            self.byhour.clone()
        };
        let minutes = if self.byminute.is_empty() && self.freq <= 1 {
            vec![dtstart.minute()]
        } else {
            self.byminute.clone()
        };
        (hours.is_empty() || hours.contains(&t.hour()))
            && (minutes.is_empty() || minutes.contains(&t.minute()))
            && (self.byday.is_empty() || self.byday.contains(&t.weekday().num_days_from_monday()))
    }
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    (
        0usize..3,
        1i64..50,
        prop::collection::vec(0u32..24, 0..4),
        prop::collection::vec(0u32..60, 0..4),
        prop::collection::vec(0u32..7, 0..3),
    )
        .prop_map(|(freq, interval, byhour, byminute, byday)| Rule {
            freq,
            interval: if freq == 0 {
                1 + interval % 3
            } else {
                interval
            },
            byhour,
            byminute,
            byday,
        })
}

/// Checks `got` (the engine's output in (from, to]) against the brute-force set over wall
/// times from a day before to a day after the window.
fn check(
    name: &str,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    got: Vec<DateTime<Utc>>,
    matches: impl Fn(NaiveDateTime) -> bool,
) -> Result<(), TestCaseError> {
    let mut want = BTreeSet::new();
    let mut w = (from - TimeDelta::days(1))
        .naive_utc()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap();
    let end = (to + TimeDelta::days(1)).naive_utc();
    while w <= end {
        if matches(w) {
            let at = expected_instant(tz, w);
            if at > from && at <= to {
                want.insert(at);
            }
        }
        w += TimeDelta::minutes(1);
    }
    let want: Vec<DateTime<Utc>> = want.into_iter().collect();
    prop_assert!(
        got.windows(2).all(|p| p[0] < p[1]),
        "{name}: not strictly increasing: {got:?}"
    );
    let missing: Vec<_> = want.iter().filter(|t| !got.contains(t)).collect();
    let extra: Vec<_> = got.iter().filter(|t| !want.contains(t)).collect();
    prop_assert!(
        missing.is_empty() && extra.is_empty(),
        "{name} in {tz} over ({from}, {to}]: missing {missing:?}, unexpected {extra:?}"
    );
    Ok(())
}

/// A window of ten hours around one of the zone's transitions in `year`, and the wall-clock
/// hour just before that transition (so rules can be aimed at the gap or repeat).
fn window(tz: Tz, year: i32, pick: usize) -> Option<(DateTime<Utc>, DateTime<Utc>, u32)> {
    let ts = transitions(tz, year);
    let t = *ts.get(pick % ts.len().max(1))?;
    let hour = (t - TimeDelta::minutes(1)).with_timezone(&tz).hour();
    Some((t - TimeDelta::hours(5), t + TimeDelta::hours(5), hour))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn rrule_output_is_exactly_the_matching_wall_times_resolved(
        rule in rule_strategy(),
        zone in 0usize..ZONES.len(),
        year in 2005i32..2030,
        pick in 0usize..4,
        start_back_min in 0i64..(3 * 24 * 60),
        aim in prop::option::of(prop::collection::vec(0u32..3, 1..3)),
    ) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        let Some((from, to, hour)) = window(tz, year, pick) else { return Ok(()) };
        let mut rule = rule;
        if let Some(aim) = aim {
            // Aim at the transition: hours just before and after it.
            rule.byhour = aim.iter().map(|d| (hour + d) % 24).collect();
        }
        let dtstart = (from.with_timezone(&tz).naive_local() - TimeDelta::minutes(start_back_min))
            .with_second(0).unwrap().with_nanosecond(0).unwrap();
        let text = rule.text();
        let Ok(s) = Schedule::new(&ScheduleSource::Rrule(text.clone()), ZONES[zone], dtstart) else {
            return Ok(());
        };
        let got: Vec<DateTime<Utc>> = s
            .iter_after(from)
            .map(|r| r.unwrap().to_utc())
            .take_while(|t| *t <= to)
            .collect();
        check(&format!("{text} from {dtstart}"), tz, from, to, got, |w| rule.matches(w, dtstart))?;
    }

    #[test]
    fn cron_output_is_exactly_the_matching_wall_times_resolved(
        minutes in prop::collection::vec(0u32..60, 1..4),
        minute_step in prop::option::of(1u32..31),
        hours in prop::collection::vec(0u32..24, 0..3),
        hour_range in prop::option::of((0u32..3, 0u32..4)),
        zone in 0usize..ZONES.len(),
        year in 2005i32..2030,
        pick in 0usize..4,
    ) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        let Some((from, to, hour)) = window(tz, year, pick) else { return Ok(()) };
        // Ranges are aimed at the transition's hour; lists are anywhere.
        let hour_range = hour_range.map(|(d, len)| ((hour + d).min(23), len));
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let minute_field = match minute_step { Some(k) => format!("*/{k}"), None => list(&minutes) };
        let hour_field = match hour_range {
            Some((a, len)) => format!("{a}-{}", (a + len).min(23)),
            None if hours.is_empty() => "*".to_string(),
            None => list(&hours),
        };
        let expr = format!("{minute_field} {hour_field} * * *");
        let s = Schedule::new(&ScheduleSource::Cron(expr.clone()), ZONES[zone], NaiveDateTime::default()).unwrap();
        let got: Vec<DateTime<Utc>> = s
            .iter_after(from)
            .map(|r| r.unwrap().to_utc())
            .take_while(|t| *t <= to)
            .collect();
        let minute_ok = |m: u32| match minute_step { Some(k) => m.is_multiple_of(k), None => minutes.contains(&m) };
        let hour_ok = |h: u32| match hour_range {
            Some((a, len)) => h >= a && h <= (a + len).min(23),
            None => hours.is_empty() || hours.contains(&h),
        };
        check(&expr, tz, from, to, got, |w| w.second() == 0 && minute_ok(w.minute()) && hour_ok(w.hour()))?;
    }
}
