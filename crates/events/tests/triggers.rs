//! Event triggers against real PostgreSQL and the shared Redis: an event PostgreSQL cannot
//! store (written into the outbox past the publish checks, as an older client or a direct
//! write would) is dropped and counted, and the events after it on the topic still run.

use chrono::Utc;
use ordinaut_events::{EventTriggers, OutboxRelay, TriggerConfig};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{OutboxEvent, PUBLISHED_EVENT_TYPE, TaskProjection, topic_stream};
use ordinaut_test_support::events::*;
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn on_topic(name: &str, topic: &str) -> TaskProjection {
    TaskProjection {
        spec: json!({"schedule": {"on": {"topic": topic}}}),
        schedule_kind: "on".into(),
        schedule: format!("topic {topic}"),
        ..ordinaut_test_support::store::task(name)
    }
}

/// The outbox event `Store::publish_event` would write, without its checks.
fn published(topic: &str, id: &str, data: Value) -> OutboxEvent {
    // A second ahead: the Task (created just before, by PostgreSQL's clock) is given it.
    let at = Utc::now() + chrono::Duration::seconds(1);
    OutboxEvent {
        event_type: PUBLISHED_EVENT_TYPE.into(),
        stream: Some(topic_stream(topic)),
        payload: json!({
            "id": id, "topic": topic, "publishedAt": at.to_rfc3339(), "source": "old client",
            "data": data,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_postgresql_cannot_store_is_dropped_and_the_topic_keeps_flowing() {
    let url = redis_url();
    let topic = unique("poison");
    let stream = topic_stream(&topic);
    let _keys = Keys::new(&url, &[&stream]);
    let (_db, store) = TestDb::migrated().await.expect("test database");
    let task = on_topic("listener", &topic);
    store.upsert_task(&task).await.expect("task");

    // A NUL character (jsonb refuses it) and an id too long for the occurrence key's index
    // (random hex does not compress), then a good event: one outbox write, one batch.
    let long_id: String = (0..300)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect();
    let events = [
        published(&topic, "nul", json!({"x": "\u{0}"})),
        published(&topic, &long_id, json!({})),
        published(&topic, "good", json!({"order": 7})),
    ];
    store.append_events(None, &events).await.expect("append");

    let stop = CancellationToken::new();
    let relay = OutboxRelay::new(store.clone(), &url).expect("relay");
    let mut config = TriggerConfig::new("t1");
    config.block = Duration::from_millis(200);
    config.refresh = Duration::from_millis(200);
    let triggers = EventTriggers::new(store.clone(), &url, config).expect("triggers");
    let stats = triggers.stats();
    let relay_task = tokio::spawn(relay.run(stop.clone()));
    let triggers_task = tokio::spawn(triggers.run(stop.clone()));

    eventually(
        Duration::from_secs(30),
        "the batch recorded and acknowledged",
        || async { (stats.received() >= 3).then_some(()) },
    )
    .await;
    let counts = store.event_counts(task.uid).await.expect("counts");
    assert_eq!(
        (counts.received, counts.started, counts.dropped),
        (3, 1, 2),
        "{counts:?}"
    );
    let reason = counts.last_drop.expect("a drop reason");
    assert!(reason.contains("cannot be stored"), "{reason}");
    assert_eq!((stats.started(), stats.dropped()), (1, 2));

    // The good event's run starts, with the event.
    let leases = store
        .lease("w", 10, Duration::from_secs(60))
        .await
        .expect("lease");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(leases[0].payload["event"]["id"], json!("good"));

    // The topic keeps flowing: an event published after them starts its run too.
    store
        .append_events(None, &[published(&topic, "later", json!({}))])
        .await
        .expect("append");
    eventually(Duration::from_secs(30), "the later event's run", || async {
        (stats.started() >= 2).then_some(())
    })
    .await;

    stop.cancel();
    for task in [relay_task, triggers_task] {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops promptly")
            .expect("task");
    }
}
