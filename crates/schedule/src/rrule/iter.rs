//! Turning the expander's wall-clock candidates into occurrences: DTSTART/UNTIL/COUNT, zone
//! resolution through [`crate::zone::resolve_local`], and the "strictly increasing, equal
//! instants are one" rule. Also the never-fires probe.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::expand::{Compiled, Next};
use super::parse::Until;
use crate::ScheduleError;
use crate::zone::resolve_local;

/// Work allowed between two candidates before the iterator reports that it gave up.
/// A validated rule produces a candidate at least once per 400-year cycle, which the cycle
/// check below catches first for every rule that skips whole days cheaply.
const STEP_BUDGET: u64 = 20_000_000;
/// Work the validation probe may spend looking for a first candidate.
const PROBE_BUDGET: u64 = 3_000_000;

/// How far before `after` iteration restarts when it may jump: longer than any DST gap or
/// repeat (the largest, Samoa 2011, was a day), so de-duplication sees the same history as an
/// iteration from DTSTART would.
const JUMP_MARGIN_DAYS: i64 = 3;

/// Lazily yields a rule's occurrences strictly after an instant.
pub(crate) struct RuleIter<'a> {
    rule: &'a Compiled,
    tz: Tz,
    next_period: Option<i64>,
    buf: Vec<NaiveDateTime>,
    pos: usize,
    count_left: Option<u32>,
    last: Option<DateTime<Utc>>,
    after: DateTime<Utc>,
    done: bool,
}

impl<'a> RuleIter<'a> {
    pub(crate) fn new(rule: &'a Compiled, tz: Tz, after: DateTime<Utc>) -> Self {
        // Without COUNT, periods before `after` cannot influence the result beyond the
        // de-duplication margin, so start close to `after` instead of at DTSTART.
        let start = if rule.count.is_none() {
            let local = after.with_timezone(&tz).naive_local();
            let target = local
                .checked_sub_signed(TimeDelta::days(JUMP_MARGIN_DAYS))
                .unwrap_or(local);
            rule.period_of(target).max(0)
        } else {
            0
        };
        RuleIter {
            rule,
            tz,
            next_period: Some(start),
            buf: Vec::new(),
            pos: 0,
            count_left: rule.count,
            last: None,
            after,
            done: false,
        }
    }

    /// Loads the next period that has candidates; `Ok(false)` at the end of the calendar.
    fn refill(&mut self) -> Result<bool, ScheduleError> {
        let mut steps = 0u64;
        let Some(first) = self.next_period else {
            return Ok(false);
        };
        loop {
            let Some(k) = self.next_period else {
                return Ok(false);
            };
            if k - first > self.rule.cycle_periods + 1 || steps > STEP_BUDGET {
                return Err(ScheduleError::gave_up(
                    "rrule",
                    format!(
                        "no occurrence found within {steps} steps; the engine gave up \
                         (simplify the rule)"
                    ),
                ));
            }
            steps += 1;
            self.next_period = match self.rule.fill(k, &mut self.buf) {
                Next::Period(n) => Some(n),
                Next::End => None,
            };
            if !self.buf.is_empty() {
                self.pos = 0;
                return Ok(true);
            }
        }
    }
}

impl Iterator for RuleIter<'_> {
    type Item = Result<DateTime<Tz>, ScheduleError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            while self.pos < self.buf.len() {
                let c = self.buf[self.pos];
                self.pos += 1;
                if c < self.rule.dtstart {
                    continue;
                }
                if let Some(Until::Local(u)) = self.rule.until
                    && c > u
                {
                    self.done = true;
                    return None;
                }
                let r = resolve_local(self.tz, c);
                let utc = r.to_utc();
                if let Some(Until::Utc(u)) = self.rule.until
                    && utc > u
                {
                    self.done = true;
                    return None;
                }
                if let Some(n) = self.count_left {
                    if n == 0 {
                        self.done = true;
                        return None;
                    }
                    self.count_left = Some(n - 1);
                }
                if self.last.is_some_and(|l| utc <= l) {
                    continue;
                }
                self.last = Some(utc);
                if utc > self.after {
                    return Some(Ok(r));
                }
            }
            if self.count_left == Some(0) {
                self.done = true;
                return None;
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Outcome of looking for the rule pattern's first wall-clock match at or after DTSTART,
/// ignoring COUNT and UNTIL (a rule whose bounds ended is valid; one whose pattern matches no
/// date is not).
pub(crate) enum Probe {
    Fires,
    /// A full 400-year cycle of periods was examined without a match.
    Never,
    /// The budget ran out before a full cycle was examined.
    Undecided {
        steps: u64,
    },
}

pub(crate) fn probe(rule: &Compiled) -> Probe {
    let mut buf = Vec::new();
    let mut k = 0i64;
    let mut steps = 0u64;
    loop {
        if k > rule.cycle_periods {
            return Probe::Never;
        }
        if steps >= PROBE_BUDGET {
            return Probe::Undecided { steps };
        }
        steps += 1;
        match rule.fill(k, &mut buf) {
            Next::Period(n) => k = n,
            Next::End => return Probe::Undecided { steps },
        }
        if buf.iter().any(|c| *c >= rule.dtstart) {
            return Probe::Fires;
        }
    }
}
