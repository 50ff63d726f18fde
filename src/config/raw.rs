//! The configuration as written: serde structs that mirror the YAML, with unknown keys rejected.
//!
//! Leaves that need parsing (durations, addresses, regular expressions) stay strings here and
//! are checked in [`super::validate`], so that every bad value is reported in one run.

use serde::Deserialize;

/// Booleans and numbers that may also arrive as strings: `${NAME}` expansion always produces a
/// string, so `enabled: ${HOST_METRICS}` must still read as a boolean. Durations the other way
/// round: a bare number is refused with a message saying that a unit is needed.
pub(crate) mod lenient {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either<T> {
        Typed(T),
        Text(String),
    }

    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        match Option::<Either<bool>>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Typed(b)) => Ok(Some(b)),
            Some(Either::Text(t)) => match t.as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(D::Error::custom("invalid value, expected true or false")),
            },
        }
    }

    /// A duration's text, checked later by [`super::super::duration`]. A number (`interval: 10`)
    /// is an error saying a unit is needed, rather than serde's "invalid type, expected a
    /// string"; `0` reads as `"0"`, which is a duration without a unit.
    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some("0".to_owned())),
            Some(Value::Number(n)) => {
                Err(D::Error::custom(super::super::needs_unit(&n.to_string())))
            }
            Some(_) => Err(D::Error::custom(
                "invalid type, expected a duration such as 30s or 5m",
            )),
        }
    }

    /// [`duration`] for a key that must be present.
    pub fn required_duration<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        duration(d)?.ok_or_else(|| D::Error::custom("expected a duration such as 30s or 5m"))
    }

    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<Either<u64>>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Typed(n)) => Ok(Some(n)),
            Some(Either::Text(t)) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom("invalid value, expected a whole number")),
        }
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub state_dir: Option<String>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub web: RawWeb,
    #[serde(default)]
    pub host: RawHost,
    #[serde(default)]
    pub postgres: Vec<RawPostgres>,
    #[serde(default)]
    pub sqlite: Vec<RawSqlite>,
    #[serde(default)]
    pub run_queues: Vec<RawRunQueue>,
    #[serde(default)]
    pub queries: Vec<RawQuery>,
    #[serde(default)]
    pub backups: Vec<RawBackup>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_concurrent_backups: Option<u64>,
    /// Each action's mapping: the common keys and one kind key, checked in `actions.rs`
    /// against the kinds' registry.
    #[serde(default)]
    pub actions: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub webhook: RawWebhook,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_concurrent_actions: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub config_file: Option<String>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub basic_auth_users: Option<std::collections::BTreeMap<String, String>>,
    pub tls: Option<RawTls>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_concurrent_scrapes: Option<u64>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub request_timeout: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub shutdown_grace: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_connections: Option<u64>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub header_read_timeout: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub idle_timeout: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub tls_handshake_timeout: Option<String>,
}

/// exporter-toolkit's `web-config.yml`, read from `web.config_file` unchanged.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebConfigFile {
    pub tls_server_config: Option<RawTls>,
    pub http_server_config: Option<RawHttpServer>,
    pub basic_auth_users: Option<std::collections::BTreeMap<String, String>>,
    pub rate_limit: Option<RawRateLimit>,
}

/// `tls_server_config` of a web-config file, or `web.tls` inline: the same keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<String>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub curve_preferences: Option<Vec<String>>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub prefer_server_cipher_suites: Option<bool>,
    // exporter-toolkit keys warden does not implement: known, so that they are reported as
    // unsupported rather than unknown. Their values are never read (`key` is a secret).
    pub cert: Option<serde::de::IgnoredAny>,
    pub key: Option<serde::de::IgnoredAny>,
    pub client_ca: Option<serde::de::IgnoredAny>,
    pub client_allowed_sans: Option<serde::de::IgnoredAny>,
}

/// `http_server_config` of a web-config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpServer {
    #[serde(default, deserialize_with = "lenient::bool")]
    pub http2: Option<bool>,
    pub headers: Option<std::collections::BTreeMap<String, String>>,
}

/// `rate_limit` of a web-config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    #[serde(default, deserialize_with = "lenient::u64")]
    pub burst: Option<u64>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    #[serde(default, deserialize_with = "lenient::bool")]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
    pub procfs: Option<String>,
    pub sysfs: Option<String>,
    pub rootfs: Option<String>,
    /// node_exporter collector names turned on (`true`) or off (`false`); checked in
    /// validation, so a misspelled name or value is an error naming it.
    #[serde(default)]
    pub collectors: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub filesystem: RawFilesystem,
    #[serde(default)]
    pub disk: RawDevices,
    #[serde(default)]
    pub network: RawDevices,
    #[serde(default)]
    pub textfile: RawTextfile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTextfile {
    pub directory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub mount_points_exclude: Option<String>,
    pub fs_types_exclude: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub stat_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    pub device_exclude: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPostgres {
    pub name: String,
    pub dsn: Option<String>,
    pub dsn_file: Option<String>,
    pub ca_file: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub size_interval: Option<String>,
    #[serde(default)]
    pub tables: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSqlite {
    pub name: String,
    pub path: String,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
    pub integrity_check: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub integrity_interval: Option<String>,
    #[serde(default)]
    pub row_counts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunQueue {
    pub name: String,
    pub target: String,
    pub table: Option<String>,
    pub from: Option<String>,
    pub status_column: String,
    pub states: std::collections::BTreeMap<String, Vec<String>>,
    pub queued_since: String,
    pub running_since: String,
    pub id_column: Option<String>,
    pub top_running: Option<u64>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuery {
    pub name: String,
    pub target: String,
    pub sql: String,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub interval: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
    pub metrics: Vec<RawQueryMetric>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueryMetric {
    pub name: String,
    pub help: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub value: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub const_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub fill: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub name: String,
    pub kind: String,
    pub source: Option<String>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub compression: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub level: Option<u64>,
    pub destination: String,
    pub schedule: Option<String>,
    #[serde(default)]
    pub retention: RawRetention,
    #[serde(default)]
    pub verify: RawVerify,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub timeout: Option<String>,
    #[serde(default)]
    pub copies: Vec<RawCopy>,
    pub incremental: Option<RawIncremental>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIncremental {
    #[serde(default, deserialize_with = "lenient::u64")]
    pub full_every: Option<u64>,
    pub full_schedule: Option<String>,
    pub retention: Option<RawRetention>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    pub name: String,
    pub s3: RawS3,
    pub retention: Option<RawRetention>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub bucket: String,
    pub prefix: Option<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub path_style: Option<bool>,
    pub access_key_id_file: Option<String>,
    pub secret_access_key_file: Option<String>,
    pub session_token_file: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    #[serde(default, deserialize_with = "lenient::u64")]
    pub keep_last: Option<u64>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub keep_within: Option<String>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub keep_daily: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub keep_weekly: Option<u64>,
    #[serde(default, deserialize_with = "lenient::u64")]
    pub keep_monthly: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVerify {
    #[serde(default)]
    pub required_tables: Vec<String>,
    #[serde(default, deserialize_with = "lenient::bool")]
    pub restore_test: Option<bool>,
    pub restore_test_schedule: Option<String>,
    pub integrity_check: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub match_equal: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub match_re: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub matchers: Vec<String>,
    pub status: Option<String>,
    #[serde(default)]
    pub actions: Vec<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub cooldown: Option<String>,
    #[serde(default, rename = "continue", deserialize_with = "lenient::bool")]
    pub continue_matching: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    #[serde(default, deserialize_with = "lenient::u64")]
    pub max_body_bytes: Option<u64>,
    pub instance_label: Option<String>,
    pub instance_pattern: Option<String>,
    #[serde(default, deserialize_with = "lenient::duration")]
    pub audit_retention: Option<String>,
}
