//! `ordinaut dev` as a real process on a temporary directory, against real PostgreSQL (a
//! fresh database per test) and Redis (a unique stream per test).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use ordinaut_store::testing::TestDb;
use ordinaut_store::{RunFilter, Store};
use ordinaut_test_support::cli::{Dev, ordinaut, task, unused_port, wait_for, write};

struct Instance {
    db: TestDb,
    store: Store,
    dir: tempfile::TempDir,
    data: tempfile::TempDir,
    dev: Dev,
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn start(rt: &tokio::runtime::Runtime, files: &[(&str, String)]) -> Instance {
    let db = rt.block_on(TestDb::empty()).unwrap();
    let store = rt.block_on(Store::connect(&db.url, 2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let stream = format!("test:dev:{}", uuid::Uuid::new_v4().simple());
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args([
        "--database-url",
        &db.url,
        "--redis-url",
        &ordinaut_test_support::cli::redis_url(),
    ])
    .args(["--events-stream", &stream])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "watching ", Duration::from_secs(60));
    Instance {
        db,
        store,
        dir,
        data,
        dev,
    }
}

fn runs_of(rt: &tokio::runtime::Runtime, store: &Store, name: &str) -> usize {
    rt.block_on(store.list_runs(&RunFilter {
        task: Some(("default".into(), name.into())),
        limit: 10_000,
        ..RunFilter::default()
    }))
    .unwrap()
    .len()
}

/// Waits until `name` has at least `n` recorded runs.
fn wait_runs(rt: &tokio::runtime::Runtime, i: &Instance, name: &str, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    while runs_of(rt, &i.store, name) < n {
        assert!(
            Instant::now() < deadline,
            "{name} did not reach {n} runs within {within:?}\n{}",
            i.dev.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// No new run of `name` is recorded for `quiet`, counted once no run is under way (every
/// Task of the test: this database is the test's own). A slow machine can only make the
/// quiet window look longer, never make the check fail.
fn assert_no_new_runs(rt: &tokio::runtime::Runtime, i: &Instance, name: &str, quiet: Duration) {
    wait_for(Duration::from_secs(30), "no run under way", || {
        let leased = rt.block_on(ordinaut_test_support::count(
            &i.store,
            "SELECT count(*) FROM due_work WHERE locked_until IS NOT NULL AND done_at IS NULL",
        ));
        (leased == 0).then_some(())
    });
    let before = runs_of(rt, &i.store, name);
    std::thread::sleep(quiet);
    let after = runs_of(rt, &i.store, name);
    assert_eq!(before, after, "{name} kept running\n{}", i.dev.output());
}

#[test]
fn dev_runs_a_directory_and_follows_edits_deletions_and_broken_files() {
    let rt = rt();
    let mut i = start(
        &rt,
        &[
            ("tick.yaml", task("tick", "every: 2s")),
            ("other.yaml", task("other", "every: 2s")),
        ],
    );
    let dir = i.dir.path().to_path_buf();
    // Runs are recorded and printed.
    wait_runs(&rt, &i, "tick", 2, Duration::from_secs(15));
    wait_runs(&rt, &i, "other", 1, Duration::from_secs(15));
    i.dev
        .wait_line(0, "run default/tick succeeded", Duration::from_secs(10));
    assert!(
        i.dev
            .lines()
            .iter()
            .any(|l| l.contains("task default/tick: ready, every 2s, next run ")),
        "{}",
        i.dev.output()
    );

    // A broken file and an invalid Task are reported with file, line and field; the others
    // keep running.
    let mark = i.dev.lines().len();
    write(
        &dir,
        "broken.yaml",
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: [oops\n",
    );
    write(&dir, "invalid.yaml", &task("bad", "every: soon"));
    let broken = format!("{}:", dir.join("broken.yaml").display());
    let at = i.dev.wait_line(mark, &broken, Duration::from_secs(30));
    assert!(i.dev.lines()[at].contains("(yaml)"), "{}", i.dev.output());
    let invalid = format!(
        "{}:7: spec.schedule.every:",
        dir.join("invalid.yaml").display()
    );
    i.dev.wait_line(mark, &invalid, Duration::from_secs(30));
    i.dev.wait_line(
        mark,
        "task default/bad: not ready: InvalidSchedule",
        Duration::from_secs(30),
    );
    let before = runs_of(&rt, &i.store, "tick");
    wait_runs(&rt, &i, "tick", before + 2, Duration::from_secs(30));
    assert_eq!(runs_of(&rt, &i.store, "bad"), 0);

    // A new schedule takes effect (how fast is the watcher's business, not a test's: a
    // loaded machine may take seconds).
    let mark = i.dev.lines().len();
    write(&dir, "tick.yaml", &task("tick", "every: 7h"));
    i.dev.wait_line(
        mark,
        "task default/tick: ready, every 7h",
        Duration::from_secs(30),
    );
    assert_no_new_runs(&rt, &i, "tick", Duration::from_secs(5));

    // Deleting a file stops its runs.
    let mark = i.dev.lines().len();
    std::fs::remove_file(dir.join("other.yaml")).unwrap();
    i.dev
        .wait_line(mark, "task default/other: removed", Duration::from_secs(30));
    assert_no_new_runs(&rt, &i, "other", Duration::from_secs(5));

    // Fixing the broken file loads it.
    let mark = i.dev.lines().len();
    write(&dir, "broken.yaml", &task("fixed", "every: 2s"));
    i.dev
        .wait_line(mark, "task default/fixed: ready", Duration::from_secs(30));
    wait_runs(&rt, &i, "fixed", 1, Duration::from_secs(30));

    // Ctrl-C: a summary, exit 0, dev.json gone.
    assert!(i.data.path().join("dev.json").exists());
    let status = i.dev.stop(Signal::SIGINT, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", i.dev.output());
    assert!(
        i.dev.lines().iter().any(|l| l.contains("summary: ")),
        "{}",
        i.dev.output()
    );
    assert!(!i.data.path().join("dev.json").exists());
    drop(i.db);
}

#[test]
fn dev_streams_json_lines_with_output_json() {
    let rt = rt();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write(dir.path(), "tick.yaml", &task("tick", "every: 2s"));
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string(), "--output", "json"]);
    cmd.args([
        "--database-url",
        &db.url,
        "--redis-url",
        &ordinaut_test_support::cli::redis_url(),
    ])
    .args([
        "--events-stream",
        &format!("test:dev:{}", uuid::Uuid::new_v4().simple()),
    ])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "\"event\":\"run.finished\"", Duration::from_secs(30));
    dev.stop(Signal::SIGTERM, Duration::from_secs(30));
    let events: Vec<serde_json::Value> = dev
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for kind in [
        "service",
        "task",
        "watching",
        "run.started",
        "run.finished",
        "summary",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let task = events.iter().find(|e| e["event"] == "task").unwrap();
    assert_eq!(task["object"], "default/tick");
    assert!(task["nextRunTime"].is_string());
    let run = events
        .iter()
        .find(|e| e["event"] == "run.finished")
        .unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["trigger"], "schedule");
}

#[test]
fn a_database_url_that_does_not_answer_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = unused_port();
    let out = ordinaut(&["dev", &dir.path().display().to_string()])
        .args([
            "--database-url",
            &format!("postgres://postgres@127.0.0.1:{port}/nothing"),
        ])
        .args(["--data-dir", &data.path().display().to_string()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: cannot reach PostgreSQL at postgres://postgres@127.0.0.1:{port}/nothing"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!data.path().join("dev.json").exists());
}

fn alive(pid: u32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok()
}

fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

#[test]
fn with_nothing_on_the_default_ports_private_servers_start_and_stop_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    // As root the private PostgreSQL runs as another account, which must reach the folder.
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write(dir.path(), "tick.yaml", &task("tick", "every: 2s"));
    let (pg_port, redis_port) = (unused_port(), unused_port());
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args([
        "--pg-port",
        &pg_port.to_string(),
        "--redis-port",
        &redis_port.to_string(),
    ])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "watching ", Duration::from_secs(120));
    let lines = dev.lines();
    assert!(
        lines.iter().any(|l| l.contains(&format!(
            "nothing answers on 127.0.0.1:{pg_port}; starting a private PostgreSQL"
        ))),
        "{}",
        dev.output()
    );
    assert!(
        lines.iter().any(|l| l.contains("(private, data in ")),
        "{}",
        dev.output()
    );
    dev.wait_line(0, "run default/tick succeeded", Duration::from_secs(20));

    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.path().join("dev.json")).unwrap())
            .unwrap();
    let private: Vec<(u32, u16)> = state["private"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["pid"].as_u64().unwrap() as u32,
                p["port"].as_u64().unwrap() as u16,
            )
        })
        .collect();
    assert_eq!(private.len(), 2, "{state}");
    for (pid, port) in &private {
        assert!(alive(*pid) && answers(*port), "{pid} on {port}");
    }
    let status = dev.stop(Signal::SIGTERM, Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", dev.output());
    for (pid, port) in &private {
        wait_for(
            Duration::from_secs(10),
            "the private servers to be gone",
            || (!alive(*pid) && !answers(*port)).then_some(()),
        );
    }
    assert!(!data.path().join("dev.json").exists());
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    ordinaut(args)
        .args(["--data-dir", &data.display().to_string()])
        .output()
        .unwrap()
}

#[test]
fn run_now_backfill_snooze_and_runs_work_against_a_dev_instance() {
    let rt = rt();
    let boom = "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: boom\nspec:\n  schedule: {at: '2099-01-01T00:00:00Z'}\n  pipeline:\n    steps:\n      - id: prepare\n        uses: core.echo\n        with: {token: abc}\n      - id: explode\n        uses: core.fail\n        with: {message: kaboom}\n".to_string();
    let slow = "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: slow\nspec:\n  schedule: {every: 10m, startAt: '2025-01-01T00:00:00Z'}\n  pipeline:\n    steps: [{id: a, uses: core.echo, with: {x: 1}}]\n".to_string();
    let mut i = start(
        &rt,
        &[
            ("boom.yaml", boom),
            ("slow.yaml", slow),
            ("tick.yaml", task("tick", "every: 2s")),
        ],
    );
    let data = i.data.path().to_path_buf();

    // run-now: the failing run, waited for.
    let out = cli(&data, &["task", "run-now", "default/boom", "--wait"]);
    let text = ordinaut_test_support::cli::text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("of default/boom: failed in "), "{text}");
    i.dev
        .wait_line(0, "run default/boom failed", Duration::from_secs(10));
    let line = i
        .dev
        .lines()
        .into_iter()
        .find(|l| l.contains("run default/boom failed"))
        .unwrap();
    assert!(
        line.contains("(manual, attempt 1)")
            && line.contains("step `explode`")
            && line.contains("kaboom (core.fail)"),
        "{line}"
    );

    // runs list / get.
    let out = cli(
        &data,
        &[
            "runs",
            "list",
            "--task",
            "default/boom",
            "--status",
            "failed",
        ],
    );
    let text = ordinaut_test_support::cli::text(&out);
    assert!(out.status.success(), "{text}");
    let row = text.lines().nth(1).unwrap_or_else(|| panic!("{text}"));
    assert!(
        row.contains("default/boom") && row.contains("manual") && row.contains("failed"),
        "{text}"
    );
    let id = row.split_whitespace().next().unwrap().to_string();
    let out = cli(&data, &["runs", "get", &id[..13]]);
    let text = ordinaut_test_support::cli::text(&out);
    assert!(out.status.success(), "{text}");
    for needle in [
        &format!("run       {id}"),
        "1. prepare (core.echo) succeeded",
        "2. explode (core.fail) failed",
        "input  {\"message\":\"kaboom\"}",
        "kaboom",
    ] {
        assert!(text.contains(needle), "no `{needle}` in\n{text}");
    }
    let out = cli(&data, &["runs", "get", &id, "--output", "json"]);
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["steps"][1]["status"], "failed");
    assert!(run["steps"][0]["output"]["token"].as_str().is_some());

    // backfill: exactly the preview's occurrences, then none.
    let (from, to) = ("2025-03-01T00:05:00Z", "2025-03-01T02:05:00Z");
    let preview = ordinaut(&[
        "schedule",
        "preview",
        "--every",
        "10m",
        "--dtstart",
        "2025-01-01T00:00:00",
        "--after",
        from,
        "--count",
        "100",
        "--output",
        "json",
    ])
    .output()
    .unwrap();
    let preview: Vec<String> = serde_json::from_slice(&preview.stdout).unwrap();
    let to_t: chrono::DateTime<chrono::Utc> = to.parse().unwrap();
    let expected = preview
        .iter()
        .filter(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap() <= to_t)
        .count();
    assert_eq!(expected, 12);
    let out = cli(
        &data,
        &[
            "task",
            "backfill",
            "default/slow",
            "--from",
            from,
            "--to",
            to,
            "--output",
            "json",
        ],
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", ordinaut_test_support::cli::text(&out)));
    assert_eq!(result["queued"], expected, "{result}");
    let out = cli(
        &data,
        &[
            "task",
            "backfill",
            "default/slow",
            "--from",
            from,
            "--to",
            to,
        ],
    );
    let text = ordinaut_test_support::cli::text(&out);
    assert!(
        text.starts_with("queued 0 backfill run(s) of default/slow: 12 occurrence(s)"),
        "{text}"
    );
    wait_for(Duration::from_secs(20), "the backfill runs", || {
        let runs = rt
            .block_on(i.store.list_runs(&RunFilter {
                task: Some(("default".into(), "slow".into())),
                limit: 100,
                ..RunFilter::default()
            }))
            .unwrap();
        (runs
            .iter()
            .filter(|r| r.trigger == "backfill" && r.status == "succeeded")
            .count()
            == expected)
            .then_some(())
    });

    // snooze: runs stop within 2 s, a manual run still runs; clear: they resume.
    wait_runs(&rt, &i, "tick", 1, Duration::from_secs(10));
    let mark = i.dev.lines().len();
    let out = cli(&data, &["task", "snooze", "tick", "--until", "now+1h"]);
    assert!(
        out.status.success(),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
    assert!(ordinaut_test_support::cli::text(&out).starts_with("snoozed default/tick until "));
    let at = i.dev.wait_line(
        mark,
        "task default/tick: ready, every 2s, next run",
        Duration::from_secs(30),
    );
    assert!(
        i.dev.lines()[at].contains(" (snoozed until "),
        "{}",
        i.dev.output()
    );
    assert_no_new_runs(&rt, &i, "tick", Duration::from_secs(5));
    let out = cli(&data, &["task", "run-now", "default/tick", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
    let mark = i.dev.lines().len();
    let out = cli(&data, &["task", "snooze", "default/tick", "--clear"]);
    assert!(
        out.status.success(),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
    let cleared = ordinaut_test_support::cli::text(&out);
    i.dev.wait_line(
        mark,
        "task default/tick: ready, every 2s, next run",
        Duration::from_secs(30),
    );
    let before = runs_of(&rt, &i.store, "tick");
    wait_runs(&rt, &i, "tick", before + 1, Duration::from_secs(30));

    // Each door above (run-now, backfill, snooze) wrote an audit entry, and the command
    // printed its correlation id.
    let audit: Vec<(String, Option<String>, Option<String>)> = rt
        .block_on(
            sqlx::query_as(
                "SELECT action, detail->>'outcome', correlation_id FROM audit_log \
                 WHERE actor LIKE 'cli:%' ORDER BY id",
            )
            .fetch_all(i.store.pool()),
        )
        .unwrap();
    for action in ["task.run-now", "task.backfill", "task.snooze"] {
        assert!(
            audit.iter().any(|(a, _, c)| a == action && c.is_some()),
            "no audit entry with a correlation id for {action}: {audit:?}"
        );
    }
    let (_, outcome, id) = audit.last().unwrap();
    assert_eq!(outcome.as_deref(), Some("cleared"));
    assert!(
        cleared.contains(&format!("[audit {}]", id.as_deref().unwrap())),
        "{cleared}"
    );

    // Unknown task, and no dev instance.
    let out = cli(&data, &["task", "run-now", "default/nope"]);
    assert!(
        ordinaut_test_support::cli::text(&out).contains("no Task default/nope"),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
    let status = i.dev.stop(Signal::SIGINT, Duration::from_secs(30));
    assert!(status.success());
    let out = cli(&data, &["runs", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        ordinaut_test_support::cli::text(&out).contains("no `ordinaut dev` is running on"),
        "{}",
        ordinaut_test_support::cli::text(&out)
    );
}

/// The MCP example runs as written: `examples/mcp-everything.yaml` and `examples/agent.yaml`
/// copied verbatim. The McpServer is discovered, a run calls the real server-everything (via
/// npx, from npm), and the run record shows the tool's output.
#[test]
fn the_mcp_example_runs_and_its_record_shows_the_tool_output() {
    let rt = rt();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let read = |name: &str| std::fs::read_to_string(examples.join(name)).unwrap();
    let mut i = start(
        &rt,
        &[
            ("agent.yaml", read("agent.yaml")),
            ("mcp-everything.yaml", read("mcp-everything.yaml")),
        ],
    );
    i.dev.wait_line(
        0,
        "mcpserver default/everything: valid",
        Duration::from_secs(120),
    );
    let data = i.data.path().to_path_buf();
    let out = cli(&data, &["task", "run-now", "default/mcp-echo", "--wait"]);
    let text = ordinaut_test_support::cli::text(&out);
    assert!(out.status.success(), "{text}\n{}", i.dev.output());
    let out = cli(
        &data,
        &["runs", "list", "--task", "default/mcp-echo", "--limit", "1"],
    );
    let text = ordinaut_test_support::cli::text(&out);
    let id = text
        .lines()
        .nth(1)
        .and_then(|row| row.split_whitespace().next())
        .unwrap_or_else(|| panic!("{text}"))
        .to_string();
    let out = cli(&data, &["runs", "get", &id, "--output", "json"]);
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["uses"], "everything.echo");
    let heard = run["output"]["heard"].as_str().unwrap();
    assert!(
        heard.starts_with("Echo: hello from mcp-echo, run "),
        "{run}"
    );
    i.dev.stop(Signal::SIGINT, Duration::from_secs(30));
}

/// A dev instance runs exactly what its folder defines: Tasks an earlier session left in the
/// same database are removed at start (history kept), so they do not keep running.
#[test]
fn tasks_left_by_an_earlier_session_are_removed_at_start() {
    let rt = rt();
    let mut first = start(&rt, &[("old.yaml", task("old", "every: 2s"))]);
    wait_runs(&rt, &first, "old", 1, Duration::from_secs(30));
    first.dev.stop(Signal::SIGINT, Duration::from_secs(30));

    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    write(dir.path(), "new.yaml", &task("new", "every: 2s"));
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args([
        "--database-url",
        &first.db.url,
        "--redis-url",
        &ordinaut_test_support::cli::redis_url(),
    ])
    .args([
        "--events-stream",
        &format!("test:dev:{}", uuid::Uuid::new_v4().simple()),
    ])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut second = Dev::start(cmd);
    second.wait_line(
        0,
        "task default/old: removed (left by an earlier session",
        Duration::from_secs(60),
    );
    let old_runs = runs_of(&rt, &first.store, "old");
    let deadline = Instant::now() + Duration::from_secs(30);
    while runs_of(&rt, &first.store, "new") < 2 {
        assert!(Instant::now() < deadline, "{}", second.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        runs_of(&rt, &first.store, "old"),
        old_runs,
        "the old task kept running"
    );
    assert!(old_runs >= 1, "its history is kept");
    second.stop(Signal::SIGINT, Duration::from_secs(30));
}
