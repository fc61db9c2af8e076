//! The `kube::runtime::Controller`s: Task (with its finalizer; re-triggered by changes of
//! the Pipelines, Agents and McpServers it refers to), Pipeline, McpServer and Agent (each
//! of the last two with a finalizer that removes its projection, so that a deletion reaches
//! the workers). Each reconcile
//! calls the core; errors requeue with per-object exponential backoff; valid Tasks requeue
//! when their next run is due (between one and ten ticks), which extends their horizon and
//! applies catch-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use ordinaut_api::constants::{AGENT_FINALIZER, FINALIZER, MCP_SERVER_FINALIZER};
use ordinaut_api::{Agent, McpServer, Pipeline, Task};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::cached_task::CachedTask;
use crate::leader::gained;
use crate::reconcile::{
    Context, DefinitionReconciler, ReconcileError, TASK_RECONCILES_IN_FLIGHT, TaskOutcome,
    TaskReconciler,
};

/// Timing of the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Valid Tasks are reconciled again when their next run is due, but no more often than
    /// this and at least every ten of these (horizon, catch-up).
    pub tick: Duration,
    /// First retry after a failed reconcile; doubles per consecutive failure…
    pub backoff_base: Duration,
    /// …up to this.
    pub backoff_max: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(30),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(300),
        }
    }
}

/// A failed controller reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error(transparent)]
    Reconcile(#[from] ReconcileError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<ReconcileError>>),
    /// A watch cache entry that does not decode back into a Task (a bug: it was encoded
    /// from one).
    #[error("the cached Task does not decode: {0}")]
    Cache(#[source] serde_json::Error),
}

/// How often a stdio McpServer whose pod is not ready yet is looked at again (its
/// Deployment is not watched: the operator may only get, patch and delete Deployments).
const POD_RECHECK: Duration = Duration::from_secs(5);

/// The longest wait before retrying a reconcile that failed on a transient database error.
const TRANSIENT_RETRY_MAX: Duration = Duration::from_secs(5);

/// Consecutive failures per object, for exponential backoff.
#[derive(Default)]
struct Failures(Mutex<HashMap<String, u32>>);

impl Failures {
    fn key<K: Resource>(obj: &K) -> String {
        // The uid tells kinds (and re-created objects) apart.
        format!(
            "{}/{}/{}",
            obj.namespace().unwrap_or_default(),
            obj.name_any(),
            obj.uid().unwrap_or_default()
        )
    }
    fn reset<K: Resource>(&self, obj: &K) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&Self::key(obj));
    }
    fn next<K: Resource>(&self, obj: &K, cfg: &ControllerConfig) -> Duration {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = map.entry(Self::key(obj)).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
        cfg.backoff_base.saturating_mul(factor).min(cfg.backoff_max)
    }
}

struct Shared {
    client: Client,
    tasks: TaskReconciler,
    defs: DefinitionReconciler,
    cfg: ControllerConfig,
    failures: Failures,
}

/// Runs the four controllers until `shutdown`. With leader election, `leader` observes
/// leadership (see [`crate::leader::LeaseElector::subscribe`]): every object is reconciled
/// each time this instance becomes the leader (a follower writes nothing).
pub async fn run(
    client: Client,
    ctx: Context,
    cfg: ControllerConfig,
    leader: Option<watch::Receiver<bool>>,
    shutdown: CancellationToken,
) {
    let gained_on = move || match leader.clone() {
        Some(rx) => futures::future::Either::Left(gained(rx)),
        None => futures::future::Either::Right(futures::stream::empty()),
    };
    let shared = Arc::new(Shared {
        client: client.clone(),
        tasks: TaskReconciler::new(ctx.clone()),
        defs: DefinitionReconciler::new(ctx),
        cfg,
        failures: Failures::default(),
    });
    let wc = watcher::Config::default().any_semantic();

    // Bounded, so 100,000 Tasks at start-up do not all wait for a pooled connection at once,
    // and wide enough that the store calls of concurrent reconciles batch well.
    // The watch cache keeps each Task in its compact form (`CachedTask`).
    let task_ctl = Controller::new(Api::<CachedTask>::all(client.clone()), wc.clone());
    let tasks = task_ctl.store();
    let task_ctl = task_ctl.with_config(
        kube::runtime::controller::Config::default().concurrency(TASK_RECONCILES_IN_FLIGHT),
    );
    let by_pipeline = tasks.clone();
    let by_agent = tasks.clone();
    let by_server = tasks.clone();
    let stop = shutdown.clone();
    let task_ctl = task_ctl
        .watches(
            Api::<Pipeline>::all(client.clone()),
            wc.clone(),
            move |p: Pipeline| referencing(&by_pipeline, &p, CachedTask::pipeline_ref),
        )
        .watches(
            Api::<Agent>::all(client.clone()),
            wc.clone(),
            move |a: Agent| referencing(&by_agent, &a, CachedTask::agent_ref),
        )
        .watches(
            Api::<McpServer>::all(client.clone()),
            wc.clone(),
            move |m: McpServer| using_server(&by_server, &m),
        )
        .reconcile_all_on(gained_on())
        .graceful_shutdown_on(async move { stop.cancelled().await })
        .run(reconcile_task, error_policy, shared.clone())
        .for_each(log_result("Task"));

    let pipe_ctl = definition_controller(
        Api::<Pipeline>::all(client.clone()),
        wc.clone(),
        gained_on(),
        shutdown.clone(),
        |p: Arc<Pipeline>, s: Arc<Shared>| async move { definition(&s, &*p, s.defs.pipeline(&p).await) },
        shared.clone(),
        "Pipeline",
    );
    let agent_ctl = definition_controller(
        Api::<Agent>::all(client.clone()),
        wc.clone(),
        gained_on(),
        shutdown.clone(),
        reconcile_agent,
        shared.clone(),
        "Agent",
    );
    let mcp_ctl = definition_controller(
        Api::<McpServer>::all(client),
        wc,
        gained_on(),
        shutdown,
        reconcile_mcp_server,
        shared.clone(),
        "McpServer",
    );
    futures::join!(task_ctl, pipe_ctl, agent_ctl, mcp_ctl);
}

/// A controller of one definition kind (Pipeline, Agent, McpServer): each object is
/// reconciled on a change and every time this instance becomes the leader (`gained`),
/// until `shutdown`.
async fn definition_controller<K, F, Fut>(
    api: Api<K>,
    wc: watcher::Config,
    gained: impl futures::Stream<Item = ()> + Send + 'static,
    shutdown: CancellationToken,
    reconcile: F,
    shared: Arc<Shared>,
    kind: &'static str,
) where
    K: Clone + Resource + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + std::fmt::Debug + Unpin,
    F: FnMut(Arc<K>, Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    Controller::new(api, wc)
        .reconcile_all_on(gained)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(reconcile, error_policy, shared)
        .for_each(log_result(kind))
        .await;
}

/// The Tasks in `obj`'s namespace whose reference (`pipelineRef`, `agentRef`) names it.
fn referencing<K: Resource>(
    tasks: &Store<CachedTask>,
    obj: &K,
    field: impl Fn(&CachedTask) -> Option<&str>,
) -> Vec<ObjectRef<CachedTask>> {
    let (ns, name) = (obj.namespace(), obj.name_any());
    tasks
        .state()
        .iter()
        .filter(|t| t.namespace() == ns && field(t) == Some(name.as_str()))
        .map(|t| ObjectRef::from_obj(&**t))
        .collect()
}

/// The Tasks in `server`'s namespace that may call its tools: those whose inline pipeline
/// has a step `uses: <server>.…`, and every Task with a `pipelineRef` (the Pipeline is not in
/// this cache; a reconcile of such a Task is a few GETs and, when nothing changed, no write).
fn using_server(tasks: &Store<CachedTask>, server: &McpServer) -> Vec<ObjectRef<CachedTask>> {
    let (ns, name) = (server.namespace(), server.name_any());
    tasks
        .state()
        .iter()
        .filter(|t| t.namespace() == ns && t.may_call(&name))
        .map(|t| ObjectRef::from_obj(&**t))
        .collect()
}

fn log_result<K: Resource, E: std::fmt::Debug>(
    kind: &'static str,
) -> impl FnMut(Result<(ObjectRef<K>, Action), E>) -> std::future::Ready<()> {
    move |result| {
        if let Err(e) = result {
            tracing::warn!(kind, error = ?e, "reconcile failed");
        }
        std::future::ready(())
    }
}

fn definition<K: Resource>(
    shared: &Shared,
    obj: &K,
    result: Result<bool, ReconcileError>,
) -> Result<Action, ControllerError> {
    result?;
    shared.failures.reset(obj);
    Ok(Action::await_change())
}

/// An McpServer: discovery and projection; on deletion (its finalizer) the projection is
/// removed, so workers stop starting and calling it at their next sync.
async fn reconcile_mcp_server(
    m: Arc<McpServer>,
    s: Arc<Shared>,
) -> Result<Action, ControllerError> {
    if !s.tasks.context().leader.is_leader() {
        return Ok(Action::requeue(s.cfg.tick));
    }
    let (ns, name) = (m.namespace().unwrap_or_default(), m.name_any());
    let api: Api<McpServer> = Api::namespaced(s.client.clone(), &ns);
    let result = finalizer::finalizer(&api, MCP_SERVER_FINALIZER, m.clone(), |event| async {
        match event {
            Finalizer::Apply(m) => match s.defs.mcp_server(&m).await {
                Ok(_) => Ok(Action::await_change()),
                // Its pod is starting (an image pull can take minutes): look again shortly.
                Err(ReconcileError::PodNotReady { .. }) => Ok(Action::requeue(POD_RECHECK)),
                Err(e) => Err(e),
            },
            Finalizer::Cleanup(_) => {
                s.defs.mcp_server_gone(&ns, &name).await?;
                tracing::info!(namespace = %ns, mcpserver = %name, "McpServer deleted; workers drop it");
                Ok(Action::await_change())
            }
        }
    })
    .await;
    finalized(&s, &*m, result)
}

/// An Agent: validation and projection; on deletion (its finalizer) the projection is removed.
async fn reconcile_agent(a: Arc<Agent>, s: Arc<Shared>) -> Result<Action, ControllerError> {
    if !s.tasks.context().leader.is_leader() {
        return Ok(Action::requeue(s.cfg.tick));
    }
    let (ns, name) = (a.namespace().unwrap_or_default(), a.name_any());
    let api: Api<Agent> = Api::namespaced(s.client.clone(), &ns);
    let result = finalizer::finalizer(&api, AGENT_FINALIZER, a.clone(), |event| async {
        match event {
            // Secrets are not watched: an Agent waiting for its token Secret is checked
            // again every tick.
            Finalizer::Apply(a) => s.defs.agent(&a).await.map(|_| Action::requeue(s.cfg.tick)),
            Finalizer::Cleanup(_) => {
                s.defs.agent_deleted(&ns, &name).await?;
                tracing::info!(namespace = %ns, agent = %name, "Agent deleted");
                Ok(Action::await_change())
            }
        }
    })
    .await;
    finalized(&s, &*a, result)
}

/// The outcome of a reconcile run through a finalizer.
fn finalized<K: Resource>(
    shared: &Shared,
    obj: &K,
    result: Result<Action, finalizer::Error<ReconcileError>>,
) -> Result<Action, ControllerError> {
    match result {
        Ok(action) => {
            shared.failures.reset(obj);
            Ok(action)
        }
        // Deleted while we worked, or gone while the finalizer was removed: nothing left.
        Err(finalizer::Error::ApplyFailed(ReconcileError::Sink(e))) if e.gone => {
            Ok(Action::await_change())
        }
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        Err(e) => Err(ControllerError::Finalizer(Box::new(e))),
    }
}

async fn reconcile_task(
    cached: Arc<CachedTask>,
    shared: Arc<Shared>,
) -> Result<Action, ControllerError> {
    let ns = cached.namespace().unwrap_or_else(|| "default".into());
    let span = tracing::info_span!("reconcile", namespace = %ns, task = %cached.name_any());
    let task = Arc::new(cached.task().map_err(ControllerError::Cache)?);
    reconcile_task_in(task, shared, ns).instrument(span).await
}

async fn reconcile_task_in(
    task: Arc<Task>,
    shared: Arc<Shared>,
    ns: String,
) -> Result<Action, ControllerError> {
    if !shared.tasks.context().leader.is_leader() {
        // A follower writes nothing, not even the finalizer; the leader's turn comes.
        return Ok(Action::requeue(shared.cfg.tick));
    }
    let api: Api<Task> = Api::namespaced(shared.client.clone(), &ns);
    let tick = shared.cfg.tick;
    let result = finalizer::finalizer(&api, FINALIZER, task.clone(), |event| async {
        match event {
            Finalizer::Apply(t) => match shared.tasks.reconcile(&t).await {
                Ok(TaskOutcome::Invalid { .. }) => Ok(Action::await_change()),
                Ok(TaskOutcome::Ready { next_run_time, .. }) => {
                    let ctx = shared.tasks.context();
                    let (now, min_horizon) = (ctx.clock.now(), ctx.config.min_horizon);
                    Ok(Action::requeue(recheck_after(
                        next_run_time,
                        now,
                        tick,
                        min_horizon,
                    )))
                }
                Ok(_) => Ok(Action::requeue(tick)),
                // Deleted while we worked: nothing left to write to.
                Err(ReconcileError::Sink(e)) if e.gone => Ok(Action::await_change()),
                Err(e) => Err(e),
            },
            Finalizer::Cleanup(t) => {
                shared.tasks.cleanup(&t).await?;
                Ok(Action::await_change())
            }
        }
    })
    .await;
    match result {
        Ok(action) => {
            shared.failures.reset(&*task);
            Ok(action)
        }
        // The object went away while the finalizer was removed: cleanup is done.
        Err(finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
            Ok(Action::await_change())
        }
        Err(e) => Err(ControllerError::Finalizer(Box::new(e))),
    }
}

/// When to reconcile a valid Task again: when its next run is due (its status then names the
/// following one; the horizon moves on), but no sooner than `tick` and no later than ten
/// ticks (the horizon of a sparse schedule, catch-up of a start missed while the workers were
/// down). At 100,000 Tasks a reconcile of every Task every tick was a constant load for
/// nothing: most Tasks have nothing due in most ticks. Never later than half the Task's
/// `min_horizon` either (`MaterializeConfig`), so the horizon is topped up well before the
/// occurrences queued run out, whatever `--tick-interval` is.
fn recheck_after(
    next_run_time: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
    tick: Duration,
    min_horizon: Duration,
) -> Duration {
    let longest = tick.saturating_mul(10).min(min_horizon / 2).max(tick);
    // A next run in the past is due now: as soon as allowed.
    next_run_time
        .map(|next| (next - now).to_std().unwrap_or(Duration::ZERO))
        .unwrap_or(longest)
        .clamp(tick, longest)
}

fn error_policy<K: Resource>(obj: Arc<K>, error: &ControllerError, shared: Arc<Shared>) -> Action {
    let mut wait = shared.failures.next(&*obj, &shared.cfg);
    if let ControllerError::Reconcile(ReconcileError::Store { source, .. }) = error
        && source.is_transient()
    {
        // PostgreSQL restarting or unreachable: retry every few seconds, so every object is
        // reconciled soon after it is back (not after minutes of per-object backoff).
        wait = wait.min(TRANSIENT_RETRY_MAX);
    }
    tracing::warn!(
        namespace = obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %error,
        retry_in = ?wait,
        "reconcile failed; retrying"
    );
    Action::requeue(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_is_rechecked_when_its_next_run_is_due_within_one_to_ten_ticks() {
        let now: chrono::DateTime<chrono::Utc> = "2025-03-10T10:00:00Z".parse().unwrap();
        let tick = Duration::from_secs(30);
        let min = Duration::from_secs(15 * 60);
        let at = |s: &str| Some(s.parse().unwrap());
        assert_eq!(
            recheck_after(at("2025-03-10T10:02:00Z"), now, tick, min),
            Duration::from_secs(120)
        );
        assert_eq!(
            recheck_after(at("2025-03-10T10:00:05Z"), now, tick, min),
            tick
        );
        assert_eq!(
            recheck_after(at("2025-03-10T09:00:00Z"), now, tick, min),
            tick
        );
        assert_eq!(
            recheck_after(at("2025-03-11T10:00:00Z"), now, tick, min),
            Duration::from_secs(300)
        );
        assert_eq!(
            recheck_after(None, now, tick, min),
            Duration::from_secs(300)
        );
        // A short minimum horizon: back within half of it, before its occurrences run out.
        let short = Duration::from_secs(4 * 60);
        assert_eq!(
            recheck_after(at("2025-03-11T10:00:00Z"), now, tick, short),
            Duration::from_secs(120)
        );
        // But never sooner than a tick.
        assert_eq!(
            recheck_after(None, now, tick, Duration::from_secs(10)),
            tick
        );
    }
}
