//! The operator's queries: what a reconcile needs to know of a task (its projection, the
//! run-now value it handled, its stale occurrences) and the one transaction that applies a
//! reconcile's plan; the status mirror and run summary the status feed writes from.
//!
//! # Start deadlines and catch-up
//! Scheduled occurrences carry `start_deadline` (their `run_at` plus the operator's grace).
//! [`crate::LEASE_SQL`] never takes a first attempt past its deadline, so after an outage
//! the stale rows wait for the operator, which applies the Task's catch-up policy in
//! [`Store::apply_reconcile`]: drops them (counted in `missed_total`, reported as
//! `run.missed`) and queues the ones the policy keeps as `catchup` occurrences.

use crate::tasks::{TaskProjection, withdraw_queued_on};
use crate::{NewOccurrence, OutboxEvent, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// What the operator stored about a task, read at the start of a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorTaskState {
    pub projection: TaskProjection,
    /// The projection is marked deleted (the Task went away; a same-uid reconcile revives it).
    pub deleted: bool,
    /// The last run-now annotation value turned into a manual occurrence.
    pub handled_run_now: Option<String>,
    /// Occurrences dropped by the catch-up policy so far.
    pub missed_total: i64,
    /// The reconcile-owned part of the status last stored (`tasks.status`).
    pub status: Value,
    /// The latest `scheduled_for` at or before `now` among the task's occurrences in
    /// `due_work` (queued, running or done): `status.lastScheduleTime`.
    pub last_due: Option<DateTime<Utc>>,
    /// The latest `scheduled_for` of the task's manual occurrences (a new one must differ:
    /// it is part of the unique key).
    pub last_manual: Option<DateTime<Utc>>,
    /// Queued, never-leased scheduled occurrences whose start deadline has passed, oldest
    /// first: the workers will not take them; the catch-up policy decides.
    pub stale: Vec<StaleOccurrence>,
}

/// A scheduled occurrence no worker started before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct StaleOccurrence {
    pub id: i64,
    pub scheduled_for: DateTime<Utc>,
}

/// An occurrence to queue, with the deadline of its first attempt (`None`: no deadline).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedOccurrence {
    pub occurrence: NewOccurrence,
    pub start_deadline: Option<DateTime<Utc>>,
}

/// Everything one reconcile of a valid Task writes, applied in one transaction by
/// [`Store::apply_reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileWrite {
    pub projection: TaskProjection,
    /// The `materialized_until` the plan was computed from (`None` when there was no
    /// projection or it had none). If the stored value differs, another reconcile got there
    /// first: nothing is written and [`StoreError::Conflict`] asks the caller to retry.
    pub prior_materialized_until: Option<DateTime<Utc>>,
    /// Withdraw queued, unleased non-manual occurrences scheduled after this instant.
    pub withdraw_after: Option<DateTime<Utc>>,
    /// Stale occurrences (from [`OperatorTaskState::stale`]) the catch-up policy handled:
    /// deleted. If any of them is no longer queued, nothing is written (Conflict).
    pub drop_stale: Vec<i64>,
    /// Occurrences to queue (inserting one that exists is a no-op).
    pub occurrences: Vec<PlannedOccurrence>,
    /// Added to `missed_total`.
    pub missed: i64,
    /// Appended to the outbox (e.g. `run.missed`), for this task.
    pub events: Vec<OutboxEvent>,
    /// Recorded as the handled run-now value when `Some`.
    pub handled_run_now: Option<String>,
    /// The reconcile-owned part of the Task's status (the `tasks.status` mirror).
    pub status: Value,
}

/// What [`Store::apply_reconcile`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub withdrawn: u64,
    pub inserted: u64,
    pub dropped: u64,
}

/// The latest run and the run counts of a task, from `task_runs` (the source of truth the
/// status feed reads, so applying an event twice or out of order changes nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub last_run_time: Option<DateTime<Utc>>,
    /// `succeeded`, `failed`, `retrying`, `cancelled` or `skipped`.
    pub last_run_status: Option<String>,
    pub last_run_id: Option<Uuid>,
    pub last_successful_time: Option<DateTime<Utc>>,
    pub succeeded: i64,
    pub failed: i64,
    pub skipped: i64,
}

/// A task's status mirror (what the operator last computed) and identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusMirror {
    pub uid: Uuid,
    pub namespace: String,
    pub name: String,
    pub status: Value,
    pub missed_total: i64,
    pub deleted: bool,
}

pub(crate) const PROJECTION_COLUMNS: &str = "uid, namespace, name, generation, spec, schedule_kind, \
     schedule, timezone, next_run_at, materialized_until, suspended, snooze_until, priority, \
     concurrency_policy";

impl Store {
    /// The operator's view of a task at `now`; `None` when it was never projected. (A batch
    /// of one of [`Store::operator_states`].)
    pub async fn operator_state(
        &self,
        uid: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorTaskState>, StoreError> {
        self.operator_states(&[(uid, now)])
            .await
            .pop()
            .unwrap_or(Ok(None))
    }

    /// Applies a reconcile's plan in one transaction: checks nothing moved since the plan
    /// was read (else [`StoreError::Conflict`], nothing written), upserts the projection,
    /// withdraws, drops the handled stale occurrences, inserts the new ones with their
    /// deadlines, counts missed occurrences, appends the events and stores the status mirror.
    /// (A batch of one of [`Store::apply_reconciles`].)
    pub async fn apply_reconcile(&self, write: &ReconcileWrite) -> Result<Applied, StoreError> {
        self.apply_reconciles(std::slice::from_ref(write))
            .await
            .pop()
            .unwrap_or_else(|| Err(StoreError::Conflict("no result for the write".into())))
    }

    /// A projected task whose spec became invalid: withdraws every queued, unleased
    /// occurrence (runs going on finish), clears `next_run_at` and `materialized_until` (the
    /// time it stays invalid is not counted as missed later) and stores the status mirror.
    /// A task never projected is left alone. Returns how many occurrences were withdrawn.
    pub async fn hold_invalid_task(&self, uid: Uuid, status: &Value) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        let withdrawn = withdraw_queued_on(&mut tx, uid).await?;
        sqlx::query(
            "UPDATE tasks SET next_run_at = NULL, materialized_until = NULL, status = $2, \
                 updated_at = now() WHERE uid = $1",
        )
        .bind(uid)
        .bind(status)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(withdrawn)
    }

    /// The status mirror of a task, `None` when it was never projected.
    pub async fn status_mirror(&self, uid: Uuid) -> Result<Option<StatusMirror>, StoreError> {
        let row: Option<(Uuid, String, String, Value, i64, bool)> = sqlx::query_as(
            "SELECT uid, namespace, name, status, missed_total, deleted_at IS NOT NULL \
             FROM tasks WHERE uid = $1",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(
            |(uid, namespace, name, status, missed_total, deleted)| StatusMirror {
                uid,
                namespace,
                name,
                status,
                missed_total,
                deleted,
            },
        ))
    }

    /// The latest run and the run counts of a task, from `task_runs`.
    pub async fn run_summary(&self, uid: Uuid) -> Result<RunSummary, StoreError> {
        let counts: (i64, i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
            // Pruned runs still count (tasks.pruned_*, migration 0009).
            "SELECT count(*) FILTER (WHERE status = 'succeeded') \
                        + coalesce((SELECT pruned_succeeded FROM tasks WHERE uid = $1), 0), \
                    count(*) FILTER (WHERE status = 'failed') \
                        + coalesce((SELECT pruned_failed FROM tasks WHERE uid = $1), 0), \
                    count(*) FILTER (WHERE status = 'skipped') \
                        + coalesce((SELECT pruned_skipped FROM tasks WHERE uid = $1), 0), \
                    max(finished_at) FILTER (WHERE status = 'succeeded') \
             FROM task_runs WHERE task_uid = $1",
        )
        .bind(uid)
        .fetch_one(&self.pool)
        .await?;
        let latest: Option<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT id, status, started_at FROM task_runs WHERE task_uid = $1 \
             ORDER BY started_at DESC, finished_at DESC LIMIT 1",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(RunSummary {
            last_run_time: latest.as_ref().map(|l| l.2),
            last_run_status: latest.as_ref().map(|l| l.1.clone()),
            last_run_id: latest.map(|l| l.0),
            last_successful_time: counts.3,
            succeeded: counts.0,
            failed: counts.1,
            skipped: counts.2,
        })
    }

    /// Records that the status feed saw outbox event `outbox_id` of a task. Returns `true`
    /// when it is newer than any seen before (for the lag metric and logs; applying an event
    /// is idempotent regardless).
    pub async fn note_feed_event(&self, uid: Uuid, outbox_id: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE tasks SET feed_outbox_id = $2 \
             WHERE uid = $1 AND (feed_outbox_id IS NULL OR feed_outbox_id < $2)",
        )
        .bind(uid)
        .bind(outbox_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Occurrences of a task in `due_work` (any state), ordered by `scheduled_for` then
    /// trigger: `(scheduled_for, run_at, trigger, leased_or_done)`. For tests and tools.
    pub async fn task_occurrences(
        &self,
        uid: Uuid,
    ) -> Result<Vec<(DateTime<Utc>, DateTime<Utc>, String, bool)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT scheduled_for, run_at, trigger, \
                    (locked_until IS NOT NULL OR done_at IS NOT NULL) \
             FROM due_work WHERE task_uid = $1 ORDER BY scheduled_for, trigger",
        )
        .bind(uid)
        .fetch_all(&self.pool)
        .await?)
    }
}
