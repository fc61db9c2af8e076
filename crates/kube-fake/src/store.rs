//! The in-memory object store: objects as JSON, one global `resourceVersion`, the bounded
//! change history that watches replay from, and the write rules of the real server
//! (generation, finalizers, status subresource, optimistic concurrency).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedSender;

use crate::error::ApiError;
use crate::patch::{self, ApplyTarget, PatchKind};
use crate::resource::{ResourceKey, ResourceType, builtin_types};
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::{InjectedFailure, RequestRecord};

/// Default number of changes kept for watches to resume from.
pub(crate) const DEFAULT_HISTORY_LIMIT: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed write, as watches see it.
#[derive(Debug)]
pub(crate) struct Change {
    pub rv: u64,
    pub key: ResourceKey,
    pub namespace: String,
    pub kind: ChangeKind,
    pub object: Value,
    /// The object before a modification (selector-filtered watches turn a change into or
    /// out of the selection into ADDED/DELETED, as the real server does).
    pub previous: Option<Value>,
}

type Objects = BTreeMap<(String, String), Value>;

pub(crate) struct State {
    pub types: BTreeMap<ResourceKey, ResourceType>,
    objects: BTreeMap<ResourceKey, Objects>,
    pub rv: u64,
    pub history: VecDeque<Arc<Change>>,
    pub history_limit: usize,
    /// Watches from a resourceVersion older than this get `410 Gone`.
    pub compacted_rv: u64,
    pub watchers: Vec<UnboundedSender<Arc<Change>>>,
    pub requests: Vec<RequestRecord>,
    pub failures: Vec<InjectedFailure>,
    /// Set for the duration of a `dryRun=All` request: writes are computed, not stored.
    pub dry_run: bool,
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let map = obj.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("just made an object")
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// Everything that counts as the object's desired state for `metadata.generation`.
fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(map) = out.as_object_mut() {
        for key in ["metadata", "apiVersion", "kind"] {
            map.remove(key);
        }
        if rt.status_subresource {
            map.remove("status");
        }
    }
    out
}

impl State {
    pub fn new() -> Self {
        let mut state = Self {
            types: BTreeMap::new(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: DEFAULT_HISTORY_LIMIT,
            compacted_rv: 0,
            watchers: Vec::new(),
            requests: Vec::new(),
            failures: Vec::new(),
            dry_run: false,
        };
        for rt in builtin_types() {
            state.register(rt);
        }
        state
    }

    pub fn register(&mut self, rt: ResourceType) {
        self.objects.entry(rt.key.clone()).or_default();
        self.types.insert(rt.key.clone(), rt);
    }

    pub fn resource_type(&self, key: &ResourceKey) -> Result<ResourceType, ApiError> {
        self.types
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found_resource(key))
    }

    /// The storage namespace of a request: `""` for cluster-scoped types; namespaced types
    /// need one for object-level requests.
    pub fn storage_namespace(
        rt: &ResourceType,
        namespace: Option<&str>,
    ) -> Result<String, ApiError> {
        match (rt.namespaced, namespace) {
            (true, Some(ns)) => Ok(ns.to_string()),
            (false, None) => Ok(String::new()),
            (true, None) => Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "{} is namespaced: the request path needs /namespaces/{{ns}}/",
                    rt.key.qualified_plural()
                ),
            )),
            (false, Some(_)) => Err(ApiError::new(
                404,
                "NotFound",
                format!(
                    "{} is cluster-scoped: the request path must not name a namespace",
                    rt.key.qualified_plural()
                ),
            )),
        }
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&rt.key)
            .and_then(|objs| objs.get(&(ns.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.key.qualified_plural(), name))
    }

    pub fn object(&self, key: &ResourceKey, ns: &str, name: &str) -> Option<Value> {
        self.objects
            .get(key)?
            .get(&(ns.to_string(), name.to_string()))
            .cloned()
    }

    /// Objects of a type, optionally in one namespace and filtered by selectors, in
    /// (namespace, name) order.
    pub fn list(
        &self,
        key: &ResourceKey,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.list_page(key, ns, labels, fields, None, None).0
    }

    /// Like [`State::list`], only the objects after `after` (a (namespace, name) key), at
    /// most `limit` of them; with how many more match.
    pub fn list_page(
        &self,
        key: &ResourceKey,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        after: Option<&(String, String)>,
        limit: Option<usize>,
    ) -> (Vec<Value>, usize) {
        use std::ops::Bound;
        let Some(objs) = self.objects.get(key) else {
            return (Vec::new(), 0);
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut matching = objs
            .range((from, Bound::Unbounded))
            .filter(|((obj_ns, _), _)| ns.is_none_or(|ns| ns == obj_ns))
            .filter(|(_, obj)| labels.matches(obj) && fields.matches(obj))
            .map(|(_, obj)| obj);
        let page: Vec<Value> = matching
            .by_ref()
            .take(limit.unwrap_or(usize::MAX))
            .cloned()
            .collect();
        (page, matching.count())
    }

    /// The resourceVersion of the next write (not consumed by a dry run).
    fn next_rv(&mut self) -> u64 {
        if self.dry_run {
            return self.rv + 1;
        }
        self.rv += 1;
        self.rv
    }

    fn emit(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_rv = dropped.rv;
            }
        }
        self.watchers.retain(|tx| tx.send(change.clone()).is_ok());
    }

    /// Forgets all history and makes every resourceVersion seen so far too old to watch
    /// from; open watches are closed, so watchers must re-list.
    pub fn expire_history(&mut self) {
        let rv = self.next_rv();
        self.compacted_rv = rv;
        self.history.clear();
        self.watchers.clear();
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut body: Value,
    ) -> Result<Value, ApiError> {
        if !body.is_object() {
            return Err(ApiError::bad_request("request body must be a JSON object"));
        }
        let ns = Self::storage_namespace(rt, ns)?;
        if let Some(body_ns) = meta_str(&body, "namespace")
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match (meta_str(&body, "name"), meta_str(&body, "generateName")) {
            (Some(name), _) if !name.is_empty() => name.to_string(),
            (_, Some(prefix)) if !prefix.is_empty() => {
                let suffix = uuid::Uuid::new_v4().simple().to_string();
                format!("{prefix}{}", &suffix[..5])
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "{} is invalid: metadata.name: Required value: name or generateName is required",
                    rt.kind
                )));
            }
        };
        if self.object(&rt.key, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.key.qualified_plural(), &name));
        }
        if rt.status_subresource
            && let Some(map) = body.as_object_mut()
        {
            map.remove("status");
        }
        if let Some(map) = body.as_object_mut() {
            map.insert("apiVersion".into(), rt.key.api_version().into());
            map.insert("kind".into(), rt.kind.clone().into());
        }
        let rv = self.next_rv();
        let m = meta_mut(&mut body);
        m.insert("name".into(), name.clone().into());
        if rt.namespaced {
            m.insert("namespace".into(), ns.clone().into());
        } else {
            m.remove("namespace");
        }
        m.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
        m.insert("creationTimestamp".into(), now().into());
        m.insert("generation".into(), 1.into());
        m.insert("resourceVersion".into(), rv.to_string().into());
        m.remove("deletionTimestamp");
        m.remove("deletionGracePeriodSeconds");
        if self.dry_run {
            return Ok(body);
        }
        self.objects
            .entry(rt.key.clone())
            .or_default()
            .insert((ns.clone(), name), body.clone());
        self.emit(Change {
            rv,
            key: rt.key.clone(),
            namespace: ns,
            kind: ChangeKind::Added,
            object: body.clone(),
            previous: None,
        });
        Ok(body)
    }

    /// Commits `new` as the next state of `old`, enforcing what a client cannot change.
    /// A write that changes nothing is a no-op: no new resourceVersion, no watch event.
    fn commit(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: Value,
        mut new: Value,
    ) -> Result<Value, ApiError> {
        if !new.is_object() {
            return Err(ApiError::bad_request("object must be a JSON object"));
        }
        let old_meta = meta(&old).cloned().unwrap_or_default();
        let m = meta_mut(&mut new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "resourceVersion",
        ] {
            match old_meta.get(field) {
                Some(v) => m.insert(field.into(), v.clone()),
                None => m.remove(field),
            };
        }
        m.insert("name".into(), name.into());
        if rt.namespaced {
            m.insert("namespace".into(), ns.into());
        }
        if let Some(map) = new.as_object_mut() {
            map.insert("apiVersion".into(), rt.key.api_version().into());
            map.insert("kind".into(), rt.kind.clone().into());
        }
        if is_deleting(&old) {
            let before = finalizers(&old);
            if finalizers(&new).iter().any(|f| !before.contains(f)) {
                return Err(ApiError::invalid(format!(
                    "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
                    rt.kind
                )));
            }
        }
        if new == old {
            return Ok(old);
        }
        if spec_part(rt, &old) != spec_part(rt, &new) {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), (generation + 1).into());
        }
        let rv = self.next_rv();
        meta_mut(&mut new).insert("resourceVersion".into(), rv.to_string().into());
        if self.dry_run {
            return Ok(new);
        }
        let id = (ns.to_string(), name.to_string());
        let kind = if is_deleting(&new) && finalizers(&new).is_empty() {
            if let Some(objs) = self.objects.get_mut(&rt.key) {
                objs.remove(&id);
            }
            ChangeKind::Deleted
        } else {
            self.objects
                .entry(rt.key.clone())
                .or_default()
                .insert(id, new.clone());
            ChangeKind::Modified
        };
        self.emit(Change {
            rv,
            key: rt.key.clone(),
            namespace: ns.to_string(),
            kind,
            object: new.clone(),
            previous: Some(old),
        });
        Ok(new)
    }

    fn check_resource_version(
        rt: &ResourceType,
        name: &str,
        old: &Value,
        sent: Option<&str>,
    ) -> Result<(), ApiError> {
        match sent {
            Some(rv) if !rv.is_empty() && Some(rv) != meta_str(old, "resourceVersion") => {
                Err(ApiError::conflict(&rt.key.qualified_plural(), name))
            }
            _ => Ok(()),
        }
    }

    /// PUT. Unconditional updates (no resourceVersion in the body) are allowed.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        status: bool,
        body: Value,
    ) -> Result<Value, ApiError> {
        let ns = Self::storage_namespace(rt, ns)?;
        let old = self.get(rt, &ns, name)?;
        if let Some(body_name) = meta_str(&body, "name")
            && body_name != name
        {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        Self::check_resource_version(rt, name, &old, meta_str(&body, "resourceVersion"))?;
        let new = if status {
            with_status_of(&old, &body)
        } else {
            let mut new = body;
            if rt.status_subresource {
                copy_status(&old, &mut new);
            }
            if meta(&new).is_none_or(|m| !m.contains_key("managedFields"))
                && let Some(mf) = meta(&old).and_then(|m| m.get("managedFields"))
            {
                meta_mut(&mut new).insert("managedFields".into(), mf.clone());
            }
            new
        };
        self.commit(rt, &ns, name, old, new)
    }

    /// PATCH in any flavour. Returns the object and whether it was created (server-side
    /// apply creates absent objects on the main resource).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        status: bool,
        kind: PatchKind,
        body: &[u8],
        field_manager: Option<&str>,
    ) -> Result<(Value, bool), ApiError> {
        let ns = Self::storage_namespace(rt, ns)?;
        let existing = self.object(&rt.key, &ns, name);
        if kind == PatchKind::Apply {
            let manager = field_manager.filter(|m| !m.is_empty()).ok_or_else(|| {
                ApiError::bad_request(
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                )
            })?;
            let config = patch::parse_apply_body(body)?;
            if let Some(cfg_name) = meta_str(&config, "name")
                && cfg_name != name
            {
                return Err(ApiError::bad_request(
                    "the name of the object does not match the name on the URL",
                ));
            }
            let target = if status {
                patch::ApplyTarget::Status
            } else {
                ApplyTarget::Main {
                    strip_status: rt.status_subresource,
                }
            };
            let Some(old) = existing else {
                if status {
                    return Err(ApiError::not_found(&rt.key.qualified_plural(), name));
                }
                let mut doc = json!({"metadata": {"name": name}});
                patch::server_side_apply(&mut doc, &config, manager, target, &now())?;
                let ns_opt = rt.namespaced.then_some(ns.as_str());
                return Ok((self.create(rt, ns_opt, doc)?, true));
            };
            let mut doc = old.clone();
            patch::server_side_apply(&mut doc, &config, manager, target, &now())?;
            return self.finish_patch(rt, &ns, name, status, old, doc);
        }
        let old = existing.ok_or_else(|| ApiError::not_found(&rt.key.qualified_plural(), name))?;
        let mut doc = old.clone();
        match kind {
            PatchKind::Merge | PatchKind::Strategic => {
                json_patch::merge(&mut doc, &patch::parse_json(body)?);
            }
            PatchKind::Json => patch::apply_json_patch(&mut doc, body)?,
            PatchKind::Apply => unreachable!("handled above"),
        }
        self.finish_patch(rt, &ns, name, status, old, doc)
    }

    fn finish_patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        status: bool,
        old: Value,
        doc: Value,
    ) -> Result<(Value, bool), ApiError> {
        Self::check_resource_version(rt, name, &old, meta_str(&doc, "resourceVersion"))?;
        let new = if status {
            let mut new = with_status_of(&old, &doc);
            match meta(&doc).and_then(|m| m.get("managedFields")) {
                Some(mf) => meta_mut(&mut new).insert("managedFields".into(), mf.clone()),
                None => meta_mut(&mut new).remove("managedFields"),
            };
            new
        } else {
            let mut new = doc;
            if rt.status_subresource {
                copy_status(&old, &mut new);
            }
            new
        };
        Ok((self.commit(rt, ns, name, old, new)?, false))
    }

    /// DELETE. With finalizers the object is only marked (`deletionTimestamp`) and returned;
    /// without, it is removed and a `Status` of `Success` is returned.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let ns = Self::storage_namespace(rt, ns)?;
        let old = self.get(rt, &ns, name)?;
        let pre = options.get("preconditions");
        for (field, label) in [("uid", "UID"), ("resourceVersion", "ResourceVersion")] {
            if let Some(want) = pre.and_then(|p| p.get(field)).and_then(Value::as_str) {
                let have = meta_str(&old, field).unwrap_or_default();
                if want != have {
                    return Err(ApiError::new(
                        409,
                        "Conflict",
                        format!(
                            "Precondition failed: {label} in precondition: {want}, {label} in object meta: {have}"
                        ),
                    ));
                }
            }
        }
        if !finalizers(&old).is_empty() {
            if is_deleting(&old) {
                return Ok(old);
            }
            let mut new = old.clone();
            let m = meta_mut(&mut new);
            m.insert("deletionTimestamp".into(), now().into());
            m.insert("deletionGracePeriodSeconds".into(), 0.into());
            let rv = self.next_rv();
            meta_mut(&mut new).insert("resourceVersion".into(), rv.to_string().into());
            if self.dry_run {
                return Ok(new);
            }
            self.objects
                .entry(rt.key.clone())
                .or_default()
                .insert((ns.clone(), name.to_string()), new.clone());
            self.emit(Change {
                rv,
                key: rt.key.clone(),
                namespace: ns,
                kind: ChangeKind::Modified,
                object: new.clone(),
                previous: Some(old),
            });
            return Ok(new);
        }
        let rv = self.next_rv();
        let mut gone = old.clone();
        meta_mut(&mut gone).insert("resourceVersion".into(), rv.to_string().into());
        let status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                "group": rt.key.group,
                "kind": rt.key.plural,
                "uid": meta_str(&old, "uid"),
            },
        });
        if self.dry_run {
            return Ok(status);
        }
        if let Some(objs) = self.objects.get_mut(&rt.key) {
            objs.remove(&(ns.clone(), name.to_string()));
        }
        self.emit(Change {
            rv,
            key: rt.key.clone(),
            namespace: ns,
            kind: ChangeKind::Deleted,
            object: gone,
            previous: Some(old),
        });
        Ok(status)
    }
}

/// `old` with `.status` taken from `src` (absent in `src` means removed).
fn with_status_of(old: &Value, src: &Value) -> Value {
    let mut new = old.clone();
    if let Some(map) = new.as_object_mut() {
        match src.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
    new
}

fn copy_status(from: &Value, to: &mut Value) {
    if let Some(map) = to.as_object_mut() {
        match from.get("status") {
            Some(s) => map.insert("status".into(), s.clone()),
            None => map.remove("status"),
        };
    }
}
