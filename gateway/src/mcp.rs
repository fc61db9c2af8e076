//! The MCP server (rmcp, streamable HTTP at `/mcp`): one tool per gateway operation, each with
//! the JSON Schema of its input and a description an LLM can act on. The caller is the
//! bearer token's identity, put into the request by the gateway's middleware; `tools/list`
//! shows only the tools its API scopes allow. A mistake comes back as a tool error (not a
//! protocol error) naming the field and the fix, so the model can correct itself.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::GatewayConfig;
use crate::ops::state::*;
use crate::ops::types::*;
use crate::ops::{Call, Ops, parse_spec};
use crate::problem::OpError;
use ordinaut_api::agent::api_scope;

/// No arguments.
#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoInput {}

/// One MCP tool: name, the scope it needs, what it does, its input schema.
struct ToolDef {
    name: &'static str,
    scope: &'static str,
    description: &'static str,
    schema: fn() -> Value,
}

fn schema<T: JsonSchema>() -> Value {
    schemars::schema_for!(T).to_value()
}

const TOOLS: &[ToolDef] = &[
    ToolDef {
        name: "schedule_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<ScheduleTaskInput>,
        description: "Create a Task that runs a pipeline of tool calls on a schedule. `spec.schedule` takes exactly one of `every` (`15m`, `1h`), `cron` (`0 8 * * MON-FRI`), `rrule` or `at` (an RFC 3339 instant), plus `timezone` (IANA, default UTC). `spec.pipeline.steps` is a list of `{id, uses, with}` where `uses` is a tool from `list_tools` (e.g. `core.echo`). Returns the Task with its next runs; mistakes come back naming the field and the fix. Check a schedule first with `preview_schedule`.",
    },
    ToolDef {
        name: "list_tasks",
        scope: api_scope::TASKS_READ,
        schema: schema::<ListTasksInput>,
        description: "List your Tasks with their state (active, paused, snoozed), schedule and next run. Filter with `status`; page with `limit` and `cursor` (the previous page's `nextCursor`).",
    },
    ToolDef {
        name: "get_task",
        scope: api_scope::TASKS_READ,
        schema: schema::<GetTaskInput>,
        description: "Read one of your Tasks: its spec, status (Ready and why not), and the next `next` runs (default 5) computed by the scheduler itself.",
    },
    ToolDef {
        name: "update_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<UpdateTaskInput>,
        description: "Change fields of one of your Tasks' spec: `spec` is a JSON merge patch (given fields replace, `null` removes), e.g. `{\"schedule\": {\"every\": \"30m\"}}`. The result is validated like a new Task.",
    },
    ToolDef {
        name: "delete_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<TaskRef>,
        description: "Delete one of your Tasks. Pending runs are withdrawn; its run history stays readable.",
    },
    ToolDef {
        name: "pause_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<TaskRef>,
        description: "Pause one of your Tasks (spec.suspend = true): no new runs until `resume_task`.",
    },
    ToolDef {
        name: "resume_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<TaskRef>,
        description: "Resume a paused Task: it runs on schedule again.",
    },
    ToolDef {
        name: "snooze_task",
        scope: api_scope::TASKS_WRITE,
        schema: schema::<SnoozeTaskInput>,
        description: "Skip a Task's runs until an instant (`until`, RFC 3339) or for a while (`for`, e.g. `2h`); it resumes on schedule after.",
    },
    ToolDef {
        name: "run_task_now",
        scope: api_scope::RUNS_WRITE,
        schema: schema::<TaskRef>,
        description: "Run one of your Tasks once now, whatever its schedule. The run shows up in `list_runs` when it has run (seconds).",
    },
    ToolDef {
        name: "backfill_task",
        scope: api_scope::RUNS_WRITE,
        schema: schema::<BackfillTaskInput>,
        description: "Queue the runs a Task's schedule had in a past range [`from`, `to`] (RFC 3339), skipping those that already ran. `max` bounds the count (default 100).",
    },
    ToolDef {
        name: "list_runs",
        scope: api_scope::RUNS_READ,
        schema: schema::<ListRunsInput>,
        description: "List runs of your Tasks, newest first: status, trigger, times, error, output. Filter by `task`, `status` (e.g. `failed`), `since`; page with `cursor`.",
    },
    ToolDef {
        name: "get_run",
        scope: api_scope::RUNS_READ,
        schema: schema::<GetRunInput>,
        description: "Read one run with its steps: each step's input, output, error and attempts. Use the `id` from `list_runs`.",
    },
    ToolDef {
        name: "preview_schedule",
        scope: api_scope::TASKS_READ,
        schema: schema::<PreviewInput>,
        description: "Show the next occurrences of a schedule (the same `schedule` object as a Task's spec) exactly as the scheduler will run them, before creating a Task.",
    },
    ToolDef {
        name: "list_tools",
        scope: api_scope::TOOLS_READ,
        schema: schema::<NoInput>,
        description: "List the tools your Tasks' pipeline steps may `use` (built-ins such as `core.echo` and the MCP servers' tools your Agent's scopes allow), with their input schemas.",
    },
    ToolDef {
        name: "publish_event",
        scope: api_scope::EVENTS_PUBLISH,
        schema: schema::<PublishEventInput>,
        description: "Publish an event on a topic (`orders.created`): every Task whose schedule is `on: {topic}` runs once for it, with `payload` as the event's data. Give `id` to make a retry idempotent.",
    },
    ToolDef {
        name: "state_get",
        scope: api_scope::STATE_READ,
        schema: schema::<StateKeyInput>,
        description: "Read a key of your durable memory (kept across sessions and shared with your Tasks' pipelines): its `value` and `version`. Not found when it was never written, was deleted or expired. `owner` reads another owner's key (`agent:<name>`, `task:<name>`) if your scopes allow.",
    },
    ToolDef {
        name: "state_put",
        scope: api_scope::STATE_WRITE,
        schema: schema::<StatePutInput>,
        description: "Write a key of your durable memory (any JSON `value`, at most 64 KiB). Compare-and-set: `ifVersion` = the version state_get returned writes only if no one wrote since (0: only if the key is missing); a conflict names the current version. `ttl` (`30m`, `7d`) lets it expire. Returns the new version.",
    },
    ToolDef {
        name: "state_delete",
        scope: api_scope::STATE_WRITE,
        schema: schema::<StateDeleteInput>,
        description: "Delete a key of your durable memory (`ifVersion`: only if still at that version).",
    },
    ToolDef {
        name: "state_list",
        scope: api_scope::STATE_READ,
        schema: schema::<StateListInput>,
        description: "List keys of your durable memory with their values, by key; filter with `prefix` (e.g. `cursors/`), page with `limit` and `cursor` (the previous page's `nextCursor`).",
    },
];

/// The MCP handler of one session.
#[derive(Clone)]
pub struct Handler {
    ops: Arc<Ops>,
}

/// The `/mcp` service: sessions in memory, `Host` checked against `config.allowed_hosts`.
pub fn service(
    ops: Arc<Ops>,
    config: &GatewayConfig,
    shutdown: CancellationToken,
) -> StreamableHttpService<Handler, LocalSessionManager> {
    let mut cfg = StreamableHttpServerConfig::default().with_cancellation_token(shutdown);
    cfg = if config.allowed_hosts.is_empty() {
        cfg.disable_allowed_hosts()
    } else {
        cfg.with_allowed_hosts(config.allowed_hosts.clone())
    };
    StreamableHttpService::new(
        move || Ok(Handler { ops: ops.clone() }),
        Arc::new(LocalSessionManager::default()),
        cfg,
    )
}

fn call_of(ctx: &RequestContext<RoleServer>) -> Result<Call, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Call>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("no caller identity on this request", None))
}

fn arg<T: DeserializeOwned>(args: &Value) -> Result<T, OpError> {
    parse_spec(args, "")
}

fn out<T: Serialize>(v: T) -> Result<Value, OpError> {
    serde_json::to_value(v)
        .map_err(|e| OpError::Unavailable(format!("cannot encode the result: {e}")))
}

impl Handler {
    async fn dispatch(&self, call: &Call, name: &str, args: &Value) -> Result<Value, OpError> {
        let ops = &self.ops;
        match name {
            "schedule_task" => out(ops.schedule_task(call, arg(args)?).await?),
            "list_tasks" => out(ops.list_tasks(call, arg(args)?).await?),
            "get_task" => out(ops.get_task(call, arg(args)?).await?),
            "update_task" => out(ops.update_task(call, arg(args)?).await?),
            "delete_task" | "pause_task" | "resume_task" | "run_task_now" => {
                let r: TaskRef = arg(args)?;
                let ns = r.namespace.as_deref();
                out(match name {
                    "delete_task" => ops.delete_task(call, &r.name, ns).await?,
                    "pause_task" => ops.pause_task(call, &r.name, ns).await?,
                    "resume_task" => ops.resume_task(call, &r.name, ns).await?,
                    _ => ops.run_task_now(call, &r.name, ns).await?,
                })
            }
            "snooze_task" => out(ops.snooze_task(call, arg(args)?).await?),
            "backfill_task" => out(ops.backfill_task(call, arg(args)?).await?),
            "list_runs" => out(ops.list_runs(call, arg(args)?).await?),
            "get_run" => out(ops.get_run(call, arg(args)?).await?),
            "preview_schedule" => out(ops.preview_schedule(call, arg(args)?).await?),
            "list_tools" => {
                let _: NoInput = arg(args)?;
                out(ops.list_tools(call).await?)
            }
            "publish_event" => out(ops.publish_event(call, arg(args)?).await?),
            "state_get" => out(ops.state_get(call, arg(args)?).await?),
            "state_put" => out(ops.state_put(call, arg(args)?).await?),
            "state_delete" => out(ops.state_delete(call, arg(args)?).await?),
            "state_list" => out(ops.state_list(call, arg(args)?).await?),
            other => Err(OpError::invalid(
                "name",
                format!("no tool `{other}`; tools/list shows the tools you may call"),
            )),
        }
    }
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "ordinaut-gateway",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Ordinaut runs your work on time: schedule Tasks (a schedule plus a pipeline of \
                 tool calls), then watch their runs. Start with list_tools and preview_schedule, \
                 then schedule_task; get_task shows the next runs, list_runs/get_run what happened.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let call = call_of(&ctx)?;
        let tools = TOOLS
            .iter()
            .filter(|t| call.who.has(t.scope))
            .map(|t| {
                let schema = match (t.schema)() {
                    Value::Object(m) => m,
                    _ => Default::default(),
                };
                Tool::new(t.name, t.description, schema)
            })
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let call = call_of(&ctx)?;
        let args = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.dispatch(&call, &request.name, &args).await {
            Ok(Value::Null) => CallToolResult::success(vec![ContentBlock::text("done")]),
            Ok(value) => CallToolResult::structured(value),
            Err(e) => {
                tracing::info!(correlation_id = %call.correlation_id, tool = %request.name, error = %e, "tool error");
                CallToolResult::error(vec![ContentBlock::text(e.to_string())])
            }
        };
        Ok(result.into())
    }
}
