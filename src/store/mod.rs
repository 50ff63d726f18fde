//! warden's own state: an embedded SQLite database, `warden.db` in the state directory.
//!
//! It holds what the files on disk cannot tell: per-job run counters, the last failure, when
//! each job and drill last started (so schedules survive restarts), and the backup catalog.
//! The catalog is a cache of the manifests beside the backups: it is rebuilt from them at
//! start-up, so a lost state directory costs counters, never the backup history.
//!
//! `warden serve` and the `warden backup` commands may use the store at the same time; SQLite's
//! WAL mode and a busy timeout keep them from getting in each other's way. Every call is a
//! short transaction; callers on the async runtime run them in `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::backup::manifest::Manifest;

pub mod jobs;

/// The store's file name in the state directory.
pub const STORE_FILE: &str = "warden.db";
/// How long a call waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// The schema version this warden writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 4;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS backup_jobs (
    job TEXT PRIMARY KEY,
    last_started REAL NOT NULL DEFAULT 0,
    last_failure REAL NOT NULL DEFAULT 0,
    last_duration REAL NOT NULL DEFAULT 0,
    drill_started REAL NOT NULL DEFAULT 0,
    drill_success REAL NOT NULL DEFAULT 0,
    drill_failure REAL NOT NULL DEFAULT 0,
    runs_success INTEGER NOT NULL DEFAULT 0,
    runs_failure INTEGER NOT NULL DEFAULT 0,
    runs_skipped INTEGER NOT NULL DEFAULT 0,
    verify_failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS backups (
    job TEXT NOT NULL,
    id TEXT NOT NULL,
    finished REAL NOT NULL,
    size INTEGER NOT NULL,
    verified INTEGER NOT NULL,
    restore_tested REAL NOT NULL,
    manifest TEXT NOT NULL,
    PRIMARY KEY (job, id)
);
CREATE TABLE IF NOT EXISTS backup_copies (
    job TEXT NOT NULL,
    destination TEXT NOT NULL,
    last_success REAL NOT NULL DEFAULT 0,
    last_failure REAL NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0,
    last_bytes INTEGER NOT NULL DEFAULT 0,
    last_duration REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job, destination)
);
CREATE TABLE IF NOT EXISTS action_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    trigger TEXT NOT NULL,
    route TEXT,
    fingerprint TEXT,
    labels TEXT NOT NULL DEFAULT '{}',
    attempt INTEGER NOT NULL DEFAULT 1,
    retry_of INTEGER,
    not_before REAL NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    summary TEXT,
    output TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS action_jobs_state ON action_jobs (state, id);
CREATE INDEX IF NOT EXISTS action_jobs_fingerprint ON action_jobs (fingerprint) WHERE state = 'queued';
CREATE TABLE IF NOT EXISTS action_dedup (
    key TEXT PRIMARY KEY,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS action_cooldowns (
    key TEXT PRIMARY KEY,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    event TEXT NOT NULL,
    action TEXT,
    job INTEGER,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at);
CREATE TABLE IF NOT EXISTS action_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO action_counters (name, value)
    SELECT 'queued', count(*) FROM action_jobs WHERE state = 'queued'
    ON CONFLICT (name) DO UPDATE SET value = excluded.value;
CREATE TRIGGER IF NOT EXISTS action_jobs_queued_insert AFTER INSERT ON action_jobs
    WHEN NEW.state = 'queued'
    BEGIN UPDATE action_counters SET value = value + 1 WHERE name = 'queued'; END;
CREATE TRIGGER IF NOT EXISTS action_jobs_queued_update AFTER UPDATE OF state ON action_jobs
    WHEN (OLD.state = 'queued') <> (NEW.state = 'queued')
    BEGIN UPDATE action_counters
          SET value = value + CASE WHEN NEW.state = 'queued' THEN 1 ELSE -1 END
          WHERE name = 'queued'; END;
CREATE TRIGGER IF NOT EXISTS action_jobs_queued_delete AFTER DELETE ON action_jobs
    WHEN OLD.state = 'queued'
    BEGIN UPDATE action_counters SET value = value - 1 WHERE name = 'queued'; END;
";

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed.
    #[error("state store {path}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// A blocking task using the store was cancelled or panicked (shutdown).
    #[error("the state store's task stopped before it finished")]
    Closed,
    /// The store was written by a newer warden.
    #[error(
        "state store {path} has schema version {found}; this warden knows up to {SCHEMA_VERSION}"
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
}

/// How a backup run ended, for the run counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// Published and verified.
    Success,
    /// Failed; nothing was published.
    Failure,
    /// Not started because a run of the job was already going.
    Skipped,
}

impl RunOutcome {
    /// Every outcome, in label order.
    pub const ALL: [RunOutcome; 3] = [
        RunOutcome::Success,
        RunOutcome::Failure,
        RunOutcome::Skipped,
    ];

    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Success => "success",
            RunOutcome::Failure => "failure",
            RunOutcome::Skipped => "skipped",
        }
    }
}

/// When a run that ran started, and how long it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ran {
    /// When it started (Unix seconds).
    pub started: f64,
    /// How long it took, from taking the job's lock to the end.
    pub duration: Duration,
}

/// What the store knows about one job; zero means never.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRecord {
    /// When the last run started (Unix seconds).
    pub last_started: f64,
    /// When the last run failed.
    pub last_failure: f64,
    /// How long the last run took, successful or not.
    pub last_duration: f64,
    /// When the last restore drill started.
    pub drill_started: f64,
    /// When the last passing restore drill ended (kept even when its backup is pruned).
    pub drill_success: f64,
    /// When the last restore drill failed.
    pub drill_failure: f64,
    /// Runs by outcome, in [`RunOutcome::ALL`] order.
    pub runs: [u64; 3],
    /// Verifications of stored backups that failed.
    pub verify_failures: u64,
}

/// What the store knows about one job's copies to one destination; zero means never.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyRecord {
    /// When the last copy was stored and read back whole (Unix seconds).
    pub last_success: f64,
    /// When the last copy failed.
    pub last_failure: f64,
    /// Copies that failed.
    pub failures: u64,
    /// The bytes of the last copy stored.
    pub last_bytes: u64,
    /// How long the last copy took, upload and read-back.
    pub last_duration: f64,
}

/// A job's catalog in sum; zero means none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogSummary {
    /// Complete backups on disk.
    pub count: u64,
    /// When the newest backup finished (Unix seconds).
    pub newest_finished: f64,
    /// When the newest backup that is still verified good finished.
    pub newest_verified_finished: f64,
    /// Backups whose last verification failed.
    pub failed_verification: u64,
    /// When the last passing restore drill ran.
    pub restore_tested: f64,
    /// The newest backup's size.
    pub newest_size: u64,
}

/// The state store.
pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `state_dir`.
    ///
    /// # Errors
    /// When the directory or database cannot be created or read.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let (conn, path) = open_connection(state_dir, "normal")?;
        Ok(Store {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// A store in memory, for commands that only read and must not create the state
    /// directory.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let sqlite = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_in_memory().map_err(sqlite)?;
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        Ok(Store {
            path: path.clone(),
            conn: Mutex::new(conn),
        })
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

    /// Applies `SET assignments` (where `?2`, `?3`, … are `values`) to `job`'s row, creating
    /// it first.
    fn update(&self, job: &str, assignments: &str, values: &[f64]) -> Result<(), StoreError> {
        use rusqlite::types::Value;
        let conn = self.conn();
        let sql = format!("UPDATE backup_jobs SET {assignments} WHERE job = ?1");
        let parameters = std::iter::once(Value::Text(job.to_owned()))
            .chain(values.iter().map(|v| Value::Real(*v)));
        conn.execute(
            "INSERT INTO backup_jobs (job) VALUES (?1) ON CONFLICT (job) DO NOTHING",
            params![job],
        )
        .and_then(|_| conn.execute(&sql, rusqlite::params_from_iter(parameters)))
        .map(|_| ())
        .map_err(|err| self.error(err))
    }

    /// Records how a run ended at `ended` (Unix seconds): a run that ran (`Some`) also
    /// records when it started, which the scheduler's next firing follows, and how long it
    /// took. A run that was cancelled (shutdown) is not recorded at all, so it is redone.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn record_run(
        &self,
        job: &str,
        outcome: RunOutcome,
        ended: f64,
        ran: Option<Ran>,
    ) -> Result<(), StoreError> {
        match outcome {
            RunOutcome::Success => self.update(job, "runs_success = runs_success + 1", &[])?,
            RunOutcome::Failure => self.update(
                job,
                "runs_failure = runs_failure + 1, last_failure = ?2",
                &[ended],
            )?,
            RunOutcome::Skipped => self.update(job, "runs_skipped = runs_skipped + 1", &[])?,
        }
        if let Some(ran) = ran {
            self.update(
                job,
                "last_started = ?2, last_duration = ?3",
                &[ran.started, ran.duration.as_secs_f64()],
            )?;
        }
        Ok(())
    }

    /// Records a restore drill of `job` that ran from `started` to `ended` and passed or not.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn record_drill(
        &self,
        job: &str,
        started: f64,
        ended: f64,
        passed: bool,
    ) -> Result<(), StoreError> {
        let assignments = if passed {
            "drill_started = ?2, drill_success = ?3"
        } else {
            "drill_started = ?2, drill_failure = ?3"
        };
        self.update(job, assignments, &[started, ended])
    }

    /// Records that a restore drill of `job` started but could not run (neither passed nor
    /// failed): the schedule's next firing follows it.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn record_drill_start(&self, job: &str, started: f64) -> Result<(), StoreError> {
        self.update(job, "drill_started = ?2", &[started])
    }

    /// Records a copy of a `job`'s backup to `destination` that ended at `at`: stored with
    /// `bytes` (`Some`), or failed (`None`), after `duration`.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn record_copy(
        &self,
        job: &str,
        destination: &str,
        at: f64,
        bytes: Option<u64>,
        duration: Duration,
    ) -> Result<(), StoreError> {
        let conn = self.conn();
        let seconds = duration.as_secs_f64();
        let result = match bytes {
            Some(bytes) => conn.execute(
                "INSERT INTO backup_copies (job, destination, last_success, last_bytes, last_duration)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (job, destination) DO UPDATE SET last_success = ?3,
                     last_bytes = ?4, last_duration = ?5",
                params![job, destination, at, bytes as i64, seconds],
            ),
            None => conn.execute(
                "INSERT INTO backup_copies (job, destination, last_failure, failures, last_duration)
                 VALUES (?1, ?2, ?3, 1, ?4)
                 ON CONFLICT (job, destination) DO UPDATE SET last_failure = ?3,
                     failures = failures + 1, last_duration = ?4",
                params![job, destination, at, seconds],
            ),
        };
        result.map(|_| ()).map_err(|err| self.error(err))
    }

    /// What the store knows about `job`'s copies to `destination` (all zero if nothing).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn copy(&self, job: &str, destination: &str) -> Result<CopyRecord, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT last_success, last_failure, failures, last_bytes, last_duration
             FROM backup_copies WHERE job = ?1 AND destination = ?2",
            params![job, destination],
            |row| {
                Ok(CopyRecord {
                    last_success: row.get(0)?,
                    last_failure: row.get(1)?,
                    failures: row.get::<_, i64>(2)?.max(0) as u64,
                    last_bytes: row.get::<_, i64>(3)?.max(0) as u64,
                    last_duration: row.get(4)?,
                })
            },
        )
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(|err| self.error(err))
    }

    /// Counts a stored backup of `job` that failed verification.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn record_verify_failure(&self, job: &str) -> Result<(), StoreError> {
        self.update(job, "verify_failures = verify_failures + 1", &[])
    }

    /// What the store knows about `job` (all zero if nothing).
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn job(&self, job: &str) -> Result<JobRecord, StoreError> {
        let conn = self.conn();
        conn.query_row(
            "SELECT last_started, last_failure, last_duration, drill_started, drill_failure,
                    runs_success, runs_failure, runs_skipped, verify_failures, drill_success
             FROM backup_jobs WHERE job = ?1",
            params![job],
            |row| {
                let n = |i: usize| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(JobRecord {
                    last_started: row.get(0)?,
                    last_failure: row.get(1)?,
                    last_duration: row.get(2)?,
                    drill_started: row.get(3)?,
                    drill_failure: row.get(4)?,
                    runs: [n(5)?, n(6)?, n(7)?],
                    verify_failures: n(8)?,
                    drill_success: row.get(9)?,
                })
            },
        )
        .optional()
        .map(Option::unwrap_or_default)
        .map_err(|err| self.error(err))
    }

    /// Replaces `job`'s catalog with `manifests`.
    ///
    /// # Errors
    /// When SQLite fails; the old catalog is kept then.
    pub fn replace_catalog(&self, job: &str, manifests: &[Manifest]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let result = (|| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM backups WHERE job = ?1", params![job])?;
            {
                let mut insert = tx.prepare(
                    "INSERT INTO backups (job, id, finished, size, verified, restore_tested, manifest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for manifest in manifests {
                    let json = serde_json::to_string(manifest).unwrap_or_default();
                    let seconds =
                        |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
                    insert.execute(params![
                        job,
                        manifest.id,
                        seconds(manifest.finished()),
                        i64::try_from(manifest.size_bytes).unwrap_or(i64::MAX),
                        manifest.is_verified(),
                        manifest.restore_tested().map_or(0.0, seconds),
                        json
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|err| self.error(err))
    }

    /// `job`'s catalog, newest first.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn catalog(&self, job: &str) -> Result<Vec<Manifest>, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare_cached(
                "SELECT manifest FROM backups WHERE job = ?1 ORDER BY finished DESC, id DESC",
            )?;
            let rows = select.query_map(params![job], |row| row.get::<_, String>(0))?;
            let mut manifests = Vec::new();
            for json in rows {
                // Rows are written from parsed manifests; one that no longer parses is skipped.
                if let Ok(manifest) = serde_json::from_str(&json?) {
                    manifests.push(manifest);
                }
            }
            Ok(manifests)
        })();
        result.map_err(|err| self.error(err))
    }

    /// What `job`'s catalog says in sum, for its metrics.
    ///
    /// # Errors
    /// When SQLite fails.
    pub fn summary(&self, job: &str) -> Result<CatalogSummary, StoreError> {
        let conn = self.conn();
        let result = (|| {
            let mut select = conn.prepare_cached(
                "SELECT count(*),
                        coalesce(max(finished), 0),
                        coalesce(max(CASE WHEN verified THEN finished END), 0),
                        coalesce(sum(NOT verified), 0),
                        coalesce(max(restore_tested), 0),
                        coalesce((SELECT size FROM backups WHERE job = ?1 ORDER BY finished DESC, id DESC LIMIT 1), 0)
                 FROM backups WHERE job = ?1",
            )?;
            select.query_row(params![job], |row| {
                let n = |i: usize| row.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(CatalogSummary {
                    count: n(0)?,
                    newest_finished: row.get(1)?,
                    newest_verified_finished: row.get(2)?,
                    failed_verification: n(3)?,
                    restore_tested: row.get(4)?,
                    newest_size: n(5)?,
                })
            })
        })();
        result.map_err(|err| self.error(err))
    }
}

/// Opens `warden.db` in `state_dir` (creating both if needed) in WAL mode with the given
/// `synchronous` level, and creates or upgrades the schema.
///
/// A damaged file (not a database, or one `PRAGMA quick_check` finds corrupt, run at the
/// first open of the file in this process: a process opens the store several times at
/// start-up, and each check reads the whole file) is moved aside
/// as `warden.db.damaged-TIME` with its `-wal` and `-shm`, and a new store is started, with a
/// warning that says where the old one went: the backup catalog is rebuilt from the
/// manifests, and what else it held (run counters, the action queue, the audit log) is in the
/// copy for a person to look at. A damaged store must not keep `warden serve` from starting.
fn open_connection(
    state_dir: &Path,
    synchronous: &str,
) -> Result<(Connection, PathBuf), StoreError> {
    std::fs::create_dir_all(state_dir).map_err(|source| StoreError::Dir {
        path: state_dir.to_owned(),
        source,
    })?;
    let path = state_dir.join(STORE_FILE);
    match try_open(&path, synchronous) {
        Err(StoreError::Sqlite { source, .. }) if is_damage(&source) => {
            let aside = move_aside(&path).map_err(|err| StoreError::Dir {
                path: path.clone(),
                source: err,
            })?;
            tracing::warn!(
                store = %path.display(),
                moved_to = %aside.display(),
                error = %crate::collect::ErrorChain(&source),
                "The state store is damaged: moved it aside and started a new one. Backup records are rebuilt from the manifests; run counters, the action queue and the audit log it held are in the copy."
            );
            Ok((try_open(&path, synchronous)?, path))
        }
        other => other.map(|conn| (conn, path)),
    }
}

/// The store files this process has already run `PRAGMA quick_check` on.
static CHECKED: Mutex<std::collections::BTreeSet<PathBuf>> =
    Mutex::new(std::collections::BTreeSet::new());

fn try_open(path: &Path, synchronous: &str) -> Result<Connection, StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let conn = Connection::open(path).map_err(sqlite)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    conn.pragma_update(None, "journal_mode", "wal")
        .map_err(sqlite)?;
    conn.pragma_update(None, "synchronous", synchronous)
        .map_err(sqlite)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_owned(),
            found: version,
        });
    }
    let first_open = CHECKED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_owned());
    if version > 0 && first_open {
        let verdict: String = conn
            .pragma_query_value(None, "quick_check", |row| row.get(0))
            .map_err(sqlite)?;
        if verdict != "ok" {
            return Err(sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
                Some(format!("quick_check: {verdict}")),
            )));
        }
    }
    if version < SCHEMA_VERSION {
        conn.execute_batch(SCHEMA).map_err(sqlite)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(sqlite)?;
    }
    Ok(conn)
}

/// Whether SQLite says the file is damaged (as opposed to busy, read-only or missing).
fn is_damage(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// Renames the store and its `-wal` and `-shm` to `…damaged-TIME`; returns the store's new
/// path.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let aside = path.with_file_name(format!("{STORE_FILE}.damaged-{stamp}"));
    for suffix in ["-wal", "-shm"] {
        let from = path.with_file_name(format!("{STORE_FILE}{suffix}"));
        let to = path.with_file_name(format!("{STORE_FILE}.damaged-{stamp}{suffix}"));
        match std::fs::rename(&from, &to) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    std::fs::rename(path, &aside)?;
    crate::backup::publish::sync_parent(path)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_store_is_moved_aside_and_started_anew() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = b"this was warden.db before the disk lost it\n".repeat(200);
        std::fs::write(dir.path().join(STORE_FILE), &garbage).unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .record_run("pg", RunOutcome::Success, 2.0, None)
            .unwrap();
        assert_eq!(store.job("pg").unwrap().runs, [1, 0, 0]);
        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains(".damaged-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage);
        // The next open finds the new store sound and keeps it.
        drop(store);
        assert_eq!(
            Store::open(dir.path()).unwrap().job("pg").unwrap().runs,
            [1, 0, 0]
        );
    }

    #[test]
    fn records_survive_reopening_and_two_handles_share_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.job("pg").unwrap(), JobRecord::default());
        store
            .record_run(
                "pg",
                RunOutcome::Failure,
                101.0,
                Some(Ran {
                    started: 100.0,
                    duration: Duration::from_secs(1),
                }),
            )
            .unwrap();
        let other = Store::open(dir.path()).unwrap();
        other
            .record_run(
                "pg",
                RunOutcome::Success,
                200.0,
                Some(Ran {
                    started: 197.0,
                    duration: Duration::from_secs(3),
                }),
            )
            .unwrap();
        other
            .record_run("pg", RunOutcome::Skipped, 201.0, None)
            .unwrap();
        other.record_verify_failure("pg").unwrap();
        other.record_drill("pg", 300.0, 310.0, true).unwrap();
        other.record_drill("pg", 400.0, 405.0, false).unwrap();
        drop(other);
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let record = store.job("pg").unwrap();
        assert_eq!(record.last_started, 197.0);
        assert_eq!(record.last_failure, 101.0);
        assert_eq!(record.drill_started, 400.0);
        assert_eq!(record.drill_success, 310.0);
        assert_eq!(record.drill_failure, 405.0);
        assert_eq!(record.last_duration, 3.0);
        assert_eq!(record.runs, [1, 1, 1]);
        assert_eq!(record.verify_failures, 1);
    }
}
