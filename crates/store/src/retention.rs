//! History retention: finished runs (with their steps), finished occurrences, relayed outbox
//! events and audit entries are pruned by age, and runs also by count per Task (the Task's
//! `successfulRunsHistoryLimit` / `failedRunsHistoryLimit`, else the defaults here). Each call
//! deletes at most one small batch per table, each in its own short statement that skips
//! rows locked by others, so pruning never holds long locks or blocks leasing; callers loop
//! while there is more to do.

use crate::{Store, StoreError};
use std::time::Duration;

/// What to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Runs (and their steps) and finished occurrences older than this are removed.
    pub max_age: Duration,
    /// Succeeded runs kept per Task unless its spec says otherwise.
    pub successful_per_task: i64,
    /// Runs that did not succeed kept per Task unless its spec says otherwise.
    pub failed_per_task: i64,
    /// Relayed outbox rows older than this are removed (unrelayed ones never are).
    pub outbox_max_age: Duration,
    /// Audit entries older than this are removed.
    pub audit_max_age: Duration,
    /// Most rows deleted per table and call.
    pub batch: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            successful_per_task: 100,
            failed_per_task: 100,
            outbox_max_age: Duration::from_secs(24 * 3600),
            audit_max_age: Duration::from_secs(90 * 24 * 3600),
            batch: 1000,
        }
    }
}

/// Rows removed by one [`Store::prune`] call, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub runs: u64,
    pub due_work: u64,
    pub outbox: u64,
    pub audit: u64,
}

impl Pruned {
    /// Whether any table had a full batch (call again soon).
    pub fn more(&self, batch: i64) -> bool {
        let b = u64::try_from(batch).unwrap_or(0);
        [self.runs, self.due_work, self.outbox, self.audit]
            .iter()
            .any(|n| *n >= b)
    }
}

/// Runs past their Task's count limits or the age limit, with their steps (no foreign key
/// since migration 0005: deleted here, in the same statement); the Task's status counters
/// keep counting them (`tasks.pruned_*`, migration 0009).
const PRUNE_RUNS: &str = "\
WITH ranked AS (
    SELECT r.id, r.finished_at,
           row_number() OVER (PARTITION BY r.task_uid, r.status = 'succeeded'
                              ORDER BY r.finished_at DESC) AS n,
           CASE WHEN r.status = 'succeeded'
                THEN coalesce((t.spec->>'successfulRunsHistoryLimit')::int8, $2)
                ELSE coalesce((t.spec->>'failedRunsHistoryLimit')::int8, $3) END AS keep
    FROM task_runs r LEFT JOIN tasks t ON t.uid = r.task_uid),
doomed AS (
    SELECT r.id FROM task_runs r JOIN ranked k ON k.id = r.id
    WHERE k.n > k.keep OR k.finished_at < now() - make_interval(secs => $1)
    LIMIT $4 FOR UPDATE OF r SKIP LOCKED),
gone AS (DELETE FROM task_runs r USING doomed WHERE r.id = doomed.id
          RETURNING r.id, r.task_uid, r.status),
steps AS (DELETE FROM step_runs s USING gone WHERE s.run_id = gone.id),
counted AS (
    UPDATE tasks t SET
        pruned_succeeded = t.pruned_succeeded + g.succeeded,
        pruned_failed = t.pruned_failed + g.failed,
        pruned_skipped = t.pruned_skipped + g.skipped
    FROM (SELECT task_uid,
                 count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                 count(*) FILTER (WHERE status = 'failed') AS failed,
                 count(*) FILTER (WHERE status = 'skipped') AS skipped
          FROM gone GROUP BY task_uid) g
    WHERE t.uid = g.task_uid)
SELECT count(*) FROM gone";

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Deletes one batch per table of what `r` does not keep (see the module docs).
    pub async fn prune(&self, r: &Retention) -> Result<Pruned, StoreError> {
        let (runs,): (i64,) = sqlx::query_as(PRUNE_RUNS)
            .bind(secs(r.max_age))
            .bind(r.successful_per_task)
            .bind(r.failed_per_task)
            .bind(r.batch)
            .fetch_one(&self.pool)
            .await?;
        let runs = runs.unsigned_abs();
        let due_work = sqlx::query(
            "DELETE FROM due_work d USING (SELECT id FROM due_work \
                 WHERE done_at < now() - make_interval(secs => $1) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) old WHERE d.id = old.id",
        )
        .bind(secs(r.max_age))
        .bind(r.batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let outbox = sqlx::query(
            "DELETE FROM outbox o USING (SELECT id FROM outbox \
                 WHERE published_at < now() - make_interval(secs => $1) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) old WHERE o.id = old.id",
        )
        .bind(secs(r.outbox_max_age))
        .bind(r.batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let audit = sqlx::query(
            "DELETE FROM audit_log a USING (SELECT id FROM audit_log \
                 WHERE at < now() - make_interval(secs => $1) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) old WHERE a.id = old.id",
        )
        .bind(secs(r.audit_max_age))
        .bind(r.batch)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(Pruned {
            runs,
            due_work,
            outbox,
            audit,
        })
    }
}
