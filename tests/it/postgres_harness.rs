//! The ephemeral PostgreSQL fixture itself: data in, data out, sessions, stop and restart.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::postgres::{PSQL_APPLICATION_NAME, Postgres};
use crate::support::{Warden, value, wait_for};

#[test]
fn cluster_serves_sql_holds_sessions_and_restarts_on_the_same_port() {
    let began = Instant::now();
    let postgres = Postgres::start();
    eprintln!("start took {:?}", began.elapsed());
    let port = postgres.port();
    assert_eq!(
        postgres.dsn("app"),
        format!("postgres://postgres@127.0.0.1:{port}/app")
    );

    postgres.create_database("app");
    postgres.psql(
        "app",
        "CREATE TABLE things (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO things VALUES (1, 'one'), (2, 'two'), (3, 'three');",
    );
    let rows = "1|one\n2|two\n3|three";
    assert_eq!(
        postgres.psql("app", "SELECT * FROM things ORDER BY id"),
        rows
    );
    assert_eq!(postgres.psql("app", "SHOW port"), port.to_string());
    assert_eq!(postgres.psql("app", "SELECT current_user"), "postgres");

    let session = postgres.spawn_psql_session("app", &["BEGIN;", "SELECT count(*) FROM things;"]);
    let state_query = format!(
        "SELECT state FROM pg_stat_activity WHERE application_name = '{}'",
        session.application_name()
    );
    wait_for(
        Duration::from_secs(10),
        "the session to be idle in transaction",
        || (postgres.psql("app", &state_query) == "idle in transaction").then_some(()),
    );
    assert_eq!(session.output().trim(), "3");
    let others = postgres.psql(
        "app",
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{PSQL_APPLICATION_NAME}'"
        ),
    );
    assert_eq!(others, "1", "only this query's own connection");
    session.send("COMMIT;");
    wait_for(Duration::from_secs(10), "the session to be idle", || {
        (postgres.psql("app", &state_query) == "idle").then_some(())
    });
    drop(session);
    wait_for(Duration::from_secs(10), "the session to end", || {
        postgres.psql("app", &state_query).is_empty().then_some(())
    });

    postgres.stop();
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(refused.is_err(), "still listening after stop");
    let began = Instant::now();
    postgres.restart();
    eprintln!("restart took {:?}", began.elapsed());
    assert_eq!(postgres.port(), port);
    assert_eq!(postgres.psql("app", "SHOW port"), port.to_string());
    assert_eq!(
        postgres.psql("app", "SELECT * FROM things ORDER BY id"),
        rows
    );
    assert!(
        postgres
            .log()
            .contains("database system is ready to accept connections")
    );
}

/// Every `pg_*` family warden exports from Debian's PostgreSQL 15, with the major version that
/// first has its data (13 = every supported version; 14 added the session statistics of
/// pg_stat_database). Run against each version of the PostgreSQL matrix (scripts/pg-matrix.sh),
/// all must be present from their version on. pg_replication_slots_* needs a slot, which this
/// cluster has none of, so it is not listed.
const FAMILIES: &[(&str, u32)] = &[
    ("pg_database_connection_limit", 13),
    ("pg_database_size_bytes", 13),
    ("pg_locks_count", 13),
    ("pg_postmaster_start_time_seconds", 13),
    ("pg_replication_is_replica", 13),
    ("pg_replication_lag_seconds", 13),
    ("pg_settings_autovacuum", 13),
    ("pg_settings_checkpoint_timeout_seconds", 13),
    ("pg_settings_effective_cache_size_bytes", 13),
    ("pg_settings_maintenance_work_mem_bytes", 13),
    ("pg_settings_max_connections", 13),
    ("pg_settings_max_locks_per_transaction", 13),
    ("pg_settings_max_parallel_workers", 13),
    ("pg_settings_max_prepared_transactions", 13),
    ("pg_settings_max_replication_slots", 13),
    ("pg_settings_max_wal_senders", 13),
    ("pg_settings_max_wal_size_bytes", 13),
    ("pg_settings_max_worker_processes", 13),
    ("pg_settings_shared_buffers_bytes", 13),
    ("pg_settings_statement_timeout_seconds", 13),
    ("pg_settings_superuser_reserved_connections", 13),
    ("pg_settings_work_mem_bytes", 13),
    ("pg_stat_activity_count", 13),
    ("pg_stat_activity_max_tx_duration", 13),
    ("pg_stat_archiver_archived_count", 13),
    ("pg_stat_archiver_failed_count", 13),
    ("pg_stat_archiver_last_archive_age", 13),
    ("pg_stat_bgwriter_buffers_alloc_total", 13),
    ("pg_stat_bgwriter_buffers_backend_fsync_total", 13),
    ("pg_stat_bgwriter_buffers_backend_total", 13),
    ("pg_stat_bgwriter_buffers_checkpoint_total", 13),
    ("pg_stat_bgwriter_buffers_clean_total", 13),
    ("pg_stat_bgwriter_checkpoint_sync_time_total", 13),
    ("pg_stat_bgwriter_checkpoint_write_time_total", 13),
    ("pg_stat_bgwriter_checkpoints_req_total", 13),
    ("pg_stat_bgwriter_checkpoints_timed_total", 13),
    ("pg_stat_bgwriter_maxwritten_clean_total", 13),
    ("pg_stat_bgwriter_stats_reset_total", 13),
    ("pg_stat_database_active_time_seconds_total", 14),
    ("pg_stat_database_blk_read_time", 13),
    ("pg_stat_database_blk_write_time", 13),
    ("pg_stat_database_blks_hit", 13),
    ("pg_stat_database_blks_read", 13),
    ("pg_stat_database_checksum_failures", 13),
    ("pg_stat_database_checksum_last_failure", 13),
    ("pg_stat_database_conflicts", 13),
    ("pg_stat_database_deadlocks", 13),
    ("pg_stat_database_idle_in_transaction_time", 14),
    ("pg_stat_database_numbackends", 13),
    ("pg_stat_database_session_time", 14),
    ("pg_stat_database_sessions", 14),
    ("pg_stat_database_sessions_abandoned", 14),
    ("pg_stat_database_sessions_fatal", 14),
    ("pg_stat_database_sessions_killed", 14),
    ("pg_stat_database_stats_reset", 13),
    ("pg_stat_database_temp_bytes", 13),
    ("pg_stat_database_temp_files", 13),
    ("pg_stat_database_tup_deleted", 13),
    ("pg_stat_database_tup_fetched", 13),
    ("pg_stat_database_tup_inserted", 13),
    ("pg_stat_database_tup_returned", 13),
    ("pg_stat_database_tup_updated", 13),
    ("pg_stat_database_xact_commit", 13),
    ("pg_stat_database_xact_rollback", 13),
    ("pg_stat_user_tables_analyze_count", 13),
    ("pg_stat_user_tables_autoanalyze_count", 13),
    ("pg_stat_user_tables_autovacuum_count", 13),
    ("pg_stat_user_tables_idx_scan", 13),
    ("pg_stat_user_tables_idx_tup_fetch", 13),
    ("pg_stat_user_tables_index_size_bytes", 13),
    ("pg_stat_user_tables_last_analyze", 13),
    ("pg_stat_user_tables_last_autoanalyze", 13),
    ("pg_stat_user_tables_last_autovacuum", 13),
    ("pg_stat_user_tables_last_vacuum", 13),
    ("pg_stat_user_tables_n_dead_tup", 13),
    ("pg_stat_user_tables_n_live_tup", 13),
    ("pg_stat_user_tables_n_mod_since_analyze", 13),
    ("pg_stat_user_tables_n_tup_del", 13),
    ("pg_stat_user_tables_n_tup_hot_upd", 13),
    ("pg_stat_user_tables_n_tup_ins", 13),
    ("pg_stat_user_tables_n_tup_upd", 13),
    ("pg_stat_user_tables_seq_scan", 13),
    ("pg_stat_user_tables_seq_tup_read", 13),
    ("pg_stat_user_tables_table_size_bytes", 13),
    ("pg_stat_user_tables_vacuum_count", 13),
    ("pg_static", 13),
    ("pg_up", 13),
];

#[test]
fn every_family_of_postgresql_15_is_exported_by_this_server_version() {
    let postgres = Postgres::start();
    postgres.create_database("app");
    postgres.psql(
        "app",
        "CREATE TABLE runs (id int PRIMARY KEY); INSERT INTO runs VALUES (1); ANALYZE runs;",
    );
    let version: u32 = postgres
        .psql("app", "SHOW server_version_num")
        .parse()
        .unwrap();
    let major = version / 10_000;
    let warden = Warden::start(&format!(
        "postgres:\n  - name: main\n    dsn: {}\n    interval: 1s\n    size_interval: 1s\n    tables: [app]\n",
        postgres.dsn("app")
    ));
    let body = wait_for(Duration::from_secs(20), "pg_up 1, sizes and tables", || {
        let body = warden.get("/metrics", &[]).body;
        let ready = value(&body, "pg_up", &[("server", "main")]) == Some(1.0)
            && body.contains("\npg_database_size_bytes{")
            && body.contains("\npg_stat_user_tables_n_live_tup{");
        ready.then_some(body)
    });
    let exported: BTreeSet<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with("pg_"))
        .collect();
    eprintln!(
        "PostgreSQL {version}: {} pg_* families: {exported:?}",
        exported.len()
    );
    let missing: Vec<&str> = FAMILIES
        .iter()
        .filter(|(name, since)| major >= *since && !exported.contains(name))
        .map(|(name, _)| *name)
        .collect();
    assert!(
        missing.is_empty(),
        "PostgreSQL {version} lacks {} of the families PostgreSQL 15 has: {missing:?}",
        missing.len()
    );
    // A table larger than the bulk-write ring is written out by the backend that fills it:
    // buffers_backend counts it on every version (from 17 read from pg_stat_io).
    let before = value(&body, "pg_stat_bgwriter_buffers_backend_total", &[]).unwrap();
    postgres.psql(
        "app",
        "CREATE TABLE bulk AS SELECT i, repeat('x', 100) AS pad FROM generate_series(1, 300000) i",
    );
    let after = wait_for(Duration::from_secs(20), "buffers_backend to grow", || {
        let body = warden.get("/metrics", &[]).body;
        let now = value(&body, "pg_stat_bgwriter_buffers_backend_total", &[])?;
        (now > before).then_some(now)
    });
    eprintln!("PostgreSQL {version}: buffers_backend {before} -> {after}");
}
