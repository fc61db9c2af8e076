//! Agent memory through the gateway: the official `mcp` Python client stores a value in one
//! MCP session and reads it in another; REST under `/v1/state` with compare-and-set, TTL
//! expiry and pages; API scopes (`state:read` / `state:write`, globs) refuse another agent's
//! keys; every write and every refusal is in the audit log with its correlation id.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use ordinaut_test_support::gateway::*;
use reqwest::Method;
use serde_json::{Value, json};

const BOT: &str = "bot-token-0123456789";
const OTHER: &str = "other-token-0123456789";
const READER: &str = "reader-token-0123456789";

async fn put(c: &Cluster, path: &str, token: &str, body: Value) -> (u16, Value) {
    let (s, _, b) = c.send(c.req(Method::PUT, path, token).json(&body)).await;
    (s, b)
}

async fn audit(c: &Cluster, action: &str) -> Vec<Value> {
    let (s, body) = c
        .get(&format!("/v1/audit?action={action}&limit=500"), ADMIN)
        .await;
    assert_eq!(s, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_mcp_client_stores_and_reads_a_value_across_two_connections() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state_agent.py");
    let args = vec![script.display().to_string(), c.url.clone(), BOT.to_string()];
    let (ok, text) = ordinaut_test_support::python::run_mcp_python(args).await;
    assert!(ok, "the agent failed:\n{text}");
    assert!(text.contains("ok"), "{text}");

    // Two writes, audited with the agent, the versions and each request's correlation id;
    // the refused create-only write too.
    let puts = audit(&c, "state.put").await;
    let mut done: Vec<&Value> = puts.iter().filter(|e| e["allowed"] == true).collect();
    done.reverse();
    assert_eq!(done.len(), 2, "{puts:?}");
    assert_eq!(done[0]["actor"], "agent:team/bot");
    assert_eq!(done[0]["subject"], "agent:bot/notes/last-report");
    assert_eq!(done[0]["detail"]["oldVersion"], Value::Null);
    assert_eq!(done[0]["detail"]["newVersion"], 1);
    assert_eq!(done[1]["detail"]["oldVersion"], 1);
    assert_eq!(done[1]["detail"]["newVersion"], 2);
    assert!(
        done.iter().all(|e| e["correlationId"].is_string()),
        "{done:?}"
    );
    let refused: Vec<&Value> = puts.iter().filter(|e| e["allowed"] == false).collect();
    assert_eq!(refused.len(), 1, "{puts:?}");
    assert_eq!(refused[0]["detail"]["outcome"], "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_refuse_another_agents_keys() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    c.agent("team", "other", OTHER, None).await;
    let narrowed = ["state:read:agent:bot/shared/*", "state:write:cursors/*"];
    c.agent("team", "reader", READER, Some(&narrowed)).await;
    for key in ["shared/plan", "private/diary"] {
        let path = format!("/v1/state/team/agent:bot/{key}");
        let (s, body) = put(&c, &path, BOT, json!({"value": key})).await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["version"], 1);
    }

    // Default scopes: own keys only. Another agent's key is refused, naming the scope to add.
    let (s, body) = c.get("/v1/state/team/agent:bot/shared/plan", OTHER).await;
    assert_eq!(s, 403, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("state:read:agent:bot/*"), "{detail}");
    let (s, body) = put(
        &c,
        "/v1/state/team/agent:bot/shared/plan",
        OTHER,
        json!({"value": "mine now"}),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = c.get("/v1/state?owner=agent:bot", OTHER).await;
    assert_eq!(
        (s, body["items"].as_array().unwrap().len()),
        (200, 0),
        "{body}"
    );
    // Another namespace: refused whatever the owner.
    let (s, body) = c.get("/v1/state/elsewhere/agent:other/k", OTHER).await;
    assert_eq!(s, 403, "{body}");

    // A glob reaches exactly the keys it matches: bot's shared/*, read only; own cursors/*.
    let (s, body) = c.get("/v1/state/team/agent:bot/shared/plan", READER).await;
    assert_eq!((s, &body["value"]), (200, &json!("shared/plan")), "{body}");
    let (s, body) = c
        .get("/v1/state/team/agent:bot/private/diary", READER)
        .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = c.get("/v1/state?owner=agent:bot", READER).await;
    assert_eq!(s, 200, "{body}");
    let keys: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["shared/plan"]);
    let (s, body) = put(
        &c,
        "/v1/state/team/agent:bot/shared/plan",
        READER,
        json!({"value": 1}),
    )
    .await;
    assert_eq!(s, 403, "{body}");
    let (s, body) = put(
        &c,
        "/v1/state/team/agent:reader/cursors/a",
        READER,
        json!({"value": 1}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = put(
        &c,
        "/v1/state/team/agent:reader/notes/b",
        READER,
        json!({"value": 1}),
    )
    .await;
    assert_eq!(s, 403, "{body}");

    // Nothing refused was written; each refusal is audited.
    let (_, body) = c.get("/v1/state/team/agent:bot/shared/plan", BOT).await;
    assert_eq!(body["version"], 1, "{body}");
    let refused: Vec<Value> = audit(&c, "state.put")
        .await
        .into_iter()
        .filter(|e| e["allowed"] == false)
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|e| e["detail"]["outcome"] == "forbidden")
    );

    // Pages name only keys the caller may read: no cursor past keys it cannot see, and
    // pages of the readable ones skip the others.
    let (s, body) = c.get("/v1/state?owner=agent:bot&limit=1", OTHER).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body, json!({"items": []}), "another owner's key names leak");
    let (s, _) = put(
        &c,
        "/v1/state/team/agent:bot/shared/todo",
        BOT,
        json!({"value": 2}),
    )
    .await;
    assert_eq!(s, 200);
    let mut keys = Vec::new();
    let mut path = "/v1/state?owner=agent:bot&limit=1".to_string();
    loop {
        let (s, body) = c.get(&path, READER).await;
        assert_eq!(s, 200, "{body}");
        for i in body["items"].as_array().unwrap() {
            keys.push(i["key"].as_str().unwrap().to_string());
        }
        let Some(cursor) = body["nextCursor"].as_str() else {
            break;
        };
        assert!(!cursor.contains("private"), "{cursor}");
        path = format!(
            "/v1/state?owner=agent:bot&limit=1&cursor={}",
            cursor.replace('\n', "%0A").replace(':', "%3A")
        );
    }
    assert_eq!(keys, ["shared/plan", "shared/todo"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_compare_and_set_ttl_expiry_and_pages() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let path = "/v1/state/team/agent:bot/lock";

    // Create-only, then a stale write: 409 naming the current version.
    let (s, body) = put(&c, path, BOT, json!({"value": "a", "ifVersion": 0})).await;
    assert_eq!((s, &body["version"]), (200, &json!(1)), "{body}");
    let (s, body) = put(&c, path, BOT, json!({"value": "b", "ifVersion": 0})).await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("current version 1"),
        "{body}"
    );
    // Mistakes name the field.
    let (s, body) = put(
        &c,
        "/v1/state/team/agent:bot/a%20b",
        BOT,
        json!({"value": 1}),
    )
    .await;
    assert_eq!(
        (s, &body["errors"][0]["field"]),
        (422, &json!("key")),
        "{body}"
    );
    let (s, body) = put(&c, path, BOT, json!({"value": 1, "ttl": "soon"})).await;
    assert_eq!(
        (s, &body["errors"][0]["field"]),
        (422, &json!("ttl")),
        "{body}"
    );

    // A TTL: present, then missing once it passed.
    let (s, body) = put(
        &c,
        path,
        BOT,
        json!({"value": "held", "ifVersion": 1, "ttl": "1s"}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    assert!(body["expiresAt"].is_string(), "{body}");
    let (s, _) = c.get(path, BOT).await;
    assert_eq!(s, 200);
    let client = c.http.clone();
    let url = format!("{}{path}", c.url);
    wait_for("the key to expire", || {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client.get(&url).bearer_auth(BOT).send().await.unwrap();
            r.status().as_u16() == 404
        }
    })
    .await;
    // Expired is missing: create-only works again, and the version goes on counting.
    let (s, body) = put(&c, path, BOT, json!({"value": "again", "ifVersion": 0})).await;
    assert_eq!((s, &body["version"]), (200, &json!(3)), "{body}");

    // Delete, then pages of a prefix.
    let (s, _, body) = c
        .send(c.req(Method::DELETE, &format!("{path}?ifVersion=3"), BOT))
        .await;
    assert_eq!((s, &body["deleted"]), (200, &json!(true)), "{body}");
    for k in ["a", "b", "c"] {
        put(
            &c,
            &format!("/v1/state/team/agent:bot/cursors/{k}"),
            BOT,
            json!({"value": k}),
        )
        .await;
    }
    let (s, first) = c.get("/v1/state?prefix=cursors/&limit=2", BOT).await;
    assert_eq!(s, 200, "{first}");
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let next = format!(
        "/v1/state?prefix=cursors/&limit=2&cursor={}",
        cursor.replace('\n', "%0A").replace(':', "%3A")
    );
    let (s, second) = c.get(&next, BOT).await;
    assert_eq!(s, 200, "{second}");
    assert_eq!(second["items"][0]["key"], "cursors/c");
    assert!(second.get("nextCursor").is_none(), "{second}");
}
