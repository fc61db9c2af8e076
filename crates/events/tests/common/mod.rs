//! Shared test support: Redis URLs and key cleanup, outbox fixtures, deadlines, and a private
//! `redis-server` that tests may kill.
#![allow(dead_code)] // each test binary uses a different part

use ordinaut_store::{OutboxEvent, Store};
use serde_json::json;
use std::future::Future;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shared Redis the tests use (keys unique per test).
pub fn redis_url() -> String {
    std::env::var("ORDINAUT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn unique(prefix: &str) -> String {
    format!("ordinaut:test:{prefix}:{}", uuid::Uuid::new_v4().simple())
}

/// Deletes its keys when dropped, pass or fail.
pub struct Keys {
    pub url: String,
    pub keys: Vec<String>,
}

impl Keys {
    pub fn new(url: &str, keys: &[&str]) -> Self {
        Self {
            url: url.to_string(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
        }
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(self.url.as_str())
            && let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2))
        {
            let _: Result<(), _> = redis::cmd("DEL").arg(&self.keys).query(&mut conn);
        }
    }
}

/// Polls `check` every few milliseconds until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends `count` events tagged `phase` to the default stream, `per_tx` per transaction.
pub async fn append(store: &Store, phase: &str, count: usize, per_tx: usize) {
    let mut seq = 0;
    while seq < count {
        let n = per_tx.min(count - seq);
        let events: Vec<OutboxEvent> = (seq..seq + n)
            .map(|i| OutboxEvent::new("test.event", json!({"phase": phase, "seq": i})))
            .collect();
        store
            .append_events(None, &events)
            .await
            .expect("append events");
        seq += n;
    }
}

/// Ids of the events not yet published, in id order.
pub async fn unpublished_ids(store: &Store) -> Vec<i64> {
    store
        .unpublished_events(1_000_000)
        .await
        .expect("read unpublished events")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// A stream's entries as (outbox_id, payload) in stream order, read with `XRANGE`.
pub async fn stream_events(url: &str, stream: &str) -> Vec<(i64, serde_json::Value)> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .expect("connect to redis");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    reply
        .ids
        .iter()
        .map(|e| {
            let id = e
                .get::<i64>("outbox_id")
                .unwrap_or_else(|| panic!("entry {} has no outbox_id", e.id));
            let payload: String = e
                .get("payload")
                .unwrap_or_else(|| panic!("entry {} has no payload", e.id));
            (id, serde_json::from_str(&payload).expect("payload is JSON"))
        })
        .collect()
}

/// A stream's outbox ids in stream order.
pub async fn stream_outbox_ids(url: &str, stream: &str) -> Vec<i64> {
    stream_events(url, stream)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

pub async fn xlen(url: &str, stream: &str) -> Option<usize> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .ok()?;
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut conn)
        .await
        .ok()
}

/// A `redis-server` child process on its own port, without persistence. Killed (SIGKILL)
/// when dropped, so no server outlives the test whatever happens.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
            l.local_addr().expect("local addr").port()
        };
        let mut r = Self { port, child: None };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start `redis-server` ({e}): this test needs the Redis server \
                     binary on PATH; install it (e.g. `apt-get install redis-server`; the CI \
                     script installs it)"
                )
            });
        self.child = Some(child);
        let url = self.url();
        eventually(
            Duration::from_secs(10),
            "the private redis-server to answer",
            || {
                let url = url.clone();
                async move {
                    let client = redis::Client::open(url).ok()?;
                    let mut conn = client
                        .get_multiplexed_async_connection_with_config(
                            &redis::AsyncConnectionConfig::new()
                                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
                        )
                        .await
                        .ok()?;
                    redis::cmd("PING")
                        .query_async::<String>(&mut conn)
                        .await
                        .ok()
                }
            },
        )
        .await;
    }

    /// SIGKILL, as a crash would; everything it held is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}
