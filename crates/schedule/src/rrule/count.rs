//! Counting a rule's instances without listing them, so that a COUNT rule whose DTSTART lies
//! far in the past answers "what comes after now" quickly. COUNT numbers instances from
//! DTSTART, so the iterator must know how many were used up before the point where it starts;
//! listing them costs one step per instance (`FREQ=SECONDLY;COUNT=4000000000` from 1970 is
//! 1.8 billion before 2027). Here:
//! * DAILY and coarser frequencies count each period's matching days times the times of day,
//!   one step per period (at most a few hundred thousand periods in the calendar's range);
//! * sub-daily frequencies (unless their INTERVAL spans a day or more, when they are counted
//!   period by period too) count whole days at once: how many periods of a day match depends
//!   only on where the first period falls within the day (its phase), so each phase is
//!   counted once and cached, and the rest is one step per day.
//!
//! A work budget bounds both; past it the iterator reports that it gave up, naming the rule.

use std::collections::HashMap;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

use super::expand::{Compiled, Next};
use super::parse::Freq;
use crate::ScheduleError;

/// Steps the count may take: days (sub-daily) or periods (daily and coarser) plus the periods
/// counted one by one within cached day phases. DTSTART years have four digits, so the
/// longest walk to the present (DAILY from year 0) is about 740,000 steps.
pub(crate) const COUNT_BUDGET: u64 = 8_000_000;

const DAY_SECS: i64 = 86_400;

/// Where iteration may start for a COUNT rule: `period`, with `used` instances of the COUNT
/// already taken by earlier periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skip {
    pub period: i64,
    pub used: u64,
}

impl Compiled {
    /// How many instances (at or after DTSTART) the periods before a wall time close to (at or
    /// before) `target` hold. `Ok(None)` when `target` is too close to DTSTART to be worth
    /// skipping.
    pub(crate) fn skip_to(&self, target: NaiveDateTime) -> Result<Option<Skip>, ScheduleError> {
        if target <= self.dtstart {
            return Ok(None);
        }
        let mut work = 0u64;
        // Periods a day or longer apart are fewer than days: count those one by one.
        let sparse = self.unit_secs() * self.interval >= DAY_SECS;
        let skip = if self.freq <= Freq::Daily || sparse {
            self.skip_periods(self.period_of(target), &mut work)
        } else {
            self.skip_days(target.date(), &mut work)
        };
        match skip {
            Some(skip) => Ok(Some(skip)),
            None if work > COUNT_BUDGET => Err(self.too_costly()),
            None => Ok(None),
        }
    }

    fn too_costly(&self) -> ScheduleError {
        ScheduleError::gave_up(
            "rrule.COUNT",
            format!(
                "counting COUNT={} instances from DTSTART {} up to now takes more than {} \
                 steps; move DTSTART closer to today (and lower COUNT by the instances \
                 already past) or drop COUNT",
                self.count.unwrap_or_default(),
                self.dtstart,
                COUNT_BUDGET
            ),
        )
    }

    /// Instances a period holds once BYSETPOS picks from `len` candidates.
    fn picked(&self, len: usize) -> u64 {
        if self.bysetpos.is_empty() || len == 0 {
            return len as u64;
        }
        let n = len as i64;
        let mut idx: Vec<i64> = self
            .bysetpos
            .iter()
            .map(|&p| {
                if p > 0 {
                    i64::from(p) - 1
                } else {
                    n + i64::from(p)
                }
            })
            .filter(|i| (0..n).contains(i))
            .collect();
        idx.sort_unstable();
        idx.dedup();
        idx.len() as u64
    }

    /// Instances in period `k` at or after DTSTART, and the next period that can match.
    fn count_period(&self, k: i64, buf: &mut Vec<NaiveDateTime>) -> Option<(u64, Next)> {
        if k == 0 || self.freq > Freq::Daily {
            // Only the first period can hold candidates before DTSTART: list it (and list
            // sub-daily periods, which hold a handful of candidates each).
            let next = self.fill(k, buf);
            let n = buf.iter().filter(|c| **c >= self.dtstart).count();
            return Some((n as u64, next));
        }
        let mut days = 0usize;
        let next = if self.freq == Freq::Daily {
            self.daily(k, |_| days += 1)?
        } else {
            self.for_each_day(k, |_| days += 1)?;
            Next::Period(k + 1)
        };
        Some((self.picked(days * self.timeset.len()), next))
    }

    /// DAILY and coarser, and sub-daily rules whose periods are a day or more apart: count
    /// period by period up to the period containing the target.
    fn skip_periods(&self, end: i64, work: &mut u64) -> Option<Skip> {
        let mut buf = Vec::new();
        let (mut k, mut used) = (0i64, 0u64);
        while k < end {
            *work += 1;
            if *work > COUNT_BUDGET {
                return None;
            }
            let (n, next) = self.count_period(k, &mut buf)?;
            used += n;
            match next {
                Next::Period(p) => k = p,
                Next::End => return None,
            }
        }
        Some(Skip { period: k, used })
    }

    /// Sub-daily frequencies: list the first day, then count whole days up to `target_day`.
    fn skip_days(&self, target_day: NaiveDate, work: &mut u64) -> Option<Skip> {
        let first_day = self.base.date();
        let mut day = first_day.succ_opt()?;
        if target_day <= day {
            return None;
        }
        let mut used = self.count_first_day(self.start_of(day)?, work)?;
        let mut phases: HashMap<i64, u64> = HashMap::new();
        while day < target_day {
            *work += 1;
            if *work > COUNT_BUDGET {
                return None;
            }
            if !self.day_ok(day, &[], &[]) {
                day = self.next_candidate_day(day)?;
                continue;
            }
            let k = self.start_of(day)?;
            let phase = self.phase(k, day)?;
            let n = match phases.get(&phase) {
                Some(n) => *n,
                None => {
                    let n = self.count_day(phase, work);
                    phases.insert(phase, n);
                    n
                }
            };
            used += n;
            day = day.succ_opt()?;
        }
        Some(Skip {
            period: self.start_of(target_day)?,
            used,
        })
    }

    /// The first period starting at or after midnight of `day`.
    fn start_of(&self, day: NaiveDate) -> Option<i64> {
        Some(self.period_at_or_after(day.and_time(NaiveTime::MIN)))
    }

    /// Seconds from midnight of `day` to the start of period `k`.
    fn phase(&self, k: i64, day: NaiveDate) -> Option<i64> {
        let step = self.unit_secs().checked_mul(self.interval)?;
        let start = self
            .base
            .checked_add_signed(TimeDelta::try_seconds(k.checked_mul(step)?)?)?;
        Some((start - day.and_time(NaiveTime::MIN)).num_seconds())
    }

    /// Instances at or after DTSTART in periods before `end` (the first day's periods).
    fn count_first_day(&self, end: i64, work: &mut u64) -> Option<u64> {
        let mut buf = Vec::new();
        let (mut k, mut used) = (0i64, 0u64);
        while k < end {
            *work += 1;
            let (n, next) = self.count_period(k, &mut buf)?;
            used += n;
            match next {
                Next::Period(p) => k = p,
                Next::End => return None,
            }
        }
        Some(used)
    }

    /// Instances in a day whose first period starts `phase` seconds after midnight, on a day
    /// that passes the day filters.
    fn count_day(&self, phase: i64, work: &mut u64) -> u64 {
        let step = self.unit_secs() * self.interval;
        let mut used = 0u64;
        let mut t = phase;
        while t < DAY_SECS {
            *work += 1;
            let (h, m, s) = (t / 3600, (t / 60) % 60, t % 60);
            let hour_ok = self.hour_mask & (1 << h) != 0;
            let minute_ok = self.minute_mask & (1 << m) != 0;
            let second_ok = self.second_mask & (1 << s) != 0;
            used += match self.freq {
                Freq::Hourly if hour_ok => self.picked(self.minutes.len() * self.seconds.len()),
                Freq::Minutely if hour_ok && minute_ok => self.picked(self.seconds.len()),
                Freq::Secondly if hour_ok && minute_ok && second_ok => self.picked(1),
                _ => 0,
            };
            t += step;
        }
        used
    }
}
