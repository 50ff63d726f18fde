//! A job table as a run queue: counts per normalized state, the oldest queued and oldest
//! running job, and the longest-running jobs by id, under standard metric names so the shipped
//! rules (`QueueBacklog`, `LongRunningJob`) and dashboards work for any application.
//!
//! The SQL is built from validated identifiers (`config::sources::is_identifier`) and quoted
//! status literals, and is plain enough to run on PostgreSQL and SQLite alike.

use std::collections::BTreeMap;
use std::time::Duration;

use super::value;
use super::{Job, MAX_LABEL_VALUE_BYTES, RunError, RunFuture};
use crate::collect::Family;
use crate::collect::sql::{Cell, Executor};
use crate::config::{RunQueueConfig, RunState};

/// A `run_queues:` entry.
pub struct RunQueue {
    config: RunQueueConfig,
    job_name: String,
}

impl RunQueue {
    /// The job reading this queue; its `query` label is `run_queue/NAME`.
    pub fn boxed(config: RunQueueConfig) -> Box<dyn Job> {
        let job_name = format!("run_queue/{}", config.name);
        Box::new(RunQueue { config, job_name })
    }

    fn in_list(&self, state: RunState) -> Option<String> {
        let values = self.config.states.get(&state)?;
        Some(
            values
                .iter()
                .map(|v| quote(v))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }

    /// The statements, in the order `run` executes them.
    fn statements(&self) -> Vec<String> {
        let c = &self.config;
        let mut out = vec![format!(
            "SELECT {status} AS status, COUNT(*) AS n FROM {from} GROUP BY {status}",
            status = c.status_column,
            from = c.from
        )];
        for (state, column) in [
            (RunState::Queued, &c.queued_since),
            (RunState::Running, &c.running_since),
        ] {
            if let Some(list) = self.in_list(state) {
                out.push(format!(
                    "SELECT MIN({column}) AS oldest FROM {from} WHERE {status} IN ({list})",
                    from = c.from,
                    status = c.status_column
                ));
            }
        }
        if let (Some(id), Some(list), true) = (
            &c.id_column,
            self.in_list(RunState::Running),
            c.top_running > 0,
        ) {
            out.push(format!(
                "SELECT {id} AS id, {since} AS since FROM {from} WHERE {status} IN ({list}) \
                 AND {since} IS NOT NULL ORDER BY {since} ASC LIMIT {n}",
                since = c.running_since,
                from = c.from,
                status = c.status_column,
                n = c.top_running
            ));
        }
        out
    }
}

/// The first two cells of a row of `what`; a shorter row fails the run, not the runner.
fn cells<'r>(row: &'r [Cell], what: &str) -> Result<[&'r Cell; 2], RunError> {
    match row {
        [first, second, ..] => Ok([first, second]),
        _ => Err(RunError::Shape(format!(
            "a row of {what} has {} values, expected 2",
            row.len()
        ))),
    }
}

/// A single-quoted SQL string literal.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

impl Job for RunQueue {
    fn name(&self) -> &str {
        &self.job_name
    }

    fn interval(&self) -> Duration {
        self.config.interval
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn run<'a>(&'a self, executor: &'a dyn Executor) -> RunFuture<'a> {
        Box::pin(async move {
            let c = &self.config;
            let queue = || ("queue", c.name.clone());
            let mut statements = self.statements().into_iter();
            let mut next = || statements.next().unwrap_or_default();

            // Counts, zero-filled for every state; unmapped status values are not counted.
            let counts = executor.query(next(), c.timeout).await?;
            let mut per_state: BTreeMap<RunState, f64> =
                RunState::ALL.iter().map(|s| (*s, 0.0)).collect();
            for row in &counts.rows {
                let [status, n] = cells(row, "the counts")?;
                let status = value::label(status);
                let n = value::number(n).map_err(|why| RunError::Shape(format!("count {why}")))?;
                if let Some(state) = c
                    .states
                    .iter()
                    .find(|(_, v)| v.contains(&status))
                    .map(|(s, _)| *s)
                {
                    *per_state.entry(state).or_default() += n;
                }
            }
            let mut jobs = Family::gauge(
                "warden_run_queue_jobs",
                "Jobs in the queue by normalized state.",
            );
            for (state, n) in per_state {
                jobs.push([queue(), ("state", state.as_str().to_owned())], n);
            }
            let mut families = vec![jobs];

            for (state, name, help) in [
                (
                    RunState::Queued,
                    "warden_run_queue_oldest_queued_timestamp_seconds",
                    "When the longest-waiting queued job was queued; absent when none is queued.",
                ),
                (
                    RunState::Running,
                    "warden_run_queue_oldest_running_start_timestamp_seconds",
                    "When the longest-running job started; absent when none is running.",
                ),
            ] {
                if !c.states.contains_key(&state) {
                    continue;
                }
                let rows = executor.query(next(), c.timeout).await?;
                let mut family = Family::gauge(name, help);
                if let Some(cell) = rows.rows.first().and_then(|r| r.first())
                    && *cell != Cell::Null
                {
                    let at = value::timestamp(cell)
                        .map_err(|why| RunError::Shape(format!("{name}: {why}")))?;
                    family.push([queue()], at);
                }
                families.push(family);
            }

            if c.top_running > 0 && c.id_column.is_some() {
                let rows = executor.query(next(), c.timeout).await?;
                let mut family = Family::gauge(
                    "warden_run_queue_running_start_timestamp_seconds",
                    "When each of the longest-running jobs started (top_running of them).",
                );
                let mut seen = std::collections::HashSet::new();
                for row in &rows.rows {
                    let [run_id, since] = cells(row, "the running jobs")?;
                    let at = value::timestamp(since)
                        .map_err(|why| RunError::Shape(format!("running since {why}")))?;
                    let run_id = value::label(run_id);
                    if run_id.len() > MAX_LABEL_VALUE_BYTES {
                        return Err(RunError::Shape(format!(
                            "a run id of {} bytes; at most {MAX_LABEL_VALUE_BYTES} in a label",
                            run_id.len()
                        )));
                    }
                    if !seen.insert(run_id.clone()) {
                        // Two series with one label set would make Prometheus reject the scrape.
                        return Err(RunError::Shape(format!(
                            "run id `{run_id}` appears twice among the running jobs; id_column must be unique"
                        )));
                    }
                    family.push([queue(), ("run_id", run_id)], at);
                }
                families.push(family);
            }
            Ok(families)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Target;

    fn config() -> RunQueueConfig {
        RunQueueConfig {
            name: "forecast".into(),
            target: Target::Sqlite("db".into()),
            from: "runs".into(),
            status_column: "status".into(),
            states: BTreeMap::from([
                (RunState::Queued, vec!["scheduled".into()]),
                (RunState::Running, vec!["running".into()]),
                (
                    RunState::Failed,
                    vec!["failed".into(), "it's broken".into()],
                ),
            ]),
            queued_since: "created_at".into(),
            running_since: "start_time".into(),
            id_column: Some("run_id".into()),
            top_running: 3,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn statements_quote_values_and_bound_the_top_list() {
        let queue = RunQueue {
            config: config(),
            job_name: "run_queue/forecast".into(),
        };
        let sql = queue.statements();
        assert_eq!(sql.len(), 4);
        assert_eq!(
            sql[0],
            "SELECT status AS status, COUNT(*) AS n FROM runs GROUP BY status"
        );
        assert!(sql[1].contains("MIN(created_at)") && sql[1].contains("IN ('scheduled')"));
        assert!(sql[2].contains("MIN(start_time)") && sql[2].contains("IN ('running')"));
        assert!(
            sql[3].ends_with("ORDER BY start_time ASC LIMIT 3"),
            "{}",
            sql[3]
        );
        assert_eq!(quote("it's broken"), "'it''s broken'");
    }
}
