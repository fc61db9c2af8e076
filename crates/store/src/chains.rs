//! Chained Tasks (`on: {taskFinished: {name, outcome}}`): when a run finishes, the Tasks
//! chained after its Task start one run each, in the transaction that records the finished
//! run, keyed by that run's id (`run:<uuid>`), so each finished run starts each follower
//! exactly once.
//!
//! The finished run is the follower's `${params.event}`:
//! `{id, type: "taskFinished", publishedAt, task: {namespace, name}, run: {id, outcome,
//! output}, depth}`. `depth` counts the links followed so far; past [`MAX_CHAIN_DEPTH`] the
//! run is dropped (counted, with the reason), which stops a cycle that validation missed.

use crate::StoreError;
use crate::triggers::{Decision, Delivery, MAX_CHAIN_DEPTH, record_deliveries_on};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

/// The outcomes a follower starts on when `outcome` is not given.
pub const DEFAULT_OUTCOMES: [&str; 2] = ["Succeeded", "Failed"];

#[derive(sqlx::FromRow)]
struct Follower {
    follower: Uuid,
    priority: i32,
    suspended: bool,
    snooze_until: Option<DateTime<Utc>>,
    outcomes: Option<Value>,
    run_id: Uuid,
    status: String,
    output: Option<Value>,
    finished_at: DateTime<Utc>,
    namespace: String,
    name: String,
    depth: i64,
}

/// Starts the followers of the finished runs among `run_ids` (runs still retrying are not
/// finished). One indexed query when no Task is chained after them.
pub(crate) async fn start_followers_on(
    tx: &mut sqlx::PgConnection,
    run_ids: &[Uuid],
) -> Result<(), StoreError> {
    if run_ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<Follower> = sqlx::query_as(
        "SELECT t.uid AS follower, t.priority, t.suspended, t.snooze_until, \
                t.spec #> '{schedule,on,taskFinished,outcome}' AS outcomes, \
                r.id AS run_id, r.status, r.output, r.finished_at, src.namespace, src.name, \
                coalesce((d.payload #>> '{event,depth}')::int8, 0) AS depth \
         FROM task_runs r \
         JOIN tasks src ON src.uid = r.task_uid \
         JOIN tasks t ON t.namespace = src.namespace \
              AND (t.spec #>> '{schedule,on,taskFinished,name}') = src.name \
              AND t.deleted_at IS NULL AND t.schedule_kind = 'on' \
              AND NOT (t.status @> $2::jsonb) \
         LEFT JOIN due_work d ON d.id = r.due_work_id \
         WHERE r.id = ANY($1) AND r.status <> 'retrying'",
    )
    .bind(run_ids)
    .bind(crate::triggers::STALLED)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let deliveries: Vec<Delivery> = rows.into_iter().filter_map(|f| delivery(f, now)).collect();
    record_deliveries_on(tx, &deliveries).await?;
    Ok(())
}

/// The delivery of one finished run to one follower; `None` when the outcome is not one the
/// follower listens to.
fn delivery(f: Follower, now: DateTime<Utc>) -> Option<Delivery> {
    let outcome = outcome_name(&f.status);
    let listens = match f.outcomes.as_ref().and_then(Value::as_array) {
        Some(list) if !list.is_empty() => list.iter().any(|o| o.as_str() == Some(outcome)),
        _ => DEFAULT_OUTCOMES.contains(&outcome),
    };
    if !listens {
        return None;
    }
    let depth = f.depth + 1;
    let decision = if f.suspended {
        Decision::Dropped("suspended".into())
    } else if f.snooze_until.is_some_and(|s| s > now) {
        Decision::Dropped("snoozed".into())
    } else if depth > MAX_CHAIN_DEPTH {
        Decision::Dropped(format!(
            "chain deeper than {MAX_CHAIN_DEPTH} taskFinished links (a cycle?)"
        ))
    } else {
        Decision::Start
    };
    let event_id = format!("run:{}", f.run_id);
    Some(Delivery {
        task_uid: f.follower,
        event: json!({
            "id": event_id,
            "type": "taskFinished",
            "publishedAt": f.finished_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "task": {"namespace": f.namespace, "name": f.name},
            "run": {"id": f.run_id, "outcome": outcome, "output": f.output},
            "depth": depth,
        }),
        event_id,
        published_at: f.finished_at,
        priority: f.priority,
        decision,
    })
}

/// `succeeded` → `Succeeded` (the spelling of `on.taskFinished.outcome`).
fn outcome_name(status: &str) -> &'static str {
    match status {
        "succeeded" => "Succeeded",
        "failed" => "Failed",
        "cancelled" => "Cancelled",
        "skipped" => "Skipped",
        _ => "Unknown",
    }
}

impl crate::Store {
    /// `(task, the Task it follows)` for the live Tasks of `namespace` on `taskFinished`, for
    /// finding cycles.
    pub async fn chain_links(&self, namespace: &str) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT name, spec #>> '{schedule,on,taskFinished,name}' FROM tasks \
             WHERE namespace = $1 AND deleted_at IS NULL AND schedule_kind = 'on' \
               AND spec #>> '{schedule,on,taskFinished,name}' IS NOT NULL",
        )
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?)
    }
}
