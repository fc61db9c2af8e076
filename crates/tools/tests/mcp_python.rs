//! The MCP bridge against a server written with the official Python `mcp` package
//! (tests/fixtures/weather_server.py): paginated discovery, output checked against the
//! tool's output schema (a wrong output fails the step), `isError` results.
#![allow(clippy::unwrap_used)]

use ordinaut_pipeline::SchemaCache;
use ordinaut_test_support::tools::{ctx, weather_stdio};
use ordinaut_tools::mcp::{McpPool, PoolConfig, discover};
use ordinaut_tools::{ToolError, ToolProvider};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn discovery_follows_next_cursor_across_pages() {
    // The fixture lists one tool per page.
    let tools = discover(&weather_stdio(), T).await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["forecast", "sleep", "pid", "fail"]);
    let forecast = &tools[0];
    assert_eq!(
        forecast.output_schema.as_ref().unwrap()["properties"]["tempC"]["type"],
        "number"
    );
}

#[tokio::test]
async fn output_breaking_the_declared_output_schema_fails_the_check() {
    let pool = McpPool::new(PoolConfig::default());
    pool.upsert_server("ns", "weather", weather_stdio(), Vec::new());
    pool.refresh_tools("ns", "weather").await.unwrap();
    let forecast = pool.get("ns", "weather.forecast").unwrap();
    let schemas = SchemaCache::new();
    let schema = forecast.output_schema().unwrap();

    let good = forecast
        .call(json!({"city": "Oslo"}), &ctx("f", T))
        .await
        .unwrap();
    assert_eq!(
        good,
        json!({"city": "Oslo", "tempC": 21.5, "conditions": "sunny"})
    );
    schemas.check(schema, &good).unwrap();

    let bad = forecast
        .call(json!({"city": "Oslo", "broken": true}), &ctx("f", T))
        .await
        .unwrap();
    let err = schemas.check(schema, &bad).unwrap_err().to_string();
    assert!(err.contains("/tempC"), "{err}");
    assert!(err.contains("type"), "{err}");
    pool.shutdown().await;
}

#[tokio::test]
async fn is_error_result_is_a_non_retryable_failure_with_the_text() {
    let pool = McpPool::new(PoolConfig::default());
    pool.upsert_server("ns", "weather", weather_stdio(), Vec::new());
    pool.refresh_tools("ns", "weather").await.unwrap();
    let fail = pool.get("ns", "weather.fail").unwrap();
    let err = fail
        .call(json!({"message": "no such city"}), &ctx("f", T))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ToolError::Failed {
            message: "no such city".into(),
            retryable: false
        }
    );
    // The session survives a tool error.
    let pid = pool.pid("ns", "weather").await.unwrap();
    let out = pool
        .get("ns", "weather.pid")
        .unwrap()
        .call(json!({}), &ctx("p", T))
        .await
        .unwrap();
    assert_eq!(out["pid"], pid);
    pool.shutdown().await;
}
