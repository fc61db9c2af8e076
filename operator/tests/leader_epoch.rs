//! Leader fencing at the elector (issue 18): an instance that becomes leader takes the next
//! leader epoch in PostgreSQL before it reports leadership, so once a follower has taken the
//! Lease over, the deposed leader's writes through its fenced store are refused.
#![allow(clippy::unwrap_used)]

use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::leader::{Leadership, LeaseElector};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::testing::TestDb;
use ordinaut_store::{Store, StoreError};
use ordinaut_test_support::operator::t;

const ELECTION: &str = "ordinaut/ordinaut-operator";

fn elector(fake: &FakeApiServer, clock: &ManualClock, fenced: &Store, id: &str) -> LeaseElector {
    ordinaut_test_support::operator::lease_elector(fake, clock, id).with_epoch(fenced.clone())
}

/// The epoch row: (epoch, holder).
async fn current(store: &Store) -> (i64, String) {
    sqlx::query_as("SELECT epoch, holder FROM leader_epochs WHERE name = $1")
        .bind(ELECTION)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn becoming_leader_takes_a_new_epoch_and_the_deposed_leaders_writes_are_refused() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let fake = FakeApiServer::new();
    let clock = ManualClock::new(t("2024-03-10T10:00:00Z"));
    let a_store = store.fenced(ELECTION, "a", None);
    let b_store = store.fenced(ELECTION, "b", None);
    let a = elector(&fake, &clock, &a_store, "a");
    let b = elector(&fake, &clock, &b_store, "b");

    // Not leader yet: no epoch, every write refused.
    assert_eq!(a_store.leader_epoch(), Some(0));
    assert!(matches!(
        a_store.delete_task(uuid::Uuid::new_v4()).await,
        Err(StoreError::Fenced { held: 0, .. })
    ));

    assert!(a.try_acquire_or_renew().await.unwrap(), "a acquires");
    assert!(!b.try_acquire_or_renew().await.unwrap(), "b follows");
    assert_eq!(a_store.leader_epoch(), Some(1), "a took epoch 1");
    assert_eq!(b_store.leader_epoch(), Some(0), "a follower takes none");
    assert_eq!(current(&store).await, (1, "a".to_string()));
    a_store.delete_task(uuid::Uuid::new_v4()).await.unwrap();

    // a's renewals stop (a hung API, a pause); b takes over after a whole lease duration
    // of an unchanged record, and takes epoch 2 before it leads.
    clock.advance(chrono::Duration::seconds(16));
    assert!(b.try_acquire_or_renew().await.unwrap(), "b takes over");
    assert!(b.flag().is_leader());
    assert_eq!(b_store.leader_epoch(), Some(2));
    assert_eq!(current(&store).await, (2, "b".to_string()));
    assert!(!a.flag().is_leader(), "a's leadership lapsed");

    // A write a still had in flight is refused; b's goes through.
    let stale = a_store.delete_task(uuid::Uuid::new_v4()).await;
    assert!(
        matches!(
            stale,
            Err(StoreError::Fenced {
                held: 1,
                current: 2
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        a_store.fenced_writes(),
        2,
        "the early write and the stale one"
    );
    b_store.delete_task(uuid::Uuid::new_v4()).await.unwrap();

    // Renewing keeps the epoch: only becoming leader takes a new one.
    clock.advance(chrono::Duration::seconds(5));
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert_eq!(b_store.leader_epoch(), Some(2));
    assert_eq!(current(&store).await.0, 2);

    // a, once b releases the Lease, leads again with a newer epoch still.
    b.release().await.unwrap();
    assert!(a.try_acquire_or_renew().await.unwrap(), "a takes it back");
    assert_eq!(a_store.leader_epoch(), Some(3));
    a_store.delete_task(uuid::Uuid::new_v4()).await.unwrap();
    assert!(matches!(
        b_store.delete_task(uuid::Uuid::new_v4()).await,
        Err(StoreError::Fenced {
            held: 2,
            current: 3
        })
    ));
}
