//! Ordinaut's custom resources (group `ordinaut.dev`, version `v1alpha1`): Task, Pipeline,
//! McpServer and Agent, with the schemas, printer columns and CEL rules of their CRDs.
//!
//! Pure: no I/O. The operator, the worker, the gateway and the CLI share these types.

pub mod agent;
pub mod checks;
pub mod constants;
pub mod crd;
pub mod mcp_server;
pub mod pipeline;
pub mod schema;
pub mod task;
pub mod tolerant;

pub use agent::{Agent, AgentSpec, AgentStatus, Budgets};
pub use crd::{crds, render, render_all};
pub use mcp_server::{
    DiscoveredTool, EnvVar, Header, HttpTransport, McpPodStatus, McpServer, McpServerSpec,
    McpServerStatus, McpTransport, SecretKeyRef, StdioTransport, ValueFrom,
};
pub use pipeline::{Pipeline, PipelineSpec, PipelineStatus, RetryPolicy, Step};
pub use task::{
    Catchup, CatchupPolicy, ConcurrencyPolicy, EventTrigger, RunOutcome, Task, TaskCounters,
    TaskEventCounts, TaskFinished, TaskSchedule, TaskSpec, TaskStatus,
};
