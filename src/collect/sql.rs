//! What the SQL sources have in common: result rows, cells, and the executor interface that
//! user queries and run queues run through, whichever database they target.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::query::MAX_SERIES_PER_METRIC;

/// The most rows an executor reads of one result: one past the series cap, so the cap's check still fails the query.
pub const MAX_ROWS: usize = MAX_SERIES_PER_METRIC + 1;

/// One value of a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text, including PostgreSQL values in text format (numbers, timestamps, booleans).
    Text(String),
}

/// A query result: column names and rows of cells, in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, as the database reports them.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

impl Rows {
    /// The index of a column, by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The source is not connected (PostgreSQL down, SQLite file missing or locked).
    #[error("not connected: {0}")]
    Unavailable(String),
    /// The query ran past its timeout and was cancelled.
    #[error("cancelled after the {0:?} timeout")]
    Timeout(Duration),
    /// The database rejected or failed the query.
    #[error("{0}")]
    Database(String),
    /// PostgreSQL rejected or failed the query (its SQLSTATE and message, or the I/O cause).
    #[error(transparent)]
    Postgres(#[from] super::postgres::error::PgError),
}

/// The future an executor returns.
pub type QueryFuture<'a> = Pin<Box<dyn Future<Output = Result<Rows, QueryError>> + Send + 'a>>;

/// Runs read-only SQL against one configured target.
pub trait Executor: Send + Sync + 'static {
    /// Runs `sql`, cancelling it on the server once `timeout` has passed.
    fn query(&self, sql: String, timeout: Duration) -> QueryFuture<'_>;
}
