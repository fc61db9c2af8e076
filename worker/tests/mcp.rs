//! MCP tools from pipelines through the worker: a real MCP server (server-everything from
//! npm, installed by scripts/install-test-peers.sh) configured from the McpServer projection,
//! with the Agent's scopes checked before every call and refusals audited.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_test_support::worker::*;
use ordinaut_tools::mcp::{McpPool, PoolConfig};
use ordinaut_worker::mcp::{Agents, DefinitionSync};
use ordinaut_worker::{Executor, Metrics, Worker, WorkerConfig};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn everything_js() -> String {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/tools/tests/fixtures/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        js.exists(),
        "server-everything is not installed ({}): run `bash scripts/install-test-peers.sh`",
        js.display()
    );
    js.canonicalize().unwrap().to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipelines_call_mcp_tools_within_agent_scopes_and_refusals_are_audited() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    // The projections the operator writes: an McpServer with its discovered tools, an Agent.
    let spec: ordinaut_api::McpServerSpec = serde_yaml::from_str(&format!(
        "transport:\n  stdio:\n    command: node\n    args: [\"{}\", stdio]\n",
        everything_js()
    ))
    .unwrap();
    let resolved = ordinaut_tools::secrets::resolve_server(
        "default",
        &spec,
        &ordinaut_tools::secrets::NoSecrets,
    )
    .await
    .unwrap();
    let tools = ordinaut_tools::mcp::discover(&resolved, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"));
    store
        .upsert_mcp_server(
            "default",
            "everything",
            1,
            &serde_json::to_value(&spec).unwrap(),
            &serde_json::to_value(&tools).unwrap(),
            true,
        )
        .await
        .unwrap();
    store
        .upsert_agent(
            "default",
            "briefer",
            1,
            &json!({"scopes": ["everything.echo"]}),
        )
        .await
        .unwrap();

    let allowed = task_from_yaml(
        "echoes",
        r#"
schedule: {every: 1h}
agentRef: briefer
pipeline:
  steps:
    - id: say
      uses: everything.echo
      with: {message: "hello ${task.name}"}
"#,
    );
    let out_of_scope = task_from_yaml(
        "sums",
        r#"
schedule: {every: 1h}
agentRef: briefer
pipeline:
  steps:
    - id: add
      uses: everything.get-sum
      with: {a: 1, b: 2}
"#,
    );
    let no_agent = task_from_yaml(
        "agentless",
        r#"
schedule: {every: 1h}
pipeline:
  steps:
    - id: say
      uses: everything.echo
      with: {message: hi}
"#,
    );
    for t in [&allowed, &out_of_scope, &no_agent] {
        insert_due(&store, t, 1).await;
    }

    let pool = McpPool::new(PoolConfig::default());
    let mut registry = ordinaut_tools::builtin::registry(Default::default());
    registry.set_provider(Arc::new(pool.clone()));
    let agents = Arc::new(Agents::default());
    let mut sync = DefinitionSync::new(
        store.clone(),
        pool.clone(),
        Arc::new(ordinaut_tools::secrets::NoSecrets),
        agents.clone(),
    );
    sync.sync_once().await.unwrap();
    let mut prom = prometheus_client::registry::Registry::default();
    let worker = Worker::new(
        store.clone(),
        Arc::new(Executor::new(registry, Duration::from_secs(30))),
        WorkerConfig {
            worker_id: "mcp".into(),
            ..WorkerConfig::default()
        },
        Arc::new(Metrics::new(&mut prom)),
    )
    .with_agents(agents);
    let stop = CancellationToken::new();
    let handle = tokio::spawn(worker.run(stop.clone()));
    wait_for_count(
        &store,
        "SELECT count(*) FROM task_runs",
        3,
        Duration::from_secs(60),
    )
    .await;
    stop.cancel();
    handle.await.unwrap();
    pool.shutdown().await;

    let runs: Vec<(String, String, Option<String>, Option<serde_json::Value>)> = sqlx::query_as(
        "SELECT t.name, r.status, r.error, r.output FROM task_runs r JOIN tasks t ON t.uid = r.task_uid ORDER BY t.name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let by_name = |n: &str| runs.iter().find(|r| r.0 == n).unwrap().clone();
    let (_, status, error, output) = by_name("echoes");
    assert_eq!(status, "succeeded", "{error:?}");
    assert!(output.unwrap().to_string().contains("hello echoes"));
    let (_, status, error, _) = by_name("sums");
    assert_eq!(status, "failed");
    let error = error.unwrap();
    assert!(
        error.contains("briefer") && error.contains("everything.get-sum"),
        "{error}"
    );
    let (_, status, error, _) = by_name("agentless");
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("everything.echo"));
    // Both refusals are in the audit log; the allowed call is not a refusal.
    let audit: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT actor, subject, allowed FROM audit_log ORDER BY subject")
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(
        audit,
        [
            (
                "(no agent)".to_string(),
                "everything.echo".to_string(),
                false
            ),
            (
                "briefer".to_string(),
                "everything.get-sum".to_string(),
                false
            ),
        ]
    );
    // Each refusal carries its run's id as correlation id (the run's log lines carry it too).
    let (correlated,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_log a JOIN task_runs r ON r.id::text = a.correlation_id \
         WHERE a.action = 'tool.call' AND NOT a.allowed",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(correlated, 2);
}
