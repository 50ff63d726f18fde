//! The `files` kind: a tar archive of listed paths ([`archive`] does the tar work), hashed
//! while it is written, checked by reading the whole archive back, drilled into a scratch
//! directory, restored only into a new directory.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::archive::{self, ArchiveSpec, ArchiveStats};
use super::kind::{Kind, ParseContext, Registration};
use super::manifest::{FileCounts, Manifest};
use super::publish::{Cancelled, DiskFullSeam, HashingWriter, IO_BUFFER, Staged, TEMP_PREFIX};
use super::{BackupError, Context, Expected, Produced, RestoreSummary};
use crate::config::{Compression, FilesConfig, Problems, RawBackup, Target, globs};

pub use archive::FilesError;

/// The `files` kind: the paths to archive, filters, and the compression.
pub(crate) const KIND: Registration = Registration {
    name: "files",
    keys: &["paths", "include", "exclude", "compression", "level"],
    parse,
};

/// The extensions of an archive, one per compression.
const EXTENSIONS: &[&str] = &[Compression::Zstd.extension(), Compression::Gzip.extension()];

/// The `files` kind for one job.
#[derive(Debug)]
struct Files(FilesConfig);

fn parse(
    raw: &RawBackup,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    if raw.paths.is_empty() {
        problems.push(
            format!("{path}.paths"),
            "list at least one file or directory",
        );
    }
    let paths: Vec<PathBuf> = raw
        .paths
        .iter()
        .map(|p| {
            let joined = context.base.join(p);
            std::path::absolute(&joined).unwrap_or(joined)
        })
        .collect();
    let compression = match raw.compression.as_deref() {
        None => Compression::Zstd,
        Some(name) => Compression::from_name(name).unwrap_or_else(|| {
            problems.push(
                format!("{path}.compression"),
                format!("`{name}` is not one of: zstd, gzip"),
            );
            Compression::Zstd
        }),
    };
    let default_level = compression.default_level();
    let range = match compression {
        Compression::Zstd => 1..=19,
        Compression::Gzip => 1..=9,
    };
    let level = match raw.level {
        None => default_level,
        Some(level) if i32::try_from(level).is_ok_and(|l| range.contains(&l)) => level as i32,
        Some(_) => {
            problems.push(
                format!("{path}.level"),
                format!(
                    "{} levels are {}–{}",
                    compression.as_str(),
                    range.start(),
                    range.end()
                ),
            );
            default_level
        }
    };
    Some(Arc::new(Files(FilesConfig {
        paths,
        include: globs(&raw.include, &format!("{path}.include"), problems),
        exclude: globs(&raw.exclude, &format!("{path}.exclude"), problems),
        compression,
        level,
    })))
}

impl Kind for Files {
    fn name(&self) -> &'static str {
        KIND.name
    }

    fn extensions(&self) -> &'static [&'static str] {
        EXTENSIONS
    }

    fn source(&self) -> Option<Target> {
        None
    }

    fn reads(&self) -> &[PathBuf] {
        &self.0.paths
    }

    fn produce(&self, context: &Context<'_>) -> Result<Produced, BackupError> {
        archive(&self.0, context)
    }

    fn verify(
        &self,
        path: &Path,
        expected: &Expected<'_>,
        context: &Context<'_>,
    ) -> Result<Vec<String>, BackupError> {
        verify(path, expected, context)
    }

    fn drill(
        &self,
        manifest: &Manifest,
        path: &Path,
        context: &Context<'_>,
    ) -> Result<String, BackupError> {
        drill(manifest, path, context)
    }

    /// A files restore writes only into a new or empty directory: there is nothing to keep a
    /// safety copy of, so `force` changes nothing.
    fn restore(
        &self,
        manifest: &Manifest,
        path: &Path,
        target: &str,
        _force: bool,
        context: &Context<'_>,
    ) -> Result<RestoreSummary, BackupError> {
        restore(manifest, path, target, context)
    }
}

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

/// A reader that fails with [`Cancelled`] once the operation is cancelled, so reading a large
/// archive back stops at the next block instead of at its end. The archive code reports such a
/// failure like any other read error; callers check the token first to tell them apart.
struct Cancellable<'a, R> {
    inner: R,
    cancel: &'a tokio_util::sync::CancellationToken,
}

impl<R: std::io::Read> std::io::Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            return Err(Cancelled::io());
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
fn archive(spec: &FilesConfig, context: &Context<'_>) -> Result<Produced, BackupError> {
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
fn verify(
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
                other => BackupError::Broken {
                    what: "the archive does not read back".to_owned(),
                    source: Box::new(other),
                },
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
fn drill(manifest: &Manifest, path: &Path, context: &Context<'_>) -> Result<String, BackupError> {
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
fn restore(
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
