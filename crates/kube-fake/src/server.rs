//! The HTTP side: a tower `Service` that routes kube's requests to the store, records them,
//! and injects failures on request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::patch::{self, PatchKind};
use crate::resource::ResourceType;
use crate::route::{self, Discovery, Route, Target, Verb};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::State;
use crate::watch::{self, WatchFilter, WatchStart};

/// Response body type of the fake's service.
pub type FakeBody = UnsyncBoxBody<Bytes, Infallible>;

/// One request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    /// The API verb it mapped to.
    pub verb: Verb,
    /// HTTP method.
    pub method: String,
    /// Request path without the query, e.g. `/apis/ordinaut.dev/v1/namespaces/default/tasks/a/status`.
    pub path: String,
    /// Decoded query parameters.
    pub query: HashMap<String, String>,
    /// `Content-Type` header, e.g. `application/apply-patch+yaml`.
    pub content_type: Option<String>,
    /// The `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The body parsed as JSON (or YAML for apply patches), if any.
    pub body: Option<Value>,
    /// The HTTP status answered (200 for watches, whose errors come as events).
    pub status: u16,
}

impl RequestRecord {
    /// Whether this request went to the `/status` subresource.
    pub fn is_status(&self) -> bool {
        self.path.ends_with("/status")
    }
}

/// A failure to answer instead of serving a matching request.
#[derive(Debug, Clone)]
pub(crate) struct InjectedFailure {
    pub verb: Verb,
    pub path: String,
    pub remaining: usize,
    pub code: u16,
}

impl InjectedFailure {
    fn matches(&self, verb: Verb, path: &str) -> bool {
        self.remaining > 0
            && self.verb == verb
            && match self.path.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => self.path == path,
            }
    }
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Woken after every request, so tests can wait on conditions without sleeping.
    pub changed: Notify,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State::new()),
            changed: Notify::new(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every other assertion down with it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The tower `Service` a `kube::Client` sends its requests to.
#[derive(Clone)]
pub struct FakeService {
    pub(crate) shared: Arc<Shared>,
}

impl tower::Service<Request<kube::client::Body>> for FakeService {
    type Response = Response<FakeBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            let response = handle(&shared, req).await;
            shared.changed.notify_waiters();
            Ok(response)
        })
    }
}

enum Reply {
    Json(u16, Value),
    Watch(watch::OpenWatch),
}

fn json_response(code: u16, body: &Value) -> Response<FakeBody> {
    let mut res = Response::new(Full::new(Bytes::from(body.to_string())).boxed_unsync());
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    res
}

fn verb_of(method: &Method, target: &Target, query: &HashMap<String, String>) -> Verb {
    let Target::Resource(route) = target else {
        return Verb::Other;
    };
    let named = route.name.is_some();
    match (method, named) {
        (&Method::GET, true) => Verb::Get,
        (&Method::GET, false) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            Verb::Watch
        }
        (&Method::GET, false) => Verb::List,
        (&Method::POST, false) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => Verb::Other,
    }
}

async fn handle(shared: &Shared, req: Request<kube::client::Body>) -> Response<FakeBody> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return json_response(
                400,
                &ApiError::bad_request(format!("reading request body: {e}")).to_status(),
            );
        }
    };
    let (mut record, target, partial) = parse_request(&parts, &body);
    let (verb, path) = (record.verb, record.path.clone());

    let mut state = shared.lock();
    let injected = state
        .failures
        .iter_mut()
        .find(|f| f.matches(verb, &path))
        .map(|f| {
            f.remaining -= 1;
            f.code
        });
    let reply = match injected {
        Some(code) => Err(ApiError::from_code(
            code,
            format!("injected failure for {verb} {path}"),
        )),
        None => {
            state.dry_run = record.query.get("dryRun").is_some_and(|d| d == "All");
            let reply = serve(&mut state, &target, verb, &record, &body, partial);
            state.dry_run = false;
            reply
        }
    };
    state.failures.retain(|f| f.remaining > 0);
    let response = respond(reply, &mut record);
    state.requests.push(record);
    response
}

/// The request as recorded (status not yet known), where it goes, and whether it asks for
/// metadata only (`Accept: …;as=PartialObjectMetadata`).
fn parse_request(parts: &http::request::Parts, body: &Bytes) -> (RequestRecord, Target, bool) {
    let path = parts.uri.path().to_string();
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let header_str = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    let content_type = header_str(header::CONTENT_TYPE);
    let partial =
        header_str(header::ACCEPT).is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    let target = route::parse(&path);
    let verb = verb_of(&parts.method, &target, &query);
    let record = RequestRecord {
        verb,
        method: parts.method.to_string(),
        path,
        field_manager: query.get("fieldManager").cloned(),
        query,
        content_type,
        body: if body.is_empty() {
            None
        } else if verb == Verb::Patch && record_is_apply(&parts.headers) {
            patch::parse_apply_body(body).ok()
        } else {
            serde_json::from_slice(body).ok()
        },
        status: 0,
    };
    (record, target, partial)
}

/// The HTTP response for `reply`; sets the status `record` answered.
fn respond(reply: Result<Reply, ApiError>, record: &mut RequestRecord) -> Response<FakeBody> {
    match reply {
        Ok(Reply::Json(code, value)) => {
            record.status = code;
            json_response(code, &value)
        }
        Ok(Reply::Watch(open)) => {
            record.status = 200;
            let mut res = Response::new(StreamBody::new(open.into_stream()).boxed_unsync());
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            res
        }
        Err(err) => {
            record.status = err.code;
            json_response(err.code, &err.to_status())
        }
    }
}

fn record_is_apply(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/apply-patch"))
}

/// Serves one request on `state`: discovery, or a verb on a resource ([`Call`]).
fn serve(
    state: &mut State,
    target: &Target,
    verb: Verb,
    req: &RequestRecord,
    body: &[u8],
    partial: bool,
) -> Result<Reply, ApiError> {
    let route = match target {
        Target::Discovery(d) => return Ok(Reply::Json(200, discovery(state, d)?)),
        Target::Unknown => {
            return Err(not_found(format!(
                "the server could not find the requested resource ({})",
                req.path
            )));
        }
        Target::Resource(route) => route,
    };
    let rt = state.resource_type(&route.key)?;
    let call = Call {
        status: on_status(&rt, route)?,
        rt,
        namespace: route.namespace.as_deref(),
        name: route.name.as_deref().unwrap_or_default(),
        req,
        body,
        partial,
    };
    match verb {
        Verb::Get => call.get(state),
        Verb::List => call.list(state),
        Verb::Watch => call.watch(state),
        Verb::Create => call.create(state),
        Verb::Update => call.update(state),
        Verb::Patch => call.patch(state),
        Verb::Delete => call.delete(state),
        Verb::DeleteCollection => call.delete_collection(state),
        Verb::Other => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{} is not supported on {}", req.method, req.path),
        )),
    }
}

fn not_found(message: String) -> ApiError {
    ApiError::new(404, "NotFound", message)
}

/// Whether `route` addresses the status subresource; any other subresource is not found.
fn on_status(rt: &ResourceType, route: &Route) -> Result<bool, ApiError> {
    match route.subresource.as_deref() {
        None => Ok(false),
        Some("status") if rt.status_subresource => Ok(true),
        Some(other) => Err(not_found(format!(
            "the server could not find the requested resource ({} subresource {other:?})",
            rt.key.qualified_plural()
        ))),
    }
}

/// A `…List` reply of one page of `items`, with the list's `metadata` (`resourceVersion`,
/// and `continue` / `remainingItemCount` when more pages follow).
fn list_reply(api_version: String, kind: String, page: ListPage) -> Reply {
    let mut metadata = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(token) = page.continue_token {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    Reply::Json(
        200,
        json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": metadata,
            "items": page.items,
        }),
    )
}

/// One page of a list (`limit` / `continue`), as the real server pages: in (namespace, name)
/// order, every page at the first page's resourceVersion (a watch from it replays what
/// changed while the pages were read), and a continue token older than the watch history
/// answered `410 Expired`, so the client lists again from the start.
struct ListPage {
    items: Vec<Value>,
    resource_version: u64,
    continue_token: Option<String>,
    remaining: usize,
}

impl ListPage {
    fn of(call: &Call<'_>, state: &State) -> Result<Self, ApiError> {
        let (labels, fields) = call.selectors()?;
        let limit = call
            .query("limit")
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|&l| l > 0);
        let (resource_version, after) = match call.query("continue").filter(|t| !t.is_empty()) {
            None => (state.rv, None),
            Some(t) => {
                let (rv, key) = Self::parse_token(t)?;
                if rv < state.compacted_rv {
                    return Err(ApiError::new(
                        410,
                        "Expired",
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ));
                }
                (rv, Some(key))
            }
        };
        let (items, remaining) = state.list_page(
            &call.rt.key,
            call.namespace,
            &labels,
            &fields,
            after.as_ref(),
            limit,
        );
        let continue_token = (remaining > 0).then(|| {
            let meta = items.last().map(|o| &o["metadata"]);
            let part = |f: &str| {
                meta.and_then(|m| m[f].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            format!("{resource_version}/{}/{}", part("namespace"), part("name"))
        });
        Ok(Self {
            items,
            resource_version,
            continue_token,
            remaining,
        })
    }

    /// `rv/namespace/name` (neither a namespace nor a name holds a `/`).
    fn parse_token(token: &str) -> Result<(u64, (String, String)), ApiError> {
        let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
        let mut parts = token.splitn(3, '/');
        let rv = parts.next().and_then(|r| r.parse().ok()).ok_or_else(bad)?;
        let ns = parts.next().ok_or_else(bad)?;
        let name = parts.next().ok_or_else(bad)?;
        Ok((rv, (ns.to_string(), name.to_string())))
    }
}

/// One request on a resource, resolved: what each verb reads.
struct Call<'a> {
    rt: ResourceType,
    /// `None` for cluster-wide requests.
    namespace: Option<&'a str>,
    /// Empty for collection requests.
    name: &'a str,
    /// Addressed to the status subresource.
    status: bool,
    req: &'a RequestRecord,
    body: &'a [u8],
    /// `Accept: …;as=PartialObjectMetadata`.
    partial: bool,
}

impl Call<'_> {
    fn query(&self, key: &str) -> Option<&str> {
        self.req.query.get(key).map(String::as_str)
    }

    fn selectors(&self) -> Result<(LabelSelector, FieldSelector), ApiError> {
        Ok((
            LabelSelector::parse(self.query("labelSelector").unwrap_or_default())?,
            FieldSelector::parse(self.query("fieldSelector").unwrap_or_default())?,
        ))
    }

    fn get(&self, state: &State) -> Result<Reply, ApiError> {
        let ns = State::storage_namespace(&self.rt, self.namespace)?;
        let obj = state.get(&self.rt, &ns, self.name)?;
        Ok(Reply::Json(200, watch::render(&obj, self.partial)))
    }

    fn list(&self, state: &State) -> Result<Reply, ApiError> {
        let mut page = ListPage::of(self, state)?;
        page.items = page
            .items
            .iter()
            .map(|o| watch::render(o, self.partial))
            .collect();
        let (api_version, kind) = if self.partial {
            (
                "meta.k8s.io/v1".to_string(),
                "PartialObjectMetadataList".to_string(),
            )
        } else {
            (self.rt.key.api_version(), format!("{}List", self.rt.kind))
        };
        Ok(list_reply(api_version, kind, page))
    }

    fn watch(self, state: &mut State) -> Result<Reply, ApiError> {
        let (labels, fields) = self.selectors()?;
        let timeout = self
            .query("timeoutSeconds")
            .and_then(|t| t.parse::<u64>().ok())
            .unwrap_or(1800);
        let start = WatchStart {
            resource_version: self.query("resourceVersion").map(String::from),
            send_initial_events: self.query("sendInitialEvents") == Some("true"),
            bookmarks: self.query("allowWatchBookmarks") == Some("true"),
            timeout: Duration::from_secs(timeout),
        };
        let filter = WatchFilter {
            rt: self.rt,
            namespace: self.namespace.map(String::from),
            labels,
            fields,
            partial: self.partial,
        };
        Ok(Reply::Watch(watch::open(state, filter, start)?))
    }

    fn create(&self, state: &mut State) -> Result<Reply, ApiError> {
        let obj = state.create(&self.rt, self.namespace, patch::parse_json(self.body)?)?;
        Ok(Reply::Json(201, obj))
    }

    fn update(&self, state: &mut State) -> Result<Reply, ApiError> {
        let obj = patch::parse_json(self.body)?;
        let obj = state.update(&self.rt, self.namespace, self.name, self.status, obj)?;
        Ok(Reply::Json(200, obj))
    }

    fn patch(&self, state: &mut State) -> Result<Reply, ApiError> {
        let kind = PatchKind::from_content_type(self.req.content_type.as_deref())?;
        let (obj, created) = state.patch(
            &self.rt,
            self.namespace,
            self.name,
            self.status,
            kind,
            self.body,
            self.req.field_manager.as_deref(),
        )?;
        Ok(Reply::Json(if created { 201 } else { 200 }, obj))
    }

    fn delete(&self, state: &mut State) -> Result<Reply, ApiError> {
        let options = if self.body.is_empty() {
            json!({})
        } else {
            patch::parse_json(self.body)?
        };
        let obj = state.delete(&self.rt, self.namespace, self.name, &options)?;
        Ok(Reply::Json(200, obj))
    }

    fn delete_collection(&self, state: &mut State) -> Result<Reply, ApiError> {
        let (labels, fields) = self.selectors()?;
        let doomed = state.list(&self.rt.key, self.namespace, &labels, &fields);
        let mut items = Vec::new();
        for obj in doomed {
            let obj_ns = obj.pointer("/metadata/namespace").and_then(Value::as_str);
            let obj_name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            state.delete(&self.rt, obj_ns, obj_name, &json!({}))?;
            items.push(obj);
        }
        let kind = format!("{}List", self.rt.kind);
        let page = ListPage {
            items,
            resource_version: state.rv,
            continue_token: None,
            remaining: 0,
        };
        Ok(list_reply(self.rt.key.api_version(), kind, page))
    }
}

fn discovery(state: &State, what: &Discovery) -> Result<Value, ApiError> {
    Ok(match what {
        Discovery::Version => json!({
            "major": "1",
            "minor": "34",
            "gitVersion": "v1.34.0-ordinaut-kube-fake",
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "",
            "compiler": "",
            "platform": "linux/amd64",
        }),
        Discovery::CoreVersions => json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [],
        }),
        Discovery::Groups => group_list(state),
        Discovery::GroupVersion { group, version } => resource_list(state, group, version)?,
    })
}

/// `/apis`: every group with a registered type, and its versions.
fn group_list(state: &State) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for key in state.types.keys().filter(|k| !k.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == key.group) {
            Some((_, versions)) if !versions.contains(&key.version) => {
                versions.push(key.version.clone());
            }
            Some(_) => {}
            None => groups.push((key.group.clone(), vec![key.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}/{version}` (`/api/v1` for the core group): its resources and their status
/// subresources.
fn resource_list(state: &State, group: &str, version: &str) -> Result<Value, ApiError> {
    let verbs = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let mut resources = Vec::new();
    for rt in state
        .types
        .values()
        .filter(|rt| rt.key.group == group && rt.key.version == version)
    {
        resources.push(json!({
            "name": rt.key.plural,
            "singularName": rt.kind.to_lowercase(),
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": verbs,
        }));
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.key.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return Err(not_found(
            "the server could not find the requested resource".into(),
        ));
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}
