//! The store tests' fixtures: task projections, due rows, a successful run record, instants
//! (feature `store`).

pub use crate::db::count;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ordinaut_store::{
    Disposition, NewOccurrence, OutboxEvent, RunRecord, RunStatus, Store, TaskProjection,
};
use serde_json::json;
use uuid::Uuid;

/// A live task projection named `name` in namespace `default`.
pub fn task(name: &str) -> TaskProjection {
    TaskProjection {
        uid: Uuid::new_v4(),
        namespace: "default".into(),
        name: name.into(),
        generation: 1,
        spec: json!({"schedule": {"every": "1m"}}),
        schedule_kind: "every".into(),
        schedule: "1m".into(),
        timezone: "UTC".into(),
        next_run_at: None,
        materialized_until: None,
        suspended: false,
        snooze_until: None,
        priority: 0,
        concurrency_policy: "Allow".into(),
    }
}

/// Inserts a task and `n` occurrences due in the past (one second apart, ending a minute ago).
pub async fn task_with_due_rows(store: &Store, name: &str, n: usize) -> TaskProjection {
    let t = task(name);
    store.upsert_task(&t).await.unwrap();
    let end = Utc::now() - ChronoDuration::minutes(1);
    let occ: Vec<NewOccurrence> = (0..n)
        .map(|i| NewOccurrence::scheduled(t.uid, end - ChronoDuration::seconds(i as i64)))
        .collect();
    assert_eq!(store.insert_occurrences(&occ).await.unwrap(), n as u64);
    t
}

/// A successful, final record for a lease.
pub fn success(id: i64, attempt: i32, worker: &str) -> RunRecord {
    let now = Utc::now();
    RunRecord {
        due_work_id: id,
        attempt,
        run_id: Uuid::now_v7(),
        status: RunStatus::Succeeded,
        started_at: now,
        finished_at: now,
        worker: worker.into(),
        output: Some(json!({"ok": true})),
        error: None,
        steps: Vec::new(),
        events: vec![OutboxEvent::new(
            "run.succeeded",
            json!({"due_work_id": id, "attempt": attempt}),
        )],
        disposition: Disposition::Done,
    }
}

pub fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}
