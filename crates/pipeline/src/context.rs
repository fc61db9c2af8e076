//! What templates and conditions can see during one run: the Task's params, the outputs of the
//! steps that ran so far, the run, the Task and the time. The worker builds one per run and
//! records each step's output as the run goes.
//!
//! A step's output is reachable as `steps.<id>` and, when the step sets `saveAs`, also as
//! `steps.<saveAs>` (the same value: validation keeps the two name spaces from colliding).

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value};

/// The run being executed (`${run.id}`, `${run.attempt}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunInfo {
    /// The run's id, handed to tools as part of their idempotency key.
    pub id: String,
    /// 1 for the first attempt of the occurrence, 2 after a lease was reclaimed, and so on.
    pub attempt: u32,
}

/// The Task the run belongs to (`${task.name}`, `${task.namespace}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    pub name: String,
    pub namespace: String,
}

/// Why a step has no output, so that a template reading it can say so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoOutput {
    /// Its `if` was falsy.
    Skipped,
}

/// The variables of one run.
#[derive(Clone, Debug)]
pub struct Context {
    params: Value,
    /// Outputs by step id.
    steps: Map<String, Value>,
    /// `saveAs` name → step id.
    aliases: BTreeMap<String, String>,
    /// Steps (ids and `saveAs` names) that ran without producing an output.
    without_output: BTreeMap<String, NoOutput>,
    run: RunInfo,
    task: TaskInfo,
    now: DateTime<Utc>,
    timezone: Tz,
    /// Values of `${secrets.<secret>.<key>}`, read by the worker before the run. Never part
    /// of [`Self::to_json`] (conditions do not see them) nor of any `Debug` output.
    secrets: Secrets,
}

/// Secret values by (Secret, key). `Debug` shows the names only.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<(String, String), String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|(s, k)| format!("{s}.{k}")))
            .finish()
    }
}

impl Secrets {
    pub fn insert(&mut self, secret: &str, key: &str, value: String) {
        self.0.insert((secret.to_string(), key.to_string()), value);
    }

    /// Every value, for masking what a run records.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(String::as_str)
    }
}

impl Context {
    /// A context before the first step. `params` is the Task's params (`{}` when it has none);
    /// `now` is the run's reference time, rendered in `timezone` (the Task's).
    pub fn new(
        params: Value,
        run: RunInfo,
        task: TaskInfo,
        now: DateTime<Utc>,
        timezone: Tz,
    ) -> Self {
        Self {
            params,
            steps: Map::new(),
            aliases: BTreeMap::new(),
            without_output: BTreeMap::new(),
            run,
            task,
            now,
            timezone,
            secrets: Secrets::default(),
        }
    }

    /// The values of the `${secrets.…}` the pipeline reads.
    pub fn set_secrets(&mut self, secrets: Secrets) {
        self.secrets = secrets;
    }

    /// The secrets this run may read.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// A key of a Secret read for this run.
    pub fn secret(&self, secret: &str, key: &str) -> Option<&str> {
        self.secrets
            .0
            .get(&(secret.to_string(), key.to_string()))
            .map(String::as_str)
    }

    /// Records a step's output under its id and, when given, its `saveAs` name. Recording a
    /// step again (a retried step) replaces its earlier output.
    pub fn record_output(&mut self, id: &str, save_as: Option<&str>, output: Value) {
        self.without_output.remove(id);
        self.steps.insert(id.to_string(), output);
        if let Some(alias) = save_as.filter(|a| *a != id) {
            self.without_output.remove(alias);
            self.aliases.insert(alias.to_string(), id.to_string());
        }
    }

    /// Records that a step was skipped: it has no output, and a template that reads it fails
    /// with a message saying so (a condition sees `null`).
    pub fn record_skipped(&mut self, id: &str, save_as: Option<&str>) {
        self.steps.remove(id);
        self.without_output
            .insert(id.to_string(), NoOutput::Skipped);
        if let Some(alias) = save_as.filter(|a| *a != id) {
            self.aliases.remove(alias);
            self.without_output
                .insert(alias.to_string(), NoOutput::Skipped);
        }
    }

    /// The output recorded under a step id or `saveAs` name.
    pub fn step_output(&self, name: &str) -> Option<&Value> {
        self.steps
            .get(name)
            .or_else(|| self.aliases.get(name).and_then(|id| self.steps.get(id)))
    }

    /// Why `name` has no output, when it is a step known to have run without one.
    pub fn no_output_reason(&self, name: &str) -> Option<NoOutput> {
        self.without_output.get(name).copied()
    }

    /// Names (ids and `saveAs` names) with an output, sorted.
    pub fn step_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .steps
            .keys()
            .map(String::as_str)
            .chain(self.aliases.keys().map(String::as_str))
            .collect();
        names.sort_unstable();
        names
    }

    pub fn params(&self) -> &Value {
        &self.params
    }

    pub fn run(&self) -> &RunInfo {
        &self.run
    }

    pub fn task(&self) -> &TaskInfo {
        &self.task
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// `instant` as RFC 3339 in the Task's timezone, with the zone's offset at that instant.
    /// Sub-second digits appear only when the instant has them.
    pub fn format_instant(&self, instant: DateTime<Utc>) -> String {
        instant
            .with_timezone(&self.timezone)
            .to_rfc3339_opts(SecondsFormat::AutoSi, false)
    }

    /// The `{params, steps, run, task, now}` document conditions are evaluated against
    /// (`now` as RFC 3339 text in the Task's timezone). Steps appear under their ids and their
    /// `saveAs` names.
    pub fn to_json(&self) -> Value {
        // Cannot fail: every map key is a string and every value is already JSON.
        serde_json::to_value(self.view()).unwrap_or(Value::Null)
    }

    /// A borrowed, serializable view of [`Self::to_json`], which avoids copying step outputs
    /// an extra time when handing the document to JMESPath.
    pub(crate) fn view(&self) -> ContextView<'_> {
        ContextView {
            params: &self.params,
            steps: StepsView(self),
            run: &self.run,
            task: &self.task,
            now: self.format_instant(self.now),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct ContextView<'a> {
    params: &'a Value,
    steps: StepsView<'a>,
    run: &'a RunInfo,
    task: &'a TaskInfo,
    now: String,
}

pub(crate) struct StepsView<'a>(&'a Context);

impl Serialize for StepsView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let ctx = self.0;
        let mut map = serializer.serialize_map(Some(ctx.steps.len() + ctx.aliases.len()))?;
        for (id, output) in &ctx.steps {
            map.serialize_entry(id, output)?;
        }
        for (alias, id) in &ctx.aliases {
            if let Some(output) = ctx.steps.get(id) {
                map.serialize_entry(alias, output)?;
            }
        }
        map.end()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A context at 2026-03-28T12:00:00Z in UTC with a few params, for tests across the crate.
    pub(crate) fn fixture() -> Context {
        Context::new(
            json!({"city": "Chisinau", "count": 3, "tags": ["a", "b"], "nested": {"deep": [10, {"x": true}]}}),
            RunInfo {
                id: "run-123".into(),
                attempt: 2,
            },
            TaskInfo {
                name: "weather".into(),
                namespace: "agents".into(),
            },
            DateTime::parse_from_rfc3339("2026-03-28T12:00:00Z")
                .expect("valid fixture time")
                .with_timezone(&Utc),
            Tz::UTC,
        )
    }

    #[test]
    fn outputs_are_reachable_by_id_and_save_as() {
        let mut ctx = fixture();
        ctx.record_output("fetch", Some("weather"), json!({"status": 200}));
        assert_eq!(ctx.step_output("fetch"), Some(&json!({"status": 200})));
        assert_eq!(ctx.step_output("weather"), Some(&json!({"status": 200})));
        assert_eq!(ctx.step_names(), vec!["fetch", "weather"]);
        let doc = ctx.to_json();
        assert_eq!(doc["steps"]["weather"]["status"], json!(200));
        assert_eq!(doc["steps"]["fetch"]["status"], json!(200));
    }

    #[test]
    fn to_json_has_exactly_the_documented_roots() {
        let doc = fixture().to_json();
        let keys: Vec<&str> = doc
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, ["now", "params", "run", "steps", "task"]);
        assert_eq!(doc["run"], json!({"id": "run-123", "attempt": 2}));
        assert_eq!(
            doc["task"],
            json!({"name": "weather", "namespace": "agents"})
        );
        assert_eq!(doc["now"], json!("2026-03-28T12:00:00+00:00"));
    }

    #[test]
    fn skipped_step_has_no_output_and_a_reason() {
        let mut ctx = fixture();
        ctx.record_output("fetch", Some("w"), json!(1));
        ctx.record_skipped("fetch", Some("w"));
        assert_eq!(ctx.step_output("fetch"), None);
        assert_eq!(ctx.step_output("w"), None);
        assert_eq!(ctx.no_output_reason("w"), Some(NoOutput::Skipped));
        assert!(ctx.to_json()["steps"].as_object().expect("map").is_empty());
    }
}
