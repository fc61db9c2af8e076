//! Ordinaut's PostgreSQL store: the one place SQL lives.
//!
//! # Tables
//! `tasks` (the projection of Task resources), `due_work` (occurrences to run), `task_runs`
//! (what happened, each run with its steps; `step_runs` is a read-only view of those steps,
//! one row each), `outbox` (events waiting for the Redis relay) and
//! `audit_log`. The schema is in `migrations/`; [`Store::migrate`] applies it under a
//! PostgreSQL advisory lock, so processes starting at once do not race.
//!
//! # The leasing protocol
//! * An occurrence is one `due_work` row, unique on `(task_uid, scheduled_for, trigger)`;
//!   inserting it again is a no-op ([`Store::insert_occurrences`]). Inserts `NOTIFY` the
//!   channel [`DUE_WORK_CHANNEL`] with the earliest `run_at`, so idle workers wake at once.
//! * [`Store::lease`] takes up to N queued, due rows in one statement:
//!   `SELECT … WHERE locked_until IS NULL AND done_at IS NULL AND run_at <= now()
//!   AND <first attempt not past its start_deadline> ORDER BY priority DESC, run_at LIMIT N
//!   FOR UPDATE SKIP LOCKED`, then sets
//!   `locked_until = now() + lease`, `locked_by = worker` and `attempt = attempt + 1`.
//!   The partial index `due_work_lease` holds exactly the queued rows in that order, so the
//!   query reads only rows it can take (see the `lease_query_uses_the_partial_index` test).
//!   Concurrent leasers skip each other's locked rows instead of waiting.
//! * Each lease carries its attempt number. [`Store::heartbeat`] extends the leases a worker
//!   still holds; [`Store::finish`] records the outcome (the `task_runs` row with its steps,
//!   the `due_work` row marked done or re-queued for a retry, and the `outbox` events) in one
//!   transaction, and only if the row is still at that attempt: a stale holder gets
//!   [`StoreError::StaleAttempt`] and changes nothing.
//! * A crashed worker stops heartbeating; [`Store::reap_expired`] returns rows whose
//!   `locked_until` has passed to the queue, and the next lease gives them attempt + 1.
//! * A scheduled occurrence never leased by its `start_deadline` is left to the operator's
//!   catch-up policy (see the `task_plans` module), so returning workers start no herd.
//!   Work is therefore at-least-once on a crash and exactly-once otherwise, and a late
//!   result of an older attempt can never overwrite a newer one.

mod budgets;
mod chains;
mod dashboard;
mod definitions;
mod error;
mod events;
mod fence;
mod gateway;
mod lease;
mod migrate;
pub use migrate::MIGRATOR;
mod notify;
mod object_meta;
mod occurrences;
pub mod retention;
mod runs;
mod runs_query;
pub mod state;
mod state_write;
pub mod storable;
mod task_plans;
mod task_plans_batch;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
mod triggers;

pub use budgets::{Admitted, BudgetWait, CONCURRENCY_RECHECK};
pub use chains::DEFAULT_OUTCOMES;
pub use dashboard::LatestRun;
pub use definitions::{AgentRow, McpServerRow};
pub use error::StoreError;
pub use events::{DEFAULT_STREAM, OUTBOX_CHANNEL, OutboxBatch, OutboxEvent, OutboxRow};
pub use fence::OnFenced;
pub use gateway::{AuditEntry, AuditQuery, AuditRecord, RunQuery, TaskQuery, TaskRow};
pub use lease::{Held, LEASE_SQL, Lease, RunDecision};
pub use notify::{DUE_WORK_CHANNEL, Listener, Wakeup};
pub use object_meta::{DevIdentity, DevSnooze};
pub use occurrences::{NewOccurrence, Trigger};
pub use runs::{Disposition, FinishOutcome, RunRecord, RunStatus, StepRecord, StepStatus};
pub use runs_query::{ManualRequest, RunCount, RunFilter, RunView};
pub use state::{
    StateEntry, StateError, StateOwner, StatePruned, StatePut, StateQuery, StateRef, StateVersion,
};
pub use task_plans::{
    Applied, OperatorTaskState, PlannedOccurrence, ReconcileWrite, RunSummary, StaleOccurrence,
    StatusMirror,
};
pub use task_plans_batch::StatusSources;
pub use tasks::TaskProjection;
pub use triggers::{
    Decision, Delivery, DeliveryCounts, EventCounts, MAX_CHAIN_DEPTH, MAX_EVENT_BYTES,
    PUBLISHED_EVENT_TYPE, PublishError, PublishRequest, PublishedEvent, SKIPPED_EVENT_TYPE,
    TOPIC_STREAM_PREFIX, TopicSubscriber, check_topic, topic_stream,
};

use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

/// A handle to Ordinaut's database. Cheap to clone (a connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    pool: PgPool,
    /// When to refresh `due_work`'s planner statistics (see [`Store::note_inserted`]).
    analyze: std::sync::Arc<AnalyzeState>,
    /// The leader epoch operator writes are checked against (see [`Store::fenced`]).
    fence: Option<std::sync::Arc<fence::Fence>>,
    /// Where the next count-limit pruning window starts (see [`retention::TASKS_PER_CALL`]).
    prune_cursor: std::sync::Arc<std::sync::Mutex<uuid::Uuid>>,
}

#[derive(Debug, Default)]
struct AnalyzeState {
    /// Occurrences inserted through this handle since `due_work` was last analyzed…
    since: std::sync::atomic::AtomicU64,
    /// …and in all.
    total: std::sync::atomic::AtomicU64,
    /// An `ANALYZE` is running.
    running: std::sync::atomic::AtomicBool,
}

/// After this many inserted occurrences, `due_work` is analyzed at once instead of waiting
/// for autovacuum: a planner without fresh statistics picks the wrong partial index and
/// reads every queued row (seen at 60,000 rows: 370 ms per query instead of 0.04 ms).
const ANALYZE_AFTER_INSERTS: u64 = 5_000;

impl Store {
    /// Connects with a pool of at most `max_connections`.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            pool,
            analyze: Default::default(),
            fence: None,
            prune_cursor: Default::default(),
        }
    }

    /// Counts inserted occurrences; past [`ANALYZE_AFTER_INSERTS`], and once what this handle
    /// inserted has doubled since the last time, refreshes `due_work`'s planner statistics
    /// in the background (bulk materialization, backfills). One `ANALYZE` at a time, of the
    /// columns queries filter on. At 100,000 Tasks (4 million rows), one every 5,000 rows
    /// was 800 of them, each sampling 30,000 rows of the growing table: a quarter of
    /// PostgreSQL's time (perf). Between two, the planner scales the row count with the
    /// table's size, so the statistics of a table half as big still give the right plans;
    /// what must not happen is a table that was never analyzed.
    pub(crate) fn note_inserted(&self, n: u64) {
        use std::sync::atomic::Ordering;
        if n == 0 {
            return;
        }
        let a = &self.analyze;
        let since = a.since.fetch_add(n, Ordering::Relaxed) + n;
        let total = a.total.fetch_add(n, Ordering::Relaxed) + n;
        if since < ANALYZE_AFTER_INSERTS.max(total / 2) {
            return;
        }
        if a.running.swap(true, Ordering::AcqRel) {
            return;
        }
        a.since.store(0, Ordering::Relaxed);
        let pool = self.pool.clone();
        let analyze = self.analyze.clone();
        tokio::spawn(async move {
            let analyze_sql = "ANALYZE due_work (task_uid, scheduled_for, run_at, priority, \
                 attempt, trigger, locked_until, done_at, start_deadline, running_since)";
            if let Err(e) = sqlx::query(analyze_sql).execute(&pool).await {
                tracing::warn!(error = %e, "analyzing due_work failed");
            }
            analyze.running.store(false, Ordering::Release);
        });
    }

    /// The underlying pool, for callers that compose their own queries in tests.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// `true` when the database answers a trivial query (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Hides the password in a database URL before it goes into an error or a log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redact_url_hides_only_the_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr3t@db:5432/ordinaut"),
            "postgres://app:***@db:5432/ordinaut"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
        assert_eq!(redact_url("postgres:///x"), "postgres:///x");
    }
}
