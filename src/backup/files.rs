//! The `files` kind: a tar archive of listed paths ([`archive`] does the tar work), hashed
//! while it is written, checked by reading the whole archive back, drilled into a scratch
//! directory, restored only into a new directory.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::archive::{self, ArchiveSpec, ArchiveStats};
use super::manifest::{FileCounts, Manifest};
use super::publish::{DiskFullSeam, HashingWriter, IO_BUFFER, Staged, TEMP_PREFIX};
use super::{BackupError, Context, Expected, Produced, RestoreSummary};
use crate::config::{Compression, FilesConfig};

pub use archive::FilesError;

impl From<ArchiveStats> for FileCounts {
    fn from(stats: ArchiveStats) -> Self {
        FileCounts {
            files: stats.files,
            dirs: stats.dirs,
            symlinks: stats.symlinks,
            bytes: stats.bytes,
        }
    }
}

impl From<&FileCounts> for ArchiveStats {
    fn from(counts: &FileCounts) -> Self {
        ArchiveStats {
            files: counts.files,
            dirs: counts.dirs,
            symlinks: counts.symlinks,
            bytes: counts.bytes,
        }
    }
}

/// A reader that fails once the operation is cancelled, so reading a large archive back
/// stops at the next block instead of at its end. The archive code reports such a failure
/// like any other read error; callers check the token first to tell them apart.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a tokio_util::sync::CancellationToken,
}

impl<R: std::io::Read> std::io::Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        self.inner.read(buf)
    }
}

fn open_archive<'a>(
    path: &Path,
    context: &'a Context<'_>,
) -> Result<Cancellable<'a, BufReader<std::fs::File>>, BackupError> {
    let file = std::fs::File::open(path).map_err(BackupError::io("open", path))?;
    Ok(Cancellable {
        inner: BufReader::with_capacity(IO_BUFFER, file),
        cancel: context.cancel,
    })
}

fn describe(counts: &FileCounts) -> String {
    format!(
        "{} files, {} directories, {} symlinks, {} bytes",
        counts.files, counts.dirs, counts.symlinks, counts.bytes
    )
}

/// Archives the job's paths into a staged file, hashing the bytes as they are written.
pub(crate) fn archive(spec: &FilesConfig, context: &Context<'_>) -> Result<Produced, BackupError> {
    let job = context.job;
    let extension = spec.compression.extension();
    let mut staged = Staged::create(&job.destination, &format!("{}.{extension}", context.id))
        .map_err(BackupError::io("create a file in", &job.destination))?;
    let path = staged.path().to_owned();
    let file = staged
        .file()
        .and_then(|f| f.try_clone())
        .map_err(BackupError::io("open", &path))?;
    let writer = HashingWriter::new(BufWriter::with_capacity(IO_BUFFER, DiskFullSeam::new(file)));
    let archive_spec = ArchiveSpec {
        paths: spec.paths.clone(),
        include: spec.include.clone(),
        exclude: spec.exclude.clone(),
        compression: spec.compression,
        level: spec.level,
    };
    let (stats, writer) = archive::write_archive(
        &archive_spec,
        writer,
        &|bytes| context.progress.set(bytes),
        &|| context.cancel.is_cancelled(),
    )?;
    let (mut buffered, sha256, _) = writer.finish();
    buffered.flush().map_err(BackupError::io("write", &path))?;
    drop(buffered);
    staged.close().map_err(BackupError::io("sync", &path))?;
    Ok(Produced {
        staged,
        extension,
        tool: format!(
            "warden {} (tar, {})",
            env!("CARGO_PKG_VERSION"),
            spec.compression.as_str()
        ),
        server_version: None,
        source: spec
            .paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        tables: Default::default(),
        files: Some(stats.into()),
        compression: Some(spec.compression.as_str().to_owned()),
        streamed_sha256: Some(sha256),
    })
}

fn compression(expected: &Expected<'_>) -> Result<Compression, BackupError> {
    expected
        .compression
        .and_then(Compression::from_name)
        .ok_or_else(|| {
            BackupError::NotVerified("the manifest names no known compression".to_owned())
        })
}

/// Reads the whole archive back, every entry to its end, and compares the counts.
pub(crate) fn verify(
    path: &Path,
    expected: &Expected<'_>,
    context: &Context<'_>,
) -> Result<Vec<String>, BackupError> {
    let compression = compression(expected)?;
    let counts = expected.files.copied().unwrap_or_default();
    let stats =
        archive::verify_archive(open_archive(path, context)?, compression, &(&counts).into())
            .map_err(|err| match err {
                _ if context.cancel.is_cancelled() => BackupError::Cancelled,
                FilesError::Cancelled => BackupError::Cancelled,
                other => BackupError::NotVerified(crate::collect::ErrorChain(&other).to_string()),
            })?;
    Ok(vec![format!(
        "archive re-read: {}",
        describe(&FileCounts::from(stats))
    )])
}

fn extract(
    manifest: &Manifest,
    path: &Path,
    target: &Path,
    context: &Context<'_>,
) -> Result<FileCounts, BackupError> {
    let compression = Compression::from_name(manifest.compression.as_deref().unwrap_or(""))
        .ok_or_else(|| {
            BackupError::NotVerified("the manifest names no known compression".to_owned())
        })?;
    let stats = archive::extract_archive(open_archive(path, context)?, compression, target)
        .map_err(|err| {
            if context.cancel.is_cancelled() {
                BackupError::Cancelled
            } else {
                err.into()
            }
        })?;
    Ok(stats.into())
}

/// Extracts into a scratch directory in the destination, compares the counts with the
/// manifest, and removes the scratch directory.
pub(crate) fn drill(
    manifest: &Manifest,
    path: &Path,
    context: &Context<'_>,
) -> Result<String, BackupError> {
    let scratch = ScratchDir(
        context
            .job
            .destination
            .join(format!("{TEMP_PREFIX}{}.drill", context.id)),
    );
    let found = extract(manifest, path, &scratch.0, context)?;
    let expected = manifest.files.unwrap_or_default();
    if found != expected {
        return Err(BackupError::DrillFailed(format!(
            "the manifest records {}, the restored directory holds {}",
            describe(&expected),
            describe(&found)
        )));
    }
    Ok(format!(
        "restored to a scratch directory: {}",
        describe(&found)
    ))
}

/// A directory removed with everything in it when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(err) = super::publish::remove_tree(&self.0) {
            tracing::error!(path = %self.0.display(), error = %err, "Cannot remove the drill's scratch directory.");
        }
    }
}

/// Restores into `target`, which must be a new or empty directory.
pub(crate) fn restore(
    manifest: &Manifest,
    path: &Path,
    target: &str,
    context: &Context<'_>,
) -> Result<RestoreSummary, BackupError> {
    let target_path = PathBuf::from(target);
    let found = extract(manifest, path, &target_path, context)?;
    let expected = manifest.files.unwrap_or_default();
    let mut steps = vec![format!(
        "extracted {} into {}",
        describe(&found),
        target_path.display()
    )];
    if found != expected {
        return Err(BackupError::NotVerified(format!(
            "the manifest records {}, the restored directory holds {}",
            describe(&expected),
            describe(&found)
        )));
    }
    steps.push("counts match the manifest".to_owned());
    Ok(RestoreSummary {
        target: target_path.display().to_string(),
        steps,
        ..RestoreSummary::default()
    })
}
