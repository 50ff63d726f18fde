//! Reading procfs files: a reused buffer, the error mapping, and the collector that turns one
//! file into families.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use crate::collect::{BlockingCollector, Error, Family};

/// Initial capacity of a read buffer; /proc/vmstat, the largest file read, is about 5 KiB.
const BUFFER_CAPACITY: usize = 8 * 1024;

/// Reads to the end with `read(buffer, offset)` into `buf`, replacing its contents. Unlike
/// `Read::read_to_end`, asks the file for nothing else (no `statx`, no `lseek`).
fn read_all(
    buf: &mut Vec<u8>,
    mut read: impl FnMut(&mut [u8], u64) -> io::Result<usize>,
) -> io::Result<()> {
    buf.clear();
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(BUFFER_CAPACITY));
        }
        let start = buf.len();
        buf.resize(buf.capacity(), 0);
        let read = read(&mut buf[start..], start as u64);
        buf.truncate(start + *read.as_ref().unwrap_or(&0));
        match read {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
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
                let read = read_all(&mut self.bytes, |buf, offset| file.read_at(buf, offset));
                if read.is_err() {
                    self.held.swap_remove(i);
                }
                read.is_ok()
            }
            None => false,
        };
        if !read_again {
            let mut file = File::open(path)?;
            read_all(&mut self.bytes, |buf, _| file.read(buf))?;
            let procfs = rustix::fs::fstatfs(&file)
                .is_ok_and(|fs| fs.f_type == rustix::fs::PROC_SUPER_MAGIC);
            if procfs {
                self.held.push((path.to_owned(), file));
            }
        }
        std::str::from_utf8(&self.bytes)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
    }
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
}

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
        Arc::new(FileCollector {
            name,
            timeout,
            source: FileSource {
                path,
                buffer: ReadBuffer::default(),
                parse,
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
        source.buffer.with_file(&source.path, |text| {
            (source.parse)(text).map_err(|reason| parse_error(&source.path, reason))
        })
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
