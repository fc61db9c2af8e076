//! The timeline: 24 hours back and 24 hours ahead on one axis of real time. Runs are bars
//! coloured by outcome (each links to its run), upcoming occurrences are marks computed by
//! the scheduler's own code, and the axis is labelled in local time of the chosen zone: a day
//! of 23 or 25 hours is drawn 23 or 25 hours wide and says so, and the instant the offset
//! changes is marked.

use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{DateTime, NaiveDate, NaiveTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use ordinaut_api::agent::api_scope;
use serde::Deserialize;

use super::html::{self, Esc, Nav};
use super::overview::{Filter, all_tasks, select};
use super::pages::{error_page, render};
use super::session::Viewer;
use super::{DashState, occurrences};
use crate::ops::types::{ListRunsInput, RunInfo, TaskView};
use crate::ops::{Call, MAX_LIMIT, Ops};
use crate::problem::OpError;

/// Task rows drawn at most.
pub const MAX_ROWS: usize = 40;
/// Marks per row at most.
const MAX_MARKS: usize = 400;
/// Runs read at most.
const MAX_RUNS: usize = 5000;

const LABEL: f64 = 230.0;
const CHART: f64 = 960.0;
const AXIS: f64 = 48.0;
const ROW: f64 = 24.0;

/// The timeline's query: the overview's filters, the zone and the centre.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineQuery {
    #[serde(flatten)]
    pub filter: Filter,
    /// The axis's zone (default: the viewer's).
    #[serde(default)]
    pub tz: String,
    /// The centre: an RFC 3339 instant or a date (noon in the zone); default now.
    #[serde(default)]
    pub at: String,
}

/// One Task's line.
pub struct Line<'a> {
    pub task: &'a TaskView,
    pub runs: Vec<&'a RunInfo>,
    pub marks: Vec<DateTime<Utc>>,
}

/// The axis: `[from, to]` in `tz`.
pub struct Axis {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub tz: Tz,
}

impl Axis {
    fn x(&self, t: DateTime<Utc>) -> f64 {
        let span = (self.to - self.from).num_milliseconds().max(1) as f64;
        LABEL + (t - self.from).num_milliseconds() as f64 / span * CHART
    }

    /// Local midnight of `date` (the first instant of the day where midnight is skipped).
    fn midnight(&self, date: NaiveDate) -> DateTime<Utc> {
        let mut t = date.and_time(NaiveTime::MIN);
        for _ in 0..4 {
            if let Some(l) = self.tz.from_local_datetime(&t).earliest() {
                return l.to_utc();
            }
            t += TimeDelta::minutes(30);
        }
        Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
    }
}

fn parse_at(at: &str, tz: Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    if let Ok(t) = DateTime::parse_from_rfc3339(at) {
        return t.to_utc();
    }
    if let Ok(d) = NaiveDate::parse_from_str(at, "%Y-%m-%d")
        && let Some(noon) = d.and_hms_opt(12, 0, 0)
        && let Some(t) = tz.from_local_datetime(&noon).earliest()
    {
        return t.to_utc();
    }
    now
}

/// Day bands (with their length in hours) and hour ticks in local time.
fn axis_svg(out: &mut String, a: &Axis, height: f64) {
    let mut day = a.from.with_timezone(&a.tz).date_naive();
    let mut band = 0;
    while a.midnight(day) < a.to {
        let (start, end) = (a.midnight(day), a.midnight(day + TimeDelta::days(1)));
        let hours = (end - start).num_minutes() as f64 / 60.0;
        let (x0, x1) = (a.x(start.max(a.from)), a.x(end.min(a.to)));
        let length = if (hours - 24.0).abs() > 0.01 {
            format!(" · {hours} h day")
        } else {
            String::new()
        };
        let _ = write!(
            out,
            "<rect x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height:.0}\" class=\"day{}\"/>\
             <text x=\"{:.1}\" y=\"14\" class=\"daylabel\">{}{}</text>",
            x1 - x0,
            band % 2,
            x0 + 4.0,
            day.format("%a %d %b"),
            Esc(&length),
        );
        band += 1;
        day += TimeDelta::days(1);
    }
    ticks(out, a, height);
}

fn ticks(out: &mut String, a: &Axis, height: f64) {
    let step = TimeDelta::minutes(15);
    let mut t = DateTime::from_timestamp(a.from.timestamp() / 900 * 900, 0).unwrap_or(a.from);
    let mut offset = a.tz.offset_from_utc_datetime(&t.naive_utc());
    while t <= a.to {
        let local = t.with_timezone(&a.tz);
        let now_offset = a.tz.offset_from_utc_datetime(&t.naive_utc());
        let x = a.x(t);
        if now_offset != offset && t >= a.from {
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"18\" y2=\"{height:.0}\" class=\"dst\"/>\
                 <text x=\"{:.1}\" y=\"{:.0}\" class=\"dstlabel\">clocks change: {} → {}</text>",
                x + 3.0,
                height - 4.0,
                offset.fix(),
                now_offset.fix()
            );
            offset = now_offset;
        }
        if local.minute() == 0 && t >= a.from {
            let _ = write!(
                out,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{}\" y2=\"{height:.0}\" class=\"hour\"/>",
                if local.hour().is_multiple_of(6) {
                    20
                } else {
                    34
                }
            );
            if local.hour().is_multiple_of(3) {
                let _ = write!(
                    out,
                    "<text x=\"{:.1}\" y=\"{}\" class=\"hourlabel\">{:02}</text>",
                    x + 2.0,
                    AXIS - 4.0,
                    local.hour()
                );
            }
        }
        t += step;
    }
}

fn line_svg(out: &mut String, a: &Axis, i: usize, line: &Line<'_>) {
    let y = AXIS + i as f64 * ROW;
    let t = line.task;
    let _ = write!(
        out,
        "<rect x=\"0\" y=\"{y:.0}\" width=\"{}\" height=\"{ROW}\" class=\"row{}\"/>\
         <a href=\"/ui/tasks/{}/{}\"><text x=\"4\" y=\"{:.0}\" class=\"rowlabel\">{}</text></a>",
        LABEL + CHART,
        i % 2,
        html::url(&t.namespace),
        html::url(&t.name),
        y + 16.0,
        Esc(&format!("{}/{}", t.namespace, t.name)),
    );
    for r in &line.runs {
        let x0 = a.x(r.started_at.max(a.from));
        let x1 = a.x(r.finished_at.min(a.to)).max(x0 + 2.5);
        let _ = write!(
            out,
            "<a href=\"/ui/runs/{}\"><rect x=\"{x0:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"14\" \
             class=\"run {}\"><title>{} {} · {}</title></rect></a>",
            html::url(&r.id),
            y + 5.0,
            x1 - x0,
            html::status_class(&r.status),
            Esc(&r.status),
            Esc(&r.trigger),
            Esc(&html::local(r.started_at, a.tz)),
        );
    }
    for m in &line.marks {
        let x = a.x(*m);
        let _ = write!(
            out,
            "<path d=\"M{x:.1} {:.0} l4 6 l-4 6 l-4 -6 z\" class=\"next\"><title>next: {}</title></path>",
            y + 6.0,
            Esc(&html::local(*m, a.tz)),
        );
    }
}

/// The timeline's SVG.
pub fn svg(a: &Axis, lines: &[Line<'_>], now: DateTime<Utc>) -> String {
    let height = AXIS + lines.len().max(1) as f64 * ROW;
    let mut out = format!(
        "<svg class=\"timeline\" viewBox=\"0 0 {} {height:.0}\" role=\"img\" \
         aria-label=\"Runs and upcoming occurrences from {} to {} ({})\">",
        LABEL + CHART,
        Esc(&html::local(a.from, a.tz)),
        Esc(&html::local(a.to, a.tz)),
        Esc(a.tz.name()),
    );
    axis_svg(&mut out, a, height);
    for (i, line) in lines.iter().enumerate() {
        line_svg(&mut out, a, i, line);
    }
    if now > a.from && now < a.to {
        let x = a.x(now);
        let _ = write!(
            out,
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"18\" y2=\"{height:.0}\" class=\"now\"/>\
             <text x=\"{:.1}\" y=\"30\" class=\"nowlabel\">now</text>",
            x + 3.0
        );
    }
    out.push_str("</svg>");
    out
}

/// Runs of the window, newest first (at most [`MAX_RUNS`]).
async fn runs_since(ops: &Ops, call: &Call, from: DateTime<Utc>) -> Result<Vec<RunInfo>, OpError> {
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let input = ListRunsInput {
            since: Some(from),
            limit: Some(MAX_LIMIT),
            cursor,
            ..Default::default()
        };
        let page = ops.list_runs(call, input).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) if items.len() < MAX_RUNS => cursor = Some(c),
            _ => return Ok(items),
        }
    }
}

fn controls(q: &TimelineQuery, tz: Tz, zones: &[&str], centre: DateTime<Utc>) -> String {
    let f = &q.filter;
    let keep = format!(
        "namespace={}&agent={}&status={}&q={}&tz={}",
        html::url(&f.namespace),
        html::url(&f.agent),
        html::url(&f.status),
        html::url(&f.q),
        html::url(&q.tz)
    );
    let day = |d: i64| (centre + TimeDelta::days(d)).to_rfc3339();
    let mut out = format!(
        "<nav class=\"pager\"><a href=\"/ui/timeline?{keep}&at={}\" data-key=\"h\">← 24 h earlier</a>\
         <a href=\"/ui/timeline?{keep}\">now</a>\
         <a href=\"/ui/timeline?{keep}&at={}\" data-key=\"l\">24 h later →</a></nav>\
         <form class=\"filters\" method=\"get\" action=\"/ui/timeline\">\
         <input type=\"hidden\" name=\"namespace\" value=\"{}\"><input type=\"hidden\" name=\"agent\" value=\"{}\">\
         <label>Search <input type=\"search\" name=\"q\" value=\"{}\" data-search></label>\
         <label>Centre <input type=\"date\" name=\"at\" value=\"{}\"></label><label>Timezone <select name=\"tz\">\
         <option value=\"\">yours</option>",
        html::url(&day(-1)),
        html::url(&day(1)),
        Esc(&f.namespace),
        Esc(&f.agent),
        Esc(&f.q),
        centre.with_timezone(&tz).format("%Y-%m-%d"),
    );
    for z in zones {
        let sel = if *z == q.tz { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", Esc(z));
    }
    out.push_str("</select></label><button type=\"submit\">Show</button></form>");
    out
}

/// `GET /ui/timeline`.
pub async fn page(
    viewer: Viewer,
    State(s): State<DashState>,
    Query(q): Query<TimelineQuery>,
) -> Response {
    let ops = &s.app.ops;
    let (tasks, _) = match all_tasks(ops, &viewer.call).await {
        Ok(t) => t,
        Err(e) => return error_page(&e),
    };
    let shown: Vec<&TaskView> = select(&tasks, &q.filter)
        .into_iter()
        .take(MAX_ROWS)
        .collect();
    let tz: Tz = q.tz.parse().unwrap_or(viewer.tz);
    let now = ops.clock.now();
    let centre = parse_at(&q.at, tz, now);
    let axis = Axis {
        from: centre - TimeDelta::hours(24),
        to: centre + TimeDelta::hours(24),
        tz,
    };
    let runs = if viewer.call.who.has(api_scope::RUNS_READ) && axis.from < now {
        match runs_since(ops, &viewer.call, axis.from).await {
            Ok(r) => r,
            Err(e) => return error_page(&e),
        }
    } else {
        Vec::new()
    };
    let mut lines = Vec::with_capacity(shown.len());
    for t in shown.iter().copied() {
        let marks = occurrences::between(ops, t, axis.from.max(now), axis.to, MAX_MARKS).await;
        let runs = runs
            .iter()
            .filter(|r| r.namespace == t.namespace && r.task == t.name && r.started_at <= axis.to)
            .collect();
        lines.push(Line {
            task: t,
            runs,
            marks,
        });
    }
    let mut zones: Vec<&str> = vec!["UTC", tz.name()];
    zones.extend(
        shown
            .iter()
            .filter_map(|t| t.spec["schedule"]["timezone"].as_str()),
    );
    zones.sort_unstable();
    zones.dedup();
    let mut out = format!(
        "<h1>Timeline</h1><p class=\"summary\">{} to {} in <strong>{}</strong>; bars are runs \
         (green succeeded, red failed), ◆ are upcoming occurrences.</p>",
        Esc(&html::local(axis.from, tz)),
        Esc(&html::local(axis.to, tz)),
        Esc(tz.name())
    );
    out.push_str(&controls(&q, tz, &zones, centre));
    let _ = write!(
        out,
        "<div class=\"scroll\">{}</div>",
        svg(&axis, &lines, now)
    );
    if tasks.len() > shown.len() {
        let _ = write!(
            out,
            "<p class=\"note\">{} of {} Tasks drawn (failures first); filter to see others.</p>",
            shown.len(),
            tasks.len()
        );
    }
    render(&viewer, "Timeline", Nav::Timeline, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spring_day_is_23_hours_wide_and_an_autumn_day_25() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let spring = Axis {
            from: Utc.with_ymd_and_hms(2027, 3, 27, 23, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2027, 3, 29, 0, 0, 0).unwrap(),
            tz,
        };
        let s = svg(&spring, &[], spring.from);
        assert!(s.contains("Sun 28 Mar · 23 h day"), "{s}");
        assert!(s.contains("clocks change: +01:00 → +02:00"), "{s}");
        // The 23-hour day spans 23/25 of the 25-hour window.
        let start = spring.x(spring.midnight(NaiveDate::from_ymd_opt(2027, 3, 28).unwrap()));
        let end = spring.x(spring.midnight(NaiveDate::from_ymd_opt(2027, 3, 29).unwrap()));
        assert!(
            ((end - start) - CHART * 23.0 / 25.0).abs() < 0.01,
            "{start} {end}"
        );
        let autumn = Axis {
            from: Utc.with_ymd_and_hms(2027, 10, 30, 22, 0, 0).unwrap(),
            to: Utc.with_ymd_and_hms(2027, 11, 1, 0, 0, 0).unwrap(),
            tz,
        };
        assert!(svg(&autumn, &[], autumn.from).contains("Sun 31 Oct · 25 h day"));
    }

    #[test]
    fn the_centre_is_an_instant_a_local_date_or_now() {
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 6, 0, 0, 0).unwrap();
        assert_eq!(
            parse_at("2027-03-28", tz, now),
            Utc.with_ymd_and_hms(2027, 3, 28, 10, 0, 0).unwrap()
        );
        assert_eq!(parse_at("", tz, now), now);
    }
}
