//! Pool lifecycle with real stdio servers: a server killed mid-call fails the call as
//! retryable and is restarted on the next call; timeouts and cancellation keep the
//! session; start failures back off; shutdown leaves no child process (and no zombie).
//!
//! The tests count this process's children, so they run one at a time.
#![allow(clippy::unwrap_used)]

use ordinaut_test_support::tools::{
    children, ctx, eventually, everything_stdio, gone, kill9, weather_stdio,
};
use ordinaut_tools::mcp::{McpPool, PoolConfig, ResolvedServer};
use ordinaut_tools::{CallContext, Tool, ToolError, ToolProvider};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const T: Duration = Duration::from_secs(30);

fn weather_pool() -> McpPool {
    let pool = McpPool::new(PoolConfig {
        shutdown_grace: Duration::from_secs(2),
        ..PoolConfig::default()
    });
    pool.upsert_server("ns", "weather", weather_stdio(), Vec::new());
    pool
}

async fn pid_of(pool: &McpPool) -> u64 {
    let tool = pool.get("ns", "weather.pid").unwrap();
    tool.call(json!({}), &ctx("pid", T)).await.unwrap()["pid"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn killing_the_server_mid_call_fails_retryably_then_the_pool_restarts_it() {
    let _serial = SERIAL.lock().await;
    let pool = weather_pool();
    pool.refresh_tools("ns", "weather").await.unwrap();
    let first = pid_of(&pool).await;
    assert_eq!(pool.pid("ns", "weather").await, Some(first as u32));

    let dir = std::env::temp_dir().join(format!("ordinaut-mcp-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let marker = dir.join("sleeping");
    let _ = std::fs::remove_file(&marker);
    let sleep = pool.get("ns", "weather.sleep").unwrap();
    let call = {
        let marker = marker.to_string_lossy().into_owned();
        tokio::spawn(async move {
            sleep
                .call(json!({"seconds": 60, "marker": marker}), &ctx("sleep", T))
                .await
        })
    };
    eventually(Duration::from_secs(20), "the sleep call to start", || {
        marker.exists()
    })
    .await;
    kill9(first as u32);

    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call did not fail after its server was killed")
        .unwrap()
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("killed by signal 9"), "{text}");
    assert!(text.contains("sleep"), "{text}");
    eventually(
        Duration::from_secs(30),
        "the killed server to be reaped",
        || gone(first as u32),
    )
    .await;

    // The next call starts a fresh server.
    let second = pid_of(&pool).await;
    assert_ne!(first, second);
    pool.shutdown().await;
    assert!(gone(second as u32));
    assert_eq!(children(), []);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_server_dead_between_calls_is_restarted_on_the_next_call() {
    let _serial = SERIAL.lock().await;
    let pool = weather_pool();
    pool.refresh_tools("ns", "weather").await.unwrap();
    let first = pid_of(&pool).await;
    kill9(first as u32);
    eventually(
        Duration::from_secs(30),
        "the killed server to be reaped",
        || gone(first as u32),
    )
    .await;
    let second = pid_of(&pool).await;
    assert_ne!(first, second);
    pool.shutdown().await;
    assert_eq!(children(), []);
}

#[tokio::test]
async fn timeouts_and_cancellation_end_the_call_but_keep_the_session() {
    let _serial = SERIAL.lock().await;
    let pool = weather_pool();
    pool.refresh_tools("ns", "weather").await.unwrap();
    let pid = pid_of(&pool).await;
    let sleep = pool.get("ns", "weather.sleep").unwrap();

    let err = sleep
        .call(
            json!({"seconds": 30}),
            &ctx("sleep", Duration::from_millis(300)),
        )
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::Timeout(Duration::from_millis(300)));

    let c = ctx("sleep", T);
    let cancel = c.cancel.clone();
    let call = {
        let sleep = sleep.clone();
        tokio::spawn(async move { sleep.call(json!({"seconds": 30}), &c).await })
    };
    cancel.cancel();
    assert_eq!(call.await.unwrap(), Err(ToolError::Cancelled));

    assert_eq!(pid_of(&pool).await, pid);
    pool.shutdown().await;
    assert_eq!(children(), []);
}

#[tokio::test]
async fn a_server_that_keeps_failing_to_start_is_retried_with_backoff() {
    let _serial = SERIAL.lock().await;
    let pool = McpPool::new(PoolConfig {
        backoff_base: Duration::from_secs(60),
        ..PoolConfig::default()
    });
    let python = ordinaut_test_support::tools::python();
    pool.upsert_server(
        "ns",
        "broken",
        ResolvedServer::stdio(
            python.to_string_lossy().into_owned(),
            [
                "-c",
                "import sys; sys.stderr.write('cannot start\\n'); sys.exit(4)",
            ],
        ),
        vec![ordinaut_api::DiscoveredTool {
            name: "x".into(),
            description: None,
            input_schema: None,
            output_schema: None,
        }],
    );
    let tool = pool.get("ns", "broken.x").unwrap();
    let call = || async { tool.call(json!({}), &CallContext::for_test("x")).await };

    for _ in 0..2 {
        let err = call().await.unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("exit code 4"), "{text}");
        assert!(text.contains("cannot start"), "{text}");
    }
    // Two consecutive failures: the third call does not start it again yet.
    let err = call().await.unwrap_err();
    assert!(err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("next start in"), "{text}");
    assert!(text.contains("exit code 4"), "{text}");
    pool.shutdown().await;
    assert_eq!(children(), []);
}

#[tokio::test]
async fn shutdown_ends_every_server_process_and_leaves_no_children() {
    let _serial = SERIAL.lock().await;
    let pool = weather_pool();
    pool.upsert_server("ns", "everything", everything_stdio(), Vec::new());
    pool.upsert_server("other", "everything", everything_stdio(), Vec::new());
    let mut pids = Vec::new();
    for (ns, name) in [
        ("ns", "weather"),
        ("ns", "everything"),
        ("other", "everything"),
    ] {
        pool.refresh_tools(ns, name).await.unwrap();
        pids.push(pool.pid(ns, name).await.unwrap());
    }
    let mine: Vec<u32> = children().into_iter().map(|(p, _)| p).collect();
    for pid in &pids {
        assert!(mine.contains(pid), "{pid} is not a child: {mine:?}");
    }
    // A call in flight during shutdown ends too.
    let sleep = pool.get("ns", "weather.sleep").unwrap();
    let in_flight =
        tokio::spawn(async move { sleep.call(json!({"seconds": 60}), &ctx("s", T)).await });

    pool.shutdown().await;
    for pid in &pids {
        assert!(gone(*pid), "process {pid} survived shutdown");
    }
    assert_eq!(children(), []);
    let err = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    // After shutdown, calls fail without starting anything.
    assert!(pool.get("ns", "weather.pid").is_none());
    assert_eq!(children(), []);
}

#[tokio::test]
async fn a_changed_spec_replaces_the_session_and_removal_ends_it() {
    let _serial = SERIAL.lock().await;
    let pool = weather_pool();
    pool.refresh_tools("ns", "weather").await.unwrap();
    let first = pid_of(&pool).await;
    // Same spec, new catalog: the session stays.
    let tools = pool.refresh_tools("ns", "weather").await.unwrap();
    assert_eq!(pid_of(&pool).await, first);
    // New spec (a timeout): the old process ends, the next call starts a new one.
    let mut changed = weather_stdio();
    changed.timeout = Some(Duration::from_secs(5));
    pool.upsert_server("ns", "weather", changed, tools);
    let second = pid_of(&pool).await;
    assert_ne!(first, second);
    eventually(
        Duration::from_secs(30),
        "the replaced server to exit",
        || gone(first as u32),
    )
    .await;
    pool.remove_server("ns", "weather");
    assert!(pool.get("ns", "weather.pid").is_none());
    eventually(
        Duration::from_secs(30),
        "the removed server to exit",
        || gone(second as u32),
    )
    .await;
    pool.shutdown().await;
    assert_eq!(children(), []);
}

#[tokio::test]
async fn a_tool_outliving_its_pool_fails_cleanly() {
    let _serial = SERIAL.lock().await;
    let tool: Arc<dyn Tool> = {
        let pool = weather_pool();
        pool.upsert_server(
            "ns",
            "weather",
            weather_stdio(),
            vec![ordinaut_api::DiscoveredTool {
                name: "pid".into(),
                description: None,
                input_schema: None,
                output_schema: None,
            }],
        );
        let t = pool.get("ns", "weather.pid").unwrap();
        pool.shutdown().await;
        t
    };
    let err = tool
        .call(json!({}), &CallContext::for_test("p"))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert_eq!(children(), []);
}
