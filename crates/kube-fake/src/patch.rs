//! Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge (treated
//! as a merge) and server-side apply (a merge plus per-manager field tracking in
//! `metadata.managedFields`).

use json_patch::PatchOperation;
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The patch flavours the real server accepts, by `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: Option<&str>) -> Result<Self, ApiError> {
        let media = content_type
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        match media {
            "application/merge-patch+json" => Ok(Self::Merge),
            "application/strategic-merge-patch+json" => Ok(Self::Strategic),
            "application/json-patch+json" => Ok(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(Self::Apply),
            other => Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
                ),
            )),
        }
    }
}

/// Parses a JSON body (create, update, merge patches).
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))
}

/// Parses a server-side apply body, which may be YAML or JSON (JSON is YAML).
pub(crate) fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    serde_yaml::from_slice::<Value>(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML apply configuration: {e}")))
}

/// Applies an RFC 6902 JSON patch. All operations succeed or none apply. Like the real
/// server (evanphx/json-patch), a `test` of `null` against a missing path succeeds, which is
/// what kube's `finalizer()` relies on when `metadata.finalizers` is absent. A failed
/// operation is `422 Invalid`, as the real server answers.
pub(crate) fn apply_json_patch(doc: &mut Value, body: &[u8]) -> Result<(), ApiError> {
    let ops: Vec<PatchOperation> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding JSON patch: {e}")))?;
    let mut work = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        if let PatchOperation::Test(test) = op {
            let actual = work.pointer(test.path.as_str()).unwrap_or(&Value::Null);
            if *actual != test.value {
                return Err(ApiError::invalid(format!(
                    "the server rejected our request due to an error in our request: \
                     testing value {} failed (operation {i}): found {actual}, expected {}",
                    test.path, test.value
                )));
            }
            continue;
        }
        json_patch::patch(&mut work, std::slice::from_ref(op))
            .map_err(|e| ApiError::invalid(format!("JSON patch operation {i} failed: {e}")))?;
    }
    *doc = work;
    Ok(())
}

/// Metadata the server owns; an apply configuration never sets or tracks these.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// Which part of the object an apply may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApplyTarget {
    /// The `/status` subresource: only `.status`.
    Status,
    /// The main resource; `.status` is ignored when `strip_status` (status subresource on).
    Main { strip_status: bool },
}

/// Server-side apply, approximated: the part of `config` the target may change is merged
/// into `doc` (RFC 7386 semantics: maps merge, lists and scalars replace), after removing
/// fields this `manager` applied last time but no longer applies (unless another applier
/// still owns them). Ownership is recorded per manager in `metadata.managedFields` as a
/// `FieldsV1` set in which lists are atomic. Conflicts between managers are not detected.
pub(crate) fn server_side_apply(
    doc: &mut Value,
    config: &Value,
    manager: &str,
    target: ApplyTarget,
    now: &str,
) -> Result<(), ApiError> {
    if !config.is_object() {
        return Err(ApiError::bad_request(
            "apply configuration must be an object",
        ));
    }
    let scoped = scope_config(config, target);
    let new_fields = fields_of(&tracked(&scoped));
    let subresource = matches!(target, ApplyTarget::Status).then_some("status");

    let mut managed: Vec<Value> = doc
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let is_mine = |e: &Value| {
        e.get("manager").and_then(Value::as_str) == Some(manager)
            && e.get("operation").and_then(Value::as_str) == Some("Apply")
            && e.get("subresource").and_then(Value::as_str) == subresource
    };
    let mine = managed.iter().position(is_mine);
    if let Some(i) = mine {
        let old_fields = managed[i]
            .get("fieldsV1")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let others: Vec<&Value> = managed
            .iter()
            .enumerate()
            .filter(|(j, e)| *j != i && e.get("operation").and_then(Value::as_str) == Some("Apply"))
            .filter_map(|(_, e)| e.get("fieldsV1"))
            .collect();
        for path in leaves(&old_fields) {
            if !owns(&new_fields, &path) && !others.iter().any(|f| owns(f, &path)) {
                remove_path(doc, &path);
            }
        }
    }
    json_patch::merge(doc, &scoped);

    let entry = json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": config.get("apiVersion").cloned().unwrap_or(Value::Null),
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": new_fields,
    });
    let mut entry = entry;
    if let (Some(sub), Some(map)) = (subresource, entry.as_object_mut()) {
        map.insert("subresource".into(), sub.into());
    }
    match mine {
        // Unchanged ownership keeps its timestamp, so a no-op apply stays a no-op.
        Some(i) if managed[i].get("fieldsV1") == entry.get("fieldsV1") => {}
        Some(i) => managed[i] = entry,
        None => managed.push(entry),
    }
    if let Some(meta) = doc
        .as_object_mut()
        .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    {
        meta.insert("managedFields".into(), Value::Array(managed));
    }
    Ok(())
}

/// The part of an apply configuration that the target may change.
fn scope_config(config: &Value, target: ApplyTarget) -> Value {
    match target {
        ApplyTarget::Status => {
            let mut out = Map::new();
            if let Some(status) = config.get("status") {
                out.insert("status".into(), status.clone());
            }
            Value::Object(out)
        }
        ApplyTarget::Main { strip_status } => {
            let mut out = config.clone();
            if let Some(map) = out.as_object_mut() {
                if strip_status {
                    map.remove("status");
                }
                if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
                    for key in SERVER_METADATA {
                        meta.remove(*key);
                    }
                }
            }
            out
        }
    }
}

/// The fields whose ownership is tracked: not the identity of the object.
fn tracked(scoped: &Value) -> Value {
    let mut out = scoped.clone();
    if let Some(map) = out.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        let empty_meta = match map.get_mut("metadata").and_then(Value::as_object_mut) {
            Some(meta) => {
                for key in ["name", "namespace", "resourceVersion", "generateName"] {
                    meta.remove(key);
                }
                meta.is_empty()
            }
            None => false,
        };
        if empty_meta {
            map.remove("metadata");
        }
    }
    out
}

/// A `FieldsV1` set: `{"f:spec": {"f:schedule": {}}}`. Lists and scalars are leaves
/// (owned atomically); an empty map is `{".": {}}`: the map itself, none of its fields.
pub(crate) fn fields_of(value: &Value) -> Value {
    match value {
        Value::Object(map) if map.is_empty() => json!({".": {}}),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (format!("f:{k}"), fields_of(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// Every leaf path of a `FieldsV1` set, as object keys.
fn leaves(fields: &Value) -> Vec<Vec<String>> {
    fn walk(node: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let Some(map) = node.as_object() else { return };
        for (k, child) in map {
            let Some(key) = k.strip_prefix("f:") else {
                continue;
            };
            prefix.push(key.to_string());
            if child.as_object().is_some_and(Map::is_empty) {
                out.push(prefix.clone());
            } else {
                walk(child, prefix, out);
            }
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    walk(fields, &mut Vec::new(), &mut out);
    out
}

/// Whether a `FieldsV1` set owns `path` (itself or an ancestor that is a leaf).
fn owns(fields: &Value, path: &[String]) -> bool {
    let mut node = fields;
    for (depth, key) in path.iter().enumerate() {
        if depth > 0 && node.as_object().is_some_and(Map::is_empty) {
            return true;
        }
        match node.get(format!("f:{key}")) {
            Some(child) => node = child,
            None => return false,
        }
    }
    true
}

fn remove_path(doc: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = doc;
    for key in parents {
        match node.get_mut(key.as_str()) {
            Some(child) => node = child,
            None => return,
        }
    }
    if let Some(map) = node.as_object_mut() {
        map.remove(last.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn json_patch_test_of_null_on_missing_path_passes() {
        let mut doc = json!({"metadata": {"name": "a"}});
        let body = br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                        {"op":"add","path":"/metadata/finalizers","value":["x"]}]"#;
        apply_json_patch(&mut doc, body).unwrap();
        assert_eq!(doc["metadata"]["finalizers"], json!(["x"]));
    }

    #[test]
    fn failed_json_patch_test_is_invalid_and_changes_nothing() {
        let mut doc = json!({"metadata": {"finalizers": ["x"]}});
        let body = br#"[{"op":"remove","path":"/metadata/finalizers/0"},
                        {"op":"test","path":"/metadata/finalizers/0","value":"y"}]"#;
        let err = apply_json_patch(&mut doc, body).unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(doc["metadata"]["finalizers"], json!(["x"]));
    }

    #[test]
    fn apply_removes_fields_the_same_manager_stopped_applying() {
        let mut doc = json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2, "z": 3}});
        let main = ApplyTarget::Main { strip_status: true };
        server_side_apply(
            &mut doc,
            &json!({"spec": {"x": 1, "y": 2}}),
            "m1",
            main,
            NOW,
        )
        .unwrap();
        server_side_apply(&mut doc, &json!({"spec": {"y": 5}}), "m2", main, NOW).unwrap();
        server_side_apply(&mut doc, &json!({"spec": {"x": 10}}), "m1", main, NOW).unwrap();
        // x re-applied, y still owned by m2, z never applied by anyone.
        assert_eq!(doc["spec"], json!({"x": 10, "y": 5, "z": 3}));
        server_side_apply(&mut doc, &json!({"spec": {}}), "m1", main, NOW).unwrap();
        assert_eq!(doc["spec"], json!({"y": 5, "z": 3}));
    }

    #[test]
    fn status_apply_touches_only_status_and_records_subresource() {
        let mut doc = json!({"metadata": {"name": "a"}, "spec": {"x": 1}});
        let config =
            json!({"apiVersion": "g/v1", "kind": "K", "spec": {"x": 2}, "status": {"ok": true}});
        server_side_apply(&mut doc, &config, "op", ApplyTarget::Status, NOW).unwrap();
        assert_eq!(doc["spec"], json!({"x": 1}));
        assert_eq!(doc["status"], json!({"ok": true}));
        let entry = &doc["metadata"]["managedFields"][0];
        assert_eq!(entry["manager"], "op");
        assert_eq!(entry["subresource"], "status");
        assert_eq!(entry["fieldsV1"], json!({"f:status": {"f:ok": {}}}));
    }

    #[test]
    fn patch_kind_from_content_type() {
        assert_eq!(
            PatchKind::from_content_type(Some("application/apply-patch+yaml")).unwrap(),
            PatchKind::Apply
        );
        assert_eq!(
            PatchKind::from_content_type(Some("text/plain"))
                .unwrap_err()
                .code,
            415
        );
    }

    #[test]
    fn apply_body_may_be_yaml() {
        let v = parse_apply_body(b"spec:\n  x: 1\n").unwrap();
        assert_eq!(v, json!({"spec": {"x": 1}}));
    }
}
