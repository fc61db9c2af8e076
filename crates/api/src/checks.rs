//! The rules the CRDs enforce in the API server that serde does not: the CEL rules (exactly one
//! schedule kind, `endAt` after `startAt`, …) and the numeric bounds of the schemas, written
//! again in Rust for where there is no API server (`ordinaut validate`, `ordinaut dev`).
//! Tests check each against the CEL rule it mirrors.

use crate::{AgentSpec, McpServerSpec, PipelineSpec, TaskSpec};

/// A rule an object breaks: the field path from the object's root (`spec.schedule.endAt`)
/// and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    /// Dotted path from the object root, with list indexes: `spec.transport.stdio.env[1]`.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        path: path.into(),
        message: message.into(),
    }
}

/// The message of a string holding a NUL character.
pub const NUL_MESSAGE: &str =
    "contains a NUL character (U+0000), which cannot be stored; remove it from the manifest";

/// Every string of `value` (object keys included) that holds a NUL character, as a problem
/// at its path under `prefix`. PostgreSQL cannot store U+0000 in `text` or `jsonb`, so such a
/// value would fail every attempt to project the object: it is refused as invalid instead.
pub fn nul_problems(value: &serde_json::Value, prefix: &str) -> Vec<FieldProblem> {
    const MESSAGE: &str = NUL_MESSAGE;
    let mut out = Vec::new();
    let mut stack = vec![(prefix.to_string(), value)];
    while let Some((path, v)) = stack.pop() {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => {
                out.push(problem(path, MESSAGE));
            }
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    stack.push((format!("{path}[{i}]"), item));
                }
            }
            serde_json::Value::Object(map) => {
                for (k, item) in map.iter().rev() {
                    let shown = k.replace('\0', "\\0");
                    let child = format!("{path}.{shown}");
                    if k.contains('\0') {
                        out.push(problem(child.clone(), format!("(the key) {MESSAGE}")));
                    }
                    stack.push((child, item));
                }
            }
            _ => {}
        }
    }
    out
}

/// [`nul_problems`] of a spec, leaving out the fields named in `skip` (checked elsewhere).
fn spec_nul_problems<T: serde::Serialize>(
    spec: &T,
    prefix: &str,
    skip: &[&str],
) -> Vec<FieldProblem> {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        for key in skip {
            map.remove(*key);
        }
    }
    nul_problems(&value, prefix)
}

/// Problems of a Task's spec.
pub fn task_problems(spec: &TaskSpec) -> Vec<FieldProblem> {
    // The inline pipeline's strings are checked by `pipeline_problems`.
    let mut out = spec_nul_problems(spec, "spec", &["pipeline"]);
    let s = &spec.schedule;
    let kinds = [
        s.rrule.is_some(),
        s.cron.is_some(),
        s.at.is_some(),
        s.every.is_some(),
        s.on.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        out.push(problem(
            "spec.schedule",
            "set exactly one of rrule, cron, at, every or on",
        ));
    }
    if let (Some(start), Some(end)) = (s.start_at, s.end_at)
        && end <= start
    {
        out.push(problem(
            "spec.schedule.endAt",
            "endAt must be after startAt",
        ));
    }
    if let Some(on) = &s.on
        && on.topic.is_some() == on.task_finished.is_some()
    {
        out.push(problem(
            "spec.schedule.on",
            "set exactly one of topic or taskFinished",
        ));
    }
    if let Some(on) = &s.on
        && on.filter.is_some()
        && on.topic.is_none()
    {
        out.push(problem(
            "spec.schedule.on.filter",
            "filter applies to topic events only; remove it or use on.topic",
        ));
    }
    if let Some(max) = s.catchup.max_runs
        && !(1..=10_000).contains(&max)
    {
        out.push(problem(
            "spec.schedule.catchup.maxRuns",
            format!("must be between 1 and 10000, got {max}"),
        ));
    }
    if let Some(age) = &spec.runs_history_max_age
        && !is_history_age(age)
    {
        out.push(problem(
            "spec.runsHistoryMaxAge",
            format!(
                "`{age}` is not an age in whole units (e.g. `7d`, `12h`, `1d12h`; units w, d, h, m, s)"
            ),
        ));
    }
    match (&spec.pipeline_ref, &spec.pipeline) {
        (Some(_), Some(_)) | (None, None) => out.push(problem(
            "spec",
            "set exactly one of pipelineRef or pipeline",
        )),
        (None, Some(pipeline)) => out.extend(pipeline_problems(pipeline, "spec.pipeline")),
        (Some(_), None) => {}
    }
    out
}

/// `runsHistoryMaxAge`'s form (the CRD pattern `^([0-9]{1,6}[wdhms]){1,5}$`), which the
/// store's pruning reads as a PostgreSQL interval.
fn is_history_age(s: &str) -> bool {
    let mut parts = 0;
    let mut digits = 0;
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits += 1;
            if digits > 6 {
                return false;
            }
        } else if "wdhms".contains(c) && digits > 0 {
            digits = 0;
            parts += 1;
        } else {
            return false;
        }
    }
    digits == 0 && (1..=5).contains(&parts)
}

/// Problems of a Pipeline's spec (or a Task's inline pipeline), paths under `prefix`.
pub fn pipeline_problems(spec: &PipelineSpec, prefix: &str) -> Vec<FieldProblem> {
    let mut out = spec_nul_problems(spec, prefix, &[]);
    for (i, step) in spec.steps.iter().enumerate() {
        if spec.steps[..i].iter().any(|earlier| earlier.id == step.id) {
            out.push(problem(
                format!("{prefix}.steps[{i}].id"),
                "step ids must be unique within a pipeline",
            ));
        }
    }
    out
}

/// Problems of an McpServer: its name (steps call `<name>.<tool>`) and its spec.
pub fn mcp_server_problems(name: Option<&str>, spec: &McpServerSpec) -> Vec<FieldProblem> {
    let mut out = spec_nul_problems(spec, "spec", &[]);
    if name.is_some_and(|n| n.contains('.')) {
        out.push(problem(
            "metadata.name",
            "an McpServer name must not contain '.': steps refer to tools as <mcpserver>.<tool>",
        ));
    }
    let t = &spec.transport;
    if t.stdio.is_some() == t.http.is_some() {
        out.push(problem(
            "spec.transport",
            "set exactly one of stdio or http",
        ));
    }
    let value_xor = |path: String, value: bool, value_from: bool, out: &mut Vec<FieldProblem>| {
        if value == value_from {
            out.push(problem(path, "set exactly one of value or valueFrom"));
        }
    };
    if let Some(stdio) = &t.stdio {
        for (i, env) in stdio.env.iter().enumerate() {
            let path = format!("spec.transport.stdio.env[{i}]");
            value_xor(
                path,
                env.value.is_some(),
                env.value_from.is_some(),
                &mut out,
            );
        }
    }
    if let Some(http) = &t.http {
        for (i, header) in http.headers.iter().enumerate() {
            let path = format!("spec.transport.http.headers[{i}]");
            value_xor(
                path,
                header.value.is_some(),
                header.value_from.is_some(),
                &mut out,
            );
        }
        if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
            out.push(problem(
                "spec.transport.http.url",
                format!("`{}` is not an http:// or https:// URL", http.url),
            ));
        }
    }
    out
}

/// Problems of an Agent's spec.
pub fn agent_problems(spec: &AgentSpec) -> Vec<FieldProblem> {
    let mut out = spec_nul_problems(spec, "spec", &[]);
    if let Some(budgets) = &spec.budgets {
        for (field, value) in [
            ("runsPerHour", budgets.runs_per_hour),
            ("concurrentRuns", budgets.concurrent_runs),
        ] {
            if value == Some(0) {
                out.push(problem(
                    format!("spec.budgets.{field}"),
                    "must be at least 1 (omit the field for no limit)",
                ));
            }
        }
    }
    for (i, scope) in spec.scopes.iter().enumerate() {
        if scope.trim().is_empty() || scope.chars().any(char::is_whitespace) {
            out.push(problem(
                format!("spec.scopes[{i}]"),
                format!(
                    "`{scope}` is not a tool glob; write e.g. `weather.*` or `everything.echo`"
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn nul_characters_are_reported_at_their_field_keys_included() {
        let value = serde_json::json!({
            "a": "fine",
            "steps": [{"with": {"m": "a\u{0}b", "ok": 1}}],
            "k\u{0}": "v"
        });
        let problems = nul_problems(&value, "spec");
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["spec.k\\0", "spec.steps[0].with.m"]);
        assert!(problems[1].message.contains("NUL character"));
        assert!(nul_problems(&serde_json::json!({"a": ["b", {"c": "d"}]}), "spec").is_empty());
    }

    #[test]
    fn a_task_with_a_nul_in_its_inline_pipeline_is_reported_once() {
        let spec: TaskSpec = serde_yaml::from_str(
            "schedule: {every: 1h}\npipeline:\n  steps:\n    - {id: a, uses: core.echo, with: {m: \"a\\0b\"}}\nparams: {p: \"x\\0\"}\n",
        )
        .unwrap();
        let paths: Vec<_> = task_problems(&spec).into_iter().map(|p| p.path).collect();
        assert_eq!(paths, ["spec.params.p", "spec.pipeline.steps[0].with.m"]);
    }
}
