//! Action kinds: what an action does once its job runs.
//!
//! A kind is one file here plus one line in [`KINDS`]. The file owns everything about the
//! kind: its configuration keys (parsed from the action's YAML mapping under the kind's key,
//! every problem reported with its key path), what a dry run says it would do, and the run
//! itself. The common keys of every action (`timeout`, `retries`, `dry_run`, `schedule`,
//! `then_check`, …) are parsed in `config::actions`; the job queue applies them, so a kind
//! never deals with retries, timeouts or concurrency.
//!
//! Alerts are untrusted: a kind reads alert data only through [`JobContext::labels`], and only
//! where its configuration names a placeholder (`{labels.NAME}`) whose value passed the
//! action's pattern.

pub mod backup;
pub mod check;
pub mod cleanup;
pub mod command;
pub mod http;
pub mod sql;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::backup::Backups;
use crate::config::{BackupConfig, Problems, Sources};

/// Every kind, by the key that selects it in an action's configuration.
pub const KINDS: &[Registration] = &[
    backup::KIND,
    command::KIND,
    sql::KIND,
    cleanup::KIND,
    http::KIND,
];

/// One kind's entry in [`KINDS`].
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// The key that selects the kind (`command`, `sql`, …).
    pub key: &'static str,
    /// Parses the value under `key`; `path` is its key path (`actions[2].command`). Records
    /// every problem and returns `None` when there was one.
    pub parse: ParseFn,
}

/// A kind's parser: the value under its key, that value's key path, what the configuration
/// may refer to, and where problems go.
pub type ParseFn = fn(&Value, &str, &ParseContext<'_>, &mut Problems) -> Option<Arc<dyn Kind>>;

/// What a kind's configuration may refer to.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// The directory relative paths are read from (the config file's).
    pub base: &'a Path,
    /// The configured PostgreSQL and SQLite sources (`target: postgres/main`).
    pub sources: &'a Sources,
    /// The configured backup jobs.
    pub backups: &'a [BackupConfig],
}

/// What a job gives the kind it runs.
pub struct JobContext<'a> {
    /// The job's id in the store.
    pub job: i64,
    /// The action's name.
    pub action: &'a str,
    /// The triggering alert's labels; empty for scheduled and manual runs.
    pub labels: &'a BTreeMap<String, String>,
    /// Cancelled at the action's timeout and at shutdown; a kind stops promptly then (a child
    /// process's group is killed) and returns [`ActionError::Cancelled`].
    pub cancel: CancellationToken,
    /// The backup jobs, for the `backup` kind.
    pub backups: Option<&'a Arc<Backups>>,
}

impl<'a> JobContext<'a> {
    /// A context for job `job` of `action` with `labels`, its own cancellation token and no
    /// backup service (a manual run, a test); the queue sets both itself.
    pub fn new(job: i64, action: &'a str, labels: &'a BTreeMap<String, String>) -> Self {
        JobContext {
            job,
            action,
            labels,
            cancel: CancellationToken::new(),
            backups: None,
        }
    }
}

/// What a finished run reports: the audit log and `warden actions history` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One line on what was done or touched ("terminated 3 sessions: pids 101, 102, 103").
    pub summary: String,
    /// A child process's exit code, when the kind ran one.
    pub exit_code: Option<i32>,
    /// The tail of the child's stdout and stderr (bounded, secrets redacted); may be empty.
    pub output: String,
}

/// Why a run failed. The message names what failed; the cause is kept.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// A placeholder's value failed its pattern, or names a label the alert lacks.
    #[error("placeholder {placeholder}: {reason}")]
    Placeholder {
        /// The placeholder as written (`{labels.instance}`).
        placeholder: String,
        /// Why the value was refused (never the value itself when it may be hostile).
        reason: String,
    },
    /// The run was cancelled (timeout or shutdown) before it finished.
    #[error("cancelled before it finished")]
    Cancelled,
    /// A child process ran and failed.
    #[error("{what} exited with {status}")]
    Exited {
        /// What ran (the program's name).
        what: String,
        /// Its exit status, as `ExitStatus` prints it.
        status: String,
        /// Its exit code, when it has one.
        code: Option<i32>,
        /// The tail of its output, redacted.
        output: String,
    },
    /// The kind's work failed.
    #[error("{what}")]
    Failed {
        /// What was being done (`terminate idle sessions on postgres/main`).
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The kind's work failed for a reason with no underlying error.
    #[error("{0}")]
    Refused(String),
}

impl ActionError {
    /// Wraps `source` as the cause of a failed `what`.
    pub fn failed(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ActionError::Failed {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// The future a run returns.
pub type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Outcome, ActionError>> + Send + 'a>>;

/// An action kind with its validated configuration.
pub trait Kind: Send + Sync + Debug + 'static {
    /// The key in [`KINDS`] (`command`, `sql`, …), for the audit log.
    fn key(&self) -> &'static str;

    /// What a run with these labels would do, without doing it: dry runs and
    /// `warden alerts simulate` show this. Fails as the run would on a bad placeholder.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] when a placeholder's value is refused.
    fn plan(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError>;

    /// Does the work.
    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a>;
}

/// Parses the one kind key present in an action's mapping: none or several is a problem.
/// `path` is the action's key path (`actions[2]`); `map` its whole mapping, common keys
/// included (they are skipped).
pub fn parse(
    map: &serde_json::Map<String, Value>,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let present: Vec<&Registration> = KINDS
        .iter()
        .filter(|kind| map.contains_key(kind.key))
        .collect();
    match present.as_slice() {
        [kind] => (kind.parse)(
            &map[kind.key],
            &format!("{path}.{}", kind.key),
            context,
            problems,
        ),
        [] => {
            problems.push(
                path,
                format!("names no kind: set exactly one of {}", keys()),
            );
            None
        }
        several => {
            let names: Vec<&str> = several.iter().map(|k| k.key).collect();
            problems.push(
                path,
                format!(
                    "sets {}: an action has exactly one kind",
                    names.join(" and ")
                ),
            );
            None
        }
    }
}

/// The kinds' keys, for messages.
pub fn keys() -> String {
    KINDS.iter().map(|k| k.key).collect::<Vec<_>>().join(", ")
}

/// Deserializes a kind's section into its raw serde struct, recording a problem with the key
/// path on failure (unknown keys, wrong types).
pub fn deserialize<T: serde::de::DeserializeOwned>(
    value: &Value,
    path: &str,
    problems: &mut Problems,
) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(raw) => Some(raw),
        Err(err) => {
            let inner = err.path().to_string();
            let at = if inner == "." || inner.is_empty() {
                path.to_owned()
            } else {
                format!("{path}.{inner}")
            };
            problems.push(at, crate::config::describe_serde(err.inner()));
            None
        }
    }
}

/// Helpers for the kinds' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ParseContext, Problems};
    use crate::config::Sources;

    /// Runs a kind's parser against an empty configuration (no sources, no backups, paths
    /// relative to `/`); the problems as text when it fails.
    pub fn parse_with<T>(
        parse: impl FnOnce(&ParseContext<'_>, &mut Problems) -> Option<T>,
    ) -> Result<T, Vec<String>> {
        let sources = Sources::default();
        let context = ParseContext {
            base: std::path::Path::new("/"),
            sources: &sources,
            backups: &[],
        };
        let mut problems = Problems::default();
        parse(&context, &mut problems)
            .ok_or_else(|| problems.0.iter().map(ToString::to_string).collect())
    }
}
