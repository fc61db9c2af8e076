//! Agent budgets where runs start (migration 0008): a leased occurrence of a Task whose Agent
//! has `spec.budgets` runs only if the agent is under `concurrentRuns` (runs going now) and
//! `runsPerHour` (runs started in the sliding hour before now), across every worker.
//!
//! Leasing itself is unchanged, so work without a budgeted agent costs nothing more (no
//! statement is added when no leased Task names an Agent). Leases that name one are admitted
//! in one transaction per batch that locks each agent's `agents` row: admissions of one agent
//! are serialized across workers, and the counts they read are exact. An occurrence over budget
//! waits: it is handed back to the queue at its attempt (the lease never happened, as far as
//! anyone can see) with `run_at` moved to when it may be tried again and `waiting_reason` set,
//! so other work goes ahead of it. The first wait of an occurrence is counted on the Agent's
//! row, published as a `run.budget_wait` event and written to `audit_log`.

use crate::events::{OutboxEvent, insert_events_on};
use crate::lease::Lease;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;

/// How soon an occurrence waiting for `concurrentRuns` is tried again. Runs of the agent
/// that finish free a slot at any moment; a waiting occurrence notices within this.
pub const CONCURRENCY_RECHECK: Duration = Duration::from_millis(500);

/// An occurrence handed back to the queue because its agent was over budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetWait {
    pub due_work_id: i64,
    pub task_uid: Uuid,
    pub namespace: String,
    pub task: String,
    /// The Agent's name (in `namespace`).
    pub agent: String,
    /// Which budget, in words, e.g. "Agent default/assistant has 2 runs going (concurrentRuns: 2)".
    pub reason: String,
    /// When it will be tried again (its new `run_at`).
    pub until: DateTime<Utc>,
    /// The occurrence's first wait (counted, published and audited); `false` for a re-check
    /// of an occurrence that was already waiting.
    pub first: bool,
    /// The id of the audit entry and event of a first wait, for the logs.
    pub correlation_id: String,
}

/// What [`Store::lease_within_budgets`] hands out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Admitted {
    /// Leases to run now, in lease order.
    pub leases: Vec<Lease>,
    /// Occurrences that were leased but must wait for their agent's budget (already handed
    /// back to the queue).
    pub waits: Vec<BudgetWait>,
}

/// An Agent's budgets as projected (`spec.budgets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Limits {
    concurrent: Option<i64>,
    per_hour: Option<i64>,
}

impl Limits {
    fn of(spec: &Value) -> Self {
        let n = |k: &str| {
            spec.pointer(&format!("/budgets/{k}"))
                .and_then(Value::as_i64)
        };
        Limits {
            concurrent: n("concurrentRuns"),
            per_hour: n("runsPerHour"),
        }
    }
    fn any(&self) -> bool {
        self.concurrent.is_some() || self.per_hour.is_some()
    }
}

/// The Agent a leased Task acts for, if any.
fn agent_of(lease: &Lease) -> Option<&str> {
    lease.spec.get("agentRef").and_then(Value::as_str)
}

/// The state of one agent's budget, read under its lock.
struct Usage {
    now: DateTime<Utc>,
    active: i64,
    /// Starts within the last hour.
    in_hour: i64,
    /// With runsPerHour N: the start whose leaving the hour frees the next slot (the oldest
    /// in the window, or the (count - N + 1)-th oldest when the budget was lowered); `None`
    /// when no start is in the window.
    slot: Option<DateTime<Utc>>,
}

/// What an admission decided for one agent's leases.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    /// How many (the first, in lease order) start now.
    admit: usize,
    /// Why the others wait.
    reason: String,
    /// When the first of the others is tried again.
    until: DateTime<Utc>,
    /// Waiting for `concurrentRuns` N: at most N can start at the next check, so the
    /// others are spread out, N per [`CONCURRENCY_RECHECK`], in lease order (a backlog is
    /// not re-leased all at once, and keeps its order).
    per_recheck: Option<i64>,
}

impl Decision {
    /// When each of `n` waiting leases (in lease order) is tried again.
    fn wake_times(&self, n: usize) -> Vec<DateTime<Utc>> {
        let step = chrono::Duration::from_std(CONCURRENCY_RECHECK).unwrap_or_default();
        (0..n as i64)
            .map(|k| match self.per_recheck {
                Some(per) => self.until + step * i32::try_from(k / per.max(1)).unwrap_or(i32::MAX),
                None => self.until,
            })
            .collect()
    }
}

/// How many of `wanted` leases of an agent may start, and why the rest wait and until when.
fn decide(limits: Limits, usage: &Usage, wanted: usize, agent: &str) -> Decision {
    let wanted = wanted as i64;
    let free_conc = limits.concurrent.map(|c| (c - usage.active).max(0));
    let free_hour = limits.per_hour.map(|h| (h - usage.in_hour).max(0));
    let free = [free_conc, free_hour]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(wanted);
    let admit = free.min(wanted);
    let hour_full = limits.per_hour.is_some_and(|h| usage.in_hour + admit >= h);
    let (reason, until, per_recheck) = match limits.per_hour {
        Some(h) if hour_full => {
            // The window holds its old starts plus this batch's (at `now`); the next slot
            // frees when `usage.slot` leaves the hour, or this batch's first start when the
            // window was empty.
            let slot = usage.slot.unwrap_or(usage.now);
            (
                format!(
                    "Agent {agent} started {} runs in the last hour (runsPerHour: {h})",
                    usage.in_hour + admit
                ),
                slot + chrono::Duration::hours(1),
                None,
            )
        }
        _ => (
            format!(
                "Agent {agent} has {} runs going (concurrentRuns: {})",
                usage.active + admit,
                limits.concurrent.unwrap_or_default()
            ),
            usage.now + chrono::Duration::from_std(CONCURRENCY_RECHECK).unwrap_or_default(),
            limits.concurrent,
        ),
    };
    Decision {
        admit: admit as usize,
        reason,
        until,
        per_recheck,
    }
}

impl Store {
    /// [`Store::lease`], then the agent budgets: leases of Tasks whose Agent is over a budget
    /// are handed back to wait (see the module docs). With no Agent named by any leased Task,
    /// this is exactly one lease statement.
    pub async fn lease_within_budgets(
        &self,
        worker: &str,
        limit: i64,
        lease_for: Duration,
    ) -> Result<Admitted, StoreError> {
        self.lease_within_budgets_ahead(worker, limit, lease_for, Duration::ZERO)
            .await
    }

    /// [`Store::lease_within_budgets`] with [`Store::lease_ahead`]'s lookahead (the worker's
    /// lease path).
    pub async fn lease_within_budgets_ahead(
        &self,
        worker: &str,
        limit: i64,
        lease_for: Duration,
        lookahead: Duration,
    ) -> Result<Admitted, StoreError> {
        let leases = self
            .lease_ahead(worker, limit, lease_for, lookahead)
            .await?;
        if !leases.iter().any(|l| agent_of(l).is_some()) {
            return Ok(Admitted {
                leases,
                waits: Vec::new(),
            });
        }
        self.admit(worker, leases).await
    }

    async fn admit(&self, worker: &str, leases: Vec<Lease>) -> Result<Admitted, StoreError> {
        let mut free = Vec::new();
        // Agents in key order: every admission locks agents' rows in the same order.
        let mut groups: BTreeMap<(String, String), Vec<Lease>> = BTreeMap::new();
        for l in leases {
            match agent_of(&l).map(str::to_string) {
                Some(a) => groups.entry((l.namespace.clone(), a)).or_default().push(l),
                None => free.push(l),
            }
        }
        let mut tx = self.pool.begin().await?;
        let mut admitted = free;
        let mut waits = Vec::new();
        for ((namespace, agent), group) in groups {
            let limits: Option<(Value,)> = sqlx::query_as(
                "SELECT spec FROM agents WHERE namespace = $1 AND name = $2 FOR UPDATE",
            )
            .bind(&namespace)
            .bind(&agent)
            .fetch_optional(&mut *tx)
            .await?;
            let limits = limits.map(|(s,)| Limits::of(&s)).unwrap_or_default();
            if !limits.any() {
                // No budgets (or no such Agent: the run fails on that, with its reason).
                admitted.extend(group);
                continue;
            }
            let usage = usage(&mut tx, &namespace, &agent, limits, group.len() as i64).await?;
            let label = format!("{namespace}/{agent}");
            let decision = decide(limits, &usage, group.len(), &label);
            let reason = decision.reason.clone();
            let mut group = group;
            let waiting = group.split_off(decision.admit);
            let untils = decision.wake_times(waiting.len());
            record_admissions(&mut tx, &namespace, &agent, &group).await?;
            let handed = hand_back(&mut tx, worker, &waiting, &reason, &untils).await?;
            let mut first = Vec::new();
            for (l, until) in waiting.iter().zip(untils) {
                let Some(was_waiting) = handed.get(&l.id) else {
                    continue; // no longer ours (cannot happen while the lease is fresh)
                };
                let w = BudgetWait {
                    due_work_id: l.id,
                    task_uid: l.task_uid,
                    namespace: namespace.clone(),
                    task: l.name.clone(),
                    agent: agent.clone(),
                    reason: reason.clone(),
                    until,
                    first: !was_waiting,
                    correlation_id: Uuid::now_v7().to_string(),
                };
                if w.first {
                    first.push(w.clone());
                }
                waits.push(w);
            }
            record_first_waits(&mut tx, worker, &first).await?;
            admitted.extend(group);
        }
        tx.commit().await?;
        admitted.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.run_at.cmp(&b.run_at)));
        Ok(Admitted {
            leases: admitted,
            waits,
        })
    }

    /// The occurrences waiting for a budget now, with why and until when (oldest first).
    pub async fn budget_waiting(&self) -> Result<Vec<(i64, String, DateTime<Utc>)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, waiting_reason, run_at FROM due_work \
             WHERE waiting_reason IS NOT NULL AND done_at IS NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// An Agent's budget use: runs going now, runs started in the last hour, and how many
    /// occurrences have waited for its budget since it was created.
    pub async fn agent_budget_usage(
        &self,
        namespace: &str,
        agent: &str,
    ) -> Result<(i64, i64, i64), StoreError> {
        let (active, in_hour): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE NOT r.ended AND EXISTS (SELECT 1 FROM due_work d \
                 WHERE d.id = r.due_work_id AND d.attempt = r.attempt AND d.done_at IS NULL \
                   AND d.locked_until > now())), \
                 count(*) FILTER (WHERE r.started_at > now() - interval '1 hour') \
             FROM agent_runs r WHERE r.namespace = $1 AND r.agent = $2",
        )
        .bind(namespace)
        .bind(agent)
        .fetch_one(&self.pool)
        .await?;
        let waits: Option<(i64,)> =
            sqlx::query_as("SELECT budget_waits FROM agents WHERE namespace = $1 AND name = $2")
                .bind(namespace)
                .bind(agent)
                .fetch_optional(&self.pool)
                .await?;
        Ok((active, in_hour, waits.map_or(0, |(w,)| w)))
    }
}

/// Prunes the agent's records that no longer count, then reads what does (under its lock).
/// Reads at most the runs started in the last hour plus the runs not yet seen to have ended,
/// whatever the agent's history.
async fn usage(
    tx: &mut sqlx::PgConnection,
    namespace: &str,
    agent: &str,
    limits: Limits,
    wanted: i64,
) -> Result<Usage, StoreError> {
    // A run is going while its due_work row is at that attempt, leased and not done. Once it
    // is not, it never is again (a later lease is a later attempt): mark it ended, so the
    // next count does not look it up again.
    sqlx::query(
        "UPDATE agent_runs r SET ended = true \
         WHERE r.namespace = $1 AND r.agent = $2 AND NOT r.ended \
           AND NOT EXISTS (SELECT 1 FROM due_work d WHERE d.id = r.due_work_id \
               AND d.attempt = r.attempt AND d.done_at IS NULL AND d.locked_until > now())",
    )
    .bind(namespace)
    .bind(agent)
    .execute(&mut *tx)
    .await?;
    // Ended runs count only for runsPerHour, and only within the hour.
    sqlx::query(
        "DELETE FROM agent_runs WHERE namespace = $1 AND agent = $2 AND ended \
           AND ($3 OR started_at <= now() - interval '1 hour')",
    )
    .bind(namespace)
    .bind(agent)
    .bind(limits.per_hour.is_none())
    .execute(&mut *tx)
    .await?;
    let (now, active, in_hour): (DateTime<Utc>, i64, i64) = sqlx::query_as(
        "SELECT now(), count(*) FILTER (WHERE NOT ended), \
                count(*) FILTER (WHERE started_at > now() - interval '1 hour') \
         FROM agent_runs WHERE namespace = $1 AND agent = $2",
    )
    .bind(namespace)
    .bind(agent)
    .fetch_one(&mut *tx)
    .await?;
    let slot = match limits.per_hour {
        // Only needed when this batch could fill the hour.
        Some(h) if in_hour > 0 && in_hour + wanted >= h => {
            sqlx::query_scalar(
                "SELECT started_at FROM agent_runs \
                 WHERE namespace = $1 AND agent = $2 AND started_at > now() - interval '1 hour' \
                 ORDER BY started_at OFFSET $3 LIMIT 1",
            )
            .bind(namespace)
            .bind(agent)
            .bind((in_hour - h).max(0))
            .fetch_optional(&mut *tx)
            .await?
        }
        _ => None,
    };
    Ok(Usage {
        now,
        active,
        in_hour,
        slot,
    })
}

async fn record_admissions(
    tx: &mut sqlx::PgConnection,
    namespace: &str,
    agent: &str,
    leases: &[Lease],
) -> Result<(), StoreError> {
    if leases.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
    sqlx::query(
        "INSERT INTO agent_runs (namespace, agent, due_work_id, attempt) \
         SELECT $1, $2, id, attempt FROM unnest($3::int8[], $4::int4[]) AS a(id, attempt) \
         ON CONFLICT DO NOTHING",
    )
    .bind(namespace)
    .bind(agent)
    .bind(&ids)
    .bind(&attempts)
    .execute(&mut *tx)
    .await?;
    // Occurrences that waited before: they wait no more.
    sqlx::query(
        "UPDATE due_work SET waiting_reason = NULL \
         WHERE id = ANY($1) AND waiting_reason IS NOT NULL",
    )
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Returns `leases` to the queue as if never leased (attempt restored), each to be tried at
/// its `untils` entry. Returns, per id handed back, whether it was already waiting.
async fn hand_back(
    tx: &mut sqlx::PgConnection,
    worker: &str,
    leases: &[Lease],
    reason: &str,
    untils: &[DateTime<Utc>],
) -> Result<std::collections::HashMap<i64, bool>, StoreError> {
    if leases.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let attempts: Vec<i32> = leases.iter().map(|l| l.attempt).collect();
    // `o` is the row as this statement's snapshot saw it: its waiting_reason before the
    // update. The attempt is restored because the run never started: a retry count, and
    // whether a first attempt is held to its start deadline, stay what they were.
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "UPDATE due_work d SET locked_until = NULL, locked_by = NULL, attempt = d.attempt - 1, \
             run_at = w.until, waiting_reason = $5 \
         FROM unnest($1::int8[], $2::int4[], $4::timestamptz[]) AS w(id, attempt, until), \
              due_work o \
         WHERE d.id = w.id AND d.attempt = w.attempt AND d.locked_by = $3 \
           AND d.done_at IS NULL AND o.id = d.id \
         RETURNING d.id, o.waiting_reason IS NOT NULL",
    )
    .bind(&ids)
    .bind(&attempts)
    .bind(worker)
    .bind(untils)
    .bind(reason)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Counts, publishes and audits the first wait of each occurrence in `waits`.
async fn record_first_waits(
    tx: &mut sqlx::PgConnection,
    worker: &str,
    waits: &[BudgetWait],
) -> Result<(), StoreError> {
    let Some(w0) = waits.first() else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE agents SET budget_waits = budget_waits + $3 WHERE namespace = $1 AND name = $2",
    )
    .bind(&w0.namespace)
    .bind(&w0.agent)
    .bind(waits.len() as i64)
    .execute(&mut *tx)
    .await?;
    let events: Vec<OutboxEvent> = waits
        .iter()
        .map(|w| {
            OutboxEvent::new(
                "run.budget_wait",
                json!({
                    "namespace": w.namespace, "task": w.task, "taskUid": w.task_uid,
                    "agent": w.agent, "reason": w.reason, "until": w.until,
                    "correlationId": w.correlation_id,
                }),
            )
        })
        .collect();
    let pairs: Vec<(Option<Uuid>, &OutboxEvent)> = waits
        .iter()
        .zip(&events)
        .map(|(w, e)| (Some(w.task_uid), e))
        .collect();
    insert_events_on(&mut *tx, &pairs).await?;
    for w in waits {
        sqlx::query(
            "INSERT INTO audit_log \
                 (actor, action, allowed, namespace, task_uid, subject, detail, correlation_id) \
             VALUES ($1, 'run.budget_wait', false, $2, $3, $4, $5, $6)",
        )
        .bind(format!("worker:{worker}"))
        .bind(&w.namespace)
        .bind(w.task_uid)
        .bind(&w.task)
        .bind(json!({
            "agent": w.agent, "outcome": "waiting", "reason": w.reason, "until": w.until,
            "dueWorkId": w.due_work_id,
        }))
        .bind(&w.correlation_id)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn concurrency_admits_up_to_the_free_slots_and_rechecks_soon() {
        let usage = Usage {
            now: t("2026-01-01T12:00:00Z"),
            active: 1,
            in_hour: 0,
            slot: None,
        };
        let limits = Limits {
            concurrent: Some(2),
            per_hour: None,
        };
        let d = decide(limits, &usage, 6, "default/a");
        assert_eq!(d.admit, 1);
        assert!(d.reason.contains("concurrentRuns: 2"), "{}", d.reason);
        assert_eq!(d.until, t("2026-01-01T12:00:00.500Z"));
        // Two per re-check, in lease order.
        assert_eq!(
            d.wake_times(5),
            [
                t("2026-01-01T12:00:00.500Z"),
                t("2026-01-01T12:00:00.500Z"),
                t("2026-01-01T12:00:01Z"),
                t("2026-01-01T12:00:01Z"),
                t("2026-01-01T12:00:01.500Z"),
            ]
        );
    }

    #[test]
    fn an_hour_budget_waits_until_the_oldest_start_leaves_the_window() {
        let usage = Usage {
            now: t("2026-01-01T12:00:00Z"),
            active: 0,
            in_hour: 2,
            slot: Some(t("2026-01-01T11:10:00Z")),
        };
        let limits = Limits {
            concurrent: Some(10),
            per_hour: Some(3),
        };
        let d = decide(limits, &usage, 5, "default/a");
        assert_eq!(d.admit, 1);
        assert!(d.reason.contains("runsPerHour: 3"), "{}", d.reason);
        assert_eq!(d.until, t("2026-01-01T12:10:00Z"));
        assert_eq!(d.wake_times(2), [d.until, d.until]);
    }

    #[test]
    fn limits_are_read_from_the_projected_spec() {
        let l = Limits::of(&json!({"budgets": {"runsPerHour": 3}}));
        assert_eq!(l.per_hour, Some(3));
        assert_eq!(l.concurrent, None);
        assert!(!Limits::of(&json!({"scopes": []})).any());
    }
}
