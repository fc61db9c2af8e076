//! Readiness reflects whether the worker can do its job: it leases from PostgreSQL, so a
//! Redis outage leaves it ready (degraded: events wait in the outbox) and runs go on.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The status code of `GET path` on 127.0.0.1:`port`, `None` while nothing answers.
fn status(port: u16, path: &str) -> Option<u16> {
    get(port, path).map(|(code, _)| code)
}

/// The status code and body of `GET path`.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\nhost: x\r\n\r\n").as_bytes())
        .ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).ok()?;
    let code = reply.split_whitespace().nth(1)?.parse().ok()?;
    let body = reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

fn wait_status(port: u16, path: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = status(port, path);
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "{path}: {got:?}, want {want}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_leaves_the_worker_ready_and_running() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let mut redis = PrivateRedis::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let task = task_from_yaml("ready", ECHO_TASK);
    let _w = WorkerProcess::start(
        &db.url,
        "ready",
        &[
            "--migrate",
            "false",
            "--redis-url",
            &redis.url(),
            "--listen-addr",
            &listen,
        ],
    );
    wait_status(port, "/readyz", 200);
    assert_eq!(get(port, "/readyz").unwrap().1, "ready\n");
    redis.kill();
    insert_due(&store, &task, 20).await;
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs WHERE status = 'succeeded'",
        20,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        status(port, "/readyz"),
        Some(200),
        "Redis down must not make the worker unready"
    );
    let (_, body) = get(port, "/readyz").unwrap();
    assert!(
        body.starts_with("ready (degraded: Redis unreachable"),
        "the body names the degraded state: {body}"
    );
    assert_eq!(status(port, "/healthz"), Some(200));
    assert!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL"
        )
        .await
            >= 20,
        "the events wait in the outbox"
    );
}

/// A PostgreSQL that accepts statements and never answers (every server process stopped
/// with SIGSTOP) wedges the lease loop: `/healthz` fails once it has waited longer than
/// `--liveness-stall`, so Kubernetes would restart the pod; it recovers when the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_database_fails_liveness_and_recovery_restores_it() {
    let pg = ordinaut_store::testing::PrivatePostgres::start();
    let url = pg.create_database("live").await;
    let store = ordinaut_store::Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _w = WorkerProcess::start(
        &url,
        "live",
        &[
            "--migrate",
            "false",
            "--listen-addr",
            &listen,
            "--liveness-stall",
            "2s",
            "--poll-interval",
            "200ms",
        ],
    );
    wait_status(port, "/healthz", 200);
    pg.pause();
    wait_status(port, "/healthz", 503);
    pg.resume();
    wait_status(port, "/healthz", 200);
    let task = task_from_yaml("after", ECHO_TASK);
    insert_due(&store, &task, 3).await;
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs WHERE status = 'succeeded'",
        3,
        Duration::from_secs(30),
    )
    .await;
}
