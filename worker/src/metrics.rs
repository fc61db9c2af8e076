//! The worker's Prometheus metrics (prefix `ordinaut_`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: String,
}

/// The Agent (`namespace/name`) a budget metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentLabel {
    pub agent: String,
}

/// What the state pruner removed: `expired` (keys past their TTL) or `tombstone`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PrunedLabel {
    pub kind: String,
}

/// The table a retention metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

fn seconds_histogram() -> Histogram {
    // 1 ms … ~9 h
    Histogram::new(exponential_buckets(0.001, 2.0, 25))
}

/// Every metric the worker exports.
pub struct Metrics {
    pub runs: Family<Outcome, Counter>,
    pub steps: Family<Outcome, Counter>,
    pub run_duration: Histogram,
    pub step_duration: Histogram,
    pub schedule_lag: Histogram,
    pub leased: Counter,
    pub reclaimed: Counter,
    pub lost_leases: Counter,
    pub in_flight: Gauge,
    pub queue_depth: Gauge,
    pub outbox_backlog: Gauge,
    pub stale_results: Counter,
    pub record_errors: Counter,
    pub relay_published: Counter<u64, AtomicU64>,
    pub relay_failures: Counter<u64, AtomicU64>,
    pub results_waiting: Gauge,
    pub records_dropped: Counter,
    pub unstorable_results: Counter,
    pub exhausted: Counter,
    pub fenced: Counter,
    pub panics: Counter,
    pub pruned: Family<TableLabel, Counter>,
    pub budget_waits: Family<AgentLabel, Counter>,
    pub state_pruned: Family<PrunedLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            runs: Family::default(),
            steps: Family::default(),
            run_duration: seconds_histogram(),
            step_duration: seconds_histogram(),
            schedule_lag: seconds_histogram(),
            leased: Counter::default(),
            reclaimed: Counter::default(),
            lost_leases: Counter::default(),
            in_flight: Gauge::default(),
            queue_depth: Gauge::default(),
            outbox_backlog: Gauge::default(),
            stale_results: Counter::default(),
            record_errors: Counter::default(),
            relay_published: Counter::default(),
            relay_failures: Counter::default(),
            results_waiting: Gauge::default(),
            records_dropped: Counter::default(),
            unstorable_results: Counter::default(),
            exhausted: Counter::default(),
            fenced: Counter::default(),
            panics: Counter::default(),
            pruned: Family::default(),
            budget_waits: Family::default(),
            state_pruned: Family::default(),
        };
        register_run_metrics(registry, &m);
        register_queue_metrics(registry, &m);
        register_fault_metrics(registry, &m);
        m
    }
}

/// Runs and steps: outcomes, durations, lag, leases, agent memory pruning.
fn register_run_metrics(r: &mut Registry, m: &Metrics) {
    r.register("ordinaut_runs", "Runs finished, by outcome", m.runs.clone());
    r.register(
        "ordinaut_steps",
        "Steps finished, by outcome",
        m.steps.clone(),
    );
    r.register(
        "ordinaut_run_duration_seconds",
        "Run duration",
        m.run_duration.clone(),
    );
    r.register(
        "ordinaut_step_duration_seconds",
        "Step duration",
        m.step_duration.clone(),
    );
    r.register(
        "ordinaut_schedule_lag_seconds",
        "Start time minus scheduled time of runs",
        m.schedule_lag.clone(),
    );
    r.register("ordinaut_leases", "Occurrences leased", m.leased.clone());
    r.register(
        "ordinaut_state_pruned",
        "Agent memory keys expired (kind=expired) and old tombstones removed (kind=tombstone) by this worker's reaper",
        m.state_pruned.clone(),
    );
}

/// The queue, the reaper, the recorder and the outbox relay, and budget waits.
fn register_queue_metrics(r: &mut Registry, m: &Metrics) {
    r.register(
        "ordinaut_lease_reclaims",
        "Expired leases returned to the queue by this worker's reaper",
        m.reclaimed.clone(),
    );
    r.register(
        "ordinaut_lost_leases",
        "Leases this worker lost before finishing (its results are dropped)",
        m.lost_leases.clone(),
    );
    r.register(
        "ordinaut_runs_in_flight",
        "Runs executing now",
        m.in_flight.clone(),
    );
    r.register(
        "ordinaut_queue_depth",
        "Queued occurrences that are due",
        m.queue_depth.clone(),
    );
    r.register(
        "ordinaut_outbox_backlog",
        "Events not yet relayed to Redis",
        m.outbox_backlog.clone(),
    );
    r.register(
        "ordinaut_stale_results",
        "Run results refused because their attempt was stale",
        m.stale_results.clone(),
    );
    r.register(
        "ordinaut_record_errors",
        "Failed attempts to write run records (retried)",
        m.record_errors.clone(),
    );
    r.register(
        "ordinaut_outbox_published",
        "Events relayed from the outbox to Redis Streams by this process",
        m.relay_published.clone(),
    );
    r.register(
        "ordinaut_outbox_relay_failures",
        "Failed relay passes (Redis unreachable); the events wait in the outbox",
        m.relay_failures.clone(),
    );
    r.register(
        "ordinaut_budget_waits",
        "Occurrences that had to wait for their Agent's budget (concurrentRuns, runsPerHour), counted once per occurrence",
        m.budget_waits.clone(),
    );
}

/// The fault metrics: results waiting for the database, refused or given-up runs, fencing.
fn register_fault_metrics(r: &mut Registry, m: &Metrics) {
    r.register(
        "ordinaut_results_waiting",
        "Finished runs whose records wait in memory to be written (PostgreSQL unavailable); bounded by the concurrency",
        m.results_waiting.clone(),
    );
    r.register(
        "ordinaut_records_dropped",
        "Run records PostgreSQL refused even as a bare failure (should stay 0)",
        m.records_dropped.clone(),
    );
    r.register(
        "ordinaut_unstorable_results",
        "Runs recorded as failed because their result could not be stored (NUL characters, over --max-output-bytes)",
        m.unstorable_results.clone(),
    );
    r.register(
        "ordinaut_runs_exhausted",
        "Occurrences given up after maxAttempts attempts that never finished",
        m.exhausted.clone(),
    );
    r.register(
        "ordinaut_runs_fenced",
        "Runs stopped and handed back because their lease was not renewed within the safety margin",
        m.fenced.clone(),
    );
    r.register(
        "ordinaut_run_panics",
        "Run tasks that panicked (recorded as failed, lease released)",
        m.panics.clone(),
    );
    r.register(
        "ordinaut_pruned",
        "History rows removed by the retention policy, by table (steps go with their runs)",
        m.pruned.clone(),
    );
}
