//! The lease loop: lease due occurrences in batches, run each on its own task, keep the
//! leases alive, record results in batches, reap the leases of crashed workers, and drain on
//! shutdown without losing or leaving locked anything.

use crate::config::WorkerConfig;
use crate::events;
use crate::executor::{Executor, RunInput, reference_time};
use crate::metrics::Metrics;
use chrono::Utc;
use ordinaut_api::{ConcurrencyPolicy, TaskSpec};
use ordinaut_pipeline::{CompiledPipeline, Context, RunInfo, TaskInfo, compile_pipeline};
use ordinaut_store::{
    Disposition, Lease, OutboxEvent, RunDecision, RunRecord, RunStatus, Store, StoreError, Trigger,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

mod background;
mod fence;
mod lease_loop;
mod recorder;

use background::{heartbeat_loop, reaper_loop, retention_loop};
use futures::FutureExt as _;
use lease_loop::LeaseLoop;
use ordinaut_store::storable::{Outcome as Storable, make_storable};
use recorder::{Record, recorder_loop};
use std::sync::atomic::AtomicU64;

/// Why a run's cancellation token fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum CancelReason {
    /// Not cancelled (or not yet).
    None = 0,
    /// A `concurrencyPolicy: Replace` run displaced it.
    Replaced = 1,
    /// The heartbeat found the lease gone (reaped, perhaps leased again).
    Lost = 2,
    /// The drain timeout passed during shutdown: handed back.
    Drain = 3,
    /// The Task's `timeout` passed.
    Timeout = 4,
    /// Self-fencing: the lease was not renewed in time (see the `fence` module).
    Fenced = 5,
}

/// A run's [`CancelReason`], shared between the run and whoever stops it. The first reason
/// set wins.
#[derive(Debug, Clone, Default)]
struct Reason(Arc<AtomicU8>);

impl Reason {
    fn get(&self) -> CancelReason {
        match self.0.load(Ordering::SeqCst) {
            1 => CancelReason::Replaced,
            2 => CancelReason::Lost,
            3 => CancelReason::Drain,
            4 => CancelReason::Timeout,
            5 => CancelReason::Fenced,
            _ => CancelReason::None,
        }
    }

    /// Sets `why` unless a reason was set before.
    fn set(&self, why: CancelReason) {
        let _ = self.0.compare_exchange(
            CancelReason::None as u8,
            why as u8,
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }
}

impl RunControl {
    /// Cancels the run for `why` (the first reason given is the one it reports).
    fn stop(&self, why: CancelReason) {
        self.reason.set(why);
        self.cancel.cancel();
    }
}

struct HeldRun {
    attempt: i32,
    control: RunControl,
}

/// How a run and the loops around it (heartbeat, drain, fence) stop and track it; shared
/// between the run's task and its [`HeldRun`] entry.
#[derive(Clone)]
struct RunControl {
    cancel: CancellationToken,
    reason: Reason,
    /// Set once the result is on its way to the recorder: a missing heartbeat row then means
    /// "finished", not "lost".
    finishing: Arc<AtomicBool>,
    /// When the lease expires, on this process's monotonic clock (see the `fence` module).
    deadline: Arc<AtomicU64>,
}

/// A Task's spec, parsed and compiled once per content (see [`crate::spec_cache`]).
struct Prepared {
    spec: TaskSpec,
    pipeline: CompiledPipeline,
    timezone: chrono_tz::Tz,
    timeout: Option<Duration>,
}

struct Shared {
    agents: Arc<crate::mcp::Agents>,
    sync: Option<crate::mcp::SharedSync>,
    store: Store,
    executor: Arc<Executor>,
    config: WorkerConfig,
    metrics: Arc<Metrics>,
    held: Mutex<HashMap<i64, HeldRun>>,
    liveness: Arc<crate::liveness::Liveness>,
    prepared: crate::spec_cache::SpecCache<Prepared>,
}

/// A worker: leases and runs due work until shut down.
pub struct Worker {
    shared: Arc<Shared>,
}

impl Worker {
    pub fn new(
        store: Store,
        executor: Arc<Executor>,
        config: WorkerConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                agents: Arc::default(),
                sync: None,
                store,
                executor,
                config,
                metrics,
                held: Mutex::default(),
                liveness: Arc::default(),
                prepared: crate::spec_cache::SpecCache::new(10_000),
            }),
        }
    }

    /// Reads Agents' scopes from `agents` (kept current by [`crate::mcp::DefinitionSync`]).
    /// Without it, a Task with an `agentRef` fails: its Agent is unknown.
    pub fn with_agents(mut self, agents: Arc<crate::mcp::Agents>) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.agents = agents;
        }
        self
    }

    /// Reports this worker's lease loop and recorder to `liveness` (the `/healthz` check).
    pub fn with_liveness(mut self, liveness: Arc<crate::liveness::Liveness>) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.liveness = liveness;
        }
        self
    }

    /// Lets runs ask `sync` for a fresh read when they name an MCP tool or an Agent this
    /// worker has not seen yet.
    pub fn with_sync(mut self, sync: crate::mcp::SharedSync) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.shared) {
            s.sync = Some(sync);
        }
        self
    }

    /// Runs until `shutdown` fires, then drains: stops leasing, lets in-flight runs finish
    /// within the drain timeout, hands back the leases of those that do not, records
    /// everything and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let s = self.shared;
        // A database that is down or hung at start must not stop the worker: it polls
        // until a listener can be opened (liveness reports a lease loop that hangs).
        let listener = match s.store.listen_due_work().await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(error = %e, "could not listen for due work; polling until it can");
                None
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = tokio::spawn(recorder_loop(s.clone(), rx));
        let background_stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat_loop(s.clone(), background_stop.clone()));
        let reaper = tokio::spawn(reaper_loop(s.clone(), background_stop.clone()));
        let retention = tokio::spawn(retention_loop(s.clone(), background_stop.clone()));
        tracing::info!(worker = %s.config.worker_id, concurrency = s.config.concurrency, "worker started");

        let mut lease_loop = LeaseLoop::new(s.clone(), tx, listener);
        lease_loop.run(&shutdown).await;
        lease_loop.drain().await;
        // The last sender: the recorder ends once it has recorded everything.
        drop(lease_loop);
        if let Err(e) = recorder.await {
            tracing::error!(error = %e, "the recorder panicked");
        }
        background_stop.cancel();
        let _ = heartbeat.await;
        let _ = reaper.await;
        let _ = retention.await;
        tracing::info!("worker stopped");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section is a single map operation; a poisoned lock holds a valid map.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    fn prepare(&self, lease: &Lease) -> Result<Arc<Prepared>, SpecError> {
        self.prepared
            .get_or_compile(lease.task_uid, &lease.spec, compile_spec)
    }
}

/// Why the spec the operator projected for a Task cannot run (the run fails saying so).
#[derive(Debug, thiserror::Error)]
enum SpecError {
    #[error("task spec in the database cannot be read: {0}")]
    Unreadable(serde_json::Error),
    #[error("Pipeline `{0}` has not been resolved into the task yet (the operator does this)")]
    Unresolved(String),
    #[error("the task has no pipeline")]
    NoPipeline,
    #[error("invalid pipeline: {0}")]
    InvalidPipeline(String),
    #[error("{0}")]
    Timezone(ordinaut_schedule::ScheduleError),
    #[error("timeout: {0}")]
    Timeout(ordinaut_schedule::duration::DurationError),
}

/// Parses and compiles the spec the operator projected for a Task.
fn compile_spec(raw: &serde_json::Value) -> Result<Prepared, SpecError> {
    // Tolerant: a spec written by a newer operator may carry fields this worker does not
    // know yet; they are ignored (and logged) instead of failing every run.
    let (spec, ignored) =
        ordinaut_api::tolerant::task_spec_from_value(raw).map_err(SpecError::Unreadable)?;
    if !ignored.is_empty() {
        tracing::warn!(
            ?ignored,
            "the task spec has fields this worker does not know (a newer operator wrote it); ignoring them"
        );
    }
    let pipeline_spec = spec
        .pipeline
        .as_ref()
        .ok_or_else(|| match &spec.pipeline_ref {
            Some(name) => SpecError::Unresolved(name.clone()),
            None => SpecError::NoPipeline,
        })?;
    let pipeline = compile_pipeline(pipeline_spec).map_err(|issues| {
        let list: Vec<String> = issues
            .iter()
            .map(|i| format!("{}: {}", i.path, i.message))
            .collect();
        SpecError::InvalidPipeline(list.join("; "))
    })?;
    let timezone = ordinaut_schedule::zone::parse_timezone(&spec.schedule.timezone)
        .map_err(SpecError::Timezone)?;
    let timeout = spec
        .timeout
        .as_deref()
        .map(ordinaut_schedule::duration::parse_duration)
        .transpose()
        .map_err(SpecError::Timeout)?;
    Ok(Prepared {
        spec,
        pipeline,
        timezone,
        timeout,
    })
}

/// Runs one leased occurrence and hands its outcome to the recorder.
async fn run_one(
    s: Arc<Shared>,
    lease: Lease,
    permit: OwnedSemaphorePermit,
    tx: mpsc::UnboundedSender<Record>,
    control: RunControl,
) {
    // Leased ahead of its time (the lookahead): start at the time, not before. A stop
    // meanwhile (drain, fencing) ends the wait and the run hands its lease back as usual.
    if let Ok(early) = (lease.run_at - Utc::now()).to_std() {
        tokio::select! {
            () = tokio::time::sleep(early) => {}
            () = control.cancel.cancelled() => {}
        }
    }
    let run = Run {
        run_id: Uuid::now_v7(),
        started: Utc::now(),
        s,
        lease,
        tx,
        control,
    };
    let span = tracing::info_span!(
        "run",
        namespace = %run.lease.namespace,
        task = %run.lease.name,
        run_id = %run.run_id,
        attempt = run.lease.attempt,
        trigger = %run.lease.trigger,
    );
    async move {
        run.s.metrics.in_flight.inc();
        if run.control.cancel.is_cancelled() {
            // Stopped (drain, fencing) while waiting for its time: never started, handed back.
            run.conclude(Outcome::HandBack, permit);
            return;
        }
        run.observe_lag();
        let outcome = run.execute().await;
        run.conclude(outcome, permit);
    }
    .instrument(span)
    .await
}

/// How a run ends for the worker.
enum Outcome {
    /// Recorded (succeeded, failed, skipped or cancelled).
    Record(Box<RunRecord>),
    /// Not recorded and not handed back: the lease is no longer this worker's.
    Dropped,
    /// Handed back unrecorded, to run again as the next attempt (drain, self-fencing, a
    /// concurrency policy that could not be applied).
    HandBack,
}

/// One leased occurrence being run.
struct Run {
    s: Arc<Shared>,
    lease: Lease,
    run_id: Uuid,
    started: chrono::DateTime<Utc>,
    tx: mpsc::UnboundedSender<Record>,
    control: RunControl,
}

impl Run {
    fn observe_lag(&self) {
        if self.lease.trigger == Trigger::Schedule && self.lease.attempt == 1 {
            let lag = (self.started - self.lease.run_at)
                .num_microseconds()
                .unwrap_or(0)
                .max(0) as f64
                / 1e6;
            self.s.metrics.schedule_lag.observe(lag);
        }
    }

    /// A failure recorded without running anything.
    fn failed(&self, msg: String) -> Outcome {
        self.finish(RunStatus::Failed, None, Some(msg), Vec::new())
    }

    /// The run record (with its step records and events) for this outcome.
    fn finish(
        &self,
        status: RunStatus,
        output: Option<serde_json::Value>,
        error: Option<String>,
        steps: Vec<ordinaut_store::StepRecord>,
    ) -> Outcome {
        let (s, lease) = (&self.s, &self.lease);
        let finished = Utc::now();
        let mut outcome = Storable {
            status,
            output,
            error,
            steps,
        };
        if let Some(why) = make_storable(&mut outcome, s.config.max_output_bytes) {
            s.metrics.unstorable_results.inc();
            tracing::warn!(reason = %why, "the run's result cannot be stored as it is; recording the run as failed");
        }
        let Storable {
            status,
            output,
            error,
            steps,
        } = outcome;
        let mut evs: Vec<OutboxEvent> = steps
            .iter()
            .map(|st| events::step(lease, self.run_id, st))
            .collect();
        evs.push(events::run_finished(
            lease,
            self.run_id,
            status,
            self.started,
            finished,
            error.as_deref(),
        ));
        for e in &mut evs {
            e.stream = Some(s.config.events_stream.clone());
        }
        Outcome::Record(Box::new(RunRecord {
            due_work_id: lease.id,
            attempt: lease.attempt,
            run_id: self.run_id,
            status,
            started_at: self.started,
            finished_at: finished,
            worker: s.config.worker_id.clone(),
            output,
            error,
            steps,
            events: evs,
            disposition: Disposition::Done,
        }))
    }

    /// Prepares, applies the concurrency policy, runs the pipeline under its limits.
    async fn execute(&self) -> Outcome {
        let prepared = match self.s.prepare(&self.lease) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot run task");
                return self.failed(e.to_string());
            }
        };
        if let Some(msg) = exhausted(&prepared.spec, self.lease.attempt) {
            self.s.metrics.exhausted.inc();
            tracing::error!(error = %msg, "giving up on the occurrence");
            return self.failed(msg);
        }
        if let Err(outcome) = self.apply_policy(prepared.spec.concurrency_policy).await {
            return outcome;
        }
        if self.fenced() {
            // The lease came back later than its deadline less the safety margin (a lease
            // statement that waited out a database outage for a connection): starting would
            // only be stopped at once, and count as a second start. Handed back unstarted.
            tracing::info!(
                "lease arrived too late to run within its safety margin: handed back unstarted"
            );
            return Outcome::HandBack;
        }
        let mut started_event = events::run_started(
            &self.lease,
            self.run_id,
            self.started,
            &self.s.config.worker_id,
        );
        started_event.stream = Some(self.s.config.events_stream.clone());
        let _ = self
            .tx
            .send(Record::Started(self.lease.task_uid, started_event));
        let agent_scopes = match prepared.spec.agent_ref.as_deref() {
            None => None,
            Some(name) => match lookup_agent(&self.s, &self.lease.namespace, name).await {
                Some(scopes) => Some((name.to_string(), scopes)),
                None => {
                    return self.failed(format!(
                        "Agent `{name}` does not exist (or is invalid) in namespace `{}`; create it or fix spec.agentRef",
                        self.lease.namespace
                    ));
                }
            },
        };
        self.sync_unknown_tools(&prepared).await;
        let result = self.supervised(&prepared, agent_scopes.as_ref()).await;
        if self.fenced() {
            // Never recorded (not as succeeded, not as failed): another worker may hold
            // the occurrence by now. Handed back, so it runs again as the next attempt.
            self.s.metrics.fenced.inc();
            tracing::warn!(
                "lease not renewed within the safety margin of its expiry: run stopped and handed back (self-fencing)"
            );
            return Outcome::HandBack;
        }
        self.audit_denied(&prepared, &result.denied).await;
        if result.status != RunStatus::Cancelled {
            return self.finish(result.status, result.output, result.error, result.steps);
        }
        match self.control.reason.get() {
            CancelReason::Drain => Outcome::HandBack,
            CancelReason::Lost => Outcome::Dropped,
            CancelReason::Timeout => {
                let msg = format!(
                    "run timed out after {}",
                    ordinaut_schedule::duration::format_duration(
                        prepared.timeout.unwrap_or_default()
                    )
                );
                self.finish(RunStatus::Failed, None, Some(msg), result.steps)
            }
            CancelReason::None | CancelReason::Replaced | CancelReason::Fenced => {
                let msg =
                    "cancelled: replaced by a newer run (concurrencyPolicy: Replace)".to_string();
                self.finish(RunStatus::Cancelled, None, Some(msg), result.steps)
            }
        }
    }

    /// `Forbid` / `Replace`: whether this run may start (`Err`: how it ends instead).
    async fn apply_policy(&self, policy: ConcurrencyPolicy) -> Result<(), Outcome> {
        let policy_name = match policy {
            ConcurrencyPolicy::Allow => return Ok(()),
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        };
        let lease = &self.lease;
        match self
            .s
            .store
            .begin_run(lease.id, lease.attempt, lease.task_uid, policy_name)
            .await
        {
            Ok(RunDecision::Run) => Ok(()),
            Ok(RunDecision::Replaced { cancelled }) => {
                tracing::info!(
                    ?cancelled,
                    "replacing active runs (concurrencyPolicy: Replace)"
                );
                Ok(())
            }
            Ok(RunDecision::Skip { active }) => {
                tracing::info!(
                    ?active,
                    "skipped: another run is active (concurrencyPolicy: Forbid)"
                );
                let msg =
                    "skipped: another run of this task was active (concurrencyPolicy: Forbid)"
                        .to_string();
                Err(self.finish(RunStatus::Skipped, None, Some(msg), Vec::new()))
            }
            Err(StoreError::StaleAttempt { .. } | StoreError::NotFound { .. }) => {
                self.s.metrics.lost_leases.inc();
                Err(Outcome::Dropped)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not apply the concurrency policy; handing the run back");
                Err(Outcome::HandBack)
            }
        }
    }

    /// An MCP tool not configured here yet (its McpServer was applied a moment ago): read
    /// the definitions once before the run fails on it.
    async fn sync_unknown_tools(&self, prepared: &Prepared) {
        if let Some(sync) = &self.s.sync
            && prepared.pipeline.steps.iter().any(|st| {
                !self
                    .s
                    .executor
                    .has_tool(&self.lease.namespace, &st.tool.to_string())
            })
        {
            sync.sync_now().await;
        }
    }

    /// Runs the pipeline, stopped by its timeout, the self-fencing deadline or a cancel; a
    /// panicking tool fails this run (and only this run).
    async fn supervised(
        &self,
        prepared: &Prepared,
        agent_scopes: Option<&(String, Vec<String>)>,
    ) -> crate::executor::RunResult {
        let (s, lease) = (&self.s, &self.lease);
        let params = with_event(
            prepared
                .spec
                .params
                .clone()
                .unwrap_or_else(|| serde_json::json!({})),
            &lease.payload,
        );
        let context = Context::new(
            params,
            RunInfo {
                id: self.run_id.to_string(),
                attempt: u32::try_from(lease.attempt).unwrap_or(1),
            },
            TaskInfo {
                name: lease.name.clone(),
                namespace: lease.namespace.clone(),
            },
            reference_time(lease.scheduled_for),
            prepared.timezone,
        );
        let input = RunInput {
            pipeline: &prepared.pipeline,
            context,
            task_retry: prepared.spec.retry.as_ref(),
            idempotency_key: format!(
                "{}:{}:{}",
                lease.task_uid,
                lease.scheduled_for.timestamp_micros(),
                lease.trigger
            ),
            run_attempt: u32::try_from(lease.attempt).unwrap_or(1),
            run_id: self.run_id,
            namespace: &lease.namespace,
            agent: agent_scopes.map(|(n, sc)| (n.as_str(), sc.as_slice())),
        };
        let guarded = std::panic::AssertUnwindSafe(s.executor.run(input, &self.control.cancel))
            .catch_unwind()
            .map(|r| {
                r.unwrap_or_else(|p| {
                    s.metrics.panics.inc();
                    fence::panicked(p.as_ref())
                })
            });
        let limits = fence::Limits {
            cancel: &self.control.cancel,
            reason: &self.control.reason,
            deadline: &self.control.deadline,
            margin: s.config.fence_margin(),
            timeout: prepared.timeout,
        };
        fence::supervise(guarded, limits).await
    }

    /// Whether the run was (or must now be) stopped by self-fencing.
    fn fenced(&self) -> bool {
        match self.control.reason.get() {
            CancelReason::Fenced => true,
            CancelReason::None => {
                fence::fenced(&self.control.deadline, self.s.config.fence_margin())
            }
            _ => false,
        }
    }

    /// Audits the tool calls the Agent's scopes refused; the run id correlates each entry
    /// with this run's log lines.
    async fn audit_denied(&self, prepared: &Prepared, denied: &[(String, String)]) {
        for (tool, why) in denied {
            let detail =
                serde_json::json!({"runId": self.run_id, "reason": why, "outcome": "refused"});
            let actor = prepared.spec.agent_ref.as_deref().unwrap_or("(no agent)");
            let correlation = self.run_id.to_string();
            tracing::warn!(tool = %tool, reason = %why, correlation_id = %correlation, "tool call refused by the Agent's scopes");
            if let Err(e) = self
                .s
                .store
                .audit_correlated(
                    actor,
                    "tool.call",
                    false,
                    Some(self.lease.task_uid),
                    Some(tool),
                    &detail,
                    &correlation,
                )
                .await
            {
                tracing::warn!(error = %e, "writing the audit log failed");
            }
        }
    }

    /// Hands the outcome to the recorder (or the lease back), releasing the slot with it.
    fn conclude(self, outcome: Outcome, permit: OwnedSemaphorePermit) {
        let s = &self.s;
        if let Outcome::HandBack = outcome {
            self.control.finishing.store(true, Ordering::SeqCst);
            s.metrics.in_flight.dec();
            let _ = self.tx.send(Record::Release(
                self.lease.id,
                self.lease.attempt,
                Some(permit),
            ));
            return;
        }
        let elapsed = (Utc::now() - self.started)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as f64
            / 1e6;
        s.metrics.run_duration.observe(elapsed);
        s.metrics.in_flight.dec();
        match outcome {
            Outcome::Record(r) => {
                tracing::info!(
                    status = r.status.as_str(),
                    error = r.error.as_deref().unwrap_or(""),
                    "run finished"
                );
                self.control.finishing.store(true, Ordering::SeqCst);
                s.metrics.results_waiting.inc();
                let _ = self.tx.send(Record::Finished(r, permit));
            }
            Outcome::Dropped | Outcome::HandBack => {
                lock(&s.held).remove(&self.lease.id);
                drop(permit);
            }
        }
    }
}

/// Why an occurrence leased for the `attempt`th time is given up, if it is: every attempt
/// before it was leased and never finished (its worker crashed, was stopped or lost the
/// lease), so running it again would loop forever on a poison pill.
fn exhausted(spec: &TaskSpec, attempt: i32) -> Option<String> {
    let max = spec
        .max_attempts
        .unwrap_or(ordinaut_api::task::DEFAULT_MAX_ATTEMPTS);
    (i64::from(attempt) > i64::from(max)).then(|| {
        format!(
            "gave up after {} attempts (spec.maxAttempts: {max}): every attempt was started and \
             never finished (its worker crashed, was stopped or lost its lease); fix the cause, \
             then start the Task again (run-now)",
            attempt - 1
        )
    })
}

/// An Agent's scopes: from the synced cache, else read now (an Agent created a moment ago
/// must not fail the first run that names it).
async fn lookup_agent(s: &Shared, namespace: &str, name: &str) -> Option<Vec<String>> {
    if let Some(scopes) = s.agents.scopes(namespace, name) {
        return Some(scopes);
    }
    if let Some(sync) = &s.sync {
        sync.sync_now().await;
        if let Some(scopes) = s.agents.scopes(namespace, name) {
            return Some(scopes);
        }
    }
    match s.store.agent(namespace, name).await {
        Ok(Some(row)) => Some(crate::mcp::scopes_of(&row.spec)),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "reading the Agent failed");
            None
        }
    }
}

/// The Task's params, plus `event` when an event started the occurrence (`on: {topic}` or
/// `on: {taskFinished}`): templates read it as `${params.event}`, replacing a param of that
/// name.
fn with_event(params: serde_json::Value, payload: &serde_json::Value) -> serde_json::Value {
    match (params, payload.get("event")) {
        (serde_json::Value::Object(mut map), Some(event)) => {
            map.insert("event".to_string(), event.clone());
            serde_json::Value::Object(map)
        }
        (params, _) => params,
    }
}
