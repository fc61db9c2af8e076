//! The worker tests' task fixtures and real worker processes (feature `worker`); the
//! databases, Redis and waiting they use are re-exported from the generic part.

pub use crate::{PrivateRedis, count, redis_url, wait_for_count};

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_api::TaskSpec;
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
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

/// A worker process, killed (SIGKILL) when dropped if still running.
pub struct WorkerProcess {
    pub child: Child,
    pub id: String,
}

impl WorkerProcess {
    pub fn start(db_url: &str, id: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(crate::cargo_bin("ordinaut-worker"));
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
        let what = format!("worker {} to exit", self.id);
        let child = &mut self.child;
        crate::wait_blocking(timeout, &what, || child.try_wait().unwrap())
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

/// A unique stream key for one test.
pub fn unique_stream(name: &str) -> String {
    crate::unique_key(name)
}

/// Every entry of `stream` as (type, payload), oldest first.
pub async fn stream_entries(url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    crate::redis::xrange(url, stream)
        .await
        .into_iter()
        .map(|e| {
            let ty: String = e.get("type").unwrap();
            let payload: String = e.get("payload").unwrap();
            (ty, serde_json::from_str(&payload).unwrap())
        })
        .collect()
}

pub async fn delete_key(url: &str, key: &str) {
    crate::redis::delete(url, &[key]).await;
}
