//! The REST API under `/v1`: thin handlers over [`crate::ops`]. Bodies and query strings are
//! read with field paths in their errors; every error is an RFC 9457 problem document.

mod extract;
mod state;

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::AppState;
use crate::ops::Call;
use crate::ops::types::*;
use crate::problem::OpError;
use extract::{Body, P, Q};

type Res = Result<Response, OpError>;

fn ok<T: Serialize>(status: StatusCode, value: T) -> Res {
    Ok((status, axum::Json(value)).into_response())
}

/// The `/v1` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/tasks", get(list_tasks).post(schedule_task))
        .route(
            "/v1/tasks/{namespace}/{name}",
            get(get_task).patch(update_task).delete(delete_task),
        )
        .route("/v1/tasks/{namespace}/{name}/pause", post(pause_task))
        .route("/v1/tasks/{namespace}/{name}/resume", post(resume_task))
        .route("/v1/tasks/{namespace}/{name}/snooze", post(snooze_task))
        .route("/v1/tasks/{namespace}/{name}/run-now", post(run_task_now))
        .route("/v1/tasks/{namespace}/{name}/backfill", post(backfill_task))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/schedule/preview", post(preview_schedule))
        .route("/v1/tools", get(list_tools))
        .route("/v1/audit", get(list_audit))
        .route("/v1/events", post(publish_event))
        .merge(state::routes())
}

async fn list_tasks(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Q(q): Q<ListTasksInput>,
) -> Res {
    ok(StatusCode::OK, s.ops.list_tasks(&c, q).await?)
}

async fn schedule_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Body(b): Body<ScheduleTaskInput>,
) -> Res {
    ok(StatusCode::CREATED, s.ops.schedule_task(&c, b).await?)
}

/// `?next=N` of a Task read.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NextQuery {
    /// How many upcoming runs to compute (0 to 100, default 5).
    pub next: Option<u32>,
}

async fn get_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, name)): P<(String, String)>,
    Q(q): Q<NextQuery>,
) -> Res {
    let input = GetTaskInput {
        name,
        namespace: Some(namespace),
        next: q.next,
    };
    ok(StatusCode::OK, s.ops.get_task(&c, input).await?)
}

async fn update_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, name)): P<(String, String)>,
    Body(b): Body<UpdateTaskBody>,
) -> Res {
    let input = UpdateTaskInput {
        name,
        namespace: Some(namespace),
        spec: b.spec,
    };
    ok(StatusCode::OK, s.ops.update_task(&c, input).await?)
}

async fn delete_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((ns, name)): P<(String, String)>,
) -> Res {
    ok(
        StatusCode::OK,
        s.ops.delete_task(&c, &name, Some(&ns)).await?,
    )
}

async fn pause_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((ns, name)): P<(String, String)>,
) -> Res {
    ok(
        StatusCode::OK,
        s.ops.pause_task(&c, &name, Some(&ns)).await?,
    )
}

async fn resume_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((ns, name)): P<(String, String)>,
) -> Res {
    ok(
        StatusCode::OK,
        s.ops.resume_task(&c, &name, Some(&ns)).await?,
    )
}

async fn snooze_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, name)): P<(String, String)>,
    Body(b): Body<SnoozeBody>,
) -> Res {
    let input = SnoozeTaskInput {
        name,
        namespace: Some(namespace),
        until: b.until,
        for_: b.for_,
    };
    ok(StatusCode::OK, s.ops.snooze_task(&c, input).await?)
}

async fn run_task_now(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((ns, name)): P<(String, String)>,
) -> Res {
    ok(
        StatusCode::OK,
        s.ops.run_task_now(&c, &name, Some(&ns)).await?,
    )
}

async fn backfill_task(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, name)): P<(String, String)>,
    Body(b): Body<BackfillBody>,
) -> Res {
    let input = BackfillTaskInput {
        name,
        namespace: Some(namespace),
        from: b.from,
        to: b.to,
        max: b.max,
    };
    ok(StatusCode::OK, s.ops.backfill_task(&c, input).await?)
}

async fn list_runs(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Q(q): Q<ListRunsInput>,
) -> Res {
    ok(StatusCode::OK, s.ops.list_runs(&c, q).await?)
}

async fn get_run(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P(id): P<String>,
) -> Res {
    ok(StatusCode::OK, s.ops.get_run(&c, GetRunInput { id }).await?)
}

async fn preview_schedule(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Body(b): Body<PreviewInput>,
) -> Res {
    ok(StatusCode::OK, s.ops.preview_schedule(&c, b).await?)
}

async fn list_tools(State(s): State<AppState>, Extension(c): Extension<Call>) -> Res {
    ok(StatusCode::OK, s.ops.list_tools(&c).await?)
}

async fn list_audit(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Q(q): Q<ListAuditInput>,
) -> Res {
    ok(StatusCode::OK, s.ops.list_audit(&c, q).await?)
}

async fn publish_event(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Body(b): Body<PublishEventInput>,
) -> Res {
    ok(StatusCode::ACCEPTED, s.ops.publish_event(&c, b).await?)
}
