//! The dashboard in a real browser: Debian's Chromium driven by `playwright-core`
//! (`tests/browser/dashboard.mjs`) against a cluster with seeded Tasks and real runs. It
//! signs in, finds the failed run first and opens its error, presses "Run now" and watches
//! the new run appear live, draws the timeline across a DST change, and is refused an action
//! outside its token's scopes. It takes the README's screenshots (`docs/screenshots/`, replaced
//! when `ORDINAUT_UPDATE_SCREENSHOTS` is set).
//!
//! Chromium and the npm package are installed by `scripts/install-test-peers.sh`; when they
//! are missing this test fails and says so (it never skips).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ordinaut_test_support::dashboard::{ADMIN, echo_task, start, wait_for};
use reqwest::Method;
use serde_json::json;

const AGENT_TOKEN: &str = "ops-bot-token-for-browser-tests";
const VIEWER_TOKEN: &str = "viewer-token-for-browser-tests";

fn chromium() -> PathBuf {
    let path = std::env::var_os("ORDINAUT_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {} (set ORDINAUT_CHROMIUM to another path): run \
         scripts/install-test-peers.sh, which runs `apt-get install -y chromium`",
        path.display()
    );
    path
}

fn browser_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/install-test-peers.sh (npm ci there)",
        dir.display()
    );
    dir
}

async fn create(env: &ordinaut_test_support::dashboard::Env, name: &str, spec: serde_json::Value) {
    let body = json!({"name": name, "namespace": "team", "spec": spec});
    let (s, b) = env.api(Method::POST, "/v1/tasks", ADMIN, Some(body)).await;
    assert_eq!(s, 201, "{name}: {b}");
}

/// Four Tasks of an Agent, one of which has failed and one has succeeded.
async fn seed(env: &ordinaut_test_support::dashboard::Env) {
    env.agent("team", "ops-bot", AGENT_TOKEN, None).await;
    env.agent(
        "team",
        "viewer",
        VIEWER_TOKEN,
        Some(&["tasks:read", "tasks:all", "runs:read"]),
    )
    .await;
    let berlin = json!({"cron": "30 2 * * *", "timezone": "Europe/Berlin"});
    create(env, "nightly-report", echo_task("ops-bot", berlin)).await;
    let weekly = json!({"rrule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9", "timezone": "America/New_York"});
    create(env, "weekly-digest", echo_task("ops-bot", weekly)).await;
    create(
        env,
        "cleanup",
        echo_task("ops-bot", json!({"every": "30m"})),
    )
    .await;
    let failing = json!({
        "schedule": {"every": "1h"}, "agentRef": "ops-bot",
        "pipeline": {"steps": [
            {"id": "fetch", "uses": "core.fail",
             "with": {"message": "upstream answered 503", "retryable": false}}]},
    });
    create(env, "sync-inventory", failing).await;
    for task in ["sync-inventory", "nightly-report"] {
        let (s, b) = env
            .api(
                Method::POST,
                &format!("/v1/tasks/team/{task}/run-now"),
                ADMIN,
                None,
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    wait_for("a failed and a succeeded run", || async {
        let (_, b) = env
            .api(Method::GET, "/v1/runs?namespace=team", ADMIN, None)
            .await;
        let has = |task: &str, status: &str| {
            b["items"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["task"] == task && r["status"] == status)
        };
        has("sync-inventory", "failed") && has("nightly-report", "succeeded")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_finds_the_failure_runs_a_task_and_is_refused_outside_scopes() {
    let chromium = chromium();
    let dir = browser_dir();
    let env = start().await;
    seed(&env).await;
    // The README's screenshots are replaced only when asked, so a test run leaves the tree
    // clean: `ORDINAUT_UPDATE_SCREENSHOTS=1 cargo nextest run -p ordinaut-gateway --test
    // dashboard_browser`.
    let scratch = tempfile::tempdir().unwrap();
    let shots = if std::env::var_os("ORDINAUT_UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots")
    } else {
        scratch.path().to_path_buf()
    };
    std::fs::create_dir_all(&shots).unwrap();
    let child = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&dir)
        .env("BASE_URL", &env.url)
        .env("AGENT_TOKEN", AGENT_TOKEN)
        .env("VIEWER_TOKEN", VIEWER_TOKEN)
        .env("CHROMIUM", &chromium)
        .env("SHOTS_DIR", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (scripts/install-test-peers.sh installs Node.js)");
    let out = tokio::time::timeout(Duration::from_secs(240), child.wait_with_output())
        .await
        .expect("the browser script finishes within 4 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser script failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("browser: all steps passed"), "{stdout}");
    for shot in [
        "overview.png",
        "run-detail.png",
        "timeline-dst.png",
        "phone-dark.png",
        "task.png",
    ] {
        let len = std::fs::metadata(shots.join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "{shot} was not written ({len} bytes)");
    }
    // The browser's refused action is in the audit log like an API call's.
    let (_, audit) = env
        .api(Method::GET, "/v1/audit?action=task.run-now", ADMIN, None)
        .await;
    let refused = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "agent:team/viewer" && e["allowed"] == false);
    assert!(refused, "{audit}");
}
