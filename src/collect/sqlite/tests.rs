//! Tests on real SQLite files in temporary directories.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::*;
use crate::collect::sql::{Cell, Executor, QueryError};

fn config(path: &Path) -> SqliteConfig {
    SqliteConfig {
        name: "app".to_owned(),
        path: path.to_owned(),
        timeout: Duration::from_secs(2),
        integrity_check: IntegrityCheck::Quick,
        integrity_interval: Duration::from_secs(3600),
        row_counts: vec!["items".to_owned()],
    }
}

/// The value of `name{database="app"}` (plus `extra` labels).
fn value(families: &[Family], name: &str, extra: &[(&str, &str)]) -> Option<f64> {
    let mut labels = vec![("database", "app")];
    labels.extend_from_slice(extra);
    families
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.value(&labels))
}

/// Creates a database with `page_size`, the journal mode `mode`, a table `items` of `keep`
/// rows, and free pages from deleting 200 rows of 1000-byte blobs; returns the writer's view
/// of (page_count, freelist_count).
fn create(path: &Path, page_size: u32, mode: &str, keep: i64) -> (i64, i64) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size};
         PRAGMA journal_mode = {mode};
         CREATE TABLE items (id INTEGER PRIMARY KEY, body BLOB);
         CREATE TABLE scratch (body BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
         INSERT INTO scratch SELECT zeroblob(1000) FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {keep})
         INSERT INTO items SELECT i, randomblob(10) FROM n;
         DELETE FROM scratch;"
    ))
    .unwrap();
    if mode.eq_ignore_ascii_case("wal") {
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    (pages, free)
}

/// Asserts the page statistics of `families` against the writer's view.
fn assert_pages(families: &[Family], page_size: i64, pages: i64, free: i64) {
    assert_eq!(value(families, "warden_sqlite_up", &[]), Some(1.0));
    assert_eq!(
        value(families, "warden_sqlite_page_size_bytes", &[]),
        Some(page_size as f64)
    );
    assert_eq!(
        value(families, "warden_sqlite_pages", &[]),
        Some(pages as f64)
    );
    assert_eq!(
        value(families, "warden_sqlite_freelist_pages", &[]),
        Some(free as f64)
    );
}

#[test]
fn wal_database_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (pages, free) = create(&path, 4096, "WAL", 7);
    assert!(free >= 40, "deleting 200 KB leaves free pages: {free}");
    let size = std::fs::metadata(&path).unwrap().len() as f64;
    assert_eq!(size, (pages * 4096) as f64, "checkpointed: file = pages");

    // No application has it open, its log checkpointed: read immutable, creating no -wal/-shm
    // file.
    let collector = SqliteCollector::new(config(&path));
    assert_eq!(collector.name(), "sqlite/app");
    let families = collector.collect().unwrap();
    assert_pages(&families, 4096, pages, free);
    assert!(!dir.path().join("app.db-shm").exists());
    assert!(!dir.path().join("app.db-wal").exists());
    assert_eq!(
        value(&families, "warden_sqlite_shm_size_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &families,
            "warden_sqlite_journal_mode_info",
            &[("journal_mode", "wal")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(7.0),
        "read immutable"
    );
    assert!(!dir.path().join("app.db-shm").exists());
    assert!(!dir.path().join("app.db-wal").exists());
    assert_eq!(
        value(
            &families,
            "warden_sqlite_integrity_check_timestamp_seconds",
            &[]
        ),
        Some(0.0),
        "present from start-up, 0 until a check finished"
    );
    assert_eq!(value(&families, "warden_sqlite_integrity_ok", &[]), None);

    // The application runs: read through SQLite, sharing its -shm.
    let app = Connection::open(&path).unwrap();
    app.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let families = collector.collect().unwrap();
    assert_pages(&families, 4096, pages, free);
    assert_eq!(
        value(&families, "warden_sqlite_file_size_bytes", &[]),
        Some(size)
    );
    assert!(value(&families, "warden_sqlite_shm_size_bytes", &[]).unwrap() > 0.0);
    assert_eq!(
        value(
            &families,
            "warden_sqlite_journal_mode_info",
            &[("journal_mode", "wal")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(7.0)
    );

    // The kept connection sees later writes, including those still in the WAL.
    app.execute("INSERT INTO items (body) VALUES (x'00')", [])
        .unwrap();
    let families = collector.collect().unwrap();
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(8.0)
    );
    assert!(value(&families, "warden_sqlite_wal_size_bytes", &[]).unwrap() > 0.0);
}

#[test]
fn rollback_database_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let (pages, free) = create(&path, 1024, "DELETE", 3);
    assert!(free >= 200, "{free}");

    let collector = SqliteCollector::new(config(&path));
    let families = collector.collect().unwrap();
    assert_pages(&families, 1024, pages, free);
    assert_eq!(
        value(&families, "warden_sqlite_file_size_bytes", &[]),
        Some((pages * 1024) as f64)
    );
    assert_eq!(
        value(&families, "warden_sqlite_wal_size_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&families, "warden_sqlite_shm_size_bytes", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &families,
            "warden_sqlite_journal_mode_info",
            &[("journal_mode", "delete")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(3.0)
    );
}

#[test]
fn a_missing_file_is_down_not_failed_and_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let collector = SqliteCollector::new(config(&path));
    for _ in 0..2 {
        let families = collector.collect().unwrap();
        assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(0.0));
        assert_eq!(value(&families, "warden_sqlite_pages", &[]), None);
        assert_eq!(
            value(
                &families,
                "warden_sqlite_integrity_check_timestamp_seconds",
                &[]
            ),
            Some(0.0)
        );
    }
    assert!(!path.exists(), "a read-only open never creates the file");

    // It comes up once the file appears, without a restart.
    create(&path, 4096, "DELETE", 1);
    let families = collector.collect().unwrap();
    assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(1.0));
}

#[test]
fn a_file_that_is_not_a_database_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let families = SqliteCollector::new(config(&path)).collect().unwrap();
    assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(0.0));
    assert_eq!(
        value(&families, "warden_sqlite_file_size_bytes", &[]),
        Some(8192.0)
    );
}

#[test]
fn a_replaced_file_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 2);
    let collector = SqliteCollector::new(config(&path));
    let families = collector.collect().unwrap();
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(2.0)
    );

    let other = dir.path().join("new.db");
    create(&other, 4096, "DELETE", 5);
    std::fs::rename(&other, &path).unwrap();
    let families = collector.collect().unwrap();
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(5.0)
    );
}

/// Collects while `writer` holds its transaction; the collect must return, and the writer
/// commit afterwards.
fn collect_beside(writer: &Connection, path: &Path) -> Vec<Family> {
    let collector = SqliteCollector::new(config(path));
    let started = Instant::now();
    let families = collector.collect().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "collect returned (liveness bound): {:?}",
        started.elapsed()
    );
    writer.execute_batch("COMMIT").expect("the writer commits");
    let rows: i64 = writer
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2, "the writer's row is committed");
    families
}

fn writer_in(path: &Path, begin: &str) -> Connection {
    let writer = Connection::open(path).unwrap();
    writer.execute_batch(begin).unwrap();
    writer
        .execute("INSERT INTO items (body) VALUES (x'01')", [])
        .unwrap();
    writer
}

#[test]
fn a_reserved_writer_is_not_blocked_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 1);
    let writer = writer_in(&path, "BEGIN IMMEDIATE");
    let families = collect_beside(&writer, &path);
    // SHARED coexists with RESERVED: the reader sees the committed state.
    assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(1.0));
    assert_eq!(
        value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
        Some(1.0)
    );
}

#[test]
fn an_exclusive_writer_makes_up_0_quickly_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 1);
    let writer = writer_in(&path, "BEGIN EXCLUSIVE");
    let families = collect_beside(&writer, &path);
    assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(0.0));
    assert!(
        value(&families, "warden_sqlite_file_size_bytes", &[]).is_some(),
        "the file is there, only locked"
    );
}

#[test]
fn writers_are_not_blocked_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "WAL", 1);
    for begin in ["BEGIN IMMEDIATE", "BEGIN EXCLUSIVE"] {
        let writer = writer_in(&path, begin);
        let families = collect_beside(&writer, &path);
        assert_eq!(
            value(&families, "warden_sqlite_up", &[]),
            Some(1.0),
            "{begin}"
        );
        assert_eq!(
            value(&families, "warden_sqlite_table_rows", &[("table", "items")]),
            Some(1.0),
            "the snapshot before the open transaction"
        );
        writer
            .execute_batch("DELETE FROM items WHERE id > 1")
            .unwrap();
    }
}

#[test]
fn a_failing_row_count_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 4);
    let mut config = config(&path);
    config.row_counts = vec!["missing".to_owned(), "main.items".to_owned()];
    let families = SqliteCollector::new(config).collect().unwrap();
    assert_eq!(value(&families, "warden_sqlite_up", &[]), Some(1.0));
    assert_eq!(
        value(
            &families,
            "warden_sqlite_table_rows",
            &[("table", "main.items")]
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &families,
            "warden_sqlite_table_rows",
            &[("table", "missing")]
        ),
        None
    );
}

#[test]
fn identifiers_are_quoted() {
    assert_eq!(quote_identifier("items"), "\"items\"");
    assert_eq!(quote_identifier("main.order"), "\"main\".\"order\"");
    assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
}

fn integrity(collector: &SqliteCollector) -> (Option<f64>, Option<f64>) {
    let families = collector.collect().unwrap();
    (
        value(&families, "warden_sqlite_integrity_ok", &[]),
        value(
            &families,
            "warden_sqlite_integrity_check_timestamp_seconds",
            &[],
        ),
    )
}

#[tokio::test]
async fn integrity_of_a_healthy_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "WAL", 500);
    // No application has it open: checked immutable, creating no file.
    let collector = SqliteCollector::new(config(&path));
    assert!(matches!(
        collector.check_once(&CancellationToken::new()).await,
        Checked::Finished
    ));
    assert_eq!(integrity(&collector).0, Some(1.0));
    assert_eq!(listing(dir.path()), ["app.db"]);
    let _app = Connection::open(&path).unwrap();
    _app.query_row("SELECT 1", [], |_| Ok(())).unwrap();
    for kind in [IntegrityCheck::Quick, IntegrityCheck::Full] {
        let mut config = config(&path);
        config.integrity_check = kind;
        let collector = SqliteCollector::new(config);
        assert!(matches!(
            collector.check_once(&CancellationToken::new()).await,
            Checked::Finished
        ));
        let (ok, timestamp) = integrity(&collector);
        assert_eq!(ok, Some(1.0));
        assert!(timestamp.unwrap() > 1.7e9);
    }
}

#[tokio::test]
async fn integrity_of_an_unrecovered_wal_says_why_it_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = unrecovered_wal(dir.path());
    let collector = SqliteCollector::new(config(&path));
    assert!(matches!(
        collector.check_once(&CancellationToken::new()).await,
        Checked::Unavailable
    ));
    let (_, reason) = collector.health().last_error.unwrap();
    assert!(
        reason.contains("bytes of changes in its -wal file"),
        "{reason}"
    );
    assert!(!dir.path().join("app.db-shm").exists());
}

/// Creates a healthy database of many pages and returns a copy with one interior page
/// overwritten with garbage.
fn corrupted_copy(dir: &Path) -> PathBuf {
    let path = dir.join("good.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA page_size = 4096;
         CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT);
         CREATE INDEX t_body ON t (body);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO t SELECT i, printf('row %d %s', i, hex(randomblob(20))) FROM n;",
    )
    .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    assert!(pages > 20, "{pages}");

    let copy = dir.join("bad.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let page = (pages / 2) as usize; // 0-based: page `pages/2 + 1`, well past the header
    for (i, byte) in bytes[page * 4096..(page + 1) * 4096].iter_mut().enumerate() {
        *byte = (i * 7 % 251) as u8;
    }
    std::fs::write(&copy, bytes).unwrap();
    copy
}

#[tokio::test]
async fn integrity_of_a_corrupted_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = corrupted_copy(dir.path());
    let mut config = config(&path);
    config.row_counts.clear();
    let collector = SqliteCollector::new(config);
    assert!(matches!(
        collector.check_once(&CancellationToken::new()).await,
        Checked::Finished
    ));
    let families = collector.collect().unwrap();
    assert_eq!(
        value(&families, "warden_sqlite_up", &[]),
        Some(1.0),
        "the header is intact"
    );
    assert_eq!(
        value(&families, "warden_sqlite_integrity_ok", &[]),
        Some(0.0)
    );
    assert!(
        value(
            &families,
            "warden_sqlite_integrity_check_duration_seconds",
            &[]
        )
        .is_some()
    );
}

#[tokio::test]
async fn integrity_of_a_missing_file_is_retried_soon() {
    let dir = tempfile::tempdir().unwrap();
    let collector = SqliteCollector::new(config(&dir.path().join("absent.db")));
    assert!(matches!(
        collector.check_once(&CancellationToken::new()).await,
        Checked::Unavailable
    ));
    assert_eq!(integrity(&collector), (None, Some(0.0)));
}

#[tokio::test]
async fn the_integrity_loop_runs_and_stops_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 10);
    let mut config = config(&path);
    config.integrity_interval = Duration::from_millis(100);
    let collector = SqliteCollector::new(config);
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    collector.spawn_integrity(shutdown.clone(), &tracker);
    tracker.close();

    let started = Instant::now();
    while integrity(&collector).0.is_none() {
        assert!(started.elapsed() < Duration::from_secs(10), "no check ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(integrity(&collector).0, Some(1.0));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("the loop stops on shutdown");
}

/// An executor on a WAL database, and the application's connection that keeps it open.
fn executor(dir: &Path) -> (Arc<SqliteExecutor>, Connection) {
    let path = dir.join("app.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE logs (id INTEGER, ratio REAL, transport TEXT, note TEXT, at TEXT, raw BLOB);
         INSERT INTO logs VALUES (1, 0.5, 'stdio', NULL, '2024-05-01 12:00:00', x'6869');",
    )
    .unwrap();
    (SqliteExecutor::new(&config(&path)), conn)
}

#[tokio::test]
async fn executor_converts_types() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, _app) = executor(dir.path());
    let rows = executor
        .query(
            "SELECT id, ratio, transport, note, at, raw FROM logs".to_owned(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(
        rows.columns,
        ["id", "ratio", "transport", "note", "at", "raw"]
    );
    assert_eq!(
        rows.rows,
        vec![vec![
            Cell::Int(1),
            Cell::Float(0.5),
            Cell::Text("stdio".to_owned()),
            Cell::Null,
            Cell::Text("2024-05-01 12:00:00".to_owned()),
            Cell::Text("hi".to_owned()),
        ]]
    );
    let empty = executor
        .query(
            "SELECT id AS n FROM logs WHERE 0".to_owned(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(empty.columns, ["n"]);
    assert!(empty.rows.is_empty());
}

#[tokio::test]
async fn executor_interrupts_a_query_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, _app) = executor(dir.path());
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let result = executor
        .query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
             SELECT count(*) FROM c"
                .to_owned(),
            timeout,
        )
        .await;
    assert!(
        matches!(result, Err(QueryError::Timeout(t)) if t == timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < timeout * 5, "{:?}", started.elapsed());

    // The next query queues behind the interrupted one: it returns quickly only if that one
    // really stopped.
    let started = Instant::now();
    let rows = executor
        .query("SELECT 1 AS one".to_owned(), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Cell::Int(1)]]);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn executor_rejects_writes_and_extra_statements() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, _app) = executor(dir.path());
    let run = |sql: &str| executor.query(sql.to_owned(), Duration::from_secs(5));
    for sql in [
        "INSERT INTO logs (id) VALUES (2)",
        "DELETE FROM logs",
        "WITH x AS (SELECT 1) UPDATE logs SET id = 3",
    ] {
        match run(sql).await {
            Err(QueryError::Database(message)) => {
                assert_eq!(message, "only read-only statements are allowed", "{sql}")
            }
            other => panic!("{sql}: {other:?}"),
        }
    }
    for sql in ["BEGIN", "ATTACH DATABASE ':memory:' AS other"] {
        assert!(
            matches!(run(sql).await, Err(QueryError::Database(_))),
            "{sql}"
        );
    }
    assert!(matches!(
        run("SELECT 1; SELECT 2").await,
        Err(QueryError::Database(_))
    ));
    assert!(matches!(
        run("SELECT nope FROM logs").await,
        Err(QueryError::Database(_))
    ));
    // Still usable, outside any transaction.
    let rows = run("SELECT count(*) FROM logs").await.unwrap();
    assert_eq!(rows.rows, vec![vec![Cell::Int(1)]]);
}

#[tokio::test]
async fn executor_on_a_missing_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let executor = SqliteExecutor::new(&config(&path));
    let result = executor
        .query("SELECT 1".to_owned(), Duration::from_secs(5))
        .await;
    assert!(
        matches!(&result, Err(QueryError::Unavailable(reason)) if reason.contains("does not exist")),
        "{result:?}"
    );
    assert!(!path.exists());
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn executor_reads_an_idle_wal_database_without_creating_files() {
    let dir = tempfile::tempdir().unwrap();
    let (executor, app) = executor(dir.path());
    drop(app);
    assert_eq!(listing(dir.path()), ["app.db"], "closed cleanly");
    for _ in 0..2 {
        assert_eq!(count_logs(&executor).await, 1);
        assert_eq!(listing(dir.path()), ["app.db"], "no -wal or -shm created");
    }
    // The application opens it again and writes: the next query sees the write.
    let app = Connection::open(dir.path().join("app.db")).unwrap();
    app.execute("INSERT INTO logs (id) VALUES (2)", []).unwrap();
    assert_eq!(count_logs(&executor).await, 2);
}

/// `SELECT count(*) FROM logs` through `executor`.
async fn count_logs(executor: &SqliteExecutor) -> i64 {
    let rows = executor
        .query(
            "SELECT count(*) FROM logs".to_owned(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    match rows.rows.as_slice() {
        [row] => match row.as_slice() {
            [Cell::Int(count)] => *count,
            other => panic!("not one integer: {other:?}"),
        },
        other => panic!("not one row: {other:?}"),
    }
}

/// A WAL database whose last application died before checkpointing: the database and its
/// non-empty `-wal`, copied while the application had them open, without the `-shm`.
fn unrecovered_wal(dir: &Path) -> PathBuf {
    let live = dir.join("live");
    std::fs::create_dir(&live).unwrap();
    let (_, app) = executor(&live);
    app.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO logs (id) VALUES (2);")
        .unwrap();
    let path = dir.join("app.db");
    std::fs::copy(live.join("app.db"), &path).unwrap();
    std::fs::copy(live.join("app.db-wal"), dir.join("app.db-wal")).unwrap();
    path
}

#[tokio::test]
async fn executor_refuses_an_unrecovered_wal_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = unrecovered_wal(dir.path());
    let executor = SqliteExecutor::new(&config(&path));
    let result = executor
        .query("SELECT 1".to_owned(), Duration::from_secs(5))
        .await;
    assert!(
        matches!(&result, Err(QueryError::Unavailable(reason))
            if reason.contains("bytes of changes in its -wal file and no -shm file")),
        "{result:?}"
    );
    assert!(!dir.path().join("app.db-shm").exists());
}

#[tokio::test]
async fn executor_on_an_exclusively_locked_file_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create(&path, 4096, "DELETE", 1);
    let writer = writer_in(&path, "BEGIN EXCLUSIVE");
    let executor = SqliteExecutor::new(&config(&path));
    let result = executor
        .query(
            "SELECT count(*) FROM items".to_owned(),
            Duration::from_millis(500),
        )
        .await;
    assert!(
        matches!(
            &result,
            Err(QueryError::Unavailable(_)) | Err(QueryError::Timeout(_))
        ),
        "{result:?}"
    );
    writer.execute_batch("COMMIT").unwrap();
    let rows = executor
        .query(
            "SELECT count(*) FROM items".to_owned(),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![Cell::Int(2)]]);
}

#[tokio::test]
async fn executor_stops_reading_at_the_row_cap() {
    use crate::collect::sql::MAX_ROWS;
    let dir = tempfile::tempdir().unwrap();
    let (executor, _app) = executor(dir.path());
    // Three million rows of 100-byte text: about 300 MB if all were kept.
    let rows = executor
        .query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)
             SELECT x, printf('%0100d', x) AS pad FROM c"
                .to_owned(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(rows.rows.len(), MAX_ROWS, "one past the cap, no more");
    assert_eq!(rows.rows[MAX_ROWS - 1][0], Cell::Int(MAX_ROWS as i64));
}

/// Threads of this process blocked opening a FIFO (nextest runs each test in its own process).
fn threads_opening_a_fifo() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let wchan = task.as_ref().unwrap().path().join("wchan");
            std::fs::read_to_string(wchan).is_ok_and(|w| w.trim() == "wait_for_partner")
        })
        .count()
}

/// Ends the hang of a FIFO database when dropped, so a failing test does not leave a thread
/// blocked forever (the runtime waits for its blocking threads on drop): a regular file takes
/// the path, then the blocked reader gets a writer and end-of-file.
struct EndsHang(PathBuf);

impl Drop for EndsHang {
    fn drop(&mut self) {
        use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
        let Ok(meta) = std::fs::symlink_metadata(&self.0) else {
            return;
        };
        if !meta.file_type().is_fifo() {
            return;
        }
        // Succeeds only while a reader is blocked in open(2); never blocks.
        let writer = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&self.0);
        let regular = self.0.with_extension("regular");
        std::fs::write(&regular, b"").unwrap();
        std::fs::rename(&regular, &self.0).unwrap();
        drop(writer);
    }
}

/// A FIFO at `path`: opening it with no writer blocks in open(2), where no interrupt reaches
/// it, a real hang like a file on a dead network mount. The guard ends the hang when dropped.
fn hung_file(path: &Path) -> EndsHang {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    EndsHang(path.to_owned())
}

#[tokio::test]
async fn executor_on_a_hung_file_parks_one_thread_and_refuses_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let _ends_hang = hung_file(&path);
    let executor = SqliteExecutor::new(&config(&path));
    let timeout = Duration::from_millis(100);
    let query = || tokio::time::timeout(timeout, executor.query("SELECT 1".to_owned(), timeout));
    let first = query().await;
    assert!(
        matches!(first, Ok(Err(QueryError::Timeout(_)))),
        "{first:?}"
    );
    // Queries wait (holding no thread) until the hung call is past its limit and grace, then
    // are refused at once.
    let mut waited = 0;
    loop {
        match query().await {
            Err(_) | Ok(Err(QueryError::Timeout(_))) if waited < 100 => waited += 1,
            Ok(Err(QueryError::Unavailable(reason))) => {
                assert!(reason.contains("is still stuck, since"), "{reason}");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    for _ in 0..20 {
        match query().await {
            Ok(Err(QueryError::Unavailable(reason))) => {
                assert!(reason.contains("is still stuck, since"), "{reason}")
            }
            other => panic!("refused at once, not queued: {other:?}"),
        }
    }
    assert_eq!(
        threads_opening_a_fifo(),
        1,
        "one thread parked, not one per query"
    );

    // The hang ends: a real database takes the path, and the FIFO's reader gets a writer
    // and end-of-file.
    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let real = dir.path().join("real.db");
    create(&real, 4096, "DELETE", 1);
    std::fs::rename(&real, &path).unwrap();
    drop(writer);
    let mut answered = None;
    for _ in 0..100 {
        match executor
            .query(
                "SELECT count(*) FROM items".to_owned(),
                Duration::from_secs(5),
            )
            .await
        {
            Ok(rows) => {
                answered = Some(rows);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(answered.unwrap().rows, vec![vec![Cell::Int(1)]]);
}

#[tokio::test]
async fn the_integrity_loop_stops_on_shutdown_while_opening_a_hung_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let _ends_hang = hung_file(&path);
    let mut config = config(&path);
    config.integrity_interval = Duration::from_millis(50);
    let collector = SqliteCollector::new(config);
    let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
    collector.spawn_integrity(shutdown.clone(), &tracker);
    tracker.close();
    for _ in 0..500 {
        if threads_opening_a_fifo() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(threads_opening_a_fifo(), 1, "the check is opening the file");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("the loop stops on shutdown, leaving the hung open to its thread");
}
