//! The fuzz targets: one function per input format a Task's author (or an MCP server)
//! controls. Each takes arbitrary bytes and must return without panicking, hanging or
//! exhausting memory, whatever they hold. `fuzz_targets/` wraps them for libFuzzer
//! (`scripts/fuzz.sh TARGET MINUTES`); `tests/corpora.rs` replays every committed corpus file
//! through them in the normal test suite.
#![forbid(unsafe_code)]

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ordinaut_pipeline::{Context, RunInfo, TaskInfo};
use ordinaut_schedule::{Schedule, ScheduleSource};
use serde_json::{Value, json};

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the corpus folders and of the fuzzing binaries).
pub const TARGETS: &[(&str, Target)] = &[
    ("rrule", rrule),
    ("cron", cron),
    ("template", template),
    ("condition", condition),
    ("manifest", manifest),
    ("mcp_result", mcp_result),
];

/// Occurrences taken from a schedule that compiled: enough to walk every branch of the
/// expander, few enough that one input stays fast.
const OCCURRENCES: usize = 16;

/// Timezones an input may pick with its first byte (a zone with DST gaps, one with a
/// 30-minute shift, one with a 45-minute offset, and UTC).
const ZONES: &[&str] = &[
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
];

fn anchor() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 3, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default()
}

fn start() -> DateTime<Utc> {
    anchor().and_utc()
}

/// The zone chosen by the first byte, and the rest as text.
fn zone_and_text(data: &[u8]) -> Option<(&'static str, &str)> {
    let (first, rest) = data.split_first()?;
    let zone = ZONES[usize::from(*first) % ZONES.len()];
    Some((zone, std::str::from_utf8(rest).ok()?))
}

fn expand(source: ScheduleSource, zone: &str) {
    if let Ok(schedule) = Schedule::new(&source, zone, anchor()) {
        let mut previous: Option<DateTime<Utc>> = None;
        for next in schedule.iter_after(start()).take(OCCURRENCES) {
            let Ok(next) = next else { break };
            let next = next.with_timezone(&Utc);
            // Occurrences are strictly increasing and after the start.
            assert!(next > start(), "{next} is not after the start");
            if let Some(p) = previous {
                assert!(next > p, "{next} does not follow {p}");
            }
            previous = Some(next);
        }
        let _ = schedule.describe();
    }
}

/// An RRULE (optionally with a DTSTART line) parsed, validated and expanded.
pub fn rrule(data: &[u8]) {
    if let Some((zone, text)) = zone_and_text(data) {
        expand(ScheduleSource::Rrule(text.to_string()), zone);
    }
}

/// A cron expression parsed, validated and expanded.
pub fn cron(data: &[u8]) {
    if let Some((zone, text)) = zone_and_text(data) {
        expand(ScheduleSource::Cron(text.to_string()), zone);
    }
}

/// A context with a few params, two step outputs and a secret.
fn context() -> Context {
    let mut ctx = Context::new(
        json!({"city": "Chisinau", "n": 3, "list": [1, {"a": "b"}], "nested": {"deep": [true]}}),
        RunInfo {
            id: "run-1".into(),
            attempt: 1,
        },
        TaskInfo {
            name: "t".into(),
            namespace: "default".into(),
        },
        start(),
        chrono_tz::Tz::Europe__Berlin,
    );
    ctx.record_output(
        "fetch",
        Some("w"),
        json!({"status": 200, "body": {"x": [1, 2, 3]}}),
    );
    let mut secrets = ordinaut_pipeline::Secrets::default();
    secrets.insert("api", "token", "s3cret-value".into());
    ctx.set_secrets(secrets);
    ctx
}

/// A template string parsed and rendered; input that is JSON is rendered as a whole value
/// (templates in every string of it).
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ordinaut_pipeline::template::parse_template(text);
    let value = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()));
    let _ = ordinaut_pipeline::render(&value, &context());
}

/// A step's `if` compiled and evaluated over a run's document.
pub fn condition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(condition) = ordinaut_pipeline::compile_condition(text) {
        let _ = condition.evaluate(&context());
    }
}

/// A manifest read as a Task or a Pipeline and validated as `ordinaut validate` and the
/// operator do: the CRD's rules, the pipeline's templates and conditions, the schedule.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(task) = serde_yaml::from_str::<ordinaut_api::Task>(text) {
        let _ = ordinaut_api::checks::task_problems(&task.spec);
        if let Some(pipeline) = &task.spec.pipeline {
            let _ = ordinaut_pipeline::validate_pipeline(pipeline);
            if let Ok(compiled) = ordinaut_pipeline::compile_pipeline(pipeline) {
                let _ = compiled.secret_refs();
            }
        }
        let s = &task.spec.schedule;
        let source = match (&s.rrule, &s.cron, &s.at, &s.every) {
            (Some(r), ..) => Some(ScheduleSource::Rrule(r.clone())),
            (_, Some(c), ..) => Some(ScheduleSource::Cron(c.clone())),
            (_, _, Some(a), _) => Some(ScheduleSource::At(a.clone())),
            (.., Some(e)) => Some(ScheduleSource::Every(e.clone())),
            _ => None,
        };
        if let Some(source) = source {
            expand(source, &s.timezone);
        }
    }
    if let Ok(pipeline) = serde_yaml::from_str::<ordinaut_api::Pipeline>(text) {
        let _ = ordinaut_api::checks::pipeline_problems(&pipeline.spec, "spec");
        let _ = ordinaut_pipeline::validate_pipeline(&pipeline.spec);
    }
}

/// An MCP `tools/call` result (JSON) turned into a step's output, then checked against an
/// output schema as the worker does.
pub fn mcp_result(data: &[u8]) {
    let Ok(result) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Ok(output) = ordinaut_tools::mcp::render_result(&result) {
        let schemas = ordinaut_pipeline::SchemaCache::new();
        let schema = json!({"type": "object", "properties": {"text": {"type": "string"}}});
        let _ = schemas.check(&schema, &output);
    }
}
