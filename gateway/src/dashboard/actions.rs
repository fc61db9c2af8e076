//! A Task's actions from its page: run now, pause, resume, snooze. Each is a form POST with
//! the session's CSRF token that calls the same operation as `POST /v1/tasks/…/{action}`, so
//! it is checked against the viewer's scopes and audited (allowed or refused) with its
//! correlation id exactly like an API call.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::DashState;
use super::html;
use super::pages::{csrf_refused, error_page};
use super::session::Viewer;
use crate::ops::types::SnoozeTaskInput;

/// The fields of an action's form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    /// Snooze: how long (`1h`, `1d`).
    #[serde(default, rename = "for")]
    for_: Option<String>,
}

/// `POST /ui/tasks/{namespace}/{name}/{action}`.
pub async fn act(
    viewer: Viewer,
    State(s): State<DashState>,
    Path((namespace, name, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if !viewer.csrf_ok(&form.csrf) {
        return csrf_refused();
    }
    let ops = &s.app.ops;
    let call = &viewer.call;
    let ns = Some(namespace.as_str());
    let result = match action.as_str() {
        "run-now" => ops.run_task_now(call, &name, ns).await,
        "pause" => ops.pause_task(call, &name, ns).await,
        "resume" => ops.resume_task(call, &name, ns).await,
        "snooze" => {
            let input = SnoozeTaskInput {
                name: name.clone(),
                namespace: Some(namespace.clone()),
                until: None,
                for_: form.for_.clone(),
            };
            ops.snooze_task(call, input).await
        }
        _ => {
            return (StatusCode::NOT_FOUND, "no such action").into_response();
        }
    };
    match result {
        Ok(done) => {
            s.sessions.flash(
                &viewer.cookie,
                format!("{} (correlation id {})", done.message, done.correlation_id),
            );
            let to = format!("/ui/tasks/{}/{}", html::url(&namespace), html::url(&name));
            Redirect::to(&to).into_response()
        }
        Err(e) => error_page(&e),
    }
}
