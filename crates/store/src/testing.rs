//! Test support: a fresh, migrated PostgreSQL database per test, dropped afterwards.
//!
//! The server comes from `ORDINAUT_TEST_DATABASE_URL` (a URL whose database is used only to
//! create and drop test databases), default `postgres://postgres@127.0.0.1:5432/postgres`.

mod postgres;
pub use postgres::{PrivatePostgres, Shutdown};

use crate::{Store, StoreError};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The admin URL tests create their databases through.
pub fn admin_url() -> String {
    std::env::var("ORDINAUT_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database that exists for one test. Dropped (with `FORCE`) when this value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// Creates an empty database with a unique name (no migrations applied).
    pub async fn empty() -> Result<Self, StoreError> {
        let admin = admin_url();
        let name = format!("ordinaut_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn =
            PgConnection::connect(&admin)
                .await
                .map_err(|source| StoreError::Connect {
                    url: crate::redact_url(&admin),
                    source,
                })?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await.ok();
        let url = match admin.rfind('/') {
            Some(slash) if admin[..slash].ends_with(|c: char| c != '/') => {
                let query = admin[slash..]
                    .find('?')
                    .map(|q| &admin[slash + q..])
                    .unwrap_or("");
                format!("{}/{name}{query}", &admin[..slash])
            }
            _ => format!("{}/{name}", admin.trim_end_matches('/')),
        };
        Ok(Self { name, url })
    }

    /// Creates a database with Ordinaut's schema applied and returns a store on it.
    pub async fn migrated() -> Result<(Self, Store), StoreError> {
        let db = Self::empty().await?;
        let store = Store::connect(&db.url, 16).await?;
        store.migrate().await?;
        Ok((db, store))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = admin_url();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a short-lived thread with its own runtime
        // works in both. Failure to clean up is not a test failure.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}
