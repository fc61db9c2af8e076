//! What the Task watch cache keeps of each Task: [`CachedTask`].
//!
//! The operator's Task controller holds every Task it watches in a reflector store, so at
//! 100,000 Tasks the store is most of the operator's memory. A typed `Task` is 1,320 bytes
//! before any of its strings, and its status as much again once written; most of those bytes
//! are empty `Option`s. The cache instead keeps the metadata (trimmed of what the operator
//! never reads) and, in one allocation, the spec and the status as JSON without the fields
//! that hold their default value, then the three references the controller's watches look up
//! without decoding (`pipelineRef`, `agentRef`, the `uses` of inline steps). A reconcile
//! decodes the entry back into the `Task` the reconcile core takes ([`CachedTask::task`]): a
//! few microseconds, against more than two kilobytes kept per Task.

use std::borrow::Cow;
use std::sync::LazyLock;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use ordinaut_api::{Task, TaskSpec, TaskStatus};
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// The `kubectl apply` annotation that holds a copy of the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Separates the inline steps' `uses` in [`CachedTask`]'s text (the CRD's pattern for `uses`
/// has no control characters).
const USES_SEPARATOR: char = '\n';

/// A Task as the watch cache keeps it. It is a `kube::Resource` of the Tasks' API (same
/// group, version and plural), so `Api<CachedTask>` lists and watches Tasks and each object
/// is decoded straight into this form: the full `Task` exists only while one is decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedTask {
    metadata: ObjectMeta,
    /// The spec (JSON), the status (JSON, or empty), `pipelineRef`, `agentRef`, then the
    /// inline steps' `uses` separated by [`USES_SEPARATOR`]: one allocation.
    text: Box<str>,
    /// Where the spec, the status, `pipelineRef` and `agentRef` end in `text`.
    ends: [u32; 4],
    /// Which parts are present: [`HAS_STATUS`], [`HAS_PIPELINE_REF`], [`HAS_AGENT_REF`],
    /// [`HAS_INLINE`].
    has: u8,
}

const HAS_STATUS: u8 = 1;
const HAS_PIPELINE_REF: u8 = 2;
const HAS_AGENT_REF: u8 = 4;
const HAS_INLINE: u8 = 8;

/// What a spec's fields hold when absent (the deserializer's defaults).
static SPEC_DEFAULTS: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_value::<TaskSpec>(serde_json::json!({"schedule": {}}))
        .and_then(serde_json::to_value)
        .unwrap_or(Value::Null)
});

/// What a status's fields hold when absent.
static STATUS_DEFAULTS: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(TaskStatus::default()).unwrap_or(Value::Null));

impl CachedTask {
    /// The Task again, as the API server sent it (less the managed fields and the
    /// last-applied copy, which the operator never reads).
    pub fn task(&self) -> Result<Task, serde_json::Error> {
        let mut task = Task::new(
            self.metadata.name.as_deref().unwrap_or_default(),
            serde_json::from_str(&unpack(self.part(0)))?,
        );
        task.metadata = self.metadata.clone();
        if self.has & HAS_STATUS != 0 {
            task.status = Some(serde_json::from_str(&unpack(self.part(1)))?);
        }
        Ok(task)
    }

    /// `spec.pipelineRef`.
    pub fn pipeline_ref(&self) -> Option<&str> {
        (self.has & HAS_PIPELINE_REF != 0).then(|| self.part(2))
    }

    /// `spec.agentRef`.
    pub fn agent_ref(&self) -> Option<&str> {
        (self.has & HAS_AGENT_REF != 0).then(|| self.part(3))
    }

    /// Whether the Task may call a tool of the McpServer `server`: a step of its inline
    /// pipeline `uses: <server>.…`, or its pipeline is a reference (the Pipeline is not in
    /// this cache).
    pub fn may_call(&self, server: &str) -> bool {
        if self.has & HAS_INLINE == 0 {
            return self.pipeline_ref().is_some();
        }
        self.text[self.end(3)..]
            .split(USES_SEPARATOR)
            .any(|u| u.strip_prefix(server).is_some_and(|r| r.starts_with('.')))
    }

    fn end(&self, i: usize) -> usize {
        self.ends[i] as usize
    }

    /// Part `i` of the text (0 spec, 1 status, 2 pipelineRef, 3 agentRef).
    fn part(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.end(i - 1) };
        &self.text[start..self.end(i)]
    }
}

/// `value` as JSON without the fields that hold what `defaults` says they hold when absent,
/// when it decodes back to `value` (else with them), [`pack`]ed.
fn compact_json<T>(value: &T, defaults: &Value) -> Result<String, serde_json::Error>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let mut json = serde_json::to_value(value)?;
    prune(&mut json, defaults);
    let text = serde_json::to_string(&json)?;
    if serde_json::from_str::<T>(&text).ok().as_ref() == Some(value) {
        Ok(pack(&text))
    } else {
        serde_json::to_string(value).map(|t| pack(&t))
    }
}

/// Pieces of JSON that most cached specs and statuses hold (keys in the order `serde_json`
/// writes a `Value`'s, which is sorted), each kept as one control character: byte `i + 1`
/// stands for `FRAGMENTS[i]`, skipping `\n` ([`USES_SEPARATOR`]). JSON text never holds a raw
/// control character (`serde_json` escapes them inside strings), so [`unpack`] is exact. The
/// cache lives in memory only: the list may change between versions.
const FRAGMENTS: [&str; 30] = [
    // statuses
    "{\"conditions\":[{\"lastTransitionTime\":\"",
    "\",\"message\":\"scheduled; next run at ",
    "\",\"message\":\"",
    "\",\"observedGeneration\":",
    ",\"reason\":\"Valid\",\"status\":\"True\",\"type\":\"Ready\"}]",
    ",\"reason\":\"",
    "\",\"status\":\"False\",\"type\":\"Ready\"}]",
    "\",\"status\":\"",
    "\",\"type\":\"",
    ",\"nextRunTime\":\"",
    ",\"observedGeneration\":",
    ",\"scheduleSummary\":\"",
    ",\"counters\":{",
    ",\"lastRunId\":\"",
    ",\"lastRunStatus\":\"",
    ",\"lastRunTime\":\"",
    ",\"lastScheduleTime\":\"",
    ",\"lastSuccessfulTime\":\"",
    // specs
    "{\"pipeline\":{\"steps\":[{\"id\":\"",
    "\",\"uses\":\"",
    "\"}]},\"schedule\":{\"",
    "{\"pipelineRef\":\"",
    "\"rrule\":\"FREQ=",
    "\"cron\":\"",
    "\"every\":\"",
    "\",\"timezone\":\"",
    "\"}}",
    "\"}]},\"",
    "\",\"with\":{\"",
    "\"agentRef\":\"",
];

/// The control character that stands for `FRAGMENTS[i]`.
fn token(i: usize) -> char {
    let b = u8::try_from(i + 1).unwrap_or(u8::MAX);
    char::from(if b >= b'\n' { b + 1 } else { b })
}

/// `json` with each of [`FRAGMENTS`] replaced by its token.
fn pack(json: &str) -> String {
    let mut text = json.to_string();
    for (i, f) in FRAGMENTS.iter().enumerate() {
        if text.contains(f) {
            text = text.replace(f, token(i).encode_utf8(&mut [0; 4]));
        }
    }
    text.shrink_to_fit();
    text
}

/// The JSON that [`pack`] made `text` of.
fn unpack(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b < 0x20) {
        return Cow::Borrowed(text);
    }
    let mut json = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        match fragment_of(c) {
            Some(f) => json.push_str(f),
            None => json.push(c),
        }
    }
    Cow::Owned(json)
}

/// The fragment that `c` stands for (the inverse of [`token`]).
fn fragment_of(c: char) -> Option<&'static str> {
    let b = u32::from(c);
    if b == 0 || b >= 0x20 || c == '\n' {
        return None;
    }
    let i = if b > 0x0a { b - 2 } else { b - 1 };
    FRAGMENTS.get(usize::try_from(i).ok()?).copied()
}

/// Removes from `value` the fields equal to the same field of `defaults`, at every depth.
fn prune(value: &mut Value, defaults: &Value) {
    let (Value::Object(fields), Value::Object(defaults)) = (value, defaults) else {
        return;
    };
    fields.retain(|k, v| match defaults.get(k) {
        Some(d) if d == v => false,
        Some(d) => {
            prune(v, d);
            true
        }
        None => true,
    });
}

impl TryFrom<Task> for CachedTask {
    type Error = serde_json::Error;

    fn try_from(task: Task) -> Result<Self, Self::Error> {
        let Task {
            mut metadata,
            spec,
            status,
        } = task;
        metadata.managed_fields = None;
        if let Some(annotations) = &mut metadata.annotations {
            annotations.remove(LAST_APPLIED);
        }
        let mut text = compact_json(&spec, &SPEC_DEFAULTS)?;
        let mut ends = [0u32; 4];
        let mut mark = |text: &String, i: usize| {
            ends[i] = u32::try_from(text.len()).map_err(serde::ser::Error::custom)?;
            Ok::<_, serde_json::Error>(())
        };
        mark(&text, 0)?;
        if let Some(status) = &status {
            text.push_str(&compact_json(status, &STATUS_DEFAULTS)?);
        }
        mark(&text, 1)?;
        text.push_str(spec.pipeline_ref.as_deref().unwrap_or_default());
        mark(&text, 2)?;
        text.push_str(spec.agent_ref.as_deref().unwrap_or_default());
        mark(&text, 3)?;
        if let Some(pipeline) = &spec.pipeline {
            let uses: Vec<&str> = pipeline.steps.iter().map(|s| s.uses.as_str()).collect();
            text.push_str(&uses.join(&USES_SEPARATOR.to_string()));
        }
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Ok(Self {
            metadata,
            text: text.into_boxed_str(),
            ends,
            has: flag(status.is_some(), HAS_STATUS)
                | flag(spec.pipeline_ref.is_some(), HAS_PIPELINE_REF)
                | flag(spec.agent_ref.is_some(), HAS_AGENT_REF)
                | flag(spec.pipeline.is_some(), HAS_INLINE),
        })
    }
}

impl<'de> Deserialize<'de> for CachedTask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let task = Task::deserialize(d)?;
        Self::try_from(task).map_err(serde::de::Error::custom)
    }
}

impl Resource for CachedTask {
    type DynamicType = ();
    type Scope = <Task as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Task::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Task::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Task::version(dt)
    }
    fn api_version(dt: &()) -> Cow<'_, str> {
        Task::api_version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Task::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use ordinaut_api::constants::{FINALIZER, RUN_NOW_ANNOTATION};

    fn task(spec: serde_json::Value, status: serde_json::Value) -> Task {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ordinaut.dev/v1alpha1",
            "kind": "Task",
            "metadata": {
                "name": "t", "namespace": "default", "uid": "u", "generation": 3,
                "resourceVersion": "42", "labels": {"team": "ops"},
                "finalizers": [FINALIZER],
                "annotations": {
                    LAST_APPLIED: "{\"spec\":{}}",
                    RUN_NOW_ANNOTATION: "1",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn the_cache_gives_back_the_task_less_managed_fields_and_the_last_applied_copy() {
        let before = task(
            serde_json::json!({
                "schedule": {"rrule": "FREQ=DAILY;BYHOUR=9", "timezone": "Europe/Chisinau",
                             "startAt": "2025-03-10T11:00:00.123456789Z", "jitter": "5s"},
                "pipeline": {"steps": [{"id": "a", "uses": "core.echo",
                                        "with": {"n": 0.1, "big": 12345678901234567890u64, "s": "ü"}}]},
                "params": {"x": [1, null, {"y": true}]},
                "priority": -3, "maxAttempts": 7, "timeout": "10m",
            }),
            serde_json::json!({
                "nextRunTime": "2025-03-10T11:00:00Z", "handledRunNow": "1",
                "counters": {"succeeded": 4, "failed": 1, "missed": 0, "skippedOverlap": 2},
                "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled",
                                "message": "ok", "lastTransitionTime": "2025-03-10T10:00:00Z"}],
            }),
        );
        let cached = CachedTask::deserialize(serde_json::to_value(&before).unwrap()).unwrap();
        let after = cached.task().unwrap();
        assert!(after.managed_fields().is_empty());
        let annotations: Vec<_> = after.annotations().keys().collect();
        assert_eq!(annotations, [RUN_NOW_ANNOTATION]);
        assert_eq!(after.finalizers(), before.finalizers());
        assert_eq!(after.labels(), before.labels());
        assert_eq!(after.metadata.generation, Some(3));
        assert_eq!(after.resource_version().as_deref(), Some("42"));
        assert_eq!(after.spec, before.spec);
        assert_eq!(after.status, before.status);
        assert_eq!(cached.name_any(), "t");
        assert_eq!(cached.namespace().as_deref(), Some("default"));
        assert_eq!(CachedTask::plural(&()), Task::plural(&()));
        assert_eq!(CachedTask::api_version(&()), "ordinaut.dev/v1alpha1");
    }

    #[test]
    fn fields_at_their_default_are_not_kept_and_decode_back() {
        let before = task(
            serde_json::json!({
                "schedule": {"cron": "0 9 * * *", "timezone": "UTC",
                             "catchup": {"policy": "All", "window": "1h"}},
                "pipeline": {"steps": [{"id": "a", "uses": "core.echo", "continueOnError": false}]},
                "concurrencyPolicy": "Allow", "priority": 0, "suspend": false,
            }),
            serde_json::json!({"counters": {"succeeded": 0, "failed": 2, "missed": 0, "skippedOverlap": 0}}),
        );
        let cached = CachedTask::try_from(before.clone()).unwrap();
        let (spec, status) = (cached.part(0), cached.part(1));
        for gone in [
            "priority",
            "suspend",
            "concurrencyPolicy",
            "UTC",
            "window",
            "succeeded",
        ] {
            assert!(
                !spec.contains(gone) && !status.contains(gone),
                "{gone} kept: {spec} {status}"
            );
        }
        assert!(
            spec.contains("\"All\"") && status.contains("\"failed\":2"),
            "{spec} {status}"
        );
        let after = cached.task().unwrap();
        assert_eq!(after.spec, before.spec);
        assert_eq!(after.status, before.status);
    }

    #[test]
    fn packing_is_undone_exactly_whatever_the_strings_hold() {
        for (i, _) in FRAGMENTS.iter().enumerate() {
            assert_eq!(fragment_of(token(i)), Some(FRAGMENTS[i]));
            assert!(token(i) < ' ' && token(i) != USES_SEPARATOR);
        }
        let tricky = task(
            serde_json::json!({
                "schedule": {"every": "1h", "timezone": "America/St_Johns"},
                "pipeline": {"steps": [{"id": "a", "uses": "core.echo", "with": {
                    "text": "\",\"uses\":\"\u{1}\u{1f}\n\"}}",
                    "\",\"timezone\":\"": "{\"conditions\":[{\"lastTransitionTime\":\"",
                    "back": "\\",
                }}]},
            }),
            serde_json::json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Invalid",
                "message": "scheduled; next run at \u{2}", "lastTransitionTime": "2025-03-10T10:00:00Z"}],
                "lastRunStatus": "Failed", "lastRunId": "\",\"type\":\""}),
        );
        for json in [
            serde_json::to_string(&tricky.spec).unwrap(),
            serde_json::to_string(&tricky.status).unwrap(),
        ] {
            let packed = pack(&json);
            assert!(packed.len() < json.len(), "{packed:?}");
            assert_eq!(unpack(&packed), json);
        }
        let cached = CachedTask::try_from(tricky.clone()).unwrap();
        let after = cached.task().unwrap();
        assert_eq!(after.spec, tricky.spec);
        assert_eq!(after.status, tricky.status);
    }

    #[test]
    fn a_task_without_status_stays_without() {
        let before = task(
            serde_json::json!({"schedule": {"every": "1h"}, "pipelineRef": "p", "agentRef": "a"}),
            serde_json::Value::Null,
        );
        assert_eq!(before.status, None);
        let cached = CachedTask::try_from(before.clone()).unwrap();
        assert_eq!(cached.task().unwrap().status, None);
        assert_eq!(cached.pipeline_ref(), Some("p"));
        assert_eq!(cached.agent_ref(), Some("a"));
    }

    #[test]
    fn a_server_is_called_by_a_step_that_uses_it_or_by_any_pipeline_reference() {
        let inline = CachedTask::try_from(task(
            serde_json::json!({"schedule": {"every": "1h"}, "pipeline": {"steps": [
                {"id": "a", "uses": "core.echo"}, {"id": "b", "uses": "web.search.v2.get"}]}}),
            serde_json::Value::Null,
        ))
        .unwrap();
        assert!(inline.may_call("web"));
        assert!(inline.may_call("web.search"), "a server name may hold dots");
        assert!(
            !inline.may_call("we"),
            "a prefix of a name is another server"
        );
        assert!(!inline.may_call("files"));
        let by_ref = CachedTask::try_from(task(
            serde_json::json!({"schedule": {"every": "1h"}, "pipelineRef": "p"}),
            serde_json::Value::Null,
        ))
        .unwrap();
        assert!(by_ref.may_call("files"));
        assert_eq!(by_ref.pipeline_ref(), Some("p"));
    }
}
