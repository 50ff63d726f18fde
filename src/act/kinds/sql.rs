//! `sql:` runs one named maintenance operation on a configured database. There is no free
//! SQL: every statement is written here, and table and index names are identifiers checked
//! when the configuration loads and quoted as identifiers.
//!
//! ```yaml
//! sql: {target: postgres/main, vacuum_analyze: {tables: [runs, jobs]}}   # no tables: all
//! sql: {target: postgres/main, analyze: {tables: [public.runs]}}
//! sql: {target: postgres/main, reindex_concurrently: {index: runs_started_idx}}
//! sql: {target: postgres/main, terminate_idle: {older_than: 1h, database: app,
//!                                               max_sessions: 10, states: [idle]}}
//! sql: {target: postgres/main, cancel_long_queries: {older_than: 10m, database: app}}
//! sql: {target: sqlite/jobs, vacuum: {}}           # also analyze, optimize,
//! sql: {target: sqlite/jobs, wal_checkpoint: {}}   # integrity_check
//! ```
//!
//! PostgreSQL (pitfalls 17 and 18 of the remediation notes): each run opens its own
//! short-lived session (`application_name` [`APPLICATION_NAME`]) with `statement_timeout`
//! (the `statement_timeout:` key, default [`DEFAULT_STATEMENT_TIMEOUT`]) and
//! [`LOCK_TIMEOUT`] set, in autocommit (VACUUM and `REINDEX CONCURRENTLY` refuse a
//! transaction block). VACUUM is always plain `VACUUM (ANALYZE)`, never FULL. Sessions are
//! terminated or cancelled only when they are client backends of the named database in the
//! named states, older than `older_than`, not warden's own (`application_name` starting with
//! `warden`) and not this session; oldest first, at most `max_sessions`; their pids and users
//! go into the summary. On cancellation the running statement is cancelled on the server.
//!
//! SQLite: the file is opened read-write (never created) in a blocking task with a busy
//! timeout of [`LOCK_TIMEOUT`]; cancellation interrupts the statement (`sqlite3_interrupt`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

use super::{ActionError, JobContext, Kind, Outcome, ParseContext, Registration, RunFuture};
use crate::config::{PostgresConfig, Problems, SqliteConfig, Target, is_identifier};

/// The registration line in [`super::KINDS`].
pub const KIND: Registration = Registration { key: "sql", parse };

/// The `application_name` of an action's session. It starts with `warden`, so a
/// `terminate_idle` never ends another action's session either.
pub const APPLICATION_NAME: &str = "warden-action";

/// Sessions whose `application_name` starts with this are never terminated or cancelled:
/// warden's monitoring, backup and action sessions.
pub const PROTECTED_PREFIX: &str = "warden";

/// How long a statement waits for a lock (PostgreSQL `lock_timeout`, SQLite busy timeout):
/// maintenance must not queue behind, and then in front of, the application's traffic.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// `statement_timeout` unless set: a VACUUM of a large table takes minutes.
pub const DEFAULT_STATEMENT_TIMEOUT: &str = "30m";

/// Sessions terminated or cancelled per run unless `max_sessions` says otherwise.
pub const DEFAULT_MAX_SESSIONS: u32 = 10;

/// The most `max_sessions` may allow.
pub const MAX_SESSIONS: u32 = 1000;

/// The longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// The states `terminate_idle` may name; its default is the first two.
const IDLE_STATES: [&str; 3] = [
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
];

/// Lines of a failed integrity check shown.
const INTEGRITY_LINES: usize = 10;

/// The operation fields only tell `deny_unknown_fields` the keys: each operation is read from
/// the mapping, so a key given as `null` (`vacuum:`) still counts as present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "operations are read from the mapping")]
struct RawSql {
    target: String,
    #[serde(default, deserialize_with = "crate::config::lenient::duration")]
    statement_timeout: Option<String>,
    vacuum_analyze: Option<Value>,
    analyze: Option<Value>,
    reindex_concurrently: Option<Value>,
    terminate_idle: Option<Value>,
    cancel_long_queries: Option<Value>,
    vacuum: Option<Value>,
    optimize: Option<Value>,
    wal_checkpoint: Option<Value>,
    integrity_check: Option<Value>,
}

/// The operation keys, each with the targets it applies to.
const OPERATIONS: [(&str, &[&str]); 9] = [
    ("vacuum_analyze", &["postgres"]),
    ("analyze", &["postgres", "sqlite"]),
    ("reindex_concurrently", &["postgres"]),
    ("terminate_idle", &["postgres"]),
    ("cancel_long_queries", &["postgres"]),
    ("vacuum", &["sqlite"]),
    ("optimize", &["sqlite"]),
    ("wal_checkpoint", &["sqlite"]),
    ("integrity_check", &["sqlite"]),
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTables {
    #[serde(default)]
    tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIndex {
    index: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerminate {
    #[serde(deserialize_with = "crate::config::lenient::required_duration")]
    older_than: String,
    database: Option<String>,
    max_sessions: Option<u32>,
    states: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCancel {
    #[serde(deserialize_with = "crate::config::lenient::required_duration")]
    older_than: String,
    database: Option<String>,
    max_sessions: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNothing {}

/// Which sessions `terminate_idle` or `cancel_long_queries` touches.
#[derive(Debug, Clone)]
struct Sessions {
    older_than: Duration,
    database: String,
    max: u32,
    /// `terminate_idle`'s states; `cancel_long_queries` looks at `active` ones.
    states: Vec<String>,
}

#[derive(Debug, Clone)]
enum Operation {
    VacuumAnalyze(Vec<String>),
    Analyze(Vec<String>),
    Reindex(String),
    Terminate(Sessions),
    CancelQueries(Sessions),
    SqliteVacuum,
    SqliteAnalyze(Vec<String>),
    SqliteOptimize,
    WalCheckpoint,
    IntegrityCheck,
}

/// A validated `sql` action.
#[derive(Debug)]
pub struct SqlAction {
    target: Target,
    database: Database,
    operation: Operation,
    statement_timeout: Duration,
}

#[derive(Debug)]
enum Database {
    Postgres(PostgresConfig),
    Sqlite(SqliteConfig),
}

fn parse(
    value: &Value,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let before = problems.0.len();
    let raw: RawSql = super::deserialize(value, path, problems)?;
    let target = context
        .sources
        .parse_target(&raw.target, &format!("{path}.target"), problems);
    let (family, database) = match &target {
        Some(Target::Postgres(name)) => (
            "postgres",
            context
                .sources
                .postgres_named(name)
                .cloned()
                .map(Database::Postgres),
        ),
        Some(Target::Sqlite(name)) => (
            "sqlite",
            context
                .sources
                .sqlite_named(name)
                .cloned()
                .map(Database::Sqlite),
        ),
        None => ("", None),
    };
    let map = value.as_object().cloned().unwrap_or_default();
    let present: Vec<&(&str, &[&str])> = OPERATIONS
        .iter()
        .filter(|(key, _)| map.contains_key(*key))
        .collect();
    let (key, families) = match present.as_slice() {
        [one] => **one,
        [] => {
            let names: Vec<&str> = OPERATIONS.iter().map(|(k, _)| *k).collect();
            problems.push(
                path,
                format!(
                    "names no operation: set exactly one of {}",
                    names.join(", ")
                ),
            );
            return None;
        }
        several => {
            let names: Vec<&str> = several.iter().map(|(k, _)| *k).collect();
            problems.push(
                path,
                format!(
                    "sets {}: an action runs exactly one operation",
                    names.join(" and ")
                ),
            );
            return None;
        }
    };
    let op_path = format!("{path}.{key}");
    if !family.is_empty() && !families.contains(&family) {
        problems.push(
            &op_path,
            format!(
                "is not an operation on {family} (target {}): it applies to {}",
                raw.target,
                families.join(" and ")
            ),
        );
        return None;
    }
    if family == "sqlite" && raw.statement_timeout.is_some() {
        problems.push(
            format!("{path}.statement_timeout"),
            "applies to postgres targets only (SQLite statements stop at the action's timeout)",
        );
    }
    let statement_timeout = crate::config::duration(
        raw.statement_timeout,
        DEFAULT_STATEMENT_TIMEOUT,
        &format!("{path}.statement_timeout"),
        problems,
    );
    let body = match &map[key] {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    let default_database = match &database {
        Some(Database::Postgres(pg)) => pg.database.clone(),
        _ => String::new(),
    };
    let operation = match (key, family) {
        ("vacuum_analyze", _) => Operation::VacuumAnalyze(tables(&body, &op_path, problems)?),
        ("analyze", "sqlite") => Operation::SqliteAnalyze(tables(&body, &op_path, problems)?),
        ("analyze", _) => Operation::Analyze(tables(&body, &op_path, problems)?),
        ("reindex_concurrently", _) => {
            let raw: RawIndex = super::deserialize(&body, &op_path, problems)?;
            identifier(&raw.index, &format!("{op_path}.index"), problems);
            Operation::Reindex(raw.index)
        }
        ("terminate_idle", _) => {
            let raw: RawTerminate = super::deserialize(&body, &op_path, problems)?;
            let states = raw
                .states
                .unwrap_or_else(|| IDLE_STATES[..2].iter().map(|s| (*s).to_owned()).collect());
            if states.is_empty() {
                problems.push(format!("{op_path}.states"), "must name at least one state");
            }
            for (i, state) in states.iter().enumerate() {
                if !IDLE_STATES.contains(&state.as_str()) {
                    problems.push(
                        format!("{op_path}.states[{i}]"),
                        format!(
                            "`{state}` is not one of {} (cancel_long_queries handles active sessions)",
                            IDLE_STATES.join(", ")
                        ),
                    );
                }
            }
            Operation::Terminate(sessions(
                (raw.older_than, raw.database, raw.max_sessions),
                states,
                &default_database,
                &op_path,
                problems,
            ))
        }
        ("cancel_long_queries", _) => {
            let raw: RawCancel = super::deserialize(&body, &op_path, problems)?;
            Operation::CancelQueries(sessions(
                (raw.older_than, raw.database, raw.max_sessions),
                vec!["active".to_owned()],
                &default_database,
                &op_path,
                problems,
            ))
        }
        (key, _) => {
            let _: RawNothing = super::deserialize(&body, &op_path, problems)?;
            match key {
                "vacuum" => Operation::SqliteVacuum,
                "optimize" => Operation::SqliteOptimize,
                "wal_checkpoint" => Operation::WalCheckpoint,
                _ => Operation::IntegrityCheck,
            }
        }
    };
    if problems.0.len() > before {
        return None;
    }
    Some(Arc::new(SqlAction {
        target: target?,
        database: database?,
        operation,
        statement_timeout,
    }))
}

fn tables(body: &Value, path: &str, problems: &mut Problems) -> Option<Vec<String>> {
    let raw: RawTables = super::deserialize(body, path, problems)?;
    for (i, table) in raw.tables.iter().enumerate() {
        identifier(table, &format!("{path}.tables[{i}]"), problems);
    }
    Some(raw.tables)
}

fn identifier(name: &str, path: &str, problems: &mut Problems) {
    if !is_identifier(name) {
        problems.push(
            path,
            format!("`{name}` is not a name (letters, digits and `_`, optionally `schema.`)"),
        );
    }
}

fn sessions(
    (older_than, database, max): (String, Option<String>, Option<u32>),
    states: Vec<String>,
    default_database: &str,
    path: &str,
    problems: &mut Problems,
) -> Sessions {
    let older_than = crate::config::duration(
        Some(older_than),
        "1h",
        &format!("{path}.older_than"),
        problems,
    );
    let database = database.unwrap_or_else(|| default_database.to_owned());
    if database.is_empty() {
        problems.push(format!("{path}.database"), "must name a database");
    }
    let max = max.unwrap_or(DEFAULT_MAX_SESSIONS);
    if !(1..=MAX_SESSIONS).contains(&max) {
        problems.push(
            format!("{path}.max_sessions"),
            format!("must be from 1 to {MAX_SESSIONS}"),
        );
    }
    Sessions {
        older_than,
        database,
        max,
        states,
    }
}

/// `schema.table` or `table` as a quoted identifier (validated at config time).
fn quote(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

fn quote_all(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

impl SqlAction {
    /// The statement a PostgreSQL operation runs (with its parameters bound at run time).
    fn statement(&self) -> String {
        match &self.operation {
            Operation::VacuumAnalyze(tables) if tables.is_empty() => "VACUUM (ANALYZE)".to_owned(),
            Operation::VacuumAnalyze(tables) => format!("VACUUM (ANALYZE) {}", quote_all(tables)),
            Operation::Analyze(tables) | Operation::SqliteAnalyze(tables) if tables.is_empty() => {
                "ANALYZE".to_owned()
            }
            Operation::Analyze(tables) | Operation::SqliteAnalyze(tables) => {
                format!("ANALYZE {}", quote_all(tables))
            }
            Operation::Reindex(index) => format!("REINDEX INDEX CONCURRENTLY {}", quote(index)),
            Operation::Terminate(_) => sessions_statement("pg_terminate_backend", "state_change"),
            Operation::CancelQueries(_) => sessions_statement("pg_cancel_backend", "query_start"),
            Operation::SqliteVacuum => "VACUUM".to_owned(),
            Operation::SqliteOptimize => "PRAGMA optimize".to_owned(),
            Operation::WalCheckpoint => "PRAGMA wal_checkpoint(TRUNCATE)".to_owned(),
            Operation::IntegrityCheck => "PRAGMA integrity_check".to_owned(),
        }
    }

    async fn run_postgres(
        &self,
        pg: &PostgresConfig,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ActionError> {
        let session = Session::connect(pg, self.statement_timeout).await?;
        let began = Instant::now();
        let work = async {
            match &self.operation {
                Operation::Terminate(sessions) | Operation::CancelQueries(sessions) => {
                    self.signal_sessions(&session.client, sessions).await
                }
                _ => {
                    session
                        .client
                        .batch_execute(&self.statement())
                        .await
                        .map_err(|err| {
                            ActionError::failed(
                                format!("{} on {}", self.statement(), self.target),
                                PostgresError::from(err),
                            )
                        })?;
                    Ok(format!(
                        "{} on {} took {:.1}s",
                        self.statement(),
                        self.target,
                        began.elapsed().as_secs_f64()
                    ))
                }
            }
        };
        let summary = tokio::select! {
            result = work => result?,
            () = cancel.cancelled() => {
                session.cancel_running().await;
                return Err(ActionError::Cancelled);
            }
        };
        Ok(Outcome {
            summary,
            ..Outcome::default()
        })
    }

    async fn signal_sessions(
        &self,
        client: &Client,
        sessions: &Sessions,
    ) -> Result<String, ActionError> {
        let (verb, did) = match self.operation {
            Operation::Terminate(_) => ("terminate", "terminated"),
            _ => ("cancel", "cancelled the queries of"),
        };
        let what = format!("{verb} sessions on {}", self.target);
        let rows = client
            .query(
                &self.statement(),
                &[
                    &sessions.database,
                    &sessions.states,
                    &sessions.older_than.as_secs_f64(),
                    &i64::from(sessions.max),
                    &format!("{PROTECTED_PREFIX}%"),
                ],
            )
            .await
            .map_err(|err| ActionError::failed(&what, PostgresError::from(err)))?;
        let mut touched = Vec::new();
        let mut vanished = 0;
        for row in rows {
            let pid: i32 = row.get(0);
            let user: Option<String> = row.get(1);
            let signalled: Option<bool> = row.get(2);
            if signalled == Some(true) {
                touched.push(format!("{pid} ({})", user.unwrap_or_default()));
            } else {
                vanished += 1;
            }
        }
        let mut summary = format!(
            "{did} {} session{} in database {} on {} ({} for over {})",
            touched.len(),
            if touched.len() == 1 { "" } else { "s" },
            sessions.database,
            self.target,
            sessions.states.join("/"),
            humantime::format_duration(sessions.older_than),
        );
        if !touched.is_empty() {
            summary.push_str(&format!(": pids {}", touched.join(", ")));
        }
        if vanished > 0 {
            summary.push_str(&format!("; {vanished} ended meanwhile"));
        }
        Ok(summary)
    }

    async fn run_sqlite(
        &self,
        sqlite: &SqliteConfig,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ActionError> {
        let path = sqlite.path.clone();
        let what = format!("{} on {}", self.statement(), self.target);
        let conn = open_sqlite(&path).map_err(|err| ActionError::failed(&what, err))?;
        let interrupt = conn.get_interrupt_handle();
        let operation = self.operation.clone();
        let statement = self.statement();
        let mut job = tokio::task::spawn_blocking(move || {
            sqlite_operation(&conn, &path, &operation, &statement)
        });
        let result = tokio::select! {
            result = &mut job => result,
            () = cancel.cancelled() => {
                // The connection is this run's own, so the interrupt reaches only its statement.
                interrupt.interrupt();
                let _ = job.await;
                return Err(ActionError::Cancelled);
            }
        };
        let summary = result
            .map_err(|err| ActionError::failed(&what, err))?
            .map_err(|err| match err {
                SqliteFailure::Sqlite(err) => ActionError::failed(&what, err),
                SqliteFailure::Refused(message) => {
                    ActionError::Refused(format!("{what}: {message}"))
                }
            })?;
        Ok(Outcome {
            summary: format!("{what}: {summary}"),
            ..Outcome::default()
        })
    }
}

/// The statement behind `terminate_idle` and `cancel_long_queries`: candidates are chosen
/// and signalled in one statement (a materialized CTE, so the signal is sent only to the
/// capped, ordered set). `$1` database, `$2` states, `$3` age in seconds, `$4` cap, `$5`
/// the protected `application_name` prefix as a LIKE pattern.
fn sessions_statement(function: &str, since: &str) -> String {
    format!(
        "WITH candidates AS MATERIALIZED (
            SELECT pid, usename::text AS usename
            FROM pg_stat_activity
            WHERE backend_type = 'client backend'
              AND pid <> pg_backend_pid()
              AND datname = $1
              AND state = ANY($2::text[])
              AND {since} < now() - make_interval(secs => $3::float8)
              AND coalesce(application_name, '') NOT LIKE $5
            ORDER BY {since}
            LIMIT $4
        )
        SELECT pid, usename, {function}(pid) FROM candidates"
    )
}

/// A PostgreSQL error shown whole (SQLSTATE and message, or the I/O cause).
use crate::collect::postgres::error::PgError as PostgresError;

/// An action's own PostgreSQL session.
struct Session {
    client: Client,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

impl Session {
    async fn connect(
        pg: &PostgresConfig,
        statement_timeout: Duration,
    ) -> Result<Session, ActionError> {
        let what = format!("connect to postgres/{}", pg.name);
        let mut config: tokio_postgres::Config = pg.dsn.expose_secret().parse().unwrap_or_default();
        config
            .application_name(APPLICATION_NAME)
            .connect_timeout(pg.timeout.max(CONNECT_TIMEOUT));
        let (client, tls) = if matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        ) {
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|err| ActionError::failed(&what, PostgresError::from(err)))?;
            tokio::spawn(connection);
            (client, None)
        } else {
            let tls = crate::collect::postgres::tls::connector(pg.ca_file.as_deref())
                .map_err(|err| ActionError::failed("load ca_file", err))?;
            let (client, connection) = config
                .connect(tls.clone())
                .await
                .map_err(|err| ActionError::failed(&what, PostgresError::from(err)))?;
            tokio::spawn(connection);
            (client, Some(tls))
        };
        let settings = format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            statement_timeout.as_millis(),
            LOCK_TIMEOUT.as_millis()
        );
        client
            .batch_execute(&settings)
            .await
            .map_err(|err| ActionError::failed(&what, PostgresError::from(err)))?;
        Ok(Session { client, tls })
    }

    /// Asks the server to cancel the session's running statement (dropping the client alone
    /// would leave it running).
    async fn cancel_running(&self) {
        let token = self.client.cancel_token();
        let result = match &self.tls {
            None => token.cancel_query(NoTls).await,
            Some(tls) => token.cancel_query(tls.clone()).await,
        };
        if let Err(err) = result {
            tracing::warn!(error = %crate::collect::ErrorChain(&PostgresError::from(err)), "Cannot cancel an action's statement on the server.");
        }
    }
}

enum SqliteFailure {
    Sqlite(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for SqliteFailure {
    fn from(err: rusqlite::Error) -> SqliteFailure {
        SqliteFailure::Sqlite(err)
    }
}

/// Opens an existing database read-write, waiting at most [`LOCK_TIMEOUT`] for locks.
fn open_sqlite(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(LOCK_TIMEOUT)?;
    Ok(conn)
}

fn file_size(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

fn wal_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn sizes(before: Option<u64>, after: Option<u64>) -> String {
    let show =
        |size: Option<u64>| size.map_or_else(|| "absent".to_owned(), |s| format!("{s} bytes"));
    format!("{} before, {} after", show(before), show(after))
}

fn sqlite_operation(
    conn: &rusqlite::Connection,
    path: &Path,
    operation: &Operation,
    statement: &str,
) -> Result<String, SqliteFailure> {
    match operation {
        Operation::SqliteVacuum => {
            let before = file_size(path);
            conn.execute_batch(statement)?;
            Ok(format!("file {}", sizes(before, file_size(path))))
        }
        Operation::WalCheckpoint => {
            let wal = wal_path(path);
            let before = file_size(&wal);
            let (busy, log, checkpointed): (i64, i64, i64) =
                conn.query_row(statement, [], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            if busy != 0 {
                return Err(SqliteFailure::Refused(format!(
                    "the checkpoint could not finish: another connection held a lock \
                     ({checkpointed} of {log} frames copied)"
                )));
            }
            Ok(format!(
                "{checkpointed} frames copied; WAL {}",
                sizes(before, file_size(&wal))
            ))
        }
        Operation::IntegrityCheck => {
            let mut query = conn.prepare(statement)?;
            let lines: Vec<String> = query
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()?;
            if lines.len() == 1 && lines[0] == "ok" {
                return Ok("ok".to_owned());
            }
            let shown: Vec<&str> = lines
                .iter()
                .take(INTEGRITY_LINES)
                .map(String::as_str)
                .collect();
            Err(SqliteFailure::Refused(format!(
                "the database is damaged ({} problems): {}",
                lines.len(),
                shown.join("; ")
            )))
        }
        _ => {
            let began = Instant::now();
            conn.execute_batch(statement)?;
            Ok(format!("done in {:.1}s", began.elapsed().as_secs_f64()))
        }
    }
}

impl Kind for SqlAction {
    fn key(&self) -> &'static str {
        KIND.key
    }

    fn plan(&self, _labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        Ok(match &self.operation {
            Operation::Terminate(s) | Operation::CancelQueries(s) => format!(
                "on {}: {} up to {} sessions of database {} {} for over {} (not warden's own)",
                self.target,
                if matches!(self.operation, Operation::Terminate(_)) {
                    "terminate"
                } else {
                    "cancel the queries of"
                },
                s.max,
                s.database,
                s.states.join("/"),
                humantime::format_duration(s.older_than),
            ),
            _ => format!("run {} on {}", self.statement(), self.target),
        })
    }

    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a> {
        Box::pin(async move {
            match &self.database {
                Database::Postgres(pg) => self.run_postgres(pg, &context.cancel).await,
                Database::Sqlite(sqlite) => self.run_sqlite(sqlite, &context.cancel).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Config, Sources};

    fn sources() -> Sources {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("jobs.db");
        rusqlite::Connection::open(&db).unwrap();
        let yaml = format!(
            "postgres: [{{name: main, dsn: 'host=127.0.0.1 dbname=app user=u'}}]\n\
             sqlite: [{{name: jobs, path: {}}}]\n",
            db.display()
        );
        struct NoEnv;
        impl crate::config::Env for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
        }
        Config::try_from_yaml(&yaml, "test", dir.path(), &NoEnv)
            .unwrap()
            .sources
    }

    fn parse_at(value: Value) -> Result<Arc<dyn Kind>, Vec<String>> {
        let sources = sources();
        let context = ParseContext {
            base: Path::new("/"),
            sources: &sources,
            backups: &[],
        };
        let mut problems = Problems::default();
        parse(&value, "actions[1].sql", &context, &mut problems)
            .ok_or_else(|| problems.0.iter().map(ToString::to_string).collect())
    }

    fn plan(value: Value) -> String {
        parse_at(value).unwrap().plan(&BTreeMap::new()).unwrap()
    }

    #[test]
    fn statements_quote_validated_names() {
        assert_eq!(
            plan(
                json!({"target": "postgres/main", "vacuum_analyze": {"tables": ["runs", "public.jobs"]}})
            ),
            r#"run VACUUM (ANALYZE) "runs", "public"."jobs" on postgres/main"#
        );
        assert_eq!(
            plan(json!({"target": "postgres/main", "vacuum_analyze": null})),
            "run VACUUM (ANALYZE) on postgres/main"
        );
        assert_eq!(
            plan(json!({"target": "postgres/main", "reindex_concurrently": {"index": "runs_idx"}})),
            r#"run REINDEX INDEX CONCURRENTLY "runs_idx" on postgres/main"#
        );
        assert_eq!(
            plan(json!({"target": "sqlite/jobs", "wal_checkpoint": {}})),
            "run PRAGMA wal_checkpoint(TRUNCATE) on sqlite/jobs"
        );
        assert_eq!(
            plan(json!({"target": "postgres/main", "terminate_idle": {"older_than": "1h"}})),
            "on postgres/main: terminate up to 10 sessions of database app idle/idle in transaction for over 1h (not warden's own)"
        );
    }

    #[test]
    fn config_problems_have_key_paths() {
        let cases = [
            (
                json!({"target": "postgres/main", "vacuum_analyze": {"tables": ["runs; DROP TABLE x"]}}),
                "actions[1].sql.vacuum_analyze.tables[0]: `runs; DROP TABLE x` is not a name",
            ),
            (
                json!({"target": "postgres/other", "analyze": {}}),
                "actions[1].sql.target: `postgres/other` names no configured postgres entry",
            ),
            (
                json!({"target": "postgres/main"}),
                "actions[1].sql: names no operation",
            ),
            (
                json!({"target": "postgres/main", "analyze": {}, "vacuum_analyze": {}}),
                "actions[1].sql: sets vacuum_analyze and analyze",
            ),
            (
                json!({"target": "sqlite/jobs", "vacuum_analyze": {}}),
                "actions[1].sql.vacuum_analyze: is not an operation on sqlite",
            ),
            (
                json!({"target": "postgres/main", "vacuum": {}}),
                "actions[1].sql.vacuum: is not an operation on postgres",
            ),
            (
                json!({"target": "postgres/main", "terminate_idle": {"older_than": "1h", "states": ["active"]}}),
                "actions[1].sql.terminate_idle.states[0]: `active` is not one of",
            ),
            (
                json!({"target": "postgres/main", "terminate_idle": {"older_than": "soon"}}),
                "actions[1].sql.terminate_idle.older_than: `soon` is not a duration",
            ),
            (
                json!({"target": "postgres/main", "cancel_long_queries": {"older_than": "1m", "max_sessions": 0}}),
                "actions[1].sql.cancel_long_queries.max_sessions: must be from 1 to 1000",
            ),
            (
                json!({"target": "postgres/main", "cancel_long_queries": {"older_than": "1m", "states": ["idle"]}}),
                "actions[1].sql.cancel_long_queries.states: unknown key",
            ),
            (
                json!({"target": "postgres/main", "analyze": {}, "query": "DELETE FROM x"}),
                "actions[1].sql.query: unknown key",
            ),
            (
                json!({"target": "sqlite/jobs", "vacuum": {"full": true}}),
                "actions[1].sql.vacuum.full: unknown key",
            ),
            (
                json!({"target": "sqlite/jobs", "integrity_check": {}, "statement_timeout": "1m"}),
                "actions[1].sql.statement_timeout: applies to postgres targets only",
            ),
        ];
        for (value, expected) in cases {
            let problems = parse_at(value.clone()).unwrap_err();
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{value}: {problems:?}"
            );
        }
    }

    #[tokio::test]
    async fn sqlite_integrity_check_and_vacuum_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x); INSERT INTO t VALUES (randomblob(100000)); DELETE FROM t;",
        )
        .unwrap();
        drop(conn);
        let run = |operation: Operation| {
            let path = path.clone();
            async move {
                let action = SqlAction {
                    target: Target::Sqlite("x".into()),
                    database: Database::Sqlite(SqliteConfig {
                        name: "x".into(),
                        path,
                        timeout: Duration::from_secs(1),
                        integrity_check: crate::config::IntegrityCheck::Quick,
                        integrity_interval: Duration::from_secs(60),
                        row_counts: Vec::new(),
                    }),
                    operation,
                    statement_timeout: Duration::from_secs(1),
                };
                let labels = BTreeMap::new();
                let context = JobContext::new(1, "a", &labels);
                action.run(&context).await
            }
        };
        let outcome = run(Operation::IntegrityCheck).await.unwrap();
        assert_eq!(outcome.summary, "PRAGMA integrity_check on sqlite/x: ok");
        let outcome = run(Operation::SqliteVacuum).await.unwrap();
        assert!(outcome.summary.contains("file "), "{}", outcome.summary);
        let shrunk = |s: &str| -> bool {
            let numbers: Vec<u64> = s
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            numbers[0] > numbers[1]
        };
        assert!(shrunk(&outcome.summary), "{}", outcome.summary);
    }
}
