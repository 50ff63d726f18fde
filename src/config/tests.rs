use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use secrecy::ExposeSecret;

use super::*;

fn env() -> HashMap<String, String> {
    HashMap::from([
        ("WARDEN_PORT".to_owned(), "9999".to_owned()),
        ("TOKEN".to_owned(), "s3cret".to_owned()),
    ])
}

fn load(text: &str) -> Result<Config, Error> {
    Config::try_from_yaml(text, "test.yml", Path::new("."), &env())
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Err(Error::Invalid { problems }) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected invalid config, got {other:?}"),
    }
}

#[test]
fn empty_file_is_the_embedded_default() {
    let config = load("").unwrap();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.state_dir, Path::new(DEFAULT_STATE_DIR));
    assert!(config.host.enabled);
    assert_eq!(config.host.timeout, Duration::from_secs(5));
    assert_eq!(config.web.max_concurrent_scrapes, 4);
    assert!(config.web.bearer_token.is_none());
    let default = Config::default();
    assert_eq!(default.listen, config.listen);
}

#[test]
fn typed_values_and_env_expansion() {
    let config = load(
        "listen: 127.0.0.1:${WARDEN_PORT}\n\
         log: {format: json, level: debug}\n\
         web: {bearer_token: '${TOKEN}', request_timeout: 1m30s}\n\
         host:\n  timeout: 2s\n  filesystem: {stat_timeout: 500ms, fs_types_exclude: '^tmpfs$'}\n",
    )
    .unwrap();
    assert_eq!(config.listen.port(), 9999);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.web.request_timeout, Duration::from_secs(90));
    assert_eq!(config.web.bearer_token.unwrap().expose_secret(), "s3cret");
    assert_eq!(
        config.host.filesystem.stat_timeout,
        Duration::from_millis(500)
    );
    let fs = config.host.filesystem.fs_types_exclude.unwrap();
    assert!(fs.is_match("tmpfs") && !fs.is_match("ext4"));
}

#[test]
fn one_invalid_file_reports_every_problem_with_its_path() {
    let found = problems(
        "listen: not-an-address\n\
         state_dir: ''\n\
         colour: blue\n\
         log: {format: yaml}\n\
         web:\n  max_concurrent_scrapes: 0\n  request_timeout: soon\n  bogus: 1\n\
         host:\n  enabled: maybe\n  timeout: 5\n  filesystem: {mount_points_exclude: '(', stat_timeout: 10s}\n  dsik: {}\n\
         extra: ${UNSET_VARIABLE}\n",
    );
    let expected = [
        "extra: environment variable UNSET_VARIABLE is not set",
        "colour: unknown key",
        "web.bogus: unknown key",
        "host.enabled: invalid value, expected true or false",
        "host.timeout: `5` needs a unit, such as 5s or 5m",
        "host.dsik: unknown key",
        "extra: unknown key",
        "listen: `not-an-address` is not a socket address",
        "state_dir: must not be empty",
        "log.format: `yaml` is not one of: text, json",
        "web.max_concurrent_scrapes: must be at least 1",
        "web.request_timeout: `soon` is not a duration",
        "host.filesystem.mount_points_exclude: not a regular expression",
        // Not "host.filesystem.stat_timeout: must be shorter than half of host.timeout": the
        // host timeout did not parse, so the comparison would be with its default.
    ];
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(found.len(), expected.len(), "{}", found.join("\n"));
}

#[test]
fn unknown_key_names_the_expected_ones() {
    let found = problems("host: {procfss: /proc}\n");
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("host.procfss: unknown key `procfss`"),
        "{}",
        found[0]
    );
    assert!(found[0].contains("procfs"), "{}", found[0]);
}

#[test]
fn yaml_syntax_errors_name_the_file() {
    match load("listen: [unclosed\n") {
        Err(Error::Syntax { path, .. }) => assert_eq!(path, "test.yml"),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn secrets_come_from_files_without_the_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "from-file\n").unwrap();
    let config = Config::try_from_yaml(
        "web: {bearer_token_file: token}\n",
        "t.yml",
        dir.path(),
        &env(),
    )
    .unwrap();
    assert_eq!(
        config.web.bearer_token.unwrap().expose_secret(),
        "from-file"
    );
}

#[test]
fn secret_errors_never_show_the_secret() {
    let found = problems("web: {bearer_token: hunter2, bearer_token_file: /nonexistent/token}\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("not both"));
    assert!(!found.iter().any(|p| p.contains("hunter2")));
    let found = problems("web: {bearer_token_file: /nonexistent/token}\n");
    assert!(
        found[0].starts_with("web.bearer_token_file: cannot read /nonexistent/token"),
        "{found:?}"
    );
}

#[test]
fn bearer_token_does_not_leak_through_debug() {
    let config = load("web: {bearer_token: hunter2}\n").unwrap();
    assert!(!format!("{config:?}").contains("hunter2"));
}

#[test]
fn limits_that_would_break_serving_are_rejected() {
    let found = problems(
        "web: {max_concurrent_scrapes: 5000, request_timeout: 5s}\nhost: {timeout: 5s, filesystem: {stat_timeout: 3s}}\n",
    );
    let expected = [
        "web.max_concurrent_scrapes: at most 1024",
        "web.request_timeout: must be longer than host.timeout (5s) plus 1s",
        "host.filesystem.stat_timeout: must be shorter than half of host.timeout (5s)",
    ];
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn expanded_variables_fill_boolean_and_number_keys() {
    let env = HashMap::from([
        ("HOST_ON".to_owned(), "false".to_owned()),
        ("SCRAPES".to_owned(), "8".to_owned()),
    ]);
    let config = Config::try_from_yaml(
        "host: {enabled: '${HOST_ON}'}\nweb: {max_concurrent_scrapes: '${SCRAPES}'}\n",
        "t.yml",
        Path::new("."),
        &env,
    )
    .unwrap();
    assert!(!config.host.enabled);
    assert_eq!(config.web.max_concurrent_scrapes, 8);
}

#[test]
fn errors_do_not_quote_values() {
    // A token given where a number belongs, and a syntax error on a line holding a secret.
    let found = problems("web: {max_concurrent_scrapes: [sekrit-value]}\n");
    assert!(!found.iter().any(|p| p.contains("sekrit")), "{found:?}");
    match load("web:\n  bearer_token: \"s3cretTOKEN\n") {
        Err(err @ Error::Syntax { .. }) => {
            let text = err.to_string();
            assert!(!text.contains("s3cretTOKEN"), "{text}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

const SOURCES: &str = r#"
postgres:
  - name: main
    dsn: postgres://monitor:pw@127.0.0.1:5432/app
    tables: [app]
sqlite:
  - {name: tutorial, path: /srv/app.db, row_counts: [users]}
run_queues:
  - name: forecast
    target: postgres/main
    table: runs
    status_column: status
    states: {queued: [scheduled], running: [running], succeeded: [completed], failed: [failed], cancelled: [cancelled]}
    queued_since: created_at
    running_since: start_time
    id_column: run_id
    top_running: 5
queries:
  - name: errors
    target: sqlite/tutorial
    sql: SELECT transport, count(*) AS n FROM request_logs GROUP BY transport
    interval: 1m
    timeout: 10s
    metrics:
      - {name: app_requests, value: n, labels: [transport], fill: {transport: [http, ws, no]}, const_labels: {app: tutorial}}
"#;

#[test]
fn database_sections_validate_into_typed_values() {
    let config = load(SOURCES).unwrap();
    let pg = &config.sources.postgres[0];
    assert_eq!(pg.database, "app");
    assert!(pg.tables);
    assert_eq!(pg.interval, Duration::from_secs(15));
    assert_eq!(
        config.sources.sqlite[0].integrity_check,
        IntegrityCheck::Quick
    );
    let queue = &config.sources.run_queues[0];
    assert_eq!(queue.target, Target::Postgres("main".into()));
    assert_eq!(queue.states[&RunState::Queued], ["scheduled"]);
    assert_eq!(queue.top_running, 5);
    let query = &config.sources.queries[0];
    assert_eq!(query.target, Target::Sqlite("tutorial".into()));
    assert_eq!(query.interval, Duration::from_secs(60));
    // YAML 1.1 would read `n` and `no` as booleans; warden reads YAML 1.2 booleans only.
    assert_eq!(query.metrics[0].value, "n");
    assert_eq!(
        query.metrics[0].fill,
        [(
            "transport".to_owned(),
            vec!["http".to_owned(), "ws".to_owned(), "no".to_owned()]
        )]
    );
    assert!(
        !format!("{config:?}").contains("pw@"),
        "the DSN reached Debug output"
    );
}

#[test]
fn fill_combinations_beyond_the_series_cap_are_refused() {
    // 101 × 100 = 10,100 zero-filled series: more than one metric may have.
    let values = |n: usize| {
        (0..n)
            .map(|i| format!("v{i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = |a: usize| {
        format!(
            "sqlite:\n  - {{name: db, path: /tmp/x.db}}\nqueries:\n  - name: q\n    target: sqlite/db\n    sql: SELECT 1\n    metrics:\n      - {{name: app_n, value: n, labels: [a, b], fill: {{a: [{}], b: [{}]}}}}\n",
            values(a),
            values(100)
        )
    };
    let found = problems(&config(101));
    assert!(
        found.iter().any(|p| p.starts_with(
            "queries[0].metrics[0].fill: 10100 combinations of values; at most 10000"
        )),
        "{}",
        found.join("\n")
    );
    let fits = load(&config(100));
    assert!(fits.is_ok(), "{fits:?}");
}

#[test]
fn every_database_section_problem_is_reported_with_its_path() {
    let found = problems(
        r#"
postgres:
  - {name: main, dsn: "postgres://u:hunter2@h/app", tables: [other]}
  - {name: main, dsn: "port=notanumber"}
  - {name: "bad name"}
sqlite:
  - {name: s, path: /x.db, integrity_check: deep, row_counts: ["users; DROP TABLE x"]}
run_queues:
  - name: q
    target: postgres/nope
    table: "runs; --"
    status_column: status
    states: {queued: [a], waiting: [b], running: [a]}
    queued_since: created_at
    running_since: started
    top_running: 5
queries:
  - name: q1
    target: mysql/x
    sql: SELECT 1
    interval: 5s
    timeout: 10s
    metrics:
      - {name: node_fake, value: v}
      - {name: jobs, type: counter, value: v, labels: [bad-label], fill: {missing: [x]}}
"#,
    );
    let expected = [
        "postgres[0].tables[0]: per-table statistics come over this entry's one connection, which is to database `app`",
        "postgres[1].dsn: not a PostgreSQL connection string",
        "postgres[2].name: `bad name` must be",
        "postgres[2].dsn: missing: set dsn or dsn_file",
        "postgres[1].name: `main` is used twice",
        "sqlite[0].integrity_check: `deep` is not one of",
        "sqlite[0].row_counts[0]: `users; DROP TABLE x` is not a column or table name",
        "run_queues[0].target: `postgres/nope` names no configured postgres entry",
        "run_queues[0].table: `runs; --` is not a column or table name",
        "run_queues[0].states.waiting: unknown state",
        "run_queues[0].states.running: status `a` is mapped to two states",
        "run_queues[0].top_running: needs id_column",
        "queries[0].target: `mysql/x` is not a target",
        "queries[0].timeout: must not be longer than the interval",
        "queries[0].metrics[0].name: `node_fake` clashes with built-in metrics",
        "queries[0].metrics[1].name: a counter's name must end in `_total`",
        "queries[0].metrics[1].labels[0]: `bad-label` is not a label name",
        "queries[0].metrics[1].fill.missing: fill names a label that is not in labels",
        "queries[0].metrics[1].fill: list the known values of `bad-label` too",
    ];
    for want in expected {
        assert!(
            found.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in:\n{}",
            found.join("\n")
        );
    }
    assert_eq!(found.len(), expected.len(), "{}", found.join("\n"));
    assert!(
        !found.iter().any(|p| p.contains("hunter2")),
        "a password reached an error"
    );
}

#[test]
fn only_prometheus_own_names_are_reserved_exactly() {
    let query = |name: &str| {
        format!(
            "sqlite: [{{name: db, path: /x.db}}]\nqueries:\n  - {{name: q, target: sqlite/db, sql: SELECT 1 AS v, metrics: [{{name: {name}, value: v}}]}}\n"
        )
    };
    assert!(load(&query("uptime_seconds")).is_ok());
    assert!(load(&query("upstream_errors")).is_ok());
    let found = problems(&query("up"));
    assert!(
        found[0].contains("a name Prometheus writes itself"),
        "{found:?}"
    );
}

#[test]
fn a_ca_file_must_hold_certificates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
    let config = |file: &str| {
        format!(
            "postgres: [{{name: main, dsn: 'postgres://u@h/app?sslmode=require', ca_file: {file}}}]\n"
        )
    };
    let load_in = |text: &str| Config::try_from_yaml(text, "t.yml", dir.path(), &env());
    match load_in(&config("empty.pem")) {
        Err(Error::Invalid { problems }) => {
            assert!(
                problems[0].to_string().starts_with("postgres[0].ca_file:"),
                "{problems:?}"
            );
            assert!(
                problems[0].to_string().contains("holds no PEM certificate"),
                "{problems:?}"
            );
        }
        other => panic!("expected invalid, got {other:?}"),
    }
    match load_in(&config("missing.pem")) {
        Err(Error::Invalid { problems }) => assert!(
            problems[0].to_string().contains("cannot read"),
            "{problems:?}"
        ),
        other => panic!("expected invalid, got {other:?}"),
    }
}

#[test]
fn backup_jobs_are_validated_with_every_problem_named() {
    let found = problems(
        "postgres:\n  - {name: main, dsn: 'postgres://u@h/db'}\n\
         backups:\n\
           - {name: a, kind: tape, destination: /b/a}\n\
           - {name: b, kind: postgres, destination: /b/b}\n\
           - {name: c, kind: postgres, source: postgres/other, destination: /b/c}\n\
           - {name: d, kind: files, paths: [/srv], destination: /b/d, level: 30, include: ['[x'],\n\
              schedule: 'every day', retention: {keep_last: 0, keep_within: soon}}\n\
           - {name: e, kind: files, destination: /b/d, verify: {required_tables: [users]}}\n\
           - {name: f, kind: postgres, source: postgres/main, destination: /b/f, paths: [/x],\n\
              verify: {integrity_check: quick, restore_test_schedule: '0 3 * * *', required_tables: ['a;b']}}\n\
           - {name: g, kind: files, paths: [/b], destination: /b/d/nested}\n\
         max_concurrent_backups: 0\n",
    );
    for needle in [
        "backups[0].kind: `tape` is not one of: postgres, sqlite, files",
        "backups[1].source: missing",
        "backups[2].source: `postgres/other` names no configured postgres entry",
        "backups[3].level: zstd levels are 1–19",
        "backups[3].include[0]: not a glob",
        "backups[3].schedule: `every day` is not a cron expression",
        "backups[3].retention.keep_last: must be ≥ 1",
        "backups[3].retention.keep_within: `soon` is not a duration",
        "backups[4].destination: is also the destination of job `d`",
        "backups[4].paths: list at least one file or directory",
        "backups[4].verify.required_tables: is for kind postgres and sqlite, not files",
        "backups[5].paths: is for kind files, not postgres",
        "backups[5].verify.integrity_check: is for kind sqlite, not postgres",
        "backups[5].verify.restore_test_schedule: set restore_test: true too",
        "backups[5].verify.required_tables[0]: `a;b` is not a table name",
        "max_concurrent_backups: must be at least 1",
        "backups[6].destination: is inside, or holds, the destination of job",
        "backups[6].paths: /b holds the destination of job",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(needle)),
            "missing {needle:?} in {found:#?}"
        );
    }
}

#[test]
fn a_valid_backup_job_is_typed() {
    let config = load(
        "sqlite:
  - {name: app, path: /srv/app.db}
backups:
  - name: app-db
    kind: sqlite
    source: sqlite/app
    destination: /b
    schedule: '0 * * * *'
    retention: {keep_within: 7d, keep_daily: 30}
    verify: {restore_test: true}
",
    )
    .unwrap();
    let job = &config.backups[0];
    assert_eq!(job.kind.name(), "sqlite");
    assert_eq!(job.retention.keep_daily, Some(30));
    assert_eq!(
        job.retention.keep_within,
        Some(Duration::from_secs(7 * 86400))
    );
    assert_eq!(
        job.schedule.as_ref().unwrap().interval(chrono::Utc::now()),
        Duration::from_secs(3600)
    );
    assert!(job.verify.restore_test && job.verify.restore_test_schedule.is_none());
    assert_eq!(job.timeout, Duration::from_secs(6 * 3600));
    assert_eq!(config.max_concurrent_backups, 1);
}

#[test]
fn a_duration_without_a_unit_says_a_unit_is_needed() {
    let found = problems(
        "postgres:\n  - name: db\n    dsn: postgres://u@h/db\n    interval: 10\n    size_interval: 1.5\n\
         web:\n  request_timeout: ${WARDEN_PORT}\n\
         actions:\n  - name: a\n    timeout: 30\n    command: {argv: [/bin/true]}\n    then_check: {command: {argv: [/bin/true]}, delay: 2}\n",
    );
    for expected in [
        "postgres[0].interval: `10` needs a unit, such as 10s or 10m",
        "postgres[0].size_interval: `1.5` needs a unit and a whole number, such as 1500ms or 2s",
        "web.request_timeout: `9999` needs a unit, such as 9999s or 9999m",
        "actions[0].timeout: `30` needs a unit, such as 30s or 30m",
        "actions[0].then_check.delay: `2` needs a unit, such as 2s or 2m",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "{expected:?} not in {found:#?}"
        );
    }
    assert!(
        found.iter().all(|p| !p.contains("invalid type")),
        "{found:#?}"
    );
}

#[test]
fn a_duration_that_failed_is_not_compared_again() {
    // Each interval fails on its own; the timeouts (longer than the defaults the intervals
    // fall back to) must not also be reported as longer than the interval.
    let found = problems(
        "sqlite:\n  - {name: db, path: /tmp/x.db}\n\
         queries:\n  - name: q\n    target: sqlite/db\n    sql: SELECT 1 AS v\n    interval: 10\n    timeout: 2m\n    metrics: [{name: q_v, value: v}]\n\
         run_queues:\n  - name: r\n    target: sqlite/db\n    table: runs\n    status_column: s\n    states: {queued: [q], running: [r]}\n    queued_since: a\n    running_since: b\n    interval: soon\n    timeout: 2m\n\
         host:\n  timeout: 5\n  filesystem: {stat_timeout: 10s}\n",
    );
    assert_eq!(
        found,
        [
            "host.timeout: `5` needs a unit, such as 5s or 5m",
            "queries[0].interval: `10` needs a unit, such as 10s or 10m",
            "run_queues[0].interval: `soon` is not a duration such as 500ms, 30s, 5m or 1h",
        ],
    );
    // Both parsed: the comparison still applies.
    let found = problems(
        "sqlite:\n  - {name: db, path: /tmp/x.db}\n\
         queries:\n  - {name: q, target: sqlite/db, sql: SELECT 1 AS v, interval: 10s, timeout: 2m, metrics: [{name: q_v, value: v}]}\n",
    );
    assert_eq!(
        found,
        ["queries[0].timeout: must not be longer than the interval"]
    );
}

#[test]
fn problems_concern_their_path_and_below_only() {
    let mut problems = Problems::default();
    problems.push("postgres[1].interval", "x");
    assert!(problems.concerns("postgres[1].interval"));
    assert!(problems.concerns("postgres[1]"));
    assert!(!problems.concerns("postgres[1].interval_x"));
    assert!(!problems.concerns("postgres[10]"));
    assert!(!problems.concerns("postgres[1].timeout"));
}

#[test]
fn the_textfile_directory_is_optional_resolved_and_must_be_readable() {
    assert!(load("").unwrap().host.textfile_directory.is_none());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("textfiles")).unwrap();
    let config = Config::try_from_yaml(
        "host: {textfile: {directory: textfiles}}\n",
        "test.yml",
        dir.path(),
        &env(),
    )
    .unwrap();
    assert_eq!(
        config.host.textfile_directory.as_deref(),
        Some(dir.path().join("textfiles").as_path())
    );
    let found = problems("host: {textfile: {directory: /nonexistent/textfiles}}\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("host.textfile.directory: cannot read /nonexistent/textfiles"),
        "{}",
        found[0]
    );
    let found = problems("host: {textfile: {directory: ''}}\n");
    assert!(
        found[0].starts_with("host.textfile.directory: must not be empty"),
        "{found:?}"
    );
    let found = problems("host: {textfile: {dir: /tmp}}\n");
    assert!(
        found[0].contains("host.textfile.dir: unknown key `dir`"),
        "{found:?}"
    );
}

#[test]
fn host_collectors_start_from_node_exporter_defaults_and_switch_by_name() {
    let defaults = load("").unwrap().host.collectors;
    assert!(defaults.contains("cpu") && defaults.contains("textfile"));
    let config = load("host: {collectors: {cpu: false, arp: 'false'}}\n").unwrap();
    assert!(!config.host.collectors.contains("cpu"));
    assert!(!config.host.collectors.contains("arp"));
    assert_eq!(config.host.collectors.len(), defaults.len() - 2);
    assert_eq!(
        load("host: {collectors: {cpu: true}}\n")
            .unwrap()
            .host
            .collectors,
        defaults
    );
    let found = problems("host: {collectors: {cpux: true, meminfo: yes, arp: 1}}\n");
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("host.collectors.arp: `1` is not true or false"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("host.collectors.cpux: unknown collector `cpux`; known: arp,"),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("host.collectors.meminfo: `\"yes\"` is not true or false"),
        "{found:?}"
    );
}

#[test]
fn copies_are_validated_with_every_problem_named() {
    let found = problems(concat!(
        "backups:\n",
        "  - name: a\n    kind: files\n    paths: [/srv]\n    destination: /b/a\n    copies:\n",
        "      - {name: local, s3: {bucket: ok-bucket}}\n",
        "      - {name: lan, s3: {endpoint: 'http://10.0.0.5:9000', bucket: Bad_Bucket, prefix: '../x'}}\n",
        "      - {name: lan, s3: {endpoint: 'ftp://x', bucket: ok-bucket, secret_access_key_file: /nonexistent/secret}}\n",
    ));
    for needle in [
        "backups[0].copies[0].name: `local` names the job's own directory",
        "backups[0].copies[0].s3.access_key_id_file: missing: name a file holding it, or set AWS_ACCESS_KEY_ID",
        "backups[0].copies[1].s3.endpoint: `http://10.0.0.5:9000`: plain http is only for a server on this host",
        "backups[0].copies[1].s3.bucket: `Bad_Bucket` is not a bucket name",
        "backups[0].copies[1].s3.prefix: `../x` is not a key prefix",
        "backups[0].copies[2].name: `lan` is used twice in this job",
        "backups[0].copies[2].s3.endpoint: `ftp://x` is not an http(s) URL",
        "backups[0].copies[2].s3.secret_access_key_file: cannot read /nonexistent/secret",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(needle)),
            "missing {needle:?} in {found:#?}"
        );
    }
    // A named file that cannot be read is one problem, not also a missing credential.
    let unreadable = "backups[0].copies[2].s3.secret_access_key_file";
    assert_eq!(
        found.iter().filter(|p| p.starts_with(unreadable)).count(),
        1,
        "{found:#?}"
    );
}

#[test]
fn copy_credentials_come_from_the_environment_and_the_prefix_defaults_to_the_job() {
    let env = HashMap::from([
        ("AWS_ACCESS_KEY_ID".to_owned(), "AKID".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "from-env".to_owned()),
    ]);
    let config = Config::try_from_yaml(
        "backups:\n  - name: notes\n    kind: files\n    paths: [/srv]\n    destination: /b\n    retention: {keep_last: 3}\n    copies:\n      - {name: offsite, s3: {endpoint: 'http://127.0.0.1:9000/', bucket: backups, path_style: true}}\n",
        "test.yml",
        Path::new("."),
        &env,
    )
    .unwrap();
    let copy = &config.backups[0].copies[0];
    assert_eq!(copy.prefix, "notes");
    assert_eq!(copy.region, "us-east-1");
    assert_eq!(copy.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(copy.secret_access_key.expose_secret(), "from-env");
    assert!(copy.session_token.is_none());
    assert_eq!(copy.retention.keep_last, Some(3), "the job's retention");
    // The secret is not in the configuration's debug output.
    assert!(!format!("{config:?}").contains("from-env"));
}
