//! `kubectl ordinaut` through the Kubernetes API: the plugin binary against the fake API
//! server served over HTTP, with a kubeconfig of two contexts. It writes what a GitOps tool
//! can see (annotations, `spec.suspend`, `spec.snoozeUntil`), in the namespace of the context
//! or of `-n`, on the cluster of the context chosen.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

use kube::api::{Api, PostParams};
use ordinaut_api::Task;
use ordinaut_kube_fake::{FakeApiServer, Verb};
use serde_json::Value;

struct Cluster {
    fake: FakeApiServer,
    _dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    plugin: PathBuf,
}

/// A fake cluster with Task `t` in namespace `team`, and a kubeconfig whose current context
/// points at nothing (`down`) and whose context `lab` points at the fake, namespace `team`.
async fn cluster() -> Cluster {
    let fake = FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let addr = fake.serve_http().await.unwrap();
    for ns in ["team", "other"] {
        let task: Task = serde_yaml::from_str(&format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, namespace: {ns}}}\n\
             spec:\n  schedule: {{cron: '0 9 * * *', timezone: Europe/Paris}}\n  pipeline:\n    steps: [{{id: a, uses: core.echo}}]\n"
        ))
        .unwrap();
        Api::<Task>::namespaced(fake.client(), ns)
            .create(&PostParams::default(), &task)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("config");
    let down = ordinaut_test_support::cli::unused_port();
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{addr}'}}\n\
             - name: down\n  cluster: {{server: 'http://127.0.0.1:{down}'}}\n\
             users:\n- name: me\n  user: {{}}\ncontexts:\n- name: lab\n  context: {{cluster: fake, user: me, namespace: team}}\n\
             - name: down\n  context: {{cluster: down, user: me}}\ncurrent-context: down\n"
        ),
    )
    .unwrap();
    let plugin = dir.path().join("kubectl-ordinaut");
    std::os::unix::fs::symlink(ordinaut_test_support::cli::bin(), &plugin).unwrap();
    Cluster {
        fake,
        _dir: dir,
        kubeconfig,
        plugin,
    }
}

/// Runs `kubectl ordinaut ARGS` with KUBECONFIG set (off the async runtime: the fake serves
/// on it).
async fn kubectl(c: &Cluster, args: &[&str]) -> Output {
    let (plugin, kubeconfig) = (c.plugin.clone(), c.kubeconfig.clone());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(&plugin)
            .args(&args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("ORDINAUT_GATEWAY_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    text
}

fn task(c: &Cluster, ns: &str) -> Value {
    c.fake.object::<Task>(ns, "t").unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_now_writes_the_annotation_in_the_contexts_namespace_on_the_contexts_cluster() {
    let c = cluster().await;
    // The current context's cluster is down: the command fails, naming no Task it changed.
    let out = kubectl(&c, &["run-now", "t"]).await;
    assert!(!out.status.success());
    assert!(task(&c, "team")["metadata"]["annotations"].is_null());

    ok(&kubectl(&c, &["run-now", "t", "--context", "lab"]).await);
    let annotations = &task(&c, "team")["metadata"]["annotations"];
    let value = annotations["ordinaut.dev/run-now"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(value).is_ok(),
        "{value}"
    );
    assert!(
        task(&c, "other")["metadata"]["annotations"].is_null(),
        "only the context's namespace"
    );
    // -n wins over the context's namespace.
    ok(&kubectl(&c, &["run-now", "t", "--context", "lab", "-n", "other"]).await);
    assert!(task(&c, "other")["metadata"]["annotations"]["ordinaut.dev/run-now"].is_string());
    // A Task that is not there: the namespace and the way out are named.
    let out = kubectl(&c, &["run-now", "nope", "--context", "lab"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Task nope in namespace team"), "{err}");
    // The requests went to the API as the kubeconfig's user would send them.
    let patches: Vec<_> = c
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        patches,
        vec![
            "/apis/ordinaut.dev/v1alpha1/namespaces/team/tasks/t",
            "/apis/ordinaut.dev/v1alpha1/namespaces/other/tasks/t",
            "/apis/ordinaut.dev/v1alpha1/namespaces/team/tasks/nope",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_resume_snooze_and_backfill_write_spec_fields_and_annotations() {
    let c = cluster().await;
    let lab = ["--context", "lab"];
    let with = |args: &[&'static str]| -> Vec<&'static str> {
        args.iter().chain(lab.iter()).copied().collect()
    };
    ok(&kubectl(&c, &with(&["suspend", "t"])).await);
    assert_eq!(task(&c, "team")["spec"]["suspend"], true);
    ok(&kubectl(&c, &with(&["resume", "t"])).await);
    assert_eq!(task(&c, "team")["spec"]["suspend"], false);
    ok(&kubectl(
        &c,
        &with(&["snooze", "t", "--until", "2030-01-02T03:04:05Z"]),
    )
    .await);
    assert_eq!(
        task(&c, "team")["spec"]["snoozeUntil"],
        "2030-01-02T03:04:05Z"
    );
    ok(&kubectl(&c, &with(&["snooze", "t", "--clear"])).await);
    assert!(task(&c, "team")["spec"]["snoozeUntil"].is_null());
    let out = ok(&kubectl(
        &c,
        &with(&[
            "backfill",
            "t",
            "--from",
            "2025-06-01T00:00:00Z",
            "--to",
            "2025-06-03T00:00:00Z",
            "-o",
            "json",
        ]),
    )
    .await);
    assert_eq!(
        task(&c, "team")["metadata"]["annotations"]["ordinaut.dev/backfill"],
        "2025-06-01T00:00:00Z/2025-06-03T00:00:00Z"
    );
    let printed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(printed["namespace"], "team");
    let out = kubectl(
        &c,
        &with(&["backfill", "t", "--from", "now", "--to", "now+1h"]),
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "a future range is refused before any call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn preview_and_get_read_the_task_in_every_output_format() {
    let c = cluster().await;
    let out = ok(&kubectl(&c, &["preview", "t", "--context", "lab", "--count", "3"]).await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for l in &lines {
        // 09:00 in Paris is 07:00 or 08:00 UTC.
        assert!(
            l.contains("T07:00:00Z") || l.contains("T08:00:00Z"),
            "{out}"
        );
    }
    let out = ok(&kubectl(&c, &["get", "--context", "lab", "-o", "wide"]).await);
    assert!(out.lines().next().unwrap().contains("TIMEZONE"), "{out}");
    assert!(out.contains("Europe/Paris"), "{out}");
    let out = ok(&kubectl(&c, &["get", "t", "--context", "lab", "-o", "yaml"]).await);
    let doc: Value = serde_yaml::from_str(&out).unwrap();
    assert_eq!(doc["metadata"]["namespace"], "team");
    let out = ok(&kubectl(
        &c,
        &["get", "--context", "lab", "-n", "other", "-o", "json"],
    )
    .await);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["items"][0]["metadata"]["namespace"], "other");
    // runs (and its alias history) needs the gateway: a clear message, not a stack of
    // errors, and not `ordinaut dev`'s database.
    for command in ["runs", "history"] {
        let out = kubectl(&c, &[command, "t", "--context", "lab"]).await;
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--gateway-url"), "{command}: {err}");
        assert!(err.contains("`runs` reads it"), "{command}: {err}");
    }
    let help = ok(&kubectl(&c, &["--help"]).await);
    assert!(help.contains("runs"), "{help}");
}

/// RBAC refusing a write: the user reads which verb on which resource in which namespace was
/// forbidden (and what to ask for), and nothing was changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_request_names_the_verb_resource_and_namespace_refused() {
    let c = cluster().await;
    let path = "/apis/ordinaut.dev/v1alpha1/namespaces/team/tasks/t";
    c.fake.fail_next(Verb::Patch, path, 1, 403);
    let out = kubectl(&c, &["suspend", "t", "--context", "lab"]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("forbidden: you may not patch tasks.ordinaut.dev in namespace team"),
        "{err}"
    );
    assert!(
        err.contains("`patch` on `tasks` in API group `ordinaut.dev`"),
        "{err}"
    );
    assert_ne!(
        task(&c, "team")["spec"]["suspend"],
        Value::Bool(true),
        "nothing changed"
    );
    c.fake.fail_next(Verb::Get, path, 1, 403);
    let out = kubectl(&c, &["preview", "t", "--context", "lab"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("you may not get tasks.ordinaut.dev in namespace team"),
        "{err}"
    );
    c.fake.fail_next(
        Verb::List,
        "/apis/ordinaut.dev/v1alpha1/namespaces/other/tasks",
        1,
        403,
    );
    let out = kubectl(&c, &["get", "--context", "lab", "-n", "other"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("you may not list tasks.ordinaut.dev in namespace other"),
        "{err}"
    );
}

/// `preview` lists what the operator will queue: with a future `startAt`, the occurrence at
/// `startAt` itself comes first (an `every` schedule always has one there).
#[tokio::test(flavor = "multi_thread")]
async fn preview_includes_the_occurrence_at_start_at() {
    let c = cluster().await;
    let task: Task = serde_yaml::from_str(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: later, namespace: team}\n\
         spec:\n  schedule: {every: 1h, startAt: '2030-01-01T00:30:00Z'}\n  pipeline:\n    steps: [{id: a, uses: core.echo}]\n",
    )
    .unwrap();
    Api::<Task>::namespaced(c.fake.client(), "team")
        .create(&PostParams::default(), &task)
        .await
        .unwrap();
    let out = ok(&kubectl(
        &c,
        &["preview", "later", "--context", "lab", "--count", "2"],
    )
    .await);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("2030-01-01T00:30:00Z"), "{out}");
    assert!(lines[1].contains("2030-01-01T01:30:00Z"), "{out}");
}
