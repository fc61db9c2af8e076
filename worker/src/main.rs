//! `ordinaut-worker`: leases due work from PostgreSQL and runs pipelines.

use anyhow::Context as _;
use clap::Parser;
use ordinaut_events::TriggerConfig;
use ordinaut_store::Store;
use ordinaut_telemetry::serve::{LiveCheck, ReadyCheck, serve_with_liveness};
use ordinaut_worker::WorkerConfig;
use ordinaut_worker::liveness::Liveness;
use ordinaut_worker::runtime::{EventsConfig, RuntimeConfig, WorkerRuntime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

// Runs allocate and free many small JSON values; glibc's malloc spent a third of the worker's
// CPU per run on it (perf, bench/run queue). mimalloc does the same work in far less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ordinaut_schedule::duration::duration_arg as duration;

/// Ordinaut worker: leases due occurrences from PostgreSQL and runs their pipelines.
///
/// Every flag can also be set with the environment variable shown.
#[derive(Parser, Debug)]
#[command(name = "ordinaut-worker", version, about, long_about = None)]
struct Args {
    /// PostgreSQL URL of Ordinaut's database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,

    /// Redis URL; when set, this worker also relays outbox events to Redis Streams.
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,

    /// Redis stream that run events go to.
    #[arg(long, env = "ORDINAUT_EVENTS_STREAM", default_value = ordinaut_store::DEFAULT_STREAM)]
    events_stream: String,

    /// Approximate cap on the length of each events stream (`XADD … MAXLEN ~ N`).
    #[arg(long, env = "ORDINAUT_EVENTS_MAXLEN", default_value_t = 100_000)]
    events_maxlen: usize,

    /// Start runs of Tasks `on: {topic}` from their topic streams (needs --redis-url). Every
    /// worker with it shares the events through one consumer group.
    #[arg(long, env = "ORDINAUT_EVENT_TRIGGERS", default_value_t = true, action = clap::ArgAction::Set)]
    event_triggers: bool,

    /// After this long unacknowledged (its reader died), a topic event is read again by
    /// another worker (e.g. 30s).
    #[arg(long, env = "ORDINAUT_EVENT_RECLAIM_IDLE", default_value = "30s", value_parser = duration)]
    event_reclaim_idle: Duration,

    /// Name of this worker in leases and run records [default: $POD_NAME or $HOSTNAME, plus the pid].
    #[arg(long, env = "ORDINAUT_WORKER_ID")]
    worker_id: Option<String>,

    /// Runs executing at once.
    #[arg(long, env = "ORDINAUT_CONCURRENCY", default_value_t = 64)]
    concurrency: usize,

    /// Most occurrences taken by one lease statement.
    #[arg(long, env = "ORDINAUT_BATCH_SIZE", default_value_t = 256)]
    batch_size: usize,

    /// How long a lease lasts without a heartbeat (e.g. 30s).
    #[arg(long, env = "ORDINAUT_LEASE_DURATION", default_value = "30s", value_parser = duration)]
    lease_duration: Duration,

    /// How often held leases are extended; keep it well under --lease-duration.
    #[arg(long, env = "ORDINAUT_HEARTBEAT_INTERVAL", default_value = "10s", value_parser = duration)]
    heartbeat_interval: Duration,

    /// Self-fencing: a run whose lease was not renewed by this long before it expires is
    /// stopped and handed back, never recorded as succeeded, so two attempts never overlap
    /// [default: a sixth of --lease-duration]. Keep --heartbeat-interval plus this margin
    /// under --lease-duration.
    #[arg(long, env = "ORDINAUT_LEASE_SAFETY_MARGIN", value_parser = duration)]
    lease_safety_margin: Option<Duration>,

    /// Largest JSON value stored for a step's input or output or a run's output, in bytes; a
    /// larger one fails the run with the reason (it is never retried).
    #[arg(long, env = "ORDINAUT_MAX_OUTPUT_BYTES", default_value_t = ordinaut_store::storable::DEFAULT_MAX_OUTPUT_BYTES)]
    max_output_bytes: usize,

    /// History retention: runs (with their steps) and finished occurrences older than this
    /// are pruned; `0s` keeps them forever.
    #[arg(long, env = "ORDINAUT_RETENTION_MAX_AGE", default_value = "30d", value_parser = duration)]
    retention_max_age: Duration,

    /// Succeeded runs kept per Task when its spec has no `successfulRunsHistoryLimit`.
    #[arg(
        long,
        env = "ORDINAUT_RETENTION_SUCCESSFUL_RUNS",
        default_value_t = 100
    )]
    retention_successful_runs: i64,

    /// Runs that did not succeed kept per Task when its spec has no `failedRunsHistoryLimit`.
    #[arg(long, env = "ORDINAUT_RETENTION_FAILED_RUNS", default_value_t = 100)]
    retention_failed_runs: i64,

    /// Events relayed to Redis are pruned from the outbox after this long.
    #[arg(long, env = "ORDINAUT_RETENTION_OUTBOX_AGE", default_value = "1d", value_parser = duration)]
    retention_outbox_age: Duration,

    /// Audit entries are pruned after this long.
    #[arg(long, env = "ORDINAUT_RETENTION_AUDIT_AGE", default_value = "90d", value_parser = duration)]
    retention_audit_age: Duration,

    /// How often history is pruned (in batches of 1,000 rows per table); `0s` turns pruning
    /// off for this worker.
    #[arg(long, env = "ORDINAUT_RETENTION_INTERVAL", default_value = "1m", value_parser = duration)]
    retention_interval: Duration,

    /// Longest wait before looking for work again when no notification arrives.
    #[arg(long, env = "ORDINAUT_POLL_INTERVAL", default_value = "1s", value_parser = duration)]
    poll_interval: Duration,

    /// Scheduled occurrences due within this long are leased early and each started at its
    /// time, so a burst due on one second starts on time instead of behind the lease
    /// statements that take it; `0s` leases only what is due. A Task suspended within this
    /// long of an occurrence may still run that occurrence.
    #[arg(long, env = "ORDINAUT_LEASE_LOOKAHEAD", default_value = "100ms", value_parser = duration)]
    lease_lookahead: Duration,

    /// How often expired leases of crashed workers are returned to the queue.
    #[arg(long, env = "ORDINAUT_REAP_INTERVAL", default_value = "5s", value_parser = duration)]
    reap_interval: Duration,

    /// On SIGTERM, how long in-flight runs may finish before their leases are handed back.
    #[arg(long, env = "ORDINAUT_DRAIN_TIMEOUT", default_value = "30s", value_parser = duration)]
    drain_timeout: Duration,

    /// Step timeout when neither the step nor the Task sets one.
    #[arg(long, env = "ORDINAUT_STEP_TIMEOUT", default_value = "5m", value_parser = duration)]
    step_timeout: Duration,

    /// Where `http.request` and MCP servers over HTTP may connect.
    #[command(flatten)]
    egress: ordinaut_worker::egress::EgressFlags,

    /// Folder with the Secret values Tasks (`${secrets.NAME.KEY}`) and McpServers reference,
    /// laid out like mounted Secrets: `<dir>/<namespace>/<secret>/<key>`. Without it (or
    /// --secrets-from-api), Tasks and McpServers that reference Secrets fail naming them.
    #[arg(long, env = "ORDINAUT_SECRETS_DIR")]
    secrets_dir: Option<std::path::PathBuf>,

    /// Read the Secrets Tasks and McpServers reference through the Kubernetes API instead
    /// (in-cluster service account, else the kubeconfig): one `get` of the named Secret in
    /// the Task's or McpServer's own namespace, reused for --secrets-cache-ttl. The worker's
    /// account then needs `get` on secrets in those namespaces (nothing else).
    #[arg(
        long,
        env = "ORDINAUT_SECRETS_FROM_API",
        conflicts_with = "secrets_dir"
    )]
    secrets_from_api: bool,

    /// How long a Secret read through the API (--secrets-from-api) is reused before it is
    /// read again.
    #[arg(long, env = "ORDINAUT_SECRETS_CACHE_TTL", default_value = "10s", value_parser = duration)]
    secrets_cache_ttl: Duration,

    /// How often McpServers and Agents are re-read from the database.
    #[arg(long, env = "ORDINAUT_MCP_SYNC_INTERVAL", default_value = "2s", value_parser = duration)]
    mcp_sync_interval: Duration,

    /// Connections in the database pool.
    #[arg(long, env = "ORDINAUT_DB_POOL_SIZE", default_value_t = 16)]
    db_pool_size: u32,

    /// Apply database migrations at start (safe with several processes: they take a lock).
    #[arg(long, env = "ORDINAUT_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    migrate: bool,

    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "ORDINAUT_LISTEN_ADDR", default_value = "0.0.0.0:9090")]
    listen_addr: SocketAddr,

    /// `/healthz` fails (so the pod is restarted) when a lease statement or a result write
    /// has waited on PostgreSQL for longer than this.
    #[arg(long, env = "ORDINAUT_LIVENESS_STALL", default_value = "2m", value_parser = duration)]
    liveness_stall: Duration,

    /// Log format: `text` for people, `json` for clusters.
    #[arg(long, env = "ORDINAUT_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `ordinaut_worker=debug`).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ordinaut_telemetry::init_tracing(&args.log_format, &args.log_level);

    let store = Store::connect(&args.database_url, args.db_pool_size)
        .await
        .context("connecting to PostgreSQL")?;
    if args.migrate {
        store.migrate().await.context("applying migrations")?;
    }

    let mut registry = prometheus_client::registry::Registry::default();
    let liveness = Arc::new(Liveness::new(args.liveness_stall));
    let worker = worker_config(&args)?;
    let triggers = args.event_triggers.then(|| TriggerConfig {
        reclaim_idle: args.event_reclaim_idle,
        ..TriggerConfig::new(worker.worker_id.clone())
    });
    let config = RuntimeConfig {
        worker,
        http: args.egress.http_config(&[]),
        mcp_egress: args.egress.mcp_egress(),
        secrets: secret_source(&args).await?,
        sync_interval: args.mcp_sync_interval,
        events: args.redis_url.as_ref().map(|url| EventsConfig {
            redis_url: url.clone(),
            maxlen: args.events_maxlen,
            triggers,
        }),
        liveness: Some(liveness.clone()),
    };
    let mut runtime = WorkerRuntime::start(&store, config, &mut registry)?;
    let shutdown = runtime.shutdown_token();

    let ready = ready_check(store.clone(), shutdown.clone(), args.redis_url.clone());
    let live: LiveCheck = Arc::new(move || liveness.check());
    let http_stop = CancellationToken::new();
    let (bound, http) = serve_with_liveness(
        args.listen_addr,
        Arc::new(registry),
        ready,
        live,
        http_stop.clone(),
    )
    .await
    .with_context(|| format!("listening on {}", args.listen_addr))?;
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");

    runtime.start_leasing();
    tokio::spawn(async move {
        ordinaut_telemetry::signal::wait_for_signal().await;
        tracing::info!("shutdown signal received");
        shutdown.cancel();
    });
    runtime.drained().await;
    runtime.stop().await;
    http_stop.cancel();
    let _ = http.await;
    Ok(())
}

/// Where `${secrets.…}` and McpServer Secret references are read from.
async fn secret_source(
    args: &Args,
) -> anyhow::Result<Arc<dyn ordinaut_tools::secrets::SecretSource>> {
    if args.secrets_from_api {
        let client = kube::Client::try_default()
            .await
            .context("connecting to the Kubernetes API for --secrets-from-api")?;
        return Ok(Arc::new(ordinaut_worker::kube_secrets::KubeSecrets::new(
            client,
            args.secrets_cache_ttl,
        )));
    }
    Ok(match &args.secrets_dir {
        Some(dir) => Arc::new(ordinaut_tools::secrets::DirSecrets::new(dir)),
        None => Arc::new(ordinaut_tools::secrets::NoSecrets),
    })
}

/// The worker's settings from its flags, refused when the lease could never be kept.
fn worker_config(args: &Args) -> anyhow::Result<WorkerConfig> {
    let config = WorkerConfig {
        worker_id: args
            .worker_id
            .clone()
            .unwrap_or_else(ordinaut_worker::config::default_worker_id),
        concurrency: args.concurrency,
        batch_size: args.batch_size,
        lease_duration: args.lease_duration,
        heartbeat_interval: args.heartbeat_interval,
        poll_interval: args.poll_interval,
        lease_lookahead: args.lease_lookahead,
        reap_interval: args.reap_interval,
        drain_timeout: args.drain_timeout,
        default_step_timeout: args.step_timeout,
        events_stream: args.events_stream.clone(),
        lease_safety_margin: args.lease_safety_margin,
        max_output_bytes: args.max_output_bytes,
        retention: (!args.retention_interval.is_zero()).then(|| {
            let forever = Duration::from_secs(100 * 365 * 24 * 3600);
            let age = |d: Duration| if d.is_zero() { forever } else { d };
            ordinaut_store::retention::Retention {
                max_age: age(args.retention_max_age),
                successful_per_task: args.retention_successful_runs,
                failed_per_task: args.retention_failed_runs,
                outbox_max_age: age(args.retention_outbox_age),
                audit_max_age: age(args.retention_audit_age),
                ..Default::default()
            }
        }),
        retention_interval: args.retention_interval,
    };
    if config.heartbeat_interval + config.fence_margin() >= config.lease_duration {
        anyhow::bail!(
            "--heartbeat-interval ({:?}) plus the lease safety margin ({:?}) must be shorter than \
             --lease-duration ({:?}), or every run would stop itself; lengthen the lease or \
             shorten the others",
            config.heartbeat_interval,
            config.fence_margin(),
            config.lease_duration
        );
    }
    Ok(config)
}

/// `/readyz`: the database answers and the worker is not draining. With `redis_url`, a Redis
/// that does not answer a PING within a second leaves it ready but degraded (200,
/// `ready (degraded: …)`).
fn ready_check(store: Store, draining: CancellationToken, redis_url: Option<String>) -> ReadyCheck {
    Arc::new(move || {
        let store = store.clone();
        let draining = draining.clone();
        let redis_url = redis_url.clone();
        Box::pin(async move {
            if draining.is_cancelled() {
                return Err("draining".to_string());
            }
            if !store.ping().await {
                return Err("database unreachable".to_string());
            }
            // Redis down leaves the worker degraded, not unready (runs go on; their events
            // wait in the outbox: ordinaut_outbox_backlog and ordinaut_outbox_relay_failures
            // show it).
            if let Some(url) = redis_url
                && !ordinaut_events::ping_redis(&url, Duration::from_secs(1)).await
            {
                return Err(format!(
                    "{}Redis unreachable: events wait in the outbox, event triggers pause",
                    ordinaut_telemetry::serve::DEGRADED
                ));
            }
            Ok(())
        })
    })
}
