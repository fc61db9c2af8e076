//! The gateway's REST API in a cluster: the fake Kubernetes API, the operator's controllers,
//! real PostgreSQL. Who may call (401, 403, admin), the rate limit (429 + Retry-After), the
//! write path (Task objects the operator materializes), ownership between agents, and an
//! audit entry for every kind of mutation.
#![allow(clippy::unwrap_used)]

use ordinaut_api::Task;
use ordinaut_gateway::GatewayConfig;
use ordinaut_test_support::gateway::*;
use reqwest::Method;
use serde_json::{Value, json};

const BOT: &str = "bot-token-0123456789";
const OTHER: &str = "other-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_matrix_no_token_wrong_token_wrong_scope_admin() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    c.agent("team", "reader", OTHER, Some(&["tasks:read"]))
        .await;

    // No token, a malformed header, a token no one holds: 401 with a problem document.
    let (s, headers, body) = c.send(c.req(Method::GET, "/v1/tasks", "")).await;
    assert_eq!(s, 401, "{body}");
    assert_eq!(headers["content-type"], "application/problem+json");
    assert!(headers.contains_key("www-authenticate"));
    assert!(
        body["detail"].as_str().unwrap().contains("Bearer"),
        "{body}"
    );
    let (s, _, _) = c
        .send(
            c.req(Method::GET, "/v1/tasks", "")
                .header("authorization", "Basic Ym90"),
        )
        .await;
    assert_eq!(s, 401);
    let (s, body) = c.get("/v1/tasks", "not-a-token").await;
    assert_eq!(s, 401, "{body}");

    // A known agent lacking the scope: 403 naming the scope; the refusal is audited.
    let (s, body) = c.get("/v1/audit", BOT).await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("audit:read"),
        "{body}"
    );
    let (s, body) = c
        .post(
            "/v1/tasks",
            OTHER,
            json!({"name": "x", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("tasks:write"),
        "{body}"
    );

    // The right scope: 200. The admin: everything, the audit log included.
    let (s, body) = c.get("/v1/tasks", OTHER).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = c.get("/v1/audit", ADMIN).await;
    assert_eq!(s, 200, "{body}");
    let refused: Vec<&Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "task.create" && e["allowed"] == false)
        .collect();
    assert_eq!(refused.len(), 1, "{body}");
    assert_eq!(refused[0]["actor"], "agent:team/reader");
    assert_eq!(refused[0]["detail"]["outcome"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_over_its_rate_gets_429_with_retry_after() {
    let c = start(GatewayConfig {
        rate_per_second: 0.01,
        rate_burst: 3,
        ..GatewayConfig::default()
    })
    .await;
    c.agent("team", "bot", BOT, None).await;
    c.agent("team", "other", OTHER, None).await;
    for _ in 0..3 {
        assert_eq!(c.get("/v1/tasks", BOT).await.0, 200);
    }
    let (s, headers, body) = c.send(c.req(Method::GET, "/v1/tasks", BOT)).await;
    assert_eq!(s, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert_eq!(body["type"], "https://ordinaut.dev/problems/rate-limited");
    // Another agent has its own bucket.
    assert_eq!(c.get("/v1/tasks", OTHER).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_task_creates_a_task_object_the_operator_materializes() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let (s, body) = c
        .post(
            "/v1/tasks",
            BOT,
            json!({"name": "hourly", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    assert_eq!(body["agent"], "bot");
    assert_eq!(body["nextRuns"].as_array().unwrap().len(), 5, "{body}");

    // The object, as kubectl would see it: labelled with the agent, acting for it.
    let task: Task =
        serde_json::from_value(c.fake.object::<Task>("team", "hourly").unwrap()).unwrap();
    assert_eq!(task.spec.agent_ref.as_deref(), Some("bot"));
    assert_eq!(task.metadata.labels.unwrap()["ordinaut.dev/agent"], "bot");

    // The operator projects and materializes it; the gateway reads it back from PostgreSQL.
    let store = c.store.clone();
    wait_for("occurrences of team/hourly", || {
        let store = store.clone();
        async move {
            match store.task_row("team", "hourly").await.unwrap() {
                Some(row) => {
                    let n: (i64,) =
                        sqlx::query_as("SELECT count(*) FROM due_work WHERE task_uid = $1")
                            .bind(row.projection.uid)
                            .fetch_one(store.pool())
                            .await
                            .unwrap();
                    n.0 > 0
                }
                None => false,
            }
        }
    })
    .await;
    let (s, body) = c.get("/v1/tasks/team/hourly?next=3", BOT).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["state"], "active", "{body}");
    assert_eq!(body["nextRuns"].as_array().unwrap().len(), 3, "{body}");

    // A mistake names the field and the fix, as `ordinaut validate` does.
    let (s, body) = c
        .post(
            "/v1/tasks",
            BOT,
            json!({"name": "bad", "spec": echo_spec("soon")}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "spec.schedule.every", "{body}");
    assert!(c.fake.object::<Task>("team", "bad").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_sees_and_changes_only_its_own_tasks() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    c.agent("team", "other", OTHER, None).await;
    let (s, body) = c
        .post(
            "/v1/tasks",
            BOT,
            json!({"name": "mine", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let store = c.store.clone();
    wait_for("the projection of team/mine", || {
        let store = store.clone();
        async move { store.task_row("team", "mine").await.unwrap().is_some() }
    })
    .await;

    let (_, body) = c.get("/v1/tasks", OTHER).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 0, "{body}");
    assert_eq!(c.get("/v1/tasks/team/mine", OTHER).await.0, 404);
    assert_eq!(
        c.post("/v1/tasks/team/mine/pause", OTHER, json!({}))
            .await
            .0,
        404
    );
    let (s, _, _) = c
        .send(c.req(Method::DELETE, "/v1/tasks/team/mine", OTHER))
        .await;
    assert_eq!(s, 404);
    // Another namespace is refused outright.
    assert_eq!(c.get("/v1/tasks/elsewhere/mine", BOT).await.0, 403);

    let (_, body) = c.get("/v1/tasks", BOT).await;
    assert_eq!(body["items"][0]["name"], "mine", "{body}");
    let (_, body) = c.get("/v1/tasks", ADMIN).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1, "{body}");
}

/// The audit entry of `correlation` (exactly one).
async fn audit_of(c: &Cluster, correlation: &str) -> Value {
    let (_, body) = c.get("/v1/audit?limit=500", ADMIN).await;
    let found: Vec<Value> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["correlationId"] == correlation)
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "entries of {correlation}: {body}");
    found[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_mutation_is_audited_with_its_correlation_id() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let base = "/v1/tasks/team/job";
    let steps: Vec<(&str, Method, String, Value)> = vec![
        (
            "task.create",
            Method::POST,
            "/v1/tasks".into(),
            json!({"name": "job", "spec": echo_spec("1h")}),
        ),
        (
            "task.update",
            Method::PATCH,
            base.into(),
            json!({"spec": {"schedule": {"every": "30m"}}}),
        ),
        (
            "task.pause",
            Method::POST,
            format!("{base}/pause"),
            json!({}),
        ),
        (
            "task.resume",
            Method::POST,
            format!("{base}/resume"),
            json!({}),
        ),
        (
            "task.snooze",
            Method::POST,
            format!("{base}/snooze"),
            json!({"for": "2h"}),
        ),
        (
            "task.run-now",
            Method::POST,
            format!("{base}/run-now"),
            json!({}),
        ),
        (
            "task.backfill",
            Method::POST,
            format!("{base}/backfill"),
            json!({"from": "2020-01-01T00:00:00Z", "to": "2020-01-01T01:00:00Z"}),
        ),
        ("task.delete", Method::DELETE, base.into(), json!({})),
    ];
    for (i, (action, method, path, body)) in steps.into_iter().enumerate() {
        if action == "task.backfill" {
            let store = c.store.clone();
            wait_for("the projection of team/job", || {
                let store = store.clone();
                async move { store.task_row("team", "job").await.unwrap().is_some() }
            })
            .await;
        }
        let correlation = format!("test-{i}");
        let (s, headers, resp) = c
            .send(
                c.req(method, &path, BOT)
                    .header("x-correlation-id", &correlation)
                    .json(&body),
            )
            .await;
        assert!(s < 300, "{action}: {s} {resp}");
        assert_eq!(headers["x-correlation-id"], correlation.as_str());
        let entry = audit_of(&c, &correlation).await;
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["actor"], "agent:team/bot");
        assert_eq!(entry["allowed"], true, "{entry}");
        assert_eq!(entry["subject"], "job");
    }
    // Publishing an event (the admin holds `events:publish`; the agent does not).
    let (s, _, body) = c
        .send(
            c.req(Method::POST, "/v1/events", ADMIN)
                .header("x-correlation-id", "test-publish")
                .json(&json!({"topic": "orders.created", "payload": {"order": 7}})),
        )
        .await;
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["stream"], "ordinaut:topic:orders.created", "{body}");
    let entry = audit_of(&c, "test-publish").await;
    assert_eq!(entry["action"], "event.publish", "{entry}");
    assert_eq!(entry["actor"], "admin");
    let (s, body) = c
        .post("/v1/events", BOT, json!({"topic": "orders.created"}))
        .await;
    assert_eq!(s, 403, "{body}");

    // Deleted through the API: the operator's finalizer lets it go.
    let fake = c.fake.clone();
    wait_for("team/job to be gone", || {
        let gone = fake.object::<Task>("team", "job").is_none();
        async move { gone }
    })
    .await;
}

/// The preview lists what the scheduler will run: nothing before `startAt`, and an
/// occurrence exactly at `startAt` included (after it, `endAt` still bounds the list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_preview_starts_at_start_at() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    let preview = |schedule: Value| {
        let c = &c;
        async move {
            let (s, body) = c
                .post(
                    "/v1/schedule/preview",
                    BOT,
                    json!({"schedule": schedule, "count": 3}),
                )
                .await;
            assert_eq!(s, 200, "{body}");
            body["occurrences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let cron = preview(json!({"cron": "0 9 * * *", "startAt": "2030-01-01T09:00:00Z"})).await;
    assert_eq!(
        cron,
        [
            "2030-01-01T09:00:00Z",
            "2030-01-02T09:00:00Z",
            "2030-01-03T09:00:00Z"
        ]
    );
    let every = preview(json!({"every": "1h", "startAt": "2030-01-01T00:30:00Z",
                               "endAt": "2030-01-01T01:30:00Z"}))
    .await;
    assert_eq!(every, ["2030-01-01T00:30:00Z", "2030-01-01T01:30:00Z"]);
}

/// A refused call is audited where the caller stands, not in whatever namespace it named:
/// an agent cannot file entries into another team's audit log (or under a made-up name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_audited_in_the_callers_namespace() {
    let c = start(unlimited()).await;
    c.agent("team", "bot", BOT, None).await;
    for (i, asked) in ["other", "Not_A_Namespace"].iter().enumerate() {
        let correlation = format!("refused-{i}");
        let (s, _, body) = c
            .send(
                c.req(Method::POST, "/v1/tasks", BOT)
                    .header("x-correlation-id", &correlation)
                    .json(&json!({"name": "x", "namespace": asked, "spec": echo_spec("1h")})),
            )
            .await;
        assert!((400..500).contains(&s), "{s} {body}");
        let entry = audit_of(&c, &correlation).await;
        assert_eq!(entry["namespace"], "team", "{entry}");
        assert_eq!(entry["allowed"], false, "{entry}");
    }
}
