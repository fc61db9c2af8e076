//! The `ordinaut.dev/backfill` annotation: `FROM/TO` asks for the occurrences the Task's
//! schedule had in that past range (both ends included). The operator queues those that
//! neither ran nor are queued (trigger `backfill`, audited), and records the value it handled
//! in `status.handledBackfill`, so a GitOps tool sees no drift and a value is handled once.

use chrono::{DateTime, TimeDelta, Utc};
use ordinaut_schedule::Schedule;
use ordinaut_store::{ManualRequest, NewOccurrence, Store, StoreError, Trigger};
use serde_json::json;
use uuid::Uuid;

/// Most occurrences one backfill annotation may queue.
pub const MAX_BACKFILL: usize = 1000;

/// A backfill that cannot be done as asked (the message names the annotation and the fix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The range of an annotation value `FROM/TO`, checked against `now`.
pub fn parse_range(
    value: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Refused> {
    let refuse = |why: &str| {
        Refused(format!(
            "annotation ordinaut.dev/backfill=`{value}`: {why}; write FROM/TO as two RFC 3339 instants, e.g. 2025-06-01T00:00:00Z/2025-06-02T00:00:00Z"
        ))
    };
    let (from, to) = value
        .split_once('/')
        .ok_or_else(|| refuse("no `/` between FROM and TO"))?;
    let parse = |s: &str, which: &str| {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| t.to_utc())
            .map_err(|e| refuse(&format!("{which} `{s}` is not RFC 3339 ({e})")))
    };
    let (from, to) = (parse(from, "FROM")?, parse(to, "TO")?);
    if to < from {
        return Err(refuse("TO is before FROM"));
    }
    if to > now {
        return Err(refuse(
            "TO is in the future (the schedule runs those occurrences by itself)",
        ));
    }
    Ok((from, to))
}

/// Queues the occurrences of `schedule` in the range `value` names. `Ok(Ok(n))`: `n` queued;
/// `Ok(Err(_))`: refused (the value is still handled: a new value asks again).
pub async fn queue(
    store: &Store,
    task_uid: Uuid,
    priority: i32,
    schedule: Option<&Schedule>,
    value: &str,
    now: DateTime<Utc>,
) -> Result<Result<u64, Refused>, StoreError> {
    let (from, to) = match parse_range(value, now) {
        Ok(r) => r,
        Err(refused) => return Ok(Err(refused)),
    };
    let Some(schedule) = schedule else {
        return Ok(Err(Refused(
            "annotation ordinaut.dev/backfill: the Task runs on events, not on a schedule; nothing to backfill".into(),
        )));
    };
    // `between` excludes its lower bound; the range includes it.
    let instants: Vec<DateTime<Utc>> =
        match schedule.between(from - TimeDelta::microseconds(1), to, MAX_BACKFILL + 1) {
            Ok(list) => list.into_iter().map(|t| t.to_utc()).collect(),
            Err(e) => {
                return Ok(Err(Refused(format!(
                    "annotation ordinaut.dev/backfill: {e}"
                ))));
            }
        };
    if instants.len() > MAX_BACKFILL {
        return Ok(Err(Refused(format!(
            "annotation ordinaut.dev/backfill=`{value}`: the range holds more than {MAX_BACKFILL} occurrences; split it into smaller ranges"
        ))));
    }
    let occupied = store.occupied_instants(task_uid, from, to).await?;
    let todo: Vec<NewOccurrence> = instants
        .into_iter()
        .filter(|t| !occupied.contains(t))
        .map(|t| NewOccurrence {
            task_uid,
            scheduled_for: t,
            run_at: now,
            priority,
            trigger: Trigger::Backfill,
            payload: json!({}),
        })
        .collect();
    if todo.is_empty() {
        return Ok(Ok(0));
    }
    let request = ManualRequest {
        actor: "annotation:ordinaut.dev/backfill".into(),
        action: "task.backfill".into(),
        detail: json!({"from": from, "to": to, "annotation": value}),
        correlation_id: None,
    };
    store.queue_by_hand(&todo, &request).await.map(Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_is_two_rfc3339_instants_in_order_and_in_the_past() {
        let now: DateTime<Utc> = "2025-06-10T00:00:00Z".parse().unwrap();
        let (from, to) = parse_range("2025-06-01T00:00:00Z/2025-06-02T00:00:00Z", now).unwrap();
        assert_eq!((to - from).num_hours(), 24);
        for (bad, says) in [
            ("2025-06-01T00:00:00Z", "no `/`"),
            ("yesterday/2025-06-02T00:00:00Z", "FROM `yesterday`"),
            (
                "2025-06-02T00:00:00Z/2025-06-01T00:00:00Z",
                "TO is before FROM",
            ),
            ("2025-06-01T00:00:00Z/2025-07-01T00:00:00Z", "in the future"),
        ] {
            let Refused(message) = parse_range(bad, now).unwrap_err();
            assert!(message.contains(says), "{bad}: {message}");
            assert!(message.contains("ordinaut.dev/backfill"), "{message}");
        }
    }
}
