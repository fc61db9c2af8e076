//! The `Pipeline` custom resource: an ordered list of tool calls (steps) with templated
//! arguments, JMESPath conditions, per-step retries and timeouts, and an output template.
//! A Task refers to one by name (`pipelineRef`) or embeds a `PipelineSpec` inline.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reusable sequence of tool calls. Steps run in order; each may read the Task's params, the
/// run, the time and the saved results of earlier steps through `${…}` templates.
// `printcolumn(...)` repeats keys such as `type_` by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ordinaut.dev",
    version = "v1alpha1",
    kind = "Pipeline",
    namespaced,
    status = "PipelineStatus",
    derive = "PartialEq",
    shortname = "opipe",
    category = "ordinaut",
    doc = "A reusable sequence of tool calls that Tasks run.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the pipeline passed validation"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PipelineSpec {
    /// JSON Schema (draft 2020-12) that a Task's `params` must satisfy. When absent, any
    /// params are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub params: Option<serde_json::Value>,

    /// The steps, run in order. A step's result is available to later steps as
    /// `${steps.<id>}` (and `${steps.<saveAs>}` when it sets `saveAs`).
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new("self.all(s, self.filter(t, t.id == s.id).size() == 1)").message("step ids must be unique within a pipeline"))]
    pub steps: Vec<Step>,

    /// Template of the run's result (any JSON; `${…}` placeholders are rendered). When absent,
    /// the result of the last step that ran is the run's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_any")]
    pub output: Option<serde_json::Value>,
}

/// One tool call of a pipeline.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// Identifier of the step, unique within the pipeline: a lowercase letter, then up to 62
    /// lowercase letters, digits or underscores, so it can be used as-is in templates
    /// (`${steps.fetch.body}`) and JMESPath expressions (`steps.fetch.status`).
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,62}$"), length(max = 63))]
    pub id: String,

    /// The tool to call: `<mcpserver>.<tool>` (an McpServer in the Task's namespace and one
    /// of the tools it reports) or a built-in such as `core.echo` or `http.request`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[A-Za-z0-9_][A-Za-z0-9_./-]*$"))]
    pub uses: String,

    /// Arguments of the tool call (an object). Strings may contain `${…}` templates: a string
    /// that is exactly one placeholder keeps the value's JSON type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub with: Option<serde_json::Value>,

    /// JMESPath expression over `{params, steps, run, task, now}`; when its result is falsy
    /// the step is skipped (and recorded as skipped). When absent the step always runs.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,

    /// Additional name under which later steps find this step's result
    /// (`${steps.<saveAs>}`); same format as `id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z][a-z0-9_]{0,62}$"), length(max = 63))]
    pub save_as: Option<String>,

    /// Time limit of one attempt of this step, as a duration (`30s`, `5m`, `PT1M`). Defaults
    /// to the McpServer's timeout, else the Task's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,

    /// Retries of this step when it fails. When absent the step runs once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,

    /// When true, a failure of this step (after its retries) is recorded and the pipeline
    /// goes on with the next step; `${steps.<id>}` then holds the error.
    #[serde(default)]
    pub continue_on_error: bool,
}

/// Retries with exponential backoff: the wait before retry `n` is
/// `min(backoff × 2^(n-1), maxBackoff)`, randomized when `jitter` is on.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Total number of attempts, the first included (default 1: no retry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub attempts: Option<u32>,

    /// Wait before the first retry, as a duration (default `1s`); it doubles at each retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,

    /// Upper bound of the wait between two attempts, as a duration (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,

    /// Randomize each wait (full jitter) so that many failing runs do not retry in lockstep
    /// (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<bool>,
}

impl RetryPolicy {
    /// Attempts when `attempts` is not set: one, no retry.
    pub const DEFAULT_ATTEMPTS: u32 = 1;
    /// Backoff base when `backoff` is not set.
    pub const DEFAULT_BACKOFF: &'static str = "1s";
    /// Backoff cap when `maxBackoff` is not set.
    pub const DEFAULT_MAX_BACKOFF: &'static str = "5m";
    /// Jitter when `jitter` is not set.
    pub const DEFAULT_JITTER: bool = true;
}

/// Observed state of a Pipeline, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineStatus {
    /// Standard conditions; `Ready` says whether the pipeline is valid, and if not, which
    /// field is wrong and how to fix it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
