//! The `web` section: listener limits, authentication and TLS.
//!
//! TLS and basic-auth users come either inline (`web.tls`, `web.basic_auth_users`) or from an
//! exporter-toolkit `web-config.yml` named by `web.config_file` (or `warden serve
//! --web.config.file`), never both. The file is read as exporter-toolkit reads it: the same
//! keys, unknown ones rejected, relative paths taken from the file's own directory, the same
//! restricted set of `http_server_config.headers`. Certificates, keys and client CAs are loaded
//! here, so a bad file is a configuration problem with its key path, found before anything
//! binds. Secrets (tokens, password hashes, private keys) never reach a message.
//!
//! Differences from exporter-toolkit, all reported rather than silently ignored: only TLS 1.2
//! and 1.3 and the cipher suites and curves rustls (ring) implements; `cert`, `key`,
//! `client_ca` inline PEM and `client_allowed_sans` are refused as unsupported; the file is read
//! once at start-up (certificate files themselves are re-read when they change); and
//! `http_server_config.http2` is accepted but warden serves HTTP/1.1 only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use secrecy::SecretString;
use serde_json::Value;

use super::Problems;
use super::raw::{RawRateLimit, RawTls, RawWeb, RawWebConfigFile};

/// The default for `web.max_connections`: well under the common soft limit of 1024 open files,
/// so that connections alone cannot exhaust warden's descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// The most `web.max_connections` may allow.
const MAX_CONNECTIONS: usize = 65_536;

/// HTTP server settings.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The exporter-toolkit web-config file TLS, users, headers and rate limit came from.
    pub config_file: Option<PathBuf>,
    /// When set, `Authorization: Bearer <token>` is accepted on every endpoint but `/healthz`.
    pub bearer_token: Option<SecretString>,
    /// Basic-auth users and their bcrypt hashes; when not empty, `Authorization: Basic` with a
    /// listed user is accepted on every endpoint but `/healthz`.
    pub basic_auth_users: BTreeMap<String, SecretString>,
    /// TLS for the listener; plain HTTP when absent.
    pub tls: Option<TlsConfig>,
    /// Headers added to every response (`http_server_config.headers`).
    pub headers: Vec<(String, String)>,
    /// exporter-toolkit's token-bucket request limit; requests beyond it get 429.
    pub rate_limit: Option<RateLimit>,
    /// Scrapes answered at once; more get 503 right away instead of queueing.
    pub max_concurrent_scrapes: usize,
    /// The longest any scrape or page request may take.
    pub request_timeout: Duration,
    /// How long shutdown waits for running work before abandoning it.
    pub shutdown_grace: Duration,
    /// Open connections at most; further ones wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, counted from the end of the
    /// previous response on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    pub idle_timeout: Duration,
    /// How long a TLS handshake may take.
    pub tls_handshake_timeout: Duration,
}

impl WebConfig {
    /// Whether requests must authenticate (a bearer token or basic-auth users are configured).
    pub fn authenticates(&self) -> bool {
        self.bearer_token.is_some() || !self.basic_auth_users.is_empty()
    }
}

/// TLS settings, validated: the files exist and parse, the names map to rustls.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The certificate chain (PEM), re-read when it changes.
    pub cert_file: PathBuf,
    /// The private key (PEM), re-read with the certificate.
    pub key_file: PathBuf,
    /// Whether and how client certificates are asked for and checked.
    pub client_auth: ClientAuth,
    /// The CAs client certificates are verified against.
    pub client_ca_file: Option<PathBuf>,
    /// The protocol versions offered, from `min_version` to `max_version`.
    pub versions: Vec<&'static SupportedProtocolVersion>,
    /// ring with the configured cipher suites and key-exchange groups, in preference order.
    pub provider: Arc<CryptoProvider>,
    /// Whether the server's cipher-suite order wins over the client's.
    pub prefer_server_cipher_suites: bool,
}

/// exporter-toolkit's `client_auth_type`, with Go's meanings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`: no certificate is asked for.
    NoClientCert,
    /// `RequestClientCert`: asked for, not required, not verified.
    RequestClientCert,
    /// `RequireAnyClientCert`: required, not verified against a CA.
    RequireAnyClientCert,
    /// `VerifyClientCertIfGiven`: optional, verified when given.
    VerifyClientCertIfGiven,
    /// `RequireAndVerifyClientCert`: required and verified.
    RequireAndVerifyClientCert,
}

/// A token bucket: `burst` requests at once, refilled by one every `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The time between two refills.
    pub interval: Duration,
    /// The bucket's size.
    pub burst: u32,
}

/// Why a certificate, key or CA file could not be used. Never holds the files' content.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM block of the expected kind, or a malformed one.
    #[error("{} holds no PEM {what}", path.display())]
    NoPem {
        /// The file.
        path: PathBuf,
        /// What was looked for: `certificate`, `private key`.
        what: &'static str,
    },
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("{} cannot be used with {}", key.display(), cert.display())]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
    /// A CA certificate could not be added to the trust store.
    #[error("{} holds a CA certificate that cannot be used", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::Error,
    },
}

/// Loads a certificate chain and its private key, checking that they belong together.
///
/// # Errors
/// When a file cannot be read or parsed, or the key does not match the certificate.
pub fn load_certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsFileError> {
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| no_pem(cert, "certificate"))?;
    if chain.is_empty() {
        return Err(no_pem(cert, "certificate"));
    }
    let key_pem = read(key)?;
    let private =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| no_pem(key, "private key"))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsFileError::Rejected {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

/// Loads the CA certificates client certificates are verified against.
///
/// # Errors
/// When the file cannot be read, holds no certificate, or one cannot be used as a CA.
pub fn load_client_roots(path: &Path) -> Result<RootCertStore, TlsFileError> {
    let pem = read(path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|_| no_pem(path, "certificate"))?;
    if certs.is_empty() {
        return Err(no_pem(path, "certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|source| TlsFileError::BadCa {
            path: path.to_owned(),
            source,
        })?;
    }
    Ok(roots)
}

/// An error and its causes on one line, as `a: b: c`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_owned(),
        source,
    })
}

fn no_pem(path: &Path, what: &'static str) -> TlsFileError {
    TlsFileError::NoPem {
        path: path.to_owned(),
        what,
    }
}

/// Validates the `web` section; `base` is the directory of warden's configuration file.
pub(super) fn validate(raw: RawWeb, base: &Path, problems: &mut Problems) -> WebConfig {
    let bearer_token = super::secret(
        raw.bearer_token,
        raw.bearer_token_file,
        "web.bearer_token",
        base,
        problems,
    );
    let max_concurrent_scrapes = super::bounded_count(
        raw.max_concurrent_scrapes,
        4,
        super::MAX_CONCURRENT_SCRAPES,
        "web.max_concurrent_scrapes",
        problems,
    );
    let duration = |value, default, path, problems: &mut Problems| {
        super::duration(value, default, path, problems)
    };
    let mut web = WebConfig {
        config_file: None,
        bearer_token,
        basic_auth_users: BTreeMap::new(),
        tls: None,
        headers: Vec::new(),
        rate_limit: None,
        max_concurrent_scrapes,
        request_timeout: duration(raw.request_timeout, "30s", "web.request_timeout", problems),
        shutdown_grace: duration(raw.shutdown_grace, "10s", "web.shutdown_grace", problems),
        max_connections: super::bounded_count(
            raw.max_connections,
            DEFAULT_MAX_CONNECTIONS,
            MAX_CONNECTIONS,
            "web.max_connections",
            problems,
        ),
        header_read_timeout: duration(
            raw.header_read_timeout,
            "10s",
            "web.header_read_timeout",
            problems,
        ),
        idle_timeout: duration(raw.idle_timeout, "2m", "web.idle_timeout", problems),
        tls_handshake_timeout: duration(
            raw.tls_handshake_timeout,
            "10s",
            "web.tls_handshake_timeout",
            problems,
        ),
    };
    let parsed =
        !problems.concerns("web.request_timeout") && !problems.concerns("web.idle_timeout");
    // No byte moves while a scrape's collectors run: a shorter idle timeout would cut it off.
    if parsed && web.idle_timeout <= web.request_timeout {
        problems.push(
            "web.idle_timeout",
            format!(
                "must be longer than web.request_timeout ({}), or a slow scrape is cut off",
                humantime::format_duration(web.request_timeout)
            ),
        );
    }

    let inline = raw.tls.is_some() || raw.basic_auth_users.is_some();
    match raw.config_file {
        Some(_) if inline => {
            problems.push(
                "web.config_file",
                "set either web.config_file or web.tls/web.basic_auth_users, not both",
            );
        }
        Some(file) => apply_config_file(&mut web, &base.join(file), problems),
        None => {
            let keys = Keys {
                tls: "web.tls".to_owned(),
                users: "web.basic_auth_users".to_owned(),
            };
            if let Some(tls) = raw.tls {
                web.tls = validate_tls(tls, base, &keys.tls, problems);
            }
            web.basic_auth_users = validate_users(raw.basic_auth_users, &keys.users, problems);
        }
    }
    web
}

/// Replaces TLS, users, headers and rate limit with those of an exporter-toolkit web-config
/// file (`warden serve --web.config.file`). Inline `web.tls` or `web.basic_auth_users` in
/// warden's own file conflict with it.
pub(super) fn override_config_file(web: &mut WebConfig, path: &Path, problems: &mut Problems) {
    if web.config_file.is_none() && (web.tls.is_some() || !web.basic_auth_users.is_empty()) {
        problems.push(
            "--web.config.file",
            "the configuration sets web.tls or web.basic_auth_users; use one or the other",
        );
        return;
    }
    web.tls = None;
    web.basic_auth_users.clear();
    web.headers.clear();
    web.rate_limit = None;
    apply_config_file(web, path, problems);
}

/// Where problems are reported: inline keys, or keys inside the web-config file.
struct Keys {
    tls: String,
    users: String,
}

fn apply_config_file(web: &mut WebConfig, path: &Path, problems: &mut Problems) {
    web.config_file = Some(path.to_owned());
    let shown = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            problems.push("web.config_file", format!("cannot read {shown}: {err}"));
            return;
        }
    };
    let tree: Value = if text.trim().is_empty() {
        Value::Object(Default::default())
    } else {
        let options = serde_saphyr::options! { strict_booleans: true };
        match serde_saphyr::from_str_with_options(&text, options) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(tree) => tree,
            Err(err) => {
                problems.push(
                    "web.config_file",
                    format!(
                        "{shown} is not valid YAML: {}",
                        super::syntax_message(&err.to_string())
                    ),
                );
                return;
            }
        }
    };
    // Structural problems carry the key path inside the file, prefixed with the file.
    let mut inner = Problems::default();
    let raw: Option<RawWebConfigFile> = super::deserialize_reporting_all(tree, &mut inner);
    for problem in inner.0 {
        problems.push(format!("{shown}: {}", problem.path), problem.message);
    }
    let Some(raw) = raw else { return };
    let dir = path.parent().unwrap_or(Path::new("."));
    let keys = Keys {
        tls: format!("{shown}: tls_server_config"),
        users: format!("{shown}: basic_auth_users"),
    };
    if let Some(tls) = raw.tls_server_config {
        web.tls = validate_tls(tls, dir, &keys.tls, problems);
    }
    web.basic_auth_users = validate_users(raw.basic_auth_users, &keys.users, problems);
    if let Some(http) = raw.http_server_config {
        // `http2` is accepted for compatibility; warden serves HTTP/1.1 only.
        let _ = http.http2;
        let path = format!("{shown}: http_server_config.headers");
        web.headers = validate_headers(http.headers.unwrap_or_default(), &path, problems);
    }
    if let Some(limit) = raw.rate_limit {
        web.rate_limit = validate_rate_limit(limit, &format!("{shown}: rate_limit"), problems);
    }
}

/// The headers exporter-toolkit lets a web-config file set, with the values it allows (empty:
/// any value). Names are matched exactly, as exporter-toolkit does.
const ALLOWED_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn validate_headers(
    headers: BTreeMap<String, String>,
    path: &str,
    problems: &mut Problems,
) -> Vec<(String, String)> {
    let mut valid = Vec::new();
    for (name, value) in headers {
        let key = format!("{path}.{name}");
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            problems.push(
                key,
                format!(
                    "this header cannot be configured; allowed: {}",
                    names.join(", ")
                ),
            );
            continue;
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            problems.push(
                key,
                format!("`{value}` is not one of: {}", allowed.join(", ")),
            );
            continue;
        }
        if axum::http::HeaderValue::from_str(&value).is_err() {
            problems.push(key, "not a valid header value");
            continue;
        }
        valid.push((name, value));
    }
    valid
}

fn validate_rate_limit(
    raw: RawRateLimit,
    path: &str,
    problems: &mut Problems,
) -> Option<RateLimit> {
    let interval = match raw.interval.as_deref().map(str::trim) {
        None | Some("0") => Duration::ZERO,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) => d,
            Err(_) => {
                problems.push(
                    format!("{path}.interval"),
                    format!("`{text}` is not a duration such as 100ms or 1s"),
                );
                return None;
            }
        },
    };
    if interval.is_zero() {
        return None;
    }
    match raw.burst {
        Some(burst @ 1..=1_000_000) => Some(RateLimit {
            interval,
            burst: burst as u32,
        }),
        _ => {
            problems.push(
                format!("{path}.burst"),
                "must be between 1 and 1000000 when an interval is set",
            );
            None
        }
    }
}

fn validate_users(
    users: Option<BTreeMap<String, String>>,
    path: &str,
    problems: &mut Problems,
) -> BTreeMap<String, SecretString> {
    let mut valid = BTreeMap::new();
    for (user, hash) in users.unwrap_or_default() {
        if user.contains(':') {
            problems.push(format!("{path}.{user}"), "a user name cannot contain `:`");
            continue;
        }
        // The hash itself is never shown: a weak password's hash is worth hiding too.
        if bcrypt::HashParts::from_str(&hash).is_err() {
            problems.push(
                format!("{path}.{user}"),
                "not a bcrypt hash (such as `$2y$10$…` from `htpasswd -nBC 10 USER`)",
            );
            continue;
        }
        valid.insert(user, SecretString::from(hash));
    }
    valid
}

/// Go's names for the cipher suites rustls' ring provider implements, with Go's aliases.
const CIPHER_SUITES: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_AES_128_GCM_SHA256",
        cipher_suite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        cipher_suite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
];

/// The cipher suites for Go names, in the given order. As in Go, the list restricts TLS 1.2
/// only: every TLS 1.3 suite stays enabled.
pub(super) fn map_cipher_suites(
    names: &[String],
    path: &str,
    problems: &mut Problems,
) -> Vec<SupportedCipherSuite> {
    let mut tls12 = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match CIPHER_SUITES.iter().find(|(n, _)| n == name) {
            Some((_, suite)) if suite.tls13().is_none() => {
                if !tls12.contains(suite) {
                    tls12.push(*suite);
                }
            }
            Some(_) => {}
            None => {
                let known: Vec<&str> = CIPHER_SUITES.iter().map(|(n, _)| *n).collect();
                problems.push(
                    format!("{path}[{i}]"),
                    format!(
                        "`{name}` is not a cipher suite warden's TLS library (rustls) implements; use one of: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
    let mut suites: Vec<SupportedCipherSuite> = rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .copied()
        .filter(|s| s.tls13().is_some())
        .collect();
    suites.extend(tls12);
    suites
}

fn validate_tls(raw: RawTls, dir: &Path, path: &str, problems: &mut Problems) -> Option<TlsConfig> {
    let before = problems.0.len();
    for (set, key) in [
        (raw.cert.is_some(), "cert"),
        (raw.key.is_some(), "key"),
        (raw.client_ca.is_some(), "client_ca"),
        (raw.client_allowed_sans.is_some(), "client_allowed_sans"),
    ] {
        if set {
            problems.push(
                format!("{path}.{key}"),
                "not supported by warden; use cert_file, key_file and client_ca_file",
            );
        }
    }
    let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    // exporter-toolkit: a section without any file or client auth means plain HTTP.
    if empty(&raw.cert_file)
        && empty(&raw.key_file)
        && empty(&raw.client_ca_file)
        && empty(&raw.client_auth_type)
    {
        return None;
    }
    let file = |value: Option<String>, key: &str, problems: &mut Problems| match value {
        Some(v) if !v.is_empty() => Some(dir.join(v)),
        _ => {
            problems.push(format!("{path}.{key}"), "missing");
            None
        }
    };
    let cert_file = file(raw.cert_file, "cert_file", problems);
    let key_file = file(raw.key_file, "key_file", problems);
    let client_ca_file = raw
        .client_ca_file
        .filter(|v| !v.is_empty())
        .map(|v| dir.join(v));

    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("" | "NoClientCert") => ClientAuth::NoClientCert,
        Some("RequestClientCert") => ClientAuth::RequestClientCert,
        // `RequireClientCert` is exporter-toolkit's older spelling.
        Some("RequireAnyClientCert" | "RequireClientCert") => ClientAuth::RequireAnyClientCert,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyClientCertIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::RequireAndVerifyClientCert,
        Some(other) => {
            problems.push(
                format!("{path}.client_auth_type"),
                format!(
                    "`{other}` is not one of: NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                ),
            );
            ClientAuth::NoClientCert
        }
    };
    let verifies = matches!(
        client_auth,
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
    );
    match (&client_ca_file, client_auth) {
        (Some(_), ClientAuth::NoClientCert) => problems.push(
            format!("{path}.client_ca_file"),
            "set without a client_auth_type that asks for client certificates",
        ),
        (None, _) if verifies => problems.push(
            format!("{path}.client_ca_file"),
            "required to verify client certificates",
        ),
        (Some(ca), _) => {
            if let Err(err) = load_client_roots(ca) {
                problems.push(format!("{path}.client_ca_file"), chain(&err));
            }
        }
        _ => {}
    }

    let version =
        |value: Option<String>, default: u8, key: &str, problems: &mut Problems| match value
            .as_deref()
        {
            None | Some("") => default,
            Some("TLS12") => 12,
            Some("TLS13") => 13,
            Some("TLS10" | "TLS11") => {
                problems.push(
                    format!("{path}.{key}"),
                    "warden supports TLS12 and TLS13 only",
                );
                default
            }
            Some(other) => {
                problems.push(
                    format!("{path}.{key}"),
                    format!("`{other}` is not one of: TLS12, TLS13"),
                );
                default
            }
        };
    let min = version(raw.min_version, 12, "min_version", problems);
    let max = version(raw.max_version, 13, "max_version", problems);
    if min > max {
        problems.push(
            format!("{path}.min_version"),
            "must not be above max_version",
        );
    }
    let versions: Vec<&'static SupportedProtocolVersion> =
        [(12, &rustls::version::TLS12), (13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, version)| version)
            .collect();

    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &raw.cipher_suites {
        provider.cipher_suites =
            map_cipher_suites(names, &format!("{path}.cipher_suites"), problems);
    }
    if let Some(curves) = &raw.curve_preferences {
        let mut groups = Vec::new();
        for (i, curve) in curves.iter().enumerate() {
            match curve.as_str() {
                "X25519" => groups.push(kx_group::X25519),
                "CurveP256" => groups.push(kx_group::SECP256R1),
                "CurveP384" => groups.push(kx_group::SECP384R1),
                other => problems.push(
                    format!("{path}.curve_preferences[{i}]"),
                    format!(
                        "`{other}` is not a curve warden's TLS library (rustls) implements; use one of: X25519, CurveP256, CurveP384"
                    ),
                ),
            }
        }
        if !groups.is_empty() {
            provider.kx_groups = groups;
        }
    }
    let provider = Arc::new(provider);

    if let (Some(cert), Some(key)) = (&cert_file, &key_file)
        && let Err(err) = load_certified_key(cert, key, &provider)
    {
        let key_path = match &err {
            TlsFileError::Read { path: p, .. } | TlsFileError::NoPem { path: p, .. }
                if p == key =>
            {
                "key_file"
            }
            TlsFileError::Rejected { .. } => "key_file",
            _ => "cert_file",
        };
        problems.push(format!("{path}.{key_path}"), chain(&err));
    }
    if problems.0.len() > before {
        return None;
    }
    Some(TlsConfig {
        cert_file: cert_file?,
        key_file: key_file?,
        client_auth,
        client_ca_file,
        versions,
        provider,
        prefer_server_cipher_suites: raw.prefer_server_cipher_suites.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests;
