//! Memory: the resident set (VmRSS from /proc/PID/status) of one real `ordinaut-worker`
//! process idle against a fresh database, then while it runs 100 concurrent runs (a one-step
//! `core.sleep` pipeline, so all 100 are in flight at once); and of one real
//! `ordinaut-operator` process idle (leader, watches open, no Tasks) against the in-process
//! fake Kubernetes API (`ordinaut-kube-fake`) served over HTTP on a local port, the only API
//! server there is here.
//!
//! Usage: `memory --worker-bin PATH [--operator-bin PATH] [--database-url URL]
//!         [--redis-url URL] [--runs 100] [--out FILE]`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use ordinaut_store::{NewOccurrence, TaskProjection};
use serde_json::json;

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
    let mut operator_bin = None::<String>;
    let mut operator_tasks = 0usize;
    let mut redis_url = std::env::var("ORDINAUT_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--worker-bin" => bin = v,
            "--database-url" => admin_url = v,
            "--operator-bin" => operator_bin = Some(v),
            "--operator-tasks" => operator_tasks = v.parse().expect("--operator-tasks N"),
            "--redis-url" => redis_url = v,
            "--runs" => runs = v.parse().expect("--runs N"),
            "--out" => out = Some(v),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!bin.is_empty(), "--worker-bin is required");
    let db = ordinaut_test_support::ScratchDb::create(&admin_url, "ordinaut_bench", 4).await;
    let (url, store) = (db.url.clone(), db.store.clone());

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
    let operator_idle = match &operator_bin {
        Some(bin) => Some(operator_rss(bin, &url, &redis_url, 0).await),
        None => None,
    };
    drop(store);
    db.drop_db().await;
    let operator_loaded = match &operator_bin {
        Some(bin) if operator_tasks > 0 => {
            let db =
                ordinaut_test_support::ScratchDb::create(&admin_url, "ordinaut_bench", 2).await;
            let loaded = operator_rss(bin, &db.url, &redis_url, operator_tasks).await;
            db.drop_db().await;
            Some(loaded)
        }
        _ => None,
    };

    println!("| measure | value |");
    println!("|---|---|");
    println!("| worker idle RSS | {:.1} MiB |", idle as f64 / 1024.0);
    println!(
        "| worker RSS, {runs} concurrent runs | {:.1} MiB (most in flight seen: {most_in_flight}) |",
        peak as f64 / 1024.0
    );
    if let Some(o) = &operator_idle {
        println!(
            "| operator idle RSS (leader, watching, no Tasks) | {:.1} MiB |",
            o.rss_kib as f64 / 1024.0
        );
    }
    if let Some(o) = &operator_loaded {
        println!(
            "| operator binary, {operator_tasks} Tasks (fake API over HTTP): all reconciled Ready; RSS then; peak RSS | {:.1} s; {:.1} MiB; {:.1} MiB |",
            o.ready_secs,
            o.rss_kib as f64 / 1024.0,
            o.peak_kib as f64 / 1024.0
        );
    }
    let result = json!({"worker_idle_rss_kib": idle, "worker_busy_rss_kib": peak, "concurrent_runs": runs, "most_in_flight": most_in_flight,
        "operator_idle_rss_kib": operator_idle.as_ref().map(|o| o.rss_kib),
        "operator_tasks": operator_tasks,
        "operator_loaded": operator_loaded.as_ref().map(|o| json!({"ready_secs": o.ready_secs, "rss_kib": o.rss_kib, "peak_rss_kib": o.peak_kib}))});
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}

/// Serves a fake Kubernetes API (with Ordinaut's custom resources) over plain HTTP on a
/// local port, for the life of this process; returns its address.
/// The fake API server over HTTP, holding `tasks` Tasks (the operator_scale mix of
/// schedules, 10 namespaces) before anyone watches.
async fn serve_fake_api(tasks: usize) -> std::net::SocketAddr {
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    fake.register::<ordinaut_api::Task>()
        .register::<ordinaut_api::Pipeline>()
        .register::<ordinaut_api::McpServer>()
        .register::<ordinaut_api::Agent>();
    // Only the latest changes are kept for watches (the Tasks' creations need not be).
    fake.set_watch_history_limit(10_000);
    let zones = [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ];
    for i in 0..tasks {
        let tz = zones[i % zones.len()];
        let schedule = match i % 3 {
            0 => format!("{{cron: '*/15 * * * *', timezone: {tz}}}"),
            1 => format!(
                "{{rrule: 'FREQ=HOURLY;BYMINUTE={};BYSECOND=0', timezone: {tz}}}",
                i % 60
            ),
            _ => "{every: 10m}".to_string(),
        };
        let yaml = format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: task-{i}\n  namespace: ns-{}\nspec:\n  schedule: {schedule}\n  pipeline:\n    steps: [{{id: hello, uses: core.echo}}]\n",
            i % 10
        );
        let task: ordinaut_api::Task = serde_yaml::from_str(&yaml).expect("task yaml");
        fake.insert(&task).expect("insert Task");
    }
    let addr = fake.serve_http().await.expect("serve the fake API");
    // The server holds the fake's state; the handle itself may go.
    drop(fake);
    addr
}

/// What [`operator_rss`] measured.
struct OperatorRss {
    /// Seconds from the start until every Task was reconciled Ready (0 without Tasks).
    ready_secs: f64,
    /// RSS then (idle: a few seconds after it became ready).
    rss_kib: u64,
    /// Peak RSS of the process (VmHWM).
    peak_kib: u64,
}

/// A real operator process against the fake API holding `tasks` Tasks: its RSS once every
/// Task was reconciled Ready (without Tasks: a few seconds after it became ready) and its
/// peak RSS.
async fn operator_rss(bin: &str, database_url: &str, redis_url: &str, tasks: usize) -> OperatorRss {
    let addr = serve_fake_api(tasks).await;
    let dir = std::env::temp_dir().join(format!("ordinaut-bench-{}-{tasks}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ordinaut_kube_fake::kubeconfig_for(addr, "default"),
    )
    .expect("write kubeconfig");
    let metrics_port = ordinaut_test_support::net::free_port();
    let started = Instant::now();
    let mut op = Command::new(bin)
        .args(["--database-url", database_url, "--redis-url", redis_url])
        .args(["--listen-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start operator");
    let deadline = Instant::now() + Duration::from_secs(60 + tasks as u64 / 500);
    let mut last_report = Instant::now();
    let ready_secs = loop {
        let ready = if tasks == 0 {
            readyz_ok(metrics_port).await
        } else {
            let done = ready_reconciles(metrics_port).await;
            if last_report.elapsed() > Duration::from_secs(10) {
                eprintln!("  operator: {done} of {tasks} Tasks reconciled Ready ...");
                last_report = Instant::now();
            }
            done >= tasks as u64
        };
        if ready {
            break started.elapsed().as_secs_f64();
        }
        if let Ok(Some(status)) = op.try_wait() {
            panic!("the operator exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the operator was not ready in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Idle: watches open, first lists done, leader elected (and, with Tasks, their status
    // writes come back through the watch).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = |field: &str| {
        std::fs::read_to_string(format!("/proc/{}/status", op.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let (rss_kib, peak_kib) = (status("VmRSS:"), status("VmHWM:"));
    let _ = Command::new("kill")
        .args(["-TERM", &op.id().to_string()])
        .status();
    let _ = op.wait();
    let _ = std::fs::remove_dir_all(&dir);
    OperatorRss {
        ready_secs: if tasks == 0 { 0.0 } else { ready_secs },
        rss_kib,
        peak_kib,
    }
}

/// Task reconciles that ended Ready so far, from the operator's `/metrics`.
async fn ready_reconciles(port: u16) -> u64 {
    let body = ordinaut_test_support::net::http_get(port, "/metrics").await;
    body.lines()
        .find_map(|l| {
            l.strip_prefix(r#"ordinaut_operator_reconciles_total{kind="Task",outcome="ready"} "#)
        })
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Whether `GET /readyz` answers 200.
async fn readyz_ok(port: u16) -> bool {
    ordinaut_test_support::net::http_get(port, "/readyz")
        .await
        .starts_with("HTTP/1.1 200")
}
