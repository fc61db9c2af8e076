//! The operator's batched reads and writes (many Tasks per statement, one transaction per
//! batch of writes): each Task gets its own answer, a Task whose plan is out of date or whose
//! write breaks a rule fails alone, and nothing is written twice.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, SubsecRound, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{
    NewOccurrence, OutboxEvent, PlannedOccurrence, ReconcileWrite, StoreError, TaskProjection,
    Trigger,
};
use ordinaut_test_support::store::*;
use serde_json::json;

fn write(
    t: &TaskProjection,
    prior: Option<DateTime<Utc>>,
    times: &[DateTime<Utc>],
) -> ReconcileWrite {
    let until = times.last().copied();
    ReconcileWrite {
        projection: TaskProjection {
            materialized_until: until,
            ..t.clone()
        },
        prior_materialized_until: prior,
        withdraw_after: None,
        drop_stale: Vec::new(),
        occurrences: times
            .iter()
            .map(|at| PlannedOccurrence {
                occurrence: NewOccurrence::scheduled(t.uid, *at),
                start_deadline: Some(*at + Duration::minutes(2)),
            })
            .collect(),
        missed: 0,
        events: Vec::new(),
        handled_run_now: None,
        status: json!({"observedGeneration": 1}),
    }
}

fn hours(from: DateTime<Utc>, n: i64) -> Vec<DateTime<Utc>> {
    (1..=n).map(|h| from + Duration::hours(h)).collect()
}

#[tokio::test]
async fn a_batch_applies_each_task_and_a_stale_plan_fails_alone() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let (a, b, c) = (task("a"), task("b"), task("c"));
    // b was materialized before, by a reconcile the new plan does not know of.
    let applied = store
        .apply_reconcile(&write(&b, None, &hours(now, 2)))
        .await;
    assert_eq!(applied.unwrap().inserted, 2);

    let results = store
        .apply_reconciles(&[
            write(&a, None, &hours(now, 3)),
            write(&b, None, &hours(now, 4)),
            write(&c, None, &hours(now, 5)),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().inserted, 3);
    assert!(
        matches!(results[1], Err(StoreError::Conflict(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap().inserted, 5);
    assert_eq!(
        count(&store, "SELECT count(*) FROM due_work").await,
        2 + 3 + 5
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM tasks WHERE status ? 'observedGeneration'"
        )
        .await,
        3
    );

    // Applying the same plans again (from where they left off) inserts nothing twice.
    let again = store
        .apply_reconciles(&[
            write(&a, Some(now + Duration::hours(3)), &hours(now, 3)),
            write(&c, Some(now + Duration::hours(5)), &hours(now, 5)),
        ])
        .await;
    assert_eq!(again[0].as_ref().unwrap().inserted, 0);
    assert_eq!(again[1].as_ref().unwrap().inserted, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 10);
}

#[tokio::test]
async fn a_write_that_breaks_a_rule_fails_alone_and_the_rest_of_its_batch_is_applied() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let taken = task("taken");
    store.upsert_task(&taken).await.unwrap();
    // Another live Task with the same namespace/name: the unique live name refuses it.
    let clash = task("taken");
    let (x, y) = (task("x"), task("y"));
    let mut wx = write(&x, None, &hours(now, 2));
    wx.missed = 2;
    wx.handled_run_now = Some("v1".into());
    wx.events = vec![OutboxEvent::new("run.missed", json!({"task": "x"}))];
    let results = store
        .apply_reconciles(&[
            wx,
            write(&clash, None, &hours(now, 2)),
            write(&y, None, &hours(now, 1)),
        ])
        .await;
    assert_eq!(results[0].as_ref().unwrap().inserted, 2);
    assert!(
        matches!(results[1], Err(StoreError::Conflict(_))),
        "{:?}",
        results[1]
    );
    assert_eq!(results[2].as_ref().unwrap().inserted, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 3);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.missed'"
        )
        .await,
        1
    );
    let state = store.operator_state(x.uid, now).await.unwrap().unwrap();
    assert_eq!(state.missed_total, 2);
    assert_eq!(state.handled_run_now.as_deref(), Some("v1"));
}

#[tokio::test]
async fn states_of_many_tasks_come_back_in_order_with_their_stale_and_manual_rows() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let (a, b) = (task("a"), task("b"));
    // a: two occurrences whose start deadline passed, one to come, one manual run.
    let past = [now - Duration::hours(2), now - Duration::hours(1)];
    let mut wa = write(&a, None, &[past[0], past[1], now + Duration::hours(1)]);
    wa.occurrences.push(PlannedOccurrence {
        occurrence: NewOccurrence {
            trigger: Trigger::Manual,
            ..NewOccurrence::scheduled(a.uid, now - Duration::minutes(5))
        },
        start_deadline: None,
    });
    store.apply_reconcile(&wa).await.unwrap();
    store
        .apply_reconcile(&write(&b, None, &hours(now, 1)))
        .await
        .unwrap();

    let unknown = uuid::Uuid::new_v4();
    let states = store
        .operator_states(&[(b.uid, now), (unknown, now), (a.uid, now)])
        .await;
    let sb = states[0].as_ref().unwrap().as_ref().unwrap();
    assert!(states[1].as_ref().unwrap().is_none());
    let sa = states[2].as_ref().unwrap().as_ref().unwrap();
    assert_eq!(sb.projection.uid, b.uid);
    assert!(sb.stale.is_empty());
    assert_eq!(sb.last_manual, None);
    assert_eq!(sa.projection.uid, a.uid);
    let stale: Vec<_> = sa.stale.iter().map(|s| s.scheduled_for).collect();
    assert_eq!(stale, past.to_vec());
    assert_eq!(
        sa.last_manual,
        Some(wa.occurrences[3].occurrence.scheduled_for)
    );
    assert_eq!(sa.last_due, Some(now - Duration::minutes(5)));
    assert_eq!(sa.status, json!({"observedGeneration": 1}));

    // Dropping the stale rows in a later write, then again with the same (now gone) ids:
    // the second is a conflict and changes nothing.
    let mut drop = write(&a, sa.projection.materialized_until, &[]);
    drop.projection.materialized_until = sa.projection.materialized_until;
    drop.drop_stale = sa.stale.iter().map(|s| s.id).collect();
    assert_eq!(store.apply_reconcile(&drop).await.unwrap().dropped, 2);
    let again = store.apply_reconcile(&drop).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let sources = store.status_sources(&[a.uid, unknown]).await;
    assert_eq!(sources[0].as_ref().unwrap().missed_total, Some(0));
    assert_eq!(sources[0].as_ref().unwrap().runs.succeeded, 0);
    assert_eq!(sources[1].as_ref().unwrap().missed_total, None);
}

/// Every occurrence belongs to an existing Task (checked per statement since migration 0006
/// replaced the per-row foreign key), and deleting a Task's row removes its occurrences.
#[tokio::test]
async fn occurrences_need_their_task_and_go_with_it() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let now = Utc::now().trunc_subsecs(6);
    let orphan = NewOccurrence::scheduled(uuid::Uuid::new_v4(), now);
    let err = store.insert_occurrences(&[orphan]).await.unwrap_err();
    assert!(
        err.to_string().contains("not present in table \"tasks\""),
        "{err}"
    );

    let (a, b) = (task("a"), task("b"));
    store
        .apply_reconciles(&[
            write(&a, None, &hours(now, 3)),
            write(&b, None, &hours(now, 2)),
        ])
        .await;
    sqlx::query("DELETE FROM tasks WHERE uid = $1")
        .bind(a.uid)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 2);
}
