//! The lease loop proper: take free slots, lease that many due occurrences, start a run task
//! for each, wait for more work when the queue runs short; on shutdown, drain the run tasks
//! within the drain timeout.

use super::{CancelReason, HeldRun, Reason, Record, RunControl, Shared, fence, lock, run_one};
use chrono::Utc;
use ordinaut_store::{Lease, Listener, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The lease loop's state: the run tasks it started and what it needs to start more.
pub(super) struct LeaseLoop {
    s: Arc<Shared>,
    tx: mpsc::UnboundedSender<Record>,
    /// Due-work notifications; `None` while the database cannot be listened to (polling).
    listener: Option<Listener>,
    slots: Arc<Semaphore>,
    runs: JoinSet<()>,
    /// Which lease each run task holds, to hand it back if the task panics.
    tasks: HashMap<tokio::task::Id, (i64, i32)>,
    /// Lease statements failed in a row (for the backoff).
    lease_failures: u32,
}

impl LeaseLoop {
    pub(super) fn new(
        s: Arc<Shared>,
        tx: mpsc::UnboundedSender<Record>,
        listener: Option<Listener>,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(s.config.concurrency.max(1))),
            s,
            tx,
            listener,
            runs: JoinSet::new(),
            tasks: HashMap::new(),
            lease_failures: 0,
        }
    }

    /// Leases and starts runs until `shutdown` fires.
    pub(super) async fn run(&mut self, shutdown: &CancellationToken) {
        loop {
            let Some(mut permits) = self.free_slots(shutdown).await else {
                break;
            };
            let want = permits.len();
            let sent = fence::now_ms();
            let s = &self.s;
            let busy = s.liveness.leasing();
            let leased = s
                .store
                .lease_within_budgets_ahead(
                    &s.config.worker_id,
                    want as i64,
                    s.config.lease_duration,
                    s.config.lease_lookahead,
                )
                .await;
            drop(busy);
            let leases = match leased {
                Ok(a) => a,
                Err(e) => {
                    drop(permits);
                    if !self.back_off(&e, shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            self.lease_failures = 0;
            // Occurrences over their agent's budget were handed back: they count as taken
            // for the idle check (more due work may follow them), not as leased.
            let got = leases.leases.len() + leases.waits.len();
            self.s.metrics.leased.inc_by(leases.leases.len() as u64);
            crate::budget::note_waits(&self.s.metrics, &leases.waits);
            self.start_runs(leases.leases, &mut permits, sent);
            drop(permits);
            while let Some(done) = self.runs.try_join_next_with_id() {
                self.run_task_ended(done);
            }
            if got < want {
                let busy = self.s.liveness.leasing();
                let wait = idle_wait(&self.s, got).await;
                drop(busy);
                if !wait.is_zero() && !self.idle(wait, shutdown).await {
                    break;
                }
            }
        }
    }

    /// Waits for one free slot, then takes as many more as are free (up to the batch size).
    /// `None` once `shutdown` fired.
    async fn free_slots(&self, shutdown: &CancellationToken) -> Option<Vec<OwnedSemaphorePermit>> {
        let first = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok()?,
            _ = shutdown.cancelled() => return None,
        };
        let mut permits = vec![first];
        while permits.len() < self.s.config.batch_size.max(1) {
            match self.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        Some(permits)
    }

    /// After a failed lease statement: capped exponential backoff, the poll interval doubling
    /// to 5 s. `false` once `shutdown` fired.
    async fn back_off(&mut self, e: &StoreError, shutdown: &CancellationToken) -> bool {
        self.lease_failures = self.lease_failures.saturating_add(1);
        let wait = self
            .s
            .config
            .poll_interval
            .saturating_mul(1 << self.lease_failures.min(6))
            .min(Duration::from_secs(5));
        tracing::warn!(error = %e, retry_in = ?wait, "leasing failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = shutdown.cancelled() => false,
        }
    }

    /// Starts a run task for each lease, each with one of `permits`; `sent` is when the lease
    /// statement was sent (its deadline counts from then, see the `fence` module).
    fn start_runs(
        &mut self,
        leases: Vec<Lease>,
        permits: &mut Vec<OwnedSemaphorePermit>,
        sent: u64,
    ) {
        let s = &self.s;
        for lease in leases {
            let Some(permit) = permits.pop() else { break };
            let control = RunControl {
                cancel: CancellationToken::new(),
                reason: Reason::default(),
                finishing: Arc::new(AtomicBool::new(false)),
                deadline: Arc::new(AtomicU64::new(
                    sent.saturating_add(fence::ms(s.config.lease_duration)),
                )),
            };
            let lease_key = (lease.id, lease.attempt);
            lock(&s.held).insert(
                lease.id,
                HeldRun {
                    attempt: lease.attempt,
                    control: control.clone(),
                },
            );
            let run = run_one(s.clone(), lease, permit, self.tx.clone(), control);
            let handle = self.runs.spawn(run);
            self.tasks.insert(handle.id(), lease_key);
        }
    }

    /// Lets the runs in flight finish within the drain timeout; then stops those that have
    /// not (their leases are handed back) and waits for them to end.
    pub(super) async fn drain(&mut self) {
        let s = self.s.clone();
        tracing::info!(in_flight = self.runs.len(), drain_timeout = ?s.config.drain_timeout, "draining");
        let deadline = tokio::time::Instant::now() + s.config.drain_timeout;
        let mut handed_back = false;
        loop {
            tokio::select! {
                next = self.runs.join_next_with_id() => match next {
                    None => break,
                    Some(done) => self.run_task_ended(done),
                },
                _ = tokio::time::sleep_until(deadline), if !handed_back => {
                    handed_back = true;
                    let held = lock(&s.held);
                    tracing::warn!(runs = held.len(), "drain timeout reached; handing back leases of unfinished runs");
                    for h in held.values() {
                        h.control.stop(CancelReason::Drain);
                    }
                }
            }
        }
    }

    /// Forgets a finished run task; one that panicked outside the executor (which catches
    /// its own panics) has its lease handed back at once instead of heartbeated forever.
    fn run_task_ended(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match &done {
            Ok((id, ())) => *id,
            Err(e) => e.id(),
        };
        let lease = self.tasks.remove(&id);
        if let (Err(e), Some((due_work, attempt))) = (done, lease) {
            tracing::error!(error = %e, due_work, "a run task panicked; handing its lease back");
            self.s.metrics.panics.inc();
            self.s.metrics.in_flight.dec();
            let _ = self.tx.send(Record::Release(due_work, attempt, None));
        }
    }

    /// Waits up to `wait` for queued work (a notification, or the poll interval without a
    /// listener, which it then tries to reopen). `false` once `shutdown` fired.
    async fn idle(&mut self, wait: Duration, shutdown: &CancellationToken) -> bool {
        let s = &self.s;
        let poll = wait.min(s.config.poll_interval);
        let Some(l) = self.listener.as_mut() else {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.cancelled() => return false,
            }
            tokio::select! {
                r = s.store.listen_due_work() => match r {
                    Ok(l) => {
                        tracing::info!("listening for due work again");
                        self.listener = Some(l);
                    }
                    Err(e) => tracing::debug!(error = %e, "still cannot listen for due work"),
                },
                _ = shutdown.cancelled() => return false,
            }
            return true;
        };
        tokio::select! {
            r = l.wait(wait) => if let Err(e) = r {
                tracing::warn!(error = %e, "waiting for notifications failed; polling");
                tokio::select! {
                    _ = tokio::time::sleep(s.config.poll_interval) => {}
                    _ = shutdown.cancelled() => return false,
                }
            },
            _ = shutdown.cancelled() => return false,
        }
        true
    }
}

/// How long to wait for work after a lease came back short: until the earliest queued
/// occurrence can be leased (its time less the lookahead), at most the poll interval.
async fn idle_wait(s: &Shared, got: usize) -> Duration {
    match s.store.earliest_queued().await {
        Ok(Some(at)) => {
            let until = (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .saturating_sub(s.config.lease_lookahead);
            if until.is_zero() {
                // Due rows exist but other workers are taking them right now.
                if got > 0 {
                    Duration::ZERO
                } else {
                    Duration::from_millis(5)
                }
            } else {
                until.min(s.config.poll_interval)
            }
        }
        Ok(None) => s.config.poll_interval,
        Err(e) => {
            tracing::warn!(error = %e, "reading the queue failed");
            s.config.poll_interval
        }
    }
}
