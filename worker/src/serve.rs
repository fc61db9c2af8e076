//! `/metrics`, `/healthz` and `/readyz`: the shared implementation of every binary.

pub use ordinaut_telemetry::serve::{ReadyCheck, serve};
