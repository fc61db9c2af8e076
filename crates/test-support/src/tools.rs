//! Shared setup of the tools crate's MCP tests (feature `tools`): the real peers (installed by
//! `scripts/install-test-peers.sh`), a guard for an HTTP server process, and /proc checks.

use ordinaut_tools::CallContext;
use ordinaut_tools::mcp::ResolvedServer;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::python::INSTALL_PEERS as INSTALL;

/// `crates/tools/tests/fixtures`, where the install script puts the peers.
fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/tests/fixtures")
}

/// `dist/index.js` of @modelcontextprotocol/server-everything, installed by npm.
pub fn everything_js() -> PathBuf {
    let js = fixtures().join("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        js.exists(),
        "MCP server-everything is not installed ({} is missing): {INSTALL}",
        js.display()
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|o| o.status.success()),
        "`node` is not on PATH: {INSTALL}"
    );
    js
}

/// The venv's Python, with the official `mcp` package.
pub fn python() -> PathBuf {
    crate::python::mcp_python()
}

/// server-everything over stdio.
pub fn everything_stdio() -> ResolvedServer {
    let js = everything_js();
    ResolvedServer::stdio("node", [js.to_string_lossy().into_owned(), "stdio".into()])
}

/// The Python fixture server over stdio.
pub fn weather_stdio() -> ResolvedServer {
    let script = fixtures().join("weather_server.py");
    ResolvedServer::stdio(
        python().to_string_lossy().into_owned(),
        [script.to_string_lossy().into_owned()],
    )
}

/// A context with a timeout.
pub fn ctx(step: &str, timeout: Duration) -> CallContext {
    let mut c = CallContext::for_test(step);
    c.timeout = Some(timeout);
    c
}

/// Polls `cond` until it holds or `within` passes.
pub async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    crate::until(within, what, || std::future::ready(cond())).await
}

/// server-everything over streamable HTTP on a free loopback port; killed (and reaped) on
/// drop.
pub struct HttpEverything {
    child: Child,
    pub url: String,
}

impl HttpEverything {
    pub async fn start() -> Self {
        let js = everything_js();
        let port = crate::free_port();
        let child = Command::new("node")
            .arg(js)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let guard = HttpEverything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        };
        let what = format!("server-everything to listen on port {port}");
        crate::until(Duration::from_secs(30), &what, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        guard
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `(pid, state)` of every process whose parent is this test process.
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        if ppid == me {
            out.push((pid, state));
        }
    }
    out
}

/// Whether `pid` is gone (exited and reaped: no zombie left).
pub fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// SIGKILL to `pid`.
pub fn kill9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -9 {pid} failed");
}
