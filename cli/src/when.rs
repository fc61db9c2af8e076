//! Instants and durations as people type them on the command line: RFC 3339
//! (`2025-06-01T09:00:00+02:00`), `now`, or `now` plus or minus a duration (`now+1h`,
//! `now-7d`), as in pipeline templates.

use chrono::{DateTime, TimeDelta, Utc};
use ordinaut_schedule::duration::parse_duration;

/// Parses an instant relative to `now`.
pub fn instant(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix("now") {
        if rest.is_empty() {
            return Ok(now);
        }
        let (sign, d) = match rest.split_at(1) {
            ("+", d) => (1, d),
            ("-", d) => (-1, d),
            _ => return Err(format!("`{s}`: write now, now+DURATION or now-DURATION")),
        };
        let d = parse_duration(d).map_err(|e| format!("`{s}`: {e}"))?;
        let d = TimeDelta::from_std(d).map_err(|e| format!("`{s}`: {e}"))?;
        return Ok(now + d * sign);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|e| {
            format!("`{s}` is not an instant ({e}); write e.g. 2025-06-01T09:00:00Z, now or now-2h")
        })
}

/// A clap value parser for durations (`10s`, `PT1M`).
pub use ordinaut_schedule::duration::duration_arg as duration;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_absolute_or_relative_to_now() {
        let now: DateTime<Utc> = "2025-06-01T12:00:00Z".parse().unwrap();
        assert_eq!(instant("now", now).unwrap(), now);
        assert_eq!(
            instant("now+1h", now).unwrap(),
            "2025-06-01T13:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            instant("now-2d", now).unwrap(),
            "2025-05-30T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            instant("2025-06-01T09:00:00+02:00", now).unwrap(),
            "2025-06-01T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(instant("tomorrow", now).is_err());
        assert!(instant("now*2", now).is_err());
    }
}
