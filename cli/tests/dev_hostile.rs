//! `ordinaut dev` against hostile manifests: values PostgreSQL cannot store are refused as
//! invalid (naming the field) instead of being retried forever.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use ordinaut_store::testing::TestDb;
use ordinaut_store::{RunFilter, Store};
use ordinaut_test_support::cli::{Dev, ordinaut, task, write};

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
        &ordinaut_test_support::cli::redis_url(),
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

/// A loopback HTTP server that echoes each request back (request line, headers and body) in
/// its response, with the request's `Authorization` as a cookie: a hostile peer that returns
/// whatever secret it was sent. `/fail…` answers 500. Returns the port and every request.
fn echo_server() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut buf = vec![0u8; 65536];
            let mut request = Vec::new();
            // Read the head, then the body its content-length announces.
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_string();
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + len {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&request).to_string();
            let auth = text
                .lines()
                .find_map(|l| l.strip_prefix("authorization: "))
                .unwrap_or("")
                .to_string();
            let status = if text.starts_with("POST /fail") || text.starts_with("GET /fail") {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let body = serde_json::json!({"echo": text}).to_string();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nset-cookie: s={auth}\r\nx-echo: {auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes());
            log.lock().unwrap().push(text);
        }
    });
    (port, seen)
}

fn leaky_task(name: &str, port: u16, path: &str) -> String {
    format!(
        r#"apiVersion: ordinaut.dev/v1alpha1
kind: Task
metadata: {{name: {name}, namespace: default}}
spec:
  schedule: {{every: 2s}}
  agentRef: caller
  pipeline:
    steps:
      - id: call
        uses: http.request
        with:
          method: POST
          url: "http://127.0.0.1:{port}/{path}?api_key=${{secrets.api.token}}&q=1"
          headers: {{Authorization: "Bearer ${{secrets.api.token}}", X-Plain: "${{secrets.api.token}}"}}
          json: {{token: "${{secrets.api.token}}", note: "sent ${{secrets.api.token}} in the body"}}
      - id: again
        uses: core.echo
        with: {{seen: "${{steps.call.body.echo}}"}}
"#
    )
}

fn psql(url: &str, sql: &str) -> String {
    let o = std::process::Command::new("psql")
        .args([url, "-AtX", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

fn redis_cli(args: &[&str]) -> String {
    let o = std::process::Command::new("redis-cli")
        .args(["-u", &ordinaut_test_support::cli::redis_url()])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The canary: a Secret value used in a URL query, a header and a body of runs that
/// succeed and fail, echoed back by the server in its body and headers, is found in no
/// PostgreSQL table, no Redis stream, no line `ordinaut dev` printed (status and logs).
#[test]
fn a_secret_used_in_query_header_and_body_surfaces_nowhere() {
    let canary = format!("cnry{}", uuid::Uuid::new_v4().simple());
    let rt = rt();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let store = rt.block_on(Store::connect(&db.url, 2)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let secret_dir = data.path().join("secrets/default/api");
    std::fs::create_dir_all(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("token"), format!("{canary}\n")).unwrap();
    let (port, seen) = echo_server();
    write(
        dir.path(),
        "agent.yaml",
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Agent\nmetadata: {name: caller, namespace: default}\nspec:\n  scopes: [http.request, core.*]\n",
    );
    write(dir.path(), "ok.yaml", &leaky_task("ok", port, "ok"));
    write(dir.path(), "bad.yaml", &leaky_task("bad", port, "fail"));
    let stream = format!("test:dev:{}", uuid::Uuid::new_v4().simple());
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args([
        "--database-url",
        &db.url,
        "--redis-url",
        &ordinaut_test_support::cli::redis_url(),
    ])
    .args(["--events-stream", &stream])
    .args(["--http-allow-hosts", "127.0.0.1"])
    .args(["--data-dir", &data.path().display().to_string()]);
    let mut dev = Dev::start(cmd);
    dev.wait_line(0, "watching ", Duration::from_secs(60));
    let deadline = Instant::now() + Duration::from_secs(90);
    let finished = |name: &str, status: &str| {
        rt.block_on(store.list_runs(&RunFilter {
            task: Some(("default".into(), name.into())),
            limit: 100,
            ..RunFilter::default()
        }))
        .unwrap()
        .iter()
        .any(|r| r.status.as_str() == status)
    };
    while !(finished("ok", "succeeded") && finished("bad", "failed")) {
        assert!(
            Instant::now() < deadline,
            "runs did not finish\n{}",
            dev.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Both outcomes came back through the relay and the events stream and were printed:
    // every log line about them is out. (The status feed only writes status in memory.)
    dev.wait_line(0, "run default/ok succeeded", Duration::from_secs(60));
    dev.wait_line(0, "run default/bad failed", Duration::from_secs(60));
    dev.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(30));

    // The canary really went out: in the query, a header and the body.
    let requests = seen.lock().unwrap().join("\n");
    assert!(
        requests.contains(&format!("api_key={canary}")),
        "{requests}"
    );
    assert!(
        requests.contains(&format!("authorization: Bearer {canary}")),
        "{requests}"
    );
    assert!(
        requests.contains(&format!("\"token\":\"{canary}\"")),
        "{requests}"
    );

    // PostgreSQL: every table, every row.
    let tables = psql(
        &db.url,
        "SELECT quote_ident(table_name) FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    );
    let mut rows = 0;
    for table in tables.lines() {
        let dump = psql(&db.url, &format!("SELECT t::text FROM {table} t"));
        rows += dump.lines().count();
        assert!(
            !dump.contains(&canary),
            "the canary is in table {table}:\n{dump}"
        );
    }
    assert!(rows > 0);
    let steps = psql(
        &db.url,
        "SELECT input::text || ' ' || coalesce(output::text, '') || ' ' || coalesce(error, '') FROM step_runs",
    );
    assert!(steps.contains("api_key=***"), "{steps}");
    // Redis: every stream.
    let mut streams = 0;
    for key in redis_cli(&["--scan"]).lines() {
        assert!(!key.contains(&canary));
        if redis_cli(&["TYPE", key]).trim() == "stream" {
            streams += 1;
            let entries = redis_cli(&["XRANGE", key, "-", "+"]);
            assert!(!entries.contains(&canary), "the canary is in stream {key}");
        }
    }
    let ours = redis_cli(&["XRANGE", &stream, "-", "+"]);
    assert!(
        ours.contains("run.failed") && ours.contains("run.succeeded"),
        "{ours}"
    );
    assert!(streams > 0);
    // What ordinaut dev printed: status lines and logs.
    let output = dev.output();
    assert!(output.contains("task default/bad"), "{output}");
    assert!(
        !output.contains(&canary),
        "the canary was printed:\n{output}"
    );
}
