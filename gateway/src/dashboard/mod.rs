//! The web dashboard at `/ui`: what runs when, what failed and why, for a person signed in
//! with a token (an Agent's or the admin's).
//!
//! # Design
//! Pages are rendered on the server by hand-written Rust functions (`format!` into a
//! `String`, every value escaped by [`html::Esc`]) with one small script
//! (`gateway/assets/dashboard.js`: keyboard navigation, the live feed, the viewer's
//! timezone) and one stylesheet, both embedded with `include_str!` and served from `/ui/assets`.
//! Why: the gateway already has everything a page shows in Rust types, a template crate would
//! add a dependency and a second language for a handful of views, and a JavaScript bundle
//! would need Node.js in the build. So `cargo build` alone builds it, it works offline (no
//! CDN), the pages work without JavaScript except for live updates, and the overview of
//! 1,000 Tasks renders in milliseconds (`cargo bench -p ordinaut-gateway --bench dashboard`).
//!
//! # Security
//! Every page reads and acts through [`crate::ops`] with the viewer's [`crate::ops::Call`]:
//! the same scopes, ownership rules, audit entries and rate limit as `/v1` and `/mcp`
//! ([`session`] turns the session cookie back into that call). Nothing but the login page and
//! the assets is served without a session. Actions are POSTed forms carrying the session's
//! CSRF token, the cookie is `SameSite=Strict`, and a POST whose `Origin` is another site is
//! refused. Pages send a strict Content-Security-Policy (no inline script or style).

mod actions;
pub mod html;
mod live;
mod occurrences;
mod overview;
mod pages;
mod run_page;
pub mod session;
mod task_page;
mod timeline;
pub mod words;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono_tz::Tz;
use serde::Deserialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use html::{Esc, Frame, Nav};
use session::Sessions;

/// Live feeds open at once (each polls the store once a second).
pub const MAX_LIVE_FEEDS: usize = 64;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct DashState {
    pub app: AppState,
    pub sessions: Arc<Sessions>,
    live: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// The dashboard's routes (`/` redirects to `/ui`).
pub fn router(app: AppState, shutdown: CancellationToken) -> Router {
    let state = DashState {
        app,
        sessions: Arc::new(Sessions::default()),
        live: Arc::new(Semaphore::new(MAX_LIVE_FEEDS)),
        shutdown,
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui") }))
        .route("/ui", get(overview::page))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/timeline", get(timeline::page))
        .route("/ui/tasks/{namespace}/{name}", get(task_page::page))
        .route("/ui/tasks/{namespace}/{name}/{action}", post(actions::act))
        .route("/ui/runs/{id}", get(run_page::page))
        .route("/ui/live", get(live::feed))
        .route("/ui/assets/{file}", get(asset))
        .layer(axum::middleware::from_fn(guard))
        .with_state(state)
}

/// Security headers on every response; POSTs from another site's page are refused.
async fn guard(req: Request, next: Next) -> Response {
    if req.method() == Method::POST && !same_origin(req.headers()) {
        return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(h, "x-content-type-options", "nosniff");
    // `no-referrer` would make browsers send `Origin: null` with forms, failing the check above.
    set(h, "referrer-policy", "same-origin");
    set(h, "x-frame-options", "DENY");
    res
}

/// A request without `Origin` (old browsers, curl) or with this server's own.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

const CSS: &str = include_str!("../../assets/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard.js");

async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

fn login_form(next: &str, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", Esc(e)))
        .unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h1>Sign in</h1>{error}\
         <form method=\"post\" action=\"/ui/login\">\
         <label for=\"token\">Token</label>\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" \
         required autofocus>\
         <input type=\"hidden\" name=\"tz\" value=\"UTC\" data-viewer-tz>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>\
         <p class=\"hint\">Use an Agent's token (the Secret its <code>spec.tokenSecretRef</code> \
         names) or the admin token; <code>ordinaut dev</code> prints it. You see and may do \
         what the token's API scopes allow.</p></section>",
        Esc(next)
    );
    let frame = Frame {
        title: "Sign in",
        nav: Nav::None,
        actor: None,
        csrf: None,
        flash: None,
    };
    html::page(&frame, &body)
}

async fn login_page(Query(q): Query<LoginQuery>) -> Html<String> {
    Html(login_form(session::safe_next(q.next.as_deref()), None))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    #[serde(default)]
    tz: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login(
    State(s): State<DashState>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = session::safe_next(f.next.as_deref()).to_string();
    let token = f.token.trim();
    match s
        .app
        .tokens
        .authenticate(Some(&format!("Bearer {token}")))
        .await
    {
        Ok(who) => {
            let tz: Tz = f.tz.parse().unwrap_or(Tz::UTC);
            let id = s.sessions.create(token, tz);
            tracing::info!(actor = %who.actor(), "dashboard sign-in");
            let mut res = Redirect::to(&next).into_response();
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(&id, &headers)) {
                res.headers_mut().insert(header::SET_COOKIE, v);
            }
            res
        }
        Err(e) => {
            tracing::info!("dashboard sign-in refused: {e}");
            let message = "That token is not valid: use the token in your Agent's token Secret \
                           or the admin token.";
            (
                StatusCode::UNAUTHORIZED,
                Html(login_form(&next, Some(message))),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    viewer: session::Viewer,
    State(s): State<DashState>,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !viewer.csrf_ok(&f.csrf) {
        return pages::csrf_refused();
    }
    s.sessions.remove(&viewer.cookie);
    let mut res = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}
