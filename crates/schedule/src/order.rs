//! Putting resolved wall times in order. Both the RRULE and the cron iterator produce wall
//! times in ascending wall-clock order, but resolution is not monotonic across a spring-forward
//! gap: a gap time is shifted forward by the gap and can land *after* real wall times that
//! follow it (`FREQ=MINUTELY;INTERVAL=45` in New York on 9 March 2025: 02:15 runs at 03:15
//! EDT, after the real 03:00 EDT). [`InOrder`] holds such a shifted instant back until no
//! later wall time can resolve before it, so every instant is emitted, in strictly increasing
//! order, and equal instants once.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::zone::Resolved;

/// A small look-ahead buffer between resolution and output.
#[derive(Debug)]
pub(crate) struct InOrder {
    /// Resolved instants not yet emitted, sorted descending (the next to emit is last).
    pending: Vec<DateTime<Tz>>,
    /// No wall time still to come resolves before this instant.
    floor: Option<DateTime<Utc>>,
    /// The last instant emitted (to drop equal instants).
    last: Option<DateTime<Utc>>,
    /// Only instants strictly after this are emitted.
    after: DateTime<Utc>,
}

impl InOrder {
    pub(crate) fn new(after: DateTime<Utc>) -> Self {
        InOrder {
            pending: Vec::new(),
            floor: None,
            last: None,
            after,
        }
    }

    /// Adds the next wall time, resolved. Wall times must come in ascending wall-clock order.
    /// The common case (nothing held back, a wall time that exists) passes straight through
    /// and is ready at once.
    pub(crate) fn push(&mut self, r: Resolved) {
        if self.pending.is_empty() && r.floor == r.at.to_utc() {
            self.floor = Some(r.floor);
            self.pending.push(r.at);
            return;
        }
        self.floor = Some(self.floor.map_or(r.floor, |f| f.max(r.floor)));
        let at = r.at;
        let pos = self.pending.partition_point(|p| *p > at);
        self.pending.insert(pos, at);
    }

    /// The next instant that no later wall time can precede, if any.
    pub(crate) fn ready(&mut self) -> Option<DateTime<Tz>> {
        let floor = self.floor?;
        self.pop_while(|next| next.to_utc() <= floor)
    }

    /// The next pending instant regardless of the floor: for when no wall times remain.
    pub(crate) fn drain(&mut self) -> Option<DateTime<Tz>> {
        self.pop_while(|_| true)
    }

    fn pop_while(&mut self, ok: impl Fn(&DateTime<Tz>) -> bool) -> Option<DateTime<Tz>> {
        while let Some(next) = self.pending.last() {
            if !ok(next) {
                return None;
            }
            let utc = next.to_utc();
            let next = self.pending.pop()?;
            if self.last.is_some_and(|l| utc <= l) {
                continue;
            }
            self.last = Some(utc);
            if utc > self.after {
                return Some(next);
            }
        }
        None
    }
}
