//! The `sqlite` kind: an online copy through SQLite's backup API, checked with
//! `PRAGMA integrity_check`, drilled on a scratch copy, restored with the current file copied
//! aside first.
//!
//! Writers are not held up for long. In WAL mode warden holds one read transaction on the
//! source for the whole copy through the backup API: readers never block WAL writers, and the
//! copy is one consistent snapshot that no concurrent commit can restart. In rollback-journal
//! mode a reader does block writers, and every committed page is in the database file itself,
//! so the file is copied as it is, [`BYTES_PER_HOLD`] at a time (in the kernel, with
//! `copy_file_range(2)`), each piece under a read transaction (SQLite's shared lock, which no
//! commit can pass) with the lock released in between. A commit between two pieces, which
//! `PRAGMA data_version` reveals, restarts the copy, as the backup API would; restarts are
//! bounded by the job's timeout. This copies a rollback-journal database about as fast as the
//! disk allows, where the backup API goes page by page through SQLite's pager.
//!
//! The copy is switched to `journal_mode=DELETE` before it is hashed, so a backup is one
//! self-contained file with no `-wal` beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::kind::{self, Kind, Link, ParseContext, Registration, single};
use super::manifest::Manifest;
use super::postgres::{compare_counts, describe_counts};
use super::publish::Staged;
use super::session::quote;
use super::{BackupError, Context, Expected, Produced, RestoreSummary};
use crate::config::{IntegrityCheck, Problems, RawBackup, SqliteConfig, Target};

/// The `sqlite` kind: `source: sqlite/NAME`, the tables a copy must hold, and which check the
/// copy gets.
pub(crate) const KIND: Registration = Registration {
    name: "sqlite",
    keys: &["source", "verify.required_tables", "verify.integrity_check"],
    parse,
};

/// The extension of a copy.
const EXTENSIONS: &[&str] = &["sqlite"];

/// The `sqlite` kind for one job: the configured database it copies, and the check a copy and
/// a drill's restored copy get.
#[derive(Debug)]
struct Sqlite {
    db: SqliteConfig,
    check: IntegrityCheck,
}

fn parse(
    raw: &RawBackup,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let check = match raw.verify.integrity_check.as_deref() {
        None | Some("full") => IntegrityCheck::Full,
        Some("quick") => IntegrityCheck::Quick,
        Some(other) => {
            problems.push(
                format!("{path}.verify.integrity_check"),
                format!("`{other}` is not one of: full, quick"),
            );
            IntegrityCheck::Full
        }
    };
    let entries = &context.sources.sqlite;
    let db = kind::source(raw, path, KIND.name, entries, |s| &s.name, problems)?;
    Some(Arc::new(Sqlite {
        db: db.clone(),
        check,
    }))
}

impl Kind for Sqlite {
    fn name(&self) -> &'static str {
        KIND.name
    }

    fn extensions(&self) -> &'static [&'static str] {
        EXTENSIONS
    }

    fn source(&self) -> Option<Target> {
        Some(Target::Sqlite(self.db.name.clone()))
    }

    fn reads(&self) -> &[PathBuf] {
        &[]
    }

    fn produce(&self, context: &Context<'_>, _held: &[Manifest]) -> Result<Produced, BackupError> {
        copy(&self.db, context)
    }

    fn verify(
        &self,
        path: &Path,
        expected: &Expected<'_>,
        context: &Context<'_>,
    ) -> Result<Vec<String>, BackupError> {
        verify(path, expected.required_tables, self.check, context)
    }

    fn drill(&self, chain: &[Link<'_>], context: &Context<'_>) -> Result<String, BackupError> {
        let Link { manifest, path } = single(chain)?;
        drill(manifest, path, self.check, context)
    }

    fn restore(
        &self,
        chain: &[Link<'_>],
        target: &str,
        force: bool,
        context: &Context<'_>,
    ) -> Result<RestoreSummary, BackupError> {
        let Link { manifest, path } = single(chain)?;
        restore(manifest, path, target, force, context)
    }
}

/// Pages copied per step: 4 MiB at SQLite's default page size, short enough that a
/// rollback-journal writer waits milliseconds, long enough that steps cost little.
pub const PAGES_PER_STEP: i32 = 1024;
/// Bytes of a rollback-journal database copied under one hold of the shared lock: 16 MiB, a
/// few milliseconds of a writer's wait from the page cache.
pub const BYTES_PER_HOLD: u64 = 16 << 20;
/// How long to wait before retrying a step that found the source busy.
const BUSY_RETRY: Duration = Duration::from_millis(20);
/// How long the copy waits for a lock held by a writer before SQLite reports busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

fn sqlite_error(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> BackupError {
    let action = action.into();
    move |source| BackupError::Sqlite { action, source }
}

fn open_read_only(path: &Path) -> Result<Connection, BackupError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_error(format!("open {}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite_error("set the busy timeout"))?;
    Ok(conn)
}

fn open_read_write(path: &Path) -> Result<Connection, BackupError> {
    let conn = Connection::open(path).map_err(sqlite_error(format!("open {}", path.display())))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(sqlite_error("set the busy timeout"))?;
    Ok(conn)
}

fn journal_mode(conn: &Connection) -> Result<String, BackupError> {
    conn.pragma_query_value(None, "journal_mode", |row| row.get::<_, String>(0))
        .map(|mode| mode.to_lowercase())
        .map_err(sqlite_error("read journal_mode"))
}

/// Copies `from` into `to` with the backup API, in steps, honouring cancellation; reports
/// copied bytes to the context's progress.
fn copy_pages(
    from: &Connection,
    to: &mut Connection,
    pages_per_step: i32,
    pause: Option<Duration>,
    context: &Context<'_>,
) -> Result<(), BackupError> {
    let page_size: i64 = from
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .map_err(sqlite_error("read page_size"))?;
    let backup = Backup::new(from, to).map_err(sqlite_error("start the online backup"))?;
    loop {
        context.check()?;
        match backup
            .step(pages_per_step)
            .map_err(sqlite_error("copy pages"))?
        {
            StepResult::Done => break,
            StepResult::More => {
                let progress = backup.progress();
                let copied = i64::from(progress.pagecount - progress.remaining);
                context.progress.set((copied * page_size).max(0) as u64);
                if let Some(pause) = pause {
                    std::thread::sleep(pause);
                }
            }
            // A writer holds the lock: let it finish.
            StepResult::Busy | StepResult::Locked => std::thread::sleep(BUSY_RETRY),
            _ => std::thread::sleep(BUSY_RETRY),
        }
    }
    Ok(())
}

/// Copies the rollback-journal database `source` (open on `from`) into `to`, replacing its
/// content: `hold` bytes at a time, each under a read transaction on `source`, restarting when
/// another connection commits between two pieces. Before each piece `each` gets the bytes
/// copied so far and may stop the copy (cancellation). Returns how many times it restarted.
fn copy_file(
    source: &Connection,
    from: &Path,
    to: &std::fs::File,
    hold: u64,
    mut each: impl FnMut(u64) -> Result<(), BackupError>,
) -> Result<u32, BackupError> {
    let input = std::fs::File::open(from).map_err(BackupError::io("open", from))?;
    let mut restarts = 0;
    let mut version: Option<i64> = None;
    let mut offset = 0;
    loop {
        each(offset)?;
        // The first read of the transaction takes the shared lock (waiting out a writer) and
        // notices a commit by another connection since the last piece.
        source
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite_error("begin the read transaction"))?;
        let piece: Result<Option<(u64, u64)>, BackupError> = (|| {
            let now: i64 = source
                .pragma_query_value(None, "data_version", |row| row.get(0))
                .map_err(sqlite_error("read data_version"))?;
            if version.is_some_and(|before| before != now) {
                return Ok(None);
            }
            version = Some(now);
            let size = input
                .metadata()
                .map_err(BackupError::io("stat", from))?
                .len();
            let end = (offset + hold).min(size);
            copy_range(&input, to, offset, end).map_err(BackupError::io("copy", from))?;
            Ok(Some((end, size)))
        })();
        source
            .execute_batch("COMMIT")
            .map_err(sqlite_error("end the read transaction"))?;
        match piece? {
            None => {
                restarts += 1;
                version = None;
                offset = 0;
            }
            Some((end, size)) => {
                offset = end;
                if offset >= size {
                    to.set_len(size)
                        .map_err(BackupError::io("truncate", from))?;
                    return Ok(restarts);
                }
            }
        }
    }
}

/// Copies bytes `start..end` of `from` to the same offsets of `to`: in the kernel where the
/// file systems allow it, else through a buffer.
fn copy_range(
    from: &std::fs::File,
    to: &std::fs::File,
    start: u64,
    end: u64,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let (mut at_in, mut at_out) = (start, start);
    while at_in < end {
        let left = usize::try_from(end - at_in).unwrap_or(usize::MAX);
        match rustix::fs::copy_file_range(from, Some(&mut at_in), to, Some(&mut at_out), left) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            // Across file systems, or one that cannot: copy through memory.
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::OPNOTSUPP,
            ) => break,
            Err(errno) => return Err(errno.into()),
        }
    }
    let mut buffer = vec![0; (1 << 20).min(usize::try_from(end - at_in).unwrap_or(0))];
    while at_in < end {
        let want = buffer
            .len()
            .min(usize::try_from(end - at_in).unwrap_or(usize::MAX));
        let read = from.read_at(&mut buffer[..want], at_in)?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        to.write_all_at(&buffer[..read], at_in)?;
        at_in += read as u64;
    }
    Ok(())
}

/// Row counts of `tables` on `conn`. A name that is not a table name (a manifest can be
/// edited) is refused before any SQL is built from it.
fn count_rows(conn: &Connection, tables: &[String]) -> Result<BTreeMap<String, u64>, BackupError> {
    let mut counts = BTreeMap::new();
    for table in tables {
        if !crate::config::is_identifier(table) {
            return Err(BackupError::NotVerified(format!(
                "`{}` is not a table name (letters, digits and `_`, optionally `schema.`)",
                table.escape_debug()
            )));
        }
        let sql = format!("SELECT count(*) FROM {}", quote(table));
        let count: i64 = conn
            .query_row(&sql, [], |row| row.get(0))
            .map_err(sqlite_error(format!("count the rows of {table}")))?;
        counts.insert(table.clone(), count.max(0) as u64);
    }
    Ok(counts)
}

/// Makes a consistent online copy of `db` into a staged file.
fn copy(db: &SqliteConfig, context: &Context<'_>) -> Result<Produced, BackupError> {
    let job = context.job;
    if !db.path.is_file() {
        return Err(BackupError::Io {
            action: "read",
            path: db.path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such database file"),
        });
    }
    let source = open_read_only(&db.path)?;
    let wal = journal_mode(&source)? == "wal";
    if wal {
        // One snapshot for the whole copy: WAL writers go on, and nothing restarts the copy.
        source
            .execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(sqlite_error("begin the read transaction"))?;
    }
    let mut staged = Staged::create(&job.destination, &format!("{}.sqlite", context.id))
        .map_err(BackupError::io("create a file in", &job.destination))?;
    let tool = if wal {
        staged
            .close()
            .map_err(BackupError::io("sync", staged.path()))?;
        let mut copy = open_read_write(staged.path())?;
        copy_pages(&source, &mut copy, PAGES_PER_STEP * 16, None, context)?;
        let _ = source.execute_batch("COMMIT");
        copy.close()
            .map_err(|(_, source)| sqlite_error("close the copy")(source))?;
        format!("SQLite {} online backup API", rusqlite::version())
    } else {
        let file = staged
            .file()
            .map_err(BackupError::io("write", &job.destination))?;
        let restarts = copy_file(&source, &db.path, file, BYTES_PER_HOLD, |copied| {
            context.progress.set(copied);
            context.check()
        })?;
        if restarts > 0 {
            tracing::info!(job = %job.name, restarts, "SQLite copy restarted after concurrent commits.");
        }
        // Flushed to disk while it is verified. Closed before SQLite opens it: closing any
        // descriptor of a file drops the process's POSIX locks on it, SQLite's included.
        staged.close_unsynced();
        format!(
            "SQLite {} file copy under a shared lock",
            rusqlite::version()
        )
    };
    drop(source);
    let copy = open_read_write(staged.path())?;
    // A standalone file: no -wal or -shm needed to read the copy.
    copy.pragma_update_and_check(None, "journal_mode", "delete", |_| Ok(()))
        .map_err(sqlite_error("switch the copy to journal_mode=delete"))?;
    let tables = count_rows(&copy, &job.verify.required_tables).or_else(|err| {
        // A missing table is reported by verification, with the others' names.
        if job.verify.required_tables.is_empty() {
            Err(err)
        } else {
            Ok(BTreeMap::new())
        }
    })?;
    copy.close()
        .map_err(|(_, source)| sqlite_error("close the copy")(source))?;
    Ok(Produced {
        staged,
        extension: EXTENSIONS[0],
        tool,
        server_version: None,
        source: format!("sqlite/{} ({})", db.name, db.path.display()),
        tables,
        files: None,
        compression: None,
        streamed_sha256: None,
        parent: None,
        tree: None,
        state: None,
    })
}

/// How often a running integrity check looks for cancellation.
const INTERRUPT_POLL: Duration = Duration::from_millis(50);

/// Runs the integrity check and returns its complaint, if any. A check still running when
/// the operation is cancelled (timeout, shutdown) is interrupted and reports `Cancelled`,
/// never a failed check.
fn integrity(
    conn: &Connection,
    check: IntegrityCheck,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Option<String>, BackupError> {
    let handle = conn.get_interrupt_handle();
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if cancel.is_cancelled() {
                    handle.interrupt();
                    return;
                }
                std::thread::sleep(INTERRUPT_POLL);
            }
        });
        // Set on every way out, a panic included, so the watcher always ends.
        struct Done<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let _done = Done(&done);
        run_check(conn, check)
    });
    if cancel.is_cancelled() {
        return Err(BackupError::Cancelled);
    }
    result
}

fn run_check(conn: &Connection, check: IntegrityCheck) -> Result<Option<String>, BackupError> {
    let pragma = check_name(check);
    let mut statement = conn.prepare(pragma).map_err(sqlite_error(pragma))?;
    let rows: Vec<String> = statement
        .query_map([], |row| row.get(0))
        .map_err(sqlite_error(pragma))?
        .collect::<Result<_, _>>()
        .map_err(sqlite_error(pragma))?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(None)
    } else {
        Ok(Some(
            rows.into_iter().take(5).collect::<Vec<_>>().join("; "),
        ))
    }
}

fn check_name(check: IntegrityCheck) -> &'static str {
    match check {
        IntegrityCheck::Full => "PRAGMA integrity_check",
        IntegrityCheck::Quick => "PRAGMA quick_check",
    }
}

/// `PRAGMA integrity_check` on the copy, and every table in `required` present.
fn verify(
    path: &Path,
    required: &[String],
    check: IntegrityCheck,
    context: &Context<'_>,
) -> Result<Vec<String>, BackupError> {
    let conn = open_read_only(path)?;
    let problem = integrity(&conn, check, context.cancel).map_err(|err| match err {
        // A file that is not a database at all is a failed verification, not an I/O error.
        BackupError::Sqlite { source, .. } => BackupError::Broken {
            what: format!("{} cannot read it", check_name(check)),
            source: Box::new(source),
        },
        other => other,
    })?;
    if let Some(problem) = problem {
        return Err(BackupError::NotVerified(format!(
            "{} on the copy: {problem}",
            check_name(check)
        )));
    }
    let mut checks = vec![format!("{}: ok", check_name(check))];
    if !required.is_empty() {
        let mut missing = Vec::new();
        for table in required {
            let name = table.rsplit('.').next().unwrap_or(table);
            let found: i64 = conn
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                    [name],
                    |row| row.get(0),
                )
                .map_err(sqlite_error("read the schema"))?;
            if found == 0 {
                missing.push(table.as_str());
            }
        }
        if !missing.is_empty() {
            return Err(BackupError::NotVerified(format!(
                "required tables missing from the copy: {}",
                missing.join(", ")
            )));
        }
        checks.push(format!("required tables present: {}", required.join(", ")));
    }
    Ok(checks)
}

/// Copies the backup to a scratch file, checks it and compares row counts with the
/// manifest; the scratch file is removed whatever happens.
fn drill(
    manifest: &Manifest,
    path: &Path,
    check: IntegrityCheck,
    context: &Context<'_>,
) -> Result<String, BackupError> {
    let job = context.job;
    let scratch = Staged::create(&job.destination, &format!("{}.drill.sqlite", context.id))
        .map_err(BackupError::io("create a file in", &job.destination))?;
    std::fs::copy(path, scratch.path()).map_err(BackupError::io("copy", path))?;
    let conn = open_read_only(scratch.path())?;
    if let Some(problem) = integrity(&conn, check, context.cancel)? {
        return Err(BackupError::DrillFailed(format!(
            "{} on the restored copy: {problem}",
            check_name(check)
        )));
    }
    let tables: Vec<String> = manifest.tables.keys().cloned().collect();
    let counts = count_rows(&conn, &tables)?;
    compare_counts(&manifest.tables, &counts)?;
    Ok(format!(
        "restored to a scratch file: {}: ok; row counts match the manifest ({})",
        check_name(check),
        describe_counts(&counts)
    ))
}

/// Restores the backup over the SQLite file `target`. An existing file is refused without
/// `force`; with it, the current content is first copied aside (through the backup API, so a
/// WAL is included), then replaced, checked, and put back if anything fails.
fn restore(
    manifest: &Manifest,
    path: &Path,
    target: &str,
    force: bool,
    context: &Context<'_>,
) -> Result<RestoreSummary, BackupError> {
    let target_path = PathBuf::from(target);
    let exists = target_path.exists();
    if exists && !target_path.is_file() {
        return Err(BackupError::BadTarget {
            target: target.to_owned(),
            reason: "exists and is not a file".to_owned(),
        });
    }
    if exists && !force {
        return Err(BackupError::TargetNotEmpty {
            target: target.to_owned(),
            hint: "pass --force to replace it (the current file is copied aside first and put back if the restore fails)",
        });
    }
    let mut summary = RestoreSummary {
        target: target_path.display().to_string(),
        ..RestoreSummary::default()
    };
    let backup = open_read_only(path)?;
    let mut aside: Option<PathBuf> = None;
    let mut was_wal = false;
    if exists {
        let current = open_read_write(&target_path)?;
        was_wal = journal_mode(&current)? == "wal";
        let aside_path = PathBuf::from(format!("{target}.before-restore-{}", context.id));
        super::publish::create_private(&aside_path)
            .map_err(BackupError::io("create", &aside_path))?;
        let mut aside_conn = open_read_write(&aside_path)?;
        copy_pages(
            &current,
            &mut aside_conn,
            PAGES_PER_STEP * 16,
            None,
            context,
        )?;
        aside_conn
            .pragma_update_and_check(None, "journal_mode", "delete", |_| Ok(()))
            .map_err(sqlite_error(
                "switch the safety copy to journal_mode=delete",
            ))?;
        drop(aside_conn);
        std::fs::File::open(&aside_path)
            .and_then(|f| f.sync_all())
            .map_err(BackupError::io("sync", &aside_path))?;
        summary.steps.push(format!(
            "current file copied aside to {}",
            aside_path.display()
        ));
        summary.safety_copy = Some(aside_path.display().to_string());
        aside = Some(aside_path);
    }

    if !exists {
        // A restored database holds the application's data: readable by warden only until
        // the operator hands it over.
        super::publish::create_private(&target_path)
            .map_err(BackupError::io("create", &target_path))?;
    }
    let attempt = (|| -> Result<BTreeMap<String, u64>, BackupError> {
        let mut target_conn = open_read_write(&target_path)?;
        copy_pages(
            &backup,
            &mut target_conn,
            PAGES_PER_STEP * 16,
            None,
            context,
        )?;
        if was_wal {
            target_conn
                .pragma_update_and_check(None, "journal_mode", "wal", |_| Ok(()))
                .map_err(sqlite_error("switch back to journal_mode=wal"))?;
        }
        if let Some(problem) = integrity(&target_conn, IntegrityCheck::Full, context.cancel)? {
            return Err(BackupError::NotVerified(format!(
                "PRAGMA integrity_check after the restore: {problem}"
            )));
        }
        let tables: Vec<String> = manifest.tables.keys().cloned().collect();
        let counts = count_rows(&target_conn, &tables)?;
        compare_counts(&manifest.tables, &counts)?;
        Ok(counts)
    })();
    match attempt {
        Ok(counts) => {
            summary.steps.push(format!("restored {}", manifest.file));
            summary.steps.push("PRAGMA integrity_check: ok".to_owned());
            summary.steps.push(format!(
                "row counts match the manifest: {}",
                describe_counts(&counts)
            ));
            Ok(summary)
        }
        Err(err) => {
            let never = tokio_util::sync::CancellationToken::new();
            let rollback = context.under(&never);
            let rolled_back = match &aside {
                Some(aside) => (|| -> Result<(), BackupError> {
                    let saved = open_read_only(aside)?;
                    let mut target_conn = open_read_write(&target_path)?;
                    copy_pages(
                        &saved,
                        &mut target_conn,
                        PAGES_PER_STEP * 16,
                        None,
                        &rollback,
                    )
                })()
                .is_ok(),
                None => std::fs::remove_file(&target_path).is_ok(),
            };
            Err(BackupError::RestoreFailed {
                cause: Box::new(err),
                rolled_back,
                safety_copy: aside.map(|path| path.display().to_string()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_take_table_names_only() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE users(x); INSERT INTO users VALUES (1), (2);")
            .unwrap();
        let counts = count_rows(&conn, &["main.users".to_owned()]).unwrap();
        assert_eq!(counts["main.users"], 2);
        for bad in ["users\" OR 1", "users; DROP TABLE users", "a.b.c", ""] {
            let err = count_rows(&conn, &[bad.to_owned()]).unwrap_err();
            assert!(
                matches!(err, BackupError::NotVerified(ref m) if m.contains("not a table name")),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            count_rows(&conn, &["users".to_owned()]).unwrap()["users"],
            2
        );
    }

    /// A database whose two tables always hold the same number of rows, committed together.
    fn paired(path: &Path) -> Connection {
        let conn = Connection::open(path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE;
             CREATE TABLE a(x BLOB); CREATE TABLE b(x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO a SELECT randomblob(1000) FROM n;
             INSERT INTO b SELECT randomblob(1000) FROM a;",
        )
        .expect("seed");
        conn
    }

    fn counts(path: &Path) -> (i64, i64, String) {
        let conn = Connection::open(path).expect("open the copy");
        let count = |table: &str| {
            conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
                .expect("count")
        };
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .expect("check");
        (count("a"), count("b"), check)
    }

    #[test]
    fn a_quiet_rollback_database_is_copied_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("src.db");
        drop(paired(&db));
        let source = open_read_only(&db).expect("open");
        let out = dir.path().join("copy.db");
        let file = std::fs::File::create(&out).expect("create");
        let mut pieces = 0;
        let restarts = copy_file(&source, &db, &file, 64 << 10, |_| {
            pieces += 1;
            Ok(())
        })
        .expect("copy");
        assert_eq!(restarts, 0);
        assert!(pieces > 10, "{pieces} pieces of 64 KiB");
        assert_eq!(std::fs::read(&db).unwrap(), std::fs::read(&out).unwrap());
    }

    /// Commits land between the pieces; the copy restarts and ends on one committed state.
    #[test]
    fn commits_between_pieces_restart_the_copy_and_it_stays_consistent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("src.db");
        let writer = paired(&db);
        let source = open_read_only(&db).expect("open");
        let out = dir.path().join("copy.db");
        let file = std::fs::File::create(&out).expect("create");
        let mut commits = 0;
        let restarts = copy_file(&source, &db, &file, 64 << 10, |copied| {
            // A commit (to both tables) after the first piece of each of the first 5 passes.
            if copied > 0 && commits < 5 {
                commits += 1;
                writer
                    .execute_batch(
                        "BEGIN; INSERT INTO a VALUES (randomblob(5000));
                         INSERT INTO b VALUES (randomblob(5000)); COMMIT;",
                    )
                    .expect("commit");
            }
            Ok(())
        })
        .expect("copy");
        assert_eq!(restarts, 5, "every commit restarted the copy");
        let (a, b, check) = counts(&out);
        assert_eq!((a, b, check.as_str()), (2005, 2005, "ok"));
        assert_eq!(std::fs::read(&db).unwrap(), std::fs::read(&out).unwrap());
    }

    #[test]
    fn cancellation_between_pieces_stops_the_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("src.db");
        drop(paired(&db));
        let source = open_read_only(&db).expect("open");
        let file = std::fs::File::create(dir.path().join("copy.db")).expect("create");
        let err = copy_file(&source, &db, &file, 64 << 10, |copied| {
            if copied > 0 {
                Err(BackupError::Cancelled)
            } else {
                Ok(())
            }
        })
        .expect_err("cancelled");
        assert!(matches!(err, BackupError::Cancelled), "{err}");
        // The read transaction was closed: a writer can commit at once.
        let writer = Connection::open(&db).expect("open");
        writer.busy_timeout(Duration::ZERO).expect("no wait");
        writer
            .execute("INSERT INTO a VALUES (1)", [])
            .expect("no lock is left behind");
    }
}
