//! `/v1/state`: agent memory over REST, thin handlers over [`crate::ops::state`]. A key is
//! addressed as `/v1/state/{namespace}/{owner}/{key}`, where `owner` is `agent:<name>` or
//! `task:<name>` and the key may hold `/` (`cursors/inbox`).

use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::get;

use super::extract::{Body, P, Q};
use super::{Res, ok};
use crate::AppState;
use crate::ops::Call;
use crate::ops::state::*;

/// The `/v1/state` routes.
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/state", get(list)).route(
        "/v1/state/{namespace}/{owner}/{*key}",
        get(read).put(write).delete(remove),
    )
}

async fn list(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    Q(q): Q<StateListInput>,
) -> Res {
    ok(StatusCode::OK, s.ops.state_list(&c, q).await?)
}

async fn read(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, owner, key)): P<(String, String, String)>,
) -> Res {
    let input = StateKeyInput {
        key,
        owner: Some(owner),
        namespace: Some(namespace),
    };
    ok(StatusCode::OK, s.ops.state_get(&c, input).await?)
}

async fn write(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, owner, key)): P<(String, String, String)>,
    Body(b): Body<StatePutBody>,
) -> Res {
    let input = StatePutInput {
        key,
        value: b.value,
        if_version: b.if_version,
        ttl: b.ttl,
        owner: Some(owner),
        namespace: Some(namespace),
    };
    ok(StatusCode::OK, s.ops.state_put(&c, input).await?)
}

async fn remove(
    State(s): State<AppState>,
    Extension(c): Extension<Call>,
    P((namespace, owner, key)): P<(String, String, String)>,
    Q(q): Q<IfVersionQuery>,
) -> Res {
    let input = StateDeleteInput {
        key,
        if_version: q.if_version,
        owner: Some(owner),
        namespace: Some(namespace),
    };
    ok(StatusCode::OK, s.ops.state_delete(&c, input).await?)
}
