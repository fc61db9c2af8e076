//! Finishing a leased occurrence: the run record, its steps, the queue row and the events,
//! in one transaction that refuses stale attempts.

use crate::events::{OutboxEvent, insert_events_on};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// How one attempt of an occurrence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Succeeded,
    Failed,
    /// Failed, and another attempt is scheduled.
    Retrying,
    /// Stopped by `concurrencyPolicy: Replace`, a timeout of the whole run or a shutdown.
    Cancelled,
    /// Not run (e.g. `concurrencyPolicy: Forbid` while another run was active).
    Skipped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Retrying => "retrying",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Skipped => "skipped",
        }
    }
}

/// How one step of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Succeeded,
    Failed,
    Skipped,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// The `step_runs.status` column (text, constrained to the three values) as a [`StepStatus`].
impl sqlx::Type<sqlx::Postgres> for StepStatus {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <&str as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for StepStatus {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        match <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)? {
            "succeeded" => Ok(StepStatus::Succeeded),
            "failed" => Ok(StepStatus::Failed),
            "skipped" => Ok(StepStatus::Skipped),
            other => Err(format!("unknown step status {other:?}").into()),
        }
    }
}

/// One step of a run, as the worker records it ([`Store::finish`]) and as it is read back
/// ([`Store::get_run`], in the run's order). `input` must already have secrets redacted.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct StepRecord {
    pub step_id: String,
    pub uses: String,
    pub status: StepStatus,
    pub attempts: i32,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// What happens to the `due_work` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// The occurrence is finished (whatever the status): mark it done.
    Done,
    /// Queue it again, to be leased (as attempt + 1) no earlier than this instant.
    RetryAt(DateTime<Utc>),
}

/// The result of one leased attempt, to record with [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub due_work_id: i64,
    /// The attempt the lease was taken at; the record is refused if it is no longer current.
    pub attempt: i32,
    pub run_id: Uuid,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub worker: String,
    pub output: Option<Value>,
    /// For failures: the step, attempt and cause, in words a person can act on.
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    /// Events to publish (through the outbox) if, and only if, the record is committed.
    pub events: Vec<OutboxEvent>,
    pub disposition: Disposition,
}

/// Per-record result of [`Store::finish_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishOutcome {
    Recorded,
    /// The attempt was stale (or the row is gone or done): nothing was written for it.
    Refused,
}

impl Store {
    /// Records one attempt's result: writes the `task_runs` row (with its steps), marks the
    /// `due_work` row done or re-queues it, and appends the events to the outbox, all in one
    /// transaction. Refused with [`StoreError::StaleAttempt`] (or `NotFound`) when the row is
    /// no longer at `record.attempt`, in which case nothing changes.
    pub async fn finish(&self, record: &RunRecord) -> Result<(), StoreError> {
        let outcome = self.finish_many(std::slice::from_ref(record)).await?;
        if outcome.first() == Some(&FinishOutcome::Recorded) {
            return Ok(());
        }
        let current: Option<(i32, Option<DateTime<Utc>>)> =
            sqlx::query_as("SELECT attempt, done_at FROM due_work WHERE id = $1")
                .bind(record.due_work_id)
                .fetch_optional(&self.pool)
                .await?;
        match current {
            Some((current, _)) => Err(StoreError::StaleAttempt {
                id: record.due_work_id,
                attempt: record.attempt,
                current,
            }),
            None => Err(StoreError::NotFound {
                what: format!("due_work {}", record.due_work_id),
            }),
        }
    }

    /// Records many results in one transaction and three statements (the batched form of
    /// [`Store::finish`]): stale records are refused individually, the rest are recorded.
    /// Returns one outcome per record, in order.
    pub async fn finish_many(
        &self,
        records: &[RunRecord],
    ) -> Result<Vec<FinishOutcome>, StoreError> {
        self.record_batch(&[], records).await
    }

    /// Like [`Store::finish_many`], but first appends `before` (e.g. the `run.started`
    /// events of runs that began since the last batch) in the same transaction, so every
    /// event of a run precedes its outcome's events in the outbox.
    pub async fn record_batch(
        &self,
        before: &[(Option<Uuid>, OutboxEvent)],
        records: &[RunRecord],
    ) -> Result<Vec<FinishOutcome>, StoreError> {
        if records.is_empty() && before.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let accepted = if records.is_empty() {
            Accepted::new()
        } else {
            claim_rows(&mut tx, records).await?
        };
        let kept: Vec<&RunRecord> = records
            .iter()
            .filter(|r| accepted.contains_key(&(r.due_work_id, r.attempt)))
            .collect();
        insert_runs(&mut tx, &kept, &accepted).await?;
        // Tasks chained after these (`on.taskFinished`) start in this same transaction.
        let run_ids: Vec<Uuid> = kept.iter().map(|r| r.run_id).collect();
        crate::chains::start_followers_on(&mut tx, &run_ids).await?;
        // One statement for every event of the batch: `before` first, then each kept record's
        // events in record order (ids follow this order).
        let events: Vec<(Option<Uuid>, &OutboxEvent)> = before
            .iter()
            .map(|(t, e)| (*t, e))
            .chain(kept.iter().flat_map(|r| {
                let task = accepted
                    .get(&(r.due_work_id, r.attempt))
                    .map(|o| o.task_uid);
                r.events.iter().map(move |e| (task, e))
            }))
            .collect();
        insert_events_on(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(records
            .iter()
            .map(|r| {
                if accepted.contains_key(&(r.due_work_id, r.attempt)) {
                    FinishOutcome::Recorded
                } else {
                    FinishOutcome::Refused
                }
            })
            .collect())
    }
}

/// What the claimed `due_work` row tells the run record.
struct Occurrence {
    task_uid: Uuid,
    scheduled_for: DateTime<Utc>,
    trigger: String,
}

type Accepted = std::collections::HashMap<(i64, i32), Occurrence>;

/// Marks rows done or re-queued, but only those still at the record's attempt and not done.
async fn claim_rows(
    tx: &mut sqlx::PgConnection,
    records: &[RunRecord],
) -> Result<Accepted, StoreError> {
    let mut ids = Vec::with_capacity(records.len());
    let mut attempts = Vec::with_capacity(records.len());
    let mut retry_at: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(records.len());
    for r in records {
        ids.push(r.due_work_id);
        attempts.push(r.attempt);
        retry_at.push(match r.disposition {
            Disposition::Done => None,
            Disposition::RetryAt(at) => Some(at),
        });
    }
    let rows: Vec<(i64, i32, Uuid, DateTime<Utc>, String)> = sqlx::query_as(
        // Lock in id order, like heartbeats, so the two never deadlock.
        "WITH mine AS ( \
             SELECT d.id, r.retry_at FROM due_work d \
             JOIN unnest($1::int8[], $2::int4[], $3::timestamptz[]) AS r(id, attempt, retry_at) \
               ON d.id = r.id AND d.attempt = r.attempt \
             WHERE d.done_at IS NULL \
             ORDER BY d.id FOR UPDATE OF d) \
         UPDATE due_work d SET \
             done_at = CASE WHEN mine.retry_at IS NULL THEN now() END, \
             run_at = coalesce(mine.retry_at, d.run_at), \
             locked_until = NULL, locked_by = NULL \
         FROM mine WHERE d.id = mine.id \
         RETURNING d.id, d.attempt, d.task_uid, d.scheduled_for, d.trigger",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(&retry_at)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, attempt, task_uid, scheduled_for, trigger)| {
            (
                (id, attempt),
                Occurrence {
                    task_uid,
                    scheduled_for,
                    trigger,
                },
            )
        })
        .collect())
}

async fn insert_runs(
    tx: &mut sqlx::PgConnection,
    kept: &[&RunRecord],
    accepted: &Accepted,
) -> Result<(), StoreError> {
    if kept.is_empty() {
        return Ok(());
    }
    let n = kept.len();
    let (mut id, mut task, mut due, mut sched, mut trig, mut att) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut status, mut started, mut finished, mut worker, mut output, mut error) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut steps = Vec::with_capacity(n);
    for r in kept {
        let Some(occ) = accepted.get(&(r.due_work_id, r.attempt)) else {
            continue;
        };
        id.push(r.run_id);
        task.push(occ.task_uid);
        due.push(r.due_work_id);
        sched.push(occ.scheduled_for);
        trig.push(occ.trigger.as_str());
        att.push(r.attempt);
        status.push(r.status.as_str());
        started.push(r.started_at);
        finished.push(r.finished_at);
        worker.push(r.worker.as_str());
        output.push(r.output.clone());
        error.push(r.error.as_deref());
        steps.push(steps_json(&r.steps));
    }
    sqlx::query(
        "INSERT INTO task_runs (id, task_uid, due_work_id, scheduled_for, trigger, attempt, \
             status, started_at, finished_at, worker, output, error, steps) \
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int8[], $4::timestamptz[], $5::text[], \
             $6::int4[], $7::text[], $8::timestamptz[], $9::timestamptz[], $10::text[], \
             $11::jsonb[], $12::text[], $13::text[]::jsonb[])",
    )
    .bind(&id)
    .bind(&task)
    .bind(&due)
    .bind(&sched)
    .bind(&trig)
    .bind(&att)
    .bind(&status)
    .bind(&started)
    .bind(&finished)
    .bind(&worker)
    .bind(&output)
    .bind(&error)
    .bind(&steps)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One element of `task_runs.steps` (migration 0015), borrowed from the record so nothing is
/// cloned on the way to JSON: absent `input`, `output` and `error` keys read back as `None`,
/// timestamps at microseconds as PostgreSQL keeps them.
#[derive(serde::Serialize)]
struct StoredStep<'a> {
    step_id: &'a str,
    uses: &'a str,
    status: &'static str,
    attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    started_at: String,
    finished_at: String,
}

/// A run's steps as the JSON text of the array `task_runs.steps` holds.
fn steps_json(steps: &[StepRecord]) -> String {
    use chrono::SecondsFormat::Micros;
    let stored: Vec<StoredStep<'_>> = steps
        .iter()
        .map(|s| StoredStep {
            step_id: &s.step_id,
            uses: &s.uses,
            status: s.status.as_str(),
            attempts: s.attempts,
            input: s.input.as_ref(),
            output: s.output.as_ref(),
            error: s.error.as_deref(),
            started_at: s.started_at.to_rfc3339_opts(Micros, true),
            finished_at: s.finished_at.to_rfc3339_opts(Micros, true),
        })
        .collect();
    // Serializing borrowed strings and values cannot fail.
    serde_json::to_string(&stored).unwrap_or_else(|_| "[]".to_string())
}
