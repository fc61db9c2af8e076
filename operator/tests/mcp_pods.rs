//! A stdio McpServer in a cluster, through the controllers against the in-process fake API
//! server and real PostgreSQL: the operator applies its Deployment and Service (tenant image,
//! bridge init container, Secret references, owner references), waits for a ready pod,
//! discovers it at its Service URL (never by starting the command itself), updates the
//! objects when the spec changes and deletes them with the McpServer. A stdio McpServer
//! without an image is Stalled.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ordinaut_api::McpServer;
use ordinaut_operator::k8s::KubeMcpPods;
use ordinaut_test_support::operator::{Running, fake_api, start_controllers};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const NS: &str = "team";

async fn start() -> Running {
    let fake = fake_api();
    fake.register::<Deployment>();
    start_controllers(fake, Duration::from_secs(3600), |ctx, client| {
        ctx.with_mcp_pods(Arc::new(KubeMcpPods::new(client.clone(), "ordinaut:test")))
    })
    .await
}

fn server(name: &str, stdio: &str) -> McpServer {
    serde_yaml::from_str(&format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: McpServer\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  transport:\n    stdio:\n{stdio}"
    ))
    .unwrap()
}

const FS: &str = "      image: node:22-alpine\n      command: npx\n      args: ['-y', '@modelcontextprotocol/server-everything']\n      env:\n        - {name: MODE, value: demo}\n        - {name: API_KEY, valueFrom: {secretKeyRef: {name: fs-creds, key: key}}}\n";

fn ready(obj: &Value) -> (String, String, String) {
    ordinaut_test_support::operator::ready_condition(obj).unwrap_or_default()
}

async fn wait_mcp(r: &Running, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    r.fake
        .wait_until(what, WAIT, |f| {
            f.object::<McpServer>(NS, name).is_some_and(|o| check(&o))
        })
        .await
        .unwrap();
    r.fake.object::<McpServer>(NS, name).unwrap()
}

#[tokio::test]
async fn a_stdio_server_runs_in_its_own_pod_which_follows_the_spec_and_goes_with_it() {
    let r = start().await;
    let client = r.fake.client();
    let servers: Api<McpServer> = Api::namespaced(client.clone(), NS);
    servers
        .create(&PostParams::default(), &server("fs", FS))
        .await
        .unwrap();
    r.fake
        .wait_until("the Deployment fs-mcp", WAIT, |_| {
            r.fake.object::<Deployment>(NS, "fs-mcp").is_some()
        })
        .await
        .unwrap();
    let uid = r.fake.object::<McpServer>(NS, "fs").unwrap()["metadata"]["uid"].clone();
    let d = r.fake.object::<Deployment>(NS, "fs-mcp").unwrap();
    let owner = &d["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].clone(),
            owner["name"].clone(),
            owner["uid"].clone()
        ),
        (json!("McpServer"), json!("fs"), uid.clone())
    );
    assert_eq!(owner["controller"], true);
    let pod = &d["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["image"], "ordinaut:test");
    assert_eq!(init["command"][1], "install");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "node:22-alpine");
    assert_eq!(c["command"][0], "/ordinaut-bridge/ordinaut-mcp-bridge");
    let args: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
    assert_eq!(
        args,
        [
            "--listen",
            "0.0.0.0:8080",
            "--",
            "npx",
            "-y",
            "@modelcontextprotocol/server-everything"
        ]
    );
    assert_eq!(c["env"][0], json!({"name": "MODE", "value": "demo"}));
    assert_eq!(
        c["env"][1]["valueFrom"]["secretKeyRef"],
        json!({"name": "fs-creds", "key": "key"}),
        "Kubernetes delivers the Secret; the operator never reads it"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(pod["automountServiceAccountToken"], false);
    let svc = r.fake.object::<Service>(NS, "fs-mcp").unwrap();
    assert_eq!(svc["metadata"]["ownerReferences"][0]["uid"], uid);
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(
        svc["spec"]["selector"],
        d["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        r.fake.request_count(
            ordinaut_kube_fake::Verb::Get,
            "/api/v1/namespaces/team/secrets/fs-creds"
        ),
        0
    );

    // No pod is ready yet: the McpServer says so (in progress, not stalled).
    let m = wait_mcp(&r, "fs", "Ready=False PodNotReady", |o| {
        ready(o).1 == "PodNotReady"
    })
    .await;
    assert!(ready(&m).2.contains("0 of 1 pods ready"), "{:?}", ready(&m));
    assert_eq!(m["status"]["pod"]["url"], "http://fs-mcp.team.svc:8080/mcp");
    assert_eq!(m["status"]["pod"]["ready"], false);

    // The pod becomes ready: discovery goes to the Service URL (this test has no cluster
    // DNS, so it fails there), never to a process of the operator's own.
    Api::<Deployment>::namespaced(client.clone(), NS)
        .patch_status(
            "fs-mcp",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "readyReplicas": 1}})),
        )
        .await
        .unwrap();
    let m = wait_mcp(&r, "fs", "discovery at the Service URL", |o| {
        ready(o).1 == "DiscoveryFailed"
    })
    .await;
    assert!(ready(&m).2.contains("fs-mcp.team.svc"), "{:?}", ready(&m));
    assert_eq!(m["status"]["pod"]["ready"], true);
    let rows = r.store.mcp_servers().await.unwrap();
    assert_eq!(
        rows[0].spec["transport"],
        json!({"http": {"url": "http://fs-mcp.team.svc:8080/mcp"}}),
        "workers reach the pod over HTTP; they are never given the command"
    );

    // A spec change reaches the Deployment.
    servers
        .patch(
            "fs",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"transport": {"stdio": {"image": "node:24-alpine"}}}})),
        )
        .await
        .unwrap();
    r.fake
        .wait_until("the new image in the Deployment", WAIT, |_| {
            r.fake.object::<Deployment>(NS, "fs-mcp").is_some_and(|d| {
                d["spec"]["template"]["spec"]["containers"][0]["image"] == "node:24-alpine"
            })
        })
        .await
        .unwrap();

    // Deleted: the finalizer removes the Deployment and Service (and the projection).
    servers
        .delete("fs", &DeleteParams::default())
        .await
        .unwrap();
    r.fake
        .wait_until("the McpServer, Deployment and Service gone", WAIT, |_| {
            r.fake.object::<McpServer>(NS, "fs").is_none()
                && r.fake.object::<Deployment>(NS, "fs-mcp").is_none()
                && r.fake.object::<Service>(NS, "fs-mcp").is_none()
        })
        .await
        .unwrap();
    assert!(r.store.mcp_servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stdio_server_without_an_image_is_stalled_and_never_started() {
    let r = start().await;
    let servers: Api<McpServer> = Api::namespaced(r.fake.client(), NS);
    servers
        .create(
            &PostParams::default(),
            &server("local", "      command: /bin/sh\n      args: ['-c', 'touch /tmp/ordinaut-h4-should-not-exist']\n"),
        )
        .await
        .unwrap();
    let m = wait_mcp(&r, "local", "Ready=False InvalidSpec", |o| {
        ready(o).1 == "InvalidSpec"
    })
    .await;
    let (status, _, message) = ready(&m);
    assert_eq!(status, "False");
    assert!(message.contains("spec.transport.stdio.image"), "{message}");
    let stalled = m["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .cloned()
        .unwrap();
    assert_eq!(stalled["status"], "True");
    assert!(r.fake.object::<Deployment>(NS, "local-mcp").is_none());
    assert!(r.store.mcp_servers().await.unwrap().is_empty());
}

/// RBAC refuses the Service (the namespace is not in the chart's list): the McpServer says
/// which verb on which resource in which namespace was forbidden, and the setting to change.
#[tokio::test]
async fn a_forbidden_pod_apply_names_the_verb_resource_namespace_and_setting() {
    let r = start().await;
    r.fake.fail_next(
        ordinaut_kube_fake::Verb::Patch,
        "/api/v1/namespaces/team/services/fs-mcp",
        1000,
        403,
    );
    Api::<McpServer>::namespaced(r.fake.client(), NS)
        .create(&PostParams::default(), &server("fs", FS))
        .await
        .unwrap();
    let m = wait_mcp(&r, "fs", "Ready=False PodApplyFailed", |o| {
        ready(o).1 == "PodApplyFailed"
    })
    .await;
    let message = ready(&m).2;
    assert!(
        message.contains("forbidden: the operator may not patch Services in namespace team"),
        "{message}"
    );
    assert!(
        message.contains("operator.rbac.mcpServerNamespaces"),
        "{message}"
    );
    assert!(r.fake.object::<Deployment>(NS, "fs-mcp").is_none());
}
