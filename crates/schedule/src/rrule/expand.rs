//! The RRULE expander: walks the rule's periods (years, months, weeks, days, hours, minutes,
//! seconds, every INTERVAL-th one) in naive wall-clock time, expands or limits each period's
//! days and times by the BY-parts (RFC 5545's table, python-dateutil's semantics), applies
//! BYSETPOS within the period, and yields candidates in ascending wall-clock order.
//! Zone resolution, COUNT/UNTIL and de-duplication happen in the iterator (`iter.rs`).

use chrono::{
    DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc, Weekday,
};

use super::calendar::{
    CYCLE_DAYS, CYCLE_MONTHS, CYCLE_WEEKS, CYCLE_YEARS, day_num, from_day_num, gcd, month_len,
    wd_index, wd_of_num, year_len,
};
use super::parse::{Freq, RRule, Until};

/// A rule with its defaults filled in from DTSTART and its BY-parts turned into bit masks.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub freq: Freq,
    pub interval: i64,
    pub count: Option<u32>,
    pub until: Option<Until>,
    pub dtstart: NaiveDateTime,
    /// DTSTART's exact instant when it is known (a UTC DTSTART line, a Task's `startAt`):
    /// DTSTART may then be the second pass of a repeated hour, and no occurrence comes
    /// before it.
    pub start_instant: Option<DateTime<Utc>>,
    bymonth: u16,
    months: Vec<u32>,
    mday_pos: u32,
    mday_neg: u32,
    has_mday: bool,
    yday_pos: Vec<bool>,
    yday_neg: Vec<bool>,
    has_yday: bool,
    wday_plain: u8,
    nth: Vec<(i32, i32)>,
    has_byday: bool,
    byweekno: Vec<i32>,
    wkst: i32,
    pub(super) hour_mask: u32,
    pub(super) minute_mask: u64,
    pub(super) second_mask: u64,
    pub(super) minutes: Vec<u32>,
    pub(super) seconds: Vec<u32>,
    /// Sorted times of day, for FREQ of DAILY or coarser.
    pub(super) timeset: Vec<NaiveTime>,
    pub(super) bysetpos: Vec<i32>,
    /// The day DTSTART falls on, and the start of its week (WKST-aligned).
    d0: i32,
    week0: i32,
    /// DTSTART truncated to the frequency unit (sub-daily frequencies).
    pub(super) base: NaiveDateTime,
    /// Periods after which the pattern provably repeats (the 400-year cycle).
    pub cycle_periods: i64,
}

/// What filling one period produced: the index of the next period to look at, or the end of
/// the representable calendar.
pub(crate) enum Next {
    Period(i64),
    End,
}

/// BYMONTH, BYMONTHDAY and BYDAY with the defaults RFC 5545 and python-dateutil take from
/// DTSTART when a rule gives no day-level part.
fn day_defaults(rule: &RRule, dtstart: NaiveDateTime) -> (Vec<u32>, Vec<i32>, Vec<(i32, Weekday)>) {
    let mut bymonth = rule.bymonth.clone();
    let mut bymonthday = rule.bymonthday.clone();
    let mut byday = rule.byday.clone();
    if rule.byweekno.is_empty()
        && rule.byyearday.is_empty()
        && rule.bymonthday.is_empty()
        && rule.byday.is_empty()
    {
        match rule.freq {
            Freq::Yearly => {
                if bymonth.is_empty() {
                    bymonth = vec![dtstart.month()];
                }
                bymonthday = vec![dtstart.day() as i32];
            }
            Freq::Monthly => bymonthday = vec![dtstart.day() as i32],
            Freq::Weekly => byday = vec![(0, dtstart.weekday())],
            _ => {}
        }
    }
    (bymonth, bymonthday, byday)
}

/// Every combination of the hours, minutes and seconds, sorted.
fn times_of_day(hours: &[u32], minutes: &[u32], seconds: &[u32]) -> Vec<NaiveTime> {
    let mut timeset = Vec::new();
    for &h in hours {
        for &m in minutes {
            for &s in seconds {
                if let Some(t) = NaiveTime::from_hms_opt(h, m, s) {
                    timeset.push(t);
                }
            }
        }
    }
    timeset
}

/// The day-level BY-parts as masks: month days and year days counted from either end, plain
/// weekdays, and ordinal weekdays (`2MO`, `-1FR`).
struct DayMasks {
    mday_pos: u32,
    mday_neg: u32,
    yday_pos: Vec<bool>,
    yday_neg: Vec<bool>,
    wday_plain: u8,
    nth: Vec<(i32, i32)>,
}

impl DayMasks {
    fn new(bymonthday: &[i32], byyearday: &[i32], byday: &[(i32, Weekday)]) -> Self {
        let mut m = DayMasks {
            mday_pos: 0,
            mday_neg: 0,
            yday_pos: vec![false; 367],
            yday_neg: vec![false; 367],
            wday_plain: 0,
            nth: Vec::new(),
        };
        for &d in bymonthday {
            if d > 0 {
                m.mday_pos |= 1 << d;
            } else {
                m.mday_neg |= 1 << (-d);
            }
        }
        for &d in byyearday {
            if d > 0 {
                m.yday_pos[d as usize] = true;
            } else {
                m.yday_neg[(-d) as usize] = true;
            }
        }
        for &(n, wd) in byday {
            if n == 0 {
                m.wday_plain |= 1 << wd_index(wd);
            } else {
                m.nth.push((n, wd_index(wd)));
            }
        }
        m
    }
}

fn mask_of(values: &[u32]) -> u64 {
    values.iter().fold(0u64, |m, v| m | (1u64 << v))
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v.dedup();
    v
}

impl Compiled {
    pub(crate) fn new(rule: &RRule, dtstart: NaiveDateTime) -> Compiled {
        let f = rule.freq;
        let (bymonth, bymonthday, byday) = day_defaults(rule, dtstart);
        let pick = |given: &Vec<u32>, coarser: bool, from: u32, all: u32| -> Vec<u32> {
            if !given.is_empty() {
                sorted(given.clone())
            } else if coarser {
                vec![from]
            } else {
                (0..all).collect()
            }
        };
        let hours = pick(&rule.byhour, f < Freq::Hourly, dtstart.hour(), 24);
        let minutes = pick(&rule.byminute, f < Freq::Minutely, dtstart.minute(), 60);
        let seconds = pick(&rule.bysecond, f < Freq::Secondly, dtstart.second(), 60);
        let timeset = if f <= Freq::Daily {
            times_of_day(&hours, &minutes, &seconds)
        } else {
            Vec::new()
        };
        let days = DayMasks::new(&bymonthday, &rule.byyearday, &byday);
        let wkst = wd_index(rule.wkst);
        let d0 = day_num(dtstart.date());
        let week0 = d0 - (wd_of_num(d0) - wkst).rem_euclid(7);
        let interval = i64::from(rule.interval);
        let (unit, cycle) = match f {
            Freq::Yearly => (0, CYCLE_YEARS),
            Freq::Monthly => (0, CYCLE_MONTHS),
            Freq::Weekly => (0, CYCLE_WEEKS),
            Freq::Daily => (0, CYCLE_DAYS),
            Freq::Hourly => (3600, CYCLE_DAYS * 24),
            Freq::Minutely => (60, CYCLE_DAYS * 1440),
            Freq::Secondly => (1, CYCLE_DAYS * 86_400),
        };
        let base = if unit == 0 {
            dtstart
        } else {
            let secs = i64::from(dtstart.num_seconds_from_midnight());
            dtstart - TimeDelta::seconds(secs % unit)
        };
        Compiled {
            freq: f,
            interval,
            count: rule.count,
            until: rule.until,
            dtstart,
            start_instant: None,
            bymonth: mask_of(&bymonth) as u16,
            months: if bymonth.is_empty() {
                (1..=12).collect()
            } else {
                sorted(bymonth)
            },
            mday_pos: days.mday_pos,
            mday_neg: days.mday_neg,
            has_mday: !bymonthday.is_empty(),
            has_yday: !rule.byyearday.is_empty(),
            yday_pos: days.yday_pos,
            yday_neg: days.yday_neg,
            wday_plain: days.wday_plain,
            nth: days.nth,
            has_byday: !byday.is_empty(),
            byweekno: rule.byweekno.clone(),
            wkst,
            hour_mask: mask_of(&hours) as u32,
            minute_mask: mask_of(&minutes),
            second_mask: mask_of(&seconds),
            minutes,
            seconds,
            timeset,
            bysetpos: rule.bysetpos.clone(),
            d0,
            week0,
            base,
            cycle_periods: cycle / gcd(cycle, interval),
        }
    }

    /// The most candidates one period can hold (before BYSETPOS): a BYSETPOS beyond it can
    /// never select anything.
    pub(crate) fn max_per_period(&self) -> usize {
        let (m, s) = (self.minutes.len(), self.seconds.len());
        match self.freq {
            Freq::Yearly => 366 * self.timeset.len(),
            Freq::Monthly => 31 * self.timeset.len(),
            Freq::Weekly => 7 * self.timeset.len(),
            Freq::Daily => self.timeset.len(),
            Freq::Hourly => m * s,
            Freq::Minutely => s,
            Freq::Secondly => 1,
        }
    }

    pub(crate) fn bysetpos(&self) -> &[i32] {
        &self.bysetpos
    }

    /// The first day after `d` that can pass the month filter (skips whole months).
    pub(super) fn next_candidate_day(&self, d: NaiveDate) -> Option<NaiveDate> {
        if self.bymonth == 0 || self.bymonth & (1 << d.month()) != 0 {
            return d.succ_opt();
        }
        let (mut y, mut m) = (d.year(), d.month());
        for _ in 0..12 {
            (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            if self.bymonth & (1 << m) != 0 {
                break;
            }
        }
        NaiveDate::from_ymd_opt(y, m, 1)
    }

    /// Seconds per period for sub-daily frequencies (0 otherwise).
    pub(super) fn unit_secs(&self) -> i64 {
        match self.freq {
            Freq::Hourly => 3600,
            Freq::Minutely => 60,
            Freq::Secondly => 1,
            _ => 0,
        }
    }

    /// The index of the period containing wall time `t` (floor; may be negative).
    pub(crate) fn period_of(&self, t: NaiveDateTime) -> i64 {
        let i = self.interval;
        match self.freq {
            Freq::Yearly => i64::from(t.year() - self.dtstart.year()).div_euclid(i),
            Freq::Monthly => {
                let mi = |d: NaiveDateTime| i64::from(d.year()) * 12 + i64::from(d.month0());
                (mi(t) - mi(self.dtstart)).div_euclid(i)
            }
            Freq::Weekly => i64::from(day_num(t.date()) - self.week0).div_euclid(7 * i),
            Freq::Daily => i64::from(day_num(t.date()) - self.d0).div_euclid(i),
            _ => (t - self.base)
                .num_seconds()
                .div_euclid(self.unit_secs() * i),
        }
    }

    /// First sub-daily period index whose start is at or after `t`.
    pub(super) fn period_at_or_after(&self, t: NaiveDateTime) -> i64 {
        let step = self.unit_secs() * self.interval;
        let secs = (t - self.base).num_seconds();
        -((-secs).div_euclid(step))
    }

    pub(super) fn day_ok(&self, d: NaiveDate, nth: &[i32], wno: &[bool]) -> bool {
        if self.bymonth != 0 && self.bymonth & (1 << d.month()) == 0 {
            return false;
        }
        if !self.byweekno.is_empty() && !wno.get(d.ordinal0() as usize).copied().unwrap_or(false) {
            return false;
        }
        if self.has_byday {
            let plain = self.wday_plain & (1 << d.weekday().num_days_from_monday()) != 0;
            if !plain && !nth.contains(&day_num(d)) {
                return false;
            }
        }
        if self.has_mday {
            let md = d.day();
            let back = month_len(d.year(), d.month()) - md + 1;
            if self.mday_pos & (1 << md) == 0 && self.mday_neg & (1 << back) == 0 {
                return false;
            }
        }
        if self.has_yday {
            let yd = d.ordinal() as usize;
            let back = (year_len(d.year()) as usize) - yd + 1;
            if !self.yday_pos[yd] && !self.yday_neg[back] {
                return false;
            }
        }
        true
    }

    /// Day numbers that are the n-th weekday within [first, last] (inclusive day numbers).
    fn nth_in(&self, first: i32, last: i32, out: &mut Vec<i32>) {
        for &(n, wd) in &self.nth {
            let i = if n < 0 {
                let i = last + (n + 1) * 7;
                i - (wd_of_num(i) - wd).rem_euclid(7)
            } else {
                let i = first + (n - 1) * 7;
                i + (7 - wd_of_num(i) + wd).rem_euclid(7)
            };
            if first <= i && i <= last {
                out.push(i);
            }
        }
    }

    /// Fills `buf` with period `k`'s candidates in ascending order (BYSETPOS applied) and says
    /// which period to look at next.
    pub(crate) fn fill(&self, k: i64, buf: &mut Vec<NaiveDateTime>) -> Next {
        buf.clear();
        let next = match self.freq {
            Freq::Yearly | Freq::Monthly | Freq::Weekly => {
                if self.fill_days(k, buf).is_none() {
                    return Next::End;
                }
                Next::Period(k + 1)
            }
            Freq::Daily => match self.fill_daily(k, buf) {
                Some(n) => n,
                None => return Next::End,
            },
            _ => match self.fill_subdaily(k, buf) {
                Some(n) => n,
                None => return Next::End,
            },
        };
        if !self.bysetpos.is_empty() && !buf.is_empty() {
            self.apply_setpos(buf);
        }
        next
    }

    fn apply_setpos(&self, buf: &mut Vec<NaiveDateTime>) {
        let len = buf.len() as i64;
        let mut picked: Vec<NaiveDateTime> = Vec::with_capacity(self.bysetpos.len());
        for &p in &self.bysetpos {
            let idx = if p > 0 {
                i64::from(p) - 1
            } else {
                len + i64::from(p)
            };
            if (0..len).contains(&idx) {
                picked.push(buf[idx as usize]);
            }
        }
        picked.sort_unstable();
        picked.dedup();
        *buf = picked;
    }

    fn push_day(&self, d: NaiveDate, buf: &mut Vec<NaiveDateTime>) {
        for &t in &self.timeset {
            buf.push(d.and_time(t));
        }
    }

    fn fill_days(&self, k: i64, buf: &mut Vec<NaiveDateTime>) -> Option<()> {
        self.for_each_day(k, |d| self.push_day(d, buf))
    }

    /// Calls `on_day` for each day of period `k` (YEARLY, MONTHLY or WEEKLY) that passes the
    /// day filters, in ascending order.
    pub(super) fn for_each_day(&self, k: i64, mut on_day: impl FnMut(NaiveDate)) -> Option<()> {
        let i = self.interval;
        let mut nth = Vec::new();
        match self.freq {
            Freq::Yearly => {
                let year = i32::try_from(i64::from(self.dtstart.year()) + k * i).ok()?;
                let jan1 = day_num(NaiveDate::from_ymd_opt(year, 1, 1)?);
                let wno = if self.byweekno.is_empty() {
                    Vec::new()
                } else {
                    weekno_mask(year, self.wkst, &self.byweekno)
                };
                if !self.nth.is_empty() {
                    if self.bymonth != 0 {
                        for &m in &self.months {
                            let first = day_num(NaiveDate::from_ymd_opt(year, m, 1)?);
                            self.nth_in(first, first + month_len(year, m) as i32 - 1, &mut nth);
                        }
                    } else {
                        self.nth_in(jan1, jan1 + year_len(year) as i32 - 1, &mut nth);
                    }
                }
                for &m in &self.months {
                    let first = NaiveDate::from_ymd_opt(year, m, 1)?;
                    let mut d = first;
                    for _ in 0..month_len(year, m) {
                        if self.day_ok(d, &nth, &wno) {
                            on_day(d);
                        }
                        d = d.succ_opt()?;
                    }
                }
            }
            Freq::Monthly => {
                let mi =
                    i64::from(self.dtstart.year()) * 12 + i64::from(self.dtstart.month0()) + k * i;
                let year = i32::try_from(mi.div_euclid(12)).ok()?;
                let m = (mi.rem_euclid(12) + 1) as u32;
                if self.bymonth != 0 && self.bymonth & (1 << m) == 0 {
                    return Some(());
                }
                let first = NaiveDate::from_ymd_opt(year, m, 1)?;
                let len = month_len(year, m);
                if !self.nth.is_empty() {
                    let f = day_num(first);
                    self.nth_in(f, f + len as i32 - 1, &mut nth);
                }
                let mut d = first;
                for _ in 0..len {
                    if self.day_ok(d, &nth, &[]) {
                        on_day(d);
                    }
                    d = d.succ_opt()?;
                }
            }
            Freq::Weekly => {
                let start_week = i64::from(self.week0) + 7 * k * i;
                let start = if k == 0 {
                    i64::from(self.d0)
                } else {
                    start_week
                };
                for n in start..start_week + 7 {
                    let d = from_day_num(i32::try_from(n).ok()?)?;
                    if self.day_ok(d, &nth, &[]) {
                        on_day(d);
                    }
                }
            }
            _ => {}
        }
        Some(())
    }

    fn fill_daily(&self, k: i64, buf: &mut Vec<NaiveDateTime>) -> Option<Next> {
        self.daily(k, |d| self.push_day(d, buf))
    }

    /// Calls `on_day` with period `k`'s day (FREQ=DAILY) if it passes the day filters, and
    /// says which period can match next.
    pub(super) fn daily(&self, k: i64, on_day: impl FnOnce(NaiveDate)) -> Option<Next> {
        let n = i32::try_from(i64::from(self.d0) + k * self.interval).ok()?;
        let d = from_day_num(n)?;
        if self.day_ok(d, &[], &[]) {
            on_day(d);
            return Some(Next::Period(k + 1));
        }
        let next = i64::from(day_num(self.next_candidate_day(d)?) - self.d0);
        let k_next = -((-next).div_euclid(self.interval));
        Some(Next::Period(k_next.max(k + 1)))
    }

    fn fill_subdaily(&self, k: i64, buf: &mut Vec<NaiveDateTime>) -> Option<Next> {
        let step = self.unit_secs() * self.interval;
        let p = self
            .base
            .checked_add_signed(TimeDelta::try_seconds(k.checked_mul(step)?)?)?;
        let date = p.date();
        if !self.day_ok(date, &[], &[]) {
            let next_day = self.next_candidate_day(date)?.and_hms_opt(0, 0, 0)?;
            return Some(Next::Period(self.period_at_or_after(next_day).max(k + 1)));
        }
        let (h, m, s) = (p.hour(), p.minute(), p.second());
        if self.hour_mask & (1 << h) == 0 {
            let next_hour = date.and_hms_opt(h, 0, 0)? + TimeDelta::hours(1);
            return Some(Next::Period(self.period_at_or_after(next_hour).max(k + 1)));
        }
        match self.freq {
            Freq::Hourly => {
                for &mi in &self.minutes {
                    for &se in &self.seconds {
                        buf.push(date.and_hms_opt(h, mi, se)?);
                    }
                }
            }
            Freq::Minutely => {
                if self.minute_mask & (1 << m) != 0 {
                    for &se in &self.seconds {
                        buf.push(date.and_hms_opt(h, m, se)?);
                    }
                }
            }
            _ => {
                if self.minute_mask & (1 << m) == 0 {
                    let next_min = date.and_hms_opt(h, m, 0)? + TimeDelta::minutes(1);
                    return Some(Next::Period(self.period_at_or_after(next_min).max(k + 1)));
                }
                if self.second_mask & (1 << s) != 0 {
                    buf.push(p);
                }
            }
        }
        Some(Next::Period(k + 1))
    }
}

/// The first day (day number) of week 1 of `year`, weeks starting on `wkst`: the first week
/// with at least four days in the year (RFC 5545's BYWEEKNO, ISO 8601 with WKST).
fn week1_start(year: i32, wkst: i32) -> Option<i32> {
    let jan1 = day_num(NaiveDate::from_ymd_opt(year, 1, 1)?);
    let before = (wd_of_num(jan1) - wkst).rem_euclid(7);
    Some(if before <= 3 {
        jan1 - before
    } else {
        jan1 - before + 7
    })
}

/// Days of `year` (by 0-based ordinal; 7 spare entries past the end) that fall in the listed
/// weeks. Each day is numbered in its own week-year: days before week 1 belong to the previous
/// year's last week, days from the next year's week 1 on to that week 1, and a negative week
/// counts back from the last week of the day's week-year. This is RFC 5545; python-dateutil
/// differs at year boundaries (it sizes the previous year's weeks by the current year's
/// length, so early-January days can land in a week 53 the previous year does not have).
fn weekno_mask(year: i32, wkst: i32, byweekno: &[i32]) -> Vec<bool> {
    let len = year_len(year) as i32;
    let mut mask = vec![false; (len + 7) as usize];
    let starts = [year - 1, year, year + 1, year + 2].map(|y| week1_start(y, wkst));
    let (Some(jan1), [Some(prev), Some(this), Some(next), Some(after)]) =
        (NaiveDate::from_ymd_opt(year, 1, 1).map(day_num), starts)
    else {
        return mask;
    };
    for (i, slot) in mask.iter_mut().take(len as usize).enumerate() {
        let n = jan1 + i as i32;
        let (start, end) = if n < this {
            (prev, this)
        } else if n >= next {
            (next, after)
        } else {
            (this, next)
        };
        let weeks = (end - start) / 7;
        let week = (n - start) / 7 + 1;
        *slot = byweekno.iter().any(|&b| b == week || b == week - weeks - 1);
    }
    mask
}
