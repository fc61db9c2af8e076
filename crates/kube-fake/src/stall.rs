//! Stalling one client's connection: [`FakeApiServer::serve_http_stallable`] serves the fake
//! on a listener of its own and returns a [`Stall`] switch for it. While stalled, the
//! listener answers nothing: a new request is read but waits unanswered, and a response
//! already streaming (a watch) stops sending frames, as when the network between one client
//! and a real API server stalls. The other listeners (other clients) are unaffected. On
//! [`Stall::resume`] everything that waited goes on (a request that waited is served then,
//! as a request delivered late).
//!
//! [`FakeApiServer::serve_http_stallable`]: crate::FakeApiServer::serve_http_stallable

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

/// The switch of one listener's connection (cheap to clone; clones share it).
#[derive(Clone, Debug)]
pub struct Stall {
    stalled: Arc<watch::Sender<bool>>,
    waiting: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
    trap: Arc<Mutex<Option<String>>>,
}

impl Default for Stall {
    fn default() -> Self {
        Self {
            stalled: Arc::new(watch::channel(false).0),
            waiting: Arc::default(),
            paths: Arc::default(),
            trap: Arc::default(),
        }
    }
}

impl Stall {
    /// Stops answering: new requests wait, streaming responses pause.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// Answers again: what waited goes on.
    pub fn resume(&self) {
        self.stalled.send_replace(false);
    }

    /// Stalls at the next request whose path contains `part`, before serving it (that
    /// request waits too): to catch a client in the middle of what it does.
    pub fn stall_at(&self, part: &str) {
        *self.trap.lock().unwrap_or_else(PoisonError::into_inner) = Some(part.to_string());
    }

    /// Whether the connection is stalled.
    pub fn is_stalled(&self) -> bool {
        *self.stalled.borrow()
    }

    /// How many requests or response frames are waiting for [`Stall::resume`] right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// How many requests this listener received whose path contains `part` (waiting ones
    /// included).
    pub fn requests_to(&self, part: &str) -> usize {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|p| p.contains(part))
            .count()
    }

    pub(crate) fn received(&self, path: &str) {
        self.paths
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(path.to_string());
        let mut trap = self.trap.lock().unwrap_or_else(PoisonError::into_inner);
        if trap.as_deref().is_some_and(|part| path.contains(part)) {
            *trap = None;
            self.stall();
        }
    }

    /// Waits while stalled.
    pub(crate) async fn open(&self) {
        if !self.is_stalled() {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut rx = self.stalled.subscribe();
        let _ = rx.wait_for(|stalled| !*stalled).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}
