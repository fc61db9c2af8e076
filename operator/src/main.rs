//! `ordinaut-operator`: reconciles Ordinaut's custom resources into due work and status.
//! `ordinaut-operator crdgen` prints the CRDs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use ordinaut_events::{DEFAULT_STREAM, GroupConsumer};
use ordinaut_operator::feed::{GROUP, StatusFeed};
use ordinaut_operator::k8s::controllers::{self, ControllerConfig};
use ordinaut_operator::k8s::{KubeObjects, KubeSink};
use ordinaut_operator::leader::{AlwaysLeader, Leadership, LeaseElector};
use ordinaut_operator::{Context, MaterializeConfig, TaskReconciler};
use ordinaut_schedule::clock::SystemClock;
use ordinaut_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(name = "ordinaut-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (the files under crds/).
    Crdgen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// PostgreSQL URL of Ordinaut's database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Redis URL of the events stream (status feed).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ORDINAUT_LISTEN_ADDR", default_value = "0.0.0.0:9091")]
    listen_addr: SocketAddr,
    /// How far ahead occurrences are queued (`24h`, `PT12H`).
    #[arg(long, env = "ORDINAUT_HORIZON", default_value = "24h", value_parser = duration)]
    horizon: std::time::Duration,
    /// Most occurrences queued per Task at once past `--horizon-min` (the next few).
    #[arg(long, env = "ORDINAUT_HORIZON_MAX_OCCURRENCES", default_value_t = 10)]
    horizon_max_occurrences: usize,
    /// Every occurrence this close is queued, however many: less the longest recheck (ten
    /// ticks or half of this), how long scheduled runs go on while the operator is down.
    #[arg(long, env = "ORDINAUT_HORIZON_MIN", default_value = "15m", value_parser = duration)]
    horizon_min: std::time::Duration,
    /// An occurrence not started this long after its time is missed; the Task's catch-up
    /// policy then decides whether it still runs.
    #[arg(long, env = "ORDINAUT_MISSED_AFTER", default_value = "2m", value_parser = duration)]
    missed_after: std::time::Duration,
    /// A valid Task is reconciled again when its next run is due, but no more often than
    /// this and at least every ten of these (extends horizons, applies catch-up).
    #[arg(long, env = "ORDINAUT_TICK_INTERVAL", default_value = "30s", value_parser = duration)]
    tick_interval: std::time::Duration,
    /// Elect a leader with a Lease; only the leader writes. `false` for a single replica.
    #[arg(long, env = "ORDINAUT_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the Lease.
    #[arg(long, env = "ORDINAUT_LEASE_NAME", default_value = "ordinaut-operator")]
    lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// How long a Lease holds without renewal.
    #[arg(long, env = "ORDINAUT_LEASE_DURATION", default_value = "15s", value_parser = duration)]
    lease_duration: std::time::Duration,
    /// This instance's identity in the Lease and in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Most Kubernetes API requests in flight at once (status writes, finalizers, Events,
    /// reads); more wait their turn. Each concurrent request holds a connection of its own,
    /// and up to 512 Task reconciles run at once: without a bound, a start-up with many Tasks
    /// opened hundreds of connections (and their buffers) and pressed the API server's
    /// in-flight limits.
    #[arg(long, env = "ORDINAUT_API_REQUESTS_IN_FLIGHT", default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..))]
    api_requests_in_flight: u16,
    /// Log format: `text` for people, `json` in clusters.
    #[arg(long, env = "ORDINAUT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `ordinaut_operator=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// Ordinaut's image, which holds `ordinaut-mcp-bridge`: a stdio McpServer's pod copies the
    /// bridge out of it with an init container (the chart sets the operator's own image).
    #[arg(
        long,
        env = "ORDINAUT_BRIDGE_IMAGE",
        default_value = concat!("ghcr.io/ordinaut/ordinaut:", env!("CARGO_PKG_VERSION"))
    )]
    bridge_image: String,
    /// Apply database migrations at start.
    #[arg(long, env = "ORDINAUT_MIGRATE")]
    migrate: bool,
}

use ordinaut_schedule::duration::duration_arg as duration;

fn main() -> anyhow::Result<()> {
    // Reconciles offload their CPU work (validate, plan) to the blocking pool; with 512 in
    // flight tokio's default (up to 512 threads) started ~90, each with its own malloc arena
    // holding freed memory. CPU work gains nothing from more threads than cores.
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cores * 2)
        .build()?
        .block_on(start())
}

async fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Crdgen) = cli.command {
        for crd in ordinaut_api::render_all()? {
            println!("---\n{}", crd.yaml.trim_end());
        }
        return Ok(());
    }
    let args = cli.run;
    ordinaut_telemetry::init_tracing(
        match args.log_format {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        },
        &args.log_level,
    );
    let database_url = args
        .database_url
        .clone()
        .context("--database-url (or DATABASE_URL) is required")?;
    let store = Store::connect(&database_url, 8).await?;
    if args.migrate {
        store.migrate().await?;
    }
    // kube, sqlx and reqwest together enable both of rustls's crypto providers, and rustls
    // then refuses to pick one: the first Kubernetes client panicked at startup. Pick ring,
    // the provider kube is configured with (operator/Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer()
        .await
        .context("cannot reach the Kubernetes API (in-cluster config or ~/.kube/config)")?;
    // Leader election has a client of its own: a Lease renewal must not wait behind the
    // reconciles' requests (a renewal late past its deadline ends the leadership).
    let lease_client =
        kube::Client::try_from(config.clone()).context("cannot build the Kubernetes client")?;
    let client = kube::client::ClientBuilder::try_from(config)
        .context("cannot build the Kubernetes client")?
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(usize::from(
            args.api_requests_in_flight,
        )))
        .build();
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("ordinaut-operator-{}", uuid::Uuid::new_v4().simple()));
    run(
        args,
        store,
        Clients {
            api: client,
            lease: lease_client,
        },
        identity,
    )
    .await
}

/// The operator's Kubernetes clients: `api` (requests in flight bounded by
/// `--api-requests-in-flight`) for the controllers, `lease` for leader election alone.
struct Clients {
    api: kube::Client,
    lease: kube::Client,
}

/// The leader elector (with leader election on) and the store the reconcilers write
/// through: fenced by the leader epoch the elector takes, so a deposed leader's writes are
/// refused (counted in `fenced_writes`).
fn elect(
    args: &RunArgs,
    store: Store,
    client: &kube::Client,
    identity: &str,
    clock: Arc<SystemClock>,
    fenced: &prometheus_client::metrics::counter::Counter,
) -> (Option<LeaseElector>, Store) {
    if !args.leader_election {
        return (None, store);
    }
    let counter = fenced.clone();
    let store = store.fenced(
        format!("{}/{}", args.lease_namespace, args.lease_name),
        identity,
        Some(Arc::new(move |_, _| {
            counter.inc();
        })),
    );
    let elector = LeaseElector::new(
        kube::Api::namespaced(client.clone(), &args.lease_namespace),
        args.lease_name.clone(),
        identity.to_string(),
        args.lease_duration,
        clock,
    )
    .with_epoch(store.clone());
    (Some(elector), store)
}

/// Builds the reconcilers' context, serves HTTP and runs the elector, the status feed and
/// the controllers until SIGTERM.
async fn run(
    args: RunArgs,
    store: Store,
    clients: Clients,
    identity: String,
) -> anyhow::Result<()> {
    let clock = Arc::new(SystemClock);
    let shutdown = CancellationToken::new();
    let fenced = prometheus_client::metrics::counter::Counter::default();
    let (elector, store) = elect(
        &args,
        store,
        &clients.lease,
        &identity,
        clock.clone(),
        &fenced,
    );
    let client = clients.api;
    let leader: Arc<dyn Leadership> = match &elector {
        Some(e) => Arc::new(e.flag()),
        None => Arc::new(AlwaysLeader),
    };
    // A Task is rechecked within half --horizon-min, but never sooner than a tick.
    if args.horizon_min < args.tick_interval.saturating_mul(2) {
        tracing::warn!(
            horizon_min = ?args.horizon_min,
            tick_interval = ?args.tick_interval,
            "--horizon-min is under two ticks: a Task rechecked only every tick can run out \
             of queued occurrences before its horizon is topped up"
        );
    }
    let mut ctx = Context::new(
        store.clone(),
        clock,
        MaterializeConfig {
            horizon: args.horizon,
            max_occurrences: args.horizon_max_occurrences,
            min_horizon: args.horizon_min,
            missed_after: args.missed_after,
            ..MaterializeConfig::default()
        },
        Arc::new(KubeObjects::new(client.clone())),
        Arc::new(KubeSink::new(client.clone(), Some(identity.clone()))),
        leader,
    )
    .with_secrets(Arc::new(ordinaut_operator::k8s::KubeSecrets::new(
        client.clone(),
    )))
    // In a cluster stdio McpServers run in pods of their own: never in this process.
    .with_mcp_pods(Arc::new(ordinaut_operator::k8s::KubeMcpPods::new(
        client.clone(),
        args.bridge_image.clone(),
    )));
    ctx.metrics.fenced_writes = fenced;
    let mut registry = prometheus_client::registry::Registry::default();
    ctx.metrics.register(&mut registry);
    let started = Arc::new(AtomicBool::new(false));
    let (bound, http) = ordinaut_operator::serve::serve(
        args.listen_addr,
        Arc::new(registry),
        store.clone(),
        started.clone(),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", args.listen_addr))?;
    tracing::info!(%bound, identity = %identity, "operator starting");

    let leader_changes = elector.as_ref().map(LeaseElector::subscribe);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(elector) = elector {
        spawn_election(&mut tasks, elector, &ctx, &shutdown);
    }
    let consumer = GroupConsumer::open(&args.redis_url, DEFAULT_STREAM, GROUP, identity.clone())?;
    let feed = StatusFeed::new(consumer, TaskReconciler::new(ctx.clone()));
    tasks.spawn(feed.run(shutdown.clone()));
    let cfg = ControllerConfig {
        tick: args.tick_interval,
        ..ControllerConfig::default()
    };
    tasks.spawn(controllers::run(
        client,
        ctx,
        cfg,
        leader_changes,
        shutdown.clone(),
    ));
    started.store(true, Ordering::SeqCst);

    let stop = shutdown.clone();
    tokio::spawn(async move {
        ordinaut_telemetry::signal::wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    shutdown.cancelled().await;
    while tasks.join_next().await.is_some() {}
    let _ = http.await;
    Ok(())
}

/// Runs the elector, and keeps the `leader` and `leader_epoch` gauges current.
fn spawn_election(
    tasks: &mut tokio::task::JoinSet<()>,
    elector: LeaseElector,
    ctx: &Context,
    shutdown: &CancellationToken,
) {
    let stop = shutdown.clone();
    let flag = elector.flag();
    tasks.spawn(elector.run(stop));
    let stop = shutdown.clone();
    let metrics = ctx.metrics.clone();
    let store = ctx.store.clone();
    tasks.spawn(async move {
        while !stop.is_cancelled() {
            metrics.leader.set(i64::from(flag.is_leader()));
            metrics.leader_epoch.set(store.leader_epoch().unwrap_or(0));
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    });
}
