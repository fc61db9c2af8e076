//! Parsing and validating RFC 5545 RRULEs (section 3.3.10), with an optional `DTSTART` line.
//! Every error names its part (`rrule.BYMONTHDAY`) and says how to fix it.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc, Weekday};
use chrono_tz::Tz;

use crate::ScheduleError;

/// Recurrence frequency, finest last (the order matters: "finer than" comparisons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Freq {
    Yearly,
    Monthly,
    Weekly,
    Daily,
    Hourly,
    Minutely,
    Secondly,
}

impl Freq {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Freq::Yearly => "YEARLY",
            Freq::Monthly => "MONTHLY",
            Freq::Weekly => "WEEKLY",
            Freq::Daily => "DAILY",
            Freq::Hourly => "HOURLY",
            Freq::Minutely => "MINUTELY",
            Freq::Secondly => "SECONDLY",
        }
    }
}

/// UNTIL, in the form it was written: a UTC instant compares with resolved instants, a local
/// (floating) date-time compares with wall times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Until {
    Local(NaiveDateTime),
    Utc(DateTime<Utc>),
}

/// A parsed, validated rule. BY-lists are as written (defaults are filled in at compile time).
#[derive(Debug, Clone)]
pub(crate) struct RRule {
    pub freq: Freq,
    pub interval: u32,
    pub count: Option<u32>,
    pub until: Option<Until>,
    pub bysecond: Vec<u32>,
    pub byminute: Vec<u32>,
    pub byhour: Vec<u32>,
    /// (ordinal, weekday); ordinal 0 means "every such weekday".
    pub byday: Vec<(i32, Weekday)>,
    pub bymonthday: Vec<i32>,
    pub byyearday: Vec<i32>,
    pub byweekno: Vec<i32>,
    pub bymonth: Vec<u32>,
    pub bysetpos: Vec<i32>,
    pub wkst: Weekday,
    /// From a `DTSTART` line, as a wall time in the schedule's zone.
    pub dtstart: Option<NaiveDateTime>,
    /// The exact instant of a UTC `DTSTART:...Z` line (its wall time may be either pass of a
    /// repeated hour; the first instance is this instant).
    pub dtstart_utc: Option<DateTime<Utc>>,
    /// The RRULE line as written (without `RRULE:`), for `describe`.
    pub text: String,
}

const PARTS: [&str; 14] = [
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYSECOND",
    "BYMINUTE",
    "BYHOUR",
    "BYDAY",
    "BYMONTHDAY",
    "BYYEARDAY",
    "BYWEEKNO",
    "BYMONTH",
    "BYSETPOS",
    "WKST",
];

/// Parses `[DTSTART...\n][RRULE:]FREQ=...`. Lines may be separated by real newlines or by the
/// two characters `\n`. `tz` is the schedule's zone: a `DTSTART;TZID=` naming another zone is
/// rejected (one schedule, one zone), a UTC `DTSTART:...Z` is converted into it.
pub(crate) fn parse(spec: &str, tz: Tz) -> Result<RRule, ScheduleError> {
    let normalized = spec.replace("\\n", "\n");
    let mut dtstart = None;
    let mut rule_line: Option<&str> = None;
    for line in normalized.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("DTSTART") {
            if dtstart.is_some() {
                return Err(ScheduleError::invalid(
                    "rrule.DTSTART",
                    "DTSTART appears twice; keep one DTSTART line",
                ));
            }
            dtstart = Some(parse_dtstart(line, tz)?);
        } else if rule_line.is_some() {
            return Err(ScheduleError::invalid(
                "rrule",
                format!(
                    "unexpected line `{line}`; write at most one DTSTART line and one RRULE line"
                ),
            ));
        } else if upper.starts_with("RRULE:") {
            rule_line = Some(line[6..].trim());
        } else if upper.starts_with("EXDATE")
            || upper.starts_with("RDATE")
            || upper.starts_with("EXRULE")
        {
            return Err(ScheduleError::invalid(
                "rrule",
                format!("`{line}` is not supported; write one DTSTART line and one RRULE line"),
            ));
        } else {
            rule_line = Some(line);
        }
    }
    let Some(text) = rule_line else {
        return Err(ScheduleError::invalid(
            "rrule.FREQ",
            "missing FREQ; write e.g. `FREQ=DAILY;BYHOUR=8`",
        ));
    };
    let mut rule = parse_rule(text, tz)?;
    rule.dtstart = dtstart.map(|(wall, _)| wall);
    rule.dtstart_utc = dtstart.and_then(|(_, utc)| utc);
    validate(&rule)?;
    Ok(rule)
}

/// A DTSTART line as a wall time in `tz`, and its exact instant when it was written in UTC.
fn parse_dtstart(
    line: &str,
    tz: Tz,
) -> Result<(NaiveDateTime, Option<DateTime<Utc>>), ScheduleError> {
    let err = |msg: String| ScheduleError::invalid("rrule.DTSTART", msg);
    let rest = &line[7..];
    let (params, value) = match rest.find(':') {
        Some(i) => (&rest[..i], rest[i + 1..].trim()),
        None => {
            return Err(err(format!(
                "`{line}` has no value; write `DTSTART;TZID={}:20250101T090000`",
                tz.name()
            )));
        }
    };
    let mut tzid = None;
    for param in params.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        match k.to_ascii_uppercase().as_str() {
            "TZID" => tzid = Some(v.trim_matches('"')),
            "VALUE" if v.eq_ignore_ascii_case("DATE") || v.eq_ignore_ascii_case("DATE-TIME") => {}
            _ => {
                return Err(err(format!(
                    "unsupported DTSTART parameter `{param}`; only TZID is allowed"
                )));
            }
        }
    }
    let (local, is_utc) = parse_datetime(value).ok_or_else(|| {
        err(format!(
            "`{value}` is not a date-time; write `YYYYMMDDTHHMMSS` (local) or `YYYYMMDDTHHMMSSZ` (UTC)"
        ))
    })?;
    if let Some(id) = tzid {
        if is_utc {
            return Err(err("a DTSTART with TZID must not end in `Z`".to_string()));
        }
        let named: Tz = id
            .parse()
            .map_err(|_| err(format!("unknown TZID `{id}`; use an IANA name")))?;
        if named != tz && !crate::transitions::ZoneTable::same_offsets(named, tz) {
            return Err(err(format!(
                "TZID={id} differs from the schedule's timezone {}; a schedule has one zone: \
                 set `timezone: {id}` or remove TZID from DTSTART",
                tz.name()
            )));
        }
    }
    if is_utc {
        let instant = local.and_utc();
        Ok((instant.with_timezone(&tz).naive_local(), Some(instant)))
    } else {
        Ok((local, None))
    }
}

/// `YYYYMMDD`, `YYYYMMDDTHHMMSS` or `YYYYMMDDTHHMMSSZ`; the bool says "UTC".
fn parse_datetime(value: &str) -> Option<(NaiveDateTime, bool)> {
    let (body, utc) = match value.strip_suffix(['Z', 'z']) {
        Some(b) => (b, true),
        None => (value, false),
    };
    if body.len() == 8 {
        let date = NaiveDate::parse_from_str(body, "%Y%m%d").ok()?;
        return Some((date.and_hms_opt(0, 0, 0)?, utc));
    }
    if body.len() != 15 {
        return None;
    }
    NaiveDateTime::parse_from_str(body, "%Y%m%dT%H%M%S")
        .ok()
        .map(|t| (t, utc))
}

fn field(part: &str) -> String {
    format!("rrule.{part}")
}

fn parse_rule(text: &str, _tz: Tz) -> Result<RRule, ScheduleError> {
    let mut seen = HashSet::new();
    let mut rule = RRule {
        freq: Freq::Yearly,
        interval: 1,
        count: None,
        until: None,
        bysecond: vec![],
        byminute: vec![],
        byhour: vec![],
        byday: vec![],
        bymonthday: vec![],
        byyearday: vec![],
        byweekno: vec![],
        bymonth: vec![],
        bysetpos: vec![],
        wkst: Weekday::Mon,
        dtstart: None,
        dtstart_utc: None,
        text: text.to_string(),
    };
    let mut freq = None;
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = split_part(part, &mut seen)?;
        if name == "FREQ" {
            freq = Some(parse_freq(value)?);
        } else {
            apply_part(&mut rule, &name, value)?;
        }
    }
    let Some(freq) = freq else {
        return Err(ScheduleError::invalid(
            "rrule.FREQ",
            "missing FREQ; add e.g. `FREQ=DAILY` (one of SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY)",
        ));
    };
    rule.freq = freq;
    Ok(rule)
}

/// `NAME=VALUE` → the upper-cased name (a known part, not seen before) and its value.
fn split_part<'a>(
    part: &'a str,
    seen: &mut HashSet<String>,
) -> Result<(String, &'a str), ScheduleError> {
    let Some((name, value)) = part.split_once('=') else {
        return Err(ScheduleError::invalid(
            "rrule",
            format!("`{part}` is not NAME=VALUE; write e.g. `FREQ=DAILY;BYHOUR=8`"),
        ));
    };
    let name = name.trim().to_ascii_uppercase();
    let value = value.trim();
    if !PARTS.contains(&name.as_str()) {
        return Err(ScheduleError::invalid(
            field(&name),
            format!("unknown rule part `{name}`; allowed: {}", PARTS.join(", ")),
        ));
    }
    if !seen.insert(name.clone()) {
        return Err(ScheduleError::invalid(
            field(&name),
            format!("{name} appears twice; give it once (values may be a comma-separated list)"),
        ));
    }
    if value.is_empty() {
        return Err(ScheduleError::invalid(
            field(&name),
            format!("{name} has no value"),
        ));
    }
    Ok((name, value))
}

/// The numeric BY-parts: name, the range of values (zero excluded where the range is
/// signed: negative values count from the end), and how the error describes the range.
const BY_LISTS: &[(&str, i32, i32, &str)] = &[
    (
        "BYSECOND",
        0,
        59,
        "0 to 59 (leap second 60 is not supported)",
    ),
    ("BYMINUTE", 0, 59, "0 to 59"),
    ("BYHOUR", 0, 23, "0 to 23"),
    ("BYMONTH", 1, 12, "1 to 12"),
    ("BYMONTHDAY", -31, 31, "1 to 31 or -31 to -1"),
    ("BYYEARDAY", -366, 366, "1 to 366 or -366 to -1"),
    ("BYWEEKNO", -53, 53, "1 to 53 or -53 to -1"),
    ("BYSETPOS", -366, 366, "1 to 366 or -366 to -1"),
];

/// Sets one rule part other than FREQ on `rule`.
fn apply_part(rule: &mut RRule, name: &str, value: &str) -> Result<(), ScheduleError> {
    if let Some(&(_, lo, hi, hint)) = BY_LISTS.iter().find(|(n, ..)| *n == name) {
        // Zero is never a valid position; it is a value only where the range starts at 0.
        let list = parse_list(
            name,
            value,
            |n| (lo..=hi).contains(&n) && (n != 0 || lo == 0),
            hint,
        )?;
        let unsigned = || list.iter().map(|&n| n as u32).collect::<Vec<u32>>();
        match name {
            "BYSECOND" => rule.bysecond = unsigned(),
            "BYMINUTE" => rule.byminute = unsigned(),
            "BYHOUR" => rule.byhour = unsigned(),
            "BYMONTH" => rule.bymonth = unsigned(),
            "BYMONTHDAY" => rule.bymonthday = list,
            "BYYEARDAY" => rule.byyearday = list,
            "BYWEEKNO" => rule.byweekno = list,
            _ => rule.bysetpos = list,
        }
        return Ok(());
    }
    match name {
        "INTERVAL" => {
            rule.interval = parse_positive(
                name,
                value,
                "INTERVAL={n} must be a positive integer (1 means every period)",
            )?
        }
        "COUNT" => {
            rule.count = Some(parse_positive(
                name,
                value,
                "COUNT={n} must be a positive integer; remove COUNT for an unbounded rule",
            )?)
        }
        "UNTIL" => rule.until = Some(parse_until(value)?),
        "BYDAY" => rule.byday = parse_byday(value)?,
        "WKST" => {
            rule.wkst = parse_weekday(value).ok_or_else(|| {
                ScheduleError::invalid(
                    field(name),
                    format!("WKST=`{value}` is not a weekday; use MO, TU, WE, TH, FR, SA or SU"),
                )
            })?
        }
        _ => {}
    }
    Ok(())
}

/// A positive integer that fits in a u32; `why` explains a value below 1 (`{n}` is the value).
fn parse_positive(name: &str, value: &str, why: &str) -> Result<u32, ScheduleError> {
    let n = parse_int(name, value)?;
    if n <= 0 {
        return Err(ScheduleError::invalid(
            field(name),
            why.replace("{n}", &n.to_string()),
        ));
    }
    u32::try_from(n)
        .map_err(|_| ScheduleError::invalid(field(name), format!("{name} is too large")))
}

fn parse_until(value: &str) -> Result<Until, ScheduleError> {
    let (t, utc) = parse_datetime(value).ok_or_else(|| {
        ScheduleError::invalid(
            "rrule.UNTIL",
            format!(
                "`{value}` is not a date-time; write `YYYYMMDDTHHMMSSZ` (UTC) or `YYYYMMDDTHHMMSS` (local)"
            ),
        )
    })?;
    Ok(if utc {
        Until::Utc(t.and_utc())
    } else {
        Until::Local(t)
    })
}

fn parse_freq(value: &str) -> Result<Freq, ScheduleError> {
    Ok(match value.to_ascii_uppercase().as_str() {
        "YEARLY" => Freq::Yearly,
        "MONTHLY" => Freq::Monthly,
        "WEEKLY" => Freq::Weekly,
        "DAILY" => Freq::Daily,
        "HOURLY" => Freq::Hourly,
        "MINUTELY" => Freq::Minutely,
        "SECONDLY" => Freq::Secondly,
        _ => {
            return Err(ScheduleError::invalid(
                "rrule.FREQ",
                format!(
                    "unknown FREQ `{value}`; use SECONDLY, MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY"
                ),
            ));
        }
    })
}

fn parse_int(name: &str, value: &str) -> Result<i64, ScheduleError> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    digits
        .parse::<i64>()
        .map_err(|_| ScheduleError::invalid(field(name), format!("`{value}` is not an integer")))
}

fn parse_list(
    name: &str,
    value: &str,
    ok: impl Fn(i32) -> bool,
    range: &str,
) -> Result<Vec<i32>, ScheduleError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim) {
        let n = parse_int(name, item)?;
        let n = i32::try_from(n).ok().filter(|n| ok(*n)).ok_or_else(|| {
            ScheduleError::invalid(
                field(name),
                format!("{name}={item} is out of range; use {range}"),
            )
        })?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

pub(crate) fn parse_weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_byday(value: &str) -> Result<Vec<(i32, Weekday)>, ScheduleError> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim) {
        let bad = || {
            ScheduleError::invalid(
                "rrule.BYDAY",
                format!(
                    "BYDAY=`{item}` is not a weekday; write MO..SU, optionally with an ordinal like 1MO or -1FR"
                ),
            )
        };
        if item.len() < 2 || !item.is_char_boundary(item.len() - 2) {
            return Err(bad());
        }
        let (num, day) = item.split_at(item.len() - 2);
        let wd = parse_weekday(day).ok_or_else(bad)?;
        let n = if num.is_empty() {
            0
        } else {
            let digits = num.strip_prefix('+').unwrap_or(num);
            let n: i32 = digits.parse().map_err(|_| bad())?;
            if n == 0 || !(-53..=53).contains(&n) {
                return Err(ScheduleError::invalid(
                    "rrule.BYDAY",
                    format!("BYDAY={item}: the ordinal must be 1 to 53 or -53 to -1"),
                ));
            }
            n
        };
        if !out.contains(&(n, wd)) {
            out.push((n, wd));
        }
    }
    Ok(out)
}

/// The RFC 5545 table of which BY-parts each FREQ allows, plus ordinal ranges.
fn validate(rule: &RRule) -> Result<(), ScheduleError> {
    let f = rule.freq;
    let name = f.name();
    if rule.count.is_some() && rule.until.is_some() {
        return Err(ScheduleError::invalid(
            "rrule.COUNT",
            "COUNT and UNTIL cannot both be given (RFC 5545); keep one",
        ));
    }
    if !rule.byweekno.is_empty() && f != Freq::Yearly {
        return Err(ScheduleError::invalid(
            "rrule.BYWEEKNO",
            format!(
                "BYWEEKNO is only allowed with FREQ=YEARLY, not FREQ={name}; use BYDAY/BYMONTHDAY or FREQ=YEARLY"
            ),
        ));
    }
    if !rule.byyearday.is_empty() && matches!(f, Freq::Daily | Freq::Weekly | Freq::Monthly) {
        return Err(ScheduleError::invalid(
            "rrule.BYYEARDAY",
            format!("BYYEARDAY is not allowed with FREQ={name} (RFC 5545); use FREQ=YEARLY"),
        ));
    }
    if !rule.bymonthday.is_empty() && f == Freq::Weekly {
        return Err(ScheduleError::invalid(
            "rrule.BYMONTHDAY",
            "BYMONTHDAY is not allowed with FREQ=WEEKLY (RFC 5545); use FREQ=MONTHLY or BYDAY",
        ));
    }
    for &(n, wd) in &rule.byday {
        if n == 0 {
            continue;
        }
        let item = format!("{n}{}", weekday_code(wd));
        if !matches!(f, Freq::Monthly | Freq::Yearly) {
            return Err(ScheduleError::invalid(
                "rrule.BYDAY",
                format!(
                    "BYDAY={item}: an ordinal weekday is only allowed with FREQ=MONTHLY or YEARLY; write BYDAY={} for every such day",
                    weekday_code(wd)
                ),
            ));
        }
        if f == Freq::Yearly && !rule.byweekno.is_empty() {
            return Err(ScheduleError::invalid(
                "rrule.BYDAY",
                format!(
                    "BYDAY={item}: an ordinal weekday cannot be combined with BYWEEKNO; write BYDAY={}",
                    weekday_code(wd)
                ),
            ));
        }
        let in_month = f == Freq::Monthly || !rule.bymonth.is_empty();
        if in_month && !(-5..=5).contains(&n) {
            return Err(ScheduleError::invalid(
                "rrule.BYDAY",
                format!("BYDAY={item}: within a month the ordinal must be 1 to 5 or -5 to -1"),
            ));
        }
    }
    if !rule.bysetpos.is_empty() {
        let others = !(rule.bysecond.is_empty()
            && rule.byminute.is_empty()
            && rule.byhour.is_empty()
            && rule.byday.is_empty()
            && rule.bymonthday.is_empty()
            && rule.byyearday.is_empty()
            && rule.byweekno.is_empty()
            && rule.bymonth.is_empty());
        if !others {
            return Err(ScheduleError::invalid(
                "rrule.BYSETPOS",
                "BYSETPOS selects among the occurrences of other BY-parts; add one (e.g. BYDAY=MO,TU,WE,TH,FR) or remove BYSETPOS",
            ));
        }
    }
    Ok(())
}

pub(crate) fn weekday_code(wd: Weekday) -> &'static str {
    match wd {
        Weekday::Mon => "MO",
        Weekday::Tue => "TU",
        Weekday::Wed => "WE",
        Weekday::Thu => "TH",
        Weekday::Fri => "FR",
        Weekday::Sat => "SA",
        Weekday::Sun => "SU",
    }
}
