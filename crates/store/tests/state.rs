//! Agent memory in PostgreSQL: compare-and-set under concurrent writers, versions that never
//! repeat across a delete, TTL expiry and retention, history, limits, and the audit entry and
//! `state.changed` event each write commits with.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use ordinaut_store::state::{HISTORY_VERSIONS, MAX_KEYS_PER_OWNER, MAX_VALUE_BYTES, STATE_TOPIC};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{
    PUBLISHED_EVENT_TYPE, StateError, StateOwner, StatePut, StateQuery, StateRef, Store,
    topic_stream,
};
use serde_json::{Value, json};

fn key(k: &str) -> StateRef {
    StateRef::new("team", StateOwner::Agent("bot".into()), k)
}

fn put<'a>(at: &'a StateRef, value: &'a Value, if_version: Option<i64>) -> StatePut<'a> {
    StatePut {
        at,
        value,
        if_version,
        ttl: None,
        actor: "agent:team/bot",
        correlation_id: Some("corr-1"),
    }
}

fn conflict_current(e: StateError) -> Option<i64> {
    match e {
        StateError::Conflict { current, .. } => current,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn versions_count_writes_and_compare_and_set_refuses_stale_writers() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let at = key("cursor");
    assert!(store.state_get(&at).await.unwrap().is_none());

    let v1 = store
        .state_put(&put(&at, &json!(10), Some(0)))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    let v2 = store
        .state_put(&put(&at, &json!(11), Some(1)))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let got = store.state_get(&at).await.unwrap().unwrap();
    assert_eq!((got.value, got.version), (json!(11), 2));

    // A writer still holding version 1, and a create-only writer: both refused, naming 2.
    let err = store
        .state_put(&put(&at, &json!(99), Some(1)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("version 2, not 1"), "{err}");
    assert_eq!(conflict_current(err), Some(2));
    let err = store
        .state_put(&put(&at, &json!(99), Some(0)))
        .await
        .unwrap_err();
    assert_eq!(conflict_current(err), Some(2));
    // Unconditional writes always land.
    assert_eq!(
        store
            .state_put(&put(&at, &json!(12), None))
            .await
            .unwrap()
            .version,
        3
    );

    // A delete is a version; the key reads as missing; a stale delete is refused.
    let err = store
        .state_delete(&at, Some(2), "agent:team/bot", None)
        .await
        .unwrap_err();
    assert_eq!(conflict_current(err), Some(3));
    assert_eq!(
        store
            .state_delete(&at, Some(3), "agent:team/bot", None)
            .await
            .unwrap(),
        Some(4)
    );
    assert!(store.state_get(&at).await.unwrap().is_none());
    assert_eq!(
        store
            .state_delete(&at, None, "agent:team/bot", None)
            .await
            .unwrap(),
        None
    );
    // Writing version 3 of the deleted key is refused: it is missing.
    let err = store
        .state_put(&put(&at, &json!(1), Some(3)))
        .await
        .unwrap_err();
    assert_eq!(conflict_current(err), None);
    // Created again, it goes on counting: a holder of an old version can never match.
    assert_eq!(
        store
            .state_put(&put(&at, &json!(1), Some(0)))
            .await
            .unwrap()
            .version,
        5
    );
}

/// Of 8 writers racing with the same `ifVersion`, exactly one wins each round, and every
/// loser is told the winner's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_writers_with_one_if_version_give_exactly_one_winner() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let at = key("leader");
    for round in 0..5i64 {
        let mut writers = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            let at = at.clone();
            writers.push(tokio::spawn(async move {
                let value = json!({"writer": w, "round": round});
                store.state_put(&put(&at, &value, Some(round))).await
            }));
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        for w in writers {
            match w.await.unwrap() {
                Ok(entry) => winners.push(entry),
                Err(e) => losers.push(conflict_current(e)),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(winners[0].version, round + 1);
        assert_eq!(losers.len(), 7);
        assert!(losers.iter().all(|c| *c == Some(round + 1)), "{losers:?}");
        let now = store.state_get(&at).await.unwrap().unwrap();
        assert_eq!(now.value, winners[0].value);
    }
}

#[tokio::test]
async fn every_write_commits_an_audit_entry_and_a_state_changed_event() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let at = key("report/last");
    store
        .state_put(&put(&at, &json!("w1"), Some(0)))
        .await
        .unwrap();
    store
        .state_put(&put(&at, &json!("w2"), Some(1)))
        .await
        .unwrap();
    store
        .state_delete(&at, None, "cli:alice", Some("corr-2"))
        .await
        .unwrap();

    let audit: Vec<(String, String, String, Value, Option<String>)> = sqlx::query_as(
        "SELECT actor, action, subject, detail, correlation_id FROM audit_log \
         WHERE action LIKE 'state.%' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let versions: Vec<(Value, Value)> = audit
        .iter()
        .map(|a| (a.3["oldVersion"].clone(), a.3["newVersion"].clone()))
        .collect();
    assert_eq!(
        versions,
        [
            (Value::Null, json!(1)),
            (json!(1), json!(2)),
            (json!(2), json!(3))
        ]
    );
    assert_eq!(audit[0].0, "agent:team/bot");
    assert_eq!(audit[0].1, "state.put");
    assert_eq!(audit[0].2, "agent:bot/report/last");
    assert_eq!(audit[0].4.as_deref(), Some("corr-1"));
    assert_eq!(
        (audit[2].0.as_str(), audit[2].1.as_str()),
        ("cli:alice", "state.delete")
    );

    // The events use the envelope of a published event, on the topic's stream.
    let events = store.unpublished_events(100).await.unwrap();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.stream, topic_stream(STATE_TOPIC));
        assert_eq!(e.event_type, PUBLISHED_EVENT_TYPE);
        let mut fields: Vec<&str> = e
            .payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        assert_eq!(fields, ["data", "id", "publishedAt", "source", "topic"]);
        assert_eq!(e.payload["topic"], STATE_TOPIC);
        assert_eq!(e.payload["data"]["key"], "report/last");
    }
    assert_eq!(events[1].payload["data"]["version"], 2);
    assert_eq!(events[2].payload["data"]["op"], "delete");
}

#[tokio::test]
async fn a_ttl_hides_the_key_then_the_pruner_makes_it_a_version() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let at = key("lock");
    let forever = key("keep");
    let value = json!("held");
    let mut p = put(&at, &value, None);
    p.ttl = Some(Duration::from_secs(1));
    let written = store.state_put(&p).await.unwrap();
    assert!(written.expires_at.is_some());
    store.state_put(&put(&forever, &value, None)).await.unwrap();
    assert!(store.state_get(&at).await.unwrap().is_some());

    // Missing from its expiry on, whether or not the pruner has run.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.state_get(&at).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pruned = store.prune_state(100).await.unwrap();
    assert_eq!(pruned.expired, 1);
    assert_eq!(store.prune_state(100).await.unwrap().expired, 0);
    let history = store.state_history(&at).await.unwrap();
    assert_eq!(history[0].op, "expire");
    assert_eq!(history[0].version, 2);
    assert!(store.state_get(&forever).await.unwrap().is_some());

    // Tombstones past their retention go, with their history.
    sqlx::query(
        "UPDATE state_entries SET updated_at = now() - interval '8 days' WHERE value IS NULL",
    )
    .execute(store.pool())
    .await
    .unwrap();
    assert_eq!(store.prune_state(100).await.unwrap().tombstones, 1);
    assert!(store.state_history(&at).await.unwrap().is_empty());
    assert_eq!(store.state_history(&forever).await.unwrap().len(), 1);
}

#[tokio::test]
async fn history_keeps_the_last_versions_and_list_pages_by_prefix() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let at = key("counter");
    for i in 0..8 {
        store.state_put(&put(&at, &json!(i), None)).await.unwrap();
    }
    let history = store.state_history(&at).await.unwrap();
    let versions: Vec<i64> = history.iter().map(|h| h.version).collect();
    assert_eq!(versions.len() as i64, HISTORY_VERSIONS);
    assert_eq!(versions, [8, 7, 6, 5, 4]);
    assert_eq!(history[0].value, Some(json!(7)));

    for k in ["cursors/a", "cursors/b", "cursors/c", "other"] {
        store
            .state_put(&put(&key(k), &json!(k), None))
            .await
            .unwrap();
    }
    let other_owner = StateRef::new("team", StateOwner::Task("report".into()), "cursors/z");
    store
        .state_put(&put(&other_owner, &json!(1), None))
        .await
        .unwrap();
    let page = |after: Option<(String, String)>| StateQuery {
        namespace: "team".into(),
        owner: Some(StateOwner::Agent("bot".into())),
        prefix: Some("cursors/".into()),
        after,
        limit: 2,
    };
    let first = store.state_list(&page(None)).await.unwrap();
    let keys: Vec<&str> = first.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["cursors/a", "cursors/b"]);
    let last = first.last().unwrap();
    let second = store
        .state_list(&page(Some((last.owner.clone(), last.key.clone()))))
        .await
        .unwrap();
    let keys: Vec<&str> = second.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["cursors/c"]);
}

#[tokio::test]
async fn limits_are_refused_naming_the_limit() {
    let (_db, store) = TestDb::migrated().await.unwrap();
    let big = json!("x".repeat(MAX_VALUE_BYTES));
    let err = store
        .state_put(&put(&key("big"), &big, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::ValueTooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains(&MAX_VALUE_BYTES.to_string()),
        "{err}"
    );
    let nul = json!({"text": "a\u{0}b"});
    let err = store
        .state_put(&put(&key("k"), &nul, None))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::NulInValue { .. }), "{err}");
    let err = store
        .state_put(&put(&key("no spaces"), &json!(1), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidKey { .. }), "{err}");
    let err = store
        .state_put(&put(&key("k"), &json!(1), Some(-1)))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidVersion(-1)), "{err}");
    let (k, one) = (key("k"), json!(1));
    let mut p = put(&k, &one, None);
    p.ttl = Some(Duration::from_millis(10));
    assert!(matches!(
        store.state_put(&p).await.unwrap_err(),
        StateError::InvalidTtl
    ));

    // An owner at the limit may update its keys but not create one; others are not affected.
    fill(&store, MAX_KEYS_PER_OWNER - 1).await;
    store
        .state_put(&put(&key("last"), &json!(1), None))
        .await
        .unwrap();
    let err = store
        .state_put(&put(&key("one-more"), &json!(1), None))
        .await
        .unwrap_err();
    assert!(matches!(err, StateError::TooManyKeys { .. }), "{err}");
    assert!(err.to_string().contains("agent:bot"), "{err}");
    store
        .state_put(&put(&key("last"), &json!(2), None))
        .await
        .unwrap();
    let task = StateRef::new("team", StateOwner::Task("t".into()), "one-more");
    store.state_put(&put(&task, &json!(1), None)).await.unwrap();
    // Deleting one makes room.
    store
        .state_delete(&key("last"), None, "admin", None)
        .await
        .unwrap();
    store
        .state_put(&put(&key("one-more"), &json!(1), None))
        .await
        .unwrap();
}

/// `n` keys of agent `bot` in `team`, written directly.
async fn fill(store: &Store, n: i64) {
    sqlx::query(
        "INSERT INTO state_entries (namespace, owner, key, value, version, updated_by) \
         SELECT 'team', 'agent:bot', 'fill/' || i, '1'::jsonb, 1, 'test' \
         FROM generate_series(1, $1) AS i",
    )
    .bind(n)
    .execute(store.pool())
    .await
    .unwrap();
}
