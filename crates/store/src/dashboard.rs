//! What the gateway's dashboard reads besides the gateway's pages: the latest run of each of
//! the Tasks a viewer may see (the overview's "last run" column; the Tasks' `status` column
//! holds only what the operator owns, not the run summary).

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A Task's latest run.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LatestRun {
    pub namespace: String,
    pub name: String,
    pub id: Uuid,
    /// `succeeded`, `failed`, `cancelled`, `skipped`, `retrying`.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

impl Store {
    /// The latest run of each live Task named in `tasks` (namespace, name) that has one; one
    /// index probe per Task (`task_runs_task`).
    pub async fn latest_runs(
        &self,
        tasks: &[(String, String)],
    ) -> Result<Vec<LatestRun>, StoreError> {
        let (namespaces, names): (Vec<&str>, Vec<&str>) = tasks
            .iter()
            .map(|(ns, n)| (ns.as_str(), n.as_str()))
            .unzip();
        Ok(sqlx::query_as(
            "SELECT t.namespace, t.name, r.id, r.status, r.started_at, r.finished_at \
             FROM tasks t \
             JOIN unnest($1::text[], $2::text[]) AS w(namespace, name) \
               ON w.namespace = t.namespace AND w.name = t.name \
             CROSS JOIN LATERAL ( \
                 SELECT id, status, started_at, finished_at FROM task_runs \
                 WHERE task_uid = t.uid ORDER BY started_at DESC, id DESC LIMIT 1) r \
             WHERE t.deleted_at IS NULL",
        )
        .bind(&namespaces)
        .bind(&names)
        .fetch_all(&self.pool)
        .await?)
    }
}
