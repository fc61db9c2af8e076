//! Reading across versions: a worker runs specs written by a newer operator.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use std::time::Duration;

/// During an upgrade the operator may be newer than the workers: a stored spec carrying
/// fields this worker does not know (at the top, in the schedule, in a step) still runs, and
/// free-form values (`with`) reach the tool unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spec_with_fields_from_a_newer_version_still_runs() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let mut task = task_from_yaml("newer", ECHO_TASK);
    let spec = task.spec.as_object_mut().unwrap();
    spec.insert(
        "fieldFromTheFuture".into(),
        serde_json::json!({"enabled": true}),
    );
    spec["schedule"]["newKnob"] = serde_json::json!(3);
    spec["pipeline"]["steps"][0]["futureOption"] = serde_json::json!("x");
    insert_due(&store, &task, 2).await;
    let _w = WorkerProcess::start(&db.url, "old-worker", &["--migrate", "false"]);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs WHERE status = 'succeeded'",
        2,
        Duration::from_secs(30),
    )
    .await;
    let (message,): (String,) = sqlx::query_as("SELECT input->>'message' FROM step_runs LIMIT 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(message.starts_with("hello newer run "), "{message}");
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 2);
}
