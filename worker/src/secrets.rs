//! `${secrets.<secret>.<key>}` at run time: the values a pipeline reads are fetched from the
//! Task's own namespace before the run ([`load`]), and every trace of them is masked out of
//! what the run records ([`Masker`]): step inputs, outputs and errors, the run's output and
//! error. Events, logs and status are built from those records, so they never see a value.
//! Tools that keep their input beyond the run (`core.publish`, `core.state.put`:
//! [`ordinaut_tools::Tool::keeps_input`]) are called with it masked the same way, so no value
//! reaches an event or agent memory either.

use ordinaut_pipeline::{CompiledPipeline, Secrets};
use ordinaut_tools::secrets::SecretSource;
use serde_json::Value;

/// What replaces a secret value.
pub const MASK: &str = "***";

/// Values shorter than this are not searched for (masking every `1` of an output would
/// destroy it); documented with the feature.
pub const MIN_MASKED_LEN: usize = 4;

/// Reads the secrets `pipeline` refers to from `namespace`. A missing Secret or key is left
/// out (the template that reads it then fails, naming secret and key); an unreadable one is
/// an error naming it.
pub async fn load(
    pipeline: &CompiledPipeline,
    namespace: &str,
    source: &dyn SecretSource,
) -> Result<Secrets, String> {
    let mut out = Secrets::default();
    for (secret, key) in pipeline.secret_refs() {
        match source.get(namespace, &secret, &key).await {
            Ok(Some(value)) => out.insert(&secret, &key, value),
            Ok(None) => {}
            Err(e) => {
                return Err(format!(
                    "reading key `{key}` of Secret `{secret}` in namespace `{namespace}` failed: {e}"
                ));
            }
        }
    }
    Ok(out)
}

/// `value` percent-encoded as a query or path encodes it (a space as `space`).
fn url_encode(value: &str, space: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push_str(space),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Replaces secret values (as written, and as they look URL-encoded) in text and JSON.
#[derive(Debug, Default)]
pub struct Masker {
    needles: Vec<String>,
}

impl Masker {
    pub fn new(secrets: &Secrets) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for value in secrets.values().filter(|v| v.len() >= MIN_MASKED_LEN) {
            let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
            let forms = [
                value.to_string(),
                url_encode(value, "+"),
                url_encode(value, "%20"),
                escaped,
            ];
            for form in forms {
                if !needles.contains(&form) {
                    needles.push(form);
                }
            }
        }
        // Longest first, so a value containing another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        Self { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }

    /// `value` with every string (and object key) masked.
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Masks everything a run result will record.
    pub fn result(&self, result: &mut crate::executor::RunResult) {
        if self.is_empty() {
            return;
        }
        let text = |s: &mut Option<String>| {
            if let Some(t) = s.as_mut() {
                *t = self.text(t);
            }
        };
        let value = |v: &mut Option<Value>| {
            if let Some(x) = v.as_mut() {
                *x = self.value(x);
            }
        };
        text(&mut result.error);
        value(&mut result.output);
        for step in &mut result.steps {
            text(&mut step.error);
            value(&mut step.input);
            value(&mut step.output);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn masker(values: &[&str]) -> Masker {
        let mut s = Secrets::default();
        for (i, v) in values.iter().enumerate() {
            s.insert("s", &format!("k{i}"), v.to_string());
        }
        Masker::new(&s)
    }

    #[test]
    fn values_are_masked_raw_url_encoded_and_json_escaped_in_text_keys_and_values() {
        let m = masker(&["CANARY 1/2+\"x\"", "abc"]);
        assert_eq!(m.text("q=CANARY+1%2F2%2B%22x%22&z"), "q=***&z");
        assert_eq!(m.text(r#"{"t":"CANARY 1/2+\"x\""}"#), r#"{"t":"***"}"#);
        assert_eq!(
            m.value(&json!({"CANARY 1/2+\"x\"": ["a CANARY 1/2+\"x\" b"], "abc": "abc"})),
            json!({"***": ["a *** b"], "abc": "abc"}),
            "values shorter than {MIN_MASKED_LEN} characters are left alone"
        );
    }
}
