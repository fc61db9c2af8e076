//! The controllers end to end against the in-process fake API server and real PostgreSQL:
//! finalizer, server-side apply of status, one Warning Event, Pipeline changes reaching the
//! Tasks that use them, deletion, and leader election on a Lease.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ordinaut_api::constants::{FIELD_MANAGER, FINALIZER};
use ordinaut_api::{Pipeline, Task};
use ordinaut_kube_fake::FakeApiServer;
use ordinaut_operator::leader::{Leadership, LeaseElector};
use ordinaut_operator::{Context, MaterializeConfig, TaskReconciler};
use ordinaut_schedule::clock::ManualClock;
use ordinaut_store::Store;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::operator::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn fake() -> FakeApiServer {
    let fake = FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    fake
}

async fn start() -> Running {
    start_controllers(fake(), Duration::from_secs(3600), |ctx, _| ctx).await
}

/// Polls an async condition until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    ordinaut_test_support::until(WAIT, what, f).await
}

fn ready_status(obj: &Value) -> Option<(&str, &str)> {
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    Some((c["status"].as_str()?, c["reason"].as_str()?))
}

fn task_yaml(spec: &str) -> Task {
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, namespace: default}}\nspec:\n{spec}"
    ))
    .unwrap()
}

fn warnings(fake: &FakeApiServer) -> Vec<String> {
    fake.objects::<K8sEvent>()
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_task_controller_adds_its_finalizer_materializes_and_applies_status_server_side() {
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    api.create(
        &PostParams::default(),
        &task_yaml(&format!(
            "  schedule: {{every: 15m, startAt: '2024-03-10T00:00:00Z'}}\n{ECHO}"
        )),
    )
    .await
    .unwrap();
    let obj = r
        .fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            ready_status(o) == Some(("True", "Valid"))
        })
        .await
        .unwrap();
    assert_eq!(obj["metadata"]["finalizers"][0], FINALIZER);
    assert_eq!(obj["status"]["nextRunTime"], "2024-03-10T10:15:00Z");
    assert_eq!(obj["status"]["scheduleSummary"], "every 15m");
    let uid = uuid::Uuid::parse_str(obj["metadata"]["uid"].as_str().unwrap()).unwrap();
    assert_eq!(r.store.task_occurrences(uid).await.unwrap().len(), 10);
    // Status went through server-side apply on the status subresource, under our manager.
    let applies: Vec<_> = r
        .fake
        .requests()
        .into_iter()
        .filter(|q| q.path.ends_with("/tasks/t/status"))
        .collect();
    assert!(!applies.is_empty());
    for q in applies {
        assert_eq!(
            q.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(q.field_manager.as_deref(), Some(FIELD_MANAGER));
    }
}

#[tokio::test]
async fn an_invalid_task_gets_ready_false_and_one_warning_event_and_a_fix_makes_it_ready() {
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    api.create(
        &PostParams::default(),
        &task_yaml(&format!("  schedule: {{cron: '61 * * * *'}}\n{ECHO}")),
    )
    .await
    .unwrap();
    let obj = r
        .fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| ready_status(o).is_some())
        .await
        .unwrap();
    assert_eq!(ready_status(&obj), Some(("False", "InvalidSchedule")));
    let message = obj["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("spec.schedule.cron"), "{message}");
    // An unrelated change (a label) reconciles again (another status apply): still one
    // Warning.
    let status_writes = |fake: &FakeApiServer| {
        fake.requests()
            .iter()
            .filter(|q| q.path.ends_with("/tasks/t/status"))
            .count()
    };
    eventually("the Warning Event", || async {
        !warnings(&r.fake).is_empty()
    })
    .await;
    let before = status_writes(&r.fake);
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"a": "b"}}})),
    )
    .await
    .unwrap();
    r.fake
        .wait_until("the reconcile of the label change", WAIT, |f| {
            status_writes(f) > before
        })
        .await
        .unwrap();
    assert_eq!(warnings(&r.fake), vec!["InvalidSchedule".to_string()]);

    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"schedule": {"cron": "*/15 * * * *"}}})),
    )
    .await
    .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            ready_status(o) == Some(("True", "Valid"))
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pipeline_change_reaches_the_tasks_that_reference_it() {
    let r = start().await;
    let client = r.fake.client();
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), "default");
    let pipeline = |msg: &str| -> Pipeline {
        serde_yaml::from_str(&format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Pipeline\nmetadata: {{name: p, namespace: default}}\nspec:\n  steps: [{{id: a, uses: core.echo, with: {{msg: {msg}}}}}]\n"
        ))
        .unwrap()
    };
    let api: Api<Task> = Api::namespaced(client.clone(), "default");
    // The Task comes first: PipelineNotFound until the Pipeline exists.
    api.create(
        &PostParams::default(),
        &task_yaml("  schedule: {every: 15m}\n  pipelineRef: p\n"),
    )
    .await
    .unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            ready_status(o) == Some(("False", "PipelineNotFound"))
        })
        .await
        .unwrap();
    pipelines
        .create(&PostParams::default(), &pipeline("v1"))
        .await
        .unwrap();
    let obj = r
        .fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            ready_status(o) == Some(("True", "Valid"))
        })
        .await
        .unwrap();
    let uid = uuid::Uuid::parse_str(obj["metadata"]["uid"].as_str().unwrap()).unwrap();
    let store = r.store.clone();
    let msg = move || {
        let store = store.clone();
        async move {
            store
                .get_task(uid)
                .await
                .map(|p| {
                    p.spec["pipeline"]["steps"][0]["with"]["msg"]
                        .as_str()
                        .map(String::from)
                })
                .ok()
                .flatten()
        }
    };
    assert_eq!(msg().await.as_deref(), Some("v1"));
    pipelines
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"steps": [{"id": "a", "uses": "core.echo", "with": {"msg": "v2"}}]}})),
        )
        .await
        .unwrap();
    eventually("the new pipeline in the projection", || {
        let msg = msg.clone();
        async move { msg().await.as_deref() == Some("v2") }
    })
    .await;
    // The Pipeline got its own Ready condition.
    r.fake
        .wait_for_object::<Pipeline>("default", "p", WAIT, |o| {
            ready_status(o) == Some(("True", "Valid"))
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_a_task_runs_the_finalizer_cleanup_and_keeps_history() {
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    api.create(
        &PostParams::default(),
        &task_yaml(&format!(
            "  schedule: {{every: 15m, startAt: '2024-03-10T00:00:00Z'}}\n{ECHO}"
        )),
    )
    .await
    .unwrap();
    let obj = r
        .fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| {
            ready_status(o) == Some(("True", "Valid"))
        })
        .await
        .unwrap();
    let uid = uuid::Uuid::parse_str(obj["metadata"]["uid"].as_str().unwrap()).unwrap();
    sqlx::query("UPDATE due_work SET done_at = now(), attempt = 1 WHERE scheduled_for = $1")
        .bind(t("2024-03-10T10:15:00Z"))
        .execute(r.store.pool())
        .await
        .unwrap();
    api.delete("t", &DeleteParams::default()).await.unwrap();
    r.fake
        .wait_for_deletion::<Task>("default", "t", WAIT)
        .await
        .unwrap();
    assert_eq!(
        r.store.task_occurrences(uid).await.unwrap().len(),
        1,
        "history kept"
    );
    assert!(
        r.store.find_task("default", "t").await.is_err(),
        "projection marked deleted"
    );
}

/// Two instances: one leader; when its Lease lapses (it stopped renewing) the other takes
/// over; whoever leads, the Task's occurrences are inserted once.
#[tokio::test]
async fn two_operators_elect_one_leader_the_other_takes_over_on_lapse_without_duplicates() {
    let fake = fake();
    let (_db, store) = TestDb::migrated().await.unwrap();
    let clock = ManualClock::new(t("2024-03-10T10:05:00Z"));
    let elector = |id: &str| ordinaut_test_support::operator::lease_elector(&fake, &clock, id);
    let (a, b) = (elector("operator-a"), elector("operator-b"));
    let reconciler = |e: &LeaseElector| {
        let h_objects = Arc::new(ordinaut_operator::MemoryObjects::default());
        TaskReconciler::new(Context::new(
            store.clone(),
            Arc::new(clock.clone()),
            MaterializeConfig::default(),
            h_objects,
            Arc::new(ordinaut_operator::MemorySink::default()),
            Arc::new(e.flag()),
        ))
    };
    let (ra, rb) = (reconciler(&a), reconciler(&b));
    let task = task(
        "t",
        "2024-03-10T00:00:00Z",
        &format!("  schedule: {{every: 15m}}\n{ECHO}"),
    );

    assert!(a.try_acquire_or_renew().await.unwrap());
    assert!(!b.try_acquire_or_renew().await.unwrap());
    assert!(a.flag().is_leader() && !b.flag().is_leader());
    let lease = fake
        .object::<Lease>("ordinaut", "ordinaut-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-a");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15);

    assert!(matches!(
        rb.reconcile(&task).await.unwrap(),
        ordinaut_operator::TaskOutcome::Follower
    ));
    assert!(
        store.task_occurrences(uid(&task)).await.unwrap().is_empty(),
        "a follower writes nothing"
    );
    ra.reconcile(&task).await.unwrap();
    assert_eq!(store.task_occurrences(uid(&task)).await.unwrap().len(), 10);

    // a renews within the lease: b still follows.
    clock.advance(chrono::Duration::seconds(10));
    assert!(a.try_acquire_or_renew().await.unwrap());
    clock.advance(chrono::Duration::seconds(10));
    assert!(!b.try_acquire_or_renew().await.unwrap());
    // a stops renewing (hung or partitioned); 16 s later the Lease has lapsed.
    clock.advance(chrono::Duration::seconds(16));
    assert!(b.try_acquire_or_renew().await.unwrap());
    assert!(
        !a.try_acquire_or_renew().await.unwrap(),
        "a learns it lost the Lease"
    );
    let lease = fake
        .object::<Lease>("ordinaut", "ordinaut-operator")
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    assert!(matches!(
        ra.reconcile(&task).await.unwrap(),
        ordinaut_operator::TaskOutcome::Follower
    ));
    rb.reconcile(&task).await.unwrap();
    let rows = store.task_occurrences(uid(&task)).await.unwrap();
    let mut keys: Vec<_> = rows.iter().map(|r| (r.0, r.2.clone())).collect();
    keys.dedup();
    assert_eq!(keys.len(), rows.len(), "no duplicate occurrences");
    assert_eq!(rows.len(), 10, "the new leader re-inserted nothing");
}

/// Through the API: a new `ordinaut.dev/run-now` value (an annotation change, no new
/// generation) queues one manual occurrence and lands in `status.handledRunNow`; the
/// operator never writes the annotation or the spec.
#[tokio::test]
async fn a_run_now_annotation_queues_one_manual_run_and_is_recorded_in_status() {
    let r = start().await;
    let api: Api<Task> = Api::namespaced(r.fake.client(), "default");
    let created = api
        .create(
            &PostParams::default(),
            &task_yaml(&format!(
                "  schedule: {{every: 1h, startAt: '2024-03-10T00:00:00Z'}}\n{ECHO}"
            )),
        )
        .await
        .unwrap();
    let uid = uuid::Uuid::parse_str(created.metadata.uid.as_deref().unwrap()).unwrap();
    r.fake
        .wait_for_object::<Task>("default", "t", WAIT, |o| ready_status(o).is_some())
        .await
        .unwrap();
    let manual = |store: Store| async move {
        store
            .task_occurrences(uid)
            .await
            .unwrap()
            .iter()
            .filter(|o| o.2 == "manual")
            .count()
    };
    for value in ["1", "2"] {
        api.patch(
            "t",
            &PatchParams::default(),
            &Patch::Merge(
                serde_json::json!({"metadata": {"annotations": {"ordinaut.dev/run-now": value}}}),
            ),
        )
        .await
        .unwrap();
        r.fake
            .wait_for_object::<Task>("default", "t", WAIT, |o| {
                o["status"]["handledRunNow"] == value
            })
            .await
            .unwrap();
    }
    assert_eq!(manual(r.store.clone()).await, 2);
    let obj = r.fake.object::<Task>("default", "t").unwrap();
    assert_eq!(
        obj["metadata"]["generation"], 1,
        "the spec was never written"
    );
    assert_eq!(obj["metadata"]["annotations"]["ordinaut.dev/run-now"], "2");
}
