//! Reading run history and queuing runs by hand, for people (`ordinaut runs`, `ordinaut task
//! run-now/backfill`, `ordinaut dev`'s summary): list runs with filters, one run with its
//! steps, the occurrences a backfill must skip, and manual or backfill occurrences queued
//! together with their audit record.

use crate::{NewOccurrence, StepRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Which runs [`Store::list_runs`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this live-or-deleted task (namespace, name).
    pub task: Option<(String, String)>,
    /// Only runs with this status (`succeeded`, `failed`, `retrying`, `cancelled`, `skipped`).
    pub status: Option<String>,
    /// Only runs that started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// One attempt of an occurrence, as a person reads it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct RunView {
    pub id: Uuid,
    pub task_uid: Uuid,
    pub namespace: String,
    pub name: String,
    pub trigger: String,
    pub attempt: i32,
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub worker: String,
    pub error: Option<String>,
    pub output: Option<Value>,
}

/// Runs per task and status, for a summary.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RunCount {
    pub namespace: String,
    pub name: String,
    pub status: String,
    pub count: i64,
}

/// Who queued runs by hand, for the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct ManualRequest {
    /// Who asked (`cli:<user>`).
    pub actor: String,
    /// `task.run-now`, `task.backfill`.
    pub action: String,
    /// What was asked, e.g. the backfill range.
    pub detail: Value,
    /// The request's correlation id, when it came through the gateway.
    pub correlation_id: Option<String>,
}

const RUN_COLUMNS: &str = "r.id, r.task_uid, t.namespace, t.name, r.trigger, r.attempt, r.status, \
     r.scheduled_for, r.started_at, r.finished_at, r.worker, r.error, r.output";

impl Store {
    /// Runs matching `filter`, newest first.
    pub async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunView>, StoreError> {
        let (ns, name) = match &filter.task {
            Some((ns, name)) => (Some(ns.as_str()), Some(name.as_str())),
            None => (None, None),
        };
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
             WHERE ($1::text IS NULL OR t.namespace = $1) AND ($2::text IS NULL OR t.name = $2) \
               AND ($3::text IS NULL OR r.status = $3) \
               AND ($4::timestamptz IS NULL OR r.started_at >= $4) \
             ORDER BY r.started_at DESC, r.finished_at DESC LIMIT $5"
        )))
        .bind(ns)
        .bind(name)
        .bind(filter.status.as_deref())
        .bind(filter.since)
        .bind(filter.limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    /// One run and its steps in order; `None` when there is no run with that id.
    pub async fn get_run(
        &self,
        id: Uuid,
    ) -> Result<Option<(RunView, Vec<StepRecord>)>, StoreError> {
        let run: Option<RunView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
             WHERE r.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(run) = run else { return Ok(None) };
        let steps = sqlx::query_as(
            "SELECT step_id, uses, status, attempts, input, output, error, started_at, finished_at \
             FROM step_runs WHERE run_id = $1 ORDER BY idx",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((run, steps)))
    }

    /// Runs whose id starts with `prefix` (a person may paste a shortened id), at most 2.
    pub async fn run_ids_with_prefix(&self, prefix: &str) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<(Uuid,)> = sqlx::query_as(
            "SELECT id FROM task_runs WHERE id::text LIKE $1 || '%' ORDER BY started_at DESC LIMIT 2",
        )
        .bind(prefix.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// The scheduled instants in `[from, to]` that a task already has, other than manual
    /// runs: queued, running or done in `due_work`, or recorded in `task_runs` (whose
    /// `due_work` row may have been pruned). A backfill skips these.
    pub async fn occupied_instants(
        &self,
        task_uid: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows: Vec<(DateTime<Utc>,)> = sqlx::query_as(
            "SELECT scheduled_for FROM due_work \
             WHERE task_uid = $1 AND trigger <> 'manual' AND scheduled_for BETWEEN $2 AND $3 \
             UNION \
             SELECT scheduled_for FROM task_runs \
             WHERE task_uid = $1 AND trigger <> 'manual' AND scheduled_for BETWEEN $2 AND $3 \
             ORDER BY 1",
        )
        .bind(task_uid)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// Queues occurrences asked for by a person (manual or backfill; those already present
    /// are left alone) and records the request in `audit_log`, in one transaction. Returns
    /// how many were new.
    pub async fn queue_by_hand(
        &self,
        occurrences: &[NewOccurrence],
        request: &ManualRequest,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        let mut inserted = 0;
        for o in occurrences {
            inserted += sqlx::query(
                "INSERT INTO due_work (task_uid, scheduled_for, run_at, priority, trigger, payload) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (task_uid, scheduled_for, trigger) DO NOTHING",
            )
            .bind(o.task_uid)
            .bind(o.scheduled_for)
            .bind(o.run_at)
            .bind(o.priority)
            .bind(o.trigger.as_str())
            .bind(&o.payload)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let task_uid = occurrences.first().map(|o| o.task_uid);
        let mut detail = request.detail.clone();
        if let Value::Object(m) = &mut detail {
            m.insert("queued".into(), Value::from(inserted));
        }
        sqlx::query(
            "INSERT INTO audit_log \
                 (actor, action, allowed, namespace, task_uid, subject, detail, correlation_id) \
             SELECT $1, $2, true, t.namespace, t.uid, t.name, $4, $5 FROM tasks t WHERE t.uid = $3",
        )
        .bind(&request.actor)
        .bind(&request.action)
        .bind(task_uid)
        .bind(&detail)
        .bind(request.correlation_id.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted)
    }

    /// How many runs each task had per status since `since`.
    pub async fn run_counts_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<RunCount>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT t.namespace, t.name, r.status, count(*) AS count \
             FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
             WHERE r.started_at >= $1 \
             GROUP BY t.namespace, t.name, r.status ORDER BY t.namespace, t.name, r.status",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?)
    }
}
