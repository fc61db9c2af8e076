//! `ordinaut dev` against hostile manifests: values PostgreSQL cannot store are refused as
//! invalid (naming the field) instead of being retried forever.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Dev, ordinaut, task, write};
use ordinaut_store::testing::TestDb;
use ordinaut_store::{RunFilter, Store};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A NUL character in a step argument: the Task is reported not ready once, naming the
/// field, nothing is retried in a loop, and the other Tasks of the folder run.
#[test]
fn a_nul_character_makes_the_task_invalid_naming_the_field_and_others_still_run() {
    let rt = rt();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let store = rt.block_on(Store::connect(&db.url, 2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "nul.yaml",
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: nul, namespace: default}\nspec:\n  schedule: {every: 1s}\n  pipeline:\n    steps:\n      - {id: a, uses: core.echo, with: {m: \"a\\0b\"}}\n",
    );
    write(dir.path(), "ok.yaml", &task("ok", "every: 1s"));
    let stream = format!("test:dev:{}", uuid::Uuid::new_v4().simple());
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args([
        "--database-url",
        &db.url,
        "--redis-url",
        &common::redis_url(),
    ])
    .args(["--events-stream", &stream])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(
        0,
        "task default/nul: not ready: InvalidPipeline: spec.pipeline.steps[0].with.m: contains a NUL character",
        Duration::from_secs(60),
    );
    // Progress: the valid Task runs three times, so several reconcile cycles have passed.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let runs = rt
            .block_on(store.list_runs(&RunFilter {
                task: Some(("default".into(), "ok".into())),
                limit: 100,
                ..RunFilter::default()
            }))
            .unwrap()
            .len();
        if runs >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ok did not run\n{}",
            dev.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = dev.output();
    let reports = dev
        .lines()
        .iter()
        .filter(|l| l.contains("task default/nul: not ready"))
        .count();
    assert_eq!(reports, 1, "{output}");
    assert!(!output.contains("retrying"), "{output}");
    assert!(!output.contains("unsupported Unicode escape"), "{output}");
    dev.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));
}
