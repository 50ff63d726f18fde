//! `filesystem`: space and inode usage per mount, with node_exporter 1.5's names and labels
//! (`device`, `fstype`, `mountpoint`), and a bound on every `statvfs`.
//!
//! Mounts come from `<procfs>/1/mounts` (the host's view when warden runs in a container with
//! the host's procfs), falling back to `<procfs>/mounts`. Excluded mount points and filesystem
//! types are skipped; a mount listed twice with the same labels is reported once.
//!
//! # The mount table is read again only when it changed
//! A procfs mounts file tells `poll` of a change to its mount namespace (a mount, an unmount,
//! a remount) with `POLLPRI`, once per change and open file. So the file stays open, each
//! scrape polls it without waiting, and the table is read and parsed again only after a
//! change: the kernel writing out some 30 mounts and matching each against the exclusion
//! patterns were about 5 % of a scrape's CPU (BENCHMARKS.md). A mounts file that is not on
//! procfs (a fixture, another host's tree) cannot tell, so it is read at every scrape.
//!
//! # Hung mounts (node_exporter #244)
//! `statvfs` on a dead NFS or CIFS server can block for minutes. So those calls run on a helper
//! thread, started when a scrape has such mounts, that stats them in order and sends each
//! answer back; the collection waits at most [`FilesystemConfig::stat_timeout`] per mount. A mount that does not answer in time is marked stuck in a set the collector keeps
//! across scrapes and reported with `node_filesystem_device_error 1` and no size metrics; the
//! remaining mounts go to a fresh helper thread. Later scrapes skip stuck mounts (again
//! `device_error 1`) without touching them, until the hung thread's `statvfs` finally returns:
//! that thread then clears the mark and exits. The mark and the hand-over are done under the
//! set's lock, so an answer arriving just at the deadline is either used or clears the mark,
//! never lost with the mark left behind.
//!
//! Only filesystems that wait on a remote server or a FUSE daemon (`nfs`, `cifs`, `fuse.*`, …)
//! take that path; local ones are stat'ed directly, so a host without network mounts spawns no
//! thread per scrape. A local `statvfs` that hangs anyway is contained by the collector
//! framework's stall detection (see `collect::batch`).

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use regex::Regex;

use super::procfs::{on_procfs, read_all, read_error, text};
use crate::collect::family::intern;
use crate::collect::{BlockingCollector, Error, Family};
use crate::config::{FilesystemConfig, HostConfig};

/// What `statvfs` says about one filesystem, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Total size.
    pub size: f64,
    /// Free space, including the part reserved for root.
    pub free: f64,
    /// Space available to unprivileged users.
    pub avail: f64,
    /// Total inodes.
    pub files: f64,
    /// Free inodes.
    pub files_free: f64,
}

/// The function that stats one mount point; a seam so tests can make a mount hang.
pub type StatFn = Arc<dyn Fn(&Path) -> io::Result<Usage> + Send + Sync>;

/// `statvfs(2)` through rustix.
pub fn statvfs(path: &Path) -> io::Result<Usage> {
    let stat = rustix::fs::statvfs(path)?;
    let unit = stat.f_frsize as f64;
    Ok(Usage {
        size: stat.f_blocks as f64 * unit,
        free: stat.f_bfree as f64 * unit,
        avail: stat.f_bavail as f64 * unit,
        files: stat.f_files as f64,
        files_free: stat.f_ffree as f64,
    })
}

/// The `filesystem` collector.
pub struct Filesystem {
    timeout: Duration,
    state: Arc<State>,
}

struct State {
    mounts: PathBuf,
    mounts_fallback: PathBuf,
    mount_points_exclude: Option<Regex>,
    fs_types_exclude: Option<Regex>,
    stat_timeout: Duration,
    stat: StatFn,
    /// Mount points whose `statvfs` has not returned; shared with the helper threads.
    stuck: Arc<Mutex<HashSet<String>>>,
    table: Mutex<MountTable>,
}

/// The mounts to report, as last read, and the procfs file that says when they change.
#[derive(Default)]
struct MountTable {
    /// The mounts file, when it is on procfs.
    held: Option<File>,
    mounts: Arc<[Mount]>,
    bytes: Vec<u8>,
}

impl Filesystem {
    /// A collector for this configuration, using `statvfs(2)`.
    pub fn new(config: &HostConfig) -> Self {
        Self::with_stat(config, Arc::new(statvfs))
    }

    /// A collector that stats mounts with `stat` instead of `statvfs(2)`.
    pub fn with_stat(config: &HostConfig, stat: StatFn) -> Self {
        let FilesystemConfig {
            mount_points_exclude,
            fs_types_exclude,
            stat_timeout,
        } = &config.filesystem;
        // Mount points come from the host's procfs; under a container they are reached through
        // the host's root filesystem mounted at `rootfs`.
        let stat: StatFn = if config.rootfs == Path::new("/") {
            stat
        } else {
            let rootfs = config.rootfs.clone();
            Arc::new(move |point: &Path| {
                stat(&rootfs.join(point.strip_prefix("/").unwrap_or(point)))
            })
        };
        Filesystem {
            timeout: config.timeout,
            state: Arc::new(State {
                mounts: config.procfs.join("1/mounts"),
                mounts_fallback: config.procfs.join("mounts"),
                mount_points_exclude: mount_points_exclude.clone(),
                fs_types_exclude: fs_types_exclude.clone(),
                stat_timeout: *stat_timeout,
                stat,
                stuck: Arc::default(),
                table: Mutex::default(),
            }),
        }
    }
}

impl BlockingCollector for Filesystem {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        self.state.collect()
    }
}

/// One line of the mounts file, with the fields node_exporter labels by.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    device: String,
    mount_point: String,
    fs_type: String,
    read_only: bool,
}

/// What became of one mount's `statvfs`.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Usage(Usage),
    /// The call failed, did not answer in time, or the mount was already stuck.
    DeviceError,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl State {
    fn collect(&self) -> Result<Vec<Family>, Error> {
        let mounts = self.mounts()?;

        // Stuck mounts are reported without being touched. Local filesystems are stat'ed here;
        // those that can hang on a remote server go to the bounded helper thread.
        let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(mounts.len());
        let mut to_stat = Vec::new();
        let stuck = lock(&self.stuck).clone();
        for mount in mounts.iter() {
            if stuck.contains(&mount.mount_point) {
                tracing::debug!(
                    mountpoint = %mount.mount_point,
                    "Mount point is in an unresponsive state."
                );
                outcomes.push(Some(Outcome::DeviceError));
            } else if may_hang(&mount.fs_type) {
                outcomes.push(None);
                to_stat.push(mount.mount_point.clone());
            } else {
                outcomes.push(Some(stat_one(&*self.stat, &mount.mount_point)));
            }
        }
        let mut stated = if to_stat.is_empty() {
            Vec::new()
        } else {
            self.stat_all(to_stat)
        }
        .into_iter();
        let outcomes = outcomes
            .into_iter()
            .map(|o| o.or_else(|| stated.next()).unwrap_or(Outcome::DeviceError));
        Ok(families(mounts.iter().zip(outcomes)))
    }

    /// The mounts to report: those last read while the held file reports no change, read
    /// anew otherwise.
    fn mounts(&self) -> Result<Arc<[Mount]>, Error> {
        let mut table = lock(&self.table);
        let table = &mut *table;
        if let Some(file) = &table.held {
            match changed(file) {
                Ok(false) => return Ok(Arc::clone(&table.mounts)),
                Ok(true) => {
                    if read_all(&mut table.bytes, file, true).is_ok()
                        && let Ok(text) = text(&table.bytes)
                    {
                        table.mounts = self.select(text).into();
                        return Ok(Arc::clone(&table.mounts));
                    }
                }
                Err(_) => {}
            }
            // Gone bad (the namespace's last process exited): open the path again.
            table.held = None;
        }
        let (path, file) = match File::open(&self.mounts) {
            Ok(file) => (&self.mounts, file),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                let file = File::open(&self.mounts_fallback)
                    .map_err(|source| read_error(&self.mounts_fallback, source))?;
                (&self.mounts_fallback, file)
            }
            Err(source) => return Err(read_error(&self.mounts, source)),
        };
        read_all(&mut table.bytes, &file, false).map_err(|source| read_error(path, source))?;
        let text = text(&table.bytes).map_err(|source| read_error(path, source))?;
        table.mounts = self.select(text).into();
        // Held only once read: a change after the open is reported by the next poll.
        table.held = on_procfs(&file).then_some(file);
        Ok(Arc::clone(&table.mounts))
    }

    /// The mounts to report: parsed, filtered and without duplicate label sets.
    fn select(&self, text: &str) -> Vec<Mount> {
        let mut seen = HashSet::new();
        let mut mounts = Vec::new();
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(device), Some(mount_point), Some(fs_type), Some(options)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let mount_point = unescape(mount_point);
            if self
                .mount_points_exclude
                .as_ref()
                .is_some_and(|re| re.is_match(&mount_point))
                || self
                    .fs_types_exclude
                    .as_ref()
                    .is_some_and(|re| re.is_match(fs_type))
            {
                continue;
            }
            if !seen.insert((device, mount_point.clone(), fs_type)) {
                continue;
            }
            mounts.push(Mount {
                device: device.to_owned(),
                mount_point,
                fs_type: fs_type.to_owned(),
                read_only: options.split(',').any(|o| o == "ro"),
            });
        }
        mounts
    }

    /// Stats each mount point on helper threads, waiting at most `stat_timeout` for each.
    /// All of them together get at most `stat_timeout` per scrape: with several dead servers,
    /// each scrape finds at most one more stuck mount and reports the ones it had no time left
    /// for as device errors, so the collector stays well inside its own timeout.
    fn stat_all(&self, points: Vec<String>) -> Vec<Outcome> {
        let points: Arc<[String]> = points.into();
        let mut outcomes = Vec::with_capacity(points.len());
        let deadline = Instant::now() + self.stat_timeout;
        while outcomes.len() < points.len() {
            if Instant::now() >= deadline {
                tracing::debug!(
                    skipped = points.len() - outcomes.len(),
                    "No time left to stat the remaining network mounts this scrape."
                );
                outcomes.resize(points.len(), Outcome::DeviceError);
                break;
            }
            self.stat_round(&points, &mut outcomes, deadline);
        }
        outcomes
    }

    /// Starts a helper thread for `points[outcomes.len()..]` and collects its answers until
    /// it finishes or one mount times out (which is then marked stuck).
    fn stat_round(&self, points: &Arc<[String]>, outcomes: &mut Vec<Outcome>, deadline: Instant) {
        let start = outcomes.len();
        let (sender, receiver) = mpsc::channel();
        let worker = {
            let points = Arc::clone(points);
            let stat = Arc::clone(&self.stat);
            let stuck = Arc::clone(&self.stuck);
            move || stat_worker(&points, start, &*stat, &stuck, &sender)
        };
        if let Err(err) = std::thread::Builder::new()
            .name("warden-statvfs".to_owned())
            .spawn(worker)
        {
            tracing::warn!(error = %err, "Cannot start a statvfs thread.");
            outcomes.extend(points[start..].iter().map(|_| Outcome::DeviceError));
            return;
        }
        for point in &points[start..] {
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(outcome) => outcomes.push(outcome),
                Err(RecvTimeoutError::Timeout) => {
                    let mut stuck = lock(&self.stuck);
                    // The answer may have come in while the lock was taken.
                    if let Ok(outcome) = receiver.try_recv() {
                        outcomes.push(outcome);
                        continue;
                    }
                    stuck.insert(point.clone());
                    // Dropped under the lock: the worker sees either the mark or a closed
                    // channel, and clears the mark in both cases.
                    drop(receiver);
                    drop(stuck);
                    tracing::warn!(
                        mountpoint = %point,
                        timeout = ?self.stat_timeout,
                        "Mount point did not answer statvfs in time; skipping it until it does."
                    );
                    outcomes.push(Outcome::DeviceError);
                    return;
                }
                // The worker panicked (only a test seam could): count this mount as failed.
                Err(RecvTimeoutError::Disconnected) => {
                    outcomes.push(Outcome::DeviceError);
                    return;
                }
            }
        }
    }
}

/// The helper thread: stats `points[start..]` in order, sending each outcome; exits when the
/// collection stopped listening (it moved on after a timeout).
fn stat_worker(
    points: &[String],
    start: usize,
    stat: &(dyn Fn(&Path) -> io::Result<Usage> + Send + Sync),
    stuck: &Mutex<HashSet<String>>,
    sender: &mpsc::Sender<Outcome>,
) {
    for point in &points[start..] {
        let outcome = stat_one(stat, point);
        let mut stuck = lock(stuck);
        if stuck.remove(point) {
            tracing::info!(mountpoint = %point, "Mount point has recovered; monitoring resumes.");
        }
        if sender.send(outcome).is_err() {
            return;
        }
        drop(stuck);
    }
}

/// Filesystem types whose `statvfs` waits on a remote server (or a FUSE daemon) and can hang
/// for minutes; only these are stat'ed on the bounded helper thread. A local filesystem answers
/// from the kernel's superblock, and if even that hangs, the collector framework's own stall
/// detection contains it.
fn may_hang(fs_type: &str) -> bool {
    const REMOTE: &[&str] = &[
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "ceph",
        "glusterfs",
        "9p",
        "afs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse",
        "fuseblk",
        "ocfs2",
        "gfs2",
    ];
    REMOTE.contains(&fs_type) || fs_type.starts_with("fuse.")
}

/// Stats one mount point; an error is a device error, as node_exporter reports it.
fn stat_one(stat: &(dyn Fn(&Path) -> io::Result<Usage> + Send + Sync), point: &str) -> Outcome {
    match stat(Path::new(point)) {
        Ok(usage) => Outcome::Usage(usage),
        Err(err) => {
            tracing::debug!(mountpoint = %point, error = %err, "Error on statvfs.");
            Outcome::DeviceError
        }
    }
}

/// Whether the mount namespace of a procfs mounts file has changed since the last call (or the
/// open); does not wait.
fn changed(file: &File) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(file, PollFlags::PRI)];
    rustix::event::poll(&mut fds, Some(&Timespec::default()))?;
    let events = fds[0].revents();
    if events.contains(PollFlags::NVAL) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    Ok(events.intersects(PollFlags::PRI | PollFlags::ERR))
}

/// The mounts file escapes space, tab, newline and backslash as `\040`-style octal.
fn unescape(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_owned();
    }
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)) && d[0] <= b'3'
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The seven families, in node_exporter's label order `device, fstype, mountpoint`.
fn families<'a>(mounts: impl Iterator<Item = (&'a Mount, Outcome)>) -> Vec<Family> {
    let mut size = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut free = Family::gauge(
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    );
    let mut avail = Family::gauge(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut files = Family::gauge("node_filesystem_files", "Filesystem total file nodes.");
    let mut files_free = Family::gauge(
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    );
    let mut readonly = Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
    let mut device_error = Family::gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    for (mount, outcome) in mounts {
        let (device, fs_type, mount_point) = (
            intern(&mount.device),
            intern(&mount.fs_type),
            intern(&mount.mount_point),
        );
        let labels = || {
            [
                ("device", device.clone()),
                ("fstype", fs_type.clone()),
                ("mountpoint", mount_point.clone()),
            ]
        };
        // node_exporter 1.5 reports only device_error for a mount it could not stat.
        let Outcome::Usage(usage) = outcome else {
            device_error.push(labels(), 1.0);
            continue;
        };
        device_error.push(labels(), 0.0);
        size.push(labels(), usage.size);
        free.push(labels(), usage.free);
        avail.push(labels(), usage.avail);
        files.push(labels(), usage.files);
        files_free.push(labels(), usage.files_free);
        readonly.push(labels(), if mount.read_only { 1.0 } else { 0.0 });
    }
    vec![size, free, avail, files, files_free, readonly, device_error]
}

/// The fuzz driver's entry (`host::fuzzing`): mounts text through the default filters and into
/// the families (every mount as a device error, nothing is stat'ed).
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    static DEFAULT: std::sync::OnceLock<Filesystem> = std::sync::OnceLock::new();
    let filesystem =
        DEFAULT.get_or_init(|| Filesystem::new(&crate::config::Config::default().host));
    let mounts = filesystem.state.select(text);
    Ok(families(
        mounts.iter().map(|mount| (mount, Outcome::DeviceError)),
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Instant;

    use super::*;

    const MOUNTS: &str = "\
/dev/vda / ext4 rw,relatime,discard 0 0
proc /proc proc rw,relatime 0 0
nfs:/export /mnt/nfs nfs4 rw,vers=4.2 0 0
/dev/vdb /data xfs ro,noatime 0 0
/dev/vdb /data xfs ro,noatime 0 0
/dev/vdc /srv/my\\040files ext4 rw 0 0
tmpfs /dev/shm tmpfs rw,nosuid 0 0
";

    fn config(procfs: &Path, stat_timeout: Duration) -> HostConfig {
        HostConfig {
            enabled: true,
            timeout: Duration::from_secs(10),
            procfs: procfs.to_owned(),
            sysfs: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
            filesystem: FilesystemConfig {
                mount_points_exclude: Some(
                    Regex::new(crate::config::DEFAULT_MOUNT_POINTS_EXCLUDE).expect("valid regex"),
                ),
                fs_types_exclude: Some(
                    Regex::new(crate::config::DEFAULT_FS_TYPES_EXCLUDE).expect("valid regex"),
                ),
                stat_timeout,
            },
            disk_device_exclude: None,
            network_device_exclude: None,
            textfile_directory: None,
            collectors: Default::default(),
        }
    }

    fn procfs_with(mounts: &str, at: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(at);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, mounts).expect("write");
        dir
    }

    fn usage(size: f64) -> Usage {
        Usage {
            size,
            free: size / 2.0,
            avail: size / 4.0,
            files: 100.0,
            files_free: 60.0,
        }
    }

    /// `{family name: {mountpoint: value}}`, checking the label names on the way.
    fn by_mount(families: &[Family]) -> HashMap<String, HashMap<String, f64>> {
        let mut out = HashMap::new();
        for family in families {
            let mut values = HashMap::new();
            for sample in &family.samples {
                let names: Vec<&str> = sample.labels.iter().map(|(n, _)| n.as_ref()).collect();
                assert_eq!(names, ["device", "fstype", "mountpoint"]);
                values.insert(sample.labels[2].1.to_string(), sample.value);
            }
            out.insert(family.name.to_string(), values);
        }
        out
    }

    /// A stat function answering from a table; `/mnt/nfs` waits for `release` first.
    fn hanging_nfs(release: mpsc::Receiver<()>) -> StatFn {
        let release = Mutex::new(release);
        Arc::new(move |path: &Path| match path.to_str() {
            Some("/mnt/nfs") => {
                let _ = lock(&release).recv();
                Ok(usage(1000.0))
            }
            Some("/") => Ok(usage(8000.0)),
            Some("/data") => Ok(usage(2000.0)),
            Some("/srv/my files") => Err(io::Error::from(io::ErrorKind::PermissionDenied)),
            other => panic!("unexpected stat of {other:?}"),
        })
    }

    #[test]
    fn mounts_are_parsed_filtered_and_deduplicated() {
        let dir = procfs_with(MOUNTS, "1/mounts");
        let fs = Filesystem::new(&config(dir.path(), Duration::from_secs(1)));
        let mounts = fs.state.select(MOUNTS);
        let got: Vec<(&str, &str, &str, bool)> = mounts
            .iter()
            .map(|m| {
                (
                    m.device.as_str(),
                    m.mount_point.as_str(),
                    m.fs_type.as_str(),
                    m.read_only,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/dev/vda", "/", "ext4", false),
                ("nfs:/export", "/mnt/nfs", "nfs4", false),
                ("/dev/vdb", "/data", "xfs", true),
                ("/dev/vdc", "/srv/my files", "ext4", false),
            ]
        );
    }

    #[test]
    fn the_captured_mounts_keep_only_real_filesystems() {
        let dir = procfs_with("", "1/mounts");
        let fs = Filesystem::new(&config(dir.path(), Duration::from_secs(1)));
        let mounts = fs.state.select(include_str!("fixtures/proc/1/mounts"));
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        // /dev, /proc and /sys mounts and cgroup/proc/devpts types are excluded by default.
        assert_eq!(points, ["/", "/mnt/sandboxing/model_tools_env/v1/python"]);
        assert!(mounts[1].read_only);
    }

    /// The `readonly` value of each mount point in a collection.
    fn read_only(fs: &Filesystem) -> HashMap<String, f64> {
        by_mount(&fs.collect().expect("collect"))
            .remove("node_filesystem_readonly")
            .expect("the readonly family")
    }

    #[test]
    fn a_mounts_file_off_procfs_is_read_at_every_scrape() {
        let dir = procfs_with("/dev/vda / ext4 rw 0 0\n", "1/mounts");
        let fs = Filesystem::with_stat(
            &config(dir.path(), Duration::from_secs(1)),
            Arc::new(|_: &Path| Ok(usage(1.0))),
        );
        assert_eq!(read_only(&fs), HashMap::from([("/".to_owned(), 0.0)]));
        // A fixture cannot signal a change: the new text must be read all the same.
        std::fs::write(
            dir.path().join("1/mounts"),
            "/dev/vda / ext4 ro 0 0\n/dev/vdb /data xfs rw 0 0\n",
        )
        .expect("rewrite");
        assert_eq!(
            read_only(&fs),
            HashMap::from([("/".to_owned(), 1.0), ("/data".to_owned(), 0.0)])
        );
        assert!(lock(&fs.state.table).held.is_none());
    }

    /// A process in a user and mount namespace of its own (`unshare -Urm`), so a test can mount
    /// and unmount without touching the host's mount table. Killed on drop.
    struct Namespace(std::process::Child);

    impl Namespace {
        fn new() -> Self {
            let child = std::process::Command::new("unshare")
                .args(["-Urm", "--propagation", "private", "sleep", "600"])
                .spawn()
                .expect("unshare (util-linux) runs");
            let ns = Namespace(child);
            let ours = std::fs::read_link("/proc/self/ns/mnt").expect("our mount namespace");
            let theirs = format!("/proc/{}/ns/mnt", ns.0.id());
            for _ in 0..500 {
                if std::fs::read_link(&theirs).is_ok_and(|link| link != ours) {
                    return ns;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("`unshare -Urm` did not enter a mount namespace of its own within 5 s");
        }

        /// Runs `args` inside the namespace.
        fn run(&self, args: &[&str]) {
            let status = std::process::Command::new("nsenter")
                .args([
                    "-t",
                    &self.0.id().to_string(),
                    "-U",
                    "-m",
                    "--preserve-credentials",
                ])
                .args(args)
                .status()
                .expect("nsenter (util-linux) runs");
            assert!(status.success(), "{args:?} in the namespace: {status}");
        }
    }

    impl Drop for Namespace {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn the_procfs_mount_table_is_read_again_only_after_a_change() {
        let ns = Namespace::new();
        let procfs = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(format!("/proc/{}", ns.0.id()), procfs.path().join("1"))
            .expect("symlink");
        let point = tempfile::tempdir().expect("mount point");
        let point = point.path().to_str().expect("UTF-8 path").to_owned();
        let fs = Filesystem::with_stat(
            &config(procfs.path(), Duration::from_secs(1)),
            Arc::new(|_: &Path| Ok(usage(1.0))),
        );

        let first = fs.state.mounts().expect("mounts");
        assert!(
            lock(&fs.state.table).held.is_some(),
            "the procfs file is held"
        );
        let unchanged = fs.state.mounts().expect("mounts");
        assert!(Arc::ptr_eq(&first, &unchanged), "no change: not read again");
        assert!(!read_only(&fs).contains_key(&point));

        ns.run(&["mount", "-t", "tmpfs", "warden-test", &point]);
        assert_eq!(
            read_only(&fs).get(&point),
            Some(&0.0),
            "a new mount is seen"
        );
        ns.run(&["mount", "-o", "remount,ro", &point]);
        assert_eq!(read_only(&fs).get(&point), Some(&1.0), "a remount is seen");
        ns.run(&["umount", &point]);
        assert!(!read_only(&fs).contains_key(&point), "an unmount is seen");
        let after = fs.state.mounts().expect("mounts");
        assert!(
            Arc::ptr_eq(&after, &fs.state.mounts().expect("mounts")),
            "no change since: not read again"
        );
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape("/a\\040b\\011c\\134d\\012"), "/a b\tc\\d\n");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/odd\\9x\\04"), "/odd\\9x\\04");
    }

    #[tokio::test]
    async fn reports_real_statvfs_for_root() {
        let dir = procfs_with("/dev/root / ext4 rw 0 0\n", "mounts");
        // Only <procfs>/mounts exists: the fallback is used.
        let fs = Filesystem::new(&config(dir.path(), Duration::from_secs(5)));
        let families = fs.collect().expect("collects");
        let values = by_mount(&families);
        assert!(values["node_filesystem_size_bytes"]["/"] > 0.0);
        assert!(values["node_filesystem_files"]["/"] > 0.0);
        assert_eq!(values["node_filesystem_device_error"]["/"], 0.0);
        assert_eq!(values["node_filesystem_readonly"]["/"], 0.0);
        let expected = rustix::fs::statvfs("/").expect("statvfs /");
        assert_eq!(
            values["node_filesystem_size_bytes"]["/"],
            expected.f_blocks as f64 * expected.f_frsize as f64
        );
    }

    #[tokio::test]
    async fn a_hung_mount_is_bounded_marked_and_skipped_until_it_returns() {
        let dir = procfs_with(MOUNTS, "1/mounts");
        let (release, release_rx) = mpsc::channel();
        let stat_timeout = Duration::from_millis(200);
        let fs = Filesystem::with_stat(&config(dir.path(), stat_timeout), hanging_nfs(release_rx));

        // First scrape: /mnt/nfs hangs; the scrape returns after about one stat_timeout.
        let started = Instant::now();
        let families = fs.collect().expect("collects");
        let elapsed = started.elapsed();
        assert!(elapsed >= stat_timeout, "{elapsed:?}");
        assert!(elapsed < stat_timeout * 5, "{elapsed:?}");
        let values = by_mount(&families);
        let errors = &values["node_filesystem_device_error"];
        assert_eq!(errors["/"], 0.0);
        assert_eq!(errors["/mnt/nfs"], 1.0);
        assert_eq!(errors["/data"], 0.0);
        assert_eq!(
            errors["/srv/my files"], 1.0,
            "a failing statvfs is a device error"
        );
        let sizes = &values["node_filesystem_size_bytes"];
        assert_eq!(
            sizes.len(),
            2,
            "no size for the stuck or failed mounts: {sizes:?}"
        );
        assert_eq!(sizes["/"], 8000.0);
        assert_eq!(
            sizes["/data"], 2000.0,
            "mounts after the stuck one are still stat'ed"
        );
        assert_eq!(values["node_filesystem_avail_bytes"]["/data"], 500.0);
        assert_eq!(values["node_filesystem_readonly"]["/data"], 1.0);
        assert!(lock(&fs.state.stuck).contains("/mnt/nfs"));

        // Second scrape: the stuck mount is skipped without waiting for it.
        let started = Instant::now();
        let families = fs.collect().expect("collects");
        assert!(started.elapsed() < stat_timeout, "{:?}", started.elapsed());
        let values = by_mount(&families);
        assert_eq!(values["node_filesystem_device_error"]["/mnt/nfs"], 1.0);
        assert!(!values["node_filesystem_size_bytes"].contains_key("/mnt/nfs"));
        assert_eq!(values["node_filesystem_size_bytes"]["/"], 8000.0);

        // The hung call returns: its thread clears the mark, and the mount is back.
        release.send(()).expect("the hung stat is waiting");
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&fs.state.stuck).contains("/mnt/nfs") {
            assert!(Instant::now() < deadline, "the mark was never cleared");
            std::thread::sleep(Duration::from_millis(5));
        }
        release.send(()).expect("stat may be called again");
        let families = fs.collect().expect("collects");
        let values = by_mount(&families);
        assert_eq!(values["node_filesystem_device_error"]["/mnt/nfs"], 0.0);
        assert_eq!(values["node_filesystem_size_bytes"]["/mnt/nfs"], 1000.0);
    }

    #[test]
    fn only_remote_filesystems_go_to_the_helper_thread() {
        let dir = procfs_with(MOUNTS, "1/mounts");
        let threads = Arc::new(Mutex::new(HashMap::new()));
        let seen = Arc::clone(&threads);
        let stat: StatFn = Arc::new(move |path: &Path| {
            lock(&seen).insert(path.to_owned(), std::thread::current().id());
            Ok(usage(1.0))
        });
        let fs = Filesystem::with_stat(&config(dir.path(), Duration::from_secs(5)), stat);
        let families = fs.collect().expect("collects");
        assert_eq!(families[0].samples.len(), 4);
        let threads = lock(&threads);
        let here = std::thread::current().id();
        assert_eq!(threads[Path::new("/")], here);
        assert_eq!(threads[Path::new("/data")], here);
        assert_ne!(
            threads[Path::new("/mnt/nfs")],
            here,
            "nfs4 is stat'ed on the helper"
        );
    }

    #[test]
    fn remote_and_fuse_types_may_hang() {
        for fs_type in ["nfs", "nfs4", "cifs", "fuse.sshfs", "ceph"] {
            assert!(may_hang(fs_type), "{fs_type}");
        }
        for fs_type in ["ext4", "xfs", "btrfs", "tmpfs", "vfat"] {
            assert!(!may_hang(fs_type), "{fs_type}");
        }
    }

    #[tokio::test]
    async fn missing_mount_files_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = Filesystem::new(&config(dir.path(), Duration::from_secs(1)));
        assert!(matches!(fs.collect(), Err(Error::Read { .. })));
    }
}
