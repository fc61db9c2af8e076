//! Five-field cron (`min hour day-of-month month day-of-week`) with names, ranges, steps,
//! lists and `@hourly`...`@yearly`, matched on wall-clock minutes. Day-of-month and
//! day-of-week follow Vixie cron: if either field starts with `*`, a day must match both;
//! otherwise it may match either. Wall times resolve through [`crate::zone::resolve_local`]
//! like RRULE occurrences, so a time in a spring-forward gap runs once, shifted forward, and a
//! repeated hour runs once, at its first pass.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use crate::ScheduleError;
use crate::order::InOrder;
use crate::rrule::{max_month_len, month_name};
use crate::zone::Resolver;

/// A parsed cron expression as bit masks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cron {
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    dow: u8,
    dom_star: bool,
    dow_star: bool,
    pub text: String,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Years the next-match search may scan: a firing cron matches within 8 years (29 February);
/// 400 years is a full Gregorian cycle, so finding nothing proves it never fires.
const SEARCH_YEARS: i32 = 401;

struct FieldSpec {
    label: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Value of the first name (JAN = 1, SUN = 0).
    name_base: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        label: "minute (1st field)",
        min: 0,
        max: 59,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        label: "hour (2nd field)",
        min: 0,
        max: 23,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        label: "day-of-month (3rd field)",
        min: 1,
        max: 31,
        names: &[],
        name_base: 0,
    },
    FieldSpec {
        label: "month (4th field)",
        min: 1,
        max: 12,
        names: &MONTHS,
        name_base: 1,
    },
    // 7 is accepted as Sunday and folded onto 0 after parsing.
    FieldSpec {
        label: "day-of-week (5th field)",
        min: 0,
        max: 7,
        names: &DAYS,
        name_base: 0,
    },
];

fn err(message: String) -> ScheduleError {
    ScheduleError::invalid("cron", message)
}

pub(crate) fn parse(spec: &str) -> Result<Cron, ScheduleError> {
    let text = spec.trim();
    let expanded = if let Some(macro_name) = text.strip_prefix('@') {
        match macro_name.to_ascii_lowercase().as_str() {
            "hourly" => "0 * * * *",
            "daily" | "midnight" => "0 0 * * *",
            "weekly" => "0 0 * * 0",
            "monthly" => "0 0 1 * *",
            "yearly" | "annually" => "0 0 1 1 *",
            "reboot" => {
                return Err(err(
                    "`@reboot` has no time to schedule; use `at` for a one-off run".to_string(),
                ));
            }
            _ => {
                return Err(err(format!(
                    "unknown macro `{text}`; use @hourly, @daily, @midnight, @weekly, @monthly, \
                     @yearly or @annually"
                )));
            }
        }
    } else {
        text
    };
    let parts: Vec<&str> = expanded.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(err(format!(
            "`{text}` has {} fields; write five: minute hour day-of-month month day-of-week \
             (e.g. `30 8 * * MON-FRI`); seconds and years are not supported",
            parts.len()
        )));
    }
    let mut masks = [0u64; 5];
    for (i, (part, spec)) in parts.iter().zip(FIELDS.iter()).enumerate() {
        masks[i] = parse_field(part, spec)?;
    }
    let mut dow = masks[4];
    if dow & (1 << 7) != 0 {
        dow = (dow | 1) & 0x7f;
    }
    let cron = Cron {
        minutes: masks[0],
        hours: masks[1] as u32,
        dom: masks[2] as u32,
        months: masks[3] as u16,
        dow: dow as u8,
        dom_star: parts[2].starts_with('*'),
        dow_star: parts[4].starts_with('*'),
        text: text.to_string(),
    };
    Ok(cron)
}

fn parse_value(s: &str, spec: &FieldSpec) -> Result<u32, ScheduleError> {
    let v = if let Some(pos) = spec.names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        pos as u32 + spec.name_base
    } else {
        s.parse::<u32>().map_err(|_| {
            let names = if spec.names.is_empty() {
                String::new()
            } else {
                format!(
                    " or a name ({}..{})",
                    spec.names[0],
                    spec.names[spec.names.len() - 1]
                )
            };
            err(format!("{}: `{s}` is not a number{names}", spec.label))
        })?
    };
    if v < spec.min || v > spec.max {
        return Err(err(format!(
            "{}: {v} is out of range; use {} to {}",
            spec.label, spec.min, spec.max
        )));
    }
    Ok(v)
}

fn parse_field(field: &str, spec: &FieldSpec) -> Result<u64, ScheduleError> {
    let mut mask = 0u64;
    for item in field.split(',') {
        if item.is_empty() {
            return Err(err(format!("{}: empty list item in `{field}`", spec.label)));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    err(format!(
                        "{}: step `{s}` in `{item}` is not a number",
                        spec.label
                    ))
                })?;
                if step == 0 {
                    return Err(err(format!(
                        "{}: step 0 in `{item}`; use 1 or more",
                        spec.label
                    )));
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(a, spec)?, parse_value(b, spec)?);
            if a > b {
                return Err(err(format!(
                    "{}: range `{range}` runs backwards; write the smaller value first",
                    spec.label
                )));
            }
            (a, b)
        } else {
            let v = parse_value(range, spec)?;
            // `10/5` means 10, 15, 20, ... up to the maximum, as in Vixie cron.
            if step.is_some() {
                (v, spec.max)
            } else {
                (v, v)
            }
        };
        let step = step.unwrap_or(1);
        for v in (lo..=hi).step_by(step as usize) {
            mask |= 1 << v;
        }
    }
    Ok(mask)
}

impl Cron {
    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom_ok = self.dom & (1 << d.day()) != 0;
        let dow_ok = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom_ok && dow_ok
        } else {
            dom_ok || dow_ok
        }
    }

    /// The first matching wall-clock minute strictly after `t`; `None` when none exists
    /// within a 400-year cycle (the expression never fires) or the calendar ends.
    pub(crate) fn next_match(&self, t: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = t.with_second(0)?.with_nanosecond(0)? + TimeDelta::minutes(1);
        let limit_year = start.year().checked_add(SEARCH_YEARS)?;
        let mut d = start.date();
        let (mut h, mut m) = (start.hour(), start.minute());
        loop {
            if d.year() > limit_year {
                return None;
            }
            if self.months & (1 << d.month()) == 0 {
                let (y, mo) = if d.month() == 12 {
                    (d.year() + 1, 1)
                } else {
                    (d.year(), d.month() + 1)
                };
                d = NaiveDate::from_ymd_opt(y, mo, 1)?;
                (h, m) = (0, 0);
                continue;
            }
            if !self.day_matches(d) {
                d = d.succ_opt()?;
                (h, m) = (0, 0);
                continue;
            }
            let hours = self.hours & (u32::MAX << h);
            if hours == 0 {
                d = d.succ_opt()?;
                (h, m) = (0, 0);
                continue;
            }
            let nh = hours.trailing_zeros();
            if nh != h {
                m = 0;
            }
            let minutes = self.minutes & (u64::MAX << m);
            if minutes == 0 {
                if nh >= 23 {
                    d = d.succ_opt()?;
                    (h, m) = (0, 0);
                } else {
                    (h, m) = (nh + 1, 0);
                }
                continue;
            }
            return d.and_hms_opt(nh, minutes.trailing_zeros(), 0);
        }
    }

    /// Explains why the expression can never fire, if it provably cannot: a day-of-month
    /// restricted (and day-of-week `*`) to days that none of the months has.
    pub(crate) fn never_fires_reason(&self) -> Option<String> {
        if self.dom_star || !self.dow_star {
            return None;
        }
        let months: Vec<u32> = (1..=12).filter(|m| self.months & (1 << m) != 0).collect();
        let days: Vec<u32> = (1..=31).filter(|d| self.dom & (1 << d) != 0).collect();
        if months
            .iter()
            .any(|&m| days.iter().any(|&d| d <= max_month_len(m)))
        {
            return None;
        }
        let why: Vec<String> = months
            .iter()
            .map(|&m| format!("{} has at most {} days", month_name(m), max_month_len(m)))
            .collect();
        let days: Vec<String> = days.iter().map(u32::to_string).collect();
        Some(format!(
            "`{}` can never fire: day-of-month {} never occurs in the months given ({}); pick \
             days that exist in those months",
            self.text,
            days.join(","),
            why.join(", ")
        ))
    }
}

/// Lazily yields a cron expression's occurrences strictly after an instant.
pub(crate) struct CronIter<'a> {
    cron: &'a Cron,
    zone: Resolver,
    cursor: Option<NaiveDateTime>,
    order: InOrder,
}

impl<'a> CronIter<'a> {
    pub(crate) fn new(cron: &'a Cron, tz: Tz, after: DateTime<Utc>) -> Self {
        // Start a few days early so de-duplication across a DST change sees the same history
        // as an iteration from the beginning of time would.
        let local = after.with_timezone(&tz).naive_local();
        let cursor = local
            .checked_sub_signed(TimeDelta::days(3))
            .unwrap_or(local);
        CronIter {
            cron,
            zone: Resolver::new(tz),
            cursor: Some(cursor),
            order: InOrder::new(after),
        }
    }
}

impl Iterator for CronIter<'_> {
    type Item = Result<DateTime<Tz>, ScheduleError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(t) = self.order.ready() {
                return Some(Ok(t));
            }
            let Some(c) = self.cursor.and_then(|cursor| self.cron.next_match(cursor)) else {
                self.cursor = None;
                return self.order.drain().map(Ok);
            };
            self.cursor = Some(c);
            self.order.push(self.zone.resolve(c));
        }
    }
}
