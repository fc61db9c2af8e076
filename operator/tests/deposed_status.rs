//! A deposed leader's status writes (issue 18): the store fences the operator's database
//! writes by leader epoch, but status goes to the Kubernetes API, which knows no epoch. A
//! reconcile that lost leadership between its database write and its status write must
//! skip the status write, or it could overwrite the new leader's newer status.
#![allow(clippy::unwrap_used)]

use kube::api::{Api, Patch, PatchParams, PostParams};
use ordinaut_api::Task;
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::k8s::{KubeObjects, KubeSink};
use ordinaut_operator::leader::{Leadership, LeaseElector};
use ordinaut_operator::{Context, MaterializeConfig, TaskReconciler};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::operator::{ECHO, fake_api, t};
use ordinaut_test_support::{WAIT, until};
use std::sync::Arc;

const ELECTION: &str = "ordinaut/ordinaut-operator";

/// One operator instance: its elector (with a fenced store) and its Task reconciler, talking
/// to the fake API server with its own client.
fn instance(
    fake: &FakeApiServer,
    clock: &ManualClock,
    store: &Store,
    id: &str,
) -> (LeaseElector, TaskReconciler) {
    let fenced = store.fenced(ELECTION, id, None);
    let client = fake.client();
    let elector =
        ordinaut_test_support::operator::lease_elector(fake, clock, id).with_epoch(fenced.clone());
    let ctx = Context::new(
        fenced,
        Arc::new(clock.clone()),
        MaterializeConfig::default(),
        Arc::new(KubeObjects::new(client.clone())),
        Arc::new(KubeSink::new(client, Some(id.into()))),
        Arc::new(elector.flag()),
    );
    (elector, TaskReconciler::new(ctx))
}

async fn observed_generation(tasks: &Api<Task>) -> Option<i64> {
    let task = tasks.get("nightly").await.unwrap();
    task.status.and_then(|s| s.observed_generation)
}

/// Whether a query on `task_event_counts` (read only by the status write's
/// `status_sources`) waits for a lock: the reconcile is past its database write.
async fn waiting_for_status_sources(store: &Store) -> bool {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE wait_event_type = 'Lock' AND query LIKE '%task_event_counts%' \
           AND pid <> pg_backend_pid()",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    n > 0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_that_lost_leadership_after_its_database_write_does_not_write_status() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let fake = fake_api();
    let clock = ManualClock::new(t("2024-03-10T10:00:00Z"));
    let (a, a_rec) = instance(&fake, &clock, &store, "a");
    let (b, b_rec) = instance(&fake, &clock, &store, "b");
    let tasks = Api::<Task>::namespaced(fake.client(), "default");
    let mut task = ordinaut_test_support::operator::task(
        "nightly",
        "2024-03-10T09:00:00Z",
        &format!("  schedule: {{cron: \"0 3 * * *\", timezone: UTC}}\n{ECHO}"),
    );
    task.metadata.uid = None;
    task.metadata.generation = None;
    task.metadata.creation_timestamp = None;
    tasks.create(&PostParams::default(), &task).await.unwrap();

    // a leads and writes status (the control: status does reach the API).
    assert!(a.try_acquire_or_renew().await.unwrap(), "a acquires");
    assert!(!b.try_acquire_or_renew().await.unwrap(), "b follows");
    a_rec
        .reconcile(&tasks.get("nightly").await.unwrap())
        .await
        .unwrap();
    assert_eq!(observed_generation(&tasks).await, Some(1));

    // A spec change (generation 2). a's reconcile of it writes the database, then hangs
    // before its status write (the table its status read needs is locked) ...
    let patch = serde_json::json!({"spec": {"schedule": {"cron": "0 4 * * *", "timezone": "UTC"}}});
    tasks
        .patch("nightly", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let edited = tasks.get("nightly").await.unwrap();
    assert_eq!(edited.metadata.generation, Some(2));
    let mut lock = store.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE task_event_counts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let hung = tokio::spawn(async move { a_rec.reconcile(&edited).await.map(|_| a_rec) });
    until(WAIT, "a's reconcile waits before its status write", || {
        waiting_for_status_sources(&store)
    })
    .await;

    // ... while b takes the Lease over (a's renewals stopped for a whole lease duration)
    // and with it epoch 2.
    clock.advance(chrono::Duration::seconds(16));
    assert!(b.try_acquire_or_renew().await.unwrap(), "b takes over");
    assert!(!a.flag().is_leader(), "a's leadership lapsed");

    // a's reconcile goes on: it finds it no longer leads and skips the status write.
    lock.rollback().await.unwrap();
    let a_rec = hung.await.unwrap().unwrap();
    assert_eq!(
        observed_generation(&tasks).await,
        Some(1),
        "the deposed leader wrote status"
    );
    assert_eq!(a_rec.context().metrics.skipped_writes.get(), 1);

    // The new leader writes it.
    b_rec
        .reconcile(&tasks.get("nightly").await.unwrap())
        .await
        .unwrap();
    assert_eq!(observed_generation(&tasks).await, Some(2));
    assert_eq!(b_rec.context().metrics.skipped_writes.get(), 0);
}
