//! [`McpTool`]: one tool of an McpServer, as a [`Tool`] the executor calls like a built-in.

use super::pool::PoolRef;
use crate::{CallContext, Tool, ToolError};
use async_trait::async_trait;
use ordinaut_api::DiscoveredTool;
use serde_json::{Value, json};

/// The tool `<server>.<tool>` of the McpServer `namespace/server`, with the schemas from its
/// discovered catalog. Calls go through the pool's live session.
pub struct McpTool {
    full_name: String,
    namespace: String,
    server: String,
    tool: String,
    description: String,
    input_schema: Value,
    output_schema: Option<Value>,
    pool: PoolRef,
}

impl McpTool {
    pub(crate) fn new(namespace: &str, server: &str, t: DiscoveredTool, pool: PoolRef) -> Self {
        Self {
            full_name: format!("{server}.{}", t.name),
            namespace: namespace.to_string(),
            server: server.to_string(),
            description: t.description.unwrap_or_default(),
            // MCP requires an input schema; a server that omits it accepts any object.
            input_schema: t.input_schema.unwrap_or_else(|| json!({"type": "object"})),
            output_schema: t.output_schema,
            tool: t.name,
            pool,
        }
    }

    /// The tool's name on its server (without the `<server>.` prefix).
    pub fn tool_name(&self) -> &str {
        &self.tool
    }

    /// The McpServer's namespace and name.
    pub fn server(&self) -> (&str, &str) {
        (&self.namespace, &self.server)
    }
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "McpTool({}/{})", self.namespace, self.full_name)
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.full_name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.input_schema)
    }
    fn output_schema(&self) -> Option<&Value> {
        self.output_schema.as_ref()
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let pool = self
            .pool
            .upgrade()
            .ok_or_else(|| ToolError::retryable("the MCP pool is shut down"))?;
        pool.call(&self.namespace, &self.server, &self.tool, input, ctx)
            .await
    }
}
