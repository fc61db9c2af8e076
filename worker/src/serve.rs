//! `/metrics`, `/healthz` and `/readyz`: the shared implementation of every binary.

pub use ordinaut_telemetry::serve::{LiveCheck, ReadyCheck, serve, serve_with_liveness};
