//! [`KubeMcpPods`]: a stdio McpServer's Deployment and Service, applied with server-side
//! apply under the operator's field manager and deleted with the McpServer.

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use ordinaut_api::constants::FIELD_MANAGER;
use ordinaut_api::{McpPodStatus, McpServer};

use crate::mcp_pod;
use crate::seam::{McpPods, SinkError};

/// Deployments and Services in the McpServers' namespaces (the chart grants `get`, `patch`
/// and `delete` on them per namespace).
#[derive(Clone)]
pub struct KubeMcpPods {
    client: Client,
    bridge_image: String,
}

impl KubeMcpPods {
    /// `bridge_image` is Ordinaut's image, which holds `ordinaut-mcp-bridge`.
    pub fn new(client: Client, bridge_image: impl Into<String>) -> Self {
        Self {
            client,
            bridge_image: bridge_image.into(),
        }
    }
}

fn error(
    what: &'static str,
    verb: &str,
    namespace: &str,
    name: &str,
    e: &kube::Error,
) -> SinkError {
    let message = match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "forbidden: the operator may not {verb} {what}s in namespace {namespace} ({}); \
             it needs create, patch and delete on Deployments and Services there: add \
             {namespace} to the chart's operator.rbac.mcpServerNamespaces",
            s.message
        ),
        e => e.to_string(),
    };
    SinkError {
        what,
        kind: "McpServer",
        namespace: namespace.to_string(),
        name: name.to_string(),
        message,
        gone: false,
    }
}

#[async_trait]
impl McpPods for KubeMcpPods {
    async fn apply(&self, server: &McpServer) -> Result<McpPodStatus, SinkError> {
        let ns = server.metadata.namespace.clone().unwrap_or_default();
        let name = server.metadata.name.clone().unwrap_or_default();
        let object = mcp_pod::object_name(&name);
        let Some(deployment) = mcp_pod::deployment(server, &self.bridge_image) else {
            return Err(SinkError {
                what: "Deployment",
                kind: "McpServer",
                namespace: ns,
                name,
                message: "not a stdio server with an image".into(),
                gone: false,
            });
        };
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        Api::<Service>::namespaced(self.client.clone(), &ns)
            .patch(&object, &pp, &Patch::Apply(mcp_pod::service(server)))
            .await
            .map_err(|e| error("Service", "patch", &ns, &name, &e))?;
        let applied = Api::<Deployment>::namespaced(self.client.clone(), &ns)
            .patch(&object, &pp, &Patch::Apply(deployment))
            .await
            .map_err(|e| error("Deployment", "patch", &ns, &name, &e))?;
        let status = applied.status.unwrap_or_default();
        let ready_replicas = status.ready_replicas.unwrap_or(0);
        Ok(McpPodStatus {
            deployment: object,
            url: mcp_pod::service_url(&ns, &name),
            ready_replicas,
            replicas: applied.spec.replicas.unwrap_or(1),
            ready: ready_replicas > 0,
        })
    }

    async fn remove(&self, namespace: &str, name: &str) -> Result<(), SinkError> {
        let object = mcp_pod::object_name(name);
        let dp = DeleteParams::background();
        let gone = |r: Result<_, kube::Error>, what| match r {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(error(what, "delete", namespace, name, &e)),
        };
        gone(
            Api::<Deployment>::namespaced(self.client.clone(), namespace)
                .delete(&object, &dp)
                .await
                .map(drop),
            "Deployment",
        )?;
        gone(
            Api::<Service>::namespaced(self.client.clone(), namespace)
                .delete(&object, &dp)
                .await
                .map(drop),
            "Service",
        )
    }
}
