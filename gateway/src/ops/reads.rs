//! Reads that are not Tasks: runs (with their steps), schedule previews, the tools a caller's
//! Tasks may use, the audit log; and publishing events for event-triggered Tasks.

use chrono::{DateTime, Utc};
use ordinaut_api::agent::api_scope;
use ordinaut_api::{DiscoveredTool, TaskSchedule};
use ordinaut_store::{AuditQuery, PublishError, PublishRequest, RunQuery, RunView, StepRecord};
use serde_json::json;
use uuid::Uuid;

use super::types::{
    AuditInfo, AuditList, GetRunInput, ListAuditInput, ListRunsInput, PreviewInput, PreviewResult,
    PublishEventInput, PublishedEventView, RunDetail, RunInfo, RunList, StepInfo, ToolInfo,
    ToolList,
};
use super::{Call, Ops, limit, parse_spec};
use crate::problem::OpError;

fn run_info(r: RunView) -> RunInfo {
    RunInfo {
        id: r.id.to_string(),
        namespace: r.namespace,
        task: r.name,
        trigger: r.trigger,
        attempt: r.attempt,
        status: r.status,
        scheduled_for: r.scheduled_for,
        started_at: r.started_at,
        finished_at: r.finished_at,
        error: r.error,
        output: r.output,
    }
}

fn step_info(s: StepRecord) -> StepInfo {
    StepInfo {
        id: s.step_id,
        uses: s.uses,
        status: s.status.as_str().to_string(),
        attempts: s.attempts,
        input: s.input,
        output: s.output,
        error: s.error,
        started_at: s.started_at,
        finished_at: s.finished_at,
    }
}

fn run_cursor(c: Option<&str>) -> Result<Option<(DateTime<Utc>, Uuid)>, OpError> {
    let Some(c) = c else { return Ok(None) };
    let bad = || {
        OpError::invalid(
            "cursor",
            "not a cursor of this list: pass `nextCursor` of the previous page unchanged",
        )
    };
    let (micros, id) = c.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(Some((at, id.parse().map_err(|_| bad())?)))
}

impl Ops {
    /// Runs of the caller's Tasks, newest first.
    pub async fn list_runs(&self, call: &Call, input: ListRunsInput) -> Result<RunList, OpError> {
        call.who.require(api_scope::RUNS_READ)?;
        let limit = limit(input.limit)?;
        let namespace = match (&input.namespace, call.who.is_admin()) {
            (None, true) => None,
            (asked, _) => Some(self.namespace(call, asked.as_deref())?),
        };
        let agent = match call.who.agent_ref() {
            Some((_, name)) if !call.who.has(api_scope::TASKS_ALL) => Some(name.to_string()),
            _ => None,
        };
        if let Some(t) = &input.task
            && !super::is_dns_label(t)
        {
            return Err(OpError::invalid(
                "task",
                format!("`{t}` is not a Task name"),
            ));
        }
        let query = RunQuery {
            namespace,
            agent,
            task: input.task,
            status: input.status.map(|s| s.as_str().to_string()),
            since: input.since,
            before: run_cursor(input.cursor.as_deref())?,
            limit: limit + 1,
        };
        let mut rows = self.store.run_page(&query).await?;
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > page;
        rows.truncate(page);
        let next_cursor = more
            .then(|| {
                rows.last()
                    .map(|r| format!("{}.{}", r.started_at.timestamp_micros(), r.id))
            })
            .flatten();
        Ok(RunList {
            items: rows.into_iter().map(run_info).collect(),
            next_cursor,
        })
    }

    /// One run with its steps (inputs, outputs, errors).
    pub async fn get_run(&self, call: &Call, input: GetRunInput) -> Result<RunDetail, OpError> {
        call.who.require(api_scope::RUNS_READ)?;
        let missing = || {
            OpError::NotFound(format!(
                "no run {} that you may see; `list_runs` shows yours",
                input.id
            ))
        };
        let id: Uuid = input.id.trim().parse().map_err(|_| {
            OpError::invalid("id", "not a run id: pass `id` from `list_runs` unchanged")
        })?;
        let Some((ns, agent)) = self.store.run_owner(id).await? else {
            return Err(missing());
        };
        if !self.visible(&call.who, &ns, agent.as_deref()) {
            return Err(missing());
        }
        let (run, steps) = self.store.get_run(id).await?.ok_or_else(missing)?;
        Ok(RunDetail {
            run: run_info(run),
            steps: steps.into_iter().map(step_info).collect(),
        })
    }

    /// The next occurrences of a schedule, exactly as the scheduler will run them.
    pub async fn preview_schedule(
        &self,
        call: &Call,
        input: PreviewInput,
    ) -> Result<PreviewResult, OpError> {
        call.who.require(api_scope::TASKS_READ)?;
        let count = input.count.unwrap_or(10);
        if count == 0 || count > 100 {
            return Err(OpError::invalid("count", "between 1 and 100"));
        }
        let schedule: TaskSchedule = parse_spec(&input.schedule, "schedule")?;
        let now = self.clock.now();
        let after = input.after.unwrap_or(now);
        // Compiling and expanding cost what the rule costs: off the async threads.
        ordinaut_operator::offload::cpu(move || preview(schedule, after, count)).await
    }

    /// The tools the caller's Tasks may use: built-ins and the MCP servers' tools its scope
    /// globs allow (all, for the admin).
    pub async fn list_tools(&self, call: &Call) -> Result<ToolList, OpError> {
        call.who.require(api_scope::TOOLS_READ)?;
        let scopes: Option<(String, Vec<String>)> = match call.who.agent_ref() {
            None => None,
            Some((ns, name)) => {
                let spec = self
                    .store
                    .agent(ns, name)
                    .await?
                    .and_then(|a| ordinaut_api::tolerant::agent_spec_from_value(&a.spec).ok())
                    .map(|(s, _)| s);
                Some((name.to_string(), spec.map(|s| s.scopes).unwrap_or_default()))
            }
        };
        let allowed = |tool: &str| match &scopes {
            None => true,
            Some((name, s)) => ordinaut_tools::scope::check(Some((name, s)), tool).is_ok(),
        };
        let builtins = ordinaut_tools::builtin::registry(Default::default());
        let mut items: Vec<ToolInfo> = builtins
            .names()
            .filter_map(|n| builtins.get(n))
            .map(|t| ToolInfo {
                name: t.name().to_string(),
                description: Some(t.description().to_string()),
                input_schema: t.input_schema().cloned(),
            })
            .collect();
        for server in self.store.mcp_servers().await? {
            if let Some((ns, _)) = call.who.agent_ref()
                && ns != server.namespace
            {
                continue;
            }
            let tools: Vec<DiscoveredTool> =
                serde_json::from_value(server.tools).unwrap_or_default();
            items.extend(tools.into_iter().map(|t| ToolInfo {
                name: format!("{}.{}", server.name, t.name),
                description: t.description,
                input_schema: t.input_schema,
            }));
        }
        items.retain(|t| allowed(&t.name));
        items.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ToolList { items })
    }

    /// The audit log (admin, or an Agent with `audit:read` for its namespace).
    pub async fn list_audit(
        &self,
        call: &Call,
        input: ListAuditInput,
    ) -> Result<AuditList, OpError> {
        call.who.require(api_scope::AUDIT_READ)?;
        let limit = limit(input.limit)?;
        let namespace = match (&input.namespace, call.who.is_admin()) {
            (None, true) => None,
            (asked, _) => Some(self.namespace(call, asked.as_deref())?),
        };
        let before = match &input.cursor {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                OpError::invalid("cursor", "pass `nextCursor` of the previous page unchanged")
            })?),
        };
        let query = AuditQuery {
            namespace,
            actor: input.actor,
            action: input.action,
            before,
            limit: limit + 1,
        };
        let mut rows = self.store.audit_page(&query).await?;
        let page = usize::try_from(limit).unwrap_or(usize::MAX);
        let more = rows.len() > page;
        rows.truncate(page);
        let next_cursor = more
            .then(|| rows.last().map(|r| r.id.to_string()))
            .flatten();
        Ok(AuditList {
            items: rows
                .into_iter()
                .map(|r| AuditInfo {
                    id: r.id,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    allowed: r.allowed,
                    namespace: r.namespace,
                    subject: r.subject,
                    detail: r.detail,
                    correlation_id: r.correlation_id,
                })
                .collect(),
            next_cursor,
        })
    }

    /// Publishes an event for Tasks triggered by `on: {topic}` (the one publishing path of
    /// `core.publish` and the CLI), audited as `event.publish`.
    pub async fn publish_event(
        &self,
        call: &Call,
        input: PublishEventInput,
    ) -> Result<PublishedEventView, OpError> {
        let result = async {
            call.who.require(api_scope::EVENTS_PUBLISH)?;
            let source = call.who.actor();
            let req = PublishRequest {
                topic: &input.topic,
                data: &input.payload,
                source: &source,
                id: input.id.clone(),
            };
            self.store.publish_event(&req).await.map_err(|e| match e {
                PublishError::InvalidTopic(_) => OpError::invalid("topic", e.to_string()),
                PublishError::TooLarge { .. } | PublishError::NulInData => {
                    OpError::invalid("payload", e.to_string())
                }
                PublishError::InvalidId(_) => OpError::invalid("id", e.to_string()),
                PublishError::Store(s) => OpError::from(s),
            })
        }
        .await;
        let ns = call
            .who
            .agent_ref()
            .map_or("-".to_string(), |(ns, _)| ns.to_string());
        let outcome = result
            .as_ref()
            .map(|p| json!({"topic": p.topic, "id": p.id}));
        self.audit(call, "event.publish", (&ns, &input.topic), outcome)
            .await;
        let p = result?;
        Ok(PublishedEventView {
            id: p.id,
            topic: p.topic,
            stream: p.stream,
            published_at: p.published_at,
            correlation_id: call.correlation_id.clone(),
        })
    }
}

/// The next `count` occurrences of `schedule` after `after` (pure CPU work).
fn preview(
    schedule: TaskSchedule,
    after: chrono::DateTime<chrono::Utc>,
    count: u32,
) -> Result<PreviewResult, OpError> {
    let compiled = ordinaut_operator::validate::compile_schedule(&schedule, after)
        .map_err(|p| OpError::invalid(p.path.replacen("spec.schedule", "schedule", 1), p.message))?
        .ok_or_else(|| {
            OpError::invalid("schedule.on", "runs on events: it has no times to preview")
        })?;
    let mut spec_like = schedule.clone();
    spec_like.timezone = compiled.timezone().to_string();
    // As the scheduler runs it: nothing before `startAt`, an occurrence at `startAt` included.
    let from = ordinaut_operator::validate::first_run_bound(&schedule, after);
    let occurrences = compiled
        .iter_after(from)
        .take(count as usize)
        .filter_map(Result::ok)
        .map(|t| t.to_utc())
        .take_while(|t| schedule.end_at.is_none_or(|end| *t <= end))
        .collect();
    Ok(PreviewResult {
        schedule: compiled.describe(),
        timezone: spec_like.timezone,
        occurrences,
    })
}
