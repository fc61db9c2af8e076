//! Following one stream from a point on without a consumer group (`XREAD`), for people
//! watching events (`ordinaut events tail`). Nothing is acknowledged or changed.

use crate::conn::Reconnecting;
use crate::consumer::{Delivery, StreamEntry};
use redis::{Client, RedisError, Value};
use std::time::Duration;

/// Reads the entries of `stream` after a given id, oldest first.
pub struct StreamTail {
    redis: Reconnecting,
    stream: String,
    last_id: String,
}

impl StreamTail {
    /// Follows `stream` from its start (`from_start`) or from entries added from now on.
    pub fn new(client: Client, stream: impl Into<String>, from_start: bool) -> Self {
        Self {
            redis: Reconnecting::new(client, Duration::from_secs(2), None),
            stream: stream.into(),
            last_id: if from_start { "0-0" } else { "$" }.to_string(),
        }
    }

    /// Like [`StreamTail::new`], from a Redis URL.
    pub fn open(
        url: &str,
        stream: impl Into<String>,
        from_start: bool,
    ) -> Result<Self, RedisError> {
        Ok(Self::new(Client::open(url)?, stream, from_start))
    }

    /// Up to `count` entries after the last one returned, waiting up to `block` for one.
    pub async fn next(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, RedisError> {
        if self.last_id == "$" {
            // "From now" pinned to the stream's current end before the first read, so entries
            // added between two reads are never skipped.
            self.last_id = self
                .current_last_id()
                .await?
                .unwrap_or_else(|| "0-0".to_string());
        }
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(count.max(1))
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(&self.last_id);
        let reply: Value = self
            .redis
            .run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        let raw = crate::consumer::entries_of_read(&self.stream, reply).map_err(|d| {
            RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected XREAD reply",
                d,
            ))
        })?;
        let entries: Vec<StreamEntry> = raw
            .into_iter()
            .filter_map(|(id, fields)| Some(StreamEntry::from_fields(id, fields?, Delivery::New)))
            .collect();
        if let Some(last) = entries.last() {
            self.last_id = last.id.clone();
        }
        Ok(entries)
    }

    async fn current_last_id(&self) -> Result<Option<String>, RedisError> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.stream).arg("+").arg("-").arg("COUNT").arg(1);
        let reply: Value = self
            .redis
            .run(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await?;
        match reply {
            Value::Array(items) => Ok(items.into_iter().next().and_then(|item| match item {
                Value::Array(parts) => parts.into_iter().next().and_then(|v| match v {
                    Value::BulkString(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                }),
                _ => None,
            })),
            _ => Ok(None),
        }
    }
}
