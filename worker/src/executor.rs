//! Runs one pipeline: conditions, templates, schema checks, tool calls with timeouts and
//! step retries, and the records of every step. No database access: the runner records the
//! outcome this returns.

use crate::redact::redact;
use chrono::{DateTime, Utc};
use ordinaut_api::RetryPolicy;
use ordinaut_pipeline::{
    CompiledPipeline, CompiledStep, Context, SchemaCache, SchemaError, resolve_retry,
};
use ordinaut_store::{RunStatus, StepRecord, StepStatus};
use ordinaut_tools::{CallContext, ToolError, ToolRegistry};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Everything the executor needs about one run.
pub struct RunInput<'a> {
    pub pipeline: &'a CompiledPipeline,
    pub context: Context,
    /// The Task's retry policy, the default for steps without their own.
    pub task_retry: Option<&'a RetryPolicy>,
    /// Stable across attempts of the occurrence; step ids are appended for tools.
    pub idempotency_key: String,
    pub run_attempt: u32,
    pub run_id: uuid::Uuid,
    /// The Task's namespace: `uses: <server>.<tool>` names an McpServer there.
    pub namespace: &'a str,
    /// The Task's Agent and its scopes; `None`: built-in tools only.
    pub agent: Option<(&'a str, &'a [String])>,
}

/// How a run ended, before it is recorded.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub status: RunStatus,
    pub output: Option<Value>,
    /// For failures: the step, attempt and cause.
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
    /// Tool calls refused by the Agent's scopes: (tool, reason), for the audit log.
    pub denied: Vec<(String, String)>,
}

/// Runs pipelines through a tool registry.
pub struct Executor {
    tools: ToolRegistry,
    schemas: Arc<SchemaCache>,
    default_step_timeout: Duration,
    /// Where `${secrets.…}` values come from (the Task's namespace).
    secrets: Arc<dyn ordinaut_tools::secrets::SecretSource>,
}

impl Executor {
    pub fn new(tools: ToolRegistry, default_step_timeout: Duration) -> Self {
        Self {
            tools,
            schemas: Arc::new(SchemaCache::new()),
            default_step_timeout,
            secrets: Arc::new(ordinaut_tools::secrets::NoSecrets),
        }
    }

    /// Reads `${secrets.…}` from `source` (the worker's `--secrets-dir`).
    pub fn with_secrets(mut self, source: Arc<dyn ordinaut_tools::secrets::SecretSource>) -> Self {
        self.secrets = source;
        self
    }

    /// Whether `uses` resolves to a tool for a Task in `namespace`.
    pub fn has_tool(&self, namespace: &str, uses: &str) -> bool {
        self.tools.get_in(namespace, uses).is_some()
    }

    /// Runs every step in order. `cancel` stops the run (Replace, run timeout, shutdown):
    /// the step in flight is abandoned and the run ends `Cancelled`.
    pub async fn run(&self, mut input: RunInput<'_>, cancel: &CancellationToken) -> RunResult {
        let secrets = match crate::secrets::load(
            input.pipeline,
            input.namespace,
            self.secrets.as_ref(),
        )
        .await
        {
            Ok(secrets) => secrets,
            Err(e) => return failed(Vec::new(), e),
        };
        let mut shared = RunShared {
            masker: crate::secrets::Masker::new(&secrets),
            denied: Vec::new(),
        };
        input.context.set_secrets(secrets);
        let mut result = self.run_steps(&mut input, cancel, &mut shared).await;
        result.denied = std::mem::take(&mut shared.denied);
        shared.masker.result(&mut result);
        result
    }

    async fn run_steps(
        &self,
        input: &mut RunInput<'_>,
        cancel: &CancellationToken,
        shared: &mut RunShared,
    ) -> RunResult {
        let mut steps = Vec::with_capacity(input.pipeline.steps.len());
        let mut last_output: Option<Value> = None;
        let pipeline = input.pipeline;
        for step in &pipeline.steps {
            if cancel.is_cancelled() {
                return cancelled(steps);
            }
            match self.run_step(step, input, cancel, shared).await {
                StepEnd::Ran(record, output) => {
                    steps.push(record);
                    if output.is_some() {
                        last_output = output;
                    }
                }
                StepEnd::Failed(record, msg) => {
                    steps.push(record);
                    if step.continue_on_error {
                        step.record_skipped(&mut input.context);
                        continue;
                    }
                    return failed(steps, msg);
                }
                StepEnd::Cancelled(record) => {
                    steps.push(record);
                    return cancelled(steps);
                }
            }
        }
        let output = match pipeline.render_output(&input.context) {
            Ok(Some(v)) => Some(v),
            Ok(None) => last_output,
            Err(e) => return failed(steps, e.to_string()),
        };
        RunResult {
            status: RunStatus::Succeeded,
            output,
            error: None,
            steps,
            denied: Vec::new(),
        }
    }

    /// One step: its condition, its input, the agent's scopes, then the tool with retries.
    async fn run_step(
        &self,
        step: &CompiledStep,
        input: &mut RunInput<'_>,
        cancel: &CancellationToken,
        shared: &mut RunShared,
    ) -> StepEnd {
        let started = Utc::now();
        let record =
            |status, attempts, step_input: Option<&Value>, output, error: Option<String>| {
                StepRecord {
                    step_id: step.id.clone(),
                    uses: step.tool.to_string(),
                    status,
                    attempts,
                    input: step_input.map(redact),
                    output,
                    error,
                    started_at: started,
                    finished_at: Utc::now(),
                }
            };
        let fail = |attempts, step_input: Option<&Value>, msg: String| {
            let r = record(
                StepStatus::Failed,
                attempts,
                step_input,
                None,
                Some(msg.clone()),
            );
            StepEnd::Failed(r, msg)
        };
        match step.should_run(&input.context) {
            Ok(true) => {}
            Ok(false) => {
                step.record_skipped(&mut input.context);
                return StepEnd::Ran(record(StepStatus::Skipped, 0, None, None, None), None);
            }
            Err(e) => return fail(0, None, e.to_string()),
        }
        let rendered = match step.render_input(&input.context) {
            Ok(v) => v,
            Err(e) => return fail(0, None, e.to_string()),
        };
        if let Err(d) = ordinaut_tools::scope::check(input.agent, &step.tool.to_string()) {
            shared.denied.push((d.tool.clone(), d.reason()));
            return fail(
                0,
                Some(&rendered),
                format!("step `{}`: {}", step.id, d.reason()),
            );
        }
        let (attempts, result) = self
            .call_step(step, &rendered, input, cancel, &shared.masker)
            .await;
        match result {
            Ok(output) => {
                step.record_output(&mut input.context, output.clone());
                let r = record(
                    StepStatus::Succeeded,
                    attempts,
                    Some(&rendered),
                    Some(output.clone()),
                    None,
                );
                StepEnd::Ran(r, Some(output))
            }
            Err(StepFailure::Cancelled) => StepEnd::Cancelled(record(
                StepStatus::Failed,
                attempts,
                Some(&rendered),
                None,
                Some("cancelled".into()),
            )),
            Err(StepFailure::Error(msg)) => {
                let msg = format!("step `{}` (attempt {attempts}): {msg}", step.id);
                fail(attempts, Some(&rendered), msg)
            }
        }
    }

    /// One step with its retries. Returns the number of tries and the final result. A tool
    /// that keeps its input beyond the run (events, agent memory) gets it with the run's
    /// secret values masked, as the run's records have them.
    async fn call_step(
        &self,
        step: &CompiledStep,
        rendered: &Value,
        input: &RunInput<'_>,
        cancel: &CancellationToken,
        masker: &crate::secrets::Masker,
    ) -> (i32, Result<Value, StepFailure>) {
        let uses = step.tool.to_string();
        let Some(tool) = self.tools.get_in(input.namespace, &uses) else {
            return (
                0,
                Err(StepFailure::Error(format!(
                    "unknown tool `{uses}` (not a built-in and no such MCP server tool)"
                ))),
            );
        };
        let tool_input = masked_for(tool.as_ref(), rendered, masker);
        let rendered: &Value = &tool_input;
        if let Some(schema) = tool.input_schema()
            && let Err(e) = self.schemas.check(schema, rendered)
        {
            return (0, Err(StepFailure::Error(schema_message("input", &e))));
        }
        let policy = match resolve_retry(input.task_retry, step.retry.as_ref()) {
            Ok(p) => p,
            Err(e) => return (0, Err(StepFailure::Error(format!("retry: {e}")))),
        };
        let timeout = step.timeout.unwrap_or(self.default_step_timeout);
        let mut try_no: u32 = 1;
        loop {
            let ctx = CallContext {
                run_id: input.run_id,
                run_attempt: input.run_attempt,
                step_id: step.id.clone(),
                step_attempt: try_no,
                idempotency_key: format!("{}:{}", input.idempotency_key, step.id),
                // Only an explicit step timeout: otherwise the tool applies its own (an
                // McpServer's `timeout`); the worker's default still bounds the call below.
                timeout: step.timeout,
                cancel: cancel.child_token(),
                namespace: input.namespace.to_string(),
                agent: input.agent.map(|(name, _)| name.to_string()),
                task: input.context.task().name.clone(),
            };
            let call = tokio::time::timeout(timeout, tool.call(rendered.clone(), &ctx));
            let outcome = tokio::select! {
                r = call => match r {
                    Ok(r) => r,
                    Err(_) => {
                        ctx.cancel.cancel();
                        Err(ToolError::Timeout(timeout))
                    }
                },
                _ = cancel.cancelled() => return (try_no as i32, Err(StepFailure::Cancelled)),
            };
            let err = match outcome {
                Ok(output) => {
                    if let Some(schema) = tool.output_schema()
                        && let Err(e) = self.schemas.check(schema, &output)
                    {
                        return (
                            try_no as i32,
                            Err(StepFailure::Error(schema_message("output", &e))),
                        );
                    }
                    return (try_no as i32, Ok(output));
                }
                Err(ToolError::Cancelled) if cancel.is_cancelled() => {
                    return (try_no as i32, Err(StepFailure::Cancelled));
                }
                Err(e) => e,
            };
            if !err.is_retryable() || !policy.should_retry(try_no) {
                return (try_no as i32, Err(StepFailure::Error(err.to_string())));
            }
            let delay = policy.delay(try_no, fastrand::f64());
            tracing::debug!(step = %step.id, attempt = try_no, ?delay, error = %err, "step failed, retrying");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return (try_no as i32, Err(StepFailure::Cancelled)),
            }
            try_no += 1;
        }
    }
}

/// The input `tool` is called with: `rendered`, with the run's secret values masked when the
/// tool keeps its input beyond the run.
fn masked_for<'v>(
    tool: &dyn ordinaut_tools::Tool,
    rendered: &'v Value,
    masker: &crate::secrets::Masker,
) -> Cow<'v, Value> {
    if tool.keeps_input() && !masker.is_empty() {
        Cow::Owned(masker.value(rendered))
    } else {
        Cow::Borrowed(rendered)
    }
}

/// What the steps of one run share: the masker of its secret values and the tool calls the
/// Agent's scopes refused (tool, reason), for the audit log.
struct RunShared {
    masker: crate::secrets::Masker,
    denied: Vec<(String, String)>,
}

enum StepFailure {
    Cancelled,
    Error(String),
}

fn schema_message(which: &str, e: &SchemaError) -> String {
    match e {
        SchemaError::Violated(v) => {
            format!("{which} does not match the tool's {which} schema: {v}")
        }
        other => format!("the tool's {which} schema cannot be used: {other}"),
    }
}

fn failed(steps: Vec<StepRecord>, error: String) -> RunResult {
    RunResult {
        status: RunStatus::Failed,
        output: None,
        error: Some(error),
        steps,
        denied: Vec::new(),
    }
}

fn cancelled(steps: Vec<StepRecord>) -> RunResult {
    RunResult {
        status: RunStatus::Cancelled,
        output: None,
        error: Some("run cancelled".into()),
        steps,
        denied: Vec::new(),
    }
}

/// The instant a run's `${now}` refers to: its scheduled time for scheduled runs, so that a
/// late or retried run renders the same values as an on-time one.
pub fn reference_time(scheduled_for: DateTime<Utc>) -> DateTime<Utc> {
    scheduled_for
}

/// How one step ended.
enum StepEnd {
    /// It ran (or its condition skipped it), with its output; the pipeline goes on.
    Ran(StepRecord, Option<Value>),
    /// It failed with this message; the pipeline stops unless the step continues on error.
    Failed(StepRecord, String),
    /// The run was cancelled during the step.
    Cancelled(StepRecord),
}
