//! McpServer discovery through the reconcile core, against a real MCP server (server-everything
//! from npm, installed by scripts/install-test-peers.sh) and a real database: tools in the
//! status with Ready, the projection the workers read, and a clear failure for a server that
//! cannot start or a Secret that does not exist.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;

use ordinaut_api::{Agent, McpServer};
use ordinaut_operator::{
    AlwaysLeader, Context, DefinitionReconciler, Kind, MaterializeConfig, MemoryObjects,
    MemorySink, NoticeType, ReconcileError,
};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::testing::TestDb;

fn everything_js() -> String {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../crates/tools/tests/fixtures/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    assert!(
        js.exists(),
        "server-everything is not installed ({}): run `bash scripts/install-test-peers.sh`",
        js.display()
    );
    js.canonicalize().unwrap().to_string_lossy().into_owned()
}

fn object<K: serde::de::DeserializeOwned>(yaml: &str) -> K {
    serde_yaml::from_str(yaml).unwrap()
}

#[tokio::test]
async fn an_mcp_server_is_discovered_into_status_and_projected_for_workers() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let sink = Arc::new(MemorySink::default());
    let ctx = Context::new(
        store.clone(),
        Arc::new(ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap())),
        MaterializeConfig::default(),
        Arc::new(MemoryObjects::default()),
        sink.clone(),
        Arc::new(AlwaysLeader),
    );
    let defs = DefinitionReconciler::new(ctx);

    let good: McpServer = object(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: everything, namespace: default, uid: u1, generation: 1}}\n\
         spec:\n  transport:\n    stdio:\n      command: node\n      args: [\"{}\", stdio]\n",
        everything_js()
    ));
    assert!(defs.mcp_server(&good).await.unwrap());
    let status = sink
        .status_of(Kind::McpServer, "default", "everything")
        .unwrap();
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True");
    assert_eq!(status["conditions"][0]["reason"], "Discovered");
    let names: Vec<&str> = status["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"echo"), "{names:?}");
    assert!(status["tools"][0]["inputSchema"].is_object());
    let rows = store.mcp_servers().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].ready);
    assert_eq!(rows[0].tools.as_array().unwrap().len(), names.len());

    // A server whose command does not exist: Ready=False with the reason, one Warning, and
    // an error so the controller retries with backoff.
    let broken: McpServer = object(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: McpServer\nmetadata: {name: broken, namespace: default, uid: u2, generation: 1}\n\
         spec:\n  transport:\n    stdio:\n      command: /nonexistent/mcp-server\n",
    );
    let err = defs.mcp_server(&broken).await.unwrap_err();
    assert!(matches!(err, ReconcileError::Discovery { .. }), "{err}");
    let status = sink
        .status_of(Kind::McpServer, "default", "broken")
        .unwrap();
    assert_eq!(status["conditions"][0]["status"], "False");
    assert_eq!(status["conditions"][0]["reason"], "DiscoveryFailed");
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/mcp-server")
    );

    // A Secret that does not exist (no secret source here): SecretNotFound naming it.
    let secretive: McpServer = object(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: McpServer\nmetadata: {name: secretive, namespace: default, uid: u3, generation: 1}\n\
         spec:\n  transport:\n    http:\n      url: http://127.0.0.1:1/mcp\n      headers:\n        - name: Authorization\n          valueFrom: {secretKeyRef: {name: api, key: token}}\n",
    );
    assert!(defs.mcp_server(&secretive).await.is_err());
    let status = sink
        .status_of(Kind::McpServer, "default", "secretive")
        .unwrap();
    assert_eq!(status["conditions"][0]["reason"], "SecretNotFound");
    assert!(
        status["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("api")
    );
    let warnings = sink
        .notices()
        .into_iter()
        .filter(|(_, n)| n.type_ == NoticeType::Warning)
        .count();
    assert_eq!(warnings, 2);

    // Agents are projected with their scopes, and removed when deleted.
    let agent: Agent = object(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Agent\nmetadata: {name: briefer, namespace: default, uid: u4, generation: 1}\n\
         spec:\n  scopes: [\"everything.*\"]\n",
    );
    assert!(defs.agent(&agent).await.unwrap());
    let agents = store.agents().await.unwrap();
    assert_eq!(agents[0].spec["scopes"][0], "everything.*");
    defs.agent_deleted("default", "briefer").await.unwrap();
    assert!(store.agents().await.unwrap().is_empty());
}
