//! [`McpPool`]: one live session per McpServer per worker, shared by every run.
//!
//! A session starts on the first call that needs it. A call that finds the connection broken
//! (the process died, the HTTP server went away) fails as retryable, and the next call starts
//! a fresh session; consecutive failures (failed starts, deaths without a successful call in
//! between) back off exponentially, capped, so a crashing server is not restarted in a tight
//! loop. [`McpPool::shutdown`] closes every session and waits for the processes to exit.

use super::session::{CallFailure, Limits, Session};
use super::{McpError, McpTool, ResolvedServer};
use crate::egress::{Cidr, EgressPolicy};
use crate::{CallContext, Tool, ToolError, ToolProvider};
use ordinaut_api::DiscoveredTool;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Settings of a pool, from the worker's flags.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Limit to start a server (or connect) and finish `initialize`.
    pub connect_timeout: Duration,
    /// Limit of a call when neither the step nor the McpServer sets one.
    pub default_call_timeout: Duration,
    /// Wait after the first of consecutive failures beyond the first (the first restart is
    /// immediate); doubles with each further failure.
    pub backoff_base: Duration,
    /// Longest wait between restarts.
    pub backoff_max: Duration,
    /// On close: time to exit after stdin closes, then after SIGTERM, before SIGKILL.
    pub shutdown_grace: Duration,
    /// Where streamable-HTTP servers may be reached (checked on the resolved address at
    /// connect time; redirects are not followed). Default: [`mcp_default_egress`].
    pub egress: Arc<EgressPolicy>,
}

/// The default egress policy for MCP over HTTP: McpServers are written by administrators and
/// in-cluster servers live at private Service addresses, so loopback, private and CGNAT
/// ranges are allowed; link-local (cloud metadata at 169.254.169.254), unspecified,
/// multicast and reserved addresses stay refused. `--mcp-allow-networks` replaces the list.
pub fn mcp_default_egress() -> EgressPolicy {
    let allow = [
        "127.0.0.0/8",
        "::1",
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "fc00::/7",
    ]
    .iter()
    .filter_map(|n| n.parse::<Cidr>().ok())
    .collect();
    EgressPolicy::allowing(allow)
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(30),
            default_call_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(3),
            egress: Arc::new(mcp_default_egress()),
        }
    }
}

impl PoolConfig {
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            connect_timeout: self.connect_timeout,
            grace: self.shutdown_grace,
        }
    }

    /// Wait before the next start after `failures` consecutive failures: none after the
    /// first, then base, 2×base, 4×base… capped at `backoff_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures - 2);
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

/// The MCP servers a worker may call, and their live sessions. Cheap to clone (shared).
#[derive(Clone)]
pub struct McpPool {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: PoolConfig,
    servers: StdMutex<HashMap<(String, String), Arc<Entry>>>,
    /// Sessions being closed in the background (replaced, removed, dead); shutdown waits.
    closing: StdMutex<Vec<JoinHandle<()>>>,
    shutdown: CancellationToken,
}

struct Entry {
    namespace: String,
    name: String,
    server: ResolvedServer,
    tools: BTreeMap<String, Arc<McpTool>>,
    /// Shared between entries that differ only in their tool catalog.
    state: Arc<SessionState>,
}

#[derive(Default)]
struct SessionState {
    slot: tokio::sync::Mutex<Slot>,
    /// Consecutive failures; a successful call resets it.
    failures: AtomicU32,
}

#[derive(Default)]
enum Slot {
    #[default]
    Idle,
    Live(Arc<Session>),
    /// No start before `until`; `error` says why the last attempt failed.
    Waiting {
        until: Instant,
        error: String,
    },
}

impl McpPool {
    pub fn new(config: PoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                servers: StdMutex::new(HashMap::new()),
                closing: StdMutex::new(Vec::new()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Adds or updates the McpServer `namespace/name` and the tools it offers (from its
    /// status, as discovered). A changed transport or timeout closes the live session (in
    /// the background); the next call starts the new one. A changed catalog alone keeps it.
    /// Call it inside a Tokio runtime (closing runs as a task).
    pub fn upsert_server(
        &self,
        namespace: &str,
        name: &str,
        server: ResolvedServer,
        tools: Vec<DiscoveredTool>,
    ) {
        let key = (namespace.to_string(), name.to_string());
        let mut servers = self.inner.lock_servers();
        let state = match servers.get(&key) {
            Some(old) if old.server == server => old.state.clone(),
            Some(old) => {
                self.inner.close_in_background(old.state.clone());
                Arc::new(SessionState::default())
            }
            None => Arc::new(SessionState::default()),
        };
        let tools = tools
            .into_iter()
            .map(|t| {
                let tool = McpTool::new(namespace, name, t, Arc::downgrade(&self.inner));
                (tool.tool_name().to_string(), Arc::new(tool))
            })
            .collect();
        servers.insert(
            key,
            Arc::new(Entry {
                namespace: namespace.to_string(),
                name: name.to_string(),
                server,
                tools,
                state,
            }),
        );
    }

    /// Forgets the McpServer `namespace/name` and closes its session (in the background).
    pub fn remove_server(&self, namespace: &str, name: &str) {
        let removed = self
            .inner
            .lock_servers()
            .remove(&(namespace.to_string(), name.to_string()));
        if let Some(entry) = removed {
            self.inner.close_in_background(entry.state.clone());
        }
    }

    /// Lists the tools through the pooled session (starting it if needed) and makes them the
    /// server's catalog. For `ordinaut dev` and tests; in a cluster the catalog comes from the
    /// McpServer status that the operator wrote with [`super::discover`].
    pub async fn refresh_tools(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<DiscoveredTool>, McpError> {
        let entry = self
            .inner
            .entry(namespace, name)
            .ok_or_else(|| McpError::UnknownServer(format!("{namespace}/{name}")))?;
        let session = self.inner.session(&entry).await.map_err(|e| match e {
            Started::Failed(e) => e,
            Started::Waiting(message) => McpError::Protocol {
                target: entry.server.target(),
                what: "starting".into(),
                reason: message,
                stderr: String::new(),
            },
        })?;
        let tools = session
            .list_tools(self.inner.config.connect_timeout)
            .await?;
        self.upsert_server(namespace, name, entry.server.clone(), tools.clone());
        Ok(tools)
    }

    /// The tool `tool` of McpServer `namespace/server`, if the catalog has it.
    pub fn tool(&self, namespace: &str, server: &str, tool: &str) -> Option<Arc<McpTool>> {
        self.inner
            .entry(namespace, server)?
            .tools
            .get(tool)
            .cloned()
    }

    /// The process id of the live stdio session of `namespace/name`, if any.
    pub async fn pid(&self, namespace: &str, name: &str) -> Option<u32> {
        let entry = self.inner.entry(namespace, name)?;
        match &*entry.state.slot.lock().await {
            Slot::Live(s) => s.pid(),
            _ => None,
        }
    }

    /// Closes every session and waits until their processes have exited (closing stdin,
    /// then SIGTERM, then SIGKILL to each process group, `shutdown_grace` apart). Later
    /// calls fail with a retryable error.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let entries: Vec<_> = self.inner.lock_servers().drain().map(|(_, e)| e).collect();
        for entry in entries {
            self.inner.close_in_background(entry.state.clone());
        }
        loop {
            let pending: Vec<_> = match self.inner.closing.lock() {
                Ok(mut c) => c.drain(..).collect(),
                Err(_) => Vec::new(),
            };
            if pending.is_empty() {
                break;
            }
            for handle in pending {
                let _ = handle.await;
            }
        }
    }
}

impl ToolProvider for McpPool {
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<dyn Tool>> {
        // McpServer names cannot contain '.', so the first '.' ends the server name.
        let (server, tool) = name.split_once('.')?;
        self.tool(namespace, server, tool)
            .map(|t| t as Arc<dyn Tool>)
    }
}

impl std::fmt::Debug for McpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let servers = self.inner.lock_servers();
        f.debug_list()
            .entries(servers.keys().map(|(ns, n)| format!("{ns}/{n}")))
            .finish()
    }
}

/// Why no session could be had.
enum Started {
    Failed(McpError),
    /// Backing off after failures; the message says until when and why.
    Waiting(String),
}

impl Inner {
    fn lock_servers(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Arc<Entry>>> {
        // A panic while holding this lock cannot leave the map inconsistent (single inserts
        // and removes), so a poisoned lock is still usable.
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entry(&self, namespace: &str, name: &str) -> Option<Arc<Entry>> {
        self.lock_servers()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    fn close_in_background(&self, state: Arc<SessionState>) {
        let grace = self.config.shutdown_grace;
        let handle = tokio::spawn(async move {
            let old = std::mem::take(&mut *state.slot.lock().await);
            if let Slot::Live(session) = old {
                session.close(grace).await;
            }
        });
        if let Ok(mut closing) = self.closing.lock() {
            closing.retain(|h| !h.is_finished());
            closing.push(handle);
        }
    }

    /// The live session of `entry`, started if needed (one start at a time per server:
    /// concurrent callers wait for it).
    async fn session(&self, entry: &Entry) -> Result<Arc<Session>, Started> {
        let mut slot = entry.state.slot.lock().await;
        if self.shutdown.is_cancelled() {
            return Err(Started::Failed(McpError::ShutDown));
        }
        match &*slot {
            Slot::Live(s) if s.is_alive() => return Ok(s.clone()),
            Slot::Live(s) => {
                // Died since the last call (noticed by the process supervisor).
                let dead = s.clone();
                *slot = self.after_death(entry, dead, "the process exited".into());
                if let Slot::Waiting { until, .. } = &*slot
                    && Instant::now() < *until
                {
                    return Err(Started::Waiting(format!(
                        "MCP server `{}/{}` died again; next start in {:.1}s",
                        entry.namespace,
                        entry.name,
                        until
                            .saturating_duration_since(Instant::now())
                            .as_secs_f64()
                    )));
                }
            }
            Slot::Waiting { until, error } if Instant::now() < *until => {
                let left = until.saturating_duration_since(Instant::now());
                return Err(Started::Waiting(format!(
                    "MCP server `{}/{}` is unavailable after {} consecutive failures (last: {error}); next start in {:.1}s",
                    entry.namespace,
                    entry.name,
                    entry.state.failures.load(Ordering::SeqCst),
                    left.as_secs_f64()
                )));
            }
            _ => {}
        }
        if self.shutdown.is_cancelled() {
            return Err(Started::Failed(McpError::ShutDown));
        }
        let started = tokio::select! {
            r = Session::connect(&entry.server, self.config.limits(), &self.config.egress) => r,
            () = self.shutdown.cancelled() => Err(McpError::ShutDown),
        };
        match started {
            Ok(session) => {
                let session = Arc::new(session);
                tracing::info!(
                    namespace = %entry.namespace,
                    mcpserver = %entry.name,
                    pid = ?session.pid(),
                    "MCP session started"
                );
                *slot = Slot::Live(session.clone());
                Ok(session)
            }
            Err(error) => {
                let failures = entry.state.failures.fetch_add(1, Ordering::SeqCst) + 1;
                let wait = self.config.backoff(failures);
                tracing::warn!(
                    namespace = %entry.namespace,
                    mcpserver = %entry.name,
                    failures,
                    retry_in = ?wait,
                    error = %error,
                    "MCP server failed to start"
                );
                *slot = Slot::Waiting {
                    until: Instant::now() + wait,
                    error: error.to_string(),
                };
                Err(Started::Failed(error))
            }
        }
    }

    fn track(&self, handle: JoinHandle<()>) {
        if let Ok(mut closing) = self.closing.lock() {
            closing.retain(|h| !h.is_finished());
            closing.push(handle);
        }
    }

    /// Marks `session` dead (if it is still the live one) and closes it in the background;
    /// the next call starts a new one.
    async fn discard(&self, entry: &Entry, session: &Arc<Session>, message: String) {
        let mut slot = entry.state.slot.lock().await;
        if matches!(&*slot, Slot::Live(s) if Arc::ptr_eq(s, session)) {
            *slot = self.after_death(entry, session.clone(), message);
        }
    }

    /// Closes a dead session in the background and says when the next start may happen:
    /// at once after a first failure, later after consecutive ones.
    fn after_death(&self, entry: &Entry, dead: Arc<Session>, message: String) -> Slot {
        let failures = entry.state.failures.fetch_add(1, Ordering::SeqCst) + 1;
        let grace = self.config.shutdown_grace;
        self.track(tokio::spawn(async move { dead.close(grace).await }));
        Slot::Waiting {
            until: Instant::now() + self.config.backoff(failures),
            error: message,
        }
    }

    /// Calls `tool` of `namespace/server` with `input` (a JSON object).
    pub(crate) async fn call(
        &self,
        namespace: &str,
        server: &str,
        tool: &str,
        input: Value,
        ctx: &CallContext,
    ) -> Result<Value, ToolError> {
        let arguments = match input {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(ToolError::InvalidInput(format!(
                    "the input of an MCP tool must be an object, not {}",
                    type_name(&other)
                )));
            }
        };
        let entry = self.entry(namespace, server).ok_or_else(|| {
            ToolError::retryable(format!(
                "McpServer `{namespace}/{server}` is not known to this worker (yet)"
            ))
        })?;
        let session = tokio::select! {
            s = self.session(&entry) => s,
            () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
        };
        let session = session.map_err(|e| match e {
            Started::Failed(e) => ToolError::retryable(e.to_string()),
            Started::Waiting(message) => ToolError::retryable(message),
        })?;
        let timeout = ctx
            .timeout
            .or(entry.server.timeout)
            .unwrap_or(self.config.default_call_timeout);
        match session.call(tool, arguments, timeout, &ctx.cancel).await {
            Ok(out) => {
                entry.state.failures.store(0, Ordering::SeqCst);
                Ok(out)
            }
            Err(CallFailure::Tool(e)) => {
                if !matches!(e, ToolError::Timeout(_) | ToolError::Cancelled) {
                    // The server answered: it is healthy.
                    entry.state.failures.store(0, Ordering::SeqCst);
                }
                Err(e)
            }
            Err(CallFailure::Broken(message)) => {
                tracing::warn!(
                    namespace = %namespace,
                    mcpserver = %server,
                    tool = %tool,
                    "MCP session lost; it restarts on the next call"
                );
                self.discard(&entry, &session, message.clone()).await;
                Err(ToolError::retryable(message))
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The pool as seen from an [`McpTool`]: it may outlive the pool.
pub(crate) type PoolRef = Weak<Inner>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_restarts_at_once_then_doubles_up_to_the_cap() {
        let c = PoolConfig {
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(4),
            ..PoolConfig::default()
        };
        let waits: Vec<_> = (0..8).map(|n| c.backoff(n).as_millis()).collect();
        assert_eq!(waits, [0, 0, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(4));
    }
}
