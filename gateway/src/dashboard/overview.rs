//! The overview: every Task the viewer may see, failures and Tasks that are not Ready first,
//! filtered by namespace, agent and status and searched by text; the latest runs below,
//! updated live.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use ordinaut_api::agent::api_scope;
use ordinaut_store::LatestRun;
use serde::Deserialize;

use super::html::{self, Esc, Nav};
use super::pages::{error_page, lacks, render};
use super::run_page::{run_rows, runs_table};
use super::session::Viewer;
use super::{DashState, words};
use crate::ops::types::{ListRunsInput, ListTasksInput, TaskView};
use crate::ops::{Call, MAX_LIMIT, Ops};
use crate::problem::OpError;

/// Most Tasks one page lists.
pub const MAX_TASKS: usize = 5000;

/// The overview's filters (the query string).
#[derive(Debug, Default, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub agent: String,
    /// `failing`, `not-ready`, `active`, `paused`, `snoozed`, `pending`.
    #[serde(default)]
    pub status: String,
    /// Text searched in the name, namespace, agent and schedule.
    #[serde(default)]
    pub q: String,
}

/// Every Task the caller may see (at most [`MAX_TASKS`]; `true` when there were more), with
/// each one's latest run in `status.lastRunStatus`/`lastRunId` when the caller may read runs.
pub async fn all_tasks(ops: &Ops, call: &Call) -> Result<(Vec<TaskView>, bool), OpError> {
    let (mut tasks, more) = list_all(ops, call).await?;
    if call.who.has(api_scope::RUNS_READ) {
        let keys: Vec<(String, String)> = tasks
            .iter()
            .map(|t| (t.namespace.clone(), t.name.clone()))
            .collect();
        let latest = ops.store.latest_runs(&keys).await?;
        with_latest_runs(&mut tasks, &latest);
    }
    Ok((tasks, more))
}

/// Writes each Task's latest run into its status as the operator spells it (`Failed`), unless
/// the status says a later occurrence was `Missed`.
fn with_latest_runs(tasks: &mut [TaskView], latest: &[LatestRun]) {
    let by: HashMap<(&str, &str), &LatestRun> = latest
        .iter()
        .map(|r| ((r.namespace.as_str(), r.name.as_str()), r))
        .collect();
    for t in tasks.iter_mut() {
        let Some(r) = by.get(&(t.namespace.as_str(), t.name.as_str())) else {
            continue;
        };
        if !t.status.is_object() {
            t.status = serde_json::json!({});
        }
        if t.status["lastRunStatus"] != "Missed" {
            t.status["lastRunStatus"] = html::capitalized(&r.status).into();
        }
        t.status["lastRunId"] = r.id.to_string().into();
    }
}

async fn list_all(ops: &Ops, call: &Call) -> Result<(Vec<TaskView>, bool), OpError> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let input = ListTasksInput {
            limit: Some(MAX_LIMIT),
            cursor,
            ..Default::default()
        };
        let page = ops.list_tasks(call, input).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) if items.len() < MAX_TASKS => cursor = Some(c),
            Some(_) => return Ok((items, true)),
            None => return Ok((items, false)),
        }
    }
}

fn last_status(t: &TaskView) -> Option<&str> {
    t.status["lastRunStatus"].as_str()
}

/// 0: the last run failed or was missed; 1: not Ready; 2: the rest.
fn rank(t: &TaskView) -> u8 {
    match (last_status(t), t.ready) {
        (Some("Failed" | "Missed"), _) => 0,
        (_, Some(false)) => 1,
        _ => 2,
    }
}

fn matches(t: &TaskView, f: &Filter) -> bool {
    let eq = |want: &str, have: Option<&str>| want.is_empty() || have == Some(want);
    let status_ok = match f.status.as_str() {
        "" => true,
        "failing" => rank(t) == 0,
        "not-ready" => t.ready == Some(false),
        s => t.state.as_str() == s,
    };
    let q = f.q.trim().to_lowercase();
    let text_ok = q.is_empty()
        || [
            t.name.as_str(),
            t.namespace.as_str(),
            t.agent.as_deref().unwrap_or(""),
            t.schedule.as_str(),
        ]
        .iter()
        .any(|s| s.to_lowercase().contains(&q));
    eq(&f.namespace, Some(t.namespace.as_str()))
        && eq(&f.agent, t.agent.as_deref())
        && status_ok
        && text_ok
}

/// The Tasks to show, in order: failures, then not Ready, then by namespace and name.
pub fn select<'a>(tasks: &'a [TaskView], f: &Filter) -> Vec<&'a TaskView> {
    let mut shown: Vec<&TaskView> = tasks.iter().filter(|t| matches(t, f)).collect();
    shown.sort_by(|a, b| (rank(a), &a.namespace, &a.name).cmp(&(rank(b), &b.namespace, &b.name)));
    shown
}

fn options(out: &mut String, name: &str, label: &str, values: &BTreeSet<&str>, current: &str) {
    let _ = write!(
        out,
        "<label>{label} <select name=\"{name}\"><option value=\"\">all</option>"
    );
    for v in values {
        let sel = if *v == current { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", Esc(v));
    }
    out.push_str("</select></label>");
}

fn filter_form(out: &mut String, tasks: &[TaskView], f: &Filter) {
    let namespaces: BTreeSet<&str> = tasks.iter().map(|t| t.namespace.as_str()).collect();
    let agents: BTreeSet<&str> = tasks.iter().filter_map(|t| t.agent.as_deref()).collect();
    let statuses: BTreeSet<&str> = [
        "failing",
        "not-ready",
        "active",
        "paused",
        "snoozed",
        "pending",
    ]
    .into();
    let _ = write!(
        out,
        "<form class=\"filters\" method=\"get\" action=\"/ui\" role=\"search\">\
         <label>Search <input type=\"search\" name=\"q\" value=\"{}\" data-search \
         placeholder=\"name, agent, schedule\"></label>",
        Esc(&f.q)
    );
    options(out, "namespace", "Namespace", &namespaces, &f.namespace);
    options(out, "agent", "Agent", &agents, &f.agent);
    options(out, "status", "Status", &statuses, &f.status);
    out.push_str("<button type=\"submit\">Filter</button></form>");
}

/// One Task's row.
fn task_row(out: &mut String, t: &TaskView, now: DateTime<Utc>, tz: Tz) {
    let key = format!("{}/{}", t.namespace, t.name);
    let href = format!(
        "/ui/tasks/{}/{}",
        html::url(&t.namespace),
        html::url(&t.name)
    );
    let class = ["bad", "warn", ""][rank(t) as usize];
    let _ = write!(
        out,
        "<tr class=\"{class}\" data-row data-task=\"{k}\"><th scope=\"row\" data-label=\"Task\">\
         <a href=\"{href}\">{name}</a> <small>{ns}</small></th>\
         <td data-label=\"Agent\">{agent}</td><td data-label=\"Schedule\">",
        k = Esc(&key),
        name = Esc(&t.name),
        ns = Esc(&t.namespace),
        agent = Esc(t.agent.as_deref().unwrap_or("—")),
    );
    if let Some(w) = words::describe(&t.spec["schedule"]) {
        let _ = write!(out, "{}<br>", Esc(&w));
    }
    let tz_name = t.spec["schedule"]["timezone"].as_str().unwrap_or("UTC");
    let _ = write!(
        out,
        "<code>{}</code></td><td data-label=\"Timezone\">{}</td><td data-label=\"Next run\">",
        Esc(&t.schedule),
        Esc(tz_name)
    );
    match t.next_runs.first() {
        Some(next) => {
            let _ = write!(
                out,
                "{}<br><small>{}</small>",
                html::time_tag(*next, tz),
                Esc(&html::relative(*next, now))
            );
        }
        None => out.push_str(state_note(t)),
    }
    let _ = write!(
        out,
        "</td><td data-label=\"Last run\" data-outcome-for=\"{}\">",
        Esc(&key)
    );
    match (last_status(t), t.status["lastRunId"].as_str()) {
        (Some(s), Some(id)) => {
            let _ = write!(
                out,
                "<a href=\"/ui/runs/{}\">{}</a>",
                html::url(id),
                html::badge(s)
            );
        }
        (Some(s), None) => out.push_str(&html::badge(s)),
        _ => out.push_str("<span class=\"muted\">no run yet</span>"),
    }
    out.push_str("</td><td data-label=\"Ready\">");
    match t.ready {
        Some(true) => out.push_str("<span class=\"badge ok\">Ready</span>"),
        Some(false) => {
            let _ = write!(
                out,
                "<span class=\"badge bad\">Not ready</span> <small>{}</small>",
                Esc(t.message.as_deref().unwrap_or(""))
            );
        }
        None => out.push_str("<span class=\"badge muted\">pending</span>"),
    }
    out.push_str("</td></tr>");
}

fn state_note(t: &TaskView) -> &'static str {
    match t.state.as_str() {
        "paused" => "<span class=\"muted\">paused</span>",
        "pending" => "<span class=\"muted\">pending</span>",
        _ => "<span class=\"muted\">none</span>",
    }
}

/// The overview's body (the page without its frame).
pub fn body(tasks: &[TaskView], f: &Filter, now: DateTime<Utc>, tz: Tz) -> String {
    let shown = select(tasks, f);
    let mut out = String::with_capacity(600 * shown.len() + 4096);
    let failing = tasks.iter().filter(|t| rank(t) == 0).count();
    let not_ready = tasks.iter().filter(|t| t.ready == Some(false)).count();
    let _ = write!(
        out,
        "<h1>Tasks</h1><p class=\"summary\"><strong>{}</strong> Tasks · \
         <a href=\"/ui?status=failing\" class=\"bad\">{failing} failing</a> · \
         <a href=\"/ui?status=not-ready\">{not_ready} not ready</a> · times in {}</p>",
        tasks.len(),
        Esc(tz.name())
    );
    filter_form(&mut out, tasks, f);
    if shown.is_empty() {
        out.push_str("<p class=\"muted\">No Task matches.</p>");
        return out;
    }
    out.push_str(
        "<div class=\"scroll\"><table class=\"tasks\" data-nav><thead><tr><th scope=\"col\">Task</th>\
         <th scope=\"col\">Agent</th><th scope=\"col\">Schedule</th><th scope=\"col\">Timezone</th>\
         <th scope=\"col\">Next run</th><th scope=\"col\">Last run</th><th scope=\"col\">Ready</th>\
         </tr></thead><tbody>",
    );
    for t in shown {
        task_row(&mut out, t, now, tz);
    }
    out.push_str("</tbody></table></div>");
    out
}

/// `GET /ui`.
pub async fn page(viewer: Viewer, State(s): State<DashState>, Query(f): Query<Filter>) -> Response {
    let ops = &s.app.ops;
    let (tasks, truncated) = match all_tasks(ops, &viewer.call).await {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let now = ops.clock.now();
    let mut out = body(&tasks, &f, now, viewer.tz);
    if truncated {
        let _ = write!(
            out,
            "<p class=\"note\">Showing the first {MAX_TASKS} Tasks.</p>"
        );
    }
    out.push_str("<h2>Latest runs</h2>");
    match lacks(&viewer, api_scope::RUNS_READ, "runs are") {
        Some(note) => out.push_str(&note),
        None => {
            let input = ListRunsInput {
                limit: Some(20),
                ..Default::default()
            };
            match ops.list_runs(&viewer.call, input).await {
                Ok(runs) => {
                    let rows = run_rows(&runs.items, now, viewer.tz, true);
                    out.push_str(&runs_table(&rows, "", now));
                }
                Err(e) => return error_page(&e),
            }
        }
    }
    render(&viewer, "Tasks", Nav::Overview, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::types::TaskState;
    use serde_json::json;

    fn task(name: &str, last: Option<&str>, ready: Option<bool>) -> TaskView {
        TaskView {
            namespace: "team".into(),
            name: name.into(),
            agent: Some("bot".into()),
            state: TaskState::Active,
            ready,
            message: ready
                .is_some_and(|r| !r)
                .then(|| "spec.schedule.cron: bad".into()),
            schedule: "cron 0 8 * * *".into(),
            next_runs: Vec::new(),
            snooze_until: None,
            spec: json!({"schedule": {"cron": "0 8 * * *"}}),
            status: json!({"lastRunStatus": last}),
        }
    }

    #[test]
    fn failures_then_tasks_not_ready_come_first() {
        let tasks = vec![
            task("a-fine", Some("Succeeded"), Some(true)),
            task("b-broken", None, Some(false)),
            task("c-failed", Some("Failed"), Some(true)),
            task("d-new", None, None),
        ];
        let names: Vec<&str> = select(&tasks, &Filter::default())
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["c-failed", "b-broken", "a-fine", "d-new"]);
    }

    #[test]
    fn filters_and_search_narrow_the_list() {
        let tasks = vec![
            task("daily-report", Some("Succeeded"), Some(true)),
            task("sync", Some("Failed"), Some(true)),
        ];
        let f = |status: &str, q: &str| Filter {
            status: status.into(),
            q: q.into(),
            ..Default::default()
        };
        let names = |f: Filter| {
            select(&tasks, &f)
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(f("failing", "")), ["sync"]);
        assert_eq!(names(f("", "REPORT")), ["daily-report"]);
        assert!(names(f("paused", "")).is_empty());
        let page = body(&tasks, &Filter::default(), chrono::Utc::now(), Tz::UTC);
        assert!(page.contains("every day at 08:00"), "{page}");
        assert!(page.contains("1 failing"), "{page}");
    }
}
