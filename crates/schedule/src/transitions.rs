//! A per-zone table of UTC offset changes, built once per zone by probing `chrono-tz` and
//! cached for the life of the process, so that resolving a wall time is a binary search over a
//! few hundred integers (or, for consecutive wall times, one range check against the span the
//! previous one fell in) instead of a full `chrono-tz` local-time lookup per candidate.
//!
//! The table reproduces `chrono-tz`'s own: chrono-tz keeps, per zone, a list of spans (a UTC
//! start and a fixed offset), and answers every query from it. Its spans cannot be read
//! directly, so [`ZoneTable::build`] finds them: it asks for the offset every [`SCAN_STEP`]
//! from [`SCAN_FROM`] to [`SCAN_TO`] and bisects each change to the exact second. That finds
//! every span longer than the step; the shortest span in chrono-tz 0.10's data is 6.9 days
//! (America/Cambridge_Bay, 2000), its first change is in 1845 and its last in 2099
//! (`tests::scan_covers_every_change` checks the edges for every zone, and the ordering tests
//! compare against chrono-tz directly). Offsets never change outside the scanned range:
//! before it the first span applies, after it the last, as in chrono-tz.

use std::sync::OnceLock;

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{TZ_VARIANTS, Tz, TzOffset};

/// 1800-01-01T00:00:00Z: before chrono-tz's first recorded change (1845).
const SCAN_FROM: i64 = -5_364_662_400;
/// 2101-01-01T00:00:00Z: after chrono-tz's last recorded change (2099).
const SCAN_TO: i64 = 4_133_980_800;
/// Probe interval: shorter than any span in the data (6.9 days), so no span is stepped over.
const SCAN_STEP: i64 = 2 * 86_400;

/// One zone's spans: span `i` has offset `offsets[i]` from UTC second `starts[i]` (inclusive)
/// to `starts[i + 1]` (exclusive); the first span reaches back and the last forward forever.
#[derive(Debug)]
pub(crate) struct ZoneTable {
    starts: Vec<i64>,
    offsets: Vec<TzOffset>,
    /// `offsets[i]` in seconds east of UTC.
    secs: Vec<i64>,
}

/// Where a wall time falls: the span that gives its instant, and whether it is in a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The wall time exists in span `i` (its first occurrence if it repeats).
    In(usize),
    /// The wall time is in the gap that ends where span `i` starts (`i >= 1`).
    GapBefore(usize),
}

impl ZoneTable {
    /// The table of `tz`, built on first use and shared afterwards.
    pub(crate) fn of(tz: Tz) -> &'static ZoneTable {
        static TABLES: OnceLock<Box<[OnceLock<ZoneTable>]>> = OnceLock::new();
        let tables = TABLES.get_or_init(|| TZ_VARIANTS.iter().map(|_| OnceLock::new()).collect());
        match tables.get(tz as usize) {
            Some(slot) => slot.get_or_init(|| ZoneTable::build(tz)),
            // Unreachable (every Tz is in TZ_VARIANTS); a private table keeps it correct.
            None => Box::leak(Box::new(ZoneTable::build(tz))),
        }
    }

    /// Finds the zone's spans by probing chrono-tz (see the module documentation).
    pub(crate) fn build(tz: Tz) -> ZoneTable {
        let at = |t: i64| offset_at(tz, t);
        let first = at(SCAN_FROM);
        let mut table = ZoneTable {
            starts: vec![i64::MIN],
            secs: vec![secs_of(&first)],
            offsets: vec![first],
        };
        let (mut t, mut current) = (SCAN_FROM, first);
        while t < SCAN_TO {
            let next = (t + SCAN_STEP).min(SCAN_TO);
            if at(next) == current {
                t = next;
                continue;
            }
            // The offset is `current` at `lo` and differs at `hi`: bisect to the second.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if at(mid) == current {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            current = at(hi);
            table.starts.push(hi);
            table.secs.push(secs_of(&current));
            table.offsets.push(current);
            t = hi;
        }
        table
    }

    /// Whether `a` and `b` have the same offset from UTC at every instant the engine
    /// computes (a zone and its links, such as `US/Eastern` and `America/New_York`):
    /// schedules come out the same in either.
    pub(crate) fn same_offsets(a: Tz, b: Tz) -> bool {
        let (x, y) = (ZoneTable::of(a), ZoneTable::of(b));
        x.starts == y.starts && x.secs == y.secs
    }

    /// Number of spans.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    /// The UTC second span `i` starts at (`i64::MIN` for the first).
    pub(crate) fn start(&self, i: usize) -> i64 {
        self.starts[i]
    }

    /// The offset of span `i`, in seconds east of UTC.
    pub(crate) fn secs(&self, i: usize) -> i64 {
        self.secs[i]
    }

    /// The first wall-clock second of span `i` (`i64::MIN` for the first span).
    fn local_begin(&self, i: usize) -> i64 {
        self.starts[i].saturating_add(self.secs[i])
    }

    /// The wall-clock second just past span `i` (`i64::MAX` for the last span).
    fn local_end(&self, i: usize) -> i64 {
        match self.starts.get(i + 1) {
            Some(&next) => next + self.secs[i],
            None => i64::MAX,
        }
    }

    /// Where wall time `local` (seconds of the wall clock counted like unix seconds) falls.
    /// Spans are longer than any offset change, so their wall-clock beginnings ascend and a
    /// wall time can only be in the last span that begins at or before it, or in the one
    /// before that (a repeated hour), or in the gap after it.
    pub(crate) fn place(&self, local: i64) -> Place {
        let i = self.last_beginning_at_or_before(local);
        if i > 0 && local < self.local_end(i - 1) {
            return Place::In(i - 1);
        }
        if local < self.local_end(i) {
            Place::In(i)
        } else {
            Place::GapBefore(i + 1)
        }
    }

    fn last_beginning_at_or_before(&self, local: i64) -> usize {
        // local_begin ascends with i (see `place`); index 0 begins at minus infinity.
        let n = self.starts.len();
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.local_begin(mid) <= local {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The span the UTC second `utc` falls in.
    pub(crate) fn span_at(&self, utc: i64) -> usize {
        self.starts.partition_point(|&s| s <= utc).saturating_sub(1)
    }

    /// The wall-clock seconds `[lo, hi)` that [`ZoneTable::place`] puts in span `i`: those of
    /// the span that are not also in the span before (a repeated hour belongs to its first
    /// occurrence).
    pub(crate) fn resolving_range(&self, i: usize) -> (i64, i64) {
        let mut lo = self.local_begin(i);
        if i > 0 {
            lo = lo.max(self.local_end(i - 1));
        }
        (lo, self.local_end(i))
    }

    /// The offset of span `i`.
    pub(crate) fn offset(&self, i: usize) -> TzOffset {
        self.offsets[i]
    }

    /// The offset at UTC second `utc`.
    pub(crate) fn offset_at_utc(&self, utc: i64) -> TzOffset {
        self.offsets[self.span_at(utc)]
    }
}

fn offset_at(tz: Tz, t: i64) -> TzOffset {
    let utc = DateTime::<Utc>::from_timestamp(t, 0).map_or(NaiveDateTime::MIN, |d| d.naive_utc());
    tz.offset_from_utc_datetime(&utc)
}

fn secs_of(o: &TzOffset) -> i64 {
    i64::from(o.fix().local_minus_utc())
}

#[cfg(test)]
mod tests;
