//! Operator scale: N Tasks (mixed RRULE / cron / every, 20 time zones) reconciled through the
//! operator's reconcile core (`TaskReconciler::reconcile`, the code its controllers call) into
//! a fresh database for the default 24 h horizon (at most 100 occurrences per Task). Reports
//! the time to steady state (every Task reconciled once, `Ready`), the due_work rows written,
//! a second full pass (what the tick does: it must insert nothing), the time one spec change
//! takes to be effective with the other Tasks in place, and this process's peak RSS (VmHWM),
//! which holds all N Task objects as the operator's watch cache does.
//!
//! Usage: `operator_scale [--database-url URL] [--tasks N] [--reconcilers C] [--out FILE]`.

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration as ChronoDuration, Utc};
use futures::StreamExt;
use ordinaut_api::Task;
use ordinaut_operator::{
    AlwaysLeader, Context, MaterializeConfig, MemoryObjects, MemorySink, TaskOutcome,
    TaskReconciler,
};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use serde_json::json;
use sqlx::Connection;

const ZONES: [&str; 20] = [
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Chisinau",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Pacific/Auckland",
    "Pacific/Chatham",
    "Africa/Cairo",
];

/// The schedule of Task `i`: a mix of frequent and daily, cron, RRULE and every.
fn schedule(i: usize) -> String {
    let tz = ZONES[i % ZONES.len()];
    match i % 6 {
        0 => format!("{{cron: '*/15 * * * *', timezone: {tz}}}"),
        1 => format!(
            "{{rrule: 'FREQ=HOURLY;BYMINUTE={};BYSECOND=0', timezone: {tz}}}",
            i % 60
        ),
        2 => "{every: 1h}".to_string(),
        3 => format!("{{cron: '{} 9 * * 1-5', timezone: {tz}}}", i % 60),
        4 => format!(
            "{{rrule: 'FREQ=DAILY;BYHOUR={};BYMINUTE=0;BYSECOND=0', timezone: {tz}}}",
            i % 24
        ),
        _ => "{every: 10m}".to_string(),
    }
}

fn task(i: usize, schedule: &str, created: chrono::DateTime<Utc>) -> Task {
    let yaml = format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: task-{i}\n  namespace: ns-{}\nspec:\n  schedule: {schedule}\n  pipeline:\n    steps: [{{id: hello, uses: core.echo}}]\n",
        i % 10
    );
    let mut task: Task = serde_yaml::from_str(&yaml).expect("task yaml");
    task.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    task.metadata.generation = Some(1);
    task.metadata.creation_timestamp = Some(ordinaut_operator::status::k8s_time(created));
    task
}

fn vm(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reconciles every Task with `c` reconciles in flight; returns (Ready, inserted, invalid).
async fn pass(rec: &TaskReconciler, tasks: &[Task], c: usize) -> (usize, u64, Vec<String>) {
    let outcomes: Vec<_> = futures::stream::iter(tasks)
        .map(|t| rec.reconcile(t))
        .buffer_unordered(c)
        .collect()
        .await;
    let (mut ready, mut inserted, mut problems) = (0, 0, Vec::new());
    for o in outcomes {
        match o.expect("reconcile") {
            TaskOutcome::Ready { inserted: n, .. } => {
                ready += 1;
                inserted += n;
            }
            other => problems.push(format!("{other:?}")),
        }
    }
    (ready, inserted, problems)
}

#[tokio::main]
async fn main() {
    let mut admin_url = std::env::var("ORDINAUT_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (mut n, mut c, mut out) = (10_000usize, 16usize, None::<String>);
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--database-url" => admin_url = v,
            "--tasks" => n = v.parse().expect("--tasks N"),
            "--reconcilers" => c = v.parse().expect("--reconcilers C"),
            "--out" => out = Some(v),
            other => panic!("unknown argument {other}"),
        }
    }
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
    // The operator's own pool size.
    let store = Store::connect(&url, 8).await.expect("connect");
    store.migrate().await.expect("migrate");
    let sink = Arc::new(MemorySink::default());
    let rec = TaskReconciler::new(Context::new(
        store.clone(),
        Arc::new(SystemClock),
        MaterializeConfig::default(),
        Arc::new(MemoryObjects::default()),
        sink,
        Arc::new(AlwaysLeader),
    ));
    let idle_rss_kib = vm("VmRSS:");

    let created = Utc::now() - ChronoDuration::hours(1);
    let mut tasks: Vec<Task> = (0..n).map(|i| task(i, &schedule(i), created)).collect();
    eprintln!("operator scale: {n} Tasks, {c} reconciles in flight ...");
    let started = Instant::now();
    let (ready, inserted, problems) = pass(&rec, &tasks, c).await;
    let steady_secs = started.elapsed().as_secs_f64();
    assert!(
        problems.is_empty(),
        "not Ready: {:?}",
        &problems[..3.min(problems.len())]
    );
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM due_work")
        .fetch_one(store.pool())
        .await
        .expect("count");

    // Until due_work has planner statistics, PostgreSQL plans the operator's per-Task
    // queued-rows query on the partial lease index and scans every queued row (370 ms per
    // Task at 60,000 rows, found with EXPLAIN ANALYZE). Autovacuum analyzes the table within
    // a minute of the bulk insert; do now what it would do, so the tick pass measures the
    // steady state. Whether autovacuum got there during the first pass is reported.
    let (auto_analyzed,): (bool,) = sqlx::query_as(
        "SELECT last_autoanalyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'due_work'",
    )
    .fetch_one(store.pool())
    .await
    .expect("stats");
    sqlx::query("ANALYZE due_work")
        .execute(store.pool())
        .await
        .expect("analyze");
    let started = Instant::now();
    let (_, again, _) = pass(&rec, &tasks, c).await;
    let resync_secs = started.elapsed().as_secs_f64();

    // One spec change while all the others exist: reconcile of the changed Task.
    tasks[0] = {
        let mut t = task(
            0,
            "{cron: '*/10 * * * *', timezone: Europe/Berlin}",
            created,
        );
        t.metadata.uid = tasks[0].metadata.uid.clone();
        t.metadata.generation = Some(2);
        t
    };
    let started = Instant::now();
    let outcome = rec.reconcile(&tasks[0]).await.expect("reconcile change");
    let change_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(matches!(outcome, TaskOutcome::Ready { .. }), "{outcome:?}");
    let peak_kib = vm("VmHWM:");

    drop(rec);
    store.pool().close().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;

    println!("| measure ({n} Tasks, 24 h horizon) | value |");
    println!("|---|---|");
    println!(
        "| time to steady state | {steady_secs:.1} s ({:.0} Tasks/s, {ready} Ready) |",
        n as f64 / steady_secs
    );
    println!("| due_work rows written | {rows} ({inserted} inserted) |");
    println!(
        "| full resync (tick) pass, after ANALYZE | {resync_secs:.1} s, {again} rows inserted (autovacuum had analyzed during the first pass: {auto_analyzed}) |"
    );
    println!("| one spec change effective | {change_ms:.1} ms |");
    println!(
        "| peak RSS (VmHWM) | {:.1} MiB (idle before Tasks {:.1} MiB) |",
        peak_kib as f64 / 1024.0,
        idle_rss_kib as f64 / 1024.0
    );
    let result = json!({
        "tasks": n, "reconcilers": c, "steady_state_secs": steady_secs, "ready": ready,
        "due_work_rows": rows, "resync_secs": resync_secs, "resync_inserted": again, "autoanalyzed_during_first_pass": auto_analyzed,
        "spec_change_ms": change_ms, "peak_rss_kib": peak_kib, "idle_rss_kib": idle_rss_kib,
    });
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}
