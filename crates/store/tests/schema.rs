//! Migrations under concurrency, NOTIFY on queued work, and the lease query's plan.
#![allow(clippy::unwrap_used)]

use chrono::{Duration as ChronoDuration, Utc};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{NewOccurrence, Store, Wakeup};
use ordinaut_test_support::store::*;
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;

const CHILD_ENV: &str = "ORDINAUT_MIGRATE_CHILD_URL";

/// Run as a separate process by `two_processes_applying_migrations_at_once_apply_them_once`.
#[tokio::test]
#[ignore = "child process of two_processes_applying_migrations_at_once_apply_them_once; runs only when that test starts it"]
async fn migrate_child_process() {
    let url = std::env::var(CHILD_ENV).expect("started without its database URL");
    let store = Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
}

#[tokio::test]
async fn two_processes_applying_migrations_at_once_apply_them_once() {
    let db = TestDb::empty().await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "migrate_child_process",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                ])
                .env(CHILD_ENV, &db.url)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        assert!(status.success(), "a migrating process failed: {status}");
    }
    let store = Store::connect(&db.url, 2).await.unwrap();
    let applied = count(
        &store,
        "SELECT count(*) FROM _sqlx_migrations WHERE success",
    )
    .await;
    assert_eq!(applied as usize, ordinaut_store::MIGRATOR.iter().count());
    assert_eq!(
        count(&store, "SELECT count(*) FROM _sqlx_migrations").await,
        applied
    );
    // And the schema is usable.
    store.upsert_task(&task("after-migrate")).await.unwrap();
    // Applying again is a no-op.
    store.migrate().await.unwrap();
}

/// A row inserted into due_work wakes a task waiting on the notify channel, with its run_at.
#[tokio::test]
async fn inserting_due_work_wakes_a_waiting_listener() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("wake");
    store.upsert_task(&t).await.unwrap();
    let mut listener = store.listen_due_work().await.unwrap();
    assert_eq!(
        listener.wait(Duration::from_millis(50)).await.unwrap(),
        Wakeup::TimedOut
    );

    let waiter = tokio::spawn(async move { listener.wait(Duration::from_secs(10)).await.unwrap() });
    let when = Utc::now() + ChronoDuration::seconds(30);
    let when = when - ChronoDuration::nanoseconds(when.timestamp_subsec_nanos() as i64 % 1000);
    store
        .insert_occurrences(&[
            NewOccurrence::scheduled(t.uid, when + ChronoDuration::seconds(5)),
            NewOccurrence::scheduled(t.uid, when),
        ])
        .await
        .unwrap();
    match waiter.await.unwrap() {
        Wakeup::Queued(Some(earliest)) => assert_eq!(earliest, when),
        other => panic!("expected a wakeup with the earliest run_at, got {other:?}"),
    }
}

/// The lease query reads the partial index `due_work_lease`, not the table, even with many
/// finished and future rows around.
#[tokio::test]
async fn lease_query_uses_the_partial_index() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("plan");
    store.upsert_task(&t).await.unwrap();
    let now = Utc::now();
    // 20,000 future rows, 5,000 due rows of which 4,000 are then finished.
    let rows: Vec<_> = (0..25_000i64)
        .map(|i| NewOccurrence::scheduled(t.uid, now + ChronoDuration::seconds(i - 5_000)))
        .collect();
    store.insert_occurrences(&rows).await.unwrap();
    sqlx::query(
        "UPDATE due_work SET done_at = now(), attempt = 1 \
         WHERE id IN (SELECT id FROM due_work ORDER BY scheduled_for LIMIT 4000)",
    )
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::raw_sql("ANALYZE due_work")
        .execute(store.pool())
        .await
        .unwrap();

    let sql = format!("EXPLAIN {}", ordinaut_store::LEASE_SQL);
    let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind("w")
        .bind(100i64)
        .bind(60.0f64)
        .bind(0.2f64)
        .fetch_all(store.pool())
        .await
        .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|(l,)| l).collect();
    let text = plan.join("\n");
    println!("{text}");
    assert!(
        text.contains("due_work_lease"),
        "lease query does not use the partial index:\n{text}"
    );
    assert!(
        !text.contains("Seq Scan on due_work"),
        "lease query scans due_work:\n{text}"
    );
}

/// A bulk of inserted occurrences refreshes due_work's planner statistics at once (without
/// them the planner reads queued rows through the wrong partial index).
#[tokio::test]
async fn bulk_inserts_refresh_due_work_statistics() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let t = task("bulk-stats");
    store.upsert_task(&t).await.unwrap();
    let reltuples = || async {
        let (n,): (f32,) =
            sqlx::query_as("SELECT reltuples FROM pg_class WHERE relname = 'due_work'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        n
    };
    assert!(reltuples().await < 0.0, "a new table has no statistics");
    let now = Utc::now();
    let rows: Vec<_> = (0..6_000i64)
        .map(|i| NewOccurrence::scheduled(t.uid, now + ChronoDuration::seconds(i)))
        .collect();
    store.insert_occurrences(&rows).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reltuples().await < 6_000.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "due_work was not analyzed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Upgrading to migration 0015 moves every step record into its run's `steps` array and the
/// `step_runs` view shows them as before: same order, same values, absent input and error as
/// SQL NULL, a JSON null output kept as JSON null; a run without steps has none.
#[tokio::test]
async fn migration_0015_moves_step_rows_into_their_runs() {
    let db = TestDb::empty().await.unwrap();
    let store = Store::connect(&db.url, 4).await.unwrap();
    ordinaut_store::MIGRATOR
        .run_to(14, store.pool())
        .await
        .unwrap();
    let task = Uuid::now_v7();
    let (with_steps, without) = (Uuid::now_v7(), Uuid::now_v7());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tasks (uid, namespace, name, generation, spec, schedule_kind, schedule) \
             VALUES ('{task}', 'ns', 't', 1, '{{}}', 'every', '1m'); \
         INSERT INTO task_runs (id, task_uid, scheduled_for, trigger, attempt, status, \
             started_at, finished_at, worker) VALUES \
             ('{with_steps}', '{task}', now(), 'schedule', 1, 'failed', now(), now(), 'w'), \
             ('{without}', '{task}', now(), 'schedule', 1, 'skipped', now(), now(), 'w'); \
         INSERT INTO step_runs (run_id, idx, step_id, uses, status, attempts, input, output, \
             error, started_at, finished_at) VALUES \
             ('{with_steps}', 1, 'second', 'core.fail', 'failed', 3, '{{\"a\": [1, \"x\"]}}', \
                 NULL, 'boom: it \"broke\"', '2026-03-29 01:59:59.123456+00', \
                 '2026-03-29 02:00:00.654321+00'), \
             ('{with_steps}', 0, 'first', 'core.echo', 'succeeded', 1, NULL, 'null', NULL, \
                 '2026-03-29 01:00:00+00', '2026-03-29 01:00:00.000001+00');"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store.migrate().await.unwrap();

    let (_, steps) = store.get_run(with_steps).await.unwrap().unwrap();
    let ids: Vec<&str> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(ids, ["first", "second"], "run order kept");
    assert_eq!(steps[0].input, None);
    assert_eq!(steps[0].output, Some(serde_json::Value::Null));
    assert_eq!(steps[0].error, None);
    assert_eq!(steps[1].input, Some(serde_json::json!({"a": [1, "x"]})));
    assert_eq!(steps[1].output, None);
    assert_eq!(steps[1].error.as_deref(), Some("boom: it \"broke\""));
    assert_eq!(steps[1].attempts, 3);
    assert_eq!(
        steps[1].started_at.to_rfc3339(),
        "2026-03-29T01:59:59.123456+00:00"
    );
    assert_eq!(
        steps[0].finished_at.to_rfc3339(),
        "2026-03-29T01:00:00.000001+00:00"
    );
    let (_, none) = store.get_run(without).await.unwrap().unwrap();
    assert!(none.is_empty());
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM step_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

/// Upgrading to migration 0016 keeps every outbox event, published or not, with its id,
/// type, stream, Task and payload: the relay's read and the `outbox` view show them as
/// before, and new events take later ids.
#[tokio::test]
async fn migration_0016_keeps_outbox_events_and_their_ids() {
    let db = TestDb::empty().await.unwrap();
    let store = Store::connect(&db.url, 4).await.unwrap();
    ordinaut_store::MIGRATOR
        .run_to(15, store.pool())
        .await
        .unwrap();
    let task = Uuid::now_v7();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO outbox (stream, event_type, task_uid, payload, published_at) VALUES \
             ('ordinaut:events', 'run.succeeded', '{task}', '{{\"n\": 1, \"z\": null}}', now()), \
             ('ordinaut:topic:t', 'topic.event', NULL, '[1, \"two\"]', NULL), \
             ('ordinaut:events', 'run.failed', '{task}', '{{\"error\": \"x\"}}', NULL);"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    let before: Vec<(i64,)> = sqlx::query_as("SELECT id FROM outbox ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    store.migrate().await.unwrap();

    let waiting = store.unpublished_events(10).await.unwrap();
    assert_eq!(waiting.len(), 2);
    assert_eq!(waiting[0].id, before[1].0);
    assert_eq!(waiting[0].stream, "ordinaut:topic:t");
    assert_eq!(waiting[0].event_type, "topic.event");
    assert_eq!(waiting[0].task_uid, None);
    assert_eq!(waiting[0].payload, serde_json::json!([1, "two"]));
    assert_eq!(waiting[1].id, before[2].0);
    assert_eq!(waiting[1].task_uid, Some(task));
    assert_eq!(waiting[1].payload, serde_json::json!({"error": "x"}));
    assert_eq!(store.outbox_backlog().await.unwrap(), 2);
    let viewed: Vec<(i64, String, Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT id, event_type, task_uid, published_at IS NOT NULL FROM outbox ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        viewed,
        vec![
            (before[0].0, "run.succeeded".into(), Some(task), true),
            (before[1].0, "topic.event".into(), None, false),
            (before[2].0, "run.failed".into(), Some(task), false),
        ]
    );
    store
        .append_events(
            None,
            &[ordinaut_store::OutboxEvent::new(
                "later",
                serde_json::json!({}),
            )],
        )
        .await
        .unwrap();
    let all = store.unpublished_events(10).await.unwrap();
    assert_eq!(all.len(), 3);
    assert!(all[2].id > before[2].0, "new events take later ids");
}
