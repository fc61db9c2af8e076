//! The Kubernetes side of the seam: [`KubeObjects`] (reads of referenced objects),
//! [`CachedTask`] (what the Task watch cache keeps of each Task), [`KubeSink`]
//! (server-side apply on the status subresource and a shared event `Recorder`) and
//! [`controllers::run`], which drives the reconcile core from `kube::runtime::Controller`s.

mod cached_task;
pub mod controllers;
mod mcp_pods;

pub use cached_task::CachedTask;
pub use mcp_pods::KubeMcpPods;

use std::sync::Arc;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use ordinaut_api::constants::{API_VERSION, FIELD_MANAGER};
use ordinaut_api::{Agent, McpServer, Pipeline, Task};
use serde_json::json;

use crate::seam::{
    Kind, LookupError, Notice, NoticeType, ObjectKey, Objects, SinkError, StatusSink,
};

/// Referenced objects, read from the API server at reconcile time. A GET rather than a
/// reflector cache: when a Pipeline change triggers its Tasks, a cache fed by another watch
/// could still hold the old version, and the worker would keep running the old steps.
#[derive(Clone)]
pub struct KubeObjects {
    client: Client,
}

impl KubeObjects {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

async fn get_opt<K>(
    client: &Client,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> Result<Option<Arc<K>>, LookupError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map(|o| o.map(Arc::new))
        .map_err(|e| LookupError {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: e.to_string(),
        })
}

#[async_trait]
impl Objects for KubeObjects {
    async fn pipeline(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Pipeline>>, LookupError> {
        get_opt(&self.client, "Pipeline", namespace, name).await
    }
    async fn agent(&self, namespace: &str, name: &str) -> Result<Option<Arc<Agent>>, LookupError> {
        get_opt(&self.client, "Agent", namespace, name).await
    }
    async fn mcp_server(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<McpServer>>, LookupError> {
        get_opt(&self.client, "McpServer", namespace, name).await
    }
}

/// Status by server-side apply on the status subresource under [`FIELD_MANAGER`]; Events
/// through one shared [`Recorder`].
#[derive(Clone)]
pub struct KubeSink {
    client: Client,
    recorder: Recorder,
}

impl KubeSink {
    /// `instance` is the pod name (Events name the reporting instance).
    pub fn new(client: Client, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
        }
    }
}

fn sink_error(what: &'static str, key: &ObjectKey, e: &kube::Error) -> SinkError {
    SinkError {
        what,
        kind: key.kind.as_str(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        message: e.to_string(),
        gone: matches!(e, kube::Error::Api(s) if s.code == 404),
    }
}

#[async_trait]
impl StatusSink for KubeSink {
    async fn status(&self, key: &ObjectKey, status: serde_json::Value) -> Result<(), SinkError> {
        let patch = Patch::Apply(json!({
            "apiVersion": API_VERSION,
            "kind": key.kind.as_str(),
            "status": status,
        }));
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let ns = key.namespace.as_str();
        let result = match key.kind {
            Kind::Task => Api::<Task>::namespaced(self.client.clone(), ns)
                .patch_status(&key.name, &pp, &patch)
                .await
                .map(drop),
            Kind::Pipeline => Api::<Pipeline>::namespaced(self.client.clone(), ns)
                .patch_status(&key.name, &pp, &patch)
                .await
                .map(drop),
            Kind::McpServer => Api::<McpServer>::namespaced(self.client.clone(), ns)
                .patch_status(&key.name, &pp, &patch)
                .await
                .map(drop),
            Kind::Agent => Api::<Agent>::namespaced(self.client.clone(), ns)
                .patch_status(&key.name, &pp, &patch)
                .await
                .map(drop),
        };
        result.map_err(|e| sink_error("status", key, &e))
    }

    async fn notice(&self, key: &ObjectKey, notice: &Notice) -> Result<(), SinkError> {
        let event = Event {
            type_: match notice.type_ {
                NoticeType::Normal => EventType::Normal,
                NoticeType::Warning => EventType::Warning,
            },
            reason: notice.reason.clone(),
            note: Some(notice.message.chars().take(1000).collect()),
            action: notice.action.clone(),
            secondary: None,
        };
        let reference = ObjectReference {
            api_version: Some(API_VERSION.to_string()),
            kind: Some(key.kind.as_str().to_string()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            uid: key.uid.clone(),
            ..ObjectReference::default()
        };
        self.recorder
            .publish(&event, &reference)
            .await
            .map_err(|e| sink_error("event", key, &e))
    }
}

/// McpServer Secret references read through the Kubernetes API: one `get` by name, in the
/// McpServer's own namespace (never list or watch; the chart grants `get` per namespace in
/// `operator.rbac.secretNamespaces`). Values are returned to the caller only, never logged.
#[derive(Clone)]
pub struct KubeSecrets {
    client: Client,
}

impl KubeSecrets {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ordinaut_tools::secrets::SecretSource for KubeSecrets {
    async fn get(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>, String> {
        let api =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(name).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 403 => format!(
                "the operator may not read Secrets in namespace {namespace} (reading {name}): add {namespace} to the chart's operator.rbac.secretNamespaces"
            ),
            e => format!("reading Secret {namespace}/{name}: {e}"),
        })?;
        let Some(secret) = secret else {
            return Ok(None);
        };
        if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
            return String::from_utf8(v.0.clone())
                .map(Some)
                .map_err(|_| format!("key `{key}` of Secret {namespace}/{name} is not UTF-8"));
        }
        Ok(secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned())
    }
}
