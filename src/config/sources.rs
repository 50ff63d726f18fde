//! The database sections of the configuration: `postgres`, `sqlite`, `run_queues` and
//! `queries`, validated into typed values.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::error::Problems;
use super::raw::{RawPostgres, RawQuery, RawQueryMetric, RawRunQueue, RawSqlite};
use super::{duration, secret};

/// Families warden or its anchors already export; user metrics may not start with these.
pub const RESERVED_PREFIXES: &[&str] = &["node_", "pg_", "process_", "warden_", "go_"];
/// Names Prometheus itself writes for every target.
pub const RESERVED_NAMES: &[&str] = &["up", "scrape_duration_seconds", "scrape_samples_scraped"];
/// The most per-run series a run queue may export (`top_running`).
pub const MAX_TOP_RUNNING: u64 = 100;

/// A PostgreSQL server to watch, over one long-lived connection.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The `server` label and the `postgres/NAME` target name.
    pub name: String,
    /// The connection string; may hold a password, so it is never logged.
    pub dsn: SecretString,
    /// The database the connection string names (for per-table stats).
    pub database: String,
    /// How often the statistics are refreshed.
    pub interval: Duration,
    /// `statement_timeout` and the client-side limit of each query.
    pub timeout: Duration,
    /// How often `pg_database_size` is refreshed (it reads every file of every database).
    pub size_interval: Duration,
    /// Whether per-table statistics of the connection's database are exported.
    pub tables: bool,
    /// Extra CA certificates (PEM) trusted for TLS, besides the Mozilla roots.
    pub ca_file: Option<PathBuf>,
}

/// An SQLite database file to watch.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The `database` label and the `sqlite/NAME` target name.
    pub name: String,
    /// The database file.
    pub path: PathBuf,
    /// The limit of each read.
    pub timeout: Duration,
    /// Which integrity check runs.
    pub integrity_check: IntegrityCheck,
    /// How often it runs.
    pub integrity_interval: Duration,
    /// Tables whose row counts are exported (opt-in: a count reads the whole table).
    pub row_counts: Vec<String>,
}

/// `PRAGMA quick_check` or `PRAGMA integrity_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// Checks structure without verifying indexes against tables: O(N).
    Quick,
    /// Also checks every index entry: O(N log N).
    Full,
}

/// Where a query runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A configured `postgres` entry, by name.
    Postgres(String),
    /// A configured `sqlite` entry, by name.
    Sqlite(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Postgres(name) => write!(f, "postgres/{name}"),
            Target::Sqlite(name) => write!(f, "sqlite/{name}"),
        }
    }
}

/// The normalized states of a run queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RunState {
    /// Waiting to start.
    Queued,
    /// Started, not finished.
    Running,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
    /// Stopped before finishing.
    Cancelled,
}

impl RunState {
    /// Every state, in label order.
    pub const ALL: [RunState; 5] = [
        RunState::Queued,
        RunState::Running,
        RunState::Succeeded,
        RunState::Failed,
        RunState::Cancelled,
    ];

    /// The `state` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// A job table watched as a run queue.
#[derive(Debug, Clone)]
pub struct RunQueueConfig {
    /// The `queue` label.
    pub name: String,
    /// Where the table lives.
    pub target: Target,
    /// What follows `FROM`: a table name, or a parenthesized subquery with an alias.
    pub from: String,
    /// The status column.
    pub status_column: String,
    /// Status values of each state; unmapped values are not counted.
    pub states: BTreeMap<RunState, Vec<String>>,
    /// When a run was queued.
    pub queued_since: String,
    /// When a run started.
    pub running_since: String,
    /// The run identifier, for the longest-running series.
    pub id_column: Option<String>,
    /// How many of the longest-running runs get their own series.
    pub top_running: usize,
    /// How often the queue is read.
    pub interval: Duration,
    /// The limit of each read.
    pub timeout: Duration,
}

/// A user SQL query turned into metrics.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The `query` label.
    pub name: String,
    /// Where it runs.
    pub target: Target,
    /// The SQL text.
    pub sql: String,
    /// How often it runs; scrapes read the cached result.
    pub interval: Duration,
    /// The limit of each run; past it the query is cancelled on the server.
    pub timeout: Duration,
    /// The metrics its rows produce.
    pub metrics: Vec<QueryMetric>,
}

/// The type of a user metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing value; the name ends in `_total`.
    Counter,
}

/// One metric from a query's rows.
#[derive(Debug, Clone)]
pub struct QueryMetric {
    /// The metric name.
    pub name: String,
    /// The help text.
    pub help: String,
    /// Gauge or counter.
    pub kind: MetricType,
    /// The column holding the value; parsed as a timestamp when the name ends in
    /// `_timestamp_seconds`.
    pub value: String,
    /// Columns that become labels, in order.
    pub labels: Vec<String>,
    /// Labels with fixed values.
    pub const_labels: Vec<(String, String)>,
    /// Known label values that are reported as 0 when no row has them.
    pub fill: Vec<(String, Vec<String>)>,
}

impl QueryMetric {
    /// Whether the value column holds timestamps.
    pub fn is_timestamp(&self) -> bool {
        self.name.ends_with("_timestamp_seconds")
    }
}

/// The validated database sections.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// PostgreSQL servers.
    pub postgres: Vec<PostgresConfig>,
    /// SQLite files.
    pub sqlite: Vec<SqliteConfig>,
    /// Run queues.
    pub run_queues: Vec<RunQueueConfig>,
    /// User queries.
    pub queries: Vec<QueryConfig>,
}

/// Validates the database sections, recording every problem.
pub(super) fn validate(
    postgres: Vec<RawPostgres>,
    sqlite: Vec<RawSqlite>,
    run_queues: Vec<RawRunQueue>,
    queries: Vec<RawQuery>,
    base: &Path,
    problems: &mut Problems,
) -> Sources {
    unique(postgres.iter().map(|p| &p.name), "postgres", problems);
    unique(sqlite.iter().map(|s| &s.name), "sqlite", problems);
    unique(run_queues.iter().map(|q| &q.name), "run_queues", problems);
    unique(queries.iter().map(|q| &q.name), "queries", problems);
    // On the raw entries, so paths are the file's positions even when an entry is invalid.
    let mut seen = HashSet::new();
    for (i, query) in queries.iter().enumerate() {
        for (j, metric) in query.metrics.iter().enumerate() {
            if !seen.insert(metric.name.clone()) {
                problems.push(
                    format!("queries[{i}].metrics[{j}].name"),
                    format!(
                        "metric `{}` is already produced by another query",
                        metric.name
                    ),
                );
            }
        }
    }
    let postgres: Vec<PostgresConfig> = postgres
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| validate_postgres(raw, &format!("postgres[{i}]"), base, problems))
        .collect();
    let sqlite: Vec<SqliteConfig> = sqlite
        .into_iter()
        .enumerate()
        .map(|(i, raw)| validate_sqlite(raw, &format!("sqlite[{i}]"), base, problems))
        .collect();

    let targets = Targets {
        postgres: postgres.iter().map(|p| p.name.clone()).collect(),
        sqlite: sqlite.iter().map(|s| s.name.clone()).collect(),
    };
    let run_queues: Vec<RunQueueConfig> = run_queues
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            validate_run_queue(raw, &format!("run_queues[{i}]"), &targets, problems)
        })
        .collect();
    let queries: Vec<QueryConfig> = queries
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| validate_query(raw, &format!("queries[{i}]"), &targets, problems))
        .collect();
    Sources {
        postgres,
        sqlite,
        run_queues,
        queries,
    }
}

impl Sources {
    /// Parses `postgres/NAME` or `sqlite/NAME` naming a configured source, recording a problem
    /// at `path` otherwise.
    pub(crate) fn parse_target(
        &self,
        text: &str,
        path: &str,
        problems: &mut Problems,
    ) -> Option<Target> {
        Targets {
            postgres: self.postgres.iter().map(|p| p.name.clone()).collect(),
            sqlite: self.sqlite.iter().map(|s| s.name.clone()).collect(),
        }
        .parse(text, path, problems)
    }

    /// The PostgreSQL source named `name`.
    pub fn postgres_named(&self, name: &str) -> Option<&PostgresConfig> {
        self.postgres.iter().find(|p| p.name == name)
    }

    /// The SQLite source named `name`.
    pub fn sqlite_named(&self, name: &str) -> Option<&SqliteConfig> {
        self.sqlite.iter().find(|s| s.name == name)
    }
}

struct Targets {
    postgres: HashSet<String>,
    sqlite: HashSet<String>,
}

impl Targets {
    fn parse(&self, text: &str, path: &str, problems: &mut Problems) -> Option<Target> {
        let (kind, name) = text.split_once('/').unwrap_or(("", text));
        let (target, known) = match kind {
            "postgres" => (Target::Postgres(name.to_owned()), &self.postgres),
            "sqlite" => (Target::Sqlite(name.to_owned()), &self.sqlite),
            _ => {
                problems.push(
                    path,
                    format!("`{text}` is not a target such as postgres/NAME or sqlite/NAME"),
                );
                return None;
            }
        };
        if !known.contains(name) {
            problems.push(path, format!("`{text}` names no configured {kind} entry"));
            return None;
        }
        Some(target)
    }
}

fn unique<'a>(names: impl Iterator<Item = &'a String>, section: &str, problems: &mut Problems) {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            problems.push(
                format!("{section}[{i}].name"),
                format!("`{name}` is used twice"),
            );
        }
    }
}

/// Names of entries: used as label values and in `postgres/NAME` targets.
pub(super) fn check_name(name: &str, path: &str, problems: &mut Problems) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        problems.push(
            format!("{path}.name"),
            format!("`{name}` must be 1–64 characters of letters, digits, `_`, `-` or `.`"),
        );
    }
}

/// A plain or schema-qualified SQL identifier; anything else could inject SQL.
pub fn is_identifier(text: &str) -> bool {
    let part = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
            && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
    };
    !text.is_empty()
        && text.len() <= 128
        && text.split('.').count() <= 2
        && text.split('.').all(part)
}

fn identifier(text: &str, path: &str, problems: &mut Problems) {
    if !is_identifier(text) {
        problems.push(path, format!("`{text}` is not a column or table name (letters, digits and `_`, optionally `schema.`)"));
    }
}

fn validate_postgres(
    raw: RawPostgres,
    path: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<PostgresConfig> {
    check_name(&raw.name, path, problems);
    let interval = duration(raw.interval, "15s", &format!("{path}.interval"), problems);
    let timeout = duration(raw.timeout, "5s", &format!("{path}.timeout"), problems);
    let size_interval = duration(
        raw.size_interval,
        "5m",
        &format!("{path}.size_interval"),
        problems,
    );
    let Some(dsn) = secret(
        raw.dsn,
        raw.dsn_file,
        &format!("{path}.dsn"),
        base,
        problems,
    ) else {
        if !problems
            .0
            .iter()
            .any(|p| p.path.starts_with(&format!("{path}.dsn")))
        {
            problems.push(format!("{path}.dsn"), "missing: set dsn or dsn_file");
        }
        return None;
    };
    let parsed = match tokio_postgres::Config::from_str(dsn.expose_secret()) {
        Ok(parsed) => parsed,
        Err(err) => {
            // tokio-postgres' messages name the option, never its value.
            problems.push(
                format!("{path}.dsn"),
                format!("not a PostgreSQL connection string: {err}"),
            );
            return None;
        }
    };
    let ca_file = raw.ca_file.map(|file| {
        let file = base.join(file);
        match crate::collect::postgres::tls::load_ca_file(&file) {
            Ok(0) => problems.push(
                format!("{path}.ca_file"),
                format!("{} holds no PEM certificate", file.display()),
            ),
            Ok(_) => {}
            Err(err) => problems.push(
                format!("{path}.ca_file"),
                format!("cannot read {}: {err}", file.display()),
            ),
        }
        file
    });
    let database = parsed
        .get_dbname()
        .or(parsed.get_user())
        .unwrap_or("postgres")
        .to_owned();
    let mut tables = false;
    for (i, name) in raw.tables.iter().enumerate() {
        if *name == database {
            tables = true;
        } else {
            problems.push(
                format!("{path}.tables[{i}]"),
                format!(
                    "per-table statistics come over this entry's one connection, which is to database `{database}`; \
                     add a postgres entry whose dsn names `{name}` to watch its tables"
                ),
            );
        }
    }
    Some(PostgresConfig {
        name: raw.name,
        dsn,
        database,
        interval,
        timeout,
        size_interval,
        tables,
        ca_file,
    })
}

fn validate_sqlite(
    raw: RawSqlite,
    path: &str,
    base: &Path,
    problems: &mut Problems,
) -> SqliteConfig {
    check_name(&raw.name, path, problems);
    if raw.path.is_empty() {
        problems.push(format!("{path}.path"), "must not be empty");
    }
    let integrity_check = match raw.integrity_check.as_deref() {
        None | Some("quick") => IntegrityCheck::Quick,
        Some("full") => IntegrityCheck::Full,
        Some(other) => {
            problems.push(
                format!("{path}.integrity_check"),
                format!("`{other}` is not one of: quick, full"),
            );
            IntegrityCheck::Quick
        }
    };
    for (i, table) in raw.row_counts.iter().enumerate() {
        identifier(table, &format!("{path}.row_counts[{i}]"), problems);
    }
    SqliteConfig {
        name: raw.name,
        path: base.join(raw.path),
        timeout: duration(raw.timeout, "5s", &format!("{path}.timeout"), problems),
        integrity_check,
        integrity_interval: duration(
            raw.integrity_interval,
            "1h",
            &format!("{path}.integrity_interval"),
            problems,
        ),
        row_counts: raw.row_counts,
    }
}

fn interval_and_timeout(
    interval: Option<String>,
    timeout: Option<String>,
    path: &str,
    problems: &mut Problems,
) -> (Duration, Duration) {
    let interval_path = format!("{path}.interval");
    let timeout_path = format!("{path}.timeout");
    let interval = duration(interval, "30s", &interval_path, problems);
    let timeout = duration(timeout, "5s", &timeout_path, problems);
    // Compared only when both parsed: a bad interval must not add a second, derived error.
    let parsed = !problems.concerns(&interval_path) && !problems.concerns(&timeout_path);
    if parsed && timeout > interval {
        problems.push(
            format!("{path}.timeout"),
            "must not be longer than the interval",
        );
    }
    (interval, timeout)
}

fn validate_run_queue(
    raw: RawRunQueue,
    path: &str,
    targets: &Targets,
    problems: &mut Problems,
) -> Option<RunQueueConfig> {
    check_name(&raw.name, path, problems);
    let target = targets.parse(&raw.target, &format!("{path}.target"), problems);
    let from = match (raw.table, raw.from) {
        (Some(table), None) => {
            identifier(&table, &format!("{path}.table"), problems);
            table
        }
        (None, Some(from)) => {
            if from.contains(';') {
                problems.push(
                    format!("{path}.from"),
                    "must be one subquery or view name, without `;`",
                );
            }
            from
        }
        _ => {
            problems.push(path, "set exactly one of table (a table or view name) or from (a subquery with an alias)");
            String::new()
        }
    };
    for (key, column) in [
        ("status_column", Some(&raw.status_column)),
        ("queued_since", Some(&raw.queued_since)),
        ("running_since", Some(&raw.running_since)),
        ("id_column", raw.id_column.as_ref()),
    ] {
        if let Some(column) = column {
            identifier(column, &format!("{path}.{key}"), problems);
        }
    }
    let mut states = BTreeMap::new();
    let mut claimed: HashSet<String> = HashSet::new();
    for (key, values) in raw.states {
        let Some(state) = RunState::ALL.into_iter().find(|s| s.as_str() == key) else {
            problems.push(
                format!("{path}.states.{key}"),
                "unknown state; states are queued, running, succeeded, failed and cancelled",
            );
            continue;
        };
        if values.is_empty() {
            problems.push(
                format!("{path}.states.{key}"),
                "list at least one status value",
            );
        }
        for value in &values {
            if !claimed.insert(value.clone()) {
                problems.push(
                    format!("{path}.states.{key}"),
                    format!("status `{value}` is mapped to two states"),
                );
            }
        }
        states.insert(state, values);
    }
    for required in [RunState::Queued, RunState::Running] {
        if !states.contains_key(&required) {
            problems.push(
                format!("{path}.states"),
                format!(
                    "map the `{}` state: the queue metrics need it",
                    required.as_str()
                ),
            );
        }
    }
    let top_running = match raw.top_running {
        Some(n) if n > MAX_TOP_RUNNING => {
            problems.push(
                format!("{path}.top_running"),
                format!("at most {MAX_TOP_RUNNING}: each is its own series"),
            );
            0
        }
        Some(n) if n > 0 && raw.id_column.is_none() => {
            problems.push(
                format!("{path}.top_running"),
                "needs id_column to label the runs",
            );
            0
        }
        Some(n) => n as usize,
        None => 0,
    };
    let (interval, timeout) = interval_and_timeout(raw.interval, raw.timeout, path, problems);
    Some(RunQueueConfig {
        name: raw.name,
        target: target?,
        from,
        status_column: raw.status_column,
        states,
        queued_since: raw.queued_since,
        running_since: raw.running_since,
        id_column: raw.id_column,
        top_running,
        interval,
        timeout,
    })
}

/// A Prometheus metric name.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c == ':' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c == ':' || c.is_ascii_alphanumeric())
}

/// A Prometheus label name (names starting `__` are reserved).
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !name.starts_with("__")
}

fn validate_query(
    raw: RawQuery,
    path: &str,
    targets: &Targets,
    problems: &mut Problems,
) -> Option<QueryConfig> {
    check_name(&raw.name, path, problems);
    let target = targets.parse(&raw.target, &format!("{path}.target"), problems);
    if raw.sql.trim().is_empty() {
        problems.push(format!("{path}.sql"), "must not be empty");
    }
    let (interval, timeout) = interval_and_timeout(raw.interval, raw.timeout, path, problems);
    if raw.metrics.is_empty() {
        problems.push(format!("{path}.metrics"), "list at least one metric");
    }
    let metrics = raw
        .metrics
        .into_iter()
        .enumerate()
        .map(|(j, metric)| validate_metric(metric, &format!("{path}.metrics[{j}]"), problems))
        .collect();
    Some(QueryConfig {
        name: raw.name,
        target: target?,
        sql: raw.sql,
        interval,
        timeout,
        metrics,
    })
}

fn validate_metric(raw: RawQueryMetric, path: &str, problems: &mut Problems) -> QueryMetric {
    if !is_metric_name(&raw.name) {
        problems.push(
            format!("{path}.name"),
            format!(
                "`{}` is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
                raw.name
            ),
        );
    } else if RESERVED_NAMES.contains(&raw.name.as_str()) {
        problems.push(
            format!("{path}.name"),
            format!("`{}` is a name Prometheus writes itself", raw.name),
        );
    } else if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| raw.name.starts_with(**p)) {
        problems.push(
            format!("{path}.name"),
            format!(
                "`{}` clashes with built-in metrics (names starting `{prefix}` are reserved)",
                raw.name
            ),
        );
    }
    let kind = match raw.kind.as_deref() {
        None | Some("gauge") => MetricType::Gauge,
        Some("counter") => MetricType::Counter,
        Some(other) => {
            problems.push(
                format!("{path}.type"),
                format!("`{other}` is not one of: gauge, counter"),
            );
            MetricType::Gauge
        }
    };
    if kind == MetricType::Counter && !raw.name.ends_with("_total") {
        problems.push(
            format!("{path}.name"),
            "a counter's name must end in `_total`",
        );
    }
    let mut label_names = HashSet::new();
    for (i, label) in raw.labels.iter().enumerate() {
        if !is_label_name(label) {
            problems.push(
                format!("{path}.labels[{i}]"),
                format!("`{label}` is not a label name"),
            );
        }
        if !label_names.insert(label.clone()) {
            problems.push(
                format!("{path}.labels[{i}]"),
                format!("`{label}` is listed twice"),
            );
        }
    }
    for label in raw.const_labels.keys() {
        if !is_label_name(label) {
            problems.push(format!("{path}.const_labels.{label}"), "not a label name");
        }
        if !label_names.insert(label.clone()) {
            problems.push(
                format!("{path}.const_labels.{label}"),
                "also a column label",
            );
        }
    }
    for label in raw.fill.keys() {
        if !raw.labels.contains(label) {
            problems.push(
                format!("{path}.fill.{label}"),
                "fill names a label that is not in labels",
            );
        }
    }
    if !raw.fill.is_empty() {
        let unfilled: std::collections::BTreeSet<&String> = raw
            .labels
            .iter()
            .filter(|l| !raw.fill.contains_key(*l))
            .collect();
        for label in unfilled {
            problems.push(
                format!("{path}.fill"),
                format!("list the known values of `{label}` too: zero-filling needs a value for every label"),
            );
        }
        // Zero-filling makes a series of every combination: bound them like a result's rows.
        let combinations = raw
            .fill
            .values()
            .fold(1usize, |n, values| n.saturating_mul(values.len()));
        let max = crate::collect::query::MAX_SERIES_PER_METRIC;
        if combinations > max {
            problems.push(
                format!("{path}.fill"),
                format!("{combinations} combinations of values; at most {max} series per metric"),
            );
        }
    }
    if raw.value.is_empty() {
        problems.push(format!("{path}.value"), "name the column holding the value");
    }
    QueryMetric {
        help: raw
            .help
            .unwrap_or_else(|| format!("From query column `{}`.", raw.value)),
        name: raw.name,
        kind,
        value: raw.value,
        labels: raw.labels,
        const_labels: raw.const_labels.into_iter().collect(),
        fill: raw.fill.into_iter().collect(),
    }
}
