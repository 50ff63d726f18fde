//! The `files` kind: a tar archive of listed paths ([`archive`] does the tar work), hashed
//! while it is written, checked by reading the whole archive back, drilled into a scratch
//! directory, restored only into a new directory.

use std::io::{BufReader, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::archive::{self, ArchiveSpec, ArchiveStats, Delta};
use super::index;
use super::kind::{Kind, Link, ParseContext, Registration};
use super::manifest::{self, FileCounts, Manifest};
use super::publish::{Cancelled, DiskFullSeam, HashingWriter, IO_BUFFER, Staged, TEMP_PREFIX};
use super::{BackupError, Context, Expected, Produced, RestoreSummary};
use crate::config::{
    Compression, FilesConfig, IncrementalConfig, Problems, RawBackup, Target, globs,
};

pub use archive::FilesError;

/// The `files` kind: the paths to archive, filters, and the compression.
pub(crate) const KIND: Registration = Registration {
    name: "files",
    keys: &[
        "paths",
        "include",
        "exclude",
        "compression",
        "level",
        "incremental",
    ],
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
    let fingerprint = fingerprint(&paths, &raw.include, &raw.exclude);
    Some(Arc::new(Files(FilesConfig {
        fingerprint,
        paths,
        include: globs(&raw.include, &format!("{path}.include"), problems),
        exclude: globs(&raw.exclude, &format!("{path}.exclude"), problems),
        compression,
        level,
        incremental: raw
            .incremental
            .as_ref()
            .map(|raw| crate::config::incremental(raw, &format!("{path}.incremental"), problems)),
    })))
}

/// What selects a job's files (its paths and filters), hashed: a file index made under
/// another selection lists other files.
fn fingerprint(paths: &[PathBuf], include: &[String], exclude: &[String]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (tag, items) in [
        (
            "paths",
            paths
                .iter()
                .map(|p| p.as_os_str().as_bytes())
                .collect::<Vec<_>>(),
        ),
        ("include", include.iter().map(|s| s.as_bytes()).collect()),
        ("exclude", exclude.iter().map(|s| s.as_bytes()).collect()),
    ] {
        hasher.update(tag.as_bytes());
        for item in items {
            hasher.update((item.len() as u64).to_le_bytes());
            hasher.update(item);
        }
    }
    hasher.finalize().into()
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

    fn produce(&self, context: &Context<'_>, held: &[Manifest]) -> Result<Produced, BackupError> {
        archive(&self.0, context, held)
    }

    fn incremental(&self) -> Option<&IncrementalConfig> {
        self.0.incremental.as_ref()
    }

    fn verify(
        &self,
        path: &Path,
        expected: &Expected<'_>,
        context: &Context<'_>,
    ) -> Result<Vec<String>, BackupError> {
        verify(path, expected, context)
    }

    fn drill(&self, chain: &[Link<'_>], context: &Context<'_>) -> Result<String, BackupError> {
        drill(chain, context)
    }

    /// A files restore writes only into a new or empty directory: there is nothing to keep a
    /// safety copy of, so `force` changes nothing.
    fn restore(
        &self,
        chain: &[Link<'_>],
        target: &str,
        _force: bool,
        context: &Context<'_>,
    ) -> Result<RestoreSummary, BackupError> {
        restore(chain, target, context)
    }
}

impl From<ArchiveStats> for FileCounts {
    fn from(stats: ArchiveStats) -> Self {
        FileCounts {
            files: stats.files,
            dirs: stats.dirs,
            symlinks: stats.symlinks,
            bytes: stats.bytes,
            deleted: stats.deleted,
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
            deleted: counts.deleted,
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
    let mut text = format!(
        "{} files, {} directories, {} symlinks, {} bytes",
        counts.files, counts.dirs, counts.symlinks, counts.bytes
    );
    if counts.deleted > 0 {
        text.push_str(&format!(", {} deleted paths", counts.deleted));
    }
    text
}

/// Archives the job's paths into a staged file, hashing the bytes as they are written. An
/// incremental job also writes the new file index, and makes an incremental archive when
/// [`plan`] finds a parent to build on.
fn archive(
    spec: &FilesConfig,
    context: &Context<'_>,
    held: &[Manifest],
) -> Result<Produced, BackupError> {
    let job = context.job;
    let extension = spec.compression.extension();
    let mut pass = match &spec.incremental {
        Some(incremental) => Some(IndexPass::begin(spec, incremental, context, held)?),
        None => None,
    };
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
        pass.as_mut().map(|pass| &mut pass.delta),
        &|bytes| context.progress.set(bytes),
        &|| context.cancel.is_cancelled(),
    )?;
    let (mut buffered, sha256, _) = writer.finish();
    buffered.flush().map_err(BackupError::io("write", &path))?;
    drop(buffered);
    staged.close().map_err(BackupError::io("sync", &path))?;
    let (parent, tree, state) = match pass {
        Some(pass) => pass.finish()?,
        None => (None, None, None),
    };
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
        parent,
        tree,
        state,
    })
}

/// The file index pass of an incremental job's run: the merge with the parent's index (none
/// for a full) and the staged new index.
struct IndexPass {
    delta: Delta,
    parent: Option<String>,
    staged: Staged,
    target: PathBuf,
}

impl IndexPass {
    fn begin(
        spec: &FilesConfig,
        incremental: &IncrementalConfig,
        context: &Context<'_>,
        held: &[Manifest],
    ) -> Result<IndexPass, BackupError> {
        let job = &context.job.name;
        let dir = context.private.join(INDEX_DIR);
        std::fs::create_dir_all(&dir).map_err(BackupError::io("create", &dir))?;
        let target = dir.join(format!("{job}.index"));
        let reader = match index::Reader::open(&target) {
            Ok(reader) => reader,
            Err(err) => {
                tracing::warn!(job, error = %crate::collect::ErrorChain(&err), "Cannot use the file index; this run makes a full backup.");
                None
            }
        };
        let parent = match plan(spec, incremental, held, reader.as_ref(), Utc::now()) {
            Level::Incremental(parent) => {
                tracing::info!(job, parent = %parent, "Making an incremental backup.");
                Some(parent)
            }
            Level::Full(reason) if reason.broken => {
                tracing::warn!(job, reason = %reason.text, "The incremental chain cannot go on; this run makes a full backup.");
                None
            }
            Level::Full(reason) => {
                tracing::info!(job, reason = %reason.text, "Making a full backup.");
                None
            }
        };
        // What a killed run left under the staged name (the job's lock is held: no other run
        // writes it).
        let leftover = dir.join(format!("{TEMP_PREFIX}{job}.index"));
        match std::fs::remove_file(&leftover) {
            Ok(()) => {
                tracing::info!(job, path = %leftover.display(), "Removed a file index an interrupted run left.")
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(BackupError::io("remove", &leftover)(err)),
        }
        let mut staged = Staged::create(&dir, &format!("{job}.index"))
            .map_err(BackupError::io("create a file in", &dir))?;
        let file = staged
            .file()
            .and_then(|f| f.try_clone())
            .map_err(BackupError::io("open", staged.path()))?;
        let header = index::Header {
            id: context.id.clone(),
            fingerprint: spec.fingerprint,
        };
        let writer =
            index::Writer::new(file, &header).map_err(BackupError::io("write", staged.path()))?;
        let reader = if parent.is_some() { reader } else { None };
        Ok(IndexPass {
            delta: Delta::new(reader, writer),
            parent,
            staged,
            target,
        })
    }

    /// The manifest's parent and tree, and the index to publish with the backup.
    #[allow(clippy::type_complexity)]
    fn finish(
        mut self,
    ) -> Result<
        (
            Option<String>,
            Option<FileCounts>,
            Option<(Staged, PathBuf)>,
        ),
        BackupError,
    > {
        let tree = FileCounts::from(self.delta.tree);
        self.delta.finish()?;
        self.staged
            .close()
            .map_err(BackupError::io("sync", self.staged.path()))?;
        Ok((self.parent, Some(tree), Some((self.staged, self.target))))
    }
}

/// Where, under the state directory's private directory, incremental jobs keep their index.
const INDEX_DIR: &str = "incremental";

/// Whether a run is a full or an incremental backup.
#[derive(Debug, PartialEq, Eq)]
enum Level {
    /// On top of this parent (its id).
    Incremental(String),
    Full(FullReason),
}

/// Why a run is a full backup; `broken` when an incremental was due but cannot be made.
#[derive(Debug, PartialEq, Eq)]
struct FullReason {
    text: String,
    broken: bool,
}

/// Decides a run's level from what the destination holds and the file index.
fn plan(
    spec: &FilesConfig,
    incremental: &IncrementalConfig,
    held: &[Manifest],
    index: Option<&index::Reader>,
    now: DateTime<Utc>,
) -> Level {
    let full = |text: String, broken| Level::Full(FullReason { text, broken });
    // The index describes the newest backup only: an older one cannot be built on.
    let Some(parent) = held.first() else {
        return full("no backup to build on yet".to_owned(), false);
    };
    if !parent.is_verified() {
        return full(
            format!(
                "the newest backup {} failed its last verification",
                parent.id
            ),
            true,
        );
    }
    let chain = match manifest::chain(held, parent) {
        Ok(chain) => chain,
        Err(why) => return full(why, true),
    };
    if let Some(every) = incremental.full_every
        && chain.len() >= every as usize
    {
        return full(
            format!(
                "full_every {every}: the chain holds {} backups",
                chain.len()
            ),
            false,
        );
    }
    if let Some(schedule) = &incremental.full_schedule
        && let Some(started) = manifest::parse_time(&chain[0].started_at)
        && schedule.next_after(started).is_some_and(|next| next <= now)
    {
        return full(
            format!("full_schedule fired since the full {}", chain[0].id),
            false,
        );
    }
    if parent.tree.is_none() {
        return full(
            format!(
                "the newest backup {} was made before the job had `incremental`",
                parent.id
            ),
            false,
        );
    }
    let Some(index) = index else {
        return full("no file index (a new state directory?)".to_owned(), true);
    };
    if index.header().id != parent.id {
        return full(
            format!(
                "the file index is of backup {}, the newest verified backup is {}",
                index.header().id,
                parent.id
            ),
            true,
        );
    }
    if index.header().fingerprint != spec.fingerprint {
        return full(
            "the job's paths or filters changed since the last backup".to_owned(),
            false,
        );
    }
    Level::Incremental(parent.id.clone())
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

/// Restores `chain` (a full, then its incrementals) into `target`; returns what the tree
/// holds and what the tip's manifest says it should.
fn extract(
    chain: &[Link<'_>],
    target: &Path,
    context: &Context<'_>,
) -> Result<(FileCounts, FileCounts), BackupError> {
    let tip = chain
        .last()
        .ok_or_else(|| BackupError::BrokenChain("no backup given".to_owned()))?;
    let cancelled = |err: FilesError| {
        if context.cancel.is_cancelled() {
            BackupError::Cancelled
        } else {
            err.into()
        }
    };
    let mut restore = archive::Restore::new(target)?;
    let mut last = ArchiveStats::default();
    for link in chain {
        let compression = Compression::from_name(
            link.manifest.compression.as_deref().unwrap_or(""),
        )
        .ok_or_else(|| {
            BackupError::NotVerified(format!(
                "the manifest of {} names no known compression",
                link.manifest.id
            ))
        })?;
        last = restore
            .apply(open_archive(link.path, context)?, compression)
            .map_err(cancelled)?;
    }
    let implicit = restore.implicit_dirs();
    restore.finish()?;
    let found = if chain.len() == 1 {
        last
    } else {
        archive::count_tree(target, implicit)?
    };
    // A restored tree has no deletions in it; they were applied.
    let found = FileCounts {
        deleted: 0,
        ..FileCounts::from(found)
    };
    let expected = FileCounts {
        deleted: 0,
        ..tip.manifest.tree.or(tip.manifest.files).unwrap_or_default()
    };
    Ok((found, expected))
}

/// What a chain of `n` backups is called in a message.
fn chain_text(chain: &[Link<'_>]) -> String {
    match chain.len() {
        1 => String::new(),
        n => format!(" (a full and {} incrementals applied)", n - 1),
    }
}

/// Restores into a scratch directory in the destination, compares the counts with the
/// manifest, and removes the scratch directory.
fn drill(chain: &[Link<'_>], context: &Context<'_>) -> Result<String, BackupError> {
    let scratch = ScratchDir(
        context
            .job
            .destination
            .join(format!("{TEMP_PREFIX}{}.drill", context.id)),
    );
    let (found, expected) = extract(chain, &scratch.0, context)?;
    if found != expected {
        return Err(BackupError::DrillFailed(format!(
            "the manifest records {}, the restored directory holds {}",
            describe(&expected),
            describe(&found)
        )));
    }
    Ok(format!(
        "restored to a scratch directory{}: {}",
        chain_text(chain),
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
    chain: &[Link<'_>],
    target: &str,
    context: &Context<'_>,
) -> Result<RestoreSummary, BackupError> {
    let target_path = PathBuf::from(target);
    let (found, expected) = extract(chain, &target_path, context)?;
    let mut steps = vec![format!(
        "extracted {} into {}{}",
        describe(&found),
        target_path.display(),
        chain_text(chain)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::{FORMAT, Verification, format_time};
    use crate::config::Schedule;
    use std::collections::BTreeMap;

    fn config(
        full_every: Option<u32>,
        full_schedule: Option<&str>,
    ) -> (FilesConfig, IncrementalConfig) {
        let incremental = IncrementalConfig {
            full_every,
            full_schedule: full_schedule.map(|s| Schedule::try_from_text(s).unwrap()),
            retention: None,
        };
        let files = FilesConfig {
            paths: vec![PathBuf::from("/srv")],
            include: None,
            exclude: None,
            compression: Compression::Zstd,
            level: 3,
            incremental: Some(incremental.clone()),
            fingerprint: fingerprint(&[PathBuf::from("/srv")], &[], &[]),
        };
        (files, incremental)
    }

    fn backup(id: &str, parent: Option<&str>, started: DateTime<Utc>, ok: bool) -> Manifest {
        Manifest {
            format: FORMAT,
            id: id.to_owned(),
            job: "job".to_owned(),
            kind: "files".to_owned(),
            file: format!("{id}.tar.zst"),
            started_at: format_time(started),
            finished_at: format_time(started),
            duration_seconds: 1.0,
            size_bytes: 1,
            sha256: String::new(),
            tool: String::new(),
            server_version: None,
            source: String::new(),
            tables: BTreeMap::new(),
            files: None,
            compression: Some("zstd".to_owned()),
            parent: parent.map(str::to_owned),
            tree: Some(FileCounts::default()),
            verification: Verification {
                ok,
                checked_at: format_time(started),
                checks: Vec::new(),
                error: None,
            },
            restore_test: None,
            warden_version: String::new(),
        }
    }

    fn index(dir: &Path, id: &str, fingerprint: [u8; 32]) -> index::Reader {
        let path = dir.join(format!("{id}.index"));
        let header = index::Header {
            id: id.to_owned(),
            fingerprint,
        };
        let writer = index::Writer::new(std::fs::File::create(&path).unwrap(), &header).unwrap();
        writer.finish().unwrap();
        index::Reader::open(&path).unwrap().unwrap()
    }

    fn level(level: Level) -> Result<String, (String, bool)> {
        match level {
            Level::Incremental(parent) => Ok(parent),
            Level::Full(reason) => Err((reason.text, reason.broken)),
        }
    }

    #[test]
    fn the_level_follows_the_chain_the_index_and_the_full_rules() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let hour = chrono::TimeDelta::hours(1);
        let (spec, every3) = config(Some(3), None);
        let full = backup("f", None, now - hour * 3, true);
        let first = backup("i1", Some("f"), now - hour * 2, true);
        let second = backup("i2", Some("i1"), now - hour, true);
        let print = spec.fingerprint;

        let held = [first.clone(), full.clone()];
        let at_i1 = index(dir.path(), "i1", print);
        assert_eq!(
            level(plan(&spec, &every3, &held, Some(&at_i1), now)),
            Ok("i1".to_owned())
        );
        // full_every 3 counts the chain: a full and two incrementals make the next a full.
        let held3 = [second.clone(), first.clone(), full.clone()];
        let at_i2 = index(dir.path(), "i2", print);
        let (why, broken) = level(plan(&spec, &every3, &held3, Some(&at_i2), now)).unwrap_err();
        assert!(why.contains("full_every 3") && !broken, "{why}");
        // No backup, no index, an index of another backup, other paths.
        assert!(!level(plan(&spec, &every3, &[], None, now)).unwrap_err().1);
        let (why, broken) = level(plan(&spec, &every3, &held, None, now)).unwrap_err();
        assert!(why.contains("no file index") && broken, "{why}");
        let (why, broken) = level(plan(&spec, &every3, &held, Some(&at_i2), now)).unwrap_err();
        assert!(why.contains("of backup i2") && broken, "{why}");
        let other = index(dir.path(), "i1", [7; 32]);
        let (why, broken) = level(plan(&spec, &every3, &held, Some(&other), now)).unwrap_err();
        assert!(why.contains("paths or filters changed") && !broken, "{why}");
        // A missing or failed parent, or a failed newest backup, breaks the chain.
        let (why, broken) = level(plan(
            &spec,
            &every3,
            std::slice::from_ref(&first),
            Some(&at_i1),
            now,
        ))
        .unwrap_err();
        assert!(why.contains("parent f is missing") && broken, "{why}");
        let failed_full = backup("f", None, now - hour * 3, false);
        let (why, broken) = level(plan(
            &spec,
            &every3,
            &[first.clone(), failed_full],
            Some(&at_i1),
            now,
        ))
        .unwrap_err();
        assert!(
            why.contains("failed its last verification") && broken,
            "{why}"
        );
        let failed_newest = backup("i1", Some("f"), now - hour * 2, false);
        let (why, broken) = level(plan(
            &spec,
            &every3,
            &[failed_newest, full.clone()],
            Some(&at_i1),
            now,
        ))
        .unwrap_err();
        assert!(why.contains("newest backup i1") && broken, "{why}");

        // A job that just got `incremental`: its newest backup has no tree, and no index.
        let before = Manifest {
            tree: None,
            ..backup("old", None, now - hour, true)
        };
        let (why, broken) = level(plan(&spec, &every3, &[before], None, now)).unwrap_err();
        assert!(why.contains("before the job had") && !broken, "{why}");

        // full_schedule: a full once the schedule fired since the chain's full started.
        let (_, hourly) = config(None, Some("0 * * * *"));
        let (why, _) = level(plan(&spec, &hourly, &held, Some(&at_i1), now)).unwrap_err();
        assert!(why.contains("full_schedule"), "{why}");
        let (_, yearly) = config(None, Some("0 0 1 1 *"));
        let recent = [
            backup("i1", Some("f"), now, true),
            backup("f", None, now - chrono::TimeDelta::minutes(1), true),
        ];
        assert_eq!(
            level(plan(&spec, &yearly, &recent, Some(&at_i1), now)),
            Ok("i1".to_owned())
        );
    }
}
