//! Agent scopes: globs over tool names (`weather.*`, `everything.echo`, `*`), and the check
//! every tool call passes before the tool is contacted.

/// Built-in tools live under these prefixes; a Task without an Agent may use only them.
pub const BUILTIN_PREFIXES: &[&str] = &["core.", "http."];

/// Built-ins that reach the network: an Agent needs a scope for them like for any tool
/// (a Task without an Agent may call them only where the worker allows it:
/// `--http-allow-agentless`, checked by the tool).
pub const NETWORK_BUILTIN_PREFIXES: &[&str] = &["http."];

/// `true` if `tool` is a built-in that reaches the network.
pub fn reaches_network(tool: &str) -> bool {
    NETWORK_BUILTIN_PREFIXES.iter().any(|p| tool.starts_with(p))
}

/// Built-ins inside the worker whose effects outlive the run: events other Tasks act on
/// (`core.publish`) and the Agent's memory (`core.state.*`). An Agent needs a scope for them
/// like for any tool (`core.publish`, `core.state.*` or `core.*`); a Task without an Agent
/// may call them (its keys and events are its own). Globs.
pub const SCOPED_CORE_TOOLS: &[&str] = &["core.publish", "core.state.*"];

/// `true` if a Task with an Agent needs a scope matching `tool` to call it: every tool but
/// the built-ins that touch nothing beyond the run (`core.echo`, `core.sleep`, `core.fail`).
pub fn needs_scope(tool: &str) -> bool {
    !is_builtin(tool)
        || reaches_network(tool)
        || SCOPED_CORE_TOOLS.iter().any(|g| glob_match(g, tool))
}

/// `true` if `tool` is a built-in.
pub fn is_builtin(tool: &str) -> bool {
    BUILTIN_PREFIXES.iter().any(|p| tool.starts_with(p))
}

/// Matches a glob with `*` (any run of characters, dots included) and `?` (one character).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice, no recursion.
    let (mut pi, mut ti) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A refused tool call: who asked, for what, and what they have. Its `Display` is the
/// message for the step failure and the `audit_log` reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub struct ScopeDenied {
    /// The Task's agent; `None` when the Task has none.
    pub agent: Option<String>,
    /// The tool asked for (`<mcpserver>.<tool>`).
    pub tool: String,
    /// The agent's scopes.
    pub scopes: Vec<String>,
}

impl ScopeDenied {
    /// Scopes that would allow the call: the tool itself, its group's wildcard for a
    /// built-in in a group (`core.state.*`), and its server's wildcard.
    pub fn suggested_scopes(&self) -> Vec<String> {
        let mut out = vec![self.tool.clone()];
        if is_builtin(&self.tool)
            && let Some((group, _)) = self.tool.rsplit_once('.')
            && group.contains('.')
        {
            out.push(format!("{group}.*"));
        }
        if let Some((server, _)) = self.tool.split_once('.') {
            out.push(format!("{server}.*"));
        }
        out
    }

    /// Why the call was refused and how to allow it.
    pub fn reason(&self) -> String {
        let suggestion = self
            .suggested_scopes()
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" or ");
        match &self.agent {
            Some(agent) => {
                let has = if self.scopes.is_empty() {
                    "none".to_string()
                } else {
                    self.scopes.join(", ")
                };
                format!(
                    "agent `{agent}` may not call `{}`: no scope matches (has: {has}); add a scope such as {suggestion} to the Agent",
                    self.tool
                )
            }
            None => format!(
                "`{}` is not a built-in tool and the Task has no agent: a Task without an agent may use only built-ins ({}); set the Task's agent to an Agent with a scope such as {suggestion}",
                self.tool,
                BUILTIN_PREFIXES
                    .iter()
                    .map(|p| format!("{p}*"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

impl From<ScopeDenied> for crate::ToolError {
    fn from(d: ScopeDenied) -> Self {
        crate::ToolError::Denied(d.reason())
    }
}

/// Whether a Task may call `tool`. Built-ins that touch nothing beyond the run
/// (`core.echo`, `core.sleep`, `core.fail`) are always allowed. A Task without an agent
/// (`None`) may use only built-ins (secure default; network built-ins then decide themselves,
/// see [`NETWORK_BUILTIN_PREFIXES`]). With an agent (`(name, scopes)`), any other tool
/// ([`needs_scope`]: MCP tools, network built-ins, [`SCOPED_CORE_TOOLS`]) must match one of
/// its scope globs. Call it before the tool is contacted; the worker writes a refusal (its
/// [`ScopeDenied::reason`]) to `audit_log`.
pub fn check(agent: Option<(&str, &[String])>, tool: &str) -> Result<(), ScopeDenied> {
    if !needs_scope(tool) {
        return Ok(());
    }
    match agent {
        Some((_, scopes)) if scopes.iter().any(|s| glob_match(s, tool)) => Ok(()),
        None if is_builtin(tool) => Ok(()),
        _ => Err(ScopeDenied {
            agent: agent.map(|(name, _)| name.to_string()),
            tool: tool.to_string(),
            scopes: agent.map(|(_, s)| s.to_vec()).unwrap_or_default(),
        }),
    }
}

/// The first of `scopes` that allows `tool` (for an audit line on allowed calls), or
/// `None` (the built-ins [`needs_scope`] exempts need none).
pub fn matching_scope<'a>(scopes: &'a [String], tool: &str) -> Option<&'a str> {
    scopes
        .iter()
        .find(|s| glob_match(s, tool))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn check_refuses_a_tool_outside_the_agents_scopes_naming_agent_tool_and_fix() {
        let has = scopes(&["weather.*", "everything.echo"]);
        assert_eq!(check(Some(("briefer", &has)), "weather.now"), Ok(()));
        assert_eq!(check(Some(("briefer", &has)), "everything.echo"), Ok(()));
        let denied = check(Some(("briefer", &has)), "fs.write_file").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "agent `briefer` may not call `fs.write_file`: no scope matches (has: weather.*, everything.echo); add a scope such as `fs.write_file` or `fs.*` to the Agent"
        );
        let denied = check(Some(("idle", &[])), "fs.read").unwrap_err();
        assert!(denied.to_string().contains("(has: none)"), "{denied}");
        assert_eq!(matching_scope(&has, "weather.now"), Some("weather.*"));
    }

    #[test]
    fn check_allows_only_builtins_without_an_agent() {
        assert_eq!(check(None, "core.echo"), Ok(()));
        assert_eq!(check(None, "http.request"), Ok(()));
        assert_eq!(check(Some(("a", &[])), "core.sleep"), Ok(()));
        assert!(!reaches_network("core.echo"));
        let denied = check(None, "everything.echo").unwrap_err();
        assert_eq!(denied.agent, None);
        assert!(
            denied
                .to_string()
                .starts_with("`everything.echo` is not a built-in tool and the Task has no agent"),
            "{denied}"
        );
        let err: crate::ToolError = denied.into();
        assert!(matches!(err, crate::ToolError::Denied(_)));
    }

    #[test]
    fn network_builtins_need_a_scope_when_the_task_has_an_agent() {
        let denied = check(Some(("briefer", &scopes(&["weather.*"]))), "http.request").unwrap_err();
        assert!(
            denied
                .to_string()
                .contains("add a scope such as `http.request` or `http.*`"),
            "{denied}"
        );
        assert_eq!(
            check(
                Some(("briefer", &scopes(&["http.request"]))),
                "http.request"
            ),
            Ok(())
        );
        assert_eq!(
            check(Some(("all", &scopes(&["*"]))), "http.request"),
            Ok(())
        );
    }

    /// `core.publish` and `core.state.*` reach beyond the run (events, the Agent's memory):
    /// an Agent needs a scope for them; a Task without one keeps using them.
    #[test]
    fn publish_and_state_built_ins_need_a_scope_when_the_task_has_an_agent() {
        let weather = scopes(&["weather.*"]);
        for tool in ["core.publish", "core.state.get", "core.state.put"] {
            let denied = check(Some(("briefer", &weather)), tool).unwrap_err();
            assert_eq!(denied.tool, tool);
            assert_eq!(check(None, tool), Ok(()), "{tool} without an agent");
            assert_eq!(check(Some(("all", &scopes(&["core.*"]))), tool), Ok(()));
            assert_eq!(check(Some(("one", &scopes(&[tool]))), tool), Ok(()));
            assert_eq!(check(Some(("echo", &weather)), "core.echo"), Ok(()));
        }
        let denied = check(Some(("briefer", &weather)), "core.publish").unwrap_err();
        assert!(
            denied
                .reason()
                .ends_with("add a scope such as `core.publish` or `core.*` to the Agent"),
            "{denied}"
        );
        let denied = check(Some(("briefer", &weather)), "core.state.put").unwrap_err();
        assert!(
            denied
                .reason()
                .contains("`core.state.put` or `core.state.*` or `core.*`"),
            "{denied}"
        );
        assert_eq!(
            check(Some(("s", &scopes(&["core.state.*"]))), "core.state.get"),
            Ok(())
        );
        assert!(check(Some(("s", &scopes(&["core.state.*"]))), "core.publish").is_err());
        assert!(!needs_scope("core.sleep") && needs_scope("weather.now"));
    }

    #[test]
    fn globs_match_tool_names() {
        assert!(glob_match("weather.*", "weather.forecast"));
        assert!(!glob_match("weather.*", "weatherman.forecast"));
        assert!(glob_match("everything.echo", "everything.echo"));
        assert!(!glob_match("everything.echo", "everything.echo2"));
        assert!(glob_match("*", "anything.at_all"));
        assert!(glob_match("*.read_*", "fs.read_file"));
        assert!(glob_match("fs.?ead", "fs.read"));
        assert!(!glob_match("", "x"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-b-y"));
    }

    #[test]
    fn builtins_are_recognised_by_prefix() {
        assert!(is_builtin("core.echo"));
        assert!(is_builtin("http.request"));
        assert!(!is_builtin("corex.echo"));
        assert!(!is_builtin("weather.now"));
    }
}
