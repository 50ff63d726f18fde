//! Reading procfs files: a reused buffer, the error mapping, and the collector that turns one
//! file into families.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::Duration;

use crate::collect::{BlockingCollector, Error, Family};

/// Initial capacity of a read buffer; /proc/vmstat, the largest file read, is about 5 KiB.
const BUFFER_CAPACITY: usize = 8 * 1024;

/// Reads `path` into `buf`, replacing its contents.
pub(super) fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf)?;
    Ok(())
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

/// A buffer kept across collections so a scrape does not allocate for the file text.
#[derive(Debug, Default)]
pub(super) struct ReadBuffer {
    text: Mutex<String>,
}

impl ReadBuffer {
    /// Reads `path` and hands its text to `f`. A concurrent caller (two scrapes at once, or a
    /// read still hung from an earlier scrape) reads into its own buffer rather than waiting.
    ///
    /// # Errors
    /// The read's or `f`'s error.
    pub(super) fn with_file<T>(
        &self,
        path: &Path,
        f: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self.text.try_lock() {
            Ok(mut buf) => Self::read_then(&mut buf, path, f),
            Err(TryLockError::Poisoned(poisoned)) => {
                Self::read_then(&mut poisoned.into_inner(), path, f)
            }
            Err(TryLockError::WouldBlock) => Self::read_then(&mut String::new(), path, f),
        }
    }

    fn read_then<T>(
        buf: &mut String,
        path: &Path,
        f: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        if buf.capacity() == 0 {
            buf.reserve(BUFFER_CAPACITY);
        }
        read_into(path, buf).map_err(|source| read_error(path, source))?;
        f(buf)
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
        let _locked = buffer.text.lock().expect("lock");
        assert_eq!(
            buffer.with_file(&path, |t| Ok(t.to_owned())).expect("read"),
            "content"
        );
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
