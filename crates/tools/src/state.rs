//! `core.state.get` / `core.state.put`: a pipeline's durable memory (a cursor, what it sent
//! last time), kept between runs. The keys belong to the Task's Agent when the Task names
//! one (so the Agent reads them through the gateway too), else to the Task itself. Where the
//! state lives is the caller's [`StateBackend`] (the worker's writes to PostgreSQL, see
//! `ordinaut_store::state`). Like any tool they are checked against the Agent's scopes
//! (`core.state.*` or `core.*`; a Task without an Agent may use them on its own keys), and
//! the run's secret values are masked out of what `core.state.put` writes
//! ([`Tool::keeps_input`]): a secret never reaches agent memory.
//!
//! The read-then-write pattern: `core.state.get` returns `version` 0 for a missing key, and
//! `core.state.put` with `ifVersion` set to the version read writes only if no one else wrote
//! in between (0: only if still missing); a conflict fails the step without retrying it.

use crate::{CallContext, Tool, ToolError};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A write asked for by `core.state.put`.
#[derive(Debug, Clone, PartialEq)]
pub struct PutRequest {
    pub key: String,
    pub value: Value,
    /// `None`: unconditional; `Some(0)`: only if missing; `Some(n)`: only at version `n`.
    pub if_version: Option<i64>,
    pub ttl: Option<Duration>,
}

/// Where `core.state.*` keep their keys. The owner and namespace come from the call's
/// context ([`owner_of`]).
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// `{key, found, value, version, expiresAt}`; a missing key is `found: false`,
    /// `value: null`, `version: 0`.
    async fn get(&self, ctx: &CallContext, key: &str) -> Result<Value, ToolError>;
    /// `{key, version, previousVersion, expiresAt}`; a compare-and-set conflict is a
    /// non-retryable [`ToolError::Failed`] naming the current version.
    async fn put(&self, ctx: &CallContext, req: PutRequest) -> Result<Value, ToolError>;
}

/// Who owns the keys a call reads and writes: `agent:<name>` for a Task with an Agent, else
/// `task:<name>`.
pub fn owner_of(ctx: &CallContext) -> String {
    match &ctx.agent {
        Some(agent) => format!("agent:{agent}"),
        None => format!("task:{}", ctx.task),
    }
}

const KEY_SCHEMA: &str = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,255}$";

/// `core.state.get`: input `{key, default?}`.
pub struct StateGet {
    backend: Arc<dyn StateBackend>,
    schema: Value,
}

/// `core.state.put`: input `{key, value, ifVersion?, ttl?}`.
pub struct StatePut {
    backend: Arc<dyn StateBackend>,
    schema: Value,
}

/// Both tools on one backend.
pub fn tools(backend: Arc<dyn StateBackend>) -> [Arc<dyn Tool>; 2] {
    [
        Arc::new(StateGet {
            backend: backend.clone(),
            schema: json!({
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string", "pattern": KEY_SCHEMA},
                    "default": {},
                },
                "additionalProperties": false,
            }),
        }),
        Arc::new(StatePut {
            backend,
            schema: json!({
                "type": "object",
                "required": ["key", "value"],
                "properties": {
                    "key": {"type": "string", "pattern": KEY_SCHEMA},
                    "value": {},
                    "ifVersion": {"type": "integer", "minimum": 0},
                    "ttl": {"type": "string"},
                },
                "additionalProperties": false,
            }),
        }),
    ]
}

fn key_of(input: &Value) -> Result<&str, ToolError> {
    input
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| ToolError::InvalidInput("`key` must be a string".into()))
}

#[async_trait]
impl Tool for StateGet {
    fn name(&self) -> &str {
        "core.state.get"
    }
    fn description(&self) -> &str {
        "Reads a key of the Task's (or its Agent's) durable state: {found, value, version}; a missing key gives `default` (or null) and version 0."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let key = key_of(&input)?;
        let mut out = self.backend.get(ctx, key).await?;
        if out.get("found") == Some(&Value::Bool(false))
            && let Some(default) = input.get("default")
        {
            out["value"] = default.clone();
        }
        Ok(out)
    }
}

#[async_trait]
impl Tool for StatePut {
    fn name(&self) -> &str {
        "core.state.put"
    }
    fn description(&self) -> &str {
        "Writes a key of the Task's (or its Agent's) durable state; `ifVersion` (from core.state.get, 0: only if missing) makes it a compare-and-set, `ttl` (e.g. 7d) lets it expire."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    /// Agent memory is read through the gateway and by later runs.
    fn keeps_input(&self) -> bool {
        true
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let key = key_of(&input)?.to_string();
        let value = input
            .get("value")
            .cloned()
            .ok_or_else(|| ToolError::InvalidInput("`value` is required".into()))?;
        let if_version = match input.get("ifVersion") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|v| *v >= 0).ok_or_else(|| {
                ToolError::InvalidInput(
                    "`ifVersion` must be 0 (only if missing) or a version from core.state.get"
                        .into(),
                )
            })?),
        };
        let ttl = match input.get("ttl").and_then(Value::as_str) {
            None => None,
            Some(t) => Some(
                ordinaut_schedule::duration::parse_duration(t)
                    .map_err(|e| ToolError::InvalidInput(format!("ttl: {e}")))?,
            ),
        };
        let req = PutRequest {
            key,
            value,
            if_version,
            ttl,
        };
        self.backend.put(ctx, req).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Mutex;

    /// Remembers the last write per owner/key.
    #[derive(Default)]
    struct Memory(Mutex<Vec<(String, PutRequest)>>);

    #[async_trait]
    impl StateBackend for Memory {
        async fn get(&self, ctx: &CallContext, key: &str) -> Result<Value, ToolError> {
            let owner = owner_of(ctx);
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(o, r)| *o == owner && r.key == key)
                .map(|(_, r)| r.value.clone());
            Ok(match found {
                Some(v) => json!({"key": key, "found": true, "value": v, "version": 1}),
                None => json!({"key": key, "found": false, "value": null, "version": 0}),
            })
        }
        async fn put(&self, ctx: &CallContext, req: PutRequest) -> Result<Value, ToolError> {
            let key = req.key.clone();
            self.0.lock().unwrap().push((owner_of(ctx), req));
            Ok(json!({"key": key, "version": 1}))
        }
    }

    #[tokio::test]
    async fn put_reads_its_options_and_get_falls_back_to_the_default() {
        let memory = Arc::new(Memory::default());
        let [get, put] = tools(memory.clone());
        let ctx = CallContext::for_test("s");
        let out = get
            .call(json!({"key": "cursor", "default": 0}), &ctx)
            .await
            .unwrap();
        assert_eq!(out["value"], 0);
        assert_eq!(out["version"], 0);
        put.call(
            json!({"key": "cursor", "value": 42, "ifVersion": 0, "ttl": "7d"}),
            &ctx,
        )
        .await
        .unwrap();
        let (owner, req) = memory.0.lock().unwrap()[0].clone();
        assert_eq!(owner, "agent:test-agent");
        assert_eq!(req.if_version, Some(0));
        assert_eq!(req.ttl, Some(Duration::from_secs(7 * 86_400)));
        let out = get.call(json!({"key": "cursor"}), &ctx).await.unwrap();
        assert_eq!(out["value"], 42);
        let err = put
            .call(json!({"key": "k", "value": 1, "ttl": "soon"}), &ctx)
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn a_task_without_an_agent_owns_its_keys() {
        let mut ctx = CallContext::for_test("s");
        ctx.agent = None;
        ctx.task = "report".into();
        assert_eq!(owner_of(&ctx), "task:report");
    }
}
