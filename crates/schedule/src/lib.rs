//! Ordinaut's schedule engine: turns RRULE, cron, `at` and `every` schedules into
//! occurrences in an IANA timezone, following the rules of `shared/ARCHITECTURE.md` ("Time").
//! Pure: no I/O; time comes from a [`clock::Clock`].
//!
//! * RRULEs are expanded by our own wall-clock expander (python-dateutil's semantics), cron by
//!   a five-field matcher on the same wall-clock iteration; every wall time becomes an instant
//!   through [`zone::resolve_local`] (a gap time shifts forward by the gap, a repeated time
//!   takes its first occurrence), and output is strictly increasing (equal instants are one).
//! * Zone data is `chrono-tz`'s bundled IANA database, which has no DST rules after 2099
//!   (later instants keep the last known offset; Python's zoneinfo extends the rules instead).
//!
//! Decisions where the standards leave room:
//! * A `DTSTART;TZID=...` line must name the schedule's own timezone (one schedule, one zone);
//!   a different TZID is rejected. `DTSTART:...Z` is converted into the schedule's zone.
//! * COUNT counts the rule's instances (wall times) from DTSTART, as RFC 5545 and
//!   python-dateutil do; an instance that collapses into an earlier instant at a DST change is
//!   dropped, not replaced.
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
pub mod zone;

pub use error::{ErrorKind, ScheduleError};
pub use schedule::{Occurrences, Schedule, ScheduleSource};
