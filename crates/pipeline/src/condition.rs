//! A step's `if`: a JMESPath expression over `{params, steps, run, task, now}` (see
//! [`Context::to_json`]). Falsy by JMESPath rules (null, false, "", [], {}) skips the step;
//! everything else, `0` included, runs it. An evaluation error is an error, never a silent
//! false.
//!
//! Conditions are compiled when a pipeline is validated and once per run. The `jmespath`
//! crate is built with its `sync` feature, so a [`Condition`] is `Send + Sync`.

use jmespath::ast::Ast;
use jmespath::{ErrorReason, JmespathError, RuntimeError};
use serde_json::Value;

use crate::context::Context;
use crate::limits::{
    MAX_CONDITION_GROWTH, MAX_CONDITION_LEN, MAX_CONDITION_NESTING, MAX_CONDITION_STRING_BYTES,
};

/// JMESPath's built-in functions, but `to_string` and `join` stop at
/// [`MAX_CONDITION_STRING_BYTES`] instead of building a string of any size.
static RUNTIME: std::sync::LazyLock<jmespath::Runtime> = std::sync::LazyLock::new(|| {
    let mut runtime = jmespath::Runtime::new();
    runtime.register_builtin_functions();
    runtime.register_function("to_string", Box::new(BoundedToString));
    runtime.register_function("join", Box::new(BoundedJoin));
    runtime
});

fn too_long(ctx: &jmespath::Context<'_>, function: &str) -> JmespathError {
    JmespathError::from_ctx(
        ctx,
        ErrorReason::Parse(format!(
            "{function}() would build a string over {MAX_CONDITION_STRING_BYTES} bytes \
             (limit: condition string size)"
        )),
    )
}

/// `to_string`, serializing into a buffer that refuses to grow past the limit.
struct BoundedToString;

impl jmespath::functions::Function for BoundedToString {
    fn evaluate(
        &self,
        args: &[jmespath::Rcvar],
        ctx: &mut jmespath::Context<'_>,
    ) -> jmespath::SearchResult {
        if let Some(jmespath::Variable::String(_)) = args.first().map(|a| &**a) {
            return jmespath::functions::ToStringFn::new().evaluate(args, ctx);
        }
        let Some(value) = args.first().filter(|_| args.len() == 1) else {
            // Wrong arity: the built-in says so in its own words.
            return jmespath::functions::ToStringFn::new().evaluate(args, ctx);
        };
        let mut out = Bounded(Vec::new());
        if serde_json::to_writer(&mut out, &**value).is_err() {
            return Err(too_long(ctx, "to_string"));
        }
        let text = String::from_utf8(out.0).map_err(|_| too_long(ctx, "to_string"))?;
        Ok(jmespath::Rcvar::new(jmespath::Variable::String(text)))
    }
}

/// A writer that fails once it would hold more than [`MAX_CONDITION_STRING_BYTES`].
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_CONDITION_STRING_BYTES {
            return Err(std::io::Error::other("over the limit"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `join`, refusing before it allocates when the result would be over the limit.
struct BoundedJoin;

impl jmespath::functions::Function for BoundedJoin {
    fn evaluate(
        &self,
        args: &[jmespath::Rcvar],
        ctx: &mut jmespath::Context<'_>,
    ) -> jmespath::SearchResult {
        if let [glue, list] = args
            && let (Some(glue), Some(items)) = (glue.as_string(), list.as_array())
        {
            let mut total = glue.len().saturating_mul(items.len());
            for item in items {
                total = total.saturating_add(item.as_string().map_or(0, String::len));
            }
            if total > MAX_CONDITION_STRING_BYTES {
                return Err(too_long(ctx, "join"));
            }
        }
        jmespath::functions::JoinFn::new().evaluate(args, ctx)
    }
}

/// A compiled `if` expression.
#[derive(Clone, Debug)]
pub struct Condition {
    expr: jmespath::Expression<'static>,
}

/// Why a condition did not compile or evaluate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("empty condition: write a JMESPath expression, e.g. `steps.fetch.status == `200``")]
    Empty,
    #[error("condition is {len} bytes long, over the limit of {max} (limit: condition length)")]
    TooLong { len: usize, max: usize },
    #[error(
        "condition nests brackets and parentheses deeper than {max} (limit: condition nesting)"
    )]
    TooDeep { max: usize },
    #[error(
        "condition `{expr}` may multiply the size of its input {growth} times (multi-selects \
         inside pipes and projections), over the limit of {max} (limit: condition growth); \
         select fewer values per stage"
    )]
    TooCostly { expr: String, growth: u64, max: u64 },
    #[error("condition `{expr}` does not parse: {message}{}", hint_suffix(hint))]
    Parse {
        expr: String,
        message: String,
        hint: Option<String>,
    },
    #[error("condition `{expr}` calls unknown function `{name}`")]
    UnknownFunction { expr: String, name: String },
    #[error("condition `{expr}` failed: {message}{}", hint_suffix(hint))]
    Eval {
        expr: String,
        message: String,
        hint: Option<String>,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref()
        .map(|h| format!("; hint: {h}"))
        .unwrap_or_default()
}

/// Compiles an `if` expression, checking its size, its syntax and its function names.
pub fn compile_condition(source: &str) -> Result<Condition, ConditionError> {
    if source.len() > MAX_CONDITION_LEN {
        return Err(ConditionError::TooLong {
            len: source.len(),
            max: MAX_CONDITION_LEN,
        });
    }
    if source.trim().is_empty() {
        return Err(ConditionError::Empty);
    }
    if nesting(source) > MAX_CONDITION_NESTING {
        return Err(ConditionError::TooDeep {
            max: MAX_CONDITION_NESTING,
        });
    }
    let expr = RUNTIME.compile(source).map_err(|e| ConditionError::Parse {
        expr: source.to_string(),
        message: reason_text(&e),
        hint: parse_hint(source),
    })?;
    let (_, growth) = growth(expr.as_ast());
    if growth > MAX_CONDITION_GROWTH {
        return Err(ConditionError::TooCostly {
            expr: source.to_string(),
            growth,
            max: MAX_CONDITION_GROWTH,
        });
    }
    if let Some(name) = unknown_function(expr.as_ast()) {
        return Err(ConditionError::UnknownFunction {
            expr: source.to_string(),
            name,
        });
    }
    Ok(Condition { expr })
}

impl Condition {
    /// The expression as written.
    pub fn source(&self) -> &str {
        self.expr.as_str()
    }

    /// Evaluates against a run's context: `Ok(true)` runs the step, `Ok(false)` skips it.
    pub fn evaluate(&self, ctx: &Context) -> Result<bool, ConditionError> {
        self.truthy(self.expr.search(ctx.view()))
    }

    /// Evaluates against any JSON document (tests, `ordinaut validate --params`).
    pub fn evaluate_json(&self, data: &Value) -> Result<bool, ConditionError> {
        self.truthy(self.expr.search(data))
    }

    fn truthy(
        &self,
        result: Result<jmespath::Rcvar, JmespathError>,
    ) -> Result<bool, ConditionError> {
        result
            .map(|v| v.is_truthy())
            .map_err(|e| ConditionError::Eval {
                expr: self.source().to_string(),
                hint: eval_hint(&e.reason),
                message: reason_text(&e),
            })
    }

    /// The paths the expression reads from the document's root, e.g. `["steps", "fetch",
    /// "status"]` for `steps.fetch.status == `200``; for checking names at validation time.
    /// Paths inside projections and filters (read from elements) are not included.
    pub fn root_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        collect_root_paths(self.expr.as_ast(), true, &mut out);
        out
    }
}

/// The message without the expression echo jmespath adds (ours names the expression).
fn reason_text(e: &JmespathError) -> String {
    let reason = match &e.reason {
        ErrorReason::Parse(m) => m.clone(),
        ErrorReason::Runtime(r) => r.to_string(),
    };
    format!("{reason} (at column {})", e.column + 1)
}

fn parse_hint(source: &str) -> Option<String> {
    let dashed = source
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '"'))
        .find(|w| {
            !w.starts_with('"')
                && w.contains('-')
                && w.starts_with(|c: char| c.is_ascii_alphabetic())
        });
    if let Some(word) = dashed {
        return Some(format!(
            "names with `-` must be quoted in JMESPath: \"{word}\" (e.g. params.\"{word}\")"
        ));
    }
    if source.contains('\'') || source.contains('`') {
        return Some("strings are 'raw' or `\"json\"`, numbers are `42` (backticks)".into());
    }
    None
}

fn eval_hint(reason: &ErrorReason) -> Option<String> {
    match reason {
        ErrorReason::Runtime(RuntimeError::InvalidType {
            expected, actual, ..
        }) if actual == "null" => {
            let default = if expected.contains("array") {
                "`[]`"
            } else if expected.contains("string") {
                "''"
            } else if expected.contains("number") {
                "`0`"
            } else if expected.contains("object") {
                "`{}`"
            } else {
                "`[]`"
            };
            Some(format!(
                "an argument is null, usually a path that does not exist (a skipped step, a missing field); give a default, e.g. length(x || {default})"
            ))
        }
        ErrorReason::Runtime(RuntimeError::InvalidType { .. }) => {
            Some("convert the argument first, e.g. to_number(x) or to_string(x)".into())
        }
        ErrorReason::Runtime(
            RuntimeError::TooManyArguments { .. } | RuntimeError::NotEnoughArguments { .. },
        ) => Some("see the function's signature at https://jmespath.org/specification.html".into()),
        _ => None,
    }
}

/// Deepest nesting of `(`, `[` and `{` outside quoted text.
fn nesting(source: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' | '`' => quote = Some(c),
                '(' | '[' | '{' => {
                    depth += 1;
                    max = max.max(depth);
                }
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

/// A static bound on how much `ast` multiplies the size of its input: `(output, worst)`,
/// the multiplier of its result and the largest multiplier of any value built on the way.
fn growth(ast: &Ast) -> (u64, u64) {
    let both = |a: &Ast, b: &Ast| {
        let ((ga, wa), (gb, wb)) = (growth(a), growth(b));
        (ga, gb, wa.max(wb))
    };
    let (out, worst) = match ast {
        Ast::Projection { lhs, rhs, .. } | Ast::Subexpr { lhs, rhs, .. } => {
            let (l, r, w) = both(lhs, rhs);
            let out = l.saturating_mul(r);
            (out, w.max(out))
        }
        Ast::And { lhs, rhs, .. } | Ast::Or { lhs, rhs, .. } => {
            let (l, r, w) = both(lhs, rhs);
            (l.max(r), w)
        }
        Ast::Comparison { lhs, rhs, .. } => (1, both(lhs, rhs).2),
        Ast::Condition {
            predicate, then, ..
        } => {
            let (_, t, w) = both(predicate, then);
            (t, w)
        }
        Ast::Not { node, .. } => (1, growth(node).1),
        Ast::Flatten { node, .. }
        | Ast::ObjectValues { node, .. }
        | Ast::Expref { ast: node, .. } => growth(node),
        Ast::Function { args, .. } => sum(args.iter()),
        Ast::MultiList { elements, .. } => sum(elements.iter()),
        Ast::MultiHash { elements, .. } => sum(elements.iter().map(|kv| &kv.value)),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => (1, 1),
    };
    (out, worst.max(out))
}

/// The sum of the parts' multipliers (their results side by side), and the worst of them.
fn sum<'a>(parts: impl Iterator<Item = &'a Ast>) -> (u64, u64) {
    parts.fold((0, 1), |(out, worst), a| {
        let (g, w) = growth(a);
        (out.saturating_add(g), worst.max(w))
    })
}

fn unknown_function(ast: &Ast) -> Option<String> {
    let mut found = None;
    visit(ast, &mut |node| {
        if let Ast::Function { name, .. } = node
            && found.is_none()
            && RUNTIME.get_function(name).is_none()
        {
            found = Some(name.clone());
        }
    });
    found
}

fn visit(ast: &Ast, f: &mut dyn FnMut(&Ast)) {
    f(ast);
    for child in children(ast) {
        visit(child, f);
    }
}

fn children(ast: &Ast) -> Vec<&Ast> {
    match ast {
        Ast::Comparison { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => vec![lhs, rhs],
        Ast::Condition {
            predicate, then, ..
        } => vec![predicate, then],
        Ast::Expref { ast, .. } => vec![ast],
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            vec![node]
        }
        Ast::Function { args, .. } => args.iter().collect(),
        Ast::MultiList { elements, .. } => elements.iter().collect(),
        Ast::MultiHash { elements, .. } => elements.iter().map(|kv| &kv.value).collect(),
        Ast::Identity { .. }
        | Ast::Field { .. }
        | Ast::Index { .. }
        | Ast::Literal { .. }
        | Ast::Slice { .. } => vec![],
    }
}

/// A chain of fields from the current node (`a.b.c`), if `ast` is one.
fn field_chain(ast: &Ast) -> Option<Vec<String>> {
    match ast {
        Ast::Field { name, .. } => Some(vec![name.clone()]),
        Ast::Subexpr { lhs, rhs, .. } => {
            let mut chain = field_chain(lhs)?;
            chain.extend(field_chain(rhs)?);
            Some(chain)
        }
        _ => None,
    }
}

/// Collects the field chains evaluated against the document root. `at_root`: whether `ast`
/// is evaluated against the root (false on the right of `.`, projections and `&expr`).
fn collect_root_paths(ast: &Ast, at_root: bool, out: &mut Vec<Vec<String>>) {
    if at_root && let Some(chain) = field_chain(ast) {
        out.push(chain);
        return;
    }
    match ast {
        Ast::Subexpr { lhs, rhs, .. } | Ast::Projection { lhs, rhs, .. } => {
            collect_root_paths(lhs, at_root, out);
            collect_root_paths(rhs, false, out);
        }
        Ast::Expref { ast, .. } => collect_root_paths(ast, false, out),
        other => {
            for child in children(other) {
                collect_root_paths(child, at_root, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::tests::fixture;
    use serde_json::json;

    fn eval(expr: &str, data: Value) -> Result<bool, ConditionError> {
        compile_condition(expr).expect(expr).evaluate_json(&data)
    }

    #[test]
    fn to_string_and_join_stop_at_the_string_limit_instead_of_filling_memory() {
        // Within the growth limit (exactly 1,000×), but written out: 1,000 copies of 4 kB.
        let ten = "[@,@,@,@,@,@,@,@,@,@]";
        let expr = format!("to_string({ten}|{ten}|{ten}) != ''");
        let big = json!({"body": "x".repeat(4096)});
        match eval(&expr, big.clone()) {
            Err(ConditionError::Eval { message, .. }) => {
                assert!(message.contains("condition string size"), "{message}")
            }
            other => panic!("want the string limit, got {other:?}"),
        }
        // 100 copies of a 20 kB string.
        let join = "join(',', [body,body,body,body,body,body,body,body,body,body][] | [@,@,@,@,@,@,@,@,@,@][]) != ''";
        match eval(join, json!({"body": "y".repeat(20_000)})) {
            Err(ConditionError::Eval { message, .. }) => {
                assert!(message.contains("condition string size"), "{message}")
            }
            other => panic!("want the string limit, got {other:?}"),
        }
        // Small inputs still work as JMESPath says.
        assert_eq!(
            eval("to_string(a) == '[1,2]'", json!({"a": [1, 2]})),
            Ok(true)
        );
        assert_eq!(eval("to_string(s) == 'x'", json!({"s": "x"})), Ok(true));
        assert_eq!(
            eval("join('-', a) == 'x-y'", json!({"a": ["x", "y"]})),
            Ok(true)
        );
    }

    #[test]
    fn an_expression_that_doubles_per_stage_is_refused_naming_the_limit() {
        // Ten stages of `[@,@][]` would build 1,024 copies of the whole context.
        let stage = "[@,@][]";
        let doubling = [stage; 10].join(" | ");
        match compile_condition(&doubling) {
            Err(ConditionError::TooCostly { growth, max, .. }) => {
                assert_eq!(max, MAX_CONDITION_GROWTH);
                assert_eq!(growth, 1024);
            }
            other => panic!("want TooCostly, got {other:?}"),
        }
        let message = compile_condition(&doubling)
            .expect_err("refused")
            .to_string();
        assert!(message.contains("condition growth"), "{message}");
        // Projections of projections multiply too, even inside a function or a filter.
        let nested = "length([[@,@,@,@,@,@,@,@,@,@][], [@,@,@,@,@,@,@,@,@,@][]][][] | [@,@,@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@][]) > `0`";
        assert!(matches!(
            compile_condition(nested),
            Err(ConditionError::TooCostly { growth: 1200, .. })
        ));
        // Nine stages (512x) still pass, and ordinary conditions are far below the limit.
        let nine = [stage; 9].join(" | ");
        assert!(compile_condition(&nine).is_ok());
        for ok in [
            "steps.fetch.status == `200` && length(steps.fetch.output.items) > `0`",
            "steps.list.output.items[?price > `10`].{name: name, price: price, id: id}",
            "contains(params.tags[*].name, 'urgent') || !params.quiet",
            "[steps.a.ok, steps.b.ok, steps.c.ok] | [?@] | length(@) >= `2`",
        ] {
            assert!(compile_condition(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn truthiness_follows_jmespath_including_zero_true_and_empty_false() {
        for (value, expected) in [
            (json!(null), false),
            (json!(false), false),
            (json!(""), false),
            (json!([]), false),
            (json!({}), false),
            (json!(true), true),
            (json!(0), true),
            (json!(0.0), true),
            (json!(-1), true),
            (json!("false"), true),
            (json!(" "), true),
            (json!([null]), true),
            (json!({"a": null}), true),
        ] {
            assert_eq!(eval("v", json!({ "v": value })), Ok(expected), "{value}");
        }
        assert_eq!(eval("missing.path", json!({})), Ok(false));
    }

    #[test]
    fn evaluates_against_the_run_context() {
        let mut ctx = fixture();
        ctx.record_output("fetch", Some("w"), json!({"status": 200, "items": [1, 2]}));
        let yes = [
            "steps.fetch.status == `200`",
            "length(steps.w.items) > `1`",
            "params.city == 'Chisinau' && run.attempt == `2`",
            "task.name == 'weather' && task.namespace == 'agents'",
            "starts_with(now, '2026-03-28')",
        ];
        for expr in yes {
            assert_eq!(
                compile_condition(expr).expect(expr).evaluate(&ctx),
                Ok(true),
                "{expr}"
            );
        }
        let no = compile_condition("steps.fetch.status != `200`").expect("compiles");
        assert_eq!(no.evaluate(&ctx), Ok(false));
    }

    #[test]
    fn evaluation_error_names_the_expression_and_hints_at_a_default() {
        let cond = compile_condition("length(steps.fetch.items) > `0`").expect("compiles");
        let err = cond.evaluate(&fixture()).expect_err("length(null)");
        let ConditionError::Eval { expr, hint, .. } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(expr, "length(steps.fetch.items) > `0`");
        assert!(
            hint.as_deref().unwrap_or("").contains("length(x || `[]`)"),
            "{err}"
        );
        assert!(err.to_string().starts_with("condition `length(steps.fetch.items) > `0`` failed: Argument 0 expects type array|object|string, given null"), "{err}");
    }

    #[test]
    fn compile_rejects_bad_syntax_unknown_functions_and_oversize_input() {
        let err = compile_condition("steps.fetch.status ==").expect_err("syntax");
        assert!(matches!(err, ConditionError::Parse { .. }), "{err:?}");
        assert!(err.to_string().contains("does not parse"), "{err}");
        let err = compile_condition("steps.fetch-data.ok").expect_err("dash");
        assert!(err.to_string().contains("\"fetch-data\""), "{err}");
        assert!(compile_condition("steps.\"fetch-data\".ok").is_ok());
        assert_eq!(
            compile_condition("lenght(params.tags)").map(|_| ()),
            Err(ConditionError::UnknownFunction {
                expr: "lenght(params.tags)".into(),
                name: "lenght".into()
            })
        );
        assert_eq!(
            compile_condition("  ").map(|_| ()),
            Err(ConditionError::Empty)
        );
        let long = format!("params.a == '{}'", "x".repeat(MAX_CONDITION_LEN));
        assert!(matches!(
            compile_condition(&long),
            Err(ConditionError::TooLong { .. })
        ));
        let deep = format!("{}params{}", "(".repeat(40), ")".repeat(40));
        let err = compile_condition(&deep).expect_err("deep");
        assert!(
            err.to_string().contains("limit: condition nesting"),
            "{err}"
        );
        assert!(compile_condition("'((((((((((((((((((((((((((((((((((((((((('").is_ok());
    }

    #[test]
    fn condition_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Condition>();
        let cond = compile_condition("params.count > `1`").expect("compiles");
        let handle = std::thread::spawn(move || cond.evaluate(&fixture()));
        assert_eq!(handle.join().expect("thread"), Ok(true));
    }

    #[test]
    fn root_paths_lists_what_the_expression_reads_from_the_root() {
        let cond = compile_condition(
            "steps.fetch.status == `200` && length(params.tags[?@ != 'x']) > `0` || sort_by(steps.list.items, &name)[0].ok || not_null(stepz)",
        )
        .expect("compiles");
        let paths = cond.root_paths();
        let as_str: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
        assert!(
            as_str.contains(&"steps.fetch.status".to_string()),
            "{as_str:?}"
        );
        assert!(as_str.contains(&"params.tags".to_string()), "{as_str:?}");
        assert!(
            as_str.contains(&"steps.list.items".to_string()),
            "{as_str:?}"
        );
        assert!(as_str.contains(&"stepz".to_string()), "{as_str:?}");
        assert!(
            !as_str.iter().any(|p| p == "name" || p == "ok"),
            "{as_str:?}"
        );
    }
}
