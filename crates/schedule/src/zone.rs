//! Timezones: parsing IANA names and THE one function, [`resolve_local`], that turns a wall
//! time into an instant by Ordinaut's rules (a time in a spring-forward gap is read with the
//! offset before the gap; a time in a fall-back repeat resolves to its first occurrence).
//!
//! Zone data comes from `chrono-tz` (the IANA database compiled in). It has no DST rules
//! after 2099: later instants use the last known offset.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone};
use chrono_tz::{GapInfo, Tz};

use crate::ScheduleError;

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
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(a, b) => a.min(b),
        LocalResult::None => {
            let before = offset_before_gap(tz, local);
            let utc = local - TimeDelta::seconds(i64::from(before));
            tz.from_utc_datetime(&utc)
        }
    }
}

/// The UTC offset (seconds) in effect just before the gap that contains `local`, from
/// chrono-tz's own transition table. At the edge of the table (no recorded start), step back
/// an hour at a time to a wall time before the gap (gaps are at most a day long).
fn offset_before_gap(tz: Tz, local: NaiveDateTime) -> i32 {
    if let Some((_, offset)) = GapInfo::new(&local, &tz).and_then(|g| g.begin) {
        return offset.fix().local_minus_utc();
    }
    for hours in 1..=48 {
        let probe = local - TimeDelta::hours(hours);
        if let Some(t) = tz.from_local_datetime(&probe).latest() {
            return t.offset().fix().local_minus_utc();
        }
    }
    tz.offset_from_utc_datetime(&local).fix().local_minus_utc()
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
