//! [`SqliteExecutor`]: user queries and run queues on an SQLite file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;
use rusqlite::types::ValueRef;

use super::connection::{self, CancelOnDrop, Canceller, Keeper, Unavailable, lock};
use super::{BUSY_TIMEOUT_MAX, ErrorChain};
use crate::collect::batch::OneAtATime;
use crate::collect::sql::{Cell, Executor, MAX_ROWS, QueryError, QueryFuture, Rows};
use crate::config::SqliteConfig;

/// The statements a query may start with. `Statement::readonly` alone would admit `BEGIN`,
/// `SAVEPOINT`, `ATTACH` and `DETACH`, which change the kept connection for later queries.
const ALLOWED_FIRST_WORDS: &[&str] = &["SELECT", "WITH", "VALUES", "PRAGMA", "EXPLAIN"];

/// Runs read-only queries on one SQLite database over one kept read-only connection.
///
/// Queries run on blocking threads, one at a time (later ones wait for their turn without a
/// thread, their timeout running while they wait). At its timeout a query is interrupted with
/// `sqlite3_interrupt`, so it stops rather than running on unobserved. A call that cannot be
/// interrupted (blocked opening or reading a hung file) makes later queries fail at once with
/// `Unavailable::Stuck` until it returns, rather than each parking a thread behind it.
pub struct SqliteExecutor {
    keeper: Arc<Mutex<Keeper>>,
    calls: OneAtATime,
    /// The database file, for errors raised while the keeper is locked by a stuck call.
    path: PathBuf,
}

impl SqliteExecutor {
    /// An executor for one configured database; connects on the first query.
    pub fn new(config: &SqliteConfig) -> Arc<Self> {
        let busy = config.timeout.min(BUSY_TIMEOUT_MAX);
        Arc::new(SqliteExecutor {
            keeper: Arc::new(Mutex::new(Keeper::new(config.path.clone(), busy))),
            calls: OneAtATime::new(&format!("sqlite/{} queries", config.name)),
            path: config.path.clone(),
        })
    }
}

impl Executor for SqliteExecutor {
    fn query(&self, sql: String, timeout: Duration) -> QueryFuture<'_> {
        let keeper = Arc::clone(&self.keeper);
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            let turn =
                match tokio::time::timeout_at(deadline.into(), self.calls.enter(timeout)).await {
                    Ok(Ok(turn)) => turn,
                    Ok(Err(running_for)) => {
                        let stuck = Unavailable::Stuck {
                            path: self.path.clone(),
                            running_for,
                        };
                        return Err(QueryError::Unavailable(ErrorChain(&stuck).to_string()));
                    }
                    Err(_) => return Err(QueryError::Timeout(timeout)),
                };
            let canceller = Canceller::default();
            // Cancels the query when it times out and when this future is dropped early.
            let _stop = CancelOnDrop(canceller.clone());
            let job = tokio::task::spawn_blocking(move || {
                let result = run(&keeper, &sql, deadline, timeout, &canceller);
                drop(turn);
                result
            });
            match tokio::time::timeout_at(deadline.into(), job).await {
                Ok(Ok(result)) => result,
                Ok(Err(err)) => Err(QueryError::Database(format!("query task failed: {err}"))),
                Err(_) => Err(QueryError::Timeout(timeout)),
            }
        })
    }
}

/// Runs one query on the kept connection. Blocking.
fn run(
    keeper: &Mutex<Keeper>,
    sql: &str,
    deadline: Instant,
    timeout: Duration,
    canceller: &Canceller,
) -> Result<Rows, QueryError> {
    let mut keeper = lock(keeper);
    if canceller.is_cancelled() || Instant::now() >= deadline {
        return Err(QueryError::Timeout(timeout));
    }
    let path = keeper.path().to_owned();
    let busy = keeper.busy();
    let unavailable = |err: Unavailable| QueryError::Unavailable(ErrorChain(&err).to_string());
    let meta = match connection::stat(&path) {
        Ok(meta) => meta,
        Err(err) => {
            keeper.reset();
            return Err(unavailable(err));
        }
    };
    let (conn, _) = keeper.connection(&meta).map_err(unavailable)?;
    let Some(running) = canceller.start(conn) else {
        return Err(QueryError::Timeout(timeout));
    };
    let result = query(conn, sql);
    drop(running);
    let in_transaction = !conn.is_autocommit();
    match result {
        Ok(rows) if !in_transaction => Ok(rows),
        Ok(_) => {
            keeper.reset();
            Err(QueryError::Database(
                "transaction control statements are not allowed".to_owned(),
            ))
        }
        Err(Failure::Rejected(reason)) => Err(QueryError::Database(reason.to_owned())),
        Err(Failure::Sqlite(err)) => {
            let code = err.sqlite_error_code();
            if code != Some(ErrorCode::OperationInterrupted) {
                // Cheap to reopen, and it drops whatever state the failure left.
                keeper.reset();
            }
            match code {
                Some(ErrorCode::OperationInterrupted) => Err(QueryError::Timeout(timeout)),
                Some(
                    ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::NotADatabase
                    | ErrorCode::CannotOpen
                    | ErrorCode::PermissionDenied,
                ) => Err(unavailable(Unavailable::from_sqlite(
                    &path, busy, timeout, err,
                ))),
                _ => Err(QueryError::Database(ErrorChain(&err).to_string())),
            }
        }
    }
}

/// Why [`query`] failed.
enum Failure {
    /// The statement is not one this executor runs.
    Rejected(&'static str),
    /// SQLite failed it.
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Failure::Sqlite(err)
    }
}

/// Prepares, checks and runs one statement, finalizing it before returning. Stops stepping
/// at [`MAX_ROWS`]: a larger result fails at the series cap anyway, and reading it whole
/// would hold it all in memory first.
fn query(conn: &rusqlite::Connection, sql: &str) -> Result<Rows, Failure> {
    // `prepare` rejects a second statement after the first (`MultipleStatement`).
    let mut statement = conn.prepare(sql)?;
    if !statement.readonly() {
        return Err(Failure::Rejected("only read-only statements are allowed"));
    }
    let first = first_word(sql).to_ascii_uppercase();
    if !ALLOWED_FIRST_WORDS.contains(&first.as_str()) {
        return Err(Failure::Rejected(
            "only SELECT, WITH, VALUES, PRAGMA or EXPLAIN statements are allowed",
        ));
    }
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = statement.query([])?;
    while rows.len() < MAX_ROWS
        && let Some(row) = cursor.next()?
    {
        let mut cells = Vec::with_capacity(width);
        for index in 0..width {
            cells.push(cell(row.get_ref(index)?));
        }
        rows.push(cells);
    }
    Ok(Rows { columns, rows })
}

/// A value as a [`Cell`]. SQLite has no timestamp type: timestamps arrive as text (ISO 8601)
/// or numbers (Unix time, Julian day) and are converted by the query layer. A blob becomes
/// text, invalid UTF-8 replaced.
fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(int) => Cell::Int(int),
        ValueRef::Real(float) => Cell::Float(float),
        ValueRef::Text(text) | ValueRef::Blob(text) => {
            Cell::Text(String::from_utf8_lossy(text).into_owned())
        }
    }
}

/// The first word of `sql`, after whitespace and comments.
fn first_word(sql: &str) -> &str {
    let mut rest = sql;
    loop {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::first_word;

    #[test]
    fn first_word_skips_comments() {
        assert_eq!(first_word("  -- note\n /* x */ select 1"), "select");
        assert_eq!(first_word("WITH a AS (SELECT 1) SELECT * FROM a"), "WITH");
        assert_eq!(first_word("begin;"), "begin");
        assert_eq!(first_word("-- only a comment"), "");
    }
}
