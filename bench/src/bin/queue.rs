//! Queue benchmark, with real `ordinaut-worker` processes against one PostgreSQL, each phase in
//! a fresh database:
//!
//! 1. **drain**: N no-op occurrences already due (a one-step `core.echo` pipeline; every run
//!    writes its run record, step record and outbox events) drained by W workers: runs/s.
//! 2. **drain, relayed**: the same with `--redis-url`, timed until every event is on the Redis
//!    stream (the workers' outbox relay publishes them): runs/s with delivery.
//! 3. **steady**: 100 occurrences due per second for S seconds: schedule lag.
//! 4. **every-Tasks**: 100 and 1,000 Tasks with `every: 1s` for T seconds, then 1,000 such
//!    Tasks while a drain of N runs: schedule lag.
//!
//! Schedule lag is start − scheduled time, from the run records, p50/p95/p99. Occurrences are
//! materialized ahead, as the operator does; the workers sleep until the earliest one is due.
//!
//! Usage: `queue --worker-bin PATH [--database-url URL] [--redis-url URL] [--runs N]
//!         [--workers W] [--steady-seconds S] [--every-seconds T] [--phases LIST] [--out FILE]`
//! (`--phases` is a comma list of drain,relay,steady,every; default all, `relay` only with a
//! Redis URL). `bench/run queue` builds and runs it.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use ordinaut_bench::Workers;
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use ordinaut_test_support::{ScratchDb, count};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    worker_bin: String,
    admin_url: String,
    redis_url: Option<String>,
    runs: usize,
    workers: usize,
    steady_seconds: u64,
    every_seconds: u64,
    phases: Vec<String>,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        worker_bin: String::new(),
        admin_url: ordinaut_bench::database_url(),
        redis_url: std::env::var("ORDINAUT_BENCH_REDIS_URL").ok(),
        runs: 50_000,
        workers: 2,
        steady_seconds: 20,
        every_seconds: 60,
        phases: ["drain", "relay", "steady", "every"]
            .map(String::from)
            .to_vec(),
        out: None,
    };
    ordinaut_bench::flags(|f, v| {
        match f {
            "--worker-bin" => a.worker_bin = v,
            "--database-url" => a.admin_url = v,
            "--redis-url" => a.redis_url = Some(v),
            "--runs" => a.runs = ordinaut_bench::parsed(f, &v),
            "--workers" => a.workers = ordinaut_bench::parsed(f, &v),
            "--steady-seconds" => a.steady_seconds = ordinaut_bench::parsed(f, &v),
            "--every-seconds" => a.every_seconds = ordinaut_bench::parsed(f, &v),
            "--phases" => a.phases = v.split(',').map(|p| p.trim().to_string()).collect(),
            "--out" => a.out = Some(v),
            _ => return false,
        }
        true
    });
    assert!(!a.worker_bin.is_empty(), "--worker-bin is required");
    for p in &a.phases {
        assert!(
            ["drain", "relay", "steady", "every"].contains(&p.as_str()),
            "unknown phase {p} (known: drain, relay, steady, every)"
        );
    }
    a
}

fn start_workers(args: &Args, url: &str, relay: Option<(&str, &str)>) -> Workers {
    Workers(
        (0..args.workers)
            .map(|i| {
                let mut cmd = Command::new(&args.worker_bin);
                cmd.args([
                    "--database-url",
                    url,
                    "--worker-id",
                    &format!("bench-{i}"),
                    "--listen-addr",
                    "127.0.0.1:0",
                    "--migrate",
                    "false",
                    "--concurrency",
                    &std::env::var("ORDINAUT_BENCH_CONCURRENCY").unwrap_or_else(|_| "1024".into()),
                    "--batch-size",
                    &std::env::var("ORDINAUT_BENCH_BATCH").unwrap_or_else(|_| "256".into()),
                ]);
                if let Some((redis, stream)) = relay {
                    cmd.args(["--redis-url", redis, "--events-stream", stream]);
                }
                cmd.env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start worker")
            })
            .collect(),
    )
}

/// A no-op Task (`core.echo`) with the given schedule.
async fn noop_task(store: &Store, name: &str, every: &str) -> uuid::Uuid {
    let spec: ordinaut_api::TaskSpec = serde_yaml::from_str(&format!(
        "schedule: {{every: {every}}}\npipeline:\n  steps:\n    - {{id: noop, uses: core.echo, with: {{n: 1}}}}\n"
    ))
    .expect("spec");
    let task = TaskProjection {
        uid: uuid::Uuid::new_v4(),
        namespace: "bench".into(),
        name: name.into(),
        generation: 1,
        spec: serde_json::to_value(&spec).expect("spec json"),
        schedule_kind: "every".into(),
        schedule: every.into(),
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

async fn insert_all(store: &Store, occ: Vec<NewOccurrence>) {
    for chunk in occ.chunks(10_000) {
        store.insert_occurrences(chunk).await.expect("insert");
    }
}

/// `n` occurrences of `task` due now (scheduled in the last `n` microseconds).
async fn insert_due_now(store: &Store, task: uuid::Uuid, n: usize) {
    let now = Utc::now();
    let occ = (0..n)
        .map(|i| NewOccurrence::scheduled(task, now - ChronoDuration::microseconds(i as i64)))
        .collect();
    insert_all(store, occ).await;
}

/// `n` occurrences of `task` overdue: scheduled in the minute before the last one, as a
/// backlog after an outage is (the backlog of the lag-during-a-drain phase; a backlog due
/// "now" would itself be on time for its first second and make that phase measure a burst
/// of 51,000 on-time runs instead).
async fn insert_overdue(store: &Store, task: uuid::Uuid, n: usize) {
    let start = Utc::now() - ChronoDuration::minutes(1);
    let occ = (0..n)
        .map(|i| NewOccurrence::scheduled(task, start - ChronoDuration::microseconds(i as i64)))
        .collect();
    insert_all(store, occ).await;
}

/// A freshly filled table has no planner statistics until autovacuum analyzes it (within a
/// minute); without them the lease statement reads and sorts every queued row instead of
/// walking the lease index (EXPLAIN ANALYZE: 23 ms against 4 ms per 256 leased at 50,000
/// queued). ORDINAUT_BENCH_ANALYZE=0 measures the cold table.
async fn analyze(store: &Store) -> bool {
    let analyze = std::env::var("ORDINAUT_BENCH_ANALYZE").map_or(true, |v| v != "0");
    if analyze {
        sqlx::query("ANALYZE due_work")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
    analyze
}

/// Whether any occurrence is still queued or leased, or (with `events`) any event is still
/// unpublished. Every part walks a partial index, so polling costs PostgreSQL next to
/// nothing (the table `outbox_rows`, not the `outbox` view, whose first half would read
/// every unpublished row looking for one stored the old way) (a count of done rows read the whole table: 28 ms per poll, a third of a core).
async fn unfinished(store: &Store, events: bool) -> bool {
    let (queued, leased, unpublished): (bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM due_work WHERE locked_until IS NULL AND done_at IS NULL), \
                EXISTS (SELECT 1 FROM due_work WHERE locked_until IS NOT NULL AND done_at IS NULL), \
                $1 AND EXISTS (SELECT 1 FROM outbox_rows WHERE published_at IS NULL)",
    )
    .bind(events)
    .fetch_one(store.pool())
    .await
    .expect("poll");
    queued || leased || unpublished
}

/// Polls every `every` (the peer's script polls every 20 ms too) until nothing is left.
async fn wait_finished(store: &Store, events: bool, every: Duration, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while unfinished(store, events).await {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish in {limit:?} ({} runs recorded)",
            count(store, "SELECT count(*) FROM task_runs").await
        );
        tokio::time::sleep(every).await;
    }
}

#[derive(Debug, Clone, Copy)]
struct Lag {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
    runs: i64,
}

/// Lag of first attempts of `tasks`' scheduled occurrences at or after `since`.
async fn lag(store: &Store, tasks: &[uuid::Uuid], since: DateTime<Utc>) -> Lag {
    let (p50, p95, p99, max, runs): (Option<f64>, Option<f64>, Option<f64>, Option<f64>, i64) =
        sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY lag), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag), count(*) \
         FROM (SELECT extract(epoch FROM started_at - scheduled_for)::float8 * 1000 AS lag \
               FROM task_runs WHERE scheduled_for >= $1 AND task_uid = ANY($2) \
                 AND attempt = 1) l",
        )
        .bind(since)
        .bind(tasks)
        .fetch_one(store.pool())
        .await
        .expect("lag");
    Lag {
        p50: p50.unwrap_or(0.0),
        p95: p95.unwrap_or(0.0),
        p99: p99.unwrap_or(0.0),
        max: max.unwrap_or(0.0),
        runs,
    }
}

fn lag_json(l: Lag) -> Value {
    json!({"p50": l.p50, "p95": l.p95, "p99": l.p99, "max": l.max, "runs": l.runs})
}

fn lag_row(what: &str, l: Lag) {
    println!(
        "| {what}: lag p50 / p95 / p99 (max) | {:.1} / {:.1} / {:.1} ms ({:.0}), {} runs |",
        l.p50, l.p95, l.p99, l.max, l.runs
    );
}

/// Drains `args.runs` due occurrences; with `relay`, until every event is on the stream too.
async fn drain(args: &Args, relay: Option<&str>) -> Value {
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 8).await;
    let task = noop_task(&db.store, "noop", "1h").await;
    insert_due_now(&db.store, task, args.runs).await;
    let analyzed = analyze(&db.store).await;
    let stream = format!("ordinaut:bench:{}", uuid::Uuid::new_v4().simple());
    eprintln!(
        "drain{}: {} due occurrences, {} workers ...",
        if relay.is_some() {
            " with events relayed to Redis"
        } else {
            ""
        },
        args.runs,
        args.workers
    );
    let started = Instant::now();
    let workers = start_workers(args, &db.url, relay.map(|r| (r, stream.as_str())));
    wait_finished(
        &db.store,
        relay.is_some(),
        Duration::from_millis(20),
        Duration::from_secs(600),
        "drain",
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    drop(workers);
    let recorded = count(
        &db.store,
        "SELECT count(*) FROM task_runs WHERE status = 'succeeded'",
    )
    .await;
    assert_eq!(recorded as usize, args.runs, "every run recorded once");
    let events = count(&db.store, "SELECT count(*) FROM outbox").await;
    let mut result = json!({
        "runs": args.runs, "workers": args.workers, "analyzed": analyzed,
        "seconds": seconds, "runs_per_sec": args.runs as f64 / seconds,
        "outbox_events": events,
    });
    if let Some(url) = relay {
        let client = redis::Client::open(url).expect("redis url");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        // The relay trims the stream (`XADD MAXLEN ~`); count what was ever added.
        let info: std::collections::HashMap<String, redis::Value> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .expect("XINFO STREAM");
        let len = match info.get("entries-added") {
            Some(redis::Value::Int(n)) => *n,
            other => panic!("XINFO STREAM has no entries-added (Redis 7 or later): {other:?}"),
        };
        let _: () = redis::cmd("DEL")
            .arg(&stream)
            .query_async(&mut conn)
            .await
            .expect("DEL");
        assert_eq!(len, events, "every outbox event is on the stream");
        result["stream_entries"] = json!(len);
    }
    println!(
        "| drain {} runs, {} workers{}{} | {:.0} runs/s ({:.1} s, {} events) |",
        args.runs,
        args.workers,
        if relay.is_some() {
            ", events relayed to Redis"
        } else {
            ""
        },
        if analyzed { "" } else { ", table not analyzed" },
        args.runs as f64 / seconds,
        seconds,
        events
    );
    db.drop_db().await;
    result
}

/// 100 due/s for `args.steady_seconds`, materialized ahead.
async fn steady(args: &Args) -> Value {
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 8).await;
    let task = noop_task(&db.store, "steady", "1s").await;
    let workers = start_workers(args, &db.url, None);
    let start = Utc::now() + ChronoDuration::seconds(2);
    let total = args.steady_seconds as i64 * 100;
    let occ = (0..total)
        .map(|i| NewOccurrence::scheduled(task, start + ChronoDuration::milliseconds(i * 10)))
        .collect();
    insert_all(&db.store, occ).await;
    eprintln!("steady: 100 due/s for {} s ...", args.steady_seconds);
    wait_finished(
        &db.store,
        false,
        Duration::from_millis(100),
        Duration::from_secs(args.steady_seconds + 60),
        "steady phase",
    )
    .await;
    drop(workers);
    let l = lag(&db.store, &[task], start).await;
    lag_row("steady 100 due/s", l);
    db.drop_db().await;
    json!({"rate_per_sec": 100, "seconds": args.steady_seconds, "lag_ms": lag_json(l)})
}

/// `tasks` Tasks with `every: 1s` for `args.every_seconds`, all due at the same instants (the
/// worst case: each second starts with a burst of `tasks` runs); with `with_drain`, a drain
/// of `args.runs` due occurrences is queued as the window opens.
async fn every_tasks(args: &Args, tasks: usize, with_drain: bool) -> Value {
    let db = ScratchDb::create(&args.admin_url, "ordinaut_bench", 8).await;
    let mut uids = Vec::with_capacity(tasks);
    for i in 0..tasks {
        uids.push(noop_task(&db.store, &format!("every-{i}"), "1s").await);
    }
    let workers = start_workers(args, &db.url, None);
    // Whole seconds, as `every: 1s` anchored at a whole second would give.
    let start = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() + 3, 0).expect("time");
    let mut occ = Vec::with_capacity(tasks * args.every_seconds as usize);
    for s in 0..args.every_seconds as i64 {
        for uid in &uids {
            occ.push(NewOccurrence::scheduled(
                *uid,
                start + ChronoDuration::seconds(s),
            ));
        }
    }
    insert_all(&db.store, occ).await;
    analyze(&db.store).await;
    if with_drain {
        let drain_task = noop_task(&db.store, "drain", "1h").await;
        let until = start - Utc::now();
        tokio::time::sleep(until.to_std().unwrap_or_default()).await;
        insert_overdue(&db.store, drain_task, args.runs).await;
    }
    eprintln!(
        "lag: {tasks} Tasks every 1s for {} s{} ...",
        args.every_seconds,
        if with_drain {
            format!(", while {} runs drain", args.runs)
        } else {
            String::new()
        }
    );
    wait_finished(
        &db.store,
        false,
        Duration::from_millis(200),
        Duration::from_secs(args.every_seconds + 600),
        "every-Tasks phase",
    )
    .await;
    drop(workers);
    let l = lag(&db.store, &uids, start).await;
    lag_row(
        &format!(
            "{tasks} Tasks every 1s, {} s{}",
            args.every_seconds,
            if with_drain {
                format!(", during a drain of {}", args.runs)
            } else {
                String::new()
            }
        ),
        l,
    );
    db.drop_db().await;
    json!({"tasks": tasks, "seconds": args.every_seconds, "with_drain": with_drain, "lag_ms": lag_json(l)})
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let on = |p: &str| args.phases.iter().any(|x| x == p);
    println!("| measure | value |");
    println!("|---|---|");
    let mut result = serde_json::Map::new();
    if on("drain") {
        result.insert("drain".into(), drain(&args, None).await);
    }
    if on("relay") {
        match &args.redis_url {
            Some(url) => {
                result.insert("drain_relayed".into(), drain(&args, Some(url)).await);
            }
            None => eprintln!(
                "skipping the relayed drain: no --redis-url (or ORDINAUT_BENCH_REDIS_URL)"
            ),
        }
    }
    if on("steady") {
        result.insert("steady".into(), steady(&args).await);
    }
    if on("every") {
        let mut every = Vec::new();
        every.push(every_tasks(&args, 100, false).await);
        every.push(every_tasks(&args, 1000, false).await);
        every.push(every_tasks(&args, 1000, true).await);
        result.insert("every".into(), Value::Array(every));
    }
    if let Some(out) = &args.out {
        std::fs::write(
            out,
            serde_json::to_string_pretty(&Value::Object(result)).expect("json"),
        )
        .expect("write results");
    }
}
