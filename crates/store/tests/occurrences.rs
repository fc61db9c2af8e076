//! Idempotent insertion, withdrawal, and the atomic apply step.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{NewOccurrence, Trigger};
use ordinaut_test_support::store::*;
use std::time::Duration;

#[tokio::test]
async fn inserting_the_same_occurrence_twice_leaves_one_row() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("dup");
    store.upsert_task(&t).await.unwrap();
    let when = at("2030-01-01T08:00:00Z");
    let occ = NewOccurrence::scheduled(t.uid, when);
    assert_eq!(
        store
            .insert_occurrences(std::slice::from_ref(&occ))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .insert_occurrences(&[occ.clone(), occ.clone()])
            .await
            .unwrap(),
        0
    );
    // A different jitter (run_at) is still the same occurrence.
    let jittered = NewOccurrence {
        run_at: when + ChronoDuration::seconds(7),
        ..occ.clone()
    };
    assert_eq!(store.insert_occurrences(&[jittered]).await.unwrap(), 0);
    // A manual run at the same instant is a different occurrence.
    let manual = NewOccurrence {
        trigger: Trigger::Manual,
        ..occ
    };
    assert_eq!(store.insert_occurrences(&[manual]).await.unwrap(), 1);
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 2);
}

/// A finished occurrence inserted again (e.g. re-materialized after a restart) never runs again.
#[tokio::test]
async fn a_finished_occurrence_inserted_again_is_not_queued_again() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task_with_due_rows(&store, "once", 1).await;
    let l = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    store.finish(&success(l.id, l.attempt, "w")).await.unwrap();
    let again = NewOccurrence::scheduled(t.uid, l.scheduled_for);
    assert_eq!(store.insert_occurrences(&[again]).await.unwrap(), 0);
    assert!(
        store
            .lease("w", 1, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn withdrawing_leaves_leased_finished_and_manual_rows_alone() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("wd");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    let past1 = now - ChronoDuration::minutes(2);
    let past2 = now - ChronoDuration::minutes(1);
    let future: Vec<_> = (1..=5)
        .map(|h| NewOccurrence::scheduled(t.uid, now + ChronoDuration::hours(h)))
        .collect();
    store
        .insert_occurrences(&[
            NewOccurrence::scheduled(t.uid, past1),
            NewOccurrence::scheduled(t.uid, past2),
        ])
        .await
        .unwrap();
    store.insert_occurrences(&future).await.unwrap();
    let manual = NewOccurrence {
        trigger: Trigger::Manual,
        ..NewOccurrence::scheduled(t.uid, now + ChronoDuration::minutes(1))
    };
    store.insert_occurrences(&[manual]).await.unwrap();
    // Lease both past rows, finish one.
    let leases = store.lease("w", 2, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leases.len(), 2);
    store
        .finish(&success(leases[0].id, leases[0].attempt, "w"))
        .await
        .unwrap();
    // Make one future row leased too, as if a worker had taken it early.
    sqlx::query(
        "UPDATE due_work SET locked_until = now() + interval '1 minute', locked_by = 'w', attempt = 1 \
         WHERE scheduled_for = $1",
    )
    .bind(future[0].scheduled_for)
    .execute(store.pool())
    .await
    .unwrap();

    let withdrawn = store
        .withdraw_future(t.uid, at("1970-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(withdrawn, 4, "only the four queued future schedule rows go");
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 4);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE trigger = 'manual'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE locked_by IS NOT NULL"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NOT NULL"
        )
        .await,
        1
    );
}

/// apply_task swaps schedules in one transaction: a failure half-way leaves the old one.
#[tokio::test]
async fn apply_task_replaces_future_occurrences_atomically() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let mut t = task("swap");
    let now = Utc::now();
    let old: Vec<_> = (1..=3)
        .map(|h| NewOccurrence::scheduled(t.uid, now + ChronoDuration::hours(h)))
        .collect();
    assert_eq!(store.apply_task(&t, None, &old).await.unwrap(), (0, 3));

    t.generation = 2;
    t.schedule = "30m".into();
    let new: Vec<_> = (1..=4)
        .map(|h| NewOccurrence::scheduled(t.uid, now + ChronoDuration::minutes(30 * h)))
        .collect();
    // A new occurrence for an unknown task violates the foreign key: the whole apply rolls back.
    let mut broken = new.clone();
    broken.push(NewOccurrence::scheduled(uuid::Uuid::new_v4(), now));
    assert!(store.apply_task(&t, Some(now), &broken).await.is_err());
    assert_eq!(store.get_task(t.uid).await.unwrap().generation, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 3);

    assert_eq!(store.apply_task(&t, Some(now), &new).await.unwrap(), (3, 4));
    assert_eq!(store.get_task(t.uid).await.unwrap().generation, 2);
    assert_eq!(count(&store, "SELECT count(*) FROM due_work").await, 4);
}

/// Deleting a task withdraws its queued rows, keeps its history and frees its name.
#[tokio::test]
async fn deleting_a_task_withdraws_queued_rows_and_keeps_history() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task_with_due_rows(&store, "gone", 3).await;
    let l = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    store.finish(&success(l.id, l.attempt, "w")).await.unwrap();
    assert_eq!(store.delete_task(t.uid).await.unwrap(), 2);
    assert_eq!(store.delete_task(t.uid).await.unwrap(), 0, "idempotent");
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 1);
    assert!(store.find_task("default", "gone").await.is_err());
    assert!(store.get_task(t.uid).await.is_ok());
    // A new Task with the same name (new uid) is allowed; a second live one is a conflict.
    let again = task("gone");
    store.upsert_task(&again).await.unwrap();
    let clash = task("gone");
    let err = store.upsert_task(&clash).await.unwrap_err();
    assert!(
        matches!(err, ordinaut_store::StoreError::Conflict(_)),
        "{err}"
    );
}
