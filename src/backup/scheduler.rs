//! Cron schedules for backup runs and restore drills, one task per schedule.
//!
//! Each task computes its next firing from the last start recorded in the store (for backups
//! whose record is lost, the newest backup on disk), not from the time warden started, so
//! schedules survive restarts: a run (or drill) whose firing passed
//! while warden was down starts once at start-up, and a job that never ran counts as overdue.
//! Sleeps are at most [`MAX_SLEEP`] long and recomputed from the wall clock, so a clock change
//! or a suspended host does not push a firing back. A firing that finds the job busy (another
//! run, a drill, a command in another process) is counted as skipped, not queued; it is tried
//! again every [`MAX_SLEEP`] until the job is free, unless a run started meanwhile (by anyone:
//! the store is shared) already satisfies it. A failed run is not retried before the next
//! firing. A store that cannot be read fires nothing (it is not "never started"); the task
//! asks again every [`MAX_SLEEP`]. Tasks stop at shutdown; a run in progress is cancelled and
//! publishes nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Backups, Progress, Trigger};
use crate::config::Schedule;

/// The longest sleep between looks at the wall clock.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);

/// What a schedule starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Backup,
    Drill,
}

/// Starts one task per backup schedule and per drill schedule on `tracker`.
pub fn spawn(backups: &Arc<Backups>, tracker: &TaskTracker, shutdown: &CancellationToken) {
    for job in backups.jobs() {
        let schedules = [
            (Work::Backup, job.schedule.clone()),
            (Work::Drill, job.verify.restore_test_schedule.clone()),
        ];
        for (work, schedule) in schedules {
            let Some(schedule) = schedule else { continue };
            let span = tracing::info_span!("schedule", job = %job.name, work = ?work);
            tracker.spawn(
                run(
                    Arc::clone(backups),
                    job.name.clone(),
                    schedule,
                    work,
                    shutdown.child_token(),
                )
                .instrument(span),
            );
        }
    }
}

/// The next time to start: the first firing after the last start, or now when the job has
/// never started.
pub fn next_start(
    schedule: &Schedule,
    last_started: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match last_started {
        None => now,
        Some(last) => schedule.next_after(last).unwrap_or(now),
    }
}

/// Why the last start of a job could not be read.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The blocking reader panicked.
    #[error("the store reader failed")]
    Worker(#[source] tokio::task::JoinError),
}

/// When `work` last started for `job` (`None`: never). For backups whose store lost its record
/// (a new state directory), the newest backup on disk stands in, so a recent backup is not
/// redone at once.
async fn last_started(
    backups: &Arc<Backups>,
    job: &str,
    work: Work,
) -> Result<Option<DateTime<Utc>>, ReadError> {
    let store = Arc::clone(backups.store());
    let job = job.to_owned();
    let seconds = tokio::task::spawn_blocking(move || {
        let record = store.job(&job)?;
        Ok::<f64, crate::store::StoreError>(match work {
            Work::Backup if record.last_started == 0.0 => store.summary(&job)?.newest_finished,
            Work::Backup => record.last_started,
            Work::Drill => record.drill_started,
        })
    })
    .await
    .map_err(ReadError::Worker)??;
    Ok((seconds > 0.0)
        .then(|| DateTime::from_timestamp_millis((seconds * 1000.0) as i64))
        .flatten())
}

/// When to fire next, from what the store said about the last start; `None` when it could not
/// say. The task then waits [`MAX_SLEEP`] and asks again: taking an unreadable store for "never
/// started" would make every job overdue and run it every minute.
fn next_firing(
    schedule: &Schedule,
    last: &Result<Option<DateTime<Utc>>, ReadError>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let last = last.as_ref().ok()?;
    Some(next_start(schedule, *last, now))
}

async fn run(
    backups: Arc<Backups>,
    job: String,
    schedule: Schedule,
    work: Work,
    shutdown: CancellationToken,
) {
    loop {
        let last = last_started(&backups, &job, work).await;
        let Some(next) = next_firing(&schedule, &last, Utc::now()) else {
            if let Err(err) = &last {
                tracing::error!(error = %crate::collect::ErrorChain(err), "Cannot read the last start from the state store; asking again in a minute.");
            }
            tokio::select! {
                () = tokio::time::sleep(MAX_SLEEP) => continue,
                () = shutdown.cancelled() => return,
            }
        };
        tracing::debug!(next = %next, "Next firing.");
        loop {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            if wait.is_zero() {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(wait.min(MAX_SLEEP)) => {}
                () = shutdown.cancelled() => return,
            }
        }
        let result = match work {
            Work::Backup => backups
                .run(
                    &job,
                    Trigger::Schedule,
                    &shutdown,
                    Arc::new(Progress::default()),
                )
                .await
                .map(|_| ()),
            Work::Drill => backups.drill(&job, None, None, &shutdown).await.map(|_| ()),
        };
        if shutdown.is_cancelled() {
            return;
        }
        if let Err(err) = &result {
            tracing::debug!(error = %crate::collect::ErrorChain(err), "Scheduled work did not complete.");
        }
        // A run that started recorded its start, and the next firing follows it. Without a new
        // start (the job was busy, or the store failed) the firing is tried again shortly.
        let after = last_started(&backups, &job, work).await;
        if after.is_err() || after.ok() == last.ok() {
            tokio::select! {
                () = tokio::time::sleep(MAX_SLEEP) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn never_run_is_overdue_and_a_missed_firing_runs_once() {
        let schedule = Schedule::try_from_text("*/10 * * * *").unwrap();
        let now = at("2026-12-01T12:34:00Z");
        assert_eq!(next_start(&schedule, None, now), now);
        // Last start at 12:00: the 12:10 firing passed while warden was down → due now.
        let next = next_start(&schedule, Some(at("2026-12-01T12:00:00Z")), now);
        assert!(next <= now);
        // Last start at 12:30: next at 12:40.
        let next = next_start(&schedule, Some(at("2026-12-01T12:30:00Z")), now);
        assert_eq!(next, at("2026-12-01T12:40:00Z"));
        assert_eq!(schedule.interval(now), Duration::from_secs(600));
    }

    #[test]
    fn an_unreadable_store_fires_nothing() {
        let schedule = Schedule::try_from_text("*/10 * * * *").unwrap();
        let now = at("2026-12-01T12:34:00Z");
        let unreadable = Err(ReadError::Store(crate::store::StoreError::Sqlite {
            path: "/var/lib/warden/warden.db".into(),
            source: rusqlite::Error::InvalidQuery,
        }));
        assert_eq!(next_firing(&schedule, &unreadable, now), None);
        assert_eq!(next_firing(&schedule, &Ok(None), now), Some(now));
    }
}
