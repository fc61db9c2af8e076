//! The store's errors, shaped so a caller can act on them.

/// What went wrong in the store.
///
/// Each message carries its cause and [`std::error::Error::source`] is `None`, so a chain
/// printed with `{:#}` (the CLI, anyhow) and a log line that prints only the message
/// (`error = %e`) both show the cause once. Going on to the driver's error in the chain would
/// not help: sqlx's own errors print their cause twice there
/// (`error communicating with database: X: X`).
#[derive(Debug)]
pub enum StoreError {
    /// The database could not be reached at all.
    Connect { url: String, source: sqlx::Error },
    /// Applying migrations failed.
    Migrate(sqlx::migrate::MigrateError),
    /// The row the caller named does not exist (or is already done).
    NotFound { what: String },
    /// The caller's attempt is no longer the current one: its lease expired and the
    /// occurrence was leased again (or finished) by someone else. Drop the result.
    StaleAttempt { id: i64, attempt: i32, current: i32 },
    /// A uniqueness or consistency rule would be broken (e.g. two live Tasks with one name).
    Conflict(String),
    /// This operator's leader epoch is no longer the current one (another replica became
    /// leader): the write was refused and nothing was written. See [`crate::Store::fenced`].
    Fenced { held: i64, current: i64 },
    /// Any other database error.
    Database(sqlx::Error),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Connect { url, source } => write!(
                f,
                "cannot connect to PostgreSQL at {url}: {source}; check the URL and that the \
                 server is running"
            ),
            StoreError::Migrate(e) => write!(f, "applying database migrations failed: {e}"),
            StoreError::NotFound { what } => write!(f, "{what} not found"),
            StoreError::StaleAttempt {
                id,
                attempt,
                current,
            } => write!(
                f,
                "due_work {id}: attempt {attempt} is stale (current attempt is {current}); the \
                 result was not recorded"
            ),
            StoreError::Conflict(what) => write!(f, "conflict: {what}"),
            StoreError::Fenced { held, current } => write!(
                f,
                "write refused: leader epoch {held} is stale (the current epoch is {current}); \
                 another operator replica leads"
            ),
            StoreError::Database(e) => write!(f, "database error: {e}"),
        }
    }
}

/// No `source`: every message already carries its cause (see [`StoreError`]).
impl std::error::Error for StoreError {}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(err)
    }
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

    /// The message and every source after it, as `{:#}` prints them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut parts = vec![e.to_string()];
        let mut next = e.source();
        while let Some(s) = next {
            parts.push(s.to_string());
            next = s.source();
        }
        parts.join(": ")
    }

    #[test]
    fn each_cause_prints_once() {
        let refused = || {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused by 127.0.0.1:1",
            ))
        };
        let cases = [
            (
                StoreError::Connect {
                    url: "postgres://ordinaut@127.0.0.1:1/db".into(),
                    source: refused(),
                },
                "cannot connect to PostgreSQL at postgres://ordinaut@127.0.0.1:1/db: error \
                 communicating with database: connection refused by 127.0.0.1:1; check the URL \
                 and that the server is running",
            ),
            (
                StoreError::from(sqlx::migrate::MigrateError::Execute(refused())),
                "applying database migrations failed: while executing migrations: error \
                 communicating with database: connection refused by 127.0.0.1:1",
            ),
            (
                StoreError::Database(refused()),
                "database error: error communicating with database: connection refused by \
                 127.0.0.1:1",
            ),
        ];
        for (error, printed) in cases {
            assert_eq!(chain(&error), printed);
            assert_eq!(chain(&error).matches("connection refused").count(), 1);
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
