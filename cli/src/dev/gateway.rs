//! The gateway in `ordinaut dev`: MCP (`/mcp`) and REST (`/v1`) on one port, with
//! `/metrics`, `/healthz` and `/readyz`. Agents' Tasks are written as manifest files into the
//! watched folder (`DIR/agents/<namespace>/<agent>/<task>.yaml`), so the folder stays the one
//! source of truth; tokens come from the secrets folder (`<secrets-dir>/<namespace>/<secret>/
//! <key>`). The admin token is `--admin-token-file`'s, else a new one each start, written to
//! `dev.json` (mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use ordinaut_gateway::auth::{Tokens, generate_token};
use ordinaut_gateway::ops::Ops;
use ordinaut_gateway::writer::dir::DirWriter;
use ordinaut_gateway::{AppState, GatewayConfig, Metrics};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use ordinaut_tools::secrets::SecretSource;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::CliError;

/// The port tried first when no --gateway-addr is given (then any free port).
pub const DEFAULT_PORT: u16 = 7474;

/// The bound listener and the admin token, before serving.
pub struct Bound {
    pub listener: tokio::net::TcpListener,
    pub url: String,
    pub admin_token: String,
}

/// Binds the gateway's port and settles the admin token.
pub async fn bind(
    addr: Option<SocketAddr>,
    admin_token_file: Option<&Path>,
) -> Result<Bound, CliError> {
    let listener = match addr {
        Some(a) => tokio::net::TcpListener::bind(a).await.map_err(|e| {
            CliError::failed(anyhow!(
                "cannot listen on --gateway-addr {a}: {e}; pick another port"
            ))
        })?,
        None => match tokio::net::TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(CliError::failed)?,
        },
    };
    let local = listener.local_addr().map_err(CliError::failed)?;
    let admin_token = match admin_token_file {
        Some(path) => {
            let t = std::fs::read_to_string(path).map_err(|e| {
                CliError::invalid(anyhow!(
                    "cannot read --admin-token-file {}: {e}",
                    path.display()
                ))
            })?;
            let t = t.trim().to_string();
            if t.is_empty() {
                return Err(CliError::invalid(anyhow!(
                    "--admin-token-file {} is empty",
                    path.display()
                )));
            }
            t
        }
        None => generate_token(),
    };
    Ok(Bound {
        listener,
        url: format!("http://{local}"),
        admin_token,
    })
}

/// What serving needs from `ordinaut dev`.
pub struct Serve {
    pub dir: PathBuf,
    pub store: Store,
    pub secrets: Arc<dyn SecretSource>,
    pub allowed_hosts: Vec<String>,
    pub rate_limit: f64,
    /// The process's metrics (the worker's); the gateway adds its own and serves them.
    pub registry: Registry,
}

/// Serves until `stop`; returns the server's task (with the token refresher's).
pub fn serve(bound: Bound, mut s: Serve, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let tokens = Arc::new(Tokens::new(
        s.store.clone(),
        s.secrets,
        Some(&bound.admin_token),
    ));
    let refresher = tokio::spawn(tokens.clone().run(Duration::from_secs(2), stop.clone()));
    let config = GatewayConfig {
        allowed_hosts: s.allowed_hosts,
        rate_per_second: s.rate_limit,
        rate_burst: (s.rate_limit * 2.0).clamp(1.0, 10_000.0) as u32,
    };
    let ops = Ops::new(
        s.store.clone(),
        Arc::new(DirWriter::new(s.dir)),
        Arc::new(SystemClock),
    );
    let state = AppState::new(ops, tokens, &config, Metrics::new(&mut s.registry));
    let store = s.store.clone();
    let ready: ordinaut_telemetry::ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move {
            if store.ping().await {
                Ok(())
            } else {
                Err("PostgreSQL does not answer".to_string())
            }
        })
    });
    let app = ordinaut_gateway::router(state, &config, stop.clone())
        .merge(ordinaut_telemetry::router(Arc::new(s.registry), ready));
    tokio::spawn(async move {
        let result = axum::serve(bound.listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "the gateway stopped");
        }
        let _ = refresher.await;
    })
}
