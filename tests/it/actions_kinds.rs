//! Action kinds against real things: child processes, an ephemeral PostgreSQL cluster, SQLite
//! files, a local HTTP server. Each test builds the kind from its configuration section and
//! runs it with a hand-made `JobContext`, as the job queue would.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden::act::kinds::{ActionError, JobContext, Kind, Outcome, ParseContext};
use warden::config::{Config, Problems, ProcessEnv, Sources};

use crate::support::postgres::Postgres;
use crate::support::wait_for;

/// Builds the kind `key` from `section` against `sources`, panicking with every problem.
fn kind(key: &str, section: Value, sources: &Sources) -> Arc<dyn Kind> {
    let context = ParseContext {
        base: Path::new("/"),
        sources,
        backups: &[],
    };
    let mut map = serde_json::Map::new();
    map.insert(key.to_owned(), section);
    let mut problems = Problems::default();
    warden::act::kinds::parse(&map, "actions[0]", &context, &mut problems)
        .unwrap_or_else(|| panic!("{:?}", problems.0))
}

fn sources(yaml: &str) -> Sources {
    Config::try_from_yaml(yaml, "test", Path::new("/"), &ProcessEnv)
        .unwrap()
        .sources
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn run(kind: &dyn Kind, labels: &BTreeMap<String, String>) -> Result<Outcome, ActionError> {
    let context = JobContext::new(1, "test", labels);
    kind.run(&context).await
}

/// Whether `pid` is gone (or a zombie no one reaped yet: it runs nothing).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[tokio::test]
async fn command_cancel_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // The test's child is a shell that ignores SIGTERM and leaves a grandchild `sleep`
    // (which inherits the ignored SIGTERM): only the group SIGKILL after the grace ends both.
    let script = format!(
        "trap '' TERM; sleep 300 & echo $$ $! > {}; wait; wait",
        pids.display()
    );
    let command = kind(
        "command",
        json!(["/bin/sh", "-c", script]),
        &Sources::default(),
    );
    let labels = labels(&[]);
    let context = JobContext::new(1, "test", &labels);
    let cancel = context.cancel.clone();
    let watched = pids.clone();
    let canceller = tokio::spawn(async move {
        while !watched.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        cancel.cancel();
        Instant::now()
    });
    let result = command.run(&context).await;
    let cancelled_at = canceller.await.unwrap();
    assert!(matches!(result, Err(ActionError::Cancelled)), "{result:?}");
    let waited = cancelled_at.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(10),
        "SIGKILL should follow the 5 s grace: {waited:?}"
    );
    let text = std::fs::read_to_string(&pids).unwrap();
    let pids: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "{text}");
    wait_for(
        Duration::from_secs(5),
        "the shell and its sleep to end",
        || pids.iter().all(|&pid| gone(pid)).then_some(()),
    );
}

#[tokio::test]
async fn command_a_cooperative_group_ends_at_sigterm() {
    let command = kind(
        "command",
        json!(["/bin/sh", "-c", "sleep 300 & wait"]),
        &Sources::default(),
    );
    let labels = labels(&[]);
    let context = JobContext::new(1, "test", &labels);
    let cancel = context.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
    });
    let began = Instant::now();
    let result = command.run(&context).await;
    assert!(matches!(result, Err(ActionError::Cancelled)), "{result:?}");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test]
async fn command_env_is_cleared_and_secrets_redacted() {
    let command = kind(
        "command",
        json!({
            "argv": ["/usr/bin/env"],
            "env": {"APP_MODE": "{labels.mode}", "DB_PASSWORD": "correct-horse"},
        }),
        &Sources::default(),
    );
    let outcome = run(command.as_ref(), &labels(&[("mode", "drain")]))
        .await
        .unwrap();
    assert_eq!(outcome.exit_code, Some(0));
    let mut lines: Vec<&str> = outcome.output.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "APP_MODE=drain",
            "DB_PASSWORD=[redacted]",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ]
    );
}

#[tokio::test]
async fn command_arguments_stay_single_arguments() {
    // A value that would be two words and a command in a shell is one argv entry, and the
    // pattern refuses it anyway: with a permissive pattern it still cannot split.
    let command = kind(
        "command",
        json!({
            "argv": ["/usr/bin/printf", "%s|", "{labels.name}", "x"],
            "placeholder_pattern": "[a-z ;]+",
        }),
        &Sources::default(),
    );
    let outcome = run(command.as_ref(), &labels(&[("name", "a b; id")]))
        .await
        .unwrap();
    assert_eq!(outcome.output, "a b; id|x|");
    let refused = run(command.as_ref(), &labels(&[("name", "-v")])).await;
    assert!(
        matches!(refused, Err(ActionError::Placeholder { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn command_failure_reports_code_and_output() {
    let command = kind(
        "command",
        json!(["/bin/sh", "-c", "echo broken >&2; exit 7"]),
        &Sources::default(),
    );
    match run(command.as_ref(), &labels(&[])).await {
        Err(ActionError::Exited { code, output, .. }) => {
            assert_eq!(code, Some(7));
            assert_eq!(output, "stderr:\nbroken");
        }
        other => panic!("{other:?}"),
    }
}

fn postgres_sources(pg: &Postgres) -> Sources {
    sources(&format!(
        "postgres: [{{name: main, dsn: '{}'}}]",
        pg.dsn("app")
    ))
}

async fn session(pg: &Postgres, database: &str, application_name: &str) -> tokio_postgres::Client {
    let dsn = format!("{}?application_name={application_name}", pg.dsn(database));
    let (client, connection) = tokio_postgres::connect(&dsn, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn alive(client: &tokio_postgres::Client) -> bool {
    client.simple_query("SELECT 1").await.is_ok()
}

#[tokio::test]
async fn sql_terminate_idle_ends_only_matching_sessions() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.create_database("other");
    let idle = session(&pg, "app", "victim-idle").await;
    let in_transaction = session(&pg, "app", "victim-tx").await;
    in_transaction
        .batch_execute("BEGIN; SELECT 1")
        .await
        .unwrap();
    let own = session(&pg, "app", "warden").await;
    let own_action = session(&pg, "app", "warden-action").await;
    let elsewhere = session(&pg, "other", "victim-other").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let young = session(&pg, "app", "young").await;

    let action = kind(
        "sql",
        json!({"target": "postgres/main", "terminate_idle": {"older_than": "2s", "database": "app"}}),
        &postgres_sources(&pg),
    );
    let outcome = run(action.as_ref(), &labels(&[])).await.unwrap();
    assert!(
        outcome
            .summary
            .starts_with("terminated 2 sessions in database app on postgres/main"),
        "{}",
        outcome.summary
    );
    assert!(
        outcome.summary.contains("(postgres)"),
        "{}",
        outcome.summary
    );
    assert!(!alive(&idle).await);
    assert!(!alive(&in_transaction).await);
    for (name, client) in [
        ("warden", &own),
        ("warden-action", &own_action),
        ("other database", &elsewhere),
        ("young", &young),
    ] {
        assert!(alive(client).await, "{name} was terminated");
    }

    // The cap: four old idle sessions (`young` is old by now), two ended, the oldest first.
    let first = session(&pg, "app", "victim-1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = session(&pg, "app", "victim-2").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = session(&pg, "app", "victim-3").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let capped = kind(
        "sql",
        json!({"target": "postgres/main",
               "terminate_idle": {"older_than": "2s", "database": "app", "max_sessions": 2}}),
        &postgres_sources(&pg),
    );
    let outcome = run(capped.as_ref(), &labels(&[])).await.unwrap();
    assert!(
        outcome.summary.starts_with("terminated 2 sessions"),
        "{}",
        outcome.summary
    );
    assert!(!alive(&young).await);
    assert!(!alive(&first).await);
    assert!(alive(&second).await);
    assert!(alive(&third).await);
    assert!(alive(&own).await && alive(&elsewhere).await);
}

#[tokio::test]
async fn sql_cancel_long_queries_cancels_the_query_not_the_session() {
    let pg = Postgres::start();
    pg.create_database("app");
    let busy = session(&pg, "app", "busy").await;
    let query = tokio::spawn(async move {
        let result = busy.simple_query("SELECT pg_sleep(60)").await;
        (result.map(|_| ()), busy)
    });
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let action = kind(
        "sql",
        json!({"target": "postgres/main", "cancel_long_queries": {"older_than": "1s"}}),
        &postgres_sources(&pg),
    );
    let outcome = run(action.as_ref(), &labels(&[])).await.unwrap();
    assert!(
        outcome
            .summary
            .starts_with("cancelled the queries of 1 session"),
        "{}",
        outcome.summary
    );
    let (result, busy) = tokio::time::timeout(Duration::from_secs(10), query)
        .await
        .unwrap()
        .unwrap();
    let err = result.unwrap_err();
    assert!(err.to_string().contains("db error"), "{err}");
    assert!(alive(&busy).await);
}

#[tokio::test]
async fn sql_vacuum_analyze_moves_last_vacuum() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql(
        "app",
        "CREATE TABLE runs (id int); INSERT INTO runs SELECT generate_series(1, 1000); \
         DELETE FROM runs WHERE id % 2 = 0;",
    );
    let last_vacuum = || {
        pg.psql(
            "app",
            "SELECT coalesce(last_vacuum::text, 'never') FROM pg_stat_user_tables WHERE relname = 'runs'",
        )
    };
    assert_eq!(last_vacuum(), "never");
    let action = kind(
        "sql",
        json!({"target": "postgres/main", "vacuum_analyze": {"tables": ["public.runs"]}}),
        &postgres_sources(&pg),
    );
    let outcome = run(action.as_ref(), &labels(&[])).await.unwrap();
    assert!(
        outcome
            .summary
            .starts_with(r#"VACUUM (ANALYZE) "public"."runs" on postgres/main took"#),
        "{}",
        outcome.summary
    );
    wait_for(Duration::from_secs(10), "last_vacuum to be set", || {
        (last_vacuum() != "never").then_some(())
    });
    let analyzed = pg.psql(
        "app",
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'runs'",
    );
    assert_eq!(analyzed, "t");
}

#[tokio::test]
async fn sql_lock_timeout_and_cancellation_stop_server_work() {
    let pg = Postgres::start();
    pg.create_database("app");
    pg.psql("app", "CREATE TABLE runs (id int)");
    // A lock held elsewhere: VACUUM waits for it, up to lock_timeout (5 s).
    let holder = session(&pg, "app", "holder").await;
    holder
        .batch_execute("BEGIN; LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let action = kind(
        "sql",
        json!({"target": "postgres/main", "vacuum_analyze": {"tables": ["runs"]}}),
        &postgres_sources(&pg),
    );
    let began = Instant::now();
    let err = run(action.as_ref(), &labels(&[])).await.unwrap_err();
    assert!(err.to_string().contains("VACUUM (ANALYZE)"), "{err}");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("lock timeout"), "{cause}");
    assert!(began.elapsed() < Duration::from_secs(15));

    // Cancelled while it waits: the statement is cancelled on the server too, not left
    // waiting for its lock behind a closed client.
    let empty = labels(&[]);
    let context = JobContext::new(2, "test", &empty);
    let cancel = context.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
    });
    let result = action.run(&context).await;
    assert!(matches!(result, Err(ActionError::Cancelled)), "{result:?}");
    wait_for(
        Duration::from_secs(3),
        "no action session waiting for the lock",
        || {
            let waiting = pg.psql(
                "app",
                "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'warden-action' AND wait_event_type = 'Lock'",
            );
            (waiting == "0").then_some(())
        },
    );
    holder.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test]
async fn sqlite_wal_checkpoint_truncates_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let writer = rusqlite::Connection::open(&path).unwrap();
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (x); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT randomblob(500) FROM n;",
        )
        .unwrap();
    let wal = dir.path().join("jobs.db-wal");
    let before = std::fs::metadata(&wal).unwrap().len();
    assert!(before > 500_000, "{before}");
    let action = kind(
        "sql",
        json!({"target": "sqlite/jobs", "wal_checkpoint": {}}),
        &sources(&format!(
            "sqlite: [{{name: jobs, path: {}}}]",
            path.display()
        )),
    );
    let outcome = run(action.as_ref(), &labels(&[])).await.unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    assert!(
        outcome
            .summary
            .contains(&format!("WAL {before} bytes before, 0 bytes after")),
        "{}",
        outcome.summary
    );
    // The writer (idle, still open) goes on working.
    writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
}

#[tokio::test]
async fn sqlite_integrity_check_fails_on_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE t (x TEXT); CREATE INDEX t_x ON t (x); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
         INSERT INTO t SELECT hex(randomblob(40)) FROM n;",
    )
    .unwrap();
    let action = kind(
        "sql",
        json!({"target": "sqlite/jobs", "integrity_check": {}}),
        &sources(&format!(
            "sqlite: [{{name: jobs, path: {}}}]",
            path.display()
        )),
    );
    let outcome = run(action.as_ref(), &labels(&[])).await.unwrap();
    assert!(outcome.summary.ends_with(": ok"), "{}", outcome.summary);
    // Damage the index: write its entries through a writable schema trick (the index's
    // rows no longer match the table's).
    conn.execute_batch(
        "PRAGMA writable_schema = ON; \
         UPDATE sqlite_schema SET sql = 'CREATE INDEX t_x ON t (x DESC)' WHERE name = 't_x'; \
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
    drop(conn);
    let err = run(action.as_ref(), &labels(&[])).await.unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
}

/// A tiny HTTP server on a loopback port: answers each request with the next status of
/// `statuses` (the last one repeats) and records the request lines.
fn serve(statuses: Vec<u16>) -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            head.push_str(&String::from_utf8_lossy(&body));
            record.lock().unwrap().push(head);
            let status = statuses[i.min(statuses.len() - 1)];
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Length: 5\r\nLocation: http://127.0.0.1:1/\r\nConnection: close\r\n\r\nhello"
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    (port, seen)
}

#[tokio::test]
async fn http_sends_the_request_and_checks_the_status() {
    let (port, seen) = serve(vec![204, 500, 302]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-secret-123\n").unwrap();
    let action = kind(
        "http",
        json!({
            "url": format!("http://127.0.0.1:{port}/restart?host={{labels.instance}}"),
            "method": "POST",
            "expect_status": [200, 204],
            "bearer_token_file": token,
            "body": "{{\"host\": \"{labels.instance}\"}}",
        }),
        &Sources::default(),
    );
    let instance = labels(&[("instance", "db-1:5432")]);
    let outcome = run(action.as_ref(), &instance).await.unwrap();
    assert_eq!(
        outcome.summary,
        format!("POST http://127.0.0.1:{port}/restart?host=db-1%3A5432 answered 204 No Content")
    );
    let request = seen.lock().unwrap()[0].clone();
    assert!(
        request.starts_with("POST /restart?host=db-1%3A5432 HTTP/1.1"),
        "{request}"
    );
    assert!(
        request.contains("authorization: Bearer tok-secret-123"),
        "{request}"
    );
    assert!(request.ends_with("{\"host\": \"db-1:5432\"}"), "{request}");

    let err = run(action.as_ref(), &instance)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("answered 500"), "{err}");
    assert!(err.contains("expected 200 or 204: hello"), "{err}");
    assert!(!err.contains("tok-secret"), "{err}");
    // A redirect is an answer, not something to follow.
    let err = run(action.as_ref(), &instance)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("answered 302"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}

fn check(section: Value) -> warden::act::kinds::check::Check {
    let sources = Sources::default();
    let context = ParseContext {
        base: Path::new("/"),
        sources: &sources,
        backups: &[],
    };
    let mut problems = Problems::default();
    warden::act::kinds::check::Check::parse(&section, "then_check", &context, &mut problems)
        .unwrap_or_else(|| panic!("{:?}", problems.0))
}

#[tokio::test]
async fn then_check_passes_when_the_service_recovers_on_attempt_two() {
    let (port, seen) = serve(vec![503, 200]);
    let check = check(json!({
        "http": format!("http://127.0.0.1:{port}/healthz"),
        "expect_status": 200, "attempts": 3, "delay": "50ms", "timeout": "2s",
    }));
    let empty = labels(&[]);
    let context = JobContext::new(1, "restart", &empty);
    assert_eq!(
        check.run(&context).await.unwrap(),
        "healthy on attempt 2 of 3"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn then_check_fails_after_the_last_attempt_with_its_reason() {
    let (port, seen) = serve(vec![503]);
    let check = check(json!({
        "http": format!("http://127.0.0.1:{port}/healthz"),
        "attempts": 3, "delay": "50ms",
    }));
    let empty = labels(&[]);
    let context = JobContext::new(1, "restart", &empty);
    let err = check.run(&context).await.unwrap_err();
    assert_eq!(err.to_string(), "unhealthy after 3 attempts");
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("answered 503"), "{cause}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}
