//! Runs: the rows of run lists (shared with the live feed) and a run's page: its trigger,
//! times, error, each step's input, output, error, attempts and duration (inputs as the
//! worker stored them, secrets already masked), and the run's JSON as `GET /v1/runs/{id}`
//! returns it.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use super::DashState;
use super::html::{self, Esc, Nav};
use super::pages::{error_page, render};
use super::session::Viewer;
use crate::ops::types::{GetRunInput, RunInfo, StepInfo};

/// What started a run, in words.
pub fn trigger_words(trigger: &str) -> &'static str {
    match trigger {
        "schedule" => "its schedule",
        "catchup" => "catch-up of a missed occurrence",
        "manual" => "a person or agent (run now)",
        "backfill" => "a backfill of past occurrences",
        "event" => "an event",
        _ => "another trigger",
    }
}

fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

/// One run's row.
pub fn run_row(out: &mut String, r: &RunInfo, now: DateTime<Utc>, tz: Tz, with_task: bool) {
    let href = format!("/ui/runs/{}", html::url(&r.id));
    let _ = write!(
        out,
        "<tr data-row data-run-id=\"{}\" class=\"{}\"><td data-label=\"Started\">{}<br><small>{}</small></td>",
        Esc(&r.id),
        if r.status == "failed" { "bad" } else { "" },
        html::time_tag(r.started_at, tz),
        Esc(&html::relative(r.started_at, now)),
    );
    if with_task {
        let _ = write!(
            out,
            "<td data-label=\"Task\"><a href=\"/ui/tasks/{}/{}\">{}</a> <small>{}</small></td>",
            html::url(&r.namespace),
            html::url(&r.task),
            Esc(&r.task),
            Esc(&r.namespace)
        );
    }
    let error = r.error.as_deref().unwrap_or("");
    let short: String = error.chars().take(140).collect();
    let _ = write!(
        out,
        "<td data-label=\"Status\"><a href=\"{href}\">{}</a></td><td data-label=\"Trigger\">{}</td>\
         <td data-label=\"Attempt\">{}</td><td data-label=\"Duration\">{}</td>\
         <td data-label=\"Error\">",
        html::badge(&r.status),
        Esc(&r.trigger),
        r.attempt,
        html::duration(ms(r.started_at, r.finished_at)),
    );
    if !error.is_empty() {
        let _ = write!(
            out,
            "<a href=\"{href}\" class=\"error\">{}</a>",
            Esc(&short)
        );
    }
    out.push_str("</td></tr>");
}

/// Rows of runs.
pub fn run_rows(runs: &[RunInfo], now: DateTime<Utc>, tz: Tz, with_task: bool) -> String {
    let mut out = String::new();
    for r in runs {
        run_row(&mut out, r, now, tz, with_task);
    }
    out
}

/// A table of runs that the live feed adds to (`task`: `ns/name`, or empty for all).
pub fn runs_table(rows: &str, task: &str, now: DateTime<Utc>) -> String {
    let with_task = task.is_empty();
    format!(
        "<div class=\"scroll\"><table class=\"runs\" data-nav><thead><tr><th scope=\"col\">Started</th>{}\
         <th scope=\"col\">Status</th><th scope=\"col\">Trigger</th><th scope=\"col\">Attempt</th>\
         <th scope=\"col\">Duration</th><th scope=\"col\">Error</th></tr></thead>\
         <tbody data-live-runs data-task=\"{}\" data-from=\"{}\">{rows}</tbody></table></div>\
         <p class=\"live muted\" data-live-state aria-live=\"polite\"></p>",
        if with_task {
            "<th scope=\"col\">Task</th>"
        } else {
            ""
        },
        Esc(task),
        now.to_rfc3339(),
    )
}

fn json_block(label: &str, v: &Option<Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(v) => format!(
            "<h4>{label}</h4><pre>{}</pre>",
            Esc(&serde_json::to_string_pretty(v).unwrap_or_default())
        ),
    }
}

fn step_section(out: &mut String, i: usize, s: &StepInfo) {
    let failed = s.status == "failed";
    let _ = write!(
        out,
        "<section class=\"step {}\"><h3>{}. <code>{}</code> uses <code>{}</code> {}</h3>\
         <p>{} attempt(s) · {}</p>",
        if failed { "bad" } else { "" },
        i + 1,
        Esc(&s.id),
        Esc(&s.uses),
        html::badge(&s.status),
        s.attempts,
        html::duration(ms(s.started_at, s.finished_at)),
    );
    if let Some(e) = &s.error {
        let _ = write!(out, "<pre class=\"error\" role=\"alert\">{}</pre>", Esc(e));
    }
    let _ = write!(
        out,
        "<details{}><summary>Input and output</summary>{}{}</details></section>",
        if failed { " open" } else { "" },
        json_block("Input", &s.input),
        json_block("Output", &s.output),
    );
}

fn facts(out: &mut String, r: &RunInfo, tz: Tz) {
    let _ = write!(
        out,
        "<dl class=\"facts\"><dt>Task</dt><dd><a href=\"/ui/tasks/{}/{}\">{}/{}</a></dd>\
         <dt>Trigger</dt><dd><code>{}</code>: {}</dd><dt>Attempt</dt><dd>{}</dd>\
         <dt>Scheduled for</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd>\
         <dt>Duration</dt><dd>{}</dd><dt>Run id</dt><dd><code>{}</code></dd></dl>",
        html::url(&r.namespace),
        html::url(&r.task),
        Esc(&r.namespace),
        Esc(&r.task),
        Esc(&r.trigger),
        trigger_words(&r.trigger),
        r.attempt,
        html::time_tag(r.scheduled_for, tz),
        html::time_tag(r.started_at, tz),
        html::time_tag(r.finished_at, tz),
        html::duration(ms(r.started_at, r.finished_at)),
        Esc(&r.id),
    );
}

/// `GET /ui/runs/{id}`.
pub async fn page(viewer: Viewer, State(s): State<DashState>, Path(id): Path<String>) -> Response {
    let detail = match s.app.ops.get_run(&viewer.call, GetRunInput { id }).await {
        Ok(d) => d,
        Err(e) => return error_page(&e),
    };
    let r = &detail.run;
    let mut out = format!(
        "<h1>Run of {} {}</h1>",
        Esc(&r.task),
        html::badge(&r.status)
    );
    facts(&mut out, r, viewer.tz);
    if let Some(e) = &r.error {
        let _ = write!(
            out,
            "<h2>Error</h2><pre class=\"error\" role=\"alert\">{}</pre>",
            Esc(e)
        );
    }
    out.push_str(&json_block("Output", &r.output));
    let _ = write!(out, "<h2>Steps ({})</h2>", detail.steps.len());
    for (i, step) in detail.steps.iter().enumerate() {
        step_section(&mut out, i, step);
    }
    let json = serde_json::to_string_pretty(&detail).unwrap_or_default();
    let _ = write!(
        out,
        "<details class=\"json\"><summary>The run as JSON (<code>GET /v1/runs/{}</code>)</summary>\
         <pre>{}</pre></details>",
        Esc(&r.id),
        Esc(&json)
    );
    render(&viewer, &format!("Run of {}", r.task), Nav::None, &out)
}
