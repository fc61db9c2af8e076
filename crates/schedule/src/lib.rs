//! Ordinaut's schedule engine: turns RRULE, cron, `at` and `every` schedules into
//! occurrences in an IANA timezone, by the rules in `docs/architecture.md` ("Time").
//! Pure: no I/O; time comes from a [`clock::Clock`].
//!
//! * RRULEs are expanded by our own wall-clock expander (python-dateutil's semantics), cron by
//!   a five-field matcher on the same wall-clock iteration; every wall time becomes an instant
//!   through [`zone::resolve_local`] (a gap time shifts forward by the gap, a repeated time
//!   takes its first occurrence), and output is strictly increasing (equal instants are one).
//!   A gap time shifted forward can pass real wall times that follow the gap (02:15 shifted to
//!   03:15 passes the real 03:00); a small look-ahead (`order.rs`) merges it into place, so
//!   every matching wall time that exists runs once and each shifted one runs once too.
//! * Zone data is `chrono-tz`'s bundled IANA database, which has no DST rules after 2099
//!   (later instants keep the last known offset; Python's zoneinfo extends the rules instead).
//!   Each zone's offset changes are read from it once into a table (`transitions.rs`), so
//!   resolving a wall time is a range check against the span the previous one fell in.
//!
//! Decisions where the standards leave room:
//! * A `DTSTART;TZID=...` line must name the schedule's own timezone (one schedule, one zone);
//!   a different TZID is rejected. `DTSTART:...Z` is converted into the schedule's zone.
//! * COUNT counts the rule's instances (wall times) from DTSTART, as RFC 5545 and
//!   python-dateutil do; an instance that collapses into an earlier instant at a DST change is
//!   dropped, not replaced. The instances before the requested instant are counted, not
//!   listed (`rrule/count.rs`), so `FREQ=SECONDLY;COUNT=4000000000` from 1970 answers in
//!   milliseconds; a count that would take more than a fixed work budget is reported as
//!   [`ErrorKind::GaveUp`] naming `rrule.COUNT`.
//! * BYWEEKNO follows RFC 5545 (ISO 8601 weeks with WKST: week 1 is the first week with at
//!   least four days in the year), also at year boundaries, where python-dateutil differs
//!   (it assigns 1-2 January 2022 to a week 53 of 2021 that does not exist).
//! * `BYDAY=MO,1TU` (plain and ordinal weekdays together) is a union, as RFC 5545 says
//!   (python-dateutil intersects them and yields nothing).
//! * A rule is rejected when a bounded search proves no date in a 400-year Gregorian cycle
//!   matches it ([`ErrorKind::NeverFires`]); when the search runs out of budget first, the
//!   error says so ([`ErrorKind::GaveUp`]). UNTIL in the past or an exhausted COUNT is valid.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod clock;
mod cron;
pub mod duration;
mod error;
mod order;
mod rrule;
mod schedule;
mod transitions;
pub mod zone;

pub use error::{ErrorKind, ScheduleError};
pub use schedule::{Occurrences, Schedule, ScheduleSource};
