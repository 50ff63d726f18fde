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

#[test]
fn user_sql_cannot_leave_the_shared_session_in_a_transaction() {
    let pg = Postgres::start();
    pg.create_database("app");
    let warden = warden_for(
        &pg,
        "queries:\n  - name: sloppy\n    target: postgres/main\n    sql: \"BEGIN; SET statement_timeout = 0; SELECT 1 AS n\"\n    interval: 1s\n    timeout: 1s\n    metrics:\n      - {name: app_sloppy, value: n}\n",
    );
    wait_for(Duration::from_secs(20), "the query to run", || {
        (value(
            &scrape(&warden),
            "warden_query_success",
            &[("query", "sloppy")],
        ) == Some(1.0))
        .then_some(())
    });
    // Between runs warden's one session is idle, not idle in a transaction, and keeps its own
    // statement_timeout.
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

/// A CA and a server certificate for 127.0.0.1, made with the openssl command line, in a
/// directory the cluster's user can read (the key private to it, as PostgreSQL requires).
fn tls_files() -> tempfile::TempDir {
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
