//! Resource types the fake serves. Any group/version/plural can be registered; nothing about
//! Ordinaut's own kinds is built in.

use std::any::TypeId;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;

/// Identifies a resource collection: `(group, version, plural)`. The core group is `""`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Lower-case plural, e.g. `tasks`.
    pub plural: String,
}

impl ResourceKey {
    /// A key from its parts.
    pub fn new(group: &str, version: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            plural: plural.to_string(),
        }
    }

    /// The key of a `kube::Resource` type.
    pub fn of<K: Resource<DynamicType = ()>>() -> Self {
        Self::new(&K::group(&()), &K::version(&()), &K::plural(&()))
    }

    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for core), as the real server names resources in messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// A resource type registered with the fake server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// Where it is served.
    pub key: ResourceKey,
    /// `kind`, e.g. `Task`.
    pub kind: String,
    /// Namespaced (true) or cluster-scoped.
    pub namespaced: bool,
    /// Whether `/status` is a subresource. When it is, writes to the main resource ignore
    /// `.status`, writes to `/status` change only `.status`, and `.status` changes never bump
    /// `metadata.generation` (as for CRDs with `subresources.status`).
    pub status_subresource: bool,
}

impl ResourceType {
    /// A namespaced type with a status subresource.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str) -> Self {
        Self {
            key: ResourceKey::new(group, version, plural),
            kind: kind.to_string(),
            namespaced: true,
            status_subresource: true,
        }
    }

    /// The type of a `kube::Resource` (k8s-openapi types and `#[derive(CustomResource)]`
    /// types). Scope comes from `K::Scope`; the status subresource is assumed enabled: use
    /// [`ResourceType::from_crd`] for a CRD whose status is not a subresource.
    pub fn of<K>() -> Self
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        Self {
            key: ResourceKey::of::<K>(),
            kind: K::kind(&()).into_owned(),
            namespaced: TypeId::of::<K::Scope>() == TypeId::of::<NamespaceResourceScope>(),
            status_subresource: true,
        }
    }

    /// One type per served version of a CRD, with scope and status subresource as the CRD
    /// declares them (e.g. `Task::crd()` from `kube::CustomResourceExt`).
    pub fn from_crd(crd: &CustomResourceDefinition) -> Vec<Self> {
        let spec = &crd.spec;
        spec.versions
            .iter()
            .filter(|v| v.served)
            .map(|v| Self {
                key: ResourceKey::new(&spec.group, &v.name, &spec.names.plural),
                kind: spec.names.kind.clone(),
                namespaced: spec.scope == "Namespaced",
                status_subresource: v.subresources.as_ref().is_some_and(|s| s.status.is_some()),
            })
            .collect()
    }

    /// Mark it cluster-scoped.
    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    /// Treat `.status` as a plain field (no status subresource).
    pub fn without_status_subresource(mut self) -> Self {
        self.status_subresource = false;
        self
    }
}

/// The types every fake server starts with: the core kinds an operator reads and writes.
pub(crate) fn builtin_types() -> Vec<ResourceType> {
    use k8s_openapi::api::{coordination, core, events};
    vec![
        ResourceType::of::<core::v1::Namespace>(),
        ResourceType::of::<core::v1::Secret>(),
        ResourceType::of::<core::v1::ConfigMap>(),
        ResourceType::of::<core::v1::Event>(),
        ResourceType::of::<core::v1::ServiceAccount>(),
        ResourceType::of::<core::v1::Pod>(),
        ResourceType::of::<core::v1::Service>(),
        ResourceType::of::<events::v1::Event>(),
        ResourceType::of::<coordination::v1::Lease>(),
    ]
}
