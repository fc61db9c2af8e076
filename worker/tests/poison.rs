//! Poison pills never loop: a tool that panics, a result PostgreSQL cannot store (a NUL
//! byte from a real HTTP server, an oversized output) and an occurrence whose attempts never
//! finish each end as one failed run with the reason; nothing is left leased or queued.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use ordinaut_tools::{CallContext, Tool, ToolError, ToolRegistry};
use ordinaut_worker::{Executor, Metrics, Worker, WorkerConfig};
use serde_json::Value;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A built-in-named tool that panics: a bug in a tool.
struct Panics;

#[async_trait]
impl Tool for Panics {
    fn name(&self) -> &str {
        "core.panic"
    }
    fn description(&self) -> &str {
        "panics"
    }
    async fn call(&self, _: Value, _: &CallContext) -> Result<Value, ToolError> {
        panic!("tool bug: index out of range");
    }
}

struct Running {
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<()>,
    registry: prometheus_client::registry::Registry,
}

impl Running {
    async fn stop(self) -> String {
        self.stop.cancel();
        self.handle.await.unwrap();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

/// One in-process worker with the built-ins, `core.panic` and `http.request` allowed to
/// reach `allow` hosts.
fn start_worker(store: &Store, allow: Vec<String>, max_output_bytes: usize) -> Running {
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let mut tools: ToolRegistry =
        ordinaut_tools::builtin::registry(ordinaut_tools::http::HttpConfig {
            allow_hosts: allow,
            // The test servers listen on loopback, and these Tasks have no Agent.
            allow_networks: vec!["127.0.0.0/8".parse().unwrap()],
            allow_agentless: true,
            ..Default::default()
        });
    tools.register(Arc::new(Panics));
    let executor = Arc::new(Executor::new(tools, Duration::from_secs(30)));
    let config = WorkerConfig {
        worker_id: "poison".into(),
        heartbeat_interval: Duration::from_millis(200),
        poll_interval: Duration::from_millis(100),
        max_output_bytes,
        ..WorkerConfig::default()
    };
    let worker = Worker::new(store.clone(), executor, config, metrics);
    let stop = CancellationToken::new();
    let s = stop.clone();
    let handle = tokio::spawn(async move { worker.run(s).await });
    Running {
        stop,
        handle,
        registry,
    }
}

/// A one-shot HTTP server answering every request with `body` (raw bytes).
fn serve_bytes(body: &'static [u8]) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body);
        }
    });
    port
}

async fn only_run(store: &Store) -> (String, String, i32) {
    sqlx::query_as("SELECT status, coalesce(error, ''), attempt FROM task_runs")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn assert_finished_once(store: &Store) {
    assert_eq!(count(store, "SELECT count(*) FROM task_runs").await, 1);
    assert_eq!(
        count(
            store,
            "SELECT count(*) FROM due_work WHERE done_at IS NULL OR locked_by IS NOT NULL"
        )
        .await,
        0,
        "the occurrence is finished and nothing is left leased"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_tool_fails_its_run_with_the_reason_and_releases_the_lease() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "panicky",
        "schedule: {every: 1h}\npipeline:\n  steps:\n    - {id: boom, uses: core.panic}\n",
    );
    insert_due(&store, &task, 1).await;
    let w = start_worker(&store, Vec::new(), 1 << 20);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    let metrics = w.stop().await;
    let (status, error, attempt) = only_run(&store).await;
    assert_eq!((status.as_str(), attempt), ("failed", 1));
    assert!(
        error.contains("panicked") && error.contains("index out of range"),
        "{error}"
    );
    assert_finished_once(&store).await;
    assert!(metrics.contains("ordinaut_run_panics_total 1"), "{metrics}");
}

/// `http.request` decodes a body lossily; a NUL byte survives into the step's output, which
/// PostgreSQL's jsonb refuses. The run is recorded as failed, naming the step and the path,
/// once: it does not expire and run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_from_an_http_server_is_recorded_as_a_failed_run_once() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let port = serve_bytes(b"binary\0data");
    let task = task_from_yaml(
        "nul",
        &format!(
            "schedule: {{every: 1h}}\npipeline:\n  steps:\n    - id: fetch\n      uses: http.request\n      with: {{url: 'http://127.0.0.1:{port}/x'}}\n"
        ),
    );
    insert_due(&store, &task, 1).await;
    let w = start_worker(&store, vec![format!("127.0.0.1:{port}")], 1 << 20);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    let metrics = w.stop().await;
    let (status, error, _) = only_run(&store).await;
    assert_eq!(status, "failed");
    assert!(
        error.contains("step `fetch`")
            && error.contains("NUL character")
            && error.contains("$.body"),
        "{error}"
    );
    assert_finished_once(&store).await;
    let (step_status,): (String,) = sqlx::query_as("SELECT status FROM step_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(step_status, "failed");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.failed'"
        )
        .await,
        1
    );
    assert!(
        metrics.contains("ordinaut_unstorable_results_total 1"),
        "{metrics}"
    );
}

/// An output over `--max-output-bytes` fails the run with its size and the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_over_the_limit_is_recorded_as_a_failed_run_with_the_limit() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "big",
        "schedule: {every: 1h}\npipeline:\n  steps:\n    - id: say\n      uses: core.echo\n      with: {message: 'a fairly long message, longer than the tiny limit'}\n",
    );
    insert_due(&store, &task, 1).await;
    let w = start_worker(&store, Vec::new(), 40);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        1,
        Duration::from_secs(30),
    )
    .await;
    w.stop().await;
    let (status, error, _) = only_run(&store).await;
    assert_eq!(status, "failed");
    assert!(
        error.contains("step `say`") && error.contains("limit of 40 bytes"),
        "{error}"
    );
    assert_finished_once(&store).await;
}

/// An occurrence whose earlier attempts never finished (here: leased `maxAttempts` times,
/// as a worker crashing on it each time leaves it) is not run again: its next lease records
/// it as failed with the reason, a `run.failed` event and the metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_occurrence_past_max_attempts_is_given_up_as_failed_not_run() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let default = task_from_yaml("looping", ECHO_TASK);
    let custom = task_from_yaml("looping-two", &format!("maxAttempts: 2\n{ECHO_TASK}"));
    insert_due(&store, &default, 1).await;
    insert_due(&store, &custom, 1).await;
    // Five (resp. two) leases that never finished: the crashed attempts.
    sqlx::query(
        "UPDATE due_work d SET attempt = CASE WHEN t.name = 'looping' THEN 5 ELSE 2 END \
         FROM tasks t WHERE t.uid = d.task_uid",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let w = start_worker(&store, Vec::new(), 1 << 20);
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        2,
        Duration::from_secs(30),
    )
    .await;
    let metrics = w.stop().await;
    let runs: Vec<(String, i32, String)> =
        sqlx::query_as("SELECT status, attempt, error FROM task_runs ORDER BY attempt")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(runs[0].0, "failed");
    assert_eq!(runs[0].1, 3);
    assert!(
        runs[0]
            .2
            .contains("gave up after 2 attempts (spec.maxAttempts: 2)"),
        "{}",
        runs[0].2
    );
    assert_eq!(runs[1].1, 6);
    assert!(
        runs[1]
            .2
            .contains("gave up after 5 attempts (spec.maxAttempts: 5)"),
        "{}",
        runs[1].2
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM step_runs").await,
        0,
        "not run"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.failed'"
        )
        .await,
        2
    );
    assert!(
        metrics.contains("ordinaut_runs_exhausted_total 2"),
        "{metrics}"
    );
}
