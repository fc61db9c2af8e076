//! The chaos suite's harness: a private PostgreSQL, a pool of real worker processes, a
//! workload whose every attempt reports its start and end to a small HTTP server (so two
//! attempts running at once are seen even when neither is recorded), a memory sampler, and
//! the one-line report each scenario prints.

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::Store;
use ordinaut_store::testing::PrivatePostgres;
use ordinaut_test_support::worker::{WorkerProcess, count, task_from_yaml};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether the full form runs (`ORDINAUT_CHAOS_FULL=1`); else the short form CI runs.
pub fn full() -> bool {
    std::env::var("ORDINAUT_CHAOS_FULL").is_ok_and(|v| v == "1")
}

/// One attempt's report to the hit server: begin or end, the occurrence, the attempt, when.
#[derive(Debug, Clone)]
struct Hit {
    end: bool,
    key: String,
    attempt: u32,
    at: Instant,
}

/// When one attempt began and ended, as far as the hit server saw.
type Span = (Option<Instant>, Option<Instant>);

/// The HTTP server the workload's steps call at the start and the end of each attempt.
pub struct HitServer {
    pub port: u16,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl HitServer {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let seen = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let seen = seen.clone();
                std::thread::spawn(move || answer(conn, &seen));
            }
        });
        Self { port, hits }
    }

    /// Attempts of one occurrence that ran at the same time: pairs whose begin–end intervals
    /// intersect (an attempt killed before its end has no interval to overlap with).
    pub fn overlapped(&self) -> usize {
        let hits = self
            .hits
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut spans: HashMap<&str, HashMap<u32, Span>> = HashMap::new();
        for h in hits.iter() {
            let e = spans
                .entry(&h.key)
                .or_default()
                .entry(h.attempt)
                .or_default();
            if h.end {
                e.1 = Some(h.at);
            } else {
                e.0 = Some(h.at);
            }
        }
        let mut overlaps = 0;
        for attempts in spans.values() {
            let done: Vec<(Instant, Instant)> = attempts
                .values()
                .filter_map(|(b, e)| Some(((*b)?, (*e)?)))
                .collect();
            for (i, a) in done.iter().enumerate() {
                for b in &done[i + 1..] {
                    if a.0 < b.1 && b.0 < a.1 {
                        overlaps += 1;
                    }
                }
            }
        }
        overlaps
    }
}

fn answer(mut conn: std::net::TcpStream, seen: &Mutex<Vec<Hit>>) {
    let mut buf = [0u8; 2048];
    let n = conn.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    // GET /begin/<key>/<attempt>
    if let Some(path) = head.split_whitespace().nth(1) {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let [kind, key, attempt] = parts.as_slice() {
            seen.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(Hit {
                    end: *kind == "end",
                    key: (*key).to_string(),
                    attempt: attempt.parse().unwrap_or(0),
                    at: Instant::now(),
                });
        }
    }
    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
}

/// A scenario's world: a private PostgreSQL with Ordinaut's schema, the hit server, the
/// workers, and the memory sampler.
pub struct World {
    pub pg: PrivatePostgres,
    pub url: String,
    pub store: Store,
    pub hits: HitServer,
    pub workers: Arc<Mutex<Vec<WorkerProcess>>>,
    pub extra_args: Vec<String>,
    started: usize,
    mem_peak_kib: Arc<AtomicU64>,
    sampling: Arc<AtomicBool>,
    pub due: i64,
}

impl World {
    pub async fn new() -> Self {
        let pg = PrivatePostgres::start();
        let url = pg.create_database("chaos").await;
        let store = Store::connect(&url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let hits = HitServer::start();
        let world = Self {
            pg,
            url,
            store,
            hits,
            workers: Arc::default(),
            extra_args: Vec::new(),
            started: 0,
            mem_peak_kib: Arc::default(),
            sampling: Arc::new(AtomicBool::new(true)),
            due: 0,
        };
        world.sample_memory();
        world
    }

    /// Queues `n` occurrences of one Task, due evenly over `span` from now. Each attempt
    /// calls the hit server, naps `nap`, and calls it again.
    pub async fn queue(&mut self, n: usize, span: Duration, nap: &str) {
        let port = self.hits.port;
        let yaml = format!(
            "schedule: {{every: 1h}}\npipeline:\n  steps:\n    - id: begin\n      uses: http.request\n      with: {{url: 'http://127.0.0.1:{port}/begin/${{now}}/${{run.attempt}}'}}\n    - {{id: nap, uses: core.sleep, with: {{duration: {nap}}}}}\n    - id: end\n      uses: http.request\n      with: {{url: 'http://127.0.0.1:{port}/end/${{now}}/${{run.attempt}}'}}\n"
        );
        let task = task_from_yaml("chaos", &yaml);
        self.store.upsert_task(&task).await.expect("task");
        let t0 = Utc::now() + ChronoDuration::milliseconds(500);
        let step = span.as_micros() as i64 / n.max(1) as i64;
        let occ: Vec<_> = (0..n)
            .map(|i| {
                ordinaut_store::NewOccurrence::scheduled(
                    task.uid,
                    t0 + ChronoDuration::microseconds(step * i as i64 + 1),
                )
            })
            .collect();
        self.store
            .insert_occurrences(&occ)
            .await
            .expect("occurrences");
        self.due += n as i64;
    }

    /// Starts one more worker process with the suite's flags.
    pub fn start_worker(&mut self) {
        let allow = format!("127.0.0.1:{}", self.hits.port);
        let mut args: Vec<String> = [
            "--migrate",
            "false",
            "--lease-duration",
            "3s",
            "--heartbeat-interval",
            "500ms",
            "--reap-interval",
            "300ms",
            "--poll-interval",
            "200ms",
            "--concurrency",
            "32",
            "--batch-size",
            "32",
            "--http-allow-hosts",
            &allow,
            "--http-allow-networks",
            "127.0.0.0/8",
            "--http-allow-agentless=true",
            // The suite counts every run record: history retention (100 per Task by
            // default) would prune what it counts.
            "--retention-interval",
            "0s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.extra_args.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let id = format!("w{}", self.started);
        self.started += 1;
        let w = WorkerProcess::start(&self.url, &id, &refs);
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(w);
    }

    fn sample_memory(&self) {
        let workers = self.workers.clone();
        let peak = self.mem_peak_kib.clone();
        let on = self.sampling.clone();
        std::thread::spawn(move || {
            while on.load(Ordering::SeqCst) {
                let pids: Vec<i32> = workers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .map(WorkerProcess::pid)
                    .collect();
                for pid in pids {
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::SeqCst);
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }

    /// Waits until every queued occurrence is finished, at most `timeout` (the database may
    /// be restarting meanwhile).
    pub async fn wait_done(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT count(*) FROM due_work WHERE done_at IS NOT NULL")
                    .fetch_one(self.store.pool())
                    .await
                    .ok();
            if done.is_some_and(|(n,)| n >= self.due) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until at least `n` occurrences are finished (tolerating a database away).
    pub async fn wait_finished(&self, n: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT count(*) FROM due_work WHERE done_at IS NOT NULL")
                    .fetch_one(self.store.pool())
                    .await
                    .ok();
            if done.is_some_and(|(d,)| d >= n) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Measures the outcome, prints the scenario's line and returns it.
    pub async fn report(&self, scenario: &str) -> Report {
        self.sampling.store(false, Ordering::SeqCst);
        let ran = count(
            &self.store,
            "SELECT count(DISTINCT due_work_id) FROM task_runs WHERE status = 'succeeded'",
        )
        .await;
        let doubled = count(
            &self.store,
            "SELECT count(*) FROM (SELECT due_work_id FROM task_runs WHERE status = 'succeeded' \
             GROUP BY due_work_id HAVING count(*) > 1) d",
        )
        .await;
        let (lag,): (Option<f64>,) = sqlx::query_as(
            "SELECT max(extract(epoch FROM r.started_at - d.scheduled_for))::float8 \
             FROM task_runs r JOIN due_work d ON d.id = r.due_work_id WHERE r.status = 'succeeded'",
        )
        .fetch_one(self.store.pool())
        .await
        .expect("lag");
        let report = Report {
            due: self.due,
            ran,
            lost: self.due - ran,
            doubled,
            overlapped: self.hits.overlapped() as i64,
            max_lag_s: lag.unwrap_or(0.0),
            mem_mib: self.mem_peak_kib.load(Ordering::SeqCst) as f64 / 1024.0,
        };
        println!(
            "chaos {scenario:<28} due={} ran={} lost={} doubled={} overlapped={} max_lag={:.2}s mem_hwm={:.1}MiB",
            report.due,
            report.ran,
            report.lost,
            report.doubled,
            report.overlapped,
            report.max_lag_s,
            report.mem_mib
        );
        report
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.sampling.store(false, Ordering::SeqCst);
    }
}

/// A scenario's figures.
#[derive(Debug)]
pub struct Report {
    pub due: i64,
    pub ran: i64,
    pub lost: i64,
    pub doubled: i64,
    pub overlapped: i64,
    pub max_lag_s: f64,
    pub mem_mib: f64,
}

impl Report {
    /// The goal: nothing lost, doubled or overlapped.
    pub fn assert_goal(&self) {
        assert_eq!(
            (self.lost, self.doubled, self.overlapped),
            (0, 0, 0),
            "lost, doubled, overlapped: {self:?}"
        );
    }
}

fn rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
