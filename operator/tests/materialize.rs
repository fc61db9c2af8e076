//! The reconcile core against real PostgreSQL, with the Clock: materialization, schedule
//! changes, invalid specs, suspend/snooze/endAt/delete, run-now.
#![allow(clippy::unwrap_used)]

use chrono::Duration;
use ordinaut_operator::TaskOutcome;
use ordinaut_operator::validate::compile_schedule;
use ordinaut_test_support::operator::*;

/// The due_work rows of a new Task are exactly `Schedule::between` over the horizon (what
/// `ordinaut schedule preview` prints), and the status is Ready with the next run.
#[tokio::test]
async fn applying_a_task_queues_the_previewed_occurrences_for_the_horizon_and_reports_ready() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "report",
        "2025-03-10T09:00:00Z",
        &format!("  schedule: {{cron: '*/15 * * * *', timezone: Europe/Chisinau}}\n{ECHO}"),
    );
    let outcome = h.reconcile(&mut task).await;
    assert!(
        matches!(outcome, TaskOutcome::Ready { inserted: 10, .. }),
        "{outcome:?}"
    );

    let schedule = compile_schedule(&task.spec.schedule, t("2025-03-10T09:00:00Z"))
        .unwrap()
        .unwrap();
    let now = t("2025-03-10T10:05:00Z");
    let preview: Vec<_> = schedule
        .between(now, now + Duration::hours(24), 10)
        .unwrap()
        .into_iter()
        .map(|o| (o.to_utc(), "schedule".to_string()))
        .collect();
    assert_eq!(h.queued(&task).await, preview);

    let status = task.status.clone().unwrap();
    assert_eq!(ready(&task).0, "True");
    assert_eq!(ready(&task).1, "Valid");
    assert_eq!(status.next_run_time, Some(t("2025-03-10T10:15:00Z")));
    assert_eq!(
        status.schedule_summary.as_deref(),
        Some("cron */15 * * * *")
    );
    assert_eq!(status.observed_generation, Some(1));

    // The projection is what the worker reads: normalized spec, policy, priority.
    let p = h.store.get_task(uid(&task)).await.unwrap();
    assert_eq!(p.schedule_kind, "cron");
    assert_eq!(p.concurrency_policy, "Allow");
    assert_eq!(p.spec["schedule"]["catchup"]["policy"], "Latest");
    assert_eq!(p.next_run_at, Some(t("2025-03-10T10:15:00Z")));

    // Re-reconciling changes nothing.
    let again = h.reconcile(&mut task).await;
    assert!(
        matches!(
            again,
            TaskOutcome::Ready {
                inserted: 0,
                withdrawn: 0,
                ..
            }
        ),
        "{again:?}"
    );
}

/// A dense schedule queues every occurrence of the next 15 minutes (`min_horizon`, past
/// which it would stop at `max_occurrences`); a later reconcile (the recheck, at most ten
/// 30 s ticks later) tops it up from where it ended, before it runs out.
#[tokio::test]
async fn a_dense_horizon_holds_the_next_15_minutes_and_a_later_reconcile_tops_it_up() {
    let h = Harness::new("2025-03-10T10:00:30Z").await;
    let mut task = task(
        "often",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 1m}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let rows = h.queued(&task).await;
    assert_eq!(rows.len(), 15);
    assert_eq!(rows[0].0, t("2025-03-10T10:01:00Z"));
    assert_eq!(rows[14].0, t("2025-03-10T10:15:00Z"));
    let p = h.store.get_task(uid(&task)).await.unwrap();
    assert_eq!(p.materialized_until, Some(t("2025-03-10T10:15:00Z")));

    // A worker ran everything due; ten minutes later the recheck extends the horizon.
    sqlx::query("UPDATE due_work SET done_at = now(), attempt = 1")
        .execute(h.store.pool())
        .await
        .unwrap();
    h.advance(Duration::minutes(10));
    h.reconcile(&mut task).await;
    let rows = h.queued(&task).await;
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[0].0, t("2025-03-10T10:16:00Z"));
    assert_eq!(rows[9].0, t("2025-03-10T10:25:00Z"));
}

/// A new RRULE replaces the queued future of the old one in the same reconcile; a row of
/// the old schedule that a worker holds is left to finish.
#[tokio::test]
async fn changing_the_rrule_withdraws_old_future_rows_and_inserts_new_ones_in_one_reconcile() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "hourly",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{rrule: 'FREQ=HOURLY;BYMINUTE=0;BYSECOND=0'}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    assert_eq!(h.queued(&task).await.len(), 10);
    // A worker holds the 11:00 occurrence.
    sqlx::query(
        "UPDATE due_work SET locked_until = now() + interval '1 hour', locked_by = 'w', attempt = 1 \
         WHERE task_uid = $1 AND scheduled_for = $2",
    )
    .bind(uid(&task))
    .bind(t("2025-03-10T11:00:00Z"))
    .execute(h.store.pool())
    .await
    .unwrap();

    edit(
        &mut task,
        &format!("  schedule: {{rrule: 'FREQ=HOURLY;BYMINUTE=30;BYSECOND=0'}}\n{ECHO}"),
    );
    let outcome = h.reconcile(&mut task).await;
    assert!(
        matches!(
            outcome,
            TaskOutcome::Ready {
                withdrawn: 9,
                inserted: 10,
                ..
            }
        ),
        "{outcome:?}"
    );
    let all = h.store.task_occurrences(uid(&task)).await.unwrap();
    let leased: Vec<_> = all.iter().filter(|r| r.3).map(|r| r.0).collect();
    assert_eq!(leased, vec![t("2025-03-10T11:00:00Z")]);
    let queued = h.queued(&task).await;
    assert_eq!(queued.len(), 10);
    assert!(
        queued
            .iter()
            .all(|(at, _)| at.format("%M").to_string() == "30")
    );
    assert_eq!(task.status.as_ref().unwrap().observed_generation, Some(2));
    assert_eq!(
        task.status.as_ref().unwrap().next_run_time,
        Some(t("2025-03-10T10:30:00Z"))
    );
}

async fn assert_invalid_then_fixed(bad_spec: &str, reason: &str, path: &str) {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let good = format!("  schedule: {{every: 15m}}\n{ECHO}");
    let mut task = task("t", "2025-03-10T00:00:00Z", &good);
    h.reconcile(&mut task).await;
    assert_eq!(h.queued(&task).await.len(), 10);

    edit(&mut task, bad_spec);
    for _ in 0..3 {
        let outcome = h.reconcile(&mut task).await;
        assert_eq!(
            outcome,
            TaskOutcome::Invalid {
                reason: reason.into()
            }
        );
    }
    let (status, r, message) = ready(&task);
    assert_eq!((status.as_str(), r.as_str()), ("False", reason));
    assert!(message.contains(path), "{message}");
    assert_eq!(
        h.warnings(),
        vec![reason.to_string()],
        "one Warning, not one per reconcile"
    );
    assert!(h.queued(&task).await.is_empty(), "queued rows withdrawn");
    assert_eq!(task.status.as_ref().unwrap().next_run_time, None);

    edit(&mut task, &good);
    let outcome = h.reconcile(&mut task).await;
    assert!(matches!(outcome, TaskOutcome::Ready { .. }), "{outcome:?}");
    assert_eq!(ready(&task).0, "True");
    assert_eq!(h.queued(&task).await.len(), 10);
    assert_eq!(h.warnings().len(), 1);
}

#[tokio::test]
async fn an_invalid_rrule_sets_ready_false_with_the_field_one_warning_no_rows_and_a_fix_clears_it()
{
    assert_invalid_then_fixed(
        &format!("  schedule: {{rrule: 'FREQ=HOURLY;BYMINUTE=75'}}\n{ECHO}"),
        "InvalidSchedule",
        "spec.schedule.rrule",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_timezone_sets_ready_false_with_the_field_and_a_fix_clears_it() {
    assert_invalid_then_fixed(
        &format!("  schedule: {{every: 15m, timezone: Europe/Atlantis}}\n{ECHO}"),
        "InvalidSchedule",
        "spec.schedule.timezone",
    )
    .await;
}

#[tokio::test]
async fn a_missing_pipeline_sets_ready_false_and_creating_it_makes_the_task_ready() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        "  schedule: {every: 15m}\n  pipelineRef: briefing\n",
    );
    for _ in 0..2 {
        let outcome = h.reconcile(&mut task).await;
        assert_eq!(
            outcome,
            TaskOutcome::Invalid {
                reason: "PipelineNotFound".into()
            }
        );
    }
    let (_, _, message) = ready(&task);
    assert!(
        message.contains("spec.pipelineRef") && message.contains("briefing"),
        "{message}"
    );
    assert_eq!(h.warnings(), vec!["PipelineNotFound".to_string()]);
    assert!(h.queued(&task).await.is_empty());

    h.objects.put_pipeline(
        serde_yaml::from_str(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: briefing, namespace: default}\nspec:\n  steps: [{id: a, uses: core.echo, with: {msg: v1}}]\n",
        )
        .unwrap(),
    );
    h.reconcile(&mut task).await;
    assert_eq!(ready(&task).0, "True");
    assert_eq!(h.queued(&task).await.len(), 10);
    // The worker sees the pipeline inlined.
    let p = h.store.get_task(uid(&task)).await.unwrap();
    assert_eq!(p.spec["pipeline"]["steps"][0]["with"]["msg"], "v1");
    assert!(p.spec.get("pipelineRef").is_none());

    // A Pipeline change reaches the projection at the next reconcile of the Task.
    h.objects.put_pipeline(
        serde_yaml::from_str(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: briefing, namespace: default}\nspec:\n  steps: [{id: a, uses: core.echo, with: {msg: v2}}]\n",
        )
        .unwrap(),
    );
    h.reconcile(&mut task).await;
    let p = h.store.get_task(uid(&task)).await.unwrap();
    assert_eq!(p.spec["pipeline"]["steps"][0]["with"]["msg"], "v2");
}

#[tokio::test]
async fn a_missing_agent_sets_ready_false_with_agent_not_found() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n  agentRef: ghost\n{ECHO}"),
    );
    let outcome = h.reconcile(&mut task).await;
    assert_eq!(
        outcome,
        TaskOutcome::Invalid {
            reason: "AgentNotFound".into()
        }
    );
    assert!(ready(&task).2.contains("spec.agentRef"));
}

/// Suspend withdraws the queue and adds nothing; resuming does not count the suspended time
/// as missed.
#[tokio::test]
async fn a_suspended_task_gets_no_new_rows_and_resuming_counts_nothing_missed() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let spec = |suspend: bool| format!("  schedule: {{every: 15m}}\n  suspend: {suspend}\n{ECHO}");
    let mut task = task("t", "2025-03-10T00:00:00Z", &spec(false));
    h.reconcile(&mut task).await;
    edit(&mut task, &spec(true));
    h.reconcile(&mut task).await;
    assert!(h.queued(&task).await.is_empty());
    assert_eq!(ready(&task).1, "Suspended");
    assert_eq!(task.status.as_ref().unwrap().next_run_time, None);
    h.advance(Duration::hours(3));
    h.reconcile(&mut task).await;
    assert!(h.queued(&task).await.is_empty());

    edit(&mut task, &spec(false));
    h.reconcile(&mut task).await;
    assert_eq!(task.status.as_ref().unwrap().counters.missed, 0);
    assert_eq!(h.count(&task, "catchup").await, 0);
    assert_eq!(h.queued(&task).await[0].0, t("2025-03-10T13:15:00Z"));
}

#[tokio::test]
async fn a_snoozed_task_skips_occurrences_until_snooze_until_then_resumes() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    edit(
        &mut task,
        &format!("  schedule: {{every: 15m}}\n  snoozeUntil: '2025-03-10T12:00:00Z'\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let rows = h.queued(&task).await;
    assert_eq!(rows[0].0, t("2025-03-10T12:00:00Z"));
    assert_eq!(ready(&task).1, "Snoozed");
    assert_eq!(
        task.status.as_ref().unwrap().next_run_time,
        Some(t("2025-03-10T12:00:00Z"))
    );
    h.advance(Duration::hours(3));
    h.reconcile(&mut task).await;
    assert_eq!(ready(&task).1, "Valid");
}

#[tokio::test]
async fn no_rows_are_queued_after_end_at_and_the_schedule_reports_exhausted() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m, endAt: '2025-03-10T11:00:00Z'}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    let rows: Vec<_> = h.queued(&task).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        rows,
        vec![
            t("2025-03-10T10:15:00Z"),
            t("2025-03-10T10:30:00Z"),
            t("2025-03-10T10:45:00Z"),
            t("2025-03-10T11:00:00Z")
        ]
    );
    // Past endAt: nothing new, and the Task says so.
    sqlx::query("UPDATE due_work SET done_at = now()")
        .execute(h.store.pool())
        .await
        .unwrap();
    h.advance(Duration::hours(2));
    let outcome = h.reconcile(&mut task).await;
    assert!(
        matches!(
            outcome,
            TaskOutcome::Ready {
                inserted: 0,
                next_run_time: None,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(ready(&task).1, "ScheduleExhausted");
    assert_eq!(
        h.store.task_occurrences(uid(&task)).await.unwrap().len(),
        4,
        "history kept"
    );
}

/// Deleting withdraws queued rows, keeps run history, and is idempotent.
#[tokio::test]
async fn deleting_a_task_withdraws_its_queue_and_keeps_history() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    sqlx::query("UPDATE due_work SET done_at = now(), attempt = 1 WHERE scheduled_for = $1")
        .bind(t("2025-03-10T10:15:00Z"))
        .execute(h.store.pool())
        .await
        .unwrap();
    assert_eq!(h.rec.cleanup(&task).await.unwrap(), 9);
    assert_eq!(h.rec.cleanup(&task).await.unwrap(), 0, "idempotent");
    let rows = h.store.task_occurrences(uid(&task)).await.unwrap();
    assert_eq!(rows.len(), 1, "the finished row stays");
    assert!(
        h.store.find_task("default", "t").await.is_err(),
        "projection marked deleted"
    );
}

/// A new annotation value queues one manual run; re-reconciles and restarts queue none.
#[tokio::test]
async fn run_now_queues_one_manual_occurrence_per_new_annotation_value() {
    let h = Harness::new("2025-03-10T10:05:00Z").await;
    let mut task = task(
        "t",
        "2025-03-10T00:00:00Z",
        &format!("  schedule: {{every: 1h}}\n{ECHO}"),
    );
    h.reconcile(&mut task).await;
    assert_eq!(h.count(&task, "manual").await, 0);

    task.metadata.annotations =
        Some([("ordinaut.dev/run-now".to_string(), "a".to_string())].into());
    h.reconcile(&mut task).await;
    h.advance(Duration::seconds(5));
    h.reconcile(&mut task).await;
    // Even when the status write was lost, the store remembers what was handled.
    task.status.as_mut().unwrap().handled_run_now = None;
    h.reconcile(&mut task).await;
    assert_eq!(h.count(&task, "manual").await, 1);
    assert_eq!(
        task.status.as_ref().unwrap().handled_run_now.as_deref(),
        Some("a")
    );
    let manual: Vec<_> = h
        .queued(&task)
        .await
        .into_iter()
        .filter(|r| r.1 == "manual")
        .collect();
    assert_eq!(
        manual[0].0,
        t("2025-03-10T10:05:00Z"),
        "scheduled for now, by the Clock"
    );

    task.metadata.annotations =
        Some([("ordinaut.dev/run-now".to_string(), "b".to_string())].into());
    h.reconcile(&mut task).await;
    h.reconcile(&mut task).await;
    assert_eq!(h.count(&task, "manual").await, 2);
    assert_eq!(
        task.status.as_ref().unwrap().handled_run_now.as_deref(),
        Some("b")
    );
}
