//! The status sink of `ordinaut dev`: keeps each object's last status in memory (the dev
//! source hands it back to the reconcile core, as the API server would) and prints the
//! Events a person cares about. Validation Events are left to the source, which prints
//! each object's state once per change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ordinaut_operator::seam::SinkError;
use ordinaut_operator::{Kind, Notice, NoticeType, ObjectKey, StatusSink};
use serde_json::{Value, json};

use super::output::Printer;

type Key = (Kind, String, String);

/// Statuses in memory, Events on the printer.
pub struct DevSink {
    statuses: Mutex<HashMap<Key, Value>>,
    printer: Arc<Printer>,
}

impl DevSink {
    pub fn new(printer: Arc<Printer>) -> Self {
        Self {
            statuses: Mutex::default(),
            printer,
        }
    }

    /// The last status written for an object.
    pub fn status_of(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.lock()
            .get(&(kind, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Forgets a deleted object.
    pub fn forget(&self, kind: Kind, namespace: &str, name: &str) {
        self.lock()
            .remove(&(kind, namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Value>> {
        self.statuses.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `task`, `pipeline`, `mcpserver`, `agent`.
pub fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Task => "task",
        Kind::Pipeline => "pipeline",
        Kind::McpServer => "mcpserver",
        Kind::Agent => "agent",
    }
}

/// The `Ready` condition of a status: (status is True, reason, message).
pub fn ready_condition(status: &Value) -> Option<(bool, String, String)> {
    let c = status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))?;
    let text = |k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some((text("status") == "True", text("reason"), text("message")))
}

#[async_trait]
impl StatusSink for DevSink {
    async fn status(&self, key: &ObjectKey, status: Value) -> Result<(), SinkError> {
        self.lock()
            .insert((key.kind, key.namespace.clone(), key.name.clone()), status);
        Ok(())
    }

    async fn notice(&self, key: &ObjectKey, notice: &Notice) -> Result<(), SinkError> {
        if notice.action == "Validate" {
            return Ok(());
        }
        let level = match notice.type_ {
            NoticeType::Normal => "Normal",
            NoticeType::Warning => "Warning",
        };
        let object = format!("{}/{}", key.namespace, key.name);
        self.printer.emit(
            "notice",
            &format!(
                "{} {object}: {}: {}",
                kind_word(key.kind),
                notice.reason,
                notice.message
            ),
            json!({
                "kind": key.kind.as_str(), "object": object, "type": level,
                "reason": notice.reason, "message": notice.message,
            }),
        );
        Ok(())
    }
}
