//! Metrics of the event triggers ([`ordinaut_events::EventTriggers`]): events read from topic
//! streams and what became of them, copied from the consumers' counters once a second.

use ordinaut_events::TriggerStats;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// `ordinaut_events_*` counters.
#[derive(Debug, Default)]
pub struct EventMetrics {
    received: Counter,
    started: Counter,
    duplicates: Counter,
    filtered: Counter,
    dropped: Counter,
    failures: Counter,
}

impl EventMetrics {
    /// Creates the counters and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let m = Arc::new(Self::default());
        let r = registry;
        r.register(
            "ordinaut_events_received",
            "Events read from topic streams (each counted once per read; a redelivery counts again)",
            m.received.clone(),
        );
        r.register(
            "ordinaut_events_runs_started",
            "Runs started by topic events (one per event and Task)",
            m.started.clone(),
        );
        r.register(
            "ordinaut_events_duplicates",
            "Deliveries of an event that had already started its run (redelivered, replayed or republished)",
            m.duplicates.clone(),
        );
        r.register(
            "ordinaut_events_filtered",
            "Deliveries a Task's on.filter rejected",
            m.filtered.clone(),
        );
        r.register(
            "ordinaut_events_dropped",
            "Deliveries dropped: the Task was suspended or snoozed, or its filter failed",
            m.dropped.clone(),
        );
        r.register(
            "ordinaut_events_trigger_failures",
            "Batches of topic events that failed (Redis or PostgreSQL) and were retried",
            m.failures.clone(),
        );
        m
    }

    /// Copies `stats` into the counters once a second until `stop` fires.
    pub async fn export(self: Arc<Self>, stats: Arc<TriggerStats>, stop: CancellationToken) {
        let mut last = [0u64; 6];
        loop {
            let now = [
                stats.received(),
                stats.started(),
                stats.duplicates(),
                stats.filtered(),
                stats.dropped(),
                stats.failures(),
            ];
            let counters = [
                &self.received,
                &self.started,
                &self.duplicates,
                &self.filtered,
                &self.dropped,
                &self.failures,
            ];
            for ((c, n), l) in counters.iter().zip(now).zip(last.iter_mut()) {
                c.inc_by(n.saturating_sub(*l));
                *l = n;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = stop.cancelled() => return,
            }
        }
    }
}
