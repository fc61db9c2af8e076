//! Leasing under concurrency, expiry and staleness, against a real PostgreSQL database.
#![allow(clippy::unwrap_used)]

use chrono::Utc;
use ordinaut_store::testing::TestDb;
use ordinaut_store::{Disposition, FinishOutcome, NewOccurrence, RunStatus, StoreError};
use ordinaut_test_support::store::*;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// 10,000 due rows, 8 leasers in a loop: every row is leased exactly once and finished
/// exactly once, and no leaser is ever handed a row another one holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_rows_eight_leasers_each_row_leased_and_finished_once() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "bulk", 10_000).await;

    let held: Arc<Mutex<HashMap<i64, usize>>> = Arc::default();
    let leased_total: Arc<Mutex<Vec<i64>>> = Arc::default();
    let mut handles = Vec::new();
    for w in 0..8usize {
        let store = store.clone();
        let held = held.clone();
        let leased_total = leased_total.clone();
        handles.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            loop {
                let leases = store
                    .lease(&worker, 37, Duration::from_secs(60))
                    .await
                    .unwrap();
                if leases.is_empty() {
                    break;
                }
                {
                    let mut h = held.lock().unwrap();
                    for l in &leases {
                        assert_eq!(l.attempt, 1, "row {} leased at attempt {}", l.id, l.attempt);
                        if let Some(other) = h.insert(l.id, w) {
                            panic!(
                                "row {} handed to worker {w} while worker {other} holds it",
                                l.id
                            );
                        }
                    }
                    leased_total
                        .lock()
                        .unwrap()
                        .extend(leases.iter().map(|l| l.id));
                }
                let records: Vec<_> = leases
                    .iter()
                    .map(|l| success(l.id, l.attempt, &worker))
                    .collect();
                let outcomes = store.finish_many(&records).await.unwrap();
                assert!(outcomes.iter().all(|o| *o == FinishOutcome::Recorded));
                let mut h = held.lock().unwrap();
                for l in &leases {
                    h.remove(&l.id);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let leased = leased_total.lock().unwrap().clone();
    assert_eq!(leased.len(), 10_000, "every row leased exactly once");
    assert_eq!(leased.iter().collect::<HashSet<_>>().len(), 10_000);
    assert_eq!(
        count(&store, "SELECT count(*) FROM task_runs").await,
        10_000
    );
    assert_eq!(
        count(&store, "SELECT count(DISTINCT due_work_id) FROM task_runs").await,
        10_000
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.succeeded'"
        )
        .await,
        10_000
    );
    assert_eq!(store.queue_depth().await.unwrap(), 0);
}

/// An expired lease is reaped and leased again at attempt + 1; the old holder's result is
/// then refused as stale and changes nothing.
#[tokio::test]
async fn expired_lease_is_reaped_and_released_at_next_attempt_and_old_holder_is_refused() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "one", 1).await;

    let first = store
        .lease("a", 10, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempt, 1);
    // Nothing else is leasable while it is held.
    assert!(
        store
            .lease("b", 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reaped = store.reap_expired().await.unwrap();
        if reaped == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "lease never expired");
        tokio::task::yield_now().await;
    }
    let second = store.lease("b", 10, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].id, first[0].id);
    assert_eq!(second[0].attempt, 2);

    // The old holder finishes late: refused, nothing written.
    let err = store
        .finish(&success(first[0].id, 1, "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StaleAttempt {
                attempt: 1,
                current: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 0);
    assert_eq!(count(&store, "SELECT count(*) FROM outbox").await, 0);
    // Its heartbeat no longer holds anything either.
    assert!(
        store
            .heartbeat("a", &[(first[0].id, 1)], Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    // The new holder's result is recorded.
    store.finish(&success(second[0].id, 2, "b")).await.unwrap();
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE attempt = 2 AND worker = 'b'"
        )
        .await,
        1
    );
    // Finishing twice is refused too.
    assert!(store.finish(&success(second[0].id, 2, "b")).await.is_err());
}

/// Leases come out by priority, then run_at; future rows are not leased.
#[tokio::test]
async fn lease_orders_by_priority_then_run_at_and_skips_future_rows() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("prio");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    let mk = |secs_ago: i64, prio: i32| NewOccurrence {
        priority: prio,
        ..NewOccurrence::scheduled(t.uid, now - chrono::Duration::seconds(secs_ago))
    };
    store
        .insert_occurrences(&[
            mk(10, 0),
            mk(20, 0),
            mk(5, 9),
            mk(-3600, 100), // an hour in the future
        ])
        .await
        .unwrap();
    let leases = store.lease("w", 10, Duration::from_secs(60)).await.unwrap();
    let got: Vec<(i32, i64)> = leases
        .iter()
        .map(|l| (l.priority, (now - l.scheduled_for).num_seconds()))
        .collect();
    assert_eq!(got, vec![(9, 5), (0, 20), (0, 10)]);
    assert_eq!(leases[0].namespace, "default");
    assert_eq!(leases[0].name, "prio");
}

/// The on-time lane: scheduled occurrences due within the last second are leased before an
/// overdue backlog (and before a backlog of manual runs due now), taking up to three
/// quarters of a batch; the backlog keeps the rest, so it is not starved.
#[tokio::test]
async fn on_time_occurrences_go_before_an_overdue_backlog_which_keeps_a_quarter() {
    use ordinaut_store::Trigger;
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("lanes");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    let overdue = (0..200i64)
        .map(|i| NewOccurrence::scheduled(t.uid, now - chrono::Duration::seconds(600 - i)));
    // Manual runs due now (and even a priority over the on-time ones' does not make them
    // on time): a backlog all the same.
    let manual = (0..200i64).map(|i| NewOccurrence {
        trigger: Trigger::Manual,
        ..NewOccurrence::scheduled(t.uid, now - chrono::Duration::milliseconds(300 + i))
    });
    // The on-time rows fall due 2 s from now: the lease below runs right after they do,
    // whatever the insert above cost on a busy machine (the lane is the last second).
    let due = now + chrono::Duration::seconds(2);
    let on_time = (0..20i64)
        .map(|i| NewOccurrence::scheduled(t.uid, due - chrono::Duration::milliseconds(i)));
    let rows: Vec<_> = overdue.chain(manual).chain(on_time).collect();
    store.insert_occurrences(&rows).await.unwrap();
    while Utc::now() <= due {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let lane = |l: &ordinaut_store::Lease| {
        l.trigger == Trigger::Schedule && l.run_at > due - chrono::Duration::seconds(1)
    };

    // A batch of 16: 12 on time (three quarters), 4 from the backlog, oldest first.
    let first = store.lease("w", 16, Duration::from_secs(60)).await.unwrap();
    assert_eq!(first.len(), 16);
    let on: Vec<_> = first.iter().filter(|l| lane(l)).collect();
    let back: Vec<_> = first.iter().filter(|l| !lane(l)).collect();
    assert_eq!(
        on.len(),
        12,
        "three quarters of the batch on time: {first:?}"
    );
    assert_eq!(back.len(), 4, "a quarter for the backlog");
    assert!(
        back.iter()
            .all(|l| (now - l.run_at).num_seconds() >= 597 && l.trigger == Trigger::Schedule),
        "the backlog's share goes to its oldest rows"
    );
    // The remaining 8 on-time rows before anything else in the next batch of 64.
    let second = store.lease("w", 64, Duration::from_secs(60)).await.unwrap();
    assert_eq!(second.len(), 64);
    assert_eq!(second.iter().filter(|l| lane(l)).count(), 8);
    // Once the lane is empty, the backlog gets whole batches.
    let third = store.lease("w", 64, Duration::from_secs(60)).await.unwrap();
    assert_eq!(third.len(), 64);
    assert!(third.iter().all(|l| !lane(l)));
}

/// Retry later re-queues at attempt + 1 with its run_at; the failed attempt is recorded.
#[tokio::test]
async fn retry_later_requeues_with_backoff_and_records_the_failed_attempt() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "flaky", 1).await;
    let l = store
        .lease("w", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let retry_at = Utc::now() + chrono::Duration::milliseconds(300);
    let mut rec = success(l.id, l.attempt, "w");
    rec.status = RunStatus::Retrying;
    rec.error = Some("step fetch: attempt 1: connection refused".into());
    rec.disposition = Disposition::RetryAt(retry_at);
    store.finish(&rec).await.unwrap();

    // Not leasable before its run_at…
    assert!(
        store
            .lease("w", 1, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    // …and leasable after, as attempt 2.
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let got = store.lease("w", 1, Duration::from_secs(60)).await.unwrap();
        if let Some(l) = got.into_iter().next() {
            break l;
        }
        assert!(Instant::now() < deadline, "retry never became due");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(again.id, l.id);
    assert_eq!(again.attempt, 2);
    assert!(again.run_at >= retry_at - chrono::Duration::microseconds(1));
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM task_runs WHERE status = 'retrying' AND attempt = 1"
        )
        .await,
        1
    );
}

/// Heartbeats extend only the holder's current leases; release hands rows back.
#[tokio::test]
async fn heartbeat_extends_held_leases_and_release_requeues_them() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "hb", 3).await;
    let leases = store.lease("w1", 3, Duration::from_secs(5)).await.unwrap();
    let held: Vec<(i64, i32)> = leases.iter().map(|l| (l.id, l.attempt)).collect();
    let before = leases[0].locked_until;
    let kept = store
        .heartbeat("w1", &held, Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    let (until,): (chrono::DateTime<Utc>,) =
        sqlx::query_as("SELECT locked_until FROM due_work WHERE id = $1")
            .bind(leases[0].id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(until > before + chrono::Duration::seconds(100));
    // Another worker's heartbeat for these rows holds nothing.
    assert!(
        store
            .heartbeat("w2", &held, Duration::from_secs(120))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.release("w1", &held).await.unwrap(), 3);
    let again = store.lease("w2", 10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|l| l.attempt == 2));
}

/// A heartbeat writes only leases about to expire and never waits for a row locked by
/// someone else (the holder's recorder finishing it); it still reports every lease held.
#[tokio::test]
async fn heartbeat_within_extends_only_expiring_unlocked_leases_and_reports_all() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    task_with_due_rows(&store, "hbw", 3).await;
    let leases = store.lease("w1", 3, Duration::from_secs(60)).await.unwrap();
    assert_eq!(leases.len(), 3);
    let held: Vec<(i64, i32)> = leases.iter().map(|l| (l.id, l.attempt)).collect();
    let until = |id: i64| {
        let store = store.clone();
        async move {
            let (u,): (chrono::DateTime<Utc>,) =
                sqlx::query_as("SELECT locked_until FROM due_work WHERE id = $1")
                    .bind(id)
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            u
        }
    };
    // Fresh 60 s leases, renewed only within 30 s of expiry: reported, not written.
    let before = until(leases[0].id).await;
    let kept = store
        .heartbeat_within(
            "w1",
            &held,
            Duration::from_secs(600),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    assert_eq!(until(leases[0].id).await, before);

    // Row 1 is locked by another transaction (a recorder mid-batch); all three expire soon.
    let mut blocker = store.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM due_work WHERE id = $1 FOR UPDATE")
        .bind(leases[1].id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    // Far below the 120 s lock timeout: the heartbeat skipped the locked row, not waited.
    let kept = tokio::time::timeout(
        Duration::from_secs(30),
        store.heartbeat_within(
            "w1",
            &held,
            Duration::from_secs(600),
            Duration::from_secs(120),
        ),
    )
    .await
    .expect("the heartbeat waited for a locked row")
    .unwrap();
    let ids: HashSet<i64> = kept.iter().map(|h| h.id).collect();
    assert_eq!(ids, held.iter().map(|(id, _)| *id).collect::<HashSet<_>>());
    assert!(until(leases[0].id).await > before + chrono::Duration::seconds(500));
    assert!(until(leases[2].id).await > before + chrono::Duration::seconds(500));
    assert!(until(leases[1].id).await < before + chrono::Duration::seconds(1));
    blocker.rollback().await.unwrap();
    // Next time the row is free: extended.
    store
        .heartbeat_within(
            "w1",
            &held,
            Duration::from_secs(600),
            Duration::from_secs(120),
        )
        .await
        .unwrap();
    assert!(until(leases[1].id).await > before + chrono::Duration::seconds(500));
}

/// Forbid: of two runs of one task started at once on different workers, exactly one runs.
/// Replace: the later run asks the active one to cancel, seen at its next heartbeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn begin_run_serializes_forbid_and_replace_decisions_per_task() {
    use ordinaut_store::RunDecision;
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task_with_due_rows(&store, "overlap", 2).await;
    let a = store
        .lease("wa", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let b = store
        .lease("wb", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    let (da, db) = tokio::join!(
        store.begin_run(a.id, a.attempt, t.uid, "Forbid"),
        store.begin_run(b.id, b.attempt, t.uid, "Forbid")
    );
    let decisions = [da.unwrap(), db.unwrap()];
    let runs = decisions.iter().filter(|d| **d == RunDecision::Run).count();
    let skips = decisions
        .iter()
        .filter(|d| matches!(d, RunDecision::Skip { .. }))
        .count();
    assert_eq!((runs, skips), (1, 1), "{decisions:?}");

    // Replace, on another task: the second run cancels the first.
    let t2 = task_with_due_rows(&store, "replace", 2).await;
    let first = store
        .lease("wa", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.task_uid, t2.uid);
    let second = store
        .lease("wb", 1, Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        store
            .begin_run(first.id, first.attempt, t2.uid, "Replace")
            .await
            .unwrap(),
        RunDecision::Run
    );
    assert_eq!(
        store
            .begin_run(second.id, second.attempt, t2.uid, "Replace")
            .await
            .unwrap(),
        RunDecision::Replaced {
            cancelled: vec![first.id]
        }
    );
    let held = store
        .heartbeat("wa", &[(first.id, first.attempt)], Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(held[0].cancel_requested);
    // A stale attempt cannot begin.
    assert!(
        store
            .begin_run(first.id, first.attempt + 1, t2.uid, "Allow")
            .await
            .is_err()
    );
}

/// `lease_ahead` takes first attempts of scheduled occurrences due within its lookahead (so
/// a burst can be leased before its second), and nothing else early: not an occurrence due
/// later, not a manual one due within the lookahead. `lease` takes none of them.
#[tokio::test]
async fn lease_ahead_takes_only_scheduled_occurrences_due_within_the_lookahead() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("ahead");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    let soon = now + chrono::Duration::milliseconds(1500);
    let later = now + chrono::Duration::seconds(30);
    let manual = NewOccurrence {
        trigger: ordinaut_store::Trigger::Manual,
        ..NewOccurrence::scheduled(t.uid, soon)
    };
    let occ = vec![
        NewOccurrence::scheduled(t.uid, soon),
        NewOccurrence::scheduled(t.uid, later),
        manual,
    ];
    assert_eq!(store.insert_occurrences(&occ).await.unwrap(), 3);

    let none = store.lease("w", 10, Duration::from_secs(60)).await.unwrap();
    assert!(none.is_empty(), "nothing is due yet: {none:?}");
    let early = store
        .lease_ahead("w", 10, Duration::from_secs(60), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(early.len(), 1, "{early:?}");
    let l = &early[0];
    assert_eq!(l.trigger, ordinaut_store::Trigger::Schedule);
    assert_eq!(l.scheduled_for.timestamp_micros(), soon.timestamp_micros());
    assert!(l.leased_at < l.run_at, "leased before its time");
    let again = store
        .lease_ahead("w", 10, Duration::from_secs(60), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "the manual and the later one wait: {again:?}"
    );
}
