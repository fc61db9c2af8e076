//! The `McpServer` custom resource: how to reach an MCP server (a process over stdio, or
//! streamable HTTP), with secrets by reference; its status lists the tools it offers.

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An MCP server whose tools pipeline steps call as `<name>.<tool>`. Created by cluster
/// admins. In a cluster a stdio server runs in a pod of its own (`stdio.image`, with the
/// bridge to streamable HTTP); `ordinaut dev` runs its command as a local process.
// `printcolumn(...)` repeats keys such as `type_` by design; clippy mistakes them for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "ordinaut.dev",
    version = "v1alpha1",
    kind = "McpServer",
    namespaced,
    status = "McpServerStatus",
    derive = "PartialEq",
    shortname = "omcp",
    category = "ordinaut",
    doc = "An MCP server whose tools pipeline steps call as `<name>.<tool>`.",
    validation = Rule::new("!self.metadata.name.contains('.')").message("an McpServer name must not contain '.': steps refer to tools as <mcpserver>.<tool>"),
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
        name = "URL",
        type_ = "string",
        json_path = ".spec.transport.http.url",
        priority = 1
    ),
    printcolumn(
        name = "Command",
        type_ = "string",
        json_path = ".spec.transport.stdio.command",
        priority = 1
    ),
    printcolumn(
        name = "Image",
        type_ = "string",
        json_path = ".spec.transport.stdio.image",
        priority = 1
    ),
    printcolumn(
        name = "Pod Ready",
        type_ = "string",
        json_path = ".status.pod.ready",
        priority = 1
    ),
    printcolumn(
        name = "Last Discovery",
        type_ = "date",
        json_path = ".status.lastDiscoveryTime"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpServerSpec {
    /// How to reach the server: exactly one of `stdio` or `http`.
    pub transport: McpTransport,

    /// Default time limit of one tool call, as a duration (`30s`); a step's `timeout`
    /// overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The transport of an MCP server. Exactly one of `stdio` or `http`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.stdio) != has(self.http)").message("set exactly one of stdio or http"))]
pub struct McpTransport {
    /// A server that speaks MCP over its stdin/stdout. In a cluster it runs in a pod of its
    /// own (`image`); `ordinaut dev` runs `command` as a local process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioTransport>,

    /// Connect to a server over MCP streamable HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTransport>,
}

/// A server started as a process.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StdioTransport {
    /// Container image holding `command` (e.g. `node:22-alpine` for an `npx` server). In a
    /// cluster the operator runs it as a Deployment `<name>-mcp` with a Service of the same
    /// name; Ordinaut's `ordinaut-mcp-bridge` (copied in by an init container) starts the
    /// command and serves it over streamable HTTP on port 8080. Required in a cluster: the
    /// operator and workers never run a stdio command in their own pods. Ignored by
    /// `ordinaut dev`, which runs the command locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub image: Option<String>,

    /// Executable to run (a path, or a name looked up in the `PATH` of the image, or of the
    /// local machine under `ordinaut dev`).
    #[schemars(length(min = 1, max = 4096))]
    pub command: String,

    /// Arguments passed to the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub args: Vec<String>,

    /// Environment variables of the process; values may come from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,

    /// Working directory of the process; the image's (or the local one's) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
}

/// An environment variable: a literal `value` or a `valueFrom` Secret key, exactly one.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("set exactly one of value or valueFrom"))]
pub struct EnvVar {
    /// Name of the variable.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"), length(max = 256))]
    pub name: String,

    /// Literal value. Do not put secrets here: use `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Read the value from a Secret in the McpServer's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// A server reached over streamable HTTP.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpTransport {
    /// The MCP endpoint, `http://` or `https://` (e.g. `http://weather.tools.svc:8080/mcp`).
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub url: String,

    /// Headers sent with every request (e.g. `Authorization`); values may come from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub headers: Vec<Header>,
}

/// An HTTP header: a literal `value` or a `valueFrom` Secret key, exactly one.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("has(self.value) != has(self.valueFrom)").message("set exactly one of value or valueFrom"))]
pub struct Header {
    /// Header name (`Authorization`, `X-Api-Key`).
    #[schemars(regex(pattern = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"), length(max = 256))]
    pub name: String,

    /// Literal value. Do not put secrets here: use `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,

    /// Read the value from a Secret in the McpServer's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Where a secret value comes from.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValueFrom {
    /// A key of a Secret in the same namespace.
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the referring object's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Observed state of an McpServer, written by the operator after tool discovery.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpServerStatus {
    /// `Ready` is True when the server answered tool discovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The tools the server reported at the last discovery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub tools: Vec<DiscoveredTool>,

    /// When the tools were last discovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_discovery_time: Option<DateTime<Utc>>,

    /// The pod a stdio server with an `image` runs in (in a cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<McpPodStatus>,
}

/// The Deployment and Service the operator runs a stdio server with an `image` in.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpPodStatus {
    /// Name of the Deployment and of the Service (`<name>-mcp`).
    pub deployment: String,
    /// The URL discovery and the workers reach the server at.
    pub url: String,
    /// Pods of the Deployment that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods the Deployment wants.
    #[serde(default)]
    pub replicas: i32,
    /// True when at least one pod is ready.
    #[serde(default)]
    pub ready: bool,
}

/// A tool an MCP server offers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveredTool {
    /// Tool name; steps call it as `<mcpserver>.<name>`.
    pub name: String,

    /// What the tool does, as the server describes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// JSON Schema of the tool's arguments; every call is checked against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub input_schema: Option<serde_json::Value>,

    /// JSON Schema of the tool's structured result, when the server declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::preserve_unknown_object")]
    pub output_schema: Option<serde_json::Value>,
}
