//! warden's configuration: YAML in, a validated, typed [`Config`] out.
//!
//! Loading runs in three steps, all before anything binds a port:
//! 1. parse the YAML into a tree and expand `${NAME}` references in string values
//!    ([`expand`]);
//! 2. deserialize the tree into the raw serde structs ([`raw`]), where unknown keys and wrong
//!    types are errors;
//! 3. validate the raw structs into typed values (durations, socket addresses, regular
//!    expressions, secrets read from `*_file` keys).
//!
//! Every problem of every step is collected and reported at once, each with its key path.
//! Without a file, [`Config::default`] is the embedded default: host metrics and warden's own,
//! on `127.0.0.1:9798`, with state under `./warden-data`.

mod actions;
mod backups;
mod error;
pub mod expand;
mod raw;
mod sources;
mod web;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use secrecy::SecretString;
use serde_json::Value;

pub use actions::{
    ActConfig, ActionConfig, DEFAULT_MAX_BODY_BYTES, MatchOp, Matcher, RouteConfig, StatusFilter,
    WebhookConfig,
};
pub use backups::{
    BackupConfig, Compression, CopyConfig, FilesConfig, IncrementalConfig, Schedule, VerifyConfig,
    build_globs,
};
pub(crate) use backups::{globs, incremental};
pub use error::Problems;
pub use error::{Error, Problem};
pub use expand::{Env, ProcessEnv};
/// A backup job's raw keys, for the backup kinds' parsers.
pub(crate) use raw::RawBackup;
use raw::RawConfig;
/// serde helpers for raw structs elsewhere (the action kinds): lenient durations.
pub(crate) use raw::lenient;
pub use sources::{
    IntegrityCheck, MetricType, PostgresConfig, QueryConfig, QueryMetric, RunQueueConfig, RunState,
    Sources, SqliteConfig, Target, is_identifier,
};
pub use web::{
    ClientAuth, DEFAULT_MAX_CONNECTIONS, RateLimit, TlsConfig, TlsFileError, WebConfig,
    load_certified_key, load_client_roots,
};

/// The default listen address: loopback only, on warden's port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9798";
/// The default state directory, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = "./warden-data";
/// Mount points the filesystem collector skips by default (node_exporter's default).
pub const DEFAULT_MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// Filesystem types the filesystem collector skips by default (node_exporter's default).
pub const DEFAULT_FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs)$";
/// Block devices the disk collector skips by default: partitions, loop and zram devices
/// (node_exporter's default).
pub const DEFAULT_DISK_DEVICE_EXCLUDE: &str =
    "^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\\d+n\\d+p)\\d+$";
/// The most scrapes `web.max_concurrent_scrapes` may allow at once.
pub const MAX_CONCURRENT_SCRAPES: usize = 1024;
/// Time a scrape needs beyond its collectors: merging, encoding, writing the response.
const SCRAPE_MARGIN: Duration = Duration::from_secs(1);
/// Structural errors reported before giving up on deserializing; a bound on pathological files.
const MAX_STRUCTURAL_PROBLEMS: usize = 100;

/// Where warden looks for its configuration when neither `--config` nor `WARDEN_CONFIG`
/// names one, in order: the working directory, then the system-wide place.
pub const SEARCH_PATHS: [&str; 2] = ["warden.yml", "/etc/warden/warden.yml"];

/// The configuration file to load: `explicit` (from `--config` or `WARDEN_CONFIG`) when
/// given, else the first of [`SEARCH_PATHS`] that exists; `None` means the built-in default.
pub fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    SEARCH_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|candidate| candidate.is_file())
}

/// Where a configuration came from, for messages ("no backup job named `x` in …").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A file.
    File(PathBuf),
    /// The built-in default: no file was given or found.
    BuiltIn,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::BuiltIn => write!(
                f,
                "the built-in default configuration (no --config or WARDEN_CONFIG, and none of {} exists)",
                SEARCH_PATHS.join(", ")
            ),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from.
    pub origin: Origin,
    /// Where the HTTP server listens.
    pub listen: SocketAddr,
    /// Where warden keeps its state.
    pub state_dir: PathBuf,
    /// Log output.
    pub log: LogConfig,
    /// HTTP server limits and authentication.
    pub web: WebConfig,
    /// The host collector.
    pub host: HostConfig,
    /// PostgreSQL servers, SQLite files, run queues and user queries.
    pub sources: Sources,
    /// Backup jobs.
    pub backups: Vec<BackupConfig>,
    /// How many backups may run at once in this process.
    pub max_concurrent_backups: usize,
    /// Actions, the routes from alerts to them, and the webhook's settings.
    pub act: ActConfig,
}

/// Log output settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Human-readable or JSON lines.
    pub format: LogFormat,
    /// A tracing filter directive such as `info` or `warden=debug`.
    pub level: String,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The host collector's settings.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Whether host metrics are collected at all.
    pub enabled: bool,
    /// The longest one host collection may take.
    pub timeout: Duration,
    /// Where procfs is mounted (`/proc`; another path when watching a host from a container).
    pub procfs: PathBuf,
    /// Where sysfs is mounted (`/sys`; `/host/sys` in a container).
    pub sysfs: PathBuf,
    /// The host collectors that run, by node_exporter collector name: node_exporter's defaults
    /// changed by `host.collectors` (see [`crate::collect::host::COLLECTORS`]).
    pub collectors: BTreeSet<&'static str>,
    /// Where the host's root filesystem is mounted (`/`; `/host` in a container): mount points
    /// read from procfs are stat'ed under it.
    pub rootfs: PathBuf,
    /// Filesystem metrics.
    pub filesystem: FilesystemConfig,
    /// Block devices the disk metrics skip.
    pub disk_device_exclude: Option<Regex>,
    /// Network interfaces the network metrics skip.
    pub network_device_exclude: Option<Regex>,
    /// node_exporter's textfile directory: its `*.prom` files are exported (relative to the
    /// configuration file's directory); the textfile collector runs only when set.
    pub textfile_directory: Option<PathBuf>,
}

/// Filesystem collector settings.
#[derive(Debug, Clone)]
pub struct FilesystemConfig {
    /// Mount points to skip.
    pub mount_points_exclude: Option<Regex>,
    /// Filesystem types to skip.
    pub fs_types_exclude: Option<Regex>,
    /// How long one `statfs` may take before the mount counts as stuck (node_exporter #244).
    pub stat_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        // The embedded default is the empty document, validated like any file; it cannot fail.
        validate(
            RawConfig::default(),
            Path::new("."),
            &ProcessEnv,
            Problems::default(),
        )
        .unwrap_or_else(|problems| {
            unreachable!("the embedded default configuration is invalid: {problems:?}")
        })
    }
}

impl Config {
    /// Reads, expands and validates a configuration file.
    ///
    /// # Errors
    /// [`Error::Read`] if the file cannot be read, [`Error::Syntax`] if it is not YAML, and
    /// [`Error::Invalid`] with every problem found otherwise.
    pub fn try_from_file(path: &Path, env: &dyn Env) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Self::try_from_yaml(&text, &path.display().to_string(), base, env)?;
        config.origin = Origin::File(path.to_owned());
        Ok(config)
    }

    /// Takes TLS, basic-auth users, headers and rate limit from an exporter-toolkit web-config
    /// file instead of `web.config_file` (`warden serve --web.config.file`).
    ///
    /// # Errors
    /// [`Error::Invalid`] with every problem of the file, or when the configuration also sets
    /// `web.tls` or `web.basic_auth_users` inline.
    pub fn override_web_config_file(&mut self, path: &Path) -> Result<(), Error> {
        let mut problems = Problems::default();
        web::override_config_file(&mut self.web, path, &mut problems);
        if problems.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                problems: problems.0,
            })
        }
    }

    /// Parses and validates configuration text; `name` labels syntax errors and `base` is the
    /// directory relative `*_file` paths are read from.
    ///
    /// # Errors
    /// As [`Config::try_from_file`].
    pub fn try_from_yaml(
        text: &str,
        name: &str,
        base: &Path,
        env: &dyn Env,
    ) -> Result<Config, Error> {
        let mut tree: Value = if text.trim().is_empty() {
            Value::Object(Default::default())
        } else {
            // YAML 1.2 booleans only: under YAML 1.1 rules a value such as `n` or `no` would
            // silently turn into `false`.
            let options = serde_saphyr::options! { strict_booleans: true };
            serde_saphyr::from_str_with_options(text, options).map_err(|err| Error::Syntax {
                path: name.to_owned(),
                message: syntax_message(&err.to_string()),
            })?
        };
        if tree.is_null() {
            tree = Value::Object(Default::default());
        }
        let mut problems = Problems::default();
        for (path, message) in expand::expand_tree(&mut tree, env) {
            problems.push(path, message);
        }
        let Some(raw) = deserialize_reporting_all(tree, &mut problems) else {
            return Err(Error::Invalid {
                problems: problems.0,
            });
        };
        validate(raw, base, env, problems).map_err(|problems| Error::Invalid {
            problems: problems.0,
        })
    }
}

/// Deserializes the tree, and on each structural error records it, removes the offending node
/// and tries again, so one run reports every unknown key and wrong type. Returns the raw config
/// once the remaining tree deserializes.
fn deserialize_reporting_all<T: serde::de::DeserializeOwned>(
    mut tree: Value,
    problems: &mut Problems,
) -> Option<T> {
    for _ in 0..MAX_STRUCTURAL_PROBLEMS {
        let err = match serde_path_to_error::deserialize::<_, T>(&tree) {
            Ok(raw) => return Some(raw),
            Err(err) => err,
        };
        let segments: Vec<String> = err
            .path()
            .iter()
            .map(|segment| segment.to_string())
            .collect();
        problems.push(
            err.path().to_string().replace("?", ""),
            describe_serde(err.inner()),
        );
        if segments.is_empty() || !remove_at(&mut tree, &segments) {
            return None;
        }
    }
    None
}

/// Rewrites serde's messages for operators: `unknown field` becomes `unknown key`, and the
/// offending value is left out (it may be a secret given in the wrong place).
pub(crate) fn describe_serde(err: &serde_json::Error) -> String {
    let message = err.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message);
    let message = match message.split_once(", expected ") {
        Some((what, expected))
            if what.starts_with("invalid type") || what.starts_with("invalid value") =>
        {
            let kind = what.split(':').next().unwrap_or(what);
            format!("{kind}, expected {expected}")
        }
        _ => message.to_owned(),
    };
    message
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key")
}

/// The parser's message and position without the source snippet it quotes: the quoted line may
/// hold a secret.
fn syntax_message(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_owned()
}

/// Removes the node at a serde_path_to_error path from the tree; false if there is none.
fn remove_at(tree: &mut Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut node = tree;
    for segment in parents {
        node = match (node, index_of(segment)) {
            (Value::Array(items), Some(index)) => match items.get_mut(index) {
                Some(item) => item,
                None => return false,
            },
            (Value::Object(map), _) => match map.get_mut(segment.as_str()) {
                Some(item) => item,
                None => return false,
            },
            _ => return false,
        };
    }
    match (node, index_of(last)) {
        (Value::Array(items), Some(index)) if index < items.len() => {
            items.remove(index);
            true
        }
        (Value::Object(map), _) => map.remove(last.as_str()).is_some(),
        _ => false,
    }
}

/// A sequence segment of a serde_path_to_error path looks like `[3]`.
fn index_of(segment: &str) -> Option<usize> {
    segment.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// Turns the raw structs into typed configuration, recording every bad value after those
/// already found (expansion, structure): a value removed for its wrong type must not be
/// compared with another as if it were its default.
fn validate(
    raw: RawConfig,
    base: &Path,
    env: &dyn Env,
    mut problems: Problems,
) -> Result<Config, Problems> {
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = parse_listen(listen, "listen", &mut problems);
    let state_dir = PathBuf::from(raw.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
    if state_dir.as_os_str().is_empty() {
        problems.push("state_dir", "must not be empty");
    }

    let log = LogConfig {
        format: match raw.log.format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                problems.push("log.format", format!("`{other}` is not one of: text, json"));
                LogFormat::Text
            }
        },
        level: raw.log.level.unwrap_or_else(|| "info".to_owned()),
    };
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&log.level) {
        problems.push(
            "log.level",
            format!("`{}` is not a log filter: {err}", log.level),
        );
    }

    let web = web::validate(raw.web, base, &mut problems);

    let host = HostConfig {
        enabled: raw.host.enabled.unwrap_or(true),
        timeout: duration(raw.host.timeout, "5s", "host.timeout", &mut problems),
        procfs: PathBuf::from(raw.host.procfs.unwrap_or_else(|| "/proc".to_owned())),
        sysfs: PathBuf::from(raw.host.sysfs.unwrap_or_else(|| "/sys".to_owned())),
        collectors: host_collectors(raw.host.collectors, &mut problems),
        rootfs: PathBuf::from(raw.host.rootfs.unwrap_or_else(|| "/".to_owned())),
        filesystem: FilesystemConfig {
            mount_points_exclude: regex(
                raw.host.filesystem.mount_points_exclude,
                DEFAULT_MOUNT_POINTS_EXCLUDE,
                "host.filesystem.mount_points_exclude",
                &mut problems,
            ),
            fs_types_exclude: regex(
                raw.host.filesystem.fs_types_exclude,
                DEFAULT_FS_TYPES_EXCLUDE,
                "host.filesystem.fs_types_exclude",
                &mut problems,
            ),
            stat_timeout: duration(
                raw.host.filesystem.stat_timeout,
                "1s",
                "host.filesystem.stat_timeout",
                &mut problems,
            ),
        },
        disk_device_exclude: regex(
            raw.host.disk.device_exclude,
            DEFAULT_DISK_DEVICE_EXCLUDE,
            "host.disk.device_exclude",
            &mut problems,
        ),
        network_device_exclude: regex(
            raw.host.network.device_exclude,
            "",
            "host.network.device_exclude",
            &mut problems,
        ),
        textfile_directory: textfile_directory(raw.host.textfile.directory, base, &mut problems),
    };
    // Compared only when both parsed: a bad host.timeout must not add a second, derived error.
    let both_parsed =
        !problems.concerns("host.timeout") && !problems.concerns("host.filesystem.stat_timeout");
    // A collector still running at half the host timeout is taken for hung (collect::batch);
    // the filesystem collector's own bound on remote mounts must come first.
    if both_parsed && host.filesystem.stat_timeout >= host.timeout / 2 {
        problems.push(
            "host.filesystem.stat_timeout",
            format!(
                "must be shorter than half of host.timeout ({}), or a stuck mount fails the whole filesystem collector",
                humantime::format_duration(host.timeout)
            ),
        );
    }
    let timeouts_parsed =
        !problems.concerns("host.timeout") && !problems.concerns("web.request_timeout");
    if timeouts_parsed && web.request_timeout <= host.timeout + SCRAPE_MARGIN {
        problems.push(
            "web.request_timeout",
            format!(
                "must be longer than host.timeout ({}) plus {}, or a slow collector fails the whole scrape",
                humantime::format_duration(host.timeout),
                humantime::format_duration(SCRAPE_MARGIN)
            ),
        );
    }

    let sources = sources::validate(
        raw.postgres,
        raw.sqlite,
        raw.run_queues,
        raw.queries,
        base,
        &mut problems,
    );
    let backups = backups::validate(raw.backups, &sources, base, env, &mut problems);
    let max_concurrent_backups = bounded_count(
        raw.max_concurrent_backups,
        backups::DEFAULT_MAX_CONCURRENT_BACKUPS,
        backups::MAX_CONCURRENT_BACKUPS,
        "max_concurrent_backups",
        &mut problems,
    );

    let act = actions::validate(
        raw.actions,
        raw.routes,
        raw.webhook,
        raw.max_concurrent_actions,
        &actions::Inputs {
            sources: &sources,
            backups: &backups,
            base,
        },
        &mut problems,
    );

    if problems.0.is_empty() {
        Ok(Config {
            origin: Origin::BuiltIn,
            act,
            sources,
            backups,
            max_concurrent_backups,
            listen,
            state_dir,
            log,
            web,
            host,
        })
    } else {
        Err(problems)
    }
}

/// A count of at least 1 and at most `max`; `default` when not set.
fn bounded_count(
    value: Option<u64>,
    default: usize,
    max: usize,
    path: &str,
    problems: &mut Problems,
) -> usize {
    match value {
        None => default,
        Some(0) => {
            problems.push(path, "must be at least 1");
            1
        }
        Some(n) if n > max as u64 => {
            problems.push(path, format!("at most {max}"));
            max
        }
        Some(n) => n as usize,
    }
}

fn parse_listen(text: &str, path: &str, problems: &mut Problems) -> SocketAddr {
    text.parse().unwrap_or_else(|_| {
        problems.push(
            path,
            format!("`{text}` is not a socket address such as 127.0.0.1:9798 or [::1]:9798"),
        );
        SocketAddr::from(([127, 0, 0, 1], 9798))
    })
}

/// Parses a duration such as `30s`, `5m` or `1h30m`; `default` must itself parse.
pub(crate) fn duration(
    value: Option<String>,
    default: &str,
    path: &str,
    problems: &mut Problems,
) -> Duration {
    let text = value.as_deref().unwrap_or(default);
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            problems.push(path, "must be longer than zero");
            Duration::from_secs(1)
        }
        Ok(d) => d,
        Err(_) if is_bare_number(text) => {
            problems.push(path, needs_unit(text.trim()));
            Duration::from_secs(1)
        }
        Err(_) => {
            problems.push(
                path,
                format!("`{text}` is not a duration such as 500ms, 30s, 5m or 1h"),
            );
            Duration::from_secs(1)
        }
    }
}

/// Whether a duration's text is a number without a unit (`10`, `1.5`).
fn is_bare_number(text: &str) -> bool {
    let text = text.trim();
    !text.is_empty() && text.parse::<f64>().is_ok()
}

/// The message for a duration given as a bare number, from YAML (`interval: 10`) or from a
/// `${NAME}` expansion: which unit was meant cannot be guessed.
pub(crate) fn needs_unit(number: &str) -> String {
    match number.parse::<u64>() {
        Ok(n) => format!("`{n}` needs a unit, such as {n}s or {n}m"),
        Err(_) => format!("`{number}` needs a unit and a whole number, such as 1500ms or 2s"),
    }
}

/// Compiles a regular expression, anchored as node_exporter's flags are; an empty string means
/// "exclude nothing".
pub(crate) fn regex(
    value: Option<String>,
    default: &str,
    path: &str,
    problems: &mut Problems,
) -> Option<Regex> {
    let text = value.as_deref().unwrap_or(default);
    if text.is_empty() {
        return None;
    }
    match Regex::new(text) {
        Ok(re) => Some(re),
        Err(err) => {
            problems.push(path, format!("not a regular expression: {err}"));
            None
        }
    }
}

/// Resolves a secret given inline (`key`) or through a file (`key_file`), never both. The file's
/// content is used without its trailing newline. Error messages never contain the secret.
pub(crate) fn secret(
    inline: Option<String>,
    file: Option<String>,
    path: &str,
    base: &Path,
    problems: &mut Problems,
) -> Option<SecretString> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            problems.push(path, format!("set either {path} or {path}_file, not both"));
            None
        }
        (Some(value), None) if value.is_empty() => {
            problems.push(path, "must not be empty");
            None
        }
        (Some(value), None) => Some(SecretString::from(value)),
        (None, Some(file)) => {
            let file_path = base.join(&file);
            match std::fs::read_to_string(&file_path) {
                Ok(content) => {
                    let value = content.trim_end_matches(['\n', '\r']);
                    if value.is_empty() {
                        problems.push(
                            format!("{path}_file"),
                            format!("{} is empty", file_path.display()),
                        );
                        None
                    } else {
                        Some(SecretString::from(value.to_owned()))
                    }
                }
                Err(err) => {
                    problems.push(
                        format!("{path}_file"),
                        format!("cannot read {}: {err}", file_path.display()),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    }
}

/// The host collectors that run: node_exporter's defaults, each switched by `host.collectors`
/// (`{tcpstat: true, arp: false}`); an unknown name or a value other than true/false is a
/// problem naming it.
fn host_collectors(
    overrides: BTreeMap<String, Value>,
    problems: &mut Problems,
) -> BTreeSet<&'static str> {
    use crate::collect::host::COLLECTORS;
    let mut enabled: BTreeSet<&'static str> = COLLECTORS
        .iter()
        .filter(|(_, on)| *on)
        .map(|(name, _)| *name)
        .collect();
    for (name, value) in overrides {
        let key = format!("host.collectors.{name}");
        let Some(&(known, _)) = COLLECTORS.iter().find(|(known, _)| *known == name) else {
            let names: Vec<&str> = COLLECTORS.iter().map(|(name, _)| *name).collect();
            problems.push(
                key,
                format!("unknown collector `{name}`; known: {}", names.join(", ")),
            );
            continue;
        };
        let on = match &value {
            Value::Bool(on) => *on,
            Value::String(text) if text == "true" => true,
            Value::String(text) if text == "false" => false,
            _ => {
                problems.push(key, format!("`{value}` is not true or false"));
                continue;
            }
        };
        if on {
            enabled.insert(known);
        } else {
            enabled.remove(known);
        }
    }
    enabled
}

/// `host.textfile.directory`, resolved against the configuration file's directory: it must be
/// a directory warden can list (its files may come and go; a bad one shows in
/// `node_textfile_scrape_error`).
fn textfile_directory(
    directory: Option<String>,
    base: &Path,
    problems: &mut Problems,
) -> Option<PathBuf> {
    const KEY: &str = "host.textfile.directory";
    let directory = directory?;
    if directory.is_empty() {
        problems.push(
            KEY,
            "must not be empty (leave it out to turn the textfile collector off)",
        );
        return None;
    }
    let path = base.join(directory);
    match std::fs::read_dir(&path) {
        Ok(_) => {}
        Err(err) => problems.push(KEY, format!("cannot read {}: {err}", path.display())),
    }
    Some(path)
}

#[cfg(test)]
mod tests;
