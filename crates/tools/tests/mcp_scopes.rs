//! Scope checks in front of MCP tools: the check runs before the tool is resolved or
//! contacted, so a refused call never starts the server.
#![allow(clippy::unwrap_used)]

use ordinaut_test_support::tools::{ctx, everything_stdio};
use ordinaut_tools::mcp::{McpPool, PoolConfig};
use ordinaut_tools::{ToolError, ToolRegistry, scope};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What the worker does for each step: scope check first, then resolve and call.
async fn run_step(
    registry: &ToolRegistry,
    agent: Option<(&str, &[String])>,
    uses: &str,
    input: serde_json::Value,
) -> Result<serde_json::Value, ToolError> {
    scope::check(agent, uses)?;
    let tool = registry
        .get_in("team-a", uses)
        .ok_or_else(|| ToolError::NotFound(uses.to_string()))?;
    tool.call(input, &ctx("step", Duration::from_secs(30)))
        .await
}

#[tokio::test]
async fn out_of_scope_and_agentless_mcp_calls_are_refused_before_the_server_starts() {
    let pool = McpPool::new(PoolConfig::default());
    let tools = ordinaut_tools::mcp::discover(&everything_stdio(), Duration::from_secs(30))
        .await
        .unwrap();
    pool.upsert_server("team-a", "everything", everything_stdio(), tools);
    let mut registry = ordinaut_tools::builtin::registry(Default::default());
    registry.set_provider(Arc::new(pool.clone()));
    let scopes = vec!["weather.*".to_string(), "everything.echo".to_string()];
    let briefer = Some(("briefer", scopes.as_slice()));

    let err = run_step(
        &registry,
        briefer,
        "everything.get-sum",
        json!({"a": 1, "b": 2}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ToolError::Denied(
            "agent `briefer` may not call `everything.get-sum`: no scope matches (has: weather.*, everything.echo); add a scope such as `everything.get-sum` or `everything.*` to the Agent".into()
        )
    );
    let err = run_step(&registry, None, "everything.echo", json!({"message": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ToolError::Denied(m) if m.contains("the Task has no agent")),
        "{err:?}"
    );
    // Nothing was contacted: the pool never started the server.
    assert_eq!(pool.pid("team-a", "everything").await, None);

    // Built-ins need no agent; an in-scope MCP tool goes through.
    let out = run_step(&registry, None, "core.echo", json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!(out, json!({"a": 1}));
    let out = run_step(
        &registry,
        briefer,
        "everything.echo",
        json!({"message": "ok"}),
    )
    .await
    .unwrap();
    assert_eq!(out["text"], "Echo: ok");
    assert!(pool.pid("team-a", "everything").await.is_some());
    pool.shutdown().await;
}

#[test]
fn mcp_tool_names_resolve_only_in_their_namespace() {
    let pool = McpPool::new(PoolConfig::default());
    pool.upsert_server(
        "team-a",
        "everything",
        everything_stdio(),
        vec![ordinaut_api::DiscoveredTool {
            name: "echo".into(),
            description: Some("Echoes".into()),
            input_schema: Some(json!({"type": "object", "required": ["message"]})),
            output_schema: None,
        }],
    );
    let mut registry = ToolRegistry::new();
    registry.set_provider(Arc::new(pool));
    let echo = registry.get_in("team-a", "everything.echo").unwrap();
    assert_eq!(echo.name(), "everything.echo");
    assert_eq!(echo.description(), "Echoes");
    assert_eq!(echo.input_schema().unwrap()["required"][0], "message");
    assert!(registry.get_in("team-b", "everything.echo").is_none());
    assert!(registry.get_in("team-a", "everything").is_none());
}
