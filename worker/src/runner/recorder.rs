//! The recorder: writes started events, results and hand-backs in batches, one transaction
//! per batch. A result is never dropped for a database that is away: transient errors
//! (PostgreSQL restarting, connections cut, serialization failures) are retried with capped
//! exponential backoff while the result waits in memory, bounded by the worker's
//! concurrency (its permit is released only once it is written) and counted in
//! `ordinaut_results_waiting`. A record PostgreSQL refuses for good is written as a failed
//! run with the reason instead, so the occurrence does not run again.

use super::{Shared, lock};
use crate::metrics::Outcome;
use ordinaut_store::{FinishOutcome, OutboxEvent, RunRecord, RunStatus, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use uuid::Uuid;

/// What the recorder writes. Finished runs and hand-backs carry their concurrency permit,
/// released only once written: a worker never holds more unrecorded results than its
/// concurrency, so a slow database slows leasing instead of growing a backlog in memory.
pub(super) enum Record {
    Started(Uuid, OutboxEvent),
    Finished(Box<RunRecord>, OwnedSemaphorePermit),
    /// Hand a lease back (drain, self-fencing, a run task that panicked).
    Release(i64, i32, Option<OwnedSemaphorePermit>),
}

/// Backoff between retries of a transient failure: 100 ms doubling to 2 s. The cap is short
/// so that, once PostgreSQL is back, waiting results are written within two seconds.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(Duration::from_millis(100))
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
    }
}

/// Runs `op` until it succeeds or fails permanently, waiting out transient errors.
pub(super) async fn retry_transient<T, F, Fut>(
    s: &Shared,
    what: &str,
    mut op: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Backoff::new();
    loop {
        let busy = s.liveness.recording();
        let result = op().await;
        drop(busy);
        match result {
            Err(e) if e.is_transient() => {
                s.metrics.record_errors.inc();
                tracing::warn!(error = %e, "{what} failed (database unavailable); retrying");
                backoff.wait().await;
            }
            other => return other,
        }
    }
}

pub(super) async fn recorder_loop(s: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Record>) {
    const MAX_BATCH: usize = 512;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut starts = Vec::new();
        let mut finishes = Vec::new();
        let mut releases = Vec::new();
        // Dropped at the end of this iteration, once everything in the batch is written.
        let mut permits = Vec::new();
        for r in batch {
            match r {
                Record::Started(task, e) => starts.push((Some(task), e)),
                Record::Finished(r, permit) => {
                    finishes.push(*r);
                    permits.push(permit);
                }
                Record::Release(id, attempt, permit) => {
                    releases.push((id, attempt));
                    permits.extend(permit);
                }
            }
        }
        write_batch(&s, &starts, &finishes).await;
        s.metrics.results_waiting.dec_by(finishes.len() as i64);
        if !releases.is_empty() {
            release(&s, &releases).await;
        }
    }
}

async fn release(s: &Shared, releases: &[(i64, i32)]) {
    let worker = s.config.worker_id.clone();
    match retry_transient(s, "handing back leases", || {
        s.store.release(&worker, releases)
    })
    .await
    {
        Ok(n) => tracing::info!(released = n, "handed leases back to the queue"),
        Err(e) => {
            tracing::error!(error = %e, "handing back leases failed; they will expire and be reaped")
        }
    }
    let mut held = lock(&s.held);
    for (id, _) in releases {
        held.remove(id);
    }
}

async fn write_batch(s: &Shared, starts: &[(Option<Uuid>, OutboxEvent)], finishes: &[RunRecord]) {
    let outcomes = match retry_transient(s, "recording results", || {
        s.store.record_batch(starts, finishes)
    })
    .await
    {
        Ok(o) => o,
        Err(e) => {
            // A permanent error in a batch: record one by one so one bad record cannot
            // block the others.
            s.metrics.record_errors.inc();
            tracing::error!(error = %e, "recording a batch failed; recording one by one");
            one_by_one(s, starts, finishes).await
        }
    };
    let mut held = lock(&s.held);
    for (record, outcome) in finishes.iter().zip(outcomes) {
        held.remove(&record.due_work_id);
        match outcome {
            FinishOutcome::Recorded => count_recorded(s, record),
            FinishOutcome::Refused => {
                s.metrics.stale_results.inc();
                tracing::warn!(
                    due_work = record.due_work_id,
                    attempt = record.attempt,
                    "result refused: the occurrence was leased again or finished meanwhile"
                );
            }
        }
    }
}

async fn one_by_one(
    s: &Shared,
    starts: &[(Option<Uuid>, OutboxEvent)],
    finishes: &[RunRecord],
) -> Vec<FinishOutcome> {
    if let Err(e) = retry_transient(s, "recording started events", || {
        s.store.record_batch(starts, &[])
    })
    .await
    {
        tracing::error!(error = %e, "dropping run.started events that cannot be written");
    }
    let mut outcomes = Vec::with_capacity(finishes.len());
    for f in finishes {
        let one = std::slice::from_ref(f);
        let outcome = match retry_transient(s, "recording a result", || s.store.finish_many(one))
            .await
        {
            Ok(mut o) => o.pop().unwrap_or(FinishOutcome::Refused),
            Err(e) => {
                // Stored as a failure with the reason, never dropped (a dropped record's
                // occurrence would run again when its lease expires, without end).
                tracing::error!(error = %e, due_work = f.due_work_id, "PostgreSQL refused a run record; recording it as failed");
                let failed = unstorable(f, &e);
                let one = std::slice::from_ref(&failed);
                match retry_transient(s, "recording a failed result", || s.store.finish_many(one))
                    .await
                {
                    Ok(mut o) => o.pop().unwrap_or(FinishOutcome::Refused),
                    Err(e) => {
                        s.metrics.records_dropped.inc();
                        tracing::error!(error = %e, due_work = f.due_work_id, "dropping a run record that cannot be written at all");
                        FinishOutcome::Refused
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    outcomes
}

/// `record` as a failed run without its outputs and steps, naming PostgreSQL's refusal.
fn unstorable(record: &RunRecord, e: &StoreError) -> RunRecord {
    let reason = format!(
        "the result could not be stored (PostgreSQL refused it: {}); it was recorded as failed \
         without its outputs",
        ordinaut_store::storable::escape_nul(e.to_string())
    );
    let mut event = record
        .events
        .last()
        .cloned()
        .unwrap_or_else(|| OutboxEvent::new("run.failed", json!({})));
    event.event_type = "run.failed".into();
    if let Value::Object(m) = &mut event.payload {
        m.insert("status".into(), json!("failed"));
        m.insert("error".into(), json!(reason));
    }
    RunRecord {
        status: RunStatus::Failed,
        output: None,
        error: Some(reason),
        steps: Vec::new(),
        events: vec![event],
        ..record.clone()
    }
}

fn count_recorded(s: &Shared, record: &RunRecord) {
    s.metrics
        .runs
        .get_or_create(&Outcome {
            outcome: record.status.as_str().to_string(),
        })
        .inc();
    for step in &record.steps {
        s.metrics
            .steps
            .get_or_create(&Outcome {
                outcome: step.status.as_str().to_string(),
            })
            .inc();
        let d = (step.finished_at - step.started_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0);
        s.metrics.step_duration.observe(d as f64 / 1e6);
    }
}
