//! The events tests' outbox fixtures and stream reads (feature `events`); Redis, keys, the
//! private `redis-server` and waiting are re-exported from the generic part.

use ordinaut_store::{OutboxEvent, Store};
use serde_json::json;

pub use crate::redis::xlen;
pub use crate::{Keys, PrivateRedis, eventually, redis_url};

pub fn unique(prefix: &str) -> String {
    crate::unique_key(prefix)
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
    crate::redis::xrange(url, stream)
        .await
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
