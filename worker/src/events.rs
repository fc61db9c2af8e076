//! The events a run emits, shaped alike: namespace, task, run id, attempt, trigger,
//! scheduled and actual times.

use chrono::{DateTime, Utc};
use ordinaut_store::{Lease, OutboxEvent, RunStatus, StepRecord, StepStatus};
use serde_json::{Value, json};
use uuid::Uuid;

fn base(lease: &Lease, run_id: Uuid) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("namespace".into(), json!(lease.namespace));
    m.insert("task".into(), json!(lease.name));
    m.insert("taskUid".into(), json!(lease.task_uid));
    m.insert("runId".into(), json!(run_id));
    m.insert("attempt".into(), json!(lease.attempt));
    m.insert("trigger".into(), json!(lease.trigger.as_str()));
    m.insert("scheduledFor".into(), json!(lease.scheduled_for));
    m
}

/// `run.started`.
pub fn run_started(
    lease: &Lease,
    run_id: Uuid,
    started: DateTime<Utc>,
    worker: &str,
) -> OutboxEvent {
    let mut m = base(lease, run_id);
    m.insert("startedAt".into(), json!(started));
    m.insert("worker".into(), json!(worker));
    OutboxEvent::new("run.started", Value::Object(m))
}

/// `step.succeeded`, `step.failed` or `step.skipped`.
pub fn step(lease: &Lease, run_id: Uuid, step: &StepRecord) -> OutboxEvent {
    let kind = match step.status {
        StepStatus::Succeeded => "step.succeeded",
        StepStatus::Failed => "step.failed",
        StepStatus::Skipped => "step.skipped",
    };
    let mut m = base(lease, run_id);
    m.insert("step".into(), json!(step.step_id));
    m.insert("uses".into(), json!(step.uses));
    m.insert("attempts".into(), json!(step.attempts));
    m.insert("startedAt".into(), json!(step.started_at));
    m.insert("finishedAt".into(), json!(step.finished_at));
    if let Some(e) = &step.error {
        m.insert("error".into(), json!(e));
    }
    OutboxEvent::new(kind, Value::Object(m))
}

/// `run.succeeded`, `run.failed`, `run.cancelled` or `run.skipped` (overlap).
pub fn run_finished(
    lease: &Lease,
    run_id: Uuid,
    status: RunStatus,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    error: Option<&str>,
) -> OutboxEvent {
    let kind = match status {
        RunStatus::Succeeded => "run.succeeded",
        RunStatus::Failed => "run.failed",
        RunStatus::Retrying => "run.retrying",
        RunStatus::Cancelled => "run.cancelled",
        RunStatus::Skipped => "run.skipped",
    };
    let mut m = base(lease, run_id);
    m.insert("status".into(), json!(status.as_str()));
    m.insert("startedAt".into(), json!(started));
    m.insert("finishedAt".into(), json!(finished));
    m.insert(
        "durationMs".into(),
        json!((finished - started).num_milliseconds()),
    );
    if let Some(e) = error {
        m.insert("error".into(), json!(e));
    }
    OutboxEvent::new(kind, Value::Object(m))
}
