//! Where a job's backups are kept.
//!
//! A destination holds backup files and their manifests; a manifest is written last and
//! deleted first, so it is the commit marker: a file without one is never listed, and is a
//! leftover for [`Destination::remove_leftovers`]. [`Backups`](super::Backups) asks a
//! destination for what it holds, writes manifests and deletes backups only through this
//! trait. [`Local`] is the job's directory on the host, where backups are produced, verified
//! and published, and where the job's lock lives.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::manifest::{self, Manifest, Scan};
use super::{BackupError, LOCK_FILE, publish};

/// Where a job's backups are kept.
pub(crate) trait Destination: Debug + Send + Sync {
    /// The complete backups of `job` it holds (a manifest, and its file named `ID.EXTENSION`
    /// with one of the kind's `extensions`), newest first, and what could not be used.
    fn scan(&self, job: &str, extensions: &[&str]) -> Scan;

    /// Writes `manifest`, or replaces it, atomically.
    ///
    /// # Errors
    /// When it cannot be written; an existing manifest is then as it was.
    fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError>;

    /// Deletes the backups of `manifests`: each manifest first, then its file, then makes the
    /// deletions durable.
    ///
    /// # Errors
    /// At the first deletion that fails; the backups before it are gone.
    fn delete(&self, manifests: &[&Manifest]) -> Result<(), BackupError>;

    /// Removes what interrupted operations left: temporary files and directories, and backup
    /// files (with one of `extensions`) without a manifest. Only call it holding the job's
    /// lock. Returns the removed names.
    fn remove_leftovers(&self, extensions: &[&str]) -> Vec<String>;
}

/// A job's directory on the host.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    dir: PathBuf,
}

/// An exclusive lock on a job, a file in its [`Local`] directory; released when dropped.
#[derive(Debug)]
pub(crate) struct JobLock(#[allow(dead_code)] File);

impl Local {
    /// The directory `dir`.
    pub fn new(dir: &Path) -> Local {
        Local {
            dir: dir.to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of the backup file `manifest` names.
    pub fn file(&self, manifest: &Manifest) -> PathBuf {
        self.dir.join(&manifest.file)
    }

    /// Creates the directory (mode 0750) if needed and takes the lock of `job` in it without
    /// waiting, so that one job never has two operations at once, across processes too.
    ///
    /// # Errors
    /// [`BackupError::AlreadyRunning`] when someone holds it; the I/O error otherwise.
    pub fn lock(&self, job: &str) -> Result<JobLock, BackupError> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o750);
        builder
            .create(&self.dir)
            .map_err(BackupError::io("create destination", &self.dir))?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(BackupError::io("open lock file", &path))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(JobLock(file)),
            Err(errno) if errno == rustix::io::Errno::WOULDBLOCK => {
                Err(BackupError::AlreadyRunning(job.to_owned()))
            }
            Err(errno) => Err(BackupError::io("lock", &path)(errno.into())),
        }
    }
}

impl Destination for Local {
    fn scan(&self, job: &str, extensions: &[&str]) -> Scan {
        manifest::scan(&self.dir, job, extensions)
    }

    fn write_manifest(&self, manifest: &Manifest) -> Result<(), BackupError> {
        manifest
            .write(&self.dir)
            .map_err(BackupError::io("write a manifest in", &self.dir))
    }

    fn delete(&self, manifests: &[&Manifest]) -> Result<(), BackupError> {
        for manifest in manifests {
            let manifest_path = manifest.path_in(&self.dir);
            std::fs::remove_file(&manifest_path)
                .map_err(BackupError::io("delete", &manifest_path))?;
            let file = self.file(manifest);
            std::fs::remove_file(&file).map_err(BackupError::io("delete", &file))?;
        }
        publish::sync_parent(&self.dir.join(LOCK_FILE)).map_err(BackupError::io("sync", &self.dir))
    }

    fn remove_leftovers(&self, extensions: &[&str]) -> Vec<String> {
        manifest::remove_leftovers(&self.dir, extensions)
    }
}
