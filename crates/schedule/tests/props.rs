//! Property tests: for random rules, zones and instants, occurrences are strictly increasing,
//! never repeat, and each one matches the rule when read back in local time (a gap-shifted one
//! after subtracting the gap). Also: starting the iteration anywhere gives the same sequence.
#![allow(clippy::unwrap_used)]

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use ordinaut_schedule::{Schedule, ScheduleSource};
use proptest::prelude::*;

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Chisinau",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Europe/Istanbul",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "America/Havana",
    "Asia/Tehran",
    "Europe/Dublin",
    "America/St_Johns",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "Europe/London",
    "Australia/Adelaide",
    "America/Godthab",
    "Antarctica/Troll",
    "Asia/Gaza",
];
const FREQS: &[&str] = &[
    "YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY", "SECONDLY",
];
const DAYS: &[&str] = &["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

#[derive(Debug, Clone)]
struct Rule {
    freq: usize,
    interval: u32,
    bymonth: Vec<u32>,
    bymonthday: Vec<i32>,
    byday: Vec<(i32, usize)>,
    byhour: Vec<u32>,
    byminute: Vec<u32>,
    bysetpos: Option<i32>,
    wkst: usize,
}

impl Rule {
    fn text(&self) -> String {
        let mut s = format!("FREQ={};INTERVAL={}", FREQS[self.freq], self.interval);
        let join = |v: Vec<String>| v.join(",");
        if !self.bymonth.is_empty() {
            s += &format!(
                ";BYMONTH={}",
                join(self.bymonth.iter().map(|v| v.to_string()).collect())
            );
        }
        if !self.bymonthday.is_empty() {
            s += &format!(
                ";BYMONTHDAY={}",
                join(self.bymonthday.iter().map(|v| v.to_string()).collect())
            );
        }
        if !self.byday.is_empty() {
            s += &format!(
                ";BYDAY={}",
                join(
                    self.byday
                        .iter()
                        .map(|(n, d)| if *n == 0 {
                            DAYS[*d].to_string()
                        } else {
                            format!("{n}{}", DAYS[*d])
                        })
                        .collect()
                )
            );
        }
        if !self.byhour.is_empty() {
            s += &format!(
                ";BYHOUR={}",
                join(self.byhour.iter().map(|v| v.to_string()).collect())
            );
        }
        if !self.byminute.is_empty() {
            s += &format!(
                ";BYMINUTE={}",
                join(self.byminute.iter().map(|v| v.to_string()).collect())
            );
        }
        if let Some(p) = self.bysetpos {
            s += &format!(";BYSETPOS={p}");
        }
        s + &format!(";WKST={}", DAYS[self.wkst])
    }

    /// Does wall time `t` belong to the rule's pattern (BYSETPOS only narrows it further)?
    fn matches(&self, t: NaiveDateTime, dtstart: NaiveDateTime) -> bool {
        if t < dtstart {
            return false;
        }
        let i = i64::from(self.interval);
        let freq = self.freq;
        let days = |d: NaiveDate| i64::from(d.num_days_from_ce());
        let aligned = match freq {
            0 => i64::from(t.year() - dtstart.year()) % i == 0,
            1 => {
                ((i64::from(t.year()) * 12 + i64::from(t.month0()))
                    - (i64::from(dtstart.year()) * 12 + i64::from(dtstart.month0())))
                    % i
                    == 0
            }
            2 => {
                let wk = |d: NaiveDate| {
                    days(d)
                        - i64::from(
                            (d.weekday().num_days_from_monday() as i64 - self.wkst as i64)
                                .rem_euclid(7) as i32,
                        )
                };
                ((wk(t.date()) - wk(dtstart.date())) / 7) % i == 0
            }
            3 => (days(t.date()) - days(dtstart.date())) % i == 0,
            _ => {
                let unit = [3600, 60, 1][freq - 4];
                let base = dtstart.and_utc().timestamp().div_euclid(unit) * unit;
                (t.and_utc().timestamp() - base).div_euclid(unit) % i == 0
            }
        };
        if !aligned {
            return false;
        }
        let no_day_rules = self.bymonthday.is_empty() && self.byday.is_empty();
        let months: Vec<u32> = if self.bymonth.is_empty() && freq == 0 && no_day_rules {
            vec![dtstart.month()]
        } else {
            self.bymonth.clone()
        };
        if !months.is_empty() && !months.contains(&t.month()) {
            return false;
        }
        let mdays: Vec<i32> = if no_day_rules && freq <= 1 {
            vec![dtstart.day() as i32]
        } else {
            self.bymonthday.clone()
        };
        let mlen = NaiveDate::from_ymd_opt(t.year(), t.month() % 12 + 1, 1)
            .unwrap_or_else(|| NaiveDate::from_ymd_opt(t.year() + 1, 1, 1).unwrap())
            .pred_opt()
            .unwrap()
            .day() as i32;
        let md = t.day() as i32;
        if !mdays.is_empty() && !mdays.iter().any(|&d| d == md || d == md - mlen - 1) {
            return false;
        }
        let byday: Vec<(i32, usize)> = if no_day_rules && freq == 2 {
            vec![(0, dtstart.weekday().num_days_from_monday() as usize)]
        } else {
            self.byday.clone()
        };
        let wd = t.weekday().num_days_from_monday() as usize;
        if !byday.is_empty() {
            let ok = byday.iter().any(|&(n, d)| {
                if d != wd {
                    return false;
                }
                if n == 0 {
                    return true;
                }
                // Ordinal within the month (MONTHLY, or YEARLY with BYMONTH) or the year.
                let (pos, len) = if freq == 1 || !self.bymonth.is_empty() {
                    (md, mlen)
                } else {
                    (
                        t.ordinal() as i32,
                        if NaiveDate::from_ymd_opt(t.year(), 2, 29).is_some() {
                            366
                        } else {
                            365
                        },
                    )
                };
                if n > 0 {
                    (pos - 1) / 7 + 1 == n
                } else {
                    (len - pos) / 7 + 1 == -n
                }
            });
            if !ok {
                return false;
            }
        }
        let hours: Vec<u32> = if self.byhour.is_empty() && freq < 4 {
            vec![dtstart.hour()]
        } else {
            self.byhour.clone()
        };
        if !hours.is_empty() && !hours.contains(&t.hour()) {
            return false;
        }
        let minutes: Vec<u32> = if self.byminute.is_empty() && freq < 5 {
            vec![dtstart.minute()]
        } else {
            self.byminute.clone()
        };
        if !minutes.is_empty() && !minutes.contains(&t.minute()) {
            return false;
        }
        freq == 6 || t.second() == dtstart.second()
    }
}

fn rule_strategy() -> impl Strategy<Value = Rule> {
    (0usize..7).prop_flat_map(|freq| {
        let sub_daily = freq >= 4;
        (
            Just(freq),
            1u32..4,
            prop::collection::vec(1u32..13, 0..3),
            if freq == 2 {
                prop::collection::vec(1i32..2, 0..1).boxed()
            } else {
                prop::collection::vec(prop_oneof![1i32..29, -28i32..0], 0..3).boxed()
            },
            prop::collection::vec(
                (
                    if freq <= 1 {
                        prop_oneof![Just(0), -4i32..0, 1i32..5].boxed()
                    } else {
                        Just(0).boxed()
                    },
                    0usize..7,
                ),
                0..3,
            ),
            prop::collection::vec(0u32..24, 0..3),
            if sub_daily {
                prop::collection::vec(0u32..60, 0..1).boxed()
            } else {
                prop::collection::vec(0u32..60, 0..3).boxed()
            },
            prop::option::of(prop_oneof![1i32..4, -3i32..0]),
            0usize..7,
        )
            .prop_map(
                |(freq, interval, bymonth, bymonthday, byday, byhour, byminute, bysetpos, wkst)| {
                    Rule {
                        freq,
                        interval,
                        bymonth,
                        bymonthday: if freq == 2 { vec![] } else { bymonthday },
                        byday,
                        byhour,
                        byminute,
                        bysetpos,
                        wkst,
                    }
                },
            )
    })
}

fn gap_before(tz: Tz, t: DateTime<Tz>) -> i64 {
    let now = t.offset().fix().local_minus_utc();
    let before = tz
        .offset_from_utc_datetime(&(t.naive_utc() - TimeDelta::hours(26)))
        .fix()
        .local_minus_utc();
    i64::from(now - before)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn occurrences_increase_and_match_the_rule(
        rule in rule_strategy(),
        zone in 0usize..ZONES.len(),
        start_secs in 0i64..(120 * 365 * 86_400),
        after_delta in 0i64..(3 * 365 * 86_400),
    ) {
        let tz: Tz = ZONES[zone].parse().unwrap();
        let dtstart = DateTime::from_timestamp(start_secs, 0).unwrap().naive_utc();
        let text = rule.text();
        let Ok(s) = Schedule::new(&ScheduleSource::Rrule(text.clone()), ZONES[zone], dtstart) else {
            // Never-firing or undecidable random combinations are rejected; validation tests
            // cover those.
            return Ok(());
        };
        let after: DateTime<Utc> = DateTime::from_timestamp(start_secs + after_delta - 86_400, 0).unwrap();
        let got: Vec<DateTime<Tz>> = s.iter_after(after).take(15).map(|r| r.unwrap()).collect();
        let mut prev = after;
        for occ in &got {
            let u = occ.to_utc();
            prop_assert!(u > prev, "{text} in {}: {occ} not after {prev}", ZONES[zone]);
            prev = u;
            let local = occ.naive_local();
            let gap = gap_before(tz, *occ);
            let ok = rule.matches(local, dtstart)
                || (gap > 0 && rule.matches(local - TimeDelta::seconds(gap), dtstart));
            prop_assert!(ok, "{text} from {dtstart} in {}: {occ} does not match", ZONES[zone]);
        }
        // Starting right after any occurrence continues the same sequence.
        if got.len() > 3 {
            let again: Vec<DateTime<Tz>> = s.iter_after(got[1].to_utc()).take(got.len() - 2).map(|r| r.unwrap()).collect();
            prop_assert_eq!(&again[..], &got[2..]);
            prop_assert_eq!(s.next_after(got[2].to_utc()).unwrap(), Some(got[3]));
        }
    }

    #[test]
    fn cron_occurrences_increase_and_match(
        minute in prop::collection::vec(0u32..60, 1..3),
        hour in prop::collection::vec(0u32..24, 0..3),
        dow in prop::collection::vec(0u32..7, 0..2),
        zone in 0usize..ZONES.len(),
        after_secs in 0i64..(120 * 365 * 86_400),
    ) {
        let list = |v: &Vec<u32>| if v.is_empty() { "*".to_string() } else { v.iter().map(u32::to_string).collect::<Vec<_>>().join(",") };
        let expr = format!("{} {} * * {}", list(&minute), list(&hour), list(&dow));
        let tz: Tz = ZONES[zone].parse().unwrap();
        let s = Schedule::new(&ScheduleSource::Cron(expr.clone()), ZONES[zone], NaiveDateTime::default()).unwrap();
        let after: DateTime<Utc> = DateTime::from_timestamp(after_secs, 0).unwrap();
        let mut prev = after;
        for occ in s.iter_after(after).take(10) {
            let occ = occ.unwrap();
            prop_assert!(occ.to_utc() > prev, "{expr}: {occ} not after {prev}");
            prev = occ.to_utc();
            let gap = gap_before(tz, occ);
            let m = |t: NaiveDateTime| minute.contains(&t.minute())
                && (hour.is_empty() || hour.contains(&t.hour()))
                && (dow.is_empty() || dow.contains(&t.weekday().num_days_from_sunday()));
            let local = occ.naive_local();
            prop_assert!(m(local) || (gap > 0 && m(local - TimeDelta::seconds(gap))), "{expr} in {}: {occ}", ZONES[zone]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary input is rejected with an error, never a panic.
    #[test]
    fn arbitrary_specs_never_panic(
        spec in "(DTSTART[;:][A-Z=/_0-9]{0,20}\n)?(RRULE:)?([A-Z]{2,10}=[-+0-9A-Za-z,]{0,12};?){0,5}|[ -~\u{e9}\u{1F600}]{0,30}",
        cron in "[-*/,0-9A-Za-z@ ]{0,30}",
    ) {
        let anchor = NaiveDateTime::default();
        for src in [ScheduleSource::Rrule(spec.clone()), ScheduleSource::Cron(cron.clone()), ScheduleSource::At(spec.clone()), ScheduleSource::Every(cron.clone())] {
            if let Ok(s) = Schedule::new(&src, "Europe/Chisinau", anchor) {
                let _ = s.iter_after(DateTime::from_timestamp(0, 0).unwrap()).take(3).count();
                let _ = s.describe();
            }
        }
    }
}
