//! Small Gregorian-calendar helpers shared by the RRULE expander and the cron matcher.

use chrono::{Datelike, NaiveDate, Weekday};

/// Days in one 400-year Gregorian cycle, after which dates and weekdays repeat.
pub(crate) const CYCLE_DAYS: i64 = 146_097;
/// Weeks in one 400-year cycle.
pub(crate) const CYCLE_WEEKS: i64 = 20_871;
/// Months in one 400-year cycle.
pub(crate) const CYCLE_MONTHS: i64 = 4_800;
/// Years in one cycle.
pub(crate) const CYCLE_YEARS: i64 = 400;

pub(crate) fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub(crate) fn month_len(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// The most days month `m` ever has (February: 29).
pub(crate) fn max_month_len(m: u32) -> u32 {
    if m == 2 { 29 } else { month_len(2001, m) }
}

pub(crate) fn year_len(y: i32) -> u32 {
    if is_leap(y) { 366 } else { 365 }
}

pub(crate) fn month_name(m: u32) -> &'static str {
    const NAMES: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    NAMES
        .get(m.wrapping_sub(1) as usize)
        .copied()
        .unwrap_or("?")
}

/// Day number (days from 0001-01-01 = 1, as chrono counts).
pub(crate) fn day_num(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

pub(crate) fn from_day_num(n: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(n)
}

/// Monday = 0 .. Sunday = 6.
pub(crate) fn wd_index(w: Weekday) -> i32 {
    w.num_days_from_monday() as i32
}

/// Weekday index of a day number (Monday = 0).
pub(crate) fn wd_of_num(n: i32) -> i32 {
    // 0001-01-01 (day 1) was a Monday.
    (n - 1).rem_euclid(7)
}

pub(crate) fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}
