//! Incremental `files` backups: what changed since the parent backup, and what was deleted.
//!
//! An incremental pass walks the same tree a full one does, alongside the parent's file index
//! ([`super::index`]), both in walk order, so the two are merged like sorted lists in one pass
//! with bounded memory. A path is unchanged when its type, size, modification and change
//! times and inode are the parent's (and, for a file the parent read within [`RACY_WINDOW`]
//! of its last modification, when its content hashes the same); unchanged files and symlinks
//! are left out of the archive. Directories are always stored (a header each), so modes and
//! times stay current. A path of the parent's index that the walk no longer finds is recorded
//! as deleted; a deleted directory is recorded once, not with everything under it.
//!
//! Deletions travel in the archive as PAX global headers (`g` entries) of `WARDEN.deleted`
//! records. Other tar readers ignore unknown global keywords and extract the rest; warden
//! applies them when it restores a chain. Deletions and stored entries never name the same
//! path, so where the `g` entries fall in the archive does not matter.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::archive::{ArchiveStats, FilesError};
use super::index::{Reader, Record, Type, Writer};

/// The name a deletion entry is stored under (as `git archive` names its global header).
pub const GLOBAL_HEADER_NAME: &str = "pax_global_header";
/// The PAX keyword of one deleted path.
const DELETED_KEY: &str = "WARDEN.deleted";
/// Deletions are written once this many bytes of records are pending.
const CHUNK: usize = 1 << 20;
/// The largest deletion entry accepted when reading: a bigger one is not warden's.
pub const MAX_ENTRY: u64 = 4 * CHUNK as u64;
/// How recently a file may have been modified before it was read for its size and times to
/// be trusted later: within it, a write just after the read can leave both unchanged (file
/// times tick coarsely, and some filesystems keep whole seconds), so the content is hashed.
pub const RACY_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether a file modified at `mtime` (nanoseconds) and read now is racy.
pub fn racy(mtime: i128) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    mtime > now - RACY_WINDOW.as_nanos() as i128
}

/// One pass's merge of the walk with the parent's index, and the new index it writes.
pub struct Delta {
    parent: Option<Reader>,
    index: Writer<File>,
    /// A directory of the parent's index deleted or replaced: what was under it goes with it.
    gone: Option<(u32, PathBuf)>,
    pending: Vec<u8>,
    /// What the whole tree holds at this backup (what a restore of the chain gives).
    pub tree: ArchiveStats,
    /// Paths recorded as deleted.
    pub deleted: u64,
}

impl Delta {
    /// A pass comparing with `parent` (none: a full that writes the first index).
    pub fn new(parent: Option<Reader>, index: Writer<File>) -> Delta {
        Delta {
            parent,
            index,
            gone: None,
            pending: Vec::new(),
            tree: ArchiveStats::default(),
            deleted: 0,
        }
    }

    /// Called as the walk reaches `name` (a `kind`): records as deleted every parent path
    /// before it that the walk passed by, and takes the parent's record of `name` itself.
    pub fn before(
        &mut self,
        root: u32,
        name: &Path,
        kind: Type,
    ) -> Result<Option<Record>, FilesError> {
        loop {
            let Some(next) = self.parent.as_ref().and_then(Reader::peek) else {
                return Ok(None);
            };
            match next.key().cmp(&(root, name)) {
                std::cmp::Ordering::Less => {
                    let record = self.take()?;
                    self.deleted(record);
                }
                std::cmp::Ordering::Equal => {
                    let record = self.take()?;
                    if record.kind == Type::Dir && kind != Type::Dir {
                        // Replaced by a file or link: restoring it removes the directory
                        // with everything under it.
                        self.gone = Some((root, name.to_owned()));
                    }
                    return Ok(Some(record));
                }
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }

    fn take(&mut self) -> Result<Record, FilesError> {
        let parent = self.parent.as_mut().expect("peeked before");
        Ok(parent.take()?.expect("peeked before"))
    }

    /// Records `record`'s path as deleted (unless a deleted directory already covers it).
    pub fn deleted(&mut self, record: Record) {
        if let Some((root, dir)) = &self.gone
            && record.root == *root
            && record.name.starts_with(dir)
        {
            return;
        }
        push_record(&mut self.pending, record.name.as_os_str().as_bytes());
        self.deleted += 1;
        if record.kind == Type::Dir {
            self.gone = Some((record.root, record.name));
        }
    }

    /// Whether the path at `path`, a `kind` with `meta`, is as `previous` recorded it.
    pub fn unchanged(
        &self,
        previous: &Record,
        kind: Type,
        meta: &std::fs::Metadata,
        path: &Path,
    ) -> Result<bool, FilesError> {
        if !previous.matches(kind, meta) {
            return Ok(false);
        }
        let Some(expected) = previous.sha256 else {
            return Ok(true);
        };
        match hash_file(path) {
            Ok(found) => Ok(found == Some(expected)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            // ELOOP: a symlink now; archiving it reports the change.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
                Ok(false)
            }
            Err(source) => Err(FilesError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Carries an unchanged path's record into the new index. Its hash is dropped once its
    /// modification is old enough for its times to tell changes apart.
    pub fn keep(&mut self, mut record: Record) -> Result<(), FilesError> {
        if !racy(record.mtime) {
            record.sha256 = None;
        }
        self.record(record)
    }

    /// Adds a path of this backup to the new index and the tree's counts.
    pub fn record(&mut self, record: Record) -> Result<(), FilesError> {
        match record.kind {
            Type::File => {
                self.tree.files += 1;
                self.tree.bytes += record.size;
            }
            Type::Dir => self.tree.dirs += 1,
            Type::Symlink => self.tree.symlinks += 1,
        }
        self.index
            .push(&record)
            .map_err(|source| FilesError::IndexWrite { source })
    }

    /// At the end of the walk: what is left of the parent's index was deleted.
    pub fn end(&mut self) -> Result<(), FilesError> {
        while self.parent.as_ref().and_then(Reader::peek).is_some() {
            let record = self.take()?;
            self.deleted(record);
        }
        Ok(())
    }

    /// The deletion records to write now: a full chunk, or with `all` whatever is pending.
    pub fn pending(&mut self, all: bool) -> Option<Vec<u8>> {
        if self.pending.is_empty() || (!all && self.pending.len() < CHUNK) {
            return None;
        }
        Some(std::mem::take(&mut self.pending))
    }

    /// Finishes the new index; hands its file back for the caller to sync and publish.
    ///
    /// # Errors
    /// Writing the index failed.
    pub fn finish(self) -> Result<File, FilesError> {
        self.index
            .finish()
            .map_err(|source| FilesError::IndexWrite { source })
    }
}

/// Appends one PAX record (`LEN WARDEN.deleted=PATH\n`, LEN counting itself).
fn push_record(out: &mut Vec<u8>, path: &[u8]) {
    let body = DELETED_KEY.len() + path.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(DELETED_KEY.as_bytes());
    out.push(b'=');
    out.extend_from_slice(path);
    out.push(b'\n');
}

/// The deleted paths a `g` entry records, each checked as a stored entry's path is.
pub fn read_deletions<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    check: impl Fn(&[u8]) -> Result<PathBuf, &'static str>,
) -> Result<Vec<PathBuf>, FilesError> {
    let refuse = |reason| FilesError::UnsafeEntry {
        entry: GLOBAL_HEADER_NAME.to_owned(),
        reason,
    };
    if entry.header().entry_size().unwrap_or(u64::MAX) > MAX_ENTRY {
        return Err(refuse("global header larger than warden writes"));
    }
    let extensions = entry
        .pax_extensions()
        .map_err(|source| FilesError::Corrupt { source })?
        .ok_or_else(|| refuse("not a global header"))?;
    let mut paths = Vec::new();
    for extension in extensions {
        let extension = extension.map_err(|source| FilesError::Corrupt { source })?;
        if extension.key_bytes() != DELETED_KEY.as_bytes() {
            return Err(refuse("global header with a keyword warden does not write"));
        }
        paths.push(check(extension.value_bytes()).map_err(refuse)?);
    }
    Ok(paths)
}

/// The SHA-256 of the regular file at `path` (not following a symlink, not waiting on a FIFO);
/// `None` when it is no longer a regular file.
fn hash_file(path: &Path) -> io::Result<Option<[u8; 32]>> {
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOFOLLOW;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(Some(hasher.finalize().into())),
            Ok(n) => hasher.update(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::archive::{self, ArchiveSpec, Compression, Restore};
    use crate::backup::index::Header;
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, symlink};

    /// Every path under `root` with what it is: file content, link target, or a directory.
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let what = if meta.is_dir() {
                    stack.push(path.clone());
                    format!("dir {:o}", meta.mode() & 0o777)
                } else if meta.file_type().is_symlink() {
                    format!("link {}", fs::read_link(&path).unwrap().display())
                } else {
                    format!(
                        "file {:o} {}",
                        meta.mode() & 0o777,
                        String::from_utf8_lossy(&fs::read(&path).unwrap())
                    )
                };
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), what);
            }
        }
        out
    }

    /// Archives `src` with an index pass on top of the index at `parent` (none: a full);
    /// writes the new index to `index` and returns the archive and its counts.
    fn pass(
        src: &Path,
        parent: Option<&Path>,
        index: &Path,
    ) -> (Vec<u8>, ArchiveStats, ArchiveStats) {
        let spec = ArchiveSpec {
            paths: vec![src.to_owned()],
            include: None,
            exclude: None,
            compression: Compression::Zstd,
            level: 3,
        };
        let reader = parent.map(|p| Reader::open(p).unwrap().unwrap());
        let header = Header {
            id: index.display().to_string(),
            fingerprint: [0; 32],
        };
        let writer = Writer::new(File::create(index).unwrap(), &header).unwrap();
        let mut delta = Delta::new(reader, writer);
        let (stats, bytes) =
            archive::write_archive(&spec, Vec::new(), Some(&mut delta), &|_| {}, &|| false)
                .unwrap();
        let tree = delta.tree;
        delta.finish().unwrap();
        (bytes, stats, tree)
    }

    /// Entry names stored in an archive (without the deletion headers).
    fn names(archive: &[u8]) -> Vec<String> {
        let decoder = zstd::stream::read::Decoder::new(archive).unwrap();
        tar::Archive::new(decoder)
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.header().entry_type() != tar::EntryType::XGlobalHeader)
            .map(|e| String::from_utf8_lossy(&e.path_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn an_incremental_chain_restores_the_tree_as_it_is_now() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("a")).unwrap();
        fs::create_dir_all(src.join("b/deep")).unwrap();
        fs::create_dir_all(src.join("d")).unwrap();
        fs::write(src.join("a/changed"), "old").unwrap();
        fs::write(src.join("a/same"), "same").unwrap();
        fs::write(src.join("a/gone"), "gone").unwrap();
        fs::write(src.join("b/deep/z"), "z").unwrap();
        fs::write(src.join("c"), "c was a file").unwrap();
        fs::write(src.join("d/e"), "d was a directory").unwrap();
        symlink("a/same", src.join("link")).unwrap();
        let (full, full_stats, full_tree) = pass(&src, None, &dir.path().join("1.index"));
        assert_eq!(full_stats.deleted, 0);
        assert_eq!(
            (full_tree.files, full_tree.dirs, full_tree.symlinks),
            (full_stats.files, full_stats.dirs, full_stats.symlinks)
        );

        fs::write(src.join("a/changed"), "new content").unwrap();
        fs::remove_file(src.join("a/gone")).unwrap();
        fs::remove_dir_all(src.join("b")).unwrap();
        fs::remove_file(src.join("c")).unwrap();
        fs::create_dir(src.join("c")).unwrap();
        fs::write(src.join("c/f"), "c is a directory").unwrap();
        fs::remove_dir_all(src.join("d")).unwrap();
        fs::write(src.join("d"), "d is a file").unwrap();
        fs::create_dir(src.join("new")).unwrap();
        fs::write(src.join("new/n"), "new").unwrap();
        fs::remove_file(src.join("link")).unwrap();
        symlink("c/f", src.join("link")).unwrap();
        let (incremental, stats, tree) = pass(
            &src,
            Some(&dir.path().join("1.index")),
            &dir.path().join("2.index"),
        );

        let base = src.strip_prefix("/").unwrap().display().to_string();
        let stored = names(&incremental);
        assert!(
            !stored.contains(&format!("{base}/a/same")),
            "unchanged files are left out: {stored:?}"
        );
        for changed in ["a/changed", "c/f", "d", "new/n", "link"] {
            assert!(
                stored.contains(&format!("{base}/{changed}")),
                "{changed}: {stored:?}"
            );
        }
        // a/gone and b (once, not b/deep and b/deep/z); c and d are replaced, not deleted.
        assert_eq!(stats.deleted, 2, "{stored:?}");
        assert_eq!(stats.files, 4);

        let target = dir.path().join("restored");
        let mut restore = Restore::new(&target).unwrap();
        restore.apply(full.as_slice(), Compression::Zstd).unwrap();
        let applied = restore
            .apply(incremental.as_slice(), Compression::Zstd)
            .unwrap();
        assert_eq!(applied.deleted, 2);
        let implicit = restore.implicit_dirs();
        restore.finish().unwrap();
        assert_eq!(snapshot(&target.join(&base)), snapshot(&src));
        let counted = archive::count_tree(&target, implicit).unwrap();
        assert_eq!(counted, ArchiveStats { deleted: 0, ..tree });

        // The incremental alone, or twice, does not apply.
        let alone = dir.path().join("alone");
        let err = archive::extract_archive(incremental.as_slice(), Compression::Zstd, &alone)
            .unwrap_err();
        assert!(
            err.to_string().contains("first archive of a chain"),
            "{err}"
        );
        let twice = dir.path().join("twice");
        let mut restore = Restore::new(&twice).unwrap();
        restore.apply(full.as_slice(), Compression::Zstd).unwrap();
        restore
            .apply(incremental.as_slice(), Compression::Zstd)
            .unwrap();
        let err = restore
            .apply(incremental.as_slice(), Compression::Zstd)
            .unwrap_err();
        assert!(matches!(err, FilesError::ChainMismatch { .. }), "{err}");

        // Nothing changed: the next incremental stores directories only.
        let (_, again, _) = pass(
            &src,
            Some(&dir.path().join("2.index")),
            &dir.path().join("3.index"),
        );
        assert_eq!((again.files, again.symlinks, again.deleted), (0, 0, 0));
    }

    #[test]
    fn a_racy_file_is_compared_by_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, "abc").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        let now = Record::new(0, PathBuf::from("f"), Type::File, &meta);
        let unchanged = |delta: &Delta, previous: &Record| {
            delta.unchanged(previous, Type::File, &meta, &path).unwrap()
        };
        let header = Header {
            id: "x".to_owned(),
            fingerprint: [0; 32],
        };
        let writer = Writer::new(Vec::new(), &header).unwrap();
        drop(writer);
        let index = dir.path().join("i");
        let delta = Delta::new(
            None,
            Writer::new(File::create(&index).unwrap(), &header).unwrap(),
        );
        let mut previous = now.clone();
        assert!(unchanged(&delta, &previous));
        previous.sha256 = Some(Sha256::digest(b"abc").into());
        assert!(unchanged(&delta, &previous));
        // Same size and times, other content: what a write in the same clock tick leaves.
        previous.sha256 = Some(Sha256::digest(b"abd").into());
        assert!(!unchanged(&delta, &previous));
        previous.sha256 = None;
        previous.ctime += 1;
        assert!(!unchanged(&delta, &previous));
        // A file just written is racy, one written long ago is not.
        assert!(racy(now.mtime));
        assert!(!racy(now.mtime - 10_000_000_000));
    }

    #[test]
    fn records_count_their_own_length() {
        for len in [0, 1, 70, 80, 81, 82, 990, 5000] {
            let path = vec![b'a'; len];
            let mut out = Vec::new();
            push_record(&mut out, &path);
            let space = out.iter().position(|&b| b == b' ').unwrap();
            let declared: usize = std::str::from_utf8(&out[..space]).unwrap().parse().unwrap();
            assert_eq!(declared, out.len(), "path of {len} bytes");
            let parsed: Vec<_> = tar::PaxExtensions::new(&out)
                .map(|e| e.unwrap().value_bytes().to_vec())
                .collect();
            assert_eq!(parsed, vec![path]);
        }
    }
}
