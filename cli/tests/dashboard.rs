//! The dashboard of `ordinaut dev`, as the README's "Dashboard" section describes it: the
//! printed address serves the login page, the admin token from `dev.json` signs in, the
//! examples' Tasks are listed, and "Run now" on a Task's page queues a run that shows up there.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use ordinaut_store::testing::TestDb;
use ordinaut_test_support::cli::*;

/// A response: status, headers (lowercase names) and body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request (the tests of this crate have no HTTP client).
fn http(port: u16, method: &str, path: &str, cookie: Option<&str>, form: Option<&str>) -> Response {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = form.unwrap_or("");
    if form.is_some() {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

fn csrf_of(body: &str) -> String {
    let at = body.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    body[at..].split('"').next().unwrap().to_string()
}

#[test]
fn the_printed_dashboard_signs_in_with_the_admin_token_and_runs_a_task() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::empty()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    // The MCP example would start `npx`; the others are what the README's dev run shows.
    for f in [
        "agent.yaml",
        "hello-every-minute.yaml",
        "pipeline-morning-briefing.yaml",
        "task-morning-briefing.yaml",
    ] {
        std::fs::copy(examples.join(f), dir.path().join(f)).unwrap();
    }
    let port = unused_port();
    let mut cmd = ordinaut(&["dev", &dir.path().display().to_string()]);
    cmd.args(["--database-url", &db.url, "--redis-url", &redis_url()])
        .args([
            "--events-stream",
            &format!("test:dash:{}", uuid::Uuid::new_v4().simple()),
        ])
        .args(["--data-dir", &data.path().display().to_string()])
        .args(["--gateway-addr", &format!("127.0.0.1:{port}")]);
    let mut dev = Dev::start(cmd);
    let at = dev.wait_line(0, "gateway on ", Duration::from_secs(60));
    let line = dev.lines()[at].clone();
    assert!(
        line.contains(&format!("dashboard http://127.0.0.1:{port}/ui")),
        "{line}"
    );
    dev.wait_line(0, "watching ", Duration::from_secs(60));

    let first = http(port, "GET", "/ui", None, None);
    assert_eq!(first.status, 303);
    assert_eq!(first.header("location"), Some("/ui/login?next=%2Fui"));
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.path().join("dev.json")).unwrap())
            .unwrap();
    let token = state["adminToken"].as_str().unwrap();
    let login = http(
        port,
        "POST",
        "/ui/login",
        None,
        Some(&format!("token={token}&tz=UTC")),
    );
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();

    let overview = wait_for(
        Duration::from_secs(30),
        "the examples on the overview",
        || {
            let page = http(port, "GET", "/ui", Some(&cookie), None);
            page.body
                .contains("data-task=\"default/hello-every-minute\"")
                .then_some(page)
        },
    );
    assert!(
        overview
            .body
            .contains("data-task=\"default/morning-briefing\""),
        "{}",
        overview.body
    );

    let path = "/ui/tasks/default/morning-briefing";
    let page = http(port, "GET", path, Some(&cookie), None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Next 20 occurrences"), "{}", page.body);
    let form = format!("csrf={}", csrf_of(&page.body));
    let done = http(
        port,
        "POST",
        &format!("{path}/run-now"),
        Some(&cookie),
        Some(&form),
    );
    assert_eq!(done.status, 303, "{}", done.body);
    wait_for(
        Duration::from_secs(60),
        "the manual run on the Task's page",
        || {
            let page = http(port, "GET", path, Some(&cookie), None);
            page.body
                .contains("<td data-label=\"Trigger\">manual</td>")
                .then_some(())
        },
    );

    let status = dev.stop(Signal::SIGTERM, Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dev.output());
}
