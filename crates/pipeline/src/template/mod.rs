//! `${…}` templates in step arguments (`with`) and pipeline outputs.
//!
//! * Roots: `params`, `steps` (`steps.<id>` and `steps.<saveAs>`), `run` (`id`, `attempt`),
//!   `task` (`name`, `namespace`) and `now` (RFC 3339 in the Task's timezone; `now+24h`,
//!   `now-7d` add or subtract elapsed time).
//! * Paths: `.field`, `["any key"]`, `[0]`, `[-1]` (from the end); `.0` on a list reads `[0]`.
//! * A string that is exactly one `${…}` takes the value's JSON type; in a longer string a
//!   value is rendered as text (strings raw, everything else compact JSON).
//! * `$${` is a literal `${`. Object keys are never templated.
//! * A missing variable is an error naming the path and what is there instead.
//! * Bounded: expression length, nesting depth and size of the result ([`crate::limits`]).

mod parse;
mod render;
#[cfg(test)]
mod tests;

use std::fmt;

use serde_json::Value;

pub use parse::{
    DisplayPath, Expr, Piece, Root, Segment, Sign, Template, TemplateError, parse_expr,
    parse_template,
};
pub use render::{RenderError, RenderErrorKind, render};

use crate::limits::MAX_DEPTH;

/// One step of a location inside a JSON value.
#[derive(Clone, Copy, Debug)]
pub(crate) enum FieldSeg<'a> {
    Key(&'a str),
    Index(usize),
}

/// A location inside a JSON value as people write it: `headers.Authorization`, `items[2]`,
/// `labels["app.kubernetes.io/name"]`.
pub(crate) struct FieldPath<'a, 'b>(pub &'b [FieldSeg<'a>]);

impl fmt::Display for FieldPath<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                FieldSeg::Key(k) if is_plain_key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                FieldSeg::Key(k) => write!(f, "[{k:?}]")?,
                FieldSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Joins a location prefix (`steps[1].with`) and a field inside it (`url`, `[0]`, or empty).
pub(crate) fn join_field(prefix: &str, field: &str) -> String {
    if field.is_empty() {
        prefix.to_string()
    } else if field.starts_with('[') || prefix.is_empty() {
        format!("{prefix}{field}")
    } else {
        format!("{prefix}.{field}")
    }
}

/// What [`visit_templates`] found at one location.
pub enum Visit<'a> {
    /// A string that parsed (it may hold no expression at all).
    Template(&'a Template),
    Invalid(TemplateError),
    /// The value nests deeper than [`MAX_DEPTH`] here; nothing below is visited.
    TooDeep,
}

/// Calls `visit` with every string of `value` parsed as a template, and its location (see
/// [`FieldPath`]). For validation: it reports what rendering would reject without a context.
pub fn visit_templates(value: &Value, visit: &mut dyn FnMut(&str, Visit<'_>)) {
    let mut path = Vec::new();
    walk(value, 0, &mut path, visit);
}

fn walk<'a>(
    value: &'a Value,
    level: usize,
    path: &mut Vec<FieldSeg<'a>>,
    visit: &mut dyn FnMut(&str, Visit<'_>),
) {
    match value {
        Value::String(s) => match parse_template(s) {
            Ok(t) => visit(&FieldPath(path).to_string(), Visit::Template(&t)),
            Err(e) => visit(&FieldPath(path).to_string(), Visit::Invalid(e)),
        },
        Value::Array(_) | Value::Object(_) if level + 1 > MAX_DEPTH => {
            visit(&FieldPath(path).to_string(), Visit::TooDeep);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(FieldSeg::Index(i));
                walk(item, level + 1, path, visit);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(FieldSeg::Key(k));
                walk(v, level + 1, path, visit);
                path.pop();
            }
        }
        _ => {}
    }
}
