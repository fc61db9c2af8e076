//! `--secrets-from-api`: `${secrets.NAME.KEY}` read through the Kubernetes API (the fake API
//! server, a real kube client) from the Task's own namespace only, by `get` of the named
//! Secret (never list or watch), reused for the cache's lifetime, errors naming the fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use ordinaut_kube_fake::{FakeApiServer, Verb};
use ordinaut_tools::secrets::SecretSource;
use ordinaut_worker::kube_secrets::KubeSecrets;

fn secret(namespace: &str, name: &str, data: &[(&str, &[u8])]) -> Secret {
    let mut s = Secret::default();
    s.metadata.namespace = Some(namespace.into());
    s.metadata.name = Some(name.into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
            .collect::<BTreeMap<_, _>>(),
    );
    s
}

fn path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{name}")
}

fn pipeline_reading(secret: &str, key: &str) -> ordinaut_pipeline::CompiledPipeline {
    let yaml = format!(
        "steps:\n  - id: call\n    uses: core.echo\n    with: {{auth: \"Bearer ${{secrets.{secret}.{key}}}\"}}\n"
    );
    let spec: ordinaut_api::PipelineSpec = serde_yaml::from_str(&yaml).unwrap();
    ordinaut_pipeline::compile_pipeline(&spec).unwrap()
}

#[tokio::test]
async fn a_task_reads_only_the_named_secret_of_its_own_namespace_through_get() {
    let fake = FakeApiServer::new();
    fake.insert(&secret(
        "team-a",
        "api",
        &[("token", b"alpha-token"), ("user", b"ann")],
    ))
    .unwrap();
    fake.insert(&secret("team-b", "api", &[("token", b"beta-token")]))
        .unwrap();
    fake.insert(&secret("team-a", "unrelated", &[("token", b"never-read")]))
        .unwrap();
    let source = KubeSecrets::new(fake.client(), Duration::from_secs(600));

    // The worker's load step, as before a run of a Task in team-a.
    let loaded =
        ordinaut_worker::secrets::load(&pipeline_reading("api", "token"), "team-a", &source)
            .await
            .unwrap();
    assert_eq!(loaded.values().collect::<Vec<_>>(), ["alpha-token"]);
    assert_eq!(
        source
            .get("team-b", "api", "token")
            .await
            .unwrap()
            .as_deref(),
        Some("beta-token"),
        "the same Secret name in another namespace is another Secret"
    );

    let requests = fake.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.verb == Verb::Get || r.verb == Verb::Other),
        "only gets of named Secrets: {:?}",
        requests
            .iter()
            .map(|r| (r.verb, r.path.clone()))
            .collect::<Vec<_>>()
    );
    let secret_paths: Vec<&str> = requests
        .iter()
        .filter(|r| r.path.contains("/secrets"))
        .map(|r| r.path.as_str())
        .collect();
    assert_eq!(secret_paths, [path("team-a", "api"), path("team-b", "api")]);
}

#[tokio::test]
async fn a_secret_is_read_once_per_cache_lifetime_and_again_after_it() {
    let fake = FakeApiServer::new();
    fake.insert(&secret("ns", "api", &[("token", b"one"), ("user", b"u")]))
        .unwrap();
    let cached = KubeSecrets::new(fake.client(), Duration::from_secs(600));
    for _ in 0..5 {
        assert_eq!(
            cached.get("ns", "api", "token").await.unwrap().as_deref(),
            Some("one")
        );
        assert_eq!(
            cached.get("ns", "api", "user").await.unwrap().as_deref(),
            Some("u")
        );
    }
    assert_eq!(fake.request_count(Verb::Get, &path("ns", "api")), 1);

    // A rotated Secret is seen once the cached copy has expired (here: at once).
    let fresh = KubeSecrets::new(fake.client(), Duration::ZERO);
    assert_eq!(
        fresh.get("ns", "api", "token").await.unwrap().as_deref(),
        Some("one")
    );
    let mut rotated = secret("ns", "api", &[("token", b"two")]);
    rotated.metadata.resource_version = None;
    let api = kube::Api::<Secret>::namespaced(fake.client(), "ns");
    api.replace("api", &Default::default(), &rotated)
        .await
        .unwrap();
    assert_eq!(
        fresh.get("ns", "api", "token").await.unwrap().as_deref(),
        Some("two")
    );
}

#[tokio::test]
async fn missing_secrets_and_keys_are_none_and_a_refusal_names_the_fix() {
    let fake = FakeApiServer::new();
    fake.insert(&secret(
        "ns",
        "api",
        &[("token", b"t"), ("bin", &[0xff, 0xfe])],
    ))
    .unwrap();
    let source = KubeSecrets::new(fake.client(), Duration::from_secs(600));
    assert_eq!(source.get("ns", "absent", "token").await.unwrap(), None);
    assert_eq!(source.get("ns", "api", "absent").await.unwrap(), None);
    let binary = source.get("ns", "api", "bin").await.unwrap_err();
    assert!(
        binary.contains("`bin`") && binary.contains("ns/api") && binary.contains("UTF-8"),
        "{binary}"
    );

    fake.fail_next(Verb::Get, &path("locked", "api"), 1, 403);
    let refused = source.get("locked", "api", "token").await.unwrap_err();
    assert!(
        refused.contains("namespace locked") && refused.contains("`get` on secrets"),
        "{refused}"
    );
    // A refusal is not cached: once allowed, the Secret is read.
    fake.insert(&secret("locked", "api", &[("token", b"now")]))
        .unwrap();
    assert_eq!(
        source
            .get("locked", "api", "token")
            .await
            .unwrap()
            .as_deref(),
        Some("now")
    );
}
