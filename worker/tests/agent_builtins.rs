//! The built-ins whose effects outlive a run, through a real worker process: `core.publish`
//! and `core.state.*` are checked against the Task's Agent's scopes like any tool (refusals
//! audited; Tasks without an Agent keep using them), and the run's secret values are masked
//! out of what they publish and store, as out of the run's records.
#![allow(clippy::unwrap_used)]

use ordinaut_store::testing::TestDb;
use ordinaut_store::{StateOwner, StateRef, Store};
use ordinaut_test_support::worker::*;
use serde_json::{Value, json};
use std::time::Duration;

const FAST: [&str; 6] = [
    "--reap-interval",
    "200ms",
    "--poll-interval",
    "100ms",
    "--migrate",
    "false",
];

/// A Task (of Agent `agent`, if any) with one step `uses` with `with` (YAML flow).
fn task(agent: Option<&str>, uses: &str, with: &str) -> String {
    let agent = agent
        .map(|a| format!("agentRef: {a}\n"))
        .unwrap_or_default();
    format!(
        "schedule: {{every: 1h}}\n{agent}pipeline:\n  steps:\n    - id: call\n      uses: {uses}\n      with: {with}\n"
    )
}

/// The status and error of the one run of Task `name`.
async fn run_of(store: &Store, name: &str) -> (String, Option<String>) {
    sqlx::query_as(
        "SELECT r.status, r.error FROM task_runs r JOIN tasks t ON t.uid = r.task_uid \
         WHERE t.name = $1",
    )
    .bind(name)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

async fn events_on(store: &Store, topic: &str) -> Vec<Value> {
    let rows: Vec<(Value,)> = sqlx::query_as("SELECT payload FROM outbox WHERE stream = $1")
        .bind(format!("ordinaut:topic:{topic}"))
        .fetch_all(store.pool())
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_publish_and_state_need_the_agents_scope_and_refusals_are_audited() {
    let (db, store) = TestDb::migrated().await.unwrap();
    for (name, scopes) in [
        ("quiet", json!(["weather.*"])),
        ("loud", json!(["core.publish", "core.state.*"])),
    ] {
        let spec = json!({"scopes": scopes});
        store.upsert_agent("default", name, 1, &spec).await.unwrap();
    }
    let publish = |topic: &str| format!("{{topic: {topic}, data: {{n: 1}}}}");
    let tasks = [
        (
            "quiet-publish",
            Some("quiet"),
            "core.publish",
            publish("quiet"),
        ),
        (
            "quiet-state",
            Some("quiet"),
            "core.state.put",
            "{key: k, value: 1}".into(),
        ),
        (
            "loud-publish",
            Some("loud"),
            "core.publish",
            publish("loud"),
        ),
        (
            "loud-state",
            Some("loud"),
            "core.state.put",
            "{key: k, value: 1}".into(),
        ),
        ("free-publish", None, "core.publish", publish("free")),
        (
            "free-state",
            None,
            "core.state.put",
            "{key: k, value: 1}".into(),
        ),
    ];
    for (name, agent, uses, with) in &tasks {
        insert_due(&store, &task_from_yaml(name, &task(*agent, uses, with)), 1).await;
    }
    let _w = WorkerProcess::start(&db.url, "w1", &FAST);
    let done = "SELECT count(*) FROM task_runs WHERE status IN ('succeeded', 'failed')";
    wait_for_count(&store, done, tasks.len() as i64, Duration::from_secs(60)).await;

    for (name, tool) in [
        ("quiet-publish", "core.publish"),
        ("quiet-state", "core.state.put"),
    ] {
        let (status, error) = run_of(&store, name).await;
        assert_eq!(status, "failed", "{name}");
        let error = error.unwrap();
        assert!(
            error.contains(&format!("agent `quiet` may not call `{tool}`"))
                && error.contains("`core.*`"),
            "{name}: {error}"
        );
    }
    for name in ["loud-publish", "loud-state", "free-publish", "free-state"] {
        assert_eq!(run_of(&store, name).await, ("succeeded".into(), None));
    }
    assert!(events_on(&store, "quiet").await.is_empty());
    assert_eq!(events_on(&store, "loud").await.len(), 1);
    assert_eq!(events_on(&store, "free").await.len(), 1);
    let quiet_key = StateRef::new("default", StateOwner::Agent("quiet".into()), "k");
    assert!(store.state_get(&quiet_key).await.unwrap().is_none());
    let loud_key = StateRef::new("default", StateOwner::Agent("loud".into()), "k");
    assert!(store.state_get(&loud_key).await.unwrap().is_some());

    let refused: Vec<(String, Option<String>, Value)> = sqlx::query_as(
        "SELECT actor, subject, detail FROM audit_log \
         WHERE action = 'tool.call' AND NOT allowed ORDER BY subject",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let subjects: Vec<_> = refused.iter().map(|r| r.1.as_deref().unwrap()).collect();
    assert_eq!(subjects, ["core.publish", "core.state.put"], "{refused:?}");
    assert!(refused.iter().all(|r| r.0 == "quiet"), "{refused:?}");
    assert!(
        refused[0].2["reason"]
            .as_str()
            .unwrap()
            .contains("may not call `core.publish`"),
        "{refused:?}"
    );
}

/// An agent must not launder a Secret of its namespace through its own memory or an event:
/// a Task that puts `${secrets.…}` into a key and an event stores and publishes `***`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_masked_out_of_agent_memory_and_published_events() {
    let (db, store) = TestDb::migrated().await.unwrap();
    let canary = format!("cnry{}", uuid::Uuid::new_v4().simple());
    let secrets = std::env::temp_dir().join(format!("ordinaut-loot-{canary}"));
    let dir = secrets.join("default/other-bot-token");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), format!("{canary}\n")).unwrap();
    let spec = json!({"scopes": ["core.*"]});
    store
        .upsert_agent("default", "bot", 1, &spec)
        .await
        .unwrap();
    let yaml = r#"
schedule: {every: 1h}
agentRef: bot
pipeline:
  steps:
    - id: put
      uses: core.state.put
      with: {key: loot, value: "${secrets.other-bot-token.token}"}
    - id: nested
      uses: core.state.put
      with: {key: loot2, value: {note: "x ${secrets.other-bot-token.token} y"}}
    - id: publish
      uses: core.publish
      with: {topic: loot, data: {token: "${secrets.other-bot-token.token}"}}
"#;
    insert_due(&store, &task_from_yaml("loot", yaml), 1).await;
    let secrets_dir = secrets.to_str().unwrap();
    let mut args = FAST.to_vec();
    args.extend(["--secrets-dir", secrets_dir]);
    let _w = WorkerProcess::start(&db.url, "w1", &args);
    let done = "SELECT count(*) FROM task_runs WHERE status IN ('succeeded', 'failed')";
    wait_for_count(&store, done, 1, Duration::from_secs(60)).await;
    std::fs::remove_dir_all(&secrets).unwrap();
    assert_eq!(run_of(&store, "loot").await, ("succeeded".into(), None));

    let at = |key: &str| StateRef::new("default", StateOwner::Agent("bot".into()), key);
    let loot = store.state_get(&at("loot")).await.unwrap().unwrap();
    assert_eq!(loot.value, json!("***"));
    let loot2 = store.state_get(&at("loot2")).await.unwrap().unwrap();
    assert_eq!(loot2.value, json!({"note": "x *** y"}));
    let events = events_on(&store, "loot").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["data"], json!({"token": "***"}));

    // Nowhere in PostgreSQL: every table, every row.
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT quote_ident(table_name) FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    for (table,) in tables {
        let sql = format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {table} t");
        // safe: the table names come from information_schema, quoted by quote_ident.
        let (dump,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert!(!dump.contains(&canary), "the canary is in {table}:\n{dump}");
    }
}
