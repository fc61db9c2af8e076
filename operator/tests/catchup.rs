//! Catch-up after downtime, simulated with the Clock: a 15-minute schedule and a 2-hour
//! outage leave 8 missed occurrences; the Task's policy decides how many still run.
//! Both outages are covered: workers down (rows queued but past their start deadline) and
//! the operator down past its horizon (rows never inserted).
#![allow(clippy::unwrap_used)]

use std::time::Duration as StdDuration;

use chrono::Duration;
use ordinaut_api::Task;
use ordinaut_operator::{MaterializeConfig, TaskOutcome};
use ordinaut_test_support::operator::*;

fn spec(catchup: &str) -> String {
    format!("  schedule: {{cron: '*/15 * * * *', catchup: {catchup}}}\n{ECHO}")
}

#[derive(Clone, Copy)]
enum Outage {
    /// Rows were queued for the whole outage; no worker took them.
    Workers,
    /// The operator's horizon (1 h) ended during the outage: rows were never inserted.
    Operator,
}

/// Runs a 2-hour outage from 10:05 to 12:05 and returns the Task and how many occurrences
/// a worker can lease afterwards (the runs that will happen).
async fn outage(catchup: &str, kind: Outage) -> (Harness, Task, usize) {
    let config = match kind {
        Outage::Workers => MaterializeConfig::default(),
        Outage::Operator => MaterializeConfig {
            horizon: StdDuration::from_secs(3600),
            ..MaterializeConfig::default()
        },
    };
    let h = Harness::with_config("2024-03-10T10:05:00Z", config).await;
    let mut task = task("briefing", "2024-03-10T00:00:00Z", &spec(catchup));
    h.reconcile(&mut task).await;
    h.advance(Duration::hours(2));
    let outcome = h.reconcile(&mut task).await;
    assert!(matches!(outcome, TaskOutcome::Ready { .. }), "{outcome:?}");
    // Reconciling again (a retry, the next tick) counts nothing twice.
    h.reconcile(&mut task).await;
    // The clock is in the past of the database's now(): every scheduled row is past its
    // start deadline, so what a worker can lease is exactly what catch-up queued.
    let leased = h
        .store
        .lease("worker", 1000, StdDuration::from_secs(60))
        .await
        .unwrap();
    assert!(
        leased.iter().all(|l| l.trigger.as_str() == "catchup"),
        "{leased:?}"
    );
    (h, task, leased.len())
}

async fn missed_events(h: &Harness) -> i64 {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM outbox WHERE event_type = 'run.missed'")
            .fetch_one(h.store.pool())
            .await
            .unwrap();
    n
}

async fn check(catchup: &str, runs: usize, missed: i64) {
    for kind in [Outage::Workers, Outage::Operator] {
        let (h, task, leased) = outage(catchup, kind).await;
        assert_eq!(leased, runs, "runs after the outage with catchup {catchup}");
        let status = task.status.clone().unwrap();
        assert_eq!(
            status.counters.missed, missed,
            "missed counted in status ({catchup})"
        );
        assert_eq!(
            missed_events(&h).await,
            missed,
            "one run.missed event per missed occurrence"
        );
        assert_eq!(status.next_run_time, Some(t("2024-03-10T12:15:00Z")));
        assert!(h.count(&task, "schedule").await > 0, "the schedule goes on");
    }
}

#[tokio::test]
async fn downtime_with_catchup_none_runs_nothing_and_counts_8_missed() {
    check("{policy: None}", 0, 8).await;
}

#[tokio::test]
async fn downtime_with_catchup_latest_runs_exactly_the_latest_missed_occurrence() {
    check("{policy: Latest}", 1, 7).await;
    let (h, task, _) = outage("{}", Outage::Workers).await;
    // Latest is the default; the one it runs is 12:00, due now.
    let rows = h.store.task_occurrences(uid(&task)).await.unwrap();
    let catchup: Vec<_> = rows.iter().filter(|r| r.2 == "catchup").collect();
    assert_eq!(catchup.len(), 1);
    assert_eq!(catchup[0].0, t("2024-03-10T12:00:00Z"));
    assert_eq!(catchup[0].1, t("2024-03-10T12:05:00Z"));
    assert_eq!(task.status.unwrap().counters.missed, 7);
}

#[tokio::test]
async fn downtime_with_catchup_all_and_max_runs_3_runs_3() {
    check("{policy: All, maxRuns: 3}", 3, 5).await;
}

#[tokio::test]
async fn catchup_all_runs_only_what_falls_inside_the_window() {
    // A 1-hour window (the default) keeps 11:15, 11:30, 11:45 and 12:00.
    check("{policy: All}", 4, 4).await;
}
