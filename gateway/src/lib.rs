//! Ordinaut's gateway: the agents' door. An MCP server (streamable HTTP at `/mcp`) and a REST
//! API under `/v1` (OpenAPI 3.1 at `/openapi.json`) over one service layer ([`ops`]), behind
//! bearer tokens ([`auth`]), API scopes, a rate limit per caller ([`ratelimit`]) and an audit
//! entry for every mutation. Definitions are written where a person writes them
//! ([`writer`]: the Kubernetes API, or the folder of `ordinaut dev`); runs and status are read
//! from PostgreSQL. The binary `ordinaut-gateway` and `ordinaut dev` serve the same
//! [`router`].
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod auth;
pub mod dashboard;
pub mod mcp;
pub mod openapi;
pub mod ops;
pub mod problem;
pub mod ratelimit;
pub mod rest;
pub mod writer;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use auth::Tokens;
use ops::{Call, Ops};
use problem::OpError;
use ratelimit::RateLimiter;

/// The header carrying a request's correlation id (given by the caller, else generated).
pub const CORRELATION_HEADER: &str = "x-correlation-id";

/// How the gateway serves.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// `Host` header values `/mcp` accepts (DNS-rebinding protection); empty: any.
    pub allowed_hosts: Vec<String>,
    /// Requests per second per caller (0: no limit).
    pub rate_per_second: f64,
    /// Requests a caller may make at once before the rate applies.
    pub rate_burst: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            rate_per_second: 20.0,
            rate_burst: 40,
        }
    }
}

/// Requests by outcome, for `/metrics`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

/// The gateway's metrics.
#[derive(Clone, Default)]
pub struct Metrics {
    requests: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    /// Registers `ordinaut_gateway_requests_total{outcome}` (`ok`, `unauthorized`,
    /// `rate-limited`, `forbidden`, …).
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "ordinaut_gateway_requests",
            "Gateway requests by outcome",
            m.requests.clone(),
        );
        m
    }

    fn count(&self, outcome: &str) {
        self.requests
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ops: Arc<Ops>,
    pub tokens: Arc<Tokens>,
    pub limiter: Arc<RateLimiter>,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(ops: Ops, tokens: Arc<Tokens>, config: &GatewayConfig, metrics: Metrics) -> Self {
        Self {
            ops: Arc::new(ops),
            tokens,
            limiter: Arc::new(RateLimiter::new(config.rate_per_second, config.rate_burst)),
            metrics,
        }
    }
}

/// The gateway's routes: `/v1/…`, `/mcp` (both behind the bearer token), `/openapi.json`
/// and the web dashboard at `/ui` ([`dashboard`], behind a session cookie).
/// Merge it with the telemetry router for `/metrics`, `/healthz` and `/readyz`.
pub fn router(state: AppState, config: &GatewayConfig, shutdown: CancellationToken) -> Router {
    let dashboard = dashboard::router(state.clone(), shutdown.clone());
    let protected = rest::routes()
        .nest_service("/mcp", mcp::service(state.ops.clone(), config, shutdown))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    Router::new()
        .route("/openapi.json", axum::routing::get(openapi::serve))
        .merge(protected)
        .with_state(state)
        .merge(dashboard)
}

fn correlation_id(req: &Request) -> String {
    req.headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Bearer token → identity (401), rate limit (429), then the handler with the [`Call`] in
/// the request's extensions; every response carries the correlation id.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = correlation_id(&req);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut response = match state.tokens.authenticate(authorization).await {
        Err(e) => {
            tracing::info!(correlation_id = %id, path = %req.uri().path(), "refused: {e}");
            state.metrics.count(e.kind());
            e.into_response()
        }
        Ok(who) => match state.limiter.check(&who.actor()) {
            Err(secs) => {
                tracing::info!(correlation_id = %id, actor = %who.actor(), "rate limited");
                state.metrics.count("rate-limited");
                OpError::RateLimited(secs).into_response()
            }
            Ok(()) => {
                let span =
                    tracing::info_span!("request", correlation_id = %id, actor = %who.actor());
                req.extensions_mut().insert(Call {
                    who,
                    correlation_id: id.clone(),
                });
                let response = next.run(req).instrument(span).await;
                let status = response.status();
                state.metrics.count(if status.is_success() {
                    "ok"
                } else if status.is_client_error() {
                    "client-error"
                } else {
                    "server-error"
                });
                response
            }
        },
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(CORRELATION_HEADER, v);
    }
    response
}
