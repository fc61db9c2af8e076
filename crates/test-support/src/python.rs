//! The venv's Python with the official `mcp` package (client and server), the real MCP peer
//! of the gateway's, the CLI's and the tools' tests. `scripts/install-test-peers.sh` installs
//! it; `scripts/test.sh` exports `ORDINAUT_PYTHON` pointing at it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// What to run when the peers are missing.
pub const INSTALL_PEERS: &str = "run `bash scripts/install-test-peers.sh` (from the repository root) to install the MCP test peers";

/// `$ORDINAUT_PYTHON`, else the venv under `$ORDINAUT_TOOLS_DIR` (default
/// `/var/cache/ordinaut`); fails the test, saying how to install it, when it lacks `mcp`.
pub fn mcp_python() -> PathBuf {
    static CHECKED: OnceLock<PathBuf> = OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let python = std::env::var("ORDINAUT_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|_| {
                    let dir = std::env::var("ORDINAUT_TOOLS_DIR")
                        .unwrap_or_else(|_| "/var/cache/ordinaut".to_string());
                    PathBuf::from(dir).join("venv/bin/python")
                });
            let ok = Command::new(&python)
                .args([
                    "-c",
                    "import mcp.server.lowlevel, mcp.client.streamable_http",
                ])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "the Python `mcp` package is not installed in {}: {INSTALL_PEERS}",
                python.display()
            );
            python
        })
        .clone()
}

/// Runs `args` with [`mcp_python`] off the async threads (a client script against a server
/// this test serves): whether it succeeded, and its stdout and stderr together.
pub async fn run_mcp_python(args: Vec<String>) -> (bool, String) {
    let python = mcp_python();
    let out = tokio::task::spawn_blocking(move || Command::new(python).args(args).output())
        .await
        .unwrap()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
