//! The README's first command, `bash scripts/dev.sh`, run as written (with the binary this
//! test suite built, through `ORDINAUT_BIN`, instead of a release build): it checks what the
//! machine has, starts `ordinaut dev examples/`, the examples become ready and a run of
//! `hello-every-minute` can be queued and finishes, and Ctrl-C stops it cleanly.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::cli::{Dev, bin, redis_url};

#[tokio::test(flavor = "multi_thread")]
async fn scripts_dev_sh_runs_the_examples_and_stops_on_ctrl_c() {
    let db = TestDb::empty().await.unwrap();
    let data = tempfile::tempdir().unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let stream = format!("ordinaut:test:{}", uuid::Uuid::new_v4().simple());
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("scripts/dev.sh"))
        .arg("examples/")
        .current_dir(&root)
        .env("ORDINAUT_BIN", bin())
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url())
        .env("ORDINAUT_EVENTS_STREAM", &stream)
        .env("ORDINAUT_DATA_DIR", data.path());
    let mut dev = Dev::start(cmd);
    let ready = dev.wait_line(
        0,
        "task default/hello-every-minute: ready",
        Duration::from_secs(90),
    );
    dev.wait_line(ready, "watching examples/", Duration::from_secs(30));
    let out = Command::new(bin())
        .args(["task", "run-now", "default/hello-every-minute"])
        .current_dir(&root)
        .env("DATABASE_URL", &db.url)
        .env("ORDINAUT_DATA_DIR", data.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dev.wait_line(
        ready,
        "run default/hello-every-minute succeeded",
        Duration::from_secs(90),
    );
    let status = dev.stop(Signal::SIGINT, Duration::from_secs(60));
    assert!(status.success(), "exit {status}\n{}", dev.output());
    assert!(dev.output().contains("summary:"), "{}", dev.output());
}
