//! [`BackupError`]: why a backup operation failed, with its cause kept (`#[source]`), and the
//! two questions callers ask of it: was the backup found wanting, and did a drill find
//! anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{files, libpq, publish};
use crate::store::StoreError;

/// Why a backup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// No job has this name.
    #[error("no backup job named `{job}` in {origin}")]
    UnknownJob {
        /// The name asked for.
        job: String,
        /// Where the configuration came from.
        origin: String,
    },
    /// The job has no backup with this id.
    #[error("job `{job}` has no backup `{id}`")]
    UnknownBackup {
        /// The job.
        job: String,
        /// The id asked for.
        id: String,
    },
    /// The job has no copy destination with this name.
    #[error("job `{job}` has no copy destination `{destination}` (its `copies` name them)")]
    UnknownDestination {
        /// The job.
        job: String,
        /// The name asked for.
        destination: String,
    },
    /// The job has no verified backup to use.
    #[error("job `{0}` has no verified backup")]
    NoVerifiedBackup(String),
    /// Another operation on the job is running (here or in another warden process).
    #[error(
        "job `{0}` is busy: another run, verification, drill, prune or restore of it is in progress"
    )]
    AlreadyRunning(String),
    /// A file operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A PostgreSQL tool could not be prepared.
    #[error(transparent)]
    Tool(#[from] libpq::ToolError),
    /// A child process failed.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        /// The tool.
        tool: String,
        /// Its exit code or signal.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
    },
    /// PostgreSQL refused a statement or the connection.
    #[error("cannot {action}")]
    Postgres {
        /// What was being done, and where (never the DSN or its password).
        action: String,
        /// The server's SQLSTATE and message, or the driver's error and its cause.
        #[source]
        source: crate::collect::postgres::error::PgError,
    },
    /// The CA file for PostgreSQL's TLS could not be loaded.
    #[error("cannot load the ca_file of postgres/{server}")]
    CaFile {
        /// The configured server.
        server: String,
        /// The cause.
        #[source]
        source: crate::collect::postgres::tls::Error,
    },
    /// Object storage refused a request or could not be reached.
    #[error("cannot {action} {location}")]
    ObjectStore {
        /// What was being done.
        action: String,
        /// `s3://bucket/prefix/object` (never a credential).
        location: String,
        /// The client's error.
        #[source]
        source: object_store::Error,
    },
    /// SQLite failed.
    #[error("sqlite: cannot {action}")]
    Sqlite {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
    /// Creating, reading or extracting an archive failed.
    #[error(transparent)]
    Files(files::FilesError),
    /// The backup did not pass verification; it is not published (or, for a stored backup,
    /// is marked failed).
    #[error("backup not verified: {0}")]
    NotVerified(String),
    /// The backup did not pass verification because a check could not read it at all (an
    /// archive that does not decompress, a file that is not a database); treated as
    /// [`BackupError::NotVerified`].
    #[error("backup not verified: {what}")]
    Broken {
        /// What could not be read.
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An incremental backup's chain cannot be restored: a parent is missing or failed its
    /// last verification. Treated as [`BackupError::NotVerified`].
    #[error("the incremental chain is broken: {0}")]
    BrokenChain(String),
    /// A restore drill found the restored copy different from the manifest.
    #[error("restore drill failed: {0}")]
    DrillFailed(String),
    /// The restore target already holds data.
    #[error("restore target {target} is not empty; {hint}")]
    TargetNotEmpty {
        /// The target.
        target: String,
        /// What to do.
        hint: &'static str,
    },
    /// The restore target is not acceptable.
    #[error("restore target `{target}`: {reason}")]
    BadTarget {
        /// The target as given.
        target: String,
        /// Why not.
        reason: String,
    },
    /// The restore failed; whether the target is as it was before.
    #[error("restore failed; {}", match (.rolled_back, .safety_copy) {
        (true, _) => "the previous state is in place".to_owned(),
        (false, Some(copy)) => format!("THE PREVIOUS STATE COULD NOT BE PUT BACK; it is kept in {copy}"),
        (false, None) => "THE PREVIOUS STATE COULD NOT BE PUT BACK".to_owned(),
    })]
    RestoreFailed {
        /// What went wrong.
        #[source]
        cause: Box<BackupError>,
        /// Whether the target holds its previous content again (or never lost it).
        rolled_back: bool,
        /// Where the previous content is kept, if a copy was taken.
        safety_copy: Option<String>,
    },
    /// The operation was cancelled (shutdown); nothing was published.
    #[error("cancelled")]
    Cancelled,
    /// The run took longer than the job's timeout; nothing was published.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blocking worker panicked.
    #[error("backup worker failed")]
    Worker(#[source] tokio::task::JoinError),
}

impl From<files::FilesError> for BackupError {
    fn from(err: files::FilesError) -> Self {
        match err {
            // One cancellation for every kind, so a timeout is reported as one.
            files::FilesError::Cancelled => BackupError::Cancelled,
            other => BackupError::Files(other),
        }
    }
}

impl BackupError {
    /// Whether the error is a backup found wanting (checksum, archive, integrity check,
    /// missing table), as opposed to a failure to check it.
    pub fn is_verification_failure(&self) -> bool {
        matches!(
            self,
            BackupError::NotVerified(_) | BackupError::Broken { .. } | BackupError::BrokenChain(_)
        )
    }

    /// Whether a failed restore drill says something about the backup (it did not restore, or
    /// restored different data), as opposed to the drill not being able to run: PostgreSQL
    /// unreachable, a tool missing, an I/O error of warden's own, a timeout. Only the first
    /// kind marks the backup's manifest and counts as a failed drill.
    pub fn is_drill_finding(&self) -> bool {
        matches!(
            self,
            BackupError::DrillFailed(_)
                | BackupError::NotVerified(_)
                | BackupError::Broken { .. }
                | BackupError::BrokenChain(_)
                | BackupError::ToolFailed { .. }
                | BackupError::Sqlite { .. }
                | BackupError::Files(_)
        )
    }

    pub(crate) fn io(
        action: &'static str,
        path: &Path,
    ) -> impl FnOnce(std::io::Error) -> BackupError {
        let path = path.to_owned();
        move |source| {
            if publish::Cancelled::is(&source) {
                BackupError::Cancelled
            } else {
                BackupError::Io {
                    action,
                    path,
                    source,
                }
            }
        }
    }
}
