//! What the gateway refuses, and how: values PostgreSQL cannot store (NUL characters, event
//! ids too long to index) are the caller's mistake (422 naming the field), never an outage
//! (503), and every such refusal is still audited; a body over 1 MiB is 413 and a path that
//! is not UTF-8 a problem document, like every other error.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use ordinaut_gateway::auth::Identity;
use ordinaut_gateway::ops::types::{ListAuditInput, ListTasksInput};
use ordinaut_gateway::ops::{Call, Ops, parse_spec, state::StateListInput};
use ordinaut_gateway::problem::OpError;
use ordinaut_gateway::writer::kube::KubeWriter;
use ordinaut_schedule::clock::SystemClock;
use ordinaut_test_support::gateway::*;
use reqwest::Method;
use serde_json::{Value, json};

const BOT: &str = "bot-token-0123456789";

/// The field and status of a refusal.
fn refused(e: OpError) -> (String, u16) {
    let status = e.status().as_u16();
    match e {
        OpError::Invalid(errors) => (errors[0].field.clone(), status),
        other => (format!("not invalid: {other}"), status),
    }
}

/// MCP tools call these operations with the arguments as given (`parse_spec`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_in_arguments_are_invalid_input_not_an_outage() {
    let c = start(unlimited()).await;
    let ops = Ops::new(
        c.store.clone(),
        Arc::new(KubeWriter::new(c.fake.client())),
        Arc::new(SystemClock),
    );
    let call = Call {
        who: Identity::admin(),
        correlation_id: "nul-args".into(),
    };
    let list_tasks: ListTasksInput = parse_spec(&json!({"cursor": "a\u{0}/b"}), "").unwrap();
    let e = ops.list_tasks(&call, list_tasks).await.unwrap_err();
    let (_, status) = refused(e.clone());
    assert_eq!(status, 422, "{e}");
    assert!(!e.to_string().contains("database error"), "{e}");
    let audit: ListAuditInput = parse_spec(&json!({"actor": "\u{0}"}), "").unwrap();
    let e = ops.list_audit(&call, audit).await.unwrap_err();
    assert_eq!(refused(e.clone()).1, 422, "{e}");
    for (field, input) in [
        ("prefix", json!({"prefix": "\u{0}"})),
        ("cursor", json!({"cursor": "agent:bot\n\u{0}"})),
    ] {
        let input: StateListInput = parse_spec(&input, "").unwrap();
        let e = ops.state_list(&call, input).await.unwrap_err();
        assert_eq!(refused(e), (field.to_string(), 422));
    }
}

/// The audit entry of `correlation`, if there is one.
async fn audit_of(c: &Cluster, correlation: &str) -> Option<Value> {
    let (s, body) = c.get("/v1/audit?limit=500", ADMIN).await;
    assert_eq!(s, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["correlationId"] == correlation)
        .cloned()
}

async fn send_json(c: &Cluster, method: Method, path: &str, token: &str, body: Value, id: &str) {
    let (s, headers, body) = c
        .send(
            c.req(method, path, token)
                .header("x-correlation-id", id)
                .json(&body),
        )
        .await;
    let field = &body["errors"][0]["field"];
    let expected = id.split('-').next_back().unwrap();
    assert_eq!((s, field.as_str()), (422, Some(expected)), "{id}: {body}");
    assert_eq!(headers["content-type"], "application/problem+json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_refuses_what_no_consumer_could_store_and_every_refusal_is_audited() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let long_id = "x".repeat(257);
    let cases = [
        (
            "nul-payload",
            json!({"topic": "orders", "payload": {"x": "\u{0}"}}),
        ),
        (
            "nul-key-payload",
            json!({"topic": "orders", "payload": [{"k\u{0}": 1}]}),
        ),
        ("long-id", json!({"topic": "orders", "id": long_id})),
        ("nul-id", json!({"topic": "orders", "id": "a\u{0}"})),
        ("nul-topic", json!({"topic": "a\u{0}b"})),
    ];
    for (id, body) in cases {
        send_json(&c, Method::POST, "/v1/events", ADMIN, body, id).await;
    }
    // A refused state write whose key holds a NUL character.
    let path = "/v1/state/team/agent:bot/a%00b";
    let body = json!({"value": 1});
    send_json(&c, Method::PUT, path, BOT, body, "nul-key").await;

    // Nothing reached the outbox; each refusal is in the audit log, NULs replaced.
    let events = c.store.unpublished_events(100).await.unwrap();
    assert!(
        events.iter().all(|e| e.event_type != "event.published"),
        "{events:?}"
    );
    for id in [
        "nul-payload",
        "nul-key-payload",
        "long-id",
        "nul-id",
        "nul-topic",
        "nul-key",
    ] {
        let entry = audit_of(&c, id)
            .await
            .unwrap_or_else(|| panic!("no audit entry for {id}"));
        assert_eq!(entry["allowed"], false, "{entry}");
        assert_eq!(entry["detail"]["outcome"], "invalid-request", "{entry}");
    }
    let entry = audit_of(&c, "nul-topic").await.unwrap();
    assert_eq!(entry["subject"], "a\u{FFFD}b", "{entry}");
    let entry = audit_of(&c, "nul-key").await.unwrap();
    assert_eq!(entry["subject"], "a\u{FFFD}b", "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413_and_a_path_that_is_not_utf8_a_problem() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    // Just over 1 MiB of valid JSON.
    let body = json!({"name": "big", "spec": {"padding": "x".repeat(1 << 20)}});
    let (s, headers, body) = c
        .send(c.req(Method::POST, "/v1/tasks", BOT).json(&body))
        .await;
    assert_eq!(s, 413, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(
        body["type"],
        "https://ordinaut.dev/problems/payload-too-large"
    );
    assert_eq!(body["status"], 413);
    assert!(body["detail"].as_str().unwrap().contains("1 MiB"), "{body}");
    // At the limit's side of it, the body is read (and refused for what it says).
    let (s, body) = c
        .post("/v1/tasks", BOT, json!({"name": "small", "spec": {}}))
        .await;
    assert_eq!(s, 422, "{body}");

    for path in ["/v1/tasks/team/%FF", "/v1/state/team/agent:bot/%FF%FE"] {
        let (s, headers, body) = c.send(c.req(Method::GET, path, BOT)).await;
        assert_eq!(s, 422, "{path}: {body}");
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(body["errors"][0]["field"], "(path)", "{body}");
    }
}
