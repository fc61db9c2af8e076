//! kube-runtime end to end: finalizers, Controller, event Recorder.

use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tokio::time::timeout;

use super::common::*;

const FINALIZER: &str = "widgets.test.ordinaut.dev/cleanup";

#[tokio::test]
async fn delete_with_finalizer_waits_until_the_finalizer_is_removed() {
    let (fake, api) = setup();
    let mut w = widget("a", 1);
    w.metadata.finalizers = Some(vec![FINALIZER.into()]);
    api.create(&PostParams::default(), &w).await.unwrap();
    let rv = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut events = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    let pending = api.delete("a", &DeleteParams::default()).await.unwrap();
    let pending = pending
        .left()
        .expect("the object is kept while it has finalizers");
    assert!(pending.metadata.deletion_timestamp.is_some());
    let kept = api.get("a").await.unwrap();
    assert!(kept.metadata.deletion_timestamp.is_some());

    // No new finalizers on a deleting object.
    let err = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER, "other"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));

    let remove: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
        {"op": "remove", "path": "/metadata/finalizers/0"},
    ]))
    .unwrap();
    api.patch("a", &PatchParams::default(), &Patch::Json::<()>(remove))
        .await
        .unwrap();
    assert!(fake.object::<Widget>("default", "a").is_none());

    let mut seen = Vec::new();
    while seen.len() < 2 {
        match timeout(DEADLINE, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Modified(w) => {
                assert!(w.metadata.deletion_timestamp.is_some());
                seen.push("MODIFIED");
            }
            WatchEvent::Deleted(w) => {
                assert!(w.finalizers().is_empty());
                seen.push("DELETED");
            }
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["MODIFIED", "DELETED"]);
}

#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
struct ReconcileError(String);

#[derive(Default)]
struct Ctx {
    /// (name, generation) for every Apply reconcile, and "cleanup:<name>" entries.
    log: Mutex<Vec<String>>,
}

async fn reconcile(
    obj: Arc<Widget>,
    ctx: Arc<Ctx>,
    api: Api<Widget>,
) -> Result<Action, ReconcileError> {
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(w) => {
                let generation = w.metadata.generation.unwrap_or_default();
                ctx.log
                    .lock()
                    .unwrap()
                    .push(format!("{}@{generation}", w.name_any()));
                let status = Patch::Apply(json!({
                    "apiVersion": "test.ordinaut.dev/v1",
                    "kind": "Widget",
                    "status": {"ready": true, "observedGeneration": generation},
                }));
                api.patch_status(
                    &w.name_any(),
                    &PatchParams::apply("test-operator").force(),
                    &status,
                )
                .await
                .map_err(|e| ReconcileError(e.to_string()))?;
                Ok(Action::await_change())
            }
            FinalizerEvent::Cleanup(w) => {
                ctx.log
                    .lock()
                    .unwrap()
                    .push(format!("cleanup:{}", w.name_any()));
                Ok::<_, ReconcileError>(Action::await_change())
            }
        }
    })
    .await;
    result.map_err(|e| ReconcileError(e.to_string()))
}

fn observed(w: &serde_json::Value) -> Option<i64> {
    w.pointer("/status/observedGeneration")
        .and_then(serde_json::Value::as_i64)
}

#[tokio::test]
async fn controller_with_finalizer_reconciles_creation_spec_changes_and_deletion() {
    let (fake, api) = setup();
    let ctx = Arc::new(Ctx::default());
    let reconcile_api = api.clone();
    let controller = Controller::new(api.clone(), watcher::Config::default())
        .run(
            move |obj, ctx| reconcile(obj, ctx, reconcile_api.clone()),
            |_obj, _err, _ctx| Action::requeue(std::time::Duration::from_millis(50)),
            ctx.clone(),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    create(&api, "a", 1).await;
    let w = fake
        .wait_for_object::<Widget>("default", "a", DEADLINE, |w| observed(w) == Some(1))
        .await
        .unwrap();
    assert_eq!(
        w["metadata"]["finalizers"],
        json!([FINALIZER]),
        "the finalizer() helper added it"
    );
    assert_eq!(
        w["metadata"]["generation"],
        json!(1),
        "adding a finalizer is metadata-only"
    );

    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"size": 2}})),
    )
    .await
    .unwrap();
    fake.wait_for_object::<Widget>("default", "a", DEADLINE, |w| observed(w) == Some(2))
        .await
        .unwrap();

    api.delete("a", &DeleteParams::default()).await.unwrap();
    fake.wait_for_deletion::<Widget>("default", "a", DEADLINE)
        .await
        .unwrap();
    handle.abort();

    let log = ctx.log.lock().unwrap().clone();
    assert!(log.contains(&"a@1".to_string()), "{log:?}");
    assert!(log.contains(&"a@2".to_string()), "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("cleanup:a"), "{log:?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("cleanup")).count(),
        1,
        "{log:?}"
    );
}

#[tokio::test]
async fn recorder_publishes_and_aggregates_events() {
    let (fake, api) = setup();
    let w = create(&api, "a", 1).await;
    let recorder = Recorder::new(
        fake.client(),
        Reporter {
            controller: "ordinaut-operator".into(),
            instance: Some("pod-0".into()),
        },
    );
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidSchedule".into(),
        note: Some("spec.schedule: not an RRULE".into()),
        action: "Validate".into(),
        secondary: None,
    };
    let reference = w.object_ref(&());
    recorder.publish(&event, &reference).await.unwrap();
    recorder.publish(&event, &reference).await.unwrap();

    let events: Api<K8sEvent> = Api::namespaced(fake.client(), "default");
    let list = events.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(
        list.len(),
        1,
        "the repeat became a series on the same Event"
    );
    let e = &list[0];
    assert_eq!(e.reason.as_deref(), Some("InvalidSchedule"));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(
        e.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("a")
    );
    assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
}

#[tokio::test]
async fn cluster_wide_controller_is_triggered_by_a_watched_related_type() {
    let (fake, _api) = setup();
    let team: Api<Widget> = Api::namespaced(fake.client(), "team");
    let reconciled = Arc::new(Mutex::new(Vec::<String>::new()));
    let wc = watcher::Config::default().any_semantic();
    let controller = Controller::new(Api::<Widget>::all(fake.client()), wc.clone())
        .watches(Api::<ConfigMap>::all(fake.client()), wc, |cm: ConfigMap| {
            let ns = cm.namespace()?;
            let name = cm.labels().get("widget")?.clone();
            Some(ObjectRef::<Widget>::new(&name).within(&ns))
        })
        .run(
            |w: Arc<Widget>, seen: Arc<Mutex<Vec<String>>>| async move {
                seen.lock()
                    .unwrap()
                    .push(format!("{}/{}", w.namespace().unwrap(), w.name_any()));
                Ok::<_, ReconcileError>(Action::await_change())
            },
            |_, _, _| Action::await_change(),
            reconciled.clone(),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    let count = |seen: &Arc<Mutex<Vec<String>>>| seen.lock().unwrap().len();

    team.create(&PostParams::default(), &widget("a", 1))
        .await
        .unwrap();
    let seen = reconciled.clone();
    fake.wait_until("the first reconcile", DEADLINE, |_| count(&seen) >= 1)
        .await
        .unwrap();

    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("settings".into());
    cm.metadata.labels = Some([("widget".to_string(), "a".to_string())].into());
    let cms: Api<ConfigMap> = Api::namespaced(fake.client(), "team");
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let seen = reconciled.clone();
    fake.wait_until("a reconcile caused by the ConfigMap", DEADLINE, |_| {
        count(&seen) >= 2
    })
    .await
    .unwrap();
    handle.abort();
    assert!(reconciled.lock().unwrap().iter().all(|r| r == "team/a"));
}

#[tokio::test]
async fn metadata_only_requests_get_partial_object_metadata() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].metadata.name.as_deref(), Some("a"));
    let one = api.get_metadata("a").await.unwrap();
    assert_eq!(one.metadata.generation, Some(1));
    assert_eq!(one.types.unwrap().kind, "PartialObjectMetadata");

    let meta_api: Api<PartialObjectMeta<Widget>> = Api::default_namespaced(api.into_client());
    let mut stream = watcher(meta_api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    loop {
        match timeout(DEADLINE, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(m) => names.push(m.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names, vec!["a"]);
}
