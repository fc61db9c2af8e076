//! Tests of the fake API server through a real `kube::Client`: CRUD and patch semantics,
//! watches, and the kube-runtime pieces an operator uses (watcher, Controller, finalizer,
//! event Recorder, Leases).
#![allow(clippy::unwrap_used)]

mod fake {
    pub mod common;
    mod crud;
    mod patches;
    mod runtime;
    mod watch;
}
