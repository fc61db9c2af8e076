//! The CustomResourceDefinitions generated from the Rust types, and their YAML as committed
//! under `crds/` (written by the `crdgen` binary, checked by the drift test).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{Agent, McpServer, Pipeline, Task};

/// Every Ordinaut CRD, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![Task::crd(), Pipeline::crd(), McpServer::crd(), Agent::crd()]
}

/// Why a CRD could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("CRD has no metadata.name")]
    Unnamed,
    #[error("cannot render CRD {name} as YAML: {cause}")]
    Yaml {
        name: String,
        cause: serde_yaml::Error,
    },
}

/// A CRD rendered as the file committed under `crds/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedCrd {
    /// File name: `<plural>.ordinaut.dev.yaml`.
    pub file_name: String,
    /// File content: a header comment, then the CRD as YAML.
    pub yaml: String,
}

/// Renders one CRD as its committed file.
pub fn render(crd: &CustomResourceDefinition) -> Result<RenderedCrd, RenderError> {
    let name = crd.metadata.name.clone().ok_or(RenderError::Unnamed)?;
    let body = serde_yaml::to_string(crd).map_err(|cause| RenderError::Yaml {
        name: name.clone(),
        cause,
    })?;
    Ok(RenderedCrd {
        file_name: format!("{name}.yaml"),
        yaml: format!(
            "# Generated from crates/api by `cargo run -p ordinaut-api --bin crdgen`; do not edit.\n{body}"
        ),
    })
}

/// Every CRD rendered, in the order of [`crds`].
pub fn render_all() -> Result<Vec<RenderedCrd>, RenderError> {
    crds().iter().map(render).collect()
}

/// The committed `crds/` folder at the workspace root (found from this crate's manifest
/// directory at build time, so it works from any current directory).
pub fn default_crds_dir() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/api → the workspace root.
    manifest_dir
        .ancestors()
        .nth(2)
        .unwrap_or(manifest_dir)
        .join("crds")
}
