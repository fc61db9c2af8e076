//! Planning (pure): from a valid Task, its compiled schedule, what the store holds for it and
//! the Clock's "now", decide what one reconcile writes: the projection, which queued
//! occurrences to withdraw, which to insert for the horizon (with deterministic jitter and
//! start deadlines), what the catch-up policy does with missed occurrences, and whether a
//! run-now annotation asks for a manual run.
//!
//! # Missed occurrences
//! An occurrence is missed when it did not start within [`MaterializeConfig::missed_after`]
//! of its time. Two ways: the operator was down past the horizon (occurrences after
//! `materialized_until` were never inserted), or the workers were down (occurrences were
//! inserted but their start deadline passed: the lease query no longer hands them out). Both
//! go through the Task's catch-up policy here: `None` drops them, `Latest` queues the most
//! recent one within `window`, `All` the most recent `maxRuns` within `window`, oldest first,
//! as `catchup` occurrences due now; every dropped one is counted and reported as `run.missed`.
//! Occurrences that fall while the Task is suspended or snoozed are skipped, not missed.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use ordinaut_api::{CatchupPolicy, TaskSpec};
use ordinaut_schedule::Schedule;
use ordinaut_schedule::duration::parse_duration;
use ordinaut_store::{
    NewOccurrence, OperatorTaskState, OutboxEvent, PlannedOccurrence, TaskProjection, Trigger,
};
use serde_json::json;
use uuid::Uuid;

/// How far ahead and how the materializer works.
///
/// Each reconcile queues every occurrence in the next [`Self::min_horizon`], and beyond it
/// the next ones up to [`Self::max_occurrences`] in all, within [`Self::horizon`]. A valid
/// Task is reconciled again when its next run is due and at least every ten ticks or half
/// `min_horizon` (`k8s::controllers`), which tops the horizon up; so while the operator is
/// down (or between leaders), every Task still has at least `min_horizon` less that interval
/// of runs queued (10 minutes with the defaults), and a sparse one its next
/// `max_occurrences` within `horizon`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeConfig {
    /// Occurrences are queued at most this far ahead…
    pub horizon: Duration,
    /// …and no more than this many at once, past `min_horizon`…
    pub max_occurrences: usize,
    /// …but every occurrence within this much of now, however many (up to
    /// [`MIN_HORIZON_MAX_OCCURRENCES`]): how long scheduled runs go on without the operator.
    pub min_horizon: Duration,
    /// A scheduled occurrence not started this long after its `run_at` is missed (its start
    /// deadline); the catch-up policy then decides.
    pub missed_after: Duration,
    /// Most missed occurrences examined in one reconcile (an outage of a month on a 1-second
    /// schedule is counted up to this many).
    pub max_missed_scan: usize,
}

impl Default for MaterializeConfig {
    fn default() -> Self {
        Self {
            horizon: Duration::from_secs(24 * 3600),
            max_occurrences: 10,
            min_horizon: Duration::from_secs(15 * 60),
            missed_after: Duration::from_secs(120),
            max_missed_scan: 10_000,
        }
    }
}

/// Most occurrences one reconcile queues for [`MaterializeConfig::min_horizon`] (a 15-minute
/// minimum of an `every: 1s` Task is 900); past it the horizon ends at the last one queued.
pub const MIN_HORIZON_MAX_OCCURRENCES: usize = 10_000;

/// Everything the plan reads.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    pub uid: Uuid,
    pub namespace: &'a str,
    pub name: &'a str,
    pub generation: i64,
    /// The spec as the worker will see it: defaults applied, the referenced pipeline inlined.
    pub spec: &'a TaskSpec,
    /// The compiled schedule; `None` for event-triggered Tasks.
    pub schedule: Option<&'a Schedule>,
    /// What the store holds for this Task (`None`: never projected).
    pub prior: Option<&'a OperatorTaskState>,
    /// The `ordinaut.dev/run-now` annotation's value.
    pub run_now: Option<&'a str>,
    /// The run-now value handled last (the store's, else the status').
    pub handled_run_now: Option<&'a str>,
    pub now: DateTime<Utc>,
    pub config: &'a MaterializeConfig,
}

/// Where the schedule stands after the plan (for the Ready condition's reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScheduleState {
    Active,
    Suspended,
    Snoozed(DateTime<Utc>),
    /// No occurrence left (`at` passed, COUNT/UNTIL reached, `endAt` passed).
    Exhausted,
    /// Runs on events, nothing to materialize.
    EventDriven,
}

/// What one reconcile writes, and what it tells the user.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub projection: TaskProjection,
    pub prior_materialized_until: Option<DateTime<Utc>>,
    pub withdraw_after: Option<DateTime<Utc>>,
    pub drop_stale: Vec<i64>,
    pub occurrences: Vec<PlannedOccurrence>,
    /// Scheduled times the catch-up policy dropped.
    pub missed: Vec<DateTime<Utc>>,
    /// Scheduled times the catch-up policy runs late.
    pub caught_up: Vec<DateTime<Utc>>,
    pub events: Vec<OutboxEvent>,
    /// `Some(value)` when a new run-now value was turned into a manual occurrence.
    pub handled_run_now: Option<String>,
    pub next_run_time: Option<DateTime<Utc>>,
    pub last_schedule_time: Option<DateTime<Utc>>,
    pub state: ScheduleState,
}

/// Why planning failed (the spec passed validation, so these are engine limits).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("spec.schedule: {0}")]
    Schedule(#[from] ordinaut_schedule::ScheduleError),
    #[error("cannot serialize the normalized spec: {0}")]
    Spec(#[from] serde_json::Error),
}

/// The deterministic jitter of an occurrence: a hash of the task uid and the occurrence's
/// time mapped into `[0, jitter)`, so the same occurrence always gets the same offset and a
/// re-materialization does not move it.
pub fn jitter_offset(uid: Uuid, scheduled_for: DateTime<Utc>, jitter: Duration) -> TimeDelta {
    let span = i64::try_from(jitter.as_millis()).unwrap_or(i64::MAX);
    if span <= 0 {
        return TimeDelta::zero();
    }
    // FNV-1a: stable across Rust versions and platforms (std's hashers are not).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in uid
        .as_bytes()
        .iter()
        .chain(scheduled_for.timestamp_micros().to_le_bytes().iter())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let offset = h % span.unsigned_abs();
    TimeDelta::milliseconds(i64::try_from(offset).unwrap_or(0))
}

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Just before `t`, so that `Schedule::between`'s open lower bound includes `t` itself.
fn before(t: DateTime<Utc>) -> DateTime<Utc> {
    t - TimeDelta::microseconds(1)
}

/// What every part of the plan reads, computed once.
struct Ctx<'a> {
    input: &'a PlanInput<'a>,
    spec: &'a TaskSpec,
    /// The spec as projected.
    spec_json: serde_json::Value,
    now: DateTime<Utc>,
    /// The start deadline after `run_at` ([`MaterializeConfig::missed_after`]).
    grace: TimeDelta,
    jitter: Duration,
    /// The catch-up window.
    window: Duration,
    /// The store's state, unless the Task was deleted there.
    live_prior: Option<&'a OperatorTaskState>,
    /// Whether the schedule (or what orders its runs) changed since the last projection.
    changed: bool,
    snoozed: Option<DateTime<Utc>>,
    /// Suspended or snoozed: nothing is queued.
    holding: bool,
    /// Just before `startAt` (so that it is included).
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
}

impl<'a> Ctx<'a> {
    fn new(input: &'a PlanInput<'a>) -> Result<Self, PlanError> {
        let now = input.now.trunc_subsecs(6);
        let spec = input.spec;
        let s = &spec.schedule;
        let spec_json = serde_json::to_value(spec)?;
        let live_prior = input.prior.filter(|p| !p.deleted);
        let changed = live_prior.is_none_or(|p| {
            let old = &p.projection;
            old.generation != input.generation
                || old.spec.get("schedule") != spec_json.get("schedule")
                || old.priority != spec.priority
                || old.suspended != spec.suspend
                || old.snooze_until != spec.snooze_until
        });
        let snoozed = spec.snooze_until.filter(|t| *t > now);
        Ok(Self {
            input,
            spec,
            spec_json,
            now,
            grace: delta(input.config.missed_after),
            jitter: s
                .jitter
                .as_deref()
                .and_then(|j| parse_duration(j).ok())
                .unwrap_or_default(),
            window: parse_duration(&s.catchup.window).unwrap_or(Duration::from_secs(3600)),
            live_prior,
            changed,
            snoozed,
            holding: spec.suspend || snoozed.is_some(),
            start_at: s.start_at.map(before),
            end_at: s.end_at,
        })
    }

    /// The plan before any occurrence: the projection, what to withdraw.
    fn empty_plan(&self) -> Result<Plan, PlanError> {
        let (input, spec, now) = (self.input, self.spec, self.now);
        let s = &spec.schedule;
        // A change withdraws the queued future of the old schedule; entering a suspension or
        // a snooze withdraws everything queued (but manual runs, which a person asked for).
        let withdraw_after = match (self.changed && input.prior.is_some(), self.holding) {
            (false, _) => None,
            (true, false) => Some(now),
            (true, true) => Some(DateTime::UNIX_EPOCH),
        };
        Ok(Plan {
            projection: TaskProjection {
                uid: input.uid,
                namespace: input.namespace.to_string(),
                name: input.name.to_string(),
                generation: input.generation,
                spec: self.spec_json.clone(),
                schedule_kind: schedule_kind(spec).to_string(),
                schedule: schedule_text(spec),
                timezone: s.timezone.clone(),
                next_run_at: None,
                materialized_until: None,
                suspended: spec.suspend,
                snooze_until: spec.snooze_until,
                priority: spec.priority,
                concurrency_policy: concurrency(spec).to_string(),
            },
            prior_materialized_until: input.prior.and_then(|p| p.projection.materialized_until),
            withdraw_after,
            drop_stale: Vec::new(),
            occurrences: Vec::new(),
            missed: Vec::new(),
            caught_up: Vec::new(),
            events: Vec::new(),
            handled_run_now: None,
            next_run_time: None,
            last_schedule_time: input.prior.and_then(|p| p.last_due),
            state: ScheduleState::Active,
        })
    }

    fn in_bounds(&self, t: DateTime<Utc>) -> bool {
        self.start_at.is_none_or(|a| t > a)
            && self.end_at.is_none_or(|e| t <= e)
            && self.spec.snooze_until.is_none_or(|z| t >= z)
    }

    /// Run-now: one manual occurrence per new annotation value, whatever the schedule does.
    fn run_now(&self, plan: &mut Plan) {
        let input = self.input;
        let Some(value) = input.run_now.map(str::trim).filter(|v| !v.is_empty()) else {
            return;
        };
        if input.handled_run_now == Some(value) {
            return;
        }
        // Scheduled for now; just after the previous manual run if that is at the same
        // instant (the time is part of the unique key: an equal one would be no new run).
        let at = match input.prior.and_then(|p| p.last_manual) {
            Some(last) if last >= self.now => last + TimeDelta::microseconds(1),
            _ => self.now,
        };
        plan.occurrences.push(PlannedOccurrence {
            occurrence: NewOccurrence {
                task_uid: input.uid,
                scheduled_for: at,
                run_at: at,
                priority: self.spec.priority,
                trigger: Trigger::Manual,
                payload: json!({ "runNow": value }),
            },
            start_deadline: None,
        });
        plan.handled_run_now = Some(value.to_string());
    }

    /// Missed occurrences: stale queued rows, plus what was never inserted while the
    /// operator was away; the catch-up policy keeps some (due now) and drops the rest.
    fn catch_up(&self, plan: &mut Plan, schedule: &Schedule) -> Result<(), PlanError> {
        let (now, s) = (self.now, &self.spec.schedule);
        let mut candidates: Vec<(DateTime<Utc>, Option<i64>)> = self
            .live_prior
            .map(|p| {
                p.stale
                    .iter()
                    .map(|o| (o.scheduled_for, Some(o.id)))
                    .collect()
            })
            .unwrap_or_default();
        // Nothing was due while the Task was suspended or driven by events: the time up to
        // now is skipped, not missed.
        let held = self
            .live_prior
            .is_some_and(|p| p.projection.suspended || p.projection.schedule_kind == "on");
        if let Some(m) = self
            .live_prior
            .and_then(|p| p.projection.materialized_until)
            && m < now - self.grace
            && !held
        {
            for t in self.never_queued(schedule, m)? {
                candidates.push((t, None));
            }
        }
        candidates.sort();
        candidates.dedup_by_key(|c| c.0);
        plan.drop_stale = candidates.iter().filter_map(|c| c.1).collect();
        let oldest_kept = now - delta(self.window);
        let eligible: Vec<DateTime<Utc>> = candidates
            .iter()
            .map(|c| c.0)
            .filter(|t| *t >= oldest_kept)
            .collect();
        let keep = match s.catchup.policy {
            CatchupPolicy::None => 0,
            CatchupPolicy::Latest => 1,
            CatchupPolicy::All => s.catchup.max_runs.map_or(usize::MAX, |m| m as usize),
        };
        let caught: Vec<DateTime<Utc>> = eligible[eligible.len().saturating_sub(keep)..].to_vec();
        for (t, _) in &candidates {
            if !caught.contains(t) {
                self.missed(plan, *t, *t < oldest_kept);
            }
        }
        for t in &caught {
            plan.occurrences.push(PlannedOccurrence {
                occurrence: NewOccurrence {
                    task_uid: self.input.uid,
                    scheduled_for: *t,
                    run_at: now,
                    priority: self.spec.priority,
                    trigger: Trigger::Catchup,
                    payload: json!({ "lateBy": (now - *t).num_seconds() }),
                },
                start_deadline: None,
            });
        }
        plan.caught_up = caught;
        Ok(())
    }

    /// Occurrences after `m` (where the last reconcile stopped) that are past their start
    /// deadline, within `startAt`/`endAt`: at most `max_missed_scan` from `m` on, and when
    /// that cap cuts the scan short, also those of the catch-up window (the ones the policy
    /// picks from), so a long outage still catches up the most recent.
    fn never_queued(
        &self,
        schedule: &Schedule,
        m: DateTime<Utc>,
    ) -> Result<Vec<DateTime<Utc>>, PlanError> {
        let (deadline, max) = (self.now - self.grace, self.input.config.max_missed_scan);
        let mut out = Vec::new();
        let scan = |from: DateTime<Utc>, out: &mut Vec<DateTime<Utc>>| {
            let mut seen = 0;
            for t in schedule.iter_after(from).take(max) {
                let t = t?.to_utc();
                seen += 1;
                if t > deadline {
                    return Ok::<_, PlanError>(false);
                }
                if self.in_bounds(t) {
                    out.push(t);
                }
            }
            Ok(seen == max)
        };
        if scan(m, &mut out)? {
            let window_start = before(self.now - delta(self.window));
            if window_start > m {
                scan(window_start, &mut out)?;
            }
        }
        Ok(out)
    }

    /// Records `t` as missed, with its `run.missed` event.
    fn missed(&self, plan: &mut Plan, t: DateTime<Utc>, too_old: bool) {
        let input = self.input;
        plan.missed.push(t);
        plan.events.push(OutboxEvent::new(
            "run.missed",
            json!({
                "namespace": input.namespace,
                "task": input.name,
                "taskUid": input.uid,
                "trigger": Trigger::Schedule.as_str(),
                "scheduledFor": t,
                "detectedAt": self.now,
                "policy": format!("{:?}", self.spec.schedule.catchup.policy),
                "reason": if too_old {
                    "older than the catch-up window"
                } else {
                    "dropped by the catch-up policy"
                },
            }),
        ));
    }

    /// The horizon: from where the last reconcile stopped (late occurrences within the grace
    /// still go in), or from now after a change, up to the horizon or the count cap.
    fn horizon(&self, plan: &mut Plan, schedule: &Schedule) -> Result<(), PlanError> {
        let (input, now) = (self.input, self.now);
        let prior_until = self
            .live_prior
            .and_then(|p| p.projection.materialized_until)
            .filter(|_| !self.changed);
        let mut from = prior_until.map_or(now, |m| m.clamp(now - self.grace, now));
        if let Some(a) = self.start_at {
            from = from.max(a);
        }
        if let Some(z) = self.spec.snooze_until {
            from = from.max(before(z));
        }
        let config = input.config;
        let horizon_end = now + delta(config.horizon);
        let to = self.end_at.map_or(horizon_end, |e| e.min(horizon_end));
        let min_end = now + delta(config.min_horizon);
        let (upcoming, cut) = upcoming(schedule, from, to, min_end, config.max_occurrences)?;
        // Cut short by the count: the horizon ends at the last occurrence queued (the next
        // reconcile goes on from there); else nothing more falls before `to`.
        let materialized_until = match upcoming.last() {
            Some(last) if cut => last.to_utc(),
            _ => to,
        };
        plan.projection.materialized_until = Some(materialized_until.max(now));
        // What the last reconcile queued up to its `materialized_until` is queued (or ran):
        // an unchanged Task only sends what lies beyond. (The expansion still starts at
        // `from`, so the cap counts from now.)
        for t in upcoming {
            if prior_until.is_some_and(|m| t <= m) {
                continue;
            }
            let run_at = t + jitter_offset(input.uid, t, self.jitter);
            plan.occurrences.push(PlannedOccurrence {
                occurrence: NewOccurrence {
                    task_uid: input.uid,
                    scheduled_for: t,
                    run_at,
                    priority: self.spec.priority,
                    trigger: Trigger::Schedule,
                    payload: json!({}),
                },
                start_deadline: Some(run_at + self.grace),
            });
        }
        Ok(())
    }

    /// The next run time and where the schedule stands.
    fn next_state(&self, plan: &mut Plan, schedule: &Schedule) -> Result<(), PlanError> {
        let now = self.now;
        let next_from = [Some(now), self.start_at, self.spec.snooze_until.map(before)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(now);
        plan.next_run_time = schedule
            .next_after(next_from)?
            .map(|t| t.to_utc())
            .filter(|t| self.end_at.is_none_or(|e| *t <= e));
        plan.projection.next_run_at = plan.next_run_time;
        plan.state = match (self.snoozed, plan.next_run_time) {
            (Some(until), _) => ScheduleState::Snoozed(until),
            (None, None) if plan.caught_up.is_empty() => ScheduleState::Exhausted,
            _ => ScheduleState::Active,
        };
        Ok(())
    }
}

/// The occurrences in `(from, to]`: all of those up to `min_end`, and past it only while
/// fewer than `max` are listed (the count counts from `from`). Returns whether the count (or
/// [`MIN_HORIZON_MAX_OCCURRENCES`]) cut the list short of `to`.
fn upcoming(
    schedule: &Schedule,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    min_end: DateTime<Utc>,
    max: usize,
) -> Result<(Vec<DateTime<Utc>>, bool), PlanError> {
    let mut out = Vec::new();
    if to <= from {
        return Ok((out, false));
    }
    for t in schedule.iter_after(from) {
        let t = t?.to_utc();
        if t > to {
            return Ok((out, false));
        }
        if (out.len() >= max && t > min_end) || out.len() >= MIN_HORIZON_MAX_OCCURRENCES {
            return Ok((out, true));
        }
        out.push(t);
    }
    Ok((out, false))
}

/// Computes a reconcile's plan. Pure: the same input gives the same plan.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let ctx = Ctx::new(input)?;
    let mut plan = ctx.empty_plan()?;
    ctx.run_now(&mut plan);
    let held = match input.schedule {
        None => Some(ScheduleState::EventDriven),
        // Nothing queued, and the time suspended is not counted as missed later.
        Some(_) if ctx.spec.suspend => Some(ScheduleState::Suspended),
        Some(_) => None,
    };
    if let Some(state) = held {
        plan.state = state;
        plan.projection.materialized_until = Some(ctx.now);
    } else if let Some(schedule) = input.schedule {
        if !ctx.holding {
            ctx.catch_up(&mut plan, schedule)?;
        }
        ctx.horizon(&mut plan, schedule)?;
        ctx.next_state(&mut plan, schedule)?;
    }
    finish_last_schedule_time(&mut plan, ctx.now);
    Ok(plan)
}

impl Plan {
    /// Whether applying this plan would change nothing the store holds for `prior` but
    /// `materialized_until`, and that one is still fresh: at most `horizon / 24` behind the
    /// horizon (so it is rewritten at least that often), or where the plan would put it. The
    /// periodic tick of an unchanged Task is mostly this: the reconcile then writes nothing.
    pub fn changes_nothing(
        &self,
        prior: &OperatorTaskState,
        now: DateTime<Utc>,
        config: &MaterializeConfig,
    ) -> bool {
        let quiet = !prior.deleted
            && self.occurrences.is_empty()
            && self.withdraw_after.is_none()
            && self.drop_stale.is_empty()
            && self.missed.is_empty()
            && self.events.is_empty()
            && self.handled_run_now.is_none();
        let old = &prior.projection;
        let fresh = match (old.materialized_until, self.projection.materialized_until) {
            (Some(old_m), Some(new_m)) => {
                old_m == new_m || old_m >= now + delta(config.horizon) - delta(config.horizon / 24)
            }
            (old_m, new_m) => old_m == new_m,
        };
        let same = TaskProjection {
            materialized_until: old.materialized_until,
            ..self.projection.clone()
        } == *old;
        quiet && fresh && same
    }
}

/// `lastScheduleTime`: the latest occurrence already due among those queued before and now.
fn finish_last_schedule_time(plan: &mut Plan, now: DateTime<Utc>) {
    let now_due = plan
        .occurrences
        .iter()
        .map(|o| o.occurrence.scheduled_for)
        .filter(|t| *t <= now)
        .max();
    plan.last_schedule_time = plan.last_schedule_time.max(now_due);
}

/// `tasks.schedule_kind`.
pub fn schedule_kind(spec: &TaskSpec) -> &'static str {
    let s = &spec.schedule;
    if s.rrule.is_some() {
        "rrule"
    } else if s.cron.is_some() {
        "cron"
    } else if s.at.is_some() {
        "at"
    } else if s.every.is_some() {
        "every"
    } else {
        "on"
    }
}

/// `tasks.schedule`: the expression as written.
fn schedule_text(spec: &TaskSpec) -> String {
    let s = &spec.schedule;
    s.rrule
        .clone()
        .or_else(|| s.cron.clone())
        .or_else(|| s.at.clone())
        .or_else(|| s.every.clone())
        .or_else(|| {
            s.on.as_ref().map(|on| {
                on.topic
                    .clone()
                    .map(|t| format!("topic {t}"))
                    .or_else(|| {
                        on.task_finished
                            .as_ref()
                            .map(|t| format!("task {}", t.name))
                    })
                    .unwrap_or_default()
            })
        })
        .unwrap_or_default()
}

fn concurrency(spec: &TaskSpec) -> &'static str {
    match spec.concurrency_policy {
        ordinaut_api::ConcurrencyPolicy::Allow => "Allow",
        ordinaut_api::ConcurrencyPolicy::Forbid => "Forbid",
        ordinaut_api::ConcurrencyPolicy::Replace => "Replace",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ordinaut_api::Task;
    use ordinaut_store::StaleOccurrence;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn task(spec: &str) -> Task {
        serde_yaml::from_str(&format!(
            "apiVersion: ordinaut.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, namespace: ns}}\nspec:\n{spec}  pipeline:\n    steps: [{{id: a, uses: core.echo}}]\n"
        ))
        .unwrap()
    }

    fn schedule(task: &Task) -> Schedule {
        crate::validate::compile_schedule(&task.spec.schedule, t("2025-03-10T00:00:00Z"))
            .unwrap()
            .unwrap()
    }

    fn input<'a>(
        task: &'a Task,
        schedule: &'a Schedule,
        prior: Option<&'a OperatorTaskState>,
        now: &str,
        config: &'a MaterializeConfig,
    ) -> PlanInput<'a> {
        PlanInput {
            uid: Uuid::from_u128(7),
            namespace: "ns",
            name: "t",
            generation: 1,
            spec: &task.spec,
            schedule: Some(schedule),
            prior,
            run_now: None,
            handled_run_now: None,
            now: t(now),
            config,
        }
    }

    #[test]
    fn jitter_is_deterministic_and_within_bounds() {
        let uid = Uuid::from_u128(42);
        let jitter = Duration::from_secs(300);
        let a = jitter_offset(uid, t("2025-03-10T10:00:00Z"), jitter);
        assert_eq!(a, jitter_offset(uid, t("2025-03-10T10:00:00Z"), jitter));
        let offsets: Vec<_> = (0..50)
            .map(|i| {
                jitter_offset(
                    uid,
                    t("2025-03-10T10:00:00Z") + TimeDelta::minutes(i),
                    jitter,
                )
            })
            .collect();
        assert!(
            offsets
                .iter()
                .all(|o| *o >= TimeDelta::zero() && *o < TimeDelta::seconds(300))
        );
        assert!(offsets.iter().any(|o| *o != offsets[0]), "offsets spread");
        assert_eq!(
            jitter_offset(uid, t("2025-03-10T10:00:00Z"), Duration::ZERO),
            TimeDelta::zero()
        );
    }

    #[test]
    fn a_new_task_plans_the_horizon_with_jitter_and_start_deadlines() {
        let task = task("  schedule: {every: 1h, jitter: 5m}\n  priority: 3\n");
        let s = schedule(&task);
        let config = MaterializeConfig::default();
        let plan = plan(&input(&task, &s, None, "2025-03-10T10:30:00Z", &config)).unwrap();
        // The next ten (the count past the 15-minute minimum), 11:00 to 20:00.
        assert_eq!(plan.occurrences.len(), 10);
        assert_eq!(
            plan.withdraw_after, None,
            "nothing to withdraw for a new task"
        );
        let first = &plan.occurrences[0];
        assert_eq!(first.occurrence.scheduled_for, t("2025-03-10T11:00:00Z"));
        assert!(first.occurrence.run_at >= first.occurrence.scheduled_for);
        assert!(first.occurrence.run_at < first.occurrence.scheduled_for + TimeDelta::minutes(5));
        assert_eq!(
            first.start_deadline,
            Some(first.occurrence.run_at + TimeDelta::minutes(2))
        );
        assert_eq!(first.occurrence.priority, 3);
        assert_eq!(
            plan.projection.materialized_until,
            Some(t("2025-03-10T20:00:00Z"))
        );
        assert_eq!(plan.next_run_time, Some(t("2025-03-10T11:00:00Z")));
        assert_eq!(plan.projection.spec["schedule"]["catchup"]["window"], "1h");
    }

    /// Queued after a reconcile at `now` with the default config: (count, materialized_until).
    fn horizon_of(spec: &str, now: &str) -> (usize, Option<DateTime<Utc>>) {
        let task = task(spec);
        let s = schedule(&task);
        let config = MaterializeConfig::default();
        let plan = plan(&input(&task, &s, None, now, &config)).unwrap();
        (plan.occurrences.len(), plan.projection.materialized_until)
    }

    #[test]
    fn the_horizon_is_the_next_ten_but_at_least_fifteen_minutes_and_at_most_a_day() {
        let now = "2025-03-10T10:30:00Z";
        // Dense: every occurrence of the next 15 minutes, however many.
        assert_eq!(
            horizon_of("  schedule: {every: 1s}\n", now),
            (900, Some(t("2025-03-10T10:45:00Z")))
        );
        assert_eq!(
            horizon_of("  schedule: {every: 1m}\n", now),
            (15, Some(t("2025-03-10T10:45:00Z")))
        );
        // Past the 15 minutes, the next ten.
        assert_eq!(
            horizon_of("  schedule: {cron: '*/15 * * * *'}\n", now),
            (10, Some(t("2025-03-10T13:00:00Z")))
        );
        // Sparse: what falls within the day, and the horizon is the day.
        assert_eq!(
            horizon_of("  schedule: {cron: '0 9 * * *'}\n", now),
            (1, Some(t("2025-03-11T10:30:00Z")))
        );
    }

    #[test]
    fn a_later_reconcile_tops_the_horizon_up_from_where_it_ended() {
        let task = task("  schedule: {every: 1s}\n");
        let s = schedule(&task);
        let config = MaterializeConfig::default();
        let first = plan(&input(&task, &s, None, "2025-03-10T10:30:00Z", &config)).unwrap();
        let before = prior(&task, &first, vec![]);
        // The recheck comes a tick (30 s) later: the 30 s after the old end go in, once.
        let later = plan(&input(
            &task,
            &s,
            Some(&before),
            "2025-03-10T10:30:30Z",
            &config,
        ))
        .unwrap();
        assert_eq!(later.occurrences.len(), 30);
        assert_eq!(
            later.occurrences[0].occurrence.scheduled_for,
            t("2025-03-10T10:45:01Z")
        );
        assert_eq!(
            later.projection.materialized_until,
            Some(t("2025-03-10T10:45:30Z"))
        );
        // Nothing new since: the same horizon, nothing written.
        let after = prior(&task, &later, vec![]);
        let again = plan(&input(
            &task,
            &s,
            Some(&after),
            "2025-03-10T10:30:30Z",
            &config,
        ))
        .unwrap();
        assert!(again.changes_nothing(&after, t("2025-03-10T10:30:30Z"), &config));
    }

    fn prior(task: &Task, plan: &Plan, stale: Vec<StaleOccurrence>) -> OperatorTaskState {
        let _ = task;
        OperatorTaskState {
            projection: plan.projection.clone(),
            deleted: false,
            handled_run_now: None,
            missed_total: 0,
            status: json!({}),
            last_due: None,
            last_manual: None,
            stale,
        }
    }

    #[test]
    fn catchup_latest_keeps_the_most_recent_missed_occurrence_and_reports_the_rest() {
        let task = task("  schedule: {cron: '*/15 * * * *'}\n");
        let s = schedule(&task);
        let config = MaterializeConfig {
            horizon: Duration::from_secs(1800),
            ..MaterializeConfig::default()
        };
        let first = plan(&input(&task, &s, None, "2025-03-10T10:05:00Z", &config)).unwrap();
        // Operator down from 10:05 to 12:05; the horizon ended at 10:35.
        let stale = vec![
            StaleOccurrence {
                id: 1,
                scheduled_for: t("2025-03-10T10:15:00Z"),
            },
            StaleOccurrence {
                id: 2,
                scheduled_for: t("2025-03-10T10:30:00Z"),
            },
        ];
        let before = prior(&task, &first, stale);
        let later = plan(&input(
            &task,
            &s,
            Some(&before),
            "2025-03-10T12:05:00Z",
            &config,
        ))
        .unwrap();
        assert_eq!(later.drop_stale, vec![1, 2]);
        assert_eq!(later.caught_up, vec![t("2025-03-10T12:00:00Z")]);
        assert_eq!(later.missed.len(), 7);
        assert_eq!(later.events.len(), 7);
        assert_eq!(later.events[0].event_type, "run.missed");
        assert_eq!(
            later.events[0].payload["scheduledFor"],
            "2025-03-10T10:15:00Z"
        );
        assert_eq!(
            later.events[0].payload["reason"],
            "older than the catch-up window"
        );
        let catchup: Vec<_> = later
            .occurrences
            .iter()
            .filter(|o| o.occurrence.trigger == Trigger::Catchup)
            .collect();
        assert_eq!(catchup.len(), 1);
        assert_eq!(catchup[0].occurrence.run_at, t("2025-03-10T12:05:00Z"));
        assert_eq!(catchup[0].start_deadline, None);
        assert_eq!(
            later.prior_materialized_until,
            Some(t("2025-03-10T10:35:00Z"))
        );
    }

    #[test]
    fn a_late_occurrence_within_the_grace_is_queued_not_missed() {
        let task = task("  schedule: {cron: '*/15 * * * *'}\n");
        let s = schedule(&task);
        let config = MaterializeConfig {
            horizon: Duration::from_secs(600),
            ..MaterializeConfig::default()
        };
        let first = plan(&input(&task, &s, None, "2025-03-10T10:00:00Z", &config)).unwrap();
        assert!(first.occurrences.is_empty(), "nothing in (10:00, 10:10]");
        let before = prior(&task, &first, vec![]);
        // The next reconcile comes a minute late: 10:15 is in the grace, so it is queued.
        let later = plan(&input(
            &task,
            &s,
            Some(&before),
            "2025-03-10T10:16:00Z",
            &config,
        ))
        .unwrap();
        assert!(later.missed.is_empty());
        assert_eq!(
            later.occurrences[0].occurrence.scheduled_for,
            t("2025-03-10T10:15:00Z")
        );
        assert_eq!(later.occurrences[0].occurrence.trigger, Trigger::Schedule);
    }

    #[test]
    fn run_now_is_planned_once_per_new_value() {
        let task = task("  schedule: {every: 1h}\n");
        let s = schedule(&task);
        let config = MaterializeConfig::default();
        let mut i = input(&task, &s, None, "2025-03-10T10:00:00Z", &config);
        i.run_now = Some("x");
        let p = plan(&i).unwrap();
        let manual: Vec<_> = p
            .occurrences
            .iter()
            .filter(|o| o.occurrence.trigger == Trigger::Manual)
            .collect();
        assert_eq!(manual.len(), 1);
        assert_eq!(
            manual[0].occurrence.scheduled_for,
            t("2025-03-10T10:00:00Z")
        );
        assert_eq!(p.handled_run_now.as_deref(), Some("x"));
        i.handled_run_now = Some("x");
        let p = plan(&i).unwrap();
        assert!(
            p.occurrences
                .iter()
                .all(|o| o.occurrence.trigger != Trigger::Manual)
        );
        assert_eq!(p.handled_run_now, None);
    }

    #[test]
    fn a_schedule_change_withdraws_after_now_and_a_suspension_withdraws_everything() {
        let task1 = task("  schedule: {every: 1h}\n");
        let s = schedule(&task1);
        let config = MaterializeConfig::default();
        let first = plan(&input(&task1, &s, None, "2025-03-10T10:00:00Z", &config)).unwrap();
        let before = prior(&task1, &first, vec![]);
        let task2 = task("  schedule: {every: 30m}\n");
        let s2 = schedule(&task2);
        let mut i = input(&task2, &s2, Some(&before), "2025-03-10T10:10:00Z", &config);
        i.generation = 2;
        assert_eq!(
            plan(&i).unwrap().withdraw_after,
            Some(t("2025-03-10T10:10:00Z"))
        );
        let task3 = task("  schedule: {every: 1h}\n  suspend: true\n");
        let mut i = input(&task3, &s, Some(&before), "2025-03-10T10:10:00Z", &config);
        i.generation = 2;
        let p = plan(&i).unwrap();
        assert_eq!(p.withdraw_after, Some(DateTime::UNIX_EPOCH));
        assert!(p.occurrences.is_empty());
        assert_eq!(p.state, ScheduleState::Suspended);
        assert_eq!(p.next_run_time, None);
    }

    #[test]
    fn resuming_a_suspended_task_catches_up_nothing_that_fell_in_the_suspension() {
        let config = MaterializeConfig::default();
        let suspended = task("  schedule: {cron: '0 9 * * *'}\n  suspend: true\n");
        let s = schedule(&suspended);
        // The last reconcile while suspended was at 08:58:30; resumed at 09:03.
        let held = plan(&input(
            &suspended,
            &s,
            None,
            "2025-03-10T08:58:30Z",
            &config,
        ))
        .unwrap();
        assert_eq!(held.state, ScheduleState::Suspended);
        let before = prior(&suspended, &held, vec![]);
        let resumed = task("  schedule: {cron: '0 9 * * *'}\n");
        let mut i = input(&resumed, &s, Some(&before), "2025-03-10T09:03:00Z", &config);
        i.generation = 2;
        let p = plan(&i).unwrap();
        assert!(p.caught_up.is_empty(), "caught up {:?}", p.caught_up);
        assert!(p.missed.is_empty(), "missed {:?}", p.missed);
        assert_eq!(p.next_run_time, Some(t("2025-03-11T09:00:00Z")));
    }

    #[test]
    fn a_long_outage_still_catches_up_the_most_recent_occurrence() {
        let task = task("  schedule: {every: 1m}\n");
        let s = schedule(&task);
        let config = MaterializeConfig {
            max_missed_scan: 1_000,
            ..MaterializeConfig::default()
        };
        let first = plan(&input(&task, &s, None, "2025-03-10T10:00:00Z", &config)).unwrap();
        let before = prior(&task, &first, vec![]);
        // Eight days away: far more missed occurrences than the scan's cap.
        let later = plan(&input(
            &task,
            &s,
            Some(&before),
            "2025-03-18T10:00:30Z",
            &config,
        ))
        .unwrap();
        // 09:59 and 10:00 are still within their start deadline (queued as usual).
        assert_eq!(later.caught_up, vec![t("2025-03-18T09:58:00Z")]);
    }
}
