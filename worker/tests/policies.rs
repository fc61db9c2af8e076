//! Concurrency policies across two in-process workers, step retries, timeouts and error
//! records, against a real database.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{NewOccurrence, Store};
use ordinaut_test_support::worker::*;
use ordinaut_worker::{Executor, Metrics, Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

struct Running {
    stop: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    async fn stop(self) {
        self.stop.cancel();
        for h in self.handles {
            h.await.unwrap();
        }
    }
}

/// Starts `n` in-process workers on `store` with fast heartbeats.
fn start_workers(store: &Store, n: usize) -> Running {
    let stop = CancellationToken::new();
    let handles = (0..n)
        .map(|i| {
            let mut registry = prometheus_client::registry::Registry::default();
            let metrics = Arc::new(Metrics::new(&mut registry));
            let tools = ordinaut_tools::builtin::registry(Default::default());
            let executor = Arc::new(Executor::new(tools, Duration::from_secs(30)));
            let config = WorkerConfig {
                worker_id: format!("w{i}"),
                concurrency: 8,
                heartbeat_interval: Duration::from_millis(100),
                poll_interval: Duration::from_millis(100),
                drain_timeout: Duration::from_secs(5),
                ..WorkerConfig::default()
            };
            let worker = Worker::new(store.clone(), executor, config, metrics);
            let stop = stop.clone();
            tokio::spawn(async move { worker.run(stop).await })
        })
        .collect();
    Running { stop, handles }
}

fn sleeper(policy: &str, duration: &str) -> String {
    format!(
        r#"
schedule: {{every: 1h}}
concurrencyPolicy: {policy}
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with: {{duration: {duration}}}
"#
    )
}

/// Two occurrences of one task due together, two workers.
async fn two_overlapping(
    store: &Store,
    policy: &str,
    duration: &str,
) -> ordinaut_store::TaskProjection {
    let task = task_from_yaml(
        &format!("overlap-{}", policy.to_lowercase()),
        &sleeper(policy, duration),
    );
    store.upsert_task(&task).await.unwrap();
    let now = Utc::now();
    store
        .insert_occurrences(&[
            NewOccurrence::scheduled(task.uid, now - ChronoDuration::milliseconds(2)),
            NewOccurrence::scheduled(task.uid, now - ChronoDuration::milliseconds(1)),
        ])
        .await
        .unwrap();
    task
}

/// Runs two overlapping occurrences under `policy` on two workers until both are recorded;
/// returns the database (kept alive) and its store.
async fn run_two_overlapping(policy: &str, duration: &str) -> (TestDb, Store) {
    let (db, store) = TestDb::migrated().await.unwrap();
    two_overlapping(&store, policy, duration).await;
    let w = start_workers(&store, 2);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        2,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    (db, store)
}

/// `(status, runs)` of the recorded runs, by status.
async fn runs_by_status(store: &Store) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, count(*) FROM task_runs GROUP BY status ORDER BY status")
        .fetch_all(store.pool())
        .await
        .unwrap()
}

async fn events_of_type(store: &Store, event_type: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(store.pool())
        .await
        .unwrap();
    n
}

fn statuses(want: &[(&str, i64)]) -> Vec<(String, i64)> {
    want.iter().map(|(s, n)| (s.to_string(), *n)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forbid_skips_an_overlapping_run_and_emits_an_event() {
    let (_db, store) = run_two_overlapping("Forbid", "700ms").await;
    assert_eq!(
        runs_by_status(&store).await,
        statuses(&[("skipped", 1), ("succeeded", 1)])
    );
    assert_eq!(events_of_type(&store, "run.skipped").await, 1);
    let (error,): (String,) =
        sqlx::query_as("SELECT error FROM task_runs WHERE status = 'skipped'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(error.contains("Forbid"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replace_cancels_the_active_run_and_runs_the_new_one() {
    let (_db, store) = run_two_overlapping("Replace", "2s").await;
    assert_eq!(
        runs_by_status(&store).await,
        statuses(&[("cancelled", 1), ("succeeded", 1)])
    );
    assert_eq!(events_of_type(&store, "run.cancelled").await, 1);
    // The cancelled run ended before the replacing one.
    let (ok,): (bool,) = sqlx::query_as(
        "SELECT (SELECT finished_at FROM task_runs WHERE status = 'cancelled') < \
                (SELECT finished_at FROM task_runs WHERE status = 'succeeded')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert!(ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allow_runs_overlapping_occurrences_at_once() {
    let (_db, store) = run_two_overlapping("Allow", "700ms").await;
    assert_eq!(runs_by_status(&store).await, statuses(&[("succeeded", 2)]));
    // They overlapped in time.
    let (overlap,): (bool,) =
        sqlx::query_as("SELECT max(started_at) < min(finished_at) FROM task_runs")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(overlap, "Allow runs did not overlap");
}

/// A step that fails twice then succeeds ends succeeded with its tries recorded, and the
/// waits between tries stay within their backoff bounds (base 100 ms, ×2, jitter 50–100 %).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failing_twice_then_succeeding_is_retried_within_backoff_bounds() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "flaky",
        r#"
schedule: {every: 1h}
retry: {attempts: 3, backoff: 100ms, maxBackoff: 1s}
pipeline:
  steps:
    - id: shaky
      uses: core.fail
      with: {message: "transient", failTimes: 2}
"#,
    );
    insert_due(&store, &task, 1).await;
    let w = start_workers(&store, 1);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    let (status, attempts, ms): (String, i32, f64) = sqlx::query_as(
        "SELECT status, attempts, extract(epoch FROM finished_at - started_at)::float8 * 1000 FROM step_runs",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(status, "succeeded");
    assert_eq!(attempts, 3);
    // Waits: after try 1, 100 ms × [0.5, 1]; after try 2, 200 ms × [0.5, 1]. A lower bound
    // only: a loaded machine can make the step slower, never the waits shorter (an upper
    // bound is the deadline of the wait above).
    assert!(ms >= 150.0, "retries came too fast: {ms} ms");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE status = 'succeeded'"
        )
        .await,
        1
    );
}

/// A step that keeps failing fails the run, and the record names the step, the try and the
/// cause; a later step does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_names_the_step_attempt_and_cause() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "broken",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: first
      uses: core.echo
      with: {n: 1}
    - id: boom
      uses: core.fail
      with: {message: "the disk is full"}
      retry: {attempts: 2, backoff: 10ms, maxBackoff: 10ms}
    - id: never
      uses: core.echo
      with: {n: 3}
"#,
    );
    insert_due(&store, &task, 1).await;
    let w = start_workers(&store, 1);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    let (status, error): (String, String) = sqlx::query_as("SELECT status, error FROM task_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(status, "failed");
    assert!(
        error.contains("boom") && error.contains("attempt 2") && error.contains("the disk is full"),
        "{error}"
    );
    let steps: Vec<(String, String)> =
        sqlx::query_as("SELECT step_id, status FROM step_runs ORDER BY idx")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        steps,
        [
            ("first".into(), "succeeded".into()),
            ("boom".into(), "failed".into())
        ]
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.failed'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'step.failed'"
        )
        .await,
        1
    );
}

/// A run longer than the Task's timeout fails with a message saying so; a step's own
/// timeout fails the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_step_timeouts_fail_with_a_clear_message() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let run_timeout = task_from_yaml(
        "slow-run",
        r#"
schedule: {every: 1h}
timeout: 200ms
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with: {duration: 1h}
"#,
    );
    let step_timeout = task_from_yaml(
        "slow-step",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      timeout: 150ms
      with: {duration: 1h}
"#,
    );
    insert_due(&store, &run_timeout, 1).await;
    insert_due(&store, &step_timeout, 1).await;
    let w = start_workers(&store, 1);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        2,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.name, r.status, r.error FROM task_runs r JOIN tasks t ON t.uid = r.task_uid ORDER BY t.name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(rows[0].0, "slow-run");
    assert_eq!(rows[0].1, "failed");
    assert!(
        rows[0].2.contains("run timed out after 200ms"),
        "{}",
        rows[0].2
    );
    assert_eq!(rows[1].0, "slow-step");
    assert_eq!(rows[1].1, "failed");
    assert!(
        rows[1].2.contains("nap") && rows[1].2.contains("timed out"),
        "{}",
        rows[1].2
    );
}

/// Secrets in a step's input are redacted in the stored record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_inputs_are_stored_with_secrets_redacted() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "secretive",
        r#"
schedule: {every: 1h}
params: {apiToken: "s3cr3t-value"}
pipeline:
  steps:
    - id: call
      uses: core.echo
      with:
        apiToken: "${params.apiToken}"
        headers: {Authorization: "Bearer ${params.apiToken}", accept: json}
"#,
    );
    insert_due(&store, &task, 1).await;
    let w = start_workers(&store, 1);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    let (input,): (serde_json::Value,) = sqlx::query_as("SELECT input FROM step_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(input["apiToken"], "***");
    assert_eq!(input["headers"]["Authorization"], "***");
    assert_eq!(input["headers"]["accept"], "json");
    assert!(!input.to_string().contains("s3cr3t"));
}
