//! Directory archives for the `files` backup kind.
//!
//! This module owns the on-disk format of a `files` backup: a tar stream,
//! compressed with zstd or gzip, holding the configured source paths under
//! their absolute path with the leading `/` removed (`/srv/tools/a.json` is
//! stored as `srv/tools/a.json`), so several sources never collide. It writes
//! such archives ([`write_archive`]), re-reads them end to end before a backup
//! is trusted ([`verify_archive`]), and restores them ([`extract_archive`]).
//! The three live together because they must agree on what a safe entry is: an
//! archive that verifies is an archive that extracts.
//!
//! Writing walks each source without following symlinks, in name order, so the
//! same tree always gives the same entry order. Regular files, directories and
//! symlinks (stored with their target text) are archived with their mode,
//! owner ids and mtime; sockets, fifos and devices are skipped. A file that
//! disappears while the walk runs is skipped. A file's size is taken when it is
//! opened and exactly that many bytes are stored: a file that grows meanwhile
//! is stored as it was at that size, and one that shrinks fails the run with
//! [`FilesError::FileChanged`] rather than store a hole (a backup run is cheap
//! to retry; a silently padded file is not detectable later).
//!
//! Reading treats the archive as hostile. Every entry's path is checked
//! component by component: absolute paths, `..` components, paths through a
//! symlink stored earlier, hard links, devices and fifos are refused with
//! [`FilesError::UnsafeEntry`]. A symlink must be relative and, read lexically
//! from its own directory, stay inside the restore target; `..` is only
//! accepted as leading components (`../../x`, not `a/../..`), because a `..`
//! after a name is resolved by the kernel through whatever that name is, and a
//! name that is itself a symlink (say `s -> .`) would let `s/..` leave the
//! target while looking harmless lexically. Zstd frames carry a content
//! checksum and gzip a CRC, and the whole compressed stream is read to its end,
//! so truncation and bit flips are reported as [`FilesError::Corrupt`].

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use globset::GlobSet;
use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header, HeaderMode};

use super::delta;
pub use super::delta::Delta;
use super::index::{Record, Type};

pub use crate::config::Compression;
#[cfg(test)]
use crate::config::build_globs;

/// Size of the buffers used for file data and for the compressed output.
const IO_BUFFER: usize = 1 << 20;
/// Progress is reported at least this often (in archived file bytes).
const PROGRESS_EVERY: u64 = 8 << 20;
/// Cancellation is checked at least this often inside a large file.
const CANCEL_CHECK_EVERY: u64 = 4 << 20;
/// Upper bound on zstd worker threads, so a backup never takes the whole host.
const MAX_ZSTD_WORKERS: usize = 4;

/// What to archive and how.
#[derive(Debug, Clone)]
pub struct ArchiveSpec {
    /// Absolute source paths, directories or single entries; they must not overlap.
    pub paths: Vec<PathBuf>,
    /// When set, only regular files and symlinks whose absolute path matches are
    /// archived; directories are always walked.
    pub include: Option<GlobSet>,
    /// Files, symlinks and directories whose absolute path matches are skipped;
    /// a matching directory is not descended into.
    pub exclude: Option<GlobSet>,
    /// Compression of the tar stream.
    pub compression: Compression,
    /// Compression level: zstd 1..=19, gzip 1..=9 (see [`Compression::default_level`]).
    pub level: i32,
}

/// Counts of what an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Sum of the regular files' contents, in bytes.
    pub bytes: u64,
    /// Paths an incremental archive records as deleted since its parent.
    pub deleted: u64,
}

/// Errors from writing, verifying or extracting an archive.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// A configured source path cannot be archived.
    #[error("source path {path} cannot be archived: {reason}")]
    InvalidSource {
        /// The configured path.
        path: PathBuf,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Reading a source entry failed (other than it having vanished).
    #[error("reading {path} failed")]
    Read {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A source file shrank, or was replaced, while it was being archived.
    #[error("{path} changed while it was being archived")]
    FileChanged {
        /// The file that changed.
        path: PathBuf,
    },
    /// Writing the compressed archive stream failed.
    #[error("writing the archive failed")]
    Output {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The archive could not be decoded: bad compression, checksum or tar data.
    #[error("archive is corrupt")]
    Corrupt {
        /// The decoder's error.
        #[source]
        source: io::Error,
    },
    /// The archive decoded cleanly but does not hold what was written.
    #[error("archive {what} mismatch: expected {expected}, found {found}")]
    Mismatch {
        /// Which count differs: `files`, `dirs`, `symlinks` or `bytes`.
        what: &'static str,
        /// The count recorded when the archive was written.
        expected: u64,
        /// The count found in the archive.
        found: u64,
    },
    /// An entry would write outside the target or is of a refused kind.
    #[error("refusing archive entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as stored (lossily decoded).
        entry: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The restore target exists and is not an empty directory.
    #[error("restore target {path} exists and is not an empty directory")]
    TargetNotEmpty {
        /// The restore target.
        path: PathBuf,
    },
    /// The restore target is an empty directory someone else owns: what warden writes there
    /// would be theirs to read and replace.
    #[error(
        "restore target {path} belongs to uid {owner}, not to warden's uid {uid}; restore into a new directory, or one warden's user owns"
    )]
    TargetNotOwned {
        /// The restore target.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// warden's effective uid.
        uid: u32,
    },
    /// Creating something under the restore target failed.
    #[error("writing {path} failed")]
    Write {
        /// The path being created.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An incremental archive does not apply to the tree restored so far: the chain is not
    /// the one it was made from.
    #[error("the incremental archive does not apply: {path} {reason}")]
    ChainMismatch {
        /// The path, relative to the restore target.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The parent backup's file index could not be read while archiving.
    #[error(transparent)]
    Index(#[from] super::index::IndexError),
    /// Writing the new file index failed.
    #[error("writing the file index failed")]
    IndexWrite {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The caller asked the run to stop.
    #[error("archiving was cancelled")]
    Cancelled,
}

fn output(source: io::Error) -> FilesError {
    FilesError::Output { source }
}

fn corrupt(source: io::Error) -> FilesError {
    FilesError::Corrupt { source }
}

fn read_error(path: &Path, source: io::Error) -> FilesError {
    FilesError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn write_error(path: &Path, source: io::Error) -> FilesError {
    FilesError::Write {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a compressed tar archive of `spec.paths` to `out`.
///
/// `progress` gets the running total of archived file bytes at least every
/// 8 MiB and once at the end; `cancelled` is polled between entries and every
/// 4 MiB inside large files. On success the tar stream and the compressor are
/// finished and flushed, and `out` is handed back (for the caller to fsync).
/// On error the output is incomplete and must be discarded.
pub fn write_archive<W: Write>(
    spec: &ArchiveSpec,
    out: W,
    mut delta: Option<&mut Delta>,
    progress: &dyn Fn(u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ArchiveStats, W), FilesError> {
    check_sources(&spec.paths)?;
    let buffered = BufWriter::with_capacity(IO_BUFFER, out);
    let (stats, buffered) = match spec.compression {
        Compression::Zstd => {
            let mut encoder =
                zstd::stream::write::Encoder::new(buffered, spec.level).map_err(output)?;
            encoder.include_checksum(true).map_err(output)?;
            if spec.level >= 1 {
                encoder.multithread(zstd_workers()).map_err(output)?;
            }
            let (stats, encoder) =
                write_tar(spec, encoder, delta.as_deref_mut(), progress, cancelled)?;
            (stats, encoder.finish().map_err(output)?)
        }
        Compression::Gzip => {
            let level = u32::try_from(spec.level.clamp(0, 9)).unwrap_or(6);
            let encoder = flate2::write::GzEncoder::new(buffered, flate2::Compression::new(level));
            let (stats, encoder) = write_tar(spec, encoder, delta, progress, cancelled)?;
            (stats, encoder.finish().map_err(output)?)
        }
    };
    let mut out = buffered
        .into_inner()
        .map_err(|err| output(err.into_error()))?;
    out.flush().map_err(output)?;
    Ok((stats, out))
}

fn zstd_workers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    u32::try_from(cores.min(MAX_ZSTD_WORKERS)).unwrap_or(1)
}

/// Refuses relative sources, `..` components and sources that overlap (one
/// inside another would store its entries twice).
fn check_sources(paths: &[PathBuf]) -> Result<(), FilesError> {
    let invalid = |path: &Path, reason| FilesError::InvalidSource {
        path: path.to_path_buf(),
        reason,
    };
    for (i, path) in paths.iter().enumerate() {
        if !path.is_absolute() {
            return Err(invalid(path, "not an absolute path"));
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(invalid(path, "contains a `..` component"));
        }
        if paths[..i]
            .iter()
            .any(|other| path.starts_with(other) || other.starts_with(path))
        {
            return Err(invalid(path, "overlaps another source path"));
        }
    }
    Ok(())
}

/// The entry name of an absolute source path: its components below `/`.
fn archive_name(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}

fn matches(set: Option<&GlobSet>, path: &Path) -> bool {
    set.is_some_and(|set| set.is_match(path))
}

fn write_tar<E: Write>(
    spec: &ArchiveSpec,
    encoder: E,
    delta: Option<&mut Delta>,
    progress: &dyn Fn(u64),
    cancelled: &dyn Fn() -> bool,
) -> Result<(ArchiveStats, E), FilesError> {
    let mut tar = Builder::new(encoder);
    tar.follow_symlinks(false);
    tar.mode(HeaderMode::Complete);
    let mut walker = Walker {
        spec,
        tar,
        stats: ArchiveStats::default(),
        counter: Counter {
            total: 0,
            reported: 0,
            since_check: 0,
            progress,
            cancelled,
        },
        buf: vec![0; IO_BUFFER],
        delta,
    };
    for (root, path) in spec.paths.iter().enumerate() {
        walker.walk(u32::try_from(root).unwrap_or(u32::MAX), path)?;
    }
    if let Some(delta) = walker.delta.as_deref_mut() {
        delta.end()?;
        walker.stats.deleted = delta.deleted;
    }
    walker.flush_deletions(true)?;
    progress(walker.stats.bytes);
    let encoder = walker.tar.into_inner().map_err(output)?;
    Ok((walker.stats, encoder))
}

/// Running byte total with the progress and cancellation hooks.
struct Counter<'a> {
    total: u64,
    reported: u64,
    since_check: u64,
    progress: &'a dyn Fn(u64),
    cancelled: &'a dyn Fn() -> bool,
}

impl Counter<'_> {
    /// Accounts for `n` more file bytes; false when the run must stop.
    fn advance(&mut self, n: u64) -> bool {
        self.total += n;
        self.since_check += n;
        if self.total - self.reported >= PROGRESS_EVERY {
            (self.progress)(self.total);
            self.reported = self.total;
        }
        if self.since_check >= CANCEL_CHECK_EVERY {
            self.since_check = 0;
            return !(self.cancelled)();
        }
        true
    }
}

struct Walker<'a, E: Write> {
    spec: &'a ArchiveSpec,
    tar: Builder<E>,
    stats: ArchiveStats,
    counter: Counter<'a>,
    buf: Vec<u8>,
    /// The incremental pass, when one runs (a full archive of an incremental job has one too:
    /// it writes the index the next incremental compares with).
    delta: Option<&'a mut Delta>,
}

impl<E: Write> Walker<'_, E> {
    /// Archives one source path and, for a directory, everything below it in
    /// name order (depth first, parents before children). `index` is the source
    /// path's position in the job's paths.
    fn walk(&mut self, index: u32, root: &Path) -> Result<(), FilesError> {
        let mut stack = vec![(root.to_path_buf(), true)];
        while let Some((path, is_root)) = stack.pop() {
            if (self.counter.cancelled)() {
                return Err(FilesError::Cancelled);
            }
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound && !is_root => continue,
                Err(err) => return Err(read_error(&path, err)),
            };
            if matches(self.spec.exclude.as_ref(), &path) {
                continue;
            }
            let file_type = meta.file_type();
            let name = archive_name(&path);
            if file_type.is_dir() {
                if !name.as_os_str().is_empty() {
                    if let Some(delta) = self.delta.as_deref_mut() {
                        delta.before(index, &name, Type::Dir)?;
                        delta.record(Record::new(index, name.clone(), Type::Dir, &meta))?;
                    }
                    self.flush_deletions(false)?;
                    self.append_dir(&name, &meta)?;
                }
                match sorted_children(&path) {
                    Ok(children) => stack.extend(children.into_iter().rev().map(|c| (c, false))),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(read_error(&path, err)),
                }
            } else if file_type.is_file() || file_type.is_symlink() {
                if self
                    .spec
                    .include
                    .as_ref()
                    .is_some_and(|set| !set.is_match(&path))
                {
                    continue;
                }
                let kind = if file_type.is_file() {
                    Type::File
                } else {
                    Type::Symlink
                };
                let mut previous = match self.delta.as_deref_mut() {
                    Some(delta) => delta.before(index, &name, kind)?,
                    None => None,
                };
                self.flush_deletions(false)?;
                if let Some(delta) = self.delta.as_deref_mut()
                    && let Some(record) = &previous
                    && delta.unchanged(record, kind, &meta, &path)?
                    && let Some(record) = previous.take()
                {
                    delta.keep(record)?;
                    continue;
                }
                let archived = if kind == Type::File {
                    self.append_file(&path, &name)?
                } else {
                    self.append_symlink(&path, &name, &meta)?
                };
                if let Some(delta) = self.delta.as_deref_mut() {
                    match (archived, previous) {
                        (Some(mut record), _) => {
                            record.root = index;
                            delta.record(record)?;
                        }
                        // Gone since the listing: gone from this backup too.
                        (None, Some(previous)) => delta.deleted(previous),
                        (None, None) => {}
                    }
                }
            }
            // Sockets, fifos and devices are not backed up.
        }
        Ok(())
    }

    /// Writes the deletions recorded so far as one PAX global header entry, once they fill
    /// a chunk (or with `all`, whatever is left), so memory stays bounded whatever is deleted.
    fn flush_deletions(&mut self, all: bool) -> Result<(), FilesError> {
        let Some(records) = self.delta.as_deref_mut().and_then(|d| d.pending(all)) else {
            return Ok(());
        };
        let mut header = Header::new_ustar();
        header.set_entry_type(EntryType::XGlobalHeader);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(records.len() as u64);
        self.tar
            .append_data(&mut header, delta::GLOBAL_HEADER_NAME, records.as_slice())
            .map_err(output)?;
        Ok(())
    }

    fn append_dir(&mut self, name: &Path, meta: &fs::Metadata) -> Result<(), FilesError> {
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header.set_entry_type(EntryType::Directory);
        header.set_size(0);
        self.tar
            .append_data(&mut header, name, io::empty())
            .map_err(output)?;
        self.stats.dirs += 1;
        Ok(())
    }

    /// Archives a symlink; `None` when it is gone.
    fn append_symlink(
        &mut self,
        path: &Path,
        name: &Path,
        meta: &fs::Metadata,
    ) -> Result<Option<Record>, FilesError> {
        let target = match fs::read_link(path) {
            Ok(target) => target,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(read_error(path, err)),
        };
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header.set_entry_type(EntryType::Symlink);
        header.set_size(0);
        self.tar
            .append_link(&mut header, name, &target)
            .map_err(output)?;
        self.stats.symlinks += 1;
        Ok(Some(Record::new(0, name.to_owned(), Type::Symlink, meta)))
    }

    /// Archives a regular file; `None` when it is gone. For an incremental pass, a file
    /// modified so recently that a later write could leave its size and times as they are
    /// has its stored content hashed into the record.
    fn append_file(&mut self, path: &Path, name: &Path) -> Result<Option<Record>, FilesError> {
        // Non-blocking, so that a file swapped for a FIFO since the listing fails the type
        // check below instead of waiting forever for a writer; not following a symlink swapped
        // in. Neither flag changes how a regular file reads.
        let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
        {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            // ELOOP: the path is a symlink now.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                return Err(FilesError::FileChanged {
                    path: path.to_path_buf(),
                });
            }
            Err(err) => return Err(read_error(path, err)),
        };
        let meta = file.metadata().map_err(|err| read_error(path, err))?;
        // The path must still name the file we opened: a swap for a symlink
        // between listing and opening would otherwise archive the link's
        // target under this name.
        let still_same = fs::symlink_metadata(path).is_ok_and(|now| {
            now.file_type().is_file() && now.dev() == meta.dev() && now.ino() == meta.ino()
        });
        if !meta.is_file() || !still_same {
            return Err(FilesError::FileChanged {
                path: path.to_path_buf(),
            });
        }
        let len = meta.len();
        let mut record = Record::new(0, name.to_owned(), Type::File, &meta);
        let racy = self.delta.is_some() && delta::racy(record.mtime);
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(&meta, HeaderMode::Complete);
        header.set_entry_type(EntryType::Regular);
        header.set_size(len);
        let mut data = FileData {
            file,
            left: len,
            buf: &mut self.buf,
            pos: 0,
            filled: 0,
            counter: &mut self.counter,
            fault: None,
            hasher: racy.then(Sha256::new),
        };
        let result = self.tar.append_data(&mut header, name, &mut data);
        let fault = data.fault.take();
        record.sha256 = data.hasher.take().map(|h| h.finalize().into());
        match (result, fault) {
            (Ok(()), _) => {}
            (Err(_), Some(Fault::Cancelled)) => return Err(FilesError::Cancelled),
            (Err(_), Some(Fault::Shrunk)) => {
                return Err(FilesError::FileChanged {
                    path: path.to_path_buf(),
                });
            }
            (Err(_), Some(Fault::Read(err))) => return Err(read_error(path, err)),
            (Err(err), None) => return Err(output(err)),
        }
        self.stats.files += 1;
        self.stats.bytes += len;
        Ok(Some(record))
    }
}

fn sorted_children(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut children = fs::read_dir(dir)?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<io::Result<Vec<_>>>()?;
    children.sort();
    Ok(children)
}

/// Why reading a file's data stopped early.
enum Fault {
    Cancelled,
    Shrunk,
    Read(io::Error),
}

/// Feeds exactly `left` bytes of a file to the tar builder through a shared
/// buffer, counting progress and polling cancellation. Failures are recorded
/// in `fault` so the caller can tell them from output errors.
struct FileData<'a, 'c> {
    file: File,
    left: u64,
    buf: &'a mut [u8],
    pos: usize,
    filled: usize,
    counter: &'a mut Counter<'c>,
    fault: Option<Fault>,
    /// Hashes the bytes stored, when the file's content must be recognisable later.
    hasher: Option<Sha256>,
}

impl FileData<'_, '_> {
    fn fail(&mut self, fault: Fault) -> io::Error {
        self.fault = Some(fault);
        io::Error::other("reading the source file stopped")
    }

    fn refill(&mut self) -> io::Result<()> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        let n = loop {
            match self.file.read(&mut self.buf[..want]) {
                Ok(n) => break n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(self.fail(Fault::Read(err))),
            }
        };
        if n == 0 {
            return Err(self.fail(Fault::Shrunk));
        }
        self.left -= n as u64;
        self.pos = 0;
        self.filled = n;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&self.buf[..n]);
        }
        if !self.counter.advance(n as u64) {
            return Err(self.fail(Fault::Cancelled));
        }
        Ok(())
    }
}

impl Read for FileData<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos == self.filled {
            if self.left == 0 {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = out.len().min(self.filled - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn decoder<'a, R: Read + 'a>(
    input: R,
    compression: Compression,
) -> Result<Box<dyn Read + 'a>, FilesError> {
    Ok(match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(input).map_err(corrupt)?),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
    })
}

/// What a checked entry is, with its normalised relative path.
enum Checked {
    File(PathBuf),
    Dir(PathBuf),
    Symlink(PathBuf, PathBuf),
}

/// Entry checks shared by verification and extraction, so that an archive
/// that verifies is one that extracts.
#[derive(Default)]
struct Guard {
    /// Relative paths of the symlinks seen so far.
    symlinks: HashSet<PathBuf>,
}

impl Guard {
    fn check<R: Read>(&mut self, entry: &tar::Entry<'_, R>) -> Result<Checked, FilesError> {
        let raw = entry.path_bytes();
        let refuse = |reason| FilesError::UnsafeEntry {
            entry: String::from_utf8_lossy(&raw).into_owned(),
            reason,
        };
        let rel = entry_path(&raw).map_err(refuse)?;
        if rel
            .ancestors()
            .skip(1)
            .any(|ancestor| self.symlinks.contains(ancestor))
        {
            return Err(refuse("path goes through a symlink"));
        }
        let checked = match entry.header().entry_type() {
            EntryType::Regular => Checked::File(rel),
            EntryType::Directory => Checked::Dir(rel),
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("symlink without a target"))?;
                check_link_target(&rel, &target).map_err(refuse)?;
                self.symlinks.insert(rel.clone());
                Checked::Symlink(rel, PathBuf::from(OsStr::from_bytes(&target)))
            }
            EntryType::Link => return Err(refuse("hard links are not restored")),
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                return Err(refuse("devices and fifos are not restored"));
            }
            _ => return Err(refuse("unsupported entry type")),
        };
        Ok(checked)
    }
}

/// Normalises a stored entry path to its normal components, refusing
/// absolute paths and `..`. Empty and `.` components are dropped.
fn entry_path(raw: &[u8]) -> Result<PathBuf, &'static str> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path");
    }
    let mut path = PathBuf::new();
    for component in raw.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => return Err("path has a `..` component"),
            name => path.push(OsStr::from_bytes(name)),
        }
    }
    if path.as_os_str().is_empty() {
        return Err("empty path");
    }
    Ok(path)
}

/// Checks that a symlink stored at `link` (relative to the target) points
/// inside the target: relative, with `..` only as leading components and no
/// more of them than the link's directory is deep.
fn check_link_target(link: &Path, target: &[u8]) -> Result<(), &'static str> {
    if target.is_empty() {
        return Err("symlink target is empty");
    }
    if target.first() == Some(&b'/') {
        return Err("symlink target is absolute");
    }
    let depth = link.components().count().saturating_sub(1);
    let mut ups = 0;
    let mut named = false;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." if named => return Err("symlink target has `..` after a name"),
            b".." => {
                ups += 1;
                if ups > depth {
                    return Err("symlink target points outside the target directory");
                }
            }
            _ => named = true,
        }
    }
    Ok(())
}

/// Reads the compressed stream to its end, so trailing corruption and the
/// zstd checksum or gzip CRC are checked even after the tar end marker.
fn drain(mut rest: impl Read) -> Result<(), FilesError> {
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    Ok(())
}

/// Reads `entry` to its end through `buf`, handing each chunk to `sink`.
fn read_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), FilesError>,
) -> Result<u64, FilesError> {
    let mut total = 0;
    loop {
        let n = match entry.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(corrupt(err)),
        };
        sink(&buf[..n])?;
        total += n as u64;
    }
}

/// Re-reads a whole archive and checks it holds exactly `expected`.
///
/// Every entry is decoded and read to its end and the compressed stream is
/// read past the tar end marker, so truncation and corruption surface as
/// [`FilesError::Corrupt`]. Entries that [`extract_archive`] would refuse are
/// refused here too. Returns the counts found.
pub fn verify_archive<R: Read>(
    input: R,
    compression: Compression,
    expected: &ArchiveStats,
) -> Result<ArchiveStats, FilesError> {
    let mut archive = tar::Archive::new(decoder(input, compression)?);
    let mut stats = ArchiveStats::default();
    let mut guard = Guard::default();
    let mut buf = vec![0; IO_BUFFER];
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        if entry.header().entry_type() == EntryType::XGlobalHeader {
            stats.deleted += delta::read_deletions(&mut entry, entry_path)?.len() as u64;
            continue;
        }
        let checked = guard.check(&entry)?;
        let bytes = read_entry(&mut entry, &mut buf, |_| Ok(()))?;
        match checked {
            Checked::File(_) => {
                stats.files += 1;
                stats.bytes += bytes;
            }
            Checked::Dir(_) => stats.dirs += 1,
            Checked::Symlink(..) => stats.symlinks += 1,
        }
    }
    drain(archive.into_inner())?;
    for (what, expected, found) in [
        ("files", expected.files, stats.files),
        ("dirs", expected.dirs, stats.dirs),
        ("symlinks", expected.symlinks, stats.symlinks),
        ("bytes", expected.bytes, stats.bytes),
        ("deleted paths", expected.deleted, stats.deleted),
    ] {
        if expected != found {
            return Err(FilesError::Mismatch {
                what,
                expected,
                found,
            });
        }
    }
    Ok(stats)
}

/// Restores an archive into `target`: [`Restore`] with one archive.
pub fn extract_archive<R: Read>(
    input: R,
    compression: Compression,
    target: &Path,
) -> Result<ArchiveStats, FilesError> {
    let mut restore = Restore::new(target)?;
    let stats = restore.apply(input, compression)?;
    restore.finish()?;
    Ok(stats)
}

/// A restore of one archive, or of an incremental chain (a full, then each incremental on top
/// of what the ones before left), into `target`.
///
/// `target` must be an empty directory, or not exist with an existing parent
/// (it is then created). Each entry is checked before anything is written for
/// it (see the module doc), and nothing is written through a symlink. The
/// first archive only creates (`create_new`, never overwriting); an
/// incremental one replaces what its entries name and removes what it records
/// as deleted, and a deletion of a path that is not there means the chain is
/// not the one the archive was made from ([`FilesError::ChainMismatch`]). File
/// and directory modes come from the archive masked with `0o777` (no setuid,
/// setgid or sticky bits); file and directory mtimes are restored best-effort,
/// symlink mtimes and owners are not. On error whatever was already extracted
/// is left in place: restore into a fresh directory and discard it on failure.
pub struct Restore {
    target: PathBuf,
    /// Directory modes and mtimes, applied by [`Restore::finish`] deepest first, so that a
    /// read-only directory can still be filled and its mtime is not bumped.
    dirs: BTreeMap<PathBuf, (u32, Option<SystemTime>)>,
    applied: usize,
    /// Directories created only as parents of stored paths (the source paths' ancestors).
    implicit: u64,
}

impl Restore {
    /// Checks (or creates) the empty target.
    ///
    /// # Errors
    /// The target is not empty, is someone else's, or cannot be created.
    pub fn new(target: &Path) -> Result<Restore, FilesError> {
        prepare_target(target)?;
        Ok(Restore {
            target: target.to_owned(),
            dirs: BTreeMap::new(),
            applied: 0,
            implicit: 0,
        })
    }

    /// Applies the next archive of the chain; returns what it held.
    ///
    /// # Errors
    /// A corrupt or unsafe archive, one that does not apply, or a write that fails.
    pub fn apply<R: Read>(
        &mut self,
        input: R,
        compression: Compression,
    ) -> Result<ArchiveStats, FilesError> {
        let first = self.applied == 0;
        self.applied += 1;
        let mut archive = tar::Archive::new(decoder(input, compression)?);
        let mut stats = ArchiveStats::default();
        let mut guard = Guard::default();
        let mut buf = vec![0; IO_BUFFER];
        // In a full archive `create_new` finds duplicates; an incremental one replaces what is
        // there, so it remembers what it wrote.
        let mut seen = HashSet::new();
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            if entry.header().entry_type() == EntryType::XGlobalHeader {
                let deleted = delta::read_deletions(&mut entry, entry_path)?;
                if first {
                    return Err(FilesError::UnsafeEntry {
                        entry: delta::GLOBAL_HEADER_NAME.to_owned(),
                        reason: "deletions in the first archive of a chain",
                    });
                }
                for rel in deleted {
                    self.delete(&rel)?;
                    stats.deleted += 1;
                }
                continue;
            }
            let checked = guard.check(&entry)?;
            let mode = entry.header().mode().map_err(corrupt)? & 0o777;
            let mtime = entry
                .header()
                .mtime()
                .ok()
                .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)));
            let entry_name = || String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if !first {
                let rel = match &checked {
                    Checked::File(rel) | Checked::Dir(rel) | Checked::Symlink(rel, _) => rel,
                };
                if !seen.insert(rel.clone()) {
                    return Err(duplicate(&entry_name()));
                }
            }
            match checked {
                Checked::File(rel) => {
                    let dest = self.parents(&rel, &entry_name())?;
                    if !first {
                        self.clear(&dest, false)?;
                    }
                    let mut file = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&dest)
                        .map_err(|err| existing_or(err, &dest, &entry_name()))?;
                    let bytes = read_entry(&mut entry, &mut buf, |chunk| {
                        file.write_all(chunk).map_err(|err| write_error(&dest, err))
                    })?;
                    file.set_permissions(fs::Permissions::from_mode(mode))
                        .map_err(|err| write_error(&dest, err))?;
                    if let Some(mtime) = mtime {
                        // Best-effort: a filesystem without mtimes still restores.
                        let _ = file.set_modified(mtime);
                    }
                    stats.files += 1;
                    stats.bytes += bytes;
                }
                Checked::Dir(rel) => {
                    let dest = self.parents(&rel, &entry_name())?;
                    match fs::symlink_metadata(&dest) {
                        Ok(meta) if meta.is_dir() => {
                            if first {
                                return Err(duplicate(&entry_name()));
                            }
                        }
                        Ok(_) if first => return Err(duplicate(&entry_name())),
                        Ok(_) => {
                            self.clear(&dest, true)?;
                            fs::create_dir(&dest).map_err(|err| write_error(&dest, err))?;
                        }
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {
                            fs::create_dir(&dest).map_err(|err| write_error(&dest, err))?;
                        }
                        Err(err) => return Err(write_error(&dest, err)),
                    }
                    self.dirs.insert(dest, (mode, mtime));
                    stats.dirs += 1;
                }
                Checked::Symlink(rel, link_target) => {
                    let dest = self.parents(&rel, &entry_name())?;
                    if !first {
                        self.clear(&dest, false)?;
                    }
                    std::os::unix::fs::symlink(&link_target, &dest)
                        .map_err(|err| existing_or(err, &dest, &entry_name()))?;
                    stats.symlinks += 1;
                }
            }
        }
        drain(archive.into_inner())?;
        Ok(stats)
    }

    /// [`prepare_parents`], counting the directories it had to create.
    fn parents(&mut self, rel: &Path, entry: &str) -> Result<PathBuf, FilesError> {
        let (dest, created) = prepare_parents(&self.target, rel, entry)?;
        self.implicit += created;
        Ok(dest)
    }

    /// Removes what is at `dest` before an incremental entry replaces it: a directory with
    /// everything under it (and its pending mode), anything else by unlinking. With
    /// `keep_dirs`, a directory stays (a directory entry over a directory).
    fn clear(&mut self, dest: &Path, keep_dirs: bool) -> Result<(), FilesError> {
        match fs::symlink_metadata(dest) {
            Ok(meta) if meta.is_dir() && keep_dirs => Ok(()),
            Ok(meta) if meta.is_dir() => {
                self.forget_dirs(dest);
                super::publish::remove_tree(dest).map_err(|err| write_error(dest, err))
            }
            Ok(_) => fs::remove_file(dest).map_err(|err| write_error(dest, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(write_error(dest, err)),
        }
    }

    /// Applies one recorded deletion.
    fn delete(&mut self, rel: &Path) -> Result<(), FilesError> {
        let mismatch = |reason| FilesError::ChainMismatch {
            path: rel.to_owned(),
            reason,
        };
        let mut dest = self.target.clone();
        for component in rel.components() {
            if dest != self.target {
                match fs::symlink_metadata(&dest) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(_) => return Err(mismatch("is under something that is not a directory")),
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {
                        return Err(mismatch("is recorded as deleted but is not there"));
                    }
                    Err(err) => return Err(read_error(&dest, err)),
                }
            }
            dest.push(component);
        }
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.is_dir() => {
                self.forget_dirs(&dest);
                super::publish::remove_tree(&dest).map_err(|err| write_error(&dest, err))
            }
            Ok(_) => fs::remove_file(&dest).map_err(|err| write_error(&dest, err)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                Err(mismatch("is recorded as deleted but is not there"))
            }
            Err(err) => Err(read_error(&dest, err)),
        }
    }

    /// Drops the pending modes of `dir` and everything under it.
    fn forget_dirs(&mut self, dir: &Path) {
        let under: Vec<PathBuf> = self
            .dirs
            .range(dir.to_path_buf()..)
            .map(|(path, _)| path)
            .take_while(|path| path.starts_with(dir))
            .cloned()
            .collect();
        for path in under {
            self.dirs.remove(&path);
        }
    }

    /// Directories created only as parents of stored paths; a count of the restored tree
    /// leaves them out to compare with what was archived.
    pub fn implicit_dirs(&self) -> u64 {
        self.implicit
    }

    /// Applies the directories' modes and mtimes, deepest first.
    ///
    /// # Errors
    /// A mode that cannot be set.
    pub fn finish(self) -> Result<(), FilesError> {
        for (dir, (mode, mtime)) in self.dirs.into_iter().rev() {
            if let Some(mtime) = mtime {
                let _ = File::open(&dir).and_then(|d| d.set_modified(mtime));
            }
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(|err| write_error(&dir, err))?;
        }
        Ok(())
    }
}

/// Counts what the restored tree under `target` holds, as the archive counts it: every
/// directory but the `implicit` ones, files with their bytes, and symlinks.
pub fn count_tree(target: &Path, implicit: u64) -> Result<ArchiveStats, FilesError> {
    let mut stats = ArchiveStats::default();
    let mut stack = sorted_children(target).map_err(|err| read_error(target, err))?;
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).map_err(|err| read_error(&path, err))?;
        if meta.is_dir() {
            stats.dirs += 1;
            stack.extend(sorted_children(&path).map_err(|err| read_error(&path, err))?);
        } else if meta.file_type().is_symlink() {
            stats.symlinks += 1;
        } else {
            stats.files += 1;
            stats.bytes += meta.len();
        }
    }
    stats.dirs = stats.dirs.saturating_sub(implicit);
    Ok(stats)
}

fn duplicate(entry: &str) -> FilesError {
    FilesError::UnsafeEntry {
        entry: entry.to_owned(),
        reason: "duplicate entry",
    }
}

fn existing_or(err: io::Error, dest: &Path, entry: &str) -> FilesError {
    if err.kind() == io::ErrorKind::AlreadyExists {
        duplicate(entry)
    } else {
        write_error(dest, err)
    }
}

fn prepare_target(target: &Path) -> Result<(), FilesError> {
    let not_empty = || FilesError::TargetNotEmpty {
        path: target.to_path_buf(),
    };
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => {
            let mut listing = fs::read_dir(target).map_err(|err| read_error(target, err))?;
            if listing.next().is_some() {
                return Err(not_empty());
            }
            let uid = rustix::process::geteuid().as_raw();
            if meta.uid() != uid {
                return Err(FilesError::TargetNotOwned {
                    path: target.to_path_buf(),
                    owner: meta.uid(),
                    uid,
                });
            }
            Ok(())
        }
        Ok(_) => Err(not_empty()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(target).map_err(|err| write_error(target, err))
        }
        Err(err) => Err(read_error(target, err)),
    }
}

/// Makes sure every parent of `rel` under `target` is a real directory
/// (creating missing ones), refusing symlinks and non-directories on the way.
/// Returns the full destination path of `rel` and how many directories were
/// created.
fn prepare_parents(target: &Path, rel: &Path, entry: &str) -> Result<(PathBuf, u64), FilesError> {
    let mut created = 0;
    let refuse = |reason| FilesError::UnsafeEntry {
        entry: entry.to_owned(),
        reason,
    };
    let mut dest = target.to_path_buf();
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        dest.push(component);
        if components.peek().is_none() {
            break;
        }
        match fs::symlink_metadata(&dest) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(refuse("path goes through a symlink"));
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(refuse("parent is not a directory")),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dest).map_err(|err| write_error(&dest, err))?;
                created += 1;
            }
            Err(err) => return Err(write_error(&dest, err)),
        }
    }
    Ok((dest, created))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A walker over `paths` writing into memory.
    fn walker<'a>(spec: &'a ArchiveSpec, counter: Counter<'a>) -> Walker<'a, Vec<u8>> {
        let mut tar = Builder::new(Vec::new());
        tar.follow_symlinks(false);
        Walker {
            delta: None,
            spec,
            tar,
            stats: ArchiveStats::default(),
            counter,
            buf: vec![0; IO_BUFFER],
        }
    }

    /// A regular file at listing time that is a FIFO (or a symlink) when it is opened is
    /// reported as changed; the open does not wait for a writer that never comes.
    #[test]
    fn a_file_swapped_for_a_fifo_or_a_symlink_is_changed_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("queue");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let link = dir.path().join("link");
        symlink("/etc/hostname", &link).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        let paths = vec![fifo.clone(), link.clone()];
        std::thread::spawn(move || {
            let spec = ArchiveSpec {
                paths: paths.clone(),
                include: None,
                exclude: None,
                compression: Compression::Zstd,
                level: 1,
            };
            let counter = Counter {
                total: 0,
                reported: 0,
                since_check: 0,
                progress: &|_| {},
                cancelled: &|| false,
            };
            let mut walker = walker(&spec, counter);
            for path in &paths {
                let _ = sender.send(walker.append_file(path, Path::new("entry")));
            }
        });
        for path in [&fifo, &link] {
            let result = receiver
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("opening {} still waits", path.display()));
            assert!(
                matches!(&result, Err(FilesError::FileChanged { path: p }) if p == path),
                "{result:?}"
            );
        }
    }
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;

    const BOTH: [Compression; 2] = [Compression::Zstd, Compression::Gzip];

    fn spec(paths: &[&Path], compression: Compression) -> ArchiveSpec {
        ArchiveSpec {
            paths: paths.iter().map(|p| p.to_path_buf()).collect(),
            include: None,
            exclude: None,
            compression,
            level: compression.default_level(),
        }
    }

    fn archive(spec: &ArchiveSpec) -> (ArchiveStats, Vec<u8>) {
        write_archive(spec, Vec::new(), None, &|_| {}, &|| false).unwrap()
    }

    /// Where a source path lands under a restore target.
    fn restored(target: &Path, source: &Path) -> PathBuf {
        target.join(source.strip_prefix("/").unwrap())
    }

    /// Bytes that do not compress (xorshift), deterministic per seed.
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// A source tree with nested dirs, an empty dir, a relative symlink, an
    /// executable, a long name, and things to exclude. Returns its root.
    fn sample_tree(base: &Path) -> PathBuf {
        let src = base.join("src");
        fs::create_dir_all(src.join("nested/deep")).unwrap();
        fs::create_dir_all(src.join("empty")).unwrap();
        fs::create_dir_all(src.join("cache/inner")).unwrap();
        fs::write(src.join("a.txt"), b"hello archive\n").unwrap();
        fs::write(src.join("nested/deep/b.bin"), noise(3 << 20, 7)).unwrap();
        fs::write(src.join("nested/c.tmp"), b"scratch").unwrap();
        fs::write(src.join("cache/inner/x"), b"cached").unwrap();
        fs::write(src.join("exec.sh"), b"#!/bin/sh\n").unwrap();
        fs::set_permissions(src.join("exec.sh"), fs::Permissions::from_mode(0o755)).unwrap();
        let long = "l".repeat(120);
        fs::create_dir(src.join(&long)).unwrap();
        fs::write(src.join(&long).join(&long), b"long name").unwrap();
        symlink("nested/deep/b.bin", src.join("link")).unwrap();
        let old = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        File::options()
            .write(true)
            .open(src.join("a.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        File::open(src.join("empty"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        src
    }

    fn excluding(compression: Compression, paths: &[&Path]) -> ArchiveSpec {
        let mut spec = spec(paths, compression);
        spec.exclude = build_globs(&["*.tmp".to_owned(), "**/cache".to_owned()]).unwrap();
        spec
    }

    #[test]
    fn round_trip_keeps_contents_modes_and_symlinks() {
        for compression in BOTH {
            let base = tempfile::tempdir().unwrap();
            let src = sample_tree(base.path());
            let single = base.path().join("single.conf");
            fs::write(&single, b"key = value\n").unwrap();
            let spec = excluding(compression, &[&src, &single]);
            let last = Cell::new(0);
            let (stats, bytes) =
                write_archive(&spec, Vec::new(), None, &|n| last.set(n), &|| false).unwrap();
            let expected_bytes = 14 + (3 << 20) + 10 + 9 + 12;
            assert_eq!(
                stats,
                ArchiveStats {
                    files: 5,
                    dirs: 5,
                    symlinks: 1,
                    bytes: expected_bytes,
                    deleted: 0,
                },
                "{compression:?}"
            );
            assert_eq!(last.get(), expected_bytes);

            assert_eq!(
                verify_archive(&bytes[..], compression, &stats).unwrap(),
                stats
            );

            let target = base.path().join("restore");
            let extracted = extract_archive(&bytes[..], compression, &target).unwrap();
            assert_eq!(extracted, stats);
            let out = restored(&target, &src);
            for rel in ["a.txt", "nested/deep/b.bin", "exec.sh"] {
                assert_eq!(
                    fs::read(out.join(rel)).unwrap(),
                    fs::read(src.join(rel)).unwrap(),
                    "{rel}"
                );
            }
            let long = "l".repeat(120);
            assert_eq!(fs::read(out.join(&long).join(&long)).unwrap(), b"long name");
            assert_eq!(
                fs::read(restored(&target, &single)).unwrap(),
                b"key = value\n"
            );
            let link = out.join("link");
            assert!(
                fs::symlink_metadata(&link)
                    .unwrap()
                    .file_type()
                    .is_symlink()
            );
            assert_eq!(
                fs::read_link(&link).unwrap(),
                PathBuf::from("nested/deep/b.bin")
            );
            assert!(out.join("empty").is_dir());
            assert_eq!(
                fs::metadata(out.join("empty")).unwrap().modified().unwrap(),
                UNIX_EPOCH + Duration::from_secs(1_600_000_000)
            );
            assert!(!out.join("nested/c.tmp").exists());
            assert!(!out.join("cache").exists());
            let mode = fs::metadata(out.join("exec.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o755);
            assert_eq!(
                fs::metadata(out.join("a.txt")).unwrap().modified().unwrap(),
                UNIX_EPOCH + Duration::from_secs(1_600_000_000)
            );
            // Parents of a source are not archived, only the source and below.
            let parent = restored(&target, base.path());
            let mut names: Vec<_> = fs::read_dir(&parent)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            assert_eq!(names, ["single.conf", "src"]);
        }
    }

    #[test]
    fn entries_are_written_in_name_order() {
        let base = tempfile::tempdir().unwrap();
        let src = base.path().join("t");
        fs::create_dir_all(src.join("b/z")).unwrap();
        fs::create_dir_all(src.join("a")).unwrap();
        for name in ["c", "b/y", "a/x", "b/z/w"] {
            fs::write(src.join(name), name).unwrap();
        }
        let (_, bytes) = archive(&spec(&[&src], Compression::Gzip));
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        let prefix = archive_name(&src);
        let names: Vec<_> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let path = e.path().unwrap().into_owned();
                path.strip_prefix(&prefix).unwrap().display().to_string()
            })
            .collect();
        assert_eq!(names, ["", "a", "a/x", "b", "b/y", "b/z", "b/z/w", "c"]);
    }

    #[test]
    fn include_filter_keeps_only_matching_files_but_walks_all_dirs() {
        let base = tempfile::tempdir().unwrap();
        let src = sample_tree(base.path());
        let mut spec = spec(&[&src], Compression::Zstd);
        spec.include = build_globs(&["*.txt".to_owned(), "*.sh".to_owned()]).unwrap();
        let (stats, bytes) = archive(&spec);
        assert_eq!(stats.files, 2);
        assert_eq!(stats.symlinks, 0);
        assert_eq!(stats.dirs, 7);
        let target = base.path().join("restore");
        extract_archive(&bytes[..], Compression::Zstd, &target).unwrap();
        let out = restored(&target, &src);
        assert!(out.join("a.txt").is_file());
        assert!(out.join("exec.sh").is_file());
        assert!(out.join("nested/deep").is_dir());
        assert!(!out.join("nested/deep/b.bin").exists());
        assert!(!out.join("link").exists());
    }

    #[test]
    fn sockets_are_skipped_silently() {
        let base = tempfile::tempdir().unwrap();
        let src = base.path().join("s");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"x").unwrap();
        let _listener = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
        let (stats, _) = archive(&spec(&[&src], Compression::Gzip));
        assert_eq!(
            stats,
            ArchiveStats {
                files: 1,
                dirs: 1,
                symlinks: 0,
                bytes: 1,
                deleted: 0,
            }
        );
    }

    #[test]
    fn a_single_file_source_is_one_entry() {
        let base = tempfile::tempdir().unwrap();
        let file = base.path().join("one.json");
        fs::write(&file, b"{}").unwrap();
        let (stats, bytes) = archive(&spec(&[&file], Compression::Zstd));
        assert_eq!(
            stats,
            ArchiveStats {
                files: 1,
                dirs: 0,
                symlinks: 0,
                bytes: 2,
                deleted: 0,
            }
        );
        let target = base.path().join("restore");
        extract_archive(&bytes[..], Compression::Zstd, &target).unwrap();
        assert_eq!(fs::read(restored(&target, &file)).unwrap(), b"{}");
    }

    #[test]
    fn bad_sources_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let inner = base.path().join("inner");
        fs::create_dir(&inner).unwrap();
        let missing = base.path().join("missing");
        for (paths, expect_invalid) in [
            (vec![Path::new("relative/dir")], true),
            (vec![base.path(), inner.as_path()], true),
            (vec![inner.as_path(), inner.as_path()], true),
            (vec![Path::new("/srv/../etc")], true),
            (vec![missing.as_path()], false),
        ] {
            let err = write_archive(
                &spec(&paths, Compression::Gzip),
                Vec::new(),
                None,
                &|_| {},
                &|| false,
            )
            .unwrap_err();
            if expect_invalid {
                assert!(matches!(err, FilesError::InvalidSource { .. }), "{err:?}");
            } else {
                assert!(matches!(err, FilesError::Read { .. }), "{err:?}");
            }
        }
    }

    #[test]
    fn cancellation_between_entries_and_inside_a_big_file() {
        let base = tempfile::tempdir().unwrap();
        let big = base.path().join("big");
        fs::write(&big, noise(12 << 20, 3)).unwrap();
        let spec = spec(&[&big], Compression::Zstd);
        let err = write_archive(&spec, Vec::new(), None, &|_| {}, &|| true).unwrap_err();
        assert!(matches!(err, FilesError::Cancelled), "{err:?}");

        // The first poll is before the file; the second is inside it.
        let polls = Cell::new(0);
        let progress = RefCell::new(Vec::new());
        let err = write_archive(
            &spec,
            Vec::new(),
            None,
            &|n| progress.borrow_mut().push(n),
            &|| {
                polls.set(polls.get() + 1);
                polls.get() > 1
            },
        )
        .unwrap_err();
        assert!(matches!(err, FilesError::Cancelled), "{err:?}");
        assert_eq!(polls.get(), 2);
        assert!(progress.borrow().is_empty());
    }

    #[test]
    fn progress_is_reported_while_archiving_and_at_the_end() {
        let base = tempfile::tempdir().unwrap();
        let big = base.path().join("big");
        fs::write(&big, noise(20 << 20, 5)).unwrap();
        let seen = RefCell::new(Vec::new());
        let (stats, _) = write_archive(
            &spec(&[&big], Compression::Zstd),
            Vec::new(),
            None,
            &|n| seen.borrow_mut().push(n),
            &|| false,
        )
        .unwrap();
        let seen = seen.into_inner();
        assert!(seen.len() >= 3, "{seen:?}");
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
        assert!(
            seen.windows(2)
                .all(|w| w[1] - w[0] <= PROGRESS_EVERY + IO_BUFFER as u64)
        );
        assert_eq!(seen.last(), Some(&stats.bytes));
    }

    #[test]
    fn file_data_stores_exactly_the_size_taken_at_open() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("f");
        fs::write(&path, noise(100, 1)).unwrap();
        let mut buf = vec![0; 16];
        let mut counter = Counter {
            total: 0,
            reported: 0,
            since_check: 0,
            progress: &|_| {},
            cancelled: &|| false,
        };
        // Grown since the size was taken: only the first 50 bytes are stored.
        let mut data = FileData {
            file: File::open(&path).unwrap(),
            left: 50,
            buf: &mut buf,
            pos: 0,
            filled: 0,
            counter: &mut counter,
            fault: None,
            hasher: None,
        };
        let mut out = Vec::new();
        io::copy(&mut data, &mut out).unwrap();
        assert_eq!(out, noise(100, 1)[..50]);
        // Shrunk since the size was taken: reading fails with a recorded fault.
        let mut data = FileData {
            file: File::open(&path).unwrap(),
            left: 150,
            buf: &mut buf,
            pos: 0,
            filled: 0,
            counter: &mut counter,
            fault: None,
            hasher: None,
        };
        assert!(io::copy(&mut data, &mut io::sink()).is_err());
        assert!(matches!(data.fault, Some(Fault::Shrunk)));
    }

    #[test]
    fn verify_detects_truncation_flips_and_mismatches() {
        for compression in BOTH {
            let base = tempfile::tempdir().unwrap();
            let src = sample_tree(base.path());
            let (stats, bytes) = archive(&excluding(compression, &[&src]));
            for cut in [bytes.len() / 2, bytes.len() - 4, bytes.len() - 1] {
                let err = verify_archive(&bytes[..cut], compression, &stats).unwrap_err();
                assert!(matches!(err, FilesError::Corrupt { .. }), "{cut}: {err:?}");
            }
            for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() * 9 / 10] {
                let mut flipped = bytes.clone();
                flipped[at] ^= 0x20;
                let err = verify_archive(&flipped[..], compression, &stats).unwrap_err();
                assert!(matches!(err, FilesError::Corrupt { .. }), "{at}: {err:?}");
            }
            let wrong = ArchiveStats {
                bytes: stats.bytes + 1,
                ..stats
            };
            let err = verify_archive(&bytes[..], compression, &wrong).unwrap_err();
            assert!(
                matches!(
                    err,
                    FilesError::Mismatch {
                        what: "bytes",
                        expected,
                        found
                    } if expected == stats.bytes + 1 && found == stats.bytes
                ),
                "{err:?}"
            );
            let err = verify_archive(&b"not an archive"[..], compression, &stats).unwrap_err();
            assert!(matches!(err, FilesError::Corrupt { .. }), "{err:?}");
        }
    }

    /// One raw entry of a crafted archive; names are written into the header
    /// bytes directly so the tar crate's own checks do not interfere.
    struct Raw<'a> {
        name: &'a [u8],
        kind: EntryType,
        link: &'a [u8],
        data: &'a [u8],
    }

    fn file(name: &[u8]) -> Raw<'_> {
        Raw {
            name,
            kind: EntryType::Regular,
            link: b"",
            data: b"owned",
        }
    }

    fn dir(name: &[u8]) -> Raw<'_> {
        Raw {
            name,
            kind: EntryType::Directory,
            link: b"",
            data: b"",
        }
    }

    fn link<'a>(name: &'a [u8], target: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            kind: EntryType::Symlink,
            link: target,
            data: b"",
        }
    }

    fn crafted(entries: &[Raw<'_>], compression: Compression) -> Vec<u8> {
        let mut builder = Builder::new(Vec::new());
        for raw in entries {
            let mut header = Header::new_gnu();
            let old = header.as_old_mut();
            old.name[..raw.name.len()].copy_from_slice(raw.name);
            old.linkname[..raw.link.len()].copy_from_slice(raw.link);
            header.set_entry_type(raw.kind);
            header.set_size(raw.data.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(1_600_000_000);
            header.set_cksum();
            builder.append(&header, raw.data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        match compression {
            Compression::Zstd => zstd::stream::encode_all(&tar[..], 3).unwrap(),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                enc.write_all(&tar).unwrap();
                enc.finish().unwrap()
            }
        }
    }

    /// Every path under `root`, relative, recursively (not following links).
    fn listing(root: &Path) -> BTreeSet<PathBuf> {
        let mut out = BTreeSet::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf());
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path);
                }
            }
        }
        out
    }

    #[test]
    fn malicious_entries_are_refused_before_anything_is_written() {
        let fifo = Raw {
            name: b"fifo",
            kind: EntryType::Fifo,
            link: b"",
            data: b"",
        };
        let hard = Raw {
            name: b"hard",
            kind: EntryType::Link,
            link: b"ok",
            data: b"",
        };
        let through = "path goes through a symlink";
        let outside_target = "symlink target points outside the target directory";
        let cases: Vec<(&str, Vec<Raw<'_>>, &str, &str)> = vec![
            (
                "dotdot",
                vec![file(b"ok"), file(b"../escape")],
                "escape",
                "path has a `..` component",
            ),
            (
                "nested dotdot",
                vec![file(b"a/../../escape")],
                "escape",
                "path has a `..` component",
            ),
            ("absolute", vec![file(b"/abs/path")], "abs", "absolute path"),
            (
                "escaping symlink then through it",
                vec![link(b"link", b"../../etc"), file(b"link/passwd")],
                "etc",
                outside_target,
            ),
            (
                "inside symlink then through it",
                vec![dir(b"sub"), link(b"inner", b"sub"), file(b"inner/passwd")],
                "passwd",
                through,
            ),
            (
                "absolute symlink",
                vec![link(b"link", b"/etc/passwd")],
                "passwd",
                "symlink target is absolute",
            ),
            (
                "dotdot after a name through a dot link",
                vec![link(b"s", b"."), link(b"t", b"s/..")],
                "t",
                "symlink target has `..` after a name",
            ),
            (
                "deep escaping symlink",
                vec![link(b"a/b/l", b"../../../x")],
                "x",
                outside_target,
            ),
            (
                "hard link",
                vec![file(b"ok"), hard],
                "hard",
                "hard links are not restored",
            ),
            (
                "fifo",
                vec![fifo],
                "fifo",
                "devices and fifos are not restored",
            ),
            ("empty name", vec![file(b"./")], "x", "empty path"),
        ];
        for compression in BOTH {
            for (label, entries, outside, reason) in &cases {
                let base = tempfile::tempdir().unwrap();
                let target = base.path().join("target");
                let bytes = crafted(entries, compression);
                let err = extract_archive(&bytes[..], compression, &target).unwrap_err();
                assert!(
                    matches!(err, FilesError::UnsafeEntry { reason: r, .. } if r == *reason),
                    "{label}: {err:?}"
                );
                let err =
                    verify_archive(&bytes[..], compression, &ArchiveStats::default()).unwrap_err();
                assert!(
                    matches!(err, FilesError::UnsafeEntry { reason: r, .. } if r == *reason),
                    "{label}: {err:?}"
                );
                // Only the target itself exists beside it, and the refused
                // entry's name does not appear anywhere below it.
                let beside: Vec<_> = fs::read_dir(base.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(beside, ["target"], "{label}");
                for path in listing(&target) {
                    assert!(
                        path.file_name() != Some(OsStr::new(outside)),
                        "{label}: {path:?}"
                    );
                }
                assert!(!Path::new("/abs/path").exists());
            }
        }
    }

    #[test]
    fn safe_crafted_entries_extract() {
        // Links that stay inside, implicit parent dirs, `./` prefixes.
        let bytes = crafted(
            &[
                file(b"./a/b/c"),
                link(b"a/up", b"../top"),
                link(b"a/b/same", b"./c"),
                link(b"dangling", b"nowhere"),
                file(b"top"),
            ],
            Compression::Gzip,
        );
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("t");
        let stats = extract_archive(&bytes[..], Compression::Gzip, &target).unwrap();
        assert_eq!(
            stats,
            ArchiveStats {
                files: 2,
                dirs: 0,
                symlinks: 3,
                bytes: 10,
                deleted: 0,
            }
        );
        assert_eq!(fs::read(target.join("a/up")).unwrap(), b"owned");
        assert_eq!(fs::read(target.join("a/b/same")).unwrap(), b"owned");
    }

    #[test]
    fn duplicate_entries_are_refused() {
        for entries in [
            vec![file(b"x"), file(b"x")],
            vec![file(b"x"), link(b"x", b"y")],
            vec![file(b"x"), dir(b"x")],
        ] {
            let bytes = crafted(&entries, Compression::Zstd);
            let base = tempfile::tempdir().unwrap();
            let err =
                extract_archive(&bytes[..], Compression::Zstd, &base.path().join("t")).unwrap_err();
            assert!(
                matches!(
                    err,
                    FilesError::UnsafeEntry {
                        reason: "duplicate entry",
                        ..
                    }
                ),
                "{err:?}"
            );
        }
    }

    #[test]
    fn modes_are_masked_and_read_only_dirs_still_fill() {
        let mut builder = Builder::new(Vec::new());
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Directory);
        header.set_mode(0o555);
        header.set_size(0);
        builder.append_data(&mut header, "ro", io::empty()).unwrap();
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0o4755);
        header.set_size(2);
        builder
            .append_data(&mut header, "ro/suid", &b"hi"[..])
            .unwrap();
        let bytes = zstd::stream::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
        let base = tempfile::tempdir().unwrap();
        let target = base.path().join("t");
        extract_archive(&bytes[..], Compression::Zstd, &target).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&target.join("ro/suid")), 0o755);
        assert_eq!(mode(&target.join("ro")), 0o555);
        fs::set_permissions(target.join("ro"), fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn target_must_be_missing_or_empty() {
        let base = tempfile::tempdir().unwrap();
        let src = base.path().join("src");
        fs::create_dir(&src).unwrap();
        fs::write(src.join("f"), b"data").unwrap();
        let (_, bytes) = archive(&spec(&[&src], Compression::Zstd));

        let full = base.path().join("full");
        fs::create_dir(&full).unwrap();
        fs::write(full.join("keep"), b"mine").unwrap();
        let err = extract_archive(&bytes[..], Compression::Zstd, &full).unwrap_err();
        assert!(matches!(err, FilesError::TargetNotEmpty { .. }), "{err:?}");
        assert_eq!(listing(&full), BTreeSet::from([PathBuf::from("keep")]));

        let plain = base.path().join("plain");
        fs::write(&plain, b"file").unwrap();
        let err = extract_archive(&bytes[..], Compression::Zstd, &plain).unwrap_err();
        assert!(matches!(err, FilesError::TargetNotEmpty { .. }), "{err:?}");

        let linked = base.path().join("linked");
        let empty = base.path().join("empty");
        fs::create_dir(&empty).unwrap();
        symlink(&empty, &linked).unwrap();
        let err = extract_archive(&bytes[..], Compression::Zstd, &linked).unwrap_err();
        assert!(matches!(err, FilesError::TargetNotEmpty { .. }), "{err:?}");

        let orphan = base.path().join("no/parent");
        let err = extract_archive(&bytes[..], Compression::Zstd, &orphan).unwrap_err();
        assert!(matches!(err, FilesError::Write { .. }), "{err:?}");

        // An empty directory someone else owns (uid 65534, nobody): what warden writes there
        // would be theirs. Changing a directory's owner needs root, as the test command runs.
        let foreign = base.path().join("foreign");
        fs::create_dir(&foreign).unwrap();
        std::os::unix::fs::chown(&foreign, Some(65534), None)
            .expect("chown needs root: run the tests as scripts/test.sh does");
        let err = extract_archive(&bytes[..], Compression::Zstd, &foreign).unwrap_err();
        assert!(
            matches!(err, FilesError::TargetNotOwned { owner: 65534, .. }),
            "{err:?}"
        );
        assert!(listing(&foreign).is_empty());

        // An existing empty directory is fine.
        extract_archive(&bytes[..], Compression::Zstd, &empty).unwrap();
        assert_eq!(fs::read(restored(&empty, &src).join("f")).unwrap(), b"data");
    }

    #[test]
    fn globs_match_absolute_paths_at_any_depth() {
        assert!(build_globs(&[]).unwrap().is_none());
        let set = build_globs(&["*.tmp".to_owned(), "**/cache/**".to_owned()])
            .unwrap()
            .unwrap();
        assert!(set.is_match(Path::new("/a/b/c.tmp")));
        assert!(set.is_match(Path::new("/c.tmp")));
        assert!(set.is_match(Path::new("/srv/x/cache/y/z")));
        assert!(!set.is_match(Path::new("/srv/x/cachey/z")));
        assert!(!set.is_match(Path::new("/a/b/c.tmpx")));
        let dirs = build_globs(&["**/cache".to_owned()]).unwrap().unwrap();
        assert!(dirs.is_match(Path::new("/srv/x/cache")));
        assert!(build_globs(&["a[".to_owned()]).is_err());
    }

    #[test]
    fn compression_names() {
        assert_eq!(Compression::Zstd.extension(), "tar.zst");
        assert_eq!(Compression::Gzip.extension(), "tar.gz");
        assert_eq!(Compression::Zstd.as_str(), "zstd");
        assert_eq!(Compression::Gzip.as_str(), "gzip");
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn safe_names_round_trip(
            files in proptest::collection::btree_set(
                (proptest::collection::vec(component(), 0..3), component()),
                1..12,
            )
        ) {
            let base = tempfile::tempdir().unwrap();
            let src = base.path().join("src");
            fs::create_dir(&src).unwrap();
            // Directories are prefixed `d`, files `f`, so a name is never both.
            let mut written = Vec::new();
            for (dirs, name) in &files {
                let mut path = src.clone();
                for d in dirs {
                    path.push(format!("d{d}"));
                }
                fs::create_dir_all(&path).unwrap();
                path.push(format!("f{name}"));
                fs::write(&path, name.as_bytes()).unwrap();
                written.push(path);
            }
            let compression = if files.len() % 2 == 0 { Compression::Zstd } else { Compression::Gzip };
            let (stats, bytes) = archive(&spec(&[&src], compression));
            prop_assert_eq!(stats.files as usize, written.len());
            prop_assert_eq!(verify_archive(&bytes[..], compression, &stats).unwrap(), stats);
            let target = base.path().join("restore");
            prop_assert_eq!(extract_archive(&bytes[..], compression, &target).unwrap(), stats);
            let out = restored(&target, &src);
            prop_assert_eq!(listing(&out), listing(&src));
            for path in &written {
                let rel = path.strip_prefix(&src).unwrap();
                prop_assert_eq!(fs::read(out.join(rel)).unwrap(), fs::read(path).unwrap());
            }
        }

        #[test]
        fn any_dotdot_component_is_refused(
            before in proptest::collection::vec(component(), 0..3),
            after in proptest::collection::vec(component(), 0..3),
            as_link in any::<bool>(),
        ) {
            let mut parts = before.clone();
            parts.push("..".to_owned());
            parts.extend(after);
            let name = parts.join("/");
            prop_assume!(name.len() < 100);
            let entry = if as_link { link(name.as_bytes(), b"x") } else { file(name.as_bytes()) };
            let bytes = crafted(&[entry], Compression::Zstd);
            let base = tempfile::tempdir().unwrap();
            let err = extract_archive(&bytes[..], Compression::Zstd, &base.path().join("t"))
                .unwrap_err();
            prop_assert!(matches!(err, FilesError::UnsafeEntry { .. }), "{:?}", err);
            let err = verify_archive(&bytes[..], Compression::Zstd, &ArchiveStats::default())
                .unwrap_err();
            prop_assert!(matches!(err, FilesError::UnsafeEntry { .. }), "{:?}", err);
        }
    }
}
