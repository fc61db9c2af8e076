//! JSON patch `test` operations and server-side apply.

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use ordinaut_kube_fake::Verb;
use serde_json::json;

use super::common::*;

fn json_patch(ops: serde_json::Value) -> Patch<()> {
    Patch::Json(serde_json::from_value(ops).unwrap())
}

#[tokio::test]
async fn failed_json_patch_test_operation_is_rejected_and_changes_nothing() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let pp = PatchParams::default();
    let err = api
        .patch(
            "a",
            &pp,
            &json_patch(json!([
                {"op": "test", "path": "/spec/size", "value": 7},
                {"op": "replace", "path": "/spec/size", "value": 8},
            ])),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(422));
    assert_eq!(api.get("a").await.unwrap().spec.size, 1);

    let w = api
        .patch(
            "a",
            &pp,
            &json_patch(json!([
                {"op": "test", "path": "/spec/size", "value": 1},
                {"op": "replace", "path": "/spec/size", "value": 8},
            ])),
        )
        .await
        .unwrap();
    assert_eq!((w.spec.size, w.metadata.generation), (8, Some(2)));
}

#[tokio::test]
async fn merge_patch_with_a_stale_resource_version_is_409() {
    let (_fake, api) = setup();
    let w = create(&api, "a", 1).await;
    let stale = w.resource_version().unwrap();
    let pp = PatchParams::default();
    api.patch("a", &pp, &Patch::Merge(json!({"spec": {"size": 2}})))
        .await
        .unwrap();
    let err = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"resourceVersion": stale}, "spec": {"size": 3}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
}

#[tokio::test]
async fn server_side_apply_on_status_is_recorded_under_its_field_manager() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let pp = PatchParams::apply("ordinaut-operator").force();
    let w = api
        .patch_status(
            "a",
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "test.ordinaut.dev/v1",
                "kind": "Widget",
                "status": {"ready": true, "observedGeneration": 1},
            })),
        )
        .await
        .unwrap();
    assert_eq!(w.status.clone().unwrap().observed_generation, Some(1));
    assert_eq!(w.metadata.generation, Some(1));

    let entry = w
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .find(|e| e.manager.as_deref() == Some("ordinaut-operator"))
        .expect("a managedFields entry for the operator");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.subresource.as_deref(), Some("status"));

    let path = format!("{}/a/status", widgets_path());
    let req = fake
        .requests()
        .into_iter()
        .find(|r| r.verb == Verb::Patch && r.path == path)
        .expect("the status patch was logged");
    assert_eq!(
        req.content_type.as_deref(),
        Some("application/apply-patch+yaml")
    );
    assert_eq!(req.field_manager.as_deref(), Some("ordinaut-operator"));
    assert_eq!(req.query.get("force").map(String::as_str), Some("true"));
    assert_eq!(req.body.as_ref().unwrap()["status"]["ready"], json!(true));
    assert!(req.is_status());
    assert_eq!(fake.request_count(Verb::Patch, &path), 1);
}

#[tokio::test]
async fn repeating_the_same_status_apply_is_a_no_op() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let pp = PatchParams::apply("op");
    let status = Patch::Apply(json!({
        "apiVersion": "test.ordinaut.dev/v1", "kind": "Widget", "status": {"ready": true},
    }));
    let first = api.patch_status("a", &pp, &status).await.unwrap();
    let rv = fake.resource_version();
    let second = api.patch_status("a", &pp, &status).await.unwrap();
    assert_eq!(first.resource_version(), second.resource_version());
    assert_eq!(fake.resource_version(), rv);
}

#[tokio::test]
async fn server_side_apply_creates_and_drops_fields_no_longer_applied() {
    let (fake, api) = setup();
    let pp = PatchParams::apply("gitops");
    let w = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "test.ordinaut.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "a", "labels": {"team": "x"}},
                "spec": {"size": 1, "color": "red"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(1));
    assert_eq!(w.spec.color.as_deref(), Some("red"));
    assert_eq!(w.labels()["team"], "x");

    let w = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(json!({
                "apiVersion": "test.ordinaut.dev/v1",
                "kind": "Widget",
                "metadata": {"name": "a"},
                "spec": {"size": 2},
            })),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.size, 2);
    assert_eq!(
        w.spec.color, None,
        "color was applied before by the same manager"
    );
    assert!(w.labels().is_empty());
    assert_eq!(w.metadata.generation, Some(2));
    let stored = fake.object::<Widget>("default", "a").unwrap();
    assert_eq!(stored["metadata"]["managedFields"][0]["manager"], "gitops");
}

#[tokio::test]
async fn apply_to_the_status_of_a_missing_object_is_404() {
    let (_fake, api) = setup();
    let err = api
        .patch_status(
            "ghost",
            &PatchParams::apply("op"),
            &Patch::Apply(json!({"apiVersion": "test.ordinaut.dev/v1", "kind": "Widget", "status": {"ready": true}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(404));
}

#[tokio::test]
async fn apply_without_field_manager_is_rejected() {
    let (fake, _api) = setup();
    // kube refuses to send this itself, so speak HTTP directly.
    let req = http::Request::patch(format!("{}/a", widgets_path()))
        .header("content-type", "application/apply-patch+yaml")
        .body(b"spec:\n  size: 1\n".to_vec())
        .unwrap();
    let err = fake.client().request_text(req).await.unwrap_err();
    assert_eq!(api_code(&err), Some(400));
}
