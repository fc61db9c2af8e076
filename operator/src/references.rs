//! The tool references of a Task, checked at reconcile time rather than at run time: every
//! step's `uses` names an McpServer that exists in the Task's namespace, a tool that server
//! listed at its last discovery, and a tool the Task's Agent scopes allow (the same check the
//! worker makes before each call, [`ordinaut_tools::scope::check`]). Built-ins (`core.*`,
//! `http.*`) need no server, only the scope check.

use std::collections::BTreeMap;
use std::sync::Arc;

use ordinaut_api::constants::reason;
use ordinaut_api::{Agent, McpServer, PipelineSpec};
use ordinaut_tools::scope;

use crate::seam::{LookupError, Objects};
use crate::validate::Problem;

/// What the tool check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ToolCheck {
    /// References a person must fix (`McpServerNotFound`, `ToolNotFound`, `ScopeDenied`).
    pub problems: Vec<Problem>,
    /// References that cannot be checked yet: the McpServer exists but has not listed its
    /// tools (`McpServerNotReady`). The operator re-checks when the McpServer's status
    /// changes.
    pub pending: Vec<Problem>,
}

/// Checks the tools `pipeline`'s steps use. `at` is the path the problems are reported under
/// for step `i` (`spec.pipeline.steps[i].uses`, or `spec.pipelineRef` for a referenced
/// Pipeline); `agent` is the Task's Agent when it has one.
pub async fn check_tools(
    objects: &dyn Objects,
    namespace: &str,
    pipeline: &PipelineSpec,
    at: &(dyn Fn(usize) -> String + Sync),
    agent: Option<&Agent>,
) -> Result<ToolCheck, LookupError> {
    let mut out = ToolCheck::default();
    let mut servers: BTreeMap<&str, Option<Arc<McpServer>>> = BTreeMap::new();
    let agent_scopes = agent.map(|a| {
        (
            a.metadata.name.as_deref().unwrap_or_default(),
            a.spec.scopes.as_slice(),
        )
    });
    for (i, step) in pipeline.steps.iter().enumerate() {
        let tool = step.uses.as_str();
        if scope::is_builtin(tool) {
            // No server to look up, but the Agent's scopes still apply to the built-ins that
            // reach beyond the run (`core.publish`, `core.state.*`, `http.*`).
            if let Err(denied) = scope::check(agent_scopes, tool) {
                out.problems.push(Problem {
                    path: at(i),
                    message: format!("step `{}`: {}", step.id, denied.reason()),
                    reason: reason::SCOPE_DENIED,
                });
            }
            continue;
        }
        // Malformed `uses` is validation's to report.
        let Some((server_name, tool_name)) = tool.split_once('.') else {
            continue;
        };
        let server = match servers.get(server_name) {
            Some(found) => found.clone(),
            None => {
                let found = objects.mcp_server(namespace, server_name).await?;
                servers.insert(server_name, found.clone());
                found
            }
        };
        let path = at(i);
        let step_id = &step.id;
        match server {
            None => out.problems.push(Problem {
                path,
                message: format!(
                    "step `{step_id}` uses `{tool}`, but McpServer `{server_name}` does not exist in namespace {namespace}; create it or fix the name"
                ),
                reason: reason::MCP_SERVER_NOT_FOUND,
            }),
            Some(server) => match catalog(&server) {
                None => out.pending.push(Problem {
                    path,
                    message: format!(
                        "step `{step_id}` uses `{tool}`; McpServer `{server_name}` has not listed its tools yet, the check waits for its discovery"
                    ),
                    reason: reason::MCP_SERVER_NOT_READY,
                }),
                Some(tools) if !tools.contains(&tool_name) => {
                    out.problems.push(Problem {
                        path,
                        message: format!(
                            "step `{step_id}` uses `{tool}`, but McpServer `{server_name}` offers no tool `{tool_name}` (it offers: {}); fix the tool name",
                            if tools.is_empty() { "none".to_string() } else { tools.join(", ") }
                        ),
                        reason: reason::TOOL_NOT_FOUND,
                    });
                }
                Some(_) => {}
            },
        }
        if let Err(denied) = scope::check(agent_scopes, tool) {
            out.problems.push(Problem {
                path: at(i),
                message: format!("step `{step_id}`: {}", denied.reason()),
                reason: reason::SCOPE_DENIED,
            });
        }
    }
    Ok(out)
}

/// The tool names an McpServer listed at its last successful discovery; `None` when it has
/// not listed them yet.
fn catalog(server: &McpServer) -> Option<Vec<&str>> {
    let status = server.status.as_ref()?;
    status.last_discovery_time?;
    Some(status.tools.iter().map(|t| t.name.as_str()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seam::MemoryObjects;

    fn server(name: &str, tools: Option<&[&str]>) -> McpServer {
        let mut m: McpServer = serde_yaml::from_str(&format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  transport: {{http: {{url: 'http://x'}}}}\n"
        ))
        .unwrap();
        if let Some(tools) = tools {
            m.status = Some(
                serde_json::from_value(serde_json::json!({
                    "lastDiscoveryTime": "2025-01-01T00:00:00Z",
                    "tools": tools.iter().map(|t| serde_json::json!({"name": t})).collect::<Vec<_>>(),
                }))
                .unwrap(),
            );
        }
        m
    }

    fn agent(scopes: &[&str]) -> Agent {
        serde_yaml::from_str(&format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Agent\nmetadata: {{name: bot, namespace: default}}\nspec:\n  scopes: {scopes:?}\n"
        ))
        .unwrap()
    }

    fn pipeline(uses: &[&str]) -> PipelineSpec {
        let steps: Vec<_> = uses
            .iter()
            .enumerate()
            .map(|(i, u)| serde_json::json!({"id": format!("s{i}"), "uses": u}))
            .collect();
        serde_json::from_value(serde_json::json!({ "steps": steps })).unwrap()
    }

    async fn check(objects: &MemoryObjects, uses: &[&str], agent: Option<&Agent>) -> ToolCheck {
        let at = |i: usize| format!("spec.pipeline.steps[{i}].uses");
        check_tools(objects, "default", &pipeline(uses), &at, agent)
            .await
            .unwrap()
    }

    fn reasons(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.reason).collect()
    }

    #[tokio::test]
    async fn each_kind_of_bad_reference_gets_its_reason_and_names_the_step() {
        let objects = MemoryObjects::default();
        objects.put_mcp_server(server("weather", Some(&["forecast"])));
        objects.put_mcp_server(server("new", None));
        let bot = agent(&["weather.*", "new.*", "gone.*"]);
        let c = check(&objects, &["core.echo", "weather.forecast"], Some(&bot)).await;
        assert_eq!(c, ToolCheck::default());

        let c = check(&objects, &["gone.x"], Some(&bot)).await;
        assert_eq!(reasons(&c.problems), vec!["McpServerNotFound"]);
        assert_eq!(c.problems[0].path, "spec.pipeline.steps[0].uses");

        let c = check(&objects, &["core.echo", "weather.rain"], Some(&bot)).await;
        assert_eq!(reasons(&c.problems), vec!["ToolNotFound"]);
        assert!(c.problems[0].message.contains("offers: forecast"), "{c:?}");
        assert_eq!(c.problems[0].path, "spec.pipeline.steps[1].uses");

        let c = check(&objects, &["weather.forecast"], Some(&agent(&["other.*"]))).await;
        assert_eq!(reasons(&c.problems), vec!["ScopeDenied"]);
        assert!(c.problems[0].message.contains("weather.*"), "{c:?}");
        let c = check(&objects, &["weather.forecast"], None).await;
        assert_eq!(reasons(&c.problems), vec!["ScopeDenied"]);

        let c = check(&objects, &["new.anything"], Some(&bot)).await;
        assert!(c.problems.is_empty());
        assert_eq!(reasons(&c.pending), vec!["McpServerNotReady"]);
    }

    /// Built-ins with effects beyond the run need the Agent's scope, and the Task says so
    /// when it is reconciled, not when it first runs; a Task without an Agent may use them.
    #[tokio::test]
    async fn builtins_beyond_the_run_are_checked_against_the_agents_scopes() {
        let objects = MemoryObjects::default();
        let narrow = agent(&["weather.*"]);
        let uses = [
            "core.echo",
            "core.publish",
            "core.state.put",
            "http.request",
        ];
        let c = check(&objects, &uses, Some(&narrow)).await;
        assert_eq!(
            reasons(&c.problems),
            vec!["ScopeDenied", "ScopeDenied", "ScopeDenied"]
        );
        assert_eq!(c.problems[0].path, "spec.pipeline.steps[1].uses");
        assert!(c.problems[1].message.contains("core.state.*"), "{c:?}");
        let wide = agent(&["core.*", "http.*"]);
        assert_eq!(
            check(&objects, &uses, Some(&wide)).await,
            ToolCheck::default()
        );
        assert_eq!(check(&objects, &uses, None).await, ToolCheck::default());
    }
}
