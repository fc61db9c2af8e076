//! The CRDs' CEL rules (`x-kubernetes-validations`) evaluated client-side with kube's CEL
//! validator: they compile, accept valid objects and reject exactly what they are meant to.

use kube::core::cel::{ErrorKind, Validator};
use serde_json::{Value, json};

fn openapi_schema(plural: &str) -> Value {
    let crd = ordinaut_api::crds()
        .into_iter()
        .find(|c| c.spec.names.plural == plural)
        .unwrap_or_else(|| panic!("no CRD {plural}"));
    let schema = crd.spec.versions[0]
        .schema
        .clone()
        .and_then(|s| s.open_api_v3_schema);
    serde_json::to_value(schema.expect("openAPIV3Schema")).expect("schema to JSON")
}

/// The messages of the rules the object breaks (empty when valid). A rule that does not compile
/// or cannot be evaluated fails the test: it would fail in the API server too.
///
/// The Rust mirror of the rules (`ordinaut_api::checks`) must report the same messages.
fn broken_rules(plural: &str, object: &Value) -> Vec<String> {
    let cel = cel_broken_rules(plural, object);
    let mut rust = rust_problems(plural, object);
    let mut sorted = cel.clone();
    sorted.sort();
    rust.sort();
    assert_eq!(
        sorted, rust,
        "CEL and ordinaut_api::checks disagree on {object}"
    );
    cel
}

fn rust_problems(plural: &str, object: &Value) -> Vec<String> {
    use ordinaut_api::checks;
    let problems = match plural {
        "tasks" => checks::task_problems(&typed::<ordinaut_api::Task>(object).spec),
        "pipelines" => {
            checks::pipeline_problems(&typed::<ordinaut_api::Pipeline>(object).spec, "spec")
        }
        "mcpservers" => {
            let m = typed::<ordinaut_api::McpServer>(object);
            checks::mcp_server_problems(m.metadata.name.as_deref(), &m.spec)
        }
        "agents" => checks::agent_problems(&typed::<ordinaut_api::Agent>(object).spec),
        other => panic!("unknown plural {other}"),
    };
    problems.into_iter().map(|p| p.message).collect()
}

fn typed<T: serde::de::DeserializeOwned>(object: &Value) -> T {
    serde_json::from_value(object.clone()).unwrap_or_else(|e| panic!("{e}: {object}"))
}

fn cel_broken_rules(plural: &str, object: &Value) -> Vec<String> {
    match Validator::new().validate(&openapi_schema(plural), object, None) {
        Ok(()) => vec![],
        Err(errors) => errors
            .into_vec()
            .into_iter()
            .map(|e| {
                assert!(
                    matches!(e.kind, ErrorKind::ValidationFailure),
                    "rule `{}` cannot run: {e:?}",
                    e.rule
                );
                e.message
            })
            .collect(),
    }
}

fn task(spec: Value) -> Value {
    json!({"apiVersion": "ordinaut.dev/v1alpha1", "kind": "Task", "metadata": {"name": "t"}, "spec": spec})
}

fn task_with_schedule(schedule: Value) -> Value {
    task(json!({"schedule": schedule, "pipelineRef": "p"}))
}

#[test]
fn a_schedule_needs_exactly_one_kind() {
    for one in [
        json!({"rrule": "FREQ=DAILY"}),
        json!({"cron": "0 8 * * *"}),
        json!({"at": "2025-06-01T09:00:00Z"}),
        json!({"every": "1m"}),
        json!({"on": {"topic": "alerts"}}),
    ] {
        assert_eq!(
            broken_rules("tasks", &task_with_schedule(one.clone())),
            Vec::<String>::new(),
            "{one}"
        );
    }
    for bad in [
        json!({"timezone": "UTC"}),
        json!({"cron": "0 8 * * *", "every": "1m"}),
        json!({"rrule": "FREQ=DAILY", "on": {"topic": "x"}}),
    ] {
        assert_eq!(
            broken_rules("tasks", &task_with_schedule(bad.clone())),
            ["set exactly one of rrule, cron, at, every or on"],
            "{bad}"
        );
    }
}

#[test]
fn end_at_must_be_after_start_at() {
    let ok =
        json!({"every": "1m", "startAt": "2025-01-01T00:00:00Z", "endAt": "2025-01-02T00:00:00Z"});
    assert!(broken_rules("tasks", &task_with_schedule(ok)).is_empty());
    let only_end = json!({"every": "1m", "endAt": "2025-01-02T00:00:00Z"});
    assert!(broken_rules("tasks", &task_with_schedule(only_end)).is_empty());
    for end in ["2024-12-31T23:59:59Z", "2025-01-01T00:00:00Z"] {
        let bad = json!({"every": "1m", "startAt": "2025-01-01T00:00:00Z", "endAt": end});
        assert_eq!(
            broken_rules("tasks", &task_with_schedule(bad)),
            ["endAt must be after startAt"],
            "{end}"
        );
    }
}

#[test]
fn a_task_needs_exactly_one_of_pipeline_ref_or_inline_pipeline() {
    let inline = json!({"steps": [{"id": "a", "uses": "core.echo"}]});
    let schedule = json!({"every": "1m"});
    assert!(
        broken_rules(
            "tasks",
            &task(json!({"schedule": schedule, "pipeline": inline}))
        )
        .is_empty()
    );
    let msg = ["set exactly one of pipelineRef or pipeline"];
    assert_eq!(
        broken_rules("tasks", &task(json!({"schedule": schedule}))),
        msg
    );
    assert_eq!(
        broken_rules(
            "tasks",
            &task(json!({"schedule": schedule, "pipeline": inline, "pipelineRef": "p"}))
        ),
        msg
    );
}

#[test]
fn an_event_trigger_needs_exactly_one_source() {
    let both = json!({"on": {"topic": "a", "taskFinished": {"name": "b"}}});
    assert_eq!(
        broken_rules("tasks", &task_with_schedule(both)),
        ["set exactly one of topic or taskFinished"]
    );
    let none = json!({"on": {}});
    assert_eq!(
        broken_rules("tasks", &task_with_schedule(none)),
        ["set exactly one of topic or taskFinished"]
    );
}

#[test]
fn step_ids_are_unique_in_pipelines_and_inline_pipelines() {
    let steps = json!([{"id": "a", "uses": "core.echo"}, {"id": "b", "uses": "core.echo"}, {"id": "a", "uses": "core.echo"}]);
    let pipeline = json!({"apiVersion": "ordinaut.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"}, "spec": {"steps": steps}});
    assert_eq!(
        broken_rules("pipelines", &pipeline),
        ["step ids must be unique within a pipeline"]
    );
    let inline = task(json!({"schedule": {"every": "1m"}, "pipeline": {"steps": steps}}));
    assert_eq!(
        broken_rules("tasks", &inline),
        ["step ids must be unique within a pipeline"]
    );
    let fine = json!({"apiVersion": "ordinaut.dev/v1alpha1", "kind": "Pipeline", "metadata": {"name": "p"}, "spec": {"steps": [{"id": "a", "uses": "core.echo"}, {"id": "b", "uses": "core.echo"}]}});
    assert!(broken_rules("pipelines", &fine).is_empty());
}

fn mcp(name: &str, transport: Value) -> Value {
    json!({"apiVersion": "ordinaut.dev/v1alpha1", "kind": "McpServer", "metadata": {"name": name}, "spec": {"transport": transport}})
}

#[test]
fn an_mcp_server_has_one_transport_and_secret_values_by_reference() {
    let stdio = json!({"command": "npx", "args": ["-y", "server"], "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}, {"name": "MODE", "value": "x"}]});
    let http = json!({"url": "https://x/mcp", "headers": [{"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
    assert!(broken_rules("mcpservers", &mcp("everything", json!({"stdio": stdio}))).is_empty());
    assert!(broken_rules("mcpservers", &mcp("weather", json!({"http": http}))).is_empty());
    assert_eq!(
        broken_rules(
            "mcpservers",
            &mcp("both", json!({"stdio": stdio, "http": http}))
        ),
        ["set exactly one of stdio or http"]
    );
    assert_eq!(
        broken_rules("mcpservers", &mcp("neither", json!({}))),
        ["set exactly one of stdio or http"]
    );
    let env_both = json!({"stdio": {"command": "x", "env": [{"name": "A", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}});
    assert_eq!(
        broken_rules("mcpservers", &mcp("e", env_both)),
        ["set exactly one of value or valueFrom"]
    );
    let header_none = json!({"http": {"url": "https://x", "headers": [{"name": "A"}]}});
    assert_eq!(
        broken_rules("mcpservers", &mcp("h", header_none)),
        ["set exactly one of value or valueFrom"]
    );
}

#[test]
fn an_mcp_server_name_has_no_dot_because_steps_use_server_dot_tool() {
    let http = json!({"http": {"url": "https://x/mcp"}});
    let broken = broken_rules("mcpservers", &mcp("weather.v2", http));
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].contains("must not contain '.'"), "{broken:?}");
}
