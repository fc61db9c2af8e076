//! JSON Schema checks of tool inputs and outputs and of a Task's params (the `jsonschema`
//! crate: drafts 4 to 2020-12, 2020-12 when `$schema` is absent). Each distinct schema is
//! compiled once and cached; remote `$ref`s are never fetched (the crate is built without its
//! HTTP and file resolvers, and the validators are built offline on top of that).
//!
//! `format` is an annotation, as the 2019-09 and 2020-12 drafts specify (tool schemas often
//! carry formats their servers read loosely); `pattern`, `enum`, types and bounds assert.
//!
//! Violation messages may quote the offending value; [`Violation::masked`] has the same text
//! with the value left out, for records that must not hold secrets.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::limits::{MAX_REPORTED_VIOLATIONS, SCHEMA_CACHE_CAPACITY};

/// One way an instance breaks a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// JSON pointer into the instance (`/count`, `/items/0`; empty for the instance itself).
    pub pointer: String,
    /// The schema keyword that failed (`type`, `required`, `maxLength`…).
    pub keyword: String,
    /// What is wrong, e.g. `"abc" is not of type "integer"`.
    pub message: String,
    /// The message without the instance's value, e.g. `value is not of type "integer"`.
    pub masked: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(
            f,
            "{pointer}: {} (keyword `{}`)",
            self.message, self.keyword
        )
    }
}

/// An instance that does not satisfy its schema: the first violations, and how many in all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaViolation {
    pub violations: Vec<Violation>,
    /// All violations found; more than `violations.len()` when the list was cut short.
    pub total: usize,
}

impl SchemaViolation {
    /// The violations without instance values, in the same format as `Display`.
    pub fn masked(&self) -> String {
        self.render(|v| &v.masked)
    }

    fn render(&self, message: impl Fn(&Violation) -> &str) -> String {
        let mut out = String::new();
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                out.push_str("; ");
            }
            let pointer = if v.pointer.is_empty() {
                "(root)"
            } else {
                &v.pointer
            };
            let _ = write!(out, "{pointer}: {} (keyword `{}`)", message(v), v.keyword);
        }
        if self.total > self.violations.len() {
            let _ = write!(out, "; and {} more", self.total - self.violations.len());
        }
        out
    }
}

impl fmt::Display for SchemaViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(|v| &v.message))
    }
}

/// Why a check did not pass.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// The schema itself is not a valid JSON Schema (or refers to something unavailable).
    #[error("invalid JSON Schema: {reason}")]
    InvalidSchema {
        /// Where in the schema, as a JSON pointer (empty: the schema itself or unknown).
        pointer: String,
        reason: String,
    },
    #[error("{0}")]
    Violated(SchemaViolation),
}

/// Compiled validators by schema, shared by all runs of a worker.
#[derive(Default)]
pub struct SchemaCache {
    validators: RwLock<HashMap<String, Arc<Validator>>>,
    compilations: AtomicU64,
}

impl fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaCache")
            .field("len", &self.len())
            .field("compilations", &self.compilations())
            .finish()
    }
}

impl SchemaCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks `instance` against `schema`, compiling the schema on first use.
    pub fn check(&self, schema: &Value, instance: &Value) -> Result<(), SchemaError> {
        let validator = self.validator(schema)?;
        check_with(&validator, instance)
    }

    /// The compiled validator for `schema`, from the cache or compiled now.
    pub fn validator(&self, schema: &Value) -> Result<Arc<Validator>, SchemaError> {
        let key = canonical(schema);
        if let Some(v) = self.read().get(&key) {
            return Ok(Arc::clone(v));
        }
        // Compiled outside the lock: two threads may both compile a new schema once, which
        // is cheaper than making every reader wait behind a compilation.
        let validator = Arc::new(compile(schema)?);
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let mut map = self
            .validators
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= SCHEMA_CACHE_CAPACITY && !map.contains_key(&key) {
            // Schemas come from Pipelines and McpServers, so a full cache means churn (tools
            // redeployed); starting over is simple and cheap next to compiling.
            map.clear();
        }
        Ok(Arc::clone(map.entry(key).or_insert(validator)))
    }

    /// Schemas compiled so far (a repeated schema is compiled once).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Schemas currently cached.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Validator>>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts).
        self.validators
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Compiles a schema without caching: draft from `$schema`, else 2020-12; no remote refs.
pub fn compile(schema: &Value) -> Result<Validator, SchemaError> {
    let mut options = jsonschema::options().offline();
    if schema.get("$schema").is_none() {
        options = options.with_draft(Draft::Draft202012);
    }
    options
        .build(schema)
        .map_err(|e| SchemaError::InvalidSchema {
            pointer: e.instance_path().to_string(),
            reason: {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("at {at}: {e}")
                }
            },
        })
}

/// Checks `instance` with an already compiled validator.
pub fn check_with(validator: &Validator, instance: &Value) -> Result<(), SchemaError> {
    let mut violations = Vec::new();
    let mut total = 0;
    for error in validator.iter_errors(instance) {
        total += 1;
        if violations.len() < MAX_REPORTED_VIOLATIONS {
            violations.push(Violation {
                pointer: error.instance_path().to_string(),
                keyword: error.kind().keyword().to_string(),
                message: error.to_string(),
                masked: error.masked().to_string(),
            });
        }
    }
    if total == 0 {
        Ok(())
    } else {
        Err(SchemaError::Violated(SchemaViolation { violations, total }))
    }
}

/// The cache key: the schema as JSON with object keys sorted, so that key order (which
/// serde_json may preserve, depending on features elsewhere in the build) does not matter.
fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn violations(err: SchemaError) -> SchemaViolation {
        match err {
            SchemaError::Violated(v) => v,
            other => panic!("expected violations, got {other:?}"),
        }
    }

    #[test]
    fn failure_names_the_pointer_the_keyword_and_the_reason() {
        let cache = SchemaCache::new();
        let schema = json!({"type": "object", "properties": {"count": {"type": "integer"}}, "required": ["city"]});
        let err = violations(
            cache
                .check(&schema, &json!({"count": "abc"}))
                .expect_err("invalid"),
        );
        assert_eq!(err.total, 2);
        let count = err
            .violations
            .iter()
            .find(|v| v.pointer == "/count")
            .expect("count violation");
        assert_eq!(count.keyword, "type");
        assert_eq!(count.message, r#""abc" is not of type "integer""#);
        assert_eq!(
            count.to_string(),
            r#"/count: "abc" is not of type "integer" (keyword `type`)"#
        );
        assert_eq!(count.masked, r#"value is not of type "integer""#);
        let text = err.to_string();
        assert!(
            text.contains(r#"(root): "city" is a required property (keyword `required`)"#),
            "{text}"
        );
        assert!(!err.masked().contains("abc"), "{}", err.masked());
    }

    #[test]
    fn valid_instance_passes() {
        let cache = SchemaCache::new();
        let schema = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(cache.check(&schema, &json!(["a", "b"])), Ok(()));
    }

    #[test]
    fn a_schema_is_compiled_once_whatever_its_key_order() {
        let cache = SchemaCache::new();
        let a: Value = serde_json::from_str(r#"{"type":"object","required":["x"]}"#).expect("json");
        let b: Value = serde_json::from_str(r#"{"required":["x"],"type":"object"}"#).expect("json");
        for _ in 0..5 {
            assert!(cache.check(&a, &json!({"x": 1})).is_ok());
            assert!(cache.check(&b, &json!({})).is_err());
        }
        assert_eq!(cache.compilations(), 1);
        assert_eq!(cache.len(), 1);
        cache
            .check(&json!({"type": "string"}), &json!("s"))
            .expect("valid");
        assert_eq!(cache.compilations(), 2);
    }

    #[test]
    fn cache_is_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaCache>();
        let cache = Arc::new(SchemaCache::new());
        let schema = json!({"type": "integer", "minimum": 0});
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (cache, schema) = (Arc::clone(&cache), schema.clone());
                std::thread::spawn(move || cache.check(&schema, &json!(i)).is_ok())
            })
            .collect();
        for h in handles {
            assert!(h.join().expect("thread"));
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn invalid_schema_is_a_clear_error() {
        let err = SchemaCache::new()
            .check(&json!({"type": "integr"}), &json!(1))
            .expect_err("invalid schema");
        let SchemaError::InvalidSchema { pointer, reason } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(pointer, "/type");
        assert!(reason.contains("integr"), "{reason}");
        assert!(
            err.to_string()
                .starts_with("invalid JSON Schema: at /type:"),
            "{err}"
        );
    }

    #[test]
    fn remote_ref_is_refused_not_fetched() {
        for uri in [
            "http://example.com/x.json",
            "https://127.0.0.1:1/x.json",
            "file:///etc/passwd",
        ] {
            let started = std::time::Instant::now();
            let err = compile(&json!({"$ref": uri})).expect_err(uri);
            assert!(matches!(err, SchemaError::InvalidSchema { .. }), "{err:?}");
            assert!(err.to_string().contains(uri), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
        }
    }

    #[test]
    fn draft_defaults_to_2020_12_and_follows_schema_keyword() {
        assert_eq!(
            compile(&json!({})).expect("schema").draft(),
            Draft::Draft202012
        );
        let d7 = compile(&json!({"$schema": "http://json-schema.org/draft-07/schema#"}))
            .expect("schema");
        assert_eq!(d7.draft(), Draft::Draft7);
        // 2020-12 semantics: prefixItems exists (in draft 7 it would be ignored).
        let tuple = json!({"prefixItems": [{"type": "string"}]});
        assert!(SchemaCache::new().check(&tuple, &json!([1])).is_err());
        assert!(compile(&json!({"$schema": "https://example.com/custom"})).is_err());
    }

    #[test]
    fn reports_at_most_the_configured_number_of_violations() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        let instance = Value::Array((0..50).map(|i| json!(i)).collect());
        let err = violations(
            SchemaCache::new()
                .check(&schema, &instance)
                .expect_err("bad"),
        );
        assert_eq!(err.violations.len(), MAX_REPORTED_VIOLATIONS);
        assert_eq!(err.total, 50);
        assert!(err.to_string().ends_with("; and 30 more"));
    }
}
