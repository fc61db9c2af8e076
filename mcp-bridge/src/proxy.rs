//! The MCP server side: every HTTP session's `tools/list` and `tools/call` forwarded to the
//! one stdio server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceError};

use crate::Child;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    outcome: &'static str,
}

/// `ordinaut_bridge_requests_total{method, outcome}`: requests forwarded to the server.
#[derive(Clone, Default)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
}

impl Metrics {
    /// Adds the bridge's metrics to `registry`.
    pub fn register(&self, registry: &mut prometheus_client::registry::Registry) {
        registry.register(
            "requests",
            "MCP requests forwarded to the stdio server, by method and outcome",
            self.requests.clone(),
        );
    }

    fn count<T, E>(&self, method: &'static str, result: &Result<T, E>) {
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.requests
            .get_or_create(&RequestLabels { method, outcome })
            .inc();
    }
}

/// One HTTP session's handler (cheap to clone: every session shares the child).
#[derive(Clone)]
pub struct Proxy {
    peer: Peer<RoleClient>,
    capabilities: ServerCapabilities,
    server_info: Implementation,
    instructions: Option<String>,
    alive: Arc<AtomicBool>,
    metrics: Metrics,
}

impl Proxy {
    /// Forwards to `child`.
    pub fn new(child: &Child, metrics: Metrics) -> Self {
        let info = child.info();
        Self {
            peer: child.peer().clone(),
            capabilities: ServerCapabilities::builder().enable_tools().build(),
            server_info: info.and_then(|i| i.server_info.clone()).unwrap_or_else(|| {
                Implementation::new("ordinaut-mcp-bridge", env!("CARGO_PKG_VERSION"))
            }),
            instructions: info.and_then(|i| i.instructions.clone()),
            alive: child.alive_flag(),
            metrics,
        }
    }

    /// Whether the stdio server is still running.
    pub fn alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

fn upstream(e: ServiceError) -> ErrorData {
    match e {
        // The server's own JSON-RPC error goes back unchanged.
        ServiceError::McpError(e) => e,
        e => ErrorData::internal_error(format!("the stdio MCP server: {e}"), None),
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        let mut config =
            ServerConfig::new(self.capabilities.clone()).with_server_info(self.server_info.clone());
        if let Some(i) = &self.instructions {
            config = config.with_instructions(i.clone());
        }
        config
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let result = self.peer.list_tools(request).await;
        self.metrics.count("tools/list", &result);
        result.map_err(upstream)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let result = self.peer.call_tool_once(request).await;
        self.metrics.count("tools/call", &result);
        result.map_err(upstream)
    }
}
