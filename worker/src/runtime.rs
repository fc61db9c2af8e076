//! The worker runtime: the lease loop and everything a worker process runs next to it (the
//! built-in and MCP tools, the McpServer/Agent sync, the outbox relay, event triggers),
//! started in one place and stopped in order. `ordinaut-worker` and `ordinaut dev` both run
//! it; each adds only its own front (HTTP probes, or the gateway and the directory).

use std::sync::Arc;
use std::time::Duration;

use ordinaut_events::{EventTriggers, OutboxRelay, RelayError, RelayStats, TriggerConfig};
use ordinaut_store::Store;
use ordinaut_tools::egress::EgressPolicy;
use ordinaut_tools::http::HttpConfig;
use ordinaut_tools::mcp::{McpPool, PoolConfig};
use ordinaut_tools::secrets::SecretSource;
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::event_metrics::EventMetrics;
use crate::liveness::Liveness;
use crate::mcp::{Agents, DefinitionSync};
use crate::{Executor, Metrics, Worker, WorkerConfig};

/// What a worker runtime runs.
pub struct RuntimeConfig {
    pub worker: WorkerConfig,
    /// `http.request`'s settings.
    pub http: HttpConfig,
    /// Where MCP servers over streamable HTTP may connect.
    pub mcp_egress: Arc<EgressPolicy>,
    /// Where `${secrets.…}` and McpServers' Secret references are read from.
    pub secrets: Arc<dyn SecretSource>,
    /// How often McpServers and Agents are re-read from the database.
    pub sync_interval: Duration,
    /// The outbox relay and event triggers; `None`: events stay in the outbox until a
    /// process with a Redis relays them.
    pub events: Option<EventsConfig>,
    /// Where the lease loop and the recorder report progress (the `/healthz` check).
    pub liveness: Option<Arc<Liveness>>,
}

/// The Redis side of a worker runtime.
pub struct EventsConfig {
    pub redis_url: String,
    /// Approximate cap on the length of each events stream (`XADD … MAXLEN ~ N`).
    pub maxlen: usize,
    /// Start runs of Tasks `on: {topic}` from their topic streams; `None`: off.
    pub triggers: Option<TriggerConfig>,
}

/// A part of the runtime that could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("configuring the outbox relay")]
    Relay(#[source] RelayError),
    #[error("configuring event triggers")]
    Triggers(#[source] redis::RedisError),
}

/// A running worker runtime; see the module docs.
pub struct WorkerRuntime {
    /// Cancelled when the drain begins: the lease loop stops leasing.
    shutdown: CancellationToken,
    /// The lease loop, until [`Self::start_leasing`].
    worker: Option<Worker>,
    leasing: Option<JoinHandle<()>>,
    sync_stop: CancellationToken,
    sync: JoinHandle<()>,
    pool: McpPool,
    events_stop: CancellationToken,
    relay: Option<JoinHandle<()>>,
    triggers: Option<JoinHandle<()>>,
}

impl WorkerRuntime {
    /// Starts the tools, the definition sync, the relay and triggers (with `config.events`);
    /// their metrics and the lease loop's are registered in `registry`. The lease loop starts
    /// with [`Self::start_leasing`], once the process is ready to serve.
    pub fn start(
        store: &Store,
        config: RuntimeConfig,
        registry: &mut Registry,
    ) -> Result<Self, RuntimeError> {
        let metrics = Arc::new(Metrics::new(registry));
        let event_metrics = EventMetrics::new(registry);
        let events_stop = CancellationToken::new();
        let (relay, triggers) = match &config.events {
            Some(events) => {
                let relay = spawn_relay(store, events, &metrics, &events_stop)?;
                let triggers = match &events.triggers {
                    Some(t) => Some(spawn_triggers(
                        store,
                        events,
                        t,
                        event_metrics,
                        &events_stop,
                    )?),
                    None => None,
                };
                (Some(relay), triggers)
            }
            None => {
                tracing::warn!(
                    "no --redis-url: events stay in the outbox until a process with one relays them"
                );
                (None, None)
            }
        };

        let mut tools = ordinaut_tools::builtin::registry(config.http);
        for tool in crate::state::state_tools(store) {
            tools.register(tool);
        }
        tools.register(crate::publish::publish_tool(store));
        let pool = McpPool::new(PoolConfig {
            egress: config.mcp_egress,
            ..Default::default()
        });
        tools.set_provider(Arc::new(pool.clone()));
        let agents = Arc::new(Agents::default());
        let sync_stop = CancellationToken::new();
        let definitions = DefinitionSync::new(
            store.clone(),
            pool.clone(),
            config.secrets.clone(),
            agents.clone(),
        )
        .shared();
        let sync = tokio::spawn(
            definitions
                .clone()
                .run(config.sync_interval, sync_stop.clone()),
        );
        let executor = Arc::new(
            Executor::new(tools, config.worker.default_step_timeout).with_secrets(config.secrets),
        );
        let mut worker = Worker::new(store.clone(), executor, config.worker, metrics)
            .with_agents(agents)
            .with_sync(definitions);
        if let Some(liveness) = config.liveness {
            worker = worker.with_liveness(liveness);
        }
        Ok(Self {
            shutdown: CancellationToken::new(),
            worker: Some(worker),
            leasing: None,
            sync_stop,
            sync,
            pool,
            events_stop,
            relay,
            triggers,
        })
    }

    /// Starts the lease loop (once; later calls do nothing).
    pub fn start_leasing(&mut self) {
        if let Some(worker) = self.worker.take() {
            self.leasing = Some(tokio::spawn(worker.run(self.shutdown.clone())));
        }
    }

    /// Cancelling it begins the drain: the lease loop stops leasing, in-flight runs finish
    /// within the drain timeout. (`/readyz` reports the worker draining from then on.)
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the lease loop has drained and returned: after [`Self::shutdown_token`]
    /// fires, every run is recorded or handed back.
    pub async fn drained(&mut self) {
        if let Some(leasing) = &mut self.leasing
            && let Err(e) = leasing.await
        {
            tracing::error!(error = %e, "the lease loop panicked");
        }
        self.leasing = None;
    }

    /// Stops the rest in order: the MCP servers (no run uses them any more: no orphan
    /// processes), then the relay after it has published what the last runs wrote, and the
    /// event triggers. Call it after [`Self::drained`]; called before, it stops without
    /// waiting for the runs (whatever they do not record is leased again elsewhere).
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.sync_stop.cancel();
        let _ = self.sync.await;
        self.pool.shutdown().await;
        self.events_stop.cancel();
        if let Some(relay) = self.relay {
            let _ = relay.await;
        }
        if let Some(triggers) = self.triggers {
            let _ = triggers.await;
        }
    }
}

/// The outbox relay, its counters exported to the metrics.
fn spawn_relay(
    store: &Store,
    events: &EventsConfig,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<JoinHandle<()>, RuntimeError> {
    let relay = OutboxRelay::new(store.clone(), &events.redis_url)
        .map_err(RuntimeError::Relay)?
        .with_maxlen(events.maxlen);
    tokio::spawn(export_relay_stats(
        relay.stats(),
        metrics.clone(),
        stop.clone(),
    ));
    Ok(tokio::spawn(relay.run(stop.clone())))
}

/// Event triggers (`on: {topic}` Tasks): every worker shares the events through one
/// consumer group.
fn spawn_triggers(
    store: &Store,
    events: &EventsConfig,
    config: &TriggerConfig,
    metrics: Arc<EventMetrics>,
    stop: &CancellationToken,
) -> Result<JoinHandle<()>, RuntimeError> {
    let triggers = EventTriggers::new(store.clone(), &events.redis_url, config.clone())
        .map_err(RuntimeError::Triggers)?;
    tokio::spawn(metrics.export(triggers.stats(), stop.clone()));
    Ok(tokio::spawn(triggers.run(stop.clone())))
}

/// Copies the relay's counters into the Prometheus metrics once a second.
async fn export_relay_stats(
    stats: Arc<RelayStats>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let (mut published, mut failures) = (0u64, 0u64);
    loop {
        let p = stats.published();
        let f = stats.failures();
        metrics.relay_published.inc_by(p.saturating_sub(published));
        metrics.relay_failures.inc_by(f.saturating_sub(failures));
        (published, failures) = (p, f);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.cancelled() => return,
        }
    }
}
