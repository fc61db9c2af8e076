//! The worker's tunables, set from flags by `main`.

use std::time::Duration;

/// How a worker leases and runs work.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in leases (`locked_by`) and run records.
    pub worker_id: String,
    /// Runs executing at once.
    pub concurrency: usize,
    /// Most occurrences taken by one lease statement.
    pub batch_size: usize,
    /// How long a lease lasts without a heartbeat.
    pub lease_duration: Duration,
    /// How often held leases are extended (well under `lease_duration`).
    pub heartbeat_interval: Duration,
    /// Longest idle wait before looking for work again when no notification arrives.
    pub poll_interval: Duration,
    /// Scheduled occurrences due within this long are leased early and started at their
    /// time ([`ordinaut_store::Store::lease_ahead`]); zero leases only what is due.
    pub lease_lookahead: Duration,
    /// How often expired leases (of crashed workers) are returned to the queue.
    pub reap_interval: Duration,
    /// On shutdown, how long in-flight runs may take before their leases are handed back.
    pub drain_timeout: Duration,
    /// Step timeout when neither the step nor the Task sets one.
    pub default_step_timeout: Duration,
    /// The Redis stream run events are written to (through the outbox).
    pub events_stream: String,
    /// Self-fencing: a run whose lease was not renewed by this long before it expires is
    /// stopped and handed back. `None`: a sixth of the lease (5 s of the default 30 s).
    pub lease_safety_margin: Option<Duration>,
    /// Largest JSON value stored for a step's input or output or a run's output.
    pub max_output_bytes: usize,
    /// What history to keep; `None`: this worker prunes nothing.
    pub retention: Option<ordinaut_store::retention::Retention>,
    /// How often history is pruned (more often while there is a backlog).
    pub retention_interval: Duration,
}

/// The default [`WorkerConfig::lease_lookahead`]: long enough for two workers to lease a
/// burst of 1,000 occurrences due on one second before it (about 4 lease statements each),
/// short enough that a Task suspended just before its time is rarely already leased.
pub const DEFAULT_LEASE_LOOKAHEAD: Duration = Duration::from_millis(100);

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            worker_id: default_worker_id(),
            concurrency: 64,
            batch_size: 256,
            lease_duration: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            lease_lookahead: DEFAULT_LEASE_LOOKAHEAD,
            reap_interval: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(30),
            default_step_timeout: Duration::from_secs(300),
            events_stream: ordinaut_store::DEFAULT_STREAM.to_string(),
            lease_safety_margin: None,
            max_output_bytes: ordinaut_store::storable::DEFAULT_MAX_OUTPUT_BYTES,
            retention: Some(ordinaut_store::retention::Retention::default()),
            retention_interval: Duration::from_secs(60),
        }
    }
}

impl WorkerConfig {
    /// The self-fencing margin: `lease_safety_margin`, else a sixth of the lease.
    pub fn fence_margin(&self) -> Duration {
        self.lease_safety_margin.unwrap_or(self.lease_duration / 6)
    }
}

/// `$POD_NAME`, else `$HOSTNAME`, else `worker`, plus the process id.
pub fn default_worker_id() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "worker".to_string());
    format!("{host}-{}", std::process::id())
}
