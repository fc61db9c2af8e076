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

/// Bytes of event JSON per outbox row at most (a single larger event gets a row of its own):
/// under PostgreSQL's 2 kB TOAST threshold, so rows are never compressed or stored out of line
/// (migration 0016).
const ROW_BYTES: usize = 1800;

/// Appends `events` in order: each gets the next id of the outbox sequence, and they are
/// stored several to a row (migration 0016), in one statement.
pub(crate) async fn insert_events_on(
    conn: &mut sqlx::PgConnection,
    events: &[(Option<Uuid>, &OutboxEvent)],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let (counts, texts) = pack_rows(events);
    // Rows in the order given, ids in row order: the volatile nextval() runs after the sort
    // (PostgreSQL evaluates volatile select-list expressions above the ORDER BY). The events
    // travel as text and are stored as `json` (checked, not converted).
    sqlx::query(
        "INSERT INTO outbox_rows (id, ids, events) OVERRIDING SYSTEM VALUE \
         SELECT r.ids[1], r.ids, r.events::json FROM ( \
             SELECT b.events, \
                    ARRAY(SELECT nextval('outbox_id_seq') FROM generate_series(1, b.n)) AS ids \
             FROM unnest($1::int4[], $2::text[]) WITH ORDINALITY AS b(n, events, ord) \
             ORDER BY b.ord) r",
    )
    .bind(&counts)
    .bind(&texts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The rows `events` are stored in: per row, how many events and their JSON array.
fn pack_rows(events: &[(Option<Uuid>, &OutboxEvent)]) -> (Vec<i32>, Vec<String>) {
    let mut counts = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut n = 0;
    for (task, e) in events {
        let text = serde_json::to_string(&EventToStore {
            event_type: &e.event_type,
            stream: e.stream.as_deref(),
            task_uid: *task,
            payload: &e.payload,
        })
        // Serializing borrowed strings and a value cannot fail.
        .unwrap_or_default();
        if n > 0 && current.len() + 1 + text.len() + 1 > ROW_BYTES {
            current.push(']');
            texts.push(std::mem::take(&mut current));
            counts.push(n);
            n = 0;
        }
        current.push(if n == 0 { '[' } else { ',' });
        current.push_str(&text);
        n += 1;
    }
    current.push(']');
    texts.push(current);
    counts.push(n);
    (counts, texts)
}

/// One event of a row's `events` array, as written (borrowed: nothing is cloned).
#[derive(serde::Serialize)]
struct EventToStore<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_uid: Option<Uuid>,
    payload: &'a Value,
}

/// One event of a row's `events` array.
#[derive(serde::Deserialize)]
struct StoredEvent {
    #[serde(rename = "type")]
    event_type: String,
    stream: Option<String>,
    task_uid: Option<Uuid>,
    payload: Value,
}

/// An `outbox_rows` row as read (migration 0016).
#[derive(sqlx::FromRow)]
struct StoredRow {
    id: i64,
    created_at: DateTime<Utc>,
    ids: Vec<i64>,
    events: String,
}

const ROW_COLUMNS: &str = "id, created_at, ids, events::text AS events";

impl StoredRow {
    fn event_count(&self) -> usize {
        self.ids.len()
    }

    /// The row's events, in id order.
    fn unpack(self, out: &mut Vec<OutboxRow>) -> Result<(), StoreError> {
        let events: Vec<StoredEvent> = serde_json::from_str(&self.events).map_err(|e| {
            StoreError::Database(sqlx::Error::Decode(
                format!("outbox row {}: {e}", self.id).into(),
            ))
        })?;
        for (id, e) in self.ids.into_iter().zip(events) {
            out.push(OutboxRow {
                id,
                stream: e.stream.unwrap_or_else(|| DEFAULT_STREAM.to_string()),
                event_type: e.event_type,
                task_uid: e.task_uid,
                payload: e.payload,
                created_at: self.created_at,
            });
        }
        Ok(())
    }
}

/// The oldest unpublished rows, in id order, as long as they hold at most `limit` events
/// (always at least one row); returns the rows' ids and their events. Rows hold one event or
/// several, so rows are read a part at a time: first as many as `limit` events would fill at
/// eight to a row, then as many as the rest needs at the density seen so far.
async fn read_unpublished(
    conn: &mut sqlx::PgConnection,
    limit: i64,
) -> Result<(Vec<i64>, Vec<OutboxRow>), StoreError> {
    let limit = usize::try_from(limit.max(1)).unwrap_or(usize::MAX);
    let (mut row_ids, mut events) = (Vec::new(), Vec::new());
    let mut after = i64::MIN;
    let mut want = limit.div_ceil(8);
    loop {
        let rows: Vec<StoredRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} FROM outbox_rows \
             WHERE published_at IS NULL AND id > $1 ORDER BY id LIMIT $2"
        )))
        .bind(after)
        .bind(i64::try_from(want).unwrap_or(i64::MAX))
        .fetch_all(&mut *conn)
        .await?;
        let got = rows.len();
        for row in rows {
            if !row_ids.is_empty() && events.len() + row.event_count() > limit {
                return Ok((row_ids, events));
            }
            after = row.id;
            row_ids.push(row.id);
            row.unpack(&mut events)?;
        }
        if got < want || events.len() >= limit {
            return Ok((row_ids, events));
        }
        let per_row = events.len().div_ceil(row_ids.len()).max(1);
        want = (limit - events.len()).div_ceil(per_row).max(1);
    }
}

/// A batch of unpublished events held exclusively by one relay until [`OutboxBatch::commit`]
/// (or drop, which gives them back). Only one batch exists at a time across all processes,
/// so events leave in id order and are not published twice in normal operation.
pub struct OutboxBatch {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    /// The `outbox_rows` the events came from (each is published as a whole).
    row_ids: Vec<i64>,
    /// The events, in id order.
    pub rows: Vec<OutboxRow>,
}

impl OutboxBatch {
    /// Marks the batch's events published and releases the relay lock.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox_rows SET published_at = now() WHERE id = ANY($1)")
            .bind(&self.row_ids)
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
        let (row_ids, rows) = read_unpublished(&mut tx, limit).await?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(OutboxBatch { tx, row_ids, rows }))
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

    /// The oldest unpublished events, in id order: whole rows, at most `limit` events unless
    /// the first row alone holds more (the relay's read).
    pub async fn unpublished_events(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(read_unpublished(&mut conn, limit).await?.1)
    }

    /// Marks events published (after the relay's `XADD` succeeded). Events are stored
    /// several to a row and a row is published as a whole: naming the first event of a row
    /// marks all of its events. Returns how many events were marked.
    pub async fn mark_published(&self, ids: &[i64]) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "WITH marked AS (UPDATE outbox_rows SET published_at = now() \
                 WHERE id = ANY($1) AND published_at IS NULL \
                 RETURNING cardinality(ids) AS n) \
             SELECT coalesce(sum(n), 0)::int8 FROM marked",
        )
        .bind(ids)
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Events not yet published (the `outbox backlog` metric).
    pub async fn outbox_backlog(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT coalesce(sum(cardinality(ids)), 0)::int8 FROM outbox_rows \
             WHERE published_at IS NULL",
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_pack_into_rows_under_the_toast_threshold_in_order() {
        let small: Vec<OutboxEvent> = (0..100)
            .map(|i| OutboxEvent::new("run.succeeded", json!({"n": i, "pad": "x".repeat(100)})))
            .collect();
        let big = OutboxEvent::new("state.changed", json!({"v": "y".repeat(5000)}));
        let task = Uuid::now_v7();
        let mut events: Vec<(Option<Uuid>, &OutboxEvent)> =
            small.iter().map(|e| (Some(task), e)).collect();
        events.insert(50, (None, &big));
        let (counts, texts) = pack_rows(&events);
        assert_eq!(counts.iter().sum::<i32>(), 101);
        assert!(counts.len() > 1 && counts.len() < 101, "{counts:?}");
        let mut seen = Vec::new();
        for (n, text) in counts.iter().zip(&texts) {
            let rows: Vec<StoredEvent> = serde_json::from_str(text).expect("a row is JSON");
            assert_eq!(rows.len(), usize::try_from(*n).expect("a count"));
            if rows.len() > 1 {
                assert!(text.len() <= ROW_BYTES, "{} bytes", text.len());
            }
            seen.extend(rows);
        }
        let big_at = seen.iter().position(|e| e.event_type == "state.changed");
        assert_eq!(big_at, Some(50), "the large event keeps its place");
        assert_eq!(seen[50].task_uid, None);
        let ns: Vec<i64> = seen
            .iter()
            .filter_map(|e| e.payload["n"].as_i64())
            .collect();
        assert_eq!(ns, (0..100).collect::<Vec<_>>());
        assert!(seen.iter().filter(|e| e.task_uid == Some(task)).count() == 100);
    }
}
