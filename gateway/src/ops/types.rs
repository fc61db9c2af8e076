//! The inputs and outputs of gateway operations, shared by REST (request and response
//! bodies, the OpenAPI document) and MCP (tool input schemas, structured results). Their
//! doc comments are what an LLM reads: they say what to pass and what comes back.

use chrono::{DateTime, Utc};
use ordinaut_api::{TaskSchedule, TaskSpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names a Task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRef {
    /// The Task's name (as given to `schedule_task`).
    pub name: String,
    /// Namespace of the Task. Agents act in their own namespace and may leave it out; the
    /// admin defaults to `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Creates a Task: a schedule plus the pipeline it runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleTaskInput {
    /// Name of the new Task: lowercase letters, digits and `-`, starting with a letter, at
    /// most 63 characters (e.g. `daily-report`).
    pub name: String,
    /// Namespace (agents: their own, may be left out; admin: default `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The Task's spec, as in a Task manifest: `schedule` (exactly one of `every`, `cron`,
    /// `rrule`, `at`), `pipeline` (inline steps) or `pipelineRef`, `params`, policies.
    /// Example: `{"schedule": {"every": "1h"}, "pipeline": {"steps": [{"id": "hello",
    /// "uses": "core.echo", "with": {"message": "hi"}}]}}`. An agent's Tasks always act for
    /// that agent (`agentRef` is set for it).
    #[schemars(with = "TaskSpec")]
    pub spec: Value,
}

/// Changes fields of a Task's spec (a JSON merge patch: given fields replace, `null` removes).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTaskInput {
    /// The Task's name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The spec fields to change, e.g. `{"schedule": {"every": "30m"}}` or
    /// `{"params": {"city": "Oslo"}}`.
    pub spec: serde_json::Map<String, Value>,
}

/// Body of a REST update (the Task is named in the path).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTaskBody {
    /// The spec fields to change (a JSON merge patch of `spec`).
    pub spec: serde_json::Map<String, Value>,
}

/// Which Tasks to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListTasksInput {
    /// `active` (neither paused nor snoozed), `paused` or `snoozed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskState>,
    /// Only this namespace (agents: their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// At most this many (1 to 500, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What a Task is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Runs on schedule.
    Active,
    /// Suspended (`pause_task`): no new runs until resumed.
    Paused,
    /// Skipping occurrences until `snoozeUntil`.
    Snoozed,
    /// Written, not yet picked up by the operator (seconds).
    Pending,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Active => "active",
            TaskState::Paused => "paused",
            TaskState::Snoozed => "snoozed",
            TaskState::Pending => "pending",
        }
    }
}

/// Reads one Task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetTaskInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// How many upcoming runs to compute (0 to 100, default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 100))]
    pub next: Option<u32>,
}

/// A Task as the gateway shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub namespace: String,
    pub name: String,
    /// The Agent the Task acts for (`spec.agentRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub state: TaskState,
    /// Whether the operator found the spec valid (`Ready` condition); absent while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// The `Ready` condition's message: what is wrong and how to fix it, when not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The schedule in one line (`every 1m`, `cron 0 8 * * *`).
    pub schedule: String,
    /// The next runs, computed by the scheduler's own code (empty when paused or finished).
    pub next_runs: Vec<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snooze_until: Option<DateTime<Utc>>,
    /// The spec as the operator last read it.
    #[schemars(with = "TaskSpec")]
    pub spec: Value,
    /// The status the operator wrote (conditions, counters, lastRun…).
    pub status: Value,
}

/// A page of Tasks.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskList {
    pub items: Vec<TaskView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Snoozes a Task: its occurrences are skipped until an instant.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnoozeTaskInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Skip occurrences before this RFC 3339 instant (`2025-06-01T09:00:00Z`). Give this or
    /// `for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// Skip occurrences for this long from now (`2h`, `30m`, `PT1H`). Give this or `until`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
}

/// Body of a REST snooze.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnoozeBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
}

/// Queues the occurrences a Task's schedule had in a past range.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillTaskInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Start of the range, included (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the range, included (RFC 3339, not in the future).
    pub to: DateTime<Utc>,
    /// Refuse ranges with more occurrences than this (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: Option<u32>,
}

/// Body of a REST backfill.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillBody {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Refuse ranges with more occurrences than this (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max: Option<u32>,
}

/// What a mutation did.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionResult {
    pub namespace: String,
    pub name: String,
    /// What was done, in a sentence.
    pub message: String,
    /// The request's correlation id (also in the audit log).
    pub correlation_id: String,
    /// Runs queued (run now, backfill).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<u64>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListRunsInput {
    /// Only runs of this Task (its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Only runs with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunState>,
    /// Only runs started at or after this RFC 3339 instant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Only runs of Tasks in this namespace (agents: their own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// At most this many, newest first (1 to 500, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Succeeded,
    Failed,
    Retrying,
    Cancelled,
    Skipped,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Retrying => "retrying",
            RunState::Cancelled => "cancelled",
            RunState::Skipped => "skipped",
        }
    }
}

/// One attempt of one occurrence of a Task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunInfo {
    pub id: String,
    pub namespace: String,
    pub task: String,
    /// `schedule`, `manual`, `backfill`, `catchup`…
    pub trigger: String,
    pub attempt: i32,
    pub status: String,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The pipeline's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

/// A page of runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunList {
    pub items: Vec<RunInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Reads one run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetRunInput {
    /// The run's id (from `list_runs`).
    pub id: String,
}

/// One step of a run: what it was given, what it returned, why it failed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepInfo {
    pub id: String,
    pub uses: String,
    pub status: String,
    pub attempts: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// A run with its steps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunInfo,
    pub steps: Vec<StepInfo>,
}

/// Previews a schedule before creating a Task with it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreviewInput {
    /// A Task's `spec.schedule`, e.g. `{"cron": "0 8 * * MON-FRI", "timezone":
    /// "Europe/Oslo"}` or `{"every": "15m"}`.
    #[schemars(with = "TaskSchedule")]
    pub schedule: Value,
    /// Occurrences strictly after this RFC 3339 instant (default: now), and none before the
    /// schedule's `startAt` (one exactly at `startAt` is listed, as it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<DateTime<Utc>>,
    /// How many (1 to 100, default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub count: Option<u32>,
}

/// The next occurrences of a schedule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviewResult {
    /// The schedule in one line.
    pub schedule: String,
    pub timezone: String,
    pub occurrences: Vec<DateTime<Utc>>,
}

/// A tool a Task's pipeline step may `use`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolInfo {
    /// What a step writes in `uses`: `core.echo`, `<mcpserver>.<tool>`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
}

/// The tools the caller's Tasks may use.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolList {
    pub items: Vec<ToolInfo>,
}

/// Publishes an event for Tasks triggered by `on: {topic}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishEventInput {
    /// The topic (`orders.created`): letters, digits, `.`, `_`, `:` and `-`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"))]
    pub topic: String,
    /// The event's data, handed to the runs it triggers.
    #[serde(default)]
    pub payload: Value,
    /// The event's id; publishing twice with one id starts each listening Task once.
    /// Default: a new UUID. At most 256 characters, no NUL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub id: Option<String>,
}

/// A published event.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PublishedEventView {
    pub id: String,
    pub topic: String,
    /// The Redis stream it goes to (`ordinaut:topic:<topic>`).
    pub stream: String,
    pub published_at: DateTime<Utc>,
    pub correlation_id: String,
}

/// Which audit entries to list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAuditInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `agent:<namespace>/<name>`, `admin`, `cli:<user>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// `task.create`, `task.run-now`…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditInfo {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub detail: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// A page of audit entries.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub items: Vec<AuditInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
