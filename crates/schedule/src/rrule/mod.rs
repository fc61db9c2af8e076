//! RFC 5545 recurrence rules: parsing and validation (`parse`), the wall-clock expander
//! (`expand`), and occurrence iteration in a zone (`iter`).

mod calendar;
mod count;
mod expand;
mod iter;
mod parse;

use chrono::{DateTime, NaiveDateTime, Utc};
use chrono_tz::Tz;

use crate::ScheduleError;
pub(crate) use calendar::{max_month_len, month_name};
pub(crate) use expand::Compiled;
pub(crate) use iter::RuleIter;

/// Most candidate times one FREQ period may hold (before BYSETPOS): every period is expanded
/// in full, so a YEARLY rule listing every second of the day (31 million per year) would
/// take seconds per period. DAILY with every second (86,400) and YEARLY with every minute
/// (527,040) stay within it.
const MAX_PER_PERIOD: usize = 1_000_000;

/// Parses, validates and compiles an RRULE; `anchor` is DTSTART when the rule has no
/// DTSTART line, `anchor_instant` its exact instant when the caller knows it (a `startAt`).
/// Rejects rules that can never fire, and says so distinctly when the bounded search could
/// not decide.
pub(crate) fn compile(
    spec: &str,
    tz: Tz,
    anchor: NaiveDateTime,
    anchor_instant: Option<DateTime<Utc>>,
) -> Result<Compiled, ScheduleError> {
    let rule = parse::parse(spec, tz)?;
    let (dtstart, start_instant) = match rule.dtstart {
        Some(wall) => (wall, rule.dtstart_utc),
        None => (anchor, anchor_instant),
    };
    let mut compiled = Compiled::new(&rule, dtstart);
    compiled.start_instant = start_instant;
    let most = compiled.max_per_period();
    if most > MAX_PER_PERIOD {
        return Err(ScheduleError::invalid(
            "rrule",
            format!(
                "one {} period of this rule can hold {most} candidate times, more than the \
                 {MAX_PER_PERIOD} the engine expands per period; list fewer BYHOUR, BYMINUTE \
                 or BYSECOND values, or use a finer FREQ (e.g. DAILY with the same BY-parts)",
                rule.freq.name()
            ),
        ));
    }
    if !compiled.bysetpos().is_empty()
        && compiled
            .bysetpos()
            .iter()
            .all(|p| p.unsigned_abs() as usize > most)
    {
        let pos: Vec<String> = compiled.bysetpos().iter().map(i32::to_string).collect();
        return Err(ScheduleError::never_fires(
            "rrule.BYSETPOS",
            format!(
                "the rule can never fire: BYSETPOS={} selects within each FREQ period, and a \
                 period of this rule holds at most {most} candidate(s); use a smaller \
                 BYSETPOS, a coarser FREQ, or more BY-values",
                pos.join(",")
            ),
        ));
    }
    match iter::probe(&compiled) {
        iter::Probe::Fires => Ok(compiled),
        iter::Probe::Never => Err(never_fires(&rule)),
        iter::Probe::Undecided { steps } => Err(ScheduleError::gave_up(
            "rrule",
            format!(
                "could not find a first occurrence within {steps} search steps, so cannot tell \
                 whether this rule ever fires; simplify it (fewer or coarser BY-parts, a \
                 smaller INTERVAL)"
            ),
        )),
    }
}

fn never_fires(rule: &parse::RRule) -> ScheduleError {
    if !rule.bymonth.is_empty()
        && !rule.bymonthday.is_empty()
        && rule.bymonth.iter().all(|&m| {
            rule.bymonthday
                .iter()
                .all(|&d| d.unsigned_abs() > max_month_len(m))
        })
    {
        let days: Vec<String> = rule.bymonthday.iter().map(i32::to_string).collect();
        let months: Vec<String> = rule.bymonth.iter().map(u32::to_string).collect();
        let why: Vec<String> = rule
            .bymonth
            .iter()
            .map(|&m| format!("{} has at most {} days", month_name(m), max_month_len(m)))
            .collect();
        return ScheduleError::never_fires(
            "rrule.BYMONTHDAY",
            format!(
                "the rule can never fire: BYMONTHDAY={} never falls in BYMONTH={} ({}); pick \
                 days that exist in those months, or use BYMONTHDAY=-1 for the last day",
                days.join(","),
                months.join(","),
                why.join(", ")
            ),
        );
    }
    ScheduleError::never_fires(
        "rrule",
        format!(
            "the rule can never fire: no date in a full 400-year calendar cycle (after which \
             the Gregorian calendar repeats) matches `{}` from DTSTART on; loosen one of its \
             BY-parts",
            rule.text
        ),
    )
}
