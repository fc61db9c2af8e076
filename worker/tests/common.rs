//! Test support for the worker: task fixtures, real worker processes, waiting with deadlines.
#![allow(dead_code, clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_api::TaskSpec;
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A projection of a Task whose spec is `spec_yaml` (a TaskSpec in YAML).
pub fn task_from_yaml(name: &str, spec_yaml: &str) -> TaskProjection {
    let spec: TaskSpec = serde_yaml::from_str(spec_yaml).unwrap();
    TaskProjection {
        uid: Uuid::new_v4(),
        namespace: "default".into(),
        name: name.into(),
        generation: 1,
        concurrency_policy: format!("{:?}", spec.concurrency_policy),
        priority: spec.priority,
        spec: serde_json::to_value(&spec).unwrap(),
        schedule_kind: "every".into(),
        schedule: "1h".into(),
        timezone: spec.schedule.timezone.clone(),
        next_run_at: None,
        materialized_until: None,
        suspended: false,
        snooze_until: None,
    }
}

/// Inserts the task and `n` occurrences due now (spread over the last `n` milliseconds).
pub async fn insert_due(store: &Store, task: &TaskProjection, n: usize) {
    store.upsert_task(task).await.unwrap();
    let now = Utc::now();
    let occ: Vec<NewOccurrence> = (0..n)
        .map(|i| NewOccurrence::scheduled(task.uid, now - ChronoDuration::milliseconds(i as i64)))
        .collect();
    assert_eq!(store.insert_occurrences(&occ).await.unwrap(), n as u64);
}

pub async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap();
    n
}

/// Polls `sql` (a count) until it equals `want`, failing after `timeout`.
pub async fn wait_for_count(store: &Store, sql: &str, want: i64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let got = count(store, sql).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for `{sql}` = {want} (got {got})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A worker process, killed (SIGKILL) when dropped if still running.
pub struct WorkerProcess {
    pub child: Child,
    pub id: String,
}

impl WorkerProcess {
    pub fn start(db_url: &str, id: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordinaut-worker"));
        cmd.args([
            "--database-url",
            db_url,
            "--worker-id",
            id,
            "--log-format",
            "json",
        ])
        .args(extra)
        // Any free port, unless the test chose one.
        .env("ORDINAUT_LISTEN_ADDR", "127.0.0.1:0")
        .env_remove("REDIS_URL")
        .env_remove("ORDINAUT_EVENTS_STREAM")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        let child = cmd.spawn().unwrap();
        Self {
            child,
            id: id.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal (e.g. "TERM", "KILL") with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for exit, at most `timeout`; returns the exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker {} did not exit within {timeout:?}",
                self.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub const ECHO_TASK: &str = r#"
schedule:
  every: 1h
pipeline:
  steps:
    - id: greet
      uses: core.echo
      with:
        message: "hello ${task.name} run ${run.id} attempt ${run.attempt}"
"#;

/// The shared Redis for tests (each test uses its own stream key).
pub fn redis_url() -> String {
    std::env::var("ORDINAUT_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A unique stream key for one test.
pub fn unique_stream(name: &str) -> String {
    format!("ordinaut:test:{name}:{}", Uuid::new_v4().simple())
}

/// Every entry of `stream` as (type, payload), oldest first.
pub async fn stream_entries(url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| {
            let ty: String = e.get("type").unwrap();
            let payload: String = e.get("payload").unwrap();
            (ty, serde_json::from_str(&payload).unwrap())
        })
        .collect()
}

pub async fn delete_key(url: &str, key: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A private `redis-server` on a free port, killed when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Self { port, child: None };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server ({e}); install it (`apt-get install redis-server`; scripts/test.sh does)"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
