//! The `tasks` projection: what the operator knows of each Task resource.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// One Task as projected into PostgreSQL by the operator.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskProjection {
    pub uid: Uuid,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    /// The normalized spec (defaults applied).
    pub spec: Value,
    /// `rrule`, `cron`, `at`, `every` or `on`.
    pub schedule_kind: String,
    /// The schedule expression as written.
    pub schedule: String,
    pub timezone: String,
    pub next_run_at: Option<DateTime<Utc>>,
    pub materialized_until: Option<DateTime<Utc>>,
    pub suspended: bool,
    pub snooze_until: Option<DateTime<Utc>>,
    pub priority: i32,
    /// `Allow`, `Forbid` or `Replace`.
    pub concurrency_policy: String,
}

const TASK_COLUMNS: &str = "uid, namespace, name, generation, spec, schedule_kind, schedule, \
     timezone, next_run_at, materialized_until, suspended, snooze_until, priority, concurrency_policy";

impl Store {
    /// Inserts or updates a task projection (by uid). Updating a deleted projection revives
    /// it. Fails with [`StoreError::Conflict`] if another live task has the same name.
    pub async fn upsert_task(&self, task: &TaskProjection) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_task_on(&mut conn, task).await
    }

    /// The projection of a task by uid, deleted or not.
    pub async fn get_task(&self, uid: Uuid) -> Result<TaskProjection, StoreError> {
        sqlx::query_as::<_, TaskProjection>(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE uid = $1"
        )))
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("task {uid}"),
        })
    }

    /// The live projection of a task by namespace and name.
    pub async fn find_task(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<TaskProjection, StoreError> {
        sqlx::query_as::<_, TaskProjection>(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks \
             WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL"
        )))
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("task {namespace}/{name}"),
        })
    }

    /// Every live (not deleted) task: uid, namespace and name.
    pub async fn live_tasks(&self) -> Result<Vec<(Uuid, String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT uid, namespace, name FROM tasks WHERE deleted_at IS NULL ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks a task deleted and withdraws all its unleased, unfinished occurrences, in one
    /// transaction. Run history stays. Idempotent: deleting an unknown or already deleted
    /// task is not an error. Returns the number of occurrences withdrawn.
    pub async fn delete_task(&self, uid: Uuid) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        let withdrawn = withdraw_queued_on(&mut tx, uid).await?;
        sqlx::query(
            "UPDATE tasks SET deleted_at = coalesce(deleted_at, now()), next_run_at = NULL, \
                 updated_at = now() \
             WHERE uid = $1",
        )
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(withdrawn)
    }
}

/// Withdraws every queued, unleased, unfinished occurrence of task `uid` (runs going on
/// finish; history stays) on an open transaction. Returns how many were withdrawn.
pub(crate) async fn withdraw_queued_on(
    conn: &mut sqlx::PgConnection,
    uid: Uuid,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "DELETE FROM due_work \
         WHERE task_uid = $1 AND locked_until IS NULL AND done_at IS NULL",
    )
    .bind(uid)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Inserts or updates a projection on an open connection or transaction.
pub(crate) async fn upsert_task_on(
    conn: &mut sqlx::PgConnection,
    task: &TaskProjection,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO tasks (uid, namespace, name, generation, spec, schedule_kind, schedule, \
                 timezone, next_run_at, materialized_until, suspended, snooze_until, priority, \
                 concurrency_policy) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (uid) DO UPDATE SET \
                 namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
                 generation = EXCLUDED.generation, spec = EXCLUDED.spec, \
                 schedule_kind = EXCLUDED.schedule_kind, schedule = EXCLUDED.schedule, \
                 timezone = EXCLUDED.timezone, next_run_at = EXCLUDED.next_run_at, \
                 materialized_until = EXCLUDED.materialized_until, \
                 suspended = EXCLUDED.suspended, snooze_until = EXCLUDED.snooze_until, \
                 priority = EXCLUDED.priority, concurrency_policy = EXCLUDED.concurrency_policy, \
                 updated_at = now(), deleted_at = NULL",
    )
    .bind(task.uid)
    .bind(&task.namespace)
    .bind(&task.name)
    .bind(task.generation)
    .bind(&task.spec)
    .bind(&task.schedule_kind)
    .bind(&task.schedule)
    .bind(&task.timezone)
    .bind(task.next_run_at)
    .bind(task.materialized_until)
    .bind(task.suspended)
    .bind(task.snooze_until)
    .bind(task.priority)
    .bind(&task.concurrency_policy)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
