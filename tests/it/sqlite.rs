//! The SQLite collector and user queries on SQLite, through `warden serve` on real files.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::{Warden, value, wait_for, warden_bin};

/// The tutorial server's example config (seed 000), shipped in `deploy/examples/`.
const TUTORIAL_EXAMPLE: &str = include_str!("../../deploy/examples/tutorial.yml");

/// A scrape must answer within this, whatever the application does (a liveness bound, not a
/// benchmark).
const SCRAPE_BOUND: Duration = Duration::from_secs(3);

/// The tutorial example with its database path pointing at `path`, minus `listen` (the test
/// harness sets its own).
pub fn tutorial_config(path: &Path) -> String {
    let start = TUTORIAL_EXAMPLE
        .find("${TUTORIAL_DB:-")
        .expect("the example reads its path from TUTORIAL_DB");
    let end = start + TUTORIAL_EXAMPLE[start..].find('}').unwrap() + 1;
    let text = format!(
        "{}{}{}",
        &TUTORIAL_EXAMPLE[..start],
        path.display(),
        &TUTORIAL_EXAMPLE[end..]
    );
    text.lines()
        .filter(|line| !line.starts_with("listen:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The tutorial server's tables, as its backup script checks them, plus its request log.
pub fn create_tutorial_db(path: &Path, journal_mode: &str) -> Connection {
    let conn = Connection::open(path).unwrap();
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode.to_ascii_lowercase(), journal_mode.to_ascii_lowercase());
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE tutorials (id INTEGER PRIMARY KEY, title TEXT);
         CREATE TABLE user_progress (user_id INTEGER, tutorial_id INTEGER, step INTEGER);
         CREATE TABLE request_logs (
             id INTEGER PRIMARY KEY,
             timestamp TIMESTAMP,
             transport_type TEXT,
             status TEXT,
             response_time REAL
         );
         INSERT INTO users (name) VALUES ('ada'), ('grace');
         INSERT INTO tutorials (title) VALUES ('intro'), ('tools'), ('resources');
         -- Written the way the server's Python writes them: local time.
         INSERT INTO request_logs (timestamp, transport_type, status, response_time) VALUES
             (datetime('now', 'localtime', '-1 minutes'), 'sse', 'success', 0.5),
             (datetime('now', 'localtime', '-2 minutes'), 'sse', 'error', 1.5),
             (datetime('now', 'localtime', '-3 minutes'), 'sse', 'success', 4.0),
             -- Outside the 5-minute window: not counted.
             (datetime('now', 'localtime', '-10 minutes'), 'stdio', 'error', 9.0);",
    )
    .unwrap();
    conn
}

fn scrape(warden: &Warden) -> String {
    let started = Instant::now();
    let response = warden.get("/metrics", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(
        started.elapsed() < SCRAPE_BOUND,
        "scrape took {:?}",
        started.elapsed()
    );
    response.body
}

fn db(name: &str) -> [(&str, &str); 1] {
    [("database", name)]
}

#[test]
fn tutorial_example_reports_the_file_the_tables_and_the_request_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fastmcp.db");
    drop(create_tutorial_db(&path, "DELETE"));
    let warden = Warden::start(&tutorial_config(&path));
    let body = wait_for(Duration::from_secs(20), "the query's first run", || {
        let body = scrape(&warden);
        value(
            &body,
            "warden_query_success",
            &[("query", "tutorial_requests")],
        )
        .map(|_| body)
    });

    assert_eq!(value(&body, "warden_sqlite_up", &db("tutorial")), Some(1.0));
    let size = std::fs::metadata(&path).unwrap().len() as f64;
    assert_eq!(
        value(&body, "warden_sqlite_file_size_bytes", &db("tutorial")),
        Some(size)
    );
    assert_eq!(
        value(&body, "warden_sqlite_wal_size_bytes", &db("tutorial")),
        Some(0.0)
    );
    let pages = value(&body, "warden_sqlite_pages", &db("tutorial")).unwrap();
    let page_size = value(&body, "warden_sqlite_page_size_bytes", &db("tutorial")).unwrap();
    assert_eq!(page_size, 4096.0);
    assert_eq!(
        pages * page_size,
        size,
        "a rollback-journal file is all pages"
    );
    assert_eq!(
        value(&body, "warden_sqlite_freelist_pages", &db("tutorial")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &body,
            "warden_sqlite_journal_mode_info",
            &[("database", "tutorial"), ("journal_mode", "delete")]
        ),
        Some(1.0)
    );
    for (table, rows) in [("users", 2.0), ("tutorials", 3.0), ("user_progress", 0.0)] {
        assert_eq!(
            value(
                &body,
                "warden_sqlite_table_rows",
                &[("database", "tutorial"), ("table", table)]
            ),
            Some(rows),
            "{table}"
        );
    }
    assert!(
        value(
            &body,
            "warden_sqlite_integrity_check_timestamp_seconds",
            &db("tutorial")
        )
        .is_some()
    );

    // The query: sse has three requests in the window, stdio none (zero-filled).
    assert_eq!(
        value(
            &body,
            "warden_query_success",
            &[("query", "tutorial_requests")]
        ),
        Some(1.0),
        "{}",
        warden.stderr()
    );
    for (name, sse, stdio) in [
        ("tutorial_recent_requests", 3.0, 0.0),
        ("tutorial_recent_request_errors", 1.0, 0.0),
        ("tutorial_recent_response_time_avg_seconds", 2.0, 0.0),
        ("tutorial_recent_response_time_max_seconds", 4.0, 0.0),
    ] {
        assert_eq!(
            value(&body, name, &[("transport", "sse")]),
            Some(sse),
            "{name}"
        );
        assert_eq!(
            value(&body, name, &[("transport", "stdio")]),
            Some(stdio),
            "{name} zero-filled"
        );
    }
    assert_eq!(
        value(
            &body,
            "warden_query_errors_total",
            &[("query", "tutorial_requests")]
        ),
        Some(0.0)
    );

    // The example's alert expressions, read from the file, evaluated by a real Prometheus:
    // one error in three requests is above 5 %, the slowest request (4 s) above 3 s, the
    // average (2 s) not.
    let example = include_str!("../../deploy/examples/tutorial.yml");
    let expression = |starts: &str| -> String {
        example
            .lines()
            .map(|l| l.trim_start_matches([' ', '#']).trim())
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no `{starts}…` expression in tutorial.yml"))
            .split(':')
            .next()
            .unwrap()
            .trim()
            .to_owned()
    };
    let error_rate = expression("sum(tutorial_recent_request_errors)");
    let slowest = expression("max(tutorial_recent_response_time_max_seconds)");
    let average = example
        .lines()
        .find_map(|l| l.split_once("(or the average: "))
        .map(|(_, rest)| rest.trim().trim_end_matches(')').to_owned())
        .expect("the average's expression in tutorial.yml");
    let prometheus = crate::support::prometheus::Prometheus::start(&format!(
        "  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        warden.addr
    ));
    prometheus.wait_for_data(&error_rate, Duration::from_secs(30));
    assert_eq!(prometheus.query(&slowest).len(), 1, "{slowest}");
    assert!(prometheus.query(&average).is_empty(), "{average}");
}

/// A config watching `path` as `app`, with short intervals.
fn app_config(path: &Path, extra: &str) -> String {
    format!(
        "host: {{enabled: false}}\nsqlite:\n  - name: app\n    path: {}\n    timeout: 2s\n    row_counts: [users]\n{extra}",
        path.display()
    )
}

#[test]
fn an_exclusive_writer_in_rollback_mode_is_neither_blocked_nor_hangs_a_scrape() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let app = create_tutorial_db(&path, "DELETE");
    let warden = Warden::start(&app_config(&path, ""));
    wait_for(Duration::from_secs(10), "up 1", || {
        (value(&scrape(&warden), "warden_sqlite_up", &db("app")) == Some(1.0)).then_some(())
    });

    // The application holds EXCLUSIVE: no reader may take SHARED until it commits.
    app.execute_batch("BEGIN EXCLUSIVE; INSERT INTO users (name) VALUES ('linus');")
        .unwrap();
    for _ in 0..5 {
        let body = scrape(&warden);
        assert_eq!(
            value(&body, "warden_sqlite_up", &db("app")),
            Some(0.0),
            "locked, reported as down"
        );
        assert!(
            value(&body, "warden_sqlite_file_size_bytes", &db("app")).is_some(),
            "the file's size needs no lock"
        );
    }
    app.execute_batch("COMMIT")
        .expect("the application commits");
    assert!(
        warden.stderr().contains("stayed locked by a writer"),
        "{}",
        warden.stderr()
    );
    wait_for(Duration::from_secs(10), "up 1 with the new row", || {
        let body = scrape(&warden);
        (value(&body, "warden_sqlite_up", &db("app")) == Some(1.0)
            && value(&body, "warden_sqlite_table_rows", &[("table", "users")]) == Some(3.0))
        .then_some(())
    });

    // Scrapes back to back while the application commits one transaction after another: every
    // commit gets its EXCLUSIVE lock within the application's own busy timeout.
    app.busy_timeout(Duration::from_secs(2)).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let scraper = scope.spawn(|| {
            let mut scrapes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                scrape(&warden);
                scrapes += 1;
            }
            scrapes
        });
        for i in 0..100 {
            app.execute_batch(&format!(
                "BEGIN IMMEDIATE; INSERT INTO users (name) VALUES ('user{i}'); COMMIT;"
            ))
            .unwrap_or_else(|err| panic!("commit {i} failed beside the scrapes: {err}"));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(scraper.join().unwrap() > 0);
    });
}

#[test]
fn an_open_write_transaction_in_wal_mode_keeps_up_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    // The application keeps its connection open, as a server does (so the -shm file exists).
    let app = create_tutorial_db(&path, "WAL");
    let warden = Warden::start(&app_config(&path, ""));
    wait_for(Duration::from_secs(10), "up 1", || {
        (value(&scrape(&warden), "warden_sqlite_up", &db("app")) == Some(1.0)).then_some(())
    });
    app.execute_batch("BEGIN EXCLUSIVE; INSERT INTO users (name) VALUES ('linus');")
        .unwrap();
    for _ in 0..5 {
        let body = scrape(&warden);
        assert_eq!(value(&body, "warden_sqlite_up", &db("app")), Some(1.0));
        assert_eq!(
            value(
                &body,
                "warden_sqlite_journal_mode_info",
                &[("journal_mode", "wal")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&body, "warden_sqlite_table_rows", &[("table", "users")]),
            Some(2.0),
            "the committed snapshot"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    app.execute_batch("COMMIT")
        .expect("the application commits");
    wait_for(Duration::from_secs(10), "the committed row", || {
        let body = scrape(&warden);
        (value(&body, "warden_sqlite_table_rows", &[("table", "users")]) == Some(3.0)).then_some(())
    });
    let body = scrape(&warden);
    assert!(value(&body, "warden_sqlite_wal_size_bytes", &db("app")).unwrap() > 0.0);
    assert!(value(&body, "warden_sqlite_shm_size_bytes", &db("app")).unwrap() > 0.0);
}

#[test]
fn a_missing_file_is_up_0_and_the_scrape_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.db");
    let warden = Warden::start(&app_config(
        &path,
        "queries:\n  - name: users\n    target: sqlite/app\n    sql: SELECT count(*) AS n FROM users\n    interval: 1s\n    timeout: 1s\n    metrics:\n      - {name: app_users, value: n}\n",
    ));
    let body = wait_for(Duration::from_secs(10), "the query's first run", || {
        let body = scrape(&warden);
        value(&body, "warden_query_success", &[("query", "users")]).map(|_| body)
    });
    assert_eq!(value(&body, "warden_sqlite_up", &db("app")), Some(0.0));
    assert_eq!(
        value(&body, "warden_query_success", &[("query", "users")]),
        Some(0.0)
    );
    assert!(
        !body.contains("\napp_users"),
        "no metrics from a failed run"
    );
    assert!(
        value(
            &body,
            "warden_collector_success",
            &[("collector", "sqlite/app")]
        )
        .unwrap_or(1.0)
            == 1.0,
        "a missing database is not a collector failure"
    );
    let log = warden.stderr();
    assert!(log.contains("does not exist"), "{log}");
    assert!(!path.exists(), "warden must not create the database");
}

#[test]
fn null_wrong_type_and_duplicate_labels_fail_the_query_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let _app = create_tutorial_db(&path, "DELETE");
    let query = |name: &str, sql: &str, metric: &str| {
        format!(
            "  - name: {name}\n    target: sqlite/app\n    sql: \"{sql}\"\n    interval: 1s\n    timeout: 1s\n    metrics:\n      - {{name: {metric}, value: v, labels: [k]}}\n"
        )
    };
    let queries = [
        query("nulls", "SELECT 'a' AS k, NULL AS v", "app_null"),
        query("text", "SELECT 'a' AS k, 'lots' AS v", "app_text"),
        query(
            "duplicate",
            "SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'a', 2",
            "app_duplicate",
        ),
        query(
            "good",
            "SELECT transport_type AS k, count(*) AS v FROM request_logs GROUP BY transport_type",
            "app_good",
        ),
    ]
    .concat();
    let warden = Warden::start(&app_config(&path, &format!("queries:\n{queries}")));
    let body = wait_for(Duration::from_secs(10), "every query's first run", || {
        let body = scrape(&warden);
        ["nulls", "text", "duplicate", "good"]
            .iter()
            .all(|q| value(&body, "warden_query_success", &[("query", q)]).is_some())
            .then_some(body)
    });
    for (query, metric, reason) in [
        (
            "nulls",
            "app_null",
            "metric app_null: row 1: column `v` is NULL",
        ),
        (
            "text",
            "app_text",
            "metric app_text: row 1: column `v` holds \"lots\", which is not a number",
        ),
        (
            "duplicate",
            "app_duplicate",
            "metric app_duplicate: row 2: the label set [\"a\"] appears twice",
        ),
    ] {
        assert_eq!(
            value(&body, "warden_query_success", &[("query", query)]),
            Some(0.0),
            "{query}"
        );
        assert!(
            value(&body, "warden_query_errors_total", &[("query", query)]).unwrap() >= 1.0,
            "{query}"
        );
        assert!(!body.contains(&format!("\n{metric}")), "{query}: no metric");
        let log = warden.stderr();
        assert!(
            log.lines()
                .any(|l| l.contains("Query failed.") && l.contains(query) && l.contains(reason)),
            "{query}: no log line with {reason:?} in:\n{log}"
        );
    }
    assert_eq!(
        value(&body, "warden_query_success", &[("query", "good")]),
        Some(1.0)
    );
    assert_eq!(value(&body, "app_good", &[("k", "sse")]), Some(3.0));
    assert_eq!(value(&body, "warden_sqlite_up", &db("app")), Some(1.0));
}

#[test]
fn bad_queries_are_config_errors_with_key_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.yml");
    std::fs::write(
        &config,
        "sqlite:\n  - {name: app, path: app.db}\n\
         queries:\n\
         \x20 - name: ok\n    target: sqlite/app\n    sql: SELECT 1 AS v\n    metrics:\n      - {name: app_ok, value: v}\n\
         \x20 - name: broken\n    target: mysql/app\n    sql: \"  \"\n    interval: 10s\n    timeout: 20s\n    metrics:\n\
         \x20     - {name: pg_mine, value: v}\n\
         \x20     - {name: app_hits, type: counter, value: v}\n\
         \x20     - {name: 1bad, value: v}\n\
         \x20     - {name: app_x, type: histogram, value: v, labels: [k, k, __x], fill: {z: [a]}}\n\
         \x20     - {name: app_empty, value: \"\"}\n\
         \x20 - name: elsewhere\n    target: sqlite/nope\n    sql: SELECT 1 AS v\n    metrics: []\n\
         \x20 - name: again\n    target: sqlite/app\n    sql: SELECT 1 AS v\n    metrics:\n      - {name: app_ok, value: v}\n\
         run_queues:\n\
         \x20 - name: jobs\n    target: sqlite/app\n    table: \"runs; DROP TABLE runs\"\n    status_column: status\n\
         \x20   states: {queued: [new], paused: [p], running: [new]}\n    queued_since: created\n    running_since: started\n    top_running: 5\n",
    )
    .unwrap();
    let output = Command::new(warden_bin())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    for needle in [
        "queries[1].target: `mysql/app` is not a target such as postgres/NAME or sqlite/NAME",
        "queries[1].sql: must not be empty",
        "queries[1].timeout: must not be longer than the interval",
        "queries[1].metrics[0].name: `pg_mine` clashes with built-in metrics (names starting `pg_` are reserved)",
        "queries[1].metrics[1].name: a counter's name must end in `_total`",
        "queries[1].metrics[2].name: `1bad` is not a metric name",
        "queries[1].metrics[3].type: `histogram` is not one of: gauge, counter",
        "queries[1].metrics[3].labels[1]: `k` is listed twice",
        "queries[1].metrics[3].labels[2]: `__x` is not a label name",
        "queries[1].metrics[3].fill.z: fill names a label that is not in labels",
        "queries[1].metrics[4].value: name the column holding the value",
        // Paths count every entry, including those dropped for other problems.
        "queries[3].metrics[0].name: metric `app_ok` is already produced by another query",
        "queries[2].target: `sqlite/nope` names no configured sqlite entry",
        "queries[2].metrics: list at least one metric",
        "run_queues[0].table: `runs; DROP TABLE runs` is not a column or table name",
        "run_queues[0].states.paused: unknown state",
        "run_queues[0].states.running: status `new` is mapped to two states",
        "run_queues[0].top_running: needs id_column to label the runs",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("queries[0]"),
        "the valid query has no problems:\n{stderr}"
    );
}

/// The files in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A config watching `path` as `app`, checked every second, with one query counting users.
fn idle_config(path: &Path) -> String {
    format!(
        "host: {{enabled: false}}\nsqlite:\n  - name: app\n    path: {}\n    timeout: 2s\n    row_counts: [users]\n    integrity_interval: 1s\n\
         queries:\n  - name: users\n    target: sqlite/app\n    sql: SELECT count(*) AS n FROM users\n    interval: 1s\n    timeout: 1s\n    metrics:\n      - {{name: app_users, value: n}}\n",
        path.display()
    )
}

#[test]
fn a_wal_database_closed_cleanly_is_queried_and_checked_without_creating_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let made = Command::new("sqlite3")
        .arg(&path)
        .arg(
            "PRAGMA journal_mode = WAL; CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO users (name) VALUES ('ada'), ('grace');",
        )
        .output()
        .expect("the sqlite3 CLI");
    assert!(made.status.success(), "{made:?}");
    assert_eq!(
        listing(dir.path()),
        ["app.db"],
        "the CLI checkpointed on close"
    );

    let warden = Warden::start(&idle_config(&path));
    let body = wait_for(
        Duration::from_secs(20),
        "the query and the integrity check",
        || {
            let body = scrape(&warden);
            (value(&body, "app_users", &[]).is_some()
                && value(&body, "warden_sqlite_integrity_ok", &db("app")).is_some())
            .then_some(body)
        },
    );
    assert_eq!(value(&body, "app_users", &[]), Some(2.0));
    assert_eq!(
        value(&body, "warden_sqlite_integrity_ok", &db("app")),
        Some(1.0)
    );
    assert_eq!(value(&body, "warden_sqlite_up", &db("app")), Some(1.0));
    assert_eq!(
        value(
            &body,
            "warden_sqlite_table_rows",
            &[("database", "app"), ("table", "users")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &body,
            "warden_sqlite_journal_mode_info",
            &[("database", "app"), ("journal_mode", "wal")]
        ),
        Some(1.0)
    );
    assert_eq!(listing(dir.path()), ["app.db"], "no -wal or -shm created");
}

#[test]
fn a_wal_database_with_unrecovered_changes_is_not_opened_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    // The application dies before checkpointing: its files as they are while it runs,
    // without the -shm.
    let app = create_tutorial_db(&live.join("app.db"), "WAL");
    app.execute_batch("PRAGMA wal_autocheckpoint = 0; INSERT INTO users (name) VALUES ('alan');")
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let path = data.join("app.db");
    std::fs::copy(live.join("app.db"), &path).unwrap();
    std::fs::copy(live.join("app.db-wal"), data.join("app.db-wal")).unwrap();
    drop(app);

    let warden = Warden::start(&idle_config(&path));
    let body = wait_for(Duration::from_secs(10), "the query's first run", || {
        let body = scrape(&warden);
        value(&body, "warden_query_success", &[("query", "users")]).map(|_| body)
    });
    assert_eq!(
        value(&body, "warden_query_success", &[("query", "users")]),
        Some(0.0)
    );
    let log = warden.stderr();
    assert!(
        log.contains("bytes of changes in its -wal file and no -shm file"),
        "{log}"
    );
    assert_eq!(listing(&data), ["app.db", "app.db-wal"], "no -shm created");
}

/// Threads of process `pid` blocked opening a FIFO.
fn threads_opening_a_fifo(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter(|task| {
            let wchan = task.as_ref().unwrap().path().join("wchan");
            std::fs::read_to_string(wchan).is_ok_and(|w| w.trim() == "wait_for_partner")
        })
        .count()
}

#[test]
fn a_hung_database_file_parks_one_thread_per_reader_and_scrapes_still_answer() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    // Opening a FIFO with no writer blocks in open(2), as a file on a dead mount would.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let warden = Warden::start(&idle_config(&path));
    let pid = warden.pid();
    let success = |body: &str| {
        value(
            body,
            "warden_collector_success",
            &[("collector", "sqlite/app")],
        )
    };
    // The collector, the query and the integrity check each hang once, then are refused
    // without another thread: the process's thread count stops growing.
    let threads = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count()
    };
    let (mut opening, mut all) = (Vec::new(), Vec::new());
    for _ in 0..12 {
        let body = scrape(&warden);
        assert_eq!(success(&body), Some(0.0));
        opening.push(threads_opening_a_fifo(pid));
        all.push(threads());
        std::thread::sleep(Duration::from_millis(500));
    }
    let most = opening.iter().copied().max().unwrap();
    assert!(most <= 3, "one thread per reader at most: {opening:?}");
    assert!(
        all[11] <= all[5] + 1,
        "threads kept growing (one parked per scrape or query): {all:?}"
    );

    // The hang ends: a writer opens the FIFO (never blocking), then a database takes the path.
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&path);
    let real = dir.path().join("real.db");
    drop(create_tutorial_db(&real, "DELETE"));
    std::fs::rename(&real, &path).unwrap();
    drop(writer);
    wait_for(
        Duration::from_secs(20),
        "success 1 after the hang ends",
        || (success(&scrape(&warden)) == Some(1.0)).then_some(()),
    );
}

/// The ids of the threads of process `pid`.
fn thread_ids(pid: u32) -> std::collections::BTreeSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| task.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// At Prometheus' usual intervals (15 s and more) a scrape finds the threads the last one used
/// still there: neither the host collectors' thread nor the SQLite collector's is ended after
/// 10 s idle and started anew for the next scrape.
#[test]
fn scrapes_further_apart_than_ten_seconds_start_no_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    create_tutorial_db(&path, "wal");
    let warden = Warden::start(&format!(
        "sqlite:\n  - name: app\n    path: {}\n    timeout: 2s\n    integrity_interval: 1h\n",
        path.display()
    ));
    let pid = warden.pid();
    // The first integrity check (10 s after start) uses a pool thread too: past it, nothing
    // but the scrapes does.
    wait_for(Duration::from_secs(30), "the first integrity check", || {
        let body = scrape(&warden);
        let at = value(
            &body,
            "warden_sqlite_integrity_check_timestamp_seconds",
            &db("app"),
        );
        at.filter(|at| *at > 0.0)
    });
    std::thread::sleep(Duration::from_secs(11));
    let before = thread_ids(pid);
    let body = scrape(&warden);
    assert_eq!(
        value(&body, "warden_sqlite_up", &db("app")),
        Some(1.0),
        "{body}"
    );
    let after = thread_ids(pid);
    let started: Vec<String> = after
        .difference(&before)
        .map(|tid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"));
            format!("{tid} {}", comm.unwrap_or_default().trim())
        })
        .collect();
    assert!(
        started.is_empty(),
        "threads started for the second scrape: {started:?}"
    );
}
