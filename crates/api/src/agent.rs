//! The `Agent` custom resource: an AI agent (or person) that owns Tasks and calls the gateway:
//! the tools it may use, its budgets, and the Secret holding its gateway token.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mcp_server::SecretKeyRef;

/// An agent: the tools its Tasks may call and how much it may run.
// `printcolumn(...)` repeats keys such as `type_` by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ordinaut.dev",
    version = "v1alpha1",
    kind = "Agent",
    namespaced,
    status = "AgentStatus",
    derive = "PartialEq",
    shortname = "oagent",
    category = "ordinaut",
    doc = "An agent: the tools its Tasks may call and how much it may run.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Runs/h",
        type_ = "integer",
        json_path = ".spec.budgets.runsPerHour"
    ),
    printcolumn(
        name = "Concurrent",
        type_ = "integer",
        json_path = ".spec.budgets.concurrentRuns"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpec {
    /// Tools the agent's Tasks may call, as globs over `<mcpserver>.<tool>`: `weather.*`,
    /// `everything.echo`, `core.*`, or `*` for all. `*` matches any run of characters.
    /// A call outside every scope is refused.
    #[serde(default)]
    #[schemars(
        length(max = 256),
        inner(regex(pattern = r"^[A-Za-z0-9_*][A-Za-z0-9_.*/-]*$"))
    )]
    pub scopes: Vec<String>,

    /// Limits on how much the agent runs. No limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<Budgets>,

    /// Secret key holding the agent's gateway token (the gateway stores only its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,

    /// What the agent may do through the gateway (MCP and REST): `tasks:read`, `tasks:write`,
    /// `runs:read`, `runs:write` (run now, backfill), `tools:read`, `events:publish`,
    /// `audit:read`, `tasks:all` (also the other Tasks of its namespace, not only those it
    /// owns), and `state:read` / `state:write` (its own memory keys; `state:read:<glob>`
    /// narrows to matching keys, or reaches another owner's with `agent:<name>/…` or
    /// `task:<name>/…`). When absent: `tasks:read`, `tasks:write`, `runs:read`, `runs:write`,
    /// `tools:read`, `state:read`, `state:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 32),
        inner(regex(
            pattern = r"^(tasks:read|tasks:write|tasks:all|runs:read|runs:write|tools:read|events:publish|audit:read|state:(read|write)(:[A-Za-z0-9._/:*?-]{1,256})?)$"
        ))
    )]
    pub api_scopes: Option<Vec<String>>,
}

/// Gateway API scopes an Agent may hold (`spec.apiScopes`).
pub mod api_scope {
    /// See its own Tasks (list, get, next runs, preview).
    pub const TASKS_READ: &str = "tasks:read";
    /// Create, change, pause, resume, snooze and delete its own Tasks.
    pub const TASKS_WRITE: &str = "tasks:write";
    /// Also the Tasks of its namespace that other agents (or people) own.
    pub const TASKS_ALL: &str = "tasks:all";
    /// Read the runs of its Tasks.
    pub const RUNS_READ: &str = "runs:read";
    /// Queue runs by hand: run now, backfill.
    pub const RUNS_WRITE: &str = "runs:write";
    /// List the tools its Tasks may call.
    pub const TOOLS_READ: &str = "tools:read";
    /// Publish events (for `on: {topic}` triggers).
    pub const EVENTS_PUBLISH: &str = "events:publish";
    /// Read the audit log of its namespace.
    pub const AUDIT_READ: &str = "audit:read";
    /// Read its own agent-memory keys (`state:read:<glob>`: only the keys the glob matches;
    /// another owner's with `agent:<name>/<glob>` or `task:<name>/<glob>`).
    pub const STATE_READ: &str = "state:read";
    /// Write and delete its own agent-memory keys (globs as for [`STATE_READ`]).
    pub const STATE_WRITE: &str = "state:write";
    /// Every scope, in the order documented.
    pub const ALL: [&str; 10] = [
        TASKS_READ,
        TASKS_WRITE,
        TASKS_ALL,
        RUNS_READ,
        RUNS_WRITE,
        TOOLS_READ,
        EVENTS_PUBLISH,
        AUDIT_READ,
        STATE_READ,
        STATE_WRITE,
    ];
    /// The scopes of an Agent without `apiScopes`.
    pub const DEFAULT: [&str; 7] = [
        TASKS_READ,
        TASKS_WRITE,
        RUNS_READ,
        RUNS_WRITE,
        TOOLS_READ,
        STATE_READ,
        STATE_WRITE,
    ];
}

impl AgentSpec {
    /// The gateway scopes this agent holds: `apiScopes`, else [`api_scope::DEFAULT`].
    pub fn effective_api_scopes(&self) -> Vec<String> {
        match &self.api_scopes {
            Some(s) => s.clone(),
            None => api_scope::DEFAULT.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Budgets of an agent, across all its Tasks.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budgets {
    /// Most runs started in any sliding hour; further occurrences wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub runs_per_hour: Option<u32>,

    /// Most runs going at the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub concurrent_runs: Option<u32>,
}

/// Observed state of an Agent, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// `Ready` is True when the spec is valid and the token Secret exists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
