//! User SQL turned into metrics: `queries:` (any SQL, mapped column by column) and
//! `run_queues:` (a job table with standard metric names).
//!
//! Each query runs in its own background task every `interval`, under its `timeout`, through
//! the [`Executor`] of its target; scrapes read the last result. Every run is reported in
//! `warden_query_success{query}`, `warden_query_duration_seconds{query}` and
//! `warden_query_errors_total{query}` (run queues as `query="run_queue/NAME"`). A run that fails
//! (an error, a timeout, a missing column, a value that is not a number, a NULL value, a
//! duplicate label set) is logged and counted, and its metrics are left out until a run
//! succeeds again: a stale value would let an alert read old data as current.

mod run_queue;
mod value;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::sql::{Executor, QueryError, Rows};
use super::{CollectFuture, Collector, Family, Kind};
use crate::config::{MetricType, QueryConfig, QueryMetric};
pub use run_queue::RunQueue;

/// The most series one user metric may have: a query that returns a row per user or per
/// request would otherwise flood Prometheus (cardinality), so it fails loudly instead.
pub const MAX_SERIES_PER_METRIC: usize = 10_000;

/// The longest label value a query may produce, in bytes. Prometheus sets no limit of its own,
/// but a label is an identifier (a state, a queue, a host), not a document: a longer value is
/// almost surely a column mapped by mistake, and would be stored in every sample's series.
pub const MAX_LABEL_VALUE_BYTES: usize = 1024;

/// Why a run produced no metrics.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database could not run the query.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The result does not fit the configured metrics.
    #[error("{0}")]
    Shape(String),
}

/// The future a job's run returns.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Family>, RunError>> + Send + 'a>>;

/// Something run on an interval against one executor: a user query or a run queue.
pub trait Job: Send + Sync + 'static {
    /// The `query` label.
    fn name(&self) -> &str;
    /// How often it runs.
    fn interval(&self) -> Duration;
    /// The limit of each run.
    fn timeout(&self) -> Duration;
    /// Runs once.
    fn run<'a>(&'a self, executor: &'a dyn Executor) -> RunFuture<'a>;
}

/// The last result of a job, as scrapes see it.
#[derive(Debug, Default)]
struct Outcome {
    ran: bool,
    success: bool,
    duration: Duration,
    errors: u64,
    families: Vec<Family>,
    finished_at: Option<SystemTime>,
    last_error: Option<(SystemTime, String)>,
}

/// What the status page shows about a query or run queue, kept by its task.
#[derive(Debug, Clone)]
pub struct Health {
    /// The `query` label.
    pub name: String,
    /// When the last run finished; `None` before the first.
    pub finished_at: Option<SystemTime>,
    /// Whether the last run succeeded.
    pub success: bool,
    /// The last failure and when it happened (kept after a later success).
    pub last_error: Option<(SystemTime, String)>,
}

/// A job, its executor and its last result.
pub struct Runner {
    job: Box<dyn Job>,
    executor: Arc<dyn Executor>,
    outcome: Mutex<Outcome>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Runner {
    /// A runner that has not run yet.
    pub fn new(job: Box<dyn Job>, executor: Arc<dyn Executor>) -> Arc<Self> {
        Arc::new(Runner {
            job,
            executor,
            outcome: Mutex::default(),
        })
    }

    /// Runs the job once and stores the outcome.
    pub async fn run_once(&self) {
        let started = Instant::now();
        // The executor cancels the statement at the job's timeout; the outer limit only guards
        // against a statement stuck in the executor's queue behind another.
        let limit = self.job.timeout() * 2 + Duration::from_secs(1);
        let result = match tokio::time::timeout(limit, self.job.run(&*self.executor)).await {
            Ok(result) => result,
            Err(_) => Err(RunError::Query(QueryError::Timeout(limit))),
        };
        let duration = started.elapsed();
        let mut outcome = lock(&self.outcome);
        outcome.ran = true;
        outcome.duration = duration;
        outcome.finished_at = Some(SystemTime::now());
        match result {
            Ok(families) => {
                if !outcome.success {
                    tracing::debug!(query = self.job.name(), "Query succeeded.");
                }
                outcome.success = true;
                outcome.families = families;
            }
            Err(err) => {
                tracing::warn!(query = self.job.name(), error = %crate::collect::ErrorChain(&err), "Query failed.");
                outcome.success = false;
                outcome.errors += 1;
                outcome.last_error = Some((SystemTime::now(), super::ErrorChain(&err).to_string()));
                outcome.families.clear();
            }
        }
    }

    /// Runs the job every interval until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.job.interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.run_once() => {}
            }
        }
    }

    /// The last run's result, for the status page.
    pub fn health(&self) -> Health {
        let outcome = lock(&self.outcome);
        Health {
            name: self.job.name().to_owned(),
            finished_at: outcome.finished_at,
            success: outcome.success,
            last_error: outcome.last_error.clone(),
        }
    }

    /// Whether the job has finished at least one run.
    pub fn has_run(&self) -> bool {
        lock(&self.outcome).ran
    }
}

/// The scrape side of all runners: their metrics and their `warden_query_*` families.
pub struct QueriesCollector {
    runners: Vec<Arc<Runner>>,
}

impl QueriesCollector {
    /// A collector reporting these runners.
    pub fn new(runners: Vec<Arc<Runner>>) -> Self {
        QueriesCollector { runners }
    }
}

impl Collector for QueriesCollector {
    fn name(&self) -> &str {
        "queries"
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(async move {
            let mut success = Family::gauge(
                "warden_query_success",
                "Whether the query's last run succeeded (1) or failed (0); absent before the first run.",
            );
            let mut duration = Family::gauge(
                "warden_query_duration_seconds",
                "How long the query's last run took.",
            );
            let mut errors = Family::counter(
                "warden_query_errors_total",
                "Runs of the query that failed: errors, timeouts, results that do not fit its metrics.",
            );
            let mut families = Vec::new();
            for runner in &self.runners {
                let outcome = lock(&runner.outcome);
                let label = || [("query", runner.job.name().to_owned())];
                errors.push(label(), outcome.errors as f64);
                if outcome.ran {
                    success.push(label(), if outcome.success { 1.0 } else { 0.0 });
                    duration.push(label(), outcome.duration.as_secs_f64());
                }
                families.extend(outcome.families.iter().cloned());
            }
            families.extend([success, duration, errors]);
            Ok(families)
        })
    }
}

/// A `queries:` entry.
pub struct UserQuery {
    config: QueryConfig,
}

impl UserQuery {
    /// The job for this query.
    pub fn boxed(config: QueryConfig) -> Box<dyn Job> {
        Box::new(UserQuery { config })
    }
}

impl Job for UserQuery {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn interval(&self) -> Duration {
        self.config.interval
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn run<'a>(&'a self, executor: &'a dyn Executor) -> RunFuture<'a> {
        Box::pin(async move {
            let rows = executor
                .query(self.config.sql.clone(), self.config.timeout)
                .await?;
            self.config
                .metrics
                .iter()
                .map(|metric| to_family(metric, &rows))
                .collect::<Result<Vec<_>, _>>()
                .map_err(RunError::Shape)
        })
    }
}

/// Maps the rows to one metric's family; any row that does not fit fails the whole metric.
pub fn to_family(metric: &QueryMetric, rows: &Rows) -> Result<Family, String> {
    let missing = |column: &str| {
        format!(
            "metric {}: column `{column}` is not in the result (columns: {})",
            metric.name,
            rows.columns.join(", ")
        )
    };
    let value_at = rows
        .column(&metric.value)
        .ok_or_else(|| missing(&metric.value))?;
    let label_at: Vec<usize> = metric
        .labels
        .iter()
        .map(|l| rows.column(l).ok_or_else(|| missing(l)))
        .collect::<Result<_, _>>()?;
    let kind = match metric.kind {
        MetricType::Gauge => Kind::Gauge,
        MetricType::Counter => Kind::Counter,
    };
    if rows.rows.len() > MAX_SERIES_PER_METRIC {
        // Executors stop reading at MAX_ROWS (sql.rs), so how many more is not known.
        return Err(format!(
            "metric {}: the query returned more than {MAX_SERIES_PER_METRIC} rows; at most \
             {MAX_SERIES_PER_METRIC} series per metric (aggregate in SQL, or filter)",
            metric.name
        ));
    }
    let mut family = Family::new(metric.name.clone(), metric.help.clone(), kind);
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for (n, row) in rows.rows.iter().enumerate() {
        // A row shorter than the column list (a driver quirk, a result of no columns) fails
        // the metric rather than the runner.
        let cell = |i: usize, column: &str| {
            row.get(i).ok_or_else(|| {
                format!(
                    "metric {}: row {} has {} values, so none for column `{column}`",
                    metric.name,
                    n + 1,
                    row.len()
                )
            })
        };
        let label_values: Vec<String> = label_at
            .iter()
            .zip(&metric.labels)
            .map(|(&i, column)| {
                let label = value::label(cell(i, column)?);
                if label.len() > MAX_LABEL_VALUE_BYTES {
                    return Err(format!(
                        "metric {}: row {}: column `{column}` holds a label value of {} bytes; at most {MAX_LABEL_VALUE_BYTES}",
                        metric.name,
                        n + 1,
                        label.len()
                    ));
                }
                Ok(label)
            })
            .collect::<Result<_, _>>()?;
        let value_cell = cell(value_at, &metric.value)?;
        let value = if metric.is_timestamp() {
            value::timestamp(value_cell)
        } else {
            value::number(value_cell)
        }
        .map_err(|why| {
            format!(
                "metric {}: row {}: column `{}` {why}",
                metric.name,
                n + 1,
                metric.value
            )
        })?;
        if !seen.insert(label_values.clone()) {
            return Err(format!(
                "metric {}: row {}: the label set {:?} appears twice",
                metric.name,
                n + 1,
                label_values
            ));
        }
        family.push_labels(labels(metric, label_values), value);
    }
    // Zero-fill: every combination of the known values that no row produced.
    if !metric.fill.is_empty() {
        let mut combos: Vec<Vec<String>> = vec![Vec::new()];
        for label in &metric.labels {
            let values = metric
                .fill
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut next = prefix.clone();
                        next.push(v.clone());
                        next
                    })
                })
                .collect();
        }
        for combo in combos {
            if seen.insert(combo.clone()) {
                family.push_labels(labels(metric, combo), 0.0);
            }
        }
    }
    Ok(family)
}

fn labels(metric: &QueryMetric, values: Vec<String>) -> Vec<(super::family::LabelName, String)> {
    metric
        .labels
        .iter()
        .cloned()
        .map(Into::into)
        .zip(values)
        .chain(
            metric
                .const_labels
                .iter()
                .map(|(k, v)| (k.clone().into(), v.clone())),
        )
        .collect()
}

#[cfg(test)]
mod tests;
