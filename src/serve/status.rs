//! What the status page (`GET /`) and its JSON twin (`GET /status`) report, gathered from the
//! state the background tasks already keep: each PostgreSQL server's task (connected or down,
//! since when, last error), each SQLite file's integrity task (and one `stat`), each query's and
//! run queue's task, and the state store (backup catalogs and job records, the action queue).
//! Nothing here connects to a database or runs a collector; the store reads and the `stat`s
//! run on a blocking thread.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::AppState;
use crate::act::queue::Actions;
use crate::backup::Backups;
use crate::collect::postgres::Server;
use crate::collect::query::Runner;
use crate::collect::sqlite::SqliteCollector;

/// How much older than its expected interval a job's newest verified backup may be before the
/// job counts as late: the slack a scheduled run needs to finish (the README's staleness rule
/// uses the same factor).
pub const LATE_FACTOR: f64 = 1.5;

/// The sources the status page watches, handed over by the code that spawned their tasks.
#[derive(Default)]
pub struct Watched {
    /// The PostgreSQL servers' connection tasks.
    pub servers: Vec<Arc<Server>>,
    /// The SQLite files' collectors (and integrity tasks).
    pub sqlite: Vec<Arc<SqliteCollector>>,
    /// The queries' and run queues' runners.
    pub runners: Vec<Arc<Runner>>,
    /// The backup jobs, when any are configured.
    pub backups: Option<Arc<Backups>>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("servers", &self.servers.len())
            .field("sqlite", &self.sqlite.len())
            .field("runners", &self.runners.len())
            .field("backups", &self.backups.is_some())
            .finish()
    }
}

/// How a row reads at a glance; the page colours it, the JSON gives the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Working.
    Good,
    /// Needs a look soon (late, not checked yet).
    Warning,
    /// Broken.
    Bad,
    /// Nothing to say yet.
    Unknown,
}

/// A moment, for people (`2026-12-02 07:36:00 UTC`) and for scripts (Unix seconds).
#[derive(Debug, Clone, Serialize)]
pub struct Moment {
    /// Unix seconds.
    pub unix: f64,
    /// UTC, to the second.
    pub utc: String,
    /// Seconds before the page was made (negative in the future).
    pub age_seconds: f64,
}

impl Moment {
    fn at(time: SystemTime, now: SystemTime) -> Moment {
        let unix = time
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Moment::from_unix(unix, now)
    }

    /// `None` for 0, the store's "never".
    fn from_store(unix: f64, now: SystemTime) -> Option<Moment> {
        (unix > 0.0).then(|| Moment::from_unix(unix, now))
    }

    fn from_unix(unix: f64, now: SystemTime) -> Moment {
        let now_unix = now
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Moment {
            unix,
            utc: utc(unix),
            age_seconds: now_unix - unix,
        }
    }
}

/// A failure and when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// When.
    pub at: Moment,
    /// The whole chain of causes.
    pub error: String,
}

/// Everything the page shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// warden's version.
    pub version: &'static str,
    /// When this warden started.
    pub started_at: Moment,
    /// When this status was gathered.
    pub now: Moment,
    /// One line per problem (bad or warning rows), for the summary at the top.
    pub problems: Vec<String>,
    /// PostgreSQL servers.
    pub postgres: Vec<Source>,
    /// SQLite files.
    pub sqlite: Vec<Source>,
    /// Queries and run queues.
    pub queries: Vec<Source>,
    /// Backup jobs.
    pub backups: Vec<BackupJob>,
    /// The actions, when configured.
    pub actions: Option<ActionsStatus>,
    /// Each collector's last run (a scrape of /metrics runs them).
    pub collectors: Vec<Collector>,
}

/// A source of metrics and its state.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// Its name (`app`, `run_queue/jobs`).
    pub name: String,
    /// In words: `connected`, `down`, `ok`, `missing`, `integrity failed`, `failed`, …
    pub state: String,
    /// How that reads.
    pub level: Level,
    /// Since when it has been in this state (PostgreSQL).
    pub since: Option<Moment>,
    /// The last check or run (SQLite, queries).
    pub last_check: Option<Moment>,
    /// Facts worth a glance (the file path).
    pub detail: String,
    /// The last failure, kept after a recovery.
    pub last_error: Option<Failure>,
}

/// A backup job's newest verified backup against its schedule.
#[derive(Debug, Clone, Serialize)]
pub struct BackupJob {
    /// The job.
    pub name: String,
    /// `ok`, `late`, `failed` or `never`.
    pub state: &'static str,
    /// How that reads.
    pub level: Level,
    /// When the newest backup that passed verification finished.
    pub newest_verified: Option<Moment>,
    /// The time between two scheduled runs; `None` without a schedule.
    pub expected_interval_seconds: Option<f64>,
    /// When the last failed run ended.
    pub last_failure: Option<Moment>,
    /// Complete backups on disk.
    pub retained: u64,
    /// Backups on disk whose last verification failed.
    pub corrupt: u64,
    /// Why the job's state could not be read, if it could not.
    pub error: Option<String>,
}

/// The action queue and each action's last outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct ActionsStatus {
    /// Jobs waiting to run, retries included.
    pub queue_depth: Option<u64>,
    /// One per configured action.
    pub actions: Vec<Action>,
    /// Why the store could not be read, if it could not.
    pub error: Option<String>,
}

/// One action's last outcomes.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// The action.
    pub name: String,
    /// `ok` (last run succeeded), `failed` or `never run`.
    pub state: &'static str,
    /// How that reads.
    pub level: Level,
    /// When it last succeeded.
    pub last_success: Option<Moment>,
    /// When it last failed (or was interrupted).
    pub last_failure: Option<Moment>,
    /// Why its newest failed job failed.
    pub last_error: Option<String>,
}

/// A collector's last run.
#[derive(Debug, Clone, Serialize)]
pub struct Collector {
    /// The `collector` label.
    pub name: String,
    /// `ok`, `failed` or `not scraped yet`.
    pub state: &'static str,
    /// How that reads.
    pub level: Level,
    /// When it last ran.
    pub last_run: Option<Moment>,
    /// How long it took, in seconds.
    pub duration_seconds: Option<f64>,
    /// Its error.
    pub error: Option<String>,
}

/// Gathers the status; blocking (store reads, `stat`s): call it from `spawn_blocking`.
pub fn gather(state: &AppState) -> Status {
    let now = SystemTime::now();
    let watched = &state.watched;
    let postgres = watched.servers.iter().map(|s| postgres(s, now)).collect();
    let sqlite = watched
        .sqlite
        .iter()
        .map(|c| sqlite(c, now))
        .collect::<Vec<_>>();
    let queries = watched.runners.iter().map(|r| query(r, now)).collect();
    let backups = watched
        .backups
        .as_ref()
        .map(|b| backups(b, now))
        .unwrap_or_default();
    let actions = state.actions.as_ref().map(|a| actions(a, now));
    let statuses = state.collectors.statuses();
    let collectors = state
        .collectors
        .names()
        .into_iter()
        .map(|name| match statuses.get(&name) {
            None => Collector {
                name,
                state: "not scraped yet",
                level: Level::Unknown,
                last_run: None,
                duration_seconds: None,
                error: None,
            },
            Some(s) => Collector {
                name,
                state: if s.success { "ok" } else { "failed" },
                level: if s.success { Level::Good } else { Level::Bad },
                last_run: Some(Moment::at(s.finished_at, now)),
                duration_seconds: Some(s.duration.as_secs_f64()),
                error: s.error.clone(),
            },
        })
        .collect();
    let mut status = Status {
        version: env!("CARGO_PKG_VERSION"),
        started_at: Moment::at(state.started_at, now),
        now: Moment::at(now, now),
        problems: Vec::new(),
        postgres,
        sqlite,
        queries,
        backups,
        actions,
        collectors,
    };
    status.problems = problems(&status);
    status
}

fn postgres(server: &Server, now: SystemTime) -> Source {
    let health = server.health();
    let (state, level) = match (health.since, health.connected) {
        (None, _) => ("connecting", Level::Unknown),
        (Some(_), true) => ("connected", Level::Good),
        (Some(_), false) => ("down", Level::Bad),
    };
    Source {
        name: server.name().to_owned(),
        state: state.to_owned(),
        level,
        since: health.since.map(|t| Moment::at(t, now)),
        last_check: None,
        detail: String::new(),
        last_error: failure(health.last_error, now),
    }
}

fn sqlite(collector: &SqliteCollector, now: SystemTime) -> Source {
    let health = collector.health();
    let (state, level) = if !health.exists {
        ("missing", Level::Bad)
    } else {
        match health.integrity_ok {
            Some(true) => ("ok", Level::Good),
            Some(false) => ("integrity failed", Level::Bad),
            None if health.last_error.is_some() => ("not checked: unavailable", Level::Warning),
            None => ("not checked yet", Level::Unknown),
        }
    };
    Source {
        name: health.name,
        state: state.to_owned(),
        level,
        since: None,
        last_check: health.checked_at.map(|t| Moment::at(t, now)),
        detail: health.path.display().to_string(),
        last_error: failure(health.last_error, now),
    }
}

fn query(runner: &Runner, now: SystemTime) -> Source {
    let health = runner.health();
    let (state, level) = match (health.finished_at, health.success) {
        (None, _) => ("not run yet", Level::Unknown),
        (Some(_), true) => ("ok", Level::Good),
        (Some(_), false) => ("failed", Level::Bad),
    };
    Source {
        name: health.name,
        state: state.to_owned(),
        level,
        since: None,
        last_check: health.finished_at.map(|t| Moment::at(t, now)),
        detail: String::new(),
        last_error: failure(health.last_error, now),
    }
}

fn failure(error: Option<(SystemTime, String)>, now: SystemTime) -> Option<Failure> {
    error.map(|(at, error)| Failure {
        at: Moment::at(at, now),
        error,
    })
}

fn backups(backups: &Backups, now: SystemTime) -> Vec<BackupJob> {
    let store = backups.store();
    let chrono_now: DateTime<Utc> = now.into();
    backups
        .jobs()
        .iter()
        .map(|job| {
            let interval = job
                .schedule
                .as_ref()
                .map(|s| s.interval(chrono_now).as_secs_f64())
                .filter(|&i| i > 0.0);
            let read = store
                .job(&job.name)
                .and_then(|record| Ok((record, store.summary(&job.name)?)));
            let (record, summary) = match read {
                Ok(read) => read,
                Err(err) => {
                    return BackupJob {
                        name: job.name.clone(),
                        state: "unknown",
                        level: Level::Unknown,
                        newest_verified: None,
                        expected_interval_seconds: interval,
                        last_failure: None,
                        retained: 0,
                        corrupt: 0,
                        error: Some(crate::collect::ErrorChain(&err).to_string()),
                    };
                }
            };
            let newest = Moment::from_store(summary.newest_verified_finished, now);
            let (state, level) = backup_state(
                summary.newest_verified_finished,
                summary.newest_finished,
                record.last_failure,
                interval,
                newest.as_ref().map_or(0.0, |m| m.age_seconds),
            );
            BackupJob {
                name: job.name.clone(),
                state,
                level,
                newest_verified: newest,
                expected_interval_seconds: interval,
                last_failure: Moment::from_store(record.last_failure, now),
                retained: summary.count,
                corrupt: summary.failed_verification,
                error: None,
            }
        })
        .collect()
}

/// A job's state: `failed` when its last run failed after its newest backup, `never` without
/// a verified backup, `late` when the newest is older than [`LATE_FACTOR`] × the expected
/// interval, `ok` otherwise.
fn backup_state(
    newest_verified: f64,
    newest: f64,
    last_failure: f64,
    interval: Option<f64>,
    age: f64,
) -> (&'static str, Level) {
    if last_failure > 0.0 && last_failure > newest {
        ("failed", Level::Bad)
    } else if newest_verified <= 0.0 {
        ("never", Level::Warning)
    } else if interval.is_some_and(|i| age > i * LATE_FACTOR) {
        ("late", Level::Warning)
    } else {
        ("ok", Level::Good)
    }
}

fn actions(actions: &Actions, now: SystemTime) -> ActionsStatus {
    let store = actions.store();
    let (queue_depth, depth_error) = match store.queue_depth() {
        Ok(depth) => (Some(depth), None),
        Err(err) => (None, Some(err)),
    };
    let (summaries, summary_error) = match store.action_summaries() {
        Ok(summaries) => (summaries, None),
        Err(err) => (Vec::new(), Some(err)),
    };
    let error = depth_error
        .or(summary_error)
        .map(|err| crate::collect::ErrorChain(&err).to_string());
    let list = actions
        .config()
        .actions
        .iter()
        .map(|action| {
            let summary = summaries.iter().find(|s| s.action == action.name);
            let (success, failure) =
                summary.map_or((0.0, 0.0), |s| (s.last_success, s.last_failure));
            let (state, level) = if success <= 0.0 && failure <= 0.0 {
                ("never run", Level::Unknown)
            } else if failure > success {
                ("failed", Level::Bad)
            } else {
                ("ok", Level::Good)
            };
            Action {
                name: action.name.clone(),
                state,
                level,
                last_success: Moment::from_store(success, now),
                last_failure: Moment::from_store(failure, now),
                last_error: summary.and_then(|s| s.last_error.clone()),
            }
        })
        .collect();
    ActionsStatus {
        queue_depth,
        actions: list,
        error,
    }
}

/// One line per row that is bad or needs a look.
fn problems(status: &Status) -> Vec<String> {
    let mut out = Vec::new();
    let sources = [
        ("postgres", &status.postgres),
        ("sqlite", &status.sqlite),
        ("query", &status.queries),
    ];
    for (kind, list) in sources {
        for source in list {
            if matches!(source.level, Level::Bad | Level::Warning) {
                out.push(format!("{kind} {}: {}", source.name, source.state));
            }
        }
    }
    for job in &status.backups {
        if matches!(job.level, Level::Bad | Level::Warning) {
            out.push(format!("backup {}: {}", job.name, job.state));
        }
    }
    if let Some(actions) = &status.actions {
        for action in &actions.actions {
            if action.level == Level::Bad {
                out.push(format!("action {}: {}", action.name, action.state));
            }
        }
        if actions.error.is_some() {
            out.push("actions: the job store cannot be read".to_owned());
        }
    }
    out
}

/// `2026-12-02 07:36:00 UTC`.
pub fn utc(unix: f64) -> String {
    DateTime::<Utc>::from_timestamp(unix.floor() as i64, 0).map_or_else(
        || format!("unix time {unix}"),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// `3h 12m ago`: the two largest units, or `in …` for a moment in the future.
pub fn age(seconds: f64) -> String {
    let ago = seconds >= 0.0;
    let text = span(Duration::from_secs(seconds.abs() as u64));
    if ago {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

/// `2d 4h`, `3h 12m`, `5m 10s`, `42s`; `1d`, not `1d 0h`.
pub fn span(duration: Duration) -> String {
    let s = duration.as_secs();
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let two = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit} {small}{small_unit}")
        }
    };
    if d > 0 {
        two(d, "d", h, "h")
    } else if h > 0 {
        two(h, "h", m, "m")
    } else if m > 0 {
        two(m, "m", sec, "s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_and_ages() {
        assert_eq!(utc(1_796_193_423.7), "2026-12-02 06:37:03 UTC");
        assert_eq!(age(3.0 * 3600.0 + 12.0 * 60.0 + 5.0), "3h 12m ago");
        assert_eq!(age(2.0 * 86_400.0 + 4.0 * 3600.0), "2d 4h ago");
        assert_eq!(age(310.0), "5m 10s ago");
        assert_eq!(age(0.4), "0s ago");
        assert_eq!(age(-90.0), "in 1m 30s");
        assert_eq!(span(Duration::from_secs(86_400)), "1d");
        assert_eq!(span(Duration::from_secs(3600)), "1h");
    }

    #[test]
    fn backup_states() {
        let day = 86_400.0;
        // Newest verified 1 day old, daily schedule: ok; 1.6 days: late.
        assert_eq!(backup_state(1.0, 1.0, 0.0, Some(day), day).0, "ok");
        assert_eq!(backup_state(1.0, 1.0, 0.0, Some(day), 1.6 * day).0, "late");
        // No schedule: never late.
        assert_eq!(backup_state(1.0, 1.0, 0.0, None, 100.0 * day).0, "ok");
        // A failure after the newest backup: failed; before it: ok.
        assert_eq!(backup_state(10.0, 10.0, 20.0, Some(day), 1.0).0, "failed");
        assert_eq!(backup_state(10.0, 10.0, 5.0, Some(day), 1.0).0, "ok");
        // Nothing yet: never; a failed first run: failed.
        assert_eq!(backup_state(0.0, 0.0, 0.0, Some(day), 0.0).0, "never");
        assert_eq!(backup_state(0.0, 0.0, 3.0, Some(day), 0.0).0, "failed");
    }
}
