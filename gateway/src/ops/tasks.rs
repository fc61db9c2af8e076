//! Tasks: list, get (with the next runs), schedule (create), update, delete.

use chrono::{DateTime, Utc};
use ordinaut_api::agent::api_scope;
use ordinaut_api::{Task, TaskSpec};
use ordinaut_store::{TaskQuery, TaskRow};
use serde_json::{Value, json};

use super::types::{
    ActionResult, GetTaskInput, ListTasksInput, ScheduleTaskInput, TaskList, TaskState, TaskView,
    UpdateTaskInput,
};
use super::{Call, Ops, check_name, check_spec_offloaded, limit, not_found, parse_spec};
use crate::problem::OpError;
use crate::writer::AGENT_LABEL;

/// Most upcoming runs `get_task` computes.
const MAX_NEXT: u32 = 100;

/// The next `n` runs of a spec after `now`, by the scheduler's own code: none when
/// suspended, none before `startAt` or the snooze, none after `endAt`.
pub(crate) fn next_runs(
    spec: &TaskSpec,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
    n: usize,
) -> Vec<DateTime<Utc>> {
    if spec.suspend || n == 0 {
        return Vec::new();
    }
    let Ok(Some(schedule)) = ordinaut_operator::validate::compile_schedule(&spec.schedule, created)
    else {
        return Vec::new();
    };
    let mut after = now;
    if let Some(start) = spec.schedule.start_at {
        after = after.max(start - chrono::TimeDelta::microseconds(1));
    }
    if let Some(snooze) = spec.snooze_until {
        after = after.max(snooze - chrono::TimeDelta::microseconds(1));
    }
    schedule
        .iter_after(after)
        .take(n)
        .filter_map(Result::ok)
        .map(|t| t.to_utc())
        .take_while(|t| spec.schedule.end_at.is_none_or(|end| *t <= end))
        .collect()
}

fn state_of(suspended: bool, snooze: Option<DateTime<Utc>>, now: DateTime<Utc>) -> TaskState {
    if suspended {
        TaskState::Paused
    } else if snooze.is_some_and(|s| s > now) {
        TaskState::Snoozed
    } else {
        TaskState::Active
    }
}

/// `Ready` condition of a status: (status, message).
fn ready(status: &Value) -> (Option<bool>, Option<String>) {
    let cond = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    match cond {
        Some(c) => (
            Some(c["status"] == "True"),
            c["message"].as_str().map(str::to_string),
        ),
        None => (None, None),
    }
}

fn view_of_row(row: &TaskRow, now: DateTime<Utc>, next: Vec<DateTime<Utc>>) -> TaskView {
    let p = &row.projection;
    let (ready, message) = ready(&row.status);
    let schedule = row.status["scheduleSummary"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{} {}", p.schedule_kind, p.schedule));
    TaskView {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        agent: p.spec["agentRef"].as_str().map(str::to_string),
        state: state_of(p.suspended, p.snooze_until, now),
        ready,
        message,
        schedule,
        next_runs: next,
        snooze_until: p.snooze_until,
        spec: p.spec.clone(),
        status: row.status.clone(),
    }
}

/// [`view_of_object`] off the async threads: expanding a schedule costs what its rule costs.
async fn view_of_object_offloaded(task: &Task, now: DateTime<Utc>, n: usize) -> TaskView {
    let task = task.clone();
    ordinaut_operator::offload::cpu(move || view_of_object(&task, now, n)).await
}

/// A Task the operator has not projected yet (just written), from its object.
fn view_of_object(task: &Task, now: DateTime<Utc>, n: usize) -> TaskView {
    let created = task
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(ordinaut_operator::status::chrono_time)
        .unwrap_or(now);
    let schedule = ordinaut_operator::validate::compile_schedule(&task.spec.schedule, created)
        .ok()
        .flatten()
        .map(|s| s.describe())
        .unwrap_or_else(|| "on event".into());
    TaskView {
        namespace: task.metadata.namespace.clone().unwrap_or_default(),
        name: task.metadata.name.clone().unwrap_or_default(),
        agent: task.spec.agent_ref.clone(),
        state: TaskState::Pending,
        ready: None,
        message: Some("written; the operator picks it up within seconds".into()),
        schedule,
        next_runs: next_runs(&task.spec, created, now, n),
        snooze_until: task.spec.snooze_until,
        spec: serde_json::to_value(&task.spec).unwrap_or(Value::Null),
        status: json!({}),
    }
}

/// An agent changes the spec only of Tasks that act for it or for no one (with `tasks:all`
/// it also sees, pauses, runs and deletes those of other agents, but does not rewrite them:
/// its spec would then act for it, taking the Task from its agent).
fn not_another_agents(call: &Call, task: &Task) -> Result<(), OpError> {
    let (Some((ns, me)), Some(owner)) = (call.who.agent_ref(), task.spec.agent_ref.as_deref())
    else {
        return Ok(());
    };
    if owner == me {
        return Ok(());
    }
    let name = task.metadata.name.as_deref().unwrap_or_default();
    Err(OpError::Forbidden(format!(
        "Task {ns}/{name} acts for agent `{owner}`: agent `{me}` may not change its spec \
         (it may pause, resume, snooze, run or delete it with tasks:all); ask `{owner}` or an \
         admin"
    )))
}

/// The merge patch written for an update: the caller's spec fields with `agentRef` set to the
/// validated one, so what is written is what was checked (a `null` cannot detach a Task from
/// the agent that wrote it), and the agent label following a changed `agentRef`.
fn written_patch(task: &Task, mut spec: Value, agent_ref: Option<&str>) -> Value {
    spec["agentRef"] = agent_ref.map_or(Value::Null, |a| Value::String(a.to_string()));
    let mut write = json!({"spec": spec});
    let label = task
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(AGENT_LABEL))
        .map(String::as_str);
    if label != agent_ref {
        let mut labels = serde_json::Map::new();
        labels.insert(AGENT_LABEL.to_string(), json!(agent_ref));
        write["metadata"] = json!({"labels": labels});
    }
    write
}

fn parse_cursor(cursor: Option<&str>) -> Result<Option<(String, String)>, OpError> {
    match cursor {
        None => Ok(None),
        Some(c) => match c.split_once('/') {
            Some((ns, name)) => Ok(Some((ns.to_string(), name.to_string()))),
            None => Err(OpError::invalid(
                "cursor",
                "not a cursor of this list: pass `nextCursor` of the previous page unchanged",
            )),
        },
    }
}

impl Ops {
    /// The caller's Tasks (all of its namespace with `tasks:all`; every Task for the admin).
    pub async fn list_tasks(
        &self,
        call: &Call,
        input: ListTasksInput,
    ) -> Result<TaskList, OpError> {
        call.who.require(api_scope::TASKS_READ)?;
        let limit = limit(input.limit)?;
        let namespace = match (&input.namespace, call.who.is_admin()) {
            (None, true) => None,
            (asked, _) => Some(self.namespace(call, asked.as_deref())?),
        };
        let agent = match call.who.agent_ref() {
            Some((_, name)) if !call.who.has(api_scope::TASKS_ALL) => Some(name.to_string()),
            _ => None,
        };
        let query = TaskQuery {
            namespace,
            agent,
            state: input.status.map(|s| s.as_str().to_string()),
            after: parse_cursor(input.cursor.as_deref())?,
            limit: limit + 1,
        };
        let mut rows = self.store.task_page(&query).await?;
        let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let now = self.clock.now();
        let items: Vec<TaskView> = rows
            .iter()
            .map(|r| view_of_row(r, now, r.projection.next_run_at.into_iter().collect()))
            .collect();
        let next_cursor = more
            .then(|| items.last().map(|t| format!("{}/{}", t.namespace, t.name)))
            .flatten();
        Ok(TaskList { items, next_cursor })
    }

    /// One Task with its status and next runs.
    pub async fn get_task(&self, call: &Call, input: GetTaskInput) -> Result<TaskView, OpError> {
        call.who.require(api_scope::TASKS_READ)?;
        let ns = self.namespace(call, input.namespace.as_deref())?;
        let n = input.next.unwrap_or(5);
        if n > MAX_NEXT {
            return Err(OpError::invalid("next", format!("at most {MAX_NEXT}")));
        }
        if !super::is_dns_label(&input.name) {
            return Err(not_found(&ns, &input.name));
        }
        let now = self.clock.now();
        let n = n as usize;
        if let Some(row) = self.store.task_row(&ns, &input.name).await? {
            let agent = row.projection.spec["agentRef"].as_str();
            if !self.visible(&call.who, &ns, agent) {
                return Err(not_found(&ns, &input.name));
            }
            let spec: Option<TaskSpec> = serde_json::from_value(row.projection.spec.clone()).ok();
            let created = self.created_at(&row).await;
            // Expanding the schedule is CPU work: off the async threads.
            let next = match spec {
                Some(s) => {
                    ordinaut_operator::offload::cpu(move || next_runs(&s, created, now, n)).await
                }
                None => Vec::new(),
            };
            return Ok(view_of_row(&row, now, next));
        }
        // Written but not projected yet.
        let task = self.owned_task(call, &ns, &input.name).await?;
        Ok(view_of_object_offloaded(&task, now, n).await)
    }

    /// The anchor the operator uses: the object's creation (dev: kept in the database).
    pub(super) async fn created_at(&self, row: &TaskRow) -> DateTime<Utc> {
        let p = &row.projection;
        if let Ok(Some(t)) = self.writer.get(&p.namespace, &p.name).await
            && let Some(c) = t
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(ordinaut_operator::status::chrono_time)
        {
            return c;
        }
        match self.store.dev_created_at(p.uid).await {
            Ok(Some(t)) => t,
            _ => row.created_at,
        }
    }

    /// Creates a Task acting for the calling Agent.
    pub async fn schedule_task(
        &self,
        call: &Call,
        input: ScheduleTaskInput,
    ) -> Result<TaskView, OpError> {
        let ns = self.target_namespace(call, input.namespace.as_deref());
        let result = self.schedule_task_inner(call, &input).await;
        let outcome = result.as_ref().map(|_| json!({"spec": input.spec}));
        self.audit(call, "task.create", (&ns, &input.name), outcome)
            .await;
        result
    }

    async fn schedule_task_inner(
        &self,
        call: &Call,
        input: &ScheduleTaskInput,
    ) -> Result<TaskView, OpError> {
        call.who.require(api_scope::TASKS_WRITE)?;
        let ns = self.namespace(call, input.namespace.as_deref())?;
        check_name(&input.name)?;
        let mut spec: TaskSpec = parse_spec(&input.spec, "spec")?;
        self.own_agent_ref(call, &mut spec)?;
        let now = self.clock.now();
        check_spec_offloaded(&spec, now).await?;
        let mut task = Task::new(&input.name, spec);
        task.metadata.namespace = Some(ns);
        if let Some(agent) = &task.spec.agent_ref {
            task.metadata.labels = Some([(AGENT_LABEL.to_string(), agent.clone())].into());
        }
        self.writer.create(&task).await?;
        Ok(view_of_object_offloaded(&task, now, 5).await)
    }

    /// An Agent's Tasks act for it: `agentRef` is set to the Agent (another one is refused).
    fn own_agent_ref(&self, call: &Call, spec: &mut TaskSpec) -> Result<(), OpError> {
        let Some((ns, name)) = call.who.agent_ref() else {
            return Ok(());
        };
        match spec.agent_ref.as_deref() {
            None => spec.agent_ref = Some(name.to_string()),
            Some(r) if r == name => {}
            Some(other) => {
                return Err(OpError::invalid(
                    "spec.agentRef",
                    format!(
                        "agent {ns}/{name} schedules Tasks for itself, not for `{other}`; leave \
                         agentRef out"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The namespace named in audit entries, also for refused calls: one the caller may not
    /// use (another agent's, or not a namespace name at all) is not where its refusal is
    /// filed; the caller's own namespace is (`-` for the admin).
    pub(super) fn target_namespace(&self, call: &Call, asked: Option<&str>) -> String {
        self.namespace(call, asked).unwrap_or_else(|_| {
            call.who
                .agent_ref()
                .map_or_else(|| "-".to_string(), |(ns, _)| ns.to_string())
        })
    }

    /// Changes fields of a Task's spec (merge patch), checked like a new spec.
    pub async fn update_task(
        &self,
        call: &Call,
        input: UpdateTaskInput,
    ) -> Result<TaskView, OpError> {
        let ns = self.target_namespace(call, input.namespace.as_deref());
        let result = self.update_task_inner(call, &input).await;
        let outcome = result.as_ref().map(|_| json!({"spec": input.spec}));
        self.audit(call, "task.update", (&ns, &input.name), outcome)
            .await;
        result
    }

    async fn update_task_inner(
        &self,
        call: &Call,
        input: &UpdateTaskInput,
    ) -> Result<TaskView, OpError> {
        call.who.require(api_scope::TASKS_WRITE)?;
        let ns = self.namespace(call, input.namespace.as_deref())?;
        let mut task = self.owned_task(call, &ns, &input.name).await?;
        not_another_agents(call, &task)?;
        let patch = Value::Object(input.spec.clone());
        let mut merged = serde_json::to_value(&task.spec).unwrap_or(Value::Null);
        json_patch::merge(&mut merged, &patch);
        let mut spec: TaskSpec = parse_spec(&merged, "spec")?;
        self.own_agent_ref(call, &mut spec)?;
        let now = self.clock.now();
        check_spec_offloaded(&spec, now).await?;
        let write = written_patch(&task, patch, spec.agent_ref.as_deref());
        self.writer.patch(&ns, &input.name, &write).await?;
        task.spec = spec;
        let mut view = view_of_object_offloaded(&task, now, 5).await;
        view.message = Some("updated; the operator applies the change within seconds".into());
        Ok(view)
    }

    /// Deletes a Task; its pending runs are withdrawn, its history stays.
    pub async fn delete_task(
        &self,
        call: &Call,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<ActionResult, OpError> {
        let ns = self.target_namespace(call, namespace);
        let result = async {
            call.who.require(api_scope::TASKS_WRITE)?;
            let ns = self.namespace(call, namespace)?;
            self.owned_task(call, &ns, name).await?;
            self.writer.delete(&ns, name).await?;
            Ok(())
        }
        .await;
        self.audit(
            call,
            "task.delete",
            (&ns, name),
            result.as_ref().map(|()| json!({})),
        )
        .await;
        result?;
        Ok(ActionResult {
            namespace: ns.clone(),
            name: name.to_string(),
            message: format!("Task {ns}/{name} deleted; its pending runs are withdrawn"),
            correlation_id: call.correlation_id.clone(),
            queued: None,
        })
    }
}
