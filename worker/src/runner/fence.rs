//! Self-fencing: each run knows, by this process's monotonic clock, when its lease expires
//! (set at lease time, moved by every heartbeat from the time left the database reports,
//! measured from the moment the statement was sent, so never later than the real expiry).
//! A run that reaches its deadline less the safety margin without a renewal is cancelled
//! and handed back, never recorded as succeeded: another worker may lease the occurrence
//! once the lease expires, and the two attempts must not overlap. The monotonic clock keeps
//! counting while the process is stopped (SIGSTOP), so a resumed worker sees at once that
//! its deadlines have passed.

use super::{CancelReason, Reason};
use crate::executor::RunResult;
use ordinaut_store::RunStatus;
use std::future::Future;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

static BASE: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Milliseconds on this process's monotonic clock.
pub(super) fn now_ms() -> u64 {
    u64::try_from(BASE.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// `d` in milliseconds.
pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether a run whose lease expires at `deadline` must stop now.
pub(super) fn fenced(deadline: &AtomicU64, margin: Duration) -> bool {
    now_ms() >= deadline.load(Ordering::SeqCst).saturating_sub(ms(margin))
}

/// Completes once the run must stop (its deadline less `margin` has passed without a
/// heartbeat moving it).
async fn until_fenced(deadline: &AtomicU64, margin: Duration) {
    loop {
        let at = deadline.load(Ordering::SeqCst).saturating_sub(ms(margin));
        let now = now_ms();
        if now >= at {
            return;
        }
        tokio::time::sleep(Duration::from_millis(at - now)).await;
    }
}

/// What stops a run besides finishing.
pub(super) struct Limits<'a> {
    pub cancel: &'a CancellationToken,
    pub reason: &'a Reason,
    pub deadline: &'a AtomicU64,
    pub margin: Duration,
    /// The Task's `timeout`.
    pub timeout: Option<Duration>,
}

/// Drives `run` to completion, cancelling it when its lease deadline comes near (self-
/// fencing) or its timeout passes. The fence is polled first, so a process resumed after
/// its lease expired stops the run before it takes another step.
pub(super) async fn supervise(
    run: impl Future<Output = RunResult>,
    limits: Limits<'_>,
) -> RunResult {
    tokio::pin!(run);
    let timeout = async {
        match limits.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(timeout);
    let fence = until_fenced(limits.deadline, limits.margin);
    tokio::pin!(fence);
    let (mut fence_done, mut timeout_done) = (false, false);
    loop {
        tokio::select! {
            biased;
            _ = &mut fence, if !fence_done => {
                fence_done = true;
                limits.reason.set(CancelReason::Fenced);
                limits.cancel.cancel();
            }
            _ = &mut timeout, if !timeout_done => {
                timeout_done = true;
                limits.reason.set(CancelReason::Timeout);
                limits.cancel.cancel();
            }
            result = &mut run => return result,
        }
    }
}

/// The result of a run task that panicked: a failure naming the panic.
pub(super) fn panicked(payload: &(dyn std::any::Any + Send)) -> RunResult {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string());
    RunResult {
        status: RunStatus::Failed,
        output: None,
        error: Some(format!(
            "the run panicked (a bug in a tool or in Ordinaut; please report it): {message}"
        )),
        steps: Vec::new(),
        denied: Vec::new(),
    }
}
