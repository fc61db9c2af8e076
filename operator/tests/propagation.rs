//! Changes and deletions of the objects a Task refers to, through the controllers against the
//! in-process fake API server, a real MCP server (server-everything over stdio) and real
//! PostgreSQL: a Task re-checked when its McpServer appears or goes, an McpServer's or Agent's
//! deletion reaching PostgreSQL (the projection the workers sync from) through its finalizer.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, DeleteParams, PostParams};
use ordinaut_api::constants::{AGENT_FINALIZER, MCP_SERVER_FINALIZER};
use ordinaut_api::{Agent, McpServer, Task};
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_store::Store;
use ordinaut_test_support::operator::{Running, fake_api, start_controllers, t};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

async fn start() -> Running {
    start_controllers(fake_api(), Duration::from_secs(3600), |ctx, _| ctx).await
}

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

fn object<K: serde::de::DeserializeOwned>(kind: &str, name: &str, spec: &str) -> K {
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: {kind}\nmetadata: {{name: {name}, namespace: default}}\nspec:\n{spec}"
    ))
    .unwrap()
}

fn condition(obj: &Value, type_: &str) -> Option<(String, String)> {
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
    ))
}

fn is(obj: &Value, type_: &str, status: &str, reason: &str) -> bool {
    condition(obj, type_) == Some((status.into(), reason.into()))
}

async fn mcp_rows(store: &Store) -> Vec<String> {
    store
        .mcp_servers()
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.namespace, r.name))
        .collect()
}

/// A Task refers to an McpServer that does not exist yet (Stalled, McpServerNotFound); the
/// McpServer is created and discovered, which re-checks the Task (Ready); deleting the
/// McpServer runs its finalizer (projection gone from PostgreSQL, so workers drop it) and
/// stalls the Task again.
#[tokio::test]
async fn a_task_follows_its_mcp_server_appearing_and_being_deleted() {
    let r = start().await;
    let client = r.fake.client();
    Api::<Agent>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &object("Agent", "bot", "  scopes: ['everything.*']\n"),
        )
        .await
        .unwrap();
    let tasks: Api<Task> = Api::namespaced(client.clone(), "default");
    let spec = |tool: &str| {
        format!(
            "  schedule: {{every: 15m}}\n  agentRef: bot\n  pipeline:\n    steps: [{{id: call, uses: everything.{tool}, with: {{message: hi}}}}]\n"
        )
    };
    tasks
        .create(&PostParams::default(), &object("Task", "t", &spec("echo")))
        .await
        .unwrap();
    tasks
        .create(
            &PostParams::default(),
            &object("Task", "typo", &spec("ehco")),
        )
        .await
        .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            is(o, "Stalled", "True", "McpServerNotFound")
        })
        .await
        .unwrap();

    let servers: Api<McpServer> = Api::namespaced(client.clone(), "default");
    let server: McpServer = object(
        "McpServer",
        "everything",
        &format!(
            "  transport:\n    stdio:\n      command: node\n      args: [\"{}\", stdio]\n",
            everything_js()
        ),
    );
    servers
        .create(&PostParams::default(), &server)
        .await
        .unwrap();
    let m = r
        .fake
        .wait_for_object::<McpServer>("default", "everything", WAIT, |o| {
            is(o, "Ready", "True", "Discovered")
        })
        .await
        .unwrap();
    assert_eq!(m["metadata"]["finalizers"][0], MCP_SERVER_FINALIZER);
    // The McpServer's change re-checked the Tasks: the right tool is Ready, the typo is not.
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            is(o, "Ready", "True", "Valid") && condition(o, "Stalled").is_none()
        })
        .await
        .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "typo", WAIT, |o| {
            is(o, "Stalled", "True", "ToolNotFound")
        })
        .await
        .unwrap();
    assert_eq!(mcp_rows(&r.store).await, vec!["default/everything"]);

    servers
        .delete("everything", &DeleteParams::default())
        .await
        .unwrap();
    r.fake
        .wait_for_deletion::<McpServer>("default", "everything", WAIT)
        .await
        .unwrap();
    assert!(
        mcp_rows(&r.store).await.is_empty(),
        "the workers' projection is gone"
    );
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            is(o, "Stalled", "True", "McpServerNotFound")
        })
        .await
        .unwrap();
}

/// Deleting an Agent runs its finalizer: its projection (the scopes workers check) leaves
/// PostgreSQL, and the Tasks that name it stall with AgentNotFound.
#[tokio::test]
async fn deleting_an_agent_removes_its_projection_and_stalls_its_tasks() {
    let r = start().await;
    let client = r.fake.client();
    let agents: Api<Agent> = Api::namespaced(client.clone(), "default");
    agents
        .create(
            &PostParams::default(),
            &object("Agent", "bot", "  scopes: ['x.*']\n"),
        )
        .await
        .unwrap();
    let a = r
        .fake
        .wait_for_object::<Agent>("default", "bot", WAIT, |o| {
            o["metadata"]["finalizers"][0] == AGENT_FINALIZER && condition(o, "Ready").is_some()
        })
        .await
        .unwrap();
    assert_eq!(condition(&a, "Ready").unwrap().0, "True", "{a}");
    Api::<Task>::namespaced(client.clone(), "default")
        .create(
            &PostParams::default(),
            &object(
                "Task",
                "t",
                &format!(
                    "  schedule: {{every: 15m}}\n  agentRef: bot\n{}",
                    ordinaut_test_support::operator::ECHO
                ),
            ),
        )
        .await
        .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| is(o, "Ready", "True", "Valid"))
        .await
        .unwrap();
    assert!(r.store.agent("default", "bot").await.unwrap().is_some());

    agents
        .delete("bot", &DeleteParams::default())
        .await
        .unwrap();
    r.fake
        .wait_for_deletion::<Agent>("default", "bot", WAIT)
        .await
        .unwrap();
    assert!(r.store.agent("default", "bot").await.unwrap().is_none());
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            is(o, "Stalled", "True", "AgentNotFound")
        })
        .await
        .unwrap();
}

/// A backfill annotation (`FROM/TO`, no spec change) queues the range's occurrences with
/// trigger `backfill` once, records the value in `status.handledBackfill` with a Normal
/// Event; a malformed value gets a Warning Event naming the annotation and is not retried.
#[tokio::test]
async fn a_backfill_annotation_queues_the_range_once_and_is_recorded_in_status() {
    use kube::api::{Patch, PatchParams};
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &object(
                "Task",
                "t",
                &format!(
                    "  schedule: {{every: 15m, startAt: '2024-03-10T00:00:00Z'}}\n{}",
                    ordinaut_test_support::operator::ECHO
                ),
            ),
        )
        .await
        .unwrap();
    let uid = uuid::Uuid::parse_str(created.metadata.uid.as_deref().unwrap()).unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| is(o, "Ready", "True", "Valid"))
        .await
        .unwrap();
    let backfilled = |store: Store| async move {
        store
            .task_occurrences(uid)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.2 == "backfill")
            .map(|o| o.0)
            .collect::<Vec<_>>()
    };
    let annotate = |value: &'static str| {
        let api = api.clone();
        async move {
            api.patch(
                "t",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {"ordinaut.dev/backfill": value}}})),
            )
            .await
            .unwrap();
        }
    };
    let range = "2024-03-10T08:00:00Z/2024-03-10T09:00:00Z";
    annotate(range).await;
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            o["status"]["handledBackfill"] == range
        })
        .await
        .unwrap();
    let rows = backfilled(r.store.clone()).await;
    assert_eq!(rows.len(), 5, "08:00, 08:15, 08:30, 08:45, 09:00: {rows:?}");
    assert_eq!(rows[0], t("2024-03-10T08:00:00Z"));
    let events = |fake: &FakeApiServer, type_: &str| {
        fake.objects::<k8s_openapi::api::events::v1::Event>()
            .iter()
            .filter(|e| e["type"] == type_)
            .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    assert!(events(&r.fake, "Normal").contains(&"Backfilled".to_string()));

    annotate("last week").await;
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            o["status"]["handledBackfill"] == "last week"
        })
        .await
        .unwrap();
    assert_eq!(
        events(&r.fake, "Warning"),
        vec!["InvalidBackfill".to_string()]
    );
    assert_eq!(
        backfilled(r.store.clone()).await.len(),
        5,
        "nothing more queued"
    );
    let obj = r.fake.object::<Task>("default", "t").unwrap();
    assert_eq!(
        obj["metadata"]["generation"], 1,
        "the spec was never written"
    );
}
