//! warden's own process metrics, with the names every Prometheus client library uses:
//! `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_start_time_seconds`, `process_open_fds`, `process_max_fds` and
//! `process_virtual_memory_max_bytes`.
//!
//! On Linux a scrape reads /proc/self/stat through a descriptor kept open (procfs builds the
//! text anew on each read from offset 0) and makes one `statx` of /proc/self/fd, whose size is
//! the number of open descriptors since Linux 6.2 (listing it, as before 6.2, costs a pass
//! over every descriptor).

use std::sync::OnceLock;
use std::time::Duration;

use super::{BlockingCollector, Error, Family};

/// Reads `/proc/self` (Linux) or asks sysinfo (elsewhere) for warden's own usage.
#[derive(Debug)]
pub struct ProcessCollector {
    timeout: Duration,
    /// The boot time from `/proc/stat`, read once: the start time never changes.
    boot_time: OnceLock<f64>,
    /// `/proc/self/stat`, kept open between scrapes and read again from offset 0.
    #[cfg(target_os = "linux")]
    self_stat: super::host::ReadBuffer,
}

impl ProcessCollector {
    /// A process collector that gives up after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        ProcessCollector {
            timeout,
            boot_time: OnceLock::new(),
            #[cfg(target_os = "linux")]
            self_stat: super::host::ReadBuffer::default(),
        }
    }
}

impl BlockingCollector for ProcessCollector {
    fn name(&self) -> &str {
        "process"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        read(self)
    }
}

/// The values behind the families.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    /// The address-space limit; unlimited is `u64::MAX`, as Go's client reports it.
    virtual_max_bytes: Option<f64>,
}

fn families(usage: Usage) -> Vec<Family> {
    let mut out = vec![
        Family::counter(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ),
        Family::single_gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            usage.resident_bytes,
        ),
        Family::single_gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            usage.virtual_bytes,
        ),
        Family::single_gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            usage.start_time_seconds,
        ),
    ];
    out[0].push_unlabelled(usage.cpu_seconds);
    if let Some(open) = usage.open_fds {
        out.push(Family::single_gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            open,
        ));
    }
    if let Some(max) = usage.max_fds {
        out.push(Family::single_gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max,
        ));
    }
    if let Some(max) = usage.virtual_max_bytes {
        out.push(Family::single_gauge(
            "process_virtual_memory_max_bytes",
            "Maximum amount of virtual memory available in bytes.",
            max,
        ));
    }
    out
}

#[cfg(target_os = "linux")]
fn read(collector: &ProcessCollector) -> Result<Vec<Family>, Error> {
    let fields = collector
        .self_stat
        .with_file(std::path::Path::new("/proc/self/stat"), parse_self_stat)?;
    let boot_time = match collector.boot_time.get() {
        Some(known) => *known,
        None => {
            let read = boot_time_from_stat(&read_file("/proc/stat")?)?;
            *collector.boot_time.get_or_init(|| read)
        }
    };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page_size = rustix::param::page_size() as f64;
    let open_fds = open_fds()?;
    let max_fds = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let virtual_max = rustix::process::getrlimit(rustix::process::Resource::As)
        .current
        .unwrap_or(u64::MAX);
    Ok(families(Usage {
        cpu_seconds: (fields.utime + fields.stime) as f64 / ticks,
        resident_bytes: fields.rss_pages as f64 * page_size,
        virtual_bytes: fields.vsize as f64,
        start_time_seconds: boot_time + fields.starttime as f64 / ticks,
        open_fds: Some(open_fds as f64),
        max_fds: max_fds.map(|m| m as f64),
        virtual_max_bytes: Some(virtual_max as f64),
    }))
}

#[cfg(not(target_os = "linux"))]
fn read(_collector: &ProcessCollector) -> Result<Vec<Family>, Error> {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = sysinfo::get_current_pid().map_err(|reason| Error::Parse {
        path: "current process".to_owned(),
        reason: reason.to_owned(),
    })?;
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_cpu().with_memory(),
    );
    let process = system.process(pid).ok_or_else(|| Error::Parse {
        path: "current process".to_owned(),
        reason: "not found".to_owned(),
    })?;
    Ok(families(Usage {
        cpu_seconds: process.accumulated_cpu_time() as f64 / 1000.0,
        resident_bytes: process.memory() as f64,
        virtual_bytes: process.virtual_memory() as f64,
        start_time_seconds: process.start_time() as f64,
        open_fds: None,
        max_fds: None,
        virtual_max_bytes: None,
    }))
}

/// This process's descriptor table, listed by procfs.
#[cfg(target_os = "linux")]
const FD_DIR: &str = "/proc/self/fd";

/// The number of descriptors this process has open: since Linux 6.2 the size procfs gives
/// /proc/self/fd (`proc_fd_getattr`: the bits set in the table's `open_fds`), one `statx`;
/// on older kernels, where that size is 0, its entries counted.
///
/// # Errors
/// The `statx`'s or the listing's.
#[cfg(target_os = "linux")]
fn open_fds() -> Result<u64, Error> {
    let stat = rustix::fs::stat(FD_DIR).map_err(|errno| Error::Read {
        path: FD_DIR.to_owned(),
        source: errno.into(),
    })?;
    match u64::try_from(stat.st_size) {
        Ok(size) if size > 0 => Ok(size),
        _ => listed_fds(),
    }
}

/// The entries of /proc/self/fd, less the descriptor the listing itself has open meanwhile.
#[cfg(target_os = "linux")]
fn listed_fds() -> Result<u64, Error> {
    let entries = std::fs::read_dir(FD_DIR)
        .map_err(|source| Error::Read {
            path: FD_DIR.to_owned(),
            source,
        })?
        .count();
    Ok(entries.saturating_sub(1) as u64)
}

#[cfg(target_os = "linux")]
fn read_file(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// The fields of `/proc/self/stat` this collector uses.
#[derive(Debug, PartialEq, Eq)]
struct SelfStat {
    utime: u64,
    stime: u64,
    starttime: u64,
    vsize: u64,
    rss_pages: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) may contain spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_self_stat(text: &str) -> Result<SelfStat, Error> {
    let bad = |reason: &str| Error::Parse {
        path: "/proc/self/stat".to_owned(),
        reason: reason.to_owned(),
    };
    let after = text
        .rfind(')')
        .map(|at| &text[at + 1..])
        .ok_or_else(|| bad("no command name"))?;
    // After the command: field 3 (state) is index 0, so field N is index N - 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> Result<u64, Error> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad("missing or non-numeric field"))
    };
    Ok(SelfStat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss_pages: field(24)?,
    })
}

/// The `btime` line of `/proc/stat`.
fn boot_time_from_stat(text: &str) -> Result<f64, Error> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Parse {
            path: "/proc/stat".to_owned(),
            reason: "no btime line".to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let line = "4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 4 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stat = parse_self_stat(line).unwrap();
        assert_eq!(
            stat,
            SelfStat {
                utime: 250,
                stime: 75,
                starttime: 12345,
                vsize: 104857600,
                rss_pages: 2560
            }
        );
    }

    #[test]
    fn truncated_stat_is_a_parse_error() {
        assert!(matches!(
            parse_self_stat("1 (x) S 1 2 3"),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn boot_time_comes_from_btime() {
        let text = "cpu  1 2 3 4\nbtime 1700000000\nprocesses 5\n";
        assert_eq!(boot_time_from_stat(text).unwrap(), 1_700_000_000.0);
        assert!(boot_time_from_stat("cpu 1\n").is_err());
    }

    /// The size of /proc/self/fd counts what its listing lists, read just before and after
    /// (again until those two agree); on this kernel (6.2 or later) that size is not 0, so the
    /// listing is not what `open_fds` fell back to.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_fd_directory_size_counts_the_listed_descriptors() {
        let release = rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned();
        let mut numbers = release.split(|c: char| !c.is_ascii_digit());
        let version: (u32, u32) = (
            numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0),
            numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0),
        );
        if version >= (6, 2) {
            let size = rustix::fs::stat(FD_DIR).expect("statx").st_size;
            assert!(size > 0, "kernel {release}: /proc/self/fd has size {size}");
        }
        // More descriptors than the standard three, so a count of 0 or a constant fails.
        let extra: Vec<std::fs::File> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/stat").expect("open"))
            .collect();
        for _ in 0..20 {
            let before = listed_fds().expect("lists");
            let counted = open_fds().expect("counts");
            let after = listed_fds().expect("lists");
            if before == after {
                assert_eq!(counted, before);
                assert!(counted >= 3 + extra.len() as u64, "{counted}");
                return;
            }
        }
        panic!("descriptors opened or closed between every two listings");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_this_process() {
        let collector = ProcessCollector::new(Duration::from_secs(5));
        let resident = |families: &[Family]| {
            families
                .iter()
                .find(|f| f.name == "process_resident_memory_bytes")
                .map(|f| f.samples[0].value)
                .unwrap()
        };
        let before = resident(&read(&collector).unwrap());
        // 64 MiB written, so resident: the held /proc/self/stat, read again, shows them.
        let touched = std::hint::black_box(vec![1_u8; 64 << 20]);
        let families = read(&collector).unwrap();
        assert!(
            resident(&families) >= before + f64::from(48 << 20),
            "{before} then {}",
            resident(&families)
        );
        drop(touched);
        let value = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.samples[0].value)
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        // No address-space limit is set for tests: unlimited reads as u64::MAX, as in Go.
        let limit = rustix::process::getrlimit(rustix::process::Resource::As).current;
        assert_eq!(
            value("process_virtual_memory_max_bytes"),
            limit.unwrap_or(u64::MAX) as f64
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(
            start <= now + 1.0 && start > now - 3600.0,
            "start {start}, now {now}"
        );
    }
}
