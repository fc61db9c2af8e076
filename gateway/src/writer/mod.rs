//! The write path: the gateway changes Task definitions exactly where a person would, so the
//! operator, `kubectl get` and GitOps tools see what an agent did. In a cluster
//! ([`kube::KubeWriter`]) Task objects are created, merge-patched and deleted through the
//! Kubernetes API; in `ordinaut dev` ([`dir::DirWriter`]) manifest files in the watched
//! folder are written, so the folder stays the single source of truth. There is no path that
//! writes definitions into PostgreSQL: the operator projects them from here, as always.

pub mod dir;
pub mod kube;

use async_trait::async_trait;
use ordinaut_api::Task;
use serde_json::Value;

use crate::problem::OpError;

/// Field manager of the gateway's writes to the Kubernetes API.
pub const FIELD_MANAGER: &str = "ordinaut-gateway";
/// Label naming the Agent a Task was created for.
pub const AGENT_LABEL: &str = "ordinaut.dev/agent";

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("Task {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The API server refused the object (schema, CEL rules).
    #[error("{0}")]
    Refused(String),
    /// The gateway's own identity may not write there (RBAC).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Failed(String),
}

impl From<WriteError> for OpError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::NotFound(what) => OpError::NotFound(format!("Task {what} not found")),
            WriteError::Conflict(m) => OpError::Conflict(m),
            WriteError::Refused(m) => OpError::invalid("spec", m),
            WriteError::Forbidden(m) => OpError::Forbidden(m),
            WriteError::Failed(m) => OpError::Unavailable(m),
        }
    }
}

/// Where Task definitions live.
#[async_trait]
pub trait TaskWriter: Send + Sync {
    /// The Task as its source of truth has it now; `None` when there is none.
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Task>, WriteError>;
    /// Creates the Task; [`WriteError::Conflict`] when one of that name exists.
    async fn create(&self, task: &Task) -> Result<(), WriteError>;
    /// Applies a JSON merge patch (RFC 7386) to the object: `spec` fields, annotations.
    async fn patch(&self, namespace: &str, name: &str, patch: &Value) -> Result<(), WriteError>;
    /// Deletes the Task (the operator's finalizer then withdraws its occurrences).
    async fn delete(&self, namespace: &str, name: &str) -> Result<(), WriteError>;
    /// Where the definitions go, for messages: `the Kubernetes API`, `examples/agents/...`.
    fn describe(&self) -> String;
}

/// The manifest of a Task as a JSON value without the fields a manifest should not carry
/// (`status`, server-set metadata), for writing to a file.
pub fn manifest(task: &Task) -> Value {
    let mut v = serde_json::to_value(task).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.remove("status");
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for server_set in [
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
                "finalizers",
                "deletionTimestamp",
            ] {
                meta.remove(server_set);
            }
            meta.retain(|_, v| !v.is_null());
        }
    }
    v
}
