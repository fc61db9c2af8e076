//! Ordinaut's Redis Streams side.
//!
//! * [`OutboxRelay`] moves events from PostgreSQL's `outbox` table to Redis Streams
//!   (`XADD … MAXLEN ~ N`), in outbox id order, and marks them published. While Redis is
//!   down the rows wait in the outbox (the backlog is in [`RelayStats`]); nothing is lost.
//! * [`GroupConsumer`] reads a stream through a consumer group (`XREADGROUP`/`XACK`), first
//!   redelivering what it had read but not acknowledged before a crash, then reclaiming
//!   entries other consumers left idle (`XAUTOCLAIM`), then new entries.
//!
//! * [`EventTriggers`] reads the topic streams (`ordinaut:topic:<t>`) of Tasks `on: {topic}`
//!   through the consumer group [`TRIGGER_GROUP`] and starts one run per event and Task.
//!
//! Every entry the relay writes has the fields `type`, `outbox_id`, `task_uid` (when the
//! event belongs to a task), `payload` (compact JSON) and `created_at` (RFC 3339).

mod conn;
pub use conn::ping_redis;
mod consumer;
mod relay;
mod tail;
mod triggers;

pub use consumer::{ConsumerError, Delivery, GroupConsumer, StartFrom, StreamEntry};
pub use ordinaut_store::DEFAULT_STREAM;
pub use relay::{OutboxRelay, RelayError, RelayStats};
pub use tail::StreamTail;
pub use triggers::{
    EventTriggers, TRIGGER_GROUP, TopicEvent, TriggerConfig, TriggerStats, deliveries, stream_topic,
};

/// Field names of a relayed stream entry.
pub mod fields {
    /// The event type, e.g. `run.succeeded`.
    pub const TYPE: &str = "type";
    /// The outbox row id: increases with every event, so consumers can order and dedupe.
    pub const OUTBOX_ID: &str = "outbox_id";
    /// The task the event belongs to (a UUID), absent for events without a task.
    pub const TASK_UID: &str = "task_uid";
    /// The event body as compact JSON.
    pub const PAYLOAD: &str = "payload";
    /// When the event was written to the outbox, RFC 3339 in UTC.
    pub const CREATED_AT: &str = "created_at";
}
