//! Writes of agent memory ([`crate::state`]): put and delete with compare-and-set, and the
//! expiry pass. Each write locks the key's row (`FOR UPDATE`), so writers of one key take
//! turns and each sees the version the one before it left; in the same transaction it adds
//! the history row, trims the history, appends the audit entry and the `state.changed` event.

use crate::state::{
    EXPIRY_ACTOR, HISTORY_VERSIONS, LIVE, MAX_KEYS_PER_OWNER, MAX_TTL, MAX_VALUE_BYTES,
    STATE_TOPIC, StateEntry, StateError, StatePut, StateRef, check_key,
};
use crate::{OutboxEvent, Store};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::PgConnection;

const RETURNING: &str = "RETURNING namespace, owner, key, value, version, expires_at, created_at, updated_at, updated_by";

/// A key's row as a writer finds it (locked): its version and whether it reads as present.
struct Found {
    version: i64,
    live: bool,
}

/// What one write did, for its history row, audit entry and event.
struct Change<'a> {
    at: &'a StateRef,
    op: &'static str,
    old: Option<i64>,
    new: i64,
    value: Option<&'a Value>,
    expires_at: Option<chrono::DateTime<Utc>>,
    actor: &'a str,
    correlation_id: Option<&'a str>,
}

impl Store {
    /// Writes a key (see the contract in [`crate::state`]): the entry as written, with its
    /// new version, or [`StateError::Conflict`] naming the version found.
    pub async fn state_put(&self, put: &StatePut<'_>) -> Result<StateEntry, StateError> {
        check_key(&put.at.key)?;
        let bytes = put.value.to_string().len();
        if bytes > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge {
                key: put.at.key.clone(),
                bytes,
                max: MAX_VALUE_BYTES,
            });
        }
        if crate::state::has_nul(put.value) {
            return Err(StateError::NulInValue {
                key: put.at.key.clone(),
            });
        }
        let ttl = match put.ttl {
            None => None,
            Some(t) if t.as_secs() >= 1 && t <= MAX_TTL => Some(t.as_secs_f64()),
            Some(_) => return Err(StateError::InvalidTtl),
        };
        let expected = put.if_version;
        if expected.is_some_and(|v| v < 0) {
            return Err(StateError::InvalidVersion(expected.unwrap_or_default()));
        }
        let mut tx = self.pool.begin().await?;
        let found = match lock(&mut tx, put.at).await? {
            Some(f) => f,
            None => {
                check_expected(put.at, expected, None)?;
                check_capacity(&mut tx, put.at).await?;
                if let Some(entry) = insert(&mut tx, put, ttl).await? {
                    record(&mut tx, &change(put, &entry, None)).await?;
                    tx.commit().await?;
                    return Ok(entry);
                }
                // A concurrent writer created it first: take turns on its row.
                lock(&mut tx, put.at).await?.ok_or_else(|| {
                    StateError::Store(crate::StoreError::Conflict(format!(
                        "key {} vanished while being created; retry",
                        put.at
                    )))
                })?
            }
        };
        let current = found.live.then_some(found.version);
        check_expected(put.at, expected, current)?;
        if !found.live {
            check_capacity(&mut tx, put.at).await?;
        }
        let entry: StateEntry = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE state_entries SET value = $4, version = version + 1, \
                 expires_at = now() + make_interval(secs => $5), updated_at = now(), \
                 updated_by = $6 \
             WHERE namespace = $1 AND owner = $2 AND key = $3 {RETURNING}"
        )))
        .bind(&put.at.namespace)
        .bind(put.at.owner.to_string())
        .bind(&put.at.key)
        .bind(put.value)
        .bind(ttl)
        .bind(put.actor)
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, &change(put, &entry, current)).await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Deletes a key: its new (tombstone) version, or `None` when there was nothing to delete
    /// (missing, with `if_version` `None` or `Some(0)`). `Some(n)` deletes only version `n`.
    pub async fn state_delete(
        &self,
        at: &StateRef,
        if_version: Option<i64>,
        actor: &str,
        correlation_id: Option<&str>,
    ) -> Result<Option<i64>, StateError> {
        check_key(&at.key)?;
        let mut tx = self.pool.begin().await?;
        let current = lock(&mut tx, at)
            .await?
            .and_then(|f| f.live.then_some(f.version));
        let Some(old) = current else {
            return match if_version {
                Some(v) if v > 0 => Err(conflict(at, v, None)),
                _ => Ok(None),
            };
        };
        check_expected(at, if_version, current)?;
        let (new,): (i64,) = sqlx::query_as(
            "UPDATE state_entries SET value = NULL, version = version + 1, expires_at = NULL, \
                 updated_at = now(), updated_by = $4 \
             WHERE namespace = $1 AND owner = $2 AND key = $3 RETURNING version",
        )
        .bind(&at.namespace)
        .bind(at.owner.to_string())
        .bind(&at.key)
        .bind(actor)
        .fetch_one(&mut *tx)
        .await?;
        let change = Change {
            at,
            op: "delete",
            old: Some(old),
            new,
            value: None,
            expires_at: None,
            actor,
            correlation_id,
        };
        record(&mut tx, &change).await?;
        tx.commit().await?;
        Ok(Some(new))
    }
}

fn change<'a>(put: &'a StatePut<'a>, entry: &StateEntry, old: Option<i64>) -> Change<'a> {
    Change {
        at: put.at,
        op: "put",
        old,
        new: entry.version,
        value: Some(put.value),
        expires_at: entry.expires_at,
        actor: put.actor,
        correlation_id: put.correlation_id,
    }
}

fn conflict(at: &StateRef, expected: i64, current: Option<i64>) -> StateError {
    StateError::Conflict {
        key: at.key.clone(),
        expected,
        current,
    }
}

/// `Ok` when the key's current version (`None`: missing) satisfies `expected`.
fn check_expected(
    at: &StateRef,
    expected: Option<i64>,
    current: Option<i64>,
) -> Result<(), StateError> {
    match (expected, current) {
        (None, _) | (Some(0), None) => Ok(()),
        (Some(e), Some(c)) if e == c => Ok(()),
        (Some(e), c) => Err(conflict(at, e, c)),
    }
}

/// Locks the key's row, if there is one.
async fn lock(tx: &mut PgConnection, at: &StateRef) -> Result<Option<Found>, StateError> {
    let row: Option<(i64, bool)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT version, {LIVE} FROM state_entries \
         WHERE namespace = $1 AND owner = $2 AND key = $3 FOR UPDATE"
    )))
    .bind(&at.namespace)
    .bind(at.owner.to_string())
    .bind(&at.key)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|(version, live)| Found { version, live }))
}

/// Refuses a new live key past [`MAX_KEYS_PER_OWNER`]. Creations of one owner are serialized
/// (a transaction-scoped advisory lock on namespace and owner), so the count is exact.
async fn check_capacity(tx: &mut PgConnection, at: &StateRef) -> Result<(), StateError> {
    let owner = at.owner.to_string();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 7013))")
        .bind(&at.namespace)
        .bind(&owner)
        .execute(&mut *tx)
        .await?;
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM state_entries WHERE namespace = $1 AND owner = $2 AND {LIVE}"
    )))
    .bind(&at.namespace)
    .bind(&owner)
    .fetch_one(&mut *tx)
    .await?;
    if n >= MAX_KEYS_PER_OWNER {
        return Err(StateError::TooManyKeys {
            namespace: at.namespace.clone(),
            owner,
            max: MAX_KEYS_PER_OWNER,
        });
    }
    Ok(())
}

/// Creates the key at version 1; `None` when a concurrent writer created it first.
async fn insert(
    tx: &mut PgConnection,
    put: &StatePut<'_>,
    ttl: Option<f64>,
) -> Result<Option<StateEntry>, StateError> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO state_entries (namespace, owner, key, value, version, expires_at, updated_by) \
         VALUES ($1, $2, $3, $4, 1, now() + make_interval(secs => $5), $6) \
         ON CONFLICT (namespace, owner, key) DO NOTHING {RETURNING}"
    )))
    .bind(&put.at.namespace)
    .bind(put.at.owner.to_string())
    .bind(&put.at.key)
    .bind(put.value)
    .bind(ttl)
    .bind(put.actor)
    .fetch_optional(&mut *tx)
    .await?)
}

/// The history row (and the trim to [`HISTORY_VERSIONS`]), the audit entry and the event of
/// one write.
async fn record(tx: &mut PgConnection, c: &Change<'_>) -> Result<(), StateError> {
    let owner = c.at.owner.to_string();
    sqlx::query(
        "INSERT INTO state_history (namespace, owner, key, version, value, op, actor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&c.at.namespace)
    .bind(&owner)
    .bind(&c.at.key)
    .bind(c.new)
    .bind(c.value)
    .bind(c.op)
    .bind(c.actor)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM state_history WHERE namespace = $1 AND owner = $2 AND key = $3 \
           AND version <= $4",
    )
    .bind(&c.at.namespace)
    .bind(&owner)
    .bind(&c.at.key)
    .bind(c.new - HISTORY_VERSIONS)
    .execute(&mut *tx)
    .await?;
    // An expiry is not audited: no one acted.
    if c.op != "expire" {
        audit(tx, c, &owner).await?;
    }
    let event = changed_event(c, &owner);
    crate::events::insert_events_on(tx, &[(None, &event)]).await?;
    Ok(())
}

/// The audit entry of a write: actor, key, old and new version.
async fn audit(tx: &mut PgConnection, c: &Change<'_>, owner: &str) -> Result<(), StateError> {
    let detail = json!({
        "owner": owner, "key": c.at.key, "oldVersion": c.old, "newVersion": c.new,
        "expiresAt": c.expires_at,
    });
    sqlx::query(
        "INSERT INTO audit_log (actor, action, allowed, namespace, subject, detail, correlation_id) \
         VALUES ($1, $2, true, $3, $4, $5, $6)",
    )
    .bind(c.actor)
    .bind(format!("state.{}", c.op))
    .bind(&c.at.namespace)
    .bind(format!("{owner}/{}", c.at.key))
    .bind(&detail)
    .bind(c.correlation_id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The `state.changed` event: the envelope [`Store::publish_event`] writes (`event.published`
/// on the topic's stream), so Tasks `on: {topic: state.changed}` run on it.
fn changed_event(c: &Change<'_>, owner: &str) -> OutboxEvent {
    OutboxEvent {
        event_type: crate::PUBLISHED_EVENT_TYPE.to_string(),
        stream: Some(crate::topic_stream(STATE_TOPIC)),
        payload: json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "topic": STATE_TOPIC,
            "publishedAt": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            "source": c.actor,
            "data": {
                "namespace": c.at.namespace,
                "owner": owner,
                "key": c.at.key,
                "op": c.op,
                "oldVersion": c.old,
                "version": c.new,
                "expiresAt": c.expires_at,
                "actor": c.actor,
            },
        }),
    }
}

/// Turns up to `batch` live keys past their TTL into tombstones, with their history rows and
/// events. Returns how many.
pub(crate) async fn expire_batch(pool: &sqlx::PgPool, batch: i64) -> Result<u64, StateError> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "UPDATE state_entries e SET value = NULL, version = e.version + 1, expires_at = NULL, \
             updated_at = now(), updated_by = $2 \
         FROM (SELECT namespace, owner, key FROM state_entries \
               WHERE value IS NOT NULL AND expires_at <= now() \
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE e.namespace = due.namespace AND e.owner = due.owner AND e.key = due.key \
         RETURNING e.namespace, e.owner, e.key, e.version",
    )
    .bind(batch.max(0))
    .bind(EXPIRY_ACTOR)
    .fetch_all(&mut *tx)
    .await?;
    for (namespace, owner, key, version) in &rows {
        let Ok(owner) = crate::state::StateOwner::parse(owner) else {
            continue;
        };
        let at = StateRef::new(namespace, owner, key);
        let change = Change {
            at: &at,
            op: "expire",
            old: Some(version - 1),
            new: *version,
            value: None,
            expires_at: None,
            actor: EXPIRY_ACTOR,
            correlation_id: None,
        };
        record(&mut tx, &change).await?;
    }
    tx.commit().await?;
    Ok(rows.len() as u64)
}
