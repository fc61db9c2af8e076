//! The outbox: events written in the same transaction as the change they report, read by
//! the relay and marked published once they are on Redis Streams. Also the audit log.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// The stream every event goes to unless it names another.
pub const DEFAULT_STREAM: &str = "ordinaut:events";

/// The channel notified (by a trigger) when events are appended, so the relay wakes at once.
pub const OUTBOX_CHANNEL: &str = "ordinaut_outbox";

/// An event to append to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// e.g. `run.succeeded`, `run.missed`, `task.invalid`.
    pub event_type: String,
    /// Target stream; [`DEFAULT_STREAM`] when `None`.
    pub stream: Option<String>,
    /// The event body (namespace, task, run id, attempt, scheduled and actual time…).
    pub payload: Value,
}

impl OutboxEvent {
    /// An event for the default stream.
    pub fn new(event_type: impl Into<String>, payload: Value) -> Self {
        Self {
            event_type: event_type.into(),
            stream: None,
            payload,
        }
    }
}

/// An event waiting in (or read from) the outbox.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub stream: String,
    pub event_type: String,
    pub task_uid: Option<Uuid>,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

pub(crate) async fn insert_events_on(
    conn: &mut sqlx::PgConnection,
    events: &[(Option<Uuid>, &OutboxEvent)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut streams = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut tasks = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (task, e) in events {
        streams.push(e.stream.as_deref().unwrap_or(DEFAULT_STREAM));
        types.push(e.event_type.as_str());
        tasks.push(*task);
        payloads.push(e.payload.to_string());
    }
    // WITH ORDINALITY keeps the ids in the order the events were given. Payloads travel as
    // text and are stored as `json` (checked, not converted; migration 0005).
    sqlx::query(
        "INSERT INTO outbox (stream, event_type, task_uid, payload) \
         SELECT s, t, u, p::json FROM unnest($1::text[], $2::text[], $3::uuid[], $4::text[]) \
             WITH ORDINALITY AS e(s, t, u, p, n) ORDER BY n",
    )
    .bind(&streams)
    .bind(&types)
    .bind(&tasks)
    .bind(&payloads)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A batch of unpublished events held exclusively by one relay until [`OutboxBatch::commit`]
/// (or drop, which gives them back). Only one batch exists at a time across all processes,
/// so events leave in id order and are not published twice in normal operation.
pub struct OutboxBatch {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The events, in id order.
    pub rows: Vec<OutboxRow>,
}

impl OutboxBatch {
    /// Marks the batch's events published and releases the relay lock.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let ids: Vec<i64> = self.rows.iter().map(|r| r.id).collect();
        sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
            .bind(&ids)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Advisory lock key held (for one transaction) by the relay that is publishing.
const RELAY_LOCK: i64 = 0x6f72_645f_7265_6c61;

impl Store {
    /// Takes the relay lock and up to `limit` unpublished events in id order. `None` when
    /// another relay holds the lock or nothing is waiting. Publish the rows, then
    /// [`OutboxBatch::commit`]; if publishing fails, drop the batch and the rows wait.
    pub async fn claim_outbox(&self, limit: i64) -> Result<Option<OutboxBatch>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
            .bind(RELAY_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !locked {
            return Ok(None);
        }
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "SELECT id, stream, event_type, task_uid, payload, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(OutboxBatch { tx, rows }))
    }

    /// Appends events that report no other change (e.g. `run.missed` counted by the operator).
    pub async fn append_events(
        &self,
        task_uid: Option<Uuid>,
        events: &[OutboxEvent],
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let pairs: Vec<(Option<Uuid>, &OutboxEvent)> =
            events.iter().map(|e| (task_uid, e)).collect();
        insert_events_on(&mut conn, &pairs).await
    }

    /// The oldest unpublished events, in id order (the relay's read).
    pub async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, stream, event_type, task_uid, payload, created_at FROM outbox \
             WHERE published_at IS NULL ORDER BY id LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks events published (after the relay's `XADD` succeeded).
    pub async fn mark_published(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "UPDATE outbox SET published_at = now() WHERE id = ANY($1) AND published_at IS NULL",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    /// Events not yet published (the `outbox backlog` metric).
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }

    /// Appends an entry to the audit log (scope decisions, manual triggers, token use).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        allowed: bool,
        task_uid: Option<Uuid>,
        subject: Option<&str>,
        detail: &Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (actor, action, allowed, namespace, task_uid, subject, detail) \
             VALUES ($1, $2, $3, (SELECT namespace FROM tasks WHERE uid = $4), $4, $5, $6)",
        )
        .bind(actor)
        .bind(action)
        .bind(allowed)
        .bind(task_uid)
        .bind(subject)
        .bind(detail)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// [`Store::audit`] with a correlation id (migration 0007) that the caller's log lines
    /// for the same action carry too (e.g. the run id of a refused tool call).
    #[allow(clippy::too_many_arguments)]
    pub async fn audit_correlated(
        &self,
        actor: &str,
        action: &str,
        allowed: bool,
        task_uid: Option<Uuid>,
        subject: Option<&str>,
        detail: &Value,
        correlation_id: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log \
                 (actor, action, allowed, namespace, task_uid, subject, detail, correlation_id) \
             VALUES ($1, $2, $3, (SELECT namespace FROM tasks WHERE uid = $4), $4, $5, $6, $7)",
        )
        .bind(actor)
        .bind(action)
        .bind(allowed)
        .bind(task_uid)
        .bind(subject)
        .bind(detail)
        .bind(correlation_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
