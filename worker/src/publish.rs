//! The worker's `core.publish` sink: events go to the outbox through
//! [`Store::publish_event`], the one publishing path (the CLI and the gateway use it too).

use async_trait::async_trait;
use ordinaut_store::{PublishRequest, Store};
use ordinaut_tools::ToolError;
use ordinaut_tools::publish::{EventSink, Publish};
use serde_json::Value;
use std::sync::Arc;

/// Publishes through the store.
pub struct StoreSink(pub Store);

#[async_trait]
impl EventSink for StoreSink {
    async fn publish(
        &self,
        topic: &str,
        data: &Value,
        id: &str,
        source: &str,
    ) -> Result<Value, ToolError> {
        let req = PublishRequest {
            topic,
            data,
            source,
            id: Some(id.to_string()),
        };
        match self.0.publish_event(&req).await {
            Ok(event) => Ok(serde_json::to_value(event).unwrap_or(Value::Null)),
            // Bad input fails the step at once; only the store's own trouble is retried.
            Err(e) if e.is_invalid_input() => Err(ToolError::InvalidInput(e.to_string())),
            Err(e) => Err(ToolError::retryable(e.to_string())),
        }
    }
}

/// The `core.publish` tool writing to `store`.
pub fn publish_tool(store: &Store) -> Arc<Publish> {
    Arc::new(Publish::new(Arc::new(StoreSink(store.clone()))))
}
