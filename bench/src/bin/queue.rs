//! Queue benchmark: N no-op occurrences (a one-step `core.echo` pipeline, with the full run
//! record, step record and outbox events per run) drained by W real worker processes; then a
//! steady 100 due/s for a while. Prints runs/s and schedule lag (start − scheduled time, from
//! the run records) p50/p95/p99.
//!
//! Usage: `queue --worker-bin PATH [--database-url URL] [--runs N] [--workers W]
//!         [--steady-seconds S] [--out FILE]`; `bench/run queue` builds and runs it.

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use serde_json::json;
use sqlx::Connection;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Args {
    worker_bin: String,
    admin_url: String,
    runs: usize,
    workers: usize,
    steady_seconds: u64,
    out: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        worker_bin: String::new(),
        admin_url: std::env::var("ORDINAUT_BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        runs: 50_000,
        workers: 2,
        steady_seconds: 20,
        out: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        match args[i].as_str() {
            "--worker-bin" => a.worker_bin = v,
            "--database-url" => a.admin_url = v,
            "--runs" => a.runs = v.parse().expect("--runs N"),
            "--workers" => a.workers = v.parse().expect("--workers W"),
            "--steady-seconds" => a.steady_seconds = v.parse().expect("--steady-seconds S"),
            "--out" => a.out = Some(v),
            other => panic!("unknown argument {other}"),
        }
        i += 2;
    }
    assert!(!a.worker_bin.is_empty(), "--worker-bin is required");
    a
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

fn start_workers(bin: &str, url: &str, n: usize) -> Workers {
    Workers(
        (0..n)
            .map(|i| {
                Command::new(bin)
                    .args([
                        "--database-url",
                        url,
                        "--worker-id",
                        &format!("bench-{i}"),
                        "--listen-addr",
                        "127.0.0.1:0",
                        "--migrate",
                        "false",
                        "--concurrency",
                        &std::env::var("ORDINAUT_BENCH_CONCURRENCY")
                            .unwrap_or_else(|_| "1024".into()),
                        "--batch-size",
                        &std::env::var("ORDINAUT_BENCH_BATCH").unwrap_or_else(|_| "256".into()),
                    ])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start worker")
            })
            .collect(),
    )
}

async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .expect("count");
    n
}

async fn lag_percentiles(store: &Store, since: chrono::DateTime<Utc>) -> (f64, f64, f64, i64) {
    let (p50, p95, p99, n): (Option<f64>, Option<f64>, Option<f64>, i64) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), \
                percentile_cont(0.95) WITHIN GROUP (ORDER BY lag), \
                percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), count(*) \
         FROM (SELECT extract(epoch FROM started_at - scheduled_for) * 1000 AS lag \
               FROM task_runs WHERE scheduled_for >= $1) l",
    )
    .bind(since)
    .fetch_one(store.pool())
    .await
    .expect("lag");
    (
        p50.unwrap_or(0.0),
        p95.unwrap_or(0.0),
        p99.unwrap_or(0.0),
        n,
    )
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let name = format!("ordinaut_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&args.admin_url)
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = match args.admin_url.rfind('/') {
        Some(i) => format!("{}/{name}", &args.admin_url[..i]),
        None => panic!("bad database URL"),
    };
    let store = Store::connect(&url, 8).await.expect("connect");
    store.migrate().await.expect("migrate");

    let spec: ordinaut_api::TaskSpec = serde_yaml::from_str(
        "schedule: {every: 1h}\npipeline:\n  steps:\n    - {id: noop, uses: core.echo, with: {n: 1}}\n",
    )
    .expect("spec");
    let task = TaskProjection {
        uid: uuid::Uuid::new_v4(),
        namespace: "bench".into(),
        name: "noop".into(),
        generation: 1,
        spec: serde_json::to_value(&spec).expect("spec json"),
        schedule_kind: "every".into(),
        schedule: "1h".into(),
        timezone: "UTC".into(),
        next_run_at: None,
        materialized_until: None,
        suspended: false,
        snooze_until: None,
        priority: 0,
        concurrency_policy: "Allow".into(),
    };
    store.upsert_task(&task).await.expect("task");

    // Drain: N occurrences already due.
    let now = Utc::now();
    for chunk in (0..args.runs).collect::<Vec<_>>().chunks(10_000) {
        let occ: Vec<_> = chunk
            .iter()
            .map(|i| {
                NewOccurrence::scheduled(task.uid, now - ChronoDuration::microseconds(*i as i64))
            })
            .collect();
        store.insert_occurrences(&occ).await.expect("insert");
    }
    // A freshly filled table has no planner statistics until autovacuum analyzes it (within
    // a minute); without them the lease statement reads and sorts every queued row instead
    // of walking the lease index (EXPLAIN ANALYZE: 23 ms against 4 ms per 256 leased at
    // 50,000 queued). ORDINAUT_BENCH_ANALYZE=0 measures the cold table.
    let analyze = std::env::var("ORDINAUT_BENCH_ANALYZE").map_or(true, |v| v != "0");
    if analyze {
        sqlx::query("ANALYZE due_work")
            .execute(store.pool())
            .await
            .expect("analyze");
    }
    eprintln!(
        "drain: {} due occurrences, {} workers ...",
        args.runs, args.workers
    );
    let started = Instant::now();
    let workers = start_workers(&args.worker_bin, &url, args.workers);
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let done = count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL",
        )
        .await;
        if done as usize >= args.runs {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drain did not finish in 10 minutes ({done} done)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_secs = started.elapsed().as_secs_f64();
    let runs_per_sec = args.runs as f64 / drain_secs;

    // Steady: 100 due/s, materialized ahead as the operator does.
    let steady_start = Utc::now() + ChronoDuration::seconds(2);
    let total = args.steady_seconds as i64 * 100;
    let occ: Vec<_> = (0..total)
        .map(|i| {
            NewOccurrence::scheduled(
                task.uid,
                steady_start + ChronoDuration::milliseconds(i * 10),
            )
        })
        .collect();
    store.insert_occurrences(&occ).await.expect("insert steady");
    eprintln!("steady: 100 due/s for {} s ...", args.steady_seconds);
    let deadline = Instant::now() + Duration::from_secs(args.steady_seconds + 60);
    loop {
        let done = count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL",
        )
        .await;
        if done as usize >= args.runs + total as usize {
            break;
        }
        assert!(Instant::now() < deadline, "steady phase did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (p50, p95, p99, n) = lag_percentiles(&store, steady_start).await;
    drop(workers);
    drop(store);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;

    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| drain {} runs, {} workers{} | {:.0} runs/s ({:.1} s) |",
        args.runs,
        args.workers,
        if analyze { "" } else { ", table not analyzed" },
        runs_per_sec,
        drain_secs
    );
    println!("| steady 100/s lag p50 | {p50:.1} ms |");
    println!("| steady 100/s lag p95 | {p95:.1} ms |");
    println!("| steady 100/s lag p99 | {p99:.1} ms ({n} runs) |");
    let result = json!({
        "drain": {"analyzed": analyze, "runs": args.runs, "workers": args.workers, "seconds": drain_secs, "runs_per_sec": runs_per_sec},
        "steady": {"rate_per_sec": 100, "seconds": args.steady_seconds, "lag_ms": {"p50": p50, "p95": p95, "p99": p99}, "runs": n},
    });
    if let Some(out) = args.out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}
