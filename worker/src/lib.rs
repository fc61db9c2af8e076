//! Ordinaut's worker: leases due occurrences from PostgreSQL (`FOR UPDATE SKIP LOCKED`),
//! runs their pipelines through the tools, records every run and step with its events in
//! one transaction per batch, and drains cleanly on shutdown.

pub mod budget;
pub mod config;
pub mod egress;
pub mod event_metrics;
pub mod events;
pub mod executor;
pub mod kube_secrets;
pub mod liveness;
pub mod mcp;
pub mod metrics;
pub mod publish;
pub mod redact;
pub mod runner;
pub mod runtime;
pub mod secrets;
pub mod spec_cache;
pub mod state;

pub use config::WorkerConfig;
pub use executor::Executor;
pub use metrics::Metrics;
pub use runner::Worker;
