//! Event-trigger benchmark, with real `ordinaut-worker` processes, PostgreSQL and Redis, each
//! phase in a fresh database, one Task `on: {topic}` with a one-step `core.echo` pipeline:
//!
//! 1. **steady**: events published one by one (`Store::publish_event`, as the CLI and
//!    `core.publish` do) at a steady rate for S seconds: event-to-run-start latency (run
//!    start − the event's `publishedAt`, from the run records), p50/p95/p99. The path measured
//!    is outbox → relay → topic stream → consumer group → occurrence → lease → run.
//! 2. **burst**: N events written to the outbox at once, then W workers started: how fast the
//!    burst drains (events/s until N runs have succeeded).
//!
//! Usage: `events --worker-bin PATH [--database-url URL] [--redis-url URL] [--rate R]
//!         [--seconds S] [--burst N] [--workers W] [--out FILE]`. `bench/run events` builds
//! and runs it.

use chrono::Utc;
use ordinaut_bench::Workers;
use ordinaut_store::{OutboxEvent, PUBLISHED_EVENT_TYPE, PublishRequest, Store, TaskProjection};
use ordinaut_test_support::ScratchDb;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    worker_bin: String,
    admin_url: String,
    redis_url: String,
    rate: u64,
    seconds: u64,
    burst: usize,
    workers: usize,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        worker_bin: String::new(),
        admin_url: ordinaut_bench::database_url(),
        redis_url: std::env::var("ORDINAUT_BENCH_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        rate: 100,
        seconds: 30,
        burst: 10_000,
        workers: 2,
        out: None,
    };
    ordinaut_bench::flags(|f, v| {
        match f {
            "--worker-bin" => a.worker_bin = v,
            "--database-url" => a.admin_url = v,
            "--redis-url" => a.redis_url = v,
            "--rate" => a.rate = ordinaut_bench::parsed(f, &v),
            "--seconds" => a.seconds = ordinaut_bench::parsed(f, &v),
            "--burst" => a.burst = ordinaut_bench::parsed(f, &v),
            "--workers" => a.workers = ordinaut_bench::parsed(f, &v),
            "--out" => a.out = Some(v),
            _ => return false,
        }
        true
    });
    assert!(!a.worker_bin.is_empty(), "--worker-bin is required");
    a
}

fn start_workers(args: &Args, url: &str, stream: &str) -> Workers {
    Workers(
        (0..args.workers)
            .map(|i| {
                Command::new(&args.worker_bin)
                    .args([
                        "--database-url",
                        url,
                        "--worker-id",
                        &format!("bench-{i}"),
                        "--listen-addr",
                        "127.0.0.1:0",
                        "--migrate",
                        "false",
                        "--redis-url",
                        &args.redis_url,
                        "--events-stream",
                        stream,
                    ])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start worker")
            })
            .collect(),
    )
}

/// A Task on `topic` whose run echoes one field.
async fn topic_task(store: &Store, topic: &str) -> uuid::Uuid {
    let spec: ordinaut_api::TaskSpec = serde_yaml::from_str(&format!(
        "schedule: {{on: {{topic: {topic}}}}}\npipeline:\n  steps:\n    - {{id: noop, uses: core.echo, with: {{n: 1}}}}\n"
    ))
    .expect("spec");
    let task = TaskProjection {
        uid: uuid::Uuid::new_v4(),
        namespace: "bench".into(),
        name: "on-topic".into(),
        generation: 1,
        spec: serde_json::to_value(&spec).expect("spec json"),
        schedule_kind: "on".into(),
        schedule: format!("topic {topic}"),
        timezone: "UTC".into(),
        next_run_at: None,
        materialized_until: None,
        suspended: false,
        snooze_until: None,
        priority: 0,
        concurrency_policy: "Allow".into(),
    };
    store.upsert_task(&task).await.expect("task");
    task.uid
}

async fn succeeded(store: &Store) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM task_runs WHERE status = 'succeeded'")
        .fetch_one(store.pool())
        .await
        .expect("count");
    n
}

async fn wait_for_runs(store: &Store, n: i64, limit: Duration) -> Duration {
    let start = Instant::now();
    while succeeded(store).await < n {
        assert!(
            start.elapsed() < limit,
            "{n} runs did not finish within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

async fn steady(args: &Args) -> Value {
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 8).await;
    let topic = format!("bench-{}", uuid::Uuid::new_v4().simple());
    topic_task(&db.store, &topic).await;
    let stream = format!("ordinaut:bench:{}", uuid::Uuid::new_v4().simple());
    let workers = start_workers(args, &db.url, &stream);
    // Let the workers find the topic and create the group.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let total = args.rate * args.seconds;
    let start = Instant::now();
    let data = json!({"n": 1});
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        db.store
            .publish_event(&PublishRequest {
                topic: &topic,
                data: &data,
                source: "bench",
                id: None,
            })
            .await
            .expect("publish");
    }
    wait_for_runs(&db.store, total as i64, Duration::from_secs(120)).await;
    let (p50, p95, p99, max): (f64, f64, f64, f64) = sqlx::query_as(
        "WITH l AS (SELECT extract(epoch FROM r.started_at - \
             (d.payload #>> '{event,publishedAt}')::timestamptz) * 1000 AS ms \
             FROM task_runs r JOIN due_work d ON d.id = r.due_work_id) \
         SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)::float8 FROM l",
    )
    .fetch_one(db.store.pool())
    .await
    .expect("latency");
    drop(workers);
    db.drop_db().await;
    println!(
        "steady {} events/s for {} s: event to run start p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        args.rate, args.seconds
    );
    json!({"rate": args.rate, "seconds": args.seconds, "events": total,
           "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": max})
}

async fn burst(args: &Args) -> Value {
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 8).await;
    let topic = format!("bench-{}", uuid::Uuid::new_v4().simple());
    topic_task(&db.store, &topic).await;
    let now = Utc::now().to_rfc3339();
    let events: Vec<OutboxEvent> = (0..args.burst)
        .map(|i| OutboxEvent {
            event_type: PUBLISHED_EVENT_TYPE.into(),
            stream: Some(ordinaut_store::topic_stream(&topic)),
            payload: json!({"id": format!("burst-{i}"), "topic": topic, "publishedAt": now,
                            "source": "bench", "data": {"i": i}}),
        })
        .collect();
    for chunk in events.chunks(2000) {
        db.store.append_events(None, chunk).await.expect("append");
    }
    let stream = format!("ordinaut:bench:{}", uuid::Uuid::new_v4().simple());
    let workers = start_workers(args, &db.url, &stream);
    let took = wait_for_runs(&db.store, args.burst as i64, Duration::from_secs(600)).await;
    drop(workers);
    db.drop_db().await;
    let rate = args.burst as f64 / took.as_secs_f64();
    println!(
        "burst of {} events: all runs succeeded in {:.1} s ({rate:.0} events/s, {} workers, from their start)",
        args.burst,
        took.as_secs_f64(),
        args.workers
    );
    json!({"events": args.burst, "seconds": took.as_secs_f64(), "events_per_s": rate,
           "workers": args.workers})
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let steady = steady(&args).await;
    let burst = burst(&args).await;
    let out = json!({"steady": steady, "burst": burst});
    if let Some(path) = &args.out {
        std::fs::write(path, serde_json::to_string_pretty(&out).expect("json")).expect("write");
    }
}
