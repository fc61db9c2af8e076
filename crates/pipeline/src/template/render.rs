//! Rendering a JSON value (a step's `with`, a pipeline's `output`) against a [`Context`].
//!
//! Strings are parsed as templates before anything is substituted, and substituted values are
//! never parsed again: a param whose text is `${params.secret}` comes out as that text.

use std::borrow::Cow;
use std::io;

use serde_json::{Map, Value};

use super::parse::{DisplayPath, Expr, Piece, Root, Segment, Sign, TemplateError, parse_template};
use super::{FieldPath, FieldSeg};
use crate::context::{Context, NoOutput};
use crate::limits::{MAX_DEPTH, MAX_RENDERED_BYTES};

/// A template that could not be rendered, and where in the value it sits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", if field.is_empty() { String::new() } else { format!("{field}: ") })]
pub struct RenderError {
    /// Where in the rendered value, e.g. `headers.Authorization` or `items[2]` (empty: the
    /// value itself). The caller prefixes the step (`steps[1].with.`).
    pub field: String,
    pub kind: RenderErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderErrorKind {
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// A variable that does not exist. `path` is as far as the lookup got, e.g.
    /// `steps.fetch.body.temp`; `reason` says what was there instead.
    #[error("{path}: {reason}{}", if path == expr { String::new() } else { format!(" (in `${{{expr}}}`)") })]
    Missing {
        expr: String,
        path: String,
        reason: String,
    },
    #[error(
        "rendered value nests deeper than {max} levels (limit: template depth); flatten the arguments or pass a smaller value"
    )]
    TooDeep { max: usize },
    #[error(
        "rendered value is larger than {max} bytes (limit: rendered output size); pass a smaller value or a reference to it"
    )]
    TooLarge { max: usize },
    #[error("`${{{expr}}}` is outside the range of representable times")]
    TimeOutOfRange { expr: String },
}

/// Renders `template` against `ctx`. Object keys are not templated (they are structure, not
/// data, and templated keys could collide); string values anywhere in the tree are.
pub fn render(template: &Value, ctx: &Context) -> Result<Value, RenderError> {
    let mut renderer = Renderer {
        ctx,
        used: 0,
        field: Vec::new(),
    };
    renderer.value(template, 0).map_err(|kind| RenderError {
        field: FieldPath(&renderer.field).to_string(),
        kind,
    })
}

struct Renderer<'c, 't> {
    ctx: &'c Context,
    /// Bytes of compact JSON produced so far (approximately: escapes are not counted).
    used: usize,
    /// Where the renderer is, for error messages.
    field: Vec<FieldSeg<'t>>,
}

impl<'t> Renderer<'_, 't> {
    fn charge(&mut self, bytes: usize) -> Result<(), RenderErrorKind> {
        self.used = self.used.saturating_add(bytes);
        if self.used > MAX_RENDERED_BYTES {
            return Err(RenderErrorKind::TooLarge {
                max: MAX_RENDERED_BYTES,
            });
        }
        Ok(())
    }

    /// `level`: how many arrays and objects enclose `value`.
    fn value(&mut self, value: &'t Value, level: usize) -> Result<Value, RenderErrorKind> {
        match value {
            Value::String(s) => self.string(s, level),
            Value::Array(items) => {
                self.enter(level)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    self.field.push(FieldSeg::Index(i));
                    out.push(self.value(item, level + 1)?);
                    self.field.pop();
                }
                Ok(Value::Array(out))
            }
            Value::Object(map) => {
                self.enter(level)?;
                let mut out = Map::new();
                for (k, v) in map {
                    self.charge(k.len() + 3)?;
                    self.field.push(FieldSeg::Key(k));
                    let rendered = self.value(v, level + 1)?;
                    self.field.pop();
                    out.insert(k.clone(), rendered);
                }
                Ok(Value::Object(out))
            }
            scalar => {
                self.charge(scalar.to_string().len())?;
                Ok(scalar.clone())
            }
        }
    }

    fn enter(&mut self, level: usize) -> Result<(), RenderErrorKind> {
        if level + 1 > MAX_DEPTH {
            return Err(RenderErrorKind::TooDeep { max: MAX_DEPTH });
        }
        self.charge(2)
    }

    fn string(&mut self, s: &str, level: usize) -> Result<Value, RenderErrorKind> {
        if !s.contains('$') {
            self.charge(s.len() + 2)?;
            return Ok(Value::String(s.to_string()));
        }
        let template = parse_template(s)?;
        if let Some((expr, source)) = template.single_expr() {
            let ctx = self.ctx;
            return with_resolved(ctx, expr, source, |found| {
                if level + depth(found, MAX_DEPTH + 1) > MAX_DEPTH {
                    return Err(RenderErrorKind::TooDeep { max: MAX_DEPTH });
                }
                let remaining = MAX_RENDERED_BYTES.saturating_sub(self.used);
                let size = json_size(found, remaining).ok_or(RenderErrorKind::TooLarge {
                    max: MAX_RENDERED_BYTES,
                })?;
                self.charge(size)?;
                Ok(found.clone())
            });
        }
        self.charge(2)?;
        let mut out = String::new();
        for piece in template.pieces() {
            match piece {
                Piece::Text(text) => {
                    self.charge(text.len())?;
                    out.push_str(text);
                }
                Piece::Expr(expr, source) => {
                    let ctx = self.ctx;
                    let remaining = MAX_RENDERED_BYTES.saturating_sub(self.used);
                    let text = with_resolved(ctx, expr, source, |found| {
                        as_text(found, remaining).ok_or(RenderErrorKind::TooLarge {
                            max: MAX_RENDERED_BYTES,
                        })
                    })?;
                    self.charge(text.len())?;
                    out.push_str(&text);
                }
            }
        }
        Ok(Value::String(out))
    }
}

/// Looks `expr` up in `ctx` and hands the value to `f` (some values, like `run` and `now`, are
/// built on the spot and only live for the call).
fn with_resolved<R>(
    ctx: &Context,
    expr: &Expr,
    source: &str,
    f: impl FnOnce(&Value) -> Result<R, RenderErrorKind>,
) -> Result<R, RenderErrorKind> {
    let (root, segments) = match expr {
        Expr::Now { offset } => return f(&now_value(ctx, offset, source)?),
        Expr::Path { root, segments } => (*root, segments.as_slice()),
    };
    let lookup = Lookup {
        root,
        segments,
        source,
    };
    let (base, consumed) = lookup.base(ctx)?;
    f(lookup.walk(&base, consumed)?)
}

/// `${now}`, `${now + 1h}`: the context's clock, formatted in the Task's zone.
fn now_value(
    ctx: &Context,
    offset: &Option<(Sign, std::time::Duration)>,
    source: &str,
) -> Result<Value, RenderErrorKind> {
    let now = ctx.now();
    let instant = match offset {
        None => Some(now),
        Some((sign, duration)) => chrono::TimeDelta::from_std(*duration)
            .ok()
            .and_then(|delta| match sign {
                Sign::Plus => now.checked_add_signed(delta),
                Sign::Minus => now.checked_sub_signed(delta),
            }),
    };
    let instant = instant.ok_or_else(|| RenderErrorKind::TimeOutOfRange {
        expr: source.to_string(),
    })?;
    Ok(Value::String(ctx.format_instant(instant)))
}

/// The lookup of one `${root.a.b[0]}` path.
struct Lookup<'e> {
    root: Root,
    segments: &'e [Segment],
    /// The expression as written, for error messages.
    source: &'e str,
}

impl Lookup<'_> {
    /// Missing: the path as far as its first `depth` segments, and why.
    fn missing(&self, depth: usize, reason: String) -> RenderErrorKind {
        RenderErrorKind::Missing {
            expr: self.source.to_string(),
            path: self.path(depth),
            reason,
        }
    }

    fn path(&self, depth: usize) -> String {
        DisplayPath {
            root: self.root,
            segments: &self.segments[..depth],
        }
        .to_string()
    }

    /// The value the root names, and how many segments it used up.
    fn base<'c>(&self, ctx: &'c Context) -> Result<(Cow<'c, Value>, usize), RenderErrorKind> {
        let segments = self.segments;
        Ok(match self.root {
            Root::Params => (Cow::Borrowed(ctx.params()), 0),
            Root::Run => {
                let run = ctx.run();
                let value = serde_json::json!({"id": run.id, "attempt": run.attempt});
                (Cow::Owned(value), 0)
            }
            Root::Task => {
                let task = ctx.task();
                let value = serde_json::json!({"name": task.name, "namespace": task.namespace});
                (Cow::Owned(value), 0)
            }
            Root::Secrets => {
                let (name, key) = crate::validate::secret_ref(segments)
                    .map_err(|reason| self.missing(0, reason))?;
                let Some(value) = ctx.secret(name, key) else {
                    let reason = format!(
                        "the Secret `{name}` or its key `{key}` does not exist in the Task's namespace (or the worker cannot read it: --secrets-dir)"
                    );
                    return Err(self.missing(segments.len(), reason));
                };
                (Cow::Owned(Value::String(value.to_string())), segments.len())
            }
            Root::Steps => match segments.first() {
                None => (Cow::Owned(ctx.to_json()["steps"].take()), 0),
                Some(Segment::Index(_)) => {
                    return Err(self.missing(1, "name a step, as in steps.<id>".into()));
                }
                Some(Segment::Key(name)) => match ctx.step_output(name) {
                    Some(output) => (Cow::Borrowed(output), 1),
                    None => return Err(self.missing(1, no_step_output(ctx, name))),
                },
            },
        })
    }

    /// Follows the segments after the first `consumed` from `base`.
    fn walk<'v>(&self, base: &'v Value, consumed: usize) -> Result<&'v Value, RenderErrorKind> {
        let mut current = base;
        for (i, segment) in self.segments.iter().enumerate().skip(consumed) {
            current = self.child(current, segment, i)?;
        }
        Ok(current)
    }

    /// `segment` (the `i`th) of `current`.
    fn child<'v>(
        &self,
        current: &'v Value,
        segment: &Segment,
        i: usize,
    ) -> Result<&'v Value, RenderErrorKind> {
        let here = || self.path(i);
        let out_of_range = |index: &dyn std::fmt::Display, len: usize| {
            let reason = format!("index {index} is out of range ({} has {len} items)", here());
            self.missing(i + 1, reason)
        };
        match (current, segment) {
            (Value::Object(map), Segment::Key(key)) => map
                .get(key)
                .ok_or_else(|| self.missing(i + 1, no_such_field(&here(), map))),
            (Value::Array(items), Segment::Index(index)) => list_index(items.len(), *index)
                .map(|at| &items[at])
                .ok_or_else(|| out_of_range(index, items.len())),
            // `.0` on a list reads as `[0]`: forgiving, and unambiguous since lists have no keys.
            (Value::Array(items), Segment::Key(key)) if key.parse::<usize>().is_ok() => key
                .parse::<usize>()
                .ok()
                .filter(|at| *at < items.len())
                .map(|at| &items[at])
                .ok_or_else(|| out_of_range(key, items.len())),
            (other, _) => {
                let reason = format!(
                    "{} is {}, so it has no {}",
                    here(),
                    type_name(other),
                    match segment {
                        Segment::Key(_) => "fields",
                        Segment::Index(_) => "items",
                    }
                );
                Err(self.missing(i + 1, reason))
            }
        }
    }
}

fn no_step_output(ctx: &Context, name: &str) -> String {
    if ctx.no_output_reason(name) == Some(NoOutput::Skipped) {
        return format!("step `{name}` was skipped (its `if` was false), so it has no output");
    }
    let names = ctx.step_names();
    if names.is_empty() {
        format!("no step output named `{name}` (no step has produced output yet)")
    } else {
        format!(
            "no step output named `{name}` (outputs so far: {})",
            list(names.into_iter())
        )
    }
}

fn no_such_field(here: &str, map: &Map<String, Value>) -> String {
    if map.is_empty() {
        format!("no such field ({here} is an empty object)")
    } else {
        format!(
            "no such field ({here} has: {})",
            list(map.keys().map(String::as_str))
        )
    }
}

/// A short, comma-separated list of names: at most ten, then a count of the rest.
fn list<'a>(names: impl ExactSizeIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 10;
    let total = names.len();
    let mut out: Vec<&str> = names.take(SHOWN).collect();
    let more;
    if total > SHOWN {
        more = format!("… and {} more", total - SHOWN);
        out.push(&more);
    }
    out.join(", ")
}

fn list_index(len: usize, index: i64) -> Option<usize> {
    let at = if index < 0 {
        i64::try_from(len).ok()?.checked_add(index)?
    } else {
        index
    };
    usize::try_from(at).ok().filter(|at| *at < len)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Levels of nesting of `value` (a scalar is 0), counting no further than `cap`.
pub(crate) fn depth(value: &Value, cap: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return 0,
    };
    1 + children.map(|c| depth(c, cap - 1)).max().unwrap_or(0)
}

/// How a value reads inside a longer string: strings as they are, the rest as compact JSON.
/// `None` when that text would exceed `limit` bytes.
fn as_text(value: &Value, limit: usize) -> Option<String> {
    if let Value::String(s) = value {
        return (s.len() <= limit).then(|| s.clone());
    }
    let mut buf = Bounded {
        bytes: Some(Vec::new()),
        len: 0,
        limit,
    };
    serde_json::to_writer(&mut buf, value).ok()?;
    // serde_json writes valid UTF-8
    buf.bytes.and_then(|b| String::from_utf8(b).ok())
}

/// Size of `value` as compact JSON, or `None` when over `limit` (stops counting there).
fn json_size(value: &Value, limit: usize) -> Option<usize> {
    let mut counter = Bounded {
        bytes: None,
        len: 0,
        limit,
    };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.len)
}

/// An in-memory sink that fails once more than `limit` bytes are written, so measuring or
/// printing a huge value stops early.
struct Bounded {
    bytes: Option<Vec<u8>>,
    len: usize,
    limit: usize,
}

impl io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.len = self.len.saturating_add(buf.len());
        if self.len > self.limit {
            return Err(io::Error::other("size limit"));
        }
        if let Some(bytes) = &mut self.bytes {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
