//! The ephemeral PostgreSQL fixture itself: data in, data out, sessions, stop and restart.

use std::time::{Duration, Instant};

use crate::support::postgres::{PSQL_APPLICATION_NAME, Postgres};
use crate::support::wait_for;

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
