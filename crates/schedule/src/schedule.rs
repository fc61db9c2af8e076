//! [`Schedule`]: a compiled RRULE, cron, `at` or `every` spec in one timezone, and the
//! queries the operator and the CLI ask of it (next occurrence, lazy iteration, a window).

use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::ScheduleError;
use crate::cron::{self, Cron, CronIter};
use crate::duration::{format_duration, parse_duration};
use crate::rrule::{self, Compiled, RuleIter};
use crate::zone::{parse_timezone, resolve_local};

/// The raw schedule spec, as written in a Task's `spec.schedule`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ScheduleSource {
    /// RFC 5545 RRULE, optionally preceded by a `DTSTART` line.
    Rrule(String),
    /// Five-field cron or an `@daily`-style macro.
    Cron(String),
    /// One RFC 3339 instant with an offset.
    At(String),
    /// An elapsed-time interval (`5m`, `1h30m`, `PT15M`).
    Every(String),
}

/// A validated schedule, ready to produce occurrences. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: Tz,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Rrule(Arc<Compiled>, Arc<str>),
    Cron(Arc<Cron>),
    At(DateTime<Utc>),
    Every { anchor: DateTime<Utc>, step_ms: i64 },
}

impl Schedule {
    /// Compiles and validates `source` in `timezone`. `anchor` is a wall time in that zone:
    /// the DTSTART of an RRULE without a DTSTART line and the origin of `every` (callers pass
    /// `startAt`, or local midnight of the Task's creation day). Rules that can never fire are
    /// rejected ([`crate::ErrorKind::NeverFires`]); if the bounded search cannot decide, the error is
    /// [`crate::ErrorKind::GaveUp`].
    pub fn new(
        source: &ScheduleSource,
        timezone: &str,
        anchor: NaiveDateTime,
    ) -> Result<Schedule, ScheduleError> {
        let tz = parse_timezone(timezone)?;
        Self::build(source, tz, anchor, None)
    }

    /// [`Schedule::new`] anchored on an exact instant (a Task's `startAt`) instead of a wall
    /// time: `every` counts from that instant, and an RRULE without a DTSTART line starts
    /// there, even when its wall time is the second pass of a repeated hour (a wall time
    /// would name the first).
    pub fn new_from_instant(
        source: &ScheduleSource,
        timezone: &str,
        start: DateTime<Utc>,
    ) -> Result<Schedule, ScheduleError> {
        let tz = parse_timezone(timezone)?;
        Self::build(
            source,
            tz,
            start.with_timezone(&tz).naive_local(),
            Some(start),
        )
    }

    fn build(
        source: &ScheduleSource,
        tz: Tz,
        anchor: NaiveDateTime,
        instant: Option<DateTime<Utc>>,
    ) -> Result<Schedule, ScheduleError> {
        let kind = match source {
            ScheduleSource::Rrule(spec) => {
                let compiled = rrule::compile(spec, tz, anchor, instant)?;
                let text = rule_text(spec);
                Kind::Rrule(Arc::new(compiled), text.into())
            }
            ScheduleSource::Cron(spec) => {
                let parsed = cron::parse(spec)?;
                if let Some(reason) = parsed.never_fires_reason() {
                    return Err(ScheduleError::never_fires("cron", reason));
                }
                if parsed.next_match(anchor).is_none() {
                    return Err(ScheduleError::never_fires(
                        "cron",
                        format!(
                            "`{}` matches no minute in a full 400-year calendar cycle",
                            parsed.text
                        ),
                    ));
                }
                Kind::Cron(Arc::new(parsed))
            }
            ScheduleSource::At(spec) => {
                let t = DateTime::parse_from_rfc3339(spec.trim()).map_err(|e| {
                    ScheduleError::invalid(
                        "at",
                        format!(
                            "`{spec}` is not an RFC 3339 instant ({e}); write e.g. \
                             `2025-06-01T09:00:00+02:00` or `2025-06-01T07:00:00Z`"
                        ),
                    )
                })?;
                Kind::At(t.to_utc())
            }
            ScheduleSource::Every(spec) => {
                let d = parse_duration(spec)
                    .map_err(|e| ScheduleError::invalid("every", e.to_string()))?;
                if d < std::time::Duration::from_secs(1) {
                    return Err(ScheduleError::invalid(
                        "every",
                        format!(
                            "interval `{}` is shorter than the minimum of 1s",
                            spec.trim()
                        ),
                    ));
                }
                let step_ms = i64::try_from(d.as_millis())
                    .map_err(|_| ScheduleError::invalid("every", "interval is too large"))?;
                Kind::Every {
                    anchor: instant.unwrap_or_else(|| resolve_local(tz, anchor).to_utc()),
                    step_ms,
                }
            }
        };
        Ok(Schedule { tz, kind })
    }

    /// The zone occurrences are computed (and returned) in.
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first occurrence strictly after `after`. `Ok(None)`: there are no more (COUNT or
    /// UNTIL reached, a past `at`). `Err` only when the engine gave up searching.
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<Option<DateTime<Tz>>, ScheduleError> {
        self.iter_after(after).next().transpose()
    }

    /// Occurrences strictly after `after`, ascending, computed lazily.
    pub fn iter_after(&self, after: DateTime<Utc>) -> Occurrences<'_> {
        let inner = match &self.kind {
            Kind::Rrule(c, _) => Inner::Rrule(RuleIter::new(c, self.tz, after)),
            Kind::Cron(c) => Inner::Cron(CronIter::new(c, self.tz, after)),
            Kind::At(t) => Inner::At((*t > after).then(|| t.with_timezone(&self.tz))),
            Kind::Every { anchor, step_ms } => {
                let k = if after < *anchor {
                    0
                } else {
                    (after - *anchor).num_milliseconds() / step_ms + 1
                };
                Inner::Every {
                    anchor: *anchor,
                    step_ms: *step_ms,
                    k,
                }
            }
        };
        Occurrences { tz: self.tz, inner }
    }

    /// Occurrences in `(from, to]`, at most `limit` of them.
    pub fn between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DateTime<Tz>>, ScheduleError> {
        let mut out = Vec::new();
        if limit == 0 || to <= from {
            return Ok(out);
        }
        for occ in self.iter_after(from) {
            let occ = occ?;
            if occ.to_utc() > to {
                break;
            }
            out.push(occ);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Short human text for printer columns and logs: `RRULE FREQ=DAILY;BYHOUR=8`,
    /// `cron 0 * * * *`, `at 2025-06-01T07:00:00+00:00`, `every 5m`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Rrule(_, text) => format!("RRULE {text}"),
            Kind::Cron(c) => format!("cron {}", c.text),
            Kind::At(t) => format!("at {}", t.with_timezone(&self.tz).to_rfc3339()),
            Kind::Every { step_ms, .. } => format!(
                "every {}",
                format_duration(std::time::Duration::from_millis(step_ms.unsigned_abs()))
            ),
        }
    }
}

/// The RRULE line of a spec, without the `RRULE:` prefix or a DTSTART line.
fn rule_text(spec: &str) -> String {
    let normalized = spec.replace("\\n", "\n");
    normalized
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.to_ascii_uppercase().starts_with("DTSTART"))
        .map(|l| match (l.get(..6), l.get(6..)) {
            (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case("RRULE:") => rest,
            _ => l,
        })
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Occurrences of a [`Schedule`] after an instant; see [`Schedule::iter_after`].
pub struct Occurrences<'a> {
    tz: Tz,
    inner: Inner<'a>,
}

enum Inner<'a> {
    Rrule(RuleIter<'a>),
    Cron(CronIter<'a>),
    At(Option<DateTime<Tz>>),
    Every {
        anchor: DateTime<Utc>,
        step_ms: i64,
        k: i64,
    },
}

impl Iterator for Occurrences<'_> {
    type Item = Result<DateTime<Tz>, ScheduleError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Rrule(it) => it.next(),
            Inner::Cron(it) => it.next(),
            Inner::At(t) => t.take().map(Ok),
            Inner::Every { anchor, step_ms, k } => {
                let offset = k
                    .checked_mul(*step_ms)
                    .and_then(TimeDelta::try_milliseconds)?;
                let t = anchor.checked_add_signed(offset)?;
                *k += 1;
                Some(Ok(t.with_timezone(&self.tz)))
            }
        }
    }
}
