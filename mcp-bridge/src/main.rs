//! `ordinaut-mcp-bridge`: serves a stdio MCP server over streamable HTTP (a stdio McpServer's
//! pod in a cluster). `ordinaut-mcp-bridge install DEST` copies the binary to DEST (the
//! init container that puts it into the tenant's pod; Ordinaut's image has no shell or cp).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ordinaut_mcp_bridge::Config;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(
    name = "ordinaut-mcp-bridge",
    version,
    about = "Runs a stdio MCP server and serves it over MCP streamable HTTP at /mcp",
    after_help = "Example: ordinaut-mcp-bridge --listen 0.0.0.0:8080 -- npx -y @modelcontextprotocol/server-everything",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy this binary to DEST (executable): the init container of a stdio McpServer's pod.
    Install {
        /// Where to put the binary (in a volume the server's container mounts).
        dest: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Address of /mcp, /healthz, /readyz and /metrics.
    #[arg(long, env = "ORDINAUT_BRIDGE_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// How long starting the server plus MCP initialize may take (`60s`, `2m`); `npx`
    /// downloads the package first.
    #[arg(long, env = "ORDINAUT_BRIDGE_STARTUP_TIMEOUT", default_value = "120s", value_parser = duration)]
    startup_timeout: std::time::Duration,
    /// On SIGTERM: how long the server may take to exit after its stdin is closed, and
    /// after SIGTERM, before it is killed.
    #[arg(long, env = "ORDINAUT_BRIDGE_GRACE", default_value = "5s", value_parser = duration)]
    grace: std::time::Duration,
    /// Log format: `text` or `json`.
    #[arg(long, env = "ORDINAUT_LOG_FORMAT", default_value = "json")]
    log_format: String,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// The MCP server's command and its arguments, after `--`.
    #[arg(trailing_var_arg = true, num_args = 1.., value_name = "COMMAND")]
    server: Vec<String>,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    ordinaut_schedule::duration::parse_duration(s).map_err(|e| e.to_string())
}

fn install(dest: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe().context("cannot find this binary")?;
    std::fs::copy(&me, dest)
        .with_context(|| format!("cannot copy {} to {}", me.display(), dest.display()))?;
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", dest.display()))?;
    println!("installed {}", dest.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Install { dest }) = cli.command {
        return install(&dest);
    }
    let args = cli.run;
    ordinaut_telemetry::init_tracing(&args.log_format, &args.log_level);
    if args.server.is_empty() {
        anyhow::bail!(
            "no MCP server command: give it after `--` (e.g. `ordinaut-mcp-bridge -- npx -y @modelcontextprotocol/server-everything`)"
        );
    }
    let shutdown = CancellationToken::new();
    let running = ordinaut_mcp_bridge::start(
        Config {
            listen: args.listen,
            command: args.server,
            startup_timeout: args.startup_timeout,
            grace: args.grace,
        },
        shutdown.clone(),
    )
    .await?;
    let stop = shutdown.clone();
    tokio::spawn(async move {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
        stop.cancel();
    });
    running.done.await.context("the bridge task failed")??;
    Ok(())
}
