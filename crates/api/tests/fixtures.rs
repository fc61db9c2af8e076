//! YAML fixtures read into the types: every schedule kind round-trips, defaults apply, and
//! mistakes (a wrong enum value, a misspelled field) fail with a message naming the field.

use ordinaut_api::{
    CatchupPolicy, ConcurrencyPolicy, EventTrigger, McpServer, Pipeline, Task, TaskFinished,
    TaskSchedule,
};

fn task(yaml: &str) -> Task {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("fixture does not parse: {e}\n{yaml}"))
}

fn task_with_schedule(schedule: &str) -> String {
    let schedule: String = schedule.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata:\n  name: t\n  namespace: default\nspec:\n  schedule:\n{schedule}  pipelineRef: p\n"
    )
}

#[test]
fn every_schedule_kind_round_trips_through_yaml() {
    let kinds = [
        "rrule: FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=8;BYMINUTE=30;BYSECOND=0\ntimezone: Europe/Chisinau",
        "rrule: |-\n  DTSTART;TZID=America/New_York:20250101T093000\n  RRULE:FREQ=DAILY",
        "cron: 30 8 * * MON-FRI\ntimezone: America/New_York",
        "cron: '@daily'",
        "at: 2025-06-01T09:00:00+03:00",
        "every: 1m\nstartAt: 2025-01-01T00:00:00Z\nendAt: 2026-01-01T00:00:00Z\njitter: 5s",
        "on:\n  topic: alerts",
        "on:\n  taskFinished:\n    name: backup",
        "cron: 0 * * * *\ncatchup:\n  policy: All\n  window: 6h\n  maxRuns: 3",
    ];
    for kind in kinds {
        let yaml = task_with_schedule(kind);
        let parsed = task(&yaml);
        let again: Task = serde_yaml::from_str(&serde_yaml::to_string(&parsed).expect("serialize"))
            .expect("re-parse");
        assert_eq!(parsed, again, "{kind}");
        assert!(parsed.spec.schedule.summary().is_some(), "{kind}");
    }
    let t = task(&task_with_schedule(
        "on:\n  taskFinished:\n    name: backup",
    ));
    assert_eq!(
        t.spec.schedule.on,
        Some(EventTrigger {
            topic: None,
            filter: None,
            task_finished: Some(TaskFinished {
                name: "backup".into(),
                outcome: Vec::new(),
            })
        })
    );
    let t = task(&task_with_schedule(
        "cron: 0 * * * *\ncatchup:\n  policy: All\n  maxRuns: 3",
    ));
    assert_eq!(t.spec.schedule.catchup.policy, CatchupPolicy::All);
    assert_eq!(
        t.spec.schedule.catchup.window, "1h",
        "window keeps its default"
    );
    assert_eq!(t.spec.schedule.catchup.max_runs, Some(3));
}

#[test]
fn omitted_fields_take_their_documented_defaults() {
    let t = task(&task_with_schedule("every: 1m"));
    let s = &t.spec.schedule;
    assert_eq!(s.timezone, "UTC");
    assert_eq!(s.catchup.policy, CatchupPolicy::Latest);
    assert_eq!(s.catchup.window, "1h");
    assert_eq!(s.catchup.max_runs, None);
    assert_eq!(t.spec.concurrency_policy, ConcurrencyPolicy::Allow);
    assert_eq!(t.spec.priority, 0);
    assert!(!t.spec.suspend);
    assert!(t.spec.retry.is_none() && t.spec.snooze_until.is_none() && t.status.is_none());
}

#[test]
fn schedule_summary_names_the_kind_and_the_rule_on_one_line() {
    let cases = [
        ("every: 1m", "every 1m"),
        ("cron: 0 8 * * *", "cron 0 8 * * *"),
        ("at: 2025-06-01T09:00:00Z", "at 2025-06-01T09:00:00Z"),
        (
            "rrule: |-\n  DTSTART:20250101T090000\n  RRULE:FREQ=DAILY",
            "rrule DTSTART:20250101T090000 RRULE:FREQ=DAILY",
        ),
        ("on:\n  topic: alerts", "on topic alerts"),
        (
            "on:\n  taskFinished:\n    name: backup",
            "after task backup",
        ),
    ];
    for (schedule, summary) in cases {
        let t = task(&task_with_schedule(schedule));
        assert_eq!(t.spec.schedule.summary().as_deref(), Some(summary));
    }
    let empty: TaskSchedule = serde_yaml::from_str("timezone: UTC").expect("parse");
    assert_eq!(empty.summary(), None);
}

#[test]
fn a_wrong_enum_value_names_the_field_and_the_allowed_values() {
    let yaml = task_with_schedule("every: 1m").replace(
        "  pipelineRef: p\n",
        "  pipelineRef: p\n  concurrencyPolicy: Sometimes\n",
    );
    let err = serde_yaml::from_str::<Task>(&yaml)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("spec.concurrencyPolicy"), "{err}");
    assert!(
        err.contains("Sometimes")
            && err.contains("Allow")
            && err.contains("Forbid")
            && err.contains("Replace"),
        "{err}"
    );
    assert!(err.contains("line 10"), "{err}");

    let yaml = task_with_schedule("every: 1m\ncatchup:\n  policy: latest");
    let err = serde_yaml::from_str::<Task>(&yaml)
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("spec.schedule.catchup.policy") && err.contains("`Latest`"),
        "{err}"
    );
}

#[test]
fn a_misspelled_field_is_rejected_not_ignored() {
    let yaml = task_with_schedule("every: 1m").replace("  schedule:", "  shedule:");
    let err = serde_yaml::from_str::<Task>(&yaml)
        .expect_err("must fail")
        .to_string();
    assert!(err.contains("unknown field `shedule`"), "{err}");

    let yaml = task_with_schedule("every: 1m\ntimezon: UTC");
    let err = serde_yaml::from_str::<Task>(&yaml)
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("spec.schedule") && err.contains("unknown field `timezon`"),
        "{err}"
    );

    let yaml = "apiVersion: ordinaut.dev/v1alpha1\nkind: Pipeline\nmetadata: {name: p}\nspec:\n  steps:\n  - id: a\n    uses: core.echo\n    continueOnErorr: true\n";
    let err = serde_yaml::from_str::<Pipeline>(yaml)
        .expect_err("must fail")
        .to_string();
    assert!(
        err.contains("spec.steps[0]") && err.contains("continueOnErorr"),
        "{err}"
    );
}

#[test]
fn a_pipeline_keeps_its_templates_conditions_and_retries() {
    let yaml = r#"
apiVersion: ordinaut.dev/v1alpha1
kind: Pipeline
metadata: {name: p, namespace: default}
spec:
  params:
    type: object
    properties: {city: {type: string}}
  steps:
  - id: fetch
    uses: weather.forecast
    with: {city: "${params.city}", days: 1}
    timeout: 30s
    retry: {attempts: 3, backoff: 2s, maxBackoff: 1m, jitter: false}
  - id: say
    uses: core.echo
    if: "steps.fetch.temperature < `0`"
    with: {message: "Cold: ${steps.fetch.temperature}"}
    saveAs: warning
    continueOnError: true
  output: "${steps.warning}"
"#;
    let p: Pipeline = serde_yaml::from_str(yaml).expect("parse");
    assert_eq!(p.spec.steps.len(), 2);
    let say = &p.spec.steps[1];
    assert_eq!(
        say.condition.as_deref(),
        Some("steps.fetch.temperature < `0`")
    );
    assert_eq!(say.save_as.as_deref(), Some("warning"));
    assert!(say.continue_on_error && !p.spec.steps[0].continue_on_error);
    let retry = p.spec.steps[0].retry.clone().expect("retry");
    assert_eq!((retry.attempts, retry.jitter), (Some(3), Some(false)));
    assert_eq!(
        p.spec.steps[0].with.as_ref().map(|w| w["days"].clone()),
        Some(serde_json::json!(1))
    );
    assert_eq!(p.spec.output, Some(serde_json::json!("${steps.warning}")));
    let json = serde_json::to_value(&p).expect("to JSON");
    assert_eq!(
        json["spec"]["steps"][1]["if"],
        "steps.fetch.temperature < `0`"
    );
    assert!(
        json["spec"]["steps"][0].get("saveAs").is_none(),
        "unset options are omitted"
    );
}

#[test]
fn an_mcp_server_reads_secrets_by_reference() {
    let yaml = r#"
apiVersion: ordinaut.dev/v1alpha1
kind: McpServer
metadata: {name: weather}
spec:
  transport:
    http:
      url: https://weather.example/mcp
      headers:
      - name: Authorization
        valueFrom: {secretKeyRef: {name: weather-token, key: token}}
  timeout: 20s
"#;
    let m: McpServer = serde_yaml::from_str(yaml).expect("parse");
    let http = m.spec.transport.http.expect("http");
    let from = http.headers[0].value_from.clone().expect("valueFrom");
    assert_eq!(
        (
            from.secret_key_ref.name.as_str(),
            from.secret_key_ref.key.as_str()
        ),
        ("weather-token", "token")
    );
    assert!(m.spec.transport.stdio.is_none());
}
