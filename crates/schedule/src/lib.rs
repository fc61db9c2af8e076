//! Ordinaut's schedule engine: turns RRULE, cron, `at` and `every` schedules into
//! occurrences in an IANA timezone, following the rules of `shared/ARCHITECTURE.md` ("Time").
//! Pure: no I/O; time comes from a [`clock::Clock`].

pub mod duration;
