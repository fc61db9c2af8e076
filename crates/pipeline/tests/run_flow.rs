//! The crate as the worker drives it: compile a pipeline, then per step evaluate `if`, render
//! `with`, check it against the tool's input schema, "call" the tool, check the output and
//! record it; finally render the output template.

use chrono::{DateTime, Utc};
use ordinaut_api::PipelineSpec;
use ordinaut_pipeline::model::StepError;
use ordinaut_pipeline::{
    CompiledPipeline, Context, RunInfo, SchemaCache, SchemaError, TaskInfo, compile_pipeline,
};
use serde_json::{Value, json};

const PIPELINE: &str = r#"
steps:
  - id: fetch
    uses: weather.forecast
    saveAs: weather
    with:
      city: "${params.city}"
      until: "${now+24h}"
  - id: alert
    uses: core.echo
    if: "steps.weather.temp > `30`"
    with:
      text: "Heat in ${params.city}: ${steps.weather.temp}"
  - id: log
    uses: core.echo
    with:
      text: "${task.namespace}/${task.name} run ${run.id} attempt ${run.attempt}"
      forecast: "${steps.fetch}"
output:
  temp: "${steps.weather.temp}"
  log: "${steps.log.text}"
"#;

fn compiled() -> CompiledPipeline {
    let spec: PipelineSpec = serde_yaml::from_str(PIPELINE).expect("fixture");
    compile_pipeline(&spec).expect("valid pipeline")
}

fn context(params: Value) -> Context {
    Context::new(
        params,
        RunInfo {
            id: "r-1".into(),
            attempt: 1,
        },
        TaskInfo {
            name: "daily".into(),
            namespace: "home".into(),
        },
        DateTime::parse_from_rfc3339("2026-10-24T08:00:00Z")
            .expect("time")
            .with_timezone(&Utc),
        chrono_tz::Europe::Chisinau,
    )
}

/// A stand-in tool: `weather.forecast` returns a fixed forecast, `core.echo` its input.
fn call(tool: &str, input: &Value) -> Value {
    match tool {
        "weather.forecast" => json!({"temp": 18, "sky": "rain"}),
        _ => input.clone(),
    }
}

fn input_schema(tool: &str) -> Value {
    match tool {
        "weather.forecast" => json!({
            "type": "object",
            "properties": {"city": {"type": "string", "minLength": 1}, "until": {"type": "string"}},
            "required": ["city", "until"]
        }),
        _ => json!({"type": "object"}),
    }
}

#[test]
fn a_run_renders_checks_skips_and_produces_the_output() {
    let pipeline = compiled();
    let schemas = SchemaCache::new();
    let mut ctx = context(json!({"city": "Chisinau"}));
    let mut ran = Vec::new();
    for step in &pipeline.steps {
        if !step.should_run(&ctx).expect("condition evaluates") {
            step.record_skipped(&mut ctx);
            continue;
        }
        let input = step.render_input(&ctx).expect("input renders");
        let tool = step.tool.to_string();
        schemas
            .check(&input_schema(&tool), &input)
            .expect("input valid");
        let output = call(&tool, &input);
        step.record_output(&mut ctx, output);
        ran.push((step.id.clone(), input));
    }
    let ids: Vec<&str> = ran.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["fetch", "log"], "alert is skipped at 18°C");
    // Chisinau leaves summer time on 2026-10-25: 24 h later the offset is +02:00.
    assert_eq!(
        ran[0].1,
        json!({"city": "Chisinau", "until": "2026-10-25T10:00:00+02:00"})
    );
    assert_eq!(
        ran[1].1,
        json!({"text": "home/daily run r-1 attempt 1", "forecast": {"temp": 18, "sky": "rain"}})
    );
    assert_eq!(
        pipeline.render_output(&ctx),
        Ok(Some(
            json!({"temp": 18, "log": "home/daily run r-1 attempt 1"})
        ))
    );
    assert_eq!(schemas.compilations(), 2);
}

#[test]
fn a_missing_param_fails_the_step_naming_it_and_the_field() {
    let pipeline = compiled();
    let ctx = context(json!({"town": "Chisinau"}));
    let err = pipeline.steps[0]
        .render_input(&ctx)
        .expect_err("missing param");
    assert!(matches!(err, StepError::Render { .. }));
    assert_eq!(
        err.to_string(),
        "step `fetch`: with.city: params.city: no such field (params has: town)"
    );
}

#[test]
fn a_tool_input_that_breaks_its_schema_names_pointer_and_keyword() {
    let pipeline = compiled();
    let ctx = context(json!({"city": ""}));
    let input = pipeline.steps[0].render_input(&ctx).expect("renders");
    let err = SchemaCache::new()
        .check(&input_schema("weather.forecast"), &input)
        .expect_err("empty city");
    let SchemaError::Violated(v) = err else {
        panic!("{err:?}")
    };
    assert_eq!(v.violations[0].pointer, "/city");
    assert_eq!(v.violations[0].keyword, "minLength");
    assert_eq!(
        v.to_string(),
        r#"/city: "" is shorter than 1 character (keyword `minLength`)"#
    );
}

#[test]
fn a_condition_error_fails_the_step_instead_of_skipping_it() {
    let spec: PipelineSpec = serde_yaml::from_str(
        "steps:\n- {id: a, uses: core.echo}\n- {id: b, uses: core.echo, if: \"length(steps.a.items) > `0`\"}\n",
    )
    .expect("fixture");
    let pipeline = compile_pipeline(&spec).expect("valid");
    let mut ctx = context(json!({}));
    pipeline.steps[0].record_output(&mut ctx, json!({"no_items": true}));
    let err = pipeline.steps[1]
        .should_run(&ctx)
        .expect_err("length(null)");
    let text = err.to_string();
    assert!(
        text.starts_with("step `b`: if: condition `length(steps.a.items) > `0`` failed"),
        "{text}"
    );
    assert!(text.contains("length(x || `[]`)"), "{text}");
}

#[test]
fn reading_a_skipped_step_in_the_output_says_it_was_skipped() {
    let spec: PipelineSpec = serde_yaml::from_str(
        "steps:\n- {id: a, uses: core.echo, if: \"`false`\"}\noutput: \"${steps.a}\"\n",
    )
    .expect("fixture");
    let pipeline = compile_pipeline(&spec).expect("valid");
    let mut ctx = context(json!({}));
    assert_eq!(pipeline.steps[0].should_run(&ctx), Ok(false));
    pipeline.steps[0].record_skipped(&mut ctx);
    let err = pipeline.render_output(&ctx).expect_err("skipped");
    assert_eq!(
        err.to_string(),
        "output: steps.a: step `a` was skipped (its `if` was false), so it has no output"
    );
}

#[test]
fn compiled_pipelines_contexts_and_caches_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPipeline>();
    assert_send_sync::<Context>();
    assert_send_sync::<SchemaCache>();
    assert_send_sync::<StepError>();
}
