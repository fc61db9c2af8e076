//! Ordinaut's schedule engine: turns RRULE, cron, `at` and `every` schedules into
//! occurrences in an IANA timezone, following the rules of `shared/ARCHITECTURE.md` ("Time").
//! Pure: no I/O; time comes from a [`clock::Clock`].
//!
//! * RRULEs are expanded by our own wall-clock expander (python-dateutil's semantics), cron by
//!   a five-field matcher on the same wall-clock iteration; every wall time becomes an instant
//!   through [`zone::resolve_local`] (a gap time shifts forward by the gap, a repeated time
//!   takes its first occurrence), and output is strictly increasing (equal instants are one).
//! * Zone data is `chrono-tz`'s bundled IANA database, which has no DST rules after 2099.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod clock;
mod cron;
pub mod duration;
mod error;
mod rrule;
mod schedule;
pub mod zone;

pub use error::{ErrorKind, ScheduleError};
pub use schedule::{Occurrences, Schedule, ScheduleSource};
