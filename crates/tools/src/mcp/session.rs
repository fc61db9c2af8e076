//! One live connection to an MCP server: the rmcp client and, for stdio, the child process
//! it talks to (its own process group, reaped by a supervisor task, stderr tail kept for
//! error messages).

use super::{INHERITED_ENV, McpError, ResolvedServer, ResolvedTransport, ResolvedVar};
use crate::ToolError;
use crate::egress::EgressPolicy;
use ordinaut_api::DiscoveredTool;
use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Lines of stderr kept for error messages, and the most characters kept of each.
const STDERR_LINES: usize = 20;
const STDERR_LINE_CHARS: usize = 400;
/// Bytes of one stderr line read into memory (a line longer than this is cut).
const STDERR_LINE_BYTES: usize = 4 * STDERR_LINE_CHARS;
/// How long to wait for an exit status once the connection broke, to say why.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(2);

/// Limits of one session.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Starting the process or connecting, plus `initialize`, plus `tools/list`.
    pub connect_timeout: Duration,
    /// After stdin is closed, how long a server may take to exit before SIGTERM, and after
    /// SIGTERM before SIGKILL.
    pub grace: Duration,
}

/// Why a call failed, as far as the pool is concerned.
pub(crate) enum CallFailure {
    /// The server answered (an `isError` result, a JSON-RPC error) or the call ran out of
    /// time or was cancelled: the session is fine.
    Tool(ToolError),
    /// The connection or the process is gone: the session must be replaced.
    Broken(String),
}

pub(crate) struct Session {
    server: ResolvedServer,
    target: String,
    peer: Peer<RoleClient>,
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, ClientConfig>>>,
    child: Option<Child>,
    dead: AtomicBool,
}

/// The stdio server's process, owned by its supervisor task.
struct Child {
    pid: u32,
    /// `Some(status)` once the process has exited and been reaped.
    exit: watch::Receiver<Option<String>>,
    /// Asks the supervisor to end the process (grace, SIGTERM, grace, SIGKILL).
    stop: CancellationToken,
    stderr: Arc<StdMutex<VecDeque<String>>>,
    supervisor: StdMutex<Option<JoinHandle<()>>>,
}

impl Drop for Child {
    fn drop(&mut self) {
        // A session dropped without `close` still ends its process (the supervisor owns it).
        self.stop.cancel();
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("ordinaut", env!("CARGO_PKG_VERSION")),
    )
}

/// `error` and its sources, joined: rmcp wraps the interesting part (an HTTP status, an
/// I/O error) a few levels down.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn describe(status: std::io::Result<ExitStatus>) -> String {
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

/// Whether the egress policy lets us reach the server's URL, checked before connecting so
/// the refusal reads clearly (rmcp's errors drop the resolver's reason). The connection
/// itself goes through the filtering resolver, which enforces the policy again at connect
/// time: this early check is for the message, not the guarantee.
async fn check_egress(
    server: &ResolvedServer,
    url: &str,
    egress: &EgressPolicy,
) -> Result<(), McpError> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let reason = match (crate::egress::literal_ip(&parsed), parsed.host_str()) {
        (Some(ip), _) => egress.check(ip).err().map(|d| d.to_string()),
        (None, Some(host)) => match tokio::net::lookup_host((host, 0)).await {
            Ok(addrs) => {
                let verdicts: Vec<_> = addrs.map(|a| egress.check(a.ip())).collect();
                let refused: Vec<String> = verdicts
                    .iter()
                    .filter_map(|v| v.as_ref().err().map(ToString::to_string))
                    .collect();
                (refused.len() == verdicts.len() && !refused.is_empty()).then(|| {
                    format!(
                        "`{host}` resolves only to refused addresses ({})",
                        refused.join(", ")
                    )
                })
            }
            Err(_) => None,
        },
        (None, None) => None,
    };
    match reason {
        Some(reason) => Err(McpError::Protocol {
            target: server.target(),
            what: "connecting".into(),
            reason: format!(
                "{reason}: refused by the egress policy (allow it with --mcp-allow-networks)"
            ),
            stderr: String::new(),
        }),
        None => Ok(()),
    }
}

/// A stdio server's command: only `env` and [`INHERITED_ENV`] in its environment, its
/// stdio piped.
fn stdio_command(
    command: &str,
    args: &[String],
    env: &[ResolvedVar],
    working_dir: Option<&str>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args).env_clear();
    for key in INHERITED_ENV {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    for var in env {
        cmd.env(&var.name, &var.value);
    }
    if let Some(dir) = working_dir {
        cmd.current_dir(dir);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawns a stdio server in its own process group, owned by a supervisor task that ends
/// it after `grace`s; its stderr tail is kept. Returns it with its stdin and stdout.
async fn spawn_child(
    target: &str,
    cmd: tokio::process::Command,
    grace: Duration,
) -> Result<
    (
        Child,
        tokio::process::ChildStdin,
        tokio::process::ChildStdout,
    ),
    McpError,
> {
    let mut wrap = CommandWrap::from(cmd);
    // Its own process group: a signal meant for the worker's group (Ctrl-C) does not hit
    // it, and ending the group ends whatever the server started.
    wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut process = wrap.spawn().map_err(|e| McpError::Spawn {
        target: target.to_string(),
        reason: e.to_string(),
    })?;
    let (Some(stdin), Some(stdout), Some(stderr), Some(pid)) = (
        process.stdin().take(),
        process.stdout().take(),
        process.stderr().take(),
        process.id(),
    ) else {
        let _ = Box::into_pin(process.kill()).await;
        return Err(McpError::Spawn {
            target: target.to_string(),
            reason: "the process has no stdio pipes".into(),
        });
    };
    let tail = Arc::new(StdMutex::new(VecDeque::new()));
    tokio::spawn(keep_tail(stderr, tail.clone()));
    let (exit_tx, exit_rx) = watch::channel(None);
    let stop = CancellationToken::new();
    let supervisor = tokio::spawn(supervise(process, stop.clone(), grace, exit_tx));
    let child = Child {
        pid,
        exit: exit_rx,
        stop,
        stderr: tail,
        supervisor: StdMutex::new(Some(supervisor)),
    };
    Ok((child, stdin, stdout))
}

/// Why `initialize` failed on a stdio server (`reason`: the failed handshake; `None`: no
/// answer in time), after which the process is ended. Most often the process exited (bad
/// command, missing module, a crash), so its status is waited for briefly.
async fn init_failure(
    server: &ResolvedServer,
    target: String,
    child: &Child,
    reason: Option<String>,
    limits: Limits,
) -> McpError {
    let status = wait_exit(&child.exit, EXIT_REPORT_WAIT).await;
    let stderr = server.mask(&tail_text(&child.stderr));
    let error = match (status, reason) {
        (Some(status), _) => McpError::Exited {
            target,
            status,
            stderr,
        },
        (None, None) => McpError::Timeout {
            target,
            what: "initialize".into(),
            timeout: limits.connect_timeout,
            stderr,
        },
        (None, Some(reason)) => McpError::Protocol {
            target,
            what: "initialize".into(),
            reason,
            stderr,
        },
    };
    end_child(child).await;
    error
}

/// An HTTP server's headers, secret values marked sensitive.
fn header_map(
    headers: &[ResolvedVar],
) -> Result<HashMap<http::HeaderName, http::HeaderValue>, McpError> {
    let mut map = HashMap::new();
    for h in headers {
        let name = http::HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| McpError::Spec(format!("header name `{}` is not valid", h.name)))?;
        let mut value = http::HeaderValue::from_str(&h.value).map_err(|_| {
            McpError::Spec(format!(
                "the value of header `{}` is not a valid HTTP header value",
                h.name
            ))
        })?;
        value.set_sensitive(h.secret);
        map.insert(name, value);
    }
    Ok(map)
}

impl Session {
    /// Starts the process (stdio) or connects (HTTP) and runs `initialize`.
    pub async fn connect(
        server: &ResolvedServer,
        limits: Limits,
        egress: &Arc<EgressPolicy>,
    ) -> Result<Session, McpError> {
        match &server.transport {
            ResolvedTransport::Stdio {
                command,
                args,
                env,
                working_dir,
            } => {
                let cmd = stdio_command(command, args, env, working_dir.as_deref());
                Self::connect_stdio(server, cmd, limits).await
            }
            ResolvedTransport::Http { url, headers } => {
                Self::connect_http(server, url, headers, limits, egress).await
            }
        }
    }

    /// Spawns `cmd` under a supervisor and runs `initialize` over its stdio.
    async fn connect_stdio(
        server: &ResolvedServer,
        cmd: tokio::process::Command,
        limits: Limits,
    ) -> Result<Session, McpError> {
        let target = server.target();
        let (child, stdin, stdout) = spawn_child(&target, cmd, limits.grace).await?;
        let pid = child.pid;
        tracing::debug!(%target, pid, "started MCP server process");
        let init = tokio::time::timeout(
            limits.connect_timeout,
            client_config().serve((stdout, stdin)),
        )
        .await;
        // `Err(None)`: no answer in time; `Err(Some(reason))`: a failed handshake.
        let running = match init {
            Ok(Ok(running)) => running,
            Ok(Err(e)) => {
                let reason = Some(server.mask(&chain(&e)));
                return Err(init_failure(server, target, &child, reason, limits).await);
            }
            Err(_) => return Err(init_failure(server, target, &child, None, limits).await),
        };
        Ok(Session {
            server: server.clone(),
            target: format!("{target} (pid {pid})"),
            peer: running.peer().clone(),
            service: tokio::sync::Mutex::new(Some(running)),
            child: Some(child),
            dead: AtomicBool::new(false),
        })
    }

    /// Connects to `url` (through the egress policy) and runs `initialize`.
    async fn connect_http(
        server: &ResolvedServer,
        url: &str,
        headers: &[ResolvedVar],
        limits: Limits,
        egress: &Arc<EgressPolicy>,
    ) -> Result<Session, McpError> {
        let target = server.target();
        let map = header_map(headers)?;
        check_egress(server, url, egress).await?;
        // Redirects are not followed: an McpServer names its endpoint exactly.
        let client = crate::egress::client_builder(egress.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .build()
            .map_err(|e| McpError::Protocol {
                target: target.clone(),
                what: "building the HTTP client".into(),
                reason: chain(&e),
                stderr: String::new(),
            })?;
        let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(map);
        let transport = StreamableHttpClientTransport::with_client(client, config);
        let running =
            match tokio::time::timeout(limits.connect_timeout, client_config().serve(transport))
                .await
            {
                Ok(Ok(running)) => running,
                Ok(Err(e)) => {
                    return Err(McpError::Protocol {
                        target,
                        what: "initialize".into(),
                        reason: server.mask(&chain(&e)),
                        stderr: String::new(),
                    });
                }
                Err(_) => {
                    return Err(McpError::Timeout {
                        target,
                        what: "initialize".into(),
                        timeout: limits.connect_timeout,
                        stderr: String::new(),
                    });
                }
            };
        Ok(Session {
            server: server.clone(),
            target,
            peer: running.peer().clone(),
            service: tokio::sync::Mutex::new(Some(running)),
            child: None,
            dead: AtomicBool::new(false),
        })
    }

    /// The process id of a stdio server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid)
    }

    /// Whether calls can still go through this session.
    pub fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::SeqCst)
            && !self.peer.is_transport_closed()
            && self
                .child
                .as_ref()
                .is_none_or(|c| c.exit.borrow().is_none())
    }

    /// Every tool, following `nextCursor` to the last page.
    pub async fn list_tools(&self, timeout: Duration) -> Result<Vec<DiscoveredTool>, McpError> {
        let listed = tokio::time::timeout(timeout, self.peer.list_all_tools()).await;
        let tools = match listed {
            Ok(Ok(tools)) => tools,
            Ok(Err(e)) => {
                return Err(match self.exit_status().await {
                    Some(status) => McpError::Exited {
                        target: self.target.clone(),
                        status,
                        stderr: self.stderr_tail(),
                    },
                    None => McpError::Protocol {
                        target: self.target.clone(),
                        what: "tools/list".into(),
                        reason: self.server.mask(&chain(&e)),
                        stderr: self.stderr_tail(),
                    },
                });
            }
            Err(_) => {
                return Err(McpError::Timeout {
                    target: self.target.clone(),
                    what: "tools/list".into(),
                    timeout,
                    stderr: self.stderr_tail(),
                });
            }
        };
        Ok(tools
            .into_iter()
            .map(|t| DiscoveredTool {
                name: t.name.to_string(),
                description: t.description.map(|d| d.to_string()),
                input_schema: Some(Value::Object((*t.input_schema).clone())),
                output_schema: t.output_schema.map(|s| Value::Object((*s).clone())),
            })
            .collect())
    }

    /// `tools/call`, ended early by `timeout` or `cancel` (rmcp then sends
    /// `notifications/cancelled` to the server).
    pub async fn call(
        &self,
        tool: &str,
        arguments: Map<String, Value>,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Value, CallFailure> {
        let params = CallToolRequestParams::new(tool.to_string()).with_arguments(arguments);
        let exited = async {
            match &self.child {
                Some(c) => {
                    let mut rx = c.exit.clone();
                    let _ = rx.wait_for(Option::is_some).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let outcome = tokio::select! {
            r = self.peer.call_tool(params) => r,
            () = exited => Err(ServiceError::TransportClosed),
            () = cancel.cancelled() => return Err(CallFailure::Tool(ToolError::Cancelled)),
            () = tokio::time::sleep(timeout) => {
                return Err(CallFailure::Tool(ToolError::Timeout(timeout)));
            }
        };
        match outcome {
            Ok(result) => {
                let json = serde_json::to_value(&result).map_err(|e| {
                    CallFailure::Tool(ToolError::Failed {
                        message: format!("{}: unreadable result of `{tool}`: {e}", self.target),
                        retryable: false,
                    })
                })?;
                super::render_result(&json).map_err(CallFailure::Tool)
            }
            Err(ServiceError::McpError(e)) => Err(CallFailure::Tool(ToolError::Failed {
                message: self.server.mask(&format!(
                    "{} rejected `{tool}`: {} (JSON-RPC error {})",
                    self.target, e.message, e.code.0
                )),
                retryable: false,
            })),
            Err(ServiceError::Timeout { timeout }) => {
                Err(CallFailure::Tool(ToolError::Timeout(timeout)))
            }
            Err(ServiceError::Cancelled { .. }) => Err(CallFailure::Tool(ToolError::Cancelled)),
            Err(e) => {
                self.dead.store(true, Ordering::SeqCst);
                let why = match self.exit_status().await {
                    Some(status) => format!("the process exited ({status})"),
                    None => self.server.mask(&chain(&e)),
                };
                let stderr = self.stderr_tail();
                let stderr = if stderr.trim().is_empty() {
                    String::new()
                } else {
                    format!("; stderr:\n{}", stderr.trim_end())
                };
                Err(CallFailure::Broken(format!(
                    "{}: connection lost during `{tool}`: {why}{stderr}",
                    self.target
                )))
            }
        }
    }

    async fn exit_status(&self) -> Option<String> {
        match &self.child {
            Some(c) => wait_exit(&c.exit, EXIT_REPORT_WAIT).await,
            None => None,
        }
    }

    fn stderr_tail(&self) -> String {
        self.child
            .as_ref()
            .map(|c| self.server.mask(&tail_text(&c.stderr)))
            .unwrap_or_default()
    }

    /// Closes the connection and, for stdio, ends the process: closing stdin asks it to exit;
    /// after the grace it gets SIGTERM, after another grace SIGKILL (its whole group).
    /// Returns once the process has been reaped.
    pub async fn close(&self, grace: Duration) {
        self.dead.store(true, Ordering::SeqCst);
        if let Some(mut running) = self.service.lock().await.take()
            && running.close_with_timeout(grace).await.is_err()
        {
            tracing::debug!(target = %self.target, "MCP client task ended abnormally");
        }
        if let Some(child) = &self.child {
            end_child(child).await;
        }
    }
}

/// Stops the process and waits for its supervisor (which reaps it).
async fn end_child(child: &Child) {
    child.stop.cancel();
    let handle = child.supervisor.lock().ok().and_then(|mut h| h.take());
    if let Some(handle) = handle {
        let _ = handle.await;
    }
}

/// Waits until `exit` reports a status, at most `within`.
async fn wait_exit(exit: &watch::Receiver<Option<String>>, within: Duration) -> Option<String> {
    let mut rx = exit.clone();
    match tokio::time::timeout(within, rx.wait_for(Option::is_some)).await {
        Ok(Ok(status)) => status.clone(),
        _ => exit.borrow().clone(),
    }
}

/// Owns the child: reaps it when it exits by itself, or ends it when asked.
async fn supervise(
    mut process: Box<dyn ChildWrapper>,
    stop: CancellationToken,
    grace: Duration,
    exit_tx: watch::Sender<Option<String>>,
) {
    // Wait on the group leader only: the group's wait would also wait for stragglers.
    let exited = tokio::select! {
        s = process.inner_mut().wait() => Some(s),
        () = stop.cancelled() => None,
    };
    let status = match exited {
        Some(status) => {
            // The server is gone: end anything it left in its group, and reap it all.
            let _ = process.signal(libc::SIGKILL);
            let _ = tokio::time::timeout(grace, process.wait()).await;
            status
        }
        None => terminate(process.as_mut(), grace).await,
    };
    let text = describe(status);
    tracing::debug!(status = %text, "MCP server process ended");
    let _ = exit_tx.send(Some(text));
}

/// Stdin is already closed (or about to be): wait `grace`, then SIGTERM the group, wait
/// `grace`, then SIGKILL it.
async fn terminate(process: &mut dyn ChildWrapper, grace: Duration) -> std::io::Result<ExitStatus> {
    if let Ok(status) = tokio::time::timeout(grace, process.wait()).await {
        return status;
    }
    let _ = process.signal(libc::SIGTERM);
    if let Ok(status) = tokio::time::timeout(grace, process.wait()).await {
        return status;
    }
    let _ = process.signal(libc::SIGKILL);
    process.wait().await
}

async fn keep_tail(stderr: tokio::process::ChildStderr, tail: Arc<StdMutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stderr);
    while let Some(line) = read_bounded_line(&mut reader, STDERR_LINE_BYTES).await {
        let text: String = String::from_utf8_lossy(&line)
            .trim_end()
            .chars()
            .take(STDERR_LINE_CHARS)
            .collect();
        if let Ok(mut t) = tail.lock() {
            if t.len() == STDERR_LINES {
                t.pop_front();
            }
            t.push_back(text);
        }
    }
}

/// The next line of `reader`, keeping at most `max` bytes of it (the rest is read and
/// dropped, so a server writing megabytes without a newline costs no memory); `None` at the
/// end of the stream or on an error.
async fn read_bounded_line<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut seen_any = false;
    loop {
        let buf = reader.fill_buf().await.ok()?;
        if buf.is_empty() {
            return seen_any.then_some(line);
        }
        seen_any = true;
        let (part, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = max.saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        let used = part.len();
        reader.consume(used);
        if done {
            return Some(line);
        }
    }
}

fn tail_text(tail: &StdMutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn stderr_lines_are_cut_at_the_limit_without_reading_them_whole_into_memory() {
        let mut input = vec![b'x'; 100_000];
        input.extend_from_slice(b"\nshort\nlast");
        let mut reader = BufReader::with_capacity(64, &input[..]);
        let first = read_bounded_line(&mut reader, 10).await.unwrap();
        assert_eq!(first, b"xxxxxxxxxx");
        assert_eq!(
            read_bounded_line(&mut reader, 10).await.unwrap(),
            b"short\n"
        );
        assert_eq!(read_bounded_line(&mut reader, 10).await.unwrap(), b"last");
        assert_eq!(read_bounded_line(&mut reader, 10).await, None);
    }

    #[tokio::test]
    async fn http_servers_at_refused_addresses_are_not_contacted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let strict = Arc::new(EgressPolicy::default());
        let limits = Limits {
            connect_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(1),
        };
        for host in ["127.0.0.1", "localhost"] {
            let server = ResolvedServer::http(format!("http://{host}:{port}/mcp?token=CANARY"));
            let Err(err) = Session::connect(&server, limits, &strict).await else {
                panic!("connected to a refused address")
            };
            let text = err.to_string();
            assert!(text.contains("refused"), "{text}");
            assert!(!text.contains("CANARY"), "{text}");
        }
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("the refused server was connected to: {other:?}"),
        }
    }
}
