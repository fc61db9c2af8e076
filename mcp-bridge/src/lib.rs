//! `ordinaut-mcp-bridge`: starts a stdio MCP server as a child process and serves it over
//! MCP streamable HTTP at `/mcp`, with `/healthz`, `/readyz` and `/metrics` on the same port.
//!
//! This is how a stdio McpServer runs in a cluster: in a pod of its own, from the tenant's
//! image, never inside the operator or the workers (see `operator/src/mcp_pod.rs`). The
//! bridge forwards `tools/list` and `tools/call` (what Ordinaut uses) to the child over one
//! rmcp client session shared by every HTTP session. When the child exits, the bridge exits
//! with an error, so Kubernetes restarts the container; SIGTERM stops the child (stdin
//! closed, then SIGTERM, then SIGKILL to its process group) and exits 0.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod child;
mod proxy;

pub use child::{Child, ChildError};
pub use proxy::{Metrics, Proxy};

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

/// What the bridge runs and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/mcp` and the probes are served.
    pub listen: SocketAddr,
    /// The server's executable and its arguments.
    pub command: Vec<String>,
    /// How long starting the child plus MCP `initialize` may take.
    pub startup_timeout: Duration,
    /// After stdin is closed, how long the child may take to exit before SIGTERM, and after
    /// SIGTERM before SIGKILL.
    pub grace: Duration,
}

/// Why the bridge stopped other than by SIGTERM.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Child(#[from] ChildError),
}

/// A running bridge: the bound address, and the task that ends when the bridge stops.
pub struct Running {
    pub addr: SocketAddr,
    pub done: tokio::task::JoinHandle<Result<(), BridgeError>>,
}

/// Starts serving on `config.listen` at once (probes answer while the child starts), then
/// starts the child. Runs until `shutdown` (Ok) or until the child fails or exits (Err).
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, BridgeError> {
    let mut registry = prometheus_client::registry::Registry::with_prefix("ordinaut_bridge");
    let metrics = Metrics::default();
    metrics.register(&mut registry);
    let proxy: Arc<OnceLock<Proxy>> = Arc::default();
    let ready = {
        let proxy = proxy.clone();
        let check: ordinaut_telemetry::serve::ReadyCheck = Arc::new(move || {
            let ok = proxy.get().is_some_and(Proxy::alive);
            Box::pin(async move {
                if ok {
                    Ok(())
                } else {
                    Err("the MCP server has not finished starting".to_string())
                }
            })
        });
        check
    };
    let http_stop = CancellationToken::new();
    let mcp = {
        let proxy = proxy.clone();
        let cfg = StreamableHttpServerConfig::default()
            .with_cancellation_token(http_stop.clone())
            .disable_allowed_hosts();
        StreamableHttpService::new(
            move || {
                proxy.get().cloned().ok_or_else(|| {
                    std::io::Error::other("the MCP server has not finished starting")
                })
            },
            Arc::new(LocalSessionManager::default()),
            cfg,
        )
    };
    let app = ordinaut_telemetry::serve::router::<()>(Arc::new(registry), ready)
        .nest_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| BridgeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| BridgeError::Listen {
            addr: config.listen,
            source,
        })?;
    let stop = http_stop.clone();
    let http = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracing::info!(%addr, command = ?config.command, "bridge listening; starting the MCP server");
    let done = tokio::spawn(async move {
        let result = run_child(&config, &proxy, metrics, &shutdown).await;
        http_stop.cancel();
        let _ = http.await;
        result
    });
    Ok(Running { addr, done })
}

async fn run_child(
    config: &Config,
    proxy: &OnceLock<Proxy>,
    metrics: Metrics,
    shutdown: &CancellationToken,
) -> Result<(), BridgeError> {
    let child = tokio::select! {
        c = Child::start(&config.command, config.startup_timeout, config.grace) => c?,
        () = shutdown.cancelled() => return Ok(()),
    };
    let _ = proxy.set(Proxy::new(&child, metrics));
    tracing::info!(pid = child.pid(), "MCP server ready");
    tokio::select! {
        () = shutdown.cancelled() => {
            tracing::info!("stopping the MCP server");
            child.stop().await;
            Ok(())
        }
        status = child.exited() => Err(ChildError::Exited { status }.into()),
    }
}
