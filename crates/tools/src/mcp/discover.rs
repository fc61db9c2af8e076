//! Tool discovery for the operator (and `ordinaut dev`): connect once, list every tool,
//! disconnect.

use super::session::{Limits, Session};
use super::{McpError, ResolvedServer};
use crate::egress::EgressPolicy;
use ordinaut_api::DiscoveredTool;
use std::sync::Arc;
use std::time::Duration;

/// The tools `server` offers (name, description, input schema, output schema when given),
/// following pagination. Starts the process (stdio) or connects (HTTP) and closes it again
/// before returning. `timeout` bounds the start and `initialize`, and then `tools/list`.
///
/// The error says what failed, for the McpServer's `Ready=False` message: the process's exit
/// status and the tail of its stderr, the HTTP error, or the step that timed out.
///
/// HTTP servers are reached under [`super::pool::mcp_default_egress`]; [`discover_with`]
/// takes another policy.
pub async fn discover(
    server: &ResolvedServer,
    timeout: Duration,
) -> Result<Vec<DiscoveredTool>, McpError> {
    discover_with(
        server,
        timeout,
        &Arc::new(super::pool::mcp_default_egress()),
    )
    .await
}

/// [`discover`] under the egress policy `egress`.
pub async fn discover_with(
    server: &ResolvedServer,
    timeout: Duration,
    egress: &Arc<EgressPolicy>,
) -> Result<Vec<DiscoveredTool>, McpError> {
    let limits = Limits {
        connect_timeout: timeout,
        grace: Duration::from_secs(2),
    };
    let session = Session::connect(server, limits, egress).await?;
    let tools = session.list_tools(timeout).await;
    session.close(limits.grace).await;
    tools
}
