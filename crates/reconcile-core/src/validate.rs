//! Validation (pure): the semantic rules the operator enforces on a Task beyond its schema:
//! the CEL rules (`ordinaut_api::checks`), the schedule and timezone (the scheduler's own
//! parser), durations, retry policies, the pipeline (templates, conditions, step references)
//! and `params` against the pipeline's params schema. `ordinaut validate` runs the same
//! functions, so the CLI and the operator cannot disagree.

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use ordinaut_api::constants::reason;
use ordinaut_api::{
    AgentSpec, McpServerSpec, PipelineSpec, RetryPolicy, TaskSchedule, TaskSpec, checks,
};
use ordinaut_schedule::duration::parse_duration;
use ordinaut_schedule::zone::parse_timezone;
use ordinaut_schedule::{Schedule, ScheduleSource};

/// One thing wrong with an object: the field path from the object root, what to change, and
/// the condition reason it maps to (`InvalidSchedule`, `InvalidPipeline`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub reason: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

fn problem(path: impl Into<String>, message: impl Into<String>, reason: &'static str) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        reason,
    }
}

/// The raw schedule of a Task, `None` for event triggers (`on`) or when no kind is set.
pub fn schedule_source(s: &TaskSchedule) -> Option<ScheduleSource> {
    if let Some(r) = &s.rrule {
        Some(ScheduleSource::Rrule(r.clone()))
    } else if let Some(c) = &s.cron {
        Some(ScheduleSource::Cron(c.clone()))
    } else if let Some(a) = &s.at {
        Some(ScheduleSource::At(a.clone()))
    } else {
        s.every.as_ref().map(|e| ScheduleSource::Every(e.clone()))
    }
}

/// The anchor of an RRULE without DTSTART and of `every`, as a wall time in the Task's zone:
/// `startAt`, else local midnight of the day the Task was created (never "now", which would
/// move with every reconcile).
pub fn schedule_anchor(s: &TaskSchedule, created: DateTime<Utc>, tz: Option<Tz>) -> NaiveDateTime {
    match (s.start_at, tz) {
        (Some(start), Some(tz)) => start.with_timezone(&tz).naive_local(),
        (Some(start), None) => start.naive_utc(),
        (None, tz) => {
            let day = match tz {
                Some(tz) => created.with_timezone(&tz).date_naive(),
                None => created.date_naive(),
            };
            day.and_time(NaiveTime::MIN)
        }
    }
}

/// Where the scheduler's occurrences of `s` start, as the bound to iterate *after*: `now`,
/// or just before a later `startAt` (an occurrence exactly at `startAt` runs).
pub fn first_run_bound(s: &TaskSchedule, now: DateTime<Utc>) -> DateTime<Utc> {
    s.start_at.map_or(now, |start| {
        now.max(start - chrono::TimeDelta::microseconds(1))
    })
}

/// Compiles a Task's schedule as the scheduler runs it. `Ok(None)` for event triggers.
pub fn compile_schedule(
    s: &TaskSchedule,
    created: DateTime<Utc>,
) -> Result<Option<Schedule>, Problem> {
    let tz = parse_timezone(&s.timezone).map_err(|e| {
        problem(
            format!("spec.schedule.{}", e.field),
            e.message,
            reason::INVALID_SCHEDULE,
        )
    })?;
    let Some(source) = schedule_source(s) else {
        return Ok(None);
    };
    let compiled = match s.start_at {
        // The exact instant: a `startAt` in the second pass of a repeated hour stays there.
        Some(start) => Schedule::new_from_instant(&source, &s.timezone, start),
        None => Schedule::new(&source, &s.timezone, schedule_anchor(s, created, Some(tz))),
    };
    compiled.map(Some).map_err(|e| {
        problem(
            format!("spec.schedule.{}", e.field),
            e.message,
            reason::INVALID_SCHEDULE,
        )
    })
}

/// Every problem of a Task's spec. `created` anchors the schedule (pass now for a manifest
/// not yet created); `referenced` is the Pipeline `pipelineRef` names, when known (a missing
/// reference is the caller's to report: the CLI may not see the cluster's Pipelines).
pub fn task_problems(
    spec: &TaskSpec,
    created: DateTime<Utc>,
    referenced: Option<&PipelineSpec>,
) -> Vec<Problem> {
    let mut out = from_checks(checks::task_problems(spec));
    let s = &spec.schedule;
    // An unknown timezone is reported once; the rule is still checked (in UTC) so that both
    // mistakes show up in one pass.
    let mut in_utc = s.clone();
    if let Err(e) = parse_timezone(&s.timezone) {
        out.push(problem(
            format!("spec.schedule.{}", e.field),
            e.message,
            reason::INVALID_SCHEDULE,
        ));
        in_utc.timezone = "UTC".into();
    }
    if let Err(p) = compile_schedule(&in_utc, created) {
        out.push(p);
    }
    if let Some(filter) = s.on.as_ref().and_then(|on| on.filter.as_deref())
        && let Err(e) = ordinaut_pipeline::condition::compile_condition(filter)
    {
        out.push(problem(
            "spec.schedule.on.filter",
            format!("is not a valid JMESPath expression: {e}"),
            reason::INVALID_SCHEDULE,
        ));
    }
    duration(
        s.jitter.as_deref(),
        "spec.schedule.jitter",
        reason::INVALID_SCHEDULE,
        &mut out,
    );
    duration(
        Some(&s.catchup.window),
        "spec.schedule.catchup.window",
        reason::INVALID_SCHEDULE,
        &mut out,
    );
    duration(
        spec.timeout.as_deref(),
        "spec.timeout",
        reason::INVALID_SPEC,
        &mut out,
    );
    retry(spec.retry.as_ref(), "spec.retry", &mut out);

    let pipeline = match (&spec.pipeline, &spec.pipeline_ref) {
        (Some(inline), _) => {
            out.extend(pipeline_spec_problems(inline, "spec.pipeline"));
            Some(inline)
        }
        (None, Some(_)) => referenced,
        (None, None) => None,
    };
    if let Some(pipeline) = pipeline
        && !ordinaut_pipeline::validate::validate_pipeline(pipeline)
            .iter()
            .any(|i| i.path.starts_with("params"))
    {
        let params = spec.params.clone().unwrap_or_else(|| serde_json::json!({}));
        if let Err(e) = ordinaut_pipeline::validate::validate_params(pipeline, &params) {
            out.push(problem(
                "spec.params",
                format!("does not match the pipeline's params schema: {e}"),
                reason::INVALID_PARAMS,
            ));
        }
    }
    // The inline pipeline's field rules come through both the Task's and the pipeline's
    // checks: one report per mistake.
    let mut seen = Vec::new();
    out.retain(|p| {
        let new = !seen.contains(p);
        if new {
            seen.push(p.clone());
        }
        new
    });
    out
}

/// Problems of a pipeline (a Pipeline's spec, or a Task's inline one), paths under `prefix`.
pub fn pipeline_spec_problems(spec: &PipelineSpec, prefix: &str) -> Vec<Problem> {
    let mut out = from_checks(checks::pipeline_problems(spec, prefix));
    for issue in ordinaut_pipeline::validate::validate_pipeline(spec) {
        let path = if issue.path.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", issue.path)
        };
        out.push(problem(path, issue.message, reason::INVALID_PIPELINE));
    }
    out
}

/// Problems of an McpServer.
pub fn mcp_server_problems(name: Option<&str>, spec: &McpServerSpec) -> Vec<Problem> {
    let mut out = from_checks(checks::mcp_server_problems(name, spec));
    duration(
        spec.timeout.as_deref(),
        "spec.timeout",
        reason::INVALID_SPEC,
        &mut out,
    );
    out
}

/// Problems of an Agent.
pub fn agent_problems(spec: &AgentSpec) -> Vec<Problem> {
    from_checks(checks::agent_problems(spec))
}

/// The CEL-rule problems, with their reasons. Step-level rules (unique ids) are left to the
/// pipeline validator, which says more (which step holds the id already): one report per
/// mistake.
fn from_checks(problems: Vec<checks::FieldProblem>) -> Vec<Problem> {
    problems
        .into_iter()
        .filter(|p| !p.path.contains(".steps[") || p.message.ends_with(checks::NUL_MESSAGE))
        .map(|p| {
            let reason = if p.path.starts_with("spec.schedule") {
                reason::INVALID_SCHEDULE
            } else if p.path.starts_with("spec.pipeline") {
                reason::INVALID_PIPELINE
            } else {
                reason::INVALID_SPEC
            };
            problem(p.path, p.message, reason)
        })
        .collect()
}

fn duration(value: Option<&str>, path: &str, reason: &'static str, out: &mut Vec<Problem>) {
    if let Some(value) = value
        && let Err(e) = parse_duration(value)
    {
        out.push(problem(path, e.to_string(), reason));
    }
}

fn retry(policy: Option<&RetryPolicy>, path: &str, out: &mut Vec<Problem>) {
    for e in policy
        .map(ordinaut_pipeline::retry::check_policy)
        .unwrap_or_default()
    {
        out.push(problem(
            format!("{path}.{}", e.field()),
            e.to_string(),
            reason::INVALID_SPEC,
        ));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ordinaut_api::Task;

    fn task(yaml: &str) -> Task {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str =
        "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {name: t, namespace: default}\n";

    fn created() -> DateTime<Utc> {
        "2025-03-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_valid_task_has_no_problems() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{cron: '*/15 * * * *', timezone: Europe/Chisinau}}\n  pipeline:\n    steps: [{{id: a, uses: core.echo}}]\n"
        ));
        assert_eq!(task_problems(&t.spec, created(), None), vec![]);
    }

    /// PostgreSQL cannot store U+0000: a Task holding one is invalid (Ready=False naming the
    /// field) instead of failing every attempt to project it.
    #[test]
    fn a_nul_character_in_a_step_argument_is_an_invalid_pipeline_naming_the_field() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{every: 1h}}\n  pipeline:\n    steps: [{{id: a, uses: core.echo, with: {{m: \"a\\0b\"}}}}]\n"
        ));
        let problems = task_problems(&t.spec, created(), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.pipeline.steps[0].with.m");
        assert_eq!(problems[0].reason, reason::INVALID_PIPELINE);
        assert!(problems[0].message.contains("NUL character"));
    }

    #[test]
    fn an_invalid_rrule_names_the_field_and_maps_to_invalid_schedule() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{rrule: 'FREQ=SOMETIMES'}}\n  pipelineRef: p\n"
        ));
        let problems = task_problems(&t.spec, created(), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].path.starts_with("spec.schedule.rrule"),
            "{problems:?}"
        );
        assert_eq!(problems[0].reason, reason::INVALID_SCHEDULE);
    }

    #[test]
    fn an_unknown_timezone_is_reported_on_the_timezone_field() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{cron: '@daily', timezone: Mars/Olympus}}\n  pipelineRef: p\n"
        ));
        let problems = task_problems(&t.spec, created(), None);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.schedule.timezone");
        assert!(compile_schedule(&t.spec.schedule, created()).is_err());
    }

    #[test]
    fn a_bad_jitter_and_a_bad_inline_pipeline_are_both_reported() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{every: 5m, jitter: soon}}\n  pipeline:\n    steps: [{{id: a, uses: core.echo, with: {{x: '${{steps.nope.y}}'}}}}]\n"
        ));
        let problems = task_problems(&t.spec, created(), None);
        assert!(
            problems.iter().any(|p| p.path == "spec.schedule.jitter"),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.path.starts_with("spec.pipeline.steps[0]")
                    && p.reason == reason::INVALID_PIPELINE),
            "{problems:?}"
        );
    }

    #[test]
    fn an_rrule_without_dtstart_is_anchored_at_local_midnight_of_the_creation_day() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{rrule: 'FREQ=HOURLY;INTERVAL=5', timezone: Europe/Chisinau}}\n  pipelineRef: p\n"
        ));
        let s = compile_schedule(&t.spec.schedule, created())
            .unwrap()
            .unwrap();
        // Created 2025-03-10 14:00 local (UTC+2): anchored at 00:00 local = 22:00Z the day before,
        // so occurrences are 22:00Z + 5h·k whatever "now" is.
        let next = s.next_after(created()).unwrap().unwrap().to_utc();
        assert_eq!(
            next,
            "2025-03-10T13:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn params_are_checked_against_the_referenced_pipeline() {
        let t = task(&format!(
            "{BASE}spec:\n  schedule: {{every: 1m}}\n  pipelineRef: p\n  params: {{city: 3}}\n"
        ));
        let pipeline: PipelineSpec = serde_yaml::from_str(
            "params: {type: object, properties: {city: {type: string}}}\nsteps: [{id: a, uses: core.echo}]\n",
        )
        .unwrap();
        let problems = task_problems(&t.spec, created(), Some(&pipeline));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].path, "spec.params");
        assert_eq!(problems[0].reason, reason::INVALID_PARAMS);
    }
}
