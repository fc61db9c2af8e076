//! Agent memory from pipelines, with a real worker process: a run writes a cursor with
//! `core.state.put` that the next run reads with `core.state.get` (compare-and-set on the
//! version it read), under the Task's own keys when it has no Agent; the worker's reaper
//! prunes expired keys.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use ordinaut_store::testing::TestDb;
use ordinaut_store::{NewOccurrence, StateOwner, StatePut, StateRef};
use ordinaut_test_support::worker::*;
use serde_json::{Value, json};
use std::time::Duration;

const CURSOR_TASK: &str = r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: read
      uses: core.state.get
      with: {key: cursors/inbox, default: {seenBy: none}}
    - id: write
      uses: core.state.put
      with:
        key: cursors/inbox
        value: {seenBy: "${run.id}", previous: "${steps.read.value}"}
        ifVersion: "${steps.read.version}"
"#;

const FAST: [&str; 6] = [
    "--reap-interval",
    "200ms",
    "--poll-interval",
    "100ms",
    "--migrate",
    "false",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_writes_a_cursor_that_the_next_run_reads() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml("inbox", CURSOR_TASK);
    insert_due(&store, &task, 1).await;
    let _w = WorkerProcess::start(&db.url, "w1", &FAST);
    let done = "SELECT count(*) FROM task_runs WHERE status = 'succeeded'";
    wait_for_count(&store, done, 1, Duration::from_secs(60)).await;
    let occ = NewOccurrence::scheduled(task.uid, Utc::now());
    store.insert_occurrences(&[occ]).await.unwrap();
    wait_for_count(&store, done, 2, Duration::from_secs(60)).await;
    let failed = "SELECT count(*) FROM task_runs WHERE status <> 'succeeded'";
    assert_eq!(count(&store, failed).await, 0);

    let runs: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM task_runs ORDER BY started_at")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let (first, second) = (runs[0].0.to_string(), runs[1].0.to_string());
    // The second run read what the first wrote (version 1) and wrote version 2.
    let read: (Value,) =
        sqlx::query_as("SELECT output FROM step_runs WHERE run_id = $1::uuid AND step_id = 'read'")
            .bind(&second)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(read.0["version"], 1, "{}", read.0);
    assert_eq!(read.0["value"]["seenBy"], first.as_str());
    assert_eq!(read.0["value"]["previous"], json!({"seenBy": "none"}));

    // The keys belong to the Task (it has no Agent), written by its runs.
    let at = StateRef::new("default", StateOwner::Task("inbox".into()), "cursors/inbox");
    let now = store.state_get(&at).await.unwrap().unwrap();
    assert_eq!(now.version, 2);
    assert_eq!(now.value["seenBy"], second.as_str());
    assert_eq!(now.value["previous"]["seenBy"], first.as_str());
    assert_eq!(now.updated_by, "task:default/inbox");
    let audited: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT actor, correlation_id FROM audit_log WHERE action = 'state.put' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        audited,
        [
            ("task:default/inbox".to_string(), Some(first)),
            ("task:default/inbox".to_string(), Some(second)),
        ]
    );
}

/// A third writer that read version 1 after someone else wrote version 2 fails its step
/// with the conflict, without retrying it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_compare_and_set_fails_the_step_naming_the_current_version() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "stale",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: write
      uses: core.state.put
      with: {key: k, value: mine, ifVersion: 1}
"#,
    );
    let at = StateRef::new("default", StateOwner::Task("stale".into()), "k");
    for v in [json!("a"), json!("b")] {
        let put = StatePut {
            at: &at,
            value: &v,
            if_version: None,
            ttl: None,
            actor: "test",
            correlation_id: None,
        };
        store.state_put(&put).await.unwrap();
    }
    insert_due(&store, &task, 1).await;
    let _w = WorkerProcess::start(&db.url, "w1", &FAST);
    let failed = "SELECT count(*) FROM task_runs WHERE status = 'failed'";
    wait_for_count(&store, failed, 1, Duration::from_secs(60)).await;
    let (error, attempts): (String, i32) =
        sqlx::query_as("SELECT error, attempts FROM step_runs WHERE step_id = 'write'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(error.contains("version 2, not 1"), "{error}");
    assert_eq!(attempts, 1);
    assert_eq!(store.state_get(&at).await.unwrap().unwrap().value, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_reaper_prunes_expired_keys() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let at = StateRef::new("default", StateOwner::Agent("bot".into()), "lock");
    let value = json!("held");
    let put = StatePut {
        at: &at,
        value: &value,
        if_version: None,
        ttl: Some(Duration::from_secs(1)),
        actor: "test",
        correlation_id: None,
    };
    store.state_put(&put).await.unwrap();
    let _w = WorkerProcess::start(&db.url, "w1", &FAST);
    wait_for_count(
        &store,
        "SELECT count(*) FROM state_history WHERE op = 'expire'",
        1,
        Duration::from_secs(60),
    )
    .await;
    assert!(store.state_get(&at).await.unwrap().is_none());
}

/// A write is published on topic `state.changed` in its transaction: a Task `on` that topic
/// (filtered to one key) runs once for it, with the key and versions as its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_on_state_changed_runs_once_for_a_write() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let key = format!("watched/{}", uuid::Uuid::new_v4().simple());
    let yaml = format!(
        "schedule:\n  on:\n    topic: state.changed\n    filter: \"data.key == '{key}'\"\n\
         pipeline:\n  steps:\n    - id: got\n      uses: core.echo\n      with:\n        \
         event: \"${{params.event}}\"\n"
    );
    let mut task = task_from_yaml("watcher", &yaml);
    task.schedule_kind = "on".into();
    task.schedule = "on".into();
    store.upsert_task(&task).await.unwrap();
    let redis = redis_url();
    let stream = unique_stream("state");
    let mut args = vec!["--redis-url", &redis, "--events-stream", &stream];
    args.extend(FAST);
    let _w = WorkerProcess::start(&db.url, "w1", &args);
    let at = StateRef::new("default", StateOwner::Agent("bot".into()), &key);
    let value = json!({"n": 1});
    let put = StatePut {
        at: &at,
        value: &value,
        if_version: Some(0),
        ttl: None,
        actor: "test",
        correlation_id: None,
    };
    store.state_put(&put).await.unwrap();
    let done = "SELECT count(*) FROM task_runs WHERE status = 'succeeded'";
    wait_for_count(&store, done, 1, Duration::from_secs(60)).await;
    let (event,): (Value,) = sqlx::query_as("SELECT output FROM task_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let data = &event["event"]["data"];
    assert_eq!(data["key"], key.as_str(), "{event}");
    assert_eq!(
        (data["op"].as_str(), data["version"].as_i64()),
        (Some("put"), Some(1))
    );
    assert_eq!(data["owner"], "agent:bot");
}
