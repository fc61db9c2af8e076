//! An in-process fake Kubernetes API server for tests.
//!
//! A real [`kube::Client`] talks to it through a tower service, so `kube::Api`,
//! `kube::runtime::watcher`, `Controller`, `finalizer()` and the event `Recorder` run
//! unchanged. Objects live in memory as JSON; writes follow the real server's rules for what
//! an operator relies on (see below), and tests can inspect objects, the request log, inject
//! failures, expire watch history and stall one HTTP client's connection ([`Stall`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::api::{Api, PostParams};
//! use ordinaut_kube_fake::FakeApiServer;
//!
//! let fake = FakeApiServer::new();
//! // fake.register::<MyCustomResource>();  // or fake.register_crd(&MyCustomResource::crd())
//! let cms: Api<ConfigMap> = Api::default_namespaced(fake.client());
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("settings".into());
//! cms.create(&PostParams::default(), &cm).await?;
//! assert!(fake.object::<ConfigMap>("default", "settings").is_some());
//! # Ok(()) }
//! ```
//!
//! # What it does like the real server
//! * One global, monotonically increasing `resourceVersion`; `uid`, `creationTimestamp`;
//!   `generation` starts at 1 and is bumped only when something outside `metadata` (and
//!   outside `status` when the type has a status subresource) changes. Writes that change
//!   nothing are no-ops (no new resourceVersion, no watch event).
//! * list with the collection's `resourceVersion`, label selectors (equality and set-based),
//!   field selectors; watch from a resourceVersion (replay from a bounded history, then live;
//!   a too-old resourceVersion yields a watch `ERROR` event with a 410 `Expired` Status),
//!   bookmarks, `sendInitialEvents` streaming lists, selector transitions as ADDED/DELETED.
//! * create (409 `AlreadyExists`, `generateName`), get, replace (409 `Conflict` on a stale
//!   resourceVersion), delete (with finalizers: `deletionTimestamp` set and the object kept
//!   until its finalizers are empty; no new finalizers on a deleting object), delete
//!   preconditions, deletecollection, `dryRun=All`.
//! * PATCH: merge, JSON patch (a failed `test` is 422 and changes nothing), strategic merge,
//!   server-side apply; `/status` writes change only `.status`, main-resource writes ignore
//!   `.status`. Errors are `Status` bodies, so kube returns `kube::Error::Api` with the code.
//! * `PartialObjectMetadata` responses for kube's metadata-only requests; minimal discovery.
//!
//! # What is approximated
//! * Server-side apply is a JSON merge of the applied configuration (lists replace
//!   wholesale, also list-maps such as `conditions`), after removing fields the same manager
//!   applied before and no longer applies, unless another applier owns them. Ownership is
//!   tracked per manager in `metadata.managedFields` (FieldsV1, lists atomic), only for
//!   `Apply` operations; there is no conflict detection between managers (`force` is
//!   ignored) and no `Update` entries are recorded.
//! * Strategic merge patch is a plain JSON merge patch (no `patchMergeKey` list merging).
//! * Lists page with `limit`/`continue` in (namespace, name) order; every page carries the
//!   first page's resourceVersion but shows the objects as they are when it is read (the
//!   real server shows the first page's snapshot), so a watch from that version replays
//!   what changed meanwhile. A continue token older than the watch history is `410 Expired`.
//!   `resourceVersionMatch` is ignored: lists always return the current state.
//! * Namespaces need not exist, and deleting one deletes nothing else. No garbage
//!   collection of owned objects; `propagationPolicy` is ignored. No admission, no schema
//!   validation, no defaulting, no RBAC. Updates without a resourceVersion are accepted.
//! * Field selectors accept any dotted path (string comparison).
//! * Bookmarks are sent once, right after a watch's replay; watches end at
//!   `timeoutSeconds`.

#![warn(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
mod patch;
mod resource;
mod route;
mod selector;
mod server;
mod stall;
mod store;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Resource;
use serde::Serialize;
use serde_json::Value;

pub use error::ApiError;
pub use resource::{ResourceKey, ResourceType};
pub use route::Verb;
pub use server::{FakeBody, FakeService, RequestRecord};
pub use stall::Stall;

use selector::{FieldSelector, LabelSelector};
use server::{InjectedFailure, Shared};

/// A condition waited for with [`FakeApiServer::wait_until`] did not hold in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}")]
pub struct WaitTimeout {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub timeout: Duration,
}

/// The fake API server. Cheap to clone; clones share the same state.
#[derive(Clone)]
pub struct FakeApiServer {
    shared: Arc<Shared>,
}

impl Default for FakeApiServer {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for FakeApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("FakeApiServer")
            .field("resource_version", &state.rv)
            .field("types", &state.types.len())
            .finish()
    }
}

impl FakeApiServer {
    /// An empty server that serves the core kinds an operator uses: Namespaces, Secrets,
    /// ConfigMaps, core/v1 and events.k8s.io/v1 Events, ServiceAccounts, Pods, Services and
    /// coordination.k8s.io/v1 Leases. Register custom resources with [`Self::register`].
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::new()),
        }
    }

    /// A `kube::Client` whose default namespace is `default`. Must be called inside a
    /// tokio runtime (the client spawns its request buffer there).
    pub fn client(&self) -> kube::Client {
        self.client_in("default")
    }

    /// A `kube::Client` with another default namespace.
    pub fn client_in(&self, default_namespace: &str) -> kube::Client {
        kube::Client::new(self.service(), default_namespace)
    }

    /// The tower service itself, for custom client stacks.
    pub fn service(&self) -> FakeService {
        FakeService {
            shared: self.shared.clone(),
        }
    }

    /// Serves this fake over plain HTTP on `127.0.0.1` at a free port, for a process that
    /// talks to an API server through a kubeconfig (the operator binary, kubectl). Returns
    /// the address; the server runs on the current tokio runtime until it shuts down. Write
    /// a kubeconfig with [`kubeconfig_for`] pointing at it.
    pub async fn serve_http(&self) -> std::io::Result<std::net::SocketAddr> {
        Ok(self.serve_http_stallable().await?.0)
    }

    /// [`Self::serve_http`] on a listener of its own, with the [`Stall`] switch of that
    /// listener: give each client (each operator process) its own listener and stall one to
    /// hang every API call of that client only, as a real API server whose connection to it
    /// stalls.
    pub async fn serve_http_stallable(&self) -> std::io::Result<(std::net::SocketAddr, Stall)> {
        use futures::StreamExt;
        use tower::ServiceExt;
        let service = self.service();
        let stall = Stall::default();
        let switch = stall.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (service, stall) = (service.clone(), switch.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                stall.received(parts.uri.path());
                stall.open().await;
                let req =
                    http::Request::from_parts(parts, kube::client::Body::from(bytes.to_vec()));
                let Ok(res) = service.oneshot(req).await;
                res.map(|body| {
                    let frames = http_body_util::BodyStream::new(body).then(move |frame| {
                        let stall = stall.clone();
                        async move {
                            stall.open().await;
                            frame
                        }
                    });
                    axum::body::Body::new(http_body_util::StreamBody::new(frames))
                })
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((addr, stall))
    }

    /// Serves a `kube::Resource` type (scope from the type, status subresource enabled).
    pub fn register<K>(&self) -> &Self
    where
        K: Resource<DynamicType = ()>,
        K::Scope: 'static,
    {
        self.register_type(ResourceType::of::<K>())
    }

    /// Serves every served version of a CRD, with its scope and status subresource.
    pub fn register_crd(&self, crd: &CustomResourceDefinition) -> &Self {
        for rt in ResourceType::from_crd(crd) {
            self.register_type(rt);
        }
        self
    }

    /// Serves any resource type.
    pub fn register_type(&self, rt: ResourceType) -> &Self {
        self.shared.lock().register(rt);
        self
    }

    /// Keeps at most `n` changes for watches to resume from (default 10 000); older
    /// resourceVersions get 410 Gone.
    pub fn set_watch_history_limit(&self, n: usize) -> &Self {
        self.shared.lock().history_limit = n.max(1);
        self
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// The request path of an object of type `K` (`namespace` `None` for cluster-scoped
    /// types), as kube builds it: compare with [`RequestRecord::path`] or pass to
    /// [`Self::request_count`] and [`Self::fail_next`] (append `/status` for the subresource).
    pub fn object_path<K: Resource<DynamicType = ()>>(
        namespace: Option<&str>,
        name: &str,
    ) -> String {
        format!("{}/{name}", K::url_path(&(), namespace))
    }

    /// An object of type `K` as stored (`namespace` is `""` for cluster-scoped types).
    pub fn object<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        self.object_by_key(&ResourceKey::of::<K>(), namespace, name)
    }

    /// An object of any type as stored.
    pub fn object_by_key(&self, key: &ResourceKey, namespace: &str, name: &str) -> Option<Value> {
        self.shared.lock().object(key, namespace, name)
    }

    /// All objects of type `K`, across namespaces, in (namespace, name) order.
    pub fn objects<K: Resource<DynamicType = ()>>(&self) -> Vec<Value> {
        self.objects_by_key(&ResourceKey::of::<K>())
    }

    /// All objects of any type, across namespaces.
    pub fn objects_by_key(&self, key: &ResourceKey) -> Vec<Value> {
        self.shared.lock().list(
            key,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
    }

    /// Stores an object as if a client had created it (watches see ADDED), bypassing the
    /// request log and injected failures: for seeding fixtures such as Secrets.
    pub fn insert<K>(&self, obj: &K) -> Result<Value, ApiError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let body = serde_json::to_value(obj)
            .map_err(|e| ApiError::bad_request(format!("serializing object: {e}")))?;
        let ns = obj.meta().namespace.clone();
        let created = {
            let mut state = self.shared.lock();
            let rt = state.resource_type(&ResourceKey::of::<K>())?;
            let ns = if rt.namespaced {
                Some(ns.unwrap_or_else(|| "default".to_string()))
            } else {
                None
            };
            state.create(&rt, ns.as_deref(), body)?
        };
        self.shared.changed.notify_waiters();
        Ok(created)
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.lock().requests.clone()
    }

    /// How many requests with this verb went to exactly this path (no query string).
    pub fn request_count(&self, verb: Verb, path: &str) -> usize {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.verb == verb && r.path == path)
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Answers the next `times` requests with this verb and path with an error `Status` of
    /// `code` (e.g. 500, 409, 429) instead of serving them. A path ending in `*` matches as a
    /// prefix.
    pub fn fail_next(&self, verb: Verb, path: &str, times: usize, code: u16) {
        self.shared.lock().failures.push(InjectedFailure {
            verb,
            path: path.to_string(),
            remaining: times,
            code,
        });
    }

    /// Simulates compaction: forgets the watch history and makes every resourceVersion
    /// handed out so far too old, then closes all open watches. Watchers reconnecting from
    /// their last resourceVersion get a 410 `Expired` watch error and must re-list.
    pub fn expire_watch_history(&self) {
        self.shared.lock().expire_history();
        self.shared.changed.notify_waiters();
    }

    /// Ends every open watch stream (as an API server restart or timeout would); watchers
    /// resume from their last resourceVersion.
    pub fn close_watches(&self) {
        self.shared.lock().watchers.clear();
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        let mut state = self.shared.lock();
        state.watchers.retain(|tx| !tx.is_closed());
        state.watchers.len()
    }

    /// Waits until `condition` holds, re-checking after every request the server handles
    /// (and at least every 100 ms, for conditions on state outside the fake). The deadline
    /// is on tokio's clock: under `start_paused` time it may pass while other work is idle.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut condition: impl FnMut(&FakeApiServer) -> bool,
    ) -> Result<(), WaitTimeout> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if condition(self) {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(WaitTimeout {
                    what: what.to_string(),
                    timeout,
                });
            }
            let wake = deadline.min(now + Duration::from_millis(100));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    /// Waits until the object exists and satisfies `condition`; returns it.
    pub async fn wait_for_object<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        condition: impl Fn(&Value) -> bool,
    ) -> Result<Value, WaitTimeout> {
        let mut found = None;
        let what = format!(
            "{} {namespace}/{name} to satisfy the condition",
            K::kind(&())
        );
        self.wait_until(&what, timeout, |fake| {
            found = fake.object::<K>(namespace, name).filter(|o| condition(o));
            found.is_some()
        })
        .await?;
        found.ok_or(WaitTimeout { what, timeout })
    }

    /// Waits until the object is gone.
    pub async fn wait_for_deletion<K: Resource<DynamicType = ()>>(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<(), WaitTimeout> {
        let what = format!("{} {namespace}/{name} to be deleted", K::kind(&()));
        self.wait_until(&what, timeout, |fake| {
            fake.object::<K>(namespace, name).is_none()
        })
        .await
    }
}

/// A kubeconfig (YAML) whose current context talks plain HTTP to `addr` in namespace
/// `namespace`, without credentials: for [`FakeApiServer::serve_http`].
pub fn kubeconfig_for(addr: std::net::SocketAddr, namespace: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: 'http://{addr}'}}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: fake, namespace: {namespace}}}\n\
         current-context: fake\n"
    )
}
