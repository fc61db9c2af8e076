//! Agents through the controllers, against the in-process fake API server and real
//! PostgreSQL: an Agent is Ready only when its token Secret exists (read through the API), an
//! Agent without `tokenSecretRef` is Ready, and a new run-now annotation value is audited
//! with a correlation id.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use ordinaut_api::{Agent, Task};
use ordinaut_operator::k8s::KubeSecrets;
use ordinaut_test_support::operator::*;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

async fn start() -> Running {
    // A short tick: Agents waiting for their Secret are checked again every tick.
    start_controllers(fake_api(), Duration::from_millis(200), |ctx, client| {
        ctx.with_secrets(Arc::new(KubeSecrets::new(client.clone())))
    })
    .await
}

fn ready(obj: &Value) -> Option<(String, String, String)> {
    ordinaut_test_support::operator::ready_condition(obj)
}

fn agent(name: &str, token: bool) -> Agent {
    let token = if token {
        "  tokenSecretRef: {name: bot-token, key: token}\n"
    } else {
        ""
    };
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Agent\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  scopes: [\"core.*\"]\n  budgets: {{concurrentRuns: 1}}\n{token}"
    ))
    .unwrap()
}

#[tokio::test]
async fn an_agent_is_ready_only_when_its_token_secret_exists() {
    let r = start().await;
    let agents: Api<Agent> = Api::namespaced(r.fake.client(), "default");
    agents
        .create(&PostParams::default(), &agent("bot", true))
        .await
        .unwrap();
    agents
        .create(&PostParams::default(), &agent("tokenless", false))
        .await
        .unwrap();

    let obj = r
        .fake
        .wait_for_object::<Agent>("default", "bot", WAIT, |o| ready(o).is_some())
        .await
        .unwrap();
    let (status, reason, message) = ready(&obj).unwrap();
    assert_eq!(status, "False");
    assert_eq!(reason, "TokenSecretNotFound");
    for needle in [
        "bot-token",
        "`token`",
        "kubectl create secret",
        "Tasks still run",
    ] {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    // Its Tasks still run under its scopes and budgets: it stays projected.
    let deadline = tokio::time::Instant::now() + WAIT;
    while r.store.agent("default", "bot").await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Agent was not projected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An Agent without tokenSecretRef is Ready: it just cannot use the gateway.
    let obj = r
        .fake
        .wait_for_object::<Agent>("default", "tokenless", WAIT, |o| ready(o).is_some())
        .await
        .unwrap();
    assert_eq!(ready(&obj).unwrap().0, "True");

    // The Secret appears: the Agent becomes Ready at its next check.
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "bot-token", "namespace": "default"},
        "stringData": {"token": "s3cret-token-value"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(r.fake.client(), "default")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let obj = r
        .fake
        .wait_for_object::<Agent>("default", "bot", WAIT, |o| {
            ready(o).is_some_and(|(s, _, _)| s == "True")
        })
        .await
        .unwrap();
    let message = ready(&obj).unwrap().2;
    assert!(!message.contains("s3cret"), "the token leaked: {message}");
    // Its Ready message counts its budget use and the occurrences that waited.
    assert!(
        message.contains("0 of 1 concurrentRuns going")
            && message.contains("0 occurrence(s) have waited"),
        "{message}"
    );
}

#[tokio::test]
async fn a_run_now_annotation_is_audited_with_a_correlation_id() {
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    let task: Task = serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, namespace: default}}\nspec:\n  schedule: {{every: 1h, startAt: '2024-03-10T00:00:00Z'}}\n{ECHO}"
    ))
    .unwrap();
    api.create(&PostParams::default(), &task).await.unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| ready(o).is_some())
        .await
        .unwrap();
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"ordinaut.dev/run-now": "please"}}})),
    )
    .await
    .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            o["status"]["handledRunNow"] == "please"
        })
        .await
        .unwrap();
    type Row = (String, bool, Option<String>, Value, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT actor, allowed, subject, detail, correlation_id FROM audit_log \
         WHERE action = 'task.run-now' AND namespace = 'default'",
    )
    .fetch_all(r.store.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (actor, allowed, subject, detail, correlation) = &rows[0];
    assert_eq!(actor, "operator");
    assert!(allowed);
    assert_eq!(subject.as_deref(), Some("t"));
    assert_eq!(detail["value"], "please");
    assert_eq!(detail["outcome"], "queued");
    assert!(correlation.as_deref().is_some_and(|c| c.len() == 36));
}
