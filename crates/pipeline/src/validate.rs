//! Validation of a Pipeline without running it, for `ordinaut validate` and the operator's
//! `Ready` condition: every issue found, each with the field path (`steps[2].with.url`,
//! `steps[1].if`) and a message that says what to change.
//!
//! Checked: at least one step (at most 100); step ids and `saveAs` names well-formed, unique
//! and not colliding; `uses` is `<server>.<tool>`; templates parse and read only known roots,
//! `run`/`task` fields and steps that run *earlier* (the output template may read any step);
//! `if` compiles and reads known roots and earlier steps; timeouts and retry fields parse;
//! `params` is a JSON Schema of an object; with a closed params schema
//! (`additionalProperties: false`), templates read only declared params.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ordinaut_api::PipelineSpec;
use ordinaut_schedule::duration::parse_duration;
use serde_json::Value;

use crate::condition::compile_condition;
use crate::model::{CompiledStep, ToolRef};
use crate::retry::check_policy;
use crate::schema::{self, SchemaError};
use crate::template::{Expr, Root, Segment, Visit, join_field, visit_templates};

/// One problem in a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationIssue {
    /// Where: `steps`, `steps[2].id`, `steps[1].with.url`, `steps[1].if`, `params`, `output`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Most steps a pipeline may have (as the CRD says).
pub const MAX_STEPS: usize = 100;

/// Every issue in `spec`; empty when it is valid.
pub fn validate_pipeline(spec: &PipelineSpec) -> Vec<ValidationIssue> {
    check_pipeline(spec).0
}

/// Checks a Task's params against the Pipeline's `params` schema (any params pass when the
/// pipeline declares none). Pass `{}` for a Task without params.
pub fn validate_params(spec: &PipelineSpec, params: &Value) -> Result<(), SchemaError> {
    match &spec.params {
        None => Ok(()),
        Some(schema) => schema::check_with(&schema::compile(schema)?, params),
    }
}

/// Which step a name (id or `saveAs`) belongs to.
#[derive(Clone, Copy)]
struct Owner {
    index: usize,
    is_alias: bool,
}

struct Checker<'a> {
    spec: &'a PipelineSpec,
    issues: Vec<ValidationIssue>,
    /// Names later steps may read: ids and `saveAs` names, first owner wins.
    names: BTreeMap<&'a str, Owner>,
}

/// The issues, and the steps compiled along the way (complete only when there are no issues).
pub(crate) fn check_pipeline(spec: &PipelineSpec) -> (Vec<ValidationIssue>, Vec<CompiledStep>) {
    let mut checker = Checker {
        spec,
        issues: Vec::new(),
        names: BTreeMap::new(),
    };
    if spec.steps.is_empty() {
        checker.issue("steps", "a pipeline needs at least one step");
    }
    if spec.steps.len() > MAX_STEPS {
        checker.issue(
            "steps",
            format!(
                "{} steps is more than the limit of {MAX_STEPS}; split the pipeline",
                spec.steps.len()
            ),
        );
    }
    checker.check_names();
    checker.check_params_schema();
    let mut compiled = Vec::new();
    for index in 0..spec.steps.len() {
        if let Some(step) = checker.check_step(index) {
            compiled.push(step);
        }
    }
    if let Some(output) = &spec.output {
        checker.check_templates("output", output, None);
    }
    (checker.issues, compiled)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

const NAME_RULE: &str =
    "use a lowercase letter, then up to 62 lowercase letters, digits or underscores";

impl<'a> Checker<'a> {
    fn issue(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.issues.push(ValidationIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Ids and `saveAs` names: format, duplicates, collisions.
    fn check_names(&mut self) {
        let spec = self.spec;
        for (index, step) in spec.steps.iter().enumerate() {
            let path = format!("steps[{index}].id");
            if !valid_name(&step.id) {
                self.issue(
                    &path,
                    format!("`{}` is not a valid step id: {NAME_RULE}", step.id),
                );
            }
            match self.names.get(step.id.as_str()) {
                Some(owner) => {
                    let what = if owner.is_alias {
                        "the saveAs of"
                    } else {
                        "the id of"
                    };
                    self.issue(
                        path,
                        format!(
                            "duplicate step id `{}`: it is already {what} steps[{}]",
                            step.id, owner.index
                        ),
                    );
                }
                None => {
                    self.names.insert(
                        &step.id,
                        Owner {
                            index,
                            is_alias: false,
                        },
                    );
                }
            }
        }
        for (index, step) in spec.steps.iter().enumerate() {
            let Some(alias) = step.save_as.as_deref() else {
                continue;
            };
            let path = format!("steps[{index}].saveAs");
            if !valid_name(alias) {
                self.issue(
                    &path,
                    format!("`{alias}` is not a valid saveAs name: {NAME_RULE}"),
                );
            }
            match self.names.get(alias) {
                // Naming a step's output after its own id is redundant, not ambiguous.
                Some(owner) if owner.index == index => {}
                Some(owner) => {
                    let what = if owner.is_alias {
                        "the saveAs of"
                    } else {
                        "the id of"
                    };
                    self.issue(
                        path,
                        format!(
                            "saveAs `{alias}` collides: it is already {what} steps[{}]",
                            owner.index
                        ),
                    );
                }
                None => {
                    self.names.insert(
                        alias,
                        Owner {
                            index,
                            is_alias: true,
                        },
                    );
                }
            }
        }
    }

    fn check_params_schema(&mut self) {
        let spec = self.spec;
        let Some(schema) = &spec.params else {
            return;
        };
        if let Err(e) = schema::compile(schema) {
            self.issue("params", format!("not a valid JSON Schema: {e}"));
            return;
        }
        match schema.get("type") {
            None => {}
            Some(Value::String(t)) if t == "object" => {}
            Some(other) => self.issue(
                "params.type",
                format!("params are an object (name → value), so the schema's type must be \"object\", not {other}"),
            ),
        }
    }

    fn check_step(&mut self, index: usize) -> Option<CompiledStep> {
        let spec = self.spec;
        let step = &spec.steps[index];
        let at = |field: &str| format!("steps[{index}].{field}");
        let before = self.issues.len();

        let tool = ToolRef::parse(&step.uses)
            .map_err(|e| self.issue(at("uses"), e))
            .ok();
        let with = step
            .with
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        if !with.is_object() {
            self.issue(
                at("with"),
                "must be an object: the tool's arguments by name",
            );
        }
        self.check_templates(&at("with"), &with, Some(index));

        let condition =
            step.condition
                .as_deref()
                .and_then(|source| match compile_condition(source) {
                    Ok(cond) => {
                        for path in cond.root_paths() {
                            self.check_condition_path(index, &path);
                        }
                        Some(cond)
                    }
                    Err(e) => {
                        self.issue(at("if"), e.to_string());
                        None
                    }
                });

        let timeout = step
            .timeout
            .as_deref()
            .and_then(|text| match parse_duration(text) {
                Ok(d) if d == Duration::ZERO => {
                    self.issue(at("timeout"), "must be longer than 0s");
                    None
                }
                Ok(d) => Some(d),
                Err(e) => {
                    self.issue(at("timeout"), e.to_string());
                    None
                }
            });

        if let Some(retry) = &step.retry {
            for e in check_policy(retry) {
                self.issue(at(&format!("retry.{}", e.field())), e.to_string());
            }
        }

        if self.issues.len() > before {
            return None;
        }
        Some(CompiledStep {
            index,
            id: step.id.clone(),
            tool: tool?,
            with,
            condition,
            save_as: step.save_as.clone(),
            timeout,
            retry: step.retry.clone(),
            continue_on_error: step.continue_on_error,
        })
    }

    /// Parses every template in `value` and checks what it reads. `step`: the index of the
    /// step whose arguments these are (it may read only earlier steps); `None` for the output.
    fn check_templates(&mut self, prefix: &str, value: &Value, step: Option<usize>) {
        let mut found = Vec::new();
        visit_templates(value, &mut |field, visit| {
            let path = join_field(prefix, field);
            match visit {
                Visit::Invalid(e) => found.push(ValidationIssue {
                    path,
                    message: e.to_string(),
                }),
                Visit::TooDeep => found.push(ValidationIssue {
                    path,
                    message: format!(
                        "nests deeper than {} levels (limit: template depth)",
                        crate::limits::MAX_DEPTH
                    ),
                }),
                Visit::Template(t) => {
                    for (expr, source) in t.expressions() {
                        if let Some(message) = self.check_expr(expr, step) {
                            found.push(ValidationIssue {
                                path: path.clone(),
                                message: format!("`${{{source}}}`: {message}"),
                            });
                        }
                    }
                }
            }
        });
        self.issues.extend(found);
    }

    fn check_expr(&self, expr: &Expr, step: Option<usize>) -> Option<String> {
        let Expr::Path { root, segments } = expr else {
            return None;
        };
        let first = segments.first();
        match root {
            Root::Steps => match first {
                None => None,
                Some(Segment::Index(_)) => Some("name a step, as in steps.<id>".into()),
                Some(Segment::Key(name)) => self.check_step_ref(name, step),
            },
            Root::Run => known_fields("run", &["id", "attempt"], segments),
            Root::Task => known_fields("task", &["name", "namespace"], segments),
            Root::Secrets => secret_ref(segments).err(),
            Root::Params => match first {
                Some(Segment::Key(name)) => self.check_param(name),
                _ => None,
            },
        }
    }

    /// A reference to another step's output: it must exist and run earlier than `step`.
    fn check_step_ref(&self, name: &str, step: Option<usize>) -> Option<String> {
        let Some(owner) = self.names.get(name) else {
            let earlier: Vec<&str> = self
                .names
                .iter()
                .filter(|(_, o)| step.is_none_or(|s| o.index < s))
                .map(|(n, _)| *n)
                .collect();
            let listing = if earlier.is_empty() {
                "no step runs before this one".to_string()
            } else {
                format!("steps that can be read here: {}", earlier.join(", "))
            };
            return Some(format!("no step has id or saveAs `{name}` ({listing})"));
        };
        let step = step?;
        if owner.index == step {
            Some(format!(
                "step `{name}` is this step; a step cannot read its own output"
            ))
        } else if owner.index > step {
            let this = &self.spec.steps[step].id;
            Some(format!(
                "step `{name}` (steps[{}]) runs after this step `{this}` (steps[{step}]); a step can only read the outputs of earlier steps",
                owner.index
            ))
        } else {
            None
        }
    }

    fn check_param(&self, name: &str) -> Option<String> {
        let schema = self.spec.params.as_ref()?;
        let properties = schema.get("properties")?.as_object()?;
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        if closed && !properties.contains_key(name) {
            let declared: Vec<&str> = properties.keys().map(String::as_str).collect();
            return Some(format!(
                "params.{name} is not declared in the params schema, which allows no other params (declared: {})",
                declared.join(", ")
            ));
        }
        None
    }

    fn check_condition_path(&mut self, index: usize, path: &[String]) {
        let at = format!("steps[{index}].if");
        let Some(root) = path.first() else {
            return;
        };
        match root.as_str() {
            "params" | "run" | "task" | "now" => {}
            "steps" => {
                if let Some(name) = path.get(1)
                    && let Some(message) = self.check_step_ref(name, Some(index))
                {
                    self.issue(at, format!("`steps.{name}`: {message}"));
                }
            }
            other => self.issue(
                at,
                format!(
                    "reads `{other}`, which is always null: conditions see params, steps, run, task and now"
                ),
            ),
        }
    }
}

/// The Secret and key a `secrets.<secret>.<key>` path names, or what is wrong with it.
pub fn secret_ref(segments: &[Segment]) -> Result<(&str, &str), String> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s != "."
            && s != ".."
    };
    match segments {
        [Segment::Key(name), Segment::Key(key)] if valid(name) && valid(key) => Ok((name, key)),
        _ => Err(
            "write secrets.<secret>.<key>: the name of a Secret in the Task's namespace and one of its keys (use [\"a.b\"] for names with dots)"
                .into(),
        ),
    }
}

fn known_fields(root: &str, fields: &[&str], segments: &[Segment]) -> Option<String> {
    match segments {
        [] => None,
        [Segment::Key(k)] if fields.contains(&k.as_str()) => None,
        [Segment::Key(k), ..] if fields.contains(&k.as_str()) => Some(format!(
            "{root}.{k} is a single value; it has no fields or items"
        )),
        _ => Some(format!("{root} has only: {}", fields.join(", "))),
    }
}
