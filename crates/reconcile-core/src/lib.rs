//! The pure parts of a reconcile that the operator and the CLI share, in a crate without the
//! Kubernetes client: [`validate`] (the semantic rules beyond the schema), [`chains`]
//! (`taskFinished` cycles) and [`time`] (Kubernetes times). `ordinaut validate` links these
//! and not the operator's controllers; the operator re-exports them under the same paths
//! (`ordinaut_operator::validate`, `ordinaut_operator::chains`).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chains;
pub mod time;
pub mod validate;
