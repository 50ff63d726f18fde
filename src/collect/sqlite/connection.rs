//! Opening a database read-only, keeping the connection across reads, classifying why a
//! database cannot be read, and stopping a running statement from another thread.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, InterruptHandle, OpenFlags};

/// Locks a mutex, ignoring poisoning: the guarded state stays valid when a holder panics.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why a database cannot be read right now.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unavailable {
    /// No file at the path.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The database file.
        path: PathBuf,
    },
    /// The file or its directory cannot be read.
    #[error("cannot read {}", path.display())]
    Unreadable {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an SQLite database (or its header is damaged).
    #[error("{} is not an SQLite database", path.display())]
    NotADatabase {
        /// The database file.
        path: PathBuf,
    },
    /// A writer held a lock that excludes readers for longer than the busy timeout.
    #[error("{} stayed locked by a writer for {busy:?}", path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
        /// How long the read waited.
        busy: Duration,
    },
    /// The read ran past its limit and was interrupted.
    #[error("reading {} took longer than {limit:?}", path.display())]
    Interrupted {
        /// The database file.
        path: PathBuf,
        /// The limit.
        limit: Duration,
    },
    /// A WAL database no application has open (no `-shm` file) whose `-wal` file still holds
    /// changes: the last application crashed or was killed before checkpointing. Reading it
    /// means recovering that log into a new `-shm` file, which would be created owned by
    /// warden's user and could lock a differently-owned application out of its own database;
    /// reading the main file alone would miss the changes. So it is not opened until the
    /// application opens it again (and recovers the log).
    #[error(
        "{} is a WAL database with {wal_bytes} bytes of changes in its -wal file and no -shm \
         file (no application has it open, and the last one did not checkpoint on exit); not \
         opened, since reading it would create its -shm file and reading around the log would \
         miss those changes; it is read again once the application opens it",
        path.display()
    )]
    UnrecoveredWal {
        /// The database file.
        path: PathBuf,
        /// The size of the `-wal` file.
        wal_bytes: u64,
    },
    /// An earlier read has not returned and cannot be interrupted: blocked opening or reading
    /// the file (a hung file system, a FIFO). Reads are refused until it returns.
    #[error("an earlier read of {} is still stuck, since {running_for:?} ago (a hung file?); not queueing behind it", path.display())]
    Stuck {
        /// The database file.
        path: PathBuf,
        /// How long the stuck read has run.
        running_for: Duration,
    },
    /// SQLite failed otherwise (corruption, I/O error, cannot open).
    #[error("cannot read {}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}

impl Unavailable {
    /// Classifies an SQLite error met while reading `path`.
    pub(super) fn from_sqlite(
        path: &Path,
        busy: Duration,
        limit: Duration,
        err: rusqlite::Error,
    ) -> Self {
        let path = path.to_owned();
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
                Unavailable::Locked { path, busy }
            }
            Some(ErrorCode::NotADatabase) => Unavailable::NotADatabase { path },
            Some(ErrorCode::OperationInterrupted) => Unavailable::Interrupted { path, limit },
            _ => Unavailable::Sqlite { path, source: err },
        }
    }
}

/// The `file:` URI of a path, read-only (and `immutable` if asked): every byte outside the
/// URI-safe set is percent-encoded, so a path containing `?`, `#` or `%` still names that file.
fn uri(path: &Path, immutable: bool) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    if immutable {
        uri.push_str("&immutable=1");
    }
    uri
}

/// Opens `path` read-only: never creates the file, never writes to it, and waits at most
/// `busy` for a lock before failing with `SQLITE_BUSY`.
///
/// [`Access::Immutable`] opens it with `immutable=1`: SQLite then takes no lock and opens no
/// `-wal` or `-shm` file (so creates none), trusting that nothing changes the file while the
/// connection is open. Such a connection is used for one read and closed.
///
/// `SQLITE_OPEN_NO_MUTEX`: each connection is used by one thread at a time (behind a mutex
/// of ours), so SQLite's own per-connection mutex would be pure overhead.
pub(super) fn open(path: &Path, busy: Duration, access: Access) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(uri(path, access == Access::Immutable), flags)?;
    conn.busy_timeout(busy)?;
    Ok(conn)
}

/// The identity of a file: a replaced file (new inode) needs a new connection, since the old
/// one would keep reading the unlinked file.
fn identity(meta: &Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Reads the file's metadata, mapping a missing file to [`Unavailable::Missing`].
pub(super) fn stat(path: &Path) -> Result<Metadata, Unavailable> {
    std::fs::metadata(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => Unavailable::Missing {
            path: path.to_owned(),
        },
        _ => Unavailable::Unreadable {
            path: path.to_owned(),
            source,
        },
    })
}

/// The fields of the 100-byte database header that the statistics use
/// (<https://www.sqlite.org/fileformat2.html#the_database_header>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Bytes per page.
    pub(super) page_size: u32,
    /// Pages in the file.
    pub(super) page_count: u64,
    /// Pages on the freelist.
    pub(super) freelist_count: u32,
    /// Whether the file is in WAL mode (read and write versions 2).
    pub(super) wal: bool,
}

/// Parses the header of a database file of `len` bytes.
pub(super) fn parse_header(bytes: &[u8; 100], len: u64) -> Option<Header> {
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if &bytes[..16] != b"SQLite format 3\0" {
        return None;
    }
    let page_size = match u16::from_be_bytes([bytes[16], bytes[17]]) {
        1 => 65536,
        size if size >= 512 && size.is_power_of_two() => u32::from(size),
        _ => return None,
    };
    // The in-header size is valid only if written by SQLite 3.7.0 or later, which stores the
    // change counter it was valid for; otherwise the file size decides.
    let in_header = be32(28);
    let page_count = if in_header != 0 && be32(92) == be32(24) {
        u64::from(in_header)
    } else {
        len / u64::from(page_size)
    };
    Some(Header {
        page_size,
        page_count,
        freelist_count: be32(36),
        wal: bytes[18] == 2 && bytes[19] == 2,
    })
}

/// `<path><suffix>`: the `-wal` or `-shm` file of a database.
pub(super) fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut side = path.as_os_str().to_owned();
    side.push(suffix);
    PathBuf::from(side)
}

/// A WAL database no application has open: its `-shm` file is absent.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleWal {
    /// Its header.
    pub(super) header: Header,
    /// The size of its `-wal` file (0 when absent). Empty: the last connection checkpointed
    /// the log into the file on close, so the file and its header are current.
    pub(super) wal_bytes: u64,
}

/// How a database is opened without creating a file beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Through SQLite's locks, sharing the application's `-shm` (WAL) or taking SHARED
    /// (rollback journal): any database an application may be writing.
    Shared,
    /// `immutable=1`: a WAL database no application has open, whose log is empty. Opening
    /// it normally would create its `-shm` and `-wal` files.
    Immutable,
}

impl Access {
    /// How to open `path` (of `len` bytes): [`Unavailable::UnrecoveredWal`] when it cannot
    /// be read without creating files.
    pub(super) fn of(path: &Path, len: u64) -> Result<Access, Unavailable> {
        match idle_wal(path, len)? {
            None => Ok(Access::Shared),
            Some(idle) if idle.wal_bytes == 0 => Ok(Access::Immutable),
            Some(idle) => Err(Unavailable::UnrecoveredWal {
                path: path.to_owned(),
                wal_bytes: idle.wal_bytes,
            }),
        }
    }
}

/// The header and log size of a WAL database whose `-shm` file is absent (no application has
/// it open), which SQLite must not open normally; `None` for any other database.
pub(super) fn idle_wal(path: &Path, len: u64) -> Result<Option<IdleWal>, Unavailable> {
    use std::io::Read;
    if side_file(path, "-shm").exists() {
        return Ok(None);
    }
    let mut bytes = [0; 100];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut bytes));
    match read {
        Ok(()) => {}
        // Shorter than a header: an empty file (a database with no pages yet) or garbage;
        // SQLite tells which.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(source) => {
            return Err(Unavailable::Unreadable {
                path: path.to_owned(),
                source,
            });
        }
    }
    let Some(header) = parse_header(&bytes, len).filter(|header| header.wal) else {
        return Ok(None);
    };
    let wal = side_file(path, "-wal");
    let wal_bytes = match std::fs::metadata(&wal) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
        Err(source) => return Err(Unavailable::Unreadable { path: wal, source }),
    };
    Ok(Some(IdleWal { header, wal_bytes }))
}

/// One read-only connection kept across reads, reopened when the file is replaced or after
/// an error. An [`Access::Immutable`] connection is never reused: the next read checks
/// afresh whether an application has opened the database since.
pub(super) struct Keeper {
    path: PathBuf,
    busy: Duration,
    kept: Option<(Connection, (u64, u64), Access)>,
}

impl Keeper {
    /// A keeper for `path` whose connections wait at most `busy` for a lock.
    pub(super) fn new(path: PathBuf, busy: Duration) -> Self {
        Keeper {
            path,
            busy,
            kept: None,
        }
    }

    /// The database file.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// How long a connection waits for a lock.
    pub(super) fn busy(&self) -> Duration {
        self.busy
    }

    /// The connection for one read of the file described by `meta` (from [`stat`]): the kept
    /// one, or a new one if there is none, the file was replaced, or the last was immutable.
    pub(super) fn connection(
        &mut self,
        meta: &Metadata,
    ) -> Result<(&Connection, Access), Unavailable> {
        let identity = identity(meta);
        if self
            .kept
            .as_ref()
            .is_some_and(|(_, kept, access)| *kept != identity || *access == Access::Immutable)
        {
            self.kept = None;
        }
        let kept = match self.kept.take() {
            Some(kept) => kept,
            None => {
                let access = Access::of(&self.path, meta.len())?;
                let conn = open(&self.path, self.busy, access).map_err(|err| {
                    Unavailable::from_sqlite(&self.path, self.busy, Duration::ZERO, err)
                })?;
                (conn, identity, access)
            }
        };
        let (conn, _, access) = self.kept.insert(kept);
        Ok((conn, *access))
    }

    /// Closes the kept connection (after an error, or when the file is gone).
    pub(super) fn reset(&mut self) {
        self.kept = None;
    }
}

/// Stops one run of blocking SQLite work from another thread: before the work starts, or
/// by interrupting its running statement.
///
/// The work registers its connection with [`Canceller::start`] and unregisters it when the
/// returned guard drops, after its statements are finalized. Both steps and
/// [`Canceller::cancel`] happen under one mutex, so a cancel either prevents the start,
/// interrupts this work's statement, or comes after the work and touches nothing: it can
/// never interrupt a later user of the same connection.
#[derive(Clone, Default)]
pub(super) struct Canceller(Arc<Mutex<CancelState>>);

#[derive(Default)]
struct CancelState {
    cancelled: bool,
    running: Option<InterruptHandle>,
}

impl Canceller {
    /// Registers `conn` as running this work; `None` if the work was already cancelled.
    pub(super) fn start(&self, conn: &Connection) -> Option<Running<'_>> {
        let mut state = lock(&self.0);
        if state.cancelled {
            return None;
        }
        state.running = Some(conn.get_interrupt_handle());
        Some(Running(self))
    }

    /// Cancels the work: it will not start, or its running statement fails with
    /// `SQLITE_INTERRUPT`.
    pub(super) fn cancel(&self) {
        let mut state = lock(&self.0);
        state.cancelled = true;
        if let Some(handle) = &state.running {
            handle.interrupt();
        }
    }

    /// Whether [`Canceller::cancel`] was called.
    pub(super) fn is_cancelled(&self) -> bool {
        lock(&self.0).cancelled
    }
}

/// Work registered with a [`Canceller`]; dropping it unregisters the connection. Drop it
/// only after the work's statements are finalized.
pub(super) struct Running<'a>(&'a Canceller);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        lock(&self.0.0).running = None;
    }
}

/// Cancels when dropped: a query future dropped by its caller stops its statement too.
pub(super) struct CancelOnDrop(pub(super) Canceller);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let mut bytes = [0u8; 100];
        bytes[..16].copy_from_slice(b"SQLite format 3\0");
        bytes[16..18].copy_from_slice(&4096u16.to_be_bytes());
        bytes[18] = 2;
        bytes[19] = 2;
        bytes[24..28].copy_from_slice(&7u32.to_be_bytes());
        bytes[28..32].copy_from_slice(&12u32.to_be_bytes());
        bytes[36..40].copy_from_slice(&3u32.to_be_bytes());
        bytes[92..96].copy_from_slice(&7u32.to_be_bytes());
        let header = Header {
            page_size: 4096,
            page_count: 12,
            freelist_count: 3,
            wal: true,
        };
        assert_eq!(parse_header(&bytes, 99 * 4096), Some(header));
        // A stale in-header size: the file size counts.
        bytes[92..96].copy_from_slice(&6u32.to_be_bytes());
        assert_eq!(
            parse_header(&bytes, 5 * 4096).map(|h| h.page_count),
            Some(5)
        );
        bytes[16..18].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(parse_header(&bytes, 0).map(|h| h.page_size), Some(65536));
        bytes[0] = b'X';
        assert_eq!(parse_header(&bytes, 0), None);
    }

    #[test]
    fn uri_escapes_special_bytes() {
        assert_eq!(
            uri(Path::new("/var/lib/a b/x?y#z%.db"), false),
            "file:/var/lib/a%20b/x%3Fy%23z%25.db?mode=ro"
        );
        assert_eq!(
            uri(Path::new("rel/app.db"), false),
            "file:rel/app.db?mode=ro"
        );
        assert_eq!(
            uri(Path::new("rel/app.db"), true),
            "file:rel/app.db?mode=ro&immutable=1"
        );
    }
}
