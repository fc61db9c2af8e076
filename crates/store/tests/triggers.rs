//! Event triggers in the store: an event starts one run per Task however often it is
//! delivered; a finished run starts the Tasks chained after it once, with the run as event.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{
    Decision, Delivery, PublishRequest, RunStatus, Store, TaskProjection, topic_stream,
};
use ordinaut_test_support::store::{count, success, task};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;

fn on_topic(name: &str, topic: &str) -> TaskProjection {
    let mut t = task(name);
    t.spec = json!({"schedule": {"on": {"topic": topic}}});
    t.schedule_kind = "on".into();
    t.schedule = format!("topic {topic}");
    t
}

fn after(name: &str, follows: &str, outcomes: &[&str]) -> TaskProjection {
    let mut t = task(name);
    t.spec = json!({"schedule": {"on": {"taskFinished": {"name": follows, "outcome": outcomes}}}});
    t.schedule_kind = "on".into();
    t.schedule = format!("task {follows}");
    t
}

fn start(task: Uuid, id: &str, at: chrono::DateTime<Utc>) -> Delivery {
    Delivery {
        task_uid: task,
        event_id: id.into(),
        published_at: at,
        priority: 0,
        event: json!({"id": id, "data": {"n": id}}),
        decision: Decision::Start,
    }
}

async fn event_rows(store: &Store, t: Uuid) -> i64 {
    count(
        store,
        &format!("SELECT count(*) FROM due_work WHERE task_uid = '{t}' AND trigger = 'event'"),
    )
    .await
}

#[tokio::test]
async fn an_event_delivered_again_starts_no_second_run() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = on_topic("listener", "orders");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    // Same event twice in one batch, and two distinct events at the same microsecond.
    let batch = [
        start(t.uid, "e1", now),
        start(t.uid, "e1", now),
        start(t.uid, "e2", now),
    ];
    let c = store.record_deliveries(&batch).await.unwrap();
    assert_eq!((c.started, c.duplicates), (2, 1));
    // Redelivered later: nothing new.
    let c = store.record_deliveries(&batch[..1]).await.unwrap();
    assert_eq!((c.started, c.duplicates), (0, 1));
    assert_eq!(event_rows(&store, t.uid).await, 2);
    let counts = store.event_counts(t.uid).await.unwrap();
    assert_eq!(counts.started, 2);
    assert_eq!(counts.received, 4);
    assert_eq!(
        counts.last_event_at.map(|t| t.timestamp_micros()),
        Some(now.timestamp_micros())
    );
    // The run sees the event.
    let leases = store.lease("w", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leases.len(), 2);
    assert!(
        leases
            .iter()
            .all(|l| l.payload["event"]["data"]["n"].is_string())
    );
}

#[tokio::test]
async fn dropped_and_filtered_events_are_counted_with_the_reason() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = on_topic("listener", "orders");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    let mut dropped = start(t.uid, "d", now);
    dropped.decision = Decision::Dropped("suspended".into());
    let mut filtered = start(t.uid, "f", now);
    filtered.decision = Decision::Filtered;
    store.record_deliveries(&[dropped, filtered]).await.unwrap();
    let c = store.event_counts(t.uid).await.unwrap();
    assert_eq!((c.received, c.started, c.filtered, c.dropped), (2, 0, 1, 1));
    assert_eq!(c.last_drop.as_deref(), Some("suspended"));
    assert_eq!(event_rows(&store, t.uid).await, 0);
    // Reported once for the batch, so the status feed refreshes the Task's counters.
    let skipped: Vec<_> = store
        .unpublished_events(10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == ordinaut_store::SKIPPED_EVENT_TYPE)
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].task_uid, Some(t.uid));
    assert_eq!(skipped[0].payload["filtered"], json!(1));
    assert_eq!(skipped[0].payload["dropped"], json!(1));
}

#[tokio::test]
async fn publishing_writes_the_event_to_the_topic_stream_through_the_outbox() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let data = json!({"order": 7});
    let published = store
        .publish_event(&PublishRequest {
            topic: "orders",
            data: &data,
            source: "test",
            id: None,
        })
        .await
        .unwrap();
    let rows = store.unpublished_events(10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].stream, topic_stream("orders"));
    assert_eq!(rows[0].payload["id"], json!(published.id));
    assert_eq!(rows[0].payload["data"], data);
    let bad = store
        .publish_event(&PublishRequest {
            topic: "no spaces",
            data: &data,
            source: "test",
            id: None,
        })
        .await
        .unwrap_err();
    assert!(
        bad.to_string().contains("topic `no spaces` is not valid"),
        "{bad}"
    );
}

async fn finish_one(store: &Store, status: RunStatus) -> Uuid {
    let leases = store.lease("w", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leases.len(), 1, "one occurrence to run");
    let mut rec = success(leases[0].id, leases[0].attempt, "w");
    rec.status = status;
    let id = rec.run_id;
    store.finish(&rec).await.unwrap();
    id
}

#[tokio::test]
async fn a_finished_run_starts_each_follower_once_with_the_run_as_event() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let a = on_topic("a", "go");
    let b = after("b", "a", &["Succeeded"]);
    let on_failure = after("c", "a", &["Failed"]);
    for t in [&a, &b, &on_failure] {
        store.upsert_task(t).await.unwrap();
    }
    store
        .record_deliveries(&[start(a.uid, "e1", Utc::now())])
        .await
        .unwrap();
    let run = finish_one(&store, RunStatus::Succeeded).await;
    assert_eq!(event_rows(&store, b.uid).await, 1);
    assert_eq!(
        event_rows(&store, on_failure.uid).await,
        0,
        "listens to Failed only"
    );
    let leases = store.lease("w", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leases.len(), 1);
    let event = &leases[0].payload["event"];
    assert_eq!(event["id"], json!(format!("run:{run}")));
    assert_eq!(event["run"]["outcome"], json!("Succeeded"));
    assert_eq!(event["run"]["output"], json!({"ok": true}));
    assert_eq!(event["task"]["name"], json!("a"));
    assert_eq!(event["depth"], json!(1));
}

#[tokio::test]
async fn a_chain_past_the_depth_limit_is_dropped() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    // A cycle that validation did not see: x follows itself.
    let x = after("x", "x", &[]);
    store.upsert_task(&x).await.unwrap();
    store
        .record_deliveries(&[start(x.uid, "seed", Utc::now() - ChronoDuration::hours(1))])
        .await
        .unwrap();
    let mut runs = 0;
    loop {
        let leases = store.lease("w", 1, Duration::from_secs(60)).await.unwrap();
        let Some(lease) = leases.first() else { break };
        store
            .finish(&success(lease.id, lease.attempt, "w"))
            .await
            .unwrap();
        runs += 1;
        assert!(runs <= 20, "the depth limit did not stop the cycle");
    }
    assert_eq!(runs, 17, "the seed run and 16 chained runs");
    let c = store.event_counts(x.uid).await.unwrap();
    assert_eq!(c.dropped, 1);
    assert!(c.last_drop.unwrap().contains("chain deeper than 16"));
}

#[tokio::test]
async fn a_retrying_run_is_not_finished_and_starts_nothing() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let a = on_topic("a", "go");
    let b = after("b", "a", &["Succeeded", "Failed"]);
    store.upsert_task(&a).await.unwrap();
    store.upsert_task(&b).await.unwrap();
    store
        .record_deliveries(&[start(a.uid, "e1", Utc::now())])
        .await
        .unwrap();
    let leases = store.lease("w", 1, Duration::from_secs(60)).await.unwrap();
    let mut rec = success(leases[0].id, leases[0].attempt, "w");
    rec.status = RunStatus::Retrying;
    rec.disposition = ordinaut_store::Disposition::RetryAt(Utc::now());
    store.finish(&rec).await.unwrap();
    assert_eq!(event_rows(&store, b.uid).await, 0);
}

#[tokio::test]
async fn chain_links_list_who_follows_whom() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store.upsert_task(&after("b", "a", &[])).await.unwrap();
    store.upsert_task(&on_topic("a", "t")).await.unwrap();
    assert_eq!(
        store.chain_links("default").await.unwrap(),
        vec![("b".into(), "a".into())]
    );
    assert!(store.subscribed_topics().await.unwrap() == vec!["t".to_string()]);
}

#[tokio::test]
async fn a_task_held_invalid_is_given_no_events() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = on_topic("broken", "orders");
    store.upsert_task(&t).await.unwrap();
    assert_eq!(store.topic_subscribers("orders").await.unwrap().len(), 1);
    // What the operator writes when it holds an invalid Task.
    let status = json!({"conditions": [
        {"type": "Ready", "status": "False", "reason": "InvalidSchedule"},
        {"type": "Stalled", "status": "True", "reason": "InvalidSchedule"}]});
    sqlx::query("UPDATE tasks SET status = $2 WHERE uid = $1")
        .bind(t.uid)
        .bind(&status)
        .execute(store.pool())
        .await
        .unwrap();
    assert!(store.topic_subscribers("orders").await.unwrap().is_empty());
}

/// An id PostgreSQL cannot index in the occurrence key (random hex does not compress).
fn unindexable_id() -> String {
    (0..300)
        .map(|_| Uuid::new_v4().simple().to_string())
        .collect()
}

#[tokio::test]
async fn publishing_refuses_what_no_consumer_could_store() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let publish = |data: serde_json::Value, id: Option<String>| {
        let store = store.clone();
        async move {
            store
                .publish_event(&PublishRequest {
                    topic: "orders",
                    data: &data,
                    source: "test",
                    id,
                })
                .await
        }
    };
    for data in [
        json!({"x": "\u{0}"}),
        json!({"a": [1, {"b\u{0}": 2}]}),
        json!("\u{0}"),
    ] {
        let e = publish(data.clone(), None).await.unwrap_err();
        assert!(e.is_invalid_input(), "{data}: {e}");
        assert!(e.to_string().contains("NUL character"), "{e}");
    }
    for (id, why) in [
        (String::new(), "is empty"),
        ("a\u{0}b".to_string(), "NUL character"),
        ("x".repeat(257), "is 257 characters long"),
        (unindexable_id(), "characters long"),
    ] {
        let e = publish(json!({}), Some(id)).await.unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert!(e.to_string().contains("1 to 256 characters"), "{e}");
    }
    assert!(store.unpublished_events(10).await.unwrap().is_empty());
    // At the limit (characters, not bytes) is fine.
    publish(json!({"ok": "ü"}), Some("é".repeat(256)))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_event_postgresql_refuses_is_dropped_and_the_rest_of_its_batch_runs() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = on_topic("listener", "orders");
    let other = on_topic("other", "orders");
    store.upsert_task(&t).await.unwrap();
    store.upsert_task(&other).await.unwrap();
    let now = Utc::now();
    // As an older client or a direct outbox write would have let through.
    let mut nul = start(t.uid, "nul", now);
    nul.event = json!({"id": "nul", "data": {"x": "\u{0}"}});
    let long = start(t.uid, &unindexable_id(), now);
    let batch = [
        start(t.uid, "good-1", now),
        nul,
        long,
        start(t.uid, "good-2", now),
        start(other.uid, "good-1", now),
    ];
    let c = store.record_deliveries(&batch).await.unwrap();
    assert_eq!((c.started, c.dropped), (3, 2), "{c:?}");
    assert_eq!(event_rows(&store, t.uid).await, 2);
    assert_eq!(event_rows(&store, other.uid).await, 1);
    let counts = store.event_counts(t.uid).await.unwrap();
    assert_eq!(
        (counts.received, counts.started, counts.dropped),
        (4, 2, 2),
        "{counts:?}"
    );
    let reason = counts.last_drop.unwrap();
    assert!(
        reason.starts_with("the event cannot be stored: "),
        "{reason}"
    );
    assert!(!reason.contains('\0'), "{reason}");
    // Delivered again: nothing new starts, and the dropped ones are dropped again.
    let c = store.record_deliveries(&batch).await.unwrap();
    assert_eq!((c.started, c.duplicates, c.dropped), (0, 3, 2), "{c:?}");
}

#[tokio::test]
async fn a_lost_database_is_an_error_not_a_drop() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = on_topic("listener", "orders");
    store.upsert_task(&t).await.unwrap();
    store.pool().close().await;
    let e = store
        .record_deliveries(&[start(t.uid, "e1", Utc::now())])
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
}
