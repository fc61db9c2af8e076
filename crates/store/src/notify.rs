//! `LISTEN/NOTIFY` on queued work, so idle workers wake when work arrives instead of polling.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgListener;
use std::time::Duration;

/// The channel notified (by a trigger) whenever rows become queued in `due_work`. The
/// payload is the earliest `run_at` among them, RFC 3339 in UTC.
pub const DUE_WORK_CHANNEL: &str = "ordinaut_due_work";

/// A dedicated connection listening on one notification channel.
pub struct Listener {
    inner: PgListener,
}

impl Store {
    /// Opens a listener on [`DUE_WORK_CHANNEL`] (its own connection from the pool's settings).
    pub async fn listen_due_work(&self) -> Result<Listener, StoreError> {
        self.listen(DUE_WORK_CHANNEL).await
    }

    /// Opens a listener on [`crate::OUTBOX_CHANNEL`], for the outbox relay.
    pub async fn listen_outbox(&self) -> Result<Listener, StoreError> {
        self.listen(crate::OUTBOX_CHANNEL).await
    }

    async fn listen(&self, channel: &str) -> Result<Listener, StoreError> {
        let mut inner = PgListener::connect_with(&self.pool).await?;
        inner.listen(channel).await?;
        Ok(Listener { inner })
    }
}

/// What [`Listener::wait`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    /// Work was queued; the earliest `run_at` among it, when the payload could be read.
    Queued(Option<DateTime<Utc>>),
    /// Nothing arrived within the timeout.
    TimedOut,
}

impl Listener {
    /// Waits up to `timeout` for a notification. Several notifications that are already
    /// waiting are drained and merged into one wakeup (the earliest `run_at` wins). A lost
    /// connection is re-established by sqlx; notifications sent meanwhile are lost, which is
    /// why workers also poll.
    pub async fn wait(&mut self, timeout: Duration) -> Result<Wakeup, StoreError> {
        let first = match tokio::time::timeout(timeout, self.inner.recv()).await {
            Err(_) => return Ok(Wakeup::TimedOut),
            Ok(n) => n?,
        };
        let mut earliest = parse(first.payload());
        while let Some(n) = self.inner.next_buffered() {
            earliest = match (earliest, parse(n.payload())) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(Wakeup::Queued(earliest))
    }
}

fn parse(payload: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(payload)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
