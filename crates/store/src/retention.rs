//! History retention: finished runs (with their steps), finished occurrences, relayed outbox
//! events and audit entries are pruned by age, and runs also by count per Task (the Task's
//! `successfulRunsHistoryLimit` / `failedRunsHistoryLimit`, else the defaults here) and by
//! the Task's own age limit (`runsHistoryMaxAge`, when shorter than the global one).
//! Every statement reads through an index what it deletes (migration 0014), never a whole
//! table. Each call
//! deletes at most one small batch per table, each in its own short statement that skips
//! rows locked by others, so pruning never holds long locks or blocks leasing; callers loop
//! while there is more to do.

use crate::{Store, StoreError};
use std::time::Duration;
use uuid::Uuid;

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

/// Deletes the runs `doomed` selects (locking them, skipping rows others hold), with their
/// steps (held in the run record since migration 0015); the
/// Task's status counters keep counting them (`tasks.pruned_*`, migration 0009).
macro_rules! prune_runs {
    ($doomed:literal) => {
        concat!(
            "WITH doomed AS (SELECT r.id FROM task_runs r WHERE r.id IN (",
            $doomed,
            ") FOR UPDATE OF r SKIP LOCKED),
gone AS (DELETE FROM task_runs r USING doomed WHERE r.id = doomed.id
          RETURNING r.id, r.task_uid, r.status),
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
SELECT count(*) FROM gone"
        )
    };
}

/// Runs older than the global age (index `task_runs_finished`, migration 0014).
/// `$1` seconds, `$2` batch.
const PRUNE_OLD_RUNS: &str = prune_runs!(
    "SELECT id FROM task_runs WHERE finished_at < now() - make_interval(secs => $1) \
     ORDER BY finished_at LIMIT $2"
);

/// Runs older than their Task's `runsHistoryMaxAge` (the Tasks that set it, through the
/// partial index `tasks_runs_history_max_age`; each Task's runs through
/// `task_runs_task_finished`). A value not of the CRD's form limits nothing. `$1` batch.
const PRUNE_RUNS_PAST_TASK_AGE: &str = prune_runs!(
    "SELECT o.id FROM tasks t CROSS JOIN LATERAL ( \
         SELECT r.id FROM task_runs r WHERE r.task_uid = t.uid \
         AND r.finished_at < now() - CASE WHEN t.spec->>'runsHistoryMaxAge' \
             ~ '^([0-9]{1,6}[wdhms]){1,5}$' THEN (t.spec->>'runsHistoryMaxAge')::interval END \
         ORDER BY r.finished_at LIMIT $1) o \
     WHERE t.spec ? 'runsHistoryMaxAge' LIMIT $1"
);

/// Runs beyond the count limits of the Tasks in one window of the `tasks` table (uids after
/// `$1`, at most `$5` of them): per Task and outcome class, the newest `keep` runs are
/// skipped in `task_runs_task_finished` and the rest taken. `$2`/`$3` the default limits,
/// `$4` batch.
const PRUNE_RUNS_PAST_COUNT: &str = prune_runs!(
    "SELECT o.id FROM (SELECT uid, spec FROM tasks WHERE uid > $1 ORDER BY uid LIMIT $5) t \
     CROSS JOIN LATERAL (VALUES \
         (true, coalesce((t.spec->>'successfulRunsHistoryLimit')::int8, $2)), \
         (false, coalesce((t.spec->>'failedRunsHistoryLimit')::int8, $3))) k(ok, keep) \
     CROSS JOIN LATERAL (SELECT r.id FROM task_runs r \
         WHERE r.task_uid = t.uid AND (r.status = 'succeeded') = k.ok \
         ORDER BY r.finished_at DESC OFFSET k.keep LIMIT $4) o \
     LIMIT $4"
);

/// Tasks whose count limits one [`Store::prune`] call checks; the window moves on by this
/// much each call and wraps around, so a call costs the same at 100 or 100,000 Tasks.
pub const TASKS_PER_CALL: i64 = 500;

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Deletes one batch per table of what `r` does not keep (see the module docs).
    pub async fn prune(&self, r: &Retention) -> Result<Pruned, StoreError> {
        let runs = self.prune_runs(r).await?;
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
            "DELETE FROM outbox_rows o USING (SELECT id FROM outbox_rows \
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

impl Store {
    /// One batch of runs past the global age, a Task's own age or its count limits (the
    /// latter over the next window of Tasks; see [`TASKS_PER_CALL`]).
    async fn prune_runs(&self, r: &Retention) -> Result<u64, StoreError> {
        let (old,): (i64,) = sqlx::query_as(PRUNE_OLD_RUNS)
            .bind(secs(r.max_age))
            .bind(r.batch)
            .fetch_one(&self.pool)
            .await?;
        let (aged,): (i64,) = sqlx::query_as(PRUNE_RUNS_PAST_TASK_AGE)
            .bind(r.batch)
            .fetch_one(&self.pool)
            .await?;
        let from = *self
            .prune_cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window: (i64, Option<Uuid>) = sqlx::query_as(
            "SELECT count(*), (array_agg(uid ORDER BY uid DESC))[1] FROM \
                 (SELECT uid FROM tasks WHERE uid > $1 ORDER BY uid LIMIT $2) w",
        )
        .bind(from)
        .bind(TASKS_PER_CALL)
        .fetch_one(&self.pool)
        .await?;
        let (counted,): (i64,) = sqlx::query_as(PRUNE_RUNS_PAST_COUNT)
            .bind(from)
            .bind(r.successful_per_task)
            .bind(r.failed_per_task)
            .bind(r.batch)
            .bind(TASKS_PER_CALL)
            .fetch_one(&self.pool)
            .await?;
        // A full batch: this window again next time; a short window: start over.
        let next = match window {
            _ if counted >= r.batch => from,
            (n, Some(last)) if n >= TASKS_PER_CALL => last,
            _ => Uuid::nil(),
        };
        *self
            .prune_cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next;
        Ok((old + aged + counted).unsigned_abs())
    }
}
