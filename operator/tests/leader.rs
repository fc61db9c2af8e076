//! Leader election timing (issue 18): expiry judged by local observed time, never by the
//! holder's clock, and leadership that lapses at the renew deadline without a renewal.
#![allow(clippy::unwrap_used)]

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::leader::{Leadership, LeaseElector};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_test_support::operator::t;
use std::time::Duration;

fn elector(fake: &FakeApiServer, clock: &ManualClock, id: &str) -> LeaseElector {
    ordinaut_test_support::operator::lease_elector(fake, clock, id)
}

/// A holder whose clock runs an hour behind writes `renewTime`s an hour in the past. A
/// follower comparing them with its own clock would take the Lease at once, while the holder
/// still leads; counting from when it first saw the record, it waits a whole lease duration
/// without a renewal.
#[tokio::test]
async fn a_skewed_holder_clock_does_not_let_a_follower_take_over_early() {
    let fake = FakeApiServer::new();
    let clock = ManualClock::new(t("2024-03-10T10:00:00Z"));
    let api = Api::<Lease>::namespaced(fake.client(), "ordinaut");
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "ordinaut-operator"},
        "spec": {
            "holderIdentity": "skewed",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-03-10T09:00:00.000000Z",
            "renewTime": "2024-03-10T09:00:00.000000Z",
            "leaseTransitions": 0
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &lease).await.unwrap();
    let b = elector(&fake, &clock, "b");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "first sight: follow"
    );
    clock.advance(chrono::Duration::seconds(10));
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "within one duration: follow"
    );
    clock.advance(chrono::Duration::seconds(6));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "unchanged for 16 s: take over"
    );
}

/// A leader whose renewals stop answering (hung API calls, a partition) stops leading at its
/// renew deadline (two thirds of the lease), before any follower may take the Lease over,
/// with no round having to finish; a later successful renewal restores it.
#[tokio::test]
async fn leadership_lapses_at_the_renew_deadline_without_a_renewal() {
    let fake = FakeApiServer::new();
    let clock = ManualClock::new(t("2024-03-10T10:00:00Z"));
    let a = elector(&fake, &clock, "a");
    assert!(a.try_acquire_or_renew().await.unwrap());
    let flag = a.flag();
    assert!(flag.is_leader());
    assert_eq!(a.renew_deadline(), Duration::from_secs(10));
    clock.advance(chrono::Duration::seconds(9));
    assert!(flag.is_leader());
    clock.advance(chrono::Duration::seconds(2));
    assert!(
        !flag.is_leader(),
        "11 s after the last renewal: no longer leading"
    );
    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(flag.is_leader());
}
