//! Atomic publishing: a backup is written to a temporary file in its destination, fsynced,
//! renamed to its final name, and the directory is fsynced, so a crash at any moment leaves
//! either the old state or the new one, never a half-written file under a final name.
//!
//! Temporary files start with [`TEMP_PREFIX`]; anything with that prefix in a destination is
//! a leftover of a run that died, and is removed by the next run of the job (under its lock).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The name prefix of files being written; never a published backup.
pub const TEMP_PREFIX: &str = ".tmp-";
/// Read buffer for hashing and copying: large enough that syscalls do not dominate.
pub const IO_BUFFER: usize = 1 << 20;

/// A temporary file in a destination directory, removed when dropped unless published.
#[derive(Debug)]
pub struct Staged {
    path: PathBuf,
    file: Option<File>,
}

impl AsRef<Path> for Staged {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Staged {
    /// Creates `DIR/.tmp-NAME` (mode 0600), failing if it exists.
    ///
    /// # Errors
    /// The I/O error of creating the file.
    pub fn create(dir: &Path, name: &str) -> io::Result<Staged> {
        let path = dir.join(format!("{TEMP_PREFIX}{name}"));
        let file = create_private(&path)?;
        Ok(Staged {
            path,
            file: Some(file),
        })
    }

    /// Where the temporary file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for writing.
    ///
    /// # Errors
    /// Fails once the file has been closed with [`Staged::close`].
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the staged file is closed"))
    }

    /// Closes the file without flushing it, for a producer whose file is flushed while it is
    /// verified (and again by [`Staged::publish`]).
    pub fn close_unsynced(&mut self) {
        self.file = None;
    }

    /// Flushes the file to disk and closes it (another process, or SQLite, may then write
    /// the path itself).
    ///
    /// # Errors
    /// The I/O error of `fsync`.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        Ok(())
    }

    /// Flushes the path's content to disk, renames it to `target` and fsyncs the directory.
    ///
    /// # Errors
    /// The I/O error of any step; the temporary file is removed then.
    pub fn publish(mut self, target: &Path) -> io::Result<()> {
        self.close()?;
        // The path may have been written by another process or library since it was created.
        File::open(&self.path)?.sync_all()?;
        std::fs::rename(&self.path, target)?;
        self.path = PathBuf::new();
        sync_parent(target)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates a new file readable and writable by warden only (mode 0600): backups and safety
/// copies hold the data they were made from. Fails if the file exists.
///
/// # Errors
/// The I/O error of creating it.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).read(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
///
/// # Errors
/// The I/O error of any step; nothing is left behind under a temporary name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut staged = Staged::create(dir, &format!("{name}.{}", std::process::id()))?;
    staged.file()?.write_all(bytes)?;
    staged.publish(path)
}

/// Removes a directory tree warden made (a drill's scratch copy), even when the archive it
/// came from made some directories read-only: on a first failure, owner write and search
/// permission is given back to every directory (through descriptors, never following a link)
/// and removal retried.
///
/// # Errors
/// The I/O error of the second attempt.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    if std::fs::remove_dir_all(path).is_ok() || !path.exists() {
        return Ok(());
    }
    #[cfg(target_os = "linux")]
    grant_owner_access(path);
    std::fs::remove_dir_all(path)
}

/// Gives the owner read, write and search permission on `root` and every directory below it.
/// Each directory is opened relative to its parent's descriptor without following a symlink
/// and changed through its own descriptor, so a directory swapped for a link during the walk
/// (by whoever else can write in the tree) is never followed out of it. Best-effort: what
/// cannot be opened is left as it is.
#[cfg(target_os = "linux")]
fn grant_owner_access(root: &Path) {
    use rustix::fs::{CWD, Dir, FileType, Mode, OFlags, fstat, openat};
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::os::unix::fs::PermissionsExt;

    // O_PATH opens a directory whatever its mode; the change goes through /proc's link to the
    // descriptor, which names the opened inode itself (fchmod refuses O_PATH descriptors).
    let pinned = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let grant = |fd: &OwnedFd| -> Option<OwnedFd> {
        let stat = fstat(fd).ok()?;
        let mode = (stat.st_mode & 0o7777) | 0o700;
        let magic = format!("/proc/self/fd/{}", fd.as_raw_fd());
        std::fs::set_permissions(&magic, std::fs::Permissions::from_mode(mode)).ok()?;
        openat(
            fd.as_fd(),
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
    };
    let Ok(first) = openat(CWD, root, pinned, Mode::empty()) else {
        return;
    };
    let mut stack = vec![first];
    while let Some(fd) = stack.pop() {
        let Some(readable) = grant(&fd) else {
            continue;
        };
        let Ok(dir) = Dir::read_from(&readable) else {
            continue;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            if !matches!(entry.file_type(), FileType::Directory | FileType::Unknown) {
                continue;
            }
            if let Ok(child) = openat(&readable, name, pinned, Mode::empty()) {
                stack.push(child);
            }
        }
    }
}

/// Fsyncs the directory holding `path`, so a rename in it survives a crash.
///
/// # Errors
/// The I/O error of opening or syncing the directory.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// The environment variable of the full-disk test seam (debug builds only): after this many
/// bytes, writes through [`DiskFullSeam`] fail with ENOSPC.
pub const DISK_FULL_AFTER_VAR: &str = "WARDEN_TEST_DISK_FULL_AFTER";

/// A test seam for a full disk where a small filesystem cannot be mounted: in debug builds,
/// with [`DISK_FULL_AFTER_VAR`] set, writes past that many bytes fail with ENOSPC, exactly
/// as a full filesystem's do. Release builds never read the variable; it passes through.
pub struct DiskFullSeam<W> {
    inner: W,
    left: Option<u64>,
}

impl<W: Write> DiskFullSeam<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        let left = if cfg!(debug_assertions) {
            std::env::var(DISK_FULL_AFTER_VAR)
                .ok()
                .and_then(|v| v.parse().ok())
        } else {
            None
        };
        DiskFullSeam { inner, left }
    }
}

impl<W: Write> Write for DiskFullSeam<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(left) = &mut self.left {
            if (buf.len() as u64) > *left {
                return Err(rustix::io::Errno::NOSPC.into());
            }
            *left -= buf.len() as u64;
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The inner writer, the hex SHA-256 and the byte count of everything written.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.bytes)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The I/O error a reader or writer returns when its operation was cancelled: the one way
/// cancellation travels through `std::io`, so that [`super::BackupError::io`] reports it as
/// `Cancelled` and never as an I/O failure (nor a real `EINTR` as a cancellation).
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

impl Cancelled {
    /// The I/O error carrying it.
    pub fn io() -> io::Error {
        io::Error::other(Cancelled)
    }

    /// Whether `err` is one made by [`Cancelled::io`].
    pub fn is(err: &io::Error) -> bool {
        err.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
    }
}

/// The hex SHA-256 and size of a file, read in [`IO_BUFFER`] chunks; `cancelled` is checked
/// between chunks.
///
/// # Errors
/// The I/O error of reading, or [`Cancelled`] when cancelled.
pub fn sha256_file(path: &Path, cancelled: &dyn Fn() -> bool) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; IO_BUFFER];
    let mut bytes = 0u64;
    loop {
        if cancelled() {
            return Err(Cancelled::io());
        }
        let n = match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_stage_leaves_nothing_and_a_published_one_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = Staged::create(dir.path(), "a.dump").unwrap();
        staged.file().unwrap().write_all(b"partial").unwrap();
        drop(staged);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut staged = Staged::create(dir.path(), "b.dump").unwrap();
        let mut writer = HashingWriter::new(staged.file().unwrap());
        writer.write_all(b"hello").unwrap();
        let (_, digest, bytes) = writer.finish();
        assert_eq!(bytes, 5);
        assert_eq!(
            digest,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        let target = dir.path().join("b.dump");
        staged.publish(&target).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"hello");
        assert_eq!(sha256_file(&target, &|| false).unwrap(), (digest, 5));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["b.dump"]);
    }

    #[test]
    fn write_atomic_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn read_only_trees_are_removed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), b"x").unwrap();
        for d in ["a/b", "a"] {
            std::fs::set_permissions(tree.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        remove_tree(&tree).unwrap();
    }

    /// A directory swapped for a symlink while permissions are given back is never followed:
    /// the directory the link points to keeps its mode. The walk runs many times against a
    /// thread that keeps exchanging a directory of the tree with such a link.
    #[cfg(target_os = "linux")]
    #[test]
    fn giving_permissions_back_never_follows_a_swapped_in_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o500)).unwrap();
        let tree = dir.path().join("t");
        std::fs::create_dir_all(tree.join("a/b/c")).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("l")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (a, l, stop) = (tree.join("a"), tree.join("l"), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &a,
                        rustix::fs::CWD,
                        &l,
                        rustix::fs::RenameFlags::EXCHANGE,
                    );
                }
            })
        };
        let mode = || std::fs::metadata(&outside).unwrap().permissions().mode() & 0o777;
        for _ in 0..3000 {
            grant_owner_access(&tree);
            if mode() != 0o500 {
                break;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        assert_eq!(
            mode(),
            0o500,
            "the walk changed a directory outside the tree"
        );
    }

    #[test]
    fn hashing_can_be_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let err = sha256_file(&path, &|| true).unwrap_err();
        assert!(Cancelled::is(&err), "{err:?}");
    }
}
