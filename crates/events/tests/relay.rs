//! The outbox relay against real PostgreSQL and the shared Redis.

use ordinaut_events::{Delivery, GroupConsumer, OutboxRelay, StartFrom};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{OutboxEvent, Store};
use ordinaut_test_support::events::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Routes every event of the default stream to a stream unique to the test, so tests can share
/// one Redis. (The relay writes each row to the stream the row names.)
async fn append_to(store: &Store, stream: &str, phase: &str, count: usize, per_tx: usize) {
    let mut seq = 0;
    while seq < count {
        let n = per_tx.min(count - seq);
        let events: Vec<OutboxEvent> = (seq..seq + n)
            .map(|i| OutboxEvent {
                event_type: "run.succeeded".into(),
                stream: Some(stream.to_string()),
                payload: json!({"phase": phase, "seq": i}),
            })
            .collect();
        store
            .append_events(None, &events)
            .await
            .expect("append events");
        seq += n;
    }
}

#[tokio::test]
async fn relay_publishes_outbox_events_in_order_once() {
    let url = redis_url();
    let stream = unique("relay-order");
    let group = "checker";
    let _keys = Keys::new(&url, &[&stream]);
    let (_db, store) = TestDb::migrated().await.expect("test database");

    // 1,000 events in 7 transactions of up to 150 (batches of 500 cut across them).
    append_to(&store, &stream, "a", 1_000, 150).await;
    let expected = unpublished_ids(&store).await;
    assert_eq!(expected.len(), 1_000);

    let relay = OutboxRelay::new(store.clone(), &url)
        .expect("relay")
        .with_batch_size(500);
    let stats = relay.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    eventually(
        Duration::from_secs(30),
        "1,000 entries on the stream",
        || {
            let (url, stream) = (url.clone(), stream.clone());
            async move { (xlen(&url, &stream).await? >= 1_000).then_some(()) }
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the backlog gauge to read 0",
        || async { (stats.backlog() == 0).then_some(()) },
    )
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("relay stops promptly on cancel")
        .expect("relay task");

    // One writer at a time here, so commit order is id order and the whole stream is in it.
    assert_eq!(
        stream_outbox_ids(&url, &stream).await,
        expected,
        "the stream holds every event once, in outbox id order"
    );
    assert!(
        unpublished_ids(&store).await.is_empty(),
        "all rows marked published"
    );
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 0);
    assert_eq!(stats.published(), 1_000);
    assert_eq!(stats.failures(), 0);

    let again = OutboxRelay::new(store.clone(), &url).expect("relay");
    assert_eq!(again.relay_once().await.expect("second pass"), 0);
    assert_eq!(
        xlen(&url, &stream).await,
        Some(1_000),
        "nothing published twice"
    );

    // The entries read back through a consumer group as the relay wrote them.
    let mut consumer = GroupConsumer::open(&url, &stream, group, "c").expect("consumer");
    consumer
        .ensure_group(StartFrom::Beginning)
        .await
        .expect("group");
    let mut seen = Vec::new();
    while seen.len() < 1_000 {
        let batch = consumer.read(400, Duration::ZERO).await.expect("read");
        assert!(
            !batch.is_empty(),
            "stream ended after {} entries",
            seen.len()
        );
        seen.extend(batch);
    }
    for (i, e) in seen.iter().enumerate() {
        assert_eq!(e.delivery, Delivery::New);
        assert_eq!(e.event_type, "run.succeeded");
        assert_eq!(e.outbox_id, Some(expected[i]));
        assert_eq!(e.payload, json!({"phase": "a", "seq": i}));
        assert_eq!(e.task_uid, None);
        let created = e.created_at.as_deref().expect("created_at");
        chrono::DateTime::parse_from_rfc3339(created).expect("created_at is RFC 3339");
    }
}

#[tokio::test]
async fn two_relays_never_publish_an_event_twice() {
    let url = redis_url();
    let stream = unique("relay-two");
    let _keys = Keys::new(&url, &[&stream]);
    let (db, store) = TestDb::migrated().await.expect("test database");
    let other = Store::connect(&db.url, 4)
        .await
        .expect("second store handle");

    // Small batches so the two relays contend for the relay lock many times.
    let relays = [store.clone(), other].map(|s| {
        OutboxRelay::new(s, &url)
            .expect("relay")
            .with_batch_size(37)
    });
    let stats: Vec<_> = relays.iter().map(|r| r.stats()).collect();
    let cancel = CancellationToken::new();
    let tasks: Vec<_> = relays
        .into_iter()
        .map(|r| tokio::spawn(r.run(cancel.clone())))
        .collect();

    // Appended while both run, from two writers at once.
    let (a, b) = (store.clone(), store.clone());
    let (sa, sb) = (stream.clone(), stream.clone());
    let writers = [
        tokio::spawn(async move { append_to(&a, &sa, "x", 1_000, 40).await }),
        tokio::spawn(async move { append_to(&b, &sb, "y", 1_000, 25).await }),
    ];
    for w in writers {
        w.await.expect("writer");
    }

    eventually(Duration::from_secs(30), "the outbox to drain", || async {
        (store.outbox_backlog().await.ok()? == 0).then_some(())
    })
    .await;
    cancel.cancel();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("relay stops promptly on cancel")
            .expect("relay task");
    }

    let events = stream_events(&url, &stream).await;
    assert_eq!(
        events.len(),
        2_000,
        "every event on the stream exactly once"
    );
    let distinct: HashSet<_> = events.iter().map(|(id, _)| id).collect();
    assert_eq!(distinct.len(), 2_000, "no outbox_id published twice");
    // Each writer stands for a task: its events come from successive transactions, and they
    // must reach the stream in the order written, with ascending outbox ids. (Across the two
    // writers the stream follows commit order, which can differ from id order: a transaction
    // that took ids first may commit last. See the relay's module docs.)
    for phase in ["x", "y"] {
        let mine: Vec<_> = events.iter().filter(|(_, p)| p["phase"] == phase).collect();
        let seqs: Vec<u64> = mine
            .iter()
            .map(|(_, p)| p["seq"].as_u64().expect("seq"))
            .collect();
        assert_eq!(
            seqs,
            (0..1_000).collect::<Vec<u64>>(),
            "writer {phase}: in order, each once"
        );
        assert!(
            mine.windows(2).all(|w| w[0].0 < w[1].0),
            "writer {phase}: ascending outbox ids"
        );
    }
    let total: u64 = stats.iter().map(|s| s.published()).sum();
    assert_eq!(
        total, 2_000,
        "the relays' counters add up to the events published"
    );
    assert!(
        stats.iter().all(|s| s.published() > 0),
        "both relays published (so the test exercised the relay lock)"
    );
}

#[tokio::test]
async fn relay_reports_a_bad_redis_url() {
    let (_db, store) = TestDb::migrated().await.expect("test database");
    assert!(OutboxRelay::new(store, "not a url").is_err());
}
