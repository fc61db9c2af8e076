//! Tool discovery for the operator (and `ordinaut dev`): connect once, list every tool,
//! disconnect.

use super::session::{Limits, Session};
use super::{McpError, ResolvedServer};
use ordinaut_api::DiscoveredTool;
use std::time::Duration;

/// The tools `server` offers (name, description, input schema, output schema when given),
/// following pagination. Starts the process (stdio) or connects (HTTP) and closes it again
/// before returning. `timeout` bounds the start and `initialize`, and then `tools/list`.
///
/// The error says what failed, for the McpServer's `Ready=False` message: the process's exit
/// status and the tail of its stderr, the HTTP error, or the step that timed out.
pub async fn discover(
    server: &ResolvedServer,
    timeout: Duration,
) -> Result<Vec<DiscoveredTool>, McpError> {
    let limits = Limits {
        connect_timeout: timeout,
        grace: Duration::from_secs(2),
    };
    let session = Session::connect(server, limits).await?;
    let tools = session.list_tools(timeout).await;
    session.close(limits.grace).await;
    tools
}
