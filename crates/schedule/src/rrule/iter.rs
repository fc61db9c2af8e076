//! Turning the expander's wall-clock candidates into occurrences: DTSTART/UNTIL/COUNT, zone
//! resolution through [`crate::zone::resolve_local`], and the "strictly increasing, equal
//! instants are one" rule (through [`crate::order::InOrder`]); COUNT rules start near the
//! requested instant after counting what came before (`count.rs`). Also the never-fires probe.

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::expand::{Compiled, Next};
use super::parse::Until;
use crate::ScheduleError;
use crate::order::InOrder;
use crate::zone::{Resolved, Resolver};

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
    zone: Resolver,
    next_period: Option<i64>,
    buf: Vec<NaiveDateTime>,
    pos: usize,
    count_left: Option<u64>,
    order: InOrder,
    /// No more wall times will come; what is pending in `order` is still to be emitted.
    ended: bool,
    /// An error to report once the pending instants are out.
    error: Option<ScheduleError>,
}

impl<'a> RuleIter<'a> {
    pub(crate) fn new(rule: &'a Compiled, tz: Tz, after: DateTime<Utc>) -> Self {
        // Periods before `after` cannot influence the result beyond the de-duplication margin,
        // so start close to `after` instead of at DTSTART; with COUNT, after counting the
        // instances those periods used up.
        let local = after.with_timezone(&tz).naive_local();
        let target = local
            .checked_sub_signed(TimeDelta::days(JUMP_MARGIN_DAYS))
            .unwrap_or(local);
        let mut it = RuleIter {
            rule,
            zone: Resolver::new(tz),
            next_period: Some(0),
            buf: Vec::new(),
            pos: 0,
            count_left: rule.count.map(u64::from),
            order: InOrder::new(after),
            ended: false,
            error: None,
        };
        match rule.count {
            None => it.next_period = Some(rule.period_of(target).max(0)),
            Some(count) => match rule.skip_to(target) {
                Ok(None) => {}
                Ok(Some(skip)) => {
                    it.next_period = Some(skip.period);
                    it.count_left = Some(u64::from(count).saturating_sub(skip.used));
                }
                Err(e) => {
                    it.ended = true;
                    it.error = Some(e);
                }
            },
        }
        it
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

    /// The next wall-clock candidate at or after DTSTART, in ascending order; `Ok(None)` when
    /// COUNT is used up or the calendar ends.
    fn next_candidate(&mut self) -> Result<Option<NaiveDateTime>, ScheduleError> {
        loop {
            if self.count_left == Some(0) {
                return Ok(None);
            }
            while let Some(&c) = self.buf.get(self.pos) {
                self.pos += 1;
                if c >= self.rule.dtstart {
                    if let Some(n) = self.count_left.as_mut() {
                        *n -= 1;
                    }
                    return Ok(Some(c));
                }
            }
            if !self.refill()? {
                return Ok(None);
            }
        }
    }

    /// Resolves a candidate and hands it to the ordering buffer, or ends at UNTIL.
    fn accept(&mut self, c: NaiveDateTime) {
        if let Some(Until::Local(u)) = self.rule.until
            && c > u
        {
            self.ended = true;
            return;
        }
        let mut r = self.zone.resolve(c);
        if let Some(start) = self.rule.start_instant
            && r.at.to_utc() < start
        {
            // DTSTART is the second pass of a repeated hour: the wall times of the repeat
            // from DTSTART on run in their second pass (their first was before the start).
            match self.zone.second_pass(c) {
                Some(late) if late.to_utc() >= start => {
                    r = Resolved {
                        at: late,
                        floor: late.to_utc(),
                    }
                }
                _ => return,
            }
        }
        if let Some(Until::Utc(u)) = self.rule.until
            && r.at.to_utc() > u
        {
            // A gap time shifted past UNTIL may still be followed by real wall times before
            // it; the iteration ends once nothing later can come before UNTIL.
            self.ended = r.floor > u;
            return;
        }
        self.order.push(r);
    }
}

impl Iterator for RuleIter<'_> {
    type Item = Result<DateTime<Tz>, ScheduleError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(t) = self.order.ready() {
                return Some(Ok(t));
            }
            if self.ended {
                if let Some(t) = self.order.drain() {
                    return Some(Ok(t));
                }
                return self.error.take().map(Err);
            }
            match self.next_candidate() {
                Ok(Some(c)) => self.accept(c),
                Ok(None) => self.ended = true,
                Err(e) => {
                    self.ended = true;
                    self.error = Some(e);
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
