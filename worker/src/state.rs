//! The worker's `core.state.*` backend: keys in PostgreSQL through `ordinaut_store::state`,
//! owned by the Task's Agent (else the Task) in the Task's namespace, written by the actor
//! `task:<namespace>/<name>` with the run id as the audit entry's correlation id.

use async_trait::async_trait;
use ordinaut_store::{StateError, StateOwner, StatePut, StateRef, Store};
use ordinaut_tools::state::{PutRequest, StateBackend};
use ordinaut_tools::{CallContext, Tool, ToolError};
use serde_json::{Value, json};
use std::sync::Arc;

/// Reads and writes through the store.
pub struct StoreState(pub Store);

fn at(ctx: &CallContext, key: &str) -> StateRef {
    let owner = match &ctx.agent {
        Some(agent) => StateOwner::Agent(agent.clone()),
        None => StateOwner::Task(ctx.task.clone()),
    };
    StateRef::new(&ctx.namespace, owner, key)
}

fn tool_error(e: StateError) -> ToolError {
    match e {
        StateError::Store(s) if s.is_transient() => ToolError::retryable(s.to_string()),
        StateError::Store(s) => ToolError::Failed {
            message: s.to_string(),
            retryable: false,
        },
        // Conflicts and limits: the same write would fail again.
        StateError::Conflict { .. } | StateError::TooManyKeys { .. } => ToolError::Failed {
            message: e.to_string(),
            retryable: false,
        },
        other => ToolError::InvalidInput(other.to_string()),
    }
}

#[async_trait]
impl StateBackend for StoreState {
    async fn get(&self, ctx: &CallContext, key: &str) -> Result<Value, ToolError> {
        let entry = self.0.state_get(&at(ctx, key)).await.map_err(tool_error)?;
        Ok(match entry {
            Some(e) => json!({
                "key": key, "found": true, "value": e.value, "version": e.version,
                "expiresAt": e.expires_at,
            }),
            None => json!({"key": key, "found": false, "value": null, "version": 0}),
        })
    }

    async fn put(&self, ctx: &CallContext, req: PutRequest) -> Result<Value, ToolError> {
        let at = at(ctx, &req.key);
        let actor = format!("task:{}/{}", ctx.namespace, ctx.task);
        let correlation = ctx.run_id.to_string();
        let put = StatePut {
            at: &at,
            value: &req.value,
            if_version: req.if_version,
            ttl: req.ttl,
            actor: &actor,
            correlation_id: Some(&correlation),
        };
        let entry = self.0.state_put(&put).await.map_err(tool_error)?;
        Ok(json!({
            "key": req.key,
            "owner": at.owner.to_string(),
            "version": entry.version,
            "expiresAt": entry.expires_at,
        }))
    }
}

/// `core.state.get` and `core.state.put` on `store`.
pub fn state_tools(store: &Store) -> [Arc<dyn Tool>; 2] {
    ordinaut_tools::state::tools(Arc::new(StoreState(store.clone())))
}
