//! Retry policy resolution and the backoff formula the worker sleeps by.
//!
//! A step's `retry` overrides the Task's **field by field**: a step that only sets
//! `attempts: 5` keeps the Task's backoff, cap and jitter; fields neither sets take the
//! defaults (1 attempt, 1s, 5m, jitter on). Replacing the whole policy instead would silently
//! reset the backoff of every step that tunes one knob.
//!
//! The wait after failed attempt `n` (1-based) is `min(backoff · 2^(n-1), maxBackoff)`,
//! scaled by a factor in [0.5, 1.0] when jitter is on. The random draw is the caller's, so
//! this stays pure and testable.

use std::time::Duration;

use ordinaut_api::RetryPolicy;
use ordinaut_schedule::duration::{DurationError, parse_duration};

use crate::limits::MAX_RETRY_ATTEMPTS;

/// A retry policy with every field decided and parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EffectiveRetry {
    /// Total attempts, the first included (1: no retry).
    pub attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub jitter: bool,
}

/// A retry field that does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    #[error("retry.attempts must be between 1 and {max}, got {got}")]
    Attempts { got: u32, max: u32 },
    #[error("retry.{field}: {cause}")]
    Duration {
        /// `backoff` or `maxBackoff`.
        field: &'static str,
        cause: DurationError,
    },
    #[error(
        "retry.backoff ({backoff}) is larger than retry.maxBackoff ({max_backoff}); raise maxBackoff or lower backoff"
    )]
    BackoffAboveMax {
        backoff: String,
        max_backoff: String,
    },
}

impl RetryError {
    /// The field at fault, relative to the policy (`attempts`, `backoff`, `maxBackoff`).
    pub fn field(&self) -> &'static str {
        match self {
            RetryError::Attempts { .. } => "attempts",
            RetryError::Duration { field, .. } => field,
            RetryError::BackoffAboveMax { .. } => "backoff",
        }
    }
}

impl Default for EffectiveRetry {
    fn default() -> Self {
        Self {
            attempts: RetryPolicy::DEFAULT_ATTEMPTS,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            jitter: RetryPolicy::DEFAULT_JITTER,
        }
    }
}

/// The policy a step runs with: the step's fields, else the Task's, else the defaults.
pub fn resolve_retry(
    task: Option<&RetryPolicy>,
    step: Option<&RetryPolicy>,
) -> Result<EffectiveRetry, RetryError> {
    fn pick<'a, T>(
        step: Option<&'a RetryPolicy>,
        task: Option<&'a RetryPolicy>,
        f: impl Fn(&'a RetryPolicy) -> Option<T>,
    ) -> Option<T> {
        step.and_then(&f).or_else(|| task.and_then(&f))
    }
    let defaults = EffectiveRetry::default();
    let attempts = pick(step, task, |p| p.attempts).unwrap_or(defaults.attempts);
    if !(1..=MAX_RETRY_ATTEMPTS).contains(&attempts) {
        return Err(RetryError::Attempts {
            got: attempts,
            max: MAX_RETRY_ATTEMPTS,
        });
    }
    let duration = |field: &'static str, text: Option<&String>, default: Duration| match text {
        None => Ok(default),
        Some(text) => parse_duration(text).map_err(|cause| RetryError::Duration { field, cause }),
    };
    let backoff_text = pick(step, task, |p| p.backoff.as_ref());
    let max_text = pick(step, task, |p| p.max_backoff.as_ref());
    let backoff = duration("backoff", backoff_text, defaults.backoff)?;
    let max_backoff = duration("maxBackoff", max_text, defaults.max_backoff)?;
    if backoff > max_backoff {
        let show =
            |text: Option<&String>, default: &str| text.map_or(default.to_string(), String::clone);
        return Err(RetryError::BackoffAboveMax {
            backoff: show(backoff_text, RetryPolicy::DEFAULT_BACKOFF),
            max_backoff: show(max_text, RetryPolicy::DEFAULT_MAX_BACKOFF),
        });
    }
    Ok(EffectiveRetry {
        attempts,
        backoff,
        max_backoff,
        jitter: pick(step, task, |p| p.jitter).unwrap_or(defaults.jitter),
    })
}

/// Checks one policy on its own, as written in a Pipeline or a Task: attempts in range,
/// durations that parse, and backoff ≤ maxBackoff when the policy sets both (when it sets
/// one, the other may come from the Task at run time, so [`resolve_retry`] checks the pair).
pub fn check_policy(policy: &RetryPolicy) -> Vec<RetryError> {
    let mut errors = Vec::new();
    if let Some(got) = policy.attempts
        && !(1..=MAX_RETRY_ATTEMPTS).contains(&got)
    {
        errors.push(RetryError::Attempts {
            got,
            max: MAX_RETRY_ATTEMPTS,
        });
    }
    let mut parse = |field: &'static str, text: Option<&String>| {
        let text = text?;
        parse_duration(text)
            .map_err(|cause| errors.push(RetryError::Duration { field, cause }))
            .ok()
            .map(|d| (d, text.clone()))
    };
    let backoff = parse("backoff", policy.backoff.as_ref());
    let max = parse("maxBackoff", policy.max_backoff.as_ref());
    if let (Some((b, backoff)), Some((m, max_backoff))) = (backoff, max)
        && b > m
    {
        errors.push(RetryError::BackoffAboveMax {
            backoff,
            max_backoff,
        });
    }
    errors
}

impl EffectiveRetry {
    /// Whether another attempt follows failed attempt `attempt` (1-based).
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait after failed attempt `attempt`; see [`backoff_delay`].
    pub fn delay(&self, attempt: u32, rng_fraction: f64) -> Duration {
        backoff_delay(self, attempt, rng_fraction)
    }
}

/// `min(backoff · 2^(attempt-1), max_backoff)`, times `0.5 + 0.5 · rng_fraction` when jitter
/// is on. `attempt` is the 1-based number of the attempt that failed (0 reads as 1);
/// `rng_fraction` is a uniform draw from [0, 1] (clamped; NaN reads as 1, no shortening).
/// Saturates instead of overflowing, at any attempt.
pub fn backoff_delay(policy: &EffectiveRetry, attempt: u32, rng_fraction: f64) -> Duration {
    let exponent = attempt.saturating_sub(1);
    let factor = 2u32.checked_pow(exponent);
    let capped = factor
        .and_then(|f| policy.backoff.checked_mul(f))
        .map_or(policy.max_backoff, |d| d.min(policy.max_backoff));
    if !policy.jitter {
        return capped;
    }
    let fraction = if rng_fraction.is_nan() {
        1.0
    } else {
        rng_fraction.clamp(0.0, 1.0)
    };
    // Integer arithmetic in parts per million keeps the result exactly within bounds.
    const PPM: u128 = 1_000_000;
    let ppm = PPM / 2 + (fraction * (PPM / 2) as f64).round() as u128;
    let nanos = capped.as_nanos() * ppm / PPM;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy(
        attempts: Option<u32>,
        backoff: Option<&str>,
        max: Option<&str>,
        jitter: Option<bool>,
    ) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: backoff.map(String::from),
            max_backoff: max.map(String::from),
            jitter,
        }
    }

    fn fixed(backoff: u64, max: u64) -> EffectiveRetry {
        EffectiveRetry {
            attempts: 10,
            backoff: Duration::from_secs(backoff),
            max_backoff: Duration::from_secs(max),
            jitter: false,
        }
    }

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let p = fixed(1, 60);
        let delays: Vec<u64> = (1..=8)
            .map(|n| backoff_delay(&p, n, 0.3).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff_delay(&p, 0, 0.3), Duration::from_secs(1));
    }

    #[test]
    fn backoff_saturates_at_huge_attempt_numbers() {
        let p = fixed(7, 300);
        for attempt in [31, 32, 33, 64, 1000, u32::MAX] {
            assert_eq!(
                backoff_delay(&p, attempt, 1.0),
                Duration::from_secs(300),
                "{attempt}"
            );
        }
    }

    #[test]
    fn jitter_scales_between_half_and_all_of_the_capped_delay() {
        let p = EffectiveRetry {
            jitter: true,
            ..fixed(2, 100)
        };
        assert_eq!(backoff_delay(&p, 3, 0.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(&p, 3, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(&p, 3, 0.5), Duration::from_secs(6));
        assert_eq!(backoff_delay(&p, 3, -4.0), Duration::from_secs(4));
        assert_eq!(backoff_delay(&p, 3, 9.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(&p, 3, f64::NAN), Duration::from_secs(8));
        assert_eq!(backoff_delay(&p, 20, 0.0), Duration::from_secs(50));
    }

    #[test]
    fn step_policy_overrides_the_task_policy_field_by_field() {
        let task = policy(Some(3), Some("2s"), Some("1m"), Some(false));
        let step = policy(Some(5), None, None, None);
        let eff = resolve_retry(Some(&task), Some(&step)).expect("valid");
        assert_eq!(
            eff,
            EffectiveRetry {
                attempts: 5,
                backoff: Duration::from_secs(2),
                max_backoff: Duration::from_secs(60),
                jitter: false
            }
        );
        let step = policy(None, Some("10s"), None, Some(true));
        let eff = resolve_retry(Some(&task), Some(&step)).expect("valid");
        assert_eq!(
            (eff.attempts, eff.backoff, eff.jitter),
            (3, Duration::from_secs(10), true)
        );
    }

    #[test]
    fn absent_policies_resolve_to_the_documented_defaults() {
        let eff = resolve_retry(None, None).expect("valid");
        assert_eq!(eff, EffectiveRetry::default());
        assert_eq!(eff.attempts, 1);
        assert!(!eff.should_retry(1));
        assert_eq!(
            eff.backoff,
            parse_duration(RetryPolicy::DEFAULT_BACKOFF).expect("d")
        );
        assert_eq!(
            eff.max_backoff,
            parse_duration(RetryPolicy::DEFAULT_MAX_BACKOFF).expect("d")
        );
    }

    #[test]
    fn invalid_fields_are_rejected_naming_the_field() {
        let err = resolve_retry(None, Some(&policy(Some(0), None, None, None))).expect_err("0");
        assert_eq!(err.field(), "attempts");
        let err = resolve_retry(None, Some(&policy(Some(101), None, None, None))).expect_err("101");
        assert_eq!(
            err,
            RetryError::Attempts {
                got: 101,
                max: MAX_RETRY_ATTEMPTS
            }
        );
        let err =
            resolve_retry(Some(&policy(None, Some("soon"), None, None)), None).expect_err("soon");
        assert_eq!(err.field(), "backoff");
        let err = resolve_retry(None, Some(&policy(None, None, Some("1x"), None))).expect_err("1x");
        assert_eq!(err.field(), "maxBackoff");
        let err =
            resolve_retry(None, Some(&policy(None, Some("10m"), None, None))).expect_err("above");
        assert_eq!(
            err.to_string(),
            "retry.backoff (10m) is larger than retry.maxBackoff (5m); raise maxBackoff or lower backoff"
        );
    }

    #[test]
    fn check_policy_compares_backoff_and_max_only_when_both_are_set() {
        assert!(check_policy(&policy(None, Some("10m"), None, None)).is_empty());
        assert!(check_policy(&policy(Some(3), Some("1s"), Some("1m"), Some(true))).is_empty());
        let errors = check_policy(&policy(Some(0), Some("2m"), Some("1m"), None));
        let fields: Vec<&str> = errors.iter().map(RetryError::field).collect();
        assert_eq!(fields, ["attempts", "backoff"]);
        let errors = check_policy(&policy(None, Some("x"), Some("y"), None));
        let fields: Vec<&str> = errors.iter().map(RetryError::field).collect();
        assert_eq!(fields, ["backoff", "maxBackoff"]);
    }

    proptest! {
        #[test]
        fn delay_is_within_half_and_all_of_the_capped_exponential(
            base_ms in 1u64..10_000, max_ms in 10_000u64..10_000_000, attempt in 0u32..2000, fraction in 0.0f64..=1.0,
        ) {
            let p = EffectiveRetry {
                attempts: 100,
                backoff: Duration::from_millis(base_ms),
                max_backoff: Duration::from_millis(max_ms),
                jitter: true,
            };
            let exact = EffectiveRetry { jitter: false, ..p };
            let capped = backoff_delay(&exact, attempt, fraction);
            let expected = Duration::from_millis(
                base_ms.saturating_mul(1u64.checked_shl(attempt.saturating_sub(1)).unwrap_or(u64::MAX)).min(max_ms)
            );
            let expected = if attempt.saturating_sub(1) >= 64 { Duration::from_millis(max_ms) } else { expected };
            prop_assert_eq!(capped, expected);
            let jittered = backoff_delay(&p, attempt, fraction);
            prop_assert!(jittered <= capped);
            prop_assert!(jittered >= capped / 2);
        }
    }
}
