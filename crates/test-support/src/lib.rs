//! What Ordinaut's tests and benchmarks share: a fresh database per test (re-exported from
//! the store's `testing` feature), a scratch database for a benchmark, Redis connections,
//! keys and a private `redis-server`, free ports, and waiting on a condition with a deadline.
//!
//! Tests wait on conditions, never on the wall clock's speed: every helper here polls until
//! the condition holds and fails with what it waited for after a generous deadline (the CI
//! box is a loaded 2-core machine).
//!
//! Features (none by default): `base` is the generic part above; each package's own fixtures
//! sit behind a feature named after it (`schedule`, `store`, `events`, `tools`, `worker`,
//! `operator`, `cli`, `gateway`, `dashboard`), so a package's tests build only what they
//! use: `ordinaut-test-support = { workspace = true, features = ["worker"] }`. Those modules
//! depend on the package they test, a dev-dependency cycle that is fine for integration tests
//! (`tests/*.rs`) but not for unit tests inside the package's `src/`.
#![allow(clippy::unwrap_used)] // a failed helper is a failed test

#[cfg(feature = "base")]
pub mod bin;
#[cfg(feature = "base")]
pub mod db;
#[cfg(feature = "base")]
pub mod net;
#[cfg(feature = "base")]
pub mod python;
#[cfg(feature = "base")]
pub mod redis;
#[cfg(feature = "base")]
pub mod wait;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "dashboard")]
pub mod dashboard;
#[cfg(feature = "events")]
pub mod events;
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "operator")]
pub mod operator;
#[cfg(feature = "schedule")]
pub mod schedule;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "tools")]
pub mod tools;
#[cfg(feature = "worker")]
pub mod worker;

#[cfg(feature = "base")]
pub use bin::cargo_bin;
#[cfg(feature = "base")]
pub use db::{ScratchDb, count, wait_for_count};
#[cfg(feature = "base")]
pub use net::{free_port, http_get};
#[cfg(feature = "base")]
pub use ordinaut_store::testing::{PrivatePostgres, Shutdown, TestDb, admin_url};
#[cfg(feature = "base")]
pub use redis::{Keys, PrivateRedis, redis_url, unique_key};
#[cfg(feature = "base")]
pub use wait::{WAIT, eventually, until, wait_blocking};
