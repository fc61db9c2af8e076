//! Agent budgets where runs start (migration 0008), against a real PostgreSQL database with
//! several concurrent leasers: `concurrentRuns` and `runsPerHour` hold exactly, an occurrence
//! over budget waits in the queue (not failed, not lost, its attempt unchanged) with its
//! reason, and each first wait is counted, published and audited.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{NewOccurrence, Store, TaskProjection};
use ordinaut_test_support::store::*;
use serde_json::json;
use std::time::Duration;

const LEASE: Duration = Duration::from_secs(60);

async fn agent_task(store: &Store, name: &str, agent: &str, n: usize) -> TaskProjection {
    let mut t = task(name);
    t.spec = json!({"schedule": {"every": "1m"}, "agentRef": agent});
    store.upsert_task(&t).await.unwrap();
    let end = Utc::now() - ChronoDuration::minutes(1);
    let occ: Vec<NewOccurrence> = (0..n)
        .map(|i| NewOccurrence::scheduled(t.uid, end - ChronoDuration::seconds(i as i64)))
        .collect();
    assert_eq!(store.insert_occurrences(&occ).await.unwrap(), n as u64);
    t
}

/// Makes every waiting occurrence due again (as if its wait were over).
async fn make_waiting_due(store: &Store) {
    sqlx::query(
        "UPDATE due_work SET run_at = now() - interval '1 second' WHERE waiting_reason IS NOT NULL",
    )
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_hold_across_leasers_and_other_work_goes_ahead() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent(
            "default",
            "bot",
            1,
            &json!({"scopes": [], "budgets": {"concurrentRuns": 2}}),
        )
        .await
        .unwrap();
    agent_task(&store, "budgeted", "bot", 10).await;
    task_with_due_rows(&store, "free", 20).await;

    // Four leasers at once, each asking for more than the budget.
    let mut handles = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .lease_within_budgets(&format!("w{w}"), 10, LEASE)
                .await
                .unwrap()
        }));
    }
    let mut started = Vec::new();
    let mut free_runs = 0;
    let mut waits = Vec::new();
    for h in handles {
        let a = h.await.unwrap();
        for l in a.leases {
            if l.spec.get("agentRef").is_some() {
                started.push(l);
            } else {
                free_runs += 1;
            }
        }
        waits.extend(a.waits);
    }
    assert_eq!(
        started.len(),
        2,
        "concurrentRuns: 2 admitted {}",
        started.len()
    );
    assert_eq!(
        free_runs, 20,
        "agent-less work must not wait for the budget"
    );
    assert_eq!(waits.len(), 8);
    assert!(waits.iter().all(|w| w.first));
    assert!(
        waits[0].reason.contains("concurrentRuns: 2"),
        "{}",
        waits[0].reason
    );

    // Waiting occurrences are queued, at their old attempt, with their reason.
    assert_eq!(
        count(&store, "SELECT count(*) FROM due_work WHERE waiting_reason IS NOT NULL AND locked_until IS NULL AND attempt = 0 AND done_at IS NULL").await,
        8
    );
    assert_eq!(
        store.agent_budget_usage("default", "bot").await.unwrap(),
        (2, 2, 8)
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE event_type = 'run.budget_wait'"
        )
        .await,
        8
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM audit_log WHERE action = 'run.budget_wait' AND NOT allowed AND correlation_id IS NOT NULL AND subject = 'budgeted'").await,
        8
    );

    // Re-checked while both runs go: still waiting, not counted again.
    make_waiting_due(&store).await;
    let again = store.lease_within_budgets("w9", 10, LEASE).await.unwrap();
    assert!(again.leases.is_empty());
    assert_eq!(again.waits.len(), 8);
    assert!(again.waits.iter().all(|w| !w.first));
    assert_eq!(
        store.agent_budget_usage("default", "bot").await.unwrap().2,
        8
    );

    // One run finishes: exactly one more starts.
    let done = success(started[0].id, started[0].attempt, "w");
    store.finish(&done).await.unwrap();
    make_waiting_due(&store).await;
    let next = store.lease_within_budgets("w9", 10, LEASE).await.unwrap();
    assert_eq!(next.leases.len(), 1);
    assert_eq!(
        next.leases[0].attempt, 1,
        "a wait does not use up an attempt"
    );
    assert_eq!(
        count(
            &store,
            &format!(
                "SELECT count(*) FROM due_work WHERE id = {} AND waiting_reason IS NULL",
                next.leases[0].id
            )
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_per_hour_never_exceeds_the_budget_and_the_rest_stay_queued() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent("default", "bot", 1, &json!({"budgets": {"runsPerHour": 3}}))
        .await
        .unwrap();
    agent_task(&store, "hourly", "bot", 10).await;

    // Leasers finish what they get at once and come back: only the hour budget limits them.
    for round in 0..4 {
        if round > 0 {
            make_waiting_due(&store).await;
        }
        let mut handles = Vec::new();
        for w in 0..3 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let a = store
                    .lease_within_budgets(&format!("w{w}"), 4, LEASE)
                    .await
                    .unwrap();
                for l in &a.leases {
                    store.finish(&success(l.id, l.attempt, "w")).await.unwrap();
                }
                a.leases.len()
            }));
        }
        let mut n = 0;
        for h in handles {
            n += h.await.unwrap();
        }
        if round > 0 {
            assert_eq!(n, 0, "round {round} started {n} more runs within the hour");
        }
    }
    assert_eq!(count(&store, "SELECT count(*) FROM task_runs").await, 3);
    assert_eq!(
        count(&store, "SELECT count(*) FROM due_work WHERE done_at IS NULL AND locked_until IS NULL AND waiting_reason LIKE '%runsPerHour: 3%'").await,
        7,
        "the other 7 occurrences wait in the queue"
    );
    // Their next try is when the oldest start leaves the hour.
    let (earliest,): (chrono::DateTime<Utc>,) =
        sqlx::query_as("SELECT min(run_at) FROM due_work WHERE waiting_reason IS NOT NULL")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(
        earliest > Utc::now() + ChronoDuration::minutes(59),
        "{earliest}"
    );
    assert_eq!(
        store.agent_budget_usage("default", "bot").await.unwrap(),
        (0, 3, 7)
    );
}

#[tokio::test]
async fn an_agent_without_budgets_or_a_task_without_agent_is_not_limited() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent("default", "free", 1, &json!({"scopes": ["core.*"]}))
        .await
        .unwrap();
    agent_task(&store, "a", "free", 5).await;
    task_with_due_rows(&store, "b", 5).await;
    let a = store.lease_within_budgets("w", 20, LEASE).await.unwrap();
    assert_eq!(a.leases.len(), 10);
    assert!(a.waits.is_empty());
}

/// A scheduled occurrence still waiting at its start deadline is not started late: it stays
/// at attempt 0 past its deadline, which is what the operator counts as missed (its catch-up
/// policy then decides).
#[tokio::test]
async fn an_occurrence_waiting_past_its_start_deadline_is_left_to_the_catch_up_policy() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent(
            "default",
            "bot",
            1,
            &json!({"budgets": {"concurrentRuns": 1}}),
        )
        .await
        .unwrap();
    agent_task(&store, "late", "bot", 2).await;
    let first = store.lease_within_budgets("w", 10, LEASE).await.unwrap();
    assert_eq!((first.leases.len(), first.waits.len()), (1, 1));
    let running = &first.leases[0];
    store
        .finish(&success(running.id, running.attempt, "w"))
        .await
        .unwrap();
    // The waiting one's deadline passes before its next try.
    sqlx::query(
        "UPDATE due_work SET start_deadline = now() - interval '1 second', \
             run_at = now() - interval '1 second' WHERE waiting_reason IS NOT NULL",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let later = store.lease_within_budgets("w", 10, LEASE).await.unwrap();
    assert!(later.leases.is_empty() && later.waits.is_empty());
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE attempt = 0 AND done_at IS NULL \
             AND locked_until IS NULL AND start_deadline < now()"
        )
        .await,
        1
    );
}

/// A retry is a run like any other: it counts against runsPerHour again. A run whose lease
/// expired (its worker died) stops counting against concurrentRuns.
#[tokio::test]
async fn retries_count_again_and_an_expired_lease_stops_counting() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    store
        .upsert_agent(
            "default",
            "bot",
            1,
            &json!({"budgets": {"concurrentRuns": 1, "runsPerHour": 10}}),
        )
        .await
        .unwrap();
    agent_task(&store, "flaky", "bot", 2).await;

    // The first run fails and is retried at once: the retry is admitted and counted again.
    let a = store.lease_within_budgets("w", 1, LEASE).await.unwrap();
    let first = &a.leases[0];
    let mut failed = success(first.id, first.attempt, "w");
    failed.status = ordinaut_store::RunStatus::Retrying;
    failed.disposition =
        ordinaut_store::Disposition::RetryAt(Utc::now() - ChronoDuration::hours(2));
    store.finish(&failed).await.unwrap();
    let b = store.lease_within_budgets("w", 1, LEASE).await.unwrap();
    assert_eq!(b.leases.len(), 1);
    assert_eq!((b.leases[0].id, b.leases[0].attempt), (first.id, 2));
    assert_eq!(
        store.agent_budget_usage("default", "bot").await.unwrap().1,
        2
    );

    // Its worker dies: once the lease has expired, the agent's other occurrence may start.
    sqlx::query("UPDATE due_work SET locked_until = now() - interval '1 second' WHERE id = $1")
        .bind(b.leases[0].id)
        .execute(store.pool())
        .await
        .unwrap();
    let c = store.lease_within_budgets("w2", 10, LEASE).await.unwrap();
    assert_eq!(c.leases.len(), 1, "{:?}", c.waits);
    assert_ne!(c.leases[0].id, b.leases[0].id);
    assert_eq!(
        store.agent_budget_usage("default", "bot").await.unwrap(),
        (1, 3, 0)
    );
}
