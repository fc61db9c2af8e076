//! The store's errors, shaped so a caller can act on them.

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached at all.
    #[error(
        "cannot connect to PostgreSQL at {url}: {source}; check the URL and that the server is running"
    )]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// Applying migrations failed.
    #[error("applying database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The row the caller named does not exist (or is already done).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The caller's attempt is no longer the current one: its lease expired and the
    /// occurrence was leased again (or finished) by someone else. Drop the result.
    #[error(
        "due_work {id}: attempt {attempt} is stale (current attempt is {current}); the result was not recorded"
    )]
    StaleAttempt { id: i64, attempt: i32, current: i32 },
    /// A uniqueness or consistency rule would be broken (e.g. two live Tasks with one name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_string());
        }
        StoreError::Database(err)
    }
}

impl StoreError {
    /// `true` for failures worth retrying later (connection loss, pool exhaustion).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed
            ),
            _ => false,
        }
    }
}
