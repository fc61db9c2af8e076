//! The status feed on real Redis and PostgreSQL: run outcomes published on the events stream
//! reach the Task's status, and a crash between the status write and the ack applies the
//! outcome once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use chrono::Utc;
use ordinaut_api::Task;
use ordinaut_events::GroupConsumer;
use ordinaut_operator::feed::{GROUP, StatusFeed};
use ordinaut_store::{Disposition, NewOccurrence, OutboxEvent, RunRecord, RunStatus, Trigger};
use ordinaut_test_support::operator::*;
use serde_json::json;

use ordinaut_test_support::redis_url;

/// Runs one occurrence of `task` through the store as a worker would (lease, finish with
/// `status`), then relays the outbox to `stream` the way the relay does.
async fn run_once(h: &Harness, task: &Task, status: RunStatus, stream: &str, at_minute: i64) {
    let at = t("2024-03-10T09:00:00Z") + chrono::Duration::minutes(at_minute);
    h.store
        .insert_occurrences(&[NewOccurrence {
            trigger: Trigger::Manual,
            ..NewOccurrence::scheduled(uid(task), at)
        }])
        .await
        .unwrap();
    let lease = h
        .store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let started = Utc::now();
    let kind = match status {
        RunStatus::Succeeded => "run.succeeded",
        _ => "run.failed",
    };
    h.store
        .finish(&RunRecord {
            due_work_id: lease.id,
            attempt: lease.attempt,
            run_id: uuid::Uuid::now_v7(),
            status,
            started_at: started,
            finished_at: started,
            worker: "w".into(),
            output: None,
            error: None,
            steps: vec![],
            events: vec![OutboxEvent::new(
                kind,
                json!({"namespace": "default", "task": "t", "taskUid": uid(task)}),
            )],
            disposition: Disposition::Done,
        })
        .await
        .unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new()
                .set_response_timeout(Some(std::time::Duration::from_secs(30))),
        )
        .await
        .unwrap();
    let rows = h.store.unpublished_events(100).await.unwrap();
    for row in &rows {
        let _: String = redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("type")
            .arg(&row.event_type)
            .arg("outbox_id")
            .arg(row.id)
            .arg("task_uid")
            .arg(row.task_uid.map(|u| u.to_string()).unwrap_or_default())
            .arg("payload")
            .arg(row.payload.to_string())
            .arg("created_at")
            .arg(row.created_at.to_rfc3339())
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    h.store.mark_published(&ids).await.unwrap();
}

async fn setup() -> (Harness, Task, String) {
    let h = Harness::new("2024-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2024-03-10T00:00:00Z",
        &format!("  schedule: {{every: 1h}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let stream = format!("ordinaut:test:feed:{}", uuid::Uuid::new_v4().simple());
    (h, task, stream)
}

fn feed(h: &Harness, stream: &str, consumer: &str) -> StatusFeed {
    let consumer = GroupConsumer::open(&redis_url(), stream, GROUP, consumer).unwrap();
    StatusFeed::new(consumer, h.rec.clone())
}

/// Reads until `n` entries were applied (or the deadline passes).
async fn apply(feed: &mut StatusFeed, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut ids = Vec::new();
    while ids.len() < n && tokio::time::Instant::now() < deadline {
        ids.extend(
            feed.read_and_apply(10, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    assert_eq!(ids.len(), n, "entries applied before the deadline");
    ids
}

#[tokio::test]
async fn a_run_outcome_on_the_stream_updates_last_run_status_and_time() {
    let (h, task, stream) = setup().await;
    let mut feed = feed(&h, &stream, "op-a");
    feed.ensure_group().await.unwrap();

    run_once(&h, &task, RunStatus::Succeeded, &stream, 0).await;
    let ids = apply(&mut feed, 1).await;
    feed.ack(&ids).await.unwrap();
    let status = h.status(&task).unwrap();
    assert_eq!(status.last_run_status.as_deref(), Some("Succeeded"));
    assert!(status.last_run_time.is_some());
    assert_eq!(status.last_successful_time, status.last_run_time);
    assert!(status.last_run_id.is_some());
    assert_eq!(status.counters.succeeded, 1);
    // What the reconciler owns is still there.
    assert_eq!(status.conditions[0].status, "True");
    assert!(status.next_run_time.is_some());

    run_once(&h, &task, RunStatus::Failed, &stream, 1).await;
    let ids = apply(&mut feed, 1).await;
    feed.ack(&ids).await.unwrap();
    let status = h.status(&task).unwrap();
    assert_eq!(status.last_run_status.as_deref(), Some("Failed"));
    assert_eq!((status.counters.succeeded, status.counters.failed), (1, 1));
}

/// The operator is killed after writing the status and before acknowledging: after the
/// restart the entry is delivered again, applied without counting twice, and acknowledged.
#[tokio::test]
async fn an_operator_killed_between_patch_and_ack_applies_the_outcome_once_after_restart() {
    let (h, task, stream) = setup().await;
    let mut first = feed(&h, &stream, "operator-0");
    first.ensure_group().await.unwrap();
    run_once(&h, &task, RunStatus::Succeeded, &stream, 0).await;
    let ids = apply(&mut first, 1).await;
    assert_eq!(h.status(&task).unwrap().counters.succeeded, 1);
    drop(first); // killed: no ack

    let mut restarted = feed(&h, &stream, "operator-0");
    let again = apply(&mut restarted, 1).await;
    assert_eq!(again, ids, "the pending entry comes back first");
    restarted.ack(&again).await.unwrap();
    let status = h.status(&task).unwrap();
    assert_eq!(status.counters.succeeded, 1, "applied once");
    assert_eq!(status.last_run_status.as_deref(), Some("Succeeded"));
    let consumer = GroupConsumer::open(&redis_url(), &stream, GROUP, "probe").unwrap();
    assert_eq!(consumer.pending_count().await.unwrap(), 0);
    assert!(
        restarted
            .read_and_apply(10, Duration::from_millis(100))
            .await
            .unwrap()
            .is_empty()
    );
}
