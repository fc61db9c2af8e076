//! Liveness: the worker is wedged (and `/healthz` fails, so Kubernetes restarts it) when a
//! lease statement or a recorder write has been waiting on PostgreSQL for longer than the
//! stall limit. A database that refuses connections is not a wedge (those calls fail fast and
//! are retried; a restart would not help); one that accepts a statement and never answers
//! is, as is a deadlock in the worker itself.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    // +1: 0 means "not busy".
    u64::try_from(BASE.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// Tracks the lease loop's and the recorder's calls in flight.
#[derive(Debug)]
pub struct Liveness {
    stall: Duration,
    lease_since: AtomicU64,
    record_since: AtomicU64,
}

/// Marks a call in flight until dropped.
pub struct Busy<'a>(&'a AtomicU64);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::SeqCst);
    }
}

impl Liveness {
    /// Fails when one call has been in flight for longer than `stall`.
    pub fn new(stall: Duration) -> Self {
        Self {
            stall,
            lease_since: AtomicU64::new(0),
            record_since: AtomicU64::new(0),
        }
    }

    /// The lease loop is waiting on the database.
    pub fn leasing(&self) -> Busy<'_> {
        self.lease_since.store(now_ms(), Ordering::SeqCst);
        Busy(&self.lease_since)
    }

    /// The recorder is waiting on the database.
    pub fn recording(&self) -> Busy<'_> {
        self.record_since.store(now_ms(), Ordering::SeqCst);
        Busy(&self.record_since)
    }

    /// `Ok`, or which loop is stuck and for how long.
    pub fn check(&self) -> Result<(), String> {
        let now = now_ms();
        for (what, since) in [
            ("the lease loop", &self.lease_since),
            ("the recorder", &self.record_since),
        ] {
            let at = since.load(Ordering::SeqCst);
            let waited = Duration::from_millis(now.saturating_sub(at));
            if at != 0 && waited > self.stall {
                return Err(format!(
                    "{what} has waited {}s for PostgreSQL (limit {}s, --liveness-stall)",
                    waited.as_secs(),
                    self.stall.as_secs()
                ));
            }
        }
        Ok(())
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new(Duration::from_secs(120))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_in_flight_past_the_limit_fails_and_ends_when_it_returns() {
        let l = Liveness::new(Duration::ZERO);
        assert!(l.check().is_ok());
        let busy = l.recording();
        std::thread::sleep(Duration::from_millis(5));
        let err = l
            .check()
            .expect_err("a call past the limit must fail liveness");
        assert!(err.contains("the recorder"), "{err}");
        drop(busy);
        assert!(l.check().is_ok());
    }
}
