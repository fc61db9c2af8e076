//! CPU-bound pure steps of a reconcile (compiling a schedule, expanding it over the horizon)
//! run on the blocking pool, not on an async worker thread: however much a rule costs, the
//! other reconciles (the controller polls them together), the status feed, the HTTP server
//! and leader election keep going.

/// Runs `f` on tokio's blocking pool and waits for it without holding this thread.
///
/// Why no timeout: the work cannot be cancelled, so a timed-out rule would keep a thread busy
/// while every tick started another copy. The cost of a rule is bounded by the schedule
/// engine itself (COUNT counted, bounded searches); this keeps that cost off the threads
/// everything else needs.
pub async fn cpu<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Cancelled: the runtime is shutting down and this reconcile with it.
        Err(_) => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    /// On a runtime with a single worker thread, work inside `cpu` waits for a task on the
    /// async side: it can only finish because that thread keeps running other tasks.
    #[tokio::test(flavor = "current_thread")]
    async fn other_tasks_run_while_cpu_work_runs() {
        let (tx, rx) = std::sync::mpsc::channel();
        tokio::spawn(async move { tx.send("from the async side").unwrap() });
        let got = cpu(move || rx.recv_timeout(Duration::from_secs(30))).await;
        assert_eq!(got, Ok("from the async side"));
    }
}
