//! `warden check-config --connect`: the live half of the configuration check. After the
//! static validation ([`crate::config`]) has passed, it contacts what the configuration names
//! and reports every problem at once, each with its key path, as the static check does:
//!
//! - each PostgreSQL entry is connected to with the collector's settings (TLS and `ca_file`,
//!   `timeout`, `application_name=warden`, read-only transactions), each SQLite file opened
//!   read-only as the collector opens it;
//! - each run queue's table (or `from:` subquery) is read with `SELECT * FROM … LIMIT 0` and
//!   every configured column looked up among the columns it returns: that works for tables,
//!   views and subqueries alike, on both databases, where `information_schema` or
//!   `pragma table_info` would each cover one; then the queue's own statements run once;
//! - each user query runs once, under its timeout, through the executor the runner uses (the
//!   same read-only session settings, cancelled at the timeout, the session reset after), and
//!   each configured metric's value and label columns are looked up in its result;
//! - when a postgres backup job exists, `pg_dump` and `pg_restore` are found as the backup
//!   code finds them and run with `--version`, and `pg_dump`'s major version must not be older
//!   than the server it dumps (it refuses newer servers);
//! - each backup destination is created if missing (and removed again), a temporary file is
//!   created and removed in it, and its filesystem must have room for the newest backup in
//!   its manifests (read from the destination itself: the check opens no state directory).
//!
//! # Layer
//! This module sits beside [`crate::app`], above `config`, `collect` and `backup`: it needs
//! their executors, jobs, tool discovery and manifests, and `config` must not depend on them.
//!
//! # Bounds
//! Every item is bounded by its own limit (a connection by the entry's `timeout`, a query by
//! the runner's limit for it, a tool by [`TOOL_TIMEOUT`], a destination by
//! [`DESTINATION_TIMEOUT`]); sources, tools and destinations are checked concurrently, at most
//! [`MAX_CONCURRENT_CHECKS`] at a time. Statements on one source run one after the other, as
//! they do on the collector's single connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backup::{libpq, manifest, publish};
use crate::collect::ErrorChain;
use crate::collect::postgres::{ConnectError, Session};
use crate::collect::query::{RunQueue, to_family};
use crate::collect::sql::{Cell, Executor, QueryError, Rows};
use crate::collect::sqlite::SqliteExecutor;
use crate::config::{
    Config, Error, PostgresConfig, Problem, QueryConfig, RunQueueConfig, Target, is_identifier,
};

/// Sources, tool checks and destinations checked at once: enough for the usual handful of
/// entries to run side by side, few enough not to open dozens of connections at once.
pub const MAX_CONCURRENT_CHECKS: usize = 8;
/// The longest `pg_dump --version` or `pg_restore --version` may take.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the checks of one destination may take (a hung network filesystem).
pub const DESTINATION_TIMEOUT: Duration = Duration::from_secs(10);

/// What the live check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Every problem, in the order of the configuration's sections.
    pub problems: Vec<Problem>,
    /// Sources connected to (PostgreSQL) or opened (SQLite).
    pub sources: usize,
    /// User queries and run queues that ran.
    pub queries: usize,
    /// Backup destinations found usable.
    pub destinations: usize,
}

/// Sections in the order problems are listed: postgres, sqlite, run_queues, queries, backups.
type Key = (u8, usize);

/// One check's findings.
#[derive(Default)]
struct Outcome {
    problems: Vec<(Key, Problem)>,
    sources: usize,
    queries: usize,
    destinations: usize,
}

impl Outcome {
    fn push(&mut self, key: Key, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push((
            key,
            Problem {
                path: path.into(),
                message: message.into(),
            },
        ));
    }
}

/// Runs the live check and prints its result: `FILE: configuration is valid; …` on standard
/// output, or every problem on standard error. Returns whether the check passed.
pub async fn execute(file: &Path, config: &Config) -> bool {
    let report = run(config).await;
    if report.problems.is_empty() {
        println!(
            "{}: configuration is valid; {}, {}, {}",
            file.display(),
            count(report.sources, "source reachable", "sources reachable"),
            count(report.queries, "query ran", "queries ran"),
            count(
                report.destinations,
                "backup destination usable",
                "backup destinations usable"
            ),
        );
        true
    } else {
        let err = Error::Invalid {
            problems: report.problems,
        };
        eprintln!("warden: {}: {err}", file.display());
        false
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Contacts everything the configuration names and reports every problem.
pub async fn run(config: &Config) -> Report {
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_CHECKS));
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let sources = &config.sources;
    let on = |target: &Target| {
        let queues: Vec<(usize, RunQueueConfig)> = sources
            .run_queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.target == *target)
            .map(|(i, q)| (i, q.clone()))
            .collect();
        let queries: Vec<(usize, QueryConfig)> = sources
            .queries
            .iter()
            .enumerate()
            .filter(|(_, q)| q.target == *target)
            .map(|(i, q)| (i, q.clone()))
            .collect();
        Jobs { queues, queries }
    };
    for (i, pg) in sources.postgres.iter().enumerate() {
        let jobs = on(&Target::Postgres(pg.name.clone()));
        // The backup jobs dumping this source, whose pg_dump must be as new as the server.
        let dumps: Vec<usize> = config
            .backups
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind.source() == Some(Target::Postgres(pg.name.clone())))
            .map(|(j, _)| j)
            .collect();
        let pg = pg.clone();
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut outcome = Outcome::default();
            match Session::connect(&pg, jobs.longest_timeout()).await {
                Ok(session) => {
                    outcome.sources += 1;
                    if !dumps.is_empty() {
                        check_dump_version(&session, &pg, &dumps, &mut outcome).await;
                    }
                    jobs.check(&session, &mut outcome).await;
                }
                Err(err) => {
                    let key = match err {
                        ConnectError::CaFile(_) => "ca_file",
                        _ => "dsn",
                    };
                    outcome.push(
                        (0, i),
                        format!("postgres[{i}].{key}"),
                        ErrorChain(&err).to_string(),
                    );
                }
            }
            outcome
        });
    }
    for (i, lite) in sources.sqlite.iter().enumerate() {
        let jobs = on(&Target::Sqlite(lite.name.clone()));
        let executor = SqliteExecutor::new(lite);
        let timeout = lite.timeout;
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut outcome = Outcome::default();
            // Reads the schema: fails on a missing file, one that is not SQLite, or a lock.
            let probe = "SELECT count(*) FROM sqlite_master".to_owned();
            match executor.query(probe, timeout).await {
                Ok(_) => {
                    outcome.sources += 1;
                    jobs.check(&*executor, &mut outcome).await;
                }
                Err(err) => outcome.push((1, i), format!("sqlite[{i}].path"), query_error(&err)),
            }
            outcome
        });
    }
    if let Some(i) = config
        .backups
        .iter()
        .position(|b| matches!(b.kind.source(), Some(Target::Postgres(_))))
    {
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut outcome = Outcome::default();
            for name in ["pg_dump", "pg_restore"] {
                if let Err(message) = check_tool(name).await {
                    outcome.push((4, i), format!("backups[{i}].kind"), message);
                }
            }
            outcome
        });
    }
    for (i, job) in config.backups.iter().enumerate() {
        let destination = job.destination.clone();
        let name = job.name.clone();
        let extensions = job.kind.extensions();
        let limit = Arc::clone(&limit);
        tasks.spawn(async move {
            let _permit = limit.acquire_owned().await;
            let mut outcome = Outcome::default();
            let check = tokio::task::spawn_blocking(move || {
                check_destination(&destination, &name, extensions)
            });
            let path = format!("backups[{i}].destination");
            bounded_destination_check(check, (4, i), path, &mut outcome).await;
            outcome
        });
    }

    // Each offsite copy destination: the bucket lists under the job's prefix, with these
    // credentials.
    for (i, job) in config.backups.iter().enumerate() {
        for (j, copy) in job.copies.iter().enumerate() {
            let copy = copy.clone();
            let name = job.name.clone();
            let extensions = job.kind.extensions();
            let limit = Arc::clone(&limit);
            let runtime = tokio::runtime::Handle::current();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let mut outcome = Outcome::default();
                let check = tokio::task::spawn_blocking(move || {
                    crate::backup::s3::S3::open(&copy, runtime)
                        .and_then(|s3| s3.read(&name, extensions))
                        .map(|_| ())
                        .map_err(|err| crate::collect::ErrorChain(&err).to_string())
                });
                let path = format!("backups[{i}].copies[{j}].s3");
                bounded_destination_check(check, (4, i), path, &mut outcome).await;
                outcome
            });
        }
    }

    let mut found = Vec::new();
    let mut report = Report::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(outcome) => {
                found.extend(outcome.problems);
                report.sources += outcome.sources;
                report.queries += outcome.queries;
                report.destinations += outcome.destinations;
            }
            Err(err) => found.push((
                (u8::MAX, 0),
                Problem {
                    path: String::new(),
                    message: format!("a check failed: {err}"),
                },
            )),
        }
    }
    found.sort_by_key(|(key, _)| *key);
    report.problems = found.into_iter().map(|(_, problem)| problem).collect();
    report
}

/// The run queues and user queries of one source, each with its index in the configuration.
struct Jobs {
    queues: Vec<(usize, RunQueueConfig)>,
    queries: Vec<(usize, QueryConfig)>,
}

impl Jobs {
    /// The longest timeout of these statements (the session's `statement_timeout` covers it).
    fn longest_timeout(&self) -> Duration {
        let queues = self.queues.iter().map(|(_, q)| q.timeout);
        let queries = self.queries.iter().map(|(_, q)| q.timeout);
        queues.chain(queries).max().unwrap_or_default()
    }

    /// Runs each run queue and query once, one after the other, recording what fails.
    async fn check(self, executor: &dyn Executor, outcome: &mut Outcome) {
        for (i, queue) in self.queues {
            if check_run_queue(executor, i, queue, outcome).await {
                outcome.queries += 1;
            }
        }
        for (i, query) in self.queries {
            if check_query(executor, i, query, outcome).await {
                outcome.queries += 1;
            }
        }
    }
}

/// The runner's limit for one run: the executor cancels the statement at `timeout`; this
/// guards against one stuck behind another (`collect::query::Runner::run_once`).
fn run_limit(timeout: Duration) -> Duration {
    timeout * 2 + Duration::from_secs(1)
}

/// Runs `sql` under the runner's limit.
async fn query(executor: &dyn Executor, sql: String, timeout: Duration) -> Result<Rows, String> {
    match tokio::time::timeout(run_limit(timeout), executor.query(sql, timeout)).await {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(err)) => Err(query_error(&err)),
        Err(_) => Err(query_error(&QueryError::Timeout(run_limit(timeout)))),
    }
}

/// A query error without the `not connected:` prefix, which would mislead here.
fn query_error(err: &QueryError) -> String {
    match err {
        QueryError::Unavailable(why) => why.clone(),
        other => ErrorChain(other).to_string(),
    }
}

/// Whether a result column answers to a configured column name: PostgreSQL folds unquoted
/// names to lower case and SQLite compares them without case; `alias.column` matches
/// `column`.
fn has_column(rows: &Rows, name: &str) -> bool {
    let name = name.rsplit('.').next().unwrap_or(name);
    rows.columns.iter().any(|c| c.eq_ignore_ascii_case(name))
}

async fn check_run_queue(
    executor: &dyn Executor,
    i: usize,
    queue: RunQueueConfig,
    outcome: &mut Outcome,
) -> bool {
    let key = (2, i);
    // The key the text came from: a plain name is `table:`, a subquery `from:`.
    let from_key = if is_identifier(&queue.from) {
        "table"
    } else {
        "from"
    };
    let sql = format!("SELECT * FROM {} LIMIT 0", queue.from);
    let rows = match query(executor, sql, queue.timeout).await {
        Ok(rows) => rows,
        Err(message) => {
            outcome.push(key, format!("run_queues[{i}].{from_key}"), message);
            return false;
        }
    };
    let mut missing = false;
    for (column_key, column) in [
        ("status_column", Some(&queue.status_column)),
        ("queued_since", Some(&queue.queued_since)),
        ("running_since", Some(&queue.running_since)),
        ("id_column", queue.id_column.as_ref()),
    ] {
        if let Some(column) = column
            && !has_column(&rows, column)
        {
            missing = true;
            outcome.push(
                key,
                format!("run_queues[{i}].{column_key}"),
                format!(
                    "column \"{column}\" does not exist in {from_key} {} (columns: {})",
                    queue.from,
                    rows.columns.join(", ")
                ),
            );
        }
    }
    if missing {
        return false;
    }
    let timeout = queue.timeout;
    let job = RunQueue::boxed(queue);
    match tokio::time::timeout(run_limit(timeout), job.run(executor)).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            outcome.push(
                key,
                format!("run_queues[{i}]"),
                ErrorChain(&err).to_string(),
            );
            false
        }
        Err(_) => {
            let err = QueryError::Timeout(run_limit(timeout));
            outcome.push(key, format!("run_queues[{i}]"), query_error(&err));
            false
        }
    }
}

async fn check_query(
    executor: &dyn Executor,
    i: usize,
    config: QueryConfig,
    outcome: &mut Outcome,
) -> bool {
    let key = (3, i);
    let rows = match query(executor, config.sql.clone(), config.timeout).await {
        Ok(rows) => rows,
        Err(message) => {
            outcome.push(key, format!("queries[{i}].sql"), message);
            return false;
        }
    };
    // What `UserQuery::run` does with the rows, metric by metric so that each problem names
    // its key.
    let before = outcome.problems.len();
    let not_in_result = |column: &str| {
        format!(
            "column \"{column}\" is not in the query's result (columns: {})",
            rows.columns.join(", ")
        )
    };
    for (j, metric) in config.metrics.iter().enumerate() {
        let path = format!("queries[{i}].metrics[{j}]");
        let mut fits = true;
        if rows.column(&metric.value).is_none() {
            fits = false;
            outcome.push(key, format!("{path}.value"), not_in_result(&metric.value));
        }
        for (k, label) in metric.labels.iter().enumerate() {
            if rows.column(label).is_none() {
                fits = false;
                outcome.push(key, format!("{path}.labels[{k}]"), not_in_result(label));
            }
        }
        if fits && let Err(why) = to_family(metric, &rows) {
            outcome.push(key, path, why);
        }
    }
    outcome.problems.len() == before
}

/// The leading number of a version such as `15.18`, `18.4` or `19devel`.
fn major_version(version: &str) -> Option<u32> {
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `pg_dump` refuses to dump a server of a newer major version than its own ("aborting because
/// of server version mismatch"), so each backup of `pg` would fail: reports that at each backup
/// job, naming both versions and the client to install. A missing `pg_dump` is reported by the
/// tool check.
async fn check_dump_version(
    executor: &dyn Executor,
    pg: &PostgresConfig,
    dumps: &[usize],
    outcome: &mut Outcome,
) {
    let sql = "SELECT current_setting('server_version_num')::int AS version".to_owned();
    let server = match query(executor, sql, pg.timeout).await {
        Ok(rows) => match rows.rows.first().and_then(|row| row.first()) {
            Some(Cell::Int(number)) => u32::try_from(*number / 10_000).ok(),
            Some(Cell::Text(text)) => text.parse::<u32>().ok().map(|number| number / 10_000),
            _ => None,
        },
        Err(why) => {
            for &j in dumps {
                outcome.push(
                    (4, j),
                    format!("backups[{j}].source"),
                    format!("cannot read the server's version: {why}"),
                );
            }
            return;
        }
    };
    let Ok(shown) = check_tool("pg_dump").await else {
        return;
    };
    let dump = shown.split_whitespace().last().and_then(major_version);
    if let (Some(server), Some(dump)) = (server, dump)
        && server > dump
    {
        for &j in dumps {
            outcome.push(
                (4, j),
                format!("backups[{j}].source"),
                format!(
                    "pg_dump {dump} cannot back up postgres/{name}, a PostgreSQL {server} server \
                     (pg_dump refuses servers newer than itself); install PostgreSQL {server}'s \
                     client tools: apt-get install postgresql-client-{server}",
                    name = pg.name
                ),
            );
        }
    }
}

/// Finds a PostgreSQL client tool as the backup code does and runs it with `--version`; returns
/// the first line it prints, e.g. `pg_dump (PostgreSQL) 15.18`.
async fn check_tool(name: &str) -> Result<String, String> {
    let program = libpq::tool(name).map_err(|err| ErrorChain(&err).to_string())?;
    let run = tokio::process::Command::new(&program)
        .env_clear()
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let shown = program.display();
    match tokio::time::timeout(TOOL_TIMEOUT, run).await {
        Ok(Ok(output)) if output.status.success() => Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
        Ok(Ok(output)) => Err(format!(
            "`{shown} --version` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Ok(Err(err)) => Err(format!("cannot run `{shown} --version`: {err}")),
        Err(_) => Err(format!(
            "`{shown} --version` did not finish within {TOOL_TIMEOUT:?}"
        )),
    }
}

/// Waits for a destination's `check` (a blocking task) at most [`DESTINATION_TIMEOUT`], and
/// counts the destination or records its problem at `path`.
async fn bounded_destination_check(
    check: tokio::task::JoinHandle<Result<(), String>>,
    key: Key,
    path: String,
    outcome: &mut Outcome,
) {
    match tokio::time::timeout(DESTINATION_TIMEOUT, check).await {
        Ok(Ok(Ok(()))) => outcome.destinations += 1,
        Ok(Ok(Err(message))) => outcome.push(key, path, message),
        Ok(Err(err)) => outcome.push(key, path, format!("the check failed: {err}")),
        Err(_) => outcome.push(
            key,
            path,
            format!("did not answer within {DESTINATION_TIMEOUT:?}"),
        ),
    }
}

/// Checks that a destination exists or can be created, takes a file, and has room for the
/// newest backup its manifests record (files with one of `extensions`). Whatever it creates
/// it removes. Blocking.
fn check_destination(destination: &Path, job: &str, extensions: &[&str]) -> Result<(), String> {
    // The directories that do not exist yet, deepest first.
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut existing = destination;
    while std::fs::symlink_metadata(existing).is_err() {
        missing.push(existing.to_owned());
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => break,
        }
    }
    let mut created: Vec<&Path> = Vec::new();
    let result = (|| {
        for dir in missing.iter().rev() {
            std::fs::create_dir(dir)
                .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
            created.push(dir);
        }
        if !destination.is_dir() {
            return Err(format!("{} is not a directory", destination.display()));
        }
        let name = format!("check-config-{}", std::process::id());
        let staged = publish::Staged::create(destination, &name)
            .map_err(|err| format!("cannot write in {}: {err}", destination.display()))?;
        // Dropping the staged file removes it.
        drop(staged);
        let newest = manifest::scan(destination, job, extensions)
            .manifests
            .first()
            .map(|m| m.size_bytes);
        if let Some(needed) = newest {
            let stat = rustix::fs::statvfs(destination)
                .map_err(|err| format!("cannot read free space: {err}"))?;
            let free = stat.f_bavail.saturating_mul(stat.f_frsize);
            if free < needed {
                return Err(format!(
                    "{free} bytes free, less than the {needed} bytes of the newest backup"
                ));
            }
        }
        Ok(())
    })();
    for dir in created.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_destination_is_created_checked_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let destination = dir.path().join("a/b/backups");
        check_destination(&destination, "job", &["dump"]).unwrap();
        assert!(!dir.path().join("a").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_destination_under_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let err =
            check_destination(&dir.path().join("file/backups"), "job", &["dump"]).unwrap_err();
        assert!(err.starts_with("cannot create"), "{err}");
        assert!(err.contains("Not a directory"), "{err}");
    }

    #[test]
    fn major_versions_of_releases_and_development_builds() {
        assert_eq!(major_version("15.18"), Some(15));
        assert_eq!(major_version("18.4"), Some(18));
        assert_eq!(major_version("19devel"), Some(19));
        assert_eq!(major_version("(PostgreSQL)"), None);
    }

    #[test]
    fn columns_match_as_the_databases_fold_names() {
        let rows = Rows {
            columns: vec!["status".into(), "Created_At".into()],
            rows: Vec::new(),
        };
        assert!(has_column(&rows, "Status"));
        assert!(has_column(&rows, "r.created_at"));
        assert!(!has_column(&rows, "state"));
    }
}
