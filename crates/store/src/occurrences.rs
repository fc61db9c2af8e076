//! Occurrences: inserting due work idempotently and withdrawing what a schedule no longer wants.

use crate::tasks::{TaskProjection, upsert_task_on};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Why an occurrence exists. Part of its unique key, so a manual run at the same instant as a
/// scheduled one is a separate occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// The schedule produced it.
    Schedule,
    /// Catch-up after downtime ran it late.
    Catchup,
    /// A person or agent asked for a run now.
    Manual,
    /// A backfill over a past range created it.
    Backfill,
    /// A stream event or another Task's run triggered it.
    Event,
}

impl Trigger {
    /// The value stored in `due_work.trigger`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Catchup => "catchup",
            Trigger::Manual => "manual",
            Trigger::Backfill => "backfill",
            Trigger::Event => "event",
        }
    }

    /// Parses a stored trigger value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "schedule" => Trigger::Schedule,
            "catchup" => Trigger::Catchup,
            "manual" => Trigger::Manual,
            "backfill" => Trigger::Backfill,
            "event" => Trigger::Event,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An occurrence to insert into `due_work`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOccurrence {
    pub task_uid: Uuid,
    /// The instant the schedule named (part of the unique key).
    pub scheduled_for: DateTime<Utc>,
    /// When it may start: `scheduled_for` plus jitter, or later for a retry.
    pub run_at: DateTime<Utc>,
    pub priority: i32,
    pub trigger: Trigger,
    pub payload: Value,
}

impl NewOccurrence {
    /// A scheduled occurrence with no jitter, priority 0 and an empty payload.
    pub fn scheduled(task_uid: Uuid, at: DateTime<Utc>) -> Self {
        Self {
            task_uid,
            scheduled_for: at,
            run_at: at,
            priority: 0,
            trigger: Trigger::Schedule,
            payload: Value::Object(Default::default()),
        }
    }
}

impl Store {
    /// Inserts occurrences in one statement; those already present (same task,
    /// `scheduled_for` and trigger, whether queued, leased or done) are left as they are.
    /// Returns how many were new.
    pub async fn insert_occurrences(
        &self,
        occurrences: &[NewOccurrence],
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let inserted = insert_on(&mut conn, occurrences).await?;
        self.note_inserted(inserted);
        Ok(inserted)
    }

    /// Withdraws a task's queued occurrences scheduled after `after` (all triggers but
    /// `manual`). Leased and finished rows are never touched. Returns how many went.
    pub async fn withdraw_future(
        &self,
        task_uid: Uuid,
        after: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        withdraw_on(&mut conn, task_uid, after).await
    }

    /// The operator's apply step, in one transaction: upsert the projection, withdraw the
    /// queued occurrences after `withdraw_after` (when given: the schedule changed) and insert
    /// the new ones. Returns `(withdrawn, inserted)`. Readers never see the task with both
    /// the old and the new schedule, or with neither.
    pub async fn apply_task(
        &self,
        task: &TaskProjection,
        withdraw_after: Option<DateTime<Utc>>,
        occurrences: &[NewOccurrence],
    ) -> Result<(u64, u64), StoreError> {
        let mut tx = self.pool.begin().await?;
        upsert_task_on(&mut tx, task).await?;
        let withdrawn = match withdraw_after {
            Some(after) => withdraw_on(&mut tx, task.uid, after).await?,
            None => 0,
        };
        let inserted = insert_on(&mut tx, occurrences).await?;
        tx.commit().await?;
        self.note_inserted(inserted);
        Ok((withdrawn, inserted))
    }
}

async fn insert_on(
    conn: &mut sqlx::PgConnection,
    occurrences: &[NewOccurrence],
) -> Result<u64, StoreError> {
    if occurrences.is_empty() {
        return Ok(0);
    }
    let mut tasks = Vec::with_capacity(occurrences.len());
    let mut scheduled = Vec::with_capacity(occurrences.len());
    let mut run_at = Vec::with_capacity(occurrences.len());
    let mut priority = Vec::with_capacity(occurrences.len());
    let mut trigger = Vec::with_capacity(occurrences.len());
    let mut payload = Vec::with_capacity(occurrences.len());
    for o in occurrences {
        tasks.push(o.task_uid);
        scheduled.push(o.scheduled_for);
        run_at.push(o.run_at);
        priority.push(o.priority);
        trigger.push(o.trigger.as_str());
        payload.push(o.payload.clone());
    }
    let result = sqlx::query(
        "INSERT INTO due_work (task_uid, scheduled_for, run_at, priority, trigger, payload) \
         SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int4[], \
                              $5::text[], $6::jsonb[]) \
         ON CONFLICT (task_uid, scheduled_for, trigger) DO NOTHING",
    )
    .bind(&tasks)
    .bind(&scheduled)
    .bind(&run_at)
    .bind(&priority)
    .bind(&trigger)
    .bind(&payload)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}

pub(crate) async fn withdraw_on(
    conn: &mut sqlx::PgConnection,
    task_uid: Uuid,
    after: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "DELETE FROM due_work \
         WHERE task_uid = $1 AND scheduled_for > $2 AND trigger <> 'manual' \
           AND locked_until IS NULL AND done_at IS NULL",
    )
    .bind(task_uid)
    .bind(after)
    .execute(&mut *conn)
    .await?;
    Ok(result.rows_affected())
}
