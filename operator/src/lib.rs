//! Ordinaut's operator: turns Task, Pipeline, McpServer and Agent resources into due work in
//! PostgreSQL and tells the user, in each object's status, what will happen next and what
//! happened last.
//!
//! A reconcile is a pipeline of small steps: fetch → [`validate`] (pure) → [`plan`] (pure,
//! with the injected `Clock`) → apply (one [`ordinaut_store::Store::apply_reconcile`]
//! transaction) → status. The core ([`reconcile`]) does not know whether its objects come
//! from the Kubernetes API or from a directory: it reads referenced objects through
//! [`seam::Objects`] and writes status and Events through [`seam::StatusSink`]. The [`k8s`]
//! module plugs it into `kube::runtime::Controller`s; `ordinaut dev` plugs it into a
//! directory watcher with [`seam::MemoryObjects`] and its own sink.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod agent_token;
pub mod audit;
pub mod backfill;
pub mod coalesce;
pub mod discovery;
pub mod feed;
pub mod k8s;
pub mod leader;
pub mod mcp_pod;
pub mod metrics;
pub mod offload;
pub mod plan;
pub mod reconcile;
pub mod references;
pub mod seam;
pub mod serve;
pub mod status;

// The pure validation and chain rules live in a crate without the kube client (the CLI
// links it); re-exported here under their old paths.
pub use ordinaut_reconcile_core::{chains, validate};

pub use leader::{AlwaysLeader, LeaderFlag, Leadership};
pub use plan::MaterializeConfig;
pub use reconcile::{
    Context, DefinitionReconciler, ReconcileError, TASK_RECONCILES_IN_FLIGHT, TaskOutcome,
    TaskReconciler,
};
pub use seam::{
    Kind, MemoryObjects, MemorySink, Notice, NoticeType, ObjectKey, Objects, StatusSink,
};
