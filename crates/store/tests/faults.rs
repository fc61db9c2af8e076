//! Faults the store must survive: a PostgreSQL server restarted under its feet (fast and
//! immediate shutdown), results PostgreSQL refuses, and the operator dropping stale
//! occurrences a worker has just leased.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::storable::{DEFAULT_MAX_OUTPUT_BYTES, Outcome, make_storable};
use ordinaut_store::testing::{PrivatePostgres, Shutdown, TestDb};
use ordinaut_store::{
    NewOccurrence, PlannedOccurrence, ReconcileWrite, RunStatus, StepRecord, StepStatus, Store,
    StoreError,
};
use ordinaut_test_support::store::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Retries `f` while its error is transient, for at most 60 s.
async fn until_ok<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(e.is_transient(), "a permanent error after a restart: {e:?}");
                assert!(Instant::now() < deadline, "still failing after 60 s: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Every error a client sees while PostgreSQL stops (fast: 57P01 to each session;
/// immediate: sockets cut) and while it is down is classified transient, and the same pool
/// works again once the server is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_postgres_gives_only_transient_errors_and_the_pool_recovers() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("faults").await;
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let t = task_with_due_rows(&store, "restart", 4).await;
    for mode in [Shutdown::Fast, Shutdown::Immediate] {
        // Sessions are open in the pool when the server goes away.
        assert_eq!(store.queue_depth().await.unwrap(), 4);
        pg.stop(mode);
        let down = store.queue_depth().await.unwrap_err();
        assert!(down.is_transient(), "{mode:?}: {down:?}");
        let leasing = store
            .lease("w", 1, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(leasing.is_transient(), "{mode:?}: {leasing:?}");
        pg.restart();
        let depth = until_ok(|| store.queue_depth()).await;
        assert_eq!(depth, 4, "{mode:?}: the queue survived the restart");
    }
    let leases = until_ok(|| store.lease("w", 4, Duration::from_secs(30))).await;
    assert_eq!(leases.len(), 4);
    assert!(leases.iter().all(|l| l.task_uid == t.uid));
}

/// A record whose output holds a NUL character is refused by PostgreSQL with a permanent
/// error (retrying cannot help); made storable, it is recorded as a failed run naming the
/// step, and the occurrence is done: it will not run again.
#[tokio::test]
async fn a_nul_byte_output_is_stored_as_a_failed_run_not_retried() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "nul", 1).await;
    let lease = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .pop()
        .unwrap();
    let now = Utc::now();
    let step = StepRecord {
        step_id: "fetch".into(),
        uses: "http.request".into(),
        status: StepStatus::Succeeded,
        attempts: 1,
        input: Some(json!({"url": "http://example.com"})),
        output: Some(json!({"body": "binary\u{0}data"})),
        error: None,
        started_at: now,
        finished_at: now,
    };
    let mut raw = success(lease.id, lease.attempt, "w");
    raw.steps = vec![step];
    let refused = store.finish(&raw).await.unwrap_err();
    assert!(!refused.is_transient(), "{refused:?}");
    assert_eq!(refused.sqlstate().as_deref(), Some("22P05"), "{refused:?}");

    let mut outcome = Outcome {
        status: raw.status,
        output: raw.output.clone(),
        error: None,
        steps: raw.steps.clone(),
    };
    let reason = make_storable(&mut outcome, DEFAULT_MAX_OUTPUT_BYTES).unwrap();
    let mut fixed = raw.clone();
    (fixed.status, fixed.output, fixed.error, fixed.steps) =
        (outcome.status, outcome.output, outcome.error, outcome.steps);
    store.finish(&fixed).await.unwrap();
    let (status, error, done): (String, String, bool) = sqlx::query_as(
        "SELECT r.status, r.error, d.done_at IS NOT NULL FROM task_runs r \
         JOIN due_work d ON d.id = r.due_work_id",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(status, RunStatus::Failed.as_str());
    assert!(
        error.contains("step `fetch`") && error.contains("NUL"),
        "{error}"
    );
    assert!(reason.contains("`$.body`"), "{reason}");
    assert!(done, "the occurrence is finished, not queued again");
}

/// The operator reads stale occurrences with its own clock; one a worker leases before the
/// operator's write (the database's clock says its deadline has not passed) is not deleted:
/// the write is refused as a conflict and the leased row survives.
#[tokio::test]
async fn drop_stale_never_deletes_a_row_a_worker_just_leased() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("stale");
    let now = Utc::now();
    let due = now - ChronoDuration::seconds(1);
    let write = ReconcileWrite {
        projection: t.clone(),
        prior_materialized_until: None,
        withdraw_after: None,
        drop_stale: Vec::new(),
        occurrences: vec![PlannedOccurrence {
            occurrence: NewOccurrence::scheduled(t.uid, due),
            start_deadline: Some(now + ChronoDuration::minutes(2)),
        }],
        missed: 0,
        events: Vec::new(),
        handled_run_now: None,
        status: json!({}),
    };
    store.apply_reconcile(&write).await.unwrap();
    // The operator's clock runs an hour ahead: the row looks stale to it.
    let state = store
        .operator_state(t.uid, now + ChronoDuration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.stale.len(), 1);
    let leased = store.lease("w", 1, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        leased.len(),
        1,
        "the database's clock: not past its deadline"
    );

    let mut drop = write.clone();
    drop.occurrences.clear();
    drop.prior_materialized_until = state.projection.materialized_until;
    drop.drop_stale = state.stale.iter().map(|s| s.id).collect();
    drop.missed = 1;
    let refused = store.apply_reconcile(&drop).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE locked_by = 'w'"
        )
        .await,
        1
    );
}

/// After a server restart, expired leases are left to their holders for the grace period
/// (they heartbeat or write their results first); without a grace they are reaped.
#[tokio::test]
async fn expired_leases_are_not_reaped_within_the_grace_after_a_server_start() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "grace", 2).await;
    store.lease("w", 2, Duration::ZERO).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    // The shared server has been up for less than ten years.
    let grace = Duration::from_secs(10 * 365 * 24 * 3600);
    assert_eq!(store.reap_expired_after_restart(grace).await.unwrap(), 0);
    assert_eq!(store.reap_expired().await.unwrap(), 2);
}
