//! Host metrics from `sysinfo`, for systems without procfs.
//!
//! Only what sysinfo offers, under node_exporter's names: load averages, memory
//! (`MemTotal`, `MemFree`, `MemAvailable`, `SwapTotal`, `SwapFree`), filesystem size and
//! available space, network bytes/packets/errors, boot time, uname facts, and the time.
//! sysinfo has no cumulative CPU times, so there is no `cpu` collector here. The mapping from
//! sysinfo's values to families is pure and tested on every platform; gathering runs in the
//! blocking pool. On Linux this module is compiled and tested but not used.

use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::time::Time;
use super::uname::{self, Fields};
use crate::collect::{BlockingCollector, Error, Family};
use crate::config::HostConfig;

/// Memory figures in bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Memory {
    pub(super) total: u64,
    pub(super) free: u64,
    pub(super) available: u64,
    pub(super) swap_total: u64,
    pub(super) swap_free: u64,
}

/// One mounted filesystem.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Disk {
    pub(super) device: String,
    pub(super) fs_type: String,
    pub(super) mount_point: String,
    pub(super) size: u64,
    pub(super) avail: u64,
    pub(super) read_only: bool,
}

/// One network interface's totals.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Interface {
    pub(super) device: String,
    pub(super) receive_bytes: u64,
    pub(super) receive_packets: u64,
    pub(super) receive_errs: u64,
    pub(super) transmit_bytes: u64,
    pub(super) transmit_packets: u64,
    pub(super) transmit_errs: u64,
}

/// What a portable collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Loadavg,
    Meminfo,
    Filesystem,
    Netdev,
    Stat,
    Uname,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Loadavg => "loadavg",
            Source::Meminfo => "meminfo",
            Source::Filesystem => "filesystem",
            Source::Netdev => "netdev",
            Source::Stat => "stat",
            Source::Uname => "uname",
        }
    }
}

/// The filters a collection applies.
#[derive(Debug, Default)]
struct Filters {
    mount_points_exclude: Option<Regex>,
    fs_types_exclude: Option<Regex>,
    network_device_exclude: Option<Regex>,
}

/// A collector backed by sysinfo.
struct SysinfoCollector {
    source: Source,
    timeout: Duration,
    filters: Arc<Filters>,
}

/// The portable host collectors.
pub(super) fn collectors(config: &HostConfig) -> Vec<Arc<dyn BlockingCollector>> {
    let filters = Arc::new(Filters {
        mount_points_exclude: config.filesystem.mount_points_exclude.clone(),
        fs_types_exclude: config.filesystem.fs_types_exclude.clone(),
        network_device_exclude: config.network_device_exclude.clone(),
    });
    let mut list: Vec<Arc<dyn BlockingCollector>> = [
        Source::Meminfo,
        Source::Filesystem,
        Source::Netdev,
        Source::Loadavg,
        Source::Stat,
        Source::Uname,
    ]
    .into_iter()
    .map(|source| {
        Arc::new(SysinfoCollector {
            source,
            timeout: config.timeout,
            filters: Arc::clone(&filters),
        }) as Arc<dyn BlockingCollector>
    })
    .collect();
    list.push(Arc::new(Time::new(config.timeout)));
    list
}

impl BlockingCollector for SysinfoCollector {
    fn name(&self) -> &str {
        self.source.name()
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        gather(self.source, &self.filters)
    }
}

/// A sysinfo failure as a collector error, keeping the cause.
fn sysinfo_error(what: &str, err: sysinfo::Error) -> Error {
    Error::Read {
        path: format!("sysinfo {what}"),
        source: std::io::Error::other(err),
    }
}

/// Reads the source through sysinfo and maps it.
fn gather(source: Source, filters: &Filters) -> Result<Vec<Family>, Error> {
    use sysinfo::{Disks, Networks, System};

    match source {
        Source::Loadavg => {
            let load = System::load_average().map_err(|e| sysinfo_error("load average", e))?;
            Ok(loadavg(load.one, load.five, load.fifteen))
        }
        Source::Meminfo => {
            let mut system = System::new().map_err(|e| sysinfo_error("memory", e))?;
            system.refresh_memory();
            Ok(meminfo(&Memory {
                total: system.total_memory(),
                free: system.free_memory(),
                available: system.available_memory(),
                swap_total: system.total_swap(),
                swap_free: system.free_swap(),
            }))
        }
        Source::Filesystem => {
            let disks = Disks::new_with_refreshed_list().map_err(|e| sysinfo_error("disks", e))?;
            let disks: Vec<Disk> = disks
                .iter()
                .map(|disk| Disk {
                    device: disk.name().to_string_lossy().into_owned(),
                    fs_type: disk.file_system().to_string_lossy().into_owned(),
                    mount_point: disk.mount_point().to_string_lossy().into_owned(),
                    size: disk.total_space(),
                    avail: disk.available_space(),
                    read_only: disk.is_read_only(),
                })
                .collect();
            Ok(filesystems(&disks, filters))
        }
        Source::Netdev => {
            let networks =
                Networks::new_with_refreshed_list().map_err(|e| sysinfo_error("networks", e))?;
            let interfaces: Vec<Interface> = networks
                .iter()
                .map(|(name, data)| Interface {
                    device: name.to_string_lossy().into_owned(),
                    receive_bytes: data.total_received(),
                    receive_packets: data.total_packets_received(),
                    receive_errs: data.total_errors_on_received(),
                    transmit_bytes: data.total_transmitted(),
                    transmit_packets: data.total_packets_transmitted(),
                    transmit_errs: data.total_errors_on_transmitted(),
                })
                .collect();
            Ok(netdev(&interfaces, filters.network_device_exclude.as_ref()))
        }
        Source::Stat => {
            let boot = System::boot_time().map_err(|e| sysinfo_error("boot time", e))?;
            Ok(vec![boot_time(boot)])
        }
        Source::Uname => Ok(vec![uname::info(&Fields {
            domainname: "(none)".to_owned(),
            machine: System::cpu_arch(),
            nodename: System::host_name().unwrap_or_default(),
            release: System::kernel_version().unwrap_or_default(),
            sysname: System::name().unwrap_or_default(),
            version: System::kernel_long_version().unwrap_or_default(),
        })]),
    }
}

/// `node_load1`, `node_load5`, `node_load15`.
fn loadavg(one: f64, five: f64, fifteen: f64) -> Vec<Family> {
    vec![
        Family::single_gauge("node_load1", "1m load average.", one),
        Family::single_gauge("node_load5", "5m load average.", five),
        Family::single_gauge("node_load15", "15m load average.", fifteen),
    ]
}

/// The meminfo fields sysinfo has, as node_exporter names them on Linux.
fn meminfo(memory: &Memory) -> Vec<Family> {
    [
        ("MemTotal_bytes", memory.total),
        ("MemFree_bytes", memory.free),
        ("MemAvailable_bytes", memory.available),
        ("SwapTotal_bytes", memory.swap_total),
        ("SwapFree_bytes", memory.swap_free),
    ]
    .into_iter()
    .map(|(field, value)| {
        Family::single_gauge(
            format!("node_memory_{field}"),
            format!("Memory information field {field}."),
            value as f64,
        )
    })
    .collect()
}

/// Size, available space and read-only state per filesystem, filtered as on Linux.
fn filesystems(disks: &[Disk], filters: &Filters) -> Vec<Family> {
    let mut size = Family::gauge("node_filesystem_size_bytes", "Filesystem size in bytes.");
    let mut avail = Family::gauge(
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    );
    let mut readonly = Family::gauge("node_filesystem_readonly", "Filesystem read-only status.");
    let mut device_error = Family::gauge(
        "node_filesystem_device_error",
        "Whether an error occurred while getting statistics for the given device.",
    );
    for disk in disks {
        let excluded =
            |re: &Option<Regex>, value: &str| re.as_ref().is_some_and(|re| re.is_match(value));
        if excluded(&filters.mount_points_exclude, &disk.mount_point)
            || excluded(&filters.fs_types_exclude, &disk.fs_type)
        {
            continue;
        }
        let labels = || {
            [
                ("device", disk.device.clone()),
                ("fstype", disk.fs_type.clone()),
                ("mountpoint", disk.mount_point.clone()),
            ]
        };
        size.push(labels(), disk.size as f64);
        avail.push(labels(), disk.avail as f64);
        readonly.push(labels(), if disk.read_only { 1.0 } else { 0.0 });
        device_error.push(labels(), 0.0);
    }
    vec![size, avail, readonly, device_error]
}

/// The network counters sysinfo has, named as node_exporter's netdev.
fn netdev(interfaces: &[Interface], exclude: Option<&Regex>) -> Vec<Family> {
    type Get = fn(&Interface) -> u64;
    let columns: [(&'static str, &'static str, Get); 6] = [
        (
            "node_network_receive_bytes_total",
            "Network device statistic receive_bytes.",
            |i| i.receive_bytes,
        ),
        (
            "node_network_receive_packets_total",
            "Network device statistic receive_packets.",
            |i| i.receive_packets,
        ),
        (
            "node_network_receive_errs_total",
            "Network device statistic receive_errs.",
            |i| i.receive_errs,
        ),
        (
            "node_network_transmit_bytes_total",
            "Network device statistic transmit_bytes.",
            |i| i.transmit_bytes,
        ),
        (
            "node_network_transmit_packets_total",
            "Network device statistic transmit_packets.",
            |i| i.transmit_packets,
        ),
        (
            "node_network_transmit_errs_total",
            "Network device statistic transmit_errs.",
            |i| i.transmit_errs,
        ),
    ];
    let mut interfaces: Vec<&Interface> = interfaces
        .iter()
        .filter(|i| !exclude.is_some_and(|re| re.is_match(&i.device)))
        .collect();
    interfaces.sort_by(|a, b| a.device.cmp(&b.device));
    columns
        .iter()
        .map(|(name, help, get)| {
            let mut family = Family::counter(*name, *help);
            for interface in &interfaces {
                family.push(
                    [("device", interface.device.clone())],
                    get(interface) as f64,
                );
            }
            family
        })
        .collect()
}

/// `node_boot_time_seconds`.
fn boot_time(seconds: u64) -> Family {
    Family::single_gauge(
        "node_boot_time_seconds",
        "Node boot time, in unixtime.",
        seconds as f64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Kind;

    fn values(families: &[Family]) -> Vec<(String, Vec<String>, f64)> {
        families
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(|s| {
                    (
                        f.name.to_string(),
                        s.labels.iter().map(|(_, v)| v.to_string()).collect(),
                        s.value,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn memory_uses_linux_names() {
        let families = meminfo(&Memory {
            total: 8192,
            free: 1024,
            available: 4096,
            swap_total: 0,
            swap_free: 0,
        });
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_memory_MemTotal_bytes",
                "node_memory_MemFree_bytes",
                "node_memory_MemAvailable_bytes",
                "node_memory_SwapTotal_bytes",
                "node_memory_SwapFree_bytes"
            ]
        );
        assert_eq!(families[2].samples[0].value, 4096.0);
        assert_eq!(families[0].help, "Memory information field MemTotal_bytes.");
    }

    #[test]
    fn filesystems_are_filtered_and_labelled() {
        let disk = |mount: &str, fs: &str| Disk {
            device: "/dev/disk1s1".to_owned(),
            fs_type: fs.to_owned(),
            mount_point: mount.to_owned(),
            size: 1000,
            avail: 250,
            read_only: mount == "/",
        };
        let filters = Filters {
            mount_points_exclude: Some(Regex::new("^/dev($|/)").expect("valid regex")),
            fs_types_exclude: Some(Regex::new("^devfs$").expect("valid regex")),
            network_device_exclude: None,
        };
        let families = filesystems(
            &[
                disk("/", "apfs"),
                disk("/dev", "devfs"),
                disk("/Volumes/x", "apfs"),
            ],
            &filters,
        );
        let got = values(&families);
        assert_eq!(got.len(), 8);
        assert!(got.contains(&(
            "node_filesystem_size_bytes".to_owned(),
            vec!["/dev/disk1s1".to_owned(), "apfs".to_owned(), "/".to_owned()],
            1000.0
        )));
        assert!(got.contains(&(
            "node_filesystem_readonly".to_owned(),
            vec!["/dev/disk1s1".to_owned(), "apfs".to_owned(), "/".to_owned()],
            1.0
        )));
        let names: Vec<&str> = families[0].samples[0]
            .labels
            .iter()
            .map(|(n, _)| n.as_ref())
            .collect();
        assert_eq!(names, ["device", "fstype", "mountpoint"]);
    }

    #[test]
    fn network_counters_skip_excluded_devices() {
        let interface = |device: &str, n: u64| Interface {
            device: device.to_owned(),
            receive_bytes: n,
            receive_packets: n + 1,
            receive_errs: n + 2,
            transmit_bytes: n + 3,
            transmit_packets: n + 4,
            transmit_errs: n + 5,
        };
        let lo = Regex::new("^lo0?$").expect("valid regex");
        let families = netdev(&[interface("lo0", 1), interface("en0", 10)], Some(&lo));
        assert!(families.iter().all(|f| f.kind == Kind::Counter));
        let got = values(&families);
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[0],
            (
                "node_network_receive_bytes_total".to_owned(),
                vec!["en0".to_owned()],
                10.0
            )
        );
        assert_eq!(
            got[5],
            (
                "node_network_transmit_errs_total".to_owned(),
                vec!["en0".to_owned()],
                15.0
            )
        );
    }

    #[test]
    fn load_and_boot_time() {
        let got = values(&loadavg(0.5, 0.25, 0.125));
        assert_eq!(got[2], ("node_load15".to_owned(), vec![], 0.125));
        assert_eq!(boot_time(1_700_000_000).samples[0].value, 1_700_000_000.0);
    }

    #[tokio::test]
    async fn sysinfo_gathers_on_this_machine() {
        let config = HostConfig {
            enabled: true,
            timeout: Duration::from_secs(10),
            procfs: "/proc".into(),
            sysfs: "/sys".into(),
            rootfs: "/".into(),
            filesystem: crate::config::FilesystemConfig {
                mount_points_exclude: None,
                fs_types_exclude: None,
                stat_timeout: Duration::from_secs(5),
            },
            disk_device_exclude: None,
            network_device_exclude: None,
            textfile_directory: None,
            collectors: Default::default(),
        };
        let list = collectors(&config);
        let names: Vec<&str> = list.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "meminfo",
                "filesystem",
                "netdev",
                "loadavg",
                "stat",
                "uname",
                "time"
            ]
        );
        for collector in &list {
            let families = collector
                .collect()
                .unwrap_or_else(|err| panic!("{}: {err}", collector.name()));
            assert!(!families.is_empty(), "{}", collector.name());
        }
    }
}
