//! The file index of a `files` backup: what each archived path looked like when it was
//! archived, so that the next incremental backup stores only what changed since.
//!
//! One index is kept per incremental job, in the state directory's private directory (it
//! names every archived path), for the newest backup only; it is written with the backup and
//! published once the backup's manifest is. It is a cache: without it (a new state directory,
//! a damaged file, an index of another backup) the next run is a full backup.
//!
//! The format is a zstd stream (with its content checksum) of a header (magic, the backup's
//! id, the job's fingerprint) and one record per path in the archive walk's order (the source
//! path's position, then [`Path`] order), ended by a terminator record with the count, so a
//! truncated index is refused rather than read as shorter.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"WARDEN-INDEX-1\n";
/// The longest path a record may hold; longer is a damaged index.
const MAX_NAME: usize = 1 << 16;

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    File,
    Dir,
    Symlink,
}

impl Type {
    fn code(self) -> u8 {
        match self {
            Type::File => b'f',
            Type::Dir => b'd',
            Type::Symlink => b'l',
        }
    }

    fn from_code(code: u8) -> Option<Type> {
        match code {
            b'f' => Some(Type::File),
            b'd' => Some(Type::Dir),
            b'l' => Some(Type::Symlink),
            _ => None,
        }
    }
}

/// One path as it was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The position of its source path in the job's `paths`.
    pub root: u32,
    /// Its name in the archive (the absolute path without the leading `/`).
    pub name: PathBuf,
    pub kind: Type,
    pub size: u64,
    /// Modification and status change times, in nanoseconds since the epoch.
    pub mtime: i128,
    pub ctime: i128,
    pub ino: u64,
    /// The SHA-256 of the content stored, for a file modified so shortly before it was read
    /// that a later write could have left its size and times unchanged.
    pub sha256: Option<[u8; 32]>,
}

impl Record {
    /// A record of `meta` for `name`.
    pub fn new(root: u32, name: PathBuf, kind: Type, meta: &std::fs::Metadata) -> Record {
        Record {
            root,
            name,
            kind,
            size: if kind == Type::File { meta.size() } else { 0 },
            mtime: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            sha256: None,
        }
    }

    /// Whether `meta` (a path of type `kind`) describes the same content as this record by
    /// its metadata: type, size, modification and change times, inode. (A hash, where
    /// recorded, is the caller's to check.)
    pub fn matches(&self, kind: Type, meta: &std::fs::Metadata) -> bool {
        let size = if kind == Type::File { meta.size() } else { 0 };
        self.kind == kind
            && self.size == size
            && self.mtime
                == i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
            && self.ctime
                == i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
            && self.ino == meta.ino()
    }

    /// The walk order: source position, then path.
    pub fn key(&self) -> (u32, &Path) {
        (self.root, &self.name)
    }
}

/// The header of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The backup the index describes.
    pub id: String,
    /// The job's fingerprint (paths, filters) when it was written: another fingerprint means
    /// the index lists another selection of files.
    pub fingerprint: [u8; 32],
}

/// Why an index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("cannot read the file index {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the file index {path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: &'static str },
}

/// Writes an index, record by record, in walk order.
pub struct Writer<W: Write> {
    out: zstd::stream::write::Encoder<'static, BufWriter<W>>,
    count: u64,
}

impl<W: Write> Writer<W> {
    /// Starts an index for `header` on `out`.
    ///
    /// # Errors
    /// The I/O error of writing the header.
    pub fn new(out: W, header: &Header) -> io::Result<Writer<W>> {
        let mut out = zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 16, out), 1)?;
        out.include_checksum(true)?;
        out.write_all(MAGIC)?;
        put_bytes(&mut out, header.id.as_bytes())?;
        out.write_all(&header.fingerprint)?;
        Ok(Writer { out, count: 0 })
    }

    /// Appends one record.
    ///
    /// # Errors
    /// The I/O error of writing it.
    pub fn push(&mut self, record: &Record) -> io::Result<()> {
        let out = &mut self.out;
        out.write_all(&[record.kind.code()])?;
        out.write_all(&record.root.to_le_bytes())?;
        out.write_all(&record.size.to_le_bytes())?;
        out.write_all(&record.mtime.to_le_bytes())?;
        out.write_all(&record.ctime.to_le_bytes())?;
        out.write_all(&record.ino.to_le_bytes())?;
        match &record.sha256 {
            Some(hash) => {
                out.write_all(&[1])?;
                out.write_all(hash)?;
            }
            None => out.write_all(&[0])?,
        }
        put_bytes(out, record.name.as_os_str().as_bytes())?;
        self.count += 1;
        Ok(())
    }

    /// Writes the terminator and finishes the stream; hands `out` back for the caller to sync.
    ///
    /// # Errors
    /// The I/O error of writing.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0])?;
        self.out.write_all(&self.count.to_le_bytes())?;
        let buffered = self.out.finish()?;
        buffered.into_inner().map_err(|err| err.into_error())
    }
}

fn put_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("name too long"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(bytes)
}

/// Reads an index back in walk order, one record ahead.
pub struct Reader {
    path: PathBuf,
    input: BufReader<zstd::stream::read::Decoder<'static, BufReader<File>>>,
    header: Header,
    next: Option<Record>,
    count: u64,
    ended: bool,
}

impl Reader {
    /// Opens the index at `path` and reads its header; `Ok(None)` when there is none.
    ///
    /// # Errors
    /// When it cannot be read or is not an index.
    pub fn open(path: &Path) -> Result<Option<Reader>, IndexError> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IndexError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let damaged = |reason| IndexError::Damaged {
            path: path.to_owned(),
            reason,
        };
        let decoder =
            zstd::stream::read::Decoder::new(file).map_err(|source| IndexError::Read {
                path: path.to_owned(),
                source,
            })?;
        let mut input = BufReader::with_capacity(1 << 16, decoder);
        let mut magic = [0; MAGIC.len()];
        input
            .read_exact(&mut magic)
            .map_err(|_| damaged("no header"))?;
        if magic != MAGIC {
            return Err(damaged("not a warden file index"));
        }
        let id = get_bytes(&mut input, 256).map_err(|_| damaged("no backup id"))?;
        let id = String::from_utf8(id).map_err(|_| damaged("the backup id is not UTF-8"))?;
        let mut fingerprint = [0; 32];
        input
            .read_exact(&mut fingerprint)
            .map_err(|_| damaged("no fingerprint"))?;
        let mut reader = Reader {
            path: path.to_owned(),
            input,
            header: Header { id, fingerprint },
            next: None,
            count: 0,
            ended: false,
        };
        reader.next = reader.read(None)?;
        Ok(Some(reader))
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next record, without taking it.
    pub fn peek(&self) -> Option<&Record> {
        self.next.as_ref()
    }

    /// Takes the next record.
    ///
    /// # Errors
    /// When the index turns out damaged past this record.
    pub fn take(&mut self) -> Result<Option<Record>, IndexError> {
        let Some(current) = self.next.take() else {
            return Ok(None);
        };
        self.next = self.read(Some(current.key()))?;
        Ok(Some(current))
    }

    /// Reads the record after the one with key `after` (none: the first); `None` at the
    /// terminator.
    fn read(&mut self, after: Option<(u32, &Path)>) -> Result<Option<Record>, IndexError> {
        if self.ended {
            return Ok(None);
        }
        let path = &self.path;
        let damaged = |reason| IndexError::Damaged {
            path: path.clone(),
            reason,
        };
        let input = &mut self.input;
        let mut code = [0; 1];
        input
            .read_exact(&mut code)
            .map_err(|_| damaged("it ends before its terminator"))?;
        if code[0] == 0 {
            let count = u64::from_le_bytes(read_array(input).map_err(|_| damaged("truncated"))?);
            if count != self.count {
                return Err(damaged("its record count does not match"));
            }
            let mut rest = Vec::new();
            input
                .read_to_end(&mut rest)
                .map_err(|_| damaged("its stream does not end cleanly"))?;
            if !rest.is_empty() {
                return Err(damaged("data after the terminator"));
            }
            self.ended = true;
            return Ok(None);
        }
        let kind = Type::from_code(code[0]).ok_or_else(|| damaged("unknown record type"))?;
        let truncated = |_| damaged("a record is truncated");
        let root = u32::from_le_bytes(read_array(input).map_err(truncated)?);
        let size = u64::from_le_bytes(read_array(input).map_err(truncated)?);
        let mtime = i128::from_le_bytes(read_array(input).map_err(truncated)?);
        let ctime = i128::from_le_bytes(read_array(input).map_err(truncated)?);
        let ino = u64::from_le_bytes(read_array(input).map_err(truncated)?);
        let [has_hash] = read_array(input).map_err(truncated)?;
        let sha256 = match has_hash {
            0 => None,
            1 => Some(read_array(input).map_err(truncated)?),
            _ => return Err(damaged("unknown hash flag")),
        };
        let name = get_bytes(input, MAX_NAME).map_err(truncated)?;
        let record = Record {
            root,
            name: PathBuf::from(std::ffi::OsString::from_vec(name)),
            kind,
            size,
            mtime,
            ctime,
            ino,
            sha256,
        };
        if after.is_some_and(|after| after >= record.key()) {
            return Err(damaged("records are out of order"));
        }
        self.count += 1;
        Ok(Some(record))
    }
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut bytes = [0; N];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

fn get_bytes(input: &mut impl Read, max: usize) -> io::Result<Vec<u8>> {
    let len = u32::from_le_bytes(read_array(input)?) as usize;
    if len > max {
        return Err(io::Error::other("too long"));
    }
    let mut bytes = vec![0; len];
    input.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(root: u32, name: &str, kind: Type, hash: bool) -> Record {
        Record {
            root,
            name: PathBuf::from(name),
            kind,
            size: 42,
            mtime: 1_700_000_000_123_456_789,
            ctime: -5,
            ino: 7,
            sha256: hash.then_some([9; 32]),
        }
    }

    fn written(records: &[Record]) -> Vec<u8> {
        let header = Header {
            id: "20261203T090000Z-abcd".to_owned(),
            fingerprint: [3; 32],
        };
        let mut writer = Writer::new(Vec::new(), &header).unwrap();
        for record in records {
            writer.push(record).unwrap();
        }
        writer.finish().unwrap()
    }

    fn read_all(dir: &Path, bytes: &[u8]) -> Result<(Header, Vec<Record>), IndexError> {
        let path = dir.join("job.index");
        std::fs::write(&path, bytes).unwrap();
        let mut reader = Reader::open(&path)?.unwrap();
        let header = reader.header().clone();
        let mut records = Vec::new();
        while let Some(record) = reader.take()? {
            records.push(record);
        }
        Ok((header, records))
    }

    #[test]
    fn round_trip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let records = vec![
            record(0, "srv/a", Type::Dir, false),
            record(0, "srv/a/x", Type::File, true),
            record(0, "srv/a/y", Type::Symlink, false),
            record(1, "etc/z", Type::File, false),
        ];
        let bytes = written(&records);
        let (header, back) = read_all(dir.path(), &bytes).unwrap();
        assert_eq!(header.id, "20261203T090000Z-abcd");
        assert_eq!(header.fingerprint, [3; 32]);
        assert_eq!(back, records);
        assert!(Reader::open(&dir.path().join("missing")).unwrap().is_none());

        // A stream cut short anywhere is refused, never read as a shorter index.
        for cut in [10, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_all(dir.path(), &bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Out of order records are refused.
        let swapped = written(&[records[1].clone(), records[0].clone()]);
        let err = read_all(dir.path(), &swapped).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
        let err = read_all(dir.path(), b"not zstd at all").unwrap_err();
        assert!(matches!(err, IndexError::Damaged { .. }), "{err}");
    }
}
