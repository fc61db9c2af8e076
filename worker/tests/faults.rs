//! Real worker processes through real faults: PostgreSQL restarted under load (fast and
//! immediate shutdown, an outage longer than the lease), and a worker stopped with SIGSTOP
//! past its lease and resumed (self-fencing: no two attempts overlap).
#![allow(clippy::unwrap_used)]

use ordinaut_store::Store;
use ordinaut_store::testing::{PrivatePostgres, Shutdown};
use ordinaut_test_support::worker::*;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A count that tolerates the database being away (retried until `deadline`).
async fn count_when_up(store: &Store, sql: &str) -> Option<i64> {
    sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .ok()
        .map(|(n,)| n)
}

async fn wait_at_least(store: &Store, sql: &str, want: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = count_when_up(store, sql).await;
        if got.is_some_and(|n| n >= want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{sql}` >= {want} (got {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const DONE: &str = "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL";

/// Two workers run 600 half-second runs while PostgreSQL is stopped twice: a fast shutdown
/// (sessions get 57P01) restarted at once, then an immediate one (sockets cut, batches killed
/// mid-write) kept down longer than the lease. Every occurrence is recorded exactly once,
/// every run started exactly once (no finished run ran again because its record waited),
/// and none failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_fast_and_immediate_under_load_records_every_run_exactly_once() {
    const N: i64 = 600;
    let pg = PrivatePostgres::start();
    let url = pg.create_database("restart").await;
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let task = task_from_yaml(
        "restart",
        "schedule: {every: 1h}\npipeline:\n  steps:\n    - {id: nap, uses: core.sleep, with: {duration: 500ms}}\n",
    );
    insert_due(&store, &task, N as usize).await;
    let args = [
        "--migrate",
        "false",
        "--lease-duration",
        "3s",
        "--heartbeat-interval",
        "500ms",
        "--reap-interval",
        "300ms",
        "--poll-interval",
        "200ms",
        "--concurrency",
        "16",
        "--batch-size",
        "16",
        // Every run record is counted: no history retention (100 succeeded runs per Task).
        "--retention-interval",
        "0s",
    ];
    let _workers: Vec<_> = (0..2)
        .map(|i| WorkerProcess::start(&url, &format!("w{i}"), &args))
        .collect();

    wait_at_least(&store, DONE, 60, Duration::from_secs(60)).await;
    pg.stop(Shutdown::Fast);
    pg.restart();
    wait_at_least(&store, DONE, 250, Duration::from_secs(90)).await;
    pg.stop(Shutdown::Immediate);
    // Down for longer than the lease: every lease held expires meanwhile.
    std::thread::sleep(Duration::from_secs(4));
    pg.restart();
    wait_at_least(&store, DONE, N, Duration::from_secs(180)).await;

    let succeeded = "SELECT count(DISTINCT due_work_id) FROM task_runs WHERE status = 'succeeded'";
    assert_eq!(count(&store, succeeded).await, N, "lost occurrences");
    assert_eq!(
        count(&store, "SELECT count(*) FROM task_runs").await,
        N,
        "doubled or failed runs"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.started'"
        )
        .await,
        N,
        "a run started twice"
    );
}

/// Requests seen by a tiny HTTP server: (path, when).
type Hits = Arc<Mutex<Vec<String>>>;

fn hit_server() -> (u16, Hits) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits: Hits = Arc::default();
    let seen = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            if let Some(path) = head.split_whitespace().nth(1) {
                seen.lock().unwrap().push(path.to_string());
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (port, hits)
}

/// Worker A leases four runs (a 3 s nap, then an HTTP call naming the attempt) and is
/// stopped with SIGSTOP; its leases expire, worker B runs the occurrences as attempt 2, and
/// A is resumed (SIGCONT) while B's attempts are running, A's naps long over. A's attempts
/// stop at once (self-fencing): the server sees exactly one call per occurrence, each from
/// attempt 2, and the records are B's alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_past_its_lease_never_overlaps_the_next_attempt() {
    let (db, store) = ordinaut_store::testing::TestDb::migrated().await.unwrap();
    let (port, hits) = hit_server();
    let pipeline = format!(
        "schedule: {{every: 1h}}\npipeline:\n  steps:\n    - {{id: nap, uses: core.sleep, with: {{duration: 3s}}}}\n    - id: call\n      uses: http.request\n      with: {{url: 'http://127.0.0.1:{port}/hit/${{task.name}}/${{run.attempt}}'}}\n"
    );
    for i in 0..4 {
        insert_due(&store, &task_from_yaml(&format!("fence-{i}"), &pipeline), 1).await;
    }
    let allow = format!("127.0.0.1:{port}");
    let args = [
        "--migrate",
        "false",
        "--lease-duration",
        "2s",
        "--heartbeat-interval",
        "300ms",
        "--lease-safety-margin",
        "500ms",
        "--reap-interval",
        "200ms",
        "--poll-interval",
        "200ms",
        "--http-allow-hosts",
        &allow,
        // The test server listens on loopback, and the Task has no Agent.
        "--http-allow-networks",
        "127.0.0.0/8",
        "--http-allow-agentless=true",
    ];
    // A's own /metrics port: the test waits on A's gauges after resuming it.
    let a_port = ordinaut_test_support::free_port();
    let a_listen = format!("127.0.0.1:{a_port}");
    let a_args: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--listen-addr", &a_listen])
        .collect();
    let a = WorkerProcess::start(&db.url, "A", &a_args);
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE locked_by = 'A'",
        4,
        Duration::from_secs(30),
    )
    .await;
    let stopped = Instant::now();
    a.signal("STOP");
    let _b = WorkerProcess::start(&db.url, "B", &args);
    wait_for_count(
        &store,
        "SELECT count(*) FROM due_work WHERE locked_by = 'B' AND attempt = 2",
        4,
        Duration::from_secs(30),
    )
    .await;
    // A's naps (3 s from before the stop) are over; B's attempts are in theirs.
    while stopped.elapsed() < Duration::from_millis(3500) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.signal("CONT");
    wait_for_count(&store, DONE, 4, Duration::from_secs(30)).await;
    // A's resumed runs have all ended (fenced or lost) and none of its results waits to be
    // written: anything it was going to do (a call, a record), it has done by now.
    ordinaut_test_support::until(
        Duration::from_secs(30),
        "worker A's resumed runs to end with no result waiting",
        || async move {
            let metrics = ordinaut_test_support::http_get(a_port, "/metrics").await;
            metrics.contains("\nordinaut_runs_in_flight 0\n")
                && metrics.contains("\nordinaut_results_waiting 0\n")
        },
    )
    .await;

    let mut seen = hits.lock().unwrap().clone();
    seen.sort();
    let want: Vec<String> = (0..4).map(|i| format!("/hit/fence-{i}/2")).collect();
    assert_eq!(
        seen, want,
        "calls made by the stale attempts, or missing calls"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE status = 'succeeded' AND attempt = 2 AND worker = 'B'"
        )
        .await,
        4
    );
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 4);
    // No two attempts of one occurrence overlap in the step records.
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM step_runs s1 JOIN task_runs r1 ON r1.id = s1.run_id \
             JOIN task_runs r2 ON r2.due_work_id = r1.due_work_id AND r2.attempt <> r1.attempt \
             JOIN step_runs s2 ON s2.run_id = r2.id \
             WHERE s1.started_at < s2.finished_at AND s2.started_at < s1.finished_at"
        )
        .await,
        0
    );
}
