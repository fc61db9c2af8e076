//! An agent's Tasks stay its own through updates: what the gateway writes is the spec it
//! validated, so a merge patch with `agentRef: null` (REST, MCP, or `ordinaut dev`'s folder)
//! cannot detach a Task from the agent whose budgets and scopes bound it, and an agent with
//! `tasks:all` cannot take another agent's Task. The admin may still reassign or detach.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ordinaut_api::{AgentSpec, Task};
use ordinaut_gateway::auth::Identity;
use ordinaut_gateway::ops::types::{ScheduleTaskInput, UpdateTaskInput};
use ordinaut_gateway::ops::{Call, Ops};
use ordinaut_gateway::writer::TaskWriter;
use ordinaut_gateway::writer::dir::DirWriter;
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::gateway::*;
use reqwest::Method;
use serde_json::{Value, json};

const BOT: &str = "bot-token-0123456789";
const LEAD: &str = "lead-token-0123456789";

/// The Task object as the fake Kubernetes API holds it.
fn object(c: &Cluster, name: &str) -> Task {
    serde_json::from_value(c.fake.object::<Task>("team", name).unwrap()).unwrap()
}

fn agent_label(task: &Task) -> Option<String> {
    task.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("ordinaut.dev/agent"))
        .cloned()
}

async fn patch(c: &Cluster, name: &str, token: &str, spec: Value) -> (u16, Value) {
    let path = format!("/v1/tasks/team/{name}");
    let (s, _, body) = c
        .send(
            c.req(Method::PATCH, &path, token)
                .json(&json!({"spec": spec})),
        )
        .await;
    (s, body)
}

/// A gateway whose agent `bot` (token BOT) has just created its Task `mine`.
async fn with_bots_task() -> Cluster {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let (s, body) = c
        .post(
            "/v1/tasks",
            BOT,
            json!({"name": "mine", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_agent_ref_in_an_agents_patch_does_not_detach_its_task() {
    let c = with_bots_task().await;

    let (s, body) = patch(
        &c,
        "mine",
        BOT,
        json!({"agentRef": null, "schedule": {"every": "30m"}}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["agent"], "bot", "{body}");
    let task = object(&c, "mine");
    assert_eq!(task.spec.agent_ref.as_deref(), Some("bot"), "{task:?}");
    assert_eq!(agent_label(&task).as_deref(), Some("bot"));
    assert_eq!(task.spec.schedule.every.as_deref(), Some("30m"));

    // Naming another agent is refused, and nothing is written.
    let (s, body) = patch(&c, "mine", BOT, json!({"agentRef": "lead"})).await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(object(&c, "mine").spec.agent_ref.as_deref(), Some("bot"));

    // The admin may detach it; the label follows.
    let (s, body) = patch(&c, "mine", ADMIN, json!({"agentRef": null})).await;
    assert_eq!(s, 200, "{body}");
    let task = object(&c, "mine");
    assert_eq!(task.spec.agent_ref, None);
    assert_eq!(agent_label(&task), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_tasks_all_cannot_take_another_agents_task_and_owns_what_it_rewrites() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let all = ["tasks:read", "tasks:write", "tasks:all"];
    c.agent("team", "lead", LEAD, Some(&all)).await;
    let (s, body) = c
        .post(
            "/v1/tasks",
            BOT,
            json!({"name": "bots", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let (s, body) = c
        .post(
            "/v1/tasks",
            ADMIN,
            json!({"name": "peoples", "namespace": "team", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(object(&c, "peoples").spec.agent_ref, None);

    // Another agent's Task: its spec is not the lead's to rewrite, with or without agentRef.
    for spec in [json!({"agentRef": null}), json!({"params": {"x": 1}})] {
        let (s, body) = patch(&c, "bots", LEAD, spec).await;
        assert_eq!(s, 403, "{body}");
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("acts for agent `bot`"),
            "{body}"
        );
    }
    assert_eq!(object(&c, "bots").spec.agent_ref.as_deref(), Some("bot"));
    assert!(object(&c, "bots").spec.params.is_none());

    // A Task of no agent that the lead rewrites acts for the lead from then on: the spec it
    // wrote was checked as the lead's, and it runs within the lead's scopes and budgets.
    let (s, body) = patch(&c, "peoples", LEAD, json!({"params": {"x": 1}})).await;
    assert_eq!(s, 200, "{body}");
    let task = object(&c, "peoples");
    assert_eq!(task.spec.agent_ref.as_deref(), Some("lead"));
    assert_eq!(agent_label(&task).as_deref(), Some("lead"));
}

/// `ordinaut dev`'s write path: the manifest file keeps the agent too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_folder_keeps_the_agent_ref_of_a_patched_task() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let writer = Arc::new(DirWriter::new(dir.path()));
    let ops = Ops::new(store, writer.clone(), Arc::new(SystemClock));
    let spec: AgentSpec = serde_json::from_value(json!({"scopes": ["core.*"]})).unwrap();
    let call = Call {
        who: Identity::agent("team", "bot", &spec),
        correlation_id: "test".into(),
    };
    let create = ScheduleTaskInput {
        name: "mine".into(),
        namespace: None,
        spec: echo_spec("1h"),
    };
    ops.schedule_task(&call, create).await.unwrap();
    let update = UpdateTaskInput {
        name: "mine".into(),
        namespace: None,
        spec: json!({"agentRef": null}).as_object().unwrap().clone(),
    };
    let view = ops.update_task(&call, update).await.unwrap();
    assert_eq!(view.agent.as_deref(), Some("bot"));
    let task = writer.get("team", "mine").await.unwrap().unwrap();
    assert_eq!(task.spec.agent_ref.as_deref(), Some("bot"));
    assert_eq!(agent_label(&task).as_deref(), Some("bot"));
    let file = dir.path().join("agents/team/bot/mine.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("agentRef: bot"), "{text}");
}

/// `update_task` over MCP (the official Python client) with `agentRef: null`.
const MCP_UPDATE: &str = r#"
import asyncio, sys
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

async def main(url, token):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(f"{url}/mcp", http_client=http) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            args = {"name": "mine", "spec": {"agentRef": None, "params": {"via": "mcp"}}}
            result = await s.call_tool("update_task", args)
            if result.is_error:
                raise SystemExit(f"update_task failed: {result.content[0].text}")
            print("agent", result.structured_content["agent"], flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_agent_ref_over_mcp_does_not_detach_the_task_either() {
    let c = with_bots_task().await;
    let args = ["-c", MCP_UPDATE, &c.url, BOT].map(String::from).to_vec();
    let (ok, text) = ordinaut_test_support::python::run_mcp_python(args).await;
    assert!(ok, "the agent failed:\n{text}");
    assert!(text.contains("agent bot"), "{text}");
    let task = object(&c, "mine");
    assert_eq!(task.spec.agent_ref.as_deref(), Some("bot"));
    assert_eq!(task.spec.params.unwrap()["via"], "mcp");
}
