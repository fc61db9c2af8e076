//! Event triggers: reads every topic stream some Task listens to (`on: {topic}`) through the
//! consumer group [`TRIGGER_GROUP`], and turns each event into one run per listening Task.
//!
//! Several processes (worker replicas, `ordinaut dev`) run [`EventTriggers`] at once; the
//! group shares the entries among them. An entry is acknowledged only after its occurrences
//! are committed, so a crash redelivers it (to this consumer when it restarts, or to another
//! after [`TriggerConfig::reclaim_idle`]) and the occurrence key `(task, event id)` makes the
//! second delivery start nothing. Entries are read in batches of [`TriggerConfig::batch`], so
//! a burst waits in Redis, not in memory.
//!
//! Per event and listening Task: a Task created after the event was published is not given
//! it; a suspended or snoozed Task drops it (counted, with the reason); a falsy `on.filter`
//! filters it out (counted); otherwise one run starts, with the event as `${params.event}`.
//!
//! A batch is retried until it is recorded, so one event PostgreSQL refuses for good (a NUL
//! character in its data, an id too long for the occurrence key: publishing refuses both,
//! but an older client or a direct outbox write may not) must not fail it every time:
//! `Store::record_deliveries` then records the batch event by event and counts that one as
//! dropped (`lastDropReason` says why), so it is acknowledged with the rest and the topic
//! keeps flowing. Only failures that pass (a lost connection) leave a batch unacknowledged.

use crate::consumer::{GroupConsumer, StartFrom, StreamEntry};
use chrono::{DateTime, Utc};
use ordinaut_pipeline::condition::compile_condition;
use ordinaut_store::{
    Decision, Delivery, DeliveryCounts, Store, TOPIC_STREAM_PREFIX, TopicSubscriber, topic_stream,
};
use redis::Client;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The consumer group every trigger consumer joins, on every topic stream.
pub const TRIGGER_GROUP: &str = "ordinaut:triggers";

/// How trigger consumers read.
#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// This consumer's name in the group (the worker id): a restart under the same name
    /// takes back what it had read and not acknowledged.
    pub consumer: String,
    /// Entries per read (and per transaction).
    pub batch: usize,
    /// How long one read waits for new entries.
    pub block: Duration,
    /// How often the set of topics with listeners is re-read.
    pub refresh: Duration,
    /// After this long unacknowledged, another consumer's entry is taken over.
    pub reclaim_idle: Duration,
}

impl TriggerConfig {
    /// Defaults for consumer `consumer`: batches of 500, 1 s reads, topics re-read every 2 s,
    /// entries of a dead consumer reclaimed after 30 s.
    pub fn new(consumer: impl Into<String>) -> Self {
        Self {
            consumer: consumer.into(),
            batch: 500,
            block: Duration::from_secs(1),
            refresh: Duration::from_secs(2),
            reclaim_idle: Duration::from_secs(30),
        }
    }
}

/// What the trigger consumers of this process did (for metrics).
#[derive(Debug, Default)]
pub struct TriggerStats {
    received: AtomicU64,
    started: AtomicU64,
    duplicates: AtomicU64,
    filtered: AtomicU64,
    dropped: AtomicU64,
    invalid: AtomicU64,
    failures: AtomicU64,
}

impl TriggerStats {
    /// Events read from topic streams (`ordinaut_events_received_total`).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Runs started by events (`ordinaut_event_runs_started_total`).
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
    /// Deliveries that found the run already started (redelivered or re-added events).
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }
    /// Deliveries filtered out by `on.filter`.
    pub fn filtered(&self) -> u64 {
        self.filtered.load(Ordering::Relaxed)
    }
    /// Deliveries dropped (Task suspended or snoozed, filter error, event PostgreSQL cannot
    /// store).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Entries that were not events (no id or publish time): acknowledged and skipped.
    pub fn invalid(&self) -> u64 {
        self.invalid.load(Ordering::Relaxed)
    }
    /// Batches that failed (Redis or PostgreSQL) and were retried.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
    fn add(&self, c: &DeliveryCounts) {
        self.started.fetch_add(c.started, Ordering::Relaxed);
        self.duplicates.fetch_add(c.duplicates, Ordering::Relaxed);
        self.filtered.fetch_add(c.filtered, Ordering::Relaxed);
        self.dropped.fetch_add(c.dropped, Ordering::Relaxed);
    }
}

/// Runs one consumer per topic that has listeners, starting and stopping them as Tasks come
/// and go.
pub struct EventTriggers {
    store: Store,
    redis: Client,
    config: TriggerConfig,
    stats: Arc<TriggerStats>,
}

impl EventTriggers {
    /// Trigger consumers on the Redis at `redis_url` (connects lazily).
    pub fn new(
        store: Store,
        redis_url: &str,
        config: TriggerConfig,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self {
            store,
            redis: Client::open(redis_url)?,
            config,
            stats: Arc::default(),
        })
    }

    pub fn stats(&self) -> Arc<TriggerStats> {
        self.stats.clone()
    }

    /// Consumes until `stop` fires; in-flight batches finish (or stay unacknowledged).
    pub async fn run(self, stop: CancellationToken) {
        let mut running: HashMap<String, (CancellationToken, JoinHandle<()>)> = HashMap::new();
        while !stop.is_cancelled() {
            match self.store.subscribed_topics().await {
                Ok(topics) => {
                    running.retain(|topic, (token, handle)| {
                        let keep = topics.contains(topic) && !handle.is_finished();
                        if !keep {
                            token.cancel();
                        }
                        keep
                    });
                    for topic in topics {
                        running.entry(topic.clone()).or_insert_with(|| {
                            let token = stop.child_token();
                            let handle = self.spawn_consumer(topic, token.clone());
                            (token, handle)
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "event triggers: reading the topics failed; retrying")
                }
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(self.config.refresh) => {}
            }
        }
        for (_, (token, handle)) in running {
            token.cancel();
            let _ = handle.await;
        }
    }

    fn spawn_consumer(&self, topic: String, stop: CancellationToken) -> JoinHandle<()> {
        let consumer = GroupConsumer::new(
            self.redis.clone(),
            topic_stream(&topic),
            TRIGGER_GROUP,
            self.config.consumer.clone(),
        )
        .with_reclaim_idle(self.config.reclaim_idle);
        tokio::spawn(consume_topic(TopicLoop {
            store: self.store.clone(),
            consumer,
            topic,
            batch: self.config.batch,
            block: self.config.block,
            stats: self.stats.clone(),
            stop,
        }))
    }
}

struct TopicLoop {
    store: Store,
    consumer: GroupConsumer,
    topic: String,
    batch: usize,
    block: Duration,
    stats: Arc<TriggerStats>,
    stop: CancellationToken,
}

/// Reads one topic's stream until stopped. A batch that fails is retried (with backoff)
/// until it is recorded, then acknowledged (an event that can never be stored is recorded
/// as dropped by the store, see the module doc).
async fn consume_topic(mut l: TopicLoop) {
    let mut backoff = Duration::from_millis(100);
    // From the beginning: events published before the group existed reach the Tasks that
    // existed when they were published (and no others; see `deliveries`).
    while let Err(e) = l.consumer.ensure_group(StartFrom::Beginning).await {
        tracing::warn!(topic = %l.topic, error = %e, "event triggers: creating the consumer group failed; retrying");
        if sleep_or_stop(&l.stop, &mut backoff).await {
            return;
        }
    }
    tracing::info!(topic = %l.topic, stream = %l.consumer.stream(), "event triggers: consuming");
    while !l.stop.is_cancelled() {
        let entries = tokio::select! {
            () = l.stop.cancelled() => return,
            read = l.consumer.read(l.batch, l.block) => read,
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                l.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %l.topic, error = %e, "event triggers: reading failed; retrying");
                if sleep_or_stop(&l.stop, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        if entries.is_empty() {
            continue;
        }
        while let Err(e) = handle_batch(&l, &entries).await {
            l.stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(topic = %l.topic, entries = entries.len(), error = %e, "event triggers: recording a batch failed; retrying (nothing is acknowledged yet)");
            if sleep_or_stop(&l.stop, &mut backoff).await {
                return;
            }
        }
        backoff = Duration::from_millis(100);
    }
}

/// `true` when stopped during the wait; doubles `backoff` up to 10 s.
async fn sleep_or_stop(stop: &CancellationToken, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(Duration::from_secs(10));
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error(transparent)]
    Store(#[from] ordinaut_store::StoreError),
    #[error(transparent)]
    Redis(#[from] crate::ConsumerError),
}

/// Records one batch's decisions, then acknowledges its entries.
async fn handle_batch(l: &TopicLoop, entries: &[StreamEntry]) -> Result<(), BatchError> {
    let subscribers = l.store.topic_subscribers(&l.topic).await?;
    let events: Vec<TopicEvent> = entries
        .iter()
        .filter_map(|e| {
            let parsed = TopicEvent::parse(e);
            if parsed.is_none() {
                l.stats.invalid.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %l.topic, entry = %e.id, "event triggers: entry is not an event (no id or publishedAt); skipped");
            }
            parsed
        })
        .collect();
    let deliveries = deliveries(&events, &subscribers, Utc::now());
    let counts = l.store.record_deliveries(&deliveries).await?;
    l.consumer
        .ack(&entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>())
        .await?;
    l.stats
        .received
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    l.stats.add(&counts);
    Ok(())
}

/// A published event as read from its stream.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicEvent {
    pub id: String,
    pub published_at: DateTime<Utc>,
    /// The whole event (`id`, `topic`, `publishedAt`, `source`, `data`).
    pub body: Value,
}

impl TopicEvent {
    /// The event in a stream entry; `None` when it has no `id` or `publishedAt`.
    pub fn parse(entry: &StreamEntry) -> Option<Self> {
        let id = entry.payload.get("id")?.as_str()?.to_string();
        let published_at = entry
            .payload
            .get("publishedAt")?
            .as_str()?
            .parse::<DateTime<Utc>>()
            .ok()?;
        Some(Self {
            id,
            published_at,
            body: entry.payload.clone(),
        })
    }
}

/// What each event means for each listening Task (pure; `now` decides snoozes).
pub fn deliveries(
    events: &[TopicEvent],
    subscribers: &[TopicSubscriber],
    now: DateTime<Utc>,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    for s in subscribers {
        let filter = s.filter.as_deref().map(compile_condition);
        for e in events {
            if e.published_at < s.created_at {
                continue; // published before the Task existed
            }
            let decision = if s.suspended {
                Decision::Dropped("suspended".into())
            } else if s.snooze_until.is_some_and(|u| u > now) {
                Decision::Dropped("snoozed".into())
            } else {
                match &filter {
                    None => Decision::Start,
                    Some(Err(err)) => {
                        Decision::Dropped(format!("on.filter does not compile: {err}"))
                    }
                    Some(Ok(cond)) => match cond.evaluate_json(&e.body) {
                        Ok(true) => Decision::Start,
                        Ok(false) => Decision::Filtered,
                        Err(err) => Decision::Dropped(format!("on.filter failed: {err}")),
                    },
                }
            };
            out.push(Delivery {
                task_uid: s.uid,
                event_id: e.id.clone(),
                published_at: e.published_at,
                priority: s.priority,
                event: e.body.clone(),
                decision,
            });
        }
    }
    out
}

/// The topic of a topic stream's name, `None` for other streams.
pub fn stream_topic(stream: &str) -> Option<&str> {
    stream.strip_prefix(TOPIC_STREAM_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn event(id: &str, at: &str, data: Value) -> TopicEvent {
        TopicEvent {
            id: id.into(),
            published_at: at.parse().expect("time"),
            body: json!({"id": id, "topic": "t", "publishedAt": at, "data": data}),
        }
    }

    fn subscriber(filter: Option<&str>) -> TopicSubscriber {
        TopicSubscriber {
            uid: Uuid::new_v4(),
            namespace: "default".into(),
            name: "t".into(),
            created_at: "2026-01-01T00:00:00Z".parse().expect("time"),
            suspended: false,
            snooze_until: None,
            priority: 0,
            filter: filter.map(str::to_string),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().expect("time")
    }

    #[test]
    fn the_filter_decides_per_event() {
        let events = [
            event("1", "2026-02-01T00:00:00Z", json!({"severity": "high"})),
            event("2", "2026-02-01T00:00:01Z", json!({"severity": "low"})),
            event("3", "2026-02-01T00:00:02Z", json!({})),
        ];
        let d = deliveries(
            &events,
            &[subscriber(Some("data.severity == 'high'"))],
            now(),
        );
        let decisions: Vec<_> = d.iter().map(|d| d.decision.clone()).collect();
        assert_eq!(
            decisions,
            [Decision::Start, Decision::Filtered, Decision::Filtered]
        );
    }

    #[test]
    fn events_before_the_task_existed_are_not_delivered() {
        let events = [
            event("old", "2025-12-31T23:59:59Z", json!({})),
            event("new", "2026-01-01T00:00:00Z", json!({})),
        ];
        let d = deliveries(&events, &[subscriber(None)], now());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].event_id, "new");
    }

    #[test]
    fn suspended_and_snoozed_tasks_drop_events_with_the_reason() {
        let events = [event("1", "2026-02-01T00:00:00Z", json!({}))];
        let mut s = subscriber(None);
        s.suspended = true;
        assert_eq!(
            deliveries(&events, &[s.clone()], now())[0].decision,
            Decision::Dropped("suspended".into())
        );
        s.suspended = false;
        s.snooze_until = Some("2026-07-01T00:00:00Z".parse().expect("time"));
        assert_eq!(
            deliveries(&events, &[s.clone()], now())[0].decision,
            Decision::Dropped("snoozed".into())
        );
        s.snooze_until = Some("2026-05-01T00:00:00Z".parse().expect("time"));
        assert_eq!(
            deliveries(&events, &[s], now())[0].decision,
            Decision::Start,
            "a snooze that ended"
        );
    }

    #[test]
    fn topic_streams_are_named_after_their_topic() {
        assert_eq!(stream_topic(&topic_stream("orders")), Some("orders"));
        assert_eq!(stream_topic("ordinaut:events"), None);
    }
}
