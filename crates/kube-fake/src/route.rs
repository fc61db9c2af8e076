//! URL routing: turns a request path into the resource, namespace, name and subresource it
//! addresses, the way the real API server lays out its REST paths.

use std::fmt;

use crate::resource::ResourceKey;

/// The API verb a request maps to (the names used by RBAC and audit logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// GET of one object.
    Get,
    /// GET of a collection.
    List,
    /// GET of a collection with `watch=true`.
    Watch,
    /// POST to a collection.
    Create,
    /// PUT of one object (kube's `replace`).
    Update,
    /// PATCH of one object (merge, JSON, strategic or server-side apply).
    Patch,
    /// DELETE of one object.
    Delete,
    /// DELETE of a collection.
    DeleteCollection,
    /// Discovery and anything else that is not a resource request.
    Other,
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Other => "other",
        })
    }
}

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    pub key: ResourceKey,
    /// `None` for cluster-wide requests (cluster-scoped resources, or all namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// What a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`.
    Discovery(Discovery),
    Resource(Route),
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Discovery {
    Version,
    CoreVersions,
    Groups,
    GroupVersion { group: String, version: String },
}

pub(crate) fn parse(path: &str) -> Target {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Target::Discovery(Discovery::Version),
        ["api"] => return Target::Discovery(Discovery::CoreVersions),
        ["apis"] => return Target::Discovery(Discovery::Groups),
        ["api", version] => {
            return Target::Discovery(Discovery::GroupVersion {
                group: String::new(),
                version: (*version).to_string(),
            });
        }
        ["apis", group, version] => {
            return Target::Discovery(Discovery::GroupVersion {
                group: (*group).to_string(),
                version: (*version).to_string(),
            });
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Target::Unknown,
    };
    let owned = |s: &&str| (*s).to_string();
    // `namespaces/{ns}/{plural}/...` is a namespaced request; `namespaces` and
    // `namespaces/{name}[/status]` address the cluster-scoped Namespace resource itself.
    let (namespace, plural, name, subresource) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if tail.len() <= 2
                && !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            (
                Some((*ns).to_string()),
                *plural,
                tail.first().map(owned),
                tail.get(1).map(owned),
            )
        }
        [plural, tail @ ..] if tail.len() <= 2 => (
            None,
            *plural,
            tail.first().map(owned),
            tail.get(1).map(owned),
        ),
        _ => return Target::Unknown,
    };
    Target::Resource(Route {
        key: ResourceKey::new(group, version, plural),
        namespace,
        name,
        subresource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Route {
        match parse(path) {
            Target::Resource(r) => r,
            other => panic!("{path} parsed as {other:?}"),
        }
    }

    #[test]
    fn namespaced_object_with_status_subresource() {
        let r = route("/apis/ordinaut.dev/v1/namespaces/ns1/tasks/a/status");
        assert_eq!(r.key, ResourceKey::new("ordinaut.dev", "v1", "tasks"));
        assert_eq!(r.namespace.as_deref(), Some("ns1"));
        assert_eq!(r.name.as_deref(), Some("a"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
    }

    #[test]
    fn core_collection_and_cluster_wide_list() {
        let r = route("/api/v1/namespaces/default/secrets");
        assert_eq!(r.key, ResourceKey::new("", "v1", "secrets"));
        assert_eq!(r.name, None);
        let r = route("/apis/ordinaut.dev/v1/tasks");
        assert_eq!(r.namespace, None);
        assert_eq!(r.name, None);
    }

    #[test]
    fn namespace_objects_are_cluster_scoped() {
        let r = route("/api/v1/namespaces/team-a");
        assert_eq!(r.key, ResourceKey::new("", "v1", "namespaces"));
        assert_eq!(r.namespace, None);
        assert_eq!(r.name.as_deref(), Some("team-a"));
    }

    #[test]
    fn discovery_and_unknown_paths() {
        assert_eq!(parse("/version"), Target::Discovery(Discovery::Version));
        assert_eq!(parse("/healthz/x/y"), Target::Unknown);
    }
}
