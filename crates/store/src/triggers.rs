//! Event triggers (`spec.schedule.on`): publishing events on topics, finding the Tasks that
//! listen to a topic, and turning delivered events into occurrences exactly once.
//!
//! * [`Store::publish_event`] writes the event to the outbox for the stream
//!   `ordinaut:topic:<topic>`; the outbox relay puts it on Redis (capped with `MAXLEN ~`).
//!   This is the one publishing path: `core.publish`, `ordinaut events publish` and the
//!   gateway all call it.
//! * A consumer group on the topic stream (crates/events) reads each event, decides per
//!   listening Task (start, filtered out, dropped) and calls [`Store::record_deliveries`].
//! * The occurrence key of an event-started run is `(task_uid, event_id)`
//!   (`due_work_event`): an event delivered twice, re-added to the stream or published again
//!   with the same id starts one run.

use crate::{Store, StoreError};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// The stream of topic `t` is `ordinaut:topic:<t>`.
pub const TOPIC_STREAM_PREFIX: &str = "ordinaut:topic:";
/// The outbox `event_type` of a published event.
pub const PUBLISHED_EVENT_TYPE: &str = "event.published";
/// The event (on the default stream) reporting that events were filtered out or dropped
/// for a Task: `{filtered, dropped, reason}` counts of one batch.
pub const SKIPPED_EVENT_TYPE: &str = "event.skipped";
/// The largest event (its `data` as compact JSON), in bytes.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// The longest event id, in characters (`core.publish`'s schema says the same). The id is
/// part of an occurrence's unique key, whose index entries PostgreSQL bounds.
pub(crate) const MAX_EVENT_ID_CHARS: usize = 256;
/// How many `taskFinished` links one chain may follow before its next run is dropped.
pub const MAX_CHAIN_DEPTH: i64 = 16;

/// A Task whose status has `Stalled=True` (invalid, held by the operator) is given no
/// events: it runs nothing until it is fixed.
pub(crate) const STALLED: &str = r#"{"conditions": [{"type": "Stalled", "status": "True"}]}"#;

/// The Redis stream a topic's events are published on.
pub fn topic_stream(topic: &str) -> String {
    format!("{TOPIC_STREAM_PREFIX}{topic}")
}

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "topic `{0}` is not valid: use 1 to 128 letters, digits, `.`, `_`, `:` or `-`, \
         starting with a letter or digit"
    )]
    InvalidTopic(String),
    #[error(
        "event data is {bytes} bytes, more than the limit of {max}; publish a reference instead"
    )]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "event id {0}: use 1 to {MAX_EVENT_ID_CHARS} characters without NUL (e.g. a UUID or \
         `order-7`), or leave it out for a new UUID"
    )]
    InvalidId(String),
    #[error(
        "event data holds a NUL character (\\u0000), which PostgreSQL cannot store; remove it \
         or encode the data (e.g. base64)"
    )]
    NulInData,
    #[error("publishing the event failed: {0}")]
    Store(StoreError),
}

impl PublishError {
    /// `true` when the request is at fault (a client error: fix it, do not retry); `false`
    /// when the database failed.
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, PublishError::Store(_))
    }
}

// The cause is part of the message (printed once), so not `#[source]`.
impl From<StoreError> for PublishError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// `Ok` when `topic` is a valid topic name (the CRD's `on.topic` pattern).
pub fn check_topic(topic: &str) -> Result<(), PublishError> {
    let mut chars = topic.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if first_ok && rest_ok && topic.len() <= 128 {
        Ok(())
    } else {
        Err(PublishError::InvalidTopic(topic.to_string()))
    }
}

/// `Ok` when `id` can be an event id: 1 to [`MAX_EVENT_ID_CHARS`] characters, no NUL.
fn check_event_id(id: &str) -> Result<(), PublishError> {
    if id.is_empty() {
        Err(PublishError::InvalidId("is empty".into()))
    } else if id.contains('\0') {
        Err(PublishError::InvalidId(
            "holds a NUL character (\\u0000)".into(),
        ))
    } else if id.chars().nth(MAX_EVENT_ID_CHARS).is_some() {
        let n = id.chars().count();
        Err(PublishError::InvalidId(format!("is {n} characters long")))
    } else {
        Ok(())
    }
}

/// An event to publish.
#[derive(Debug, Clone)]
pub struct PublishRequest<'a> {
    pub topic: &'a str,
    pub data: &'a Value,
    /// Who published it (`cli`, `task default/report`, `agent default/assistant`…).
    pub source: &'a str,
    /// The event id; a fresh UUID when `None`. Publishing twice with the same id starts each
    /// listening Task once (`core.publish` derives it from its idempotency key, so a retried
    /// step publishes the same event).
    pub id: Option<String>,
}

/// What was published.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEvent {
    pub id: String,
    pub topic: String,
    pub stream: String,
    pub published_at: DateTime<Utc>,
}

/// A Task listening to a topic, as the consumer needs it to decide.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TopicSubscriber {
    pub uid: Uuid,
    pub namespace: String,
    pub name: String,
    /// When the projection was created: events published before it are not delivered.
    pub created_at: DateTime<Utc>,
    pub suspended: bool,
    pub snooze_until: Option<DateTime<Utc>>,
    pub priority: i32,
    /// `on.filter`, a JMESPath expression over the event.
    pub filter: Option<String>,
}

/// What happens to one event for one Task.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start a run.
    Start,
    /// `on.filter` was falsy.
    Filtered,
    /// Not run, with the reason (`suspended`, `snoozed`, `chain deeper than 16`…).
    Dropped(String),
}

/// One event delivered to one Task.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub task_uid: Uuid,
    pub event_id: String,
    pub published_at: DateTime<Utc>,
    pub priority: i32,
    /// The event as the run sees it (`${params.event}`).
    pub event: Value,
    pub decision: Decision,
}

/// Totals of [`Store::record_deliveries`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Runs started (occurrences inserted).
    pub started: u64,
    /// Starts refused because the event had already started a run of that Task.
    pub duplicates: u64,
    pub filtered: u64,
    pub dropped: u64,
}

/// A Task's event counters (`status.events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventCounts {
    pub received: i64,
    pub started: i64,
    pub filtered: i64,
    pub dropped: i64,
    pub last_drop: Option<String>,
    pub last_event_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Publishes an event on a topic: written to the outbox (durable when this returns) and
    /// relayed to the topic's stream. Every Task on the topic that exists now starts one run
    /// for it (unless filtered, suspended or snoozed).
    pub async fn publish_event(
        &self,
        req: &PublishRequest<'_>,
    ) -> Result<PublishedEvent, PublishError> {
        check_topic(req.topic)?;
        let bytes = req.data.to_string().len();
        if bytes > MAX_EVENT_BYTES {
            return Err(PublishError::TooLarge {
                bytes,
                max: MAX_EVENT_BYTES,
            });
        }
        // What the consumers could not write to `jsonb`/`text` is refused here (the outbox
        // column is `json`, which would take it).
        if crate::state::has_nul(req.data) {
            return Err(PublishError::NulInData);
        }
        if let Some(id) = &req.id {
            check_event_id(id)?;
        }
        let published = PublishedEvent {
            id: req.id.clone().unwrap_or_else(|| Uuid::new_v4().to_string()),
            topic: req.topic.to_string(),
            stream: topic_stream(req.topic),
            published_at: Utc::now(),
        };
        let event = crate::OutboxEvent {
            event_type: PUBLISHED_EVENT_TYPE.to_string(),
            stream: Some(published.stream.clone()),
            payload: json!({
                "id": published.id,
                "topic": published.topic,
                "publishedAt": published.published_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "source": req.source,
                "data": req.data,
            }),
        };
        self.append_events(None, std::slice::from_ref(&event))
            .await?;
        Ok(published)
    }

    /// Topics at least one live Task listens to, sorted.
    pub async fn subscribed_topics(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT DISTINCT spec #>> '{schedule,on,topic}' FROM tasks \
             WHERE deleted_at IS NULL AND schedule_kind = 'on' \
               AND spec #>> '{schedule,on,topic}' IS NOT NULL ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// The live Tasks listening to `topic` (not those held invalid: `Stalled=True`).
    pub async fn topic_subscribers(&self, topic: &str) -> Result<Vec<TopicSubscriber>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT uid, namespace, name, created_at, suspended, snooze_until, priority, \
                    spec #>> '{schedule,on,filter}' AS filter \
             FROM tasks WHERE deleted_at IS NULL AND schedule_kind = 'on' \
               AND spec #>> '{schedule,on,topic}' = $1 AND NOT (status @> $2::jsonb) ORDER BY uid",
        )
        .bind(topic)
        .bind(STALLED)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records decisions about delivered events in one transaction: an occurrence for each
    /// `Start` whose event has not started that Task before, and the Tasks' counters.
    ///
    /// An event PostgreSQL refuses to store (a NUL character in its data, an id too long for
    /// the occurrence key: [`is_unstorable`]), written by an older client or straight into
    /// the outbox, would fail its batch on every retry and stop the topic. When the batch is
    /// refused so, each event is recorded in its own transaction, and one that is refused
    /// again is counted as dropped (with the reason) for the Tasks it would have started.
    /// Other errors (the connection was lost) are returned: the caller retries the batch.
    pub async fn record_deliveries(
        &self,
        deliveries: &[Delivery],
    ) -> Result<DeliveryCounts, StoreError> {
        match self.record_deliveries_once(deliveries).await {
            Err(e) if is_unstorable(&e) => {
                tracing::warn!(error = %e, deliveries = deliveries.len(), "event triggers: PostgreSQL refused a batch; recording its events one by one");
                self.record_each_event(deliveries).await
            }
            other => other,
        }
    }

    /// [`Store::record_deliveries`] in one transaction, without the fallback.
    async fn record_deliveries_once(
        &self,
        deliveries: &[Delivery],
    ) -> Result<DeliveryCounts, StoreError> {
        if deliveries.is_empty() {
            return Ok(DeliveryCounts::default());
        }
        let mut tx = self.pool.begin().await?;
        let counts = record_deliveries_on(&mut tx, deliveries).await?;
        tx.commit().await?;
        self.note_inserted(counts.started);
        Ok(counts)
    }

    /// Records each event's deliveries in a transaction of their own, in the batch's order;
    /// an event PostgreSQL refuses is recorded as dropped instead.
    async fn record_each_event(
        &self,
        deliveries: &[Delivery],
    ) -> Result<DeliveryCounts, StoreError> {
        let mut order: Vec<&str> = Vec::new();
        let mut by_event: HashMap<&str, Vec<Delivery>> = HashMap::new();
        for d in deliveries {
            let group = by_event.entry(d.event_id.as_str()).or_insert_with(|| {
                order.push(d.event_id.as_str());
                Vec::new()
            });
            group.push(d.clone());
        }
        let mut total = DeliveryCounts::default();
        for id in order {
            let group = by_event.remove(id).unwrap_or_default();
            let counts = match self.record_deliveries_once(&group).await {
                Err(e) if is_unstorable(&e) => {
                    let reason = unstorable_reason(&e);
                    tracing::warn!(error = %e, "event triggers: an event cannot be stored; dropped");
                    let dropped: Vec<Delivery> = group
                        .into_iter()
                        .map(|d| match d.decision {
                            Decision::Start => Delivery {
                                decision: Decision::Dropped(reason.clone()),
                                ..d
                            },
                            _ => d,
                        })
                        .collect();
                    self.record_deliveries_once(&dropped).await?
                }
                other => other?,
            };
            total.started += counts.started;
            total.duplicates += counts.duplicates;
            total.filtered += counts.filtered;
            total.dropped += counts.dropped;
        }
        Ok(total)
    }

    /// A Task's event counters (zeros when it has received none).
    pub async fn event_counts(&self, task_uid: Uuid) -> Result<EventCounts, StoreError> {
        let row: Option<EventCounts> = sqlx::query_as(
            "SELECT received, started, filtered, dropped, last_drop, last_event_at \
             FROM task_event_counts WHERE task_uid = $1",
        )
        .bind(task_uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.unwrap_or_default())
    }
}

/// Whether PostgreSQL refused a statement for what it was given, so that the same
/// statement would be refused again: a data exception (SQLSTATE class 22: a NUL character
/// in `text` or `jsonb`, a value out of range) or a program limit (class 54: an index entry
/// larger than a page allows). A lost connection or a deadlock is not: it passes.
pub(crate) fn is_unstorable(e: &StoreError) -> bool {
    e.sqlstate()
        .is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}

/// The drop reason of an event PostgreSQL refused: its message (which quotes no data).
fn unstorable_reason(e: &StoreError) -> String {
    let message = match e {
        StoreError::Database(sqlx::Error::Database(db)) => db.message().to_string(),
        other => other.to_string(),
    };
    let code = e.sqlstate().unwrap_or_default();
    format!("the event cannot be stored: {message} (SQLSTATE {code})")
}

/// [`Store::record_deliveries`] inside a caller's transaction (also used when a finished run
/// starts the Tasks chained after it).
pub(crate) async fn record_deliveries_on(
    tx: &mut sqlx::PgConnection,
    deliveries: &[Delivery],
) -> Result<DeliveryCounts, StoreError> {
    let mut starts: Vec<&Delivery> = deliveries
        .iter()
        .filter(|d| d.decision == Decision::Start)
        .collect();
    // One order for every transaction, so two consumers given overlapping batches (a
    // redelivery) wait for each other instead of deadlocking.
    starts.sort_by(|a, b| (a.task_uid, &a.event_id).cmp(&(b.task_uid, &b.event_id)));
    let mut inserted = insert_starts(tx, &starts).await?;
    let mut counts = DeliveryCounts {
        started: inserted.len() as u64,
        duplicates: (starts.len() - inserted.len()) as u64,
        ..Default::default()
    };
    let mut per_task: BTreeMap<Uuid, EventCounts> = BTreeMap::new();
    for d in deliveries {
        let c = per_task.entry(d.task_uid).or_default();
        c.received += 1;
        c.last_event_at = c.last_event_at.max(Some(d.published_at));
        match &d.decision {
            Decision::Start => {
                // Removed once counted: the same event twice in one batch starts one run.
                if inserted.remove(&(d.task_uid, d.event_id.clone())) {
                    c.started += 1;
                }
            }
            Decision::Filtered => {
                c.filtered += 1;
                counts.filtered += 1;
            }
            Decision::Dropped(reason) => {
                c.dropped += 1;
                c.last_drop = Some(reason.clone());
                counts.dropped += 1;
            }
        }
    }
    add_counts(tx, &per_task).await?;
    // What did not run is reported (one event per Task and batch), so the status feed
    // refreshes the Task's counters even when no run of it finishes.
    let skipped: Vec<crate::OutboxEvent> = per_task
        .values()
        .map(|c| {
            crate::OutboxEvent::new(
                SKIPPED_EVENT_TYPE,
                json!({"filtered": c.filtered, "dropped": c.dropped, "reason": c.last_drop}),
            )
        })
        .collect();
    let pairs: Vec<(Option<Uuid>, &crate::OutboxEvent)> = per_task
        .iter()
        .zip(&skipped)
        .filter(|((_, c), _)| c.filtered + c.dropped > 0)
        .map(|((uid, _), e)| (Some(*uid), e))
        .collect();
    crate::events::insert_events_on(tx, &pairs).await?;
    Ok(counts)
}

/// Inserts the occurrences of `starts` (sorted), returning the inserted keys. An event whose publish time another event of the same Task already
/// took is moved on by a microsecond per try.
async fn insert_starts(
    tx: &mut sqlx::PgConnection,
    starts: &[&Delivery],
) -> Result<HashSet<(Uuid, String)>, StoreError> {
    let mut inserted = HashSet::new();
    let mut pending: Vec<(&Delivery, DateTime<Utc>)> =
        starts.iter().map(|d| (*d, d.published_at)).collect();
    for round in 0..1000 {
        if pending.is_empty() {
            break;
        }
        let got = insert_round(tx, &pending).await?;
        pending.retain(|(d, _)| !got.contains(&(d.task_uid, d.event_id.clone())));
        inserted.extend(got);
        if pending.is_empty() {
            break;
        }
        let existing = existing_events(tx, &pending).await?;
        pending.retain(|(d, _)| !existing.contains(&(d.task_uid, d.event_id.clone())));
        for (k, (_, at)) in pending.iter_mut().enumerate() {
            *at += Duration::microseconds(1 + k as i64 + round);
        }
    }
    if !pending.is_empty() {
        return Err(StoreError::Conflict(format!(
            "{} event occurrences found no free instant after 1000 tries",
            pending.len()
        )));
    }
    Ok(inserted)
}

async fn insert_round(
    tx: &mut sqlx::PgConnection,
    pending: &[(&Delivery, DateTime<Utc>)],
) -> Result<HashSet<(Uuid, String)>, StoreError> {
    let n = pending.len();
    let (mut task, mut at, mut prio, mut payload, mut id) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (d, when) in pending {
        task.push(d.task_uid);
        at.push(*when);
        prio.push(d.priority);
        payload.push(json!({ "event": d.event }));
        id.push(d.event_id.as_str());
    }
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO due_work (task_uid, scheduled_for, run_at, priority, trigger, payload, event_id) \
         SELECT e.task, e.at, now(), e.prio, 'event', e.payload, e.id \
         FROM unnest($1::uuid[], $2::timestamptz[], $3::int4[], $4::jsonb[], $5::text[]) \
             WITH ORDINALITY AS e(task, at, prio, payload, id, n) ORDER BY e.n \
         ON CONFLICT DO NOTHING RETURNING task_uid, event_id",
    )
    .bind(&task)
    .bind(&at)
    .bind(&prio)
    .bind(&payload)
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn existing_events(
    tx: &mut sqlx::PgConnection,
    pending: &[(&Delivery, DateTime<Utc>)],
) -> Result<HashSet<(Uuid, String)>, StoreError> {
    let task: Vec<Uuid> = pending.iter().map(|(d, _)| d.task_uid).collect();
    let id: Vec<&str> = pending.iter().map(|(d, _)| d.event_id.as_str()).collect();
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT d.task_uid, d.event_id FROM due_work d \
         JOIN unnest($1::uuid[], $2::text[]) AS p(task, id) \
           ON d.task_uid = p.task AND d.event_id = p.id",
    )
    .bind(&task)
    .bind(&id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Adds to the Tasks' counters (in uid order, so concurrent batches never deadlock).
async fn add_counts(
    tx: &mut sqlx::PgConnection,
    per_task: &BTreeMap<Uuid, EventCounts>,
) -> Result<(), StoreError> {
    if per_task.is_empty() {
        return Ok(());
    }
    let uids: Vec<Uuid> = per_task.keys().copied().collect();
    let c: Vec<&EventCounts> = per_task.values().collect();
    let received: Vec<i64> = c.iter().map(|c| c.received).collect();
    let started: Vec<i64> = c.iter().map(|c| c.started).collect();
    let filtered: Vec<i64> = c.iter().map(|c| c.filtered).collect();
    let dropped: Vec<i64> = c.iter().map(|c| c.dropped).collect();
    let last_drop: Vec<Option<&str>> = c.iter().map(|c| c.last_drop.as_deref()).collect();
    let last_at: Vec<Option<DateTime<Utc>>> = c.iter().map(|c| c.last_event_at).collect();
    sqlx::query(
        "INSERT INTO task_event_counts AS c \
             (task_uid, received, started, filtered, dropped, last_drop, last_event_at) \
         SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], \
             $6::text[], $7::timestamptz[]) \
         ON CONFLICT (task_uid) DO UPDATE SET \
             received = c.received + EXCLUDED.received, \
             started = c.started + EXCLUDED.started, \
             filtered = c.filtered + EXCLUDED.filtered, \
             dropped = c.dropped + EXCLUDED.dropped, \
             last_drop = coalesce(EXCLUDED.last_drop, c.last_drop), \
             last_event_at = greatest(c.last_event_at, EXCLUDED.last_event_at)",
    )
    .bind(&uids)
    .bind(&received)
    .bind(&started)
    .bind(&filtered)
    .bind(&dropped)
    .bind(&last_drop)
    .bind(&last_at)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_crd_pattern() {
        for ok in ["alerts", "a", "orders.created", "x:y-z_1"] {
            assert!(check_topic(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "a b", "ü", &"a".repeat(129)] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }
}
