//! Tolerant reading across versions. The API types refuse unknown fields
//! (`deny_unknown_fields`), which is what validation of a user's manifest wants; but a
//! worker or the gateway reading a projection that a newer operator wrote must not fail
//! because it carries a field this version does not know yet. [`task_spec_from_value`],
//! [`pipeline_spec_from_value`], [`agent_spec_from_value`] and
//! [`mcp_server_spec_from_value`] drop the fields the kind's own CRD schema does not declare
//! (keeping free-form objects such as `params` and step `with` as they are) and read what is
//! left, reporting what they ignored. A value that is wrong for another reason (a known
//! field of the wrong type) is still refused.

use crate::agent::{Agent, AgentSpec};
use crate::mcp_server::{McpServer, McpServerSpec};
use crate::pipeline::{Pipeline, PipelineSpec};
use crate::task::{Task, TaskSpec};
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::LazyLock;

/// The schema of a kind's `spec` from its generated CRD (structural: no references).
fn spec_schema<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    crd.spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .and_then(|s| serde_json::to_value(s).ok())
        .and_then(|s| s.pointer("/properties/spec").cloned())
        .unwrap_or(Value::Null)
}

static TASK_SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(spec_schema::<Task>);
static PIPELINE_SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(spec_schema::<Pipeline>);
static AGENT_SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(spec_schema::<Agent>);
static MCP_SERVER_SPEC_SCHEMA: LazyLock<Value> = LazyLock::new(spec_schema::<McpServer>);

/// Reads a stored Task spec, ignoring fields this version does not know. Returns the spec
/// and the JSON paths of the fields ignored (empty when the spec was read as written).
pub fn task_spec_from_value(raw: &Value) -> Result<(TaskSpec, Vec<String>), serde_json::Error> {
    read(raw, &TASK_SPEC_SCHEMA)
}

/// [`task_spec_from_value`] for a Pipeline's spec.
pub fn pipeline_spec_from_value(
    raw: &Value,
) -> Result<(PipelineSpec, Vec<String>), serde_json::Error> {
    read(raw, &PIPELINE_SPEC_SCHEMA)
}

/// [`task_spec_from_value`] for an Agent's spec (its projection in `agents`).
pub fn agent_spec_from_value(raw: &Value) -> Result<(AgentSpec, Vec<String>), serde_json::Error> {
    read(raw, &AGENT_SPEC_SCHEMA)
}

/// [`task_spec_from_value`] for an McpServer's spec (its projection in `mcp_servers`).
pub fn mcp_server_spec_from_value(
    raw: &Value,
) -> Result<(McpServerSpec, Vec<String>), serde_json::Error> {
    read(raw, &MCP_SERVER_SPEC_SCHEMA)
}

/// Reads `raw` as written; failing that, without the fields `schema` does not declare.
fn read<T: DeserializeOwned>(
    raw: &Value,
    schema: &Value,
) -> Result<(T, Vec<String>), serde_json::Error> {
    match serde_json::from_value::<T>(raw.clone()) {
        Ok(spec) => Ok((spec, Vec::new())),
        Err(strict) => {
            let mut pruned = raw.clone();
            let mut ignored = Vec::new();
            prune(&mut pruned, schema, "spec", &mut ignored);
            if ignored.is_empty() {
                return Err(strict);
            }
            serde_json::from_value::<T>(pruned).map(|spec| (spec, ignored))
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

    #[test]
    fn a_pipeline_from_a_newer_version_is_read_without_its_unknown_fields() {
        let raw = json!({
            "steps": [{"id": "a", "uses": "core.echo", "with": {"free": {"x": 1}},
                       "retry": {"attempts": 2, "futureJitter": "full"},
                       "futureStepOption": 1}],
            "futurePipelineKnob": true
        });
        let (spec, ignored) = pipeline_spec_from_value(&raw).unwrap();
        assert_eq!(
            ignored,
            vec![
                "spec.futurePipelineKnob".to_string(),
                "spec.steps[0].futureStepOption".to_string(),
                "spec.steps[0].retry.futureJitter".to_string(),
            ]
        );
        assert_eq!(spec.steps[0].with, Some(json!({"free": {"x": 1}})));
        assert!(pipeline_spec_from_value(&json!({"steps": "not a list"})).is_err());
    }

    #[test]
    fn an_agent_from_a_newer_version_keeps_its_scopes() {
        let raw = json!({"scopes": ["tasks:read"], "futureAgentKnob": {"on": true}});
        let (spec, ignored) = agent_spec_from_value(&raw).unwrap();
        assert_eq!(ignored, vec!["spec.futureAgentKnob".to_string()]);
        assert_eq!(spec.scopes, vec!["tasks:read".to_string()]);
        assert!(agent_spec_from_value(&json!({"scopes": "tasks:read"})).is_err());
    }

    #[test]
    fn an_mcp_server_from_a_newer_version_keeps_its_transport() {
        let raw = json!({
            "transport": {"http": {"url": "http://tools:8080/mcp", "futureHttpKnob": 3}},
            "futureServerKnob": "x"
        });
        let (spec, ignored) = mcp_server_spec_from_value(&raw).unwrap();
        assert_eq!(
            ignored,
            vec![
                "spec.futureServerKnob".to_string(),
                "spec.transport.http.futureHttpKnob".to_string(),
            ]
        );
        let http = spec.transport.http.unwrap();
        assert_eq!(http.url, "http://tools:8080/mcp");
        assert!(mcp_server_spec_from_value(&json!({"transport": {"http": {"url": 5}}})).is_err());
    }
}
