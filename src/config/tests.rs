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
        "host.timeout: invalid type",
        "host.dsik: unknown key",
        "extra: unknown key",
        "listen: `not-an-address` is not a socket address",
        "state_dir: must not be empty",
        "log.format: `yaml` is not one of: text, json",
        "web.max_concurrent_scrapes: must be at least 1",
        "web.request_timeout: `soon` is not a duration",
        "host.filesystem.mount_points_exclude: not a regular expression",
        "host.filesystem.stat_timeout: must be shorter than half of host.timeout",
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
