//! Acting on a Task the way a kubectl user does: pause and resume (`spec.suspend`), snooze
//! (`spec.snoozeUntil`), run now (the `ordinaut.dev/run-now` annotation), and backfill
//! (occurrences of a past range queued with their audit entry, as `ordinaut task backfill`).

use chrono::{DateTime, TimeDelta, Utc};
use ordinaut_api::TaskSpec;
use ordinaut_api::agent::api_scope;
use ordinaut_api::constants::RUN_NOW_ANNOTATION;
use ordinaut_store::{ManualRequest, NewOccurrence, Trigger};
use serde_json::{Value, json};

use super::types::{ActionResult, BackfillTaskInput, SnoozeTaskInput};
use super::{Call, Ops, not_found};
use crate::problem::OpError;

/// Most occurrences one backfill may queue.
const MAX_BACKFILL: u32 = 1000;

impl Ops {
    /// Patches a Task the caller owns, audited as `action`.
    async fn patch_owned(
        &self,
        call: &Call,
        action: &str,
        (name, namespace): (&str, Option<&str>),
        scope: &str,
        patch: Result<Value, OpError>,
    ) -> Result<String, OpError> {
        let ns = self.target_namespace(call, namespace);
        let result = async {
            call.who.require(scope)?;
            let ns = self.namespace(call, namespace)?;
            let patch = patch?;
            self.owned_task(call, &ns, name).await?;
            self.writer.patch(&ns, name, &patch).await?;
            Ok(patch)
        }
        .await;
        self.audit(call, action, (&ns, name), result.as_ref().cloned())
            .await;
        result.map(|_| ns)
    }

    fn done(&self, call: &Call, ns: String, name: &str, message: String) -> ActionResult {
        ActionResult {
            namespace: ns,
            name: name.to_string(),
            message,
            correlation_id: call.correlation_id.clone(),
            queued: None,
        }
    }

    /// Suspends a Task: no new runs until resumed.
    pub async fn pause_task(
        &self,
        call: &Call,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<ActionResult, OpError> {
        let patch = Ok(json!({"spec": {"suspend": true}}));
        let ns = self
            .patch_owned(
                call,
                "task.pause",
                (name, namespace),
                api_scope::TASKS_WRITE,
                patch,
            )
            .await?;
        let message =
            format!("Task {ns}/{name} paused (spec.suspend: true); resume_task resumes it");
        Ok(self.done(call, ns, name, message))
    }

    /// Resumes a paused Task.
    pub async fn resume_task(
        &self,
        call: &Call,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<ActionResult, OpError> {
        let patch = Ok(json!({"spec": {"suspend": false}}));
        let ns = self
            .patch_owned(
                call,
                "task.resume",
                (name, namespace),
                api_scope::TASKS_WRITE,
                patch,
            )
            .await?;
        let message = format!("Task {ns}/{name} resumed (spec.suspend: false)");
        Ok(self.done(call, ns, name, message))
    }

    /// Skips a Task's occurrences until an instant.
    pub async fn snooze_task(
        &self,
        call: &Call,
        input: SnoozeTaskInput,
    ) -> Result<ActionResult, OpError> {
        let until = snooze_until(&input, self.clock.now());
        let until_value = until.clone();
        let patch = until.map(|t| json!({"spec": {"snoozeUntil": t}}));
        let ns = self
            .patch_owned(
                call,
                "task.snooze",
                (&input.name, input.namespace.as_deref()),
                api_scope::TASKS_WRITE,
                patch,
            )
            .await?;
        let until = until_value.map(|t| t.to_rfc3339()).unwrap_or_default();
        let message = format!(
            "Task {ns}/{} snoozed until {until} (spec.snoozeUntil); runs resume on schedule after",
            input.name
        );
        Ok(self.done(call, ns, &input.name, message))
    }

    /// Asks for one run now through the `ordinaut.dev/run-now` annotation.
    pub async fn run_task_now(
        &self,
        call: &Call,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<ActionResult, OpError> {
        let value = format!(
            "{}-{}",
            self.clock.now().timestamp_millis(),
            call.correlation_id
        );
        let patch = Ok(json!({"metadata": {"annotations": {RUN_NOW_ANNOTATION: value}}}));
        let ns = self
            .patch_owned(
                call,
                "task.run-now",
                (name, namespace),
                api_scope::RUNS_WRITE,
                patch,
            )
            .await?;
        let message = format!(
            "run of Task {ns}/{name} requested ({RUN_NOW_ANNOTATION}={value}); the operator \
             queues it within seconds: list_runs shows it when it has run"
        );
        Ok(self.done(call, ns, name, message))
    }

    /// Queues the occurrences a Task's schedule had in a past range, skipping those already
    /// run or queued.
    pub async fn backfill_task(
        &self,
        call: &Call,
        input: BackfillTaskInput,
    ) -> Result<ActionResult, OpError> {
        let ns = self.target_namespace(call, input.namespace.as_deref());
        let result = self.backfill_inner(call, &input).await;
        // A successful backfill is audited with its occurrences, in their transaction.
        if let Err(e) = &result {
            self.audit(call, "task.backfill", (&ns, &input.name), Err(e))
                .await;
        }
        let queued = result?;
        Ok(ActionResult {
            queued: Some(queued),
            ..self.done(
                call,
                ns.clone(),
                &input.name,
                format!(
                    "{queued} run(s) of Task {ns}/{} queued for {} .. {}",
                    input.name, input.from, input.to
                ),
            )
        })
    }

    async fn backfill_inner(&self, call: &Call, input: &BackfillTaskInput) -> Result<u64, OpError> {
        call.who.require(api_scope::RUNS_WRITE)?;
        let ns = self.namespace(call, input.namespace.as_deref())?;
        let now = self.clock.now();
        let max = input.max.unwrap_or(100);
        if max == 0 || max > MAX_BACKFILL {
            return Err(OpError::invalid(
                "max",
                format!("between 1 and {MAX_BACKFILL}"),
            ));
        }
        if input.to < input.from {
            return Err(OpError::invalid("to", "is before `from`"));
        }
        if input.to > now {
            return Err(OpError::invalid(
                "to",
                "is in the future; the schedule runs those occurrences by itself",
            ));
        }
        self.owned_task(call, &ns, &input.name).await?;
        let Some(row) = self.store.task_row(&ns, &input.name).await? else {
            return Err(OpError::Conflict(format!(
                "Task {ns}/{} is not scheduled yet; try again in a few seconds",
                input.name
            )));
        };
        let spec: TaskSpec = serde_json::from_value(row.projection.spec.clone())
            .map_err(|_| not_found(&ns, &input.name))?;
        let created = self.created_at(&row).await;
        // Expanding the schedule over the range is CPU work: off the async threads.
        let (from, to) = (input.from, input.to);
        let instants = ordinaut_operator::offload::cpu(move || {
            backfill_instants(&spec, created, from, to, max)
        })
        .await?;
        let occupied = self
            .store
            .occupied_instants(row.projection.uid, input.from, input.to)
            .await?;
        let todo: Vec<NewOccurrence> = instants
            .iter()
            .filter(|t| !occupied.contains(t))
            .map(|t| NewOccurrence {
                task_uid: row.projection.uid,
                scheduled_for: *t,
                run_at: now,
                priority: row.projection.priority,
                trigger: Trigger::Backfill,
                payload: json!({}),
            })
            .collect();
        if todo.is_empty() {
            self.audit(
                call,
                "task.backfill",
                (&ns, &input.name),
                Ok(json!({"from": input.from, "to": input.to, "queued": 0})),
            )
            .await;
            return Ok(0);
        }
        let request = ManualRequest {
            actor: call.who.actor(),
            action: "task.backfill".into(),
            detail: json!({"outcome": "ok", "from": input.from, "to": input.to}),
            correlation_id: Some(call.correlation_id.clone()),
        };
        Ok(self.store.queue_by_hand(&todo, &request).await?)
    }
}

fn snooze_until(input: &SnoozeTaskInput, now: DateTime<Utc>) -> Result<DateTime<Utc>, OpError> {
    match (&input.until, &input.for_) {
        (Some(t), None) => Ok(*t),
        (None, Some(d)) => {
            let d = ordinaut_schedule::duration::parse_duration(d)
                .map_err(|e| OpError::invalid("for", e.to_string()))?;
            let d = TimeDelta::from_std(d).map_err(|_| OpError::invalid("for", "too long"))?;
            Ok(now + d)
        }
        _ => Err(OpError::invalid(
            "until",
            "give exactly one of `until` (an RFC 3339 instant) or `for` (a duration such as `2h`)",
        )),
    }
}

/// The schedule's occurrences in `[from, to]`, at most `max`.
fn backfill_instants(
    spec: &TaskSpec,
    created: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max: u32,
) -> Result<Vec<DateTime<Utc>>, OpError> {
    let schedule = ordinaut_operator::validate::compile_schedule(&spec.schedule, created)
        .map_err(|p| OpError::invalid(p.path, p.message))?
        .ok_or_else(|| OpError::invalid("spec.schedule", "runs on events: nothing to backfill"))?;
    let max = max as usize;
    // `between` excludes its lower bound; the range given includes it.
    let instants: Vec<DateTime<Utc>> = schedule
        .between(from - TimeDelta::microseconds(1), to, max + 1)
        .map_err(|e| OpError::invalid("spec.schedule", e.to_string()))?
        .into_iter()
        .map(|t| t.to_utc())
        .collect();
    if instants.len() > max {
        return Err(OpError::invalid(
            "max",
            format!("the range holds more than {max} occurrences; narrow it or raise `max`"),
        ));
    }
    Ok(instants)
}
