use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::collect::sql::Cell;
use crate::collect::sqlite::SqliteExecutor;
use crate::config::{IntegrityCheck, RunQueueConfig, RunState, SqliteConfig, Target};

fn metric(labels: &[&str], fill: &[(&str, &[&str])]) -> QueryMetric {
    QueryMetric {
        name: "app_requests".into(),
        help: "Requests.".into(),
        kind: MetricType::Gauge,
        value: "n".into(),
        labels: labels.iter().map(|l| (*l).to_owned()).collect(),
        const_labels: vec![("app".into(), "tutorial".into())],
        fill: fill
            .iter()
            .map(|(l, v)| ((*l).to_owned(), v.iter().map(|x| (*x).to_owned()).collect()))
            .collect(),
    }
}

fn rows(columns: &[&str], data: Vec<Vec<Cell>>) -> Rows {
    Rows {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows: data,
    }
}

fn text(t: &str) -> Cell {
    Cell::Text(t.to_owned())
}

#[test]
fn rows_become_samples_with_zero_fill_and_const_labels() {
    let result = rows(&["transport", "n"], vec![vec![text("http"), Cell::Int(5)]]);
    let family = to_family(
        &metric(&["transport"], &[("transport", &["http", "ws"])]),
        &result,
    )
    .unwrap();
    assert_eq!(
        family.value(&[("transport", "http"), ("app", "tutorial")]),
        Some(5.0)
    );
    assert_eq!(
        family.value(&[("transport", "ws"), ("app", "tutorial")]),
        Some(0.0),
        "zero-filled"
    );
    assert_eq!(family.samples.len(), 2);
}

#[test]
fn rows_that_do_not_fit_are_errors_that_say_why() {
    let m = metric(&["transport"], &[]);
    let cases = [
        (
            rows(&["transport", "n"], vec![vec![text("http"), Cell::Null]]),
            "row 1: column `n` is NULL",
        ),
        (
            rows(&["transport", "n"], vec![vec![text("http"), text("many")]]),
            "\"many\", which is not a number",
        ),
        (
            rows(
                &["transport", "n"],
                vec![
                    vec![text("http"), Cell::Int(1)],
                    vec![text("http"), Cell::Int(2)],
                ],
            ),
            "row 2: the label set [\"http\"] appears twice",
        ),
        (
            rows(&["kind", "n"], vec![]),
            "column `transport` is not in the result (columns: kind, n)",
        ),
    ];
    for (result, want) in cases {
        let err = to_family(&m, &result).unwrap_err();
        assert!(err.contains(want), "{err:?} should contain {want:?}");
    }
}

#[test]
fn timestamp_metrics_parse_times_and_counters_keep_their_type() {
    let mut m = metric(&[], &[]);
    m.name = "app_last_error_timestamp_seconds".into();
    let family = to_family(
        &m,
        &rows(&["n"], vec![vec![text("2026-11-30 07:00:00+00")]]),
    )
    .unwrap();
    assert_eq!(family.samples[0].value, 1_796_022_000.0);
    m.name = "app_errors_total".into();
    m.kind = MetricType::Counter;
    let family = to_family(&m, &rows(&["n"], vec![vec![Cell::Int(3)]])).unwrap();
    assert_eq!(family.kind, Kind::Counter);
}

/// A real SQLite file with the forecasting system's `runs` table.
fn runs_db() -> (tempfile::TempDir, SqliteConfig) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT, created_at TEXT, start_time TEXT);
         INSERT INTO runs VALUES
           ('r1', 'scheduled', '2026-11-30 06:00:00', NULL),
           ('r2', 'scheduled', '2026-11-30 06:30:00', NULL),
           ('r3', 'running',   '2026-11-30 05:00:00', '2026-11-30 05:10:00'),
           ('r4', 'running',   '2026-11-30 05:00:00', '2026-11-30 05:20:00'),
           ('r5', 'running',   '2026-11-30 05:00:00', '2026-11-30 05:30:00'),
           ('r6', 'completed', '2026-11-30 04:00:00', '2026-11-30 04:10:00'),
           ('r7', 'paused',    '2026-11-30 04:00:00', NULL);",
    )
    .unwrap();
    let config = SqliteConfig {
        name: "app".into(),
        path,
        timeout: Duration::from_secs(5),
        integrity_check: IntegrityCheck::Quick,
        integrity_interval: Duration::from_secs(3600),
        row_counts: Vec::new(),
    };
    (dir, config)
}

fn queue_config(top_running: usize) -> RunQueueConfig {
    RunQueueConfig {
        name: "forecast".into(),
        target: Target::Sqlite("app".into()),
        from: "runs".into(),
        status_column: "status".into(),
        states: BTreeMap::from([
            (RunState::Queued, vec!["scheduled".into()]),
            (RunState::Running, vec!["running".into()]),
            (RunState::Succeeded, vec!["completed".into()]),
            (RunState::Failed, vec!["failed".into()]),
            (RunState::Cancelled, vec!["cancelled".into()]),
        ]),
        queued_since: "created_at".into(),
        running_since: "start_time".into(),
        id_column: Some("run_id".into()),
        top_running,
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn run_queue_on_a_real_sqlite_table() {
    let (_dir, db) = runs_db();
    let executor: Arc<dyn Executor> = SqliteExecutor::new(&db);
    let families = RunQueue::boxed(queue_config(2))
        .run(&*executor)
        .await
        .unwrap();
    let get = |name: &str, labels: &[(&str, &str)]| {
        families
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value(labels))
    };
    let jobs = |state| {
        get(
            "warden_run_queue_jobs",
            &[("queue", "forecast"), ("state", state)],
        )
    };
    assert_eq!(jobs("queued"), Some(2.0));
    assert_eq!(jobs("running"), Some(3.0));
    assert_eq!(jobs("succeeded"), Some(1.0));
    assert_eq!(jobs("failed"), Some(0.0), "zero-filled");
    assert_eq!(jobs("cancelled"), Some(0.0), "zero-filled");
    // 'paused' maps to no state and is not counted anywhere.
    let oldest_queued = get(
        "warden_run_queue_oldest_queued_timestamp_seconds",
        &[("queue", "forecast")],
    );
    assert_eq!(oldest_queued, Some(1_796_018_400.0)); // 2026-11-30 06:00:00 UTC
    let oldest_running = get(
        "warden_run_queue_oldest_running_start_timestamp_seconds",
        &[("queue", "forecast")],
    );
    assert_eq!(oldest_running, Some(1_796_015_400.0)); // 05:10
    let top = families
        .iter()
        .find(|f| f.name == "warden_run_queue_running_start_timestamp_seconds")
        .unwrap();
    assert_eq!(top.samples.len(), 2, "bounded by top_running");
    assert_eq!(top.value(&[("run_id", "r3")]), Some(1_796_015_400.0));
    assert_eq!(top.value(&[("run_id", "r4")]), Some(1_796_016_000.0));
    assert_eq!(top.value(&[("run_id", "r5")]), None);
}

#[tokio::test]
async fn an_empty_queue_has_counts_but_no_oldest_timestamps() {
    let (_dir, db) = runs_db();
    rusqlite::Connection::open(&db.path)
        .unwrap()
        .execute("DELETE FROM runs", [])
        .unwrap();
    let executor: Arc<dyn Executor> = SqliteExecutor::new(&db);
    let families = RunQueue::boxed(queue_config(0))
        .run(&*executor)
        .await
        .unwrap();
    let jobs = families
        .iter()
        .find(|f| f.name == "warden_run_queue_jobs")
        .unwrap();
    assert_eq!(jobs.samples.len(), 5);
    assert!(jobs.samples.iter().all(|s| s.value == 0.0));
    let oldest = families
        .iter()
        .find(|f| f.name == "warden_run_queue_oldest_queued_timestamp_seconds")
        .unwrap();
    assert!(
        oldest.samples.is_empty(),
        "no queued job: no series, so age rules cannot misfire"
    );
}

#[tokio::test]
async fn runner_reports_failures_and_drops_stale_metrics() {
    let (_dir, db) = runs_db();
    let executor: Arc<dyn Executor> = SqliteExecutor::new(&db);
    let good = QueryConfig {
        name: "by_status".into(),
        target: Target::Sqlite("app".into()),
        sql: "SELECT status, count(*) AS n FROM runs GROUP BY status".into(),
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        metrics: vec![QueryMetric {
            name: "app_runs".into(),
            help: "Runs.".into(),
            kind: MetricType::Gauge,
            value: "n".into(),
            labels: vec!["status".into()],
            const_labels: Vec::new(),
            fill: Vec::new(),
        }],
    };
    let runner = Runner::new(UserQuery::boxed(good.clone()), Arc::clone(&executor));
    let collector = QueriesCollector::new(vec![Arc::clone(&runner)]);
    let before = collector.collect().await.unwrap();
    let errors = before
        .iter()
        .find(|f| f.name == "warden_query_errors_total")
        .unwrap();
    assert_eq!(
        errors.value(&[("query", "by_status")]),
        Some(0.0),
        "present from start-up"
    );
    assert!(
        before
            .iter()
            .find(|f| f.name == "warden_query_success")
            .unwrap()
            .samples
            .is_empty()
    );

    runner.run_once().await;
    let after = collector.collect().await.unwrap();
    let runs = after.iter().find(|f| f.name == "app_runs").unwrap();
    assert_eq!(runs.value(&[("status", "running")]), Some(3.0));
    let success = after
        .iter()
        .find(|f| f.name == "warden_query_success")
        .unwrap();
    assert_eq!(success.value(&[("query", "by_status")]), Some(1.0));

    // The table goes away: the run fails, is counted, and the old values are not served.
    rusqlite::Connection::open(&db.path)
        .unwrap()
        .execute("DROP TABLE runs", [])
        .unwrap();
    runner.run_once().await;
    let failed = collector.collect().await.unwrap();
    assert!(failed.iter().all(|f| f.name != "app_runs"));
    let get = |name: &str| {
        failed
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value(&[("query", "by_status")]))
    };
    assert_eq!(get("warden_query_success"), Some(0.0));
    assert_eq!(get("warden_query_errors_total"), Some(1.0));
}

#[test]
fn too_many_rows_fail_instead_of_flooding_prometheus() {
    let data = (0..=MAX_SERIES_PER_METRIC)
        .map(|i| vec![text(&format!("user{i}")), Cell::Int(1)])
        .collect();
    let err = to_family(
        &metric(&["transport"], &[]),
        &rows(&["transport", "n"], data),
    )
    .unwrap_err();
    assert!(err.contains("at most 10000 series"), "{err}");
}

/// The error of one run-queue run over a `runs` table filled by `insert`.
async fn run_queue_error(insert: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE runs (run_id TEXT, status TEXT, created_at TEXT, start_time TEXT); {insert}"
        ))
        .unwrap();
    let (_keep, mut db) = runs_db();
    db.path = path;
    let executor: Arc<dyn Executor> = SqliteExecutor::new(&db);
    RunQueue::boxed(queue_config(5))
        .run(&*executor)
        .await
        .unwrap_err()
        .to_string()
}

#[tokio::test]
async fn a_run_id_listed_twice_fails_the_run_instead_of_the_scrape() {
    let err = run_queue_error(
        "INSERT INTO runs VALUES ('r1', 'running', '2026-11-30 05:00:00', '2026-11-30 05:10:00'),
                                ('r1', 'running', '2026-11-30 05:00:00', '2026-11-30 05:20:00');",
    )
    .await;
    assert!(err.contains("run id `r1` appears twice"), "{err}");
}

#[test]
fn rows_shorter_than_the_columns_fail_the_metric_without_a_panic() {
    // A result set of no columns followed by rows of another shape (once `SELECT FROM t;
    // SELECT 1` on PostgreSQL), or any driver result with fewer cells than columns.
    for (labels, data) in [
        (&[][..], vec![vec![]]),
        (&["transport"][..], vec![vec![text("http")]]),
        (&["transport"][..], vec![vec![]]),
    ] {
        let err = to_family(&metric(labels, &[]), &rows(&["transport", "n"], data)).unwrap_err();
        assert!(err.contains("row 1 has"), "{err}");
    }
}

#[test]
fn a_label_value_past_the_limit_fails_the_metric_naming_its_column() {
    let long = "x".repeat(MAX_LABEL_VALUE_BYTES + 1);
    let fits = "x".repeat(MAX_LABEL_VALUE_BYTES);
    let result = |value: &str| rows(&["transport", "n"], vec![vec![text(value), Cell::Int(1)]]);
    let err = to_family(&metric(&["transport"], &[]), &result(&long)).unwrap_err();
    assert!(
        err.starts_with("metric app_requests: row 1: column `transport` holds a label value of 1025 bytes; at most 1024"),
        "{err}"
    );
    assert!(to_family(&metric(&["transport"], &[]), &result(&fits)).is_ok());
}

/// An executor answering every statement with one fixed result: a shape no real database
/// returns any more, to check the run queue survives it.
struct Fixed(Rows);

impl Executor for Fixed {
    fn query(&self, _sql: String, _timeout: Duration) -> crate::collect::sql::QueryFuture<'_> {
        let rows = self.0.clone();
        Box::pin(async move { Ok(rows) })
    }
}

#[tokio::test]
async fn a_run_queue_result_with_short_rows_fails_the_run_without_a_panic() {
    let executor = Fixed(rows(&["status", "n"], vec![vec![text("running")]]));
    let err = RunQueue::boxed(queue_config(5))
        .run(&executor)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a row of the counts has 1 values, expected 2"),
        "{err}"
    );
}

#[tokio::test]
async fn a_run_id_past_the_label_limit_fails_the_run() {
    let err = run_queue_error(
        "INSERT INTO runs VALUES (printf('%.2000c', 'r'), 'running', '2026-11-30 05:00:00', '2026-11-30 05:10:00');",
    )
    .await;
    assert!(
        err.contains("a run id of 2000 bytes; at most 1024"),
        "{err}"
    );
}
