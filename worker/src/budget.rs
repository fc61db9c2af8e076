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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus_client::registry::Registry;

    fn wait(first: bool) -> BudgetWait {
        BudgetWait {
            due_work_id: 1,
            task_uid: uuid::Uuid::nil(),
            namespace: "default".into(),
            task: "t".into(),
            agent: "bot".into(),
            reason: "Agent default/bot has 1 runs going (concurrentRuns: 1)".into(),
            until: chrono::Utc::now(),
            first,
            correlation_id: "c".into(),
        }
    }

    #[test]
    fn first_waits_are_counted_per_agent_and_rechecks_are_not() {
        let mut registry = Registry::default();
        let metrics = Metrics::new(&mut registry);
        note_waits(&metrics, &[wait(true), wait(false), wait(true)]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("ordinaut_budget_waits_total{agent=\"default/bot\"} 2"),
            "{text}"
        );
    }
}
