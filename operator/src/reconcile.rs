//! The reconcile core, shared by the kube controllers and `ordinaut dev`: fetch (the store's
//! state, the referenced objects) → validate (pure) → plan (pure, with the Clock) → apply
//! (one transaction) → status (through the [`StatusSink`]). See [`crate::seam`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use chrono::{DateTime, Utc};
use ordinaut_api::constants::{BACKFILL_ANNOTATION, RUN_NOW_ANNOTATION, condition, reason};
use ordinaut_api::{Agent, McpServer, Pipeline, Task, TaskStatus};
use ordinaut_schedule::clock::Clock;
use ordinaut_store::{Applied, ReconcileWrite, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

use crate::backfill;
use crate::coalesce::TaskBatches;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::plan::{MaterializeConfig, Plan, PlanError, PlanInput, plan};
use crate::references;
use crate::seam::{
    Kind, LookupError, Notice, NoticeType, ObjectKey, Objects, SinkError, StatusSink,
};
use crate::status::{
    ConditionUpdate, Progress, chrono_time, compose_task_status, invalid, is_news,
    kstatus_conditions, missing, ready_of, task_ready,
};
use crate::validate::{self, Problem};

/// Task reconciles the controllers run at once. Their store calls are batched (see
/// [`crate::coalesce`]), so more in flight means fewer, larger batches, not more connections.
pub const TASK_RECONCILES_IN_FLIGHT: u16 = 512;

/// A reconcile that failed for a reason that may pass: retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(
        "{kind} {namespace}/{name} has no metadata.uid; it was not read from an API server or a dev source"
    )]
    NoUid {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    #[error("task {namespace}/{name}: database: {source}")]
    Store {
        namespace: String,
        name: String,
        #[source]
        source: StoreError,
    },
    #[error("task {namespace}/{name}: planning failed: {source}")]
    Plan {
        namespace: String,
        name: String,
        #[source]
        source: PlanError,
    },
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Lookup(#[from] LookupError),
    /// A stdio McpServer's pod is not ready yet; checked again shortly (not with backoff).
    #[error("McpServer {namespace}/{name}: {message}")]
    PodNotReady {
        namespace: String,
        name: String,
        message: String,
    },
    /// An McpServer could not be reached or listed; retried with backoff.
    #[error("McpServer {namespace}/{name}: {message}")]
    Discovery {
        namespace: String,
        name: String,
        message: String,
    },
}

/// What a Task reconcile concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutcome {
    /// Valid and materialized.
    Ready {
        next_run_time: Option<DateTime<Utc>>,
        inserted: u64,
        withdrawn: u64,
        missed: usize,
        caught_up: usize,
    },
    /// Invalid spec or a missing reference: waits for a change.
    Invalid { reason: String },
    /// Another instance holds the Lease: nothing was written.
    Follower,
}

/// Shared by every reconciler of one operator instance.
#[derive(Clone)]
pub struct Context {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: MaterializeConfig,
    pub objects: Arc<dyn Objects>,
    pub sink: Arc<dyn StatusSink>,
    pub leader: Arc<dyn Leadership>,
    pub metrics: Metrics,
    /// Where McpServers' Secret references are read from, for tool discovery.
    pub secrets: Arc<dyn ordinaut_tools::secrets::SecretSource>,
    /// How long discovering one McpServer's tools may take.
    pub discovery_timeout: std::time::Duration,
    /// In a cluster: where stdio McpServers run (pods of their own). `None` (`ordinaut dev`):
    /// stdio servers run as local processes.
    pub mcp_pods: Option<Arc<dyn crate::seam::McpPods>>,
    /// The store calls of concurrent Task reconciles, batched.
    batches: Arc<TaskBatches>,
    /// Serializes status writes per Task between reconciles and the status feed.
    locks: Arc<Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>>,
}

impl Context {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: MaterializeConfig,
        objects: Arc<dyn Objects>,
        sink: Arc<dyn StatusSink>,
        leader: Arc<dyn Leadership>,
    ) -> Self {
        Self {
            batches: Arc::new(TaskBatches::new(store.clone())),
            store,
            clock,
            config,
            objects,
            sink,
            leader,
            metrics: Metrics::default(),
            secrets: Arc::new(ordinaut_tools::secrets::NoSecrets),
            discovery_timeout: std::time::Duration::from_secs(30),
            mcp_pods: None,
            locks: Arc::default(),
        }
    }

    /// Reads McpServers' Secret references from `secrets` (default: none available).
    pub fn with_secrets(mut self, secrets: Arc<dyn ordinaut_tools::secrets::SecretSource>) -> Self {
        self.secrets = secrets;
        self
    }

    /// Runs stdio McpServers in pods of their own through `pods` (a cluster): one without
    /// an image is then invalid, and no stdio command runs in the operator or the workers.
    pub fn with_mcp_pods(mut self, pods: Arc<dyn crate::seam::McpPods>) -> Self {
        self.mcp_pods = Some(pods);
        self
    }

    /// Forgets the status lock of `uid` when no one else holds or waits for it (so the map
    /// does not keep an entry for every Task ever reconciled: 100,000 Tasks, 10 MB).
    fn release_lock(&self, uid: Uuid, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        // Ours and the map's: no one else has it.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&uid);
        }
    }

    /// Writes `status` of `key` unless this instance no longer leads, and returns whether
    /// it wrote. The store fences a deposed leader's database writes by epoch; this keeps a
    /// reconcile that lost leadership after its database write from overwriting the new
    /// leader's status with an older one.
    pub(crate) async fn leader_status(
        &self,
        key: &ObjectKey,
        status: serde_json::Value,
    ) -> Result<bool, SinkError> {
        if !self.still_leads(key, "status") {
            return Ok(false);
        }
        self.sink.status(key, status).await.map(|()| true)
    }

    /// Whether this instance still leads, checked before an API write (`what`); when not,
    /// the write is skipped, counted and logged here.
    pub(crate) fn still_leads(&self, key: &ObjectKey, what: &'static str) -> bool {
        if self.leader.is_leader() {
            return true;
        }
        self.metrics.skipped_writes.inc();
        tracing::debug!(
            kind = key.kind.as_str(), namespace = %key.namespace, name = %key.name, what,
            "no longer the leader: API write skipped"
        );
        false
    }

    fn lock_for(&self, uid: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(uid)
            .or_default()
            .clone()
    }
}

pub(crate) fn key(kind: Kind, meta: &kube::api::ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone(),
    }
}

fn created(meta: &kube::api::ObjectMeta, now: DateTime<Utc>) -> DateTime<Utc> {
    meta.creation_timestamp
        .as_ref()
        .and_then(chrono_time)
        .unwrap_or(now)
}

/// Reconciles Tasks: see the module docs.
#[derive(Clone)]
pub struct TaskReconciler {
    ctx: Context,
}

impl TaskReconciler {
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// One reconcile of a Task that exists (not being deleted).
    pub async fn reconcile(&self, task: &Task) -> Result<TaskOutcome, ReconcileError> {
        let started = Instant::now();
        let result = self.reconcile_inner(task).await;
        let outcome = match &result {
            Ok(TaskOutcome::Ready { .. }) => "ready",
            Ok(TaskOutcome::Invalid { .. }) => "invalid",
            Ok(TaskOutcome::Follower) => "follower",
            Err(_) => "error",
        };
        self.ctx
            .metrics
            .reconciled("Task", outcome, started.elapsed().as_secs_f64());
        result
    }

    /// Resolve → hold an invalid Task → plan → apply → announce.
    async fn reconcile_inner(&self, task: &Task) -> Result<TaskOutcome, ReconcileError> {
        let key = key(Kind::Task, &task.metadata);
        let uid = task_uid(&task.metadata).ok_or_else(|| ReconcileError::NoUid {
            kind: "Task",
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        })?;
        if !self.ctx.leader.is_leader() {
            return Ok(TaskOutcome::Follower);
        }
        let now = self.ctx.clock.now();
        let pass = Pass {
            task,
            key,
            uid,
            now,
            generation: task.metadata.generation.unwrap_or(1),
            old_status: task.status.clone().unwrap_or_default(),
        };

        let created = created(&task.metadata, now);
        let checked = self.check(task, &pass.key.namespace, created).await?;
        let mut owned = pass.owned_status();
        if let Some(update) = checked.stalled {
            return self.hold_invalid(&pass, owned, update).await;
        }

        let mut planned = self.plan_task(&pass, &checked).await?;
        owned.handled_backfill = self
            .backfill(
                task,
                uid,
                &pass.key,
                checked.schedule.as_ref(),
                owned.handled_backfill.take(),
            )
            .await?;
        let applied = self
            .apply(&pass, &mut owned, checked.pending, &mut planned)
            .await?;
        let plan = &planned.plan;
        self.announce(&pass, &applied.update, plan).await?;
        if !applied.status_current {
            self.write_status(&pass.key, uid, &owned).await?;
        }
        Ok(TaskOutcome::Ready {
            next_run_time: plan.next_run_time,
            inserted: applied.applied.inserted,
            withdrawn: applied.applied.withdrawn,
            missed: plan.missed.len(),
            caught_up: plan.caught_up.len(),
        })
    }

    /// Hold an invalid Task: withdraw its queued occurrences, write Ready=False/Stalled, and
    /// warn once (when the mistake is news).
    async fn hold_invalid(
        &self,
        pass: &Pass<'_>,
        mut owned: TaskStatus,
        update: ConditionUpdate,
    ) -> Result<TaskOutcome, ReconcileError> {
        owned.conditions = kstatus_conditions(
            &owned.conditions,
            &update,
            Progress::Stalled,
            Some(pass.generation),
            pass.now,
        );
        let withdrawn = self
            .ctx
            .store
            .hold_invalid_task(pass.uid, &to_json(&owned))
            .await
            .map_err(|source| store_error(&pass.key, source))?;
        self.ctx.metrics.withdrawn.inc_by(withdrawn);
        if is_news(ready_of(&pass.old_status.conditions), &update) {
            self.notice(
                &pass.key,
                NoticeType::Warning,
                &update.reason,
                &update.message,
                "Validate",
            )
            .await?;
        }
        tracing::info!(
            namespace = %pass.key.namespace, task = %pass.key.name, reason = %update.reason,
            message = %update.message, withdrawn, "task is not valid"
        );
        self.write_status(&pass.key, pass.uid, &owned).await?;
        Ok(TaskOutcome::Invalid {
            reason: update.reason,
        })
    }

    /// Plan: the store's state of the Task, then the schedule expanded over the horizon (the
    /// other costly, pure part, off the async threads).
    async fn plan_task(
        &self,
        pass: &Pass<'_>,
        checked: &Checked,
    ) -> Result<Planned, ReconcileError> {
        let (task, uid, now, generation) = (pass.task, pass.uid, pass.now, pass.generation);
        let mut normalized = task.spec.clone();
        if let Some(p) = &checked.referenced {
            normalized.pipeline = Some(p.spec.clone());
            normalized.pipeline_ref = None;
        }
        let prior = self
            .ctx
            .batches
            .state(uid, now)
            .await
            .map_err(|source| store_error(&pass.key, source))?;
        let handled = prior
            .as_ref()
            .and_then(|p| p.handled_run_now.clone())
            .or_else(|| pass.old_status.handled_run_now.clone());
        let run_now = task
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RUN_NOW_ANNOTATION))
            .cloned();
        let planned = {
            let (ns, name) = (pass.key.namespace.clone(), pass.key.name.clone());
            let schedule = checked.schedule.clone();
            let (prior, config) = (prior.clone(), self.ctx.config.clone());
            let handled = handled.clone();
            crate::offload::cpu(move || {
                plan(&PlanInput {
                    uid,
                    namespace: &ns,
                    name: &name,
                    generation,
                    spec: &normalized,
                    schedule: schedule.as_ref(),
                    prior: prior.as_ref(),
                    run_now: run_now.as_deref(),
                    handled_run_now: handled.as_deref(),
                    now,
                    config: &config,
                })
            })
            .await
        };
        let plan = planned.map_err(|source| ReconcileError::Plan {
            namespace: pass.key.namespace.clone(),
            name: pass.key.name.clone(),
            source,
        })?;
        Ok(Planned {
            plan,
            prior,
            handled,
        })
    }

    /// Apply: the new owned status, and the plan's writes in one (batched) transaction,
    /// unless the plan changes nothing and the status already says this.
    async fn apply(
        &self,
        pass: &Pass<'_>,
        owned: &mut TaskStatus,
        pending: Option<ConditionUpdate>,
        planned: &mut Planned,
    ) -> Result<ApplyOutcome, ReconcileError> {
        let (plan, prior) = (&mut planned.plan, &planned.prior);
        let (update, progress) = match pending {
            Some(pending) => (pending, Progress::Reconciling),
            None => (task_ready(plan.state, plan.next_run_time), Progress::Done),
        };
        owned.conditions = kstatus_conditions(
            &owned.conditions,
            &update,
            progress,
            Some(pass.generation),
            pass.now,
        );
        owned.next_run_time = plan.next_run_time;
        if let Some(latest) = plan.missed.iter().max() {
            owned.last_missed_time = Some(*latest);
        }
        owned.last_schedule_time = plan.last_schedule_time;
        owned.handled_run_now = plan
            .handled_run_now
            .clone()
            .or_else(|| planned.handled.clone());
        let status_json = to_json(&*owned);
        // Nothing new (the tick of an unchanged Task): write nothing, and leave the object's
        // status alone when it already says this (run outcomes reach it through the status
        // feed).
        let unchanged = prior.as_ref().is_some_and(|p| {
            p.status == status_json && plan.changes_nothing(p, pass.now, &self.ctx.config)
        });
        let status_current = unchanged
            && prior
                .as_ref()
                .is_some_and(|p| p.missed_total == pass.old_status.counters.missed)
            && reconcile_owned(&pass.old_status) == *owned;
        let applied = if unchanged {
            Applied::default()
        } else {
            let write = ReconcileWrite {
                projection: plan.projection.clone(),
                prior_materialized_until: plan.prior_materialized_until,
                withdraw_after: plan.withdraw_after,
                drop_stale: plan.drop_stale.clone(),
                occurrences: std::mem::take(&mut plan.occurrences),
                missed: i64::try_from(plan.missed.len()).unwrap_or(i64::MAX),
                events: std::mem::take(&mut plan.events),
                handled_run_now: plan.handled_run_now.clone(),
                status: status_json,
            };
            self.ctx
                .batches
                .apply(write)
                .await
                .map_err(|source| store_error(&pass.key, source))?
        };
        self.applied_metrics(pass, plan, &applied).await;
        Ok(ApplyOutcome {
            update,
            applied,
            status_current,
        })
    }

    /// The audit record of a handled run-now, the reconcile metrics and the debug line.
    async fn applied_metrics(&self, pass: &Pass<'_>, plan: &Plan, applied: &Applied) {
        let (ns, name) = (&pass.key.namespace, &pass.key.name);
        if let Some(value) = &plan.handled_run_now {
            crate::audit::run_now(&self.ctx, ns, name, value).await;
        }
        let m = &self.ctx.metrics;
        m.materialized.inc_by(applied.inserted);
        m.withdrawn.inc_by(applied.withdrawn);
        m.missed.inc_by(plan.missed.len() as u64);
        m.caught_up.inc_by(plan.caught_up.len() as u64);
        tracing::debug!(
            namespace = %ns, task = %name, inserted = applied.inserted,
            withdrawn = applied.withdrawn, missed = plan.missed.len(),
            caught_up = plan.caught_up.len(), next = ?plan.next_run_time, "task reconciled"
        );
    }

    /// Announce: a Normal Event when the spec is valid again, one about missed occurrences.
    async fn announce(
        &self,
        pass: &Pass<'_>,
        update: &ConditionUpdate,
        plan: &Plan,
    ) -> Result<(), ReconcileError> {
        let old_ready = ready_of(&pass.old_status.conditions);
        if update.status && old_ready.is_some_and(|c| c.status == "False") {
            self.notice(
                &pass.key,
                NoticeType::Normal,
                reason::VALID,
                "the spec is valid again; scheduling resumed",
                "Validate",
            )
            .await?;
        }
        if !plan.missed.is_empty() || !plan.caught_up.is_empty() {
            let message = format!(
                "{} occurrence(s) missed while Ordinaut was not running them (catch-up policy {:?}): {} dropped, {} queued now",
                plan.missed.len() + plan.caught_up.len(),
                pass.task.spec.schedule.catchup.policy,
                plan.missed.len(),
                plan.caught_up.len()
            );
            let type_ = if plan.missed.is_empty() {
                NoticeType::Normal
            } else {
                NoticeType::Warning
            };
            self.notice(&pass.key, type_, "MissedRuns", &message, "CatchUp")
                .await?;
        }
        Ok(())
    }

    /// Fetch and validate: the referenced Pipeline and Agent, the spec, the schedule and the
    /// tools the pipeline uses.
    async fn check(
        &self,
        task: &Task,
        ns: &str,
        created: DateTime<Utc>,
    ) -> Result<Checked, ReconcileError> {
        let spec = &task.spec;
        let refs = self.fetch_references(task, ns).await?;
        let mut problems = referenced_problems(refs.pipeline.as_deref());
        // The schedule's compilation (twice: validation reports in UTC when the zone is
        // unknown) is the costly, pure part: off the async threads.
        let (task_problems, compiled) = {
            let spec = spec.clone();
            let referenced = refs.pipeline.clone();
            crate::offload::cpu(move || {
                let problems =
                    validate::task_problems(&spec, created, referenced.as_deref().map(|p| &p.spec));
                (
                    problems,
                    validate::compile_schedule(&spec.schedule, created),
                )
            })
            .await
        };
        problems.extend(task_problems);
        if crate::chains::follows(spec).is_some() {
            let name = task.metadata.name.as_deref().unwrap_or_default();
            let others =
                self.ctx
                    .store
                    .chain_links(ns)
                    .await
                    .map_err(|source| ReconcileError::Store {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                        source,
                    })?;
            problems.extend(crate::chains::task_cycle(name, spec, others));
        }
        let schedule = match compiled {
            Ok(s) => s,
            Err(p) => {
                if !problems.contains(&p) {
                    problems.push(p);
                }
                None
            }
        };
        let mut pending = None;
        if problems.is_empty() && refs.missing.is_none() {
            pending = self.check_tools(task, ns, &refs, &mut problems).await?;
        }
        let stalled = if problems.is_empty() {
            refs.missing
        } else {
            Some(invalid(&problems))
        };
        Ok(Checked {
            referenced: refs.pipeline,
            schedule,
            stalled,
            pending,
        })
    }

    /// Fetch: the Pipeline `pipelineRef` names and the Agent `agentRef` names, and the first
    /// of them that does not exist.
    async fn fetch_references(&self, task: &Task, ns: &str) -> Result<References, ReconcileError> {
        let spec = &task.spec;
        let mut missing_ref: Option<ConditionUpdate> = None;
        let pipeline: Option<Arc<Pipeline>> = match &spec.pipeline_ref {
            Some(p) if spec.pipeline.is_none() => {
                let found = self.ctx.objects.pipeline(ns, p).await?;
                if found.is_none() {
                    missing_ref = Some(missing(
                        reason::PIPELINE_NOT_FOUND,
                        "spec.pipelineRef",
                        "Pipeline",
                        p,
                    ));
                }
                found
            }
            _ => None,
        };
        let agent = match &spec.agent_ref {
            Some(name) => {
                let found = self.ctx.objects.agent(ns, name).await?;
                if found.is_none() && missing_ref.is_none() {
                    missing_ref = Some(missing(
                        reason::AGENT_NOT_FOUND,
                        "spec.agentRef",
                        "Agent",
                        name,
                    ));
                }
                found
            }
            None => None,
        };
        Ok(References {
            pipeline,
            agent,
            missing: missing_ref,
        })
    }

    /// The tools the pipeline uses (added to `problems`); a check that waits for another
    /// object (an McpServer's first discovery) is returned as the pending condition.
    async fn check_tools(
        &self,
        task: &Task,
        ns: &str,
        refs: &References,
        problems: &mut Vec<Problem>,
    ) -> Result<Option<ConditionUpdate>, ReconcileError> {
        let spec = &task.spec;
        let Some(pipeline) = spec
            .pipeline
            .as_ref()
            .or(refs.pipeline.as_deref().map(|p| &p.spec))
        else {
            return Ok(None);
        };
        let at = |i: usize| match &spec.pipeline {
            Some(_) => format!("spec.pipeline.steps[{i}].uses"),
            None => format!("spec.pipelineRef (step {i})"),
        };
        let tools = references::check_tools(
            self.ctx.objects.as_ref(),
            ns,
            pipeline,
            &at,
            refs.agent.as_deref(),
        )
        .await?;
        problems.extend(tools.problems);
        if tools.pending.is_empty() {
            return Ok(None);
        }
        let mut update = invalid(&tools.pending);
        update.message.push_str("; it is scheduled meanwhile");
        Ok(Some(update))
    }

    /// Handles a new `ordinaut.dev/backfill` annotation value (see [`crate::backfill`]) with
    /// one Event saying what was queued or why nothing was; returns the handled value.
    async fn backfill(
        &self,
        task: &Task,
        uid: Uuid,
        key: &ObjectKey,
        schedule: Option<&ordinaut_schedule::Schedule>,
        handled: Option<String>,
    ) -> Result<Option<String>, ReconcileError> {
        let asked = task
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BACKFILL_ANNOTATION));
        let Some(value) = asked.filter(|v| handled.as_ref() != Some(*v)) else {
            return Ok(handled);
        };
        let now = self.ctx.clock.now();
        let queued = backfill::queue(
            &self.ctx.store,
            uid,
            task.spec.priority,
            schedule,
            value,
            now,
        )
        .await
        .map_err(|source| store_error(key, source))?;
        match queued {
            Ok(n) => {
                let message = format!(
                    "{n} occurrence(s) of {value} queued (trigger backfill; those that ran or are queued are skipped)"
                );
                self.notice(key, NoticeType::Normal, "Backfilled", &message, "Backfill")
                    .await?;
            }
            Err(backfill::Refused(message)) => {
                self.notice(
                    key,
                    NoticeType::Warning,
                    "InvalidBackfill",
                    &message,
                    "Backfill",
                )
                .await?;
            }
        }
        Ok(Some(value.clone()))
    }

    /// The Task is being deleted: withdraw its queued occurrences and mark the projection
    /// deleted (run history stays). Idempotent.
    pub async fn cleanup(&self, task: &Task) -> Result<u64, ReconcileError> {
        let key = key(Kind::Task, &task.metadata);
        let Some(uid) = task_uid(&task.metadata) else {
            return Ok(0);
        };
        let withdrawn = self
            .ctx
            .store
            .delete_task(uid)
            .await
            .map_err(|source| store_error(&key, source))?;
        self.ctx.metrics.withdrawn.inc_by(withdrawn);
        self.ctx.metrics.reconciled("Task", "deleted", 0.0);
        tracing::info!(namespace = %key.namespace, task = %key.name, withdrawn, "task deleted");
        Ok(withdrawn)
    }

    /// Rewrites a Task's status from the store (its status mirror and its runs): what the
    /// status feed does for each run outcome. Idempotent: the result depends only on the
    /// store, so applying the same outcome twice writes the same status. `false` when the
    /// task is unknown or deleted.
    pub async fn refresh_status(&self, uid: Uuid) -> Result<bool, ReconcileError> {
        let store_err = |source| ReconcileError::Store {
            namespace: String::new(),
            name: uid.to_string(),
            source,
        };
        let Some(mirror) = self.ctx.store.status_mirror(uid).await.map_err(store_err)? else {
            return Ok(false);
        };
        if mirror.deleted {
            return Ok(false);
        }
        let owned: TaskStatus = serde_json::from_value(mirror.status).unwrap_or_default();
        let key = ObjectKey {
            kind: Kind::Task,
            namespace: mirror.namespace,
            name: mirror.name,
            uid: Some(uid.to_string()),
        };
        self.write_status(&key, uid, &owned).await?;
        Ok(true)
    }

    async fn write_status(
        &self,
        key: &ObjectKey,
        uid: Uuid,
        owned: &TaskStatus,
    ) -> Result<(), ReconcileError> {
        let lock = self.ctx.lock_for(uid);
        let guard = lock.lock().await;
        let sources = self
            .ctx
            .batches
            .status_sources(uid)
            .await
            .map_err(|source| store_error(key, source))?;
        let missed = sources.missed_total.unwrap_or(owned.counters.missed);
        let mut status = compose_task_status(owned, &sources.runs, missed);
        status.events = sources.events.map(|e| ordinaut_api::TaskEventCounts {
            received: e.received,
            started: e.started,
            filtered: e.filtered,
            dropped: e.dropped,
            last_drop_reason: e.last_drop,
            last_event_at: e.last_event_at,
        });
        let written = self.ctx.leader_status(key, to_json(&status)).await;
        drop(guard);
        self.ctx.release_lock(uid, lock);
        written?;
        Ok(())
    }

    async fn notice(
        &self,
        key: &ObjectKey,
        type_: NoticeType,
        reason: &str,
        message: &str,
        action: &str,
    ) -> Result<(), ReconcileError> {
        let notice = Notice {
            type_,
            reason: reason.to_string(),
            message: message.to_string(),
            action: action.to_string(),
        };
        self.ctx.sink.notice(key, &notice).await?;
        Ok(())
    }
}

/// One reconcile of one Task: what every step reads.
struct Pass<'a> {
    task: &'a Task,
    key: ObjectKey,
    uid: Uuid,
    now: DateTime<Utc>,
    generation: i64,
    /// The status the object carried when the reconcile began.
    old_status: TaskStatus,
}

impl Pass<'_> {
    /// The part of the status this reconcile writes, starting from what the object says.
    fn owned_status(&self) -> TaskStatus {
        let old = &self.old_status;
        TaskStatus {
            conditions: old.conditions.clone(),
            observed_generation: Some(self.generation),
            schedule_summary: self.task.spec.schedule.summary(),
            handled_run_now: old.handled_run_now.clone(),
            handled_backfill: old.handled_backfill.clone(),
            last_schedule_time: old.last_schedule_time,
            last_missed_time: old.last_missed_time,
            ..TaskStatus::default()
        }
    }
}

/// The Pipeline and Agent a Task references.
struct References {
    pipeline: Option<Arc<Pipeline>>,
    agent: Option<Arc<Agent>>,
    /// Ready=False for the first reference that does not exist.
    missing: Option<ConditionUpdate>,
}

/// A plan and what it was made from.
struct Planned {
    plan: Plan,
    /// The store's state of the Task before this reconcile.
    prior: Option<ordinaut_store::OperatorTaskState>,
    /// The run-now value handled before (store first, then the object's status).
    handled: Option<String>,
}

/// What the apply step wrote.
struct ApplyOutcome {
    /// The Ready condition written.
    update: ConditionUpdate,
    applied: Applied,
    /// The object's status already says what this reconcile would write.
    status_current: bool,
}

/// The problems of the Pipeline a Task references, at `spec.pipelineRef`.
fn referenced_problems(pipeline: Option<&Pipeline>) -> Vec<Problem> {
    let Some(p) = pipeline else {
        return Vec::new();
    };
    let name = p.metadata.name.as_deref().unwrap_or_default();
    validate::pipeline_spec_problems(&p.spec, "spec")
        .into_iter()
        .map(|issue| Problem {
            path: "spec.pipelineRef".into(),
            message: format!("Pipeline `{name}` is invalid: {issue}; fix the Pipeline"),
            reason: reason::INVALID_PIPELINE,
        })
        .collect()
}

fn task_uid(meta: &kube::api::ObjectMeta) -> Option<Uuid> {
    meta.uid.as_deref().and_then(|u| Uuid::parse_str(u).ok())
}

fn store_error(key: &ObjectKey, source: StoreError) -> ReconcileError {
    ReconcileError::Store {
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        source,
    }
}

/// What fetch-and-validate concluded about a Task.
struct Checked {
    /// The Pipeline `pipelineRef` names, when it exists.
    referenced: Option<Arc<Pipeline>>,
    schedule: Option<ordinaut_schedule::Schedule>,
    /// Ready=False and Stalled=True: a person must change something (the Task is held).
    stalled: Option<ConditionUpdate>,
    /// Ready=False and Reconciling=True: a check waits for another object (an McpServer's
    /// first discovery); the Task is scheduled meanwhile.
    pending: Option<ConditionUpdate>,
}

/// The part of a Task's status a reconcile writes (the rest comes from runs).
fn reconcile_owned(status: &TaskStatus) -> TaskStatus {
    TaskStatus {
        conditions: status.conditions.clone(),
        observed_generation: status.observed_generation,
        schedule_summary: status.schedule_summary.clone(),
        next_run_time: status.next_run_time,
        last_schedule_time: status.last_schedule_time,
        handled_run_now: status.handled_run_now.clone(),
        handled_backfill: status.handled_backfill.clone(),
        last_missed_time: status.last_missed_time,
        ..TaskStatus::default()
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_else(|_| json!({}))
}

/// Validation and status of the kinds that have no schedule: Pipeline, McpServer, Agent.
#[derive(Clone)]
pub struct DefinitionReconciler {
    ctx: Context,
}

impl DefinitionReconciler {
    pub fn new(ctx: Context) -> Self {
        Self { ctx }
    }

    pub async fn pipeline(&self, p: &Pipeline) -> Result<bool, ReconcileError> {
        let problems = validate::pipeline_spec_problems(&p.spec, "spec");
        let old = p
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        self.finish(Kind::Pipeline, &p.metadata, &old, &problems)
            .await
    }

    /// Validates an Agent and projects it (its scopes) for the workers; an invalid Agent's
    /// projection is removed, so its Tasks may use built-ins only.
    pub async fn agent(&self, a: &Agent) -> Result<bool, ReconcileError> {
        let problems = validate::agent_problems(&a.spec);
        let old = a
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        // A missing token Secret makes the Agent not Ready, but its Tasks still run: it stays
        // projected (scopes, budgets) as long as its spec is valid.
        let k = key(Kind::Agent, &a.metadata);
        let mut shown = problems.clone();
        if problems.is_empty() {
            let token = crate::agent_token::token_problem(&self.ctx, &k.namespace, &a.spec);
            shown.extend(token.await);
        }
        let summary =
            crate::agent_token::budget_summary(&self.ctx, &k.namespace, &k.name, &a.spec).await;
        self.finish_with(Kind::Agent, &a.metadata, &old, &shown, summary)
            .await?;
        let valid = problems.is_empty();
        if self.ctx.leader.is_leader() {
            let result = if valid {
                let spec = serde_json::to_value(&a.spec).unwrap_or_default();
                let generation = a.metadata.generation.unwrap_or(1);
                self.ctx
                    .store
                    .upsert_agent(&k.namespace, &k.name, generation, &spec)
                    .await
            } else {
                self.ctx.store.delete_agent(&k.namespace, &k.name).await
            };
            result.map_err(|source| ReconcileError::Store {
                namespace: k.namespace.clone(),
                name: k.name.clone(),
                source,
            })?;
        }
        Ok(valid)
    }

    /// An Agent is gone: remove its projection (idempotent).
    pub async fn agent_deleted(&self, namespace: &str, name: &str) -> Result<(), ReconcileError> {
        self.ctx
            .store
            .delete_agent(namespace, name)
            .await
            .map_err(|source| ReconcileError::Store {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })
    }

    /// An McpServer is gone: remove its projection and its pod's Deployment and Service
    /// (idempotent; the owner references would let Kubernetes delete them too).
    pub async fn mcp_server_gone(&self, namespace: &str, name: &str) -> Result<(), ReconcileError> {
        self.mcp_server_deleted(namespace, name).await?;
        if let Some(pods) = &self.ctx.mcp_pods {
            pods.remove(namespace, name).await?;
        }
        Ok(())
    }

    /// An McpServer's projection goes (idempotent).
    pub async fn mcp_server_deleted(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), ReconcileError> {
        self.ctx
            .store
            .delete_mcp_server(namespace, name)
            .await
            .map_err(|source| ReconcileError::Store {
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })
    }

    /// Validates an McpServer, connects to it and lists its tools (discovery), writes them to
    /// its status with `Ready`, and projects it for the workers. An unreachable server gets
    /// `Ready=False` with the reason and is retried with backoff (the error requeues it).
    pub async fn mcp_server(&self, m: &McpServer) -> Result<bool, ReconcileError> {
        let mut problems = validate::mcp_server_problems(m.metadata.name.as_deref(), &m.spec);
        if self.ctx.mcp_pods.is_some() {
            let name = m.metadata.name.as_deref().unwrap_or_default();
            problems.extend(crate::mcp_pod::cluster_problems(name, &m.spec));
        }
        let old = m
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        if !problems.is_empty() || !self.ctx.leader.is_leader() {
            let valid = self
                .finish(Kind::McpServer, &m.metadata, &old, &problems)
                .await?;
            if !valid && self.ctx.leader.is_leader() {
                let k = key(Kind::McpServer, &m.metadata);
                self.mcp_server_deleted(&k.namespace, &k.name).await?;
                crate::discovery::remove_pod(&self.ctx, &k).await?;
            }
            return Ok(valid);
        }
        crate::discovery::discover_and_project(&self.ctx, m, &old).await
    }

    /// Writes Ready (and one Warning on a new mistake). Returns whether the object is valid.
    async fn finish(
        &self,
        kind: Kind,
        meta: &kube::api::ObjectMeta,
        old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        problems: &[Problem],
    ) -> Result<bool, ReconcileError> {
        self.finish_with(kind, meta, old, problems, None).await
    }

    /// [`Self::finish`], with `ready_message` (when given) as the Ready=True message.
    async fn finish_with(
        &self,
        kind: Kind,
        meta: &kube::api::ObjectMeta,
        old: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
        problems: &[Problem],
        ready_message: Option<String>,
    ) -> Result<bool, ReconcileError> {
        let started = Instant::now();
        if !self.ctx.leader.is_leader() {
            return Ok(problems.is_empty());
        }
        let now = self.ctx.clock.now();
        let key = key(kind, meta);
        let update = if problems.is_empty() {
            ConditionUpdate {
                type_: condition::READY,
                status: true,
                reason: reason::VALID.into(),
                message: ready_message.unwrap_or_else(|| format!("the {} is valid", kind.as_str())),
            }
        } else {
            invalid(problems)
        };
        if is_news(ready_of(old), &update) {
            let type_ = if update.status {
                NoticeType::Normal
            } else {
                NoticeType::Warning
            };
            let notice = Notice {
                type_,
                reason: update.reason.clone(),
                message: update.message.clone(),
                action: "Validate".into(),
            };
            self.ctx.sink.notice(&key, &notice).await?;
        }
        let progress = if problems.is_empty() {
            Progress::Done
        } else {
            Progress::Stalled
        };
        let conditions = kstatus_conditions(old, &update, progress, meta.generation, now);
        let mut status = json!({ "conditions": conditions });
        if let Some(generation) = meta.generation {
            status["observedGeneration"] = json!(generation);
        }
        self.ctx.leader_status(&key, status).await?;
        self.ctx.metrics.reconciled(
            kind.as_str(),
            if problems.is_empty() {
                "ready"
            } else {
                "invalid"
            },
            started.elapsed().as_secs_f64(),
        );
        Ok(problems.is_empty())
    }
}
