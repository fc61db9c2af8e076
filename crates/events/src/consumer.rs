//! Reading a stream through a Redis consumer group, for the operator's status feed and for
//! users: at-least-once delivery that survives a consumer crash.
//!
//! # Delivery order of [`GroupConsumer::read`]
//! 1. **Pending**: entries this consumer name was given earlier and never acknowledged
//!    (it crashed, or the process restarted), oldest first. Each is returned once per
//!    `GroupConsumer` value; after that, an unacknowledged entry comes back only through 2.
//! 2. **Reclaimed**: entries of any consumer in the group (this one included) left
//!    unacknowledged for longer than the reclaim threshold (`XAUTOCLAIM`), oldest first.
//!    Checked at most every half threshold.
//! 3. **New**: entries never delivered to the group (`XREADGROUP … >`), oldest first.
//!
//! One call returns entries of one kind only, ascending by id. Across calls, a pending or
//! reclaimed entry can be older than new entries already returned, so a consumer that must
//! apply events in order compares [`StreamEntry::outbox_id`] (or its own version field)
//! rather than trusting arrival order. Acknowledge ([`GroupConsumer::ack`]) only after the
//! entry's effect is durable.

use crate::conn::Reconnecting;
use crate::fields;
use redis::{Client, RedisError, Value};
use serde_json::Value as Json;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A consumer-group failure. Nothing is lost: unacknowledged entries stay pending.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("stream {stream}, group {group}: Redis failed: {cause} (is Redis reachable?)")]
    Redis {
        stream: String,
        group: String,
        cause: RedisError,
    },
    #[error("stream {stream}, group {group}: Redis did not answer within {timeout:?}")]
    Timeout {
        stream: String,
        group: String,
        timeout: Duration,
    },
    #[error("stream {stream}, group {group}: unexpected reply to {command}: {detail}")]
    Reply {
        stream: String,
        group: String,
        command: &'static str,
        detail: String,
    },
    #[error("invalid Redis URL: {0}")]
    Url(RedisError),
}

/// Where a new group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Every entry still in the stream (`0`).
    Beginning,
    /// Only entries added after the group is created (`$`).
    NewOnly,
}

/// How an entry reached this consumer (see the module docs for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered to this consumer name before and never acknowledged.
    Pending,
    /// Taken over after sitting unacknowledged longer than the reclaim threshold.
    Reclaimed,
    /// Delivered for the first time.
    New,
}

/// One stream entry as the relay wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    /// The Redis entry id (`<ms>-<seq>`), what [`GroupConsumer::ack`] takes.
    pub id: String,
    /// The `type` field (`run.succeeded`…); empty when absent.
    pub event_type: String,
    /// The `outbox_id` field: increases with every event; use it to order and dedupe.
    pub outbox_id: Option<i64>,
    /// The `task_uid` field.
    pub task_uid: Option<String>,
    /// The `created_at` field (RFC 3339).
    pub created_at: Option<String>,
    /// The `payload` field parsed as JSON; `Null` when absent, a JSON string holding the raw
    /// text when it is not JSON (entries written by something other than the relay).
    pub payload: Json,
    /// Every field as text, including the ones above.
    pub fields: HashMap<String, String>,
    /// How it was delivered.
    pub delivery: Delivery,
}

/// A member of a consumer group on one stream. Uses its own connection, since a blocking
/// read holds the connection it runs on.
pub struct GroupConsumer {
    redis: Reconnecting,
    stream: String,
    group: String,
    consumer: String,
    reclaim_idle: Duration,
    /// `Some(last id seen)` until this consumer's own pending entries have been returned.
    pending_cursor: Option<String>,
    claim_cursor: String,
    next_claim: Instant,
}

/// Added to a blocking read's own block time before the call counts as hung.
const REPLY_MARGIN: Duration = Duration::from_secs(5);

impl GroupConsumer {
    /// Default idle time after which another consumer's unacknowledged entry is reclaimed.
    pub const DEFAULT_RECLAIM_IDLE: Duration = Duration::from_secs(60);

    /// A consumer named `consumer` in `group` on `stream`. Restarting with the same name
    /// picks up its unacknowledged entries first. Connects lazily.
    pub fn new(
        redis: Client,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Self {
        Self {
            // Reply times are bounded per call (a blocking read legitimately waits).
            redis: Reconnecting::new(redis, Duration::from_secs(2), None),
            stream: stream.into(),
            group: group.into(),
            consumer: consumer.into(),
            reclaim_idle: Self::DEFAULT_RECLAIM_IDLE,
            pending_cursor: Some("0".to_string()),
            claim_cursor: "0-0".to_string(),
            next_claim: Instant::now(),
        }
    }

    /// Like [`GroupConsumer::new`], from a URL.
    pub fn open(
        redis_url: &str,
        stream: impl Into<String>,
        group: impl Into<String>,
        consumer: impl Into<String>,
    ) -> Result<Self, ConsumerError> {
        let client = Client::open(redis_url).map_err(ConsumerError::Url)?;
        Ok(Self::new(client, stream, group, consumer))
    }

    /// Entries unacknowledged for longer than `idle` (by any consumer) are reclaimed.
    pub fn with_reclaim_idle(mut self, idle: Duration) -> Self {
        self.reclaim_idle = idle;
        self
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the group (and the stream, if missing). `Ok(false)` when it already existed,
    /// in which case `start` is ignored.
    pub async fn ensure_group(&self, start: StartFrom) -> Result<bool, ConsumerError> {
        let id = match start {
            StartFrom::Beginning => "0",
            StartFrom::NewOnly => "$",
        };
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(id)
            .arg("MKSTREAM");
        match self.call::<()>(&cmd, REPLY_MARGIN).await {
            Ok(()) => Ok(true),
            Err(ConsumerError::Redis { cause, .. }) if cause.code() == Some("BUSYGROUP") => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Up to `count` entries: this consumer's pending ones first, then reclaimed ones, then
    /// new ones (module docs). Only the read of new entries blocks, for up to `block`
    /// (`Duration::ZERO`: do not block). An empty result means nothing arrived in time.
    pub async fn read(
        &mut self,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, ConsumerError> {
        let count = count.max(1);
        while let Some(cursor) = self.pending_cursor.clone() {
            let reply: Value = self
                .call(&self.readgroup_cmd(count, None, &cursor), REPLY_MARGIN)
                .await?;
            let raw = self.parse_read(reply)?;
            let Some((last, _)) = raw.last() else {
                self.pending_cursor = None;
                break;
            };
            self.pending_cursor = Some(last.clone());
            let (live, trimmed) = split_trimmed(raw, Delivery::Pending);
            if !trimmed.is_empty() {
                // Trimmed away by MAXLEN before it was processed: nothing left to deliver.
                tracing::warn!(
                    stream = %self.stream,
                    group = %self.group,
                    entries = trimmed.len(),
                    "pending entries were trimmed from the stream; acknowledging them"
                );
                self.ack(&trimmed).await?;
            }
            if !live.is_empty() {
                return Ok(live);
            }
        }

        if Instant::now() >= self.next_claim {
            let claimed = self.autoclaim(count).await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }

        let block_ms = u64::try_from(block.as_millis()).unwrap_or(u64::MAX);
        let reply: Value = self
            .call(
                &self.readgroup_cmd(count, (block_ms > 0).then_some(block_ms), ">"),
                block + REPLY_MARGIN,
            )
            .await?;
        let raw = self.parse_read(reply)?;
        Ok(split_trimmed(raw, Delivery::New).0)
    }

    /// Acknowledges entries (they will not be delivered again). Returns how many were
    /// pending.
    pub async fn ack<S: AsRef<str>>(&self, ids: &[S]) -> Result<usize, ConsumerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group);
        for id in ids {
            cmd.arg(id.as_ref());
        }
        self.call(&cmd, REPLY_MARGIN).await
    }

    /// Entries delivered to the group and not yet acknowledged, across all its consumers.
    pub async fn pending_count(&self) -> Result<usize, ConsumerError> {
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(&self.stream).arg(&self.group);
        let reply: Value = self.call(&cmd, REPLY_MARGIN).await?;
        match reply {
            Value::Array(items) => match items.first() {
                Some(Value::Int(n)) => Ok(usize::try_from(*n).unwrap_or(0)),
                other => Err(self.reply_error("XPENDING", format!("{other:?}"))),
            },
            other => Err(self.reply_error("XPENDING", format!("{other:?}"))),
        }
    }

    async fn autoclaim(&mut self, count: usize) -> Result<Vec<StreamEntry>, ConsumerError> {
        let idle_ms = u64::try_from(self.reclaim_idle.as_millis()).unwrap_or(u64::MAX);
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.stream)
            .arg(&self.group)
            .arg(&self.consumer)
            .arg(idle_ms)
            .arg(&self.claim_cursor)
            .arg("COUNT")
            .arg(count);
        let reply: Value = self.call(&cmd, REPLY_MARGIN).await?;
        let Value::Array(mut items) = reply else {
            return Err(self.reply_error("XAUTOCLAIM", format!("{reply:?}")));
        };
        if items.len() < 2 {
            return Err(self.reply_error("XAUTOCLAIM", format!("{items:?}")));
        }
        // Redis ≥ 7 drops trimmed entries from the pending list itself (third element).
        let entries = items.swap_remove(1);
        let next = text(&items[0])
            .ok_or_else(|| self.reply_error("XAUTOCLAIM", format!("{:?}", items[0])))?;
        if next == "0-0" {
            // A full pass over the pending list: rest before scanning again.
            self.next_claim = Instant::now() + self.reclaim_idle / 2;
        }
        self.claim_cursor = next;
        let raw = parse_entries(entries).map_err(|d| self.reply_error("XAUTOCLAIM", d))?;
        let mut claimed = split_trimmed(raw, Delivery::Reclaimed).0;
        claimed.sort_by_key(|e| id_key(&e.id));
        if !claimed.is_empty() {
            tracing::info!(
                stream = %self.stream,
                group = %self.group,
                consumer = %self.consumer,
                entries = claimed.len(),
                "reclaimed idle pending entries"
            );
        }
        Ok(claimed)
    }

    fn readgroup_cmd(&self, count: usize, block_ms: Option<u64>, id: &str) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(ms) = block_ms {
            cmd.arg("BLOCK").arg(ms);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        cmd
    }

    /// The entries of an `XREADGROUP` reply for our one stream (`Nil` after a block).
    fn parse_read(&self, reply: Value) -> Result<Vec<RawEntry>, ConsumerError> {
        entries_of_read(&self.stream, reply).map_err(|d| self.reply_error("XREADGROUP", d))
    }

    async fn call<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
        timeout: Duration,
    ) -> Result<T, ConsumerError> {
        let call = self
            .redis
            .run(|mut conn| async move { cmd.query_async::<T>(&mut conn).await });
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(cause)) => Err(ConsumerError::Redis {
                stream: self.stream.clone(),
                group: self.group.clone(),
                cause,
            }),
            Err(_) => {
                // The reply may still come; this connection can no longer be trusted.
                self.redis.reset().await;
                Err(ConsumerError::Timeout {
                    stream: self.stream.clone(),
                    group: self.group.clone(),
                    timeout,
                })
            }
        }
    }

    fn reply_error(&self, command: &'static str, detail: String) -> ConsumerError {
        ConsumerError::Reply {
            stream: self.stream.clone(),
            group: self.group.clone(),
            command,
            detail,
        }
    }
}

/// The entries of an `XREAD`/`XREADGROUP` reply for `stream` (`Nil` after a block).
pub(crate) fn entries_of_read(stream: &str, reply: Value) -> Result<Vec<RawEntry>, String> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(pairs) => pairs,
        Value::Array(items) => {
            let mut pairs = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::Array(mut kv) if kv.len() == 2 => {
                        let entries = kv.pop().unwrap_or_default();
                        let key = kv.pop().unwrap_or_default();
                        pairs.push((key, entries));
                    }
                    other => return Err(format!("{other:?}")),
                }
            }
            pairs
        }
        other => return Err(format!("{other:?}")),
    };
    let mut out = Vec::new();
    for (key, entries) in streams {
        if text(&key).as_deref() == Some(stream) {
            out.extend(parse_entries(entries)?);
        }
    }
    Ok(out)
}

/// An entry id and its fields; `None` when the entry was trimmed from the stream but is
/// still in a pending list.
pub(crate) type RawEntry = (String, Option<HashMap<String, String>>);

fn parse_entries(v: Value) -> Result<Vec<RawEntry>, String> {
    let Value::Array(items) = v else {
        return Err(format!("entries: {v:?}"));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut parts) = item else {
            // Redis 6 XAUTOCLAIM reports a trimmed entry as a bare nil; nothing to deliver.
            continue;
        };
        if parts.is_empty() {
            continue;
        }
        let field_list = if parts.len() > 1 {
            parts.swap_remove(1)
        } else {
            Value::Nil
        };
        let id = text(&parts[0]).ok_or_else(|| format!("entry id: {:?}", parts[0]))?;
        let map = match field_list {
            Value::Nil => None,
            Value::Array(flat) => Some(
                flat.chunks(2)
                    .filter_map(|kv| match kv {
                        [k, v] => Some((text(k)?, text(v)?)),
                        _ => None,
                    })
                    .collect(),
            ),
            Value::Map(pairs) => Some(
                pairs
                    .iter()
                    .filter_map(|(k, v)| Some((text(k)?, text(v)?)))
                    .collect(),
            ),
            other => return Err(format!("entry {id} fields: {other:?}")),
        };
        out.push((id, map));
    }
    Ok(out)
}

/// Live entries as [`StreamEntry`] values, and the ids of trimmed ones.
fn split_trimmed(raw: Vec<RawEntry>, delivery: Delivery) -> (Vec<StreamEntry>, Vec<String>) {
    let mut live = Vec::with_capacity(raw.len());
    let mut trimmed = Vec::new();
    for (id, map) in raw {
        match map {
            Some(fields) => live.push(StreamEntry::from_fields(id, fields, delivery)),
            None => trimmed.push(id),
        }
    }
    (live, trimmed)
}

impl StreamEntry {
    pub(crate) fn from_fields(
        id: String,
        fields: HashMap<String, String>,
        delivery: Delivery,
    ) -> Self {
        let payload = match fields.get(fields::PAYLOAD) {
            None => Json::Null,
            Some(raw) => serde_json::from_str(raw).unwrap_or_else(|_| Json::String(raw.clone())),
        };
        Self {
            event_type: fields.get(fields::TYPE).cloned().unwrap_or_default(),
            outbox_id: fields.get(fields::OUTBOX_ID).and_then(|s| s.parse().ok()),
            task_uid: fields.get(fields::TASK_UID).cloned(),
            created_at: fields.get(fields::CREATED_AT).cloned(),
            payload,
            fields,
            delivery,
            id,
        }
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".to_string()),
        _ => None,
    }
}

/// Orders entry ids numerically (`<ms>-<seq>`), as Redis does.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_entries_and_flags_trimmed_ones() {
        let v = Value::Array(vec![
            Value::Array(vec![
                bulk("5-1"),
                Value::Array(vec![
                    bulk("type"),
                    bulk("run.succeeded"),
                    bulk("outbox_id"),
                    bulk("42"),
                    bulk("payload"),
                    bulk(r#"{"a":1}"#),
                ]),
            ]),
            Value::Array(vec![bulk("6-0"), Value::Nil]),
        ]);
        let (live, trimmed) = split_trimmed(parse_entries(v).expect("valid reply"), Delivery::New);
        assert_eq!(trimmed, vec!["6-0".to_string()]);
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id, "5-1");
        assert_eq!(live[0].event_type, "run.succeeded");
        assert_eq!(live[0].outbox_id, Some(42));
        assert_eq!(live[0].payload, serde_json::json!({"a": 1}));
        assert_eq!(live[0].task_uid, None);
    }

    #[test]
    fn a_payload_that_is_not_json_is_kept_as_text() {
        let mut fields = HashMap::new();
        fields.insert("payload".to_string(), "not json".to_string());
        let e = StreamEntry::from_fields("1-0".into(), fields, Delivery::New);
        assert_eq!(e.payload, Json::String("not json".into()));
        assert_eq!(e.outbox_id, None);
    }

    #[test]
    fn ids_order_numerically() {
        assert!(id_key("9-0") < id_key("10-0"));
        assert!(id_key("10-2") < id_key("10-10"));
    }
}
