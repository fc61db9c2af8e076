//! `/metrics`, `/healthz` and `/readyz`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::registry::Registry;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Answers readiness: `Ok(())` or the reason the process is not ready. A reason starting
/// with [`DEGRADED`] is not a failure: `/readyz` answers 200 with `ready (degraded: …)`
/// (the pod does its job with a dependency down, e.g. a worker without Redis).
pub type ReadyCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Answers liveness (`/healthz`): `Ok(())`, or why the process is wedged and should be
/// restarted.
pub type LiveCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    ready: ReadyCheck,
    live: LiveCheck,
}

/// Serves the endpoints on `addr` until `shutdown`. Returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: ReadyCheck,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with_liveness(addr, registry, ready, Arc::new(|| Ok(())), shutdown).await
}

/// Like [`serve`], with `/healthz` answering from `live` (503 and the reason when it fails).
pub async fn serve_with_liveness(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: ReadyCheck,
    live: LiveCheck,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = router_with_liveness(registry, ready, live);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok((bound, handle))
}

/// The three endpoints as a router, to merge into a binary's own (the gateway serves them on
/// its API port).
pub fn router<S: Clone + Send + Sync + 'static>(
    registry: Arc<Registry>,
    ready: ReadyCheck,
) -> Router<S> {
    router_with_liveness(registry, ready, Arc::new(|| Ok(())))
}

/// Like [`router`], with `/healthz` answering from `live`.
pub fn router_with_liveness<S: Clone + Send + Sync + 'static>(
    registry: Arc<Registry>,
    ready: ReadyCheck,
    live: LiveCheck,
) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            registry,
            ready,
            live,
        })
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match (state.live)() {
        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {reason}\n"),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

/// The prefix of a [`ReadyCheck`] reason that leaves the process ready, but degraded.
pub const DEGRADED: &str = "degraded: ";

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match (state.ready)().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reason) if reason.starts_with(DEGRADED) => {
            (StatusCode::OK, format!("ready ({reason})\n"))
        }
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}
