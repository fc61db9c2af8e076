//! Randomized differential test: random RRULEs in zones with awkward transitions (half-hour
//! DST, negative DST, date-line jumps, DST at midnight, zones that changed their base offset),
//! started close to a transition, against python-dateutil with zoneinfo (the same reference
//! and semantics as dateutil_reference.rs). A fixed seed by default, so a failure repeats;
//! `ORDINAUT_DIFF_SEED` and `ORDINAUT_DIFF_CASES` widen the search.
#![allow(clippy::unwrap_used)]
use ordinaut_test_support::schedule::*;

use chrono::{Datelike, Duration, NaiveDate, Timelike};

/// Zones whose rules are where schedulers go wrong; all of them had transitions in 1990-2037.
const ZONES: &[&str] = &[
    "Australia/Lord_Howe", // 30-minute DST
    "Europe/Dublin",       // negative DST in tzdata's main form
    "Africa/Casablanca",   // DST suspended for Ramadan (a spring-forward in spring)
    "Pacific/Apia",        // skipped 30 December 2011
    "Pacific/Chatham",     // +12:45 / +13:45
    "America/Santiago",    // DST change at midnight (24:00)
    "America/Havana",      // change at 00:00 / 01:00
    "Asia/Tehran",         // DST at midnight until 2022
    "America/St_Johns",    // -3:30, changes at 00:01 until 2011
    "Europe/Chisinau",     // changes at 02:00 / 03:00 local
    "America/Sao_Paulo",   // DST at midnight, abolished 2019
    "Antarctica/Troll",    // +00 / +02 (two-hour DST)
    "Asia/Gaza",           // irregular dates, changes at 00:00 / 02:00
    "Europe/Moscow",       // base offset changed 2011 and 2014
    "America/Caracas",     // -4:30 in 2007-2016
    "Asia/Pyongyang",      // +8:30 in 2015-2018
    "America/New_York",
    "Europe/Berlin",
    "Pacific/Kiritimati", // +14
    "America/Godthab",    // alias; DST at the EU instant, -3 to -2 in 2023
];

/// A small deterministic PRNG (xorshift64*), so the cases are the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
    /// 1..=k distinct values from `values`, sorted, joined by commas.
    fn subset(&mut self, values: &[i64], k: u64) -> String {
        let count = 1 + self.below(k) as usize;
        let mut chosen: Vec<i64> = (0..count)
            .map(|_| values[self.below(values.len() as u64) as usize])
            .collect();
        chosen.sort_unstable();
        chosen.dedup();
        chosen
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

const DAYS: &[&str] = &["MO", "TU", "WE", "TH", "FR", "SA", "SU"];
/// Hours and minutes near the usual transition times (local 00:00-03:59 and on the hour).
const HOURS: &[i64] = &[0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 12, 23];
const MINUTES: &[i64] = &[0, 0, 1, 15, 29, 30, 30, 45, 59];

/// One random rule; its expansion is bounded by `after` + n, and never needs dateutil to
/// walk years of minutes.
fn rule(rng: &mut Rng) -> (String, usize) {
    let byhour = |rng: &mut Rng| format!(";BYHOUR={}", rng.subset(HOURS, 3));
    let byminute = |rng: &mut Rng| format!(";BYMINUTE={}", rng.subset(MINUTES, 3));
    let byday = |rng: &mut Rng| {
        let n = 1 + rng.below(3) as usize;
        let days: Vec<&str> = (0..n).map(|_| rng.pick(DAYS)).collect();
        let mut days: Vec<&str> = DAYS.iter().copied().filter(|d| days.contains(d)).collect();
        days.dedup();
        format!(";BYDAY={}", days.join(","))
    };
    match rng.below(8) {
        0 => (
            format!(
                "FREQ=MINUTELY;INTERVAL={}",
                [1, 5, 7, 10, 15, 30, 45][rng.below(7) as usize]
            ),
            40,
        ),
        1 => {
            let mut r = format!("FREQ=HOURLY;INTERVAL={}", 1 + rng.below(3));
            if rng.below(2) == 0 {
                r += &byminute(rng);
            }
            (r, 30)
        }
        2 | 3 => {
            let mut r = format!("FREQ=DAILY;INTERVAL={}", 1 + rng.below(2));
            r += &byhour(rng);
            r += &byminute(rng);
            (r, 12)
        }
        4 => {
            let mut r = "FREQ=WEEKLY".to_string() + &byday(rng) + &byhour(rng);
            r += &byminute(rng);
            (r, 10)
        }
        5 => {
            let days = ["1", "-1", "1,15", "28,29,30,31", "-1,-2"][rng.below(5) as usize];
            let r = format!("FREQ=MONTHLY;BYMONTHDAY={days}") + &byhour(rng) + &byminute(rng);
            (r, 8)
        }
        6 => {
            let n = ["1", "2", "-1", "-2"][rng.below(4) as usize];
            let day = rng.pick(DAYS);
            let month = 1 + rng.below(12);
            let r = format!("FREQ=YEARLY;BYMONTH={month};BYDAY={n}{day}")
                + &byhour(rng)
                + &byminute(rng);
            (r, 4)
        }
        _ => (
            format!(
                "FREQ=SECONDLY;INTERVAL={}",
                [600, 900, 1800, 3600, 5400][rng.below(5) as usize]
            ),
            30,
        ),
    }
}

/// Random cases: DTSTART some days before a date in the months where transitions cluster,
/// `after` a few hours to days before it (UTC), so the first occurrences straddle it.
fn cases(seed: u64, count: usize) -> Vec<(String, String, String, String, usize)> {
    let mut rng = Rng(seed | 1);
    (0..count)
        .map(|_| {
            let zone = rng.pick(ZONES).to_string();
            let year = 1995 + rng.below(42) as i32;
            let month = [3, 3, 4, 4, 9, 10, 10, 11, 12, 1, 5, 6][rng.below(12) as usize];
            let day = 1 + rng.below(28) as u32;
            let target = NaiveDate::from_ymd_opt(year, month, day).unwrap();
            let start = target - Duration::days(rng.below(20) as i64);
            let dtstart = start
                .and_hms_opt(rng.below(24) as u32, rng.below(4) as u32 * 15, 0)
                .unwrap();
            let after =
                target.and_hms_opt(0, 0, 0).unwrap() - Duration::hours(rng.below(48) as i64);
            let after = if after < dtstart { dtstart } else { after };
            let (rule, n) = rule(&mut rng);
            (
                zone,
                format!(
                    "{:04}-{:02}-{:02}T{:02}:{:02}:00",
                    dtstart.year(),
                    dtstart.month(),
                    dtstart.day(),
                    dtstart.hour(),
                    dtstart.minute()
                ),
                rule,
                after.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                n,
            )
        })
        .collect()
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dateutil_reference.py");

#[test]
fn random_rules_in_awkward_zones_match_python_dateutil() {
    let seed = std::env::var("ORDINAUT_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0dd5_eed5_2026);
    let count = std::env::var("ORDINAUT_DIFF_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let cases = cases(seed, count);
    let expected = dateutil_reference(SCRIPT, &cases);
    let mut failures = Vec::new();
    for ((zone, dtstart, rule, after, n), want) in cases.iter().zip(&expected) {
        let got = take(&rrule(rule, zone, dtstart), after, *n);
        if &got != want {
            failures.push(format!(
                "{rule} in {zone} from {dtstart} after {after}:\n  ours:     {got:?}\n  dateutil: {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
