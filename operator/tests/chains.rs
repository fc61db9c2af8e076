//! Tasks chained with `on: {taskFinished}` in the reconcile core, against real PostgreSQL: a
//! Task that would close a cycle is refused (Ready=False, Stalled, naming the cycle); a chain
//! without a cycle is Ready.
#![allow(clippy::unwrap_used)]

use ordinaut_test_support::operator::*;

fn after(name: &str) -> String {
    format!("  schedule:\n    on:\n      taskFinished:\n        name: {name}\n{ECHO}")
}

#[tokio::test]
async fn a_task_closing_a_cycle_is_refused_naming_the_cycle() {
    let h = Harness::new("2026-03-01T09:00:00Z").await;
    let mut a = task("a", "2026-03-01T08:00:00Z", &after("c"));
    let mut b = task("b", "2026-03-01T08:00:00Z", &after("a"));
    let mut c = task("c", "2026-03-01T08:00:00Z", &after("b"));
    h.reconcile(&mut a).await;
    h.reconcile(&mut b).await;
    assert_eq!(ready(&a).0, "True", "{:?}", ready(&a));
    assert_eq!(ready(&b).0, "True", "{:?}", ready(&b));
    // c follows b, b follows a, a follows c: c closes the circle.
    h.reconcile(&mut c).await;
    let (status, reason, message) = ready(&c);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidSchedule"),
        "{message}"
    );
    assert!(
        message.contains("spec.schedule.on.taskFinished.name"),
        "{message}"
    );
    assert!(message.contains("(c after b after a after c)"), "{message}");
    let stalled = c
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|x| x.type_ == "Stalled")
        .cloned()
        .unwrap();
    assert_eq!(stalled.status, "True");
    assert!(h.warnings().contains(&"InvalidSchedule".to_string()));
    // Pointing c elsewhere breaks the circle: Ready again.
    edit(
        &mut c,
        &format!("  schedule:\n    on:\n      topic: orders\n{ECHO}"),
    );
    h.reconcile(&mut c).await;
    assert_eq!(ready(&c).0, "True", "{:?}", ready(&c));
}

#[tokio::test]
async fn a_task_following_itself_is_refused() {
    let h = Harness::new("2026-03-01T09:00:00Z").await;
    let mut me = task("me", "2026-03-01T08:00:00Z", &after("me"));
    h.reconcile(&mut me).await;
    let (status, _, message) = ready(&me);
    assert_eq!(status, "False");
    assert!(message.contains("(me after me)"), "{message}");
}

#[tokio::test]
async fn the_status_counts_the_events_of_a_task_on_a_topic() {
    let h = Harness::new("2026-03-01T09:00:00Z").await;
    let mut listener = task(
        "listener",
        "2026-03-01T08:00:00Z",
        &format!("  schedule:\n    on:\n      topic: orders\n{ECHO}"),
    );
    h.reconcile(&mut listener).await;
    assert_eq!(
        listener.status.as_ref().unwrap().events,
        None,
        "no event yet"
    );
    let at = t("2026-03-01T09:00:01Z");
    let delivery = |id: &str, decision| ordinaut_store::Delivery {
        task_uid: uid(&listener),
        event_id: id.into(),
        published_at: at,
        priority: 0,
        event: serde_json::json!({"id": id}),
        decision,
    };
    h.store
        .record_deliveries(&[
            delivery("1", ordinaut_store::Decision::Start),
            delivery("2", ordinaut_store::Decision::Filtered),
            delivery("3", ordinaut_store::Decision::Dropped("suspended".into())),
        ])
        .await
        .unwrap();
    // What the status feed does on the run's outcome (and on `event.skipped`).
    assert!(h.rec.refresh_status(uid(&listener)).await.unwrap());
    listener.status = h.status(&listener);
    let events = listener.status.as_ref().unwrap().events.clone().unwrap();
    assert_eq!(
        (
            events.received,
            events.started,
            events.filtered,
            events.dropped
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(events.last_drop_reason.as_deref(), Some("suspended"));
    assert_eq!(events.last_event_at, Some(at));
}
