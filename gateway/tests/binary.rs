//! The `ordinaut-gateway` binary's own surface: `--help` documents every flag with its
//! environment variable; against an API server it reaches through a kubeconfig (the fake,
//! served over HTTP) and real PostgreSQL it serves `/healthz`, `/readyz`, `/metrics`, the
//! OpenAPI document and the API with its admin token (a Task created through it is a Task
//! object), and exits 0 on SIGTERM.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use ordinaut_api::Task;
use ordinaut_store::testing::TestDb;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_ordinaut-gateway");

#[test]
fn every_flag_has_an_environment_variable_in_the_help() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for env in [
        "DATABASE_URL",
        "ORDINAUT_LISTEN_ADDR",
        "ORDINAUT_ADMIN_TOKEN_FILE",
        "ORDINAUT_ALLOWED_HOSTS",
        "ORDINAUT_RATE_LIMIT",
        "ORDINAUT_RATE_BURST",
        "ORDINAUT_TOKEN_REFRESH",
        "ORDINAUT_DB_MAX_CONNECTIONS",
        "ORDINAUT_LOG_FORMAT",
        "RUST_LOG",
    ] {
        assert!(
            help.contains(&format!("[env: {env}")),
            "{env} missing from --help"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_api_and_exits_cleanly_on_sigterm() {
    let (db, _store) = TestDb::migrated().await.unwrap();
    let fake = ordinaut_kube_fake::FakeApiServer::new();
    for crd in ordinaut_api::crds() {
        fake.register_crd(&crd);
    }
    let addr = fake.serve_http().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        ordinaut_kube_fake::kubeconfig_for(addr, "default"),
    )
    .unwrap();
    let token_file = dir.path().join("admin");
    std::fs::write(&token_file, "binary-admin-token\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut gw = Command::new(BIN)
        .args(["--database-url", &db.url])
        .args(["--listen-addr", &format!("127.0.0.1:{port}")])
        .arg("--admin-token-file")
        .arg(&token_file)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = gw.try_wait().unwrap() {
            let out = gw.wait_with_output().unwrap();
            panic!(
                "exited ({status}):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let ok = http.get(format!("{url}/readyz")).send().await;
        if ok.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "not ready within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let get = |path: &str| http.get(format!("{url}{path}")).send();
    assert!(get("/healthz").await.unwrap().status().is_success());
    let doc: serde_json::Value = get("/openapi.json").await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(get("/v1/tasks").await.unwrap().status(), 401);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("ordinaut_gateway_requests_total{outcome=\"unauthorized\"} 1"),
        "{metrics}"
    );

    let created = http
        .post(format!("{url}/v1/tasks"))
        .bearer_auth("binary-admin-token")
        .json(
            &json!({"name": "from-the-binary", "spec": {"schedule": {"every": "1h"},
            "pipeline": {"steps": [{"id": "hi", "uses": "core.echo"}]}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    assert!(fake.object::<Task>("default", "from-the-binary").is_some());

    kill(Pid::from_raw(gw.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = gw.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}
