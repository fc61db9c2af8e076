//! The `ordinaut-operator` binary's own surface.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[test]
fn crdgen_prints_every_crd() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .arg("crdgen")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for name in [
        "tasks.ordinaut.dev",
        "pipelines.ordinaut.dev",
        "mcpservers.ordinaut.dev",
        "agents.ordinaut.dev",
    ] {
        assert!(text.contains(&format!("name: {name}")), "{name} missing");
    }
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 4);
}

#[test]
fn every_flag_has_an_environment_variable_in_the_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for env in [
        "DATABASE_URL",
        "REDIS_URL",
        "POD_NAMESPACE",
        "POD_NAME",
        "ORDINAUT_HORIZON",
        "ORDINAUT_TICK_INTERVAL",
        "ORDINAUT_LEADER_ELECTION",
        "ORDINAUT_API_REQUESTS_IN_FLIGHT",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from --help"
        );
    }
}

#[test]
fn without_a_database_url_it_exits_non_zero_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--database-url"), "{err}");
}

/// The real binary against an API server it reaches through a kubeconfig (the fake, served
/// over HTTP), real PostgreSQL and Redis: it becomes ready, elects itself leader on a Lease,
/// materializes an applied Task and reports it Ready with a next run time, and exits 0 on
/// SIGTERM. (Until this test the binary had never started a Kubernetes client: rustls had
/// two crypto providers to choose from and panicked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_materializes_an_applied_task_and_exits_cleanly_on_sigterm() {
    use kube::api::{Api, PostParams};
    use ordinaut_store::testing::TestDb;
    use std::time::{Duration, Instant};

    let (db, store) = TestDb::migrated().await.unwrap();
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let addr = fake.serve_http().await.unwrap();
    let dir = std::env::temp_dir().join(format!("ordinaut-op-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ordinaut_kube_fake::kubeconfig_for(addr, "default"),
    )
    .unwrap();
    let port = ordinaut_test_support::free_port();
    let redis = std::env::var("ORDINAUT_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut op = Command::new(env!("CARGO_BIN_EXE_ordinaut-operator"))
        .args(["--database-url", &db.url, "--redis-url", &redis])
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let ready = loop {
        if let Some(status) = op.try_wait().unwrap() {
            let out = op.wait_with_output().unwrap();
            panic!(
                "the operator exited ({status}) before it was ready:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if ordinaut_test_support::http_get(port, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if !ready {
        let _ = op.kill();
        let out = op.wait_with_output().unwrap();
        panic!(
            "not ready in 30 s:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        ordinaut_test_support::http_get(port, "/metrics")
            .await
            .contains("ordinaut_")
    );

    let tasks: Api<ordinaut_api::Task> = Api::namespaced(fake.client(), "default");
    let task: ordinaut_api::Task = serde_yaml::from_str(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: hourly, namespace: default}\nspec:\n  schedule: {every: 1h}\n  pipeline:\n    steps: [{id: hello, uses: core.echo, with: {msg: hi}}]\n",
    )
    .unwrap();
    tasks.create(&PostParams::default(), &task).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let obj = fake
            .object::<ordinaut_api::Task>("default", "hourly")
            .unwrap();
        let ready = obj["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"] == "True")
            .unwrap_or(false);
        let (queued,): (i64,) = sqlx::query_as("SELECT count(*) FROM due_work")
            .fetch_one(store.pool())
            .await
            .unwrap();
        if ready && queued > 0 && obj["status"]["nextRunTime"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Task was not Ready with queued occurrences in 30 s: {}",
            obj["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(fake.client(), "default");
    let lease = leases.get("ordinaut-operator").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());

    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &op.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = op.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no exit within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
    let _ = std::fs::remove_dir_all(&dir);
}
