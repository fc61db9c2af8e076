//! Finishing a run is atomic: the run row, step rows, queue row and outbox event commit
//! together or not at all.
#![allow(clippy::unwrap_used)]

use chrono::{SubsecRound, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{StepRecord, StepStatus};
use ordinaut_test_support::store::*;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_finish_that_fails_after_the_run_row_leaves_neither_run_nor_event() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "atomic", 1).await;
    let l = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);

    // Inject a failure in the last statement of the transaction (the outbox insert),
    // after the queue row, the run row and the step rows were written.
    sqlx::raw_sql(
        "CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$; \
         CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox_rows \
           FOR EACH ROW EXECUTE FUNCTION fail_outbox();",
    )
    .execute(store.pool())
    .await
    .unwrap();

    let mut rec = success(l.id, l.attempt, "w");
    let now = Utc::now();
    rec.steps.push(StepRecord {
        step_id: "hello".into(),
        uses: "core.echo".into(),
        status: StepStatus::Succeeded,
        attempts: 1,
        input: Some(json!({"message": "hi"})),
        output: Some(json!({"message": "hi"})),
        error: None,
        started_at: now,
        finished_at: now,
    });
    let err = store.finish(&rec).await.unwrap_err();
    assert!(err.to_string().contains("injected outbox failure"), "{err}");

    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM step_runs").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM outbox").await, 0);
    // The lease is untouched: still held at the same attempt, not done.
    assert_eq!(
        count(&store, "SELECT count(*) FROM due_work WHERE done_at IS NULL AND locked_by = 'w' AND attempt = 1").await,
        1
    );

    // With the fault gone, the same result is recorded in full.
    sqlx::raw_sql("DROP TRIGGER fail_outbox ON outbox_rows")
        .execute(store.pool())
        .await
        .unwrap();
    store.finish(&rec).await.unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM step_runs").await, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM outbox").await, 1);
}

/// Events of one finish keep their order and ids, and the relay's reads see them in that
/// order; a write's events are published together (one outbox row), other writes' stay.
#[tokio::test]
async fn outbox_keeps_event_order_and_tracks_publication() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "ordered", 2).await;
    let leases = store.lease("w", 2, Duration::from_secs(60)).await.unwrap();
    for (i, l) in leases.iter().enumerate() {
        let mut rec = success(l.id, l.attempt, "w");
        rec.events = ["run.started", "step.succeeded", "run.succeeded"]
            .iter()
            .map(|t| ordinaut_store::OutboxEvent::new(*t, json!({"run": i, "type": t})))
            .collect();
        store.finish(&rec).await.unwrap();
    }
    assert_eq!(store.outbox_backlog().await.unwrap(), 6);
    let rows = store.unpublished_events(10).await.unwrap();
    let types: Vec<_> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["run.started", "step.succeeded", "run.succeeded"].repeat(2)
    );
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r.payload, json!({"run": i / 3, "type": r.event_type}));
    }
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "ids increase");
    assert!(
        rows.iter()
            .all(|r| r.stream == ordinaut_store::DEFAULT_STREAM)
    );
    // The `outbox` view shows the same events with the same ids.
    let viewed: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, event_type FROM outbox WHERE published_at IS NULL ORDER BY id")
            .fetch_all(store.pool())
            .await
            .unwrap();
    let read: Vec<(i64, String)> = rows.iter().map(|r| (r.id, r.event_type.clone())).collect();
    assert_eq!(viewed, read);
    // The first finish's write is published as a whole; the second's waits.
    assert_eq!(store.mark_published(&[rows[0].id]).await.unwrap(), 3);
    assert_eq!(store.outbox_backlog().await.unwrap(), 3);
    let left = store.unpublished_events(10).await.unwrap();
    assert_eq!(left.len(), 3);
    assert_eq!(left[0].id, rows[3].id);
    assert_eq!(left[0].event_type, "run.started");
}

/// A run's steps are read back ([`ordinaut_store::Store::get_run`]) as the worker recorded
/// them, in the run's order, with each of the three step statuses.
#[tokio::test]
async fn a_runs_steps_read_back_as_recorded() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "steps", 1).await;
    let l = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let mut rec = success(l.id, l.attempt, "w");
    // PostgreSQL keeps microseconds.
    let now = Utc::now().trunc_subsecs(6);
    let step = |id: &str, status, error: Option<&str>| StepRecord {
        step_id: id.into(),
        uses: "core.echo".into(),
        status,
        attempts: 2,
        input: Some(json!({"message": id})),
        output: error.is_none().then(|| json!({"message": id})),
        error: error.map(Into::into),
        started_at: now,
        finished_at: now + chrono::Duration::milliseconds(5),
    };
    rec.steps = vec![
        step("first", StepStatus::Succeeded, None),
        step("second", StepStatus::Failed, Some("boom")),
        step("third", StepStatus::Skipped, None),
    ];
    store.finish(&rec).await.unwrap();

    let (run, steps) = store.get_run(rec.run_id).await.unwrap().unwrap();
    assert_eq!(run.id, rec.run_id);
    assert_eq!(steps, rec.steps);
}
