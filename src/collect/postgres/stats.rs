//! The statistics queries and their mapping to postgres_exporter's families.
//!
//! Every query reads cluster-wide views through the one connection, so every database is
//! covered without connecting to each. Counters postgres_exporter exports without `_total` keep
//! their names and are declared untyped (see `collect::family`). Each family carries postgres_
//! exporter's labels plus `server`. Views that changed across versions (PostgreSQL 14 added
//! `active_time`; 17 moved the checkpoint columns to `pg_stat_checkpointer` and the backend
//! writes to `pg_stat_io`) are read according to `server_version_num`; scripts/pg-matrix.sh
//! runs the tests against PostgreSQL 13 to 18.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::run_statement;
use crate::collect::Family;
use crate::collect::sql::{Cell, QueryError, Rows};
use crate::config::PostgresConfig;

/// The states `pg_stat_activity_count` is zero-filled for (postgres_exporter's list).
const ACTIVITY_STATES: [&str; 6] = [
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
];

/// The lock modes `pg_locks_count` is zero-filled for (postgres_exporter's list).
const LOCK_MODES: [&str; 9] = [
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
];

/// The settings exported as `pg_settings_*`: the ones dashboards and capacity alerts use.
/// All ~350 settings would be half the output (postgres_exporter's are 49 % of its series).
const SETTINGS: [&str; 16] = [
    "max_connections",
    "superuser_reserved_connections",
    "max_locks_per_transaction",
    "max_prepared_transactions",
    "max_worker_processes",
    "max_parallel_workers",
    "max_wal_senders",
    "max_replication_slots",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_wal_size",
    "checkpoint_timeout",
    "autovacuum",
    "statement_timeout",
];

/// `pg_database_size` reads every file of every database: it gets this many times the timeout.
pub(super) const SIZE_TIMEOUT_FACTOR: u32 = 4;

/// The result of one refresh.
pub(super) struct Stats {
    /// Whether the server answered at all.
    pub connected: bool,
    /// Why it did not, when it did not.
    pub error: Option<String>,
    /// The families read.
    pub families: Vec<Family>,
}

/// Runs one query, logging a failure (a permission or version problem costs only its family).
async fn query(
    client: &Client,
    tls: &MakeRustlsConnect,
    sql: &str,
    timeout: Duration,
    server: &str,
    what: &str,
) -> Option<Rows> {
    match run_statement(client, tls, sql, timeout).await {
        Ok(rows) => Some(rows),
        Err(err) => {
            tracing::warn!(server, family = what, error = %crate::collect::ErrorChain(&err), "PostgreSQL statistics query failed.");
            None
        }
    }
}

/// Runs one statement without a limit of its own (the caller bounds the batch), logging a
/// failure: a permission or version problem costs only its own family.
async fn plain(client: &Client, sql: &str, server: &str, what: &str) -> Option<Rows> {
    match client.simple_query(sql).await {
        Ok(messages) => Some(super::rows(messages)),
        Err(err) => {
            tracing::warn!(server, family = what, error = %crate::collect::ErrorChain(&super::error::PgError::from(err)), "PostgreSQL statistics query failed.");
            None
        }
    }
}

/// A cell as a number: text numbers, booleans `t`/`f`; NULL and anything else as `None`.
fn number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(v) => Some(*v as f64),
        Cell::Float(v) => Some(*v),
        Cell::Text(t) => match t.as_str() {
            "t" | "on" | "true" => Some(1.0),
            "f" | "off" | "false" => Some(0.0),
            text => text.parse().ok(),
        },
        Cell::Null => None,
    }
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Text(t) => t.clone(),
        Cell::Int(v) => v.to_string(),
        Cell::Float(v) => v.to_string(),
        Cell::Null => String::new(),
    }
}

/// Reads every statistic; `connected` is false only when the first query cannot run.
pub(super) async fn collect(
    client: &Client,
    tls: &MakeRustlsConnect,
    config: &PostgresConfig,
    timeout: Duration,
) -> Stats {
    let server = config.name.as_str();
    let head = run_statement(
        client,
        tls,
        "SELECT current_setting('server_version_num')::int, current_setting('server_version'), \
         extract(epoch from pg_postmaster_start_time())",
        timeout,
    )
    .await;
    let head = match head {
        Ok(rows) if !rows.rows.is_empty() => rows,
        Ok(_) => {
            return Stats {
                connected: false,
                error: Some("the version query returned no row".to_owned()),
                families: Vec::new(),
            };
        }
        Err(err @ (QueryError::Postgres(_) | QueryError::Database(_))) => {
            tracing::warn!(server, error = %crate::collect::ErrorChain(&err), "PostgreSQL does not answer the version query.");
            return Stats {
                connected: false,
                error: Some(crate::collect::ErrorChain(&err).to_string()),
                families: Vec::new(),
            };
        }
        Err(err) => {
            tracing::warn!(server, error = %crate::collect::ErrorChain(&err), "PostgreSQL does not answer.");
            return Stats {
                connected: false,
                error: Some(crate::collect::ErrorChain(&err).to_string()),
                families: Vec::new(),
            };
        }
    };
    let row = &head.rows[0];
    let version = number(&row[0]).unwrap_or(0.0) as u32;
    let label = || ("server", server.to_owned());

    let mut families = Vec::new();
    let mut start = Family::gauge(
        "pg_postmaster_start_time_seconds",
        "Time at which postmaster started.",
    );
    if let Some(started) = number(&row[2]) {
        start.push([label()], started);
    }
    // Untyped, as postgres_exporter declares it.
    let mut info = Family::new(
        "pg_static",
        "Version string as reported by postgres.",
        crate::collect::Kind::Untyped,
    );
    let version_text = text(&row[1]);
    let short = version_text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();
    info.push(
        [("version", version_text), ("short_version", short), label()],
        1.0,
    );
    families.extend([start, info]);

    // The rest are sent together (tokio-postgres pipelines statements issued at once on one
    // connection): one round trip and one wake-up instead of one per view, each still its own
    // statement, so a view the role may not read costs only its own family. They share one
    // deadline and, past it, one cancel request: per-statement timers would count the wait
    // behind a slow view against every view after it and send a cancel for each.
    let stat_database_sql = stat_database_sql(version);
    let bgwriter_sql = bgwriter_sql(version);
    let (activity_sql, locks_sql) = (activity_sql(), locks_sql());
    let settings_sql = format!(
        "SELECT name, setting, COALESCE(unit, ''), vartype FROM pg_settings WHERE name IN ({})",
        SETTINGS.map(|s| format!("'{s}'")).join(", ")
    );
    let tables = async {
        if config.tables {
            plain(client, TABLES_SQL, server, "pg_stat_user_tables").await
        } else {
            None
        }
    };
    let (
        database,
        activity_rows,
        lock_rows,
        setting_rows,
        bgwriter_rows,
        archiver_rows,
        replication_rows,
        slot_rows,
        table_rows,
    ) = match tokio::time::timeout(timeout, async {
        tokio::join!(
            plain(client, &stat_database_sql, server, "pg_stat_database"),
            plain(client, &activity_sql, server, "pg_stat_activity"),
            plain(client, &locks_sql, server, "pg_locks"),
            plain(client, &settings_sql, server, "pg_settings"),
            plain(client, &bgwriter_sql, server, "pg_stat_bgwriter"),
            plain(client, ARCHIVER_SQL, server, "pg_stat_archiver"),
            plain(client, REPLICATION_SQL, server, "pg_replication"),
            plain(client, SLOTS_SQL, server, "pg_replication_slots"),
            tables,
        )
    })
    .await
    {
        Ok(results) => results,
        Err(_) => {
            if let Err(err) = client.cancel_token().cancel_query(tls.clone()).await {
                tracing::warn!(server, error = %crate::collect::ErrorChain(&super::error::PgError::from(err)), "Cannot send a cancel request to PostgreSQL.");
            }
            tracing::warn!(server, timeout = ?timeout, "PostgreSQL statistics did not arrive in time; cancelled.");
            return Stats {
                connected: true,
                error: None,
                families,
            };
        }
    };
    if let Some(rows) = database {
        families.extend(stat_database(&rows, server, version));
    }
    if let Some(rows) = activity_rows {
        families.extend(activity(&rows, server));
    }
    if let Some(rows) = lock_rows {
        families.push(locks(&rows, server));
    }
    if let Some(rows) = setting_rows {
        families.extend(settings(&rows, server));
    }
    if let Some(rows) = bgwriter_rows {
        families.extend(bgwriter(&rows, server));
    }
    if let Some(rows) = archiver_rows {
        families.extend(archiver(&rows, server));
    }
    if let Some(rows) = replication_rows {
        families.extend(replication(&rows, server));
    }
    if let Some(rows) = slot_rows {
        families.extend(slots(&rows, server));
    }
    if let Some(rows) = table_rows {
        families.extend(user_tables(&rows, server, &config.database));
    }
    Stats {
        connected: true,
        error: None,
        families,
    }
}

/// `pg_database_size_bytes` and `pg_database_connection_limit`, refreshed on their own interval.
pub(super) async fn sizes(
    client: &Client,
    tls: &MakeRustlsConnect,
    config: &PostgresConfig,
) -> Option<Vec<Family>> {
    let server = config.name.as_str();
    // A database being dropped meanwhile makes pg_database_size fail; the CASE skips databases
    // that do not accept connections (template0) the way postgres_exporter does not.
    let sql =
        "SELECT datname, pg_database_size(oid), datconnlimit FROM pg_database WHERE datallowconn";
    // Sizes read every file of every database: give them the session's full statement timeout.
    let rows = query(
        client,
        tls,
        sql,
        config.timeout * SIZE_TIMEOUT_FACTOR,
        server,
        "pg_database_size",
    )
    .await?;
    let mut size = Family::gauge("pg_database_size_bytes", "Disk space used by the database");
    let mut limit = Family::gauge(
        "pg_database_connection_limit",
        "Connection limit set for the database",
    );
    for row in &rows.rows {
        let datname = text(&row[0]);
        if let Some(bytes) = number(&row[1]) {
            size.push(
                [("datname", datname.clone()), ("server", server.to_owned())],
                bytes,
            );
        }
        if let Some(n) = number(&row[2]) {
            limit.push([("datname", datname), ("server", server.to_owned())], n);
        }
    }
    Some(vec![size, limit])
}

/// pg_stat_database columns: name, help, counter (untyped without `_total`) or gauge.
const STAT_DATABASE: [(&str, &str, bool); 17] = [
    (
        "numbackends",
        "Number of backends currently connected to this database.",
        false,
    ),
    (
        "xact_commit",
        "Number of transactions in this database that have been committed",
        true,
    ),
    (
        "xact_rollback",
        "Number of transactions in this database that have been rolled back",
        true,
    ),
    (
        "blks_read",
        "Number of disk blocks read in this database",
        true,
    ),
    (
        "blks_hit",
        "Number of times disk blocks were found already in the buffer cache",
        true,
    ),
    (
        "tup_returned",
        "Number of rows returned by queries in this database",
        true,
    ),
    (
        "tup_fetched",
        "Number of rows fetched by queries in this database",
        true,
    ),
    (
        "tup_inserted",
        "Number of rows inserted by queries in this database",
        true,
    ),
    (
        "tup_updated",
        "Number of rows updated by queries in this database",
        true,
    ),
    (
        "tup_deleted",
        "Number of rows deleted by queries in this database",
        true,
    ),
    (
        "conflicts",
        "Number of queries canceled due to conflicts with recovery in this database.",
        true,
    ),
    (
        "temp_files",
        "Number of temporary files created by queries in this database.",
        true,
    ),
    (
        "temp_bytes",
        "Total amount of data written to temporary files by queries in this database.",
        true,
    ),
    (
        "deadlocks",
        "Number of deadlocks detected in this database",
        true,
    ),
    (
        "blk_read_time",
        "Time spent reading data file blocks by backends in this database, in milliseconds",
        true,
    ),
    (
        "blk_write_time",
        "Time spent writing data file blocks by backends in this database, in milliseconds",
        true,
    ),
    (
        "stats_reset",
        "Time at which these statistics were last reset",
        true,
    ),
];

/// One exported column of pg_stat_database: the SQL expression, the family name, its help, and
/// whether it counts (untyped when the name lacks `_total`) or is a gauge.
struct Column {
    sql: String,
    name: String,
    help: &'static str,
    counter: bool,
}

/// The columns this server version has: the base set, checksums, and from PostgreSQL 14 the
/// session statistics (named as postgres_exporter names them).
fn stat_database_columns(version: u32) -> Vec<Column> {
    let mut columns: Vec<Column> = STAT_DATABASE
        .iter()
        .map(|(column, help, counter)| Column {
            sql: if *column == "stats_reset" {
                "extract(epoch from stats_reset)".to_owned()
            } else {
                (*column).to_owned()
            },
            name: format!("pg_stat_database_{column}"),
            help,
            counter: *counter,
        })
        .collect();
    let mut add = |sql: &str, name: &str, help: &'static str, counter: bool| {
        columns.push(Column {
            sql: sql.to_owned(),
            name: name.to_owned(),
            help,
            counter,
        })
    };
    add(
        "checksum_failures",
        "pg_stat_database_checksum_failures",
        "Number of data page checksum failures detected in this database",
        true,
    );
    add(
        "extract(epoch from checksum_last_failure)",
        "pg_stat_database_checksum_last_failure",
        "Time at which the last data page checksum failure was detected in this database",
        true,
    );
    if version >= 140_000 {
        add(
            "active_time / 1000.0",
            "pg_stat_database_active_time_seconds_total",
            "Time spent executing SQL statements in this database, in seconds",
            true,
        );
        add(
            "session_time",
            "pg_stat_database_session_time",
            "Time spent by database sessions in this database, in milliseconds",
            true,
        );
        add(
            "idle_in_transaction_time",
            "pg_stat_database_idle_in_transaction_time",
            "Time spent idling while in a transaction in this database, in milliseconds",
            true,
        );
        add(
            "sessions",
            "pg_stat_database_sessions",
            "Total number of sessions established to this database",
            true,
        );
        add(
            "sessions_abandoned",
            "pg_stat_database_sessions_abandoned",
            "Number of database sessions to this database that were terminated because connection to the client was lost",
            true,
        );
        add(
            "sessions_fatal",
            "pg_stat_database_sessions_fatal",
            "Number of database sessions to this database that were terminated by fatal errors",
            true,
        );
        add(
            "sessions_killed",
            "pg_stat_database_sessions_killed",
            "Number of database sessions to this database that were terminated by operator intervention",
            true,
        );
    }
    columns
}

fn stat_database_sql(version: u32) -> String {
    let columns: Vec<String> = stat_database_columns(version)
        .into_iter()
        .map(|c| c.sql)
        .collect();
    format!(
        "SELECT datid, datname, {} FROM pg_stat_database WHERE datname IS NOT NULL",
        columns.join(", ")
    )
}

fn stat_database(rows: &Rows, server: &str, version: u32) -> Vec<Family> {
    let mut families: Vec<Family> = stat_database_columns(version)
        .into_iter()
        .map(|c| {
            if c.counter {
                Family::counter(c.name, c.help)
            } else {
                Family::gauge(c.name, c.help)
            }
        })
        .collect();
    for row in &rows.rows {
        let labels = || {
            [
                ("datid", text(&row[0])),
                ("datname", text(&row[1])),
                ("server", server.to_owned()),
            ]
        };
        for (i, family) in families.iter_mut().enumerate() {
            // Timestamps are NULL until the event first happens; postgres_exporter reports 0.
            family.push(labels(), row.get(i + 2).and_then(number).unwrap_or(0.0));
        }
    }
    families
}

/// Every database × state, zero-filled, as postgres_exporter.
fn activity_sql() -> String {
    format!(
        "SELECT d.datname, s.state, COALESCE(a.count, 0), COALESCE(a.max_tx_duration, 0) \
         FROM pg_database d CROSS JOIN (VALUES {}) AS s(state) \
         LEFT JOIN (SELECT datname, state, count(*) AS count, \
                           max(extract(epoch from now() - xact_start))::float8 AS max_tx_duration \
                    FROM pg_stat_activity WHERE datname IS NOT NULL GROUP BY datname, state) a \
           ON a.datname = d.datname AND a.state = s.state \
         ORDER BY 1, 2",
        values_list(&ACTIVITY_STATES)
    )
}

fn activity(rows: &Rows, server: &str) -> Vec<Family> {
    let mut count = Family::gauge(
        "pg_stat_activity_count",
        "number of connections in this state",
    );
    let mut duration = Family::gauge(
        "pg_stat_activity_max_tx_duration",
        "max duration in seconds any active transaction has been running",
    );
    for row in &rows.rows {
        let labels = || {
            [
                ("datname", text(&row[0])),
                ("state", text(&row[1])),
                ("server", server.to_owned()),
            ]
        };
        count.push(labels(), number(&row[2]).unwrap_or(0.0));
        duration.push(labels(), number(&row[3]).unwrap_or(0.0));
    }
    vec![count, duration]
}

/// Every database × lock mode, zero-filled, as postgres_exporter.
fn locks_sql() -> String {
    format!(
        "SELECT d.datname, m.mode, COALESCE(l.count, 0) \
         FROM pg_database d CROSS JOIN (VALUES {}) AS m(mode) \
         LEFT JOIN (SELECT database, lower(mode) AS mode, count(*) AS count FROM pg_locks \
                    WHERE database IS NOT NULL GROUP BY database, lower(mode)) l \
           ON l.database = d.oid AND l.mode = m.mode \
         ORDER BY 1, 2",
        values_list(&LOCK_MODES)
    )
}

/// `('a'), ('b'), …`: a one-column VALUES list of fixed identifiers-like strings.
fn values_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("('{i}')"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn locks(rows: &Rows, server: &str) -> Family {
    let mut count = Family::gauge("pg_locks_count", "Number of locks");
    for row in &rows.rows {
        count.push(
            [
                ("datname", text(&row[0])),
                ("mode", text(&row[1])),
                ("server", server.to_owned()),
            ],
            number(&row[2]).unwrap_or(0.0),
        );
    }
    count
}

/// `pg_settings_<name>[_bytes|_seconds]`, converted to base units as postgres_exporter does.
fn settings(rows: &Rows, server: &str) -> Vec<Family> {
    let mut out = Vec::new();
    for row in &rows.rows {
        let (name, setting, unit, vartype) = (text(&row[0]), &row[1], text(&row[2]), text(&row[3]));
        let Some(raw) = number(setting) else {
            continue;
        };
        if vartype != "bool" && vartype != "integer" && vartype != "real" {
            continue;
        }
        let (suffix, scale) = unit_scale(&unit);
        let mut family = Family::gauge(
            format!("pg_settings_{name}{suffix}"),
            format!(
                "Server Parameter: {name}{}",
                if unit.is_empty() {
                    String::new()
                } else {
                    format!(" [Units converted to {}.]", suffix.trim_start_matches('_'))
                }
            ),
        );
        family.push([("server", server.to_owned())], raw * scale);
        out.push(family);
    }
    out
}

/// The name suffix and factor that turn a `pg_settings.unit` into base units.
fn unit_scale(unit: &str) -> (&'static str, f64) {
    match unit {
        "B" => ("_bytes", 1.0),
        "kB" => ("_bytes", 1024.0),
        "8kB" => ("_bytes", 8192.0),
        "16kB" => ("_bytes", 16384.0),
        "32kB" => ("_bytes", 32768.0),
        "MB" => ("_bytes", 1024.0 * 1024.0),
        "16MB" => ("_bytes", 16.0 * 1024.0 * 1024.0),
        "32MB" => ("_bytes", 32.0 * 1024.0 * 1024.0),
        "64MB" => ("_bytes", 64.0 * 1024.0 * 1024.0),
        "GB" => ("_bytes", 1024.0 * 1024.0 * 1024.0),
        "ms" => ("_seconds", 0.001),
        "s" => ("_seconds", 1.0),
        "min" => ("_seconds", 60.0),
        "h" => ("_seconds", 3600.0),
        "d" => ("_seconds", 86400.0),
        _ => ("", 1.0),
    }
}

/// Before PostgreSQL 17 everything is in pg_stat_bgwriter; from 17 the checkpoint columns are in
/// pg_stat_checkpointer (read under the old names so dashboards keep working) and the backend
/// columns are gone from it: their data is in pg_stat_io, whose writes and fsyncs of relation
/// blocks by every process but the background writer and the checkpointer are what
/// buffers_backend and buffers_backend_fsync counted (PostgreSQL 17's release notes call them
/// redundant with it). Only the `relation` object: temporary relations use local buffers, which
/// buffers_backend never counted, and 18's `wal` rows are not buffer writes.
fn bgwriter_sql(version: u32) -> String {
    if version >= 170_000 {
        "SELECT c.num_timed, c.num_requested, c.write_time, c.sync_time, c.buffers_written, \
                b.buffers_clean, b.maxwritten_clean, io.writes, io.fsyncs, b.buffers_alloc, \
                extract(epoch from b.stats_reset) \
         FROM pg_stat_bgwriter b, pg_stat_checkpointer c, \
              (SELECT sum(writes) AS writes, sum(fsyncs) AS fsyncs FROM pg_stat_io \
               WHERE object = 'relation' \
                 AND backend_type NOT IN ('background writer', 'checkpointer')) io"
            .to_owned()
    } else {
        "SELECT checkpoints_timed, checkpoints_req, checkpoint_write_time, checkpoint_sync_time, \
                buffers_checkpoint, buffers_clean, maxwritten_clean, buffers_backend, buffers_backend_fsync, \
                buffers_alloc, extract(epoch from stats_reset) FROM pg_stat_bgwriter"
            .to_owned()
    }
}

const BGWRITER: [(&str, &str); 11] = [
    (
        "checkpoints_timed",
        "Number of scheduled checkpoints that have been performed",
    ),
    (
        "checkpoints_req",
        "Number of requested checkpoints that have been performed",
    ),
    (
        "checkpoint_write_time",
        "Total amount of time that has been spent in the portion of checkpoint processing where files are written to disk, in milliseconds",
    ),
    (
        "checkpoint_sync_time",
        "Total amount of time that has been spent in the portion of checkpoint processing where files are synchronized to disk, in milliseconds",
    ),
    (
        "buffers_checkpoint",
        "Number of buffers written during checkpoints",
    ),
    (
        "buffers_clean",
        "Number of buffers written by the background writer",
    ),
    (
        "maxwritten_clean",
        "Number of times the background writer stopped a cleaning scan because it had written too many buffers",
    ),
    (
        "buffers_backend",
        "Number of buffers written directly by a backend",
    ),
    (
        "buffers_backend_fsync",
        "Number of times a backend had to execute its own fsync call (normally the background writer handles those even when the backend does its own write)",
    ),
    ("buffers_alloc", "Number of buffers allocated"),
    (
        "stats_reset",
        "Time at which these statistics were last reset",
    ),
];

fn bgwriter(rows: &Rows, server: &str) -> Vec<Family> {
    let Some(row) = rows.rows.first() else {
        return Vec::new();
    };
    BGWRITER
        .iter()
        .enumerate()
        .filter_map(|(i, (column, help))| {
            let value = number(row.get(i)?)?;
            let mut family = Family::counter(format!("pg_stat_bgwriter_{column}_total"), *help);
            family.push([("server", server.to_owned())], value);
            Some(family)
        })
        .collect()
}

const ARCHIVER_SQL: &str = "SELECT archived_count, failed_count, \
     extract(epoch from now() - last_archived_time) FROM pg_stat_archiver";

fn archiver(rows: &Rows, server: &str) -> Vec<Family> {
    let Some(row) = rows.rows.first() else {
        return Vec::new();
    };
    let label = || [("server", server.to_owned())];
    let mut archived = Family::counter(
        "pg_stat_archiver_archived_count",
        "Number of WAL files that have been successfully archived",
    );
    archived.push(label(), number(&row[0]).unwrap_or(0.0));
    let mut failed = Family::counter(
        "pg_stat_archiver_failed_count",
        "Number of failed attempts for archiving WAL files",
    );
    failed.push(label(), number(&row[1]).unwrap_or(0.0));
    let mut age = Family::gauge(
        "pg_stat_archiver_last_archive_age",
        "Time in seconds since last WAL segment was successfully archived",
    );
    // Never archived: postgres_exporter reports 0 rather than leaving the series out.
    age.push(label(), number(&row[2]).unwrap_or(0.0));
    vec![archived, failed, age]
}

const REPLICATION_SQL: &str = "SELECT \
     CASE WHEN NOT pg_is_in_recovery() THEN 0 \
          WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
          ELSE GREATEST(0, extract(epoch from now() - pg_last_xact_replay_timestamp())) END, \
     CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END";

fn replication(rows: &Rows, server: &str) -> Vec<Family> {
    let Some(row) = rows.rows.first() else {
        return Vec::new();
    };
    let label = || [("server", server.to_owned())];
    let mut lag = Family::gauge(
        "pg_replication_lag_seconds",
        "Replication lag behind master in seconds",
    );
    lag.push(label(), number(&row[0]).unwrap_or(0.0));
    let mut replica = Family::gauge(
        "pg_replication_is_replica",
        "Indicates if the server is a replica",
    );
    replica.push(label(), number(&row[1]).unwrap_or(0.0));
    vec![lag, replica]
}

const SLOTS_SQL: &str = "SELECT slot_name, COALESCE(database, ''), active::int, \
     CASE WHEN pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), restart_lsn) \
          ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) END \
     FROM pg_replication_slots";

fn slots(rows: &Rows, server: &str) -> Vec<Family> {
    let mut active = Family::gauge(
        "pg_replication_slots_active",
        "Flag indicating if the slot is active",
    );
    let mut diff = Family::gauge(
        "pg_replication_slots_pg_wal_lsn_diff",
        "Replication lag in bytes",
    );
    for row in &rows.rows {
        let labels = || {
            [
                ("slot_name", text(&row[0])),
                ("database", text(&row[1])),
                ("server", server.to_owned()),
            ]
        };
        active.push(labels(), number(&row[2]).unwrap_or(0.0));
        if let Some(bytes) = number(&row[3]) {
            diff.push(labels(), bytes);
        }
    }
    vec![active, diff]
}

const TABLES_SQL: &str = "SELECT schemaname, relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), \
     COALESCE(idx_tup_fetch, 0), n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, n_live_tup, n_dead_tup, \
     n_mod_since_analyze, COALESCE(extract(epoch from last_vacuum), 0), \
     COALESCE(extract(epoch from last_autovacuum), 0), COALESCE(extract(epoch from last_analyze), 0), \
     COALESCE(extract(epoch from last_autoanalyze), 0), vacuum_count, autovacuum_count, analyze_count, \
     autoanalyze_count, pg_indexes_size(relid), pg_table_size(relid) FROM pg_stat_user_tables";

/// pg_stat_user_tables columns after schemaname and relname: name, help, counter.
const TABLE_COLUMNS: [(&str, &str, bool); 21] = [
    (
        "seq_scan",
        "Number of sequential scans initiated on this table",
        true,
    ),
    (
        "seq_tup_read",
        "Number of live rows fetched by sequential scans",
        true,
    ),
    (
        "idx_scan",
        "Number of index scans initiated on this table",
        true,
    ),
    (
        "idx_tup_fetch",
        "Number of live rows fetched by index scans",
        true,
    ),
    ("n_tup_ins", "Number of rows inserted", true),
    ("n_tup_upd", "Number of rows updated", true),
    ("n_tup_del", "Number of rows deleted", true),
    (
        "n_tup_hot_upd",
        "Number of rows HOT updated (i.e., with no separate index update required)",
        true,
    ),
    ("n_live_tup", "Estimated number of live rows", false),
    ("n_dead_tup", "Estimated number of dead rows", false),
    (
        "n_mod_since_analyze",
        "Estimated number of rows changed since last analyze",
        false,
    ),
    (
        "last_vacuum",
        "Last time at which this table was manually vacuumed (not counting VACUUM FULL)",
        false,
    ),
    (
        "last_autovacuum",
        "Last time at which this table was vacuumed by the autovacuum daemon",
        false,
    ),
    (
        "last_analyze",
        "Last time at which this table was manually analyzed",
        false,
    ),
    (
        "last_autoanalyze",
        "Last time at which this table was analyzed by the autovacuum daemon",
        false,
    ),
    (
        "vacuum_count",
        "Number of times this table has been manually vacuumed (not counting VACUUM FULL)",
        true,
    ),
    (
        "autovacuum_count",
        "Number of times this table has been vacuumed by the autovacuum daemon",
        true,
    ),
    (
        "analyze_count",
        "Number of times this table has been manually analyzed",
        true,
    ),
    (
        "autoanalyze_count",
        "Number of times this table has been analyzed by the autovacuum daemon",
        true,
    ),
    (
        "index_size_bytes",
        "Total disk space used by indexes on this table, in bytes",
        false,
    ),
    (
        "table_size_bytes",
        "Total disk space used by this table, in bytes",
        false,
    ),
];

fn user_tables(rows: &Rows, server: &str, datname: &str) -> Vec<Family> {
    let mut families: Vec<Family> = TABLE_COLUMNS
        .iter()
        .map(|(column, help, counter)| {
            let name = format!("pg_stat_user_tables_{column}");
            if *counter {
                Family::counter(name, *help)
            } else {
                Family::gauge(name, *help)
            }
        })
        .collect();
    for row in &rows.rows {
        let labels = || {
            [
                ("datname", datname.to_owned()),
                ("schemaname", text(&row[0])),
                ("relname", text(&row[1])),
                ("server", server.to_owned()),
            ]
        };
        for (i, family) in families.iter_mut().enumerate() {
            family.push(labels(), row.get(i + 2).and_then(number).unwrap_or(0.0));
        }
    }
    families
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(columns: usize, data: &[&[Option<&str>]]) -> Rows {
        Rows {
            columns: (0..columns).map(|i| format!("c{i}")).collect(),
            rows: data
                .iter()
                .map(|r| {
                    r.iter()
                        .map(|c| c.map_or(Cell::Null, |t| Cell::Text(t.to_owned())))
                        .collect()
                })
                .collect(),
        }
    }

    #[test]
    fn settings_convert_units_like_postgres_exporter() {
        let data = rows(
            4,
            &[
                &[
                    Some("shared_buffers"),
                    Some("16384"),
                    Some("8kB"),
                    Some("integer"),
                ],
                &[
                    Some("checkpoint_timeout"),
                    Some("300"),
                    Some("s"),
                    Some("integer"),
                ],
                &[
                    Some("statement_timeout"),
                    Some("0"),
                    Some("ms"),
                    Some("integer"),
                ],
                &[Some("autovacuum"), Some("on"), Some(""), Some("bool")],
                &[
                    Some("max_connections"),
                    Some("100"),
                    Some(""),
                    Some("integer"),
                ],
            ],
        );
        let families = settings(&data, "main");
        let get = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.value(&[("server", "main")]))
        };
        assert_eq!(get("pg_settings_shared_buffers_bytes"), Some(134_217_728.0));
        assert_eq!(get("pg_settings_checkpoint_timeout_seconds"), Some(300.0));
        assert_eq!(get("pg_settings_statement_timeout_seconds"), Some(0.0));
        assert_eq!(get("pg_settings_autovacuum"), Some(1.0));
        assert_eq!(get("pg_settings_max_connections"), Some(100.0));
    }

    #[test]
    fn stat_database_maps_columns_in_order_and_nulls_to_zero() {
        let columns = stat_database_columns(150_000);
        let mut row: Vec<Option<&str>> = vec![Some("5"), Some("app")];
        row.extend(columns.iter().map(|c| match c.name.as_str() {
            "pg_stat_database_stats_reset" => None,
            "pg_stat_database_active_time_seconds_total" => Some("1.5"),
            _ => Some("7"),
        }));
        let families = stat_database(&rows(row.len(), &[&row]), "main", 150_000);
        let labels = [("datid", "5"), ("datname", "app"), ("server", "main")];
        let get = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.value(&labels))
        };
        assert_eq!(get("pg_stat_database_xact_commit"), Some(7.0));
        assert_eq!(get("pg_stat_database_sessions_killed"), Some(7.0));
        assert_eq!(get("pg_stat_database_stats_reset"), Some(0.0));
        assert_eq!(get("pg_stat_database_active_time_seconds_total"), Some(1.5));
        let commit = families
            .iter()
            .find(|f| f.name == "pg_stat_database_xact_commit")
            .unwrap();
        assert_eq!(
            commit.kind,
            crate::collect::Kind::Untyped,
            "postgres_exporter's name has no _total"
        );
        let pg13 = stat_database_columns(130_000);
        assert!(pg13.iter().all(|c| c.name != "pg_stat_database_sessions"));
        assert!(stat_database_sql(130_000).contains("checksum_failures"));
    }

    #[test]
    fn bgwriter_skips_columns_the_version_lacks() {
        let data = rows(
            11,
            &[&[
                Some("1"),
                Some("2"),
                Some("3"),
                Some("4"),
                Some("5"),
                Some("6"),
                Some("7"),
                None,
                None,
                Some("10"),
                Some("11"),
            ]],
        );
        let families = bgwriter(&data, "main");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert!(names.contains(&"pg_stat_bgwriter_buffers_clean_total"));
        assert!(!names.contains(&"pg_stat_bgwriter_buffers_backend_total"));
        assert!(bgwriter_sql(170_000).contains("pg_stat_checkpointer"));
        assert!(!bgwriter_sql(160_000).contains("pg_stat_checkpointer"));
    }
}
