use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::*;
use crate::context::tests::fixture;
use crate::limits::{MAX_DEPTH, MAX_RENDERED_BYTES};

fn ctx_with_steps() -> crate::Context {
    let mut ctx = fixture();
    ctx.record_output(
        "fetch",
        Some("weather"),
        json!({"status": 200, "body": {"temp": 21.5, "sky": "clear", "hours": [1, 2, 3]}, "ok": true, "none": null}),
    );
    ctx
}

fn render_one(s: &str, ctx: &crate::Context) -> Result<Value, RenderError> {
    render(&Value::String(s.into()), ctx)
}

#[test]
fn exactly_one_placeholder_keeps_the_json_type() {
    let ctx = ctx_with_steps();
    assert_eq!(render_one("${params.count}", &ctx), Ok(json!(3)));
    assert_eq!(
        render_one("${steps.fetch.body.temp}", &ctx),
        Ok(json!(21.5))
    );
    assert_eq!(render_one("${steps.fetch.ok}", &ctx), Ok(json!(true)));
    assert_eq!(render_one("${steps.fetch.none}", &ctx), Ok(Value::Null));
    assert_eq!(render_one("${params.tags}", &ctx), Ok(json!(["a", "b"])));
    assert_eq!(
        render_one("${steps.fetch.body}", &ctx),
        Ok(json!({"temp": 21.5, "sky": "clear", "hours": [1, 2, 3]}))
    );
    assert_eq!(render_one("${run.attempt}", &ctx), Ok(json!(2)));
    assert_eq!(render_one("${ task.namespace }", &ctx), Ok(json!("agents")));
}

#[test]
fn placeholders_inside_longer_strings_render_as_text_with_objects_as_compact_json() {
    let ctx = ctx_with_steps();
    assert_eq!(
        render_one("${task.name}/${run.id} #${run.attempt}", &ctx),
        Ok(json!("weather/run-123 #2"))
    );
    assert_eq!(
        render_one(
            "sky=${steps.weather.body.sky} hours=${steps.fetch.body.hours} ok=${steps.fetch.ok} none=${steps.fetch.none}",
            &ctx
        ),
        Ok(json!("sky=clear hours=[1,2,3] ok=true none=null"))
    );
    assert_eq!(
        render_one("n: ${params.nested}", &ctx),
        Ok(json!(r#"n: {"deep":[10,{"x":true}]}"#))
    );
    assert_eq!(render_one(" ${params.count}", &ctx), Ok(json!(" 3")));
}

#[test]
fn renders_every_string_in_a_tree_but_no_object_key() {
    let ctx = ctx_with_steps();
    let out = render(
        &json!({"url": "https://x/${params.city}", "${params.city}": [1, "${params.count}", {"d": "${params.nested.deep[-1].x}"}], "n": 5}),
        &ctx,
    );
    assert_eq!(
        out,
        Ok(json!({"url": "https://x/Chisinau", "${params.city}": [1, 3, {"d": true}], "n": 5}))
    );
}

#[test]
fn paths_read_indexes_negative_indexes_quoted_keys_and_dot_numbers() {
    let mut ctx = fixture();
    ctx.record_output(
        "h",
        None,
        json!({"content-type": "json", "a.b": 1, "list": [5, 6, 7]}),
    );
    assert_eq!(
        render_one("${steps.h.content-type}", &ctx),
        Ok(json!("json"))
    );
    assert_eq!(render_one("${steps.h[\"a.b\"]}", &ctx), Ok(json!(1)));
    assert_eq!(render_one("${steps.h.list[-1]}", &ctx), Ok(json!(7)));
    assert_eq!(render_one("${steps.h.list.1}", &ctx), Ok(json!(6)));
    assert_eq!(
        render_one("${steps}", &ctx),
        Ok(json!({"h": ctx.step_output("h")}))
    );
}

#[test]
fn missing_field_error_names_the_path_and_what_is_there() {
    let ctx = ctx_with_steps();
    let err = render(&json!({"q": {"t": "${steps.fetch.body.tmp}"}}), &ctx).expect_err("missing");
    assert_eq!(err.field, "q.t");
    assert_eq!(
        err.to_string(),
        "q.t: steps.fetch.body.tmp: no such field (steps.fetch.body has: hours, sky, temp)"
    );
    let err = render_one("${steps.fetch.body.tmp.c}", &ctx).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "steps.fetch.body.tmp: no such field (steps.fetch.body has: hours, sky, temp) (in `${steps.fetch.body.tmp.c}`)"
    );
}

#[test]
fn missing_step_error_names_the_step_and_the_outputs_available() {
    let ctx = ctx_with_steps();
    let err = render_one("${steps.fetc.status}", &ctx).expect_err("missing");
    assert_eq!(
        err.to_string(),
        "steps.fetc: no step output named `fetc` (outputs so far: fetch, weather) (in `${steps.fetc.status}`)"
    );
    let mut ctx = fixture();
    ctx.record_skipped("fetch", None);
    let err = render_one("${steps.fetch}", &ctx).expect_err("skipped");
    assert!(
        err.to_string().contains("step `fetch` was skipped"),
        "{err}"
    );
}

#[test]
fn wrong_shape_errors_say_the_type_and_never_render_empty() {
    let ctx = ctx_with_steps();
    for (template, expected) in [
        (
            "${steps.fetch.status.code}",
            "steps.fetch.status is a number, so it has no fields",
        ),
        (
            "${steps.fetch.body.hours[3]}",
            "index 3 is out of range (steps.fetch.body.hours has 3 items)",
        ),
        (
            "${params.count[0]}",
            "params.count is a number, so it has no items",
        ),
        ("${run.name}", "no such field (run has: attempt, id)"),
        ("${steps[0]}", "name a step, as in steps.<id>"),
        (
            "x ${params.nope} y",
            "params.nope: no such field (params has: city, count, nested, tags)",
        ),
    ] {
        let err = render_one(template, &ctx).expect_err(template);
        assert!(err.to_string().contains(expected), "{template}: {err}");
    }
}

#[test]
fn double_dollar_brace_renders_a_literal_placeholder() {
    let ctx = fixture();
    assert_eq!(
        render_one("$${params.city} is ${params.city}", &ctx),
        Ok(json!("${params.city} is Chisinau"))
    );
    assert_eq!(
        render_one("$${params.city}", &ctx),
        Ok(json!("${params.city}"))
    );
}

#[test]
fn substituted_values_are_never_rendered_again() {
    let mut ctx = fixture();
    ctx.record_output("evil", None, json!({"text": "${params.city} $${x} ${now}"}));
    let expected = "${params.city} $${x} ${now}";
    assert_eq!(render_one("${steps.evil.text}", &ctx), Ok(json!(expected)));
    assert_eq!(
        render_one("said: ${steps.evil.text}", &ctx),
        Ok(json!(format!("said: {expected}")))
    );
    assert_eq!(
        render_one("${steps.evil}", &ctx),
        Ok(json!({"text": expected}))
    );
}

#[test]
fn template_errors_carry_the_field() {
    let ctx = fixture();
    let err = render(&json!({"a": ["ok", "${params.x"]}), &ctx).expect_err("unterminated");
    assert_eq!(err.field, "a[1]");
    assert!(matches!(
        err.kind,
        RenderErrorKind::Template(TemplateError::Unterminated { .. })
    ));
}

fn at(rfc3339: &str, tz: Tz) -> crate::Context {
    let mut ctx = fixture();
    let now = DateTime::parse_from_rfc3339(rfc3339)
        .expect("valid")
        .with_timezone(&Utc);
    ctx = crate::Context::new(
        ctx.params().clone(),
        ctx.run().clone(),
        ctx.task().clone(),
        now,
        tz,
    );
    ctx
}

fn elapsed(a: &Value, b: &Value) -> chrono::TimeDelta {
    let parse =
        |v: &Value| DateTime::parse_from_rfc3339(v.as_str().expect("string")).expect("rfc3339");
    parse(b) - parse(a)
}

#[test]
fn now_plus_24h_across_spring_forward_shifts_the_wall_clock_and_the_offset() {
    // America/New_York springs forward on 2026-03-08 at 02:00 (-05:00 → -04:00).
    let ctx = at("2026-03-07T17:00:00Z", chrono_tz::America::New_York);
    let now = render_one("${now}", &ctx).expect("now");
    let later = render_one("${now+24h}", &ctx).expect("now+24h");
    assert_eq!(now, json!("2026-03-07T12:00:00-05:00"));
    assert_eq!(later, json!("2026-03-08T13:00:00-04:00"));
    assert_eq!(elapsed(&now, &later), chrono::TimeDelta::hours(24));

    // Europe/Chisinau springs forward on 2026-03-29 (+02:00 → +03:00).
    let ctx = at("2026-03-28T10:00:00Z", chrono_tz::Europe::Chisinau);
    let now = render_one("${now}", &ctx).expect("now");
    let later = render_one("${now + 1d}", &ctx).expect("now+1d");
    assert_eq!(now, json!("2026-03-28T12:00:00+02:00"));
    assert_eq!(later, json!("2026-03-29T13:00:00+03:00"));
    assert_eq!(elapsed(&now, &later), chrono::TimeDelta::hours(24));
}

#[test]
fn now_minus_7d_across_fall_back_counts_elapsed_time() {
    // New York fell back on 2025-11-02; a week after it, 7 d earlier has the other offset.
    let ctx = at("2025-11-06T12:00:00Z", chrono_tz::America::New_York);
    assert_eq!(
        render_one("${now}", &ctx),
        Ok(json!("2025-11-06T07:00:00-05:00"))
    );
    assert_eq!(
        render_one("${now-7d}", &ctx),
        Ok(json!("2025-10-30T08:00:00-04:00"))
    );
    let utc = fixture();
    assert_eq!(
        render_one("${now-7d}", &utc),
        Ok(json!("2026-03-21T12:00:00+00:00"))
    );
    assert_eq!(
        render_one("from ${now-PT90M} to ${now}", &utc),
        Ok(json!(
            "from 2026-03-28T10:30:00+00:00 to 2026-03-28T12:00:00+00:00"
        ))
    );
}

fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!([v]);
    }
    v
}

#[test]
fn nesting_depth_is_bounded_in_the_template_and_in_substituted_values() {
    let ctx = fixture();
    assert!(render(&nested(MAX_DEPTH), &ctx).is_ok());
    let err = render(&nested(MAX_DEPTH + 1), &ctx).expect_err("too deep");
    assert_eq!(err.kind, RenderErrorKind::TooDeep { max: MAX_DEPTH });
    assert!(err.to_string().contains("limit: template depth"), "{err}");

    let mut ctx = fixture();
    ctx.record_output("deep", None, nested(MAX_DEPTH - 1));
    assert!(render(&json!(["${steps.deep}"]), &ctx).is_ok());
    let err = render(&json!([["${steps.deep}"]]), &ctx).expect_err("too deep");
    assert_eq!(err.kind, RenderErrorKind::TooDeep { max: MAX_DEPTH });
}

#[test]
fn rendered_size_is_bounded_even_when_a_value_is_repeated() {
    let mut ctx = fixture();
    ctx.record_output("big", None, json!("x".repeat(300 * 1024)));
    assert!(
        render(
            &json!(["${steps.big}", "${steps.big}", "${steps.big}"]),
            &ctx
        )
        .is_ok()
    );
    let four = json!([
        "${steps.big}",
        "${steps.big}",
        "${steps.big}",
        "${steps.big}"
    ]);
    let err = render(&four, &ctx).expect_err("too large");
    assert_eq!(
        err.kind,
        RenderErrorKind::TooLarge {
            max: MAX_RENDERED_BYTES
        }
    );
    assert!(
        err.to_string().contains("limit: rendered output size"),
        "{err}"
    );
    let text = json!("${steps.big}${steps.big}${steps.big}${steps.big}");
    assert!(matches!(
        render(&text, &ctx).map_err(|e| e.kind),
        Err(RenderErrorKind::TooLarge { .. })
    ));
}

#[test]
fn secrets_render_from_the_context_and_a_missing_one_names_secret_and_key_not_a_value() {
    let mut ctx = fixture();
    let mut secrets = crate::Secrets::default();
    secrets.insert("api", "token", "CANARY-1234".into());
    ctx.set_secrets(secrets);
    let out = render(
        &json!({"url": "https://x/?k=${secrets.api.token}", "raw": "${secrets.api.token}"}),
        &ctx,
    )
    .expect("valid");
    assert_eq!(out["url"], "https://x/?k=CANARY-1234");
    assert_eq!(out["raw"], "CANARY-1234");
    let err = render(&json!("${secrets.api.other}"), &ctx).expect_err("must fail");
    let text = err.kind.to_string();
    assert!(
        text.contains("the Secret `api` or its key `other` does not exist"),
        "{text}"
    );
    assert!(!text.contains("CANARY"), "{text}");
    let err = render(&json!("${secrets.api}"), &ctx).expect_err("must fail");
    assert!(
        err.kind
            .to_string()
            .contains("write secrets.<secret>.<key>"),
        "{}",
        err.kind
    );
    // Conditions never see secrets, and Debug shows only names.
    assert!(ctx.to_json().get("secrets").is_none());
    assert!(!format!("{ctx:?}").contains("CANARY"));
}

#[test]
fn a_pipeline_lists_the_secrets_it_reads_and_validation_names_a_bad_reference() {
    let spec: ordinaut_api::PipelineSpec = serde_yaml::from_str(
        "steps:\n  - {id: a, uses: http.request, with: {url: 'https://x/?k=${secrets.api.token}', headers: {Authorization: 'Bearer ${secrets[\"my.cred\"].key}'}}}\noutput: {t: '${secrets.api.token}'}\n",
    )
    .expect("valid");
    let compiled = crate::compile_pipeline(&spec).expect("valid");
    let refs: Vec<_> = compiled.secret_refs().into_iter().collect();
    assert_eq!(
        refs,
        [
            ("api".to_string(), "token".to_string()),
            ("my.cred".to_string(), "key".to_string())
        ]
    );
    let bad: ordinaut_api::PipelineSpec =
        serde_yaml::from_str("steps:\n  - {id: a, uses: core.echo, with: {m: '${secrets.api}'}}\n")
            .expect("valid");
    let issues = crate::validate_pipeline(&bad);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].message.contains("write secrets.<secret>.<key>"),
        "{issues:?}"
    );
}

#[test]
fn visit_templates_reports_locations_and_parse_errors() {
    let mut seen = Vec::new();
    visit_templates(
        &json!({"a": {"b c": ["${params.x}", "${oops"]}, "n": 1}),
        &mut |field, visit| {
            let what = match visit {
                Visit::Template(t) => format!("{} expr", t.expressions().count()),
                Visit::Invalid(e) => e.to_string(),
                Visit::TooDeep => "deep".into(),
            };
            seen.push(format!("{field}: {what}"));
        },
    );
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], "a[\"b c\"][0]: 1 expr");
    assert!(
        seen[1].starts_with("a[\"b c\"][1]: unterminated"),
        "{}",
        seen[1]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn render_never_panics_on_arbitrary_strings(s in ".{0,200}") {
            let ctx = ctx_with_steps();
            let _ = render(&Value::String(s), &ctx);
        }

        #[test]
        fn render_never_panics_on_template_like_strings(s in r"(\$|\{|\}|\$\{|params|steps|now|[.\[\]'0-9a-z+-]){0,40}") {
            let ctx = ctx_with_steps();
            let _ = render(&Value::String(s), &ctx);
        }

        #[test]
        fn strings_without_placeholders_render_unchanged(s in "[^$]{0,200}") {
            let ctx = fixture();
            prop_assert_eq!(render(&Value::String(s.clone()), &ctx), Ok(Value::String(s)));
        }

        #[test]
        fn substituted_text_comes_out_verbatim(s in ".{0,100}") {
            let mut ctx = fixture();
            ctx.record_output("x", None, Value::String(s.clone()));
            prop_assert_eq!(render(&json!("${steps.x}"), &ctx), Ok(Value::String(s.clone())));
            prop_assert_eq!(render(&json!("<${steps.x}>"), &ctx), Ok(Value::String(format!("<{s}>"))));
        }
    }
}
