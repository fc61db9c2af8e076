//! Keeps this worker's MCP pool and the Agents' scopes in step with the projections the
//! operator writes (`mcp_servers`, `agents`), polling them every few seconds.

use chrono::{DateTime, Utc};
use ordinaut_api::{DiscoveredTool, McpServerSpec, tolerant};
use ordinaut_store::Store;
use ordinaut_tools::mcp::McpPool;
use ordinaut_tools::secrets::{SecretSource, resolve_server};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The scopes of each Agent, by (namespace, name), as last read.
#[derive(Default)]
pub struct Agents {
    scopes: RwLock<HashMap<(String, String), Vec<String>>>,
}

impl Agents {
    /// The Agent's scopes, or `None` when no valid Agent of that name exists.
    pub fn scopes(&self, namespace: &str, name: &str) -> Option<Vec<String>> {
        self.scopes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Replaces every Agent's scopes (tests and the sync).
    pub fn replace(&self, all: HashMap<(String, String), Vec<String>>) {
        *self
            .scopes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = all;
    }
}

/// The `scopes` of a projected Agent spec.
pub fn scopes_of(spec: &serde_json::Value) -> Vec<String> {
    spec.get("scopes")
        .and_then(|s| serde_json::from_value::<Vec<String>>(s.clone()).ok())
        .unwrap_or_default()
}

/// Reads the projections and applies them to the pool and the Agents.
pub struct DefinitionSync {
    store: Store,
    pool: McpPool,
    secrets: Arc<dyn SecretSource>,
    agents: Arc<Agents>,
    seen: HashMap<(String, String), (i64, DateTime<Utc>)>,
}

impl DefinitionSync {
    pub fn new(
        store: Store,
        pool: McpPool,
        secrets: Arc<dyn SecretSource>,
        agents: Arc<Agents>,
    ) -> Self {
        Self {
            store,
            pool,
            secrets,
            agents,
            seen: HashMap::new(),
        }
    }

    /// One pass: new or changed McpServers are (re)configured in the pool, removed ones
    /// are closed; Agents' scopes are replaced.
    pub async fn sync_once(&mut self) -> Result<(), ordinaut_store::StoreError> {
        let rows = self.store.mcp_servers().await?;
        let mut present = std::collections::HashSet::new();
        for row in rows {
            let key = (row.namespace.clone(), row.name.clone());
            present.insert(key.clone());
            let version = (row.generation, row.updated_at);
            if self.seen.get(&key) == Some(&version) {
                continue;
            }
            self.seen.insert(key.clone(), version);
            // Tolerant: fields a newer operator added are ignored (and logged).
            let spec: McpServerSpec = match tolerant::mcp_server_spec_from_value(&row.spec) {
                Ok((s, ignored)) => {
                    if !ignored.is_empty() {
                        tracing::info!(namespace = %row.namespace, name = %row.name, ?ignored, "McpServer fields unknown to this worker ignored");
                    }
                    s
                }
                Err(e) => {
                    tracing::warn!(namespace = %row.namespace, name = %row.name, error = %e, "unreadable McpServer projection");
                    self.pool.remove_server(&row.namespace, &row.name);
                    continue;
                }
            };
            let tools: Vec<DiscoveredTool> =
                serde_json::from_value(row.tools.clone()).unwrap_or_default();
            match resolve_server(&row.namespace, &spec, self.secrets.as_ref()).await {
                Ok(server) => {
                    tracing::info!(namespace = %row.namespace, name = %row.name, tools = tools.len(), "MCP server configured");
                    self.pool
                        .upsert_server(&row.namespace, &row.name, server, tools);
                }
                Err(e) => {
                    tracing::warn!(namespace = %row.namespace, name = %row.name, error = %e, "MCP server unusable here");
                    self.pool.remove_server(&row.namespace, &row.name);
                }
            }
        }
        let gone: Vec<_> = self
            .seen
            .keys()
            .filter(|k| !present.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            self.seen.remove(&key);
            self.pool.remove_server(&key.0, &key.1);
            tracing::info!(namespace = %key.0, name = %key.1, "MCP server removed");
        }
        let agents = self.store.agents().await?;
        let all = agents
            .into_iter()
            .map(|a| {
                let scopes = scopes_of(&a.spec);
                ((a.namespace, a.name), scopes)
            })
            .collect();
        self.agents.replace(all);
        Ok(())
    }

    /// Shares this sync, so runs can ask for a fresh read (see [`SharedSync`]).
    pub fn shared(self) -> SharedSync {
        SharedSync(Arc::new(tokio::sync::Mutex::new(self)))
    }
}

/// A [`DefinitionSync`] that the periodic loop and runs share: a run that names an MCP
/// tool or an Agent this worker has not seen yet asks for a fresh read before failing (an
/// McpServer or Agent applied a moment ago must not fail the first run that uses it).
#[derive(Clone)]
pub struct SharedSync(Arc<tokio::sync::Mutex<DefinitionSync>>);

impl SharedSync {
    /// Reads the projections now.
    pub async fn sync_now(&self) {
        if let Err(e) = self.0.lock().await.sync_once().await {
            tracing::warn!(error = %e, "reading McpServers and Agents failed");
        }
    }

    /// Syncs every `interval` until `stop`.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        loop {
            self.sync_now().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}
