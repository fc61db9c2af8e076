//! Leasing due work: take, keep (heartbeat), hand back and reap expired leases.

use crate::occurrences::Trigger;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// One occurrence held by a worker until `locked_until`, at `attempt`.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub id: i64,
    pub task_uid: Uuid,
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    /// The task's normalized spec at lease time.
    pub spec: Value,
    pub scheduled_for: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub priority: i32,
    /// 1 for the first lease of this occurrence, +1 for every lease after.
    pub attempt: i32,
    pub trigger: Trigger,
    pub payload: Value,
    pub locked_until: DateTime<Utc>,
    pub leased_at: DateTime<Utc>,
}

/// A lease still held after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub id: i64,
    /// A `Replace` run asked for this run to stop: cancel it and record it as cancelled.
    pub cancel_requested: bool,
    /// Time left on the lease after this heartbeat, by the database's clock (zero when it
    /// has expired but was not reaped yet). The holder's self-fencing deadline starts from it.
    pub remaining: Duration,
}

/// What [`Store::begin_run`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunDecision {
    /// Nothing else is active (or the policy allows overlap): run.
    Run,
    /// `Forbid`: another run of the task is active (these due_work ids); skip this one.
    Skip { active: Vec<i64> },
    /// `Replace`: these active runs were asked to cancel; run this one.
    Replaced { cancelled: Vec<i64> },
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    id: i64,
    task_uid: Uuid,
    namespace: String,
    name: String,
    generation: i64,
    spec: Value,
    scheduled_for: DateTime<Utc>,
    run_at: DateTime<Utc>,
    priority: i32,
    attempt: i32,
    trigger: String,
    payload: Value,
    locked_until: DateTime<Utc>,
    leased_at: DateTime<Utc>,
}

/// The lease statement (public so its plan can be checked). A first attempt past its
/// `start_deadline` is not taken: the operator's catch-up policy decides whether it runs
/// (migration 0002, `operator` module); retries (attempt > 0) and rows without a deadline
/// are unaffected. The CTEs' `FOR UPDATE SKIP LOCKED` skips rows another worker is
/// taking at this moment; the outer `UPDATE` re-checks `locked_until IS NULL`, so a row can
/// never be handed to two workers.
///
/// Two lanes, each in priority then `run_at` order. The on-time lane: first attempts of
/// scheduled occurrences due within the last second or the next `$4` seconds (the caller's
/// lookahead: such a lease is taken early and started at its time, see
/// [`Store::lease_ahead`]); it takes up to three
/// quarters of the batch (all of a batch under 4). The rest of the batch comes from
/// everything due (the backlog: overdue, manual, event, catch-up, retried occurrences), so
/// an overdue backlog never delays occurrences at their time by more than its share, and
/// the backlog is never starved: it gets at least a quarter of every batch of 4 or more,
/// and everything the on-time lane leaves.
pub const LEASE_SQL: &str = "\
WITH on_time AS (
    SELECT id FROM due_work
    WHERE locked_until IS NULL AND done_at IS NULL
      AND run_at <= now() + make_interval(secs => $4)
      AND run_at > now() - interval '1 second'
      AND trigger = 'schedule' AND attempt = 0
      AND (start_deadline IS NULL OR start_deadline > now())
    ORDER BY priority DESC, run_at
    LIMIT $2 - $2 / 4
    FOR UPDATE SKIP LOCKED
), backlog AS (
    SELECT id FROM due_work
    WHERE locked_until IS NULL AND done_at IS NULL AND run_at <= now()
      AND (start_deadline IS NULL OR attempt > 0 OR start_deadline > now())
      AND id NOT IN (SELECT id FROM on_time)
    ORDER BY priority DESC, run_at
    LIMIT $2 - (SELECT count(*) FROM on_time)
    FOR UPDATE SKIP LOCKED
)
UPDATE due_work d
SET locked_until = now() + make_interval(secs => $3),
    locked_by = $1,
    leased_at = now(),
    attempt = d.attempt + 1
FROM tasks t
WHERE d.id = ANY (ARRAY(SELECT id FROM on_time UNION ALL SELECT id FROM backlog))
  AND t.uid = d.task_uid AND d.locked_until IS NULL
RETURNING d.id, d.task_uid, t.namespace, t.name, t.generation, t.spec, d.scheduled_for,
          d.run_at, d.priority, d.attempt, d.trigger, d.payload, d.locked_until, d.leased_at";

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Store {
    /// Leases up to `limit` due, queued occurrences for `worker`, in priority then `run_at`
    /// order within the on-time lane and the backlog (see [`LEASE_SQL`]), for `lease_for`.
    /// One statement; rows other workers are taking are skipped, not waited for. Each
    /// returned lease has its new attempt number.
    pub async fn lease(
        &self,
        worker: &str,
        limit: i64,
        lease_for: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        self.lease_ahead(worker, limit, lease_for, Duration::ZERO)
            .await
    }

    /// [`Store::lease`], also taking first attempts of scheduled occurrences due within the
    /// next `lookahead` (in the on-time lane): a burst of occurrences due on one instant is
    /// then leased before it and each can start at its time instead of waiting for the lease
    /// statements that take the rest. The caller starts such a lease no earlier than its
    /// `run_at`.
    pub async fn lease_ahead(
        &self,
        worker: &str,
        limit: i64,
        lease_for: Duration,
        lookahead: Duration,
    ) -> Result<Vec<Lease>, StoreError> {
        let rows: Vec<LeaseRow> = sqlx::query_as(LEASE_SQL)
            .bind(worker)
            .bind(limit)
            .bind(secs(lease_for))
            .bind(secs(lookahead))
            .fetch_all(&self.pool)
            .await?;
        let mut leases: Vec<Lease> = rows
            .into_iter()
            .map(|r| Lease {
                id: r.id,
                task_uid: r.task_uid,
                namespace: r.namespace,
                name: r.name,
                generation: r.generation,
                spec: r.spec,
                scheduled_for: r.scheduled_for,
                run_at: r.run_at,
                priority: r.priority,
                attempt: r.attempt,
                // The column has a CHECK constraint; an unknown value means a newer schema.
                trigger: Trigger::parse(&r.trigger).unwrap_or(Trigger::Schedule),
                payload: r.payload,
                locked_until: r.locked_until,
                leased_at: r.leased_at,
            })
            .collect();
        // UPDATE … RETURNING gives no order guarantee; hand work out in lease order.
        leases.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)));
        Ok(leases)
    }

    /// Extends the leases `worker` still holds among `held` (pairs of id and attempt) by
    /// `lease_for`. Returns the leases still held, each with whether another run asked for it
    /// to be cancelled (`concurrencyPolicy: Replace`). A missing id means the lease was lost
    /// (reaped and perhaps leased again) and its result will be refused.
    pub async fn heartbeat(
        &self,
        worker: &str,
        held: &[(i64, i32)],
        lease_for: Duration,
    ) -> Result<Vec<Held>, StoreError> {
        self.heartbeat_within(worker, held, lease_for, Duration::from_secs(1 << 30))
            .await
    }

    /// Like [`Store::heartbeat`], but writes only the leases that expire within
    /// `renew_within` and are not locked at this moment; every lease still held is reported
    /// either way. A worker's heartbeat thus leaves fresh leases alone (short runs never cost
    /// a heartbeat write) and never waits for a row its own recorder is finishing: waiting
    /// there, in id order, made the heartbeat chase one result batch after another and stall
    /// the recorder behind it for a second at a time under load. Pass a `renew_within` that
    /// leaves at least one heartbeat interval of slack (the worker uses `lease_for` minus
    /// half an interval), so a row skipped once is extended at the next heartbeat.
    pub async fn heartbeat_within(
        &self,
        worker: &str,
        held: &[(i64, i32)],
        lease_for: Duration,
        renew_within: Duration,
    ) -> Result<Vec<Held>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, attempts): (Vec<i64>, Vec<i32>) = held.iter().copied().unzip();
        let still: Vec<(i64, bool, f64)> = sqlx::query_as(
            // Rows are locked in id order (as every multi-row write here does). The UPDATE
            // re-checks holder and state on the row's newest version, so a row finished or
            // reaped after this statement's snapshot is left alone.
            "WITH mine AS ( \
                 SELECT d.id, d.cancel_requested, d.locked_until FROM due_work d \
                 JOIN unnest($3::int8[], $4::int4[]) AS h(id, attempt) \
                   ON d.id = h.id AND d.attempt = h.attempt \
                 WHERE d.locked_by = $1 AND d.done_at IS NULL), \
             expiring AS ( \
                 SELECT d.id FROM due_work d JOIN mine ON d.id = mine.id \
                 WHERE mine.locked_until < now() + make_interval(secs => $5) \
                 ORDER BY d.id FOR UPDATE OF d SKIP LOCKED), \
             extended AS ( \
                 UPDATE due_work d SET locked_until = now() + make_interval(secs => $2) \
                 FROM expiring WHERE d.id = expiring.id \
                   AND d.locked_by = $1 AND d.done_at IS NULL \
                 RETURNING d.id, d.locked_until) \
             SELECT mine.id, mine.cancel_requested, \
                 greatest(extract(epoch FROM \
                     coalesce(extended.locked_until, mine.locked_until) - now()), 0)::float8 \
             FROM mine LEFT JOIN extended ON extended.id = mine.id",
        )
        .bind(worker)
        .bind(secs(lease_for))
        .bind(&ids)
        .bind(&attempts)
        .bind(secs(renew_within))
        .fetch_all(&self.pool)
        .await?;
        Ok(still
            .into_iter()
            .map(|(id, cancel_requested, remaining)| Held {
                id,
                cancel_requested,
                remaining: Duration::try_from_secs_f64(remaining).unwrap_or_default(),
            })
            .collect())
    }

    /// Decides, under `concurrencyPolicy`, whether the leased run `(id, attempt)` of
    /// `task_uid` may start, and marks it running. Serialized per task (the `tasks` row is
    /// locked for the decision), so two workers can never both see "nothing active".
    /// `Allow` runs need not call this.
    pub async fn begin_run(
        &self,
        id: i64,
        attempt: i32,
        task_uid: Uuid,
        policy: &str,
    ) -> Result<RunDecision, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM tasks WHERE uid = $1 FOR UPDATE")
            .bind(task_uid)
            .execute(&mut *tx)
            .await?;
        let active: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM due_work \
             WHERE task_uid = $1 AND id <> $2 AND running_since IS NOT NULL \
               AND done_at IS NULL AND locked_until > now()",
        )
        .bind(task_uid)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let active: Vec<i64> = active.into_iter().map(|(i,)| i).collect();
        let decision = match policy {
            "Forbid" if !active.is_empty() => RunDecision::Skip { active },
            "Replace" if !active.is_empty() => {
                sqlx::query(
                    "WITH a AS (SELECT id FROM due_work WHERE id = ANY($1) ORDER BY id FOR UPDATE) \
                     UPDATE due_work d SET cancel_requested = true FROM a WHERE d.id = a.id",
                )
                .bind(&active)
                .execute(&mut *tx)
                .await?;
                RunDecision::Replaced { cancelled: active }
            }
            _ => RunDecision::Run,
        };
        if !matches!(decision, RunDecision::Skip { .. }) {
            let marked = sqlx::query(
                "UPDATE due_work SET running_since = now() \
                 WHERE id = $1 AND attempt = $2 AND done_at IS NULL",
            )
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if marked == 0 {
                let current: Option<(i32,)> =
                    sqlx::query_as("SELECT attempt FROM due_work WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match current {
                    Some((current,)) => StoreError::StaleAttempt {
                        id,
                        attempt,
                        current,
                    },
                    None => StoreError::NotFound {
                        what: format!("due_work {id}"),
                    },
                });
            }
        }
        tx.commit().await?;
        Ok(decision)
    }

    /// Hands leases back to the queue without running them (a draining worker). They become
    /// leasable at once; their next lease is attempt + 1. Returns how many were released.
    pub async fn release(&self, worker: &str, held: &[(i64, i32)]) -> Result<u64, StoreError> {
        if held.is_empty() {
            return Ok(0);
        }
        let (ids, attempts): (Vec<i64>, Vec<i32>) = held.iter().copied().unzip();
        let result = sqlx::query(
            "WITH mine AS ( \
                 SELECT d.id FROM due_work d \
                 JOIN unnest($2::int8[], $3::int4[]) AS h(id, attempt) \
                   ON d.id = h.id AND d.attempt = h.attempt \
                 WHERE d.locked_by = $1 AND d.done_at IS NULL \
                 ORDER BY d.id FOR UPDATE OF d) \
             UPDATE due_work d SET locked_until = NULL, locked_by = NULL \
             FROM mine WHERE d.id = mine.id",
        )
        .bind(worker)
        .bind(&ids)
        .bind(&attempts)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Returns every lease whose `locked_until` has passed to the queue (its holder is gone
    /// or stuck). Returns the number reclaimed, for the `lease reclaims` metric.
    pub async fn reap_expired(&self) -> Result<u64, StoreError> {
        self.reap_expired_after_restart(Duration::ZERO).await
    }

    /// Like [`Store::reap_expired`], but reaps nothing until the server has been up for
    /// `grace`. Every lease expires while PostgreSQL is down; the grace (a worker passes its
    /// lease duration) lets the live holders heartbeat or write the results they kept in
    /// memory first, so no finished run is started again because its record was delayed.
    pub async fn reap_expired_after_restart(&self, grace: Duration) -> Result<u64, StoreError> {
        let result = sqlx::query(
            // SKIP LOCKED: a row locked right now is being finished or extended by its holder.
            "WITH expired AS ( \
                 SELECT id FROM due_work WHERE locked_until < now() AND done_at IS NULL \
                   AND now() > pg_postmaster_start_time() + make_interval(secs => $1) \
                 ORDER BY id FOR UPDATE SKIP LOCKED) \
             UPDATE due_work d SET locked_until = NULL, locked_by = NULL \
             FROM expired WHERE d.id = expired.id",
        )
        .bind(secs(grace))
        .execute(&self.pool)
        .await?;
        if result.rows_affected() > 0 {
            tracing::info!(reclaimed = result.rows_affected(), "reaped expired leases");
        }
        Ok(result.rows_affected())
    }

    /// Queued occurrences that are due now (the `queue depth` metric).
    pub async fn queue_depth(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM due_work \
             WHERE locked_until IS NULL AND done_at IS NULL AND run_at <= now()",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// The earliest `run_at` of any queued occurrence, due or not: how long an idle worker
    /// may sleep.
    pub async fn earliest_queued(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (at,): (Option<DateTime<Utc>>,) = sqlx::query_as(
            "SELECT min(run_at) FROM due_work WHERE locked_until IS NULL AND done_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(at)
    }
}
