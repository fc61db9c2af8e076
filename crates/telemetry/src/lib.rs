//! What every Ordinaut binary serves and logs alike: `/metrics`, `/healthz` and `/readyz`
//! ([`serve`]), structured logs ([`init_tracing`]: text for people, JSON in clusters), and
//! the stop signal ([`signal::wait_for_signal`]).

pub mod serve;
pub mod signal;

pub use serve::{ReadyCheck, router, serve};

/// Installs the global `tracing` subscriber writing to stderr: `format` is `json` (one object
/// per line, with the current span's fields) or anything else for text; `filter` is an
/// `EnvFilter` directive (`info`, `ordinaut_worker=debug`), `info` when it does not parse.
pub fn init_tracing(format: &str, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init();
    } else {
        builder.init();
    }
}
