use std::collections::HashMap;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;

use super::*;
use crate::config::{Config, Error};

/// A self-signed P-256 certificate for `localhost` and its key, plus an unrelated key.
fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/web/testdata")
}

fn load_in(dir: &Path, text: &str) -> Result<Config, Error> {
    Config::try_from_yaml(text, "test.yml", dir, &HashMap::<String, String>::new())
}

fn problems_in(dir: &Path, text: &str) -> Vec<String> {
    match load_in(dir, text) {
        Err(Error::Invalid { problems }) => problems.iter().map(ToString::to_string).collect(),
        other => panic!("expected invalid config, got {other:?}"),
    }
}

fn assert_has(found: &[String], prefix: &str) {
    assert!(
        found.iter().any(|p| p.starts_with(prefix)),
        "no problem starting with {prefix:?} in {found:#?}"
    );
}

/// exporter-toolkit's `docs/web-config.yml`, as node_exporter documents it, unchanged but for
/// the certificate names.
const TOOLKIT_EXAMPLE: &str = r#"# TLS and basic authentication configuration example.
#
# Additionally, a certificate and a key file are needed.
tls_server_config:
  cert_file: server.crt
  key_file: server.key

# Usernames and passwords required to connect.
# Passwords are hashed with bcrypt: https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md#about-bcrypt.
basic_auth_users:
  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze
  bob: $2y$10$hLqFl9jSjoAAy95Z/zw8Ye8wkdMBM8c5Bn1ptYqP/AXyV0.oy0S8m

# Rate limiting requests on the endpoint using a token bucket
rate_limit:
  interval: "1s" # time interval between two requests, set to 0 to disable rate limiter
  burst: 20 # and permits a burst of up to 20 requests.
"#;

#[test]
fn reads_exporter_toolkits_example_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["server.crt", "server.key"] {
        std::fs::copy(testdata().join(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("web-config.yml"), TOOLKIT_EXAMPLE).unwrap();
    // Relative paths in the web-config file are relative to that file.
    let config = load_in(
        Path::new("/"),
        &format!(
            "web: {{config_file: {}}}\n",
            dir.path().join("web-config.yml").display()
        ),
    )
    .unwrap();
    let web = &config.web;
    let tls = web.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, dir.path().join("server.crt"));
    assert_eq!(tls.client_auth, ClientAuth::NoClientCert);
    assert_eq!(tls.versions.len(), 2);
    assert_eq!(
        web.basic_auth_users.keys().collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert!(web.authenticates());
    assert_eq!(
        web.rate_limit,
        Some(RateLimit {
            interval: std::time::Duration::from_secs(1),
            burst: 20
        })
    );
}

#[test]
fn inline_tls_and_users_are_the_same_options() {
    let hash = bcrypt::hash("pw", 4).unwrap();
    let config = load_in(
        &testdata(),
        &format!(
            "web:\n  tls: {{cert_file: server.crt, key_file: server.key, min_version: TLS13}}\n  basic_auth_users: {{prometheus: '{hash}'}}\n"
        ),
    )
    .unwrap();
    let tls = config.web.tls.unwrap();
    assert_eq!(tls.versions, [&rustls::version::TLS13]);
    assert_eq!(
        config.web.basic_auth_users["prometheus"].expose_secret(),
        hash
    );
}

#[test]
fn without_credentials_nothing_authenticates() {
    let config = load_in(&testdata(), "").unwrap();
    assert!(!config.web.authenticates());
    let config = load_in(&testdata(), "web: {bearer_token: t}\n").unwrap();
    assert!(config.web.authenticates());
}

#[test]
fn bad_certificate_key_and_ca_files_are_reported_with_their_key_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.pem"), "not a certificate\n").unwrap();
    for name in ["server.crt", "server.key", "other.key"] {
        std::fs::copy(testdata().join(name), dir.path().join(name)).unwrap();
    }
    let found = problems_in(
        dir.path(),
        "web: {tls: {cert_file: missing.crt, key_file: server.key}}\n",
    );
    assert_has(&found, "web.tls.cert_file: cannot read ");
    let found = problems_in(
        dir.path(),
        "web: {tls: {cert_file: junk.pem, key_file: server.key}}\n",
    );
    assert_has(&found, "web.tls.cert_file: ");
    assert!(found[0].contains("holds no PEM certificate"), "{found:?}");
    let found = problems_in(
        dir.path(),
        "web: {tls: {cert_file: server.crt, key_file: junk.pem}}\n",
    );
    assert_has(&found, "web.tls.key_file: ");
    let found = problems_in(
        dir.path(),
        "web: {tls: {cert_file: server.crt, key_file: other.key}}\n",
    );
    assert_has(&found, "web.tls.key_file: ");
    assert!(found[0].contains("cannot be used with"), "{found:?}");
    let found = problems_in(
        dir.path(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, client_auth_type: RequireAndVerifyClientCert, client_ca_file: junk.pem}}\n",
    );
    assert_has(&found, "web.tls.client_ca_file: ");
    // The key's content never reaches a message.
    let key = std::fs::read_to_string(dir.path().join("other.key")).unwrap();
    let body = key.lines().nth(1).unwrap();
    assert!(found.iter().all(|p| !p.contains(body)));
}

#[test]
fn client_auth_needs_a_matching_ca_setting() {
    let found = problems_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, client_auth_type: VerifyClientCertIfGiven}}\n",
    );
    assert_has(&found, "web.tls.client_ca_file: required");
    let found = problems_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, client_ca_file: server.crt}}\n",
    );
    assert_has(
        &found,
        "web.tls.client_ca_file: set without a client_auth_type",
    );
    let found = problems_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, client_auth_type: Sometimes}}\n",
    );
    assert_has(
        &found,
        "web.tls.client_auth_type: `Sometimes` is not one of",
    );
    let config = load_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, client_auth_type: RequireAndVerifyClientCert, client_ca_file: server.crt}}\n",
    )
    .unwrap();
    assert_eq!(
        config.web.tls.unwrap().client_auth,
        ClientAuth::RequireAndVerifyClientCert
    );
}

#[test]
fn go_cipher_suite_names_map_to_rustls() {
    let mut problems = Problems::default();
    let names: Vec<String> = [
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_AES_128_GCM_SHA256",
    ]
    .map(str::to_owned)
    .to_vec();
    let suites = map_cipher_suites(&names, "x", &mut problems);
    assert!(problems.0.is_empty(), "{:?}", problems.0);
    let tls12: Vec<SupportedCipherSuite> = suites
        .iter()
        .copied()
        .filter(|s| s.tls13().is_none())
        .collect();
    // TLS 1.2 is restricted to the list, in its order; TLS 1.3 keeps every suite, as in Go.
    assert_eq!(
        tls12,
        [
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        ]
    );
    assert_eq!(suites.len() - tls12.len(), 3);
}

#[test]
fn unknown_cipher_suites_curves_and_versions_are_refused_clearly() {
    let found = problems_in(
        &testdata(),
        "web:\n  tls:\n    cert_file: server.crt\n    key_file: server.key\n    cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_128_CBC_SHA, TLS_INVENTED]\n    curve_preferences: [X25519, CurveP521]\n    min_version: TLS10\n    max_version: TLS14\n    prefer_server_cipher_suites: false\n",
    );
    assert_has(
        &found,
        "web.tls.cipher_suites[1]: `TLS_RSA_WITH_AES_128_CBC_SHA` is not a cipher suite warden's TLS library (rustls) implements",
    );
    assert_has(&found, "web.tls.cipher_suites[2]: `TLS_INVENTED`");
    assert_has(&found, "web.tls.curve_preferences[1]: `CurveP521`");
    assert_has(
        &found,
        "web.tls.min_version: warden supports TLS12 and TLS13 only",
    );
    assert_has(&found, "web.tls.max_version: `TLS14` is not one of");
    assert_eq!(found.len(), 5, "{found:#?}");
}

#[test]
fn unknown_keys_in_the_web_config_file_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yml");
    std::fs::write(
        &file,
        "tls_server_config:\n  cert_file: a\n  bogus: 1\nhttp_server_config:\n  headers:\n    X-Powered-By: warden\n    X-Frame-Options: allow\nsurprise: true\n",
    )
    .unwrap();
    let found = problems_in(
        dir.path(),
        &format!("web: {{config_file: {}}}\n", file.display()),
    );
    let shown = file.display().to_string();
    assert_has(
        &found,
        &format!("{shown}: tls_server_config.bogus: unknown key"),
    );
    assert_has(&found, &format!("{shown}: surprise: unknown key"));
    assert_has(
        &found,
        &format!(
            "{shown}: http_server_config.headers.X-Powered-By: this header cannot be configured"
        ),
    );
    assert_has(
        &found,
        &format!("{shown}: http_server_config.headers.X-Frame-Options: `allow` is not one of"),
    );
}

#[test]
fn unsupported_toolkit_keys_say_so() {
    let found = problems_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key, key: 'SECRET-PEM', client_allowed_sans: [a]}}\n",
    );
    assert_has(&found, "web.tls.key: not supported by warden");
    assert_has(
        &found,
        "web.tls.client_allowed_sans: not supported by warden",
    );
    assert!(found.iter().all(|p| !p.contains("SECRET-PEM")));
}

#[test]
fn a_config_file_and_inline_settings_conflict() {
    let found = problems_in(
        &testdata(),
        "web: {config_file: web.yml, basic_auth_users: {a: b}}\n",
    );
    assert_has(&found, "web.config_file: set either web.config_file or");
    let mut config = load_in(
        &testdata(),
        "web: {tls: {cert_file: server.crt, key_file: server.key}}\n",
    )
    .unwrap();
    match config.override_web_config_file(Path::new("/nonexistent/web.yml")) {
        Err(Error::Invalid { problems }) => {
            assert_eq!(problems[0].path, "--web.config.file", "{problems:?}")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn bad_hashes_are_refused_without_showing_them() {
    let found = problems_in(
        &testdata(),
        "web: {basic_auth_users: {alice: plaintext-password}}\n",
    );
    assert_has(&found, "web.basic_auth_users.alice: not a bcrypt hash");
    assert!(found.iter().all(|p| !p.contains("plaintext-password")));
}

#[test]
fn connection_limits_have_defaults_and_checks() {
    let config = load_in(&testdata(), "").unwrap();
    assert_eq!(config.web.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        config.web.header_read_timeout,
        std::time::Duration::from_secs(10)
    );
    let found = problems_in(
        &testdata(),
        "web: {max_connections: 0, idle_timeout: 20s, tls_handshake_timeout: never}\n",
    );
    assert_has(&found, "web.max_connections: must be at least 1");
    assert_has(
        &found,
        "web.idle_timeout: must be longer than web.request_timeout",
    );
    assert_has(
        &found,
        "web.tls_handshake_timeout: `never` is not a duration",
    );
}
