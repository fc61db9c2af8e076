//! A Pipeline edit reaches the workers: the operator inlines the new steps into the Task's
//! projection without changing the Task's generation, and the next run must run the new steps
//! (the worker's compiled-spec cache is keyed by the spec's content, not the generation).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ordinaut_store::NewOccurrence;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use ordinaut_worker::{Executor, Metrics, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

fn spec(msg: &str) -> String {
    format!(
        "schedule: {{every: 1h}}\npipeline:\n  steps: [{{id: say, uses: core.echo, with: {{msg: {msg}}}}}]\n"
    )
}

#[tokio::test]
async fn a_pipeline_edit_under_the_same_generation_runs_the_new_steps() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let tools = ordinaut_tools::builtin::registry(Default::default());
    let executor = Arc::new(Executor::new(tools, Duration::from_secs(30)));
    let config = WorkerConfig {
        worker_id: "w".into(),
        concurrency: 4,
        heartbeat_interval: Duration::from_millis(100),
        poll_interval: Duration::from_millis(100),
        drain_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), executor, config, metrics);
    let stop = CancellationToken::new();
    let handle = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await }
    });

    let mut task = task_from_yaml("t", &spec("first"));
    insert_due(&store, &task, 1).await;
    let done = "SELECT count(*) FROM task_runs WHERE status = 'succeeded'";
    wait_for_count(&store, done, 1, Duration::from_secs(20)).await;

    // The Pipeline changed: same Task, same generation, new inlined steps.
    task.spec = serde_json::to_value(
        serde_yaml::from_str::<ordinaut_api::TaskSpec>(&spec("second")).unwrap(),
    )
    .unwrap();
    assert_eq!(task.generation, 1);
    store.upsert_task(&task).await.unwrap();
    let later = Utc::now() + chrono::Duration::seconds(1);
    let occ = NewOccurrence::scheduled(task.uid, later);
    store
        .insert_occurrences(&[NewOccurrence {
            run_at: Utc::now(),
            ..occ
        }])
        .await
        .unwrap();
    wait_for_count(&store, done, 2, Duration::from_secs(20)).await;

    let outputs: Vec<(serde_json::Value,)> = sqlx::query_as(
        "SELECT s.output FROM step_runs s JOIN task_runs r ON r.id = s.run_id ORDER BY r.started_at",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let text: Vec<String> = outputs.iter().map(|o| o.0.to_string()).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(text[0].contains("first"), "{text:?}");
    assert!(
        text[1].contains("second"),
        "the edited pipeline ran: {text:?}"
    );
    stop.cancel();
    handle.await.unwrap();
}
