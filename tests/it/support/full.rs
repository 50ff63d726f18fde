//! warden with every source on, for the tests that check the monitoring kit against its
//! output (the rules' metric names, the dashboards' queries): host and process (on by
//! default), PostgreSQL with per-table statistics and an inactive replication slot, a run queue
//! with a job in each state, the tutorial SQLite database held open by its application (WAL)
//! with its integrity check and request-log queries, a scheduled SQLite backup job with restore
//! drills and an offsite copy (`rclone serve s3`), and two actions behind routes (the action and webhook families).

use std::time::Duration;

use super::postgres::Postgres;
use super::s3::{KEY_ID, S3Server, SECRET};
use super::{Warden, value, wait_for};
use crate::sqlite::{create_tutorial_db, tutorial_config};

/// The alert name whose route runs the `note` action (`/bin/true`).
pub const NOTE_ALERT: &str = "FullWardenNote";

/// The running warden and everything it watches; all of it goes when dropped.
pub struct FullWarden {
    _pg: Postgres,
    /// The application's connection: it keeps the WAL database's `-shm` file, so warden may
    /// open the file without creating one.
    _app: rusqlite::Connection,
    _dir: tempfile::TempDir,
    /// The backup job's offsite copy destination.
    _s3: S3Server,
    /// The warden serving every source.
    pub warden: Warden,
}

impl FullWarden {
    /// Starts it and waits until every source has reported at least once: PostgreSQL's
    /// statistics, the run queue, SQLite's first integrity check (10 s after start-up), the
    /// queries, and the backup job's start-up run with its restore drill.
    pub fn start() -> FullWarden {
        let pg = Postgres::start();
        pg.create_database("app");
        pg.psql(
            "app",
            "CREATE TABLE runs (id int PRIMARY KEY, status text, created_at timestamptz DEFAULT now(), started_at timestamptz);
             INSERT INTO runs VALUES (1, 'scheduled', now(), NULL), (2, 'running', now(), now() - interval '1 hour'),
                                     (3, 'completed', now(), now()), (4, 'failed', now(), now());
             ANALYZE runs;
             SELECT pg_create_physical_replication_slot('warden_full_test');",
        );
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Server::start();
        std::fs::write(dir.path().join("s3-key"), KEY_ID).unwrap();
        std::fs::write(dir.path().join("s3-secret"), SECRET).unwrap();
        let db = dir.path().join("fastmcp.db");
        let app = create_tutorial_db(&db, "WAL");
        let config = format!(
            "postgres:\n  - name: main\n    dsn: {dsn}\n    interval: 1s\n    timeout: 1s\n    size_interval: 1s\n    tables: [app]\n\
             run_queues:\n  - name: jobs\n    target: postgres/main\n    table: runs\n    status_column: status\n    \
             states: {{queued: [scheduled], running: [running], succeeded: [completed], failed: [failed]}}\n    \
             queued_since: created_at\n    running_since: started_at\n    id_column: id\n    top_running: 3\n    interval: 1s\n    timeout: 1s\n\
             backups:\n  - name: tutorial-db\n    kind: sqlite\n    source: sqlite/tutorial\n    destination: {dest}\n    \
             schedule: \"0 3 * * *\"\n    verify: {{required_tables: [users], restore_test: true}}\n    \
             copies:\n      - {{name: offsite, s3: {{endpoint: '{s3}', bucket: backups, path_style: true, \
             access_key_id_file: {key}, secret_access_key_file: {secret}}}}}\n\
             actions:\n  - {{name: backup-tutorial-db, backup: tutorial-db}}\n  - {{name: note, command: [/bin/true]}}\n\
             routes:\n  - {{match: {{alertname: BackupStale, backup: tutorial-db}}, actions: [backup-tutorial-db]}}\n  \
             - {{match: {{alertname: {NOTE_ALERT}}}, actions: [note]}}\n\
             {tutorial}\n",
            dsn = pg.dsn("app"),
            dest = dir.path().join("backups").display(),
            s3 = s3.endpoint(),
            key = dir.path().join("s3-key").display(),
            secret = dir.path().join("s3-secret").display(),
            tutorial = tutorial_config(&db),
        );
        let warden = Warden::start(&config);
        wait_for(Duration::from_secs(30), "every source in warden", || {
            let body = warden.get("/metrics", &[]).body;
            let positive = |name: &str| value(&body, name, &[]).is_some_and(|v| v > 0.0);
            let ok = value(&body, "pg_up", &[]) == Some(1.0)
                && body.contains("\npg_database_size_bytes{")
                && body.contains("\npg_stat_user_tables_n_live_tup{")
                && body.contains("\npg_replication_slots_active{")
                && value(&body, "warden_sqlite_up", &[]) == Some(1.0)
                && body.contains("\nwarden_sqlite_integrity_ok{")
                && body.contains("\nwarden_run_queue_running_start_timestamp_seconds{")
                && body.contains("\nwarden_run_queue_oldest_queued_timestamp_seconds{")
                && value(
                    &body,
                    "warden_query_success",
                    &[("query", "run_queue/jobs")],
                ) == Some(1.0)
                && value(
                    &body,
                    "warden_query_success",
                    &[("query", "tutorial_requests")],
                ) == Some(1.0)
                && positive("warden_backup_last_verified_timestamp_seconds")
                && positive("warden_backup_restore_test_last_success_timestamp_seconds")
                && positive("warden_backup_copy_last_success_timestamp_seconds")
                && body.contains("\nwarden_action_runs_total{");
            ok.then_some(())
        });
        FullWarden {
            _pg: pg,
            _app: app,
            _dir: dir,
            _s3: s3,
            warden,
        }
    }
}
