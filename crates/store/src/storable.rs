//! Results PostgreSQL would refuse, made storable before they are written: a refused write
//! must never turn into a re-run (the lease would expire and the run start again, without
//! end). Text columns and `jsonb` cannot hold the NUL character (`\u0000`, SQLSTATE 22021 /
//! 22P05), and outputs are bounded by a documented limit.
//!
//! * NUL characters in error messages are escaped (`\0` is written as the two characters
//!   `\0`): a message is for people, and escaping loses nothing they need.
//! * A step's input or output, or the run's output, that holds a NUL character in a string
//!   or key, or whose JSON is longer than the limit, is not stored: the value is dropped,
//!   the step is marked failed, and the run fails with a reason naming the step, the path
//!   and the fix.

use crate::runs::{RunStatus, StepRecord, StepStatus};
use serde_json::Value;

/// The default limit on one stored JSON value (a step's input or output, the run's output):
/// 1 MiB of JSON text.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 1 << 20;

/// A run's outcome as it will be written, once made storable by [`make_storable`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: RunStatus,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub steps: Vec<StepRecord>,
}

/// Makes `outcome` storable (see the module docs). Returns the reason when the run was
/// turned into a failure.
pub fn make_storable(outcome: &mut Outcome, max_bytes: usize) -> Option<String> {
    let mut reasons = Vec::new();
    for step in &mut outcome.steps {
        let what = format!("step `{}`", step.step_id);
        let mut failed = None;
        if let Some(why) = refusal(step.output.as_ref(), max_bytes) {
            step.output = None;
            failed = Some(format!("{what}: its output {why}"));
        }
        if let Some(why) = refusal(step.input.as_ref(), max_bytes) {
            step.input = None;
            failed.get_or_insert(format!("{what}: its input {why}"));
        }
        step.error = step.error.take().map(escape_nul);
        if let Some(reason) = failed {
            step.status = StepStatus::Failed;
            step.error = Some(reason.clone());
            reasons.push(reason);
        }
    }
    if let Some(why) = refusal(outcome.output.as_ref(), max_bytes) {
        outcome.output = None;
        reasons.push(format!("the run's output {why}"));
    }
    outcome.error = outcome.error.take().map(escape_nul);
    if reasons.is_empty() {
        return None;
    }
    let reason = format!("the result cannot be stored: {}", reasons.join("; "));
    outcome.status = RunStatus::Failed;
    outcome.error = Some(match outcome.error.take() {
        Some(e) => format!("{reason} (the run had reported: {e})"),
        None => reason.clone(),
    });
    Some(reason)
}

/// Replaces NUL characters with the two characters `\0`.
pub fn escape_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\\0")
    } else {
        s
    }
}

/// Why `value` cannot be stored, if it cannot.
fn refusal(value: Option<&Value>, max_bytes: usize) -> Option<String> {
    let value = value?;
    if let Some(path) = nul_path(value, "$") {
        return Some(format!(
            "contains a NUL character (\\u0000) at `{path}`, which PostgreSQL cannot store; \
             return text without NUL characters (e.g. base64-encode binary data)"
        ));
    }
    let len = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(0);
    (len > max_bytes).then(|| {
        format!(
            "is {len} bytes of JSON, over the limit of {max_bytes} bytes \
             (--max-output-bytes); return less (e.g. select fields in the step) or raise the limit"
        )
    })
}

/// The JSON path of the first string or key holding a NUL character.
fn nul_path(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(s) => s.contains('\0').then(|| at.to_string()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, &format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(format!("{at}.{}", k.replace('\0', "\\0")))
            } else {
                nul_path(v, &format!("{at}.{k}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn step(id: &str, output: Value) -> StepRecord {
        StepRecord {
            step_id: id.into(),
            uses: "http.request".into(),
            status: StepStatus::Succeeded,
            attempts: 1,
            input: Some(json!({"url": "http://x"})),
            output: Some(output),
            error: None,
            started_at: Utc::now(),
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn a_nul_in_a_step_output_fails_the_run_naming_step_and_path() {
        let mut o = Outcome {
            status: RunStatus::Succeeded,
            output: Some(json!({"ok": true})),
            error: None,
            steps: vec![step("fetch", json!({"body": ["x", "a\u{0}b"]}))],
        };
        let reason = make_storable(&mut o, DEFAULT_MAX_OUTPUT_BYTES).unwrap();
        assert!(reason.contains("step `fetch`"), "{reason}");
        assert!(reason.contains("`$.body[1]`"), "{reason}");
        assert_eq!(o.status, RunStatus::Failed);
        assert_eq!(o.steps[0].status, StepStatus::Failed);
        assert_eq!(o.steps[0].output, None);
        assert_eq!(o.output, Some(json!({"ok": true})));
    }

    #[test]
    fn an_oversized_output_fails_the_run_with_its_size_and_the_limit() {
        let mut o = Outcome {
            status: RunStatus::Succeeded,
            output: Some(json!("x".repeat(200))),
            error: None,
            steps: vec![],
        };
        let reason = make_storable(&mut o, 100).unwrap();
        assert!(reason.contains("202 bytes"), "{reason}");
        assert!(reason.contains("limit of 100 bytes"), "{reason}");
        assert_eq!(o.output, None);
    }

    #[test]
    fn nul_in_error_text_is_escaped_and_clean_results_are_untouched() {
        let mut o = Outcome {
            status: RunStatus::Failed,
            output: None,
            error: Some("bad\u{0}byte".into()),
            steps: vec![step("ok", json!({"n": 1}))],
        };
        let before = o.steps.clone();
        assert_eq!(make_storable(&mut o, DEFAULT_MAX_OUTPUT_BYTES), None);
        assert_eq!(o.error.as_deref(), Some("bad\\0byte"));
        assert_eq!(o.steps, before);
    }
}
