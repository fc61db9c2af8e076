//! Human durations as written in manifests: `30s`, `5m`, `1h30m`, `2d`, `500ms`, or ISO 8601
//! (`PT1H30M`, `P1D`). Used by `every`, timeouts, backoff, jitter and catch-up windows.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration; write e.g. `30s`, `5m`, `1h30m` or `PT5M`")]
    Empty,
    #[error("invalid duration `{input}`: {reason}; write e.g. `30s`, `5m`, `1h30m` or `PT5M`")]
    Invalid { input: String, reason: String },
    #[error("duration `{0}` is too large")]
    Overflow(String),
}

/// [`parse_duration`] as a clap value parser (`value_parser = duration_arg`): the error is
/// the message clap prints after the flag's name. One copy for every binary's flags.
pub fn duration_arg(input: &str) -> Result<Duration, String> {
    parse_duration(input).map_err(|e| e.to_string())
}

/// Parses a duration. Units: `ms`, `s`, `m`, `h`, `d` (24 h of elapsed time), `w` (7 d);
/// several may be combined in decreasing order of size (`1h30m`). ISO 8601 `PnDTnHnMnS`
/// (and `PnW`) is accepted as well. Whitespace around the value is ignored.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.starts_with(['P', 'p']) {
        return parse_iso(s, input);
    }
    let invalid = |reason: &str| DurationError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let mut total: u128 = 0;
    let mut rest = s;
    let mut last_rank = usize::MAX;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(invalid("expected a number"));
        }
        let (num, tail) = rest.split_at(digits);
        let value: u128 = num
            .parse()
            .map_err(|_| DurationError::Overflow(input.to_string()))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let (rank, millis) = match unit {
            "w" => (0, 7 * 86_400_000),
            "d" => (1, 86_400_000),
            "h" => (2, 3_600_000),
            "m" => (3, 60_000),
            "s" => (4, 1_000),
            "ms" => (5, 1),
            "" => {
                return Err(invalid(
                    "missing unit after a number (use ms, s, m, h, d or w)",
                ));
            }
            other => {
                return Err(invalid(&format!(
                    "unknown unit `{other}` (use ms, s, m, h, d or w)"
                )));
            }
        };
        if last_rank != usize::MAX && rank <= last_rank {
            return Err(invalid("units must appear once each, largest first"));
        }
        last_rank = rank;
        total = total
            .checked_add(
                value
                    .checked_mul(millis)
                    .ok_or_else(|| DurationError::Overflow(input.to_string()))?,
            )
            .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
        rest = tail;
    }
    to_duration(total, input)
}

fn to_duration(millis: u128, input: &str) -> Result<Duration, DurationError> {
    // Bound at 100 years: nothing Ordinaut schedules is longer, and it keeps arithmetic safe.
    const MAX_MILLIS: u128 = 100 * 366 * 86_400_000;
    if millis > MAX_MILLIS {
        return Err(DurationError::Overflow(input.to_string()));
    }
    let millis = u64::try_from(millis).map_err(|_| DurationError::Overflow(input.to_string()))?;
    Ok(Duration::from_millis(millis))
}

fn parse_iso(s: &str, input: &str) -> Result<Duration, DurationError> {
    let invalid = |reason: &str| DurationError::Invalid {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let body = &s[1..];
    if body.is_empty() {
        return Err(invalid("ISO 8601 duration has no components"));
    }
    let (date_part, time_part) = match body.find(['T', 't']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mut total: u128 = 0;
    let mut add = |part: &str, units: &[(char, u128)]| -> Result<(), DurationError> {
        let mut rest = part;
        let mut allowed = units;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| invalid("number without a unit designator"))?;
            if digits == 0 {
                return Err(invalid("expected a number"));
            }
            let value: u128 = rest[..digits]
                .parse()
                .map_err(|_| DurationError::Overflow(input.to_string()))?;
            let designator = rest[digits..]
                .chars()
                .next()
                .map(|c| c.to_ascii_uppercase())
                .ok_or_else(|| invalid("number without a unit designator"))?;
            let pos = allowed
                .iter()
                .position(|(c, _)| *c == designator)
                .ok_or_else(|| invalid(&format!("unexpected designator `{designator}` here")))?;
            let millis = allowed[pos].1;
            allowed = &allowed[pos + 1..];
            total = total
                .checked_add(
                    value
                        .checked_mul(millis)
                        .ok_or_else(|| DurationError::Overflow(input.to_string()))?,
                )
                .ok_or_else(|| DurationError::Overflow(input.to_string()))?;
            rest = &rest[digits + 1..];
        }
        Ok(())
    };
    add(date_part, &[('W', 7 * 86_400_000), ('D', 86_400_000)])?;
    if let Some(t) = time_part {
        if t.is_empty() {
            return Err(invalid("`T` must be followed by hours, minutes or seconds"));
        }
        add(t, &[('H', 3_600_000), ('M', 60_000), ('S', 1_000)])?;
    }
    to_duration(total, input)
}

/// Formats a duration compactly (`1h30m`, `500ms`), the inverse of [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    let mut millis = d.as_millis();
    if millis == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            out.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_compound_and_iso_forms() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86400)));
        assert_eq!(parse_duration("1w"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" PT1H30M "), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("P1DT1S"), Ok(Duration::from_secs(86401)));
        assert_eq!(parse_duration("P2W"), Ok(Duration::from_secs(14 * 86400)));
    }

    #[test]
    fn rejects_malformed_durations_with_a_reason() {
        for bad in [
            "", "5", "m5", "5x", "1m1h", "5m5m", "P", "PT", "P1H", "PT1D", "-5s", "1.5h",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(!err.to_string().is_empty());
        }
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999d"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_duration("1000000d"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "500ms", "2d3h", "45s", "1m1s1ms"] {
            let d = parse_duration(s).expect(s);
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
