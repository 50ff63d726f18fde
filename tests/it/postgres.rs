//! The PostgreSQL collector against a real, throwaway cluster.

use std::time::{Duration, Instant};

use crate::support::postgres::Postgres;
use crate::support::{Warden, strip_ansi, value, wait_for};

fn warden_for(pg: &Postgres, extra: &str) -> Warden {
    Warden::start(&format!(
        "postgres:\n  - name: main\n    dsn: {}\n    interval: 1s\n    timeout: 2s\n    tables: [app]\n{extra}",
        pg.dsn("app")
    ))
}

fn scrape(warden: &Warden) -> String {
    warden.get("/metrics", &[]).body
}

#[test]
fn exports_postgres_exporter_families_with_a_server_label() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql("app", "CREATE TABLE runs (id int primary key, status text); INSERT INTO runs VALUES (1, 'running');");
    let warden = warden_for(&pg, "");
    // Sizes are refreshed right after the first statistics, on their own interval.
    let body = wait_for(
        Duration::from_secs(20),
        "pg_up 1 and database sizes",
        || {
            let body = scrape(&warden);
            let up = value(&body, "pg_up", &[("server", "main")]) == Some(1.0);
            (up && body.contains("\npg_database_size_bytes{")).then_some(body)
        },
    );
    for family in [
        "pg_postmaster_start_time_seconds",
        "pg_stat_database_xact_commit",
        "pg_stat_database_numbackends",
        "pg_stat_activity_count",
        "pg_stat_activity_max_tx_duration",
        "pg_locks_count",
        "pg_settings_max_connections",
        "pg_stat_bgwriter_buffers_alloc_total",
        "pg_stat_archiver_archived_count",
        "pg_replication_is_replica",
        "pg_database_size_bytes",
        "pg_stat_user_tables_n_live_tup",
    ] {
        assert!(body.contains(&format!("\n{family}{{")), "missing {family}");
    }
    assert_eq!(
        value(
            &body,
            "pg_stat_activity_count",
            &[
                ("datname", "app"),
                ("state", "disabled"),
                ("server", "main")
            ]
        ),
        Some(0.0),
        "zero-filled"
    );
    assert_eq!(
        value(
            &body,
            "pg_locks_count",
            &[
                ("datname", "postgres"),
                ("mode", "sireadlock"),
                ("server", "main")
            ]
        ),
        Some(0.0),
        "zero-filled"
    );
    assert!(value(&body, "pg_database_size_bytes", &[("datname", "app")]).unwrap() > 1e6);
    // One backend connection held by warden.
    let warden_backends = pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden'",
    );
    assert_eq!(warden_backends, "1");
}

#[test]
fn transactions_and_idle_sessions_show_up() {
    let pg = Postgres::start();
    pg.create_database("app");
    let warden = warden_for(&pg, "");
    let commits = |body: &str| {
        value(body, "pg_stat_database_xact_commit", &[("datname", "app")]).unwrap_or(0.0)
    };
    let before = wait_for(Duration::from_secs(20), "first stats", || {
        let body = scrape(&warden);
        value(&body, "pg_up", &[])
            .filter(|v| *v == 1.0)
            .map(|_| commits(&body))
    });
    for i in 0..5 {
        pg.psql(
            "app",
            &format!("CREATE TABLE IF NOT EXISTS t (i int); INSERT INTO t VALUES ({i});"),
        );
    }
    let _session = pg.spawn_psql_session("app", &["BEGIN;", "SELECT 1;"]);
    wait_for(
        Duration::from_secs(20),
        "commits and an idle-in-transaction session",
        || {
            let body = scrape(&warden);
            let idle = value(
                &body,
                "pg_stat_activity_count",
                &[("datname", "app"), ("state", "idle in transaction")],
            );
            (commits(&body) >= before + 5.0 && idle == Some(1.0)).then_some(())
        },
    );
}

#[test]
fn stopping_and_restarting_the_cluster() {
    let pg = Postgres::start();
    pg.create_database("app");
    let warden = warden_for(&pg, "");
    wait_for(Duration::from_secs(20), "pg_up 1", || {
        (value(&scrape(&warden), "pg_up", &[]) == Some(1.0)).then_some(())
    });
    pg.stop();
    wait_for(Duration::from_secs(10), "pg_up 0", || {
        (value(&scrape(&warden), "pg_up", &[]) == Some(0.0)).then_some(())
    });
    // The log names the server, where it was, and why the session ended (the server's
    // shutdown notice with its SQLSTATE), then why reconnecting fails.
    let address = format!("127.0.0.1:{}", pg.port());
    let closed = wait_for(
        Duration::from_secs(10),
        "the closed connection logged",
        || {
            let stderr = strip_ansi(&warden.stderr());
            let line = stderr
                .lines()
                .find(|l| l.contains("PostgreSQL connection closed."))?
                .to_owned();
            stderr
                .contains("Connection refused (os error 111)")
                .then_some((line, stderr))
        },
    );
    let (line, stderr) = closed;
    assert!(line.contains("server=main"), "{line}");
    assert!(line.contains(&address), "{line}");
    assert!(
        line.contains("FATAL 57P01: terminating connection due to administrator command"),
        "{line}"
    );
    let refused = stderr
        .lines()
        .find(|l| l.contains("Cannot connect to PostgreSQL.") && l.contains("Connection refused"))
        .unwrap();
    assert!(
        refused.contains(&format!(
            "cannot connect to postgres/main at {address} (database app, user postgres): \
             error connecting to server: Connection refused (os error 111)"
        )),
        "{refused}"
    );
    // While down, scrapes answer at once (a liveness bound, not a benchmark).
    for _ in 0..5 {
        let started = Instant::now();
        let body = scrape(&warden);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(value(&body, "pg_up", &[("server", "main")]), Some(0.0));
        assert!(
            !body.contains("pg_stat_database_xact_commit"),
            "no stale statistics while down"
        );
    }
    pg.restart();
    wait_for(
        Duration::from_secs(40),
        "pg_up back to 1 without restarting warden",
        || (value(&scrape(&warden), "pg_up", &[]) == Some(1.0)).then_some(()),
    );
}

#[test]
fn a_query_past_its_timeout_is_cancelled_on_the_server() {
    let pg = Postgres::start();
    pg.create_database("app");
    let warden = warden_for(
        &pg,
        "queries:\n  - name: slow\n    target: postgres/main\n    sql: SELECT pg_sleep(30) AS n\n    interval: 2s\n    timeout: 1s\n    metrics:\n      - {name: app_slow, value: n}\n",
    );
    wait_for(Duration::from_secs(20), "the slow query to fail", || {
        let body = scrape(&warden);
        (value(&body, "warden_query_success", &[("query", "slow")]) == Some(0.0)).then_some(())
    });
    let sleeping = || {
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden' AND state = 'active' AND query LIKE '%pg_sleep%'",
        )
    };
    // Between runs no pg_sleep is left running on the server: it was cancelled, not abandoned.
    wait_for(Duration::from_secs(10), "no pg_sleep left running", || {
        (sleeping() == "0").then_some(())
    });
    assert!(
        strip_ansi(&warden.stderr()).contains("cancelled after the 1s timeout"),
        "{}",
        strip_ansi(&warden.stderr())
    );
    let body = scrape(&warden);
    assert!(value(&body, "warden_query_errors_total", &[("query", "slow")]).unwrap() >= 1.0);
    // The statistics still come through the same connection. Each refresh may queue behind a
    // run of the slow query until its cancellation lands, so on a loaded machine one refresh
    // can miss its own timeout: wait for the next good one rather than judge a single scrape.
    wait_for(
        Duration::from_secs(15),
        "pg_up 1 on the same connection",
        || (value(&scrape(&warden), "pg_up", &[]) == Some(1.0)).then_some(()),
    );
}

#[test]
fn metrics_command_waits_for_the_first_refresh() {
    let pg = Postgres::start();
    pg.create_database("app");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("w.yml");
    std::fs::write(
        &config,
        format!(
            "postgres:\n  - {{name: main, dsn: '{}', timeout: 2s}}\nqueries:\n  - name: one\n    target: postgres/main\n    sql: SELECT 1 AS n\n    metrics: [{{name: app_one, value: n}}]\n",
            pg.dsn("app")
        ),
    )
    .unwrap();
    let output = std::process::Command::new(crate::support::warden_bin())
        .args(["metrics", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let body = String::from_utf8(output.stdout).unwrap();
    assert_eq!(
        value(&body, "pg_up", &[("server", "main")]),
        Some(1.0),
        "{body}"
    );
    assert!(body.contains("\npg_stat_database_xact_commit{"));
    assert_eq!(value(&body, "app_one", &[]), Some(1.0));
    assert_eq!(
        value(&body, "warden_query_success", &[("query", "one")]),
        Some(1.0)
    );
}

/// A `queries:` entry on postgres/main running every second, with one metric of column `v`
/// (and labels, if any).
fn query(name: &str, sql: &str, labels: &str) -> String {
    format!(
        "  - name: {name}\n    target: postgres/main\n    sql: {sql:?}\n    interval: 1s\n    timeout: 1s\n    metrics:\n      - {{name: app_{name}, value: v, labels: [{labels}]}}\n"
    )
}

#[test]
fn user_sql_is_one_read_only_query_and_leaves_nothing_on_the_session() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE t (x int); CREATE SEQUENCE seq;
         CREATE FUNCTION make_temp() RETURNS int LANGUAGE plpgsql AS
           $$BEGIN CREATE TEMP TABLE IF NOT EXISTS escaped (x int); RETURN 1; END$$;",
    );
    // Each way out of a read-only query; none may write or leave state on the shared session.
    let escapes = [
        (
            "rw",
            "BEGIN READ WRITE; CREATE TABLE pwned(x int); COMMIT; SELECT 1 AS v",
        ),
        ("multi", "SELECT 1 AS v; SELECT 2 AS v"),
        ("nocols", "SELECT FROM t; SELECT 1 AS v"),
        ("commit", "COMMIT"),
        ("role", "SET ROLE pg_monitor"),
        ("auth", "SET SESSION AUTHORIZATION pg_monitor"),
        ("timeout", "SET statement_timeout = 0"),
        ("temp", "CREATE TEMP TABLE escaped (x int)"),
        ("listen", "LISTEN somewhere"),
        (
            "cte",
            "WITH w AS (INSERT INTO t VALUES (1) RETURNING x) SELECT count(*) AS v FROM w",
        ),
        ("nextval", "SELECT nextval('seq') AS v"),
        (
            "readwrite",
            "SELECT set_config('transaction_read_only', 'off', false) AS v",
        ),
        ("maketemp", "SELECT make_temp() AS v"),
    ];
    // Single queries that change the session and succeed: DISCARD ALL must undo each.
    let session_changes = [
        (
            "setrole",
            "SELECT 1 AS v, set_config('role', 'pg_monitor', false) AS r",
        ),
        (
            "settimeout",
            "SELECT 1 AS v, set_config('statement_timeout', '0', false) AS s",
        ),
        (
            "defaultrw",
            "SELECT 1 AS v, set_config('default_transaction_read_only', 'off', false) AS s",
        ),
        ("lock", "SELECT 1 AS v, pg_advisory_lock(42)::text AS l"),
    ];
    let mut config = String::from("queries:\n");
    for (name, sql) in escapes.iter().chain(&session_changes) {
        config.push_str(&query(name, sql, ""));
    }
    // Queries of other kinds that return rows still run.
    config.push_str(
        &query("show", "SHOW max_connections", "").replace("value: v", "value: max_connections"),
    );
    config.push_str(&query("values", "VALUES (1)", "").replace("value: v", "value: column1"));
    // What the session looks like to the next query.
    config.push_str(&query(
        "probe",
        "SELECT current_user AS who, current_setting('statement_timeout') AS st, \
         current_setting('default_transaction_read_only') AS dro, \
         (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) \
         + (SELECT count(*) FROM pg_class WHERE relpersistence = 't') AS v",
        "who, st, dro",
    ));
    let warden = warden_for(&pg, &config);
    let superuser = pg.psql("postgres", "SELECT current_user");
    let success = |body: &str, name: &str| value(body, "warden_query_success", &[("query", name)]);
    let mut probes = 0;
    wait_for(
        Duration::from_secs(30),
        "every query to run three times",
        || {
            let body = scrape(&warden);
            for (name, _) in &escapes {
                assert_ne!(success(&body, name), Some(1.0), "{name} ran: {body}");
            }
            if let Some(probe) = body.lines().find(|l| l.starts_with("app_probe{")) {
                probes += 1;
                // The session's own user, statement_timeout and read-only default, no lock held,
                // no temporary table.
                assert!(probe.contains(&format!("who=\"{superuser}\"")), "{probe}");
                assert!(!probe.contains("st=\"0\""), "{probe}");
                assert!(probe.contains("dro=\"on\""), "{probe}");
                let held: f64 = probe.rsplit(' ').next().unwrap().parse().unwrap();
                assert_eq!(held, 0.0, "{probe}");
            }
            let runs = |name: &str| value(&body, "warden_query_errors_total", &[("query", name)]);
            let ran = escapes.iter().all(|(name, _)| runs(name) >= Some(3.0))
                && session_changes
                    .iter()
                    .chain(&[("show", ""), ("values", "")])
                    .all(|(name, _)| success(&body, name) == Some(1.0));
            (ran && probes >= 3).then_some(())
        },
    );
    let log = strip_ansi(&warden.stderr());
    for expected in [
        "the SQL holds more than one statement",
        "the SQL returns no rows",
        "query=\"cte\" error=ERROR 25006",
        "cannot execute nextval() in a read-only transaction",
        "transaction read-write mode must be set before any query",
    ] {
        assert!(log.contains(expected), "{expected:?} not in:\n{log}");
    }
    // The runner of a result with no columns failed its run rather than panicking.
    assert!(!log.contains("panicked"), "{log}");
    // Nothing was written, no temporary table or lock outlived its query, and warden's one
    // session is idle rather than idle in a transaction.
    assert_eq!(
        pg.psql(
            "app",
            "SELECT to_regclass('pwned') IS NULL AND to_regclass('escaped') IS NULL \
             AND NOT EXISTS (SELECT FROM t) AND NOT EXISTS (SELECT FROM pg_class WHERE relpersistence = 't') \
             AND NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory')"
        ),
        "t"
    );
    assert_eq!(pg.psql("app", "SELECT last_value FROM seq"), "1");
    wait_for(
        Duration::from_secs(10),
        "warden's session to be idle",
        || {
            let state = pg.psql(
                "postgres",
                "SELECT state FROM pg_stat_activity WHERE application_name = 'warden'",
            );
            (state == "idle").then_some(())
        },
    );
}

#[test]
fn a_successful_query_commits_and_warns_nothing() {
    let pg = Postgres::start();
    pg.create_database("app");
    let warden = warden_for(
        &pg,
        &format!("queries:\n{}", query("one", "SELECT 1 AS v", "")),
    );
    let counts = || {
        let line = pg.psql(
            "postgres",
            "SELECT xact_commit || ' ' || xact_rollback FROM pg_stat_database WHERE datname = 'app'",
        );
        let (commit, rollback) = line.split_once(' ').unwrap();
        (
            commit.parse::<u64>().unwrap(),
            rollback.parse::<u64>().unwrap(),
        )
    };
    wait_for(Duration::from_secs(20), "the query to run", || {
        (value(
            &scrape(&warden),
            "warden_query_success",
            &[("query", "one")],
        ) == Some(1.0))
        .then_some(())
    });
    let (commits, rollbacks) = counts();
    // Statistics reach pg_stat_database when a session goes idle, at most about once a second.
    wait_for(Duration::from_secs(30), "warden's commits to show", || {
        (counts().0 >= commits + 10).then_some(())
    });
    assert_eq!(
        counts().1,
        rollbacks,
        "warden's queries rolled back transactions"
    );
    let log = pg.log();
    assert!(
        !log.contains("there is no transaction in progress"),
        "{log}"
    );
}

/// The peak resident set of a process, in kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_huge_result_is_not_read_past_the_row_cap() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE knob (n int); INSERT INTO knob VALUES (1)",
    );
    let warden = warden_for(
        &pg,
        &format!(
            "queries:\n{}",
            query(
                "big",
                "SELECT g AS v, g::text AS id FROM knob, generate_series(1, knob.n) g",
                "id"
            )
            .replace("timeout: 1s", "timeout: 5s")
            .replace("interval: 1s", "interval: 5s")
        ),
    );
    let pid = warden.pid();
    let errors = || {
        value(
            &scrape(&warden),
            "warden_query_errors_total",
            &[("query", "big")],
        )
    };
    wait_for(
        Duration::from_secs(20),
        "the small query to succeed",
        || (value(&scrape(&warden), "app_big", &[("id", "1")]) == Some(1.0)).then_some(()),
    );
    // A few scrapes, so the idle peak includes serving them.
    for _ in 0..5 {
        scrape(&warden);
    }
    let idle = peak_rss_kb(pid);
    pg.psql("app", "UPDATE knob SET n = 2000000");
    // The next run (within the 5s interval) reads the 2 million rows.
    wait_for(Duration::from_secs(60), "the huge query to fail", || {
        (errors() == Some(1.0)).then_some(())
    });
    let peak = peak_rss_kb(pid);
    let log = strip_ansi(&warden.stderr());
    assert!(
        log.contains("metric app_big: the query returned more than 10000 rows"),
        "{log}"
    );
    assert_eq!(
        value(
            &scrape(&warden),
            "warden_query_success",
            &[("query", "big")]
        ),
        Some(0.0)
    );
    eprintln!("peak RSS: {idle} kB idle, {peak} kB after the 2,000,000-row query");
    assert!(
        peak <= idle + 8 * 1024,
        "peak RSS grew from {idle} kB to {peak} kB"
    );
    // The statement was cancelled, not left streaming rows to nobody.
    wait_for(
        Duration::from_secs(10),
        "no generate_series left running",
        || {
            let active = pg.psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'warden' \
             AND state = 'active' AND query LIKE '%generate_series%'",
            );
            (active == "0").then_some(())
        },
    );
}

/// A CA and a server certificate for 127.0.0.1, made with the openssl command line, in a
/// directory the cluster's user can read (the key private to it, as PostgreSQL requires).
pub(crate) fn tls_files() -> tempfile::TempDir {
    let openssl = crate::support::require_tool("openssl", "openssl");
    let dir = tempfile::Builder::new()
        .prefix("warden-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    let run = |args: &[&str]| {
        let output = std::process::Command::new(&openssl)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=warden test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.path().join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if rustix::process::geteuid().is_root() {
        // The cluster runs as `postgres` and must own its key.
        let status = std::process::Command::new("chown")
            .args(["postgres", "server.key", "server.pem"])
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    dir
}

#[test]
fn tls_with_a_private_ca_is_verified() {
    let pg = Postgres::start();
    pg.create_database("app");
    let tls = tls_files();
    let path = |f: &str| tls.path().join(f).display().to_string();
    pg.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'; ALTER SYSTEM SET ssl_key_file = '{}'; ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();",
            path("server.pem"),
            path("server.key")
        ),
    );
    let dsn = format!("{}?sslmode=require", pg.dsn("app"));
    let warden = Warden::start(&format!(
        "postgres:\n  - {{name: trusted, dsn: '{dsn}', interval: 1s, ca_file: {}}}\n  - {{name: untrusted, dsn: '{dsn}', interval: 1s}}\n",
        path("ca.pem")
    ));
    wait_for(Duration::from_secs(20), "pg_up 1 over TLS", || {
        (value(&scrape(&warden), "pg_up", &[("server", "trusted")]) == Some(1.0)).then_some(())
    });
    let ssl = pg.psql(
        "postgres",
        "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'warden'",
    );
    assert_eq!(ssl, "t", "warden's session is encrypted");
    // Without the CA the certificate cannot be verified, so that server stays down.
    let body = scrape(&warden);
    assert_eq!(value(&body, "pg_up", &[("server", "untrusted")]), Some(0.0));
    assert!(
        strip_ansi(&warden.stderr()).contains("Cannot connect to PostgreSQL"),
        "{}",
        strip_ansi(&warden.stderr())
    );
}

/// Connection failures say why, and where, in the log: the server's SQLSTATE and message, or
/// the refused address; never the password, even at debug level.
#[test]
fn connection_failures_name_their_cause_without_the_password() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "postgres",
        "CREATE ROLE warden LOGIN PASSWORD 'right-s3cret'",
    );
    pg.require_passwords();
    let port = pg.port();
    let nowhere = crate::support::free_port();
    let warden = Warden::start(&format!(
        "postgres:
  - {{name: wrongpw, dsn: 'postgres://warden:wr0ng-s3cret@127.0.0.1:{port}/app?sslmode=disable', interval: 1s, timeout: 2s}}
  - {{name: wrongport, dsn: 'postgres://warden:right-s3cret@127.0.0.1:{nowhere}/app?sslmode=disable', interval: 1s, timeout: 2s}}
  - {{name: nodb, dsn: 'postgres://warden:right-s3cret@127.0.0.1:{port}/nope?sslmode=disable', interval: 1s, timeout: 2s}}
"
    ));
    let line = |stderr: &str, server: &str| {
        stderr
            .lines()
            .find(|l| {
                l.contains("Cannot connect to PostgreSQL.")
                    && l.contains(&format!("server={server}"))
            })
            .map(str::to_owned)
    };
    let (wrongpw, wrongport, nodb, stderr) = wait_for(
        Duration::from_secs(20),
        "three connection failures logged",
        || {
            let stderr = strip_ansi(&warden.stderr());
            Some((
                line(&stderr, "wrongpw")?,
                line(&stderr, "wrongport")?,
                line(&stderr, "nodb")?,
                stderr,
            ))
        },
    );
    assert!(
        wrongpw.contains(&format!(
            "cannot connect to postgres/wrongpw at 127.0.0.1:{port} (database app, user warden): \
             FATAL 28P01: password authentication failed for user \"warden\""
        )),
        "{wrongpw}"
    );
    assert!(
        wrongport.contains(&format!(
            "cannot connect to postgres/wrongport at 127.0.0.1:{nowhere} (database app, user warden): \
             error connecting to server: Connection refused (os error 111)"
        )),
        "{wrongport}"
    );
    assert!(
        nodb.contains("FATAL 3D000: database \"nope\" does not exist"),
        "{nodb}"
    );
    // RUST_LOG=debug adds each attempt's settings.
    let attempt = stderr
        .lines()
        .find(|l| l.contains("Connecting to PostgreSQL.") && l.contains("server=wrongport"))
        .unwrap_or_else(|| panic!("no debug line for the attempt:\n{stderr}"));
    assert!(
        attempt.contains(&format!("address=127.0.0.1:{nowhere}"))
            && attempt.contains("tls=\"disable\"")
            && attempt.contains("timeout=2s"),
        "{attempt}"
    );
    for secret in ["wr0ng-s3cret", "right-s3cret"] {
        assert!(
            !stderr.contains(secret),
            "the password {secret} reached the log:\n{stderr}"
        );
    }
}
