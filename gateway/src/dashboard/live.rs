//! The live feed: Server-Sent Events with the runs recorded since the page was drawn, as
//! rendered rows. Each open feed polls the same `list_runs` operation as `GET /v1/runs`
//! once a second with the viewer's identity, checked again on every poll (a signed-out
//! session or a revoked token ends the feed). Feeds are bounded: at most
//! [`super::MAX_LIVE_FEEDS`] at once and [`LIFETIME`] each, after which the browser's
//! `EventSource` reconnects by itself.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use ordinaut_api::agent::api_scope;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OwnedSemaphorePermit;

use super::DashState;
use super::html;
use super::pages::error_page;
use super::run_page::run_row;
use super::session::Viewer;
use crate::ops::Call;
use crate::ops::types::{ListRunsInput, RunInfo};
use crate::problem::OpError;

/// How long one feed stays open.
pub const LIFETIME: Duration = Duration::from_secs(300);
/// How often a feed looks for new runs.
pub const POLL: Duration = Duration::from_secs(1);
/// How far back each poll looks (runs are recorded when they finish).
const LOOKBACK: TimeDelta = TimeDelta::minutes(15);
/// Run ids remembered per feed, to send each run once.
const SEEN: usize = 2000;

/// `?task=ns/name` (empty: every run the viewer may see) and `from` (the page's time).
#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    #[serde(default)]
    task: String,
    from: Option<DateTime<Utc>>,
}

struct Feed {
    state: DashState,
    cookie: String,
    call: Call,
    tz: Tz,
    task: Option<(String, String)>,
    from: DateTime<Utc>,
    seen: HashSet<String>,
    order: VecDeque<String>,
    until: tokio::time::Instant,
    _permit: OwnedSemaphorePermit,
}

/// `GET /ui/live`.
pub async fn feed(
    viewer: Viewer,
    State(s): State<DashState>,
    Query(q): Query<LiveQuery>,
) -> Response {
    if let Err(e) = viewer.call.who.require(api_scope::RUNS_READ) {
        return error_page(&e);
    }
    let Ok(permit) = s.live.clone().try_acquire_owned() else {
        return error_page(&OpError::Unavailable(
            "too many live feeds are open; the page retries by itself".into(),
        ));
    };
    let now = s.app.ops.clock.now();
    let feed = Feed {
        state: s.clone(),
        cookie: viewer.cookie,
        call: viewer.call,
        tz: viewer.tz,
        task: q
            .task
            .split_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string())),
        from: q.from.unwrap_or(now).max(now - LOOKBACK),
        seen: HashSet::new(),
        order: VecDeque::new(),
        until: tokio::time::Instant::now() + LIFETIME,
        _permit: permit,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok::<_, Infallible>(event), feed))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

impl Feed {
    /// The next batch of new runs; `None` ends the feed.
    async fn next(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                () = self.state.shutdown.cancelled() => return None,
                () = tokio::time::sleep_until(self.until) => return None,
                () = tokio::time::sleep(POLL) => {}
            }
            if !self.still_signed_in().await {
                return None;
            }
            let runs = self.poll().await.ok()?;
            if !runs.is_empty() {
                return Some(self.event(&runs));
            }
        }
    }

    async fn still_signed_in(&self) -> bool {
        let Some(token) = self.state.sessions.token(&self.cookie) else {
            return false;
        };
        let who = self
            .state
            .app
            .tokens
            .authenticate(Some(&format!("Bearer {token}")))
            .await;
        who.is_ok_and(|w| w == self.call.who)
    }

    /// Runs finished since `from` not sent yet, oldest first.
    async fn poll(&mut self) -> Result<Vec<RunInfo>, OpError> {
        let ops = &self.state.app.ops;
        let input = ListRunsInput {
            namespace: self.task.as_ref().map(|t| t.0.clone()),
            task: self.task.as_ref().map(|t| t.1.clone()),
            since: Some(ops.clock.now() - LOOKBACK),
            limit: Some(100),
            ..Default::default()
        };
        let page = ops.list_runs(&self.call, input).await?;
        let mut new: Vec<RunInfo> = page
            .items
            .into_iter()
            .filter(|r| r.finished_at >= self.from && !self.seen.contains(&r.id))
            .collect();
        new.reverse();
        for r in &new {
            self.seen.insert(r.id.clone());
            self.order.push_back(r.id.clone());
            if self.order.len() > SEEN
                && let Some(old) = self.order.pop_front()
            {
                self.seen.remove(&old);
            }
        }
        Ok(new)
    }

    fn event(&self, runs: &[RunInfo]) -> Event {
        let now = self.state.app.ops.clock.now();
        let items: Vec<_> = runs
            .iter()
            .map(|r| {
                let (mut with_task, mut without) = (String::new(), String::new());
                run_row(&mut with_task, r, now, self.tz, true);
                run_row(&mut without, r, now, self.tz, false);
                let outcome = html::capitalized(&r.status);
                json!({
                    "id": r.id,
                    "task": format!("{}/{}", r.namespace, r.task),
                    "status": r.status,
                    "outcome": format!(
                        "<a href=\"/ui/runs/{}\">{}</a>",
                        html::url(&r.id),
                        html::badge(&outcome)
                    ),
                    "row": with_task,
                    "rowInTask": without,
                })
            })
            .collect();
        Event::default()
            .event("runs")
            .data(serde_json::Value::from(items).to_string())
    }
}
