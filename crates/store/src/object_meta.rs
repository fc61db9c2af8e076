//! `ordinaut dev`'s own bookkeeping, standing in for what the Kubernetes API server keeps:
//! each object's `metadata.uid` (stable per kind, namespace and name for the life of the
//! database), `generation` (bumped when its spec changes) and `creationTimestamp` (the
//! first time it was seen), plus the `snoozeUntil` a person set with `ordinaut task
//! snooze`, layered over the file's spec.
//!
//! The table belongs to dev mode only, so it is created by [`Store::ensure_dev_tables`]
//! rather than by the cluster's migrations; a database without it is not a dev instance's.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// The identity the dev source gives an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevIdentity {
    pub uid: Uuid,
    pub generation: i64,
    pub created_at: DateTime<Utc>,
}

/// A snooze set by a person on a Task of the dev instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevSnooze {
    pub namespace: String,
    pub name: String,
    pub until: DateTime<Utc>,
}

impl Store {
    /// Creates dev mode's table when missing.
    pub async fn ensure_dev_tables(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Two dev processes starting on one database must not race on CREATE TABLE.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('ordinaut_dev_objects'))")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS dev_objects ( \
                 kind         text        NOT NULL, \
                 namespace    text        NOT NULL, \
                 name         text        NOT NULL, \
                 uid          uuid        NOT NULL UNIQUE, \
                 generation   bigint      NOT NULL, \
                 spec         jsonb       NOT NULL, \
                 created_at   timestamptz NOT NULL DEFAULT now(), \
                 snooze_until timestamptz, \
                 PRIMARY KEY (kind, namespace, name))",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `true` when the database has dev mode's table (it belongs to an `ordinaut dev`).
    pub async fn is_dev_database(&self) -> Result<bool, StoreError> {
        let (found,): (bool,) = sqlx::query_as("SELECT to_regclass('dev_objects') IS NOT NULL")
            .fetch_one(&self.pool)
            .await?;
        Ok(found)
    }

    /// The identity of an object with this spec: a new uid and generation 1 the first time,
    /// the same uid afterwards, with the generation bumped when the spec differs from the
    /// one seen last (compared as JSON, so formatting and key order do not count).
    pub async fn dev_identity(
        &self,
        kind: &str,
        namespace: &str,
        name: &str,
        spec: &Value,
    ) -> Result<DevIdentity, StoreError> {
        let (uid, generation, created_at): (Uuid, i64, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO dev_objects (kind, namespace, name, uid, generation, spec) \
             VALUES ($1, $2, $3, $4, 1, $5) \
             ON CONFLICT (kind, namespace, name) DO UPDATE SET \
                 generation = dev_objects.generation \
                     + CASE WHEN dev_objects.spec = EXCLUDED.spec THEN 0 ELSE 1 END, \
                 spec = EXCLUDED.spec \
             RETURNING uid, generation, created_at",
        )
        .bind(kind)
        .bind(namespace)
        .bind(name)
        .bind(Uuid::new_v4())
        .bind(spec)
        .fetch_one(&self.pool)
        .await?;
        Ok(DevIdentity {
            uid,
            generation,
            created_at,
        })
    }

    /// Every snooze set with [`Store::set_dev_snooze`].
    pub async fn dev_snoozes(&self) -> Result<Vec<DevSnooze>, StoreError> {
        let rows: Vec<(String, String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT namespace, name, snooze_until FROM dev_objects \
             WHERE kind = 'Task' AND snooze_until IS NOT NULL ORDER BY namespace, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(namespace, name, until)| DevSnooze {
                namespace,
                name,
                until,
            })
            .collect())
    }

    /// Sets (or, with `None`, clears) the snooze of a Task the dev instance knows. `false`
    /// when it has never seen a Task of that name.
    pub async fn set_dev_snooze(
        &self,
        namespace: &str,
        name: &str,
        until: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE dev_objects SET snooze_until = $3 \
             WHERE kind = 'Task' AND namespace = $1 AND name = $2",
        )
        .bind(namespace)
        .bind(name)
        .bind(until)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}

impl Store {
    /// When the dev instance first saw the Task with this uid (its `creationTimestamp`, the
    /// anchor of its schedule); `None` when the database is not a dev instance's or the uid
    /// is not a dev object.
    pub async fn dev_created_at(&self, uid: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        if !self.is_dev_database().await? {
            return Ok(None);
        }
        let row: Option<(DateTime<Utc>,)> =
            sqlx::query_as("SELECT created_at FROM dev_objects WHERE uid = $1")
                .bind(uid)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(t,)| t))
    }
}
