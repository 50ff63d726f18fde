//! The action job queue, the dedup keys, the cooldowns and the audit log, in the state store.
//!
//! Jobs move queued → running → succeeded | failed | cancelled | interrupted. Every change is
//! a transaction on a connection with `synchronous=FULL`, so what the webhook acknowledged
//! survives a power cut, not only a crash. The webhook's notifications are committed in
//! groups ([`ingest`]): one fsync covers every notification that arrived meanwhile.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::StoreError;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a slot (or for its retry time).
    Queued,
    /// Running now.
    Running,
    /// Finished and succeeded (a dry run too).
    Succeeded,
    /// Finished and failed (a timeout too).
    Failed,
    /// Never ran: its alert resolved while it was queued.
    Cancelled,
    /// Was running when warden stopped (crash or shutdown).
    Interrupted,
}

impl JobState {
    /// The spelling in the store and in `warden actions history`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Interrupted,
        }
    }
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRow {
    /// Its id.
    pub id: i64,
    /// The action's name.
    pub action: String,
    /// Its state.
    #[serde(serialize_with = "state_name")]
    pub state: JobState,
    /// What queued it: `alert`, `schedule`, `manual` or `retry`.
    pub trigger: String,
    /// The route that matched, for alert jobs.
    pub route: Option<String>,
    /// The alert's fingerprint, for alert jobs.
    pub fingerprint: Option<String>,
    /// The alert's labels (JSON object; `{}` without an alert).
    pub labels: String,
    /// 1 for the first attempt, 2 for the first retry, …
    pub attempt: u32,
    /// The job this one retries.
    pub retry_of: Option<i64>,
    /// When it was queued (Unix seconds).
    pub created: f64,
    /// When it started running.
    pub started: Option<f64>,
    /// When it finished.
    pub finished: Option<f64>,
    /// A child process's exit code.
    pub exit_code: Option<i32>,
    /// What it did.
    pub summary: Option<String>,
    /// The tail of a child's output.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

fn state_name<S: serde::Serializer>(state: &JobState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

/// One action's last outcomes, from the jobs kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSummary {
    /// The action.
    pub action: String,
    /// When it last succeeded (Unix seconds; 0 = never).
    pub last_success: f64,
    /// When it last failed or was interrupted (0 = never).
    pub last_failure: f64,
    /// Why its newest failed job failed.
    pub last_error: Option<String>,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// Its id (increasing).
    pub id: i64,
    /// When (Unix seconds).
    pub at: f64,
    /// What happened: `notification`, `matched`, `deduplicated`, `cooldown`, `filtered`,
    /// `unmatched`, `cancelled`, `started`, `finished`, `interrupted`, `retry`.
    pub event: String,
    /// The action concerned, if one.
    pub action: Option<String>,
    /// The job concerned, if one.
    pub job: Option<i64>,
    /// Details (JSON, secrets redacted).
    pub detail: String,
}

/// A job to queue.
#[derive(Debug, Clone, Default)]
pub struct NewJob {
    /// The action.
    pub action: String,
    /// `alert`, `schedule`, `manual` or `retry`.
    pub trigger: &'static str,
    /// The route, for alert jobs.
    pub route: Option<String>,
    /// The alert's fingerprint, for alert jobs.
    pub fingerprint: Option<String>,
    /// The alert's labels as a JSON object.
    pub labels: String,
    /// The attempt number (1 for a first run).
    pub attempt: u32,
    /// The job a retry repeats.
    pub retry_of: Option<i64>,
    /// Not run before this time (Unix seconds; 0 = at once).
    pub not_before: f64,
}

/// What a notification asks of the store, per alert and route, decided before the
/// transaction from the configuration alone.
#[derive(Debug, Clone)]
pub enum Intent {
    /// Queue `job` unless `dedup_key` was seen, or `cooldown` (key, seconds) is running.
    Run {
        /// The job.
        job: NewJob,
        /// (fingerprint, startsAt, status, action).
        dedup_key: String,
        /// (route, action, label set) and the cooldown's length in seconds.
        cooldown: Option<(String, f64)>,
        /// Recorded with the decision.
        detail: String,
    },
    /// Cancel the queued jobs of the alert with this fingerprint (it resolved), unless
    /// `dedup_key` was seen: a second copy of the resolution (the other HA peer, a retry)
    /// would otherwise cancel the jobs the first copy queued for `status: resolved` routes.
    CancelQueued {
        /// The alert's fingerprint.
        fingerprint: String,
        /// (fingerprint, startsAt, `resolved`).
        dedup_key: String,
    },
    /// Nothing to run; recorded in the audit log only.
    Note {
        /// `filtered` or `unmatched`.
        event: &'static str,
        /// Why (JSON).
        detail: String,
    },
}

/// What the store made of one intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Queued as this job.
    Queued(i64),
    /// Already seen: not queued again.
    Deduplicated,
    /// Within its route's cooldown: not queued.
    CooledDown,
    /// Queued jobs of these actions were cancelled.
    Cancelled(Vec<String>),
    /// Recorded only.
    Noted,
}

/// One notification for [`ingest`]: its audit summary and its intents.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The notification, redacted, for the audit log (JSON).
    pub audit: String,
    /// What to do.
    pub intents: Vec<Intent>,
}

const JOB_COLUMNS: &str = "id, action, state, trigger, route, fingerprint, labels, attempt,
    retry_of, created, started, finished, exit_code, summary, output, error";

fn job_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        action: row.get(1)?,
        state: JobState::parse(&row.get::<_, String>(2)?),
        trigger: row.get(3)?,
        route: row.get(4)?,
        fingerprint: row.get(5)?,
        labels: row.get(6)?,
        attempt: row.get(7)?,
        retry_of: row.get(8)?,
        created: row.get(9)?,
        started: row.get(10)?,
        finished: row.get(11)?,
        exit_code: row.get(12)?,
        summary: row.get(13)?,
        output: row.get(14)?,
        error: row.get(15)?,
    })
}

/// Opens a connection to the store for the job queue: WAL, `synchronous=FULL` (a commit is
/// on disk before it returns), the schema created or upgraded.
///
/// # Errors
/// When the database cannot be opened.
pub fn connect(state_dir: &Path) -> Result<Connection, StoreError> {
    let (conn, _) = super::open_connection(state_dir, "full")?;
    Ok(conn)
}

/// One process's writers of the store take turns here before they open a write transaction.
///
/// SQLite serialises writers itself, but a connection that finds the database locked waits in
/// its busy handler, which polls with sleeps of 1 ms growing to 100 ms: two busy writers of one
/// process (the webhook's group-commit thread and the dispatcher's claims and finishes) then
/// starve each other for hundreds of milliseconds. Taking this mutex first hands the turn over
/// as soon as the other transaction ends; the busy handler is left for other processes
/// (`warden actions run`, `warden backup`).
pub type WriteGate = Arc<Mutex<()>>;

/// Takes the gate (a panic while holding it does not poison the store).
pub fn take_turn(gate: &Mutex<()>) -> MutexGuard<'_, ()> {
    gate.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The job queue's connection, shared by the dispatcher and the command line.
pub struct JobStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// A second connection for the scrape's reads: in WAL mode a reader never waits for a
    /// writer, so a scrape does not queue behind the dispatcher's commits on `conn`.
    reader: Mutex<Connection>,
    gate: WriteGate,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore")
            .field("path", &self.path)
            .finish()
    }
}

impl JobStore {
    /// Opens the store in `state_dir`.
    ///
    /// # Errors
    /// When the database cannot be opened.
    pub fn open(state_dir: &Path) -> Result<JobStore, StoreError> {
        let (conn, path) = super::open_connection(state_dir, "full")?;
        let (reader, _) = super::open_connection(state_dir, "full")?;
        Ok(JobStore {
            path,
            conn: Mutex::new(conn),
            reader: Mutex::new(reader),
            gate: WriteGate::default(),
        })
    }

    /// The gate this store's writes take; give it to every other writer of the same process.
    pub fn write_gate(&self) -> WriteGate {
        Arc::clone(&self.gate)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` in one immediate transaction.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let _turn = take_turn(&self.gate);
        let result = (|| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|err| self.error(err))
    }

    /// Queues a job (a schedule's, a manual run's) and records it; returns its id.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn enqueue(&self, job: &NewJob, now: f64, detail: &str) -> Result<i64, StoreError> {
        self.write(|tx| {
            let id = insert_job(tx, job, now)?;
            audit(tx, now, "queued", Some(&job.action), Some(id), detail)?;
            Ok(id)
        })
    }

    /// Takes the oldest queued job due by `now` whose action is in `eligible`, and marks it
    /// running; `None` when there is none.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn claim(&self, eligible: &[&str], now: f64) -> Result<Option<JobRow>, StoreError> {
        let names = serde_json::to_string(eligible).unwrap_or_else(|_| "[]".to_owned());
        self.write(|tx| {
            let job = tx
                .query_row(
                    &format!(
                        "UPDATE action_jobs SET state = 'running', started = ?1
                         WHERE id = (SELECT id FROM action_jobs
                                     WHERE state = 'queued' AND not_before <= ?1
                                       AND action IN (SELECT value FROM json_each(?2))
                                     ORDER BY id LIMIT 1)
                         RETURNING {JOB_COLUMNS}"
                    ),
                    params![now, names],
                    job_row,
                )
                .optional()?;
            if let Some(job) = &job {
                audit(tx, now, "started", Some(&job.action), Some(job.id), "{}")?;
            }
            Ok(job)
        })
    }

    /// Takes the queued job `id` and marks it running; `None` when it is no longer queued
    /// (another process took it, or it was cancelled).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn claim_id(&self, id: i64, now: f64) -> Result<Option<JobRow>, StoreError> {
        self.write(|tx| {
            let job = tx
                .query_row(
                    &format!(
                        "UPDATE action_jobs SET state = 'running', started = ?1
                         WHERE id = ?2 AND state = 'queued' RETURNING {JOB_COLUMNS}"
                    ),
                    params![now, id],
                    job_row,
                )
                .optional()?;
            if let Some(job) = &job {
                audit(tx, now, "started", Some(&job.action), Some(job.id), "{}")?;
            }
            Ok(job)
        })
    }

    /// Records how job `id` ended, and queues `retry` in the same transaction when given.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn finish(
        &self,
        id: i64,
        ended: &Ended,
        retry: Option<&NewJob>,
        now: f64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|tx| {
            let action: String = tx.query_row(
                "UPDATE action_jobs SET state = ?2, finished = ?3, exit_code = ?4, summary = ?5,
                        output = ?6, error = ?7
                 WHERE id = ?1 RETURNING action",
                params![
                    id,
                    ended.state().as_str(),
                    now,
                    ended.exit_code,
                    ended.summary,
                    ended.output,
                    ended.error
                ],
                |row| row.get(0),
            )?;
            let detail = serde_json::json!({
                "state": ended.state().as_str(),
                "exit_code": ended.exit_code,
                "summary": ended.summary,
                "error": ended.error,
                "duration_seconds": ended.duration_seconds,
            })
            .to_string();
            let event = if ended.state() == JobState::Interrupted {
                "interrupted"
            } else {
                "finished"
            };
            audit(tx, now, event, Some(&action), Some(id), &detail)?;
            let retry_id = match retry {
                Some(job) => {
                    let retry_id = insert_job(tx, job, now)?;
                    let detail = serde_json::json!({"retry_of": id, "attempt": job.attempt, "not_before": job.not_before}).to_string();
                    audit(tx, now, "retry", Some(&action), Some(retry_id), &detail)?;
                    Some(retry_id)
                }
                None => None,
            };
            Ok(retry_id)
        })
    }

    /// Every job left `running` by a process that is gone (start-up after a crash): marks
    /// them interrupted and returns them, so the caller can retry the idempotent ones.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn interrupted_at_start(&self, now: f64) -> Result<Vec<JobRow>, StoreError> {
        self.write(|tx| {
            let mut select = tx.prepare(&format!(
                "UPDATE action_jobs SET state = 'interrupted', finished = ?1,
                        error = 'warden stopped while the job was running'
                 WHERE state = 'running' RETURNING {JOB_COLUMNS}"
            ))?;
            let jobs = select
                .query_map(params![now], job_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for job in &jobs {
                audit(
                    tx,
                    now,
                    "interrupted",
                    Some(&job.action),
                    Some(job.id),
                    r#"{"reason":"found running at start-up: warden stopped while the job was running"}"#,
                )?;
            }
            Ok(jobs)
        })
    }

    /// Cancels the queued jobs of actions not in `known` (removed from the configuration
    /// since they were queued), so that they neither wait forever nor count as a stuck
    /// queue; returns how many.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn cancel_unknown(&self, known: &[&str], now: f64) -> Result<usize, StoreError> {
        let names = serde_json::to_string(known).unwrap_or_else(|_| "[]".to_owned());
        self.write(|tx| {
            let mut update = tx.prepare(
                "UPDATE action_jobs SET state = 'cancelled', finished = ?1,
                        error = 'the action is no longer configured'
                 WHERE state = 'queued' AND action NOT IN (SELECT value FROM json_each(?2))
                 RETURNING id, action",
            )?;
            let cancelled = update
                .query_map(params![now, names], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (id, action) in &cancelled {
                audit(
                    tx,
                    now,
                    "cancelled",
                    Some(action),
                    Some(*id),
                    r#"{"reason":"the action is no longer configured"}"#,
                )?;
            }
            Ok(cancelled.len())
        })
    }

    /// The newest jobs, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn history(&self, limit: usize) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM action_jobs ORDER BY id DESC LIMIT ?1"
            ))?;
            select
                .query_map(params![limit as i64], job_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|err| self.error(err))
    }

    /// Job `id`.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn job(&self, id: i64) -> Result<Option<JobRow>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            &format!("SELECT {JOB_COLUMNS} FROM action_jobs WHERE id = ?1"),
            params![id],
            job_row,
        )
        .optional()
        .map_err(|err| self.error(err))
    }

    /// The newest audit entries, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare(
                "SELECT id, at, event, action, job, detail FROM audit_log ORDER BY id DESC LIMIT ?1",
            )?;
            select
                .query_map(params![limit as i64], |row| {
                    Ok(AuditEntry {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        event: row.get(2)?,
                        action: row.get(3)?,
                        job: row.get(4)?,
                        detail: row.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|err| self.error(err))
    }

    /// When the soonest queued job not yet due (a retry in its backoff) becomes due, for the
    /// dispatcher's sleep; `None` when there is none.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn next_due(&self, now: f64) -> Result<Option<f64>, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT min(not_before) FROM action_jobs WHERE state = 'queued' AND not_before > ?1",
            params![now],
            |row| row.get(0),
        )
        .map_err(|err| self.error(err))
    }

    /// Jobs waiting to run (retries waiting for their backoff included): the metric's value.
    /// It reads one counter row, on the reader connection, so a
    /// scrape costs the same whatever the backlog and whatever the dispatcher is writing.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn queue_depth(&self) -> Result<u64, StoreError> {
        // Kept by triggers on action_jobs (see the schema): a scrape reads one row whatever
        // the backlog, where counting the queued jobs took milliseconds per 10,000.
        let conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row(
            "SELECT value FROM action_counters WHERE name = 'queued'",
            [],
            |row| Ok(row.get::<_, i64>(0)?.max(0) as u64),
        )
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(|err| self.error(err))
    }

    /// Per action: when it last succeeded and last failed (0 = never), from the jobs kept.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn last_outcomes(&self) -> Result<Vec<(String, f64, f64)>, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare(
                "SELECT action,
                        coalesce(max(CASE WHEN state = 'succeeded' THEN finished END), 0),
                        coalesce(max(CASE WHEN state IN ('failed', 'interrupted') THEN finished END), 0)
                 FROM action_jobs GROUP BY action",
            )?;
            select
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|err| self.error(err))
    }

    /// Per action with kept jobs: when it last succeeded and last failed (0 = never), and the
    /// error of its newest failed job, for the status page.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn action_summaries(&self) -> Result<Vec<ActionSummary>, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare(
                "SELECT action,
                        coalesce(max(CASE WHEN state = 'succeeded' THEN finished END), 0),
                        coalesce(max(CASE WHEN state IN ('failed', 'interrupted') THEN finished END), 0),
                        (SELECT error FROM action_jobs AS f
                         WHERE f.action = j.action AND f.state IN ('failed', 'interrupted')
                         ORDER BY f.finished DESC, f.id DESC LIMIT 1)
                 FROM action_jobs AS j GROUP BY action",
            )?;
            select
                .query_map([], |row| {
                    Ok(ActionSummary {
                        action: row.get(0)?,
                        last_success: row.get(1)?,
                        last_failure: row.get(2)?,
                        last_error: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|err| self.error(err))
    }

    /// Removes audit entries, finished jobs, dedup keys and expired cooldowns older than
    /// `before` (Unix seconds); returns how many rows went.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn prune(&self, before: f64, now: f64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut removed = tx.execute("DELETE FROM audit_log WHERE at < ?1", params![before])?;
            removed += tx.execute(
                "DELETE FROM action_jobs WHERE finished IS NOT NULL AND finished < ?1
                   AND state NOT IN ('queued', 'running')",
                params![before],
            )?;
            removed += tx.execute(
                "DELETE FROM action_dedup WHERE created < ?1",
                params![before],
            )?;
            removed += tx.execute(
                "DELETE FROM action_cooldowns WHERE until < ?1",
                params![now],
            )?;
            Ok(removed)
        })
    }
}

/// How a job ended, for [`JobStore::finish`].
#[derive(Debug, Clone, Default)]
pub struct Ended {
    /// Succeeded, failed or interrupted.
    pub state: Option<JobState>,
    /// A child's exit code.
    pub exit_code: Option<i32>,
    /// What it did.
    pub summary: Option<String>,
    /// A child's output tail.
    pub output: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// How long it ran.
    pub duration_seconds: f64,
}

impl Ended {
    fn state(&self) -> JobState {
        self.state.unwrap_or(JobState::Failed)
    }
}

/// Commits every notification of `batch` in one immediate transaction and returns each
/// one's verdicts, in order. Nothing is committed if any statement fails.
///
/// # Errors
/// When SQLite fails (the disk is full, the store is read-only, …).
pub fn ingest(
    conn: &mut Connection,
    batch: &[&Notification],
    now: f64,
) -> rusqlite::Result<Vec<Vec<Verdict>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Vec::with_capacity(batch.len());
    for notification in batch {
        audit(&tx, now, "notification", None, None, &notification.audit)?;
        let mut verdicts = Vec::with_capacity(notification.intents.len());
        for intent in &notification.intents {
            verdicts.push(apply(&tx, intent, now)?);
        }
        out.push(verdicts);
    }
    tx.commit()?;
    Ok(out)
}

fn apply(tx: &Transaction<'_>, intent: &Intent, now: f64) -> rusqlite::Result<Verdict> {
    match intent {
        Intent::Run {
            job,
            dedup_key,
            cooldown,
            detail,
        } => {
            let action = Some(job.action.as_str());
            let fresh = tx.execute(
                "INSERT INTO action_dedup (key, created) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![dedup_key, now],
            )? == 1;
            if !fresh {
                audit(tx, now, "deduplicated", action, None, detail)?;
                return Ok(Verdict::Deduplicated);
            }
            if let Some((key, seconds)) = cooldown {
                let until: Option<f64> = tx
                    .query_row(
                        "SELECT until FROM action_cooldowns WHERE key = ?1",
                        params![key],
                        |row| row.get(0),
                    )
                    .optional()?;
                if until.is_some_and(|until| until > now) {
                    audit(tx, now, "cooldown", action, None, detail)?;
                    return Ok(Verdict::CooledDown);
                }
                tx.execute(
                    "INSERT INTO action_cooldowns (key, until) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                    params![key, now + seconds],
                )?;
            }
            let id = insert_job(tx, job, now)?;
            audit(tx, now, "matched", action, Some(id), detail)?;
            Ok(Verdict::Queued(id))
        }
        Intent::CancelQueued {
            fingerprint,
            dedup_key,
        } => {
            let fresh = tx.execute(
                "INSERT INTO action_dedup (key, created) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                params![dedup_key, now],
            )? == 1;
            if !fresh {
                return Ok(Verdict::Cancelled(Vec::new()));
            }
            let mut update = tx.prepare_cached(
                "UPDATE action_jobs SET state = 'cancelled', finished = ?2,
                        error = 'the alert resolved before the job ran'
                 WHERE state = 'queued' AND fingerprint = ?1
                 RETURNING id, action",
            )?;
            let cancelled = update
                .query_map(params![fingerprint, now], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for (id, action) in &cancelled {
                let detail = serde_json::json!({"reason": "resolved", "fingerprint": fingerprint})
                    .to_string();
                audit(tx, now, "cancelled", Some(action), Some(*id), &detail)?;
            }
            Ok(Verdict::Cancelled(
                cancelled.into_iter().map(|(_, action)| action).collect(),
            ))
        }
        Intent::Note { event, detail } => {
            audit(tx, now, event, None, None, detail)?;
            Ok(Verdict::Noted)
        }
    }
}

fn insert_job(tx: &Transaction<'_>, job: &NewJob, now: f64) -> rusqlite::Result<i64> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO action_jobs (action, state, trigger, route, fingerprint, labels, attempt,
                                  retry_of, not_before, created)
         VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    insert.execute(params![
        job.action,
        job.trigger,
        job.route,
        job.fingerprint,
        if job.labels.is_empty() {
            "{}"
        } else {
            &job.labels
        },
        job.attempt.max(1),
        job.retry_of,
        job.not_before,
        now
    ])?;
    Ok(tx.last_insert_rowid())
}

fn audit(
    tx: &Transaction<'_>,
    now: f64,
    event: &str,
    action: Option<&str>,
    job: Option<i64>,
    detail: &str,
) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO audit_log (at, event, action, job, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    insert.execute(params![now, event, action, job, detail])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_intent(fingerprint: &str, action: &str, cooldown: Option<f64>) -> Intent {
        Intent::Run {
            job: NewJob {
                action: action.to_owned(),
                trigger: "alert",
                fingerprint: Some(fingerprint.to_owned()),
                attempt: 1,
                ..NewJob::default()
            },
            dedup_key: format!("{fingerprint}|2026-01-01T00:00:00Z|firing|{action}"),
            cooldown: cooldown.map(|s| (format!("r|{action}|{fingerprint}"), s)),
            detail: "{}".to_owned(),
        }
    }

    #[test]
    fn dedup_cooldown_cancel_claim_and_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let mut conn = connect(dir.path()).unwrap();
        let first = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("a", "x", Some(60.0))],
        };
        let again = first.clone();
        let verdicts = ingest(&mut conn, &[&first, &again], 100.0).unwrap();
        assert!(matches!(verdicts[0][0], Verdict::Queued(_)));
        assert_eq!(verdicts[1][0], Verdict::Deduplicated);

        // Another startsAt of the same alert: a new dedup key, but the route's cooldown holds.
        let mut later = run_intent("a", "x", Some(60.0));
        if let Intent::Run { dedup_key, .. } = &mut later {
            *dedup_key = "a|later|firing|x".to_owned();
        }
        let cooled = Notification {
            audit: "{}".to_owned(),
            intents: vec![later],
        };
        assert_eq!(
            ingest(&mut conn, &[&cooled], 110.0).unwrap()[0][0],
            Verdict::CooledDown
        );

        // A second queued job for alert b, cancelled when b resolves.
        let b = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("b", "x", None)],
        };
        ingest(&mut conn, &[&b], 120.0).unwrap();
        let resolved = Notification {
            audit: "{}".to_owned(),
            intents: vec![Intent::CancelQueued {
                fingerprint: "b".to_owned(),
                dedup_key: "b|2026-01-01T00:00:00Z|resolved".to_owned(),
            }],
        };
        assert_eq!(
            ingest(&mut conn, &[&resolved], 121.0).unwrap()[0][0],
            Verdict::Cancelled(vec!["x".to_owned()])
        );
        assert_eq!(store.queue_depth().unwrap(), 1);
        assert_eq!(store.cancel_unknown(&["x", "y"], 122.0).unwrap(), 0);
        assert_eq!(store.queue_depth().unwrap(), 1);

        let job = store.claim(&["x"], 130.0).unwrap().expect("a queued job");
        assert_eq!(job.fingerprint.as_deref(), Some("a"));
        assert!(store.claim(&["x"], 130.0).unwrap().is_none());
        let retry = NewJob {
            action: "x".to_owned(),
            trigger: "retry",
            attempt: 2,
            retry_of: Some(job.id),
            not_before: 200.0,
            ..NewJob::default()
        };
        let ended = Ended {
            state: Some(JobState::Failed),
            error: Some("boom".to_owned()),
            ..Ended::default()
        };
        let retry_id = store.finish(job.id, &ended, Some(&retry), 131.0).unwrap();
        assert!(store.claim(&["x"], 150.0).unwrap().is_none(), "not due yet");
        let retried = store.claim(&["x"], 200.0).unwrap().unwrap();
        assert_eq!(Some(retried.id), retry_id);
        assert_eq!(retried.attempt, 2);

        // A crash leaves it running: the next start-up finds it interrupted.
        drop(store);
        let store = JobStore::open(dir.path()).unwrap();
        let interrupted = store.interrupted_at_start(300.0).unwrap();
        assert_eq!(interrupted.len(), 1);
        assert_eq!(
            store.job(retried.id).unwrap().unwrap().state,
            JobState::Interrupted
        );
        let events: Vec<String> = store
            .audit_log(100)
            .unwrap()
            .into_iter()
            .map(|e| e.event)
            .collect();
        for event in [
            "notification",
            "matched",
            "deduplicated",
            "cooldown",
            "cancelled",
            "started",
            "finished",
            "retry",
            "interrupted",
        ] {
            assert!(events.iter().any(|e| e == event), "{event} in {events:?}");
        }
    }

    #[test]
    fn pruning_keeps_what_is_recent_and_what_is_not_finished() {
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let mut conn = connect(dir.path()).unwrap();
        let old = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("old", "x", Some(10.0))],
        };
        ingest(&mut conn, &[&old], 100.0).unwrap();
        let finished = store.claim(&["x"], 101.0).unwrap().unwrap();
        let ended = Ended {
            state: Some(JobState::Succeeded),
            ..Ended::default()
        };
        store.finish(finished.id, &ended, None, 102.0).unwrap();
        let queued = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("queued", "y", None)],
        };
        ingest(&mut conn, &[&queued], 103.0).unwrap();
        let recent = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("recent", "x", None)],
        };
        ingest(&mut conn, &[&recent], 1000.0).unwrap();

        assert!(store.prune(500.0, 1000.0).unwrap() > 0);
        assert!(
            store.job(finished.id).unwrap().is_none(),
            "old and finished: gone"
        );
        assert_eq!(
            store.queue_depth().unwrap(),
            2,
            "queued jobs stay, however old"
        );
        assert_eq!(
            store.cancel_unknown(&["x"], 1000.0).unwrap(),
            1,
            "y is gone"
        );
        assert_eq!(store.queue_depth().unwrap(), 1);
        assert!(store.audit_log(100).unwrap().iter().all(|e| e.at >= 500.0));
        // The old dedup key is gone with the retention: the same firing may run again.
        assert!(matches!(
            ingest(&mut conn, &[&old], 1001.0).unwrap()[0][0],
            Verdict::Queued(_)
        ));
    }

    #[test]
    fn a_read_only_store_commits_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = connect(dir.path()).unwrap();
        conn.pragma_update(None, "query_only", true).unwrap();
        let n = Notification {
            audit: "{}".to_owned(),
            intents: vec![run_intent("a", "x", None)],
        };
        assert!(ingest(&mut conn, &[&n], 1.0).is_err());
        conn.pragma_update(None, "query_only", false).unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        assert_eq!(store.queue_depth().unwrap(), 0);
        assert!(store.audit_log(10).unwrap().is_empty());
    }
}
