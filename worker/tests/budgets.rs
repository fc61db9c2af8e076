//! Agent budgets with two real worker processes on one database: `concurrentRuns: 1` never
//! has two runs of the agent at once while agent-less work runs meanwhile, and
//! `runsPerHour: 3` starts 3 of 10 due occurrences and keeps the other 7 queued, waiting,
//! with the wait recorded (Agent counter, `run.budget_wait` events, audit rows).
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use serde_json::json;
use std::time::Duration;

const SLOW_AGENT_TASK: &str = r#"
schedule:
  every: 1h
agentRef: bot
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with:
        duration: 150ms
"#;

const AGENT_TASK: &str = r#"
schedule:
  every: 1h
agentRef: bot
pipeline:
  steps:
    - id: greet
      uses: core.echo
      with:
        message: "run ${run.id}"
"#;

fn two_workers(db_url: &str) -> Vec<WorkerProcess> {
    (0..2)
        .map(|i| {
            WorkerProcess::start(
                db_url,
                &format!("w{i}"),
                &[
                    "--migrate",
                    "false",
                    "--concurrency",
                    "8",
                    "--batch-size",
                    "4",
                ],
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_1_never_overlaps_across_two_workers_while_agentless_work_runs() {
    let (db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent(
            "default",
            "bot",
            1,
            &json!({"scopes": ["core.*"], "budgets": {"concurrentRuns": 1}}),
        )
        .await
        .unwrap();
    let slow = task_from_yaml("slow", SLOW_AGENT_TASK);
    insert_due(&store, &slow, 6).await;
    let free = task_from_yaml("free", ECHO_TASK);
    insert_due(&store, &free, 40).await;
    let _workers = two_workers(&db.url);

    let done = "SELECT count(*) FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
                WHERE t.name = 'slow' AND r.status = 'succeeded'";
    wait_for_count(&store, done, 6, Duration::from_secs(120)).await;
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
         WHERE t.name = 'free' AND r.status = 'succeeded'",
        40,
        Duration::from_secs(60),
    )
    .await;

    let runs: Vec<(DateTime<Utc>, DateTime<Utc>, String)> = sqlx::query_as(
        "SELECT r.started_at, r.finished_at, r.worker FROM task_runs r \
         JOIN tasks t ON t.uid = r.task_uid WHERE t.name = 'slow' ORDER BY r.started_at",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(runs.len(), 6);
    for pair in runs.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "two runs of the agent overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
    // Six occurrences due at once against a budget of one: the others waited, and each wait
    // was counted once, published and audited.
    let waits = count(&store, "SELECT budget_waits FROM agents WHERE name = 'bot'").await;
    assert!(waits >= 1, "no occurrence waited");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.budget_wait'"
        )
        .await,
        waits
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM audit_log WHERE action = 'run.budget_wait' \
             AND correlation_id IS NOT NULL AND detail->>'agent' = 'bot'"
        )
        .await,
        waits
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE waiting_reason IS NOT NULL"
        )
        .await,
        0,
        "a started occurrence no longer shows a waiting reason"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_per_hour_3_starts_3_of_10_across_two_workers_and_the_rest_wait_queued() {
    let (db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent(
            "default",
            "bot",
            1,
            &json!({"scopes": ["core.*"], "budgets": {"runsPerHour": 3}}),
        )
        .await
        .unwrap();
    let task = task_from_yaml("hourly", AGENT_TASK);
    insert_due(&store, &task, 10).await;
    let _workers = two_workers(&db.url);

    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        3,
        Duration::from_secs(60),
    )
    .await;
    // The other seven wait in the queue, at attempt 0, with why and until when (an hour
    // after the first start), neither failed nor lost.
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE done_at IS NULL AND locked_until IS NULL \
         AND attempt = 0 AND waiting_reason LIKE '%runsPerHour: 3%' \
         AND run_at > now() + interval '50 minutes'",
        7,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 3);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE status = 'succeeded'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&store, "SELECT budget_waits FROM agents WHERE name = 'bot'").await,
        7
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM audit_log WHERE action = 'run.budget_wait' AND NOT allowed"
        )
        .await,
        7
    );
}
