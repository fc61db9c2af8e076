//! The operator's queries for many Tasks at once: what concurrent reconciles read and write,
//! in one statement per step instead of one per Task. At 100,000 Tasks the per-Task round
//! trips (and one commit per Task) were what limited materialization; the operator's
//! coalescer (`ordinaut_operator::coalesce`) hands these functions whatever reconciles are
//! waiting. Each function answers per item and in the order asked; when a shared statement
//! fails (one Task's write breaks a rule), every item is tried again on its own, so only
//! the item at fault gets the error.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::events::insert_events_on;
use crate::task_plans::{
    Applied, OperatorTaskState, PROJECTION_COLUMNS, ReconcileWrite, RunSummary, StaleOccurrence,
};
use crate::tasks::TaskProjection;
use crate::{OutboxEvent, Store, StoreError};

/// What a Task's status is composed from besides the reconcile's own part: its runs and the
/// occurrences the catch-up policy dropped. `missed_total` is `None` for a Task never projected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusSources {
    pub runs: RunSummary,
    pub missed_total: Option<i64>,
    /// Event counters of a Task `on:` an event (`None` before its first event).
    pub events: Option<crate::EventCounts>,
}

#[derive(sqlx::FromRow)]
struct StateRow {
    ord: i64,
    #[sqlx(flatten)]
    projection: TaskProjection,
    deleted: bool,
    handled_run_now: Option<String>,
    missed_total: i64,
    status: Value,
    last_due: Option<DateTime<Utc>>,
    last_manual: Option<DateTime<Utc>>,
    stale_ids: Option<Vec<i64>>,
    stale_at: Option<Vec<DateTime<Utc>>>,
}

#[derive(sqlx::FromRow)]
struct SourcesRow {
    ord: i64,
    missed_total: Option<i64>,
    succeeded: i64,
    failed: i64,
    skipped: i64,
    last_successful_time: Option<DateTime<Utc>>,
    last_run_id: Option<Uuid>,
    last_run_status: Option<String>,
    last_run_time: Option<DateTime<Utc>>,
    ev_received: Option<i64>,
    ev_started: Option<i64>,
    ev_filtered: Option<i64>,
    ev_dropped: Option<i64>,
    ev_last_drop: Option<String>,
    ev_last_event_at: Option<DateTime<Utc>>,
}

impl Store {
    /// [`Store::operator_state`] of many Tasks, each at its own `now`, in one query.
    pub async fn operator_states(
        &self,
        asks: &[(Uuid, DateTime<Utc>)],
    ) -> Vec<Result<Option<OperatorTaskState>, StoreError>> {
        match self.operator_states_once(asks).await {
            Ok(states) => states.into_iter().map(Ok).collect(),
            Err(e) => for_each(e, asks.len()),
        }
    }

    async fn operator_states_once(
        &self,
        asks: &[(Uuid, DateTime<Utc>)],
    ) -> Result<Vec<Option<OperatorTaskState>>, StoreError> {
        let uids: Vec<Uuid> = asks.iter().map(|a| a.0).collect();
        let nows: Vec<DateTime<Utc>> = asks.iter().map(|a| a.1).collect();
        // Stale rows are scheduled before now (their deadline is after their run_at, which is
        // at or after their scheduled time): the bound keeps the index scan to the past.
        let rows: Vec<StateRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT a.ord, {cols}, t.deleted_at IS NOT NULL AS deleted, t.handled_run_now, \
                    t.missed_total, t.status, \
                    (SELECT max(d.scheduled_for) FROM due_work d \
                      WHERE d.task_uid = a.uid AND d.scheduled_for <= a.now) AS last_due, \
                    (SELECT max(d.scheduled_for) FROM due_work d \
                      WHERE d.task_uid = a.uid AND d.trigger = 'manual') AS last_manual, \
                    s.stale_ids, s.stale_at \
             FROM unnest($1::uuid[], $2::timestamptz[]) WITH ORDINALITY AS a(uid, now, ord) \
             JOIN tasks t ON t.uid = a.uid \
             LEFT JOIN LATERAL ( \
                 SELECT array_agg(d.id ORDER BY d.scheduled_for) AS stale_ids, \
                        array_agg(d.scheduled_for ORDER BY d.scheduled_for) AS stale_at \
                 FROM due_work d \
                 WHERE d.task_uid = a.uid AND d.scheduled_for <= a.now \
                   AND d.trigger = 'schedule' AND d.attempt = 0 \
                   AND d.locked_until IS NULL AND d.done_at IS NULL \
                   AND d.start_deadline IS NOT NULL AND d.start_deadline <= a.now) s ON true",
            cols = PROJECTION_COLUMNS
                .split(", ")
                .map(|c| format!("t.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(&uids)
        .bind(&nows)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<Option<OperatorTaskState>> = vec![None; asks.len()];
        for row in rows {
            let stale = row
                .stale_ids
                .unwrap_or_default()
                .into_iter()
                .zip(row.stale_at.unwrap_or_default())
                .map(|(id, scheduled_for)| StaleOccurrence { id, scheduled_for })
                .collect();
            if let Some(slot) = usize::try_from(row.ord - 1)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                *slot = Some(OperatorTaskState {
                    projection: row.projection,
                    deleted: row.deleted,
                    handled_run_now: row.handled_run_now,
                    missed_total: row.missed_total,
                    status: row.status,
                    last_due: row.last_due,
                    last_manual: row.last_manual,
                    stale,
                });
            }
        }
        Ok(out)
    }

    /// [`Store::apply_reconcile`] of many Tasks in one transaction (one commit): each write is
    /// checked on its own (a Task whose plan is out of date gets [`StoreError::Conflict`] and
    /// nothing of it is written), the rest are applied together.
    pub async fn apply_reconciles(
        &self,
        writes: &[ReconcileWrite],
    ) -> Vec<Result<Applied, StoreError>> {
        let mut seen = HashSet::with_capacity(writes.len());
        let unique = writes.iter().all(|w| seen.insert(w.projection.uid));
        if unique {
            match self.apply_together(writes).await {
                Ok(results) => return results,
                Err(e) if writes.len() == 1 => return vec![Err(e)],
                // Lost connection, pool exhausted: trying each alone would not help.
                Err(e) if e.is_transient() => return for_each(e, writes.len()),
                // A deposed leader: none of them may be written.
                Err(e @ StoreError::Fenced { .. }) => return for_each(e, writes.len()),
                Err(e) => {
                    tracing::debug!(error = %e, tasks = writes.len(), "batched apply failed; applying one by one");
                }
            }
        }
        let mut out = Vec::with_capacity(writes.len());
        for w in writes {
            out.push(match self.apply_together(std::slice::from_ref(w)).await {
                Ok(mut r) => r
                    .pop()
                    .unwrap_or_else(|| Err(StoreError::Conflict("no result for the write".into()))),
                Err(e) => Err(e),
            });
        }
        out
    }

    /// One transaction for `writes` (distinct Tasks). `Err` when a shared statement failed
    /// (nothing was written); per-write conflicts are in the returned list.
    async fn apply_together(
        &self,
        writes: &[ReconcileWrite],
    ) -> Result<Vec<Result<Applied, StoreError>>, StoreError> {
        let mut results: Vec<Option<Result<Applied, StoreError>>> =
            (0..writes.len()).map(|_| None).collect();
        let mut tx = self.pool.begin().await?;
        self.check_fence(&mut tx).await?;
        let current = lock_and_check_tasks_on(&mut tx, writes, &mut results).await?;
        check_stale_still_queued_on(&mut tx, writes, &mut results).await?;
        let ok: Vec<&ReconcileWrite> = writes
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_none())
            .map(|(w, _)| w)
            .collect();
        let applied = write_plans_on(&mut tx, &ok, &current).await?;
        tx.commit().await?;
        self.note_inserted(applied.values().map(|a| a.inserted).sum());
        Ok(writes
            .iter()
            .zip(results)
            .map(|(w, r)| {
                r.unwrap_or_else(|| Ok(applied.get(&w.projection.uid).copied().unwrap_or_default()))
            })
            .collect())
    }

    /// The run summary and missed count of many Tasks in one query (see
    /// [`Store::run_summary`]).
    pub async fn status_sources(&self, uids: &[Uuid]) -> Vec<Result<StatusSources, StoreError>> {
        match self.status_sources_once(uids).await {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(e) => for_each(e, uids.len()),
        }
    }

    async fn status_sources_once(&self, uids: &[Uuid]) -> Result<Vec<StatusSources>, StoreError> {
        let rows: Vec<SourcesRow> = sqlx::query_as(
            // Pruned runs still count (tasks.pruned_*, migration 0009).
            "SELECT a.ord, t.missed_total, \
                    c.succeeded + coalesce(t.pruned_succeeded, 0) AS succeeded, \
                    c.failed + coalesce(t.pruned_failed, 0) AS failed, \
                    c.skipped + coalesce(t.pruned_skipped, 0) AS skipped, \
                    c.last_successful_time, l.id AS last_run_id, l.status AS last_run_status, \
                    l.started_at AS last_run_time, \
                    e.received AS ev_received, e.started AS ev_started, \
                    e.filtered AS ev_filtered, e.dropped AS ev_dropped, \
                    e.last_drop AS ev_last_drop, e.last_event_at AS ev_last_event_at \
             FROM unnest($1::uuid[]) WITH ORDINALITY AS a(uid, ord) \
             LEFT JOIN tasks t ON t.uid = a.uid \
             LEFT JOIN task_event_counts e ON e.task_uid = a.uid \
             CROSS JOIN LATERAL ( \
                 SELECT count(*) FILTER (WHERE r.status = 'succeeded') AS succeeded, \
                        count(*) FILTER (WHERE r.status = 'failed') AS failed, \
                        count(*) FILTER (WHERE r.status = 'skipped') AS skipped, \
                        max(r.finished_at) FILTER (WHERE r.status = 'succeeded') \
                            AS last_successful_time \
                 FROM task_runs r WHERE r.task_uid = a.uid) c \
             LEFT JOIN LATERAL ( \
                 SELECT r.id, r.status, r.started_at FROM task_runs r \
                 WHERE r.task_uid = a.uid \
                 ORDER BY r.started_at DESC, r.finished_at DESC LIMIT 1) l ON true",
        )
        .bind(uids)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![StatusSources::default(); uids.len()];
        for row in rows {
            if let Some(slot) = usize::try_from(row.ord - 1)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                *slot = StatusSources {
                    runs: RunSummary {
                        last_run_time: row.last_run_time,
                        last_run_status: row.last_run_status,
                        last_run_id: row.last_run_id,
                        last_successful_time: row.last_successful_time,
                        succeeded: row.succeeded,
                        failed: row.failed,
                        skipped: row.skipped,
                    },
                    missed_total: row.missed_total,
                    events: row.ev_received.map(|received| crate::EventCounts {
                        received,
                        started: row.ev_started.unwrap_or(0),
                        filtered: row.ev_filtered.unwrap_or(0),
                        dropped: row.ev_dropped.unwrap_or(0),
                        last_drop: row.ev_last_drop.clone(),
                        last_event_at: row.ev_last_event_at,
                    }),
                };
            }
        }
        Ok(out)
    }
}

/// One failure of a shared statement, as the answer to each of `n` items (the first gets the
/// error itself; the others a copy that keeps its message and whether it is transient).
fn for_each<T>(e: StoreError, n: usize) -> Vec<Result<T, StoreError>> {
    let copy = || match &e {
        StoreError::Database(sqlx::Error::PoolTimedOut) => {
            StoreError::Database(sqlx::Error::PoolTimedOut)
        }
        StoreError::Database(sqlx::Error::PoolClosed) => {
            StoreError::Database(sqlx::Error::PoolClosed)
        }
        StoreError::Database(sqlx::Error::Io(io)) => StoreError::Database(sqlx::Error::Io(
            std::io::Error::new(io.kind(), io.to_string()),
        )),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Fenced { held, current } => StoreError::Fenced {
            held: *held,
            current: *current,
        },
        other => StoreError::Database(sqlx::Error::Protocol(other.to_string())),
    };
    if n == 0 {
        return Vec::new();
    }
    let mut out: Vec<Result<T, StoreError>> = (1..n).map(|_| Err(copy())).collect();
    out.insert(0, Err(e));
    out
}

/// A write's result so far in `Store::apply_together`: `None` while it may still be applied.
type Pending = Option<Result<Applied, StoreError>>;

/// Locks the Tasks' rows in uid order (concurrent batches never deadlock) and marks as a
/// conflict each write whose Task was materialized further since its plan was read. Returns
/// each existing Task's `materialized_until` (a Task absent from it has no row yet).
async fn lock_and_check_tasks_on(
    conn: &mut sqlx::PgConnection,
    writes: &[ReconcileWrite],
    results: &mut [Pending],
) -> Result<HashMap<Uuid, Option<DateTime<Utc>>>, StoreError> {
    let uids: Vec<Uuid> = writes.iter().map(|w| w.projection.uid).collect();
    let current: HashMap<Uuid, Option<DateTime<Utc>>> =
        sqlx::query_as::<_, (Uuid, Option<DateTime<Utc>>)>(
            "SELECT uid, materialized_until FROM tasks WHERE uid = ANY($1) ORDER BY uid FOR UPDATE",
        )
        .bind(&uids)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    for (w, result) in writes.iter().zip(results.iter_mut()) {
        let uid = w.projection.uid;
        let now_at = current.get(&uid).copied().flatten();
        if now_at != w.prior_materialized_until {
            *result = Some(Err(StoreError::Conflict(format!(
                "task {uid}: materialized up to {now_at:?}, the plan assumed {:?}; reconcile again",
                w.prior_materialized_until
            ))));
        }
    }
    Ok(current)
}

/// Locks the stale occurrences the catch-up policy handled and marks as a conflict each
/// still-pending write of which one is no longer queued (leased or done meanwhile).
async fn check_stale_still_queued_on(
    conn: &mut sqlx::PgConnection,
    writes: &[ReconcileWrite],
    results: &mut [Pending],
) -> Result<(), StoreError> {
    let stale: Vec<i64> = writes
        .iter()
        .zip(results.iter())
        .filter(|(_, r)| r.is_none())
        .flat_map(|(w, _)| w.drop_stale.iter().copied())
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let still: HashSet<(Uuid, i64)> = sqlx::query_as::<_, (Uuid, i64)>(
        "SELECT task_uid, id FROM due_work WHERE id = ANY($1) \
           AND attempt = 0 AND locked_until IS NULL AND done_at IS NULL \
         ORDER BY id FOR UPDATE",
    )
    .bind(&stale)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    for (w, result) in writes.iter().zip(results.iter_mut()) {
        let uid = w.projection.uid;
        let gone = w
            .drop_stale
            .iter()
            .filter(|id| !still.contains(&(uid, **id)))
            .count();
        if result.is_none() && gone > 0 {
            *result = Some(Err(StoreError::Conflict(format!(
                "task {uid}: {gone} of {} stale occurrences changed meanwhile; reconcile again",
                w.drop_stale.len()
            ))));
        }
    }
    Ok(())
}

/// Writes the checked plans `ok`: projections, withdrawals, dropped stale occurrences, new
/// occurrences and events. `current` is [`lock_and_check_tasks_on`]'s answer.
async fn write_plans_on(
    conn: &mut sqlx::PgConnection,
    ok: &[&ReconcileWrite],
    current: &HashMap<Uuid, Option<DateTime<Utc>>>,
) -> Result<HashMap<Uuid, Applied>, StoreError> {
    let mut applied: HashMap<Uuid, Applied> = HashMap::with_capacity(ok.len());
    if ok.is_empty() {
        return Ok(applied);
    }
    upsert_projections_on(conn, ok).await?;
    for (uid, n) in withdraw_many_on(conn, ok).await? {
        applied.entry(uid).or_default().withdrawn = n;
    }
    for (uid, n) in drop_stale_on(conn, ok).await? {
        applied.entry(uid).or_default().dropped = n;
    }
    // A Task without a row had no occurrences either (a trigger holds every
    // occurrence to an existing Task; deleting one removes its occurrences): its rows
    // go in without the conflict check, which was 14 % of PostgreSQL's time in the
    // initial sync (perf). Were one there after all (the same new Task applied by two
    // operators at once), the unique key refuses the batch and each write is retried
    // alone, that one as a conflict.
    let (new_tasks, known): (Vec<&ReconcileWrite>, Vec<&ReconcileWrite>) = ok
        .iter()
        .partition(|w| !current.contains_key(&w.projection.uid));
    for (rows, check) in [(new_tasks, false), (known, true)] {
        for (uid, n) in insert_planned_many_on(conn, &rows, check).await? {
            applied.entry(uid).or_default().inserted = n;
        }
    }
    let events: Vec<(Option<Uuid>, &OutboxEvent)> = ok
        .iter()
        .flat_map(|w| w.events.iter().map(|e| (Some(w.projection.uid), e)))
        .collect();
    insert_events_on(conn, &events).await?;
    Ok(applied)
}

/// Deletes the stale occurrences the catch-up policy dropped; the count per Task.
async fn drop_stale_on(
    conn: &mut sqlx::PgConnection,
    ok: &[&ReconcileWrite],
) -> Result<Vec<(Uuid, u64)>, StoreError> {
    let drop: Vec<i64> = ok
        .iter()
        .flat_map(|w| w.drop_stale.iter().copied())
        .collect();
    if drop.is_empty() {
        return Ok(Vec::new());
    }
    let dropped: Vec<(Uuid, i64)> = sqlx::query_as(
        // Re-checked in the statement too: only never-leased, queued rows go.
        "WITH gone AS (DELETE FROM due_work WHERE id = ANY($1) \
             AND attempt = 0 AND locked_until IS NULL AND done_at IS NULL \
             RETURNING task_uid) \
         SELECT task_uid, count(*) FROM gone GROUP BY task_uid",
    )
    .bind(&drop)
    .fetch_all(&mut *conn)
    .await?;
    Ok(dropped
        .into_iter()
        .map(|(uid, n)| (uid, n.unsigned_abs()))
        .collect())
}

/// Upserts the projections, the reconcile-owned status mirror, the missed count and the
/// handled run-now value of `writes` in one statement, in uid order.
async fn upsert_projections_on(
    conn: &mut sqlx::PgConnection,
    writes: &[&ReconcileWrite],
) -> Result<(), StoreError> {
    let mut sorted: Vec<&ReconcileWrite> = writes.to_vec();
    sorted.sort_by_key(|w| w.projection.uid);
    let n = sorted.len();
    let mut uid = Vec::with_capacity(n);
    let mut namespace = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(n);
    let mut generation = Vec::with_capacity(n);
    let mut spec = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut schedule = Vec::with_capacity(n);
    let mut timezone = Vec::with_capacity(n);
    let mut next_run_at = Vec::with_capacity(n);
    let mut materialized_until = Vec::with_capacity(n);
    let mut suspended = Vec::with_capacity(n);
    let mut snooze_until = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut policy = Vec::with_capacity(n);
    let mut missed = Vec::with_capacity(n);
    let mut handled = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    for w in sorted {
        let p = &w.projection;
        uid.push(p.uid);
        namespace.push(p.namespace.as_str());
        name.push(p.name.as_str());
        generation.push(p.generation);
        spec.push(&p.spec);
        kind.push(p.schedule_kind.as_str());
        schedule.push(p.schedule.as_str());
        timezone.push(p.timezone.as_str());
        next_run_at.push(p.next_run_at);
        materialized_until.push(p.materialized_until);
        suspended.push(p.suspended);
        snooze_until.push(p.snooze_until);
        priority.push(p.priority);
        policy.push(p.concurrency_policy.as_str());
        missed.push(w.missed);
        handled.push(w.handled_run_now.as_deref());
        status.push(&w.status);
    }
    sqlx::query(
        "INSERT INTO tasks (uid, namespace, name, generation, spec, schedule_kind, schedule, \
                 timezone, next_run_at, materialized_until, suspended, snooze_until, priority, \
                 concurrency_policy, missed_total, handled_run_now, status) \
         SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::jsonb[], \
                 $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], \
                 $11::bool[], $12::timestamptz[], $13::int4[], $14::text[], $15::int8[], \
                 $16::text[], $17::jsonb[]) \
         ON CONFLICT (uid) DO UPDATE SET \
             namespace = EXCLUDED.namespace, name = EXCLUDED.name, \
             generation = EXCLUDED.generation, spec = EXCLUDED.spec, \
             schedule_kind = EXCLUDED.schedule_kind, schedule = EXCLUDED.schedule, \
             timezone = EXCLUDED.timezone, next_run_at = EXCLUDED.next_run_at, \
             materialized_until = EXCLUDED.materialized_until, \
             suspended = EXCLUDED.suspended, snooze_until = EXCLUDED.snooze_until, \
             priority = EXCLUDED.priority, concurrency_policy = EXCLUDED.concurrency_policy, \
             missed_total = tasks.missed_total + EXCLUDED.missed_total, \
             handled_run_now = coalesce(EXCLUDED.handled_run_now, tasks.handled_run_now), \
             status = EXCLUDED.status, updated_at = now(), deleted_at = NULL",
    )
    .bind(&uid)
    .bind(&namespace)
    .bind(&name)
    .bind(&generation)
    .bind(&spec)
    .bind(&kind)
    .bind(&schedule)
    .bind(&timezone)
    .bind(&next_run_at)
    .bind(&materialized_until)
    .bind(&suspended)
    .bind(&snooze_until)
    .bind(&priority)
    .bind(&policy)
    .bind(&missed)
    .bind(&handled)
    .bind(&status)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Withdraws, per write that asks for it, the queued non-manual occurrences scheduled after
/// its `withdraw_after`. Returns how many went per Task.
async fn withdraw_many_on(
    conn: &mut sqlx::PgConnection,
    writes: &[&ReconcileWrite],
) -> Result<Vec<(Uuid, u64)>, StoreError> {
    let (uids, afters): (Vec<Uuid>, Vec<DateTime<Utc>>) = writes
        .iter()
        .filter_map(|w| w.withdraw_after.map(|a| (w.projection.uid, a)))
        .unzip();
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(
        "WITH gone AS ( \
             DELETE FROM due_work d USING unnest($1::uuid[], $2::timestamptz[]) AS w(uid, after) \
             WHERE d.task_uid = w.uid AND d.scheduled_for > w.after AND d.trigger <> 'manual' \
               AND d.locked_until IS NULL AND d.done_at IS NULL \
             RETURNING d.task_uid) \
         SELECT task_uid, count(*) FROM gone GROUP BY task_uid",
    )
    .bind(&uids)
    .bind(&afters)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(u, n)| (u, n.unsigned_abs()))
        .collect())
}

/// Inserts every write's occurrences in one statement; with `check`, existing ones are left
/// alone, without it one that exists fails the statement. Returns how many were new per Task.
async fn insert_planned_many_on(
    conn: &mut sqlx::PgConnection,
    writes: &[&ReconcileWrite],
    check: bool,
) -> Result<Vec<(Uuid, u64)>, StoreError> {
    let n: usize = writes.iter().map(|w| w.occurrences.len()).sum();
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut tasks = Vec::with_capacity(n);
    let mut scheduled = Vec::with_capacity(n);
    let mut run_at = Vec::with_capacity(n);
    let mut priority = Vec::with_capacity(n);
    let mut trigger = Vec::with_capacity(n);
    let mut payload = Vec::with_capacity(n);
    let mut deadline = Vec::with_capacity(n);
    for p in writes.iter().flat_map(|w| w.occurrences.iter()) {
        let o = &p.occurrence;
        tasks.push(o.task_uid);
        scheduled.push(o.scheduled_for);
        run_at.push(o.run_at);
        priority.push(o.priority);
        trigger.push(o.trigger.as_str());
        // An empty payload goes as NULL (the column's default): PostgreSQL then parses no
        // JSON for the common case.
        payload.push(Some(&o.payload).filter(|v| v.as_object().is_none_or(|m| !m.is_empty())));
        deadline.push(p.start_deadline);
    }
    const PLAIN: &str = "WITH new AS ( \
             INSERT INTO due_work (task_uid, scheduled_for, run_at, priority, trigger, payload, \
                                   start_deadline) \
             SELECT u, s, r, p, t, coalesce(pl, '{}'::jsonb), d \
             FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int4[], \
                         $5::text[], $6::jsonb[], $7::timestamptz[]) AS x(u, s, r, p, t, pl, d) \
             RETURNING task_uid) \
         SELECT task_uid, count(*) FROM new GROUP BY task_uid";
    const SKIP_EXISTING: &str = "WITH new AS ( \
             INSERT INTO due_work (task_uid, scheduled_for, run_at, priority, trigger, payload, \
                                   start_deadline) \
             SELECT u, s, r, p, t, coalesce(pl, '{}'::jsonb), d \
             FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::int4[], \
                         $5::text[], $6::jsonb[], $7::timestamptz[]) AS x(u, s, r, p, t, pl, d) \
             ON CONFLICT (task_uid, scheduled_for, trigger) DO NOTHING \
             RETURNING task_uid) \
         SELECT task_uid, count(*) FROM new GROUP BY task_uid";
    let rows: Vec<(Uuid, i64)> = sqlx::query_as(if check { SKIP_EXISTING } else { PLAIN })
        .bind(&tasks)
        .bind(&scheduled)
        .bind(&run_at)
        .bind(&priority)
        .bind(&trigger)
        .bind(&payload)
        .bind(&deadline)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(u, n)| (u, n.unsigned_abs()))
        .collect())
}
