//! `validate_pipeline` on YAML fixtures: one test per rule, each asserting the issue's path
//! and the words a person needs to fix it.

use ordinaut_api::PipelineSpec;
use ordinaut_pipeline::{
    SchemaError, ValidationIssue, compile_pipeline, validate_params, validate_pipeline,
};
use serde_json::json;

fn spec(yaml: &str) -> PipelineSpec {
    serde_yaml::from_str(yaml).expect("fixture parses as a PipelineSpec")
}

fn issues(yaml: &str) -> Vec<ValidationIssue> {
    validate_pipeline(&spec(yaml))
}

/// Asserts exactly one issue at `path`, whose message contains every word in `words`.
#[track_caller]
fn assert_issue(yaml: &str, path: &str, words: &[&str]) {
    let found = issues(yaml);
    let at: Vec<&ValidationIssue> = found.iter().filter(|i| i.path == path).collect();
    assert_eq!(at.len(), 1, "expected one issue at {path}, got {found:#?}");
    for word in words {
        assert!(at[0].message.contains(word), "`{}` lacks `{word}`", at[0]);
    }
    assert_eq!(
        found.len(),
        1,
        "expected only the issue at {path}, got {found:#?}"
    );
}

const VALID: &str = r#"
params:
  type: object
  properties:
    city: {type: string}
    days: {type: integer, minimum: 1}
  required: [city]
  additionalProperties: false
steps:
  - id: fetch
    uses: weather.forecast
    with:
      city: "${params.city}"
      days: "${params.days}"
      since: "${now-7d}"
      key: "${run.id}-${run.attempt}/${task.namespace}/${task.name}"
    timeout: 30s
    retry: {attempts: 3, backoff: 2s, maxBackoff: 1m, jitter: true}
    saveAs: weather
  - id: notify
    uses: core.echo
    if: "steps.weather.temp > `25` && length(params.city) > `0`"
    with:
      text: "Hot in ${params.city}: ${steps.fetch.temp}°C, literal $${x}"
      raw: "${steps.weather}"
    continueOnError: true
output:
  temp: "${steps.weather.temp}"
  notified: "${steps.notify}"
"#;

#[test]
fn a_valid_pipeline_has_no_issues_and_compiles() {
    assert_eq!(issues(VALID), vec![]);
    let compiled = compile_pipeline(&spec(VALID)).expect("compiles");
    assert_eq!(compiled.steps.len(), 2);
    assert_eq!(compiled.steps[0].tool.server, "weather");
    assert_eq!(
        compiled.steps[0].timeout,
        Some(std::time::Duration::from_secs(30))
    );
    assert!(compiled.steps[1].condition.is_some());
    assert!(compiled.steps[1].continue_on_error);
}

#[test]
fn an_invalid_pipeline_does_not_compile_and_reports_every_issue() {
    let err = compile_pipeline(&spec(
        "steps:\n- {id: a, uses: nodot, timeout: soon}\n- {id: a, uses: core.echo}\n",
    ))
    .expect_err("invalid");
    let paths: Vec<&str> = err.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["steps[1].id", "steps[0].uses", "steps[0].timeout"]);
}

#[test]
fn a_pipeline_needs_a_step() {
    assert_issue("steps: []", "steps", &["at least one step"]);
}

#[test]
fn duplicate_step_ids_are_reported_at_the_second() {
    assert_issue(
        "steps:\n- {id: fetch, uses: core.echo}\n- {id: fetch, uses: core.echo}\n",
        "steps[1].id",
        &["duplicate step id `fetch`", "steps[0]"],
    );
}

#[test]
fn step_ids_must_be_template_friendly_names() {
    assert_issue(
        "steps:\n- {id: Fetch-Data, uses: core.echo}\n",
        "steps[0].id",
        &["`Fetch-Data` is not a valid step id", "lowercase letter"],
    );
}

#[test]
fn save_as_must_not_collide_with_ids_or_other_save_as_names() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo}\n- {id: b, uses: core.echo, saveAs: a}\n",
        "steps[1].saveAs",
        &["saveAs `a` collides", "the id of steps[0]"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, saveAs: out}\n- {id: b, uses: core.echo, saveAs: out}\n",
        "steps[1].saveAs",
        &["saveAs `out` collides", "the saveAs of steps[0]"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, saveAs: x}\n- {id: x, uses: core.echo}\n",
        "steps[0].saveAs",
        &["saveAs `x` collides", "the id of steps[1]"],
    );
    assert_eq!(
        issues("steps:\n- {id: a, uses: core.echo, saveAs: a}\n"),
        vec![]
    );
}

#[test]
fn uses_must_be_server_dot_tool() {
    for (uses, word) in [
        ("echo", "<server>.<tool>"),
        (".echo", "server ``"),
        ("core.", "tool ``"),
        ("Core.echo", "server `Core`"),
    ] {
        assert_issue(
            &format!("steps:\n- {{id: a, uses: \"{uses}\"}}\n"),
            "steps[0].uses",
            &[word],
        );
    }
}

#[test]
fn malformed_templates_are_reported_at_their_field() {
    let yaml =
        |value: &str| format!("steps:\n- id: a\n  uses: core.echo\n  with:\n    url: {value}\n");
    assert_issue(
        &yaml("\"https://${params.host\""),
        "steps[0].with.url",
        &["unterminated"],
    );
    assert_issue(&yaml("\"${}\""), "steps[0].with.url", &["empty expression"]);
    assert_issue(
        &yaml("\"${secret.token}\""),
        "steps[0].with.url",
        &[
            "unknown root `secret`",
            "params, steps, run, task, secrets or now",
        ],
    );
    assert_issue(
        &yaml("\"${secrets.token}\""),
        "steps[0].with.url",
        &["write secrets.<secret>.<key>"],
    );
    assert_issue(&yaml("\"${now+soon}\""), "steps[0].with.url", &["now+soon"]);
    assert_issue(
        "steps:\n- id: a\n  uses: core.echo\n  with:\n    h: [{x: \"${params..y}\"}]\n",
        "steps[0].with.h[0].x",
        &["invalid expression"],
    );
}

#[test]
fn template_reading_an_unknown_step_names_it_and_the_readable_ones() {
    assert_issue(
        "steps:\n- {id: first, uses: core.echo, saveAs: one}\n- {id: b, uses: core.echo, with: {x: \"${steps.fetch.body}\"}}\n",
        "steps[1].with.x",
        &[
            "`${steps.fetch.body}`",
            "no step has id or saveAs `fetch`",
            "first, one",
        ],
    );
}

#[test]
fn template_reading_a_later_step_names_both_steps() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, with: {x: \"v=${steps.later.v}\"}}\n- {id: later, uses: core.echo}\n",
        "steps[0].with.x",
        &["step `later` (steps[1]) runs after this step `a` (steps[0])"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, saveAs: me, with: {x: \"${steps.me}\"}}\n",
        "steps[0].with.x",
        &["cannot read its own output"],
    );
}

#[test]
fn run_and_task_fields_are_checked() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, with: {x: \"${run.scheduled}\"}}\n",
        "steps[0].with.x",
        &["run has only: id, attempt"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, with: {x: \"${task.name.first}\"}}\n",
        "steps[0].with.x",
        &["task.name is a single value"],
    );
}

#[test]
fn closed_params_schema_rejects_undeclared_params() {
    assert_issue(
        "params: {type: object, properties: {city: {type: string}}, additionalProperties: false}\nsteps:\n- {id: a, uses: core.echo, with: {x: \"${params.cty}\"}}\n",
        "steps[0].with.x",
        &["params.cty is not declared", "declared: city"],
    );
    // An open schema may receive more params than it declares.
    assert_eq!(
        issues(
            "params: {type: object, properties: {city: {type: string}}}\nsteps:\n- {id: a, uses: core.echo, with: {x: \"${params.cty}\"}}\n"
        ),
        vec![]
    );
}

#[test]
fn condition_that_does_not_compile_is_reported_at_if() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, if: \"steps.a.status ==\"}\n",
        "steps[0].if",
        &["does not parse"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, if: \"lenght(params.x)\"}\n",
        "steps[0].if",
        &["unknown function `lenght`"],
    );
}

#[test]
fn condition_reading_unknown_roots_or_later_steps_is_reported() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, if: \"param.enabled\"}\n",
        "steps[0].if",
        &["reads `param`", "always null"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, if: \"steps.b.ok\"}\n- {id: b, uses: core.echo}\n",
        "steps[0].if",
        &["`steps.b`", "runs after this step `a`"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo}\n- {id: b, uses: core.echo, if: \"steps.c.ok || steps.a.ok\"}\n",
        "steps[1].if",
        &["no step has id or saveAs `c`", "can be read here: a"],
    );
}

#[test]
fn timeouts_must_be_positive_durations() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, timeout: 5 minutes}\n",
        "steps[0].timeout",
        &["invalid duration"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, timeout: 0s}\n",
        "steps[0].timeout",
        &["longer than 0s"],
    );
}

#[test]
fn retry_fields_are_checked_with_their_paths() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, retry: {attempts: 0}}\n",
        "steps[0].retry.attempts",
        &["between 1 and 100"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, retry: {attempts: 101}}\n",
        "steps[0].retry.attempts",
        &["got 101"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, retry: {maxBackoff: forever}}\n",
        "steps[0].retry.maxBackoff",
        &["forever"],
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, retry: {backoff: 10m, maxBackoff: 1m}}\n",
        "steps[0].retry.backoff",
        &["larger than retry.maxBackoff"],
    );
}

#[test]
fn params_must_be_a_valid_schema_of_an_object() {
    assert_issue(
        "params: {type: object, properties: {n: {type: integr}}}\nsteps:\n- {id: a, uses: core.echo}\n",
        "params",
        &["not a valid JSON Schema", "/properties/n/type"],
    );
    assert_issue(
        "params: {type: string}\nsteps:\n- {id: a, uses: core.echo}\n",
        "params.type",
        &["must be \"object\""],
    );
    assert_issue(
        "params: {$ref: \"http://example.com/params.json\"}\nsteps:\n- {id: a, uses: core.echo}\n",
        "params",
        &["http://example.com/params.json"],
    );
}

#[test]
fn output_template_may_read_any_step_but_not_unknown_ones() {
    assert_eq!(
        issues(
            "steps:\n- {id: a, uses: core.echo}\n- {id: b, uses: core.echo}\noutput: {x: \"${steps.b}\", y: \"${steps.a}\"}\n"
        ),
        vec![]
    );
    assert_issue(
        "steps:\n- {id: a, uses: core.echo}\noutput: {summary: \"${steps.zzz.text}\"}\n",
        "output.summary",
        &["no step has id or saveAs `zzz`"],
    );
}

#[test]
fn with_must_be_an_object() {
    assert_issue(
        "steps:\n- {id: a, uses: core.echo, with: [1]}\n",
        "steps[0].with",
        &["must be an object"],
    );
}

#[test]
fn params_are_checked_against_the_pipeline_schema() {
    let spec = spec(VALID);
    assert_eq!(
        validate_params(&spec, &json!({"city": "Chisinau", "days": 3})),
        Ok(())
    );
    let err = validate_params(&spec, &json!({"city": "Chisinau", "days": "3", "extra": 1}))
        .expect_err("invalid");
    let SchemaError::Violated(v) = &err else {
        panic!("{err:?}")
    };
    let keywords: Vec<(&str, &str)> = v
        .violations
        .iter()
        .map(|v| (v.pointer.as_str(), v.keyword.as_str()))
        .collect();
    assert!(keywords.contains(&("/days", "type")), "{keywords:?}");
    assert!(
        keywords.contains(&("", "additionalProperties")),
        "{keywords:?}"
    );
    let open = self::spec("steps:\n- {id: a, uses: core.echo}\n");
    assert_eq!(validate_params(&open, &json!({"anything": [1]})), Ok(()));
}
