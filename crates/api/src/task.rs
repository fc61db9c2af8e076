//! The `Task` custom resource: a schedule (RRULE, cron, one instant, an interval, or an
//! event) plus the pipeline it runs, with the policies for overlap, retries and missed runs.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::pipeline::{PipelineSpec, RetryPolicy};

/// Something to run on a schedule: a pipeline of tool calls, with its params and policies.
// `printcolumn(...)` repeats keys such as `type_` by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ordinaut.dev",
    version = "v1alpha1",
    kind = "Task",
    namespaced,
    status = "TaskStatus",
    derive = "PartialEq",
    shortname = "otask",
    shortname = "otasks",
    category = "ordinaut",
    doc = "A schedule plus the pipeline it runs.",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".status.scheduleSummary",
        description = "The schedule in one line (`cron 0 8 * * *`, `every 1m`, `rrule FREQ=…`), as the operator last validated it"
    ),
    printcolumn(
        name = "Timezone",
        type_ = "string",
        json_path = ".spec.schedule.timezone"
    ),
    // A string, not a date: kubectl renders future dates in date columns as `<invalid>`.
    printcolumn(name = "Next Run", type_ = "string", json_path = ".status.nextRunTime"),
    printcolumn(
        name = "Last Status",
        type_ = "string",
        json_path = ".status.lastRunStatus"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        description = "Why the Task is (not) Ready: Valid, Suspended, InvalidSchedule, PipelineNotFound, ToolNotFound, ScopeDenied, …"
    ),
    printcolumn(
        name = "Suspended",
        type_ = "boolean",
        json_path = ".spec.suspend",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.pipelineRef",
    selectable = ".spec.agentRef"
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.pipelineRef) != has(self.pipeline)").message("set exactly one of pipelineRef or pipeline"))]
pub struct TaskSpec {
    /// When the Task runs.
    pub schedule: TaskSchedule,

    /// Name of a Pipeline in the Task's namespace to run. Set this or `pipeline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pipeline_ref: Option<String>,

    /// A pipeline written inline, for Tasks whose steps are not shared. Set this or
    /// `pipelineRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<PipelineSpec>,

    /// Parameters handed to the pipeline as `${params.…}`; checked against the pipeline's
    /// `params` schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub params: Option<serde_json::Value>,

    /// Name of the Agent (same namespace) the Task acts for: its scopes bound the tools the
    /// pipeline may call and its budgets bound the runs. When absent, only built-in tools may
    /// be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub agent_ref: Option<String>,

    /// What to do when an occurrence is due while a run of this Task is still going:
    /// `Allow` (run both), `Forbid` (skip the new one and count it) or `Replace` (cancel the
    /// running one). Holds across all workers.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,

    /// Default retry policy of the pipeline's steps: a failed step is tried again with
    /// exponential backoff. A step's own `retry` overrides it field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// Time limit of one run, as a duration (`10m`, `PT1H`). When absent, the worker's
    /// default applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Among occurrences due at the same time, higher priorities are leased first.
    #[serde(default)]
    pub priority: i32,

    /// When true, no new occurrence is scheduled; runs already going finish. Occurrences
    /// that fall during the suspension are not counted as missed.
    #[serde(default)]
    pub suspend: bool,

    /// Skip occurrences until this instant (RFC 3339), then resume on schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze_until: Option<DateTime<Utc>>,

    /// How many times one occurrence may be started in all (default 5). An attempt that never
    /// finishes (its worker crashed, was stopped, or lost its lease) is started again; past
    /// this many, the occurrence is recorded as failed with the reason instead of looping.
    /// Step retries within one attempt (`retry`) do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,

    /// Succeeded runs kept in the history (`ordinaut runs`); older ones are pruned. Default:
    /// the worker's `--retention-successful-runs` (100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub successful_runs_history_limit: Option<u32>,

    /// Runs that did not succeed (failed, cancelled, skipped) kept in the history. Default:
    /// the worker's `--retention-failed-runs` (100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub failed_runs_history_limit: Option<u32>,

    /// Runs older than this (by when they finished) are pruned from the history even when
    /// the count limits would keep them, as a duration of whole units (`7d`, `12h`, `1d12h`;
    /// units `w`, `d`, `h`, `m`, `s`). Default: the worker's `--retention-max-age` (30d),
    /// which also applies when this is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,6}[wdhms]){1,5}$"))]
    pub runs_history_max_age: Option<String>,
}

/// The default of `spec.maxAttempts`.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// When a Task runs: exactly one of `rrule`, `cron`, `at`, `every` or `on`, read in
/// `timezone`, and bounded by `startAt`/`endAt`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("(has(self.rrule) ? 1 : 0) + (has(self.cron) ? 1 : 0) + (has(self.at) ? 1 : 0) + (has(self.every) ? 1 : 0) + (has(self.on) ? 1 : 0) == 1").message("set exactly one of rrule, cron, at, every or on"),
    validation = Rule::new("!has(self.startAt) || !has(self.endAt) || self.endAt > self.startAt").message("endAt must be after startAt").field_path(".endAt")
)]
pub struct TaskSchedule {
    /// An RFC 5545 recurrence rule, e.g. `FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=0;BYSECOND=0`.
    /// It may start with a `DTSTART;TZID=…:` line and an `RRULE:` prefix. Without DTSTART it is
    /// anchored at `startAt`, else at local midnight of the day the Task was created. Check a
    /// rule with `ordinaut schedule preview --rrule …`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub rrule: Option<String>,

    /// A five-field cron expression (`minute hour day-of-month month day-of-week`, with names,
    /// ranges, steps and lists) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
    /// When both day fields are restricted, either one matching is enough (as in Vixie cron).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cron: Option<String>,

    /// Run once at this RFC 3339 instant (`2025-06-01T09:00:00+03:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub at: Option<String>,

    /// Run at a fixed interval of elapsed time (`30s`, `15m`, `1h30m`, `PT6H`), counted from
    /// `startAt` (else from local midnight of the day the Task was created, in its timezone).
    /// Ignores wall-clock changes such as DST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub every: Option<String>,

    /// Run when an event happens rather than at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<EventTrigger>,

    /// IANA timezone the schedule is read in (`Europe/Chisinau`, `America/New_York`). A wall
    /// time skipped by DST runs once, shifted forward by the gap; a repeated one runs once, at
    /// its first occurrence.
    #[serde(default = "default_timezone")]
    #[schemars(length(min = 1, max = 64))]
    pub timezone: String,

    /// No occurrence before this instant (RFC 3339). Also the anchor of `every` and of an RRULE
    /// without DTSTART.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,

    /// No occurrence after this instant (RFC 3339); must be after `startAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,

    /// Delay each occurrence by a random amount up to this duration (`30s`, `5m`), to spread
    /// load when many Tasks share a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,

    /// What to do with occurrences missed while Ordinaut was down or the Task was not
    /// schedulable. Default: run the latest one missed within the last hour.
    #[serde(default)]
    pub catchup: Catchup,
}

/// Default of `schedule.timezone`.
pub const DEFAULT_TIMEZONE: &str = "UTC";
/// Default of `schedule.catchup.window`.
pub const DEFAULT_CATCHUP_WINDOW: &str = "1h";

fn default_timezone() -> String {
    DEFAULT_TIMEZONE.to_string()
}

fn default_catchup_window() -> String {
    DEFAULT_CATCHUP_WINDOW.to_string()
}

/// An event that triggers a run: a message on a stream topic, or another Task's run
/// finishing. Exactly one.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.topic) != has(self.taskFinished)").message("set exactly one of topic or taskFinished"))]
pub struct EventTrigger {
    /// Run once for each event published on this topic (stream `ordinaut:topic:<topic>`),
    /// with the event (`id`, `topic`, `publishedAt`, `source`, `data`) as `${params.event}`.
    /// Events published while the Task is suspended or snoozed, or before it exists, start
    /// nothing (the first two are counted as dropped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"))]
    pub topic: Option<String>,

    /// With `topic`: a JMESPath expression over the event (`data.severity == 'high'`); an
    /// event for which it is falsy starts no run (counted as filtered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub filter: Option<String>,

    /// Run once each time a run of another Task (same namespace) finishes with one of the
    /// listed outcomes, with the finished run as `${params.event}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_finished: Option<TaskFinished>,
}

/// `on.taskFinished`: the Task to follow and the outcomes that start a run.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskFinished {
    /// The Task (same namespace) whose finished runs start this one.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The outcomes that start a run (default: `Succeeded` and `Failed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outcome: Vec<RunOutcome>,
}

/// How a run finished, as `on.taskFinished.outcome` names it.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Cancelled,
    Skipped,
}

/// The catch-up policy for missed occurrences.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Catchup {
    /// `None`: drop missed occurrences (each is counted and reported as missed). `Latest`
    /// (default): run the most recent missed occurrence within `window`, drop the others.
    /// `All`: run every missed occurrence within `window`, oldest first, up to `maxRuns`.
    #[serde(default)]
    pub policy: CatchupPolicy,

    /// How far back a missed occurrence may still run, as a duration (default `1h`).
    #[serde(default = "default_catchup_window")]
    pub window: String,

    /// With `All`, the most occurrences to run in one catch-up (the most recent ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    pub max_runs: Option<u32>,
}

impl Default for Catchup {
    fn default() -> Self {
        Self {
            policy: CatchupPolicy::default(),
            window: default_catchup_window(),
            max_runs: None,
        }
    }
}

/// Which missed occurrences run after an outage.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum CatchupPolicy {
    /// Drop every missed occurrence.
    None,
    /// Run only the most recent missed occurrence within the window.
    #[default]
    Latest,
    /// Run every missed occurrence within the window.
    All,
}

/// What to do when an occurrence is due while the previous run is still going.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConcurrencyPolicy {
    /// Start the new run alongside the running one.
    #[default]
    Allow,
    /// Skip the new occurrence (counted in `status.counters.skippedOverlap`).
    Forbid,
    /// Cancel the running run and start the new one.
    Replace,
}

/// Observed state of a Task, written by the operator and the status feed.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// `Ready` (valid, references resolved, scheduled) and `Stalled` (cannot progress without
    /// a change); when False, the message names the field and the fix.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The schedule in one line, as shown by `kubectl get tasks` (see
    /// `TaskSchedule::summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_summary: Option<String>,

    /// When the next occurrence is due; absent when none is left or the Task is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<DateTime<Utc>>,

    /// The scheduled time of the latest occurrence that was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,

    /// When the latest run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<DateTime<Utc>>,

    /// Outcome of the latest run: `Running`, `Succeeded`, `Failed`, `Cancelled`, `Missed` or
    /// `Skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_status: Option<String>,

    /// Id of the latest run (`ordinaut runs get <id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_id: Option<String>,

    /// When the latest successful run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,

    /// The scheduled time of the latest occurrence the catch-up policy dropped (missed).
    /// When it is later than `lastRunTime`, `lastRunStatus` is `Missed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_missed_time: Option<DateTime<Utc>>,

    /// Run counts since the Task was created.
    #[serde(default)]
    pub counters: TaskCounters,

    /// The last value of the `ordinaut.dev/run-now` annotation that was turned into a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_run_now: Option<String>,

    /// The last value of the `ordinaut.dev/backfill` annotation (`FROM/TO`) the operator
    /// handled (queued, or refused with a Warning Event naming why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_backfill: Option<String>,

    /// For a Task `on:` an event: the events it was given and what became of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<TaskEventCounts>,
}

/// Event counts of a Task `on:` a topic or another Task's runs (updated when its runs finish
/// and at each reconcile).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskEventCounts {
    /// Events delivered to this Task (a redelivery after a worker crash may count twice).
    #[serde(default)]
    pub received: i64,
    /// Runs they started (exactly one per event).
    #[serde(default)]
    pub started: i64,
    /// Events `on.filter` rejected.
    #[serde(default)]
    pub filtered: i64,
    /// Events dropped: the Task was suspended or snoozed, or a chain grew too deep.
    #[serde(default)]
    pub dropped: i64,
    /// Why the latest dropped event was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drop_reason: Option<String>,
    /// When the latest event was published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
}

/// Run counts of a Task.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskCounters {
    /// Runs that succeeded.
    #[serde(default)]
    pub succeeded: i64,
    /// Runs that failed after their retries.
    #[serde(default)]
    pub failed: i64,
    /// Occurrences dropped by the catch-up policy.
    #[serde(default)]
    pub missed: i64,
    /// Occurrences skipped because a run was going (`concurrencyPolicy: Forbid`).
    #[serde(default)]
    pub skipped_overlap: i64,
}

impl TaskSchedule {
    /// The schedule in one line for humans and `kubectl get tasks` (`status.scheduleSummary`):
    /// `cron 0 8 * * *`, `every 1m`, `at 2025-06-01T09:00:00Z`, `rrule FREQ=DAILY;…`,
    /// `on topic alerts`, `after task backup`. `None` when no kind is set.
    pub fn summary(&self) -> Option<String> {
        let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(rrule) = &self.rrule {
            Some(format!("rrule {}", one_line(rrule)))
        } else if let Some(cron) = &self.cron {
            Some(format!("cron {}", one_line(cron)))
        } else if let Some(at) = &self.at {
            Some(format!("at {}", at.trim()))
        } else if let Some(every) = &self.every {
            Some(format!("every {}", every.trim()))
        } else {
            match &self.on {
                Some(EventTrigger {
                    topic: Some(topic), ..
                }) => Some(format!("on topic {topic}")),
                Some(EventTrigger {
                    task_finished: Some(after),
                    ..
                }) => Some(format!("after task {}", after.name)),
                _ => None,
            }
        }
    }
}
