//! A collector that reads several procfs or sysfs files per collection, some of which may be
//! absent (IPv6 disabled, a netfilter module not loaded, hardware this machine lacks):
//! `netstat`, `sockstat`, `udp_queues`, `entropy`, `conntrack`, and the sysfs collectors, which
//! list a class directory with [`ProcFiles::entries`] and read each entry's attributes.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::procfs::{ReadBuffer, parse_error};
use crate::collect::{BlockingCollector, Error, Family};

/// The files under one procfs root, read through one reused buffer.
pub(super) struct ProcFiles {
    root: PathBuf,
    buffer: ReadBuffer,
}

impl ProcFiles {
    /// Reads `relative` (to the procfs root) and parses its text with `parse`.
    ///
    /// # Errors
    /// The read's error, or `parse`'s reason as a parse error naming the file.
    pub(super) fn required<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, Error> {
        let path = self.root.join(relative);
        self.buffer.with_file(&path, |text| {
            parse(text).map_err(|reason| parse_error(&path, reason))
        })
    }

    /// As [`Self::required`], but `None` when the file does not exist.
    ///
    /// # Errors
    /// Any other read error, or `parse`'s.
    pub(super) fn optional<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        match self.required(relative, parse) {
            Ok(value) => Ok(Some(value)),
            Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }
}

impl ProcFiles {
    /// The names in directory `relative`, sorted; `None` when it does not exist (the hardware
    /// or module is absent). Entries are not followed: sysfs class entries are symlinks,
    /// whose attributes are then read by path.
    ///
    /// # Errors
    /// Any other error listing the directory.
    pub(super) fn entries(&self, relative: &str) -> Result<Option<Vec<String>>, Error> {
        let path = self.root.join(relative);
        let listing = match std::fs::read_dir(&path) {
            Ok(listing) => listing,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(super::procfs::read_error(&path, err)),
        };
        let mut names = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|err| super::procfs::read_error(&path, err))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(Some(names))
    }
}

/// Reading sysfs attributes: one value per file, kernel ABI in Documentation/ABI.
impl ProcFiles {
    /// Attribute `relative`'s text without surrounding whitespace, parsed with `parse`;
    /// `None` when it does not exist or this user may not read it (`cpuinfo_cur_freq` is
    /// root's only), which node_exporter skips too.
    ///
    /// # Errors
    /// Any other read error, or `parse`'s.
    pub(super) fn attribute<T>(
        &self,
        relative: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, Error> {
        match self.required(relative, |text| parse(text.trim())) {
            Ok(value) => Ok(Some(value)),
            Err(Error::Read { source, .. })
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// The numbers `N` of the entries `<prefix>N` in directory `relative` (`cpu0`,
    /// `thermal_zone3`), in numeric order; none when the directory does not exist.
    ///
    /// # Errors
    /// As [`Self::entries`].
    pub(super) fn numbered(&self, relative: &str, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(numbered(
            &self.entries(relative)?.unwrap_or_default(),
            prefix,
        ))
    }
}

/// The numbers `N` of the names `<prefix>N` among `names`, in numeric order.
pub(super) fn numbered(names: &[String], prefix: &str) -> Vec<String> {
    let mut numbers: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let number = name.strip_prefix(prefix)?;
            let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
            digits.then(|| number.to_owned())
        })
        .collect();
    numbers.sort_by(|a, b| (a.len(), a).cmp(&(b.len(), b)));
    numbers
}

impl ProcFiles {
    /// The root the files are read under (`host.procfs` or `host.sysfs`).
    pub(super) fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The path `relative` names with every symlink resolved, when it exists.
    pub(super) fn canonical(&self, relative: &str) -> Option<PathBuf> {
        std::fs::canonicalize(self.root.join(relative)).ok()
    }

    /// Whether `relative` is a directory, or a symlink to one.
    pub(super) fn is_dir(&self, relative: &str) -> bool {
        self.root.join(relative).is_dir()
    }
}

/// Parses a sysfs number (`u64`, `i64`, `f64`, ...), saying which attribute was wrong otherwise.
pub(super) fn parse_number<T: std::str::FromStr>(text: &str, what: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{what}: {text:?} is not a number"))
}

/// A collector named `name` whose `collect` reads what it needs through [`ProcFiles`].
pub(super) struct FilesCollector<C> {
    name: &'static str,
    timeout: Duration,
    files: ProcFiles,
    collect: C,
}

impl<C> FilesCollector<C>
where
    C: Fn(&ProcFiles) -> Result<Vec<Family>, Error> + Send + Sync + 'static,
{
    /// A shareable collector reading files under `procfs` with `collect`.
    pub(super) fn arc(
        name: &'static str,
        timeout: Duration,
        procfs: PathBuf,
        collect: C,
    ) -> Arc<dyn BlockingCollector> {
        Arc::new(FilesCollector {
            name,
            timeout,
            files: ProcFiles {
                root: procfs,
                buffer: ReadBuffer::default(),
            },
            collect,
        })
    }
}

impl<C> BlockingCollector for FilesCollector<C>
where
    C: Fn(&ProcFiles) -> Result<Vec<Family>, Error> + Send + Sync + 'static,
{
    fn name(&self) -> &str {
        self.name
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        (self.collect)(&self.files)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The unlabelled value of gauge `name`, when the collection has it.
    pub(crate) fn gauge_value(families: &[Family], name: &str) -> Option<f64> {
        let family = families.iter().find(|f| f.name == name)?;
        assert_eq!(family.kind, crate::collect::family::Kind::Gauge, "{name}");
        family.value(&[])
    }

    /// Files under a temporary root, for collector tests.
    pub(crate) fn files_in(root: &std::path::Path) -> ProcFiles {
        ProcFiles {
            root: root.to_owned(),
            buffer: ReadBuffer::default(),
        }
    }

    #[test]
    fn absent_files_are_none_and_other_failures_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), "1").expect("write");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        let files = files_in(dir.path());
        let len = |t: &str| Ok(t.len());
        assert_eq!(files.optional("a", len).expect("reads"), Some(1));
        assert_eq!(files.optional("missing", len).expect("absent"), None);
        assert!(matches!(
            files.required("missing", len),
            Err(Error::Read { .. })
        ));
        // A directory is not "absent".
        assert!(files.optional("d", len).is_err());
        assert!(matches!(
            files.optional("a", |_| Err::<(), _>("bad".to_owned())),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn attributes_are_trimmed_and_none_when_absent() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("temp"), " 45000\n").expect("write");
        let files = files_in(dir.path());
        let number = |t: &str| parse_number::<i64>(t, "temp");
        assert_eq!(
            files.attribute("temp", number).expect("reads"),
            Some(45_000)
        );
        assert_eq!(files.attribute("missing", number).expect("absent"), None);
        assert!(matches!(
            files.attribute("temp", |t| parse_number::<u8>(t, "temp")),
            Err(Error::Parse { .. })
        ));
        for name in ["cpu10", "cpu2", "cpufreq", "cpu", "cpu1x", "zone0"] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        assert_eq!(files.numbered(".", "cpu").expect("lists"), ["2", "10"]);
        assert!(files.is_dir("cpu2") && !files.is_dir("temp") && !files.is_dir("missing"));
        assert!(files.canonical("cpu2").is_some() && files.canonical("missing").is_none());
        assert!(files.numbered("missing", "cpu").expect("absent").is_empty());
    }

    #[test]
    fn entries_are_sorted_names_and_none_for_an_absent_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("class")).expect("mkdir");
        for name in ["eth1", "eth0", "lo"] {
            std::fs::create_dir(dir.path().join("class").join(name)).expect("mkdir");
        }
        let files = files_in(dir.path());
        assert_eq!(
            files.entries("class").expect("lists"),
            Some(vec!["eth0".to_owned(), "eth1".to_owned(), "lo".to_owned()])
        );
        assert_eq!(files.entries("missing").expect("absent"), None);
        std::fs::write(dir.path().join("file"), "x").expect("write");
        assert!(files.entries("file").is_err());
    }
}
