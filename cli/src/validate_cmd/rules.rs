//! The checks of `ordinaut validate`, per document: kind and apiVersion, the typed schema
//! (serde, unknown fields rejected), the CEL rules (`ordinaut_api::checks`), then the
//! operator's semantic rules: schedules and timezones (the scheduler's own parser),
//! durations, retry policies, pipelines (templates, conditions, step references) and a Task's
//! params against its pipeline's params schema.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use ordinaut_api::constants::API_VERSION;
use ordinaut_api::{Agent, McpServer, Pipeline, PipelineSpec, RetryPolicy, Task, checks};
use ordinaut_schedule::duration::parse_duration;
use ordinaut_schedule::zone::parse_timezone;
use ordinaut_schedule::{Schedule, ScheduleSource};
use serde::de::DeserializeOwned;

use super::{Document, Problem, strip_location};

const KINDS: [&str; 4] = ["Task", "Pipeline", "McpServer", "Agent"];
const TOP_LEVEL: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// A document read into its type.
enum Object {
    Task(Box<Task>),
    Pipeline(Box<Pipeline>),
    McpServer(Box<McpServer>),
    Agent(Box<Agent>),
}

/// Problems of every document; Pipelines in the set resolve Tasks' `pipelineRef`s.
pub fn check_all(docs: &[Document]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut objects = Vec::new();
    for doc in docs {
        let mut report = |path: &str, message: String, line: Option<usize>| {
            problems.push(Problem {
                file: doc.file.clone(),
                line: line.unwrap_or_else(|| doc.lines.line_of(path)),
                path: path.to_string(),
                message,
            });
        };
        if let Some(object) = read_object(doc, &mut report) {
            objects.push((doc, object));
        }
    }
    for (doc, object) in &objects {
        let mut report = |path: String, message: String| {
            problems.push(Problem {
                file: doc.file.clone(),
                line: doc.lines.line_of(&path),
                path,
                message,
            });
        };
        check_object(object, &objects, &mut report);
    }
    problems
}

/// Where `read_object` reports: path, message, and the line when serde knows it exactly.
type ReadReport<'a> = dyn FnMut(&str, String, Option<usize>) + 'a;

/// Kind, apiVersion, top-level fields and the typed read; `None` when the document is not
/// an Ordinaut object or does not read.
fn read_object(doc: &Document, report: &mut ReadReport<'_>) -> Option<Object> {
    let kind = doc.value.get("kind").and_then(|k| k.as_str());
    let api_version = doc.value.get("apiVersion").and_then(|k| k.as_str());
    let ours = api_version.is_some_and(|v| v.starts_with("ordinaut.dev/"));
    let kind = match kind {
        Some(kind) if KINDS.contains(&kind) => kind,
        // Other resources (Secrets, ConfigMaps…) may sit next to ours: not ours to judge.
        _ if !ours => return None,
        Some(other) => {
            report(
                "kind",
                format!(
                    "unknown kind `{other}`; Ordinaut kinds are {}",
                    KINDS.join(", ")
                ),
                None,
            );
            return None;
        }
        None => {
            report(
                "kind",
                format!("missing kind; one of {}", KINDS.join(", ")),
                None,
            );
            return None;
        }
    };
    if api_version != Some(API_VERSION) {
        let got = api_version.unwrap_or("nothing");
        report(
            "apiVersion",
            format!("must be `{API_VERSION}` for a {kind}, got `{got}`"),
            None,
        );
    }
    if let Some(map) = doc.value.as_mapping() {
        for key in map.keys() {
            let key = key.as_str().unwrap_or("?");
            if !TOP_LEVEL.contains(&key) {
                report(
                    key,
                    format!(
                        "unknown field `{key}`, expected one of {}",
                        TOP_LEVEL.join(", ")
                    ),
                    None,
                );
            }
        }
    }
    match kind {
        "Task" => typed::<Task>(doc, report).map(|o| Object::Task(Box::new(o))),
        "Pipeline" => typed::<Pipeline>(doc, report).map(|o| Object::Pipeline(Box::new(o))),
        "McpServer" => typed::<McpServer>(doc, report).map(|o| Object::McpServer(Box::new(o))),
        _ => typed::<Agent>(doc, report).map(|o| Object::Agent(Box::new(o))),
    }
}

fn typed<T: DeserializeOwned>(doc: &Document, report: &mut ReadReport<'_>) -> Option<T> {
    match serde_yaml::from_str::<T>(&doc.text) {
        Ok(object) => Some(object),
        Err(e) => {
            // serde_yaml writes `path: message` when the error is below the root.
            let message = strip_location(&e);
            let (path, message) = match message.split_once(": ") {
                Some((path, rest)) if is_path(path) => (path.to_string(), rest.to_string()),
                _ => ("(document)".to_string(), message),
            };
            // serde's position points at the bad key or value itself: better than the path's.
            report(&path, message, e.location().map(|l| l.line()));
            None
        }
    }
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._[]-".contains(c))
}

fn check_object(
    object: &Object,
    all: &[(&Document, Object)],
    report: &mut dyn FnMut(String, String),
) {
    let mut from_checks = |problems: Vec<checks::FieldProblem>| {
        // Step-level rules (unique ids) are reported by the pipeline validator, which says
        // more (which step holds the id already); keep one report per mistake.
        for p in problems.into_iter().filter(|p| !p.path.contains(".steps[")) {
            report(p.path, p.message);
        }
    };
    match object {
        Object::Task(task) => {
            from_checks(checks::task_problems(&task.spec));
            check_task(task, all, report);
        }
        Object::Pipeline(p) => {
            from_checks(checks::pipeline_problems(&p.spec, "spec"));
            check_pipeline(&p.spec, "spec", report);
        }
        Object::McpServer(m) => {
            from_checks(checks::mcp_server_problems(
                m.metadata.name.as_deref(),
                &m.spec,
            ));
            duration(m.spec.timeout.as_deref(), "spec.timeout", report);
        }
        Object::Agent(a) => from_checks(checks::agent_problems(&a.spec)),
    }
}

fn check_task(task: &Task, all: &[(&Document, Object)], report: &mut dyn FnMut(String, String)) {
    let spec = &task.spec;
    let s = &spec.schedule;
    let tz = parse_timezone(&s.timezone).ok();
    // The anchor of an RRULE without DTSTART and of `every`: startAt in the zone, else local
    // midnight of the creation day (today when the manifest has not been created yet).
    let anchor: NaiveDateTime = match (s.start_at, tz) {
        (Some(start), Some(tz)) => start.with_timezone(&tz).naive_local(),
        (Some(start), None) => start.naive_utc(),
        (None, tz) => {
            let created = task
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
                .unwrap_or_else(Utc::now);
            let day = match tz {
                Some(tz) => created.with_timezone(&tz).date_naive(),
                None => created.date_naive(),
            };
            day.and_time(NaiveTime::MIN)
        }
    };
    let source = if let Some(r) = &s.rrule {
        Some(ScheduleSource::Rrule(r.clone()))
    } else if let Some(c) = &s.cron {
        Some(ScheduleSource::Cron(c.clone()))
    } else if let Some(a) = &s.at {
        Some(ScheduleSource::At(a.clone()))
    } else {
        s.every.as_ref().map(|e| ScheduleSource::Every(e.clone()))
    };
    // An unknown timezone is reported once; the rule itself is still checked (in UTC) so
    // that both mistakes show up in one pass.
    let timezone = match parse_timezone(&s.timezone) {
        Ok(_) => s.timezone.as_str(),
        Err(e) => {
            report(format!("spec.schedule.{}", e.field), e.message);
            "UTC"
        }
    };
    if let Some(source) = source
        && let Err(e) = Schedule::new(&source, timezone, anchor)
    {
        report(format!("spec.schedule.{}", e.field), e.message);
    }
    duration(s.jitter.as_deref(), "spec.schedule.jitter", report);
    duration(
        Some(&s.catchup.window),
        "spec.schedule.catchup.window",
        report,
    );
    duration(spec.timeout.as_deref(), "spec.timeout", report);
    retry(spec.retry.as_ref(), "spec.retry", report);

    // The pipeline it runs: inline, or a Pipeline among the validated documents.
    let pipeline: Option<&PipelineSpec> = match (&spec.pipeline, &spec.pipeline_ref) {
        (Some(inline), _) => {
            check_pipeline(inline, "spec.pipeline", report);
            Some(inline)
        }
        (None, Some(name)) => all.iter().find_map(|(_, o)| match o {
            Object::Pipeline(p)
                if p.metadata.name.as_ref() == Some(name)
                    && p.metadata.namespace == task.metadata.namespace =>
            {
                Some(&p.spec)
            }
            _ => None,
        }),
        (None, None) => None,
    };
    if let Some(pipeline) = pipeline
        && !ordinaut_pipeline::validate::validate_pipeline(pipeline)
            .iter()
            .any(|i| i.path.starts_with("params"))
    {
        let params = spec.params.clone().unwrap_or_else(|| serde_json::json!({}));
        if let Err(e) = ordinaut_pipeline::validate::validate_params(pipeline, &params) {
            report(
                "spec.params".into(),
                format!("does not match the pipeline's params schema: {e}"),
            );
        }
    }
}

fn check_pipeline(spec: &PipelineSpec, prefix: &str, report: &mut dyn FnMut(String, String)) {
    for issue in ordinaut_pipeline::validate::validate_pipeline(spec) {
        let path = if issue.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", issue.path)
        };
        report(path, issue.message);
    }
}

fn duration(value: Option<&str>, path: &str, report: &mut dyn FnMut(String, String)) {
    if let Some(value) = value
        && let Err(e) = parse_duration(value)
    {
        report(path.to_string(), e.to_string());
    }
}

fn retry(policy: Option<&RetryPolicy>, path: &str, report: &mut dyn FnMut(String, String)) {
    for e in policy
        .map(ordinaut_pipeline::retry::check_policy)
        .unwrap_or_default()
    {
        report(format!("{path}.{}", e.field()), e.to_string());
    }
}
