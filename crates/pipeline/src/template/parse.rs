//! Parsing of template strings: literal text, `$${` escapes and `${…}` expressions
//! (`params.a.b[0]`, `steps.fetch["content-type"]`, `run.id`, `now`, `now+24h`, `now-7d`).

use std::fmt;
use std::time::Duration;

use ordinaut_schedule::duration::parse_duration;

use crate::limits::MAX_TEMPLATE_EXPRESSION_LEN;

/// The roots a template may read. `now` is an [`Expr::Now`], not a root of paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    Params,
    Steps,
    Run,
    Task,
    /// `secrets.<secret>.<key>`: a key of a Secret of the Task's namespace, read at run time.
    Secrets,
}

impl Root {
    pub fn as_str(self) -> &'static str {
        match self {
            Root::Params => "params",
            Root::Steps => "steps",
            Root::Run => "run",
            Root::Task => "task",
            Root::Secrets => "secrets",
        }
    }
}

/// One step of a path: `.key`, `["key"]` or `[index]` (negative counts from the end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(i64),
}

/// A parsed `${…}` expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `now`, or `now+24h` / `now-7d` (elapsed time, any duration `parse_duration` accepts).
    Now { offset: Option<(Sign, Duration)> },
    /// `root.seg[0]…`
    Path { root: Root, segments: Vec<Segment> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    Plus,
    Minus,
}

/// A parsed template string: the pieces in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The expression and its source text (between `${` and `}`), for messages.
    Expr(Expr, String),
}

impl Template {
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The expression when the whole string is exactly one `${…}` (its value keeps its type).
    pub fn single_expr(&self) -> Option<(&Expr, &str)> {
        match self.pieces.as_slice() {
            [Piece::Expr(e, src)] => Some((e, src)),
            _ => None,
        }
    }

    pub fn expressions(&self) -> impl Iterator<Item = (&Expr, &str)> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Expr(e, src) => Some((e, src.as_str())),
            Piece::Text(_) => None,
        })
    }
}

/// Why a template string does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "unterminated `${{` at byte {at}: close it with `}}`, or write `$${{` for a literal `${{`"
    )]
    Unterminated { at: usize },
    #[error("empty expression `${{}}`: write e.g. `${{params.x}}`, or `$${{` for a literal `${{`")]
    Empty,
    #[error(
        "template expression is {len} bytes long, over the limit of {max} (limit: template expression length)"
    )]
    TooLong { len: usize, max: usize },
    #[error("unknown root `{root}` in `${{{expr}}}`: use params, steps, run, task, secrets or now")]
    UnknownRoot { root: String, expr: String },
    #[error("invalid expression `${{{expr}}}`: {reason}")]
    Syntax { expr: String, reason: String },
}

/// Parses a template string. `$${` is a literal `${`; every other `$` is literal text.
pub fn parse_template(input: &str) -> Result<Template, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = input;
    let mut consumed = 0;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            text.push_str("${");
            rest = tail;
            consumed += pos + 3;
        } else if let Some(body) = after.strip_prefix("${") {
            let end = find_close(body).map_err(|too_long| {
                if too_long {
                    TemplateError::TooLong {
                        len: body.find('}').unwrap_or(body.len()),
                        max: MAX_TEMPLATE_EXPRESSION_LEN,
                    }
                } else {
                    TemplateError::Unterminated { at: consumed + pos }
                }
            })?;
            let source = &body[..end];
            let expr = parse_expr(source)?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(Piece::Expr(expr, source.trim().to_string()));
            rest = &body[end + 1..];
            consumed += pos + 2 + end + 1;
        } else {
            text.push('$');
            rest = &after[1..];
            consumed += pos + 1;
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(Template { pieces })
}

/// Byte offset of the `}` closing an expression, skipping quoted keys (`["a}b"]`). When there
/// is none, `Err(true)` if the expression is merely too long (a `}` comes later), else
/// `Err(false)`: the `${` is unterminated.
fn find_close(body: &str) -> Result<usize, bool> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if i > MAX_TEMPLATE_EXPRESSION_LEN {
            return Err(body[i..].contains('}'));
        }
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Ok(i),
            None => {}
        }
    }
    Err(false)
}

/// Parses the text between `${` and `}`.
pub fn parse_expr(source: &str) -> Result<Expr, TemplateError> {
    if source.len() > MAX_TEMPLATE_EXPRESSION_LEN {
        return Err(TemplateError::TooLong {
            len: source.len(),
            max: MAX_TEMPLATE_EXPRESSION_LEN,
        });
    }
    let expr = source.trim();
    if expr.is_empty() {
        return Err(TemplateError::Empty);
    }
    let syntax = |reason: String| TemplateError::Syntax {
        expr: expr.to_string(),
        reason,
    };
    // Roots have no `-`, so `now-7d` reads as `now` and an offset.
    let root_len = expr
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(expr.len());
    let (root, mut rest) = expr.split_at(root_len);
    let root = match root {
        "now" => return parse_now(expr, rest),
        "params" => Root::Params,
        "steps" => Root::Steps,
        "run" => Root::Run,
        "task" => Root::Task,
        "secrets" => Root::Secrets,
        "" => {
            return Err(syntax(
                "an expression starts with params, steps, run, task, secrets or now".into(),
            ));
        }
        other => {
            return Err(TemplateError::UnknownRoot {
                root: other.to_string(),
                expr: expr.to_string(),
            });
        }
    };
    let mut segments = Vec::new();
    while let Some(c) = rest.chars().next() {
        match c {
            '.' => {
                let tail = &rest[1..];
                let len = tail.find(|c: char| !is_ident_char(c)).unwrap_or(tail.len());
                if len == 0 {
                    return Err(syntax(format!(
                        "expected a field name after `.` at `{rest}` (quote other names: [\"my key\"])"
                    )));
                }
                segments.push(Segment::Key(tail[..len].to_string()));
                rest = &tail[len..];
            }
            '[' => {
                let (segment, tail) = parse_bracket(&rest[1..]).map_err(syntax)?;
                segments.push(segment);
                rest = tail;
            }
            other => {
                return Err(syntax(format!(
                    "unexpected `{other}` at `{rest}`; paths look like params.a.b[0] or steps.x[\"key\"]"
                )));
            }
        }
    }
    Ok(Expr::Path { root, segments })
}

fn parse_now(expr: &str, rest: &str) -> Result<Expr, TemplateError> {
    let syntax = |reason: String| TemplateError::Syntax {
        expr: expr.to_string(),
        reason,
    };
    let rest = rest.trim_start();
    let sign = match rest.chars().next() {
        None => return Ok(Expr::Now { offset: None }),
        Some('+') => Sign::Plus,
        Some('-') => Sign::Minus,
        Some(_) => {
            return Err(syntax(
                "`now` takes only an offset, as in now+24h or now-7d".into(),
            ));
        }
    };
    let duration = parse_duration(&rest[1..]).map_err(|e| syntax(e.to_string()))?;
    Ok(Expr::Now {
        offset: Some((sign, duration)),
    })
}

/// Parses what follows `[`: an integer index or a quoted key, then `]`.
fn parse_bracket(input: &str) -> Result<(Segment, &str), String> {
    let input = input.trim_start();
    let mut chars = input.char_indices();
    match chars.next() {
        Some((_, q @ ('"' | '\''))) => {
            let mut key = String::new();
            let mut escaped = false;
            for (i, c) in chars {
                if escaped {
                    key.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    let tail = input[i + 1..].trim_start();
                    return match tail.strip_prefix(']') {
                        Some(tail) => Ok((Segment::Key(key), tail)),
                        None => Err("expected `]` after a quoted key".into()),
                    };
                } else {
                    key.push(c);
                }
            }
            Err("unterminated quoted key".into())
        }
        Some(_) => {
            let close = input.find(']').ok_or("expected `]`")?;
            let index = input[..close].trim();
            let index: i64 = index
                .parse()
                .map_err(|_| format!("`[{index}]` is neither an integer index nor a quoted key"))?;
            Ok((Segment::Index(index), &input[close + 1..]))
        }
        None => Err("expected an index or a quoted key after `[`".into()),
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Writes a path as a user would (`steps.fetch.body["content-type"][0]`).
pub struct DisplayPath<'a> {
    pub root: Root,
    pub segments: &'a [Segment],
}

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.as_str())?;
        for segment in self.segments {
            write_segment(f, segment)?;
        }
        Ok(())
    }
}

pub(crate) fn write_segment(f: &mut impl fmt::Write, segment: &Segment) -> fmt::Result {
    match segment {
        Segment::Key(k) if !k.is_empty() && k.chars().all(is_ident_char) => write!(f, ".{k}"),
        // Debug quoting escapes quotes and backslashes, which the parser reads back.
        Segment::Key(k) => write!(f, "[{k:?}]"),
        Segment::Index(i) => write!(f, "[{i}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn parses_paths_with_keys_indexes_and_quoted_keys() {
        let t = parse_template("${ params.a.b[0][\"c.d\"]['e]f'][-1] }").expect("parses");
        let (expr, src) = t.single_expr().expect("single");
        assert_eq!(src, "params.a.b[0][\"c.d\"]['e]f'][-1]");
        assert_eq!(
            expr,
            &Expr::Path {
                root: Root::Params,
                segments: vec![
                    key("a"),
                    key("b"),
                    Segment::Index(0),
                    key("c.d"),
                    key("e]f"),
                    Segment::Index(-1)
                ]
            }
        );
    }

    #[test]
    fn quoted_key_may_contain_a_closing_brace() {
        let t = parse_template("x ${steps.a[\"}\"]} y").expect("parses");
        assert_eq!(t.pieces().len(), 3);
    }

    #[test]
    fn parses_now_with_offsets() {
        assert_eq!(parse_expr("now"), Ok(Expr::Now { offset: None }));
        assert_eq!(
            parse_expr("now + 24h"),
            Ok(Expr::Now {
                offset: Some((Sign::Plus, Duration::from_secs(86_400)))
            })
        );
        assert_eq!(
            parse_expr("now-7d"),
            Ok(Expr::Now {
                offset: Some((Sign::Minus, Duration::from_secs(7 * 86_400)))
            })
        );
        assert!(matches!(
            parse_expr("now+soon"),
            Err(TemplateError::Syntax { .. })
        ));
        assert!(matches!(
            parse_expr("now.x"),
            Err(TemplateError::Syntax { .. })
        ));
        assert!(matches!(
            parse_expr("nowhere"),
            Err(TemplateError::UnknownRoot { .. })
        ));
    }

    #[test]
    fn double_dollar_brace_is_a_literal_and_lone_dollars_are_text() {
        let t = parse_template("cost $5, $${params.x} and $$").expect("parses");
        assert_eq!(
            t.pieces(),
            &[Piece::Text("cost $5, ${params.x} and $$".into())]
        );
    }

    #[test]
    fn rejects_unterminated_empty_and_unknown_roots() {
        assert_eq!(
            parse_template("ab ${params.x"),
            Err(TemplateError::Unterminated { at: 3 })
        );
        assert_eq!(parse_template("${  }"), Err(TemplateError::Empty));
        let err = parse_template("${secret.token}").expect_err("unknown root");
        assert_eq!(
            err.to_string(),
            "unknown root `secret` in `${secret.token}`: use params, steps, run, task, secrets or now"
        );
        assert!(matches!(
            parse_template("${params..x}"),
            Err(TemplateError::Syntax { .. })
        ));
        assert!(matches!(
            parse_template("${params[x]}"),
            Err(TemplateError::Syntax { .. })
        ));
        assert!(matches!(
            parse_template("${params x}"),
            Err(TemplateError::Syntax { .. })
        ));
    }

    #[test]
    fn expression_length_is_bounded_and_the_error_names_the_limit() {
        let long = format!("${{params.{}}}", "a".repeat(MAX_TEMPLATE_EXPRESSION_LEN));
        let err = parse_template(&long).expect_err("too long");
        assert!(matches!(err, TemplateError::TooLong { .. }));
        assert!(err.to_string().contains("template expression length"));
        let unclosed = format!("${{params.{}", "a".repeat(2 * MAX_TEMPLATE_EXPRESSION_LEN));
        assert!(matches!(
            parse_template(&unclosed),
            Err(TemplateError::Unterminated { at: 0 })
        ));
    }

    #[test]
    fn display_path_quotes_keys_that_are_not_identifiers() {
        let segments = [key("body"), key("content type"), Segment::Index(2)];
        let shown = DisplayPath {
            root: Root::Steps,
            segments: &segments,
        }
        .to_string();
        assert_eq!(shown, "steps.body[\"content type\"][2]");
        assert!(parse_expr(&shown).is_ok());
    }
}
