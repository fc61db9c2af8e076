//! Leader fencing: the operator replica that becomes leader takes the next epoch, and a
//! deposed leader's writes (materialization, withdrawal, status, definitions) are refused
//! and change nothing.
#![allow(clippy::unwrap_used)]

use chrono::{Duration, SubsecRound, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{
    NewOccurrence, PlannedOccurrence, ReconcileWrite, StoreError, TaskProjection,
};
use ordinaut_test_support::store::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn plan(t: &TaskProjection, hours: i64, status: serde_json::Value) -> ReconcileWrite {
    let now = Utc::now().trunc_subsecs(6);
    let times: Vec<_> = (1..=hours).map(|h| now + Duration::hours(h)).collect();
    ReconcileWrite {
        projection: TaskProjection {
            materialized_until: times.last().copied(),
            ..t.clone()
        },
        prior_materialized_until: None,
        withdraw_after: None,
        drop_stale: Vec::new(),
        occurrences: times
            .iter()
            .map(|at| PlannedOccurrence {
                occurrence: NewOccurrence::scheduled(t.uid, *at),
                start_deadline: None,
            })
            .collect(),
        missed: 0,
        events: Vec::new(),
        handled_run_now: None,
        status,
    }
}

/// A snapshot of everything an operator write could change.
async fn snapshot(store: &ordinaut_store::Store) -> (i64, i64, String, i64) {
    let due = count(store, "SELECT count(*) FROM due_work").await;
    let tasks = count(store, "SELECT count(*) FROM tasks WHERE deleted_at IS NULL").await;
    let (status,): (String,) = sqlx::query_as(
        "SELECT coalesce(string_agg(status::text, ',' ORDER BY name), '') FROM tasks",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let agents = count(store, "SELECT count(*) FROM agents").await;
    (due, tasks, status, agents)
}

#[tokio::test]
async fn a_deposed_leaders_writes_are_refused_and_change_nothing() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let refused = Arc::new(AtomicU64::new(0));
    let counter = refused.clone();
    let old = store.fenced(
        "ordinaut-operator",
        "replica-a",
        Some(Arc::new(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
        })),
    );
    let new = store.fenced("ordinaut-operator", "replica-b", None);

    // Before it takes an epoch, a fenced handle writes nothing.
    let t = task("fenced");
    let early = old.apply_reconcile(&plan(&t, 2, json!({"by": "a"}))).await;
    assert!(
        matches!(
            early,
            Err(StoreError::Fenced {
                held: 0,
                current: 0
            })
        ),
        "{early:?}"
    );

    // Replica a leads (epoch 1) and materializes.
    assert_eq!(old.take_leadership().await.unwrap(), 1);
    assert_eq!(old.leader_epoch(), Some(1));
    let applied = old
        .apply_reconcile(&plan(&t, 2, json!({"by": "a"})))
        .await
        .unwrap();
    assert_eq!(applied.inserted, 2);
    old.upsert_agent("default", "helper", 1, &json!({"scopes": ["x"]}))
        .await
        .unwrap();

    // Replica b becomes leader: epoch 2. Everything a still tries is refused.
    assert_eq!(new.take_leadership().await.unwrap(), 2);
    let before = snapshot(&store).await;
    let t2 = task("revived");
    let results = old
        .apply_reconciles(&[
            plan(&t, 5, json!({"by": "a, deposed"})),
            plan(&t2, 3, json!({"by": "a, deposed"})),
        ])
        .await;
    for r in &results {
        assert!(
            matches!(
                r,
                Err(StoreError::Fenced {
                    held: 1,
                    current: 2
                })
            ),
            "{r:?}"
        );
    }
    let refusals = [
        old.hold_invalid_task(t.uid, &json!({"by": "a, deposed"}))
            .await
            .map(|_| ()),
        old.delete_task(t.uid).await.map(|_| ()),
        old.upsert_agent("default", "helper", 2, &json!({"scopes": ["y"]}))
            .await,
        old.delete_agent("default", "helper").await,
        old.delete_mcp_server("default", "tools").await,
    ];
    for r in &refusals {
        assert!(matches!(r, Err(StoreError::Fenced { .. })), "{r:?}");
        let message = r.as_ref().unwrap_err().to_string();
        assert!(message.contains("leader epoch 1 is stale"), "{message}");
    }
    assert_eq!(
        snapshot(&store).await,
        before,
        "a refused write changed the database"
    );
    // Refused transactions: the early one, the batch (one transaction), the five others.
    assert_eq!(old.fenced_writes(), 1 + 1 + 5);
    assert_eq!(refused.load(Ordering::SeqCst), 1 + 1 + 5);
    let (spec,): (serde_json::Value,) =
        sqlx::query_as("SELECT spec FROM agents WHERE name = 'helper'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(spec, json!({"scopes": ["x"]}));

    // The new leader writes; unfenced handles (workers, gateway) are not affected.
    let applied = new
        .apply_reconcile(&plan(&t2, 3, json!({"by": "b"})))
        .await
        .unwrap();
    assert_eq!(applied.inserted, 3);
    store.delete_agent("default", "helper").await.unwrap();
    assert_eq!(new.fenced_writes(), 0);

    // Taking leadership again (a's term after b) makes b the deposed one.
    assert_eq!(old.take_leadership().await.unwrap(), 3);
    assert!(matches!(
        new.delete_task(t2.uid).await,
        Err(StoreError::Fenced {
            held: 2,
            current: 3
        })
    ));
    assert_eq!(old.delete_task(t2.uid).await.unwrap(), 3);
}

/// The check and the write are one step: a write that passed the check holds the epoch
/// until it commits, so a new leader's bump waits for it and no write of the old epoch
/// commits after the bump.
#[tokio::test]
async fn taking_leadership_waits_for_a_write_already_past_the_check() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let old = store.fenced("ordinaut-operator", "a", None);
    let new = store.fenced("ordinaut-operator", "b", None);
    old.take_leadership().await.unwrap();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("SELECT epoch FROM leader_epochs WHERE name = 'ordinaut-operator' FOR SHARE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let take = tokio::spawn(async move { new.take_leadership().await.unwrap() });
    // The bump is blocked behind the share lock (it has not returned while the lock is held).
    let waited = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            if take.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_err(), "the epoch bump did not wait for the lock");
    tx.commit().await.unwrap();
    assert_eq!(
        tokio::time::timeout(std::time::Duration::from_secs(30), take)
            .await
            .unwrap()
            .unwrap(),
        2
    );
}
