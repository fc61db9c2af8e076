//! Waiting on a condition with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

/// The default deadline: conditions normally hold in milliseconds, but a loaded CI box may
/// take seconds.
pub const WAIT: Duration = Duration::from_secs(30);

/// How often the helpers poll.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns `Some`, and returns that value; panics naming `what` after
/// `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls `check` until it holds; panics naming `what` after `limit`.
pub async fn until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(limit, what, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// [`eventually`] for a synchronous test (the thread sleeps between polls).
pub fn wait_blocking<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
