//! The stdio MCP server: a child process in its own process group, with an rmcp client over
//! its stdin/stdout. Its stderr goes to the bridge's (the pod's log).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::{Peer, RoleClient, ServiceExt};
use tokio::sync::{Mutex, watch};

/// Why the MCP server could not be started, or stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("no command given: name the MCP server's executable after `--`")]
    NoCommand,
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not answer MCP initialize within {timeout:?}")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed MCP initialize: {reason}")]
    Initialize { command: String, reason: String },
    #[error("the MCP server exited ({status})")]
    Exited { status: String },
}

/// A started and initialized MCP server.
pub struct Child {
    pid: u32,
    grace: Duration,
    peer: Peer<RoleClient>,
    info: Option<Arc<rmcp::model::ServerPeerInfo>>,
    service: Mutex<Option<RunningService<RoleClient, ClientConfig>>>,
    exit: watch::Receiver<Option<String>>,
    alive: Arc<AtomicBool>,
}

fn describe(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => s.to_string(),
        },
        Err(e) => format!("status unknown: {e}"),
    }
}

impl Child {
    /// Starts `command` and runs MCP `initialize` within `timeout`.
    pub async fn start(
        command: &[String],
        timeout: Duration,
        grace: Duration,
    ) -> Result<Child, ChildError> {
        let (program, args) = command.split_first().ok_or(ChildError::NoCommand)?;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own group: stopping it stops whatever it started (npx starts node).
            .process_group(0)
            .kill_on_drop(true);
        let mut process = cmd.spawn().map_err(|source| ChildError::Spawn {
            command: program.clone(),
            source,
        })?;
        let (Some(stdin), Some(stdout), Some(pid)) =
            (process.stdin.take(), process.stdout.take(), process.id())
        else {
            return Err(ChildError::Initialize {
                command: program.clone(),
                reason: "the process has no stdio pipes".into(),
            });
        };
        let alive = Arc::new(AtomicBool::new(true));
        let (exit_tx, exit) = watch::channel(None);
        let flag = alive.clone();
        tokio::spawn(async move {
            let status = describe(process.wait().await);
            flag.store(false, Ordering::SeqCst);
            let _ = exit_tx.send(Some(status));
        });
        let config = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("ordinaut-mcp-bridge", env!("CARGO_PKG_VERSION")),
        );
        let service = match tokio::time::timeout(timeout, config.serve((stdout, stdin))).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                signal_group(pid, Signal::SIGKILL);
                return Err(ChildError::Initialize {
                    command: program.clone(),
                    reason: e.to_string(),
                });
            }
            Err(_) => {
                signal_group(pid, Signal::SIGKILL);
                return Err(ChildError::Timeout {
                    command: program.clone(),
                    timeout,
                });
            }
        };
        let peer = service.peer().clone();
        let info = peer.peer_info();
        Ok(Child {
            pid,
            grace,
            peer,
            info,
            service: Mutex::new(Some(service)),
            exit,
            alive,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The client side of the MCP session with the server.
    pub fn peer(&self) -> &Peer<RoleClient> {
        &self.peer
    }

    /// What the server said about itself at `initialize`.
    pub fn info(&self) -> Option<&rmcp::model::ServerPeerInfo> {
        self.info.as_deref()
    }

    /// Whether the process is still running.
    pub fn alive_flag(&self) -> Arc<AtomicBool> {
        self.alive.clone()
    }

    /// Resolves with the exit status once the process has exited.
    pub async fn exited(&self) -> String {
        let mut exit = self.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(status) => status.clone().unwrap_or_default(),
            Err(_) => "status unknown".into(),
        }
    }

    /// Closes its stdin (an MCP server exits then); after `grace`, SIGTERM to its group;
    /// after another `grace`, SIGKILL.
    pub async fn stop(&self) {
        if let Some(service) = self.service.lock().await.take() {
            let _ = service.cancel().await;
        }
        if tokio::time::timeout(self.grace, self.exited())
            .await
            .is_ok()
        {
            return;
        }
        signal_group(self.pid, Signal::SIGTERM);
        if tokio::time::timeout(self.grace, self.exited())
            .await
            .is_ok()
        {
            return;
        }
        signal_group(self.pid, Signal::SIGKILL);
        let _ = tokio::time::timeout(self.grace, self.exited()).await;
    }
}

fn signal_group(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}
