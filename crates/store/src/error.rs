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
    /// This operator's leader epoch is no longer the current one (another replica became
    /// leader): the write was refused and nothing was written. See [`crate::Store::fenced`].
    #[error(
        "write refused: leader epoch {held} is stale (the current epoch is {current}); another operator replica leads"
    )]
    Fenced { held: i64, current: i64 },
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
    /// `true` for failures worth retrying later: the connection was lost or refused
    /// (PostgreSQL restarting, a network cut, an exhausted pool) or the statement lost a
    /// race PostgreSQL asks the client to retry (serialization failure, deadlock). Every
    /// write in this crate is idempotent or refuses stale attempts, so retrying one whose
    /// reply was lost is safe.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Database(e) => is_transient_sqlx(e),
            _ => false,
        }
    }

    /// The PostgreSQL SQLSTATE of a refused statement, if there is one.
    pub fn sqlstate(&self) -> Option<String> {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.code().map(|c| c.to_string()),
            _ => None,
        }
    }
}

/// Whether a driver error is worth retrying (see [`StoreError::is_transient`]).
pub(crate) fn is_transient_sqlx(e: &sqlx::Error) -> bool {
    match e {
        // The socket broke (server restarted or killed), the pool could not hand out a
        // connection in time, or the connection died mid-message.
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_transient_sqlstate(&c)),
        _ => false,
    }
}

/// SQLSTATEs that mean "try again": class 08 (connection exception), 57P01 (admin
/// shutdown), 57P02 (crash shutdown), 57P03 (cannot connect now: starting or stopping),
/// 40001 (serialization failure), 40P01 (deadlock detected), 53300 (too many connections).
pub(crate) fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_shutdown_and_retry_sqlstates_are_transient() {
        for code in [
            "08000", "08003", "08006", "08001", "57P01", "57P02", "57P03", "40001", "40P01",
            "53300",
        ] {
            assert!(is_transient_sqlstate(code), "{code}");
        }
        // Data errors (NUL in text: 22021, in jsonb: 22P05), constraint violations and
        // syntax errors are permanent: retrying cannot help.
        for code in ["22021", "22P05", "23505", "23514", "42601", "54000"] {
            assert!(!is_transient_sqlstate(code), "{code}");
        }
    }

    #[test]
    fn pool_and_socket_errors_are_transient_decode_errors_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(StoreError::Database(io).is_transient());
        assert!(StoreError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!StoreError::Database(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::Conflict("x".into()).is_transient());
    }
}
