//! Event-driven Tasks with real worker processes, PostgreSQL and Redis: every published event
//! starts exactly one run per listening Task, through worker crashes (SIGKILL) and events
//! re-added to the stream; `on.filter` skips what it should; taskFinished chains run in order.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_store::{PublishRequest, Store, TaskProjection, topic_stream};
use ordinaut_test_support::worker::{
    WorkerProcess, count, redis_url, unique_stream, wait_for_count,
};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

/// A projection of a Task `on:` the given trigger (YAML), echoing what it got.
fn on_task(name: &str, on_yaml: &str) -> TaskProjection {
    let yaml = format!(
        "schedule:\n  on:\n{on_yaml}\npipeline:\n  steps:\n    - id: got\n      uses: core.echo\n      with:\n        event: \"${{params.event}}\"\n"
    );
    let mut t = ordinaut_test_support::worker::task_from_yaml(name, &yaml);
    t.schedule_kind = "on".into();
    t.schedule = "on".into();
    t
}

fn workers(db_url: &str, names: &[&str], events_stream: &str) -> Vec<WorkerProcess> {
    let redis = redis_url();
    names
        .iter()
        .map(|n| {
            WorkerProcess::start(
                db_url,
                n,
                &[
                    "--redis-url",
                    &redis,
                    "--events-stream",
                    events_stream,
                    "--event-reclaim-idle",
                    "2s",
                    "--lease-duration",
                    "2s",
                    "--heartbeat-interval",
                    "500ms",
                    "--reap-interval",
                    "300ms",
                    "--migrate",
                    "false",
                    // Several tests run at once, each with several workers: stay well
                    // under PostgreSQL's 100 connections.
                    "--db-pool-size",
                    "6",
                    "--concurrency",
                    "16",
                ],
            )
        })
        .collect()
}

async fn publish(store: &Store, topic: &str, id: &str, data: serde_json::Value) {
    store
        .publish_event(&PublishRequest {
            topic,
            data: &data,
            source: "test",
            id: Some(id.to_string()),
        })
        .await
        .unwrap();
}

/// Copies every entry of `stream` to its end again (the same fields: same event ids), in one
/// pipeline on a connection that waits up to 30 s for Redis (CI machines stall).
async fn re_add_all(stream: &str) -> usize {
    let entries = ordinaut_test_support::redis::xrange(&redis_url(), stream).await;
    let mut conn = ordinaut_test_support::redis::connect(&redis_url())
        .await
        .unwrap();
    let mut pipe = redis::pipe();
    for e in &entries {
        let cmd = pipe.cmd("XADD").arg(stream).arg("*");
        for (k, v) in &e.map {
            let v: String = redis::from_redis_value(v.clone()).unwrap();
            cmd.arg(k).arg(v);
        }
    }
    let _: Vec<String> = pipe.query_async(&mut conn).await.unwrap();
    entries.len()
}

async fn xlen(stream: &str) -> usize {
    ordinaut_test_support::redis::xlen(&redis_url(), stream)
        .await
        .unwrap_or(0)
}

fn topic() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_events_start_a_thousand_runs_once_each_through_sigkill_and_replays() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let topic = topic();
    let task = on_task("listener", &format!("    topic: {topic}"));
    store.upsert_task(&task).await.unwrap();
    let events_stream = unique_stream("events");
    let procs = workers(&db.url, &["w1", "w2", "w3"], &events_stream);
    for i in 0..1000 {
        publish(&store, &topic, &format!("e-{i}"), json!({"n": i})).await;
    }
    let rows = format!(
        "SELECT count(*) FROM due_work WHERE task_uid = '{}' AND trigger = 'event'",
        task.uid
    );
    // Every event on the stream before anything is replayed.
    let stream = topic_stream(&topic);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while xlen(&stream).await < 1000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not publish the events"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill one worker in the middle of the stream.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while count(&store, &rows).await < 300 {
        assert!(std::time::Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    procs[0].signal("KILL");
    // The same events again: on the stream (same entries re-added) and published again.
    let re_added = re_add_all(&stream).await;
    assert!(re_added >= 1000);
    for i in (0..1000).step_by(7) {
        publish(&store, &topic, &format!("e-{i}"), json!({"n": i})).await;
    }
    let succeeded = format!(
        "SELECT count(*) FROM task_runs WHERE task_uid = '{}' AND status = 'succeeded'",
        task.uid
    );
    wait_for_count(&store, &succeeded, 1000, Duration::from_secs(120)).await;
    // Let every copy be consumed (a stray duplicate would surface) before checking.
    let group_done = format!(
        "SELECT count(*) FROM task_event_counts WHERE task_uid = '{}' AND received >= {}",
        task.uid,
        1000 + re_added + 143
    );
    wait_for_count(&store, &group_done, 1, Duration::from_secs(60)).await;
    assert_eq!(count(&store, &rows).await, 1000, "one occurrence per event");
    assert_eq!(
        count(&store, &succeeded).await,
        1000,
        "one successful run per event"
    );
    let distinct_inputs = format!(
        "SELECT count(DISTINCT s.input->'event'->'data'->>'n') FROM step_runs s \
         JOIN task_runs r ON r.id = s.run_id WHERE r.task_uid = '{}' AND r.status = 'succeeded'",
        task.uid
    );
    assert_eq!(
        count(&store, &distinct_inputs).await,
        1000,
        "each run saw its own event"
    );
    let c = store.event_counts(task.uid).await.unwrap();
    assert_eq!(c.started, 1000);
    drop(procs);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_filter_skips_the_events_it_rejects_and_counts_them() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let topic = topic();
    let task = on_task(
        "picky",
        &format!("    topic: {topic}\n    filter: \"data.severity == 'high'\""),
    );
    store.upsert_task(&task).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _procs = [WorkerProcess::start(
        &db.url,
        "w1",
        &[
            "--redis-url",
            &redis_url(),
            "--events-stream",
            &unique_stream("events"),
            "--listen-addr",
            &listen,
            "--migrate",
            "false",
            "--db-pool-size",
            "6",
        ],
    )];
    for i in 0..10 {
        let severity = if i % 2 == 0 { "high" } else { "low" };
        publish(
            &store,
            &topic,
            &format!("f-{i}"),
            json!({"severity": severity}),
        )
        .await;
    }
    let filtered = format!(
        "SELECT count(*) FROM task_event_counts WHERE task_uid = '{}' AND received = 10",
        task.uid
    );
    wait_for_count(&store, &filtered, 1, Duration::from_secs(60)).await;
    let c = store.event_counts(task.uid).await.unwrap();
    assert_eq!((c.started, c.filtered, c.dropped), (5, 5, 0));
    let high = format!(
        "SELECT count(*) FROM due_work WHERE task_uid = '{}' \
         AND payload->'event'->'data'->>'severity' = 'high'",
        task.uid
    );
    assert_eq!(count(&store, &high).await, 5);
    // The worker's metrics say the same (copied from the consumer once a second).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = scrape(&listen);
        if metrics.contains("ordinaut_events_filtered_total 5")
            && metrics.contains("ordinaut_events_runs_started_total 5")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never showed 5 and 5:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The body of GET /metrics at `addr` (empty while the worker is not listening yet).
fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let _ = conn.write_all(request.as_bytes());
    let mut body = String::new();
    let _ = conn.read_to_string(&mut body);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chain_a_b_c_runs_in_order_for_each_run_of_a() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let topic = topic();
    let a = on_task("a", &format!("    topic: {topic}"));
    let b = on_task(
        "b",
        "    taskFinished:\n      name: a\n      outcome: [Succeeded]",
    );
    let c = on_task("c", "    taskFinished:\n      name: b");
    for t in [&a, &b, &c] {
        store.upsert_task(t).await.unwrap();
    }
    let _procs = workers(&db.url, &["w1", "w2"], &unique_stream("events"));
    for i in 0..20 {
        publish(&store, &topic, &format!("c-{i}"), json!({"i": i})).await;
    }
    let c_runs = format!(
        "SELECT count(*) FROM task_runs WHERE task_uid = '{}' AND status = 'succeeded'",
        c.uid
    );
    wait_for_count(&store, &c_runs, 20, Duration::from_secs(120)).await;
    // Each link: the follower's occurrence names the run it follows, which finished before
    // the follower's run started.
    let in_order = |follower: Uuid, leader: Uuid| {
        format!(
            "SELECT count(*) FROM task_runs f \
             JOIN due_work d ON d.id = f.due_work_id \
             JOIN task_runs l ON l.id = (d.payload->'event'->'run'->>'id')::uuid \
             WHERE f.task_uid = '{follower}' AND l.task_uid = '{leader}' \
               AND l.finished_at <= f.started_at AND f.status = 'succeeded'"
        )
    };
    assert_eq!(count(&store, &in_order(b.uid, a.uid)).await, 20);
    assert_eq!(count(&store, &in_order(c.uid, b.uid)).await, 20);
    // Every run of A reached C: the chain starts from the events A ran for.
    let roots = format!(
        "SELECT count(DISTINCT d.event_id) FROM due_work d WHERE d.task_uid = '{}'",
        a.uid
    );
    assert_eq!(count(&store, &roots).await, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_ten_thousand_events_loses_none() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let topic = topic();
    let task = on_task("burst", &format!("    topic: {topic}"));
    store.upsert_task(&task).await.unwrap();
    // Published in bulk (one outbox insert), as a busy publisher would.
    let events: Vec<ordinaut_store::OutboxEvent> = (0..10_000)
        .map(|i| ordinaut_store::OutboxEvent {
            event_type: ordinaut_store::PUBLISHED_EVENT_TYPE.into(),
            stream: Some(topic_stream(&topic)),
            payload: json!({
                "id": format!("b-{i}"),
                "topic": topic,
                "publishedAt": chrono::Utc::now().to_rfc3339(),
                "data": {"i": i},
            }),
        })
        .collect();
    store.append_events(None, &events).await.unwrap();
    let _procs = workers(&db.url, &["w1", "w2"], &unique_stream("events"));
    let succeeded = format!(
        "SELECT count(*) FROM task_runs WHERE task_uid = '{}' AND status = 'succeeded'",
        task.uid
    );
    wait_for_count(&store, &succeeded, 10_000, Duration::from_secs(300)).await;
    assert_eq!(store.event_counts(task.uid).await.unwrap().started, 10_000);
}
