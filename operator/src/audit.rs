//! Audit entries for what the operator does at someone's request: a new value of the
//! `ordinaut.dev/run-now` annotation turned into a manual run. Each entry carries a
//! correlation id that the operator's log line for the same action carries too.

use crate::reconcile::Context;
use ordinaut_api::constants::RUN_NOW_ANNOTATION;
use ordinaut_store::AuditEntry;
use serde_json::json;

/// Records that the run-now annotation's new `value` on Task `namespace/task` queued a manual
/// run. A failure to write is logged, not returned: the run is queued either way.
pub async fn run_now(ctx: &Context, namespace: &str, task: &str, value: &str) {
    let correlation_id = uuid::Uuid::now_v7().to_string();
    tracing::info!(
        namespace, task, run_now = value, correlation_id = %correlation_id,
        "run-now annotation handled: one manual run queued"
    );
    let entry = AuditEntry {
        actor: "operator".into(),
        action: "task.run-now".into(),
        allowed: true,
        namespace: Some(namespace.to_string()),
        subject: Some(task.to_string()),
        detail: json!({
            "via": format!("annotation {RUN_NOW_ANNOTATION}"),
            "value": value,
            "outcome": "queued",
        }),
        correlation_id: Some(correlation_id),
    };
    if let Err(e) = ctx.store.audit_entry(&entry).await {
        tracing::warn!(namespace, task, error = %e, "writing the audit log failed");
    }
}
