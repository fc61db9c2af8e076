//! History retention: pruning removes what the limits do not keep and keeps the rest.
#![allow(clippy::unwrap_used)]

use ordinaut_store::Store;
use ordinaut_store::retention::Retention;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::store::*;
use serde_json::json;
use uuid::Uuid;

/// Inserts a finished run of `task` with `status`, finished `days_ago` days (+ `n` seconds) ago.
async fn run(store: &Store, task: Uuid, status: &str, days_ago: i64, n: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO task_runs (id, task_uid, scheduled_for, trigger, attempt, status, \
             started_at, finished_at, worker) \
         VALUES ($1, $2, now(), 'schedule', 1, $3, \
             now() - make_interval(days => $4::int4, secs => $5::float8), \
             now() - make_interval(days => $4::int4, secs => $5::float8), 'w')",
    )
    .bind(id)
    .bind(task)
    .bind(status)
    .bind(days_ago as i32)
    .bind(n as f64)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "UPDATE task_runs SET steps = jsonb_build_array(jsonb_build_object( \
             'step_id', 's', 'uses', 'core.echo', 'status', 'succeeded', \
             'started_at', now(), 'finished_at', now())) WHERE id = $1",
    )
    .bind(id)
    .execute(store.pool())
    .await
    .unwrap();
    id
}

async fn exec(store: &Store, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn pruning_keeps_each_tasks_newest_runs_and_recent_history_and_removes_the_rest() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let mut limited = task("limited");
    limited.spec = json!({"schedule": {"every": "1m"}, "successfulRunsHistoryLimit": 2,
                          "failedRunsHistoryLimit": 1});
    store.upsert_task(&limited).await.unwrap();
    let plain = task_with_due_rows(&store, "plain", 2).await;
    // limited: 5 succeeded (newest first: n = 0..5) and 3 failed, all recent.
    let mut newest_ok = Vec::new();
    for n in 0..5 {
        let id = run(&store, limited.uid, "succeeded", 0, n).await;
        if n < 2 {
            newest_ok.push(id);
        }
    }
    let newest_failed = run(&store, limited.uid, "failed", 0, 0).await;
    run(&store, limited.uid, "failed", 0, 1).await;
    run(&store, limited.uid, "skipped", 0, 2).await;
    // plain (defaults: 3 kept): 4 recent succeeded and one 40 days old.
    for n in 0..4 {
        run(&store, plain.uid, "succeeded", 0, n).await;
    }
    run(&store, plain.uid, "succeeded", 40, 0).await;
    // One finished occurrence 40 days old, one still queued from then, one finished now.
    exec(&store, &format!(
        "UPDATE due_work SET done_at = now() - interval '40 days', scheduled_for = scheduled_for \
         WHERE id = (SELECT min(id) FROM due_work WHERE task_uid = '{}')", plain.uid)).await;
    // Outbox: relayed long ago, relayed just now, never relayed (old).
    exec(
        &store,
        "INSERT INTO outbox_rows (id, ids, events, created_at, published_at) \
         OVERRIDING SYSTEM VALUE \
         SELECT n, ARRAY[n], json_build_array(json_build_object('type', t, 'payload', '{}'::json)), \
                c, p \
         FROM (SELECT nextval('outbox_id_seq') AS n, t, c, p FROM (VALUES \
             (1, 'old', now() - interval '3 days', now() - interval '3 days'), \
             (2, 'new', now(), now()), \
             (3, 'waiting', now() - interval '3 days', NULL)) v(o, t, c, p) ORDER BY o) r",
    )
    .await;
    exec(
        &store,
        "INSERT INTO audit_log (at, actor, action, allowed) VALUES \
        (now() - interval '100 days', 'a', 'old', true), (now(), 'a', 'new', true)",
    )
    .await;

    let retention = Retention {
        successful_per_task: 3,
        failed_per_task: 3,
        batch: 2,
        ..Retention::default()
    };
    let mut passes = 0;
    loop {
        let pruned = store.prune(&retention).await.unwrap();
        passes += 1;
        if !pruned.more(retention.batch) {
            break;
        }
        assert!(passes < 20, "pruning does not converge");
    }
    assert!(passes > 1, "small batches: more than one pass was needed");

    let kept_ok: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM task_runs WHERE task_uid = $1 AND status = 'succeeded' ORDER BY finished_at DESC",
    )
    .bind(limited.uid)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(
        kept_ok.into_iter().map(|(i,)| i).collect::<Vec<_>>(),
        newest_ok
    );
    let kept_failed: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM task_runs WHERE task_uid = $1 AND status <> 'succeeded'")
            .bind(limited.uid)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(kept_failed, vec![(newest_failed,)]);
    let plain_sql = format!(
        "SELECT count(*) FROM task_runs WHERE task_uid = '{}'",
        plain.uid
    );
    assert_eq!(count(&store, &plain_sql).await, 3);
    // Steps went with their runs.
    assert_eq!(
        count(&store, "SELECT count(*) FROM step_runs").await,
        2 + 1 + 3
    );
    assert_eq!(
        count(&store, "SELECT count(*) FROM due_work").await,
        1,
        "the old finished occurrence went, the queued one stayed"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM due_work WHERE done_at IS NULL"
        )
        .await,
        1
    );
    let events: Vec<(String,)> = sqlx::query_as("SELECT event_type FROM outbox ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(events, vec![("new".to_string(),), ("waiting".to_string(),)]);
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM audit_log WHERE action = 'new'"
        )
        .await,
        1
    );
    assert_eq!(count(&store, "SELECT count(*) FROM audit_log").await, 1);
    // The Task's status still counts every run since it was created.
    let summary = store.run_summary(limited.uid).await.unwrap();
    assert_eq!(
        (summary.succeeded, summary.failed, summary.skipped),
        (5, 2, 1)
    );
    let sources = store.status_sources(&[plain.uid]).await;
    assert_eq!(sources[0].as_ref().unwrap().runs.succeeded, 5);
}

/// A Task's own age limit (`runsHistoryMaxAge`) prunes its runs older than that although the
/// count limits and the global age would keep them; other Tasks keep theirs, and a value not
/// of the CRD's form limits nothing (the operator reports it; pruning never fails on it).
#[tokio::test]
async fn a_tasks_own_age_limit_prunes_its_older_runs_only() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let mut aged = task("aged");
    aged.spec = json!({"schedule": {"every": "1m"}, "runsHistoryMaxAge": "1d12h"});
    let mut odd = task("odd");
    odd.spec = json!({"schedule": {"every": "1m"}, "runsHistoryMaxAge": "forever"});
    let plain = task("plain");
    for t in [&aged, &odd, &plain] {
        store.upsert_task(t).await.unwrap();
    }
    let mut kept = Vec::new();
    for t in [&aged, &odd, &plain] {
        for days in [0, 1, 3, 5] {
            let id = run(&store, t.uid, "succeeded", days, 0).await;
            if t.uid == aged.uid && days <= 1 {
                kept.push(id);
            }
        }
        run(&store, t.uid, "failed", 2, 0).await;
    }
    let retention = Retention::default();
    for _ in 0..5 {
        if !store.prune(&retention).await.unwrap().more(retention.batch) {
            break;
        }
    }
    let left: Vec<(Uuid,)> =
        sqlx::query_as("SELECT id FROM task_runs WHERE task_uid = $1 ORDER BY finished_at DESC")
            .bind(aged.uid)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(left.into_iter().map(|(i,)| i).collect::<Vec<_>>(), kept);
    for t in [&odd, &plain] {
        let sql = format!(
            "SELECT count(*) FROM task_runs WHERE task_uid = '{}'",
            t.uid
        );
        assert_eq!(count(&store, &sql).await, 5, "{}", t.name);
    }
    // The pruned runs still count in the Task's status.
    let summary = store.run_summary(aged.uid).await.unwrap();
    assert_eq!((summary.succeeded, summary.failed), (4, 1));
    assert_eq!(
        count(&store, "SELECT count(*) FROM step_runs").await,
        2 + 5 + 5
    );
}

/// Count limits are applied to a window of Tasks per call that moves on and wraps around:
/// with more Tasks than one window, repeated calls still reach every Task.
#[tokio::test]
async fn count_limits_reach_every_task_across_windows() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let n = ordinaut_store::retention::TASKS_PER_CALL as usize + 20;
    let mut uids = Vec::with_capacity(n);
    for i in 0..n {
        let t = task(&format!("t{i}"));
        uids.push(t.uid);
        store.upsert_task(&t).await.unwrap();
    }
    // Two recent succeeded runs per Task (bulk insert), one over the limit of 1.
    sqlx::query(
        "INSERT INTO task_runs (id, task_uid, scheduled_for, trigger, attempt, status, \
             started_at, finished_at, worker) \
         SELECT gen_random_uuid(), u, now(), 'schedule', 1, 'succeeded', \
             now() - make_interval(secs => k), now() - make_interval(secs => k), 'w' \
         FROM unnest($1::uuid[]) u, generate_series(1, 2) k",
    )
    .bind(&uids)
    .execute(store.pool())
    .await
    .unwrap();
    let retention = Retention {
        successful_per_task: 1,
        ..Retention::default()
    };
    let mut pruned = 0;
    for _ in 0..10 {
        pruned += store.prune(&retention).await.unwrap().runs;
        if pruned >= n as u64 {
            break;
        }
    }
    assert_eq!(pruned, n as u64);
    assert_eq!(
        count(&store, "SELECT count(*) FROM task_runs").await,
        n as i64
    );
}
