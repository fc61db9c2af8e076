//! The operator's Prometheus metrics (prefix `ordinaut_operator_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `Task`, `Pipeline`, `McpServer`, `Agent`.
    pub kind: String,
    /// `ready`, `invalid`, `error`, `follower`, `deleted`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

/// Every metric the operator exports. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Family<KindLabel, Histogram>,
    pub materialized: Counter,
    pub withdrawn: Counter,
    pub missed: Counter,
    pub caught_up: Counter,
    pub feed_events: Counter,
    pub feed_lag_seconds: Gauge<f64, AtomicU64>,
    pub leader: Gauge,
    /// Store writes refused because another replica took a newer leader epoch.
    pub fenced_writes: Counter,
    /// The leader epoch this instance holds (0: none).
    pub leader_epoch: Gauge,
    /// API writes (status, MCP pods) skipped because this instance no longer leads.
    pub skipped_writes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.001, 2.0, 16))
            }),
            materialized: Counter::default(),
            withdrawn: Counter::default(),
            missed: Counter::default(),
            caught_up: Counter::default(),
            feed_events: Counter::default(),
            feed_lag_seconds: Gauge::default(),
            leader: Gauge::default(),
            fenced_writes: Counter::default(),
            leader_epoch: Gauge::default(),
            skipped_writes: Counter::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric under `ordinaut_operator`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ordinaut_operator");
        r.register(
            "reconciles",
            "Reconciles by kind and outcome",
            self.reconciles.clone(),
        );
        r.register(
            "reconcile_duration_seconds",
            "Duration of one reconcile",
            self.reconcile_duration.clone(),
        );
        r.register(
            "materialized_occurrences",
            "Occurrences inserted into due_work",
            self.materialized.clone(),
        );
        r.register(
            "withdrawn_occurrences",
            "Queued occurrences withdrawn by a schedule change, suspension or invalid spec",
            self.withdrawn.clone(),
        );
        r.register(
            "missed_occurrences",
            "Occurrences dropped by a catch-up policy",
            self.missed.clone(),
        );
        r.register(
            "caught_up_occurrences",
            "Missed occurrences queued late by a catch-up policy",
            self.caught_up.clone(),
        );
        r.register(
            "status_feed_events",
            "Run outcomes applied to Task status",
            self.feed_events.clone(),
        );
        r.register(
            "status_feed_lag_seconds",
            "Age of the last run outcome applied by the status feed",
            self.feed_lag_seconds.clone(),
        );
        r.register(
            "leader",
            "1 while this instance holds the Lease",
            self.leader.clone(),
        );
        r.register(
            "fenced_writes",
            "Database writes refused because another replica took a newer leader epoch",
            self.fenced_writes.clone(),
        );
        r.register(
            "leader_epoch",
            "The leader epoch (PostgreSQL) this instance took when it became leader; 0 for none",
            self.leader_epoch.clone(),
        );
        r.register(
            "skipped_writes",
            "Kubernetes API writes (status, MCP pods) skipped because this instance no longer leads",
            self.skipped_writes.clone(),
        );
    }

    pub fn reconciled(&self, kind: &str, outcome: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .observe(seconds);
    }
}
