//! Worker memory: the resident set (VmRSS from /proc/PID/status) of one real `ordinaut-worker`
//! process idle against a fresh database, then while it runs 100 concurrent runs (a one-step
//! `core.sleep` pipeline, so all 100 are in flight at once).
//!
//! Usage: `memory --worker-bin PATH [--database-url URL] [--runs 100] [--out FILE]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use serde_json::json;
use sqlx::Connection;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let mut admin_url = std::env::var("ORDINAUT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (mut bin, mut runs, mut out) = (String::new(), 100usize, None::<String>);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--worker-bin" => bin = v,
            "--database-url" => admin_url = v,
            "--runs" => runs = v.parse().expect("--runs N"),
            "--out" => out = Some(v),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!bin.is_empty(), "--worker-bin is required");
    let name = format!("ordinaut_bench_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create database");
    let url = match admin_url.rfind('/') {
        Some(i) => format!("{}/{name}", &admin_url[..i]),
        None => panic!("bad database URL"),
    };
    let store = Store::connect(&url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");

    let mut worker = Command::new(&bin)
        .args(["--database-url", &url, "--worker-id", "bench-mem"])
        .args(["--listen-addr", "127.0.0.1:0", "--migrate", "false"])
        .args(["--concurrency", &(runs + 28).to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start worker");
    let pid = worker.id();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_kib(pid);

    let spec: ordinaut_api::TaskSpec = serde_yaml::from_str(
        "schedule: {every: 1h}\npipeline:\n  steps:\n    - {id: wait, uses: core.sleep, with: {duration: 6s}}\n",
    )
    .expect("spec");
    let task = TaskProjection {
        uid: uuid::Uuid::new_v4(),
        namespace: "bench".into(),
        name: "sleep".into(),
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
    let now = Utc::now();
    let occ: Vec<_> = (0..runs)
        .map(|i| NewOccurrence::scheduled(task.uid, now - chrono::Duration::milliseconds(i as i64)))
        .collect();
    store.insert_occurrences(&occ).await.expect("insert");
    let (mut peak, mut most_in_flight) = (0u64, 0i64);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let (running,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM due_work WHERE done_at IS NULL AND locked_until > now()",
        )
        .fetch_one(store.pool())
        .await
        .expect("count");
        most_in_flight = most_in_flight.max(running);
        if running >= runs as i64 {
            peak = peak.max(rss_kib(pid));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    let _ = worker.wait();
    store.pool().close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| worker idle RSS | {:.1} MiB |", idle as f64 / 1024.0);
    println!(
        "| worker RSS, {runs} concurrent runs | {:.1} MiB (most in flight seen: {most_in_flight}) |",
        peak as f64 / 1024.0
    );
    let result = json!({"worker_idle_rss_kib": idle, "worker_busy_rss_kib": peak, "concurrent_runs": runs, "most_in_flight": most_in_flight});
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}
