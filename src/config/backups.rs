//! The `backups` section: backup jobs validated into typed values (parsed cron schedules,
//! compiled globs, retention policies, resolved sources).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use super::error::Problems;
use super::raw::{RawBackup, RawCopy, RawRetention};
use super::sources::{check_name, is_identifier};
use super::{Env, Sources, duration, secret};
use crate::backup::kind::{self, Kind, ParseContext};
use crate::backup::retention::Policy;
use secrecy::SecretString;

/// How many backups run at once when `max_concurrent_backups` is not set: backups are heavy
/// on disk and on the database, so one at a time unless the operator says otherwise.
pub const DEFAULT_MAX_CONCURRENT_BACKUPS: usize = 1;
/// The most `max_concurrent_backups` may allow.
pub const MAX_CONCURRENT_BACKUPS: usize = 64;
/// The longest one backup run may take when `timeout` is not set.
const DEFAULT_BACKUP_TIMEOUT: &str = "6h";

/// A backup job.
#[derive(Debug, Clone)]
pub struct BackupConfig {
    /// The `job` label and the name used on the command line.
    pub name: String,
    /// What is backed up, and how.
    pub(crate) kind: Arc<dyn Kind>,
    /// The directory backups and their manifests are written to.
    pub destination: PathBuf,
    /// When the job runs on its own; `None` runs it only on demand (command line, alerts).
    pub schedule: Option<Schedule>,
    /// Which backups are kept.
    pub retention: Policy,
    /// What a backup must pass to count.
    pub verify: VerifyConfig,
    /// The longest one run may take; past it the run fails and nothing is published.
    pub timeout: Duration,
    /// Offsite copies: each verified backup is also kept there.
    pub copies: Vec<CopyConfig>,
}

/// An offsite copy destination of a job: a bucket of AWS S3 or a compatible store (MinIO,
/// Ceph RGW, Cloudflare R2, Backblaze B2).
#[derive(Debug, Clone)]
pub struct CopyConfig {
    /// The destination's name: the `destination` label and `--from NAME`.
    pub name: String,
    /// The endpoint URL; `None` is AWS's for the region.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` unless set).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// The key prefix the job's objects go under (`a/b`, no leading or trailing `/`).
    pub prefix: String,
    /// Path-style requests (`endpoint/bucket/key`, as MinIO and most compatibles want) instead
    /// of virtual-hosted ones (`bucket.endpoint/key`).
    pub path_style: bool,
    /// The access key id, from `access_key_id_file` or `AWS_ACCESS_KEY_ID`.
    pub access_key_id: SecretString,
    /// The secret access key, from `secret_access_key_file` or `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: SecretString,
    /// A session token, from `session_token_file` or `AWS_SESSION_TOKEN`.
    pub session_token: Option<SecretString>,
    /// Which backups this destination keeps: its own `retention`, else the job's.
    pub retention: Policy,
}

/// What a `files` job archives.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Absolute paths of files and directories to archive.
    pub paths: Vec<PathBuf>,
    /// When set, only files whose path matches are archived.
    pub include: Option<GlobSet>,
    /// Files and directories whose path matches are skipped.
    pub exclude: Option<GlobSet>,
    /// The archive's compression.
    pub compression: Compression,
    /// The compression level.
    pub level: i32,
    /// Incremental backups between fulls, when set.
    pub incremental: Option<IncrementalConfig>,
    /// The paths and filters, hashed: the file index records it, and an index made under
    /// another selection is not built on.
    pub fingerprint: [u8; 32],
}

/// When a `files` job makes incremental backups, and how long it keeps them.
#[derive(Debug, Clone)]
pub struct IncrementalConfig {
    /// Every Nth run is a full (the first and the Nth after each full).
    pub full_every: Option<u32>,
    /// A run is a full once this schedule has fired since the last full started.
    pub full_schedule: Option<Schedule>,
    /// Which incrementals are kept; `None` keeps them by the job's `retention`, which keeps
    /// the fulls. A kept backup's parents are kept whatever either says.
    pub retention: Option<Policy>,
}

/// Parses a `files` job's `incremental` section.
pub(crate) fn incremental(
    raw: &super::raw::RawIncremental,
    path: &str,
    problems: &mut Problems,
) -> IncrementalConfig {
    let full_every = match raw.full_every {
        Some(n) if n < 2 => {
            problems.push(
                format!("{path}.full_every"),
                "must be ≥ 2 (every run a full is no incremental at all)",
            );
            None
        }
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        None => None,
    };
    let full_schedule = raw
        .full_schedule
        .as_deref()
        .and_then(|text| schedule(text, &format!("{path}.full_schedule"), problems));
    if raw.full_every.is_none() && raw.full_schedule.is_none() {
        problems.push(
            path,
            "set full_every, full_schedule or both: without fulls the chain of incrementals grows without end",
        );
    }
    let retention = raw
        .retention
        .clone()
        .map(|own| retention(own, &format!("{path}.retention"), problems));
    IncrementalConfig {
        full_every,
        full_schedule,
        retention,
    }
}

/// How a `files` archive is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd: fast, and the default.
    Zstd,
    /// gzip, for tools that only read `.tar.gz`.
    Gzip,
}

impl Compression {
    /// The file name extension of an archive.
    pub const fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Gzip => "tar.gz",
        }
    }

    /// The configuration and manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
        }
    }

    /// The level used when the configuration names none: zstd 3, gzip 6.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
        }
    }

    /// The compression named by a manifest or the configuration.
    pub fn from_name(name: &str) -> Option<Compression> {
        match name {
            "zstd" => Some(Compression::Zstd),
            "gzip" => Some(Compression::Gzip),
            _ => None,
        }
    }
}

/// What verification checks beyond the checksum and the tool-level check.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Tables that must be in the backup; their row counts go in the manifest.
    pub required_tables: Vec<String>,
    /// Whether restore drills run.
    pub restore_test: bool,
    /// When drills run; `None` runs one after each successful backup.
    pub restore_test_schedule: Option<Schedule>,
}

/// A parsed five-field cron expression, evaluated in the host's local time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
    text: String,
}

impl Schedule {
    /// Parses a cron expression (`minute hour day-of-month month day-of-week`, croner's
    /// extensions allowed).
    ///
    /// # Errors
    /// The parser's message when the text is not a cron expression.
    pub fn try_from_text(text: &str) -> Result<Schedule, String> {
        let cron = croner::Cron::from_str(text).map_err(|err| err.to_string())?;
        let schedule = Schedule {
            cron,
            text: text.to_owned(),
        };
        if schedule.next_after(Utc::now()).is_none() {
            return Err("never fires".to_owned());
        }
        Ok(schedule)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time the schedule fires strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&Local);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }

    /// The longest gap between the next [`INTERVAL_FIRINGS`] firings after `now`: the
    /// interval a staleness rule compares the age of the last backup with. The longest, so a
    /// weekday schedule (`0 3 * * 1-5`) reports the weekend's three days, not one.
    pub fn interval(&self, now: DateTime<Utc>) -> Duration {
        let mut longest = Duration::ZERO;
        let Some(mut previous) = self.next_after(now) else {
            return longest;
        };
        for _ in 0..INTERVAL_FIRINGS {
            let Some(next) = self.next_after(previous) else {
                break;
            };
            longest = longest.max((next - previous).to_std().unwrap_or_default());
            previous = next;
        }
        longest
    }
}

/// How many firings [`Schedule::interval`] looks at: enough to cover a week of a daily
/// schedule with gaps, cheap enough for every scrape.
pub const INTERVAL_FIRINGS: usize = 16;

/// Validates the backup jobs against the configured sources, recording every problem.
pub(super) fn validate(
    raw: Vec<RawBackup>,
    sources: &Sources,
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Vec<BackupConfig> {
    let mut names = HashSet::new();
    let mut destinations: Vec<(PathBuf, String)> = Vec::new();
    let mut jobs = Vec::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("backups[{i}]");
        if !names.insert(raw.name.clone()) {
            problems.push(
                format!("{path}.name"),
                format!("`{}` is used twice", raw.name),
            );
        }
        let destination = base.join(&raw.destination);
        if raw.destination.is_empty() {
            problems.push(format!("{path}.destination"), "must not be empty");
        } else if let Some((_, other)) = destinations.iter().find(|(d, _)| *d == destination) {
            problems.push(
                format!("{path}.destination"),
                format!("is also the destination of job `{other}`; each job needs its own directory (retention and locking work per directory)"),
            );
        }
        if let Some((_, other)) = destinations.iter().find(|(d, _)| {
            *d != destination && (d.starts_with(&destination) || destination.starts_with(d))
        }) {
            problems.push(
                format!("{path}.destination"),
                format!("is inside, or holds, the destination of job `{other}`; give each job a directory of its own"),
            );
        }
        destinations.push((destination.clone(), raw.name.clone()));
        if let Some(job) = validate_job(raw, destination, &path, sources, base, env, problems) {
            jobs.push((i, job));
        }
    }
    // A files job must not archive a destination: it would back up backups, and its own
    // temporary file while it grows.
    for (i, job) in &jobs {
        for source in job.kind.reads() {
            if let Some((_, other)) = destinations.iter().find(|(d, _)| d.starts_with(source)) {
                problems.push(
                    format!("backups[{i}].paths"),
                    format!(
                        "{} holds the destination of job `{other}`: the job would archive backups, its own included; list narrower paths",
                        source.display()
                    ),
                );
            }
        }
    }
    jobs.into_iter().map(|(_, job)| job).collect()
}

fn validate_job(
    mut raw: RawBackup,
    destination: PathBuf,
    path: &str,
    sources: &Sources,
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Option<BackupConfig> {
    check_name(&raw.name, path, problems);
    let job_schedule = raw
        .schedule
        .as_deref()
        .and_then(|text| schedule(text, &format!("{path}.schedule"), problems));
    let retention = retention(
        std::mem::take(&mut raw.retention),
        &format!("{path}.retention"),
        problems,
    );
    let timeout = duration(
        raw.timeout.take(),
        DEFAULT_BACKUP_TIMEOUT,
        &format!("{path}.timeout"),
        problems,
    );
    let verify_path = format!("{path}.verify");
    for (i, table) in raw.verify.required_tables.iter().enumerate() {
        if !is_identifier(table) {
            problems.push(
                format!("{verify_path}.required_tables[{i}]"),
                format!(
                    "`{table}` is not a table name (letters, digits and `_`, optionally `schema.`)"
                ),
            );
        }
    }
    let restore_test_schedule = raw
        .verify
        .restore_test_schedule
        .as_deref()
        .and_then(|text| {
            schedule(
                text,
                &format!("{verify_path}.restore_test_schedule"),
                problems,
            )
        });
    let restore_test = raw.verify.restore_test.unwrap_or(false);
    if restore_test_schedule.is_some() && !restore_test {
        problems.push(
            format!("{verify_path}.restore_test_schedule"),
            "set restore_test: true too, or drop the schedule",
        );
    }
    let copies = copies(
        std::mem::take(&mut raw.copies),
        &raw.name,
        &retention,
        path,
        base,
        env,
        problems,
    );
    let context = ParseContext { base, sources };
    let kind = kind::parse(&raw, path, &context, problems)?;
    Some(BackupConfig {
        name: raw.name,
        kind,
        destination,
        schedule: job_schedule,
        retention,
        verify: VerifyConfig {
            required_tables: raw.verify.required_tables,
            restore_test,
            restore_test_schedule,
        },
        timeout,
        copies,
    })
}

/// The region of a copy that names none.
const DEFAULT_REGION: &str = "us-east-1";

fn copies(
    raw: Vec<RawCopy>,
    job: &str,
    job_retention: &Policy,
    path: &str,
    base: &Path,
    env: &dyn Env,
    problems: &mut Problems,
) -> Vec<CopyConfig> {
    let mut copies: Vec<CopyConfig> = Vec::new();
    let mut names = HashSet::new();
    for (i, raw) in raw.into_iter().enumerate() {
        let path = format!("{path}.copies[{i}]");
        check_name(&raw.name, &path, problems);
        if raw.name == "local" {
            problems.push(
                format!("{path}.name"),
                "`local` names the job's own directory; choose another name",
            );
        } else if !names.insert(raw.name.clone()) {
            problems.push(
                format!("{path}.name"),
                format!("`{}` is used twice in this job", raw.name),
            );
        }
        let s3 = raw.s3;
        let s3_path = format!("{path}.s3");
        if let Some(endpoint) = &s3.endpoint {
            check_endpoint(endpoint, &format!("{s3_path}.endpoint"), problems);
        }
        if !is_bucket_name(&s3.bucket) {
            problems.push(
                format!("{s3_path}.bucket"),
                format!(
                    "`{}` is not a bucket name (3–63 lowercase letters, digits, `.` and `-`)",
                    s3.bucket
                ),
            );
        }
        let prefix = s3.prefix.as_deref().unwrap_or(job).trim_matches('/');
        if prefix.is_empty()
            || prefix
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            problems.push(
                format!("{s3_path}.prefix"),
                format!("`{prefix}` is not a key prefix such as `warden/{job}`"),
            );
        }
        let mut credential = |file: &Option<String>, key: &str, variable: &str, required: bool| {
            let path = format!("{s3_path}.{key}");
            let found = secret(None, file.clone(), &path, base, problems).or_else(|| {
                env.var(variable)
                    .filter(|value| !value.is_empty())
                    .map(SecretString::from)
            });
            // A named file that cannot be read is its own problem, reported above.
            if found.is_none() && required && file.is_none() {
                problems.push(
                    format!("{path}_file"),
                    format!(
                        "missing: name a file holding it, or set {variable} in warden's environment"
                    ),
                );
            }
            found
        };
        let access_key_id = credential(
            &s3.access_key_id_file,
            "access_key_id",
            "AWS_ACCESS_KEY_ID",
            true,
        );
        let secret_access_key = credential(
            &s3.secret_access_key_file,
            "secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            true,
        );
        let session_token = credential(
            &s3.session_token_file,
            "session_token",
            "AWS_SESSION_TOKEN",
            false,
        );
        let retention = match raw.retention {
            Some(raw) => retention(raw, &format!("{path}.retention"), problems),
            None => job_retention.clone(),
        };
        let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key)
        else {
            continue;
        };
        copies.push(CopyConfig {
            name: raw.name,
            endpoint: s3.endpoint.map(|e| e.trim_end_matches('/').to_owned()),
            region: s3.region.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
            bucket: s3.bucket,
            prefix: prefix.to_owned(),
            path_style: s3.path_style.unwrap_or(false),
            access_key_id,
            secret_access_key,
            session_token,
            retention,
        });
    }
    copies
}

/// An endpoint is an `https://` URL, or `http://` on a loopback address (a local test server):
/// a backup sent in plain text over a network could be read on the way.
fn check_endpoint(endpoint: &str, path: &str, problems: &mut Problems) {
    let host = |rest: &str| {
        let authority = rest.split('/').next().unwrap_or("");
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.split(':').next().unwrap_or(""),
        };
        host.to_owned()
    };
    if let Some(rest) = endpoint.strip_prefix("https://") {
        if host(rest).is_empty() {
            problems.push(path, format!("`{endpoint}` names no host"));
        }
    } else if let Some(rest) = endpoint.strip_prefix("http://") {
        let host = host(rest);
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            problems.push(
                path,
                format!("`{endpoint}`: plain http is only for a server on this host (127.0.0.1, ::1, localhost); use https"),
            );
        }
    } else {
        problems.push(
            path,
            format!("`{endpoint}` is not an http(s) URL such as https://s3.example.com"),
        );
    }
}

/// S3's bucket naming rules, enough to refuse typos and injection: 3–63 characters of
/// lowercase letters, digits, `.` and `-`, starting and ending with a letter or digit.
fn is_bucket_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Compiles glob patterns matched against whole paths; `*` crosses directory separators, so
/// `*.tmp` matches a `.tmp` file at any depth.
pub fn build_globs(patterns: &[String]) -> Result<Option<GlobSet>, (usize, globset::Error)> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for (i, pattern) in patterns.iter().enumerate() {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(false)
            .build()
            .map_err(|err| (i, err))?;
        builder.add(glob);
    }
    builder.build().map(Some).map_err(|err| (0, err))
}

/// Compiles `patterns` (`path` is their key path), recording a pattern that is not a glob.
pub(crate) fn globs(patterns: &[String], path: &str, problems: &mut Problems) -> Option<GlobSet> {
    match build_globs(patterns) {
        Ok(set) => set,
        Err((i, err)) => {
            problems.push(format!("{path}[{i}]"), format!("not a glob: {err}"));
            None
        }
    }
}

fn schedule(text: &str, path: &str, problems: &mut Problems) -> Option<Schedule> {
    match Schedule::try_from_text(text) {
        Ok(schedule) => Some(schedule),
        Err(err) => {
            problems.push(
                path,
                format!("`{text}` is not a cron expression such as \"0 3 * * *\": {err}"),
            );
            None
        }
    }
}

fn retention(raw: RawRetention, path: &str, problems: &mut Problems) -> Policy {
    let mut count = |value: Option<u64>, key: &str| match value {
        Some(0) => {
            problems.push(
                format!("{path}.{key}"),
                "must be ≥ 1 (leave it out to not use it)",
            );
            None
        }
        Some(n) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
        None => None,
    };
    let keep_last = count(raw.keep_last, "keep_last");
    let keep_daily = count(raw.keep_daily, "keep_daily");
    let keep_weekly = count(raw.keep_weekly, "keep_weekly");
    let keep_monthly = count(raw.keep_monthly, "keep_monthly");
    let keep_within = raw
        .keep_within
        .map(|text| duration(Some(text), "1d", &format!("{path}.keep_within"), problems));
    Policy {
        keep_last,
        keep_within,
        keep_daily,
        keep_weekly,
        keep_monthly,
    }
}
