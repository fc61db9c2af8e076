//! A Task's page: its manifest as YAML, its conditions, its next 20 occurrences from the
//! scheduler's own code, its run history with a success-rate sparkline (updated live), and
//! the actions the viewer's scopes allow.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ordinaut_api::agent::api_scope;
use serde_json::{Value, json};

use super::html::{self, Esc, Nav};
use super::pages::{error_page, lacks, render};
use super::run_page::{run_rows, runs_table};
use super::session::Viewer;
use super::{DashState, words};
use crate::ops::types::{GetTaskInput, ListRunsInput, RunInfo, TaskView};

/// Upcoming occurrences shown.
const NEXT: u32 = 20;
/// Runs in the history.
const HISTORY: u32 = 100;

/// Rolling success rate over this many runs, drawn as the sparkline's line.
const WINDOW: usize = 10;

/// Runs oldest first as bars (green, red, grey) with the rolling success rate as a line.
pub fn sparkline(runs: &[RunInfo]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let n = runs.len();
    let ok = runs.iter().filter(|r| r.status == "succeeded").count();
    // At least 50 bars wide, so a few runs are bars rather than one stretched block.
    let mut out = format!(
        "<figure class=\"spark\"><svg viewBox=\"0 0 {} 30\" preserveAspectRatio=\"none\" \
         role=\"img\" aria-label=\"{ok} of the last {n} runs succeeded\">",
        n.max(50) * 4
    );
    let mut points = String::new();
    let oldest_first: Vec<&RunInfo> = runs.iter().rev().collect();
    for (i, r) in oldest_first.iter().enumerate() {
        let _ = write!(
            out,
            "<rect x=\"{}\" y=\"20\" width=\"3\" height=\"10\" class=\"{}\"><title>{} {}</title></rect>",
            i * 4,
            html::status_class(&r.status),
            Esc(&r.status),
            r.started_at.format("%Y-%m-%d %H:%M")
        );
        let window = &oldest_first[(i + 1).saturating_sub(WINDOW)..=i];
        let good = window.iter().filter(|r| r.status == "succeeded").count();
        let rate = good as f64 / window.len() as f64;
        let _ = write!(points, "{},{:.1} ", i * 4 + 1, 17.0 - rate * 16.0);
    }
    let _ = write!(
        out,
        "<polyline points=\"{}\" class=\"rate\"/></svg><figcaption>{ok} of the last {n} runs \
         succeeded ({}%); the line is the success rate over {WINDOW} runs</figcaption></figure>",
        points.trim_end(),
        ok * 100 / n
    );
    out
}

fn manifest_yaml(t: &TaskView) -> String {
    let manifest = json!({
        "apiVersion": "ordinaut.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": t.name, "namespace": t.namespace},
        "spec": t.spec,
    });
    serde_yaml::to_string(&manifest).unwrap_or_default()
}

fn conditions(out: &mut String, status: &Value) {
    let Some(cs) = status["conditions"].as_array().filter(|c| !c.is_empty()) else {
        out.push_str("<p class=\"muted\">No conditions yet: the operator has not reported.</p>");
        return;
    };
    out.push_str(
        "<table class=\"conditions\"><thead><tr><th scope=\"col\">Type</th><th scope=\"col\">Status</th>\
         <th scope=\"col\">Reason</th><th scope=\"col\">Message</th><th scope=\"col\">Since</th></tr></thead><tbody>",
    );
    for c in cs {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let good = (s("type") == "Ready") == (s("status") == "True");
        let _ = write!(
            out,
            "<tr><td data-label=\"Type\">{}</td><td data-label=\"Status\"><span class=\"badge {}\">{}</span></td>\
             <td data-label=\"Reason\">{}</td><td data-label=\"Message\">{}</td><td data-label=\"Since\">{}</td></tr>",
            Esc(&s("type")),
            if good { "ok" } else { "bad" },
            Esc(&s("status")),
            Esc(&s("reason")),
            Esc(&s("message")),
            Esc(&s("lastTransitionTime")),
        );
    }
    out.push_str("</tbody></table>");
}

fn action_form(out: &mut String, t: &TaskView, csrf: &str, action: &str, label: &str, extra: &str) {
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/ui/tasks/{}/{}/{action}\" class=\"action\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">{extra}\
         <button type=\"submit\" data-action=\"{action}\">{label}</button></form>",
        html::url(&t.namespace),
        html::url(&t.name),
        Esc(csrf),
    );
}

fn actions(out: &mut String, viewer: &Viewer, t: &TaskView) {
    out.push_str("<div class=\"actions\">");
    if viewer.call.who.has(api_scope::RUNS_WRITE) {
        action_form(out, t, &viewer.csrf, "run-now", "Run now", "");
    }
    if viewer.call.who.has(api_scope::TASKS_WRITE) {
        if t.spec["suspend"].as_bool() == Some(true) {
            action_form(out, t, &viewer.csrf, "resume", "Resume", "");
        } else {
            action_form(out, t, &viewer.csrf, "pause", "Pause", "");
        }
        let select = "<label>Snooze for <select name=\"for\"><option>1h</option><option>4h</option>\
                      <option>1d</option><option>7d</option></select></label> ";
        action_form(out, t, &viewer.csrf, "snooze", "Snooze", select);
    }
    out.push_str("</div>");
    for (scope, what) in [
        (api_scope::RUNS_WRITE, "run now is"),
        (api_scope::TASKS_WRITE, "pause, resume and snooze are"),
    ] {
        if !viewer.call.who.has(scope) {
            let _ = write!(
                out,
                "<p class=\"note\">Your token lacks the API scope <code>{scope}</code>: {what} \
                 not offered.</p>"
            );
        }
    }
}

fn occurrences(out: &mut String, t: &TaskView, now: DateTime<Utc>, viewer_tz: Tz) {
    let task_tz: Tz = t.spec["schedule"]["timezone"]
        .as_str()
        .and_then(|z| z.parse().ok())
        .unwrap_or(Tz::UTC);
    let _ = write!(out, "<h2>Next {} occurrences</h2>", t.next_runs.len());
    if t.next_runs.is_empty() {
        out.push_str("<p class=\"muted\">None: paused, finished, or triggered by events.</p>");
        return;
    }
    let _ = write!(out, "<ol class=\"occurrences\" data-nav>");
    for at in &t.next_runs {
        let _ = write!(
            out,
            "<li data-row>{} <small>(",
            html::time_tag(*at, viewer_tz)
        );
        if task_tz != viewer_tz {
            let _ = write!(
                out,
                "{} in {}; ",
                Esc(&html::local(*at, task_tz)),
                Esc(task_tz.name())
            );
        }
        let _ = write!(out, "{})</small></li>", Esc(&html::relative(*at, now)));
    }
    out.push_str("</ol>");
}

fn header(out: &mut String, t: &TaskView) {
    let tz = t.spec["schedule"]["timezone"].as_str().unwrap_or("UTC");
    let _ = write!(
        out,
        "<h1>{} <small>{}</small> <span class=\"badge\">{}</span></h1>\
         <dl class=\"facts\"><dt>Agent</dt><dd>{}</dd><dt>Schedule</dt><dd>{}<code>{}</code></dd>\
         <dt>Timezone</dt><dd>{} · <a href=\"/ui/timeline?namespace={}&amp;q={}&amp;tz={}\">on the \
         timeline</a></dd><dt>Ready</dt><dd>{}</dd></dl>",
        Esc(&t.name),
        Esc(&t.namespace),
        t.state.as_str(),
        Esc(t.agent.as_deref().unwrap_or("—")),
        words::describe(&t.spec["schedule"])
            .map(|w| format!("{} · ", Esc(&w)))
            .unwrap_or_default(),
        Esc(&t.schedule),
        Esc(tz),
        html::url(&t.namespace),
        html::url(&t.name),
        html::url(tz),
        match t.ready {
            Some(true) => "<span class=\"badge ok\">Ready</span>".to_string(),
            Some(false) => format!(
                "<span class=\"badge bad\">Not ready</span> {}",
                Esc(t.message.as_deref().unwrap_or(""))
            ),
            None => "<span class=\"badge muted\">pending</span>".to_string(),
        }
    );
}

/// `GET /ui/tasks/{namespace}/{name}`.
pub async fn page(
    viewer: Viewer,
    State(s): State<DashState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let ops = &s.app.ops;
    let input = GetTaskInput {
        name: name.clone(),
        namespace: Some(namespace.clone()),
        next: Some(NEXT),
    };
    let t = match ops.get_task(&viewer.call, input).await {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let now = ops.clock.now();
    let mut out = String::new();
    header(&mut out, &t);
    actions(&mut out, &viewer, &t);
    out.push_str("<h2>Conditions</h2>");
    conditions(&mut out, &t.status);
    occurrences(&mut out, &t, now, viewer.tz);
    out.push_str("<h2>Runs</h2>");
    match lacks(&viewer, api_scope::RUNS_READ, "runs are") {
        Some(note) => out.push_str(&note),
        None => {
            let input = ListRunsInput {
                task: Some(name.clone()),
                namespace: Some(namespace.clone()),
                limit: Some(HISTORY),
                ..Default::default()
            };
            match ops.list_runs(&viewer.call, input).await {
                Ok(runs) => {
                    out.push_str(&sparkline(&runs.items));
                    let rows = run_rows(&runs.items, now, viewer.tz, false);
                    out.push_str(&runs_table(&rows, &format!("{namespace}/{name}"), now));
                }
                Err(e) => return error_page(&e),
            }
        }
    }
    let _ = write!(
        out,
        "<h2>Manifest</h2><pre class=\"yaml\">{}</pre>",
        Esc(&manifest_yaml(&t))
    );
    render(&viewer, &t.name, Nav::None, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: &str, minute: u32) -> RunInfo {
        use chrono::TimeZone;
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, minute, 0).unwrap();
        RunInfo {
            id: format!("r{minute}"),
            namespace: "ns".into(),
            task: "t".into(),
            trigger: "schedule".into(),
            attempt: 1,
            status: status.into(),
            scheduled_for: t,
            started_at: t,
            finished_at: t,
            error: None,
            output: None,
        }
    }

    #[test]
    fn the_sparkline_draws_one_bar_per_run_and_states_the_rate() {
        // Newest first, as list_runs returns them.
        let runs = vec![
            run("failed", 3),
            run("succeeded", 2),
            run("succeeded", 1),
            run("failed", 0),
        ];
        let svg = sparkline(&runs);
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(
            svg.contains("2 of the last 4 runs succeeded (50%)"),
            "{svg}"
        );
        // Oldest first, left to right: the first bar is the oldest run (failed).
        let first = svg.find("<rect").unwrap();
        assert!(
            svg[first..]
                .starts_with("<rect x=\"0\" y=\"20\" width=\"3\" height=\"10\" class=\"bad\"")
        );
    }
}
