//! What the gateway reads and writes: pages of Tasks and runs filtered by their owner (the
//! Agent named in `spec.agentRef`), with keyset cursors, and audit entries carrying a
//! correlation id (migration 0007) that also appears in the gateway's logs.

use crate::{RunView, Store, StoreError, TaskProjection};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Which Tasks [`Store::task_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    /// Only Tasks of this namespace.
    pub namespace: Option<String>,
    /// Only Tasks whose `spec.agentRef` is this Agent.
    pub agent: Option<String>,
    /// `active` (neither suspended nor snoozed now), `paused` (suspended) or `snoozed`.
    pub state: Option<String>,
    /// Keyset cursor: only Tasks after this (namespace, name).
    pub after: Option<(String, String)>,
    /// At most this many, by namespace and name.
    pub limit: i64,
}

/// A live Task with what the gateway shows besides its projection.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub projection: TaskProjection,
    /// The status the operator wrote (conditions, nextRunTime, lastRun…).
    pub status: Value,
    /// When the projection was first written (the schedule's anchor day for `every`).
    pub created_at: DateTime<Utc>,
}

/// Which runs [`Store::run_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunQuery {
    /// Only runs of Tasks in this namespace.
    pub namespace: Option<String>,
    /// Only runs of Tasks whose `spec.agentRef` is this Agent.
    pub agent: Option<String>,
    /// Only runs of the Task with this name.
    pub task: Option<String>,
    pub status: Option<String>,
    /// Only runs started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Keyset cursor: only runs older than this (started_at, id).
    pub before: Option<(DateTime<Utc>, Uuid)>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// One audit entry as the gateway writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// `agent:<namespace>/<name>`, `admin`, `cli:<user>`.
    pub actor: String,
    /// `task.create`, `task.update`, `task.delete`, `task.pause`, `task.run-now`, `auth.scope`…
    pub action: String,
    /// Whether it was allowed and done.
    pub allowed: bool,
    pub namespace: Option<String>,
    /// The Task (or other object) acted on.
    pub subject: Option<String>,
    /// What was asked and what came of it (`outcome`, `reason`…).
    pub detail: Value,
    /// The request's correlation id (also in the gateway's logs and `X-Correlation-Id`).
    pub correlation_id: Option<String>,
}

/// One audit entry as read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub allowed: bool,
    pub namespace: Option<String>,
    pub subject: Option<String>,
    pub detail: Value,
    pub correlation_id: Option<String>,
}

/// Which audit entries [`Store::audit_page`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub namespace: Option<String>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// Keyset cursor: only entries with a smaller id.
    pub before: Option<i64>,
    /// At most this many, newest first.
    pub limit: i64,
}

const TASK_ROW_COLUMNS: &str = "uid, namespace, name, generation, spec, schedule_kind, schedule, \
     timezone, next_run_at, materialized_until, suspended, snooze_until, priority, \
     concurrency_policy, status, created_at";

type TaskTuple = (TaskProjection, Value, DateTime<Utc>);

fn task_row(row: &sqlx::postgres::PgRow) -> Result<TaskTuple, sqlx::Error> {
    use sqlx::{FromRow, Row};
    Ok((
        TaskProjection::from_row(row)?,
        row.try_get("status")?,
        row.try_get("created_at")?,
    ))
}

impl Store {
    /// Live Tasks matching `query`, by namespace and name.
    pub async fn task_page(&self, query: &TaskQuery) -> Result<Vec<TaskRow>, StoreError> {
        let (after_ns, after_name) = match &query.after {
            Some((ns, name)) => (Some(ns.as_str()), Some(name.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_ROW_COLUMNS} FROM tasks \
             WHERE deleted_at IS NULL \
               AND ($1::text IS NULL OR namespace = $1) \
               AND ($2::text IS NULL OR spec->>'agentRef' = $2) \
               AND ($3::text IS NULL \
                    OR ($3 = 'paused' AND suspended) \
                    OR ($3 = 'snoozed' AND NOT suspended AND snooze_until > now()) \
                    OR ($3 = 'active' AND NOT suspended \
                        AND (snooze_until IS NULL OR snooze_until <= now()))) \
               AND ($4::text IS NULL OR (namespace, name) > ($4, $5::text)) \
             ORDER BY namespace, name LIMIT $6"
        )))
        .bind(query.namespace.as_deref())
        .bind(query.agent.as_deref())
        .bind(query.state.as_deref())
        .bind(after_ns)
        .bind(after_name)
        .bind(query.limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let (projection, status, created_at) = task_row(r)?;
                Ok(TaskRow {
                    projection,
                    status,
                    created_at,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// The live Task `namespace/name` with its status, `None` when there is none.
    pub async fn task_row(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<TaskRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TASK_ROW_COLUMNS} FROM tasks \
             WHERE namespace = $1 AND name = $2 AND deleted_at IS NULL"
        )))
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (projection, status, created_at) = task_row(&row)?;
        Ok(Some(TaskRow {
            projection,
            status,
            created_at,
        }))
    }

    /// Runs matching `query`, newest first.
    pub async fn run_page(&self, query: &RunQuery) -> Result<Vec<RunView>, StoreError> {
        let (before_at, before_id) = match query.before {
            Some((at, id)) => (Some(at), Some(id)),
            None => (None, None),
        };
        Ok(sqlx::query_as(
            "SELECT r.id, r.task_uid, t.namespace, t.name, r.trigger, r.attempt, r.status, \
                    r.scheduled_for, r.started_at, r.finished_at, r.worker, r.error, r.output \
             FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
             WHERE ($1::text IS NULL OR t.namespace = $1) \
               AND ($2::text IS NULL OR t.spec->>'agentRef' = $2) \
               AND ($3::text IS NULL OR t.name = $3) \
               AND ($4::text IS NULL OR r.status = $4) \
               AND ($5::timestamptz IS NULL OR r.started_at >= $5) \
               AND ($6::timestamptz IS NULL OR (r.started_at, r.id) < ($6, $7::uuid)) \
             ORDER BY r.started_at DESC, r.id DESC LIMIT $8",
        )
        .bind(query.namespace.as_deref())
        .bind(query.agent.as_deref())
        .bind(query.task.as_deref())
        .bind(query.status.as_deref())
        .bind(query.since)
        .bind(before_at)
        .bind(before_id)
        .bind(query.limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The `spec.agentRef` of the Task a run belongs to (the run's owner), with its namespace.
    pub async fn run_owner(
        &self,
        run: Uuid,
    ) -> Result<Option<(String, Option<String>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT t.namespace, t.spec->>'agentRef' FROM task_runs r \
             JOIN tasks t ON t.uid = r.task_uid WHERE r.id = $1",
        )
        .bind(run)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Appends a gateway audit entry (the Task, when named, is linked by its live uid).
    pub async fn audit_entry(&self, e: &AuditEntry) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log \
                 (actor, action, allowed, namespace, task_uid, subject, detail, correlation_id) \
             VALUES ($1, $2, $3, $4, \
                 (SELECT uid FROM tasks WHERE namespace = $4 AND name = $5 AND deleted_at IS NULL), \
                 $5, $6, $7)",
        )
        .bind(&e.actor)
        .bind(&e.action)
        .bind(e.allowed)
        .bind(e.namespace.as_deref())
        .bind(e.subject.as_deref())
        .bind(&e.detail)
        .bind(e.correlation_id.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Audit entries matching `query`, newest first.
    pub async fn audit_page(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, at, actor, action, allowed, namespace, subject, detail, correlation_id \
             FROM audit_log \
             WHERE ($1::text IS NULL OR namespace = $1) AND ($2::text IS NULL OR actor = $2) \
               AND ($3::text IS NULL OR action = $3) AND ($4::bigint IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
        )
        .bind(query.namespace.as_deref())
        .bind(query.actor.as_deref())
        .bind(query.action.as_deref())
        .bind(query.before)
        .bind(query.limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }
}
