//! Status (pure): conditions with stable `lastTransitionTime`, the Ready condition of a
//! Task from its validation and plan, and the full `TaskStatus` composed from the
//! reconcile-owned part (kept in the store's status mirror) and the run summary.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use ordinaut_api::TaskStatus;
use ordinaut_api::constants::{condition, reason, run_status};
use ordinaut_store::RunSummary;

use crate::plan::ScheduleState;
use crate::validate::Problem;
pub use ordinaut_reconcile_core::time::{chrono_time, k8s_time};

/// A condition without its transition time (set by [`merge_condition`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// `existing` with `update` set: `lastTransitionTime` is kept when the status did not change
/// (reason or message changes alone are not transitions), and set to `now` otherwise.
pub fn merge_condition(
    existing: &[Condition],
    update: &ConditionUpdate,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let status = if update.status { "True" } else { "False" };
    let old = existing.iter().find(|c| c.type_ == update.type_);
    let last_transition_time = match old {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => k8s_time(now),
    };
    let new = Condition {
        type_: update.type_.to_string(),
        status: status.to_string(),
        reason: update.reason.clone(),
        message: update.message.clone(),
        observed_generation: generation,
        last_transition_time,
    };
    let mut out: Vec<Condition> = existing
        .iter()
        .filter(|c| c.type_ != update.type_)
        .cloned()
        .collect();
    out.push(new);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Where an object stands in kstatus terms, beside its `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Reconciled: neither `Stalled` nor `Reconciling` (both removed).
    Done,
    /// Only a change by a person helps: `Stalled=True` with Ready's reason and message.
    Stalled,
    /// The operator is still working on it: `Reconciling=True` with Ready's reason and
    /// message.
    Reconciling,
}

/// `existing` with `ready` merged and `Stalled`/`Reconciling` set or removed per `progress`
/// (kstatus "abnormal-true" conditions: present only while true). Every condition carries
/// `generation` as its `observedGeneration`.
pub fn kstatus_conditions(
    existing: &[Condition],
    ready: &ConditionUpdate,
    progress: Progress,
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    let mut out = merge_condition(existing, ready, generation, now);
    let extra = match progress {
        Progress::Done => None,
        Progress::Stalled => Some(condition::STALLED),
        Progress::Reconciling => Some(condition::RECONCILING),
    };
    out.retain(|c| {
        (c.type_ != condition::STALLED && c.type_ != condition::RECONCILING)
            || Some(c.type_.as_str()) == extra
    });
    if let Some(type_) = extra {
        let update = ConditionUpdate {
            type_,
            status: true,
            reason: ready.reason.clone(),
            message: ready.message.clone(),
        };
        out = merge_condition(&out, &update, generation, now);
    }
    out
}

/// The Ready condition of an object that failed validation: the first problem's reason,
/// every problem in the message (field path and fix).
pub fn invalid(problems: &[Problem]) -> ConditionUpdate {
    let reason = problems
        .first()
        .map_or(reason::INVALID_SPEC, |p| p.reason)
        .to_string();
    let message = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    ConditionUpdate {
        type_: condition::READY,
        status: false,
        reason,
        message,
    }
}

/// The Ready condition of a valid Task after planning.
pub fn task_ready(state: ScheduleState, next: Option<DateTime<Utc>>) -> ConditionUpdate {
    let (reason, message) = match state {
        ScheduleState::Active => (
            reason::VALID,
            match next {
                Some(t) => format!("scheduled; next run at {}", t.to_rfc3339()),
                None => "scheduled".to_string(),
            },
        ),
        ScheduleState::Suspended => (
            reason::SUSPENDED,
            "spec.suspend is true: no occurrence is queued; set it to false to resume".into(),
        ),
        ScheduleState::Snoozed(until) => (
            reason::SNOOZED,
            format!(
                "spec.snoozeUntil: occurrences before {} are skipped",
                until.to_rfc3339()
            ),
        ),
        ScheduleState::Exhausted => (
            reason::SCHEDULE_EXHAUSTED,
            "spec.schedule has no occurrence left (at passed, COUNT/UNTIL or endAt reached); \
             change the schedule to run again"
                .into(),
        ),
        ScheduleState::EventDriven => (reason::VALID, "runs on events".into()),
    };
    ConditionUpdate {
        type_: condition::READY,
        status: true,
        reason: reason.to_string(),
        message,
    }
}

/// The Ready condition of an object whose reference is missing.
pub fn missing(reason: &'static str, path: &str, kind: &str, name: &str) -> ConditionUpdate {
    ConditionUpdate {
        type_: condition::READY,
        status: false,
        reason: reason.to_string(),
        message: format!(
            "{path}: {kind} `{name}` does not exist in this namespace; create it or fix the name"
        ),
    }
}

/// `lastRunStatus` for a `task_runs.status`.
pub fn run_status_of(db: &str) -> &'static str {
    match db {
        "succeeded" => run_status::SUCCEEDED,
        "failed" => run_status::FAILED,
        "cancelled" => run_status::CANCELLED,
        "skipped" => run_status::SKIPPED,
        _ => run_status::RUNNING,
    }
}

/// The full status: the reconcile-owned part, the run summary and the missed count. An
/// occurrence missed after the latest run started makes `lastRunStatus` `Missed`.
pub fn compose_task_status(owned: &TaskStatus, runs: &RunSummary, missed_total: i64) -> TaskStatus {
    let mut status = owned.clone();
    status.last_run_time = runs.last_run_time;
    status.last_run_status = runs
        .last_run_status
        .as_deref()
        .map(|s| run_status_of(s).to_string());
    status.last_run_id = runs.last_run_id.map(|id| id.to_string());
    status.last_successful_time = runs.last_successful_time;
    if let Some(missed) = owned.last_missed_time
        && runs.last_run_time.is_none_or(|run| missed > run)
    {
        status.last_run_status = Some(run_status::MISSED.to_string());
    }
    status.counters.succeeded = runs.succeeded;
    status.counters.failed = runs.failed;
    status.counters.skipped_overlap = runs.skipped;
    status.counters.missed = missed_total;
    status
}

/// The Ready condition of `status`, if any.
pub fn ready_of(conditions: &[Condition]) -> Option<&Condition> {
    conditions.iter().find(|c| c.type_ == condition::READY)
}

/// Whether moving to `update` is a transition worth one Event: Ready flips, or it stays False
/// with a different reason or message (a different mistake).
pub fn is_news(old: Option<&Condition>, update: &ConditionUpdate) -> bool {
    let status = if update.status { "True" } else { "False" };
    match old {
        None => !update.status,
        Some(c) => {
            c.status != status
                || (!update.status && (c.reason != update.reason || c.message != update.message))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn last_transition_time_changes_only_when_the_status_changes() {
        let ready = task_ready(ScheduleState::Active, None);
        let c1 = merge_condition(&[], &ready, Some(1), t("2025-01-01T00:00:00Z"));
        let mut later = ready.clone();
        later.message = "other".into();
        let c2 = merge_condition(&c1, &later, Some(2), t("2025-01-01T01:00:00Z"));
        assert_eq!(c2[0].last_transition_time, c1[0].last_transition_time);
        assert_eq!(c2[0].observed_generation, Some(2));
        let bad = invalid(&[Problem {
            path: "spec.schedule.rrule".into(),
            message: "bad".into(),
            reason: reason::INVALID_SCHEDULE,
        }]);
        let c3 = merge_condition(&c2, &bad, Some(3), t("2025-01-01T02:00:00Z"));
        assert_eq!(
            chrono_time(&c3[0].last_transition_time),
            Some(t("2025-01-01T02:00:00Z"))
        );
        assert_eq!(c3[0].reason, "InvalidSchedule");
        assert_eq!(c3[0].message, "spec.schedule.rrule: bad");
        assert_eq!(c3.len(), 1);
    }

    #[test]
    fn stalled_and_reconciling_are_present_only_while_true() {
        let now = t("2025-01-01T00:00:00Z");
        let bad = invalid(&[Problem {
            path: "spec.x".into(),
            message: "m".into(),
            reason: reason::INVALID_SPEC,
        }]);
        let c = kstatus_conditions(&[], &bad, Progress::Stalled, Some(4), now);
        let types: Vec<_> = c
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        assert_eq!(types, vec![("Ready", "False"), ("Stalled", "True")]);
        assert!(c.iter().all(|c| c.observed_generation == Some(4)));
        assert_eq!(c[1].reason, "InvalidSpec");
        let c = kstatus_conditions(&c, &bad, Progress::Reconciling, Some(5), now);
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec!["Ready", "Reconciling"]);
        let ok = task_ready(ScheduleState::Active, None);
        let c = kstatus_conditions(&c, &ok, Progress::Done, Some(6), now);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].status, "True");
    }

    #[test]
    fn a_miss_after_the_latest_run_reads_missed() {
        let owned = TaskStatus {
            last_missed_time: Some(t("2025-01-01T10:15:00Z")),
            ..TaskStatus::default()
        };
        let mut runs = RunSummary {
            last_run_time: Some(t("2025-01-01T10:00:01Z")),
            last_run_status: Some("succeeded".into()),
            ..RunSummary::default()
        };
        let s = compose_task_status(&owned, &runs, 1);
        assert_eq!(s.last_run_status.as_deref(), Some("Missed"));
        runs.last_run_time = Some(t("2025-01-01T10:30:01Z"));
        let s = compose_task_status(&owned, &runs, 1);
        assert_eq!(s.last_run_status.as_deref(), Some("Succeeded"));
    }

    #[test]
    fn only_a_new_mistake_or_a_flip_is_news() {
        let bad = invalid(&[Problem {
            path: "spec.x".into(),
            message: "m".into(),
            reason: reason::INVALID_SPEC,
        }]);
        assert!(is_news(None, &bad));
        let c = merge_condition(&[], &bad, Some(1), t("2025-01-01T00:00:00Z"));
        assert!(!is_news(ready_of(&c), &bad));
        assert!(is_news(
            ready_of(&c),
            &task_ready(ScheduleState::Active, None)
        ));
        assert!(!is_news(None, &task_ready(ScheduleState::Active, None)));
    }
}
