//! A Task's occurrences over any window by the scheduler's own code (the timeline's marks):
//! the schedule compiled exactly as the operator compiles it, anchored where the operator
//! anchors it, with the same suspend, `startAt`, snooze and `endAt` rules as `get_task`'s
//! next runs.

use chrono::{DateTime, TimeDelta, Utc};
use ordinaut_api::TaskSpec;

use crate::ops::Ops;
use crate::ops::types::TaskView;

/// The instant `every` schedules count from: the object's creation, as
/// `Ops::created_at` finds it (the write path's object, else the dev database, else the
/// projection's first write).
async fn anchor(ops: &Ops, t: &TaskView) -> Option<DateTime<Utc>> {
    if let Ok(Some(task)) = ops.writer.get(&t.namespace, &t.name).await
        && let Some(c) = task
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(ordinaut_operator::status::chrono_time)
    {
        return Some(c);
    }
    let row = ops.store.task_row(&t.namespace, &t.name).await.ok()??;
    match ops.store.dev_created_at(row.projection.uid).await {
        Ok(Some(c)) => Some(c),
        _ => Some(row.created_at),
    }
}

/// The Task's occurrences in `(from, to]`, at most `max`.
pub async fn between(
    ops: &Ops,
    t: &TaskView,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Vec<DateTime<Utc>> {
    let Ok(spec) = serde_json::from_value::<TaskSpec>(t.spec.clone()) else {
        return Vec::new();
    };
    if spec.suspend || from >= to {
        return Vec::new();
    }
    let Some(created) = anchor(ops, t).await else {
        return Vec::new();
    };
    // Expanding the schedule is CPU work: off the async threads that serve the pages.
    ordinaut_operator::offload::cpu(move || within(&spec, created, from, to, max)).await
}

/// [`between`] once the anchor is known (pure).
pub fn within(
    spec: &TaskSpec,
    created: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: usize,
) -> Vec<DateTime<Utc>> {
    let Ok(Some(schedule)) = ordinaut_operator::validate::compile_schedule(&spec.schedule, created)
    else {
        return Vec::new();
    };
    let mut after = from;
    for bound in [spec.schedule.start_at, spec.snooze_until]
        .into_iter()
        .flatten()
    {
        after = after.max(bound - TimeDelta::microseconds(1));
    }
    schedule
        .iter_after(after)
        .filter_map(Result::ok)
        .map(|t| t.to_utc())
        .take_while(|t| *t <= to && spec.schedule.end_at.is_none_or(|end| *t <= end))
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_daily_cron_across_the_spring_change_keeps_its_wall_time() {
        let spec: TaskSpec = serde_json::from_value(serde_json::json!({
            "schedule": {"cron": "30 8 * * *", "timezone": "Europe/Berlin"},
            "pipelineRef": "p",
        }))
        .unwrap();
        let created = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
        let from = Utc.with_ymd_and_hms(2027, 3, 27, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2027, 3, 29, 0, 0, 0).unwrap();
        let got = within(&spec, created, from, to, 10);
        // 08:30 CET (07:30 UTC) before the change, 08:30 CEST (06:30 UTC) after it.
        assert_eq!(
            got,
            vec![
                Utc.with_ymd_and_hms(2027, 3, 27, 7, 30, 0).unwrap(),
                Utc.with_ymd_and_hms(2027, 3, 28, 6, 30, 0).unwrap(),
            ]
        );
    }
}
