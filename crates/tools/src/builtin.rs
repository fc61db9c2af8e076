//! Built-in tools: `core.echo`, `core.sleep`, `core.fail` (for tests, demos and error paths)
//! and `http.request` (see [`crate::http`]).

use crate::{CallContext, Tool, ToolError, ToolRegistry};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// A registry holding every built-in, with `http.request` configured by `http`.
pub fn registry(http: crate::http::HttpConfig) -> ToolRegistry {
    let mut r = ToolRegistry::new();
    r.register(Arc::new(Echo::new()));
    r.register(Arc::new(Sleep::new()));
    r.register(Arc::new(Fail::new()));
    r.register(Arc::new(crate::http::HttpRequest::new(http)));
    r
}

/// `core.echo`: returns its input unchanged.
pub struct Echo {
    schema: Value,
}

impl Echo {
    pub fn new() -> Self {
        Self {
            schema: json!({"type": "object"}),
        }
    }
}

impl Default for Echo {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for Echo {
    fn name(&self) -> &str {
        "core.echo"
    }
    fn description(&self) -> &str {
        "Returns its input unchanged."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, _ctx: &CallContext) -> Result<Value, ToolError> {
        Ok(input)
    }
}

/// `core.sleep`: waits `duration` (e.g. `"250ms"`), returning early with an error if the run
/// is cancelled. Output: `{"slept": "<duration>"}`.
pub struct Sleep {
    schema: Value,
}

impl Sleep {
    pub fn new() -> Self {
        Self {
            schema: json!({
                "type": "object",
                "required": ["duration"],
                "properties": {"duration": {"type": "string"}},
            }),
        }
    }
}

impl Default for Sleep {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for Sleep {
    fn name(&self) -> &str {
        "core.sleep"
    }
    fn description(&self) -> &str {
        "Waits for `duration` (e.g. 250ms, 5s); stops early when the run is cancelled."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let text = input
            .get("duration")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ToolError::InvalidInput("`duration` must be a string such as \"5s\"".into())
            })?;
        let d: Duration = ordinaut_schedule::duration::parse_duration(text)
            .map_err(|e| ToolError::InvalidInput(format!("duration: {e}")))?;
        tokio::select! {
            _ = tokio::time::sleep(d) => Ok(json!({"slept": text})),
            _ = ctx.cancel.cancelled() => Err(ToolError::Cancelled),
        }
    }
}

/// `core.fail`: fails with `message`. With `failTimes: N` it fails only the first N tries of
/// the step and then succeeds (returning `{"succeededOnTry": n}`), to exercise retries.
/// `retryable` (default true) marks the failure as worth retrying.
pub struct Fail {
    schema: Value,
}

impl Fail {
    pub fn new() -> Self {
        Self {
            schema: json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "failTimes": {"type": "integer", "minimum": 0},
                    "retryable": {"type": "boolean"},
                },
            }),
        }
    }
}

impl Default for Fail {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for Fail {
    fn name(&self) -> &str {
        "core.fail"
    }
    fn description(&self) -> &str {
        "Fails with `message` (the first `failTimes` tries only, when given)."
    }
    fn input_schema(&self) -> Option<&Value> {
        Some(&self.schema)
    }
    async fn call(&self, input: Value, ctx: &CallContext) -> Result<Value, ToolError> {
        let message = input
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("core.fail was asked to fail")
            .to_string();
        let retryable = input
            .get("retryable")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        match input.get("failTimes").and_then(Value::as_u64) {
            Some(n) if u64::from(ctx.step_attempt) > n => {
                Ok(json!({"succeededOnTry": ctx.step_attempt}))
            }
            _ => Err(ToolError::Failed { message, retryable }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn echo_returns_its_input() {
        let out = Echo::new()
            .call(json!({"a": [1, 2]}), &CallContext::for_test("e"))
            .await
            .unwrap();
        assert_eq!(out, json!({"a": [1, 2]}));
    }

    #[tokio::test]
    async fn fail_fails_the_first_n_tries_then_succeeds() {
        let f = Fail::new();
        let mut ctx = CallContext::for_test("f");
        let input = json!({"message": "boom", "failTimes": 2});
        for attempt in 1..=2 {
            ctx.step_attempt = attempt;
            let err = f.call(input.clone(), &ctx).await.unwrap_err();
            assert_eq!(err.to_string(), "boom");
            assert!(err.is_retryable());
        }
        ctx.step_attempt = 3;
        assert_eq!(
            f.call(input, &ctx).await.unwrap(),
            json!({"succeededOnTry": 3})
        );
        let err = f.call(json!({"retryable": false}), &ctx).await.unwrap_err();
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn sleep_stops_when_cancelled() {
        let ctx = CallContext::for_test("s");
        let cancel = ctx.cancel.clone();
        let task =
            tokio::spawn(async move { Sleep::new().call(json!({"duration": "1h"}), &ctx).await });
        cancel.cancel();
        assert_eq!(task.await.unwrap(), Err(ToolError::Cancelled));
        let err = Sleep::new()
            .call(json!({"duration": "soon"}), &CallContext::for_test("s"))
            .await
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)));
    }

    #[test]
    fn registry_holds_every_builtin() {
        let r = registry(crate::http::HttpConfig::default());
        let names: Vec<_> = r.names().collect();
        assert_eq!(
            names,
            ["core.echo", "core.fail", "core.sleep", "http.request"]
        );
    }
}
