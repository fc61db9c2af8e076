//! `ordinaut-gateway`: the agents' door in a cluster. MCP (streamable HTTP at `/mcp`) and
//! REST (`/v1`, `/openapi.json`) on one port, with `/metrics`, `/healthz` and `/readyz`;
//! Tasks written through the Kubernetes API, runs read from PostgreSQL.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use ordinaut_gateway::auth::Tokens;
use ordinaut_gateway::ops::Ops;
use ordinaut_gateway::writer::kube::KubeWriter;
use ordinaut_gateway::{AppState, GatewayConfig, Metrics};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Ordinaut's gateway: agents schedule and watch their own Tasks over MCP and REST.
#[derive(Debug, Parser)]
#[command(name = "ordinaut-gateway", version, about)]
struct Args {
    /// PostgreSQL URL of Ordinaut's database (runs, status, Agents are read from it).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Address the API (`/v1`, `/mcp`, `/openapi.json`) and `/metrics`, `/healthz`,
    /// `/readyz` listen on.
    #[arg(long, env = "ORDINAUT_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    listen_addr: SocketAddr,
    /// File holding the admin token (the chart mounts a generated Secret). Without it there
    /// is no admin identity.
    #[arg(long, env = "ORDINAUT_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// `Host` headers `/mcp` accepts (comma-separated; `host` or `host:port`), against DNS
    /// rebinding: add the Service's and Ingress's names. `*` accepts any.
    #[arg(
        long = "allowed-host",
        env = "ORDINAUT_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    allowed_hosts: Vec<String>,
    /// Requests per second each caller may make on average (0: no limit).
    #[arg(long, env = "ORDINAUT_RATE_LIMIT", default_value_t = 20.0)]
    rate_limit: f64,
    /// Requests a caller may make at once before the rate applies.
    #[arg(long, env = "ORDINAUT_RATE_BURST", default_value_t = 40)]
    rate_burst: u32,
    /// How often Agents' tokens are read again from their Secrets.
    #[arg(long, env = "ORDINAUT_TOKEN_REFRESH", default_value = "10s", value_parser = duration)]
    token_refresh: Duration,
    /// Most PostgreSQL connections.
    #[arg(long, env = "ORDINAUT_DB_MAX_CONNECTIONS", default_value_t = 10)]
    db_max_connections: u32,
    /// Log format: `text` for people, `json` in clusters.
    #[arg(long, env = "ORDINAUT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `ordinaut_gateway=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

use ordinaut_schedule::duration::duration_arg as duration;

/// Reads a token file (trailing newline trimmed); an empty file is an error.
fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --admin-token-file {}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "--admin-token-file {} is empty",
        path.display()
    );
    Ok(token)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let format = match args.log_format {
        LogFormat::Json => "json",
        LogFormat::Text => "text",
    };
    ordinaut_telemetry::init_tracing(format, &args.log_level);
    // kube, sqlx and reqwest together enable both of rustls's crypto providers: pick ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let admin = args
        .admin_token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    let store = Store::connect(&args.database_url, args.db_max_connections).await?;
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or ~/.kube/config)")?;
    let secrets = Arc::new(ordinaut_operator::k8s::KubeSecrets::new(client.clone()));
    let tokens = Arc::new(Tokens::new(store.clone(), secrets, admin.as_deref()));
    let shutdown = CancellationToken::new();
    tokio::spawn(tokens.clone().run(args.token_refresh, shutdown.clone()));

    let allowed_hosts = if args.allowed_hosts.iter().any(|h| h == "*") {
        Vec::new()
    } else {
        args.allowed_hosts.clone()
    };
    let config = GatewayConfig {
        allowed_hosts,
        rate_per_second: args.rate_limit,
        rate_burst: args.rate_burst,
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let ops = Ops::new(
        store.clone(),
        Arc::new(KubeWriter::new(client)),
        Arc::new(SystemClock),
    );
    let state = AppState::new(ops, tokens, &config, metrics);
    let ready_store = store.clone();
    let ready: ordinaut_telemetry::ReadyCheck = Arc::new(move || {
        let store = ready_store.clone();
        Box::pin(async move {
            if store.ping().await {
                Ok(())
            } else {
                Err("PostgreSQL does not answer".to_string())
            }
        })
    });
    let app = ordinaut_gateway::router(state, &config, shutdown.clone())
        .merge(ordinaut_telemetry::router(Arc::new(registry), ready));
    let listener = tokio::net::TcpListener::bind(args.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    let stop = shutdown.clone();
    tokio::spawn(async move {
        ordinaut_telemetry::signal::wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
