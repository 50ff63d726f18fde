//! Backups that count only once verified: PostgreSQL (`pg_dump`), SQLite (the online backup
//! API) and directories (tar with zstd or gzip).
//!
//! Every operation on a job ([`Backups::run`], [`Backups::verify`], [`Backups::drill`],
//! [`Backups::prune`], [`Backups::restore`]) takes the job's lock file in its destination, so
//! one job never has two operations at once, across processes too (`warden serve` and the
//! `warden backup` commands). A run writes to a temporary file, verifies it (SHA-256 plus the
//! kind's own check), publishes it by rename, and only then writes the manifest that makes it
//! a backup ([`manifest`]). A run that fails, is cancelled or is killed leaves no listed
//! backup; the next operation on the job removes what it left behind.
//!
//! The blocking work (child processes, hashing, compression, SQLite) runs on one
//! `spawn_blocking` thread per operation. Nothing here spawns long-lived tasks; the
//! [`scheduler`] does.
//!
//! Modules:
//! - [`publish`]: temporary file → fsync → rename → fsync of the directory, and hashing;
//! - [`destination`]: where backups are kept (the job's directory), behind one trait;
//! - [`manifest`]: the JSON manifest and reading a destination back;
//! - [`retention`]: which backups a policy keeps;
//! - [`libpq`]: running `pg_dump`/`pg_restore` without a shell or a password in argv;
//! - [`kind`]: the trait every kind implements, and the list of kinds;
//! - [`postgres`], [`sqlite`], [`files`] (with `archive`, the tar work): the three kinds;
//! - [`command`]: `warden backup …`;
//! - [`scheduler`]: cron schedules for runs and drills;
//! - [`metrics`]: the `warden_backup_*` families.

pub(crate) mod archive;
mod check;
pub mod command;
mod copies;
mod delta;
pub(crate) mod destination;
mod error;
pub mod files;
mod index;
pub(crate) mod kind;
pub mod libpq;
pub mod manifest;
pub mod metrics;
pub mod postgres;
pub mod publish;
pub mod retention;
pub(crate) mod s3;
pub mod scheduler;
mod session;
pub mod sqlite;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::{BackupConfig, Config};
use crate::store::{Ran, RunOutcome, Store};
pub use error::BackupError;

use check::{check_chain, check_stored, drill_check, hash_and_check, verification_outcome};
use destination::{Destination, Local};
use kind::{Kind, Link};
use manifest::{FileCounts, Manifest, Verification, format_time};
use publish::Staged;
use retention::Decision;

/// The lock file in each destination; held by whoever operates on the job.
pub const LOCK_FILE: &str = ".warden.lock";
/// The directory under the state directory, mode 0700, for the passfiles of the PostgreSQL
/// tools: never in a destination, which users sync offsite and which may be a CIFS or NFS
/// mount whose modes make libpq ignore the file.
pub const PRIVATE_DIR: &str = "private";

/// What started an operation; logged with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The job's schedule, or an overdue run at start-up.
    Schedule,
    /// The `warden backup` command line.
    Command,
    /// An alert (the webhook).
    Alert,
}

impl Trigger {
    /// The log spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Command => "command",
            Trigger::Alert => "alert",
        }
    }
}

/// Bytes written so far by a running operation, for progress output.
#[derive(Debug, Default)]
pub struct Progress {
    bytes: AtomicU64,
}

impl Progress {
    /// The bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    fn set(&self, bytes: u64) {
        self.bytes.store(bytes, Ordering::Relaxed);
    }
}

/// What one operation's blocking work gets: its job, its id and clock, cancellation,
/// progress, and the runtime for the PostgreSQL client.
pub(crate) struct Context<'a> {
    pub job: &'a BackupConfig,
    pub id: String,
    pub started: DateTime<Utc>,
    /// Cancelled on shutdown, on the caller's request, or when the job's timeout passes.
    pub cancel: &'a CancellationToken,
    /// The caller's token: cancelled only on shutdown or request, so a cancellation it does
    /// not share was the timeout.
    pub shutdown: &'a CancellationToken,
    pub progress: &'a Progress,
    pub runtime: tokio::runtime::Handle,
    /// The state directory's private directory ([`PRIVATE_DIR`]), for passfiles.
    pub private: &'a Path,
    /// The job's directory: where backups are staged, published and locked.
    pub local: &'a Local,
}

impl<'a> Context<'a> {
    /// The same context under `token` instead: for putting a safety copy back, which must
    /// finish even when the operation itself was cancelled or timed out.
    fn under<'b>(&'b self, token: &'b CancellationToken) -> Context<'b>
    where
        'a: 'b,
    {
        Context {
            job: self.job,
            id: self.id.clone(),
            started: self.started,
            cancel: token,
            shutdown: self.shutdown,
            progress: self.progress,
            runtime: self.runtime.clone(),
            private: self.private,
            local: self.local,
        }
    }

    /// `Cancelled` (also as a failed restore's cause) becomes `TimedOut` when it was the
    /// job's timeout that cancelled.
    fn explain(&self, err: BackupError) -> BackupError {
        let timed_out = self.cancel.is_cancelled() && !self.shutdown.is_cancelled();
        match err {
            BackupError::Cancelled if timed_out => BackupError::TimedOut(self.job.timeout),
            BackupError::RestoreFailed {
                cause,
                rolled_back,
                safety_copy,
            } => BackupError::RestoreFailed {
                cause: Box::new(self.explain(*cause)),
                rolled_back,
                safety_copy,
            },
            other => other,
        }
    }

    fn check(&self) -> Result<(), BackupError> {
        if self.cancel.is_cancelled() {
            Err(BackupError::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What a kind produced: the staged (closed, fsynced) file and facts for its manifest.
pub(crate) struct Produced {
    pub staged: Staged,
    /// The published file's extension.
    pub extension: &'static str,
    pub tool: String,
    pub server_version: Option<String>,
    pub source: String,
    pub tables: BTreeMap<String, u64>,
    pub files: Option<FileCounts>,
    pub compression: Option<String>,
    /// The SHA-256 computed while writing, when the kind wrote the bytes itself.
    pub streamed_sha256: Option<String>,
    /// The backup an incremental one holds the changes since.
    pub parent: Option<String>,
    /// What restoring the chain gives (incremental `files` jobs).
    pub tree: Option<FileCounts>,
    /// A staged file of the kind's own state (the file index) and where it goes once the
    /// backup's manifest is written; a backup that is not published leaves the old one.
    pub state: Option<(Staged, PathBuf)>,
}

/// What a restore did, one line per step, for the command line.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// The backup restored.
    pub id: String,
    /// Where to.
    pub target: String,
    /// Where the safety copy of the previous content is, if one was taken.
    pub safety_copy: Option<String>,
    /// What was done and checked.
    pub steps: Vec<String>,
}

/// The result of verifying one stored backup.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifyOutcome {
    /// The backup.
    pub id: String,
    /// Whether it passed.
    pub ok: bool,
    /// The checks that passed.
    pub checks: Vec<String>,
    /// What failed.
    pub error: Option<String>,
}

/// The backup jobs of one warden process, the store they report to, and the bound on how
/// many run at once.
pub struct Backups {
    jobs: Vec<BackupConfig>,
    /// Where the configuration came from, for "no backup job named …".
    origin: String,
    store: Arc<Store>,
    /// `max_concurrent_backups` permits.
    slots: Arc<Semaphore>,
    /// Jobs with an operation in progress in this process.
    busy: Mutex<HashSet<String>>,
    /// The state directory's [`PRIVATE_DIR`].
    private: PathBuf,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups")
            .field(
                "jobs",
                &self.jobs.iter().map(|j| &j.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Marks a job busy in this process until dropped.
struct Busy<'a> {
    backups: &'a Backups,
    job: String,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.backups
            .busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.job);
    }
}

/// Creates `dir` (mode 0700, made so if it exists with another) and removes the passfiles a
/// killed warden left in it: those named for a process that no longer runs (`warden serve` and
/// `warden backup` commands share the directory, each removes its own when its tool ends).
fn open_private(dir: &Path) -> Result<(), BackupError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(BackupError::io("create the private directory", dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(BackupError::io("restrict", dir))?;
    }
    for entry in std::fs::read_dir(dir)
        .map_err(BackupError::io("list", dir))?
        .flatten()
    {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(libpq::passfile_pid) else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch, for the store and metrics.
fn unix(time: DateTime<Utc>) -> f64 {
    time.timestamp_millis() as f64 / 1000.0
}

impl Backups {
    /// The configured jobs over the store in `config.state_dir`. Rebuilds every job's catalog
    /// from the manifests on disk and removes leftovers of interrupted runs (of jobs not busy
    /// elsewhere).
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub fn open(config: &Config) -> Result<Arc<Backups>, BackupError> {
        let store = Arc::new(Store::open(&config.state_dir)?);
        let private = config.state_dir.join(PRIVATE_DIR);
        open_private(&private)?;
        let backups = Arc::new(Backups {
            jobs: config.backups.clone(),
            origin: config.origin.to_string(),
            store,
            slots: Arc::new(Semaphore::new(config.max_concurrent_backups)),
            busy: Mutex::new(HashSet::new()),
            private,
        });
        for job in &backups.jobs {
            let local = Local::new(&job.destination);
            if let Ok(_lock) = local.lock(&job.name) {
                let removed = local.remove_leftovers(job.kind.extensions());
                if !removed.is_empty() {
                    tracing::warn!(job = %job.name, files = ?removed, "Removed what interrupted runs left behind.");
                }
            }
            backups.refresh_catalog(job)?;
        }
        Ok(backups)
    }

    /// The jobs over a store in memory, for commands that only read (`warden backup list`)
    /// when the state directory does not exist: the catalog is read from the manifests, and
    /// nothing is created or removed on disk.
    ///
    /// # Errors
    /// When the in-memory store cannot be set up.
    pub fn open_read_only(config: &Config) -> Result<Arc<Backups>, BackupError> {
        let backups = Arc::new(Backups {
            jobs: config.backups.clone(),
            origin: config.origin.to_string(),
            store: Arc::new(Store::open_in_memory()?),
            slots: Arc::new(Semaphore::new(config.max_concurrent_backups)),
            busy: Mutex::new(HashSet::new()),
            // Never created: a read-only store runs no operation.
            private: config.state_dir.join(PRIVATE_DIR),
        });
        for job in &backups.jobs {
            backups.refresh_catalog(job)?;
        }
        Ok(backups)
    }

    /// The configured jobs.
    pub fn jobs(&self) -> &[BackupConfig] {
        &self.jobs
    }

    /// The state store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Whether an operation on `job` is in progress in this process.
    pub fn is_busy(&self, job: &str) -> bool {
        self.busy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(job)
    }

    fn job(&self, name: &str) -> Result<&BackupConfig, BackupError> {
        self.jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| BackupError::UnknownJob {
                job: name.to_owned(),
                origin: self.origin.clone(),
            })
    }

    fn mark_busy(&self, job: &str) -> Option<Busy<'_>> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        busy.insert(job.to_owned()).then(|| Busy {
            backups: self,
            job: job.to_owned(),
        })
    }

    /// Rereads `job`'s manifests into the catalog; returns them, newest first.
    fn refresh_catalog(&self, job: &BackupConfig) -> Result<Vec<Manifest>, BackupError> {
        let scan = Local::new(&job.destination).scan(&job.name, job.kind.extensions());
        for problem in &scan.problems {
            tracing::warn!(job = %job.name, problem = %problem, "Skipping a manifest.");
        }
        self.store.replace_catalog(&job.name, &scan.manifests)?;
        Ok(scan.manifests)
    }

    /// The catalog of `job` (or of every job), newest first.
    ///
    /// # Errors
    /// When the job is unknown or the store fails.
    pub fn list(&self, job: Option<&str>) -> Result<Vec<Manifest>, BackupError> {
        let jobs: Vec<&BackupConfig> = match job {
            Some(name) => vec![self.job(name)?],
            None => self.jobs.iter().collect(),
        };
        let mut all = Vec::new();
        for job in jobs {
            all.extend(self.store.catalog(&job.name)?);
        }
        Ok(all)
    }

    /// Runs `operation` for `job` on a blocking thread, with the job marked busy, its lock
    /// held, one concurrency permit, and the job's timeout and `cancel` applied. It runs as a
    /// task of its own: dropping the returned future (a caller that goes away) neither lifts
    /// the timeout nor marks the job free while its worker still runs.
    async fn operate<T: Send + 'static>(
        self: &Arc<Self>,
        job: &str,
        cancel: &CancellationToken,
        progress: Arc<Progress>,
        operation: impl FnOnce(&Backups, &Context<'_>) -> Result<T, BackupError> + Send + 'static,
    ) -> Result<T, BackupError> {
        let this = Arc::clone(self);
        let job = job.to_owned();
        let cancel = cancel.clone();
        tokio::spawn(async move { this.operate_here(&job, &cancel, progress, operation).await })
            .await
            .map_err(BackupError::Worker)?
    }

    async fn operate_here<T: Send + 'static>(
        self: &Arc<Self>,
        job: &str,
        cancel: &CancellationToken,
        progress: Arc<Progress>,
        operation: impl FnOnce(&Backups, &Context<'_>) -> Result<T, BackupError> + Send + 'static,
    ) -> Result<T, BackupError> {
        let config = self.job(job)?.clone();
        let limit = config.timeout;
        let Some(_busy) = self.mark_busy(job) else {
            return Err(BackupError::AlreadyRunning(job.to_owned()));
        };
        let permit = tokio::select! {
            permit = Arc::clone(&self.slots).acquire_owned() => permit.map_err(|_| BackupError::Cancelled)?,
            () = cancel.cancelled() => return Err(BackupError::Cancelled),
        };
        let token = cancel.child_token();
        let worker_token = token.clone();
        let shutdown = cancel.clone();
        let this = Arc::clone(self);
        let runtime = tokio::runtime::Handle::current();
        let mut task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let local = Local::new(&config.destination);
            let _lock = local.lock(&config.name)?;
            let removed = local.remove_leftovers(config.kind.extensions());
            if !removed.is_empty() {
                tracing::warn!(job = %config.name, files = ?removed, "Removed what interrupted runs left behind.");
            }
            let started = Utc::now();
            let context = Context {
                job: &config,
                id: manifest::new_id(started),
                started,
                cancel: &worker_token,
                shutdown: &shutdown,
                progress: &progress,
                runtime,
                private: &this.private,
                local: &local,
            };
            operation(&this, &context).map_err(|err| context.explain(err))
        });
        tokio::select! {
            joined = &mut task => joined.map_err(BackupError::Worker)?,
            () = tokio::time::sleep(limit) => {
                token.cancel();
                // The worker stops at its next check, removes what it staged and says how it
                // ended: timed out, or done after all, or a restore that could not roll back.
                task.await.map_err(BackupError::Worker)?
            }
        }
    }

    /// Runs a backup of `job`: produce, verify, publish, then (when configured) a restore
    /// drill and pruning. A second trigger while the job is busy returns
    /// [`BackupError::AlreadyRunning`] and counts as `skipped`.
    ///
    /// # Errors
    /// When the run fails; nothing is published then and earlier backups are untouched.
    pub async fn run(
        self: &Arc<Self>,
        job: &str,
        trigger: Trigger,
        cancel: &CancellationToken,
        progress: Arc<Progress>,
    ) -> Result<Manifest, BackupError> {
        self.job(job)?;
        tracing::info!(job, trigger = trigger.as_str(), "Backup starting.");
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let worker_ran = Arc::clone(&ran);
        let result = self
            .operate(job, cancel, progress, move |backups, context| {
                worker_ran.store(true, std::sync::atomic::Ordering::Relaxed);
                let result = backups
                    .run_blocking(context)
                    .map_err(|err| context.explain(err));
                backups.record_run(context, &result);
                result
            })
            .await;
        // What ended before the run began is counted here: a busy job as skipped, a
        // destination that cannot be created or locked as a failure (without a start, so
        // the scheduler tries again soon).
        let early = match &result {
            Err(BackupError::AlreadyRunning(_)) => Some(RunOutcome::Skipped),
            Err(BackupError::Cancelled) => None,
            Err(_) if !ran.load(std::sync::atomic::Ordering::Relaxed) => Some(RunOutcome::Failure),
            _ => None,
        };
        if let Some(outcome) = early {
            let store = Arc::clone(&self.store);
            let name = job.to_owned();
            let now = unix(Utc::now());
            let recorded =
                tokio::task::spawn_blocking(move || store.record_run(&name, outcome, now, None))
                    .await;
            if let Ok(Err(err)) = recorded {
                tracing::error!(job, error = %crate::collect::ErrorChain(&err), "Cannot record the run.");
            }
        }
        match &result {
            Ok(manifest) => tracing::info!(
                job,
                id = %manifest.id,
                bytes = manifest.size_bytes,
                seconds = format!("{:.2}", manifest.duration_seconds),
                "Backup verified and published."
            ),
            Err(BackupError::AlreadyRunning(_)) => {
                tracing::warn!(
                    job,
                    trigger = trigger.as_str(),
                    "Backup not started: the job is busy."
                )
            }
            Err(err) => {
                tracing::error!(job, error = %crate::collect::ErrorChain(err), "Backup failed; nothing was published.")
            }
        }
        result
    }

    /// Counts a run that ran, with its start (the scheduler's next firing follows it) and its
    /// duration. A cancelled run (shutdown) is not counted: it is redone at the next start.
    fn record_run(&self, context: &Context<'_>, result: &Result<Manifest, BackupError>) {
        let outcome = match result {
            Ok(_) => RunOutcome::Success,
            Err(BackupError::Cancelled) => return,
            Err(_) => RunOutcome::Failure,
        };
        let ended = Utc::now();
        let ran = Ran {
            started: unix(context.started),
            duration: (ended - context.started).to_std().unwrap_or_default(),
        };
        if let Err(err) = self
            .store
            .record_run(&context.job.name, outcome, unix(ended), Some(ran))
        {
            tracing::error!(job = %context.job.name, error = %crate::collect::ErrorChain(&err), "Cannot record the run.");
        }
    }

    fn run_blocking(&self, context: &Context<'_>) -> Result<Manifest, BackupError> {
        let job = context.job;
        let held = self.refresh_catalog(job)?;
        let produced = job.kind.produce(context, &held)?;
        context.check()?;
        let staged_path = produced.staged.path().to_owned();
        let expected = Expected {
            required_tables: &job.verify.required_tables,
            files: produced.files.as_ref(),
            compression: produced.compression.as_deref(),
        };
        // The flush to disk runs alongside the verification, which only reads what was written
        // (a producer may leave its file unsynced for this; publishing syncs again, cheaply).
        let (synced, (hashed, kind_checks)) = std::thread::scope(|scope| {
            let sync = scope.spawn(|| std::fs::File::open(&staged_path)?.sync_all());
            let verified = hash_and_check(&staged_path, &expected, context);
            let synced = sync
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the sync thread panicked")));
            (synced, verified)
        });
        synced.map_err(BackupError::io("sync", &staged_path))?;
        let (sha256, size) = hashed.map_err(BackupError::io("read back", &staged_path))?;
        if size == 0 {
            return Err(BackupError::NotVerified("the backup is empty".to_owned()));
        }
        if let Some(streamed) = &produced.streamed_sha256
            && *streamed != sha256
        {
            return Err(BackupError::NotVerified(format!(
                "the file reads back with SHA-256 {sha256}, but {streamed} was written"
            )));
        }
        let mut checks = vec![format!("sha256 {sha256} over {size} bytes")];
        checks.extend(kind_checks?);
        context.check()?;

        let file = format!("{}.{}", context.id, produced.extension);
        let target = context.local.dir().join(&file);
        produced
            .staged
            .publish(&target)
            .map_err(BackupError::io("publish", &target))?;
        let finished = Utc::now();
        let manifest = Manifest {
            format: manifest::FORMAT,
            id: context.id.clone(),
            job: job.name.clone(),
            kind: job.kind.name().to_owned(),
            file,
            started_at: format_time(context.started),
            finished_at: format_time(finished),
            duration_seconds: (finished - context.started).num_milliseconds() as f64 / 1000.0,
            size_bytes: size,
            sha256,
            tool: produced.tool,
            server_version: produced.server_version,
            source: produced.source,
            tables: produced.tables,
            files: produced.files,
            compression: produced.compression,
            parent: produced.parent,
            tree: produced.tree,
            verification: Verification {
                ok: true,
                checked_at: format_time(finished),
                checks,
                error: None,
            },
            restore_test: None,
            warden_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if let Err(err) = context.local.write_manifest(&manifest) {
            // Without its manifest the file is not a backup; remove it rather than leave an
            // orphan for the next run to find.
            let _ = std::fs::remove_file(&target);
            return Err(err);
        }
        if let Some((staged, path)) = produced.state
            && let Err(err) = staged.publish(&path)
        {
            tracing::warn!(job = %job.name, path = %path.display(), error = %crate::collect::ErrorChain(&err), "Cannot keep the file index; the next run makes a full backup.");
        }
        self.refresh_catalog(job)?;

        let mut manifest = manifest;
        if job.verify.restore_test && job.verify.restore_test_schedule.is_none() {
            match self.drill_blocking(context, Some(&manifest.id)) {
                Ok(drilled) => manifest = drilled,
                Err(err) => {
                    tracing::error!(job = %job.name, error = %crate::collect::ErrorChain(&err), "Restore drill failed.")
                }
            }
        }
        if !job.retention.is_empty() {
            match self.prune_blocking(context, false) {
                Ok(decisions) => {
                    let removed: Vec<&str> = decisions
                        .iter()
                        .filter(|d| !d.keep)
                        .map(|d| d.id.as_str())
                        .collect();
                    if !removed.is_empty() {
                        tracing::info!(job = %job.name, removed = ?removed, "Pruned backups outside the retention policy.");
                    }
                }
                Err(err) => {
                    tracing::error!(job = %job.name, error = %crate::collect::ErrorChain(&err), "Pruning failed.")
                }
            }
        }
        // The backup is published: a timeout or shutdown now ends the copies, not the run.
        for copy in &job.copies {
            if context.cancel.is_cancelled() {
                tracing::warn!(job = %job.name, destination = %copy.name, "Copy not made: the run was cancelled or timed out after publishing.");
                continue;
            }
            self.copy_blocking(context, copy, &manifest);
        }
        Ok(manifest)
    }

    /// Verifies stored backups of `job` again: `id`, or every backup when `None`. Each
    /// manifest is updated with the result; failures are counted.
    ///
    /// # Errors
    /// When the job is busy or unknown, or the id is unknown.
    pub async fn verify(
        self: &Arc<Self>,
        job: &str,
        id: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Vec<VerifyOutcome>, BackupError> {
        self.operate(job, cancel, Arc::default(), move |backups, context| {
            backups.verify_blocking(context, id.as_deref())
        })
        .await
    }

    fn pick<'m>(
        &self,
        job: &BackupConfig,
        manifests: &'m [Manifest],
        id: Option<&str>,
    ) -> Result<&'m Manifest, BackupError> {
        match id {
            Some(id) => {
                manifests
                    .iter()
                    .find(|m| m.id == id)
                    .ok_or_else(|| BackupError::UnknownBackup {
                        job: job.name.clone(),
                        id: id.to_owned(),
                    })
            }
            None => manifests
                .iter()
                .find(|m| m.is_verified())
                .ok_or_else(|| BackupError::NoVerifiedBackup(job.name.clone())),
        }
    }

    fn verify_blocking(
        &self,
        context: &Context<'_>,
        id: Option<&str>,
    ) -> Result<Vec<VerifyOutcome>, BackupError> {
        let job = context.job;
        let manifests = self.refresh_catalog(job)?;
        // One backup is verified with the chain it needs, its full first.
        let chosen: Vec<Manifest> = match id {
            Some(id) => {
                let picked = self.pick(job, &manifests, Some(id))?;
                match manifest::chain(&manifests, picked) {
                    Ok(chain) => chain.into_iter().cloned().collect(),
                    Err(_) => vec![picked.clone()],
                }
            }
            None => manifests.clone(),
        };
        let mut outcomes = Vec::new();
        for mut manifest in chosen {
            context.check()?;
            let result = check_stored(context, &manifest).and_then(|mut checks| {
                if manifest.parent.is_some() {
                    let chain = chain_of(&manifests, &manifest)?;
                    checks.push(format!(
                        "chain complete: the full {} and {} incrementals",
                        chain[0].id,
                        chain.len() - 1
                    ));
                }
                Ok(checks)
            });
            let outcome = verification_outcome(&mut manifest, result)?;
            if let Some(message) = &outcome.error {
                tracing::error!(job = %job.name, id = %manifest.id, error = %message, "Stored backup failed verification.");
                self.store.record_verify_failure(&job.name)?;
            }
            context.local.write_manifest(&manifest)?;
            outcomes.push(outcome);
        }
        self.refresh_catalog(job)?;
        Ok(outcomes)
    }

    /// Runs a restore drill of `job`'s backup `id` (the newest verified one when `None`):
    /// restores it into a scratch database, file or directory, compares it with the manifest,
    /// and removes the scratch copy. The result is written into the manifest.
    ///
    /// # Errors
    /// When the drill fails, or the job is busy or unknown.
    pub async fn drill(
        self: &Arc<Self>,
        job: &str,
        id: Option<String>,
        from: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Manifest, BackupError> {
        let result = self
            .operate(
                job,
                cancel,
                Arc::default(),
                move |backups, context| match from.as_deref() {
                    Some(destination) => {
                        let copy = backups.copy_config(context.job, destination)?;
                        backups.drill_copy(context, copy, id.as_deref())
                    }
                    None => backups.drill_blocking(context, id.as_deref()),
                },
            )
            .await;
        match &result {
            Ok(m) => tracing::info!(job, id = %m.id, "Restore drill passed."),
            Err(BackupError::AlreadyRunning(_)) => {
                tracing::warn!(job, "Restore drill not started: the job is busy.")
            }
            Err(err) => {
                tracing::error!(job, error = %crate::collect::ErrorChain(err), "Restore drill failed.")
            }
        }
        result
    }

    fn drill_blocking(
        &self,
        context: &Context<'_>,
        id: Option<&str>,
    ) -> Result<Manifest, BackupError> {
        let job = context.job;
        let started = Utc::now();
        // From the destination, under the job's lock, not from the store's catalog, which can
        // lag behind a backup deleted by hand: a drill must never write back the manifest of
        // a backup that is gone.
        let manifests = self.refresh_catalog(job)?;
        let mut manifest = self.pick(job, &manifests, id)?.clone();
        let result = chain_of(&manifests, &manifest)
            .and_then(|chain| {
                let paths = check_chain(context, &chain)?;
                job.kind.drill(&links(&chain, &paths), context)
            })
            .map_err(|err| context.explain(err));
        let (check, outcome) = match drill_check(result) {
            Ok(checked) => checked,
            Err(BackupError::Cancelled) => return Err(BackupError::Cancelled),
            // The drill could not run: the backup is as good as before. Its start is recorded
            // (a scheduled drill waits for its next firing instead of re-reading the backup
            // every minute), its outcome is not.
            Err(err) => {
                self.store.record_drill_start(&job.name, unix(started))?;
                return Err(err);
            }
        };
        self.store
            .record_drill(&job.name, unix(started), unix(Utc::now()), check.ok)?;
        manifest.restore_test = Some(check);
        context.local.write_manifest(&manifest)?;
        self.refresh_catalog(job)?;
        outcome.map(|()| manifest)
    }

    /// Applies `job`'s retention policy. With `dry_run`, only says what it would delete.
    ///
    /// # Errors
    /// When the job is busy or unknown, or a deletion fails.
    pub async fn prune(
        self: &Arc<Self>,
        job: &str,
        dry_run: bool,
        cancel: &CancellationToken,
    ) -> Result<Vec<Decision>, BackupError> {
        self.operate(job, cancel, Arc::default(), move |backups, context| {
            backups.prune_blocking(context, dry_run)
        })
        .await
    }

    fn prune_blocking(
        &self,
        context: &Context<'_>,
        dry_run: bool,
    ) -> Result<Vec<Decision>, BackupError> {
        let job = context.job;
        let manifests = self.refresh_catalog(job)?;
        let decisions = plan_retention(&manifests, &job.retention, job.kind.as_ref());
        if !dry_run {
            let doomed: Vec<&Manifest> = decisions
                .iter()
                .filter(|d| !d.keep)
                .filter_map(|d| manifests.iter().find(|m| m.id == d.id))
                .collect();
            // Each manifest goes first: a backup file without one is a leftover, never a
            // listed backup, whichever step a crash interrupts.
            context.local.delete(&doomed)?;
            self.refresh_catalog(job)?;
        }
        Ok(decisions)
    }

    /// Restores `job`'s backup `id` (the newest verified one when `None`) to `target`: a
    /// database name (postgres), a file (sqlite) or a new directory (files). A target holding
    /// data is refused without `force`; with it, a safety copy is taken first and put back if
    /// the restore fails.
    ///
    /// # Errors
    /// When the restore is refused or fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn restore(
        self: &Arc<Self>,
        job: &str,
        id: Option<String>,
        target: String,
        force: bool,
        from: Option<String>,
        cancel: &CancellationToken,
        progress: Arc<Progress>,
    ) -> Result<RestoreSummary, BackupError> {
        self.operate(job, cancel, progress, move |backups, context| {
            let job = context.job;
            if let Some(destination) = from.as_deref() {
                let copy = backups.copy_config(job, destination)?;
                return backups.restore_copy(context, copy, id.as_deref(), &target, force);
            }
            let manifests = backups.refresh_catalog(job)?;
            let manifest = backups.pick(job, &manifests, id.as_deref())?;
            if !manifest.is_verified() {
                return Err(BackupError::NotVerified(format!(
                    "backup {} failed its last verification; pick another",
                    manifest.id
                )));
            }
            let chain = chain_of(&manifests, manifest)?;
            let mut checks = Vec::new();
            for link in &chain {
                for line in check_stored(context, link)? {
                    checks.push(match chain.len() {
                        1 => line,
                        _ => format!("{}: {line}", link.id),
                    });
                }
            }
            let paths: Vec<PathBuf> = chain.iter().map(|m| context.local.file(m)).collect();
            let mut summary = job
                .kind
                .restore(&links(&chain, &paths), &target, force, context)?;
            checks.append(&mut summary.steps);
            summary.steps = checks;
            summary.id = manifest.id.clone();
            Ok(summary)
        })
        .await
    }
}

/// What a backup is expected to hold, from its manifest (or from the run that made it).
pub(crate) struct Expected<'a> {
    /// Tables that must be present: the job's `required_tables` for a new backup, the tables
    /// its manifest recorded for a stored one (so a table added to the config later does not
    /// fail every older backup).
    pub required_tables: &'a [String],
    pub files: Option<&'a FileCounts>,
    pub compression: Option<&'a str>,
}

/// What `policy` keeps of `manifests`. No policy deletes nothing, not even backups that failed
/// verification. For a kind with incrementals, `policy` keeps the fulls and the incremental
/// policy (else `policy`) the incrementals, each among their own. Then, whatever the kind,
/// every parent of a kept backup is kept too ([`retention::Reason::Needed`]), so no kept
/// backup loses its chain.
fn plan_retention(
    manifests: &[Manifest],
    policy: &retention::Policy,
    kind: &dyn Kind,
) -> Vec<Decision> {
    let mut decisions = match kind.incremental() {
        Some(incremental) => {
            let (incrementals, fulls): (Vec<Manifest>, Vec<Manifest>) =
                manifests.iter().cloned().partition(|m| m.parent.is_some());
            let mut decisions = plan_level(&fulls, policy);
            decisions.extend(plan_level(
                &incrementals,
                incremental.retention.as_ref().unwrap_or(policy),
            ));
            decisions
        }
        // Incrementals made before `incremental` was taken out of the config still need
        // their parents.
        None => plan_level(manifests, policy),
    };
    retention::keep_parents(&mut decisions, |id| {
        manifests
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.parent.clone())
    });
    decisions.sort_by(|a, b| b.finished.cmp(&a.finished).then_with(|| b.id.cmp(&a.id)));
    decisions
}

/// What `policy` keeps of `manifests`, all of one level.
fn plan_level(manifests: &[Manifest], policy: &retention::Policy) -> Vec<Decision> {
    let candidates: Vec<retention::Candidate> = manifests
        .iter()
        .map(|m| retention::Candidate {
            id: m.id.clone(),
            finished: m.finished(),
            verified: m.is_verified(),
            drilled: m.restore_tested().is_some(),
        })
        .collect();
    if policy.is_empty() {
        return candidates
            .iter()
            .map(|c| Decision {
                id: c.id.clone(),
                finished: c.finished,
                keep: true,
                reasons: vec![retention::Reason::NoPolicy],
            })
            .collect();
    }
    retention::plan(&candidates, policy, Utc::now())
}

/// The chain restoring `tip` applies, its full first (just `tip` for a full backup).
fn chain_of<'m>(
    manifests: &'m [Manifest],
    tip: &'m Manifest,
) -> Result<Vec<&'m Manifest>, BackupError> {
    manifest::chain(manifests, tip).map_err(BackupError::BrokenChain)
}

/// The chain's manifests with their files, as a kind's drill and restore take them.
fn links<'a, P: AsRef<Path>>(chain: &[&'a Manifest], files: &'a [P]) -> Vec<Link<'a>> {
    chain
        .iter()
        .zip(files)
        .map(|(manifest, file)| Link {
            manifest,
            path: file.as_ref(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::kind::Kind;
    use super::*;
    use crate::config::{Target, VerifyConfig};

    /// Parents are kept even for a kind (or a config) without incrementals: a job whose
    /// `incremental` was taken out still has its old chains.
    #[test]
    fn retention_keeps_the_parents_of_kept_incrementals_for_any_kind() {
        let at = |hours: i64| format_time(Utc::now() - chrono::TimeDelta::hours(hours));
        let backup = |id: &str, parent: Option<&str>, hours| Manifest {
            format: manifest::FORMAT,
            id: id.to_owned(),
            job: "job".to_owned(),
            kind: "probe".to_owned(),
            file: format!("{id}.probe"),
            started_at: at(hours),
            finished_at: at(hours),
            duration_seconds: 0.0,
            size_bytes: 1,
            sha256: String::new(),
            tool: String::new(),
            server_version: None,
            source: String::new(),
            tables: BTreeMap::new(),
            files: None,
            compression: None,
            parent: parent.map(str::to_owned),
            tree: None,
            verification: Verification {
                ok: true,
                checked_at: at(hours),
                checks: Vec::new(),
                error: None,
            },
            restore_test: None,
            warden_version: String::new(),
        };
        let manifests = [
            backup("g", None, 1),
            backup("i2", Some("i1"), 2),
            backup("i1", Some("f"), 3),
            backup("f", None, 4),
            backup("old", None, 5),
        ];
        let policy = retention::Policy {
            keep_last: Some(2),
            ..retention::Policy::default()
        };
        let decisions = plan_retention(&manifests, &policy, &Probe::default());
        let kept: Vec<&str> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.id.as_str())
            .collect();
        assert_eq!(kept, ["g", "i2", "i1", "f"]);
    }

    /// A kind whose check only notes that it ran.
    #[derive(Debug, Default)]
    struct Probe {
        checked: AtomicBool,
    }

    impl Kind for Probe {
        fn name(&self) -> &'static str {
            "probe"
        }
        fn extensions(&self) -> &'static [&'static str] {
            &["probe"]
        }
        fn source(&self) -> Option<Target> {
            None
        }
        fn reads(&self) -> &[PathBuf] {
            &[]
        }
        fn produce(&self, _: &Context<'_>, _: &[Manifest]) -> Result<Produced, BackupError> {
            unreachable!("not produced here")
        }
        fn verify(
            &self,
            _: &Path,
            _: &Expected<'_>,
            _: &Context<'_>,
        ) -> Result<Vec<String>, BackupError> {
            self.checked.store(true, Ordering::SeqCst);
            Ok(vec!["probed".to_owned()])
        }
        fn drill(&self, _: &[Link<'_>], _: &Context<'_>) -> Result<String, BackupError> {
            unreachable!("not drilled here")
        }
        fn restore(
            &self,
            _: &[Link<'_>],
            _: &str,
            _: bool,
            _: &Context<'_>,
        ) -> Result<RestoreSummary, BackupError> {
            unreachable!("not restored here")
        }
    }

    /// A backup deleted by hand while `warden serve` runs is not drilled, and its manifest is
    /// not written back by the drill.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_drill_never_brings_back_a_deleted_backup() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/notes.txt"), b"notes").unwrap();
        let yaml = format!(
            "state_dir: {d}/state\nhost: {{enabled: false}}\nbackups:\n  - {{name: notes, kind: files, paths: [{d}/src], destination: {d}/out}}\n",
            d = dir.path().display()
        );
        let config =
            Config::try_from_yaml(&yaml, "test", dir.path(), &crate::config::ProcessEnv).unwrap();
        let backups = tokio::task::spawn_blocking(move || Backups::open(&config))
            .await
            .unwrap()
            .unwrap();
        let cancel = CancellationToken::new();
        let made = backups
            .run("notes", Trigger::Command, &cancel, Arc::default())
            .await
            .unwrap();
        let out = dir.path().join("out");
        std::fs::remove_file(made.path_in(&out)).unwrap();
        std::fs::remove_file(out.join(&made.file)).unwrap();
        let err = backups
            .drill("notes", Some(made.id.clone()), None, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(err, BackupError::UnknownBackup { .. }), "{err}");
        assert!(
            !made.path_in(&out).exists(),
            "the drill wrote the manifest back"
        );
        assert!(backups.list(Some("notes")).unwrap().is_empty());
    }

    /// A stored file that is not the one the manifest describes is never handed to the kind's
    /// check, which parses it: a crafted archive could make that check exhaust memory.
    #[tokio::test]
    async fn a_stored_backup_is_parsed_only_once_its_checksum_matches() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Arc::new(Probe::default());
        let job = BackupConfig {
            name: "job".to_owned(),
            kind: Arc::clone(&probe) as Arc<dyn Kind>,
            destination: dir.path().to_owned(),
            schedule: None,
            retention: retention::Policy::default(),
            verify: VerifyConfig {
                required_tables: Vec::new(),
                restore_test: false,
                restore_test_schedule: None,
            },
            timeout: Duration::from_secs(60),
            copies: Vec::new(),
        };
        let token = CancellationToken::new();
        let progress = Progress::default();
        let started = Utc::now();
        let context = Context {
            job: &job,
            id: manifest::new_id(started),
            started,
            cancel: &token,
            shutdown: &token,
            progress: &progress,
            runtime: tokio::runtime::Handle::current(),
            private: dir.path(),
            local: &Local::new(dir.path()),
        };
        let id = manifest::new_id(started);
        std::fs::write(dir.path().join(format!("{id}.probe")), b"what warden wrote").unwrap();
        let (sha256, size) =
            publish::sha256_file(&dir.path().join(format!("{id}.probe")), &|| false).unwrap();
        let mut stored = Manifest {
            format: manifest::FORMAT,
            id: id.clone(),
            job: "job".to_owned(),
            kind: "probe".to_owned(),
            file: format!("{id}.probe"),
            started_at: format_time(started),
            finished_at: format_time(started),
            duration_seconds: 0.0,
            size_bytes: size,
            sha256,
            tool: "test".to_owned(),
            server_version: None,
            source: "test".to_owned(),
            tables: BTreeMap::new(),
            files: None,
            compression: None,
            parent: None,
            tree: None,
            verification: Verification {
                ok: true,
                checked_at: format_time(started),
                checks: Vec::new(),
                error: None,
            },
            restore_test: None,
            warden_version: "test".to_owned(),
        };
        let checks = check_stored(&context, &stored).unwrap();
        assert_eq!(checks.last().map(String::as_str), Some("probed"));
        assert!(probe.checked.swap(false, Ordering::SeqCst));

        stored.sha256 = "0".repeat(64);
        let err = check_stored(&context, &stored).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        assert!(
            !probe.checked.load(Ordering::SeqCst),
            "the kind's check ran on a file whose checksum does not match"
        );
    }
}
