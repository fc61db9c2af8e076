//! The reconcile core under load: many concurrent reconciles (whose store calls are batched)
//! queue each Task's occurrences exactly once, and the periodic tick of an unchanged Task
//! writes nothing, neither to the store nor to the object's status.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use ordinaut_operator::TaskOutcome;
use ordinaut_test_support::operator::*;

fn hourly(i: usize) -> ordinaut_api::Task {
    let zone = ["UTC", "Europe/Berlin", "America/St_Johns", "Asia/Kathmandu"][i % 4];
    let spec = match i % 3 {
        0 => format!(
            "  schedule: {{cron: '{} * * * *', timezone: {zone}}}\n{ECHO}",
            i % 60
        ),
        1 => format!(
            "  schedule: {{rrule: 'FREQ=HOURLY;BYMINUTE={};BYSECOND=0', timezone: {zone}}}\n{ECHO}",
            i % 60
        ),
        _ => format!("  schedule: {{every: 1h}}\n{ECHO}"),
    };
    task(&format!("t{i}"), "2025-03-10T09:00:00Z", &spec)
}

async fn reconcile_all(h: &Harness, tasks: &[ordinaut_api::Task]) -> Vec<TaskOutcome> {
    let runs = tasks.iter().map(|t| h.rec.reconcile(t));
    futures::future::join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reconciles_queue_every_tasks_occurrences_exactly_once() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let tasks: Vec<_> = (0..300).map(hourly).collect();
    let outcomes = reconcile_all(&h, &tasks).await;
    for (t, o) in tasks.iter().zip(&outcomes) {
        // An hourly schedule: the next ten (past the 15-minute minimum) of the 24 h horizon.
        assert!(
            matches!(o, TaskOutcome::Ready { inserted: 10, .. }),
            "{o:?}"
        );
        assert_eq!(h.queued(t).await.len(), 10);
    }
    // Again, concurrently, at the same instant and later: nothing twice, the horizon moves.
    let again = reconcile_all(&h, &tasks).await;
    assert!(
        again
            .iter()
            .all(|o| matches!(o, TaskOutcome::Ready { inserted: 0, .. })),
        "{again:?}"
    );
    // A worker ran what was due; an hour later each Task queues the one new occurrence.
    sqlx::query("UPDATE due_work SET done_at = now(), attempt = 1 WHERE scheduled_for < $1")
        .bind(t("2025-03-10T11:05:00Z"))
        .execute(h.store.pool())
        .await
        .unwrap();
    h.advance(Duration::hours(1));
    let later = reconcile_all(&h, &tasks).await;
    assert!(
        later
            .iter()
            .all(|o| matches!(o, TaskOutcome::Ready { inserted: 1, .. })),
        "{later:?}"
    );
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM due_work")
        .fetch_one(h.store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 300 * 11);
    let (dupes,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM (SELECT task_uid, scheduled_for FROM due_work \
         GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(h.store.pool())
    .await
    .unwrap();
    assert_eq!(dupes, 0);
}

#[tokio::test]
async fn the_tick_of_an_unchanged_task_writes_nothing_until_something_is_due() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "hourly",
        "2025-03-10T09:00:00Z",
        &format!("  schedule: {{cron: '30 * * * *'}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let updated = |h: &Harness| {
        let pool = h.store.pool().clone();
        let uid = uid(&task);
        async move {
            let (at,): (chrono::DateTime<chrono::Utc>,) =
                sqlx::query_as("SELECT updated_at FROM tasks WHERE uid = $1")
                    .bind(uid)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            at
        }
    };
    let first = updated(&h).await;
    let status = task.status.clone();
    assert!(status.is_some());

    // 30 s later (the tick): nothing new is due within the horizon, nothing is written.
    h.sink.take_statuses();
    h.advance(Duration::seconds(30));
    let o = h.rec.reconcile(&task).await.unwrap();
    assert!(matches!(o, TaskOutcome::Ready { inserted: 0, .. }), "{o:?}");
    assert_eq!(updated(&h).await, first, "the projection was rewritten");
    assert!(
        h.sink.take_statuses().is_empty(),
        "the status was rewritten"
    );

    // At 10:31 the next run moves to 11:30 and 20:30 enters the horizon (the next ten): both
    // are written (10:30 is still within its start deadline, not missed).
    h.advance(Duration::seconds(25 * 60 + 30));
    let o = h.rec.reconcile(&task).await.unwrap();
    assert!(matches!(o, TaskOutcome::Ready { inserted: 1, .. }), "{o:?}");
    assert_ne!(updated(&h).await, first);
    let written = h.sink.take_statuses();
    assert_eq!(written.len(), 1);
    let status: ordinaut_api::TaskStatus =
        serde_json::from_value(written.into_values().next().unwrap()).unwrap();
    assert_eq!(status.next_run_time, Some(t("2025-03-10T11:30:00Z")));
    assert_eq!(h.queued(&task).await.len(), 11);
}
