//! Rate limits per caller: a token bucket each (`--rate-limit` requests per second, bursts of
//! `--rate-burst`). A request finding the bucket empty gets 429 with `Retry-After` (whole
//! seconds until a token is back). Per process: with N gateway replicas an agent gets up to
//! N times the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The buckets.
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_second` requests per second on average, `burst` at once. `per_second <= 0`
    /// disables the limit.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token from `key`'s bucket: `Ok(())`, or `Err(seconds)` to wait before retrying.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            // safe cast: a positive wait, at most 1 / per_second seconds
            Err((wait.ceil() as u64).max(1))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_passes_then_the_caller_waits_for_a_refill() {
        let limiter = RateLimiter::new(0.5, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check_at("a", t0), Ok(()));
        }
        assert_eq!(limiter.check_at("a", t0), Err(2));
        // Another caller has its own bucket.
        assert_eq!(limiter.check_at("b", t0), Ok(()));
        assert_eq!(limiter.check_at("a", t0 + Duration::from_secs(2)), Ok(()));
        assert!(limiter.check_at("a", t0 + Duration::from_secs(2)).is_err());
    }

    #[test]
    fn zero_disables_the_limit() {
        let limiter = RateLimiter::new(0.0, 1);
        for _ in 0..100 {
            assert_eq!(limiter.check("a"), Ok(()));
        }
    }
}
