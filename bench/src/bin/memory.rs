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
    let mut redis_url = std::env::var("ORDINAUT_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let v = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--worker-bin" => bin = v,
            "--database-url" => admin_url = v,
            "--operator-bin" => operator_bin = Some(v),
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
        Some(bin) => Some(operator_idle_rss(bin, &url, &redis_url).await),
        None => None,
    };
    drop(store);
    db.drop_db().await;

    println!("| measure | value |");
    println!("|---|---|");
    println!("| worker idle RSS | {:.1} MiB |", idle as f64 / 1024.0);
    println!(
        "| worker RSS, {runs} concurrent runs | {:.1} MiB (most in flight seen: {most_in_flight}) |",
        peak as f64 / 1024.0
    );
    if let Some(kib) = operator_idle {
        println!(
            "| operator idle RSS (leader, watching, no Tasks) | {:.1} MiB |",
            kib as f64 / 1024.0
        );
    }
    let result = json!({"worker_idle_rss_kib": idle, "worker_busy_rss_kib": peak, "concurrent_runs": runs, "most_in_flight": most_in_flight, "operator_idle_rss_kib": operator_idle});
    if let Some(out) = out {
        std::fs::write(&out, serde_json::to_string_pretty(&result).expect("json"))
            .expect("write results");
    }
}

/// Serves a fake Kubernetes API (with Ordinaut's custom resources) over plain HTTP on a
/// local port, for the life of this process; returns its address.
async fn serve_fake_api() -> std::net::SocketAddr {
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    fake.register::<ordinaut_api::Task>()
        .register::<ordinaut_api::Pipeline>()
        .register::<ordinaut_api::McpServer>()
        .register::<ordinaut_api::Agent>();
    let addr = fake.serve_http().await.expect("serve the fake API");
    // The server holds the fake's state; the handle itself may go.
    drop(fake);
    addr
}

/// RSS of a real operator process, a few seconds after it became ready.
async fn operator_idle_rss(bin: &str, database_url: &str, redis_url: &str) -> u64 {
    let addr = serve_fake_api().await;
    let dir = std::env::temp_dir().join(format!("ordinaut-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ordinaut_kube_fake::kubeconfig_for(addr, "default"),
    )
    .expect("write kubeconfig");
    let listen = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    let metrics_port = listen.local_addr().expect("addr").port();
    drop(listen);
    let mut op = Command::new(bin)
        .args(["--database-url", database_url, "--redis-url", redis_url])
        .args(["--listen-addr", &format!("127.0.0.1:{metrics_port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start operator");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .await
            .is_ok()
            && readyz_ok(metrics_port).await;
        if ready {
            break;
        }
        if let Ok(Some(status)) = op.try_wait() {
            panic!("the operator exited before it was ready: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the operator was not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Idle: watches open, first (empty) lists done, leader elected.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss = rss_kib(op.id());
    let _ = Command::new("kill")
        .args(["-TERM", &op.id().to_string()])
        .status();
    let _ = op.wait();
    let _ = std::fs::remove_dir_all(&dir);
    rss
}

/// Whether `GET /readyz` answers 200.
async fn readyz_ok(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let req =
        format!("GET /readyz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    buf.starts_with(b"HTTP/1.1 200")
}
