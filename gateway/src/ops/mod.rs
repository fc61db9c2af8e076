//! The gateway's operations, one service layer that REST ([`crate::rest`]) and MCP
//! ([`crate::mcp`]) both call: checks (scope, ownership, the spec with `ordinaut validate`'s
//! code), then the write path ([`crate::writer`]) or a read from PostgreSQL, then an audit
//! entry for every mutation, allowed or refused, with the request's correlation id.
//!
//! Ownership: an Agent sees and changes only the Tasks of its namespace whose
//! `spec.agentRef` names it, unless it holds `tasks:all`; other Tasks are reported as not
//! found (their existence is not revealed). The admin sees every namespace.

mod actions;
mod reads;
pub mod state;
mod tasks;
pub mod types;

use std::sync::Arc;

use ordinaut_api::agent::api_scope;
use ordinaut_api::{Task, TaskSpec};
use ordinaut_schedule::clock::Clock;
use ordinaut_store::{AuditEntry, Store};
use serde_json::{Value, json};

use crate::auth::Identity;
use crate::problem::{FieldError, OpError};
use crate::writer::TaskWriter;

/// Everything an operation needs.
pub struct Ops {
    pub store: Store,
    pub writer: Arc<dyn TaskWriter>,
    pub clock: Arc<dyn Clock>,
}

/// Who asks, and the correlation id of the request (logs, audit, responses).
#[derive(Debug, Clone)]
pub struct Call {
    pub who: Identity,
    pub correlation_id: String,
}

/// Default page size of lists, and the largest.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

fn limit(l: Option<u32>) -> Result<i64, OpError> {
    match l.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(OpError::invalid("limit", "must be at least 1")),
        n if n > MAX_LIMIT => Err(OpError::invalid(
            "limit",
            format!("at most {MAX_LIMIT}; page with `cursor` for more"),
        )),
        n => Ok(i64::from(n)),
    }
}

impl Ops {
    pub fn new(store: Store, writer: Arc<dyn TaskWriter>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            writer,
            clock,
        }
    }

    /// The namespace a call acts in: an Agent's own (another one is refused), the admin's
    /// choice (default `default`).
    fn namespace(&self, call: &Call, asked: Option<&str>) -> Result<String, OpError> {
        if let Some(ns) = asked
            && !is_dns_label(ns)
        {
            return Err(OpError::invalid(
                "namespace",
                format!("`{ns}` is not a namespace name (lowercase letters, digits and `-`)"),
            ));
        }
        match (call.who.agent_ref(), asked) {
            (None, asked) => Ok(asked.unwrap_or("default").to_string()),
            (Some((ns, _)), None) => Ok(ns.to_string()),
            (Some((ns, _)), Some(asked)) if asked == ns => Ok(ns.to_string()),
            (Some((ns, name)), Some(asked)) => Err(OpError::Forbidden(format!(
                "agent {ns}/{name} acts only in its own namespace `{ns}`, not `{asked}`; leave \
                 `namespace` out"
            ))),
        }
    }

    /// Whether the caller may see a Task of `namespace` acting for `agent_ref`.
    fn visible(&self, who: &Identity, namespace: &str, agent_ref: Option<&str>) -> bool {
        match who.agent_ref() {
            None => true,
            Some((ns, name)) => {
                ns == namespace && (agent_ref == Some(name) || who.has(api_scope::TASKS_ALL))
            }
        }
    }

    /// The Task from the write path's source of truth, if the caller may see it.
    async fn owned_task(&self, call: &Call, namespace: &str, name: &str) -> Result<Task, OpError> {
        if !is_dns_label(name) {
            return Err(not_found(namespace, name));
        }
        let task = self.writer.get(namespace, name).await?;
        match task {
            Some(t) if self.visible(&call.who, namespace, t.spec.agent_ref.as_deref()) => Ok(t),
            _ => Err(not_found(namespace, name)),
        }
    }

    /// Records a mutation (or its refusal) in the audit log and the logs, with the call's
    /// correlation id. A failure to record is logged, not returned: the change is done.
    async fn audit(
        &self,
        call: &Call,
        action: &str,
        target: (&str, &str),
        outcome: Result<Value, &OpError>,
    ) {
        let (allowed, detail) = match outcome {
            Ok(detail) => (true, json!({"outcome": "ok", "request": detail})),
            Err(e) => (false, json!({"outcome": e.kind(), "reason": e.to_string()})),
        };
        tracing::info!(
            correlation_id = %call.correlation_id,
            actor = %call.who.actor(),
            action,
            target = %format!("{}/{}", target.0, target.1),
            allowed,
            "gateway mutation"
        );
        // A refused request may carry NUL characters (in the subject, or echoed in the
        // reason), which PostgreSQL cannot store: replaced, so the refusal is still recorded.
        let entry = AuditEntry {
            actor: without_nul(&call.who.actor()),
            action: action.to_string(),
            allowed,
            namespace: Some(without_nul(target.0)),
            subject: Some(without_nul(target.1)),
            detail: value_without_nul(detail),
            correlation_id: Some(call.correlation_id.clone()),
        };
        if let Err(e) = self.store.audit_entry(&entry).await {
            tracing::error!(correlation_id = %call.correlation_id, error = %e, "writing the audit entry failed");
        }
    }
}

/// `s` with each NUL character replaced by U+FFFD (the replacement character).
fn without_nul(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

/// [`without_nul`] on every string and object key of `v`.
fn value_without_nul(v: Value) -> Value {
    match v {
        Value::String(s) if s.contains('\0') => Value::String(without_nul(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(value_without_nul).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (without_nul(&k), value_without_nul(v)))
                .collect(),
        ),
        other => other,
    }
}

fn not_found(namespace: &str, name: &str) -> OpError {
    OpError::NotFound(format!(
        "no Task {namespace}/{name} that you may see; `list_tasks` shows yours"
    ))
}

/// Reads a spec from JSON. serde_json reads it exactly (a `null` is never the string
/// "null"); a refusal is read again through serde_yaml, whose messages carry the field's path
/// as `ordinaut validate` shows it (JSON is YAML).
pub fn parse_spec<T: serde::de::DeserializeOwned>(
    value: &Value,
    prefix: &str,
) -> Result<T, OpError> {
    let json_error = match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let whole = if prefix.is_empty() { "(body)" } else { prefix };
    let Some(e) = serde_yaml::to_string(value)
        .ok()
        .and_then(|text| serde_yaml::from_str::<T>(&text).err())
    else {
        return Err(OpError::invalid(whole, json_error.to_string()));
    };
    let message = e.to_string();
    let message = match e.location() {
        Some(l) => message
            .strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or(&message)
            .to_string(),
        None => message,
    };
    Err(match message.split_once(": ") {
        Some((path, rest)) if is_path(path) && prefix.is_empty() => {
            OpError::invalid(path, rest.to_string())
        }
        Some((path, rest)) if is_path(path) => {
            OpError::invalid(format!("{prefix}.{path}"), rest.to_string())
        }
        _ => OpError::invalid(whole, message),
    })
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
}

/// [`check_spec`] on the blocking pool: compiling a schedule costs what the rule costs, and
/// the gateway's async threads serve every other request meanwhile.
async fn check_spec_offloaded(
    spec: &TaskSpec,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), OpError> {
    let spec = spec.clone();
    ordinaut_operator::offload::cpu(move || check_spec(&spec, now)).await
}

/// The problems `ordinaut validate` and the operator find in a spec, as field errors.
fn check_spec(spec: &TaskSpec, now: chrono::DateTime<chrono::Utc>) -> Result<(), OpError> {
    let problems = ordinaut_operator::validate::task_problems(spec, now, None);
    if problems.is_empty() {
        return Ok(());
    }
    Err(OpError::Invalid(
        problems
            .into_iter()
            .map(|p| FieldError {
                field: p.path,
                message: p.message,
            })
            .collect(),
    ))
}

/// A DNS-1123 label (namespaces; Task names, which are also file names in development).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A new Task's name: a DNS-1123 label starting with a letter.
fn check_name(name: &str) -> Result<(), OpError> {
    let ok = is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase());
    if ok {
        Ok(())
    } else {
        Err(OpError::invalid(
            "name",
            format!(
                "`{name}` is not a valid Task name: use lowercase letters, digits and `-`, start \
                 with a letter, at most 63 characters (e.g. `daily-report`)"
            ),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_spec_names_the_field_path() {
        let err = parse_spec::<TaskSpec>(
            &json!({"schedule": {"evry": "1m"}, "pipelineRef": "p"}),
            "spec",
        )
        .unwrap_err();
        let OpError::Invalid(errors) = err else {
            panic!("{err:?}")
        };
        assert_eq!(errors[0].field, "spec.schedule", "{errors:?}");
        assert!(errors[0].message.contains("evry"), "{errors:?}");
    }

    #[test]
    fn check_spec_reports_a_bad_interval_on_its_field() {
        let spec: TaskSpec = parse_spec(
            &json!({"schedule": {"every": "soon"}, "pipelineRef": "p"}),
            "spec",
        )
        .unwrap();
        let OpError::Invalid(errors) = check_spec(&spec, chrono::Utc::now()).unwrap_err() else {
            panic!()
        };
        assert!(
            errors.iter().any(|e| e.field == "spec.schedule.every"),
            "{errors:?}"
        );
    }

    #[test]
    fn audit_values_lose_their_nul_characters() {
        let v = value_without_nul(json!({"a\u{0}": ["x\u{0}y", 1, {"k": "\u{0}"}], "n": null}));
        assert_eq!(
            v,
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"k": "\u{FFFD}"}], "n": null})
        );
        assert_eq!(without_nul("ok"), "ok");
    }

    #[test]
    fn names_must_be_dns_labels() {
        assert!(check_name("daily-report").is_ok());
        for bad in ["", "Daily", "1st", "a_b", "x-", &"a".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
