//! Agent budget waits as the worker reports them: a log line per wait (with the correlation
//! id of its audit entry) and the `ordinaut_budget_waits_total{agent}` counter.

use crate::metrics::{AgentLabel, Metrics};
use ordinaut_store::BudgetWait;

/// Logs `waits` and counts each occurrence's first wait.
pub fn note_waits(metrics: &Metrics, waits: &[BudgetWait]) {
    for w in waits {
        if w.first {
            metrics
                .budget_waits
                .get_or_create(&AgentLabel {
                    agent: format!("{}/{}", w.namespace, w.agent),
                })
                .inc();
            tracing::info!(
                namespace = %w.namespace, task = %w.task, agent = %w.agent,
                due_work = w.due_work_id, until = %w.until, reason = %w.reason,
                correlation_id = %w.correlation_id,
                "occurrence waits for its agent's budget"
            );
        } else {
            tracing::debug!(
                namespace = %w.namespace, task = %w.task, due_work = w.due_work_id,
                until = %w.until, reason = %w.reason, "still waiting for the agent's budget"
            );
        }
    }
}
