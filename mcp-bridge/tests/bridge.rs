//! The bridge binary for real: it starts @modelcontextprotocol/server-everything (installed
//! by `scripts/install-test-peers.sh`) over stdio and an rmcp client reaches it over
//! streamable HTTP; probes, metrics, --help and SIGTERM (the child goes with it).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::transport::StreamableHttpClientTransport;

const BRIDGE: &str = env!("CARGO_BIN_EXE_ordinaut-mcp-bridge");
const WAIT: Duration = Duration::from_secs(60);

fn everything_js() -> PathBuf {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "../crates/tools/tests/fixtures/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
    );
    assert!(
        js.exists(),
        "MCP server-everything is not installed ({} is missing): run `bash scripts/install-test-peers.sh`",
        js.display()
    );
    js
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the bridge if a test fails half-way.
struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn command(port: u16, server: &[&str]) -> Command {
    let mut c = Command::new(BRIDGE);
    c.args(["--listen", &format!("127.0.0.1:{port}"), "--grace", "2s"])
        .args(["--log-format", "text", "--"])
        .args(server)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn start(port: u16, server: &[&str]) -> Bridge {
    Bridge(command(port, server).spawn().unwrap())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < WAIT,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

/// The children of `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`; comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stdio_server_is_served_over_streamable_http_until_sigterm_stops_it() {
    let js = everything_js();
    let port = free_port();
    let mut bridge = start(port, &["node", js.to_str().unwrap(), "stdio"]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("/readyz to answer 200", async || {
        status(&format!("{base}/readyz")).await == Some(200)
    })
    .await;
    assert_eq!(status(&format!("{base}/healthz")).await, Some(200));

    let client = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bridge-test", "0"),
    )
    .serve(StreamableHttpClientTransport::from_uri(format!(
        "{base}/mcp"
    )))
    .await
    .unwrap();
    let tools = client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "echo"), "{tools:?}");
    let args = serde_json::json!({ "message": "through the bridge" });
    let result = client
        .call_tool(
            CallToolRequestParams::new("echo").with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    let text = serde_json::to_string(&result.content).unwrap();
    assert!(text.contains("through the bridge"), "{text}");
    // A second session shares the same server process.
    let other = ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("bridge-test-2", "0"),
    )
    .serve(StreamableHttpClientTransport::from_uri(format!(
        "{base}/mcp"
    )))
    .await
    .unwrap();
    assert!(!other.list_all_tools().await.unwrap().is_empty());
    let _ = client.cancel().await;
    let _ = other.cancel().await;

    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"ordinaut_bridge_requests_total{method="tools/call",outcome="ok"} 1"#),
        "{metrics}"
    );

    let server: Vec<u32> = children(bridge.0.id());
    assert_eq!(server.len(), 1, "one server process: {server:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(bridge.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = bridge.0.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < WAIT, "the bridge did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        !running(server[0]),
        "the server process {} outlived the bridge",
        server[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_start_or_exits_ends_the_bridge_with_the_reason() {
    let port = free_port();
    let out = command(port, &["/nonexistent/mcp-server"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot start `/nonexistent/mcp-server`"),
        "{err}"
    );

    // Exits before answering initialize.
    let out = command(port, &["sh", "-c", "exit 3"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("failed MCP initialize"), "{err}");

    let out = Command::new(BRIDGE).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("after `--`"));
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let out = Command::new(BRIDGE).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "ORDINAUT_BRIDGE_LISTEN",
        "--startup-timeout",
        "ORDINAUT_BRIDGE_STARTUP_TIMEOUT",
        "--grace",
        "ORDINAUT_BRIDGE_GRACE",
        "--log-format",
        "--log-level",
        "install",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn install_copies_the_binary_as_an_executable() {
    let dir = std::env::temp_dir().join(format!("bridge-install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("ordinaut-mcp-bridge");
    let out = Command::new(BRIDGE)
        .arg("install")
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(&dest).arg("--version").output().unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).unwrap();
}
