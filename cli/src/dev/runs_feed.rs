//! Prints each run as it starts and ends, read from the events stream through a consumer
//! group of its own (what a script subscribing to Ordinaut's events would do).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ordinaut_events::{GroupConsumer, StartFrom, StreamEntry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::output::{Printer, duration_ms};

/// The consumer group `ordinaut dev` prints runs from.
pub const GROUP: &str = "ordinaut-dev";

/// Follows the stream until `stop`, then prints what is left (for up to `drain`).
pub async fn follow(
    mut consumer: GroupConsumer,
    printer: Arc<Printer>,
    since: DateTime<Utc>,
    stop: CancellationToken,
    drain: Duration,
) {
    let mut failing: HashMap<String, (String, String, String)> = HashMap::new();
    let mut ready = false;
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if drain_until.is_none() && stop.is_cancelled() {
            drain_until = Some(tokio::time::Instant::now() + drain);
        }
        if drain_until.is_some_and(|d| tokio::time::Instant::now() > d) {
            return;
        }
        if !ready {
            match consumer.ensure_group(StartFrom::NewOnly).await {
                Ok(_) => ready = true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the events stream; retrying");
                    tokio::select! {
                        () = stop.cancelled(), if drain_until.is_none() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                    continue;
                }
            }
        }
        let block = if drain_until.is_some() {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(500)
        };
        match consumer.read(100, block).await {
            Ok(entries) => {
                if entries.is_empty() && drain_until.is_some() {
                    return;
                }
                let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
                for entry in &entries {
                    show(&printer, entry, since, &mut failing);
                }
                if let Err(e) = consumer.ack(&ids).await {
                    tracing::warn!(error = %e, "acknowledging events failed");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the events stream failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

fn text<'a>(p: &'a Value, k: &str) -> &'a str {
    p.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn show(
    printer: &Printer,
    entry: &StreamEntry,
    since: DateTime<Utc>,
    failing: &mut HashMap<String, (String, String, String)>,
) {
    // Entries of an earlier session, still unread in the group, are not news.
    if entry
        .created_at
        .as_deref()
        .and_then(|c| c.parse::<DateTime<Utc>>().ok())
        .is_some_and(|c| c < since)
    {
        return;
    }
    let p = &entry.payload;
    let task = format!("{}/{}", text(p, "namespace"), text(p, "task"));
    let run_id = text(p, "runId").to_string();
    let short = run_id.clone();
    let trigger = text(p, "trigger");
    let attempt = p.get("attempt").and_then(Value::as_i64).unwrap_or(1);
    match entry.event_type.as_str() {
        "run.started" => printer.emit(
            "run.started",
            &format!("run {task} started ({trigger}, attempt {attempt}) {short}"),
            json!({"task": task, "runId": run_id, "trigger": trigger, "attempt": attempt}),
        ),
        "step.failed" => {
            failing.insert(
                run_id,
                (
                    text(p, "step").to_string(),
                    text(p, "uses").to_string(),
                    text(p, "error").to_string(),
                ),
            );
        }
        "run.succeeded" | "run.failed" | "run.retrying" | "run.cancelled" | "run.skipped" => {
            let status = text(p, "status");
            let ms = p.get("durationMs").and_then(Value::as_i64).unwrap_or(0);
            let step = failing.remove(&run_id);
            let error = text(p, "error");
            let mut line = format!(
                "run {task} {status} in {} ({trigger}, attempt {attempt}) {short}",
                duration_ms(ms)
            );
            match (&step, error.is_empty()) {
                // The worker's message usually names the step already.
                (Some((id, uses, e)), _) if e.contains(&format!("`{id}`")) => {
                    line.push_str(&format!(": {e} ({uses})"));
                }
                (Some((id, uses, e)), _) => {
                    line.push_str(&format!(": step `{id}` ({uses}): {e}"));
                }
                (None, false) => line.push_str(&format!(": {error}")),
                (None, true) => {}
            }
            printer.emit(
                "run.finished",
                &line,
                json!({
                    "task": task, "runId": run_id, "trigger": trigger, "attempt": attempt,
                    "status": status, "durationMs": ms,
                    "failedStep": step.as_ref().map(|s| &s.0),
                    "error": step.as_ref().map(|s| s.2.as_str()).or((!error.is_empty()).then_some(error)),
                }),
            );
        }
        "run.missed" => printer.emit(
            "run.missed",
            &format!("run {task} missed (scheduled {})", text(p, "scheduledFor")),
            json!({"task": task, "scheduledFor": text(p, "scheduledFor")}),
        ),
        _ => {}
    }
}
