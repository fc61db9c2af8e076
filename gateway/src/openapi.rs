//! The OpenAPI 3.1 document at `/openapi.json`, generated from the same types the handlers
//! read and write (their `schemars` JSON Schemas, 2020-12 as OpenAPI 3.1 uses), with one
//! table row per operation.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

use crate::ops::types::*;
use crate::problem::{PROBLEM_JSON, Problem};

/// A query or path parameter.
struct Param {
    name: &'static str,
    location: &'static str,
    schema: Value,
    description: &'static str,
}

/// A namespace or Task name: a DNS-1123 label.
const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

fn path_param(name: &'static str, description: &'static str) -> Param {
    let schema = match name {
        "namespace" | "name" => json!({"type": "string", "pattern": NAME_PATTERN}),
        "id" => json!({"type": "string", "format": "uuid"}),
        _ => json!({"type": "string", "minLength": 1}),
    };
    Param {
        name,
        location: "path",
        schema,
        description,
    }
}

fn query(name: &'static str, mut schema: Value, description: &'static str) -> Param {
    // An empty parameter is refused (422): strings have at least one character.
    if schema["type"] == "string" && schema.get("enum").is_none() {
        schema["minLength"] = json!(1);
    }
    Param {
        name,
        location: "query",
        schema,
        description,
    }
}

/// One operation.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    params: Vec<Param>,
    body: Option<Value>,
    status: &'static str,
    response: Option<Value>,
}

struct Builder {
    generator: SchemaGenerator,
}

impl Builder {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }
}

fn task_params() -> Vec<Param> {
    vec![
        path_param("namespace", "The Task's namespace (an agent's own)."),
        path_param("name", "The Task's name."),
    ]
}

fn limit_cursor() -> [Param; 2] {
    [
        query(
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "At most this many (default 50).",
        ),
        query(
            "cursor",
            json!({"type": "string"}),
            "`nextCursor` of the previous page.",
        ),
    ]
}

fn operations(b: &mut Builder) -> Vec<Op> {
    let task_view = b.schema::<TaskView>();
    let action = b.schema::<ActionResult>();
    let mut list_tasks_params = vec![
        query(
            "status",
            json!({"type": "string", "enum": ["active", "paused", "snoozed"]}),
            "Only Tasks in this state.",
        ),
        query(
            "namespace",
            json!({"type": "string", "pattern": NAME_PATTERN}),
            "Only this namespace.",
        ),
    ];
    list_tasks_params.extend(limit_cursor());
    let mut list_runs_params = vec![
        query(
            "task",
            json!({"type": "string", "pattern": NAME_PATTERN}),
            "Only runs of this Task (name).",
        ),
        query(
            "status",
            json!({"type": "string", "enum": ["succeeded", "failed", "retrying", "cancelled", "skipped"]}),
            "Only runs with this status.",
        ),
        query(
            "since",
            json!({"type": "string", "format": "date-time"}),
            "Only runs started at or after this RFC 3339 instant.",
        ),
        query(
            "namespace",
            json!({"type": "string", "pattern": NAME_PATTERN}),
            "Only this namespace.",
        ),
    ];
    list_runs_params.extend(limit_cursor());
    let mut audit_params = vec![
        query(
            "namespace",
            json!({"type": "string", "pattern": NAME_PATTERN}),
            "Only this namespace.",
        ),
        query("actor", json!({"type": "string"}), "Only this actor."),
        query("action", json!({"type": "string"}), "Only this action."),
    ];
    audit_params.extend(limit_cursor());
    let action_op = |path, id, summary, body: Option<Value>| Op {
        method: "post",
        path,
        id,
        summary,
        params: task_params(),
        body,
        status: "200",
        response: Some(action.clone()),
    };
    let mut ops = vec![
        Op {
            method: "get",
            path: "/v1/tasks",
            id: "listTasks",
            summary: "List your Tasks (filter by state, page with cursor).",
            params: list_tasks_params,
            body: None,
            status: "200",
            response: Some(b.schema::<TaskList>()),
        },
        Op {
            method: "post",
            path: "/v1/tasks",
            id: "scheduleTask",
            summary: "Create a Task: a schedule plus the pipeline it runs.",
            params: vec![],
            body: Some(b.schema::<ScheduleTaskInput>()),
            status: "201",
            response: Some(task_view.clone()),
        },
        Op {
            method: "get",
            path: "/v1/tasks/{namespace}/{name}",
            id: "getTask",
            summary: "A Task with its status and next runs.",
            params: {
                let mut p = task_params();
                p.push(query(
                    "next",
                    json!({"type": "integer", "minimum": 0, "maximum": 100}),
                    "How many upcoming runs (default 5).",
                ));
                p
            },
            body: None,
            status: "200",
            response: Some(task_view.clone()),
        },
        Op {
            method: "patch",
            path: "/v1/tasks/{namespace}/{name}",
            id: "updateTask",
            summary: "Change fields of a Task's spec (JSON merge patch).",
            params: task_params(),
            body: Some(b.schema::<UpdateTaskBody>()),
            status: "200",
            response: Some(task_view),
        },
        Op {
            method: "delete",
            path: "/v1/tasks/{namespace}/{name}",
            id: "deleteTask",
            summary: "Delete a Task (pending runs withdrawn, history kept).",
            params: task_params(),
            body: None,
            status: "200",
            response: Some(action.clone()),
        },
        Op {
            method: "get",
            path: "/v1/runs",
            id: "listRuns",
            summary: "Runs of your Tasks, newest first.",
            params: list_runs_params,
            body: None,
            status: "200",
            response: Some(b.schema::<RunList>()),
        },
        Op {
            method: "get",
            path: "/v1/runs/{id}",
            id: "getRun",
            summary: "One run with its steps (inputs, outputs, errors).",
            params: vec![path_param("id", "The run's id.")],
            body: None,
            status: "200",
            response: Some(b.schema::<RunDetail>()),
        },
        Op {
            method: "post",
            path: "/v1/schedule/preview",
            id: "previewSchedule",
            summary: "The next occurrences of a schedule, as the scheduler runs them.",
            params: vec![],
            body: Some(b.schema::<PreviewInput>()),
            status: "200",
            response: Some(b.schema::<PreviewResult>()),
        },
        Op {
            method: "get",
            path: "/v1/tools",
            id: "listTools",
            summary: "The tools your Tasks may use.",
            params: vec![],
            body: None,
            status: "200",
            response: Some(b.schema::<ToolList>()),
        },
        Op {
            method: "get",
            path: "/v1/audit",
            id: "listAudit",
            summary: "The audit log (admin, or `audit:read`).",
            params: audit_params,
            body: None,
            status: "200",
            response: Some(b.schema::<AuditList>()),
        },
        Op {
            method: "post",
            path: "/v1/events",
            id: "publishEvent",
            summary: "Publish an event for Tasks triggered by `on: {topic}`.",
            params: vec![],
            body: Some(b.schema::<PublishEventInput>()),
            status: "202",
            response: Some(b.schema::<PublishedEventView>()),
        },
    ];
    ops.extend(state_operations(b));
    ops.push(action_op(
        "/v1/tasks/{namespace}/{name}/pause",
        "pauseTask",
        "Suspend a Task (spec.suspend).",
        None,
    ));
    ops.push(action_op(
        "/v1/tasks/{namespace}/{name}/resume",
        "resumeTask",
        "Resume a paused Task.",
        None,
    ));
    ops.push(action_op(
        "/v1/tasks/{namespace}/{name}/snooze",
        "snoozeTask",
        "Skip a Task's runs until an instant (spec.snoozeUntil).",
        Some(b.schema::<SnoozeBody>()),
    ));
    ops.push(action_op(
        "/v1/tasks/{namespace}/{name}/run-now",
        "runTaskNow",
        "Run a Task now (the ordinaut.dev/run-now annotation).",
        None,
    ));
    ops.push(action_op(
        "/v1/tasks/{namespace}/{name}/backfill",
        "backfillTask",
        "Queue the runs a Task's schedule had in a past range.",
        Some(b.schema::<BackfillBody>()),
    ));
    ops
}

/// `/v1/state`: agent memory.
fn state_operations(b: &mut Builder) -> Vec<Op> {
    use crate::ops::state::{StateDeleted, StateItem, StateList, StatePutBody};
    let item = b.schema::<StateItem>();
    let key_params = || {
        vec![
            path_param("namespace", "The key's namespace (an agent's own)."),
            path_param("owner", "Whose key: `agent:<name>` or `task:<name>`."),
            path_param("key", "The key; it may contain `/` (e.g. `cursors/inbox`)."),
        ]
    };
    let mut list_params = vec![
        query(
            "prefix",
            json!({"type": "string"}),
            "Only keys starting with this.",
        ),
        query(
            "owner",
            json!({"type": "string"}),
            "Whose keys (`agent:<name>`, `task:<name>`); agents default to their own.",
        ),
        query(
            "namespace",
            json!({"type": "string"}),
            "Only this namespace.",
        ),
    ];
    list_params.extend(limit_cursor());
    let mut delete_params = key_params();
    delete_params.push(query(
        "ifVersion",
        json!({"type": "integer", "minimum": 0}),
        "Delete only if the key is at this version.",
    ));
    let op = |method, id, summary, params, body, response| Op {
        method,
        path: "/v1/state/{namespace}/{owner}/{key}",
        id,
        summary,
        params,
        body,
        status: "200",
        response: Some(response),
    };
    vec![
        Op {
            method: "get",
            path: "/v1/state",
            id: "listState",
            summary: "Agent memory: keys with their values (prefix, paginated).",
            params: list_params,
            body: None,
            status: "200",
            response: Some(b.schema::<StateList>()),
        },
        op(
            "get",
            "getState",
            "A key's value and version.",
            key_params(),
            None,
            item.clone(),
        ),
        op(
            "put",
            "putState",
            "Write a key (compare-and-set with `ifVersion`; 0: only if missing; 409 names the current version).",
            key_params(),
            Some(b.schema::<StatePutBody>()),
            item,
        ),
        op(
            "delete",
            "deleteState",
            "Delete a key.",
            delete_params,
            None,
            b.schema::<StateDeleted>(),
        ),
    ]
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    })
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    let mut ok = json!({"description": "Success"});
    if let Some(schema) = &op.response {
        ok["content"] = json!({"application/json": {"schema": schema}});
    }
    responses.insert(op.status.into(), ok);
    for (code, what) in [
        ("401", "No or an unknown bearer token"),
        (
            "403",
            "The caller lacks a scope, or acts outside its namespace",
        ),
        ("404", "Nothing of that name the caller may see"),
        ("409", "Exists already, or not ready yet"),
        ("413", "The request body is over 1 MiB"),
        ("422", "Invalid request: each field named"),
        ("429", "Rate limited: retry after `Retry-After` seconds"),
        ("503", "The database or the Kubernetes API is unavailable"),
    ] {
        responses.insert(code.into(), problem_response(what));
    }
    let mut o = json!({
        "operationId": op.id,
        "summary": op.summary,
        "security": [{"bearer": []}],
        "parameters": op.params.iter().map(|p| json!({
            "name": p.name, "in": p.location, "required": p.location == "path",
            "schema": p.schema, "description": p.description,
        })).collect::<Vec<_>>(),
        "responses": responses,
    });
    if let Some(body) = &op.body {
        o["requestBody"] =
            json!({"required": true, "content": {"application/json": {"schema": body}}});
    }
    o
}

/// The document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
        s.meta_schema = None;
    });
    let mut b = Builder {
        generator: settings.into_generator(),
    };
    let ops = operations(&mut b);
    b.schema::<Problem>();
    let mut paths = Map::new();
    for op in &ops {
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Ordinaut gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Agents schedule and watch their own work: Tasks, runs, schedule previews, tools, audit. Authenticate with `Authorization: Bearer <token>` (an Agent's token Secret, or the admin token). Errors are RFC 9457 problem documents naming the field.",
        },
        "paths": paths,
        "components": {
            "schemas": b.generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let body = DOC.get_or_init(|| document().to_string()).clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_resolves_and_every_operation_is_documented() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (i, _) in text.match_indices("#/components/schemas/") {
            let rest = &text[i + "#/components/schemas/".len()..];
            let name: String = rest.chars().take_while(|c| *c != '"').collect();
            assert!(schemas.contains_key(&name), "dangling $ref {name}");
        }
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/tasks"]["post"]["requestBody"].is_object());
        assert_eq!(doc["paths"].as_object().unwrap().len(), 15);
    }
}
