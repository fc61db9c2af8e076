//! PostgreSQL: counting rows, waiting on a count, and a scratch database for a benchmark.
//! A test's own database is [`crate::TestDb`] (the store's `testing` feature).

use std::time::Duration;

use ordinaut_store::Store;
use sqlx::Connection;

/// The single `bigint` `sql` returns (e.g. `SELECT count(*) FROM due_work`).
pub async fn count(store: &Store, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("`{sql}`: {e}"));
    n
}

/// Polls `sql` (a count) until it equals `want`; panics with the last value after `limit`.
pub async fn wait_for_count(store: &Store, sql: &str, want: i64, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let got = count(store, sql).await;
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for `{sql}` = {want} (got {got})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh database with Ordinaut's schema for a benchmark, on the server of an admin URL;
/// [`ScratchDb::drop_db`] drops it.
pub struct ScratchDb {
    pub name: String,
    pub url: String,
    pub store: Store,
    admin_url: String,
}

impl ScratchDb {
    /// Creates `{prefix}_{uuid}` on the server of `admin_url`, migrates it and connects a
    /// store with `pool` connections. Its URL keeps the admin URL's parameters and, without
    /// an `sslmode`, says `sslmode=disable`: peers measured in the same run (node-postgres)
    /// talk plain TCP unless told otherwise, and so must Ordinaut for a fair comparison.
    pub async fn create(admin_url: &str, prefix: &str, pool: u32) -> Self {
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("admin connection");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create database");
        let _ = admin.close().await;
        let url = db_url(admin_url, &name);
        let store = Store::connect(&url, pool).await.expect("connect");
        store.migrate().await.expect("migrate");
        Self {
            name,
            url,
            store,
            admin_url: admin_url.to_string(),
        }
    }

    /// Closes the store's pool and drops the database (a failure is ignored).
    pub async fn drop_db(self) {
        self.store.pool().close().await;
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut admin)
            .await;
        }
    }
}

/// The URL of database `name` on the server of `admin_url`, keeping its parameters, with
/// `sslmode=disable` unless it names one.
pub fn db_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("//").map_or(0, |j| j + 1) => &base[..i],
        _ => base,
    };
    let query = match query {
        Some(q) if q.split('&').any(|kv| kv.starts_with("sslmode=")) => q.to_string(),
        Some(q) => format!("{q}&sslmode=disable"),
        None => "sslmode=disable".to_string(),
    };
    format!("{base}/{name}?{query}")
}

#[cfg(test)]
mod tests {
    use super::db_url;

    #[test]
    fn db_url_replaces_the_database_and_keeps_parameters() {
        assert_eq!(
            db_url("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            db_url("postgres://u@h/postgres?sslmode=require&a=b", "x"),
            "postgres://u@h/x?sslmode=require&a=b"
        );
        assert_eq!(
            db_url("postgres://u@h?a=b", "x"),
            "postgres://u@h/x?a=b&sslmode=disable"
        );
    }
}
