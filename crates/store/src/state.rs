//! Agent memory: durable key-value state scoped by namespace and owner (an Agent or a Task),
//! shared by agents (gateway, MCP), pipelines (`core.state.get` / `core.state.put`) and
//! people (`ordinaut state`). Migration 0013 holds the tables.
//!
//! # The contract
//! * A key belongs to an owner in a namespace ([`StateOwner`]): `agent:<name>` or
//!   `task:<name>`. A pipeline writes as its Task's Agent when the Task names one, else as
//!   the Task itself.
//! * Each key has a version: 1 when first written, one more per write (a delete or an expiry
//!   is a write too). Versions of a key never repeat, even across a delete: the deleted key
//!   stays as a tombstone for [`TOMBSTONE_RETENTION`].
//! * Compare-and-set ([`StatePut::if_version`]): `None` writes whatever is there; `Some(0)`
//!   creates the key only if it is missing (absent, deleted or expired); `Some(n)` writes only
//!   if the key exists at version `n`. Writers of one key are serialized by its row lock, so
//!   of any number of concurrent writers with the same `ifVersion` exactly one wins; every
//!   other one gets [`StateError::Conflict`] naming the version it found.
//! * A TTL applies to one write: the key reads as missing from `expires_at` on, whatever the
//!   pruner has done; a later write without a TTL keeps the key forever.
//! * Limits ([`MAX_KEY_BYTES`], [`MAX_VALUE_BYTES`], [`MAX_KEYS_PER_OWNER`]) are refused with
//!   an error naming the limit and what to do.
//! * Every write is audited (`audit_log`: actor, key, old and new version) and announced as an
//!   event on topic [`STATE_TOPIC`] (the `event.published` envelope of
//!   [`crate::Store::publish_event`], so an `on: {topic: state.changed}` Task runs on it) in
//!   the transaction that makes it. The event carries the key and versions, not the value.
//! * The last [`HISTORY_VERSIONS`] versions of each key are kept ([`Store::state_history`]).
//! * Deleting an Agent or a Task keeps its keys: state is data (a cursor, a report already
//!   sent) and an Agent applied again by GitOps picks it up where it left. TTLs still apply;
//!   `ordinaut state delete` or the gateway remove keys.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest value (compact JSON), in bytes. Larger things belong in a real store; keep a
/// reference here. Raise by changing this constant (values are `jsonb`, which allows far
/// more, at the cost of every read and history row).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most live keys one owner may hold in a namespace (tombstones do not count). Raise by
/// changing this constant; the count is checked when a key is created.
pub const MAX_KEYS_PER_OWNER: i64 = 10_000;
/// Versions of each key kept in `state_history`, the current one included.
pub const HISTORY_VERSIONS: i64 = 5;
/// How long a deleted or expired key's tombstone (and history) is kept.
pub const TOMBSTONE_RETENTION: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// Longest TTL.
pub const MAX_TTL: std::time::Duration = std::time::Duration::from_secs(10 * 365 * 86_400);
/// The topic `state.changed` events are published on.
pub const STATE_TOPIC: &str = "state.changed";
/// The actor of expiries.
pub const EXPIRY_ACTOR: &str = "expiry";

/// Who a key belongs to (within a namespace).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateOwner {
    Agent(String),
    Task(String),
}

impl StateOwner {
    /// Reads `agent:<name>` or `task:<name>`.
    pub fn parse(text: &str) -> Result<Self, StateError> {
        let bad = |reason: &str| StateError::InvalidOwner {
            owner: text.to_string(),
            reason: reason.to_string(),
        };
        let (kind, name) = text
            .split_once(':')
            .ok_or_else(|| bad("write `agent:<name>` or `task:<name>`"))?;
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !ok {
            return Err(bad(
                "the name must be a Kubernetes object name (lowercase letters, digits, `-`, `.`)",
            ));
        }
        match kind {
            "agent" => Ok(StateOwner::Agent(name.to_string())),
            "task" => Ok(StateOwner::Task(name.to_string())),
            _ => Err(bad("the kind must be `agent` or `task`")),
        }
    }
}

impl std::fmt::Display for StateOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateOwner::Agent(n) => write!(f, "agent:{n}"),
            StateOwner::Task(n) => write!(f, "task:{n}"),
        }
    }
}

/// One key: namespace, owner, key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRef {
    pub namespace: String,
    pub owner: StateOwner,
    pub key: String,
}

impl StateRef {
    pub fn new(namespace: &str, owner: StateOwner, key: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            owner,
            key: key.to_string(),
        }
    }
}

impl std::fmt::Display for StateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.owner, self.key)
    }
}

/// `Ok` when `key` is 1 to [`MAX_KEY_BYTES`] bytes of letters, digits, `.`, `_`, `-` and
/// `/`, starting with a letter or digit (`cursors/inbox`, `report.last-week`).
pub fn check_key(key: &str) -> Result<(), StateError> {
    let first_ok = key.starts_with(|c: char| c.is_ascii_alphanumeric());
    let rest_ok = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if first_ok && rest_ok && key.len() <= MAX_KEY_BYTES {
        return Ok(());
    }
    Err(StateError::InvalidKey {
        key: key.chars().take(80).collect(),
        reason: format!(
            "use 1 to {MAX_KEY_BYTES} letters, digits, `.`, `_`, `-` or `/`, starting with a \
             letter or digit (e.g. `cursors/inbox`)"
        ),
    })
}

/// What went wrong with a state operation.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("key `{key}` is not valid: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("owner `{owner}` is not valid: {reason}")]
    InvalidOwner { owner: String, reason: String },
    #[error(
        "the value of `{key}` is {bytes} bytes, more than the limit of {max}; store a smaller \
         value or a reference to where the data lives"
    )]
    ValueTooLarge {
        key: String,
        bytes: usize,
        max: usize,
    },
    #[error(
        "{owner} already holds {max} keys in namespace `{namespace}` (the limit); delete keys \
         it no longer needs, or give them a TTL"
    )]
    TooManyKeys {
        namespace: String,
        owner: String,
        max: i64,
    },
    #[error(
        "the value of `{key}` holds a NUL character (\\u0000), which PostgreSQL cannot store; \
         remove it or encode the data (e.g. base64)"
    )]
    NulInValue { key: String },
    #[error("ifVersion must be 0 (create only if missing) or a version a read returned, not {0}")]
    InvalidVersion(i64),
    #[error("ttl must be between 1 second and {} days", MAX_TTL.as_secs() / 86_400)]
    InvalidTtl,
    #[error("{}", conflict_message(.key, *.expected, *.current))]
    Conflict {
        key: String,
        /// The `ifVersion` asked for (0: "must be missing").
        expected: i64,
        /// The key's version now; `None` when it is missing.
        current: Option<i64>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn conflict_message(key: &str, expected: i64, current: Option<i64>) -> String {
    match (expected, current) {
        (0, Some(v)) => format!(
            "conflict: key `{key}` exists (current version {v}) and ifVersion 0 creates only a \
             missing key; read it and write with ifVersion {v}"
        ),
        (e, Some(v)) => format!(
            "conflict: key `{key}` is at version {v}, not {e}: someone else wrote it; read it \
             again and retry with ifVersion {v}"
        ),
        (e, None) => format!(
            "conflict: key `{key}` does not exist (asked for version {e}); write it with \
             ifVersion 0 to create it"
        ),
    }
}

impl From<sqlx::Error> for StateError {
    fn from(e: sqlx::Error) -> Self {
        StateError::Store(e.into())
    }
}

/// A live key with its value.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEntry {
    pub namespace: String,
    pub owner: String,
    pub key: String,
    pub value: Value,
    pub version: i64,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The actor of the last write.
    pub updated_by: String,
}

/// One kept version of a key (`value` is `None` for a delete or an expiry).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateVersion {
    pub version: i64,
    pub value: Option<Value>,
    /// `put`, `delete` or `expire`.
    pub op: String,
    pub at: DateTime<Utc>,
    pub actor: String,
}

/// A write.
#[derive(Debug, Clone)]
pub struct StatePut<'a> {
    pub at: &'a StateRef,
    pub value: &'a Value,
    /// Compare-and-set: `None` unconditional, `Some(0)` only if missing, `Some(n)` only if
    /// at version `n`.
    pub if_version: Option<i64>,
    /// The key reads as missing this long after the write; `None`: never.
    pub ttl: Option<std::time::Duration>,
    /// Who writes (`agent:team/bot`, `task:team/report`, `cli:alice`, `admin`).
    pub actor: &'a str,
    /// The request's correlation id, for the audit entry.
    pub correlation_id: Option<&'a str>,
}

/// Which keys [`Store::state_list`] returns.
#[derive(Debug, Clone, Default)]
pub struct StateQuery {
    pub namespace: String,
    /// Only this owner's keys; all owners of the namespace when `None`.
    pub owner: Option<StateOwner>,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Keyset cursor: only keys after this (owner, key).
    pub after: Option<(String, String)>,
    /// At most this many, by owner and key.
    pub limit: i64,
}

/// What [`Store::prune_state`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatePruned {
    /// Live keys past their TTL turned into tombstones.
    pub expired: u64,
    /// Tombstones older than [`TOMBSTONE_RETENTION`] removed with their history.
    pub tombstones: u64,
}

const ENTRY_COLUMNS: &str =
    "namespace, owner, key, value, version, expires_at, created_at, updated_at, updated_by";

/// The condition of a key that reads as present.
pub(crate) const LIVE: &str = "value IS NOT NULL AND (expires_at IS NULL OR expires_at > now())";

impl Store {
    /// The key's value and version; `None` when it is missing (never written, deleted or
    /// expired).
    pub async fn state_get(&self, at: &StateRef) -> Result<Option<StateEntry>, StateError> {
        check_key(&at.key)?;
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM state_entries \
             WHERE namespace = $1 AND owner = $2 AND key = $3 AND {LIVE}"
        )))
        .bind(&at.namespace)
        .bind(at.owner.to_string())
        .bind(&at.key)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Live keys matching `query`, by owner and key (values included).
    pub async fn state_list(&self, query: &StateQuery) -> Result<Vec<StateEntry>, StateError> {
        let (after_owner, after_key) = match &query.after {
            Some((o, k)) => (Some(o.as_str()), Some(k.as_str())),
            None => (None, None),
        };
        // `starts_with` rather than LIKE: keys may hold `_`, a LIKE wildcard.
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY_COLUMNS} FROM state_entries \
             WHERE namespace = $1 AND ($2::text IS NULL OR owner = $2) \
               AND ($3::text IS NULL OR starts_with(key, $3)) \
               AND ($4::text IS NULL OR (owner, key) > ($4, $5::text)) AND {LIVE} \
             ORDER BY owner, key LIMIT $6"
        )))
        .bind(&query.namespace)
        .bind(query.owner.as_ref().map(ToString::to_string))
        .bind(query.prefix.as_deref())
        .bind(after_owner)
        .bind(after_key)
        .bind(query.limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }

    /// The kept versions of a key, newest first (deletes and expiries included).
    pub async fn state_history(&self, at: &StateRef) -> Result<Vec<StateVersion>, StateError> {
        Ok(sqlx::query_as(
            "SELECT version, value, op, at, actor FROM state_history \
             WHERE namespace = $1 AND owner = $2 AND key = $3 ORDER BY version DESC",
        )
        .bind(&at.namespace)
        .bind(at.owner.to_string())
        .bind(&at.key)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One retention pass of at most `batch` rows per kind: live keys past their TTL become
    /// tombstones (a version with its history row and `state.changed` event, not audited:
    /// no one acted), and tombstones older than [`TOMBSTONE_RETENTION`] are removed with
    /// their history. Small batches keep each transaction short; call it periodically (the
    /// worker's reaper tick does) and again while it returns full batches.
    pub async fn prune_state(&self, batch: i64) -> Result<StatePruned, StateError> {
        let expired = crate::state_write::expire_batch(&self.pool, batch).await?;
        let retention = TOMBSTONE_RETENTION.as_secs_f64();
        let mut tx = self.pool.begin().await?;
        let gone: Vec<(String, String, String)> = sqlx::query_as(
            "DELETE FROM state_entries WHERE (namespace, owner, key) IN ( \
                 SELECT namespace, owner, key FROM state_entries \
                 WHERE value IS NULL AND updated_at < now() - make_interval(secs => $1) \
                 ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING namespace, owner, key",
        )
        .bind(retention)
        .bind(batch.max(0))
        .fetch_all(&mut *tx)
        .await?;
        if !gone.is_empty() {
            let (ns, owners, keys) = unzip3(&gone);
            sqlx::query(
                "DELETE FROM state_history h USING unnest($1::text[], $2::text[], $3::text[]) \
                     AS g(namespace, owner, key) \
                 WHERE h.namespace = g.namespace AND h.owner = g.owner AND h.key = g.key",
            )
            .bind(&ns)
            .bind(&owners)
            .bind(&keys)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(StatePruned {
            expired,
            tombstones: gone.len() as u64,
        })
    }
}

/// Whether a string or object key anywhere in `v` holds a NUL character.
pub(crate) fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

pub(crate) fn unzip3(rows: &[(String, String, String)]) -> (Vec<&str>, Vec<&str>, Vec<&str>) {
    let mut a = Vec::with_capacity(rows.len());
    let mut b = Vec::with_capacity(rows.len());
    let mut c = Vec::with_capacity(rows.len());
    for (x, y, z) in rows {
        a.push(x.as_str());
        b.push(y.as_str());
        c.push(z.as_str());
    }
    (a, b, c)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn owners_read_and_print_the_same() {
        for text in ["agent:bot", "task:daily-report"] {
            assert_eq!(StateOwner::parse(text).unwrap().to_string(), text);
        }
        for bad in ["bot", "agent:", "pod:x", "agent:Bot", "task:a b"] {
            assert!(StateOwner::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_checked_with_the_rule_in_the_message() {
        for ok in ["cursor", "cursors/inbox", "report.last_week-2", "9"] {
            assert!(check_key(ok).is_ok(), "{ok}");
        }
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in ["", "/x", ".x", "a b", "a:b", "ключ", long.as_str()] {
            let err = check_key(bad).unwrap_err().to_string();
            assert!(err.contains("letters, digits"), "{bad}: {err}");
        }
    }

    #[test]
    fn conflicts_name_the_current_version_and_the_fix() {
        let e = StateError::Conflict {
            key: "k".into(),
            expected: 3,
            current: Some(4),
        };
        assert!(e.to_string().contains("version 4, not 3"), "{e}");
        assert!(e.to_string().contains("ifVersion 4"), "{e}");
        let e = StateError::Conflict {
            key: "k".into(),
            expected: 0,
            current: Some(1),
        };
        assert!(e.to_string().contains("current version 1"), "{e}");
        let e = StateError::Conflict {
            key: "k".into(),
            expected: 2,
            current: None,
        };
        assert!(e.to_string().contains("does not exist"), "{e}");
    }
}
