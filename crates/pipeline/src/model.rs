//! A Pipeline ready to run: every step's tool reference parsed, its `if` compiled, its
//! timeout parsed. Built by [`compile_pipeline`], which refuses a pipeline with any
//! validation issue, so the worker never discovers a malformed spec mid-run.

use std::fmt;
use std::time::Duration;

use ordinaut_api::{PipelineSpec, RetryPolicy};
use serde_json::Value;

use crate::condition::{Condition, ConditionError};
use crate::context::Context;
use crate::template::{RenderError, join_field, render};
use crate::validate::{ValidationIssue, check_pipeline};

/// `uses: <server>.<tool>`: an McpServer (or built-in group such as `core`, `http`) and one
/// of its tools. The server part is a Kubernetes object name; the tool is everything after
/// the first `.` (MCP tool names may contain dots).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ToolRef {
    pub server: String,
    pub tool: String,
}

impl ToolRef {
    /// Parses `uses`, with the same rules as the CRD's pattern.
    pub fn parse(uses: &str) -> Result<Self, String> {
        let Some((server, tool)) = uses.split_once('.') else {
            return Err(format!(
                "`{uses}` is not `<server>.<tool>` (e.g. `weather.forecast` or `core.echo`)"
            ));
        };
        let server_ok = !server.is_empty()
            && server.len() <= 63
            && server
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !server.starts_with('-')
            && !server.ends_with('-');
        if !server_ok {
            return Err(format!(
                "server `{server}` in `{uses}` is not a valid name: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63"
            ));
        }
        let tool_ok = !tool.is_empty()
            && tool.len() <= 128
            && tool.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tool
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'));
        if !tool_ok {
            return Err(format!(
                "tool `{tool}` in `{uses}` is not a valid tool name: letters, digits, `_`, `.`, `/` and `-`, starting with a letter, digit or `_`, at most 128"
            ));
        }
        Ok(Self {
            server: server.to_string(),
            tool: tool.to_string(),
        })
    }
}

impl fmt::Display for ToolRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.server, self.tool)
    }
}

/// One step, checked and parsed.
#[derive(Clone, Debug)]
pub struct CompiledStep {
    /// Position in the pipeline (0-based), for messages (`steps[2]`).
    pub index: usize,
    pub id: String,
    pub tool: ToolRef,
    /// The argument template (`{}` when the step has no `with`).
    pub with: Value,
    pub condition: Option<Condition>,
    pub save_as: Option<String>,
    pub timeout: Option<Duration>,
    /// As written; combine with the Task's through [`crate::resolve_retry`].
    pub retry: Option<RetryPolicy>,
    pub continue_on_error: bool,
}

/// A step's template or condition failing at run time, naming the step.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("step `{step}`: {}: {}", join_field("with", &error.field), error.kind)]
    Render { step: String, error: RenderError },
    #[error("step `{step}`: if: {error}")]
    Condition { step: String, error: ConditionError },
}

impl CompiledStep {
    /// Whether the step runs: its `if` is truthy, or it has none.
    pub fn should_run(&self, ctx: &Context) -> Result<bool, StepError> {
        match &self.condition {
            None => Ok(true),
            Some(cond) => cond.evaluate(ctx).map_err(|error| StepError::Condition {
                step: self.id.clone(),
                error,
            }),
        }
    }

    /// The tool's arguments: `with` rendered against the run so far.
    pub fn render_input(&self, ctx: &Context) -> Result<Value, StepError> {
        render(&self.with, ctx).map_err(|error| StepError::Render {
            step: self.id.clone(),
            error,
        })
    }

    /// Records this step's output in the context (under its id and `saveAs`).
    pub fn record_output(&self, ctx: &mut Context, output: Value) {
        ctx.record_output(&self.id, self.save_as.as_deref(), output);
    }

    /// Records that this step was skipped.
    pub fn record_skipped(&self, ctx: &mut Context) {
        ctx.record_skipped(&self.id, self.save_as.as_deref());
    }
}

/// A pipeline that passed validation.
#[derive(Clone, Debug)]
pub struct CompiledPipeline {
    /// The JSON Schema of params, if the pipeline declares one.
    pub params_schema: Option<Value>,
    pub steps: Vec<CompiledStep>,
    /// The output template, if any (else the worker uses the last step's output).
    pub output: Option<Value>,
}

/// The run's output template failing to render.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", join_field("output", &.0.field), .0.kind)]
pub struct OutputError(pub RenderError);

impl CompiledPipeline {
    /// The `(secret, key)` pairs the pipeline's templates read through `${secrets.…}`, for
    /// the worker to fetch before the run.
    pub fn secret_refs(&self) -> std::collections::BTreeSet<(String, String)> {
        let mut out = std::collections::BTreeSet::new();
        let mut collect = |_: &str, visit: crate::template::Visit<'_>| {
            if let crate::template::Visit::Template(t) = visit {
                for (expr, _) in t.expressions() {
                    if let crate::template::Expr::Path {
                        root: crate::template::Root::Secrets,
                        segments,
                    } = expr
                        && let Ok((name, key)) = crate::validate::secret_ref(segments)
                    {
                        out.insert((name.to_string(), key.to_string()));
                    }
                }
            }
        };
        for step in &self.steps {
            crate::template::visit_templates(&step.with, &mut collect);
        }
        if let Some(output) = &self.output {
            crate::template::visit_templates(output, &mut collect);
        }
        out
    }

    /// Renders the output template; `None` when the pipeline has none.
    pub fn render_output(&self, ctx: &Context) -> Result<Option<Value>, OutputError> {
        self.output
            .as_ref()
            .map(|t| render(t, ctx).map_err(OutputError))
            .transpose()
    }
}

/// Validates and compiles a pipeline; on failure, every issue found (as
/// [`crate::validate_pipeline`] reports them).
pub fn compile_pipeline(spec: &PipelineSpec) -> Result<CompiledPipeline, Vec<ValidationIssue>> {
    let (issues, steps) = check_pipeline(spec);
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(CompiledPipeline {
        params_schema: spec.params.clone(),
        steps,
        output: spec.output.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_ref_splits_at_the_first_dot() {
        assert_eq!(
            ToolRef::parse("weather.forecast"),
            Ok(ToolRef {
                server: "weather".into(),
                tool: "forecast".into()
            })
        );
        let t = ToolRef::parse("my-mcp.files/read.v2").expect("valid");
        assert_eq!(
            (t.server.as_str(), t.tool.as_str()),
            ("my-mcp", "files/read.v2")
        );
        assert_eq!(t.to_string(), "my-mcp.files/read.v2");
    }

    #[test]
    fn tool_ref_rejects_missing_or_malformed_parts() {
        for bad in [
            "echo",
            ".echo",
            "core.",
            "Core.echo",
            "-x.echo",
            "x-.echo",
            "core.-x",
            "core.a b",
            "co re.x",
            "",
        ] {
            assert!(ToolRef::parse(bad).is_err(), "{bad}");
        }
    }
}
