//! Tolerant reading across versions. The API types refuse unknown fields
//! (`deny_unknown_fields`), which is what validation of a user's manifest wants; but a
//! worker reading a spec that a newer operator wrote must not fail every run because the
//! spec carries a field it does not know yet. [`task_spec_from_value`] drops the fields the
//! Task's own CRD schema does not declare (keeping free-form objects such as `params` and
//! step `with` as they are) and reads what is left, reporting what it ignored.

use crate::task::{Task, TaskSpec};
use kube::CustomResourceExt;
use serde_json::Value;
use std::sync::LazyLock;

/// The schema of `Task.spec` from the generated CRD (structural: no references).
static TASK_SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(|| {
    let crd = Task::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|s| s.pointer("/properties/spec").cloned())
        .unwrap_or(Value::Null)
});

/// Reads a stored Task spec, ignoring fields this version does not know. Returns the spec
/// and the JSON paths of the fields ignored (empty when the spec was read as written).
pub fn task_spec_from_value(raw: &Value) -> Result<(TaskSpec, Vec<String>), serde_json::Error> {
    match serde_json::from_value::<TaskSpec>(raw.clone()) {
        Ok(spec) => Ok((spec, Vec::new())),
        Err(strict) => {
            let mut pruned = raw.clone();
            let mut ignored = Vec::new();
            prune(&mut pruned, &TASK_SPEC_SCHEMA, "spec", &mut ignored);
            if ignored.is_empty() {
                return Err(strict);
            }
            serde_json::from_value::<TaskSpec>(pruned).map(|spec| (spec, ignored))
        }
    }
}

/// Removes from `value` the object keys `schema` does not declare, recording their paths.
fn prune(value: &mut Value, schema: &Value, at: &str, ignored: &mut Vec<String>) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(extra) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, v) in map.iter_mut() {
                    prune(v, extra, &format!("{at}.{k}"), ignored);
                }
                return;
            }
            let declared = declared_properties(schema);
            if declared.is_empty() {
                return;
            }
            map.retain(|k, _| {
                let known = declared.iter().any(|(name, _)| name == k);
                if !known {
                    ignored.push(format!("{at}.{k}"));
                }
                known
            });
            for (k, v) in map.iter_mut() {
                if let Some((_, s)) = declared.iter().find(|(name, _)| name == k) {
                    prune(v, s, &format!("{at}.{k}"), ignored);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(v, item, &format!("{at}[{i}]"), ignored);
                }
            }
        }
        _ => {}
    }
}

/// The properties a schema declares, its own and those of its `allOf`/`anyOf`/`oneOf` parts.
fn declared_properties(schema: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = Vec::new();
    let mut add = |s: &Value| {
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            out.extend(props.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    };
    add(schema);
    for key in ["allOf", "anyOf", "oneOf"] {
        for part in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(part);
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_from_a_newer_version_are_ignored_and_reported() {
        let raw = json!({
            "schedule": {"every": "1h", "newScheduleKnob": 3},
            "pipeline": {"steps": [{"id": "a", "uses": "core.echo", "with": {"kept": {"deep": 1}},
                                     "futureStepOption": true}]},
            "params": {"anything": {"goes": "here"}},
            "futureTopLevel": {"x": 1}
        });
        let (spec, ignored) = task_spec_from_value(&raw).unwrap();
        assert_eq!(
            ignored,
            vec![
                "spec.futureTopLevel".to_string(),
                "spec.pipeline.steps[0].futureStepOption".to_string(),
                "spec.schedule.newScheduleKnob".to_string(),
            ]
        );
        assert_eq!(spec.schedule.every.as_deref(), Some("1h"));
        assert_eq!(spec.params, Some(json!({"anything": {"goes": "here"}})));
        let steps = &spec.pipeline.unwrap().steps;
        assert_eq!(steps[0].with, Some(json!({"kept": {"deep": 1}})));
    }

    #[test]
    fn a_spec_that_is_wrong_for_other_reasons_is_still_refused() {
        let raw = json!({"schedule": {"every": 5}, "pipelineRef": "p"});
        assert!(task_spec_from_value(&raw).is_err());
        let (_, ignored) =
            task_spec_from_value(&json!({"schedule": {"every": "1h"}, "pipelineRef": "p"}))
                .unwrap();
        assert!(ignored.is_empty());
    }
}
