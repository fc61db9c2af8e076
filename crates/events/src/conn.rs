//! A Redis connection that is re-established after it fails, with bounded connect and
//! response times so a dead server turns into a quick error instead of a hang.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult};
use std::time::Duration;
use tokio::sync::Mutex;

/// One multiplexed connection, opened on first use and dropped after an I/O error or a
/// timeout, so the next call reconnects. (redis' `ConnectionManager` does the same but
/// retries inside the call; here the caller owns the retry policy.)
pub(crate) struct Reconnecting {
    client: Client,
    config: AsyncConnectionConfig,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl Reconnecting {
    pub(crate) fn new(
        client: Client,
        connect_timeout: Duration,
        response_timeout: Option<Duration>,
    ) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(response_timeout);
        Self {
            client,
            config,
            conn: Mutex::new(None),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The current connection, connecting first when there is none.
    pub(crate) async fn get(&self) -> RedisResult<MultiplexedConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection after an error that means it can no longer be trusted (I/O,
    /// dropped, timed out: a late reply could otherwise be matched to the wrong request).
    /// Server replies such as `WRONGTYPE` keep it.
    pub(crate) async fn on_error(&self, err: &RedisError) {
        if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_unrecoverable_error()
        {
            *self.conn.lock().await = None;
        }
    }

    /// Forgets the connection unconditionally (e.g. after a call was abandoned mid-flight).
    pub(crate) async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// Runs `f` on the connection; on failure, drops the connection when it is broken.
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> RedisResult<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let result = match self.get().await {
            Ok(conn) => f(conn).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            self.on_error(e).await;
        }
        result
    }
}

/// `true` when the Redis at `url` answers `PING` within `timeout` (for `/readyz` probes that
/// hold no relay or consumer). Opens a fresh connection each call.
pub async fn ping_redis(url: &str, timeout: Duration) -> bool {
    let Ok(client) = Client::open(url) else {
        return false;
    };
    let probe = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(_)))
}
