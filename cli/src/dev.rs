//! `ordinaut dev [DIR]`: the whole system in one process on a directory of manifests, without
//! a cluster. The operator's reconcile core runs behind the directory source
//! ([`source::Source`]) and the printing sink ([`sink::DevSink`]); the worker's runtime
//! ([`ordinaut_worker::runtime`]: lease loop, tools, outbox relay, event triggers) and the
//! status feed run as in a cluster; PostgreSQL and Redis are found or started by
//! [`services`]. Runs are printed from the events stream ([`runs_feed`]).

mod gateway;
pub mod output;
mod runs_feed;
mod services;
mod sink;
mod source;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::Utc;
use clap::Args;
use ordinaut_events::{GroupConsumer, OutboxRelay};
use ordinaut_operator::feed::{GROUP as FEED_GROUP, StatusFeed};
use ordinaut_operator::{
    AlwaysLeader, Context, DefinitionReconciler, MaterializeConfig, MemoryObjects, TaskReconciler,
};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use ordinaut_worker::WorkerConfig;
use ordinaut_worker::runtime::{EventsConfig, RuntimeConfig, WorkerRuntime};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::CliError;
use output::{Format, Printer};

/// Arguments of `ordinaut dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// The folder of Task, Pipeline, McpServer and Agent YAML to run (multi-document files
    /// welcome). It is watched: saving, adding or deleting a file takes effect within 2 s.
    #[arg(default_value = "examples")]
    pub dir: PathBuf,
    /// PostgreSQL to use. Default: the server on 127.0.0.1:--pg-port (database
    /// `ordinaut_dev`, created when missing), else a private one started from the local
    /// `initdb`/`postgres` binaries.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
    /// Redis to use. Default: the server on 127.0.0.1:--redis-port, else a private one started
    /// from the local `redis-server` binary.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,
    /// The port of the local PostgreSQL looked for when no --database-url is given.
    #[arg(long, env = "ORDINAUT_DEV_PG_PORT", default_value_t = 5432)]
    pub pg_port: u16,
    /// The port of the local Redis looked for when no --redis-url is given.
    #[arg(long, env = "ORDINAUT_DEV_REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// Folder for the private servers' data and logs and for `dev.json` (how `ordinaut runs`
    /// and `ordinaut task` find this instance).
    #[arg(long, env = "ORDINAUT_DATA_DIR", default_value = ".ordinaut")]
    pub data_dir: PathBuf,
    /// `text` for a person, `json` for scripts (one object per line).
    #[arg(long, env = "ORDINAUT_OUTPUT", value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// The Redis stream of run events.
    #[arg(long, env = "ORDINAUT_EVENTS_STREAM", default_value = ordinaut_store::DEFAULT_STREAM)]
    pub events_stream: String,
    /// Runs executing at once.
    #[arg(long, env = "ORDINAUT_CONCURRENCY", default_value_t = 16)]
    pub concurrency: usize,
    /// Where `http.request` and MCP servers over HTTP may connect. Unlike the worker,
    /// `ordinaut dev` also lets `http.request` reach loopback (127.0.0.0/8, ::1): it runs on
    /// your own machine, next to the servers you are developing (see --http-refuse-loopback).
    #[command(flatten)]
    pub egress: ordinaut_worker::egress::EgressFlags,
    /// Refuse loopback to `http.request` as the worker does.
    #[arg(long, env = "ORDINAUT_HTTP_REFUSE_LOOPBACK", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub http_refuse_loopback: bool,
    /// How often every Task is reconciled again (extends horizons, applies catch-up).
    #[arg(long, env = "ORDINAUT_TICK_INTERVAL", default_value = "10s", value_parser = crate::when::duration)]
    pub tick: Duration,
    /// Folder of Secret values McpServers reference, laid out like mounted Secrets:
    /// `<dir>/<namespace>/<secret>/<key>` [default: <data-dir>/secrets].
    #[arg(long, env = "ORDINAUT_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Diagnostics on stderr (tracing filter, e.g. `info`, `ordinaut_worker=debug`).
    #[arg(long, env = "ORDINAUT_LOG", default_value = "warn")]
    pub log: String,
    /// Address of the gateway (MCP at `/mcp`, REST at `/v1`, `/metrics`). Default:
    /// 127.0.0.1:7474, else any free port; the address is printed and written to `dev.json`.
    #[arg(long, env = "ORDINAUT_GATEWAY_ADDR")]
    pub gateway_addr: Option<std::net::SocketAddr>,
    /// File holding the gateway's admin token. Default: a new token each start, written to
    /// `<data-dir>/dev.json` (readable only by you).
    #[arg(long, env = "ORDINAUT_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// `Host` headers the gateway's `/mcp` accepts (comma-separated), against DNS rebinding;
    /// `*` accepts any.
    #[arg(
        long = "allowed-host",
        env = "ORDINAUT_ALLOWED_HOSTS",
        value_delimiter = ',',
        default_value = "localhost,127.0.0.1,::1"
    )]
    pub allowed_hosts: Vec<String>,
    /// Gateway requests per second per caller (0: no limit).
    #[arg(long, env = "ORDINAUT_RATE_LIMIT", default_value_t = 20.0)]
    pub rate_limit: f64,
}

pub fn run(args: DevArgs) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)?;
    // The private servers are spawned from this (main) thread, which lives as long as the
    // process: their parent-death signal fires when the process dies, not before.
    runtime.block_on(dev(args))
}

async fn dev(args: DevArgs) -> Result<(), CliError> {
    source::check_dir(&args.dir).map_err(|e| CliError::invalid(anyhow!(e)))?;
    state::claim(&args.data_dir)?;
    let printer = Arc::new(Printer::new(args.output));
    let service_args = services::ServiceArgs {
        database_url: args.database_url.as_deref(),
        redis_url: args.redis_url.as_deref(),
        pg_port: args.pg_port,
        redis_port: args.redis_port,
        data_dir: &args.data_dir,
    };
    // Installed first, so a signal during start-up is not lost (it stops the session as soon
    // as it is running) and never kills the process before the servers are stopped.
    let mut signals = Signals::new()?;
    let mut services = match services::resolve(&service_args, &printer).await {
        Ok(s) => s,
        Err(e) => {
            state::release(&args.data_dir);
            return Err(e);
        }
    };
    let result = run_with(&args, &services, printer.clone(), &mut signals).await;
    services.stop().await;
    state::release(&args.data_dir);
    result
}

async fn run_with(
    args: &DevArgs,
    services: &services::Services,
    printer: Arc<Printer>,
    signals: &mut Signals,
) -> Result<(), CliError> {
    let started_at = Utc::now();
    let store = Store::connect(&services.database_url, 16)
        .await
        .map_err(CliError::failed)?;
    store.migrate().await.map_err(CliError::failed)?;
    store.ensure_dev_tables().await.map_err(CliError::failed)?;
    let bound = gateway::bind(args.gateway_addr, args.admin_token_file.as_deref()).await?;
    write_state(args, services, &bound, started_at)?;

    // Secrets McpServers reference: files, as Kubernetes mounts them.
    let secrets_dir = args
        .secrets_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("secrets"));
    let secrets: Arc<dyn ordinaut_tools::secrets::SecretSource> =
        Arc::new(ordinaut_tools::secrets::DirSecrets::new(secrets_dir));
    let core = operator_core(&store, printer.clone(), secrets.clone());

    // The worker runtime (the same as ordinaut-worker's), the status feed, the run printer.
    let identity = format!("ordinaut-dev-{}", std::process::id());
    let mut registry = prometheus_client::registry::Registry::default();
    let config = worker_config(args, &services.redis_url, secrets.clone(), &identity);
    let mut worker =
        WorkerRuntime::start(&store, config, &mut registry).map_err(CliError::failed)?;
    worker.start_leasing();
    let feeds = Feeds::start(
        args,
        &services.redis_url,
        &identity,
        core.tasks.clone(),
        printer.clone(),
        started_at,
    )?;

    // The gateway: agents' Tasks become files in the folder.
    let gateway_stop = CancellationToken::new();
    let serve = gateway::Serve {
        dir: args.dir.clone(),
        store: store.clone(),
        secrets,
        allowed_hosts: if args.allowed_hosts.iter().any(|h| h == "*") {
            Vec::new()
        } else {
            args.allowed_hosts.clone()
        },
        rate_limit: args.rate_limit,
        registry,
    };
    let gateway_url = bound.url.clone();
    let gateway = gateway::serve(bound, serve, gateway_stop.clone());
    printer.emit(
        "gateway",
        &format!(
            "gateway on {gateway_url}: dashboard {gateway_url}/ui, MCP {gateway_url}/mcp, REST {gateway_url}/v1; admin token in {}",
            state::path(&args.data_dir).display()
        ),
        json!({"url": gateway_url, "dashboard": format!("{gateway_url}/ui"), "mcp": format!("{gateway_url}/mcp")}),
    );

    watch(args, &store, core, &printer, signals).await;

    // Drain in order: runs finish and are recorded, their events are published and printed.
    printer.note("stopping: letting running runs finish (Ctrl-C again to stop at once)");
    worker.shutdown_token().cancel();
    tokio::select! {
        () = worker.drained() => {}
        () = signals.recv() => printer.note("stopping at once"),
    }
    gateway_stop.cancel();
    let _ = gateway.await;
    worker.stop().await;
    feeds.stop().await;
    summary(&store, &printer, started_at).await;
    Ok(())
}

/// `dev.json`: how `ordinaut runs`, `ordinaut task` and the dashboard find this instance.
fn write_state(
    args: &DevArgs,
    services: &services::Services,
    bound: &gateway::Bound,
    started_at: chrono::DateTime<Utc>,
) -> Result<(), CliError> {
    state::write(
        &args.data_dir,
        &state::DevState {
            pid: std::process::id(),
            database_url: services.database_url.clone(),
            redis_url: services.redis_url.clone(),
            events_stream: args.events_stream.clone(),
            dir: args.dir.display().to_string(),
            started_at,
            gateway_url: Some(bound.url.clone()),
            admin_token: Some(bound.admin_token.clone()),
            private: services
                .private
                .iter()
                .map(|s| state::PrivateState {
                    name: s.name.to_string(),
                    pid: s.pid,
                    port: s.port,
                })
                .collect(),
        },
    )
}

/// The operator's core, behind the dev seam: objects from the folder, status printed.
fn operator_core(
    store: &Store,
    printer: Arc<Printer>,
    secrets: Arc<dyn ordinaut_tools::secrets::SecretSource>,
) -> source::Core {
    let objects = Arc::new(MemoryObjects::default());
    let sink = Arc::new(sink::DevSink::new(printer));
    let ctx = Context::new(
        store.clone(),
        Arc::new(SystemClock),
        MaterializeConfig::default(),
        objects.clone(),
        sink.clone(),
        Arc::new(AlwaysLeader),
    )
    .with_secrets(secrets);
    source::Core {
        objects,
        sink,
        tasks: TaskReconciler::new(ctx.clone()),
        defs: DefinitionReconciler::new(ctx),
    }
}

/// The worker runtime's settings in dev: loopback reachable to `http.request` (unless
/// refused), McpServers re-read every second, a 10 s drain, the Redis found or started.
fn worker_config(
    args: &DevArgs,
    redis_url: &str,
    secrets: Arc<dyn ordinaut_tools::secrets::SecretSource>,
    identity: &str,
) -> RuntimeConfig {
    let loopback = if args.http_refuse_loopback {
        Vec::new()
    } else {
        ordinaut_tools::egress::EgressPolicy::loopback()
    };
    RuntimeConfig {
        worker: WorkerConfig {
            worker_id: identity.to_string(),
            concurrency: args.concurrency.max(1),
            drain_timeout: Duration::from_secs(10),
            events_stream: args.events_stream.clone(),
            ..WorkerConfig::default()
        },
        http: args.egress.http_config(&loopback),
        mcp_egress: args.egress.mcp_egress(),
        secrets,
        sync_interval: Duration::from_secs(1),
        events: Some(EventsConfig {
            redis_url: redis_url.to_string(),
            maxlen: OutboxRelay::DEFAULT_MAXLEN,
            // Tasks `on: {topic}`: the same consumer group as the workers'.
            triggers: Some(ordinaut_events::TriggerConfig::new(identity)),
        }),
        liveness: None,
    }
}

/// The readers of the events stream: the status feed (run outcomes into Task status) and
/// the run printer.
struct Feeds {
    feed_stop: CancellationToken,
    feed: tokio::task::JoinHandle<()>,
    follow_stop: CancellationToken,
    follower: tokio::task::JoinHandle<()>,
}

impl Feeds {
    fn start(
        args: &DevArgs,
        redis_url: &str,
        identity: &str,
        tasks: TaskReconciler,
        printer: Arc<Printer>,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<Self, CliError> {
        let (feed_stop, follow_stop) = (CancellationToken::new(), CancellationToken::new());
        let stream = args.events_stream.clone();
        let feed_consumer = GroupConsumer::open(redis_url, stream.clone(), FEED_GROUP, identity)
            .map_err(CliError::failed)?;
        let feed = tokio::spawn(StatusFeed::new(feed_consumer, tasks).run(feed_stop.clone()));
        let follow_consumer = GroupConsumer::open(redis_url, stream, runs_feed::GROUP, "dev")
            .map_err(CliError::failed)?;
        let follower = tokio::spawn(runs_feed::follow(
            follow_consumer,
            printer,
            started_at,
            follow_stop.clone(),
            Duration::from_secs(3),
        ));
        Ok(Self {
            feed_stop,
            feed,
            follow_stop,
            follower,
        })
    }

    /// After the worker runtime stopped: the last events are printed, then applied.
    async fn stop(self) {
        self.follow_stop.cancel();
        let _ = self.follower.await;
        self.feed_stop.cancel();
        let _ = self.feed.await;
    }
}

/// Applies the folder, then follows its changes until a signal.
async fn watch(
    args: &DevArgs,
    store: &Store,
    core: source::Core,
    printer: &Arc<Printer>,
    signals: &mut Signals,
) {
    let mut source = source::Source::new(
        args.dir.clone(),
        store.clone(),
        core,
        printer.clone(),
        args.tick,
    );
    source.cycle().await;
    let loaded = source.loaded();
    printer.emit(
        "watching",
        &format!(
            "watching {}: {} file(s), {} object(s); Ctrl-C stops",
            args.dir.display(),
            loaded.files,
            loaded.objects
        ),
        json!({"dir": args.dir.display().to_string(), "files": loaded.files, "objects": loaded.objects}),
    );
    loop {
        tokio::select! {
            () = signals.recv() => break,
            () = tokio::time::sleep(Duration::from_millis(500)) => source.cycle().await,
        }
    }
}

/// The runs of this session, per task.
async fn summary(store: &Store, printer: &Printer, since: chrono::DateTime<Utc>) {
    let counts = match store.run_counts_since(since).await {
        Ok(c) => c,
        Err(e) => {
            printer.note(&format!("no summary: {e}"));
            return;
        }
    };
    let elapsed = (Utc::now() - since).num_milliseconds();
    let total: i64 = counts.iter().map(|c| c.count).sum();
    let mut by_status: std::collections::BTreeMap<&str, i64> = Default::default();
    let mut by_task: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for c in &counts {
        *by_status.entry(c.status.as_str()).or_default() += c.count;
        by_task
            .entry(format!("{}/{}", c.namespace, c.name))
            .or_default()
            .push(format!("{} {}", c.count, c.status));
    }
    let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let runs = if total == 1 { "run" } else { "runs" };
    let mut text = format!(
        "summary: {total} {runs} in {}",
        output::duration_ms(elapsed)
    );
    if !statuses.is_empty() {
        text.push_str(&format!(" ({})", statuses.join(", ")));
    }
    for (task, parts) in &by_task {
        text.push_str(&format!("\n  {task}: {}", parts.join(", ")));
    }
    printer.emit(
        "summary",
        &text,
        json!({
            "runs": total,
            "durationMs": elapsed,
            "byStatus": by_status,
            "byTask": counts.iter().map(|c| json!({"task": format!("{}/{}", c.namespace, c.name), "status": c.status, "count": c.count})).collect::<Vec<_>>(),
        }),
    );
}

/// SIGINT and SIGTERM.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Self, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).map_err(CliError::failed)?,
            term: signal(SignalKind::terminate()).map_err(CliError::failed)?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}
