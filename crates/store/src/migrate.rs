//! Schema migrations (`migrations/` at the workspace root, embedded at build time).

use crate::{Store, StoreError};

/// The embedded migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Our own advisory lock key ("ordinaut" in ASCII), held while migrating. sqlx takes one
/// too; ours also covers the creation of sqlx's bookkeeping table.
const MIGRATION_LOCK: i64 = 0x6f72_6469_6e61_7574;

impl Store {
    /// Applies pending migrations, holding a PostgreSQL advisory lock so that several
    /// processes starting at once apply each migration exactly once (the others wait, then
    /// find nothing to do).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await?;
        let result = MIGRATOR.run(&mut *conn).await;
        let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *conn)
            .await;
        result?;
        unlock?;
        Ok(())
    }
}
