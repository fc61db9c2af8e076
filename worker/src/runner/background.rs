//! The worker's background loops: the heartbeat (extends held leases, moves each run's
//! self-fencing deadline, cancels runs whose lease was lost or that a `Replace` run
//! displaced) and the reaper (returns the expired leases of crashed workers to the queue).

use super::fence::now_ms;
use super::{CancelReason, Shared, lock};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Extends held leases; cancels runs whose lease was lost or that a Replace run displaced.
/// A failed heartbeat is tried again at the next tick; runs whose leases it could not
/// extend are stopped by their self-fencing deadline before the leases expire.
pub(super) async fn heartbeat_loop(s: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(s.config.heartbeat_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let snapshot: Vec<(i64, i32)> = lock(&s.held)
            .iter()
            .map(|(id, h)| (*id, h.attempt))
            .collect();
        if snapshot.is_empty() {
            continue;
        }
        // Taken before the statement: the database's "time left" is measured later, so
        // the local deadline it gives is never later than the real expiry.
        let sent = now_ms();
        let still = match s
            .store
            .heartbeat_within(
                &s.config.worker_id,
                &snapshot,
                s.config.lease_duration,
                renew_within(s.config.lease_duration, s.config.heartbeat_interval),
            )
            .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "heartbeat failed; runs stop before their leases expire unless the next one succeeds");
                continue;
            }
        };
        let kept: HashMap<i64, (bool, Duration)> = still
            .iter()
            .map(|h| (h.id, (h.cancel_requested, h.remaining)))
            .collect();
        let held = lock(&s.held);
        for (id, _) in &snapshot {
            let Some(h) = held.get(id) else { continue };
            match kept.get(id) {
                Some((cancel, remaining)) => {
                    let until = sent + u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
                    h.control.deadline.fetch_max(until, Ordering::SeqCst);
                    if *cancel {
                        h.control.stop(CancelReason::Replaced);
                    }
                }
                None if !h.control.finishing.load(Ordering::SeqCst) => {
                    tracing::warn!(due_work = id, "lease lost; abandoning the run");
                    s.metrics.lost_leases.inc();
                    h.control.stop(CancelReason::Lost);
                }
                None => {}
            }
        }
    }
}

/// Which leases a heartbeat extends: those expiring within the lease duration less half a
/// heartbeat interval. A lease just taken is left alone until about one interval has passed;
/// one skipped at a heartbeat (its row was locked) still has more than an interval left.
fn renew_within(lease: Duration, heartbeat: Duration) -> Duration {
    let within = lease.saturating_sub(heartbeat / 2);
    if within < heartbeat { lease } else { within }
}

/// Returns expired leases to the queue and refreshes the queue gauges. Within one lease
/// duration of a PostgreSQL restart nothing is reaped: every lease expired while the server
/// was down, and their live holders get that long to heartbeat or write their results.
pub(super) async fn reaper_loop(s: Arc<Shared>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(s.config.reap_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match s
            .store
            .reap_expired_after_restart(s.config.lease_duration)
            .await
        {
            Ok(n) => {
                s.metrics.reclaimed.inc_by(n);
            }
            Err(e) => tracing::warn!(error = %e, "reaping expired leases failed"),
        }
        prune_state(&s).await;
        if let Ok(depth) = s.store.queue_depth().await {
            s.metrics.queue_depth.set(depth);
        }
        if let Ok(backlog) = s.store.outbox_backlog().await {
            s.metrics.outbox_backlog.set(backlog);
        }
    }
}

/// Keys of agent memory pruned per reaper tick (and per kind): small enough to keep the
/// transaction short, and `STATE_PRUNE_BATCH / reap_interval` expiries a second per worker.
const STATE_PRUNE_BATCH: i64 = 500;

/// One retention pass of agent memory (expired keys, old tombstones), counted in
/// `ordinaut_state_pruned_total{kind}`.
async fn prune_state(s: &Shared) {
    match s.store.prune_state(STATE_PRUNE_BATCH).await {
        Ok(p) => {
            for (kind, n) in [("expired", p.expired), ("tombstone", p.tombstones)] {
                if n > 0 {
                    s.metrics
                        .state_pruned
                        .get_or_create(&crate::metrics::PrunedLabel { kind: kind.into() })
                        .inc_by(n);
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "pruning agent memory failed"),
    }
}

/// Prunes history by the retention policy (see `ordinaut_store::retention`): one small batch
/// per table at a time, again at once while batches come back full, else every
/// `retention_interval`. Several workers may prune at once; they skip each other's rows.
pub(super) async fn retention_loop(s: Arc<Shared>, stop: CancellationToken) {
    let Some(policy) = s.config.retention.clone() else {
        return;
    };
    loop {
        let wait = match s.store.prune(&policy).await {
            Ok(p) => {
                for (table, n) in [
                    ("task_runs", p.runs),
                    ("due_work", p.due_work),
                    ("outbox", p.outbox),
                    ("audit_log", p.audit),
                ] {
                    if n > 0 {
                        s.metrics
                            .pruned
                            .get_or_create(&crate::metrics::TableLabel {
                                table: table.to_string(),
                            })
                            .inc_by(n);
                    }
                }
                if p.more(policy.batch) {
                    Duration::from_millis(100)
                } else {
                    s.config.retention_interval
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning history failed; trying again later");
                s.config.retention_interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}
