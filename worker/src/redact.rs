//! Redaction of secrets from what is stored and logged (step inputs, errors).

use serde_json::Value;

/// Keys whose values are never stored: matched case-insensitively as substrings.
const SENSITIVE: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "apikey",
    "api_key",
    "api-key",
    "private_key",
    "privatekey",
    "credential",
    "cookie",
];

/// `true` if a key names something secret.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| k.contains(s))
}

/// A copy of `value` with the values of sensitive keys replaced by `"***"`, at any depth.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_sensitive_key(k) {
                        Value::String("***".into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sensitive_values_are_replaced_at_any_depth() {
        let input = json!({
            "url": "https://x",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "accept": "json"},
            "items": [{"password": "p", "name": "n"}],
            "githubToken": "t"
        });
        assert_eq!(
            redact(&input),
            json!({
                "url": "https://x",
                "headers": {"Authorization": "***", "X-Api-Key": "***", "accept": "json"},
                "items": [{"password": "***", "name": "n"}],
                "githubToken": "***"
            })
        );
    }
}
