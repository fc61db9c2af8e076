//! `/metrics`, `/healthz` and `/readyz` of the operator: the shared server of every binary
//! (`ordinaut-telemetry`), ready once the controllers run and PostgreSQL answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ordinaut_store::Store;
use ordinaut_telemetry::ReadyCheck;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

/// Serves until `shutdown`; returns the bound address (port 0 picks one). `started` is set
/// once the controllers are running.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    store: Store,
    started: Arc<AtomicBool>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        let started = started.clone();
        Box::pin(async move {
            if !started.load(Ordering::SeqCst) {
                return Err("starting".to_string());
            }
            if !store.ping().await {
                return Err("PostgreSQL does not answer".to_string());
            }
            Ok(())
        })
    });
    ordinaut_telemetry::serve(addr, registry, ready, shutdown).await
}
