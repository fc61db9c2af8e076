//! Real worker processes against a real database: exactly-once under load, crash recovery
//! after `kill -9`, and draining on SIGTERM.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use std::time::Duration;

/// `n` worker binaries (`w0`, `w1`…) on the test's database with `extra` flags, none migrating
/// and none pruning history: the tests count every run record, and retention (100 succeeded
/// runs per Task by default) would prune the first ones when a worker that starts late makes
/// its first pass.
fn start_workers(db_url: &str, n: usize, extra: &[&str]) -> Vec<WorkerProcess> {
    let mut args = vec!["--migrate", "false", "--retention-interval", "0s"];
    args.extend_from_slice(extra);
    (0..n)
        .map(|i| WorkerProcess::start(db_url, &format!("w{i}"), &args))
        .collect()
}

/// Waits (2 minutes at most) until `n` occurrences are done.
async fn wait_all_done(store: &ordinaut_store::Store, n: i64) {
    wait_for_count(
        store,
        "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL",
        n,
        Duration::from_secs(120),
    )
    .await;
}

/// Three worker binaries and 2,000 due occurrences of a `core.echo` pipeline: all run, each
/// exactly once, with run and step records and one `run.succeeded` event each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_run_2000_occurrences_exactly_once_with_records() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml("bulk-echo", ECHO_TASK);
    insert_due(&store, &task, 2_000).await;
    let redis = redis_url();
    let stream = unique_stream("bulk");
    let _workers = start_workers(
        &db.url,
        3,
        &["--redis-url", &redis, "--events-stream", &stream],
    );
    wait_all_done(&store, 2_000).await;
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 2_000);
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT due_work_id) FROM task_runs WHERE status = 'succeeded'"
        )
        .await,
        2_000
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM step_runs WHERE status = 'succeeded'"
        )
        .await,
        2_000
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.succeeded'"
        )
        .await,
        2_000
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.started'"
        )
        .await,
        2_000
    );
    // The rendered input names the task and its run, and is stored with the step.
    let (message,): (String,) = sqlx::query_as("SELECT input->>'message' FROM step_runs LIMIT 1")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(message.starts_with("hello bulk-echo run "), "{message}");
    // Work was shared (no single worker did it all).
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM task_runs GROUP BY worker")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert!(
        per_worker.len() >= 2,
        "one worker did everything: {per_worker:?}"
    );
}

/// `kill -9` of a worker holding leases mid-run: its occurrences are reaped and completed by
/// the other; no occurrence ends without a successful run and none has two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_leases_are_reaped_and_run_by_the_others() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "slow",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with: {duration: 300ms}
"#,
    );
    insert_due(&store, &task, 60).await;
    let fast_reap = [
        "--lease-duration",
        "2s",
        "--heartbeat-interval",
        "500ms",
        "--reap-interval",
        "300ms",
        "--concurrency",
        "10",
        "--batch-size",
        "10",
        "--migrate",
        "false",
    ];
    let victim = WorkerProcess::start(&db.url, "victim", &fast_reap);
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE locked_by = 'victim' AND done_at IS NULL",
        10,
        Duration::from_secs(30),
    )
    .await;
    victim.signal("KILL");
    let _survivor = WorkerProcess::start(&db.url, "survivor", &fast_reap);
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL",
        60,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT due_work_id) FROM task_runs WHERE status = 'succeeded'"
        )
        .await,
        60
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM (SELECT due_work_id FROM task_runs WHERE status = 'succeeded' \
             GROUP BY due_work_id HAVING count(*) > 1) twice"
        )
        .await,
        0,
        "an occurrence succeeded twice"
    );
    // The killed worker's occurrences were run again, as attempt 2, by the survivor.
    assert!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE attempt = 2 AND worker = 'survivor'"
        )
        .await
            >= 10
    );
}

/// SIGTERM: the worker stops leasing, finishes what it runs and exits 0 within the drain
/// timeout; nothing stays locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_runs_and_exits_zero() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "drain",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with: {duration: 500ms}
"#,
    );
    insert_due(&store, &task, 40).await;
    let mut w = WorkerProcess::start(
        &db.url,
        "drainer",
        &[
            "--concurrency",
            "5",
            "--batch-size",
            "5",
            "--drain-timeout",
            "10s",
            "--migrate",
            "false",
        ],
    );
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE locked_by = 'drainer' AND done_at IS NULL",
        5,
        Duration::from_secs(30),
    )
    .await;
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "worker exited with {status}");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE locked_by IS NOT NULL"
        )
        .await,
        0
    );
    // What it started, it finished: every started run has its outcome.
    let started = count(
        &store,
        "SELECT count(*) FROM outbox WHERE event_type = 'run.started'",
    )
    .await;
    let finished = count(&store, "SELECT count(*) FROM task_runs").await;
    assert!(finished >= 5);
    assert_eq!(started, finished);
    // The rest is still queued for others.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NULL"
        )
        .await,
        40 - finished
    );
}

/// SIGTERM with runs longer than the drain timeout: their leases are handed back (not left
/// to expire), the worker still exits 0, and another worker runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_past_the_drain_timeout_hands_leases_back() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let task = task_from_yaml(
        "long",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: nap
      uses: core.sleep
      with: {duration: 1h}
"#,
    );
    insert_due(&store, &task, 3).await;
    let mut w = WorkerProcess::start(
        &db.url,
        "impatient",
        &["--drain-timeout", "300ms", "--migrate", "false"],
    );
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE locked_by = 'impatient'",
        3,
        Duration::from_secs(30),
    )
    .await;
    w.signal("TERM");
    let status = w.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "worker exited with {status}");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE locked_by IS NOT NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NULL AND attempt = 1"
        )
        .await,
        3
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM task_runs").await,
        0,
        "handed-back runs are not failures"
    );
}

/// Redis stopped during a burst of runs: no run fails because of it, and every event
/// arrives, in order per task, once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_during_a_burst_fails_no_run_and_loses_no_event() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let mut redis = PrivateRedis::start();
    let a = task_from_yaml("burst-a", ECHO_TASK);
    let b = task_from_yaml("burst-b", ECHO_TASK);
    store.upsert_task(&a).await.unwrap();
    store.upsert_task(&b).await.unwrap();
    let _w = WorkerProcess::start(
        &db.url,
        "relayer",
        &["--migrate", "false", "--redis-url", &redis.url()],
    );
    // Redis goes away; a burst of 400 runs (200 per task) arrives meanwhile.
    redis.kill();
    insert_due(&store, &a, 200).await;
    let now = chrono::Utc::now();
    let occ: Vec<_> = (0..200)
        .map(|i| {
            ordinaut_store::NewOccurrence::scheduled(b.uid, now - chrono::Duration::milliseconds(i))
        })
        .collect();
    store.insert_occurrences(&occ).await.unwrap();
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        400,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE status <> 'succeeded'"
        )
        .await,
        0
    );
    assert!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await
            >= 400 * 3
    );
    // Redis returns (empty: it keeps nothing on disk); every waiting event is relayed.
    redis.restart();
    wait_for_count(
        &store,
        "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        0,
        Duration::from_secs(60),
    )
    .await;
    let entries = stream_entries(&redis.url(), ordinaut_store::DEFAULT_STREAM).await;
    assert_eq!(
        entries.len(),
        400 * 3,
        "run.started, step.succeeded and run.succeeded per run"
    );
    for task in ["burst-a", "burst-b"] {
        // Per run, in stream order: started, then step, then the outcome.
        let mut seen: std::collections::HashMap<String, Vec<String>> = Default::default();
        for (ty, p) in entries.iter().filter(|(_, p)| p["task"] == task) {
            seen.entry(p["runId"].to_string())
                .or_default()
                .push(ty.clone());
        }
        assert_eq!(seen.len(), 200);
        for types in seen.values() {
            assert_eq!(
                types,
                &["run.started", "step.succeeded", "run.succeeded"],
                "{task}: {types:?}"
            );
        }
    }
}

/// `--help` documents every flag.
#[test]
fn help_documents_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordinaut-worker"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--database-url",
        "--redis-url",
        "--worker-id",
        "--concurrency",
        "--batch-size",
        "--lease-duration",
        "--heartbeat-interval",
        "--poll-interval",
        "--reap-interval",
        "--drain-timeout",
        "--step-timeout",
        "--http-allow-hosts",
        "--db-pool-size",
        "--migrate",
        "--listen-addr",
        "--log-format",
        "--log-level",
        "--events-stream",
        "--events-maxlen",
        "--secrets-dir",
        "--mcp-sync-interval",
        "--lease-safety-margin",
        "--max-output-bytes",
        "--retention-max-age",
        "--retention-successful-runs",
        "--retention-failed-runs",
        "--retention-outbox-age",
        "--retention-audit-age",
        "--retention-interval",
        "--liveness-stall",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
    // Every flag has an environment variable.
    assert!(help.matches("[env: ").count() >= 30, "{help}");
}

/// A burst of 500 occurrences of 500 Tasks due on one whole second, two worker binaries with
/// a lease lookahead: the burst is leased before its second (no lease statement stands
/// between the second and the starts), yet no run starts before its time, and each runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_due_on_one_second_is_leased_ahead_and_started_on_time_not_before() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp(chrono::Utc::now().timestamp() + 8, 0)
        .unwrap();
    let mut occ = Vec::new();
    for i in 0..500 {
        let task = task_from_yaml(&format!("burst-{i}"), ECHO_TASK);
        store.upsert_task(&task).await.unwrap();
        occ.push(ordinaut_store::NewOccurrence::scheduled(task.uid, at));
    }
    assert_eq!(store.insert_occurrences(&occ).await.unwrap(), 500);
    let _workers = start_workers(
        &db.url,
        2,
        &["--concurrency", "512", "--lease-lookahead", "1s"],
    );
    wait_all_done(&store, 500).await;
    assert_eq!(
        count(
            &store,
            "SELECT count(DISTINCT due_work_id) FROM task_runs WHERE status = 'succeeded'"
        )
        .await,
        500
    );
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 500);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE started_at < scheduled_for"
        )
        .await,
        0,
        "a run started before its time"
    );
    let early = count(
        &store,
        "SELECT count(*) FROM due_work WHERE leased_at < scheduled_for",
    )
    .await;
    assert!(early > 0, "no occurrence was leased ahead of its time");
}
