//! `core.publish`: publishes an event on a topic; every Task `on: {topic}` starts one run for
//! it. Where events go is the caller's [`EventSink`] (the worker's writes them to the outbox,
//! see `ordinaut_store::Store::publish_event`). Like any tool it is checked against the
//! Agent's scopes (`core.publish` or `core.*`; a Task without an Agent may use it), and the
//! run's secret values are masked out of its input before it is called ([`Tool::keeps_input`]).

use crate::{CallContext, Tool, ToolError};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;

/// Where `core.publish` sends events.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Publishes `data` on `topic` with event id `id`; returns what to show as the step's
    /// output (at least the event id). A wrong topic or oversized data is
    /// [`ToolError::InvalidInput`].
    async fn publish(
        &self,
        topic: &str,
        data: &Value,
        id: &str,
        source: &str,
    ) -> Result<Value, ToolError>;
}

/// `core.publish`: input `{topic, data}` (and optionally `id`); output the published event
/// (`id`, `topic`, `stream`, `publishedAt`). Without `id`, the event id is the step's
/// idempotency key, so a retried step publishes the same event and starts nothing twice.
pub struct Publish {
    sink: Arc<dyn EventSink>,
    schema: Value,
}

impl Publish {
    pub fn new(sink: Arc<dyn EventSink>) -> Self {
        Self {
            sink,
            schema: json!({
                "type": "object",
                "required": ["topic"],
                "properties": {
                    "topic": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"},
                    "data": {},
                    "id": {"type": "string", "minLength": 1, "maxLength": 256},
                },
                "additionalProperties": false,
            }),
        }
    }
}

#[async_trait]
impl Tool for Publish {
    fn name(&self) -> &str {
        "core.publish"
    }
    fn description(&self) -> &str {
        "Publishes `data` on `topic`: each Task on that topic starts one run with it as ${params.event}."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    /// Events are read by other Tasks, `ordinaut events tail` and whoever reads the stream.
    fn keeps_input(&self) -> bool {
        true
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let topic = input
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidInput("`topic` must be a string".into()))?;
        let data = input.get("data").cloned().unwrap_or(Value::Null);
        let id = input
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| ctx.idempotency_key.clone());
        check_storable(&data, &id)?;
        let source = format!("run {}", ctx.run_id);
        self.sink.publish(topic, &data, &id, &source).await
    }
}

/// The longest event id, in characters (the schema's `maxLength`; the store refuses longer).
const MAX_ID_CHARS: usize = 256;

/// Refuses what PostgreSQL could not store for the runs the event starts (a sink may
/// report it only as a failure to retry): a NUL character in `data` or `id`, an id over
/// [`MAX_ID_CHARS`] characters.
fn check_storable(data: &Value, id: &str) -> Result<(), ToolError> {
    if has_nul(data) {
        return Err(ToolError::InvalidInput(
            "`data` holds a NUL character (\\u0000), which cannot be stored; remove it or \
             encode the data (e.g. base64)"
                .into(),
        ));
    }
    if id.is_empty() || id.contains('\0') || id.chars().nth(MAX_ID_CHARS).is_some() {
        return Err(ToolError::InvalidInput(format!(
            "`id` must be 1 to {MAX_ID_CHARS} characters without NUL"
        )));
    }
    Ok(())
}

/// Whether a string or object key anywhere in `v` holds a NUL character.
fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_or_ids_postgresql_cannot_store_are_invalid_input() {
        for (data, id) in [
            (json!({"x": "a\u{0}"}), "e1".to_string()),
            (json!([{"k\u{0}": 1}]), "e1".to_string()),
            (json!({}), "a\u{0}".to_string()),
            (json!({}), "x".repeat(257)),
        ] {
            assert!(
                matches!(check_storable(&data, &id), Err(ToolError::InvalidInput(_))),
                "{data} {id}"
            );
        }
        assert!(check_storable(&json!({"x": "ü"}), &"é".repeat(256)).is_ok());
    }
}
