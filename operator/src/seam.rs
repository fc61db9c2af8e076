//! The seam between the reconcile core and where objects come from and where status goes.
//!
//! The core ([`crate::reconcile`]) never talks to Kubernetes. It is handed a Task (or a
//! Pipeline, McpServer, Agent) and reaches everything else through two traits:
//!
//! * [`Objects`]: looks up the Pipelines, Agents and McpServers a Task refers to. In the
//!   cluster, GETs through the API ([`crate::k8s::KubeObjects`], always the latest); in
//!   `ordinaut dev`, the objects loaded from the directory ([`MemoryObjects`]).
//! * [`StatusSink`]: receives each object's status (JSON of the kind's status type) and
//!   the Events worth telling a person. In the cluster, server-side apply on the status
//!   subresource under `FIELD_MANAGER` plus a kube `Recorder` ([`crate::k8s::KubeSink`]);
//!   in `ordinaut dev`, [`MemorySink`] (or the CLI's own printing sink).
//!
//! Objects handed to the core must carry `metadata.uid`, `metadata.generation` and
//! `metadata.creationTimestamp` (the anchor of RRULEs without DTSTART): a directory source
//! assigns a stable uid per (namespace, kind, name), bumps the generation when the file's
//! spec changes, and keeps the creation time of the first load. It must also call
//! [`crate::reconcile::TaskReconciler::cleanup`] when a Task disappears, call `reconcile`
//! again on every change of a Task or of a Pipeline/Agent it refers to, and at least every
//! tick interval (that extends horizons and applies catch-up).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ordinaut_api::{Agent, McpServer, Pipeline};

/// The kinds the operator reconciles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Task,
    Pipeline,
    McpServer,
    Agent,
}

impl Kind {
    /// The `kind` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Task => "Task",
            Kind::Pipeline => "Pipeline",
            Kind::McpServer => "McpServer",
            Kind::Agent => "Agent",
        }
    }
}

/// Which object a status or an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    /// `metadata.uid`, when known (Events reference it).
    pub uid: Option<String>,
}

/// Severity of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeType {
    Normal,
    Warning,
}

/// An Event for a person: a transition they care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub type_: NoticeType,
    /// PascalCase (`InvalidSchedule`, `Valid`, `MissedRuns`).
    pub reason: String,
    /// What happened, naming the field and the fix when something is wrong.
    pub message: String,
    /// What the operator did (`Validate`, `Materialize`, `CatchUp`).
    pub action: String,
}

/// Why a referenced object could not be looked up (transient: the reconcile is retried).
#[derive(Debug, thiserror::Error)]
#[error("looking up {kind} {namespace}/{name} failed: {message}")]
pub struct LookupError {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub message: String,
}

/// Looks up the objects a Task refers to, in the Task's namespace. `Ok(None)`: it does not
/// exist. Lookups must see the latest version (a Pipeline change re-reconciles its Tasks,
/// which must then inline the new spec).
#[async_trait]
pub trait Objects: Send + Sync {
    async fn pipeline(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Pipeline>>, LookupError>;
    async fn agent(&self, namespace: &str, name: &str) -> Result<Option<Arc<Agent>>, LookupError>;
    async fn mcp_server(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<McpServer>>, LookupError>;
}

/// Why a status or an Event could not be written (the reconcile is retried).
#[derive(Debug, thiserror::Error)]
#[error("writing {what} of {kind} {namespace}/{name} failed: {message}")]
pub struct SinkError {
    pub what: &'static str,
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub message: String,
    /// The object no longer exists (a 404): nothing to write to.
    pub gone: bool,
}

/// Where status and Events go.
#[async_trait]
pub trait StatusSink: Send + Sync {
    /// Writes the object's whole status (the fields the operator owns), e.g. a `TaskStatus`
    /// as JSON.
    async fn status(&self, key: &ObjectKey, status: serde_json::Value) -> Result<(), SinkError>;
    /// Records an Event about the object.
    async fn notice(&self, key: &ObjectKey, notice: &Notice) -> Result<(), SinkError>;
}

/// Runs stdio McpServers that name an image in pods of their own: a Deployment and a
/// Service owned by the McpServer (the Kubernetes side, [`crate::k8s::KubeMcpPods`]).
/// `ordinaut dev` has none and runs stdio servers as local processes.
#[async_trait]
pub trait McpPods: Send + Sync {
    /// Creates or updates the Deployment and Service of `server` (which has an image) and
    /// returns how many of its pods are ready.
    async fn apply(
        &self,
        server: &ordinaut_api::McpServer,
    ) -> Result<ordinaut_api::McpPodStatus, SinkError>;
    /// Deletes them (idempotent: absent objects are success).
    async fn remove(&self, namespace: &str, name: &str) -> Result<(), SinkError>;
}

/// Objects held in memory (dev mode, tests).
#[derive(Default)]
pub struct MemoryObjects {
    pipelines: Mutex<HashMap<(String, String), Arc<Pipeline>>>,
    agents: Mutex<HashMap<(String, String), Arc<Agent>>>,
    mcp_servers: Mutex<HashMap<(String, String), Arc<McpServer>>>,
}

fn key_of(meta: &kube::api::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_else(|| "default".into()),
        meta.name.clone().unwrap_or_default(),
    )
}

impl MemoryObjects {
    pub fn put_pipeline(&self, p: Pipeline) {
        let k = key_of(&p.metadata);
        lock(&self.pipelines).insert(k, Arc::new(p));
    }
    pub fn remove_pipeline(&self, namespace: &str, name: &str) {
        lock(&self.pipelines).remove(&(namespace.to_string(), name.to_string()));
    }
    pub fn put_agent(&self, a: Agent) {
        let k = key_of(&a.metadata);
        lock(&self.agents).insert(k, Arc::new(a));
    }
    pub fn remove_agent(&self, namespace: &str, name: &str) {
        lock(&self.agents).remove(&(namespace.to_string(), name.to_string()));
    }
    pub fn put_mcp_server(&self, m: McpServer) {
        let k = key_of(&m.metadata);
        lock(&self.mcp_servers).insert(k, Arc::new(m));
    }
    pub fn remove_mcp_server(&self, namespace: &str, name: &str) {
        lock(&self.mcp_servers).remove(&(namespace.to_string(), name.to_string()));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Objects for MemoryObjects {
    async fn pipeline(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Pipeline>>, LookupError> {
        Ok(lock(&self.pipelines)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
    async fn agent(&self, namespace: &str, name: &str) -> Result<Option<Arc<Agent>>, LookupError> {
        Ok(lock(&self.agents)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
    async fn mcp_server(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<McpServer>>, LookupError> {
        Ok(lock(&self.mcp_servers)
            .get(&(namespace.to_string(), name.to_string()))
            .cloned())
    }
}

/// A sink that keeps the last status of each object and every Event (dev mode, tests).
#[derive(Default)]
pub struct MemorySink {
    statuses: Mutex<BTreeMap<ObjectKey, serde_json::Value>>,
    notices: Mutex<Vec<(ObjectKey, Notice)>>,
}

impl MemorySink {
    /// The last status written for `key` (uid ignored).
    pub fn status_of(&self, kind: Kind, namespace: &str, name: &str) -> Option<serde_json::Value> {
        lock(&self.statuses)
            .iter()
            .find(|(k, _)| k.kind == kind && k.namespace == namespace && k.name == name)
            .map(|(_, v)| v.clone())
    }
    /// Removes and returns every status written so far (keys without uid), e.g. to put
    /// them on the objects as the API server would.
    pub fn take_statuses(&self) -> BTreeMap<ObjectKey, serde_json::Value> {
        std::mem::take(&mut *lock(&self.statuses))
    }
    /// Every Event recorded so far, oldest first.
    pub fn notices(&self) -> Vec<(ObjectKey, Notice)> {
        lock(&self.notices).clone()
    }
}

#[async_trait]
impl StatusSink for MemorySink {
    async fn status(&self, key: &ObjectKey, status: serde_json::Value) -> Result<(), SinkError> {
        let mut k = key.clone();
        k.uid = None;
        lock(&self.statuses).insert(k, status);
        Ok(())
    }
    async fn notice(&self, key: &ObjectKey, notice: &Notice) -> Result<(), SinkError> {
        lock(&self.notices).push((key.clone(), notice.clone()));
        Ok(())
    }
}
