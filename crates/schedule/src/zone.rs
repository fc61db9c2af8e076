//! Timezones: parsing IANA names and THE one function, [`resolve_local`], that turns a wall
//! time into an instant by Ordinaut's rules (a time in a spring-forward gap is read with the
//! offset before the gap; a time in a fall-back repeat resolves to its first occurrence).
//!
//! Zone data comes from `chrono-tz` (the IANA database compiled in). It has no DST rules
//! after 2099: later instants use the last known offset.

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use crate::ScheduleError;
use crate::transitions::{Place, ZoneTable};

/// Parses an IANA timezone name (`Europe/Chisinau`, `UTC`). The error names the field
/// `timezone`.
pub fn parse_timezone(name: &str) -> Result<Tz, ScheduleError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ScheduleError::invalid(
            "timezone",
            "empty timezone; write an IANA name such as `UTC` or `Europe/Berlin`",
        ));
    }
    trimmed.parse::<Tz>().map_err(|_| {
        ScheduleError::invalid(
            "timezone",
            format!(
                "unknown timezone `{trimmed}`; use an IANA name such as `UTC`, \
                 `Europe/Berlin` or `America/New_York` (case-sensitive)"
            ),
        )
    })
}

/// Resolves a wall time in `tz`:
/// * an existing, unambiguous wall time maps to its instant;
/// * an ambiguous one (the hour repeated when clocks fall back) maps to its first occurrence,
///   the earlier instant;
/// * a nonexistent one (the gap when clocks spring forward) is read with the offset in effect
///   before the gap, i.e. it is shifted forward by the size of the gap (02:30 becomes 03:30 on
///   a one-hour gap), as RFC 5545, `java.time` and Python's `zoneinfo` (fold=0) do.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Tz> {
    Resolver::new(tz).resolve(local).at
}

/// A wall time resolved by [`resolve_local`], with a lower bound on what any *later* wall time
/// can resolve to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    /// The instant the wall time runs at.
    pub at: DateTime<Tz>,
    /// Every wall time after this one resolves to an instant at or after `floor`. For a wall
    /// time that exists, `floor == at` (resolution is monotonic outside gaps). For a gap time,
    /// `at` is shifted forward past real wall times that follow the gap, so `floor` is the
    /// instant of the transition itself: the first real wall time after the gap maps there.
    pub floor: DateTime<Utc>,
}

/// Resolves wall times of one zone by [`resolve_local`]'s rules through the zone's cached
/// table of offset changes ([`ZoneTable`]), remembering the span of offsets the previous wall
/// time fell in: iterators resolve ascending wall times, so most are one range check away.
#[derive(Debug)]
pub(crate) struct Resolver {
    tz: Tz,
    table: &'static ZoneTable,
    /// Wall-clock seconds `[lo, hi)` that resolve in span `span` (empty at first).
    lo: i64,
    hi: i64,
    span: usize,
    /// Span `span`'s offset.
    fixed: FixedOffset,
}

impl Resolver {
    pub(crate) fn new(tz: Tz) -> Resolver {
        Resolver {
            tz,
            table: ZoneTable::of(tz),
            lo: 0,
            hi: 0,
            span: 0,
            fixed: Utc.fix(),
        }
    }

    /// [`resolve_local`] with the floor (see [`Resolved`]).
    pub(crate) fn resolve(&mut self, local: NaiveDateTime) -> Resolved {
        let ts = local.and_utc().timestamp();
        if !(self.lo <= ts && ts < self.hi) {
            match self.table.place(ts) {
                Place::In(i) => self.enter(i),
                Place::GapBefore(i) => return self.in_gap(local, ts, i),
            }
        }
        let Some(utc) = local.checked_sub_offset(self.fixed) else {
            return resolve_with_chrono_tz(self.tz, local);
        };
        let at = DateTime::from_naive_utc_and_offset(utc, self.table.offset(self.span));
        Resolved {
            at,
            floor: utc.and_utc(),
        }
    }

    /// The later instant of a wall time that the clocks show twice (the hour repeated when
    /// they fall back); `None` for any other wall time.
    pub(crate) fn second_pass(&self, local: NaiveDateTime) -> Option<DateTime<Tz>> {
        match self.tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(_, late) => Some(late),
            _ => None,
        }
    }

    /// Makes span `i` the remembered one.
    fn enter(&mut self, i: usize) {
        (self.lo, self.hi) = self.table.resolving_range(i);
        self.span = i;
        let secs = i32::try_from(self.table.secs(i)).unwrap_or(0);
        self.fixed = FixedOffset::east_opt(secs).unwrap_or(self.fixed);
    }

    /// A wall time in the gap before span `i`: read with span `i - 1`'s offset; the floor is
    /// the transition instant.
    fn in_gap(&self, local: NaiveDateTime, ts: i64, i: usize) -> Resolved {
        let utc = ts - self.table.secs(i - 1);
        let offset = self.table.offset_at_utc(utc);
        let floor = DateTime::<Utc>::from_timestamp(self.table.start(i), 0);
        match (DateTime::<Utc>::from_timestamp(utc, 0), floor) {
            (Some(at), Some(floor)) => Resolved {
                at: DateTime::from_naive_utc_and_offset(at.naive_utc(), offset),
                floor,
            },
            _ => resolve_with_chrono_tz(self.tz, local),
        }
    }
}

/// [`resolve_local`] asked of chrono-tz directly, one lookup per wall time: the reference the
/// cached tables are tested against, and the fallback at the edges of the representable range.
pub(crate) fn resolve_with_chrono_tz(tz: Tz, local: NaiveDateTime) -> Resolved {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Resolved {
            at: t,
            floor: t.to_utc(),
        },
        LocalResult::Ambiguous(a, b) => {
            let at = a.min(b);
            Resolved {
                at,
                floor: at.to_utc(),
            }
        }
        LocalResult::None => {
            let (before, gap_start) = offset_before_gap(tz, local);
            let shift = TimeDelta::seconds(i64::from(before));
            let utc = local - shift;
            let at = tz.from_utc_datetime(&utc);
            // The transition instant is the gap's first wall time read with the offset before
            // it. Without a recorded start, a day back is a safe (merely slower) bound.
            let floor = match gap_start {
                Some(start) => (start - shift).and_utc(),
                None => (utc - TimeDelta::days(1)).and_utc(),
            };
            Resolved { at, floor }
        }
    }
}

/// The UTC offset (seconds) in effect just before the gap that contains `local`, and the gap's
/// first wall time when chrono-tz's transition table records it. At the edge of the table (no
/// recorded start), step back an hour at a time to a wall time before the gap (gaps are at
/// most a day long).
fn offset_before_gap(tz: Tz, local: NaiveDateTime) -> (i32, Option<NaiveDateTime>) {
    if let Some((start, offset)) = GapInfo::new(&local, &tz).and_then(|g| g.begin) {
        return (offset.fix().local_minus_utc(), Some(start));
    }
    for hours in 1..=48 {
        let probe = local - TimeDelta::hours(hours);
        if let Some(t) = tz.from_local_datetime(&probe).latest() {
            return (t.offset().fix().local_minus_utc(), None);
        }
    }
    (
        tz.offset_from_utc_datetime(&local).fix().local_minus_utc(),
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .expect("valid date")
    }

    #[test]
    fn gap_time_is_read_with_offset_before_the_gap() {
        let tz: Tz = "Europe/Chisinau".parse().expect("zone");
        let t = resolve_local(tz, at(2025, 3, 30, 2, 30));
        assert_eq!(t.to_rfc3339(), "2025-03-30T03:30:00+03:00");
        let tz: Tz = "Australia/Lord_Howe".parse().expect("zone");
        // Lord Howe springs forward 30 minutes at 02:00 on 2025-10-05.
        let t = resolve_local(tz, at(2025, 10, 5, 2, 15));
        assert_eq!(t.to_rfc3339(), "2025-10-05T02:45:00+11:00");
    }

    #[test]
    fn repeated_time_resolves_to_first_occurrence() {
        let tz: Tz = "America/New_York".parse().expect("zone");
        let t = resolve_local(tz, at(2025, 11, 2, 1, 30));
        assert_eq!(t.to_rfc3339(), "2025-11-02T01:30:00-04:00");
        let tz: Tz = "Australia/Lord_Howe".parse().expect("zone");
        // Lord Howe falls back 30 minutes at 02:00 on 2025-04-06: 01:30-02:00 repeats.
        let t = resolve_local(tz, at(2025, 4, 6, 1, 45));
        assert_eq!(t.to_rfc3339(), "2025-04-06T01:45:00+11:00");
    }

    #[test]
    fn midnight_in_a_gap_moves_to_one_am() {
        // America/Santiago springs forward at 00:00 on 2025-09-07 (to 01:00).
        let tz: Tz = "America/Santiago".parse().expect("zone");
        let t = resolve_local(tz, at(2025, 9, 7, 0, 0));
        assert_eq!(t.to_rfc3339(), "2025-09-07T01:00:00-03:00");
    }

    #[test]
    fn unknown_timezone_names_the_field() {
        let err = parse_timezone("Mars/Olympus").expect_err("unknown");
        assert_eq!(err.field, "timezone");
        assert!(err.message.contains("Mars/Olympus"), "{err}");
        assert!(parse_timezone("").is_err());
        assert_eq!(parse_timezone("UTC").expect("utc"), Tz::UTC);
    }
}
