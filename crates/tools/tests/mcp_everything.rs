//! The MCP bridge against `@modelcontextprotocol/server-everything` (npm), over stdio and
//! over streamable HTTP: discovery, calls through the registry, input checked against the
//! discovered schema before the call (as the worker does), and tool errors.
#![allow(clippy::unwrap_used)]

use ordinaut_pipeline::SchemaCache;
use ordinaut_test_support::tools::{HttpEverything, ctx, everything_stdio};
use ordinaut_tools::mcp::{McpError, McpPool, PoolConfig, ResolvedServer, ResolvedVar, discover};
use ordinaut_tools::{ToolError, ToolRegistry};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "team-a";
const T: Duration = Duration::from_secs(30);

/// Registers `server` as McpServer `everything` in namespace `team-a`, discovers its tools
/// through the pool, and exercises them the way the worker's executor does.
async fn exercise(server: ResolvedServer) {
    let pool = McpPool::new(PoolConfig::default());
    pool.upsert_server(NS, "everything", server, Vec::new());
    let tools = pool.refresh_tools(NS, "everything").await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in ["echo", "get-sum", "get-structured-content"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let mut registry = ordinaut_tools::builtin::registry(Default::default());
    registry.set_provider(Arc::new(pool.clone()));
    let schemas = SchemaCache::new();

    // echo: valid input passes the input schema and comes back as text.
    let echo = registry.get_in(NS, "everything.echo").unwrap();
    assert_eq!(echo.name(), "everything.echo");
    let input = json!({"message": "hello from ordinaut"});
    schemas.check(echo.input_schema().unwrap(), &input).unwrap();
    let out = echo.call(input, &ctx("echo", T)).await.unwrap();
    assert_eq!(out["text"], "Echo: hello from ordinaut", "{out}");
    assert_eq!(out["content"][0]["type"], "text");

    // get-sum ("add" in older releases).
    let sum = registry.get_in(NS, "everything.get-sum").unwrap();
    let input = json!({"a": 2, "b": 40});
    schemas.check(sum.input_schema().unwrap(), &input).unwrap();
    let out = sum.call(input, &ctx("sum", T)).await.unwrap();
    assert!(out["text"].as_str().unwrap().contains("is 42"), "{out}");

    // Schema-invalid input fails the check before any call, naming the field.
    let err = schemas
        .check(sum.input_schema().unwrap(), &json!({"a": "two", "b": 40}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/a"), "{err}");
    let err = schemas
        .check(echo.input_schema().unwrap(), &json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("message"), "{err}");

    // A tool that reports an error (the server rejects arguments it cannot use): a step
    // failure, not retryable.
    let err = sum
        .call(json!({"a": "two", "b": 40}), &ctx("sum", T))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            ToolError::Failed {
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );

    // Structured content is the output and satisfies the declared output schema.
    let weather = registry
        .get_in(NS, "everything.get-structured-content")
        .unwrap();
    let out = weather
        .call(json!({"location": "Chicago"}), &ctx("w", T))
        .await
        .unwrap();
    assert!(out["temperature"].is_number(), "{out}");
    schemas
        .check(weather.output_schema().unwrap(), &out)
        .unwrap();

    // Unknown tools and other namespaces resolve to nothing.
    assert!(registry.get_in(NS, "everything.nope").is_none());
    assert!(registry.get_in("team-b", "everything.echo").is_none());

    // Concurrent runs share the one session.
    let calls = (0..8).map(|i| {
        let echo = echo.clone();
        async move {
            echo.call(json!({"message": format!("m{i}")}), &ctx("e", T))
                .await
        }
    });
    for (i, out) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(out.unwrap()["text"], format!("Echo: m{i}"));
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn everything_over_stdio_lists_tools_and_calls_echo_and_get_sum() {
    exercise(everything_stdio()).await;
}

#[tokio::test]
async fn everything_over_streamable_http_lists_tools_and_calls_echo_and_get_sum() {
    let http = HttpEverything::start().await;
    exercise(
        ResolvedServer::http(&http.url).with_var(ResolvedVar::secret(
            "Authorization",
            "Bearer not-checked-by-this-server",
        )),
    )
    .await;
}

#[tokio::test]
async fn discover_lists_tools_with_their_schemas() {
    let tools = discover(&everything_stdio(), T).await.unwrap();
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(
        echo.description.as_deref(),
        Some("Echoes back the input string")
    );
    let schema = echo.input_schema.as_ref().unwrap();
    assert_eq!(schema["properties"]["message"]["type"], "string");
    assert_eq!(echo.output_schema, None);
    let structured = tools
        .iter()
        .find(|t| t.name == "get-structured-content")
        .unwrap();
    assert!(structured.output_schema.is_some());
}

#[tokio::test]
async fn discover_reports_exit_code_and_stderr_tail_without_secrets() {
    let python = ordinaut_test_support::tools::python();
    let server = ResolvedServer::stdio(
        python.to_string_lossy().into_owned(),
        [
            "-c",
            "import os, sys; sys.stderr.write('config missing; key was ' + os.environ['API_KEY'] + '\\n'); sys.exit(3)",
        ],
    )
    .with_var(ResolvedVar::secret("API_KEY", "sk-live-0123456789"));
    let err = discover(&server, T).await.unwrap_err();
    let McpError::Exited { status, stderr, .. } = &err else {
        panic!("expected Exited, got {err:?}")
    };
    assert_eq!(status, "exit code 3");
    assert!(stderr.contains("config missing; key was ***"), "{stderr}");
    let text = err.to_string();
    assert!(!text.contains("sk-live"), "{text}");
    assert!(text.contains("exited (exit code 3)"), "{text}");
}

#[tokio::test]
async fn discover_names_the_url_of_an_unreachable_http_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ResolvedServer::http(format!("http://127.0.0.1:{port}/mcp?token=hunter2"));
    let err = discover(&server, Duration::from_secs(10))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("HTTP server http://127.0.0.1:{port}/mcp: ")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn discover_reports_a_command_that_does_not_exist() {
    let err = discover(&ResolvedServer::stdio("/nonexistent/mcp-server", ["x"]), T)
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::Spawn { .. }), "{err:?}");
    assert!(err.to_string().contains("/nonexistent/mcp-server"), "{err}");
}

#[test]
fn registry_without_a_provider_knows_only_builtins() {
    let r: ToolRegistry = ordinaut_tools::builtin::registry(Default::default());
    assert!(r.get_in(NS, "everything.echo").is_none());
    assert!(r.get_in(NS, "core.echo").is_some());
}
