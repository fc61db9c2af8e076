//! Operator scale: N Tasks (mixed RRULE / cron / every, 20 time zones) reconciled through the
//! operator's reconcile core (`TaskReconciler::reconcile`, the code its controllers call, with
//! as many reconciles in flight as the Task controller runs) into a fresh database for the
//! default horizon (`MaterializeConfig::default()`: the next 15 minutes, past them the next 10
//! occurrences within 24 h). Reports the time to steady state
//! (every Task reconciled once, `Ready`), the due_work rows written, a second full pass with
//! each Task carrying the status the first pass wrote, as the watch cache would (what the
//! periodic tick does: it inserts only the occurrences that entered a Task's next ten since the
//! first pass, none when no run came due in between), the time one spec change takes to be
//! effective with the other Tasks in place, the CPU time of this process, of PostgreSQL and
//! of the whole machine during each pass (what limits it on a shared machine), and this
//! process's peak RSS (VmHWM), which holds all N Tasks in the form the operator's watch cache
//! keeps them (`CachedTask`, each in an `Arc` as in the reflector store) and decodes each into
//! a `Task` for its reconcile, as the Task controller does.
//!
//! Usage: `operator_scale [--database-url URL] [--tasks N] [--reconcilers C] [--out FILE]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use chrono::{Duration as ChronoDuration, Utc};
use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::watcher;
use ordinaut_api::Task;
use ordinaut_api::TaskStatus;
use ordinaut_operator::k8s::CachedTask;
use ordinaut_operator::seam::SinkError;
use ordinaut_operator::{
    AlwaysLeader, Context, MaterializeConfig, MemoryObjects, Notice, ObjectKey, StatusSink,
    TASK_RECONCILES_IN_FLIGHT, TaskOutcome, TaskReconciler,
};
use ordinaut_schedule::clock::SystemClock;
use serde_json::json;

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

/// The operator's Task watch cache: a reflector store of [`CachedTask`]s, filled as the
/// initial list fills it, and the reconciles' status sink: each status written goes onto its
/// Task's cache entry as the watch event of that write would put it (the Task decoded with the
/// new status, encoded again, replacing the entry). What an operator holds per Task.
/// Implemented without the `async_trait` macro, which this crate does not depend on.
struct WatchCache {
    reader: Store<CachedTask>,
    writer: std::sync::Mutex<Writer<CachedTask>>,
    statuses_written: AtomicUsize,
}

impl WatchCache {
    /// A cache of `tasks`, as the watch's initial list leaves it.
    fn listed(tasks: impl Iterator<Item = Task>) -> Self {
        let (reader, mut writer) = reflector::store();
        writer.apply_watcher_event(&watcher::Event::Init);
        for t in tasks {
            let cached = CachedTask::try_from(t).expect("cache entry");
            writer.apply_watcher_event(&watcher::Event::InitApply(cached));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
        Self {
            reader,
            writer: std::sync::Mutex::new(writer),
            statuses_written: AtomicUsize::new(0),
        }
    }

    /// A watch event for `task` (added or changed).
    fn apply(&self, task: Task) {
        let cached = CachedTask::try_from(task).expect("cache entry");
        self.writer
            .lock()
            .expect("cache lock")
            .apply_watcher_event(&watcher::Event::Apply(cached));
    }

    /// The Task `namespace/name`, decoded from its entry as a reconcile does.
    fn task(&self, namespace: &str, name: &str) -> Task {
        let entry = self.reader.get(&ObjectRef::new(name).within(namespace));
        entry.expect("cached").task().expect("cached Task decodes")
    }
}

type SinkFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SinkError>> + Send + 'a>>;

impl StatusSink for WatchCache {
    fn status<'a, 'b, 'f>(&'a self, key: &'b ObjectKey, status: serde_json::Value) -> SinkFuture<'f>
    where
        'a: 'f,
        'b: 'f,
        Self: 'f,
    {
        Box::pin(async move {
            if let Ok(s) = serde_json::from_value::<TaskStatus>(status) {
                let mut task = self.task(&key.namespace, &key.name);
                task.status = Some(s);
                self.apply(task);
                self.statuses_written.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    }
    fn notice<'a, 'b, 'c, 'f>(&'a self, _key: &'b ObjectKey, _notice: &'c Notice) -> SinkFuture<'f>
    where
        'a: 'f,
        'b: 'f,
        'c: 'f,
        Self: 'f,
    {
        Box::pin(async { Ok(()) })
    }
}

fn vm(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds used so far by the running `postgres` processes (user + system), from /proc:
/// PostgreSQL's share of a pass, as long as its backends live through it (the pool's do).
fn postgres_cpu_secs() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| {
            let (head, rest) = s.rsplit_once(')')?;
            if !head.ends_with("(postgres") {
                return None;
            }
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .sum()
}

/// CPU seconds used by this process (user + system) and by the whole machine (all CPUs,
/// everything but idle and iowait), from /proc.
fn cpu_secs() -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: f64 = rest.get(11)?.parse().ok()?;
            let stime: f64 = rest.get(12)?.parse().ok()?;
            Some((utime + stime) / tick)
        })
        .unwrap_or(0.0);
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<f64> = s
                .lines()
                .next()?
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            let total: f64 = f.iter().take(8).sum();
            Some((total - f.get(3)? - f.get(4)?) / tick)
        })
        .unwrap_or(0.0);
    (own, machine)
}

/// Reconciles every Task in `cache` with `c` reconciles in flight, each decoded from its cache
/// entry as the Task controller does; returns (Ready, inserted, invalid).
async fn pass(rec: &TaskReconciler, cache: &WatchCache, c: usize) -> (usize, u64, Vec<String>) {
    // Counted as they come (the controller keeps no outcomes either).
    let (mut ready, mut inserted, mut problems) = (0, 0, Vec::new());
    let mut outcomes = futures::stream::iter(cache.reader.state())
        .map(|t| async move { rec.reconcile(&t.task().expect("cached Task decodes")).await })
        .buffer_unordered(c);
    while let Some(o) = outcomes.next().await {
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
    let (mut n, mut c, mut out) = (
        10_000usize,
        usize::from(TASK_RECONCILES_IN_FLIGHT),
        None::<String>,
    );
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
    // The operator's own pool size.
    let db = ordinaut_test_support::ScratchDb::create(&admin_url, "ordinaut_bench", 8).await;
    let store = db.store.clone();
    let idle_rss_kib = vm("VmRSS:");
    let created = Utc::now() - ChronoDuration::hours(1);
    let cache = Arc::new(WatchCache::listed(
        (0..n).map(|i| task(i, &schedule(i), created)),
    ));
    let loaded_rss_kib = vm("VmRSS:");
    let rec = TaskReconciler::new(Context::new(
        store.clone(),
        Arc::new(SystemClock),
        MaterializeConfig::default(),
        Arc::new(MemoryObjects::default()),
        cache.clone(),
        Arc::new(AlwaysLeader),
    ));
    eprintln!("operator scale: {n} Tasks, {c} reconciles in flight ...");
    let started = Instant::now();
    let cpu0 = cpu_secs();
    let pg0 = postgres_cpu_secs();
    let (ready, inserted, problems) = pass(&rec, &cache, c).await;
    let steady_secs = started.elapsed().as_secs_f64();
    let cpu1 = cpu_secs();
    let pg1 = postgres_cpu_secs();
    let after_pass_rss_kib = vm("VmRSS:");
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
    let cpu2 = cpu_secs();
    let pg2 = postgres_cpu_secs();
    let written_first = cache.statuses_written.swap(0, Ordering::Relaxed);
    let (_, again, _) = pass(&rec, &cache, c).await;
    let resync_secs = started.elapsed().as_secs_f64();
    let cpu3 = cpu_secs();
    let pg3 = postgres_cpu_secs();
    let written_again = cache.statuses_written.load(Ordering::Relaxed);

    // One spec change while all the others exist: reconcile of the changed Task.
    let old = cache.task("ns-0", "task-0");
    let mut changed = task(
        0,
        "{cron: '*/10 * * * *', timezone: Europe/Berlin}",
        created,
    );
    changed.metadata.uid = old.metadata.uid;
    changed.metadata.generation = Some(2);
    changed.status = old.status;
    cache.apply(changed);
    let started = Instant::now();
    let changed = cache.task("ns-0", "task-0");
    let outcome = rec.reconcile(&changed).await.expect("reconcile change");
    let change_ms = started.elapsed().as_secs_f64() * 1000.0;
    assert!(matches!(outcome, TaskOutcome::Ready { .. }), "{outcome:?}");
    let peak_kib = vm("VmHWM:");

    drop(rec);
    drop(store);
    db.drop_db().await;

    println!("| measure ({n} Tasks, default horizon) | value |");
    println!("|---|---|");
    println!(
        "| time to steady state | {steady_secs:.1} s ({:.0} Tasks/s, {ready} Ready) |",
        n as f64 / steady_secs
    );
    println!("| due_work rows written | {rows} ({inserted} inserted) |");
    println!(
        "| CPU during the first pass: this process / PostgreSQL / whole machine | {:.1} s / {:.1} s / {:.1} s |",
        cpu1.0 - cpu0.0,
        pg1 - pg0,
        cpu1.1 - cpu0.1
    );
    println!(
        "| full resync (tick) pass, after ANALYZE | {resync_secs:.1} s, {again} rows inserted, {written_again} statuses written (autovacuum had analyzed during the first pass: {auto_analyzed}) |"
    );
    println!(
        "| CPU during the tick pass: this process / PostgreSQL / whole machine | {:.1} s / {:.1} s / {:.1} s |",
        cpu3.0 - cpu2.0,
        pg3 - pg2,
        cpu3.1 - cpu2.1
    );
    println!("| one spec change effective | {change_ms:.1} ms |");
    println!(
        "| peak RSS (VmHWM) | {:.1} MiB (idle before Tasks {:.1} MiB; Tasks in the watch cache {:.1} MiB; after the first pass, their statuses on them, {:.1} MiB) |",
        peak_kib as f64 / 1024.0,
        idle_rss_kib as f64 / 1024.0,
        loaded_rss_kib as f64 / 1024.0,
        after_pass_rss_kib as f64 / 1024.0,
    );
    let result = json!({
        "tasks": n, "reconcilers": c, "steady_state_secs": steady_secs, "ready": ready,
        "due_work_rows": rows, "resync_secs": resync_secs, "resync_inserted": again, "autoanalyzed_during_first_pass": auto_analyzed,
        "spec_change_ms": change_ms, "resync_statuses_written": written_again,
        "first_pass_cpu_secs": {"process": cpu1.0 - cpu0.0, "postgres": pg1 - pg0, "machine": cpu1.1 - cpu0.1},
        "tick_pass_cpu_secs": {"process": cpu3.0 - cpu2.0, "postgres": pg3 - pg2, "machine": cpu3.1 - cpu2.1}, "peak_rss_kib": peak_kib, "idle_rss_kib": idle_rss_kib,
        "loaded_rss_kib": loaded_rss_kib, "after_first_pass_rss_kib": after_pass_rss_kib,
        "first_pass_statuses_written": written_first,
    });
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}
