//! The shipped example configs, the run queue against the forecasting system's `runs` table
//! with the seed's alert rules evaluated by a real Prometheus, and promtool/postgres_exporter
//! compatibility with every collector on.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::serve::promtool_check;
use crate::sqlite::{create_tutorial_db, tutorial_config};
use crate::support::anchors::Exporter;
use crate::support::postgres::Postgres;
use crate::support::prometheus::Prometheus;
use crate::support::{self, Warden, require_tool, value, wait_for, warden_bin};

/// The forecasting system's example config (seed 001), shipped in `deploy/examples/`.
const FORECAST_EXAMPLE: &str = include_str!("../../deploy/examples/forecast.yml");

/// The database name the forecasting runbook uses (and the example's `tables:` names).
const FORECAST_DB: &str = "ts_forecast_system";

#[test]
fn example_configs_pass_check_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for example in [
        "deploy/examples/forecast.yml",
        "deploy/examples/tutorial.yml",
        "deploy/examples/backups.yml",
        "deploy/examples/actions.yml",
    ] {
        let output = Command::new(warden_bin())
            .arg("check-config")
            .arg(root.join(example))
            .env_remove("FORECAST_DSN")
            .env_remove("TUTORIAL_DB")
            .env_remove("APP_DSN")
            .env_remove("WARDEN_STATE_DIR")
            .env_remove("WARDEN_LISTEN")
            .env("WARDEN_TOKEN_FILE", root.join("Cargo.toml"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));
    }
}

/// The forecast example pointed at `dsn`, minus `listen`, with the run queue read every second.
fn forecast_config(dsn: &str) -> String {
    let start = FORECAST_EXAMPLE
        .find("${FORECAST_DSN:-")
        .expect("the example reads its DSN from FORECAST_DSN");
    let end = start + FORECAST_EXAMPLE[start..].find('}').unwrap() + 1;
    let text = format!(
        "{}{dsn}{}",
        &FORECAST_EXAMPLE[..start],
        &FORECAST_EXAMPLE[end..]
    );
    let fast = "    interval: 1s\n    timeout: 1s\n";
    let slow = "    interval: 30s\n    timeout: 5s\n";
    assert!(text.contains(slow), "the run queue's interval changed");
    text.replace(slow, fast)
        .lines()
        .filter(|line| !line.starts_with("listen:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The forecasting system's tables, with runs in every status.
fn seed_forecast(pg: &Postgres) {
    pg.create_database(FORECAST_DB);
    pg.psql(
        FORECAST_DB,
        "CREATE TABLE runs (
             run_id int PRIMARY KEY,
             run_name text,
             status text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(),
             start_time timestamptz
         );
         INSERT INTO runs (run_id, run_name, status, created_at, start_time) VALUES
             (1, 'q1', 'scheduled', now() - interval '10 minutes', NULL),
             (2, 'q2', 'scheduled', now() - interval '5 minutes', NULL),
             (3, 'q3', 'scheduled', now() - interval '1 minute', NULL),
             (10, 'long', 'running', now() - interval '3 hours', now() - interval '150 minutes'),
             (11, 'r11', 'running', now(), now() - interval '20 seconds'),
             (12, 'r12', 'running', now(), now() - interval '18 seconds'),
             (13, 'r13', 'running', now(), now() - interval '16 seconds'),
             (14, 'r14', 'running', now(), now() - interval '14 seconds'),
             (15, 'r15', 'running', now(), now() - interval '12 seconds'),
             (16, 'r16', 'running', now(), now() - interval '10 seconds'),
             (17, 'starting', 'running', now(), NULL),
             (20, 'c1', 'completed', now() - interval '1 day', now() - interval '1 day'),
             (21, 'c2', 'completed', now() - interval '1 day', now() - interval '1 day'),
             (22, 'c3', 'completed', now() - interval '1 day', now() - interval '1 day'),
             (23, 'c4', 'completed', now() - interval '1 day', now() - interval '1 day'),
             (30, 'f1', 'failed', now() - interval '1 day', now() - interval '1 day'),
             (31, 'f2', 'failed', now() - interval '1 day', now() - interval '1 day'),
             -- A status the mapping does not know: not counted.
             (40, 'p1', 'paused', now() - interval '1 day', NULL);
         CREATE TABLE system_logs (
             log_id serial PRIMARY KEY,
             created_at timestamptz NOT NULL DEFAULT now(),
             log_level text NOT NULL,
             log_message text,
             run_id int
         );
         INSERT INTO system_logs (created_at, log_level, log_message) VALUES
             (now() - interval '1 hour', 'ERROR', 'CUDA out of memory'),
             (now() - interval '23 hours', 'ERROR', 'could not connect to server'),
             (now() - interval '2 days', 'ERROR', 'too old to count'),
             (now() - interval '1 hour', 'WARNING', 'not an error');",
    );
}

/// Unix seconds of an SQL timestamp expression over `runs`.
fn epoch(pg: &Postgres, sql: &str) -> f64 {
    pg.psql(FORECAST_DB, &format!("SELECT extract(epoch FROM ({sql}))"))
        .parse()
        .unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

#[test]
fn forecast_run_queue_end_to_end_with_the_seed_rules() {
    let pg = Postgres::start();
    seed_forecast(&pg);
    let warden = Warden::start(&forecast_config(&pg.dsn(FORECAST_DB)));
    let scrape = || warden.get("/metrics", &[]).body;
    let queue = |state: &'static str| [("queue", "forecast"), ("state", state)];
    let body = wait_for(
        Duration::from_secs(30),
        "the run queue and the log query",
        || {
            let body = scrape();
            let ran = |q: &str| value(&body, "warden_query_success", &[("query", q)]) == Some(1.0);
            (ran("run_queue/forecast") && ran("forecast_log_errors")).then_some(body)
        },
    );

    // Every state, zero-filled; `paused` is mapped to none.
    for (state, n) in [
        ("queued", 3.0),
        ("running", 8.0),
        ("succeeded", 4.0),
        ("failed", 2.0),
        ("cancelled", 0.0),
    ] {
        assert_eq!(
            value(&body, "warden_run_queue_jobs", &queue(state)),
            Some(n),
            "{state}"
        );
    }
    let oldest_queued = value(
        &body,
        "warden_run_queue_oldest_queued_timestamp_seconds",
        &[("queue", "forecast")],
    )
    .unwrap();
    assert!(close(
        oldest_queued,
        epoch(&pg, "SELECT created_at FROM runs WHERE run_id = 1")
    ));
    let oldest_running = value(
        &body,
        "warden_run_queue_oldest_running_start_timestamp_seconds",
        &[("queue", "forecast")],
    )
    .unwrap();
    assert!(close(
        oldest_running,
        epoch(&pg, "SELECT start_time FROM runs WHERE run_id = 10")
    ));
    // The five longest-running runs only; the one without a start time is not among them.
    let top: BTreeMap<String, f64> = support::samples(&body)
        .into_iter()
        .filter(|(name, _, _)| name == "warden_run_queue_running_start_timestamp_seconds")
        .map(|(_, labels, v)| {
            let id = labels.iter().find(|(k, _)| k == "run_id").unwrap();
            (id.1.clone(), v)
        })
        .collect();
    let expected: BTreeSet<&str> = ["10", "11", "12", "13", "14"].into();
    assert_eq!(
        top.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        expected
    );
    for (id, at) in &top {
        let want = epoch(
            &pg,
            &format!("SELECT start_time FROM runs WHERE run_id = {id}"),
        );
        assert!(close(*at, want), "run {id}: {at} != {want}");
    }
    // Errors of the last 24 hours from system_logs, CRITICAL zero-filled.
    assert_eq!(
        value(&body, "forecast_log_errors_24h", &[("log_level", "ERROR")]),
        Some(2.0)
    );
    assert_eq!(
        value(
            &body,
            "forecast_log_errors_24h",
            &[("log_level", "CRITICAL")]
        ),
        Some(0.0)
    );

    // A cancelled run is counted within the queue's interval.
    pg.psql(
        FORECAST_DB,
        "UPDATE runs SET status = 'cancelled' WHERE run_id = 3",
    );
    wait_for(Duration::from_secs(10), "the cancelled run", || {
        let body = scrape();
        (value(&body, "warden_run_queue_jobs", &queue("cancelled")) == Some(1.0)
            && value(&body, "warden_run_queue_jobs", &queue("queued")) == Some(2.0))
        .then_some(())
    });

    // The seed's rules, evaluated by Prometheus on what it scraped.
    let prometheus = Prometheus::start(&format!(
        "  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        warden.addr
    ));
    let backlog = prometheus.wait_for_data(
        "warden_run_queue_jobs{state=\"queued\"} > 0",
        Duration::from_secs(30),
    );
    assert_eq!(backlog.len(), 1, "{backlog:?}");
    assert_eq!(backlog[0]["metric"]["queue"], "forecast");
    assert_eq!(backlog[0]["value"][1], "2");
    assert!(
        prometheus
            .query("warden_run_queue_jobs{state=\"queued\"} > 50")
            .is_empty(),
        "QueueBacklog's threshold is not reached"
    );
    for (expression, what) in [
        (
            "time() - warden_run_queue_running_start_timestamp_seconds > 60",
            "runs older than a minute",
        ),
        (
            "time() - warden_run_queue_running_start_timestamp_seconds > 7200",
            "LongRunningJob",
        ),
    ] {
        let long = prometheus.wait_for_data(expression, Duration::from_secs(30));
        let ids: Vec<&str> = long
            .iter()
            .map(|s| s["metric"]["run_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["10"], "{what}: {long:?}");
        let age: f64 = long[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert!((9000.0..9100.0).contains(&age), "{what}: run 10 age {age}");
    }
}

/// Family name → (type, label-name sets seen) for samples whose name starts with `prefix`.
fn shape(body: &str, prefix: &str) -> BTreeMap<String, (String, BTreeSet<Vec<String>>)> {
    let types = support::types(body);
    let mut out: BTreeMap<String, (String, BTreeSet<Vec<String>>)> = BTreeMap::new();
    for (name, labels, _) in support::samples(body) {
        if !name.starts_with(prefix) {
            continue;
        }
        let kind = types
            .get(&name)
            .cloned()
            .unwrap_or_else(|| "untyped".to_owned());
        // postgres_exporter 0.11 has `server` on some families; warden on all.
        let mut keys: Vec<String> = labels
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| k != "server")
            .collect();
        keys.sort();
        out.entry(name)
            .or_insert_with(|| (kind, BTreeSet::new()))
            .1
            .insert(keys);
    }
    out
}

/// Families warden emits under postgres_exporter's current names that Debian's
/// postgres_exporter 0.11 names differently or does not emit by default, with the reason.
/// Reported, not failed on; anything else missing from postgres_exporter's output fails.
const KNOWN_NAME_DIFFERENCES: &[(&str, &str)] = &[
    (
        "pg_database_connection_limit",
        "database collector of postgres_exporter 0.13+; 0.11 has only pg_database_size_bytes",
    ),
    (
        "pg_replication_is_replica",
        "replication collector of postgres_exporter 0.12+; absent from 0.11",
    ),
    (
        "pg_replication_lag_seconds",
        "replication collector of postgres_exporter 0.12+; 0.11's queries.yaml calls it pg_replication_lag",
    ),
    (
        "pg_stat_database_active_time_seconds_total",
        "stat_database collector of postgres_exporter 0.15+; absent from 0.11",
    ),
    (
        "pg_stat_user_tables_index_size_bytes",
        "stat_user_tables collector of postgres_exporter 0.12+; absent from 0.11's queries.yaml",
    ),
    (
        "pg_stat_user_tables_table_size_bytes",
        "stat_user_tables collector of postgres_exporter 0.12+; absent from 0.11's queries.yaml",
    ),
];

/// Warden with every collector on, next to node_exporter and postgres_exporter on the same
/// host and cluster.
struct AllCollectors {
    _pg: Postgres,
    _dir: tempfile::TempDir,
    warden: Warden,
    node: Exporter,
    postgres: Exporter,
}

fn all_collectors() -> AllCollectors {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE runs (id int PRIMARY KEY, status text, created_at timestamptz DEFAULT now(), started_at timestamptz);
         INSERT INTO runs VALUES (1, 'scheduled', now(), NULL), (2, 'running', now(), now() - interval '1 hour');
         ANALYZE runs;",
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fastmcp.db");
    drop(create_tutorial_db(&db, "DELETE"));
    let config = format!(
        "postgres:\n  - name: main\n    dsn: {dsn}\n    interval: 1s\n    timeout: 1s\n    size_interval: 1s\n    tables: [app]\n\
         run_queues:\n  - name: jobs\n    target: postgres/main\n    table: runs\n    status_column: status\n    states: {{queued: [scheduled], running: [running]}}\n    queued_since: created_at\n    running_since: started_at\n    id_column: id\n    top_running: 3\n    interval: 1s\n    timeout: 1s\n\
         {tutorial}\n",
        dsn = pg.dsn("app"),
        tutorial = tutorial_config(&db),
    );
    let warden = Warden::start(&config);
    wait_for(Duration::from_secs(30), "every source in warden", || {
        let body = warden.get("/metrics", &[]).body;
        let ok = value(&body, "pg_up", &[]) == Some(1.0)
            && body.contains("\npg_database_size_bytes{")
            && body.contains("\npg_stat_user_tables_n_live_tup{")
            && value(&body, "warden_sqlite_up", &[]) == Some(1.0)
            && value(
                &body,
                "warden_query_success",
                &[("query", "run_queue/jobs")],
            ) == Some(1.0)
            && value(
                &body,
                "warden_query_success",
                &[("query", "tutorial_requests")],
            ) == Some(1.0);
        ok.then_some(())
    });
    let node = Exporter::node();
    let postgres = Exporter::postgres(&pg);
    wait_for(
        Duration::from_secs(20),
        "postgres_exporter's pg_up 1",
        || (value(&postgres.scrape(), "pg_up", &[]) == Some(1.0)).then_some(()),
    );
    AllCollectors {
        _pg: pg,
        _dir: dir,
        warden,
        node,
        postgres,
    }
}

#[test]
fn promtool_reports_nothing_on_warden_beyond_the_anchors_with_all_collectors_on() {
    let promtool = require_tool("promtool", "prometheus");
    let all = all_collectors();
    let ours = all.warden.get("/metrics", &[]).body;
    for family in [
        "node_cpu_seconds_total",
        "pg_stat_database_xact_commit",
        "pg_stat_user_tables_n_live_tup",
        "warden_sqlite_up",
        "warden_run_queue_jobs",
        "tutorial_recent_requests",
    ] {
        assert!(ours.contains(&format!("\n{family}{{")), "missing {family}");
    }
    let accepted: BTreeSet<String> = promtool_check(&promtool, &all.node.scrape())
        .into_iter()
        .chain(promtool_check(&promtool, &all.postgres.scrape()))
        .collect();
    let extra: Vec<String> = promtool_check(&promtool, &ours)
        .into_iter()
        .filter(|p| !accepted.contains(p))
        .collect();
    assert!(
        extra.is_empty(),
        "promtool problems on warden's output that node_exporter and postgres_exporter do not have: {extra:#?}"
    );
}

#[test]
fn pg_families_match_postgres_exporter_names_types_and_labels() {
    let all = all_collectors();
    let ours = shape(&all.warden.get("/metrics", &[]).body, "pg_");
    let theirs = shape(&all.postgres.scrape(), "pg_");
    let known: BTreeMap<&str, &str> = KNOWN_NAME_DIFFERENCES.iter().copied().collect();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for (name, (kind, labels)) in &ours {
        let Some((their_kind, their_labels)) = theirs.get(name) else {
            match known.get(name.as_str()) {
                Some(why) => notes.push(format!("{name}: {why}")),
                None => problems.push(format!(
                    "{name}: emitted by warden, not by postgres_exporter"
                )),
            }
            continue;
        };
        // warden declares postgres_exporter's counters that lack `_total` as untyped, so
        // the sample names stay byte for byte and promtool has nothing to say about them.
        let accepted_kind = kind == their_kind
            || (kind == "untyped" && their_kind == "counter" && !name.ends_with("_total"));
        if !accepted_kind {
            problems.push(format!(
                "{name}: type {kind}, postgres_exporter says {their_kind}"
            ));
        }
        if labels != their_labels {
            problems.push(format!(
                "{name}: labels {labels:?} (besides server), postgres_exporter has {their_labels:?}"
            ));
        }
    }
    eprintln!(
        "pg_* families warden emits under names Debian's postgres_exporter does not:\n{}",
        notes.join("\n")
    );
    let missing: Vec<&String> = theirs
        .keys()
        .filter(|n| {
            // warden exports an allow-list of settings by design.
            !n.starts_with("pg_exporter_")
                && !n.starts_with("pg_settings_")
                && !ours.contains_key(*n)
        })
        .collect();
    eprintln!("postgres_exporter families warden does not emit: {missing:#?}");
    assert!(
        problems.is_empty(),
        "differences from postgres_exporter:\n{}",
        problems.join("\n")
    );
}
