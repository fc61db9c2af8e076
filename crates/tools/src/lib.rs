//! Ordinaut's tools: the [`Tool`] trait every pipeline step calls through, the registry that
//! resolves a step's `uses`, the built-in tools (`core.*`, `http.request`), the MCP bridge
//! ([`mcp`]) and the scope check that decides whether a Task may call a tool.

pub mod builtin;
pub mod egress;
mod error;
pub mod http;
pub mod mcp;
pub mod publish;
mod registry;
pub mod scope;
pub mod secrets;
pub mod state;

pub use error::ToolError;
pub use registry::{ToolProvider, ToolRegistry};

use async_trait::async_trait;
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a tool knows about the call it is serving.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub run_id: Uuid,
    /// The run's attempt (the lease attempt of the occurrence), from 1.
    pub run_attempt: u32,
    pub step_id: String,
    /// The try of this step within this run attempt, from 1 (step-level retries).
    pub step_attempt: u32,
    /// Stable across attempts of the same occurrence and step: tools that change the world
    /// can use it to do so once.
    pub idempotency_key: String,
    /// The time left for this call; the caller also enforces it.
    pub timeout: Option<Duration>,
    /// Cancelled when the run is cancelled (Replace policy, run timeout, shutdown).
    pub cancel: CancellationToken,
    /// The Task's namespace (per-namespace egress rules).
    pub namespace: String,
    /// The Task's Agent, when it names one (its scopes were checked before the call).
    pub agent: Option<String>,
    /// The Task's name (`core.state.*`: the owner of its keys when it has no Agent).
    pub task: String,
}

impl CallContext {
    /// A context for tests and one-off calls.
    pub fn for_test(step_id: &str) -> Self {
        Self {
            run_id: Uuid::nil(),
            run_attempt: 1,
            step_id: step_id.to_string(),
            step_attempt: 1,
            idempotency_key: format!("test:{step_id}"),
            timeout: None,
            cancel: CancellationToken::new(),
            namespace: "default".to_string(),
            agent: Some("test-agent".to_string()),
            task: "test-task".to_string(),
        }
    }
}

/// A callable tool: a built-in or (through the MCP bridge) a tool of an MCP server.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name steps use: `<server>.<tool>`, e.g. `core.echo`.
    fn name(&self) -> &str;
    /// One line for catalogs and `--help`.
    fn description(&self) -> &str;
    /// JSON Schema of the input, checked before the call when present.
    fn input_schema(&self) -> Option<&Value> {
        None
    }
    /// JSON Schema of the output, checked after the call when present.
    fn output_schema(&self) -> Option<&Value> {
        None
    }
    /// `true` if the tool keeps its input where others read it after the run (an event,
    /// agent memory): the worker then masks the run's secret values out of the input before
    /// the call, as it masks them out of the run's records.
    fn keeps_input(&self) -> bool {
        false
    }
    /// Calls the tool. Implementations should return promptly once `ctx.cancel` fires.
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError>;
}
