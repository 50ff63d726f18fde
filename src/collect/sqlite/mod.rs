//! SQLite databases: file and page statistics per scrape, a periodic integrity check, and the
//! executor that user queries and run queues use on these files.
//!
//! Each configured file gets a [`SqliteCollector`] (a [`BlockingCollector`]; its reads are a
//! few microseconds of file I/O) and an [`SqliteExecutor`]. [`SqliteCollector::spawn_integrity`]
//! spawns the one long-lived task of this module: the integrity-check loop, which runs
//! `PRAGMA quick_check` (or `integrity_check`) on a blocking thread every
//! `integrity_interval`, the first time [`INTEGRITY_FIRST_DELAY`] after start-up.
//!
//! # Metrics
//! All labelled `database` (the configured name):
//! - `warden_sqlite_up`: 1 when the file could be read this scrape; 0 when it is missing,
//!   unreadable, not a database or locked past the busy timeout. The reason is logged when it
//!   changes. A down database is not a collector failure: alert on `up`.
//! - `warden_sqlite_file_size_bytes`, `warden_sqlite_wal_size_bytes`,
//!   `warden_sqlite_shm_size_bytes` (0 when the `-wal`/`-shm` file is absent);
//! - `warden_sqlite_pages`, `warden_sqlite_page_size_bytes`,
//!   `warden_sqlite_freelist_pages` (pages `VACUUM` would return to the file system);
//! - `warden_sqlite_journal_mode_info{journal_mode}`: `wal` for a WAL database, otherwise
//!   `delete`. The rollback-journal modes (`truncate`, `persist`, …) are a setting of each
//!   connection, not of the file, so a reader cannot see which one the application uses;
//! - `warden_sqlite_table_rows{table}` for the tables listed in `row_counts` (opt-in);
//! - `warden_sqlite_integrity_ok` (after the first finished check),
//!   `warden_sqlite_integrity_check_timestamp_seconds` (0 until then; alert when it grows
//!   stale, which is also how a check that never finishes shows) and
//!   `warden_sqlite_integrity_check_duration_seconds`.
//!
//! # Locks: why an application writer is never blocked
//! Every connection is opened `SQLITE_OPEN_READ_ONLY` (a missing file is never created),
//! with a busy timeout of at most [`BUSY_TIMEOUT_MAX`], and every statement is finalized
//! before the read returns, so no read transaction and no lock outlives a read. Waiting in
//! the busy handler holds no lock: SQLite retries the acquisition.
//! - **WAL mode.** A read takes a read mark in the `-shm` file for its snapshot; readers never
//!   block writers and writers never block readers, so an open write transaction, even
//!   `BEGIN EXCLUSIVE`, neither blocks us nor is blocked by us. The one effect of a reader is
//!   that a checkpoint cannot copy frames newer than the snapshot of a read still running; our
//!   reads are microseconds, except the integrity check (below).
//! - **Rollback journal.** A read takes a SHARED lock for one statement (the scrape's page
//!   statistics are one statement). SHARED coexists with a writer's RESERVED lock (its
//!   transaction before commit), so `BEGIN IMMEDIATE` does not affect us. A committing writer
//!   takes PENDING and waits, within its own busy timeout, for SHARED locks to drain: ours
//!   lasts the duration of that one statement. When a writer holds PENDING or EXCLUSIVE, our
//!   SHARED lock is refused: we get `SQLITE_BUSY` within the busy timeout and report `up 0`
//!   for that scrape instead of hanging or queueing in front of the writer.
//! - **Row counts** read the whole table, holding SHARED (rollback) for that long; they are
//!   opt-in for that reason.
//! - **The integrity check** reads the whole file in one statement. In WAL mode that is
//!   harmless to writers, and it may run for up to [`INTEGRITY_LIMIT_FACTOR`] × `timeout`. In
//!   rollback-journal mode its SHARED lock would make a committing writer wait, so it is
//!   interrupted after `timeout` (a writer waits at most that long, once per interval); a
//!   database too large to check in that time never gets a fresh timestamp, which the
//!   staleness alert shows. Use WAL for large databases.
//!
//! - **A WAL database no application has open** has no `-shm` file. SQLite would create the
//!   `-shm` and `-wal` files to read it normally, owned by warden's user, which can lock a
//!   differently-owned application out of its own database. So warden never opens it
//!   normally. When its `-wal` is absent or empty (the last connection checkpointed on close,
//!   so the file is current), it is opened `immutable=1` for one read at a time: no lock, no
//!   side file; scrapes, row counts, queries and the integrity check all work. Should an
//!   application open it meanwhile, the next read goes through SQLite's locks again; an
//!   integrity problem found by an immutable check is kept only if the file did not change
//!   during it. When the `-wal` still holds changes (the application died before
//!   checkpointing), reading them would mean recovering the log into a new `-shm`, and
//!   reading around them would be wrong: the scrape reads the page statistics from the
//!   100-byte header, and queries and the integrity check report why they cannot run until
//!   the application opens it again. (A window of microseconds remains between seeing the
//!   `-shm` file and opening it.)
//! - **A read that hangs** (a file on a dead mount, which no interrupt reaches) parks one
//!   thread: the collector and the executor run one call at a time, and while a call is
//!   stuck past its limit later scrapes report failure and queries fail at once
//!   (`OneAtATime` in `collect::batch`), instead of each parking another thread behind it.
//!
//! # Timeouts
//! Statements are stopped with `sqlite3_interrupt` (the private `Canceller`), so a
//! read past its limit really stops rather than being abandoned on a thread: the scrape's
//! reads after half the collector's `timeout`, a user query at its own timeout, the integrity
//! check at its limit or at shutdown.

mod connection;
mod executor;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::ErrorCode;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{BlockingCollector, Error, ErrorChain, Family};
use crate::config::{IntegrityCheck, SqliteConfig};
use connection::{Canceller, Keeper, Unavailable, lock};
pub use executor::SqliteExecutor;

/// The longest a scrape's read waits for a writer's lock. A writer holds PENDING/EXCLUSIVE
/// only while it commits (milliseconds), so a longer wait means a long exclusive transaction;
/// the scrape then reports `up 0` at once rather than eat into its timeout.
pub const BUSY_TIMEOUT_MAX: Duration = Duration::from_millis(250);

/// How long after start-up the first integrity check runs: soon enough that
/// `warden_sqlite_integrity_ok` appears within a minute, late enough not to compete with
/// start-up.
pub const INTEGRITY_FIRST_DELAY: Duration = Duration::from_secs(10);

/// How soon a check is retried when the database could not be opened for it (missing or
/// locked), instead of waiting a whole interval.
pub const INTEGRITY_RETRY: Duration = Duration::from_secs(60);

/// The integrity check's limit in WAL mode, in multiples of the entry's `timeout`: generous
/// (a check reads every page; about 1 GB/s warm), yet bounded so a runaway check cannot
/// occupy a blocking thread indefinitely. In rollback-journal mode the limit is `timeout`
/// itself (see the module doc).
pub const INTEGRITY_LIMIT_FACTOR: u32 = 10;

/// Error messages of a failed check that are logged; `quick_check` reports up to 100.
const INTEGRITY_MESSAGES_LOGGED: usize = 5;

/// File and page statistics of one SQLite database, plus its integrity-check results.
pub struct SqliteCollector {
    name: String,
    config: SqliteConfig,
    scrape: Mutex<ScrapeState>,
    integrity: Mutex<IntegrityState>,
}

/// What a scrape keeps between scrapes.
struct ScrapeState {
    keeper: Keeper,
    /// Why the database was down at the last scrape (`None`: up), to log changes only.
    down: Option<String>,
    /// Tables whose row count failed at the last scrape, and why.
    row_errors: HashMap<String, String>,
}

/// The last finished integrity check, and the last reason one could not run.
#[derive(Debug, Default, Clone)]
struct IntegrityState {
    ok: Option<bool>,
    finished_at: Option<SystemTime>,
    duration: Option<Duration>,
    last_error: Option<(SystemTime, String)>,
}

/// What the status page shows about a database, from its integrity-check task and one `stat`.
#[derive(Debug, Clone)]
pub struct Health {
    /// The configured name.
    pub name: String,
    /// The file.
    pub path: std::path::PathBuf,
    /// Whether the file exists (`stat` succeeded).
    pub exists: bool,
    /// The last finished integrity check's result; `None` before the first.
    pub integrity_ok: Option<bool>,
    /// When the last integrity check finished.
    pub checked_at: Option<SystemTime>,
    /// Why the last check could not run or failed, and when.
    pub last_error: Option<(SystemTime, String)>,
}

/// What one scrape read from the file.
struct Reading {
    page_count: i64,
    page_size: i64,
    freelist_count: i64,
    journal_mode: String,
    rows: Vec<(String, i64)>,
}

impl SqliteCollector {
    /// A collector for one configured database.
    pub fn new(config: SqliteConfig) -> Arc<Self> {
        let busy = config.timeout.min(BUSY_TIMEOUT_MAX);
        Arc::new(SqliteCollector {
            name: format!("sqlite/{}", config.name),
            scrape: Mutex::new(ScrapeState {
                keeper: Keeper::new(config.path.clone(), busy),
                down: None,
                row_errors: HashMap::new(),
            }),
            integrity: Mutex::new(IntegrityState::default()),
            config,
        })
    }

    /// The database's state for the status page: the integrity task's last results and
    /// whether the file exists. Blocking (one `stat`).
    pub fn health(&self) -> Health {
        let integrity = lock(&self.integrity).clone();
        Health {
            name: self.config.name.clone(),
            path: self.config.path.clone(),
            exists: self.config.path.exists(),
            integrity_ok: integrity.ok,
            checked_at: integrity.finished_at,
            last_error: integrity.last_error,
        }
    }

    /// Records why a check could not run or failed, for the status page.
    fn check_failed(&self, error: String) {
        lock(&self.integrity).last_error = Some((SystemTime::now(), error));
    }

    /// Spawns the integrity-check loop on `tracker`; it stops, interrupting a running check,
    /// when `shutdown` is cancelled.
    pub fn spawn_integrity(self: &Arc<Self>, shutdown: CancellationToken, tracker: &TaskTracker) {
        let collector = Arc::clone(self);
        tracker.spawn(async move { collector.run(shutdown).await });
    }

    /// The integrity-check loop.
    async fn run(&self, shutdown: CancellationToken) {
        let mut wait = INTEGRITY_FIRST_DELAY.min(self.config.integrity_interval);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = match self.check_once(&shutdown).await {
                Checked::Finished | Checked::Abandoned => self.config.integrity_interval,
                Checked::Unavailable => INTEGRITY_RETRY.min(self.config.integrity_interval),
                Checked::Shutdown => return,
            };
        }
    }

    /// Runs one integrity check and records its result.
    async fn check_once(&self, shutdown: &CancellationToken) -> Checked {
        let database = self.config.name.as_str();
        let (path, busy) = (
            self.config.path.clone(),
            self.config.timeout.min(BUSY_TIMEOUT_MAX),
        );
        // First the check's own connection and the journal mode, which sets the limit.
        // Opening can hang on a dead mount, where no interrupt reaches: shutdown leaves it.
        let opened = tokio::select! {
            opened = tokio::task::spawn_blocking(move || open_for_check(&path, busy)) => opened,
            () = shutdown.cancelled() => return Checked::Shutdown,
        };
        let (conn, wal, idle) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(err @ Unavailable::UnrecoveredWal { .. })) => {
                tracing::debug!(database, reason = %ErrorChain(&err), "SQLite integrity check postponed.");
                self.check_failed(ErrorChain(&err).to_string());
                return Checked::Unavailable;
            }
            Ok(Err(err)) => {
                tracing::warn!(database, error = %ErrorChain(&err), "Cannot run the SQLite integrity check; retrying soon.");
                self.check_failed(ErrorChain(&err).to_string());
                return Checked::Unavailable;
            }
            Err(err) => {
                tracing::warn!(database, error = %err, "SQLite integrity check task failed.");
                return Checked::Abandoned;
            }
        };
        let limit = if wal {
            self.config.timeout * INTEGRITY_LIMIT_FACTOR
        } else {
            self.config.timeout
        };
        let canceller = Canceller::default();
        let kind = self.config.integrity_check;
        let job = tokio::task::spawn_blocking({
            let canceller = canceller.clone();
            move || {
                let started = Instant::now();
                let result = run_check(&conn, kind, &canceller);
                (result, started.elapsed())
            }
        });
        let _stop = connection::CancelOnDrop(canceller.clone());
        let mut job = std::pin::pin!(job);
        let mut shut_down = false;
        let joined = tokio::select! {
            joined = &mut job => joined,
            () = tokio::time::sleep(limit) => {
                canceller.cancel();
                job.await
            }
            () = shutdown.cancelled() => {
                canceller.cancel();
                shut_down = true;
                job.await
            }
        };
        let (result, elapsed) = match joined {
            Ok(done) => done,
            Err(err) => {
                tracing::warn!(database, error = %err, "SQLite integrity check task failed.");
                return Checked::Abandoned;
            }
        };
        // An immutable read assumed nothing wrote the file; a problem found while an
        // application started writing may be that write, not corruption.
        let healthy = matches!(&result, Ok(messages) if messages.len() == 1 && messages[0] == "ok");
        if let Some(before) = idle
            && !healthy
        {
            let path = self.config.path.clone();
            let unchanged = tokio::task::spawn_blocking(move || still_idle(&path, &before))
                .await
                .unwrap_or(false);
            if !unchanged {
                tracing::debug!(
                    database,
                    "The database changed during its immutable integrity check; retrying soon."
                );
                return Checked::Unavailable;
            }
        }
        match result {
            Ok(messages) => {
                let ok = messages.len() == 1 && messages[0] == "ok";
                self.record(ok, elapsed);
                if ok {
                    tracing::debug!(database, duration = ?elapsed, "SQLite integrity check passed.");
                } else {
                    let shown = &messages[..messages.len().min(INTEGRITY_MESSAGES_LOGGED)];
                    tracing::warn!(database, problems = messages.len(), first = ?shown, "SQLite integrity check failed.");
                    self.check_failed(format!(
                        "integrity check found {} problems: {}",
                        messages.len(),
                        shown.join("; ")
                    ));
                }
                Checked::Finished
            }
            Err(err)
                if matches!(
                    err.sqlite_error_code(),
                    Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
                ) =>
            {
                self.record(false, elapsed);
                tracing::warn!(database, error = %ErrorChain(&err), "SQLite integrity check failed: the database is corrupt.");
                self.check_failed(format!("the database is corrupt: {}", ErrorChain(&err)));
                Checked::Finished
            }
            Err(_) if shut_down => Checked::Shutdown,
            Err(err) if err.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
                tracing::warn!(
                    database,
                    limit = ?limit,
                    wal,
                    "SQLite integrity check did not finish within its limit; its timestamp stays stale."
                );
                self.check_failed(format!(
                    "the integrity check did not finish within {limit:?}"
                ));
                Checked::Abandoned
            }
            Err(err) => {
                tracing::warn!(database, error = %ErrorChain(&err), "SQLite integrity check could not run; retrying soon.");
                self.check_failed(ErrorChain(&err).to_string());
                Checked::Unavailable
            }
        }
    }

    fn record(&self, ok: bool, duration: Duration) {
        let mut integrity = lock(&self.integrity);
        integrity.ok = Some(ok);
        integrity.finished_at = Some(SystemTime::now());
        integrity.duration = Some(duration);
    }

    /// Reads the page statistics and row counts over the kept connection.
    fn read(
        &self,
        state: &mut ScrapeState,
        meta: &std::fs::Metadata,
    ) -> Result<Reading, Unavailable> {
        let limit = self.config.timeout / 2;
        let canceller = Canceller::default();
        // Interrupts the reads at `limit`. Without a runtime (unit tests) the busy timeout
        // still bounds lock waits.
        let watchdog = tokio::runtime::Handle::try_current().ok().map(|runtime| {
            let canceller = canceller.clone();
            runtime.spawn(async move {
                tokio::time::sleep(limit).await;
                canceller.cancel();
            })
        });
        let busy = state.keeper.busy();
        let path = state.keeper.path().to_owned();
        let result = (|| {
            if let Some(idle) = connection::idle_wal(&path, meta.len())?
                && idle.wal_bytes > 0
            {
                // Not opened (`Unavailable::UnrecoveredWal`): the main file's own header.
                state.keeper.reset();
                let header = idle.header;
                return Ok(Reading {
                    page_count: header.page_count as i64,
                    page_size: i64::from(header.page_size),
                    freelist_count: i64::from(header.freelist_count),
                    journal_mode: "wal".to_owned(),
                    rows: Vec::new(),
                });
            }
            let (conn, access) = state.keeper.connection(meta)?;
            let fail = |err| Unavailable::from_sqlite(&path, busy, limit, err);
            let Some(running) = canceller.start(conn) else {
                return Err(Unavailable::Interrupted {
                    path: path.clone(),
                    limit,
                });
            };
            // One statement, so one read transaction and (rollback journal) one short SHARED lock.
            let (page_count, page_size, freelist_count, journal_mode) = conn
                .query_row(
                    "SELECT * FROM pragma_page_count(), pragma_page_size(), \
                     pragma_freelist_count(), pragma_journal_mode()",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .map_err(fail)?;
            // An immutable connection reports `delete`: it ignores the log, which is empty.
            let journal_mode = match access {
                connection::Access::Immutable => "wal".to_owned(),
                connection::Access::Shared => journal_mode,
            };
            let mut rows = Vec::with_capacity(self.config.row_counts.len());
            for table in &self.config.row_counts {
                let sql = format!("SELECT count(*) FROM {}", quote_identifier(table));
                match conn.query_row(&sql, [], |row| row.get::<_, i64>(0)) {
                    Ok(count) => {
                        if state.row_errors.remove(table).is_some() {
                            tracing::info!(database = %self.config.name, table, "SQLite row count works again.");
                        }
                        rows.push((table.clone(), count));
                    }
                    Err(err) => {
                        let reason = ErrorChain(&err).to_string();
                        if state.row_errors.get(table) != Some(&reason) {
                            tracing::warn!(database = %self.config.name, table, error = %reason, "Cannot count the rows of an SQLite table.");
                            state.row_errors.insert(table.clone(), reason);
                        }
                    }
                }
            }
            drop(running);
            Ok(Reading {
                page_count,
                page_size,
                freelist_count,
                journal_mode,
                rows,
            })
        })();
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        if result.is_err() {
            state.keeper.reset();
        }
        result
    }

    /// Logs a change between up and down, or between reasons for being down.
    fn note(&self, state: &mut ScrapeState, down: Option<&Unavailable>) {
        let database = self.config.name.as_str();
        match down {
            Some(err) => {
                let reason = ErrorChain(err).to_string();
                if state.down.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(database, reason = %reason, "SQLite database is down.");
                    state.down = Some(reason);
                }
            }
            None => {
                if state.down.take().is_some() {
                    tracing::info!(database, "SQLite database is up again.");
                }
            }
        }
    }
}

/// How one integrity check ended.
enum Checked {
    /// It finished and its result was recorded.
    Finished,
    /// It ran past its limit or its task failed; the next one runs after the interval.
    Abandoned,
    /// The database could not be opened; retried after [`INTEGRITY_RETRY`].
    Unavailable,
    /// Shutdown interrupted it.
    Shutdown,
}

/// What an immutable read of an idle WAL database relied on staying as it was: the file's
/// identity, size and modification time, with no `-shm` and an empty log.
#[derive(Debug, Clone, PartialEq)]
struct IdleFile {
    identity: (u64, u64),
    len: u64,
    modified: Option<SystemTime>,
}

impl IdleFile {
    fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        IdleFile {
            identity: (meta.dev(), meta.ino()),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

/// Whether `path` is still the idle WAL database `before` described. Blocking.
fn still_idle(path: &Path, before: &IdleFile) -> bool {
    connection::stat(path).is_ok_and(|meta| {
        IdleFile::of(&meta) == *before
            && matches!(
                connection::Access::of(path, meta.len()),
                Ok(connection::Access::Immutable)
            )
    })
}

/// Opens the check's own connection and reads whether the database is in WAL mode; for an
/// idle WAL database (opened immutable), also what the read relies on staying unchanged.
fn open_for_check(
    path: &Path,
    busy: Duration,
) -> Result<(rusqlite::Connection, bool, Option<IdleFile>), Unavailable> {
    let meta = connection::stat(path)?;
    let access = connection::Access::of(path, meta.len())?;
    let fail = |err| Unavailable::from_sqlite(path, busy, Duration::ZERO, err);
    let conn = connection::open(path, busy, access).map_err(fail)?;
    if access == connection::Access::Immutable {
        return Ok((conn, true, Some(IdleFile::of(&meta))));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(fail)?;
    Ok((conn, mode.eq_ignore_ascii_case("wal"), None))
}

/// Runs the check; its result rows (`ok` alone when healthy). Blocking.
fn run_check(
    conn: &rusqlite::Connection,
    kind: IntegrityCheck,
    canceller: &Canceller,
) -> rusqlite::Result<Vec<String>> {
    let sql = match kind {
        IntegrityCheck::Quick => "PRAGMA quick_check",
        IntegrityCheck::Full => "PRAGMA integrity_check",
    };
    let Some(running) = canceller.start(conn) else {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_INTERRUPT),
            None,
        ));
    };
    let messages = {
        let mut statement = conn.prepare(sql)?;
        statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()
    };
    drop(running);
    messages
}

/// `name` or `schema.name` as a double-quoted SQL identifier. Config validation already
/// restricts names to letters, digits and `_`; quoting (and doubling any `"`) keeps keywords
/// and any future relaxation safe.
fn quote_identifier(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// The size of `<path><suffix>`, 0 when it does not exist.
fn side_file_size(path: &Path, suffix: &str) -> u64 {
    std::fs::metadata(connection::side_file(path, suffix)).map_or(0, |meta| meta.len())
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

impl BlockingCollector for SqliteCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> Duration {
        self.config.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        let database = || [("database", self.config.name.clone())];
        let mut up = Family::gauge(
            "warden_sqlite_up",
            "Whether the SQLite database could be read (1) or is missing, unreadable, not a database or locked (0).",
        );
        let mut families = Vec::new();

        let mut state = lock(&self.scrape);
        let path = self.config.path.as_path();
        let outcome = connection::stat(path).and_then(|meta| {
            let mut size = Family::gauge(
                "warden_sqlite_file_size_bytes",
                "Size of the SQLite database file.",
            );
            size.push(database(), meta.len() as f64);
            let mut wal = Family::gauge(
                "warden_sqlite_wal_size_bytes",
                "Size of the SQLite write-ahead log (-wal file); 0 when absent.",
            );
            wal.push(database(), side_file_size(path, "-wal") as f64);
            let mut shm = Family::gauge(
                "warden_sqlite_shm_size_bytes",
                "Size of the SQLite WAL index (-shm file); 0 when absent.",
            );
            shm.push(database(), side_file_size(path, "-shm") as f64);
            families.extend([size, wal, shm]);
            self.read(&mut state, &meta)
        });
        if let Err(Unavailable::Missing { .. }) = &outcome {
            state.keeper.reset();
        }
        self.note(&mut state, outcome.as_ref().err());
        drop(state);

        match outcome {
            Ok(reading) => {
                up.push(database(), 1.0);
                for (name, help, value) in [
                    (
                        "warden_sqlite_pages",
                        "Pages in the SQLite database file (PRAGMA page_count).",
                        reading.page_count,
                    ),
                    (
                        "warden_sqlite_page_size_bytes",
                        "Size of one SQLite page (PRAGMA page_size).",
                        reading.page_size,
                    ),
                    (
                        "warden_sqlite_freelist_pages",
                        "Unused pages in the SQLite database file, reclaimable by VACUUM (PRAGMA freelist_count).",
                        reading.freelist_count,
                    ),
                ] {
                    let mut family = Family::gauge(name, help);
                    family.push(database(), value as f64);
                    families.push(family);
                }
                let mut mode = Family::gauge(
                    "warden_sqlite_journal_mode_info",
                    "The SQLite journal mode: wal, or delete for any rollback-journal mode.",
                );
                mode.push(
                    [
                        ("database", self.config.name.clone()),
                        ("journal_mode", reading.journal_mode.to_ascii_lowercase()),
                    ],
                    1.0,
                );
                families.push(mode);
                if !self.config.row_counts.is_empty() {
                    let mut rows = Family::gauge(
                        "warden_sqlite_table_rows",
                        "Rows in an SQLite table (opt-in per table).",
                    );
                    for (table, count) in reading.rows {
                        rows.push(
                            [("database", self.config.name.clone()), ("table", table)],
                            count as f64,
                        );
                    }
                    families.push(rows);
                }
            }
            Err(_) => up.push(database(), 0.0),
        }
        families.insert(0, up);

        let integrity = lock(&self.integrity).clone();
        let mut timestamp = Family::gauge(
            "warden_sqlite_integrity_check_timestamp_seconds",
            "Unix time the last SQLite integrity check finished; 0 if none has yet.",
        );
        timestamp.push(database(), integrity.finished_at.map_or(0.0, unix_seconds));
        families.push(timestamp);
        if let (Some(ok), Some(duration)) = (integrity.ok, integrity.duration) {
            let mut ok_family = Family::gauge(
                "warden_sqlite_integrity_ok",
                "Whether the last SQLite integrity check found no problems (1) or some (0).",
            );
            ok_family.push(database(), if ok { 1.0 } else { 0.0 });
            let mut took = Family::gauge(
                "warden_sqlite_integrity_check_duration_seconds",
                "How long the last SQLite integrity check took.",
            );
            took.push(database(), duration.as_secs_f64());
            families.extend([ok_family, took]);
        }
        Ok(families)
    }
}
