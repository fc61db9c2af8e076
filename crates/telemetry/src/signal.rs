//! Waiting for the signal that stops a binary: SIGTERM (Kubernetes stopping the pod) or
//! Ctrl-C.

/// Returns when SIGTERM or SIGINT (Ctrl-C) arrives; only Ctrl-C where SIGTERM cannot be
/// listened for.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
