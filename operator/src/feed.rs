//! The status feed: run outcomes (`run.succeeded`, `run.failed`, `run.cancelled`,
//! `run.skipped`) read from the events stream through a Redis consumer group reach the
//! Task's status (`lastRunTime`, `lastRunStatus`, `lastRunId`, `lastSuccessfulTime`,
//! counters).
//!
//! Applying an entry rewrites the Task's status from the store (`task_runs` and the status
//! mirror, see [`TaskReconciler::refresh_status`]), not from the entry's fields, so it is
//! idempotent and order-independent: a redelivered or reclaimed entry, or one older than an
//! entry already applied, writes the same status again and counts nothing twice. Entries are
//! acknowledged only after the status write, so a crash between the two redelivers them
//! (the consumer's own pending entries first, then entries other consumers left idle).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ordinaut_events::{ConsumerError, GroupConsumer, StartFrom, StreamEntry};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::reconcile::{ReconcileError, TaskReconciler};

/// The consumer group of the operator's status feed.
pub const GROUP: &str = "ordinaut-operator";

/// Event types that change a Task's run status.
pub const OUTCOMES: [&str; 5] = [
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "run.skipped",
    // Events filtered out or dropped for a Task on events (its status.events).
    "event.skipped",
];

/// A failure of the feed (it retries).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Consumer(#[from] ConsumerError),
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
}

/// The status feed of one operator instance.
pub struct StatusFeed {
    consumer: GroupConsumer,
    tasks: TaskReconciler,
}

impl StatusFeed {
    /// A feed reading through `consumer` (its group should be [`GROUP`]).
    pub fn new(consumer: GroupConsumer, tasks: TaskReconciler) -> Self {
        Self { consumer, tasks }
    }

    /// Creates the group if needed (reading from the beginning of the stream, so outcomes
    /// published before the first operator started are applied too).
    pub async fn ensure_group(&self) -> Result<(), FeedError> {
        self.consumer.ensure_group(StartFrom::Beginning).await?;
        Ok(())
    }

    /// Reads up to `count` entries (waiting up to `block` for new ones) and applies them.
    /// Returns the ids to acknowledge with [`StatusFeed::ack`]: all of them, since entries
    /// that are not run outcomes, or belong to no live Task, have nothing to apply.
    pub async fn read_and_apply(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<String>, FeedError> {
        let entries = self.consumer.read(count, block).await?;
        let mut done = Vec::with_capacity(entries.len());
        for entry in entries {
            self.apply(&entry).await?;
            done.push(entry.id);
        }
        Ok(done)
    }

    /// Acknowledges applied entries.
    pub async fn ack(&self, ids: &[String]) -> Result<(), FeedError> {
        self.consumer.ack(ids).await?;
        Ok(())
    }

    async fn apply(&self, entry: &StreamEntry) -> Result<(), FeedError> {
        if !OUTCOMES.contains(&entry.event_type.as_str()) {
            return Ok(());
        }
        let Some(uid) = entry
            .task_uid
            .as_deref()
            .or_else(|| entry.payload.get("taskUid").and_then(|v| v.as_str()))
            .and_then(|u| Uuid::parse_str(u).ok())
        else {
            return Ok(());
        };
        let ctx = self.tasks.context();
        if let Some(id) = entry.outbox_id {
            ctx.store
                .note_feed_event(uid, id)
                .await
                .map_err(|source| ReconcileError::Store {
                    namespace: String::new(),
                    name: uid.to_string(),
                    source,
                })?;
        }
        match self.tasks.refresh_status(uid).await {
            Ok(_) => {}
            // The Task is gone: nothing to update.
            Err(ReconcileError::Sink(e)) if e.gone => {}
            Err(e) => return Err(e.into()),
        }
        ctx.metrics.feed_events.inc();
        if let Some(created) = entry
            .created_at
            .as_deref()
            .and_then(|c| c.parse::<DateTime<Utc>>().ok())
        {
            let lag = (ctx.clock.now() - created).num_milliseconds() as f64 / 1000.0;
            ctx.metrics.feed_lag_seconds.set(lag.max(0.0));
        }
        tracing::debug!(task_uid = %uid, event = %entry.event_type, id = %entry.id, "run outcome applied");
        Ok(())
    }

    /// Applies entries until `shutdown`, while `is_leader` says so; failures are logged and
    /// retried after a pause (unacknowledged entries stay pending and come back).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut ready = false;
        while !shutdown.is_cancelled() {
            if !self.tasks.context().leader.is_leader() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            if !ready {
                match self.ensure_group().await {
                    Ok(()) => ready = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "status feed: cannot create the consumer group; retrying");
                        pause(&shutdown).await;
                        continue;
                    }
                }
            }
            let result = tokio::select! {
                () = shutdown.cancelled() => break,
                r = self.read_and_apply(100, Duration::from_secs(2)) => r,
            };
            match result {
                Ok(ids) => {
                    if let Err(e) = self.ack(&ids).await {
                        tracing::warn!(error = %e, "status feed: ack failed; entries will be applied again");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "status feed: applying failed; retrying");
                    pause(&shutdown).await;
                }
            }
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
}
