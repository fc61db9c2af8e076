//! Create, get, list, replace, delete; generation; selectors; core kinds.

use k8s_openapi::ByteString;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use ordinaut_kube_fake::{FakeApiServer, Verb};
use serde_json::json;

use super::common::*;

#[tokio::test]
async fn create_get_list_delete_roundtrip() {
    let (fake, api) = setup();
    let created = create(&api, "a", 1).await;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.namespace().as_deref(), Some("default"));

    let got = api.get("a").await.unwrap();
    assert_eq!(got.spec, created.spec);
    assert_eq!(got.resource_version(), created.resource_version());

    let list = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let list_rv: u64 = list.metadata.resource_version.unwrap().parse().unwrap();
    assert!(list_rv >= created.resource_version().unwrap().parse::<u64>().unwrap());

    let deleted = api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an object without finalizers is gone at once"
    );
    let err = api.get("a").await.unwrap_err();
    assert_eq!(api_code(&err), Some(404));
    assert!(fake.object::<Widget>("default", "a").is_none());
}

#[tokio::test]
async fn creating_an_existing_object_is_409_already_exists() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let err = api
        .create(&PostParams::default(), &widget("a", 2))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!(status.code, 409);
    assert_eq!(status.reason, "AlreadyExists");
}

#[tokio::test]
async fn missing_objects_and_unregistered_types_are_404() {
    let fake = FakeApiServer::new();
    let api: Api<Widget> = Api::default_namespaced(fake.client());
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_code(&err), Some(404), "Widget is not registered: {err}");
    fake.register::<Widget>();
    let err = api.get("nope").await.unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
    assert!(api.get_opt("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn generation_bumps_on_spec_changes_only() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let pp = PatchParams::default();

    let w = api
        .patch("a", &pp, &Patch::Merge(json!({"spec": {"size": 2}})))
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2));

    let w = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2), "metadata-only change");

    let w = api
        .patch_status("a", &pp, &Patch::Merge(json!({"status": {"ready": true}})))
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2), "status change");
    assert!(w.status.as_ref().unwrap().ready);

    let before = w.resource_version();
    let w = api
        .patch("a", &pp, &Patch::Merge(json!({"spec": {"size": 2}})))
        .await
        .unwrap();
    assert_eq!(w.metadata.generation, Some(2), "no-op spec patch");
    assert_eq!(
        w.resource_version(),
        before,
        "a no-op write keeps the resourceVersion"
    );
}

#[tokio::test]
async fn status_subresource_separates_status_from_the_rest() {
    let (_fake, api) = setup();
    let mut w = widget("a", 1);
    w.status = Some(WidgetStatus {
        ready: true,
        observed_generation: None,
    });
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert_eq!(
        created.status, None,
        "create drops status when it is a subresource"
    );

    let pp = PatchParams::default();
    let w = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"spec": {"size": 5}, "status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.size, 5);
    assert_eq!(w.status, None, "main-resource patches ignore status");

    let w = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(w.spec.size, 5, "status patches ignore spec");
    assert!(w.status.unwrap().ready);
}

#[tokio::test]
async fn replace_with_a_stale_resource_version_is_409_conflict() {
    let (_fake, api) = setup();
    let stale = create(&api, "a", 1).await;
    let mut fresh = stale.clone();
    fresh.spec.size = 2;
    let fresh = api
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(fresh.metadata.generation, Some(2));

    let mut late = stale;
    late.spec.size = 3;
    let err = api
        .replace("a", &PostParams::default(), &late)
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(api.get("a").await.unwrap().spec.size, 2);
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let (_fake, api) = setup();
    for (name, tier) in [("a", Some("web")), ("b", Some("db")), ("c", None)] {
        let mut w = widget(name, 1);
        if let Some(tier) = tier {
            w.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        }
        api.create(&PostParams::default(), &w).await.unwrap();
    }
    let names = |list: kube::core::ObjectList<Widget>| -> Vec<String> {
        list.items.iter().map(|w| w.name_any()).collect()
    };
    let cases = [
        ("tier=web", vec!["a"]),
        ("tier!=web", vec!["b", "c"]),
        ("tier in (web,db)", vec!["a", "b"]),
        ("tier notin (web)", vec!["b", "c"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c"]),
    ];
    for (selector, want) in cases {
        let got = names(
            api.list(&ListParams::default().labels(selector))
                .await
                .unwrap(),
        );
        assert_eq!(got, want, "labelSelector {selector}");
    }
    let got = names(
        api.list(&ListParams::default().fields("metadata.name=b"))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec!["b"]);
}

#[tokio::test]
async fn lists_are_scoped_to_the_namespace_or_cluster_wide() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let other: Api<Widget> = Api::namespaced(fake.client(), "other");
    other
        .create(&PostParams::default(), &widget("a", 2))
        .await
        .unwrap();
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    let all: Api<Widget> = Api::all(fake.client());
    let items = all.list(&ListParams::default()).await.unwrap().items;
    let namespaces: Vec<_> = items.iter().map(|w| w.namespace().unwrap()).collect();
    assert_eq!(namespaces, vec!["default", "other"]);
}

#[tokio::test]
async fn injected_failures_answer_the_next_matching_requests() {
    let (fake, api) = setup();
    create(&api, "a", 1).await;
    let path = FakeApiServer::object_path::<Widget>(Some("default"), "a");
    assert_eq!(path, format!("{}/a", widgets_path()));
    fake.fail_next(Verb::Get, &path, 2, 500);
    for _ in 0..2 {
        assert_eq!(api_code(&api.get("a").await.unwrap_err()), Some(500));
    }
    api.get("a").await.unwrap();
    assert_eq!(fake.request_count(Verb::Get, &path), 3);

    fake.fail_next(Verb::Patch, &format!("{}/*", widgets_path()), 1, 409);
    let err = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));
}

#[tokio::test]
async fn delete_preconditions_are_checked() {
    let (_fake, api) = setup();
    create(&api, "a", 1).await;
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    assert_eq!(
        api_code(&api.delete("a", &dp).await.unwrap_err()),
        Some(409)
    );
    api.get("a").await.unwrap();
}

#[tokio::test]
async fn dry_run_writes_store_nothing() {
    let (fake, api) = setup();
    let rv = fake.resource_version();
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let w = api.create(&pp, &widget("a", 1)).await.unwrap();
    assert_eq!(w.name_any(), "a");
    assert!(fake.object::<Widget>("default", "a").is_none());
    assert!(fake.objects::<Widget>().is_empty());
    assert_eq!(
        fake.resource_version(),
        rv,
        "a dry run consumes no resourceVersion"
    );
}

#[tokio::test]
async fn seeded_secrets_are_readable_and_generate_name_works() {
    let fake = FakeApiServer::new();
    let mut secret = Secret::default();
    secret.metadata.name = Some("creds".into());
    secret.metadata.namespace = Some("team".into());
    secret.data = Some([("token".to_string(), ByteString(b"s3cret".to_vec()))].into());
    fake.insert(&secret).unwrap();
    let secrets: Api<Secret> = Api::namespaced(fake.client(), "team");
    let got = secrets.get("creds").await.unwrap();
    assert_eq!(got.data.unwrap()["token"].0, b"s3cret");

    let mut generated = Secret::default();
    generated.metadata.generate_name = Some("tok-".into());
    let created = secrets
        .create(&PostParams::default(), &generated)
        .await
        .unwrap();
    let name = created.name_any();
    assert!(
        name.starts_with("tok-") && name.len() == "tok-".len() + 5,
        "{name}"
    );
}

#[tokio::test]
async fn leases_can_be_created_and_patched_for_leader_election() {
    let fake = FakeApiServer::new();
    let leases: Api<Lease> = Api::namespaced(fake.client(), "ordinaut");
    let mut lease = Lease::default();
    lease.metadata.name = Some("ordinaut-operator".into());
    lease.spec = Some(LeaseSpec {
        holder_identity: Some("pod-a".into()),
        lease_duration_seconds: Some(15),
        ..LeaseSpec::default()
    });
    let created = leases.create(&PostParams::default(), &lease).await.unwrap();

    // Take over with optimistic concurrency, as leader election does.
    let mut takeover = created.clone();
    takeover.spec.as_mut().unwrap().holder_identity = Some("pod-b".into());
    let taken = leases
        .replace("ordinaut-operator", &PostParams::default(), &takeover)
        .await
        .unwrap();
    assert_eq!(
        taken.spec.unwrap().holder_identity.as_deref(),
        Some("pod-b")
    );
    // pod-a's renewal based on its stale copy loses.
    let err = leases
        .replace("ordinaut-operator", &PostParams::default(), &created)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some(409));

    let patched = leases
        .patch(
            "ordinaut-operator",
            &PatchParams::apply("pod-b").force(),
            &Patch::Apply(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "spec": {"holderIdentity": "pod-b", "leaseTransitions": 1},
            })),
        )
        .await
        .unwrap();
    assert_eq!(patched.spec.unwrap().lease_transitions, Some(1));
}

#[tokio::test]
async fn lists_page_with_limit_and_continue_at_the_first_pages_version() {
    let (fake, api) = setup();
    for name in ["e", "a", "d", "b", "c"] {
        create(&api, name, 1).await;
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let names = |l: &kube::core::ObjectList<Widget>| -> Vec<String> {
        l.items.iter().map(|w| w.name_any()).collect()
    };
    assert_eq!(names(&first), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let rv = first.metadata.resource_version.clone();
    let token = first.metadata.continue_.clone().expect("a continue token");

    // A change between pages: the next pages keep the first page's version.
    create(&api, "f", 1).await;
    let page = |token: String| {
        let api = api.clone();
        async move {
            let params = ListParams::default().limit(2).continue_token(&token);
            api.list(&params).await
        }
    };
    let second = page(token.clone()).await.unwrap();
    assert_eq!(names(&second), ["c", "d"]);
    assert_eq!(second.metadata.resource_version, rv);
    let last_token = second.metadata.continue_.clone().expect("more to come");
    let last = page(last_token).await.unwrap();
    assert_eq!(names(&last), ["e", "f"]);
    assert_eq!(last.metadata.continue_, None);
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        6,
        "without a limit, one page"
    );

    // A token older than the watch history: 410, list again from the start.
    fake.expire_watch_history();
    let err = page(token).await.unwrap_err();
    assert_eq!(api_code(&err), Some(410));
    let err = page("nonsense".into()).await.unwrap_err();
    assert_eq!(api_code(&err), Some(400));
}
