//! Resolves a step's `uses` to a tool: built-ins from a static map, MCP tools
//! (`<mcpserver>.<tool>`) from a [`ToolProvider`] that knows the namespace's McpServers.

use crate::Tool;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Tools that are not known when the registry is built: the tools of the McpServers, which
/// come and go with the cluster. A step's `<mcpserver>` is an McpServer in the Task's own
/// namespace, hence the `namespace` argument.
pub trait ToolProvider: Send + Sync {
    /// The tool `name` (`<mcpserver>.<tool>`) for a Task in `namespace`, if known.
    fn get(&self, namespace: &str, name: &str) -> Option<Arc<dyn Tool>>;
}

/// The tools a worker can call, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    provider: Option<Arc<dyn ToolProvider>>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a tool under its own name.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_string(), tool);
    }

    /// Resolves names the static map does not hold through `provider` (e.g. an
    /// [`crate::mcp::McpPool`]).
    pub fn set_provider(&mut self, provider: Arc<dyn ToolProvider>) {
        self.provider = Some(provider);
    }

    /// The registered (built-in) tool named `name`, if any. Does not consult the provider:
    /// use [`Self::get_in`] for a step's `uses`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// The tool a step of a Task in `namespace` means by `uses: name`: a registered tool,
    /// else the provider's. Names under a built-in prefix (`core.`, `http.`) never reach the
    /// provider, so an McpServer named `core` cannot stand in for a built-in.
    pub fn get_in(&self, namespace: &str, name: &str) -> Option<Arc<dyn Tool>> {
        if let Some(t) = self.tools.get(name) {
            return Some(t.clone());
        }
        if crate::scope::is_builtin(name) {
            return None;
        }
        self.provider.as_ref()?.get(namespace, name)
    }

    /// All registered tool names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("provider", &self.provider.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Knows every name, in namespace `team-a` only.
    struct OneNamespace;
    impl ToolProvider for OneNamespace {
        fn get(&self, namespace: &str, _name: &str) -> Option<Arc<dyn Tool>> {
            (namespace == "team-a").then(|| Arc::new(crate::builtin::Echo::new()) as Arc<dyn Tool>)
        }
    }

    #[test]
    fn get_in_asks_the_provider_with_the_namespace_but_never_for_builtins() {
        let mut r = crate::builtin::registry(crate::http::HttpConfig::default());
        assert!(r.get_in("team-a", "weather.now").is_none());
        r.set_provider(Arc::new(OneNamespace));
        assert!(r.get_in("team-a", "weather.now").is_some());
        assert!(r.get_in("team-b", "weather.now").is_none());
        assert_eq!(r.get_in("team-b", "core.echo").unwrap().name(), "core.echo");
        assert!(r.get_in("team-a", "core.nope").is_none());
        assert!(r.get("weather.now").is_none());
    }
}
