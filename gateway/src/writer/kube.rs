//! The cluster's write path: Task objects through the Kubernetes API, as `kubectl` writes
//! them (create, merge patch, delete), under the field manager `ordinaut-gateway`.

use async_trait::async_trait;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ordinaut_api::Task;
use serde_json::Value;

use super::{FIELD_MANAGER, TaskWriter, WriteError};

/// Writes Task objects through the Kubernetes API.
pub struct KubeWriter {
    client: kube::Client,
}

impl KubeWriter {
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }

    fn api(&self, namespace: &str) -> Api<Task> {
        Api::namespaced(self.client.clone(), namespace)
    }
}

fn map_err(what: &str, e: kube::Error) -> WriteError {
    match &e {
        kube::Error::Api(s) if s.code == 404 => WriteError::NotFound(what.to_string()),
        kube::Error::Api(s) if s.code == 409 => WriteError::Conflict(format!(
            "Task {what}: {}; choose another name, or read it again and retry",
            s.message
        )),
        kube::Error::Api(s) if s.code == 403 => WriteError::Forbidden(format!(
            "the gateway may not write Task {what} through the Kubernetes API ({}); \
             it writes only in the namespaces it serves: add this namespace to the chart's \
             gateway.namespaces (a Role is created in each)",
            s.message
        )),
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => WriteError::Refused(format!(
            "the Kubernetes API refused Task {what}: {}",
            s.message
        )),
        _ => WriteError::Failed(format!(
            "writing Task {what} through the Kubernetes API failed: {e}"
        )),
    }
}

#[async_trait]
impl TaskWriter for KubeWriter {
    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Task>, WriteError> {
        self.api(namespace)
            .get_opt(name)
            .await
            .map_err(|e| map_err(&format!("{namespace}/{name}"), e))
    }

    async fn create(&self, task: &Task) -> Result<(), WriteError> {
        let namespace = task.metadata.namespace.as_deref().unwrap_or("default");
        let name = task.metadata.name.as_deref().unwrap_or_default();
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api(namespace)
            .create(&params, task)
            .await
            .map(|_| ())
            .map_err(|e| map_err(&format!("{namespace}/{name}"), e))
    }

    async fn patch(&self, namespace: &str, name: &str, patch: &Value) -> Result<(), WriteError> {
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        };
        self.api(namespace)
            .patch(name, &params, &Patch::Merge(patch))
            .await
            .map(|_| ())
            .map_err(|e| map_err(&format!("{namespace}/{name}"), e))
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), WriteError> {
        self.api(namespace)
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ())
            .map_err(|e| map_err(&format!("{namespace}/{name}"), e))
    }

    fn describe(&self) -> String {
        "the Kubernetes API".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::OpError;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_forbidden_write_names_the_namespace_setting() {
        let e = map_err(
            "team-b/report",
            api_error(
                403,
                "tasks.ordinaut.dev is forbidden: User \"system:serviceaccount:ordinaut:gateway\" \
                 cannot create resource \"tasks\" in namespace \"team-b\"",
            ),
        );
        let WriteError::Forbidden(m) = &e else {
            panic!("want Forbidden, got {e:?}")
        };
        assert!(m.contains("team-b/report"), "{m}");
        assert!(m.contains("gateway.namespaces"), "{m}");
        assert!(m.contains("cannot create resource"), "{m}");
        assert!(matches!(OpError::from(e), OpError::Forbidden(_)));
    }
}
