//! `warden check-config --connect` against a real PostgreSQL cluster, and `check-config`
//! without the flag contacting nothing.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::postgres::Postgres;
use crate::support::{free_port, warden_bin};

const PASSWORD: &str = "s3cret-pw-1";
const WRONG_PASSWORD: &str = "wr0ng-pw-2";

fn check(config: &Path, connect: bool) -> Output {
    let mut command = Command::new(warden_bin());
    command.arg("check-config");
    if connect {
        command.arg("--connect");
    }
    command.arg(config).output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A run queue entry on `postgres/good`.
fn queue(name: &str, table: &str, status: &str) -> String {
    format!(
        "  - {{name: {name}, target: postgres/good, table: {table}, status_column: {status}, \
         states: {{queued: [queued], running: [running]}}, queued_since: created_at, \
         running_since: started_at, id_column: id, top_running: 3}}\n"
    )
}

#[test]
fn connect_reports_every_live_problem_with_its_key_and_no_secret() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE runs (id int, status text, created_at timestamptz, started_at timestamptz);
         INSERT INTO runs VALUES (1, 'queued', now(), NULL), (2, 'running', now(), now());",
    );
    pg.create_password_user("checker", PASSWORD);
    pg.psql("app", "GRANT SELECT ON runs TO checker");
    let port = pg.port();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    std::fs::write(dir.path().join("data.txt"), "x").unwrap();
    let creatable = dir.path().join("new/backups");
    let postgres = format!(
        "postgres:\n\
         \x20 - {{name: good, dsn: 'postgres://checker:{PASSWORD}@127.0.0.1:{port}/app?sslmode=disable'}}\n\
         \x20 - {{name: bad, dsn: 'postgres://checker:{WRONG_PASSWORD}@127.0.0.1:{port}/app?sslmode=disable'}}\n"
    );
    let bad = format!(
        "{postgres}run_queues:\n{}{}\
         queries:\n\
         \x20 - {{name: runs, target: postgres/good, sql: 'SELECT count(*) AS n FROM runs', metrics: [{{name: app_runs, value: n}}]}}\n\
         \x20 - {{name: typo, target: postgres/good, sql: 'SELECT count(*) AS n FROM runz', metrics: [{{name: app_runz, value: n}}]}}\n\
         \x20 - {{name: shape, target: postgres/good, sql: 'SELECT count(*) AS n FROM runs', metrics: [{{name: app_s, value: total, labels: [kind]}}]}}\n\
         \x20 - {{name: several, target: postgres/good, sql: 'SELECT 1 AS n; DROP TABLE runs', metrics: [{{name: app_several, value: n}}]}}\n\
         backups:\n\
         \x20 - {{name: unwritable, kind: files, paths: [{dir}/data.txt], destination: {dir}/a-file/backups}}\n\
         \x20 - {{name: creatable, kind: files, paths: [{dir}/data.txt], destination: {creatable}}}\n",
        queue("missing_table", "runz", "status"),
        queue("missing_column", "runs", "state"),
        dir = dir.path().display(),
        creatable = creatable.display(),
    );
    let config = dir.path().join("bad.yml");
    std::fs::write(&config, &bad).unwrap();

    // Without --connect: the static check passes and nothing is contacted.
    let output = check(&config, false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("configuration is valid"));

    let started = Instant::now();
    let output = check(&config, true);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    assert!(started.elapsed() < Duration::from_secs(30), "{all}");
    for needle in [
        "invalid configuration (8 problems)",
        &format!(
            "postgres[1].dsn: cannot connect to postgres/bad at 127.0.0.1:{port} (database app, user checker): FATAL 28P01: password authentication failed for user \"checker\""
        ),
        "run_queues[0].table: ERROR 42P01: relation \"runz\" does not exist",
        "run_queues[1].status_column: column \"state\" does not exist in table runs (columns: id, status, created_at, started_at)",
        "queries[1].sql: ERROR 42P01: relation \"runz\" does not exist",
        "queries[3].sql: the SQL holds more than one statement; user SQL must be exactly one query",
        "queries[2].metrics[0].value: column \"total\" is not in the query's result (columns: n)",
        "queries[2].metrics[0].labels[0]: column \"kind\" is not in the query's result (columns: n)",
        "backups[0].destination: cannot create",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    for secret in [PASSWORD, WRONG_PASSWORD] {
        assert!(!all.contains(secret), "the password leaked:\n{all}");
    }
    assert!(!all.contains("backups[1]"), "{all}");
    assert!(
        !dir.path().join("new").exists(),
        "the check left its directory behind"
    );

    // The same sources, fixed: every check passes, pg_dump and pg_restore included.
    let good = format!(
        "{postgres}run_queues:\n{}\
         queries:\n\
         \x20 - {{name: runs, target: postgres/good, sql: 'SELECT count(*) AS n FROM runs', metrics: [{{name: app_runs, value: n}}]}}\n\
         backups:\n\
         \x20 - {{name: app, kind: postgres, source: postgres/good, destination: {creatable}}}\n",
        queue("runs", "runs", "status"),
        creatable = creatable.display(),
    )
    .replace(WRONG_PASSWORD, PASSWORD);
    let config = dir.path().join("good.yml");
    std::fs::write(&config, good).unwrap();
    let output = check(&config, true);
    let all = text(&output);
    assert!(!all.contains(PASSWORD), "{all}");
    // Against a server newer than pg_dump (the PostgreSQL matrix), that is the one problem left.
    let (dump, server) = dump_and_server_majors(&pg);
    if server > dump {
        assert_eq!(output.status.code(), Some(64), "{all}");
        let problem = dump_too_old("backups[0].source", "good", dump, server);
        assert!(
            all.contains("(1 problem)") && all.contains(&problem),
            "{all}"
        );
        return;
    }
    assert!(output.status.success(), "{all}");
    assert!(
        all.contains(
            "good.yml: configuration is valid; 2 sources reachable, 2 queries ran, 1 backup destination usable"
        ),
        "{all}"
    );
}

#[test]
fn without_connect_nothing_is_contacted() {
    // Nothing listens on this port: only --connect notices.
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("w.yml");
    std::fs::write(
        &config,
        format!(
            "postgres:\n  - {{name: db, dsn: 'postgres://warden:{PASSWORD}@127.0.0.1:{port}/app?sslmode=disable', timeout: 3s}}\n\
             sqlite:\n  - {{name: gone, path: missing.db}}\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let output = check(&config, false);
    assert!(output.status.success(), "{}", text(&output));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!dir.path().join("missing.db").exists());

    let output = check(&config, true);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(64), "{all}");
    for needle in [
        "invalid configuration (2 problems)",
        &format!(
            "postgres[0].dsn: cannot connect to postgres/db at 127.0.0.1:{port} (database app, user warden): error connecting to server: Connection refused"
        ),
        "sqlite[0].path: ",
        "missing.db does not exist",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!all.contains(PASSWORD), "{all}");
}

/// The major version of `pg_dump` (`pg_dump (PostgreSQL) 15.18` gives 15) and of the server.
fn dump_and_server_majors(pg: &Postgres) -> (u32, u32) {
    let pg_dump = crate::support::require_tool("pg_dump", "postgresql-client");
    let output = Command::new(&pg_dump).arg("--version").output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout).into_owned();
    let major = |version: &str| -> u32 {
        version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .unwrap_or_else(|| panic!("no major version in {version:?}"))
    };
    let dump = major(shown.split_whitespace().last().unwrap_or_default());
    let server = major(&pg.psql("postgres", "SHOW server_version"));
    (dump, server)
}

/// The problem `check-config --connect` reports for a postgres backup when `pg_dump` is older
/// than the server (it refuses to dump a newer one).
fn dump_too_old(path: &str, source: &str, dump: u32, server: u32) -> String {
    format!(
        "{path}: pg_dump {dump} cannot back up postgres/{source}, a PostgreSQL {server} server (pg_dump refuses servers newer than itself); install PostgreSQL {server}'s client tools: apt-get install postgresql-client-{server}"
    )
}

#[test]
fn connect_reports_a_pg_dump_older_than_the_server() {
    let pg = Postgres::start();
    let (dump, server) = dump_and_server_majors(&pg);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("backup.yml");
    std::fs::write(
        &config,
        format!(
            "postgres:\n  - {{name: main, dsn: '{}?sslmode=disable'}}\n\
             backups:\n  - {{name: files, kind: files, paths: [{}], destination: {}/files}}\n\
             \x20 - {{name: pg, kind: postgres, source: postgres/main, destination: {}/pg}}\n",
            pg.dsn("postgres"),
            config.display(),
            dir.path().display(),
            dir.path().display(),
        ),
    )
    .unwrap();
    let output = check(&config, true);
    let all = text(&output);
    eprintln!("pg_dump {dump}, server {server}:\n{all}");
    if server > dump {
        assert_eq!(output.status.code(), Some(64), "{all}");
        let problem = dump_too_old("backups[1].source", "main", dump, server);
        assert!(all.contains(&problem), "missing {problem:?} in:\n{all}");
        assert!(all.contains("(1 problem)"), "{all}");
    } else {
        assert!(output.status.success(), "{all}");
        assert!(all.contains("1 source reachable"), "{all}");
    }
}
