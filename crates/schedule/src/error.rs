//! The one error type of the schedule engine: it names the field (relative to a Task's
//! `spec.schedule`), says what is wrong and how to fix it, and tells invalid input apart from
//! an engine that gave up searching.

use std::fmt;

/// What kind of failure a [`ScheduleError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or out of range (a person must fix the spec).
    Invalid,
    /// The rule is well formed but provably never produces an occurrence: no date in a full
    /// 400-year Gregorian cycle (after which the calendar repeats) matches it.
    NeverFires,
    /// A bounded search ran out of budget before it could decide. Distinct from "no more
    /// occurrences" (`Ok(None)`) and from [`ErrorKind::NeverFires`].
    GaveUp,
}

/// A schedule error: `Display` is `"{field}: {message}"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScheduleError {
    /// The field, relative to `spec.schedule`: `rrule`, `rrule.BYMONTHDAY`, `cron`, `at`,
    /// `every`, `timezone`, ...
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
    /// Invalid input, never firing, or a search that gave up.
    pub kind: ErrorKind,
}

impl fmt::Display for ScheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl ScheduleError {
    /// An invalid-input error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            kind: ErrorKind::Invalid,
        }
    }

    /// A "this rule can never fire" error for `field`.
    pub fn never_fires(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            kind: ErrorKind::NeverFires,
        }
    }

    /// A "the bounded search gave up" error for `field`.
    pub fn gave_up(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            kind: ErrorKind::GaveUp,
        }
    }

    /// True when the engine gave up rather than the input being wrong.
    pub fn is_gave_up(&self) -> bool {
        self.kind == ErrorKind::GaveUp
    }
}
