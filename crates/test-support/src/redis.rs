//! Redis: the shared server's URL, unique keys and their cleanup, stream reads, and a
//! private `redis-server` a test may kill.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamRangeReply};

use crate::wait::wait_blocking;

/// The shared Redis the tests use (each test uses keys of its own):
/// `ORDINAUT_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`.
pub fn redis_url() -> String {
    std::env::var("ORDINAUT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key no other test uses: `ordinaut:test:{prefix}:{uuid}`.
pub fn unique_key(prefix: &str) -> String {
    format!("ordinaut:test:{prefix}:{}", uuid::Uuid::new_v4().simple())
}

/// An async connection with a 30 s response timeout.
pub async fn connect(url: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(url)?
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(Duration::from_secs(30))),
        )
        .await
}

/// Every entry of `stream`, oldest first (`XRANGE - +`).
pub async fn xrange(url: &str, stream: &str) -> Vec<StreamId> {
    let mut conn = connect(url).await.expect("connect to redis");
    let reply: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    reply.ids
}

/// The length of `stream`, `None` when Redis does not answer.
pub async fn xlen(url: &str, stream: &str) -> Option<usize> {
    let mut conn = connect(url).await.ok()?;
    redis::cmd("XLEN")
        .arg(stream)
        .query_async(&mut conn)
        .await
        .ok()
}

/// Deletes `keys`.
pub async fn delete(url: &str, keys: &[&str]) {
    let mut conn = connect(url).await.expect("connect to redis");
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .expect("DEL");
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

/// A `redis-server` child process on a free port, without persistence. Killed (SIGKILL)
/// when dropped, so no server outlives the test whatever happens.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        let mut r = Self {
            port: crate::net::free_port(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the server on the same port (killing a running one first) and waits
    /// until it answers `PING`.
    pub fn restart(&mut self) {
        self.kill();
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
                     binary on PATH; install it (e.g. `apt-get install redis-server`; \
                     scripts/test.sh installs it)"
                )
            });
        self.child = Some(child);
        let url = self.url();
        wait_blocking(
            Duration::from_secs(30),
            "the private redis-server to answer PING",
            || {
                let client = redis::Client::open(url.as_str()).ok()?;
                let mut conn = client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .ok()?;
                redis::cmd("PING").query::<String>(&mut conn).ok()
            },
        );
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
