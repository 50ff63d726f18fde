//! Reading procfs files: a reused buffer, the error mapping, and the collector that turns one
//! file into families.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use super::handoff::Handoff;
use crate::collect::{BlockingCollector, Error, Family};

/// Initial capacity of a read buffer; /proc/vmstat, the largest file read, is about 5 KiB.
const BUFFER_CAPACITY: usize = 8 * 1024;

/// Reads `file` to the end into `buf`, replacing its contents: from its current offset, or
/// with `pread` from offset 0 when `from_start`. Unlike `Read::read_to_end`, asks the file for
/// nothing else (no `statx`, no `lseek`), and reads into the buffer's spare capacity, which is
/// never zeroed first (that memset of the whole buffer, twice per file, was a few percent of a
/// scrape).
pub(super) fn read_all(buf: &mut Vec<u8>, file: &File, from_start: bool) -> io::Result<()> {
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(BUFFER_CAPACITY));
        }
        let offset = buf.len() as u64;
        let spare = rustix::buffer::spare_capacity(&mut *buf);
        let read = if from_start {
            rustix::io::pread(file, spare, offset)
        } else {
            rustix::io::read(file, spare)
        };
        match read {
            Ok(0) => return Ok(()),
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
}

/// A reader that keeps procfs files open between reads.
///
/// procfs builds a file's text anew on every read from offset 0, so a descriptor held across
/// scrapes reads what a fresh open would, without the path walk, open and close (about a third
/// of the cost of reading a small /proc file). Only procfs files are held: a sysfs attribute
/// follows its device across a rename (`eth0` renamed, another device named `eth0`), and a
/// regular file (a fixture, another host's tree) may be replaced by a rename. A held file
/// whose read fails (a module unloaded, a process gone) is dropped and opened again.
#[derive(Debug, Default)]
pub(super) struct Reader {
    bytes: Vec<u8>,
    held: Vec<(PathBuf, File)>,
}

impl Reader {
    /// The text of `path`.
    ///
    /// # Errors
    /// The open's or read's error; text that is not UTF-8 is `InvalidData`.
    pub(super) fn read(&mut self, path: &Path) -> io::Result<&str> {
        let read_again = match self.held.iter().position(|(held, _)| held == path) {
            Some(i) => {
                let file = &self.held[i].1;
                let read = read_all(&mut self.bytes, file, true);
                if read.is_err() {
                    self.held.swap_remove(i);
                }
                read.is_ok()
            }
            None => false,
        };
        if !read_again {
            let file = File::open(path)?;
            read_all(&mut self.bytes, &file, false)?;
            if on_procfs(&file) {
                self.held.push((path.to_owned(), file));
            }
        }
        text(&self.bytes)
    }
}

/// Whether `file` is on procfs.
pub(super) fn on_procfs(file: &File) -> bool {
    rustix::fs::fstatfs(file).is_ok_and(|fs| fs.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

/// The text read by [`read_all`], or `InvalidData` when it is not UTF-8.
pub(super) fn text(bytes: &[u8]) -> io::Result<&str> {
    std::str::from_utf8(bytes).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// The collector error for a file that could not be read.
pub(super) fn read_error(path: &Path, source: io::Error) -> Error {
    Error::Read {
        path: path.display().to_string(),
        source,
    }
}

/// The collector error for a file whose content is not understood.
pub(super) fn parse_error(path: &Path, reason: String) -> Error {
    Error::Parse {
        path: path.display().to_string(),
        reason,
    }
}

/// Parses a decimal unsigned integer field, saying which field was wrong otherwise.
pub(super) fn parse_u64(field: &str, what: &str) -> Result<u64, String> {
    field
        .parse()
        .map_err(|_| format!("{what}: {field:?} is not an unsigned integer"))
}

/// A [`Reader`] kept across collections so a scrape neither allocates for the file text nor
/// reopens its procfs files.
#[derive(Debug, Default)]
pub(in crate::collect) struct ReadBuffer {
    reader: Mutex<Reader>,
}

impl ReadBuffer {
    /// Reads `path` and hands its text to `f`. A concurrent caller (two scrapes at once, or a
    /// read still hung from an earlier scrape) reads through its own reader rather than
    /// waiting.
    ///
    /// # Errors
    /// The read's or `f`'s error.
    pub(in crate::collect) fn with_file<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.reader.try_lock() {
            Ok(mut reader) => Self::read_then(&mut reader, path, f),
            Err(TryLockError::Poisoned(poisoned)) => {
                Self::read_then(&mut poisoned.into_inner(), path, f)
            }
            Err(TryLockError::WouldBlock) => Self::read_then(&mut Reader::default(), path, f),
        }
    }

    fn read_then<T>(
        reader: &mut Reader,
        path: &Path,
        f: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        f(reader
            .read(path)
            .map_err(|source| read_error(path, source))?)
    }
}

/// A collector that reads one procfs file and parses its text into families.
pub(super) struct FileCollector<P> {
    name: &'static str,
    timeout: Duration,
    source: FileSource<P>,
}

struct FileSource<P> {
    path: PathBuf,
    buffer: ReadBuffer,
    parse: P,
    /// Where an earlier collector of the scrape may have left this file's text.
    left: Option<Arc<TextHandoff>>,
}

/// The text of a file one collector read and leaves for another (cpu's /proc/stat for stat).
pub(super) type TextHandoff = Handoff<Arc<str>>;

impl<P> FileCollector<P>
where
    P: Fn(&str) -> Result<Vec<Family>, String> + Send + Sync + 'static,
{
    /// A shareable collector named `name` reading `path` with `parse`.
    pub(super) fn arc(
        name: &'static str,
        timeout: Duration,
        path: PathBuf,
        parse: P,
    ) -> Arc<dyn BlockingCollector> {
        Self::build(name, timeout, path, parse, None)
    }

    /// As [`Self::arc`], but parsing the text another collector left in `left` when there is
    /// a fresh one, and reading `path` only otherwise.
    pub(super) fn arc_taking(
        name: &'static str,
        timeout: Duration,
        path: PathBuf,
        left: Arc<TextHandoff>,
        parse: P,
    ) -> Arc<dyn BlockingCollector> {
        Self::build(name, timeout, path, parse, Some(left))
    }

    fn build(
        name: &'static str,
        timeout: Duration,
        path: PathBuf,
        parse: P,
        left: Option<Arc<TextHandoff>>,
    ) -> Arc<dyn BlockingCollector> {
        Arc::new(FileCollector {
            name,
            timeout,
            source: FileSource {
                path,
                buffer: ReadBuffer::default(),
                parse,
                left,
            },
        })
    }
}

impl<P> BlockingCollector for FileCollector<P>
where
    P: Fn(&str) -> Result<Vec<Family>, String> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        self.name
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        let source = &self.source;
        let parse =
            |text: &str| (source.parse)(text).map_err(|reason| parse_error(&source.path, reason));
        if let Some(text) = source.left.as_ref().and_then(|left| left.take()) {
            return parse(&text);
        }
        source.buffer.with_file(&source.path, parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_is_reused_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "long content here").expect("write");
        std::fs::write(&b, "short").expect("write");
        let buffer = ReadBuffer::default();
        let first = buffer.with_file(&a, |t| Ok(t.to_owned())).expect("read a");
        let second = buffer.with_file(&b, |t| Ok(t.to_owned())).expect("read b");
        assert_eq!(first, "long content here");
        assert_eq!(second, "short");
    }

    #[test]
    fn files_longer_than_the_buffer_read_whole_held_or_not() {
        // A regular file (opened each time) and a procfs file (held) several buffers long,
        // each read twice, with a short file in between.
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("long");
        let text: String = (0..10_000).map(|i| format!("{i}\n")).collect();
        assert!(text.len() > 4 * BUFFER_CAPACITY);
        std::fs::write(&long, &text).expect("write");
        let short = dir.path().join("short");
        std::fs::write(&short, "x").expect("write");
        let mountinfo = Path::new("/proc/self/mountinfo");
        let mut reader = Reader::default();
        for _ in 0..2 {
            assert_eq!(reader.read(&long).expect("long"), text);
            assert_eq!(reader.read(&short).expect("short"), "x");
            let held = reader.read(mountinfo).expect("mountinfo").to_owned();
            let fresh = std::fs::read_to_string(mountinfo).expect("mountinfo again");
            assert_eq!(held, fresh);
        }
        assert_eq!(reader.held.len(), 1, "only the procfs file is held");
    }

    #[test]
    fn a_concurrent_reader_does_not_wait_for_the_buffer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, "content").expect("write");
        let buffer = ReadBuffer::default();
        let _locked = buffer.reader.lock().expect("lock");
        assert_eq!(
            buffer.with_file(&path, |t| Ok(t.to_owned())).expect("read"),
            "content"
        );
    }

    #[test]
    fn a_held_procfs_file_reads_fresh_text_each_time() {
        // This thread's name, read through one held descriptor, changed in between.
        let path = Path::new("/proc/thread-self/comm");
        let mut reader = Reader::default();
        std::fs::write(path, "warden-test-a").expect("name this thread");
        assert_eq!(reader.read(path).expect("read").trim(), "warden-test-a");
        assert_eq!(reader.held.len(), 1, "procfs files are held");
        std::fs::write(path, "warden-test-b").expect("rename this thread");
        assert_eq!(reader.read(path).expect("read").trim(), "warden-test-b");
        assert_eq!(reader.held.len(), 1, "the same descriptor is used again");
    }

    #[test]
    fn regular_files_are_opened_anew_so_a_replaced_file_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stat");
        std::fs::write(&path, "first").expect("write");
        let mut reader = Reader::default();
        assert_eq!(reader.read(&path).expect("read"), "first");
        assert!(reader.held.is_empty(), "only procfs files are held");
        let next = dir.path().join("stat.new");
        std::fs::write(&next, "second, longer than the first").expect("write");
        std::fs::rename(&next, &path).expect("rename");
        assert_eq!(
            reader.read(&path).expect("read"),
            "second, longer than the first"
        );
    }

    #[test]
    fn a_held_file_that_went_away_is_dropped_and_its_error_returned() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .expect("spawn sleep");
        let path = PathBuf::from(format!("/proc/{}/stat", child.id()));
        let mut reader = Reader::default();
        assert!(reader.read(&path).expect("read").contains("(sleep)"));
        assert_eq!(reader.held.len(), 1);
        child.kill().expect("kill");
        child.wait().expect("reap");
        let err = reader.read(&path).expect_err("the process is gone");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert!(reader.held.is_empty(), "the dead descriptor is dropped");
    }

    #[test]
    fn text_longer_than_the_buffer_and_invalid_utf8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let long = dir.path().join("long");
        let text = "x".repeat(3 * BUFFER_CAPACITY + 17);
        std::fs::write(&long, &text).expect("write");
        let mut reader = Reader::default();
        assert_eq!(reader.read(&long).expect("read"), text);
        let bad = dir.path().join("bad");
        std::fs::write(&bad, b"ok\xff").expect("write");
        let err = reader.read(&bad).expect_err("not UTF-8");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[tokio::test]
    async fn parse_failures_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x");
        std::fs::write(&path, "bad").expect("write");
        let collector = FileCollector::arc("x", Duration::from_secs(1), path.clone(), |_| {
            Err("nope".to_owned())
        });
        match collector.collect() {
            Err(Error::Parse { path: p, reason }) => {
                assert_eq!(p, path.display().to_string());
                assert_eq!(reason, "nope");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
