//! schemathesis (PyPI) against the gateway's `/openapi.json`, bounded in time: generated
//! requests for every operation, with the admin token, must never get a 5xx, every response
//! must match the document (status code, content type, headers, schema), requests outside
//! the document must be refused and requests without the token too. The gateway runs
//! with the operator against the fake Kubernetes API and real PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use ordinaut_test_support::gateway::*;

/// schemathesis's CLI, from the venv scripts/install-test-peers.sh fills.
fn st() -> PathBuf {
    let dir = std::env::var("ORDINAUT_TOOLS_DIR").unwrap_or_else(|_| "/var/cache/ordinaut".into());
    let st = PathBuf::from(dir).join("schemathesis/bin/st");
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run scripts/install-test-peers.sh",
        st.display()
    );
    st
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_outside_the_document() {
    let c = start(unlimited()).await;
    c.agent("default", "bot", "bot-token-for-schemathesis", None)
        .await;
    let (s, _) = c
        .post(
            "/v1/tasks",
            ADMIN,
            serde_json::json!({"name": "seed", "spec": echo_spec("1h")}),
        )
        .await;
    assert_eq!(s, 201);
    let seconds = std::env::var("ORDINAUT_SCHEMATHESIS_SECONDS").unwrap_or_else(|_| "30".into());
    let url = format!("{}/openapi.json", c.url);
    // schemathesis keeps a cache of crashes in `.schemathesis/` under its working directory.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st())
            .current_dir(cwd)
            .args([
                "run",
                &url,
                "--header",
                &format!("Authorization: Bearer {ADMIN}"),
            ])
            .args(["--max-time", &seconds, "--checks", "all"])
            // Not checked: positive_data_acceptance (a schedule, a duration or a cursor that
            // JSON Schema accepts may still be invalid: 422 naming the field), and
            // use_after_free (a deleted Task goes when the operator's finalizer has run).
            .args([
                "--exclude-checks",
                "positive_data_acceptance,use_after_free",
            ])
            .args(["--suppress-health-check", "all", "--no-color"])
            .args(["--generation-database", "none"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
}
