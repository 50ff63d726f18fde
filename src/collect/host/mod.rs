//! Host metrics with node_exporter's names, types and labels.
//!
//! One collector per node_exporter collector name (the list and defaults are [`COLLECTORS`]),
//! so `warden_collector_success{collector}` reads like `node_scrape_collector_success`. The families, types, label names and help texts follow
//! node_exporter as Debian ships it (1.5), which the comparison tests run against; the default
//! device and filesystem filters are upstream's newer ones (README, "Metrics").
//!
//! On Linux every collector reads procfs under [`HostConfig::procfs`] or sysfs under
//! [`HostConfig::sysfs`] (never `/proc` or `/sys` directly, so tests point them at
//! `fixtures/proc` and `fixtures/sys`). They are [`BlockingCollector`]s: a scrape runs them in
//! order on one blocking thread (`collect::batch`). Parsers work on the file text with plain
//! string splitting and reuse one read buffer per collector.
//!
//! Tasks: no long-lived tasks. The filesystem collector starts a short-lived helper thread for
//! `statvfs` of network and FUSE mounts only (see [`filesystem`] for how a hung mount is bounded
//! and remembered).
//!
//! On other systems [`portable`] maps what `sysinfo` offers onto the same names.

#[cfg(target_os = "linux")]
mod arp;
#[cfg(target_os = "linux")]
mod bonding;
#[cfg(target_os = "linux")]
mod conntrack;
#[cfg(target_os = "linux")]
mod cpu;
#[cfg(target_os = "linux")]
mod cpufreq;
#[cfg(target_os = "linux")]
mod diskstats;
#[cfg(target_os = "linux")]
mod edac;
#[cfg(target_os = "linux")]
mod entropy;
#[cfg(target_os = "linux")]
mod filefd;
#[cfg(target_os = "linux")]
pub mod filesystem;
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(target_os = "linux")]
mod handoff;
#[cfg(target_os = "linux")]
mod hwmon;
#[cfg(target_os = "linux")]
mod infiniband;
#[cfg(target_os = "linux")]
mod interrupts;
#[cfg(target_os = "linux")]
mod loadavg;
#[cfg(target_os = "linux")]
mod mdadm;
#[cfg(target_os = "linux")]
mod meminfo;
#[cfg(target_os = "linux")]
mod netclass;
#[cfg(target_os = "linux")]
mod netdev;
#[cfg(target_os = "linux")]
mod netstat;
#[cfg(target_os = "linux")]
mod nlmsg;
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod portable;
#[cfg(target_os = "linux")]
mod powersupplyclass;
#[cfg(target_os = "linux")]
mod pressure;
#[cfg(target_os = "linux")]
mod processes;
#[cfg(target_os = "linux")]
mod procfiles;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
mod schedstat;
#[cfg(target_os = "linux")]
mod sockdiag;
#[cfg(target_os = "linux")]
mod sockstat;
#[cfg(target_os = "linux")]
mod softnet;
#[cfg(target_os = "linux")]
mod stat;
#[cfg(target_os = "linux")]
mod systemd;
#[cfg(target_os = "linux")]
mod tcpstat;
mod textfile;
#[cfg(target_os = "linux")]
mod thermal_zone;
mod time;
#[cfg(target_os = "linux")]
mod timex;
#[cfg(target_os = "linux")]
mod udp_queues;
mod uname;
#[cfg(target_os = "linux")]
mod vmstat;

use std::sync::Arc;

/// Held procfs files for `collect::process` (/proc/self/stat).
#[cfg(target_os = "linux")]
pub(super) use procfs::ReadBuffer;

use super::BlockingCollector;
use crate::config::HostConfig;

/// node_exporter's collector names that warden implements, each with whether it runs by default
/// (node_exporter's defaults). `host.collectors` switches them; names are checked against this.
pub const COLLECTORS: &[(&str, bool)] = &[
    ("arp", true),
    ("bonding", true),
    ("conntrack", true),
    ("cpu", true),
    ("cpufreq", true),
    ("diskstats", true),
    ("edac", true),
    ("entropy", true),
    ("filefd", true),
    ("filesystem", true),
    ("hwmon", true),
    ("infiniband", true),
    ("interrupts", false),
    ("loadavg", true),
    ("mdadm", true),
    ("meminfo", true),
    ("netclass", true),
    ("netdev", true),
    ("netstat", true),
    ("powersupplyclass", true),
    ("pressure", true),
    ("processes", false),
    ("schedstat", true),
    ("sockstat", true),
    ("softnet", true),
    ("stat", true),
    ("systemd", false),
    ("tcpstat", false),
    ("textfile", true),
    ("thermal_zone", true),
    ("time", true),
    ("timex", true),
    ("udp_queues", true),
    ("uname", true),
    ("vmstat", true),
];

/// The host collectors for this configuration, one per node_exporter collector name in
/// `config.collectors`; none when host metrics are disabled.
pub fn collectors(config: &HostConfig) -> Vec<Arc<dyn BlockingCollector>> {
    if !config.enabled {
        return Vec::new();
    }
    #[cfg(target_os = "linux")]
    let mut list = linux_collectors(config);
    #[cfg(not(target_os = "linux"))]
    let mut list = portable::collectors(config);
    // Last, so a family it shares with another collector keeps the other's type.
    list.push(Arc::new(textfile::Textfile::new(
        config.textfile_directory.clone(),
        config.timeout,
    )));
    list.retain(|collector| config.collectors.contains(collector.name()));
    list
}

#[cfg(target_os = "linux")]
fn linux_collectors(config: &HostConfig) -> Vec<Arc<dyn BlockingCollector>> {
    use procfiles::FilesCollector;
    use procfs::FileCollector;

    let timeout = config.timeout;
    let proc = |path: &str| config.procfs.join(path);
    let ticks_per_second = cpu::ticks_per_second();
    let disk_exclude = config.disk_device_exclude.clone();
    let network_exclude = config.network_device_exclude.clone();
    // netdev (earlier in the list) leaves its rtnetlink dump for netclass (later).
    let link_handoff = Arc::new(netclass::LinkHandoff::default());
    // cpu (earlier) leaves /proc/stat's text for stat (later), when both run.
    let stat_handoff = Arc::new(procfs::TextHandoff::default());
    let share_stat = config.collectors.contains("cpu") && config.collectors.contains("stat");
    vec![
        FileCollector::arc("cpu", timeout, proc("stat"), {
            let stat_handoff = Arc::clone(&stat_handoff);
            move |text| {
                if share_stat {
                    stat_handoff.leave(Arc::from(text));
                }
                cpu::parse(text, ticks_per_second)
            }
        }),
        FileCollector::arc("meminfo", timeout, proc("meminfo"), meminfo::parse),
        Arc::new(filesystem::Filesystem::new(config)),
        FileCollector::arc("diskstats", timeout, proc("diskstats"), move |text| {
            diskstats::parse(text, disk_exclude.as_ref())
        }),
        Arc::new(netdev::Netdev::new(
            timeout,
            &config.procfs,
            &config.sysfs,
            network_exclude.clone(),
            Arc::clone(&link_handoff),
        )),
        FileCollector::arc("loadavg", timeout, proc("loadavg"), loadavg::parse),
        FileCollector::arc_taking("stat", timeout, proc("stat"), stat_handoff, stat::parse),
        Arc::new(time::Time::new(timeout)),
        Arc::new(timex::TimexCollector::new(timeout)),
        FilesCollector::arc("tcpstat", timeout, config.procfs.clone(), tcpstat::collect),
        FilesCollector::arc(
            "processes",
            timeout,
            config.procfs.clone(),
            processes::collect,
        ),
        FileCollector::arc("interrupts", timeout, proc("interrupts"), interrupts::parse),
        Arc::new(uname::Uname::new(timeout)),
        Arc::new(pressure::Pressure::new(&config.procfs, timeout)),
        FileCollector::arc("filefd", timeout, proc("sys/fs/file-nr"), filefd::parse),
        FileCollector::arc("vmstat", timeout, proc("vmstat"), vmstat::parse),
        FilesCollector::arc("netstat", timeout, config.procfs.clone(), netstat::collect),
        FilesCollector::arc("sockstat", timeout, config.procfs.clone(), |files| {
            sockstat::collect(files, rustix::param::page_size() as u64)
        }),
        FileCollector::arc("softnet", timeout, proc("net/softnet_stat"), softnet::parse),
        FileCollector::arc("arp", timeout, proc("net/arp"), arp::parse),
        FilesCollector::arc("entropy", timeout, config.procfs.clone(), entropy::collect),
        FilesCollector::arc("conntrack", timeout, config.procfs.clone(), {
            let logged_absent = std::sync::atomic::AtomicBool::new(false);
            move |files| conntrack::collect(files, &logged_absent)
        }),
        FilesCollector::arc("udp_queues", timeout, config.procfs.clone(), {
            let held = udp_queues::Held::default();
            move |files| udp_queues::collect(files, &held)
        }),
        FilesCollector::arc("netclass", timeout, config.sysfs.clone(), {
            let held = netclass::Held::new(link_handoff);
            move |files| netclass::collect(files, network_exclude.as_ref(), &held)
        }),
        FilesCollector::arc("bonding", timeout, config.sysfs.clone(), bonding::collect),
        FilesCollector::arc(
            "infiniband",
            timeout,
            config.sysfs.clone(),
            infiniband::collect,
        ),
        FilesCollector::arc(
            "schedstat",
            timeout,
            config.procfs.clone(),
            schedstat::collect,
        ),
        FilesCollector::arc("cpufreq", timeout, config.sysfs.clone(), cpufreq::collect),
        FilesCollector::arc(
            "thermal_zone",
            timeout,
            config.sysfs.clone(),
            thermal_zone::collect,
        ),
        FilesCollector::arc("hwmon", timeout, config.sysfs.clone(), hwmon::collect),
        FilesCollector::arc(
            "powersupplyclass",
            timeout,
            config.sysfs.clone(),
            powersupplyclass::collect,
        ),
        FilesCollector::arc("edac", timeout, config.sysfs.clone(), edac::collect),
        FilesCollector::arc("mdadm", timeout, config.procfs.clone(), mdadm::collect),
        Arc::new(systemd::Systemd::new(timeout)),
    ]
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::collect::family::{Family, Kind};
    use crate::config::FilesystemConfig;

    /// The procfs captured from a real machine (kernel 6.18, 2 CPUs).
    pub(crate) fn fixture_proc() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/collect/host/fixtures/proc")
    }

    /// The sysfs captured from real machines.
    pub(crate) fn fixture_sys() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/collect/host/fixtures/sys")
    }

    fn fixture_config() -> HostConfig {
        HostConfig {
            enabled: true,
            timeout: Duration::from_secs(5),
            procfs: fixture_proc(),
            sysfs: fixture_sys(),
            rootfs: PathBuf::from("/"),
            filesystem: FilesystemConfig {
                // Only `/` of the fixture's mounts exists on every test machine.
                mount_points_exclude: Some(regex::Regex::new("^/.+").expect("valid regex")),
                fs_types_exclude: None,
                stat_timeout: Duration::from_secs(5),
            },
            disk_device_exclude: None,
            network_device_exclude: None,
            textfile_directory: None,
            collectors: COLLECTORS.iter().map(|(name, _)| *name).collect(),
        }
    }

    /// cpu reads /proc/stat and stat parses that same text, once; then stat reads on its own.
    #[test]
    fn stat_parses_the_text_cpu_read_in_the_same_scrape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let original = std::fs::read_to_string(fixture_proc().join("stat")).expect("fixture");
        std::fs::write(dir.path().join("stat"), &original).expect("write");
        let mut config = fixture_config();
        config.procfs = dir.path().to_owned();
        let list = collectors(&config);
        let by_name = |name: &str| {
            list.iter()
                .find(|c| c.name() == name)
                .expect("the collector")
        };
        let context_switches = |families: Vec<Family>| {
            families
                .iter()
                .find(|f| f.name == "node_context_switches_total")
                .expect("the family")
                .samples[0]
                .value
        };

        by_name("cpu").collect().expect("cpu");
        let changed = original.replace("ctxt 312239", "ctxt 7");
        assert_ne!(changed, original);
        std::fs::write(dir.path().join("stat"), changed).expect("rewrite");
        let stat = by_name("stat");
        assert_eq!(
            context_switches(stat.collect().expect("stat")),
            312_239.0,
            "the text cpu read"
        );
        assert_eq!(
            context_switches(stat.collect().expect("stat")),
            7.0,
            "nothing left: read anew"
        );
    }

    #[test]
    fn disabled_host_config_has_no_collectors() {
        let mut config = fixture_config();
        config.enabled = false;
        assert!(collectors(&config).is_empty());
    }

    #[tokio::test]
    async fn every_collector_succeeds_on_the_fixture_procfs() {
        let list = collectors(&fixture_config());
        let names: Vec<&str> = list.iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "cpu",
                "meminfo",
                "filesystem",
                "diskstats",
                "netdev",
                "loadavg",
                "stat",
                "time",
                "timex",
                "tcpstat",
                "processes",
                "interrupts",
                "uname",
                "pressure",
                "filefd",
                "vmstat",
                "netstat",
                "sockstat",
                "softnet",
                "arp",
                "entropy",
                "conntrack",
                "udp_queues",
                "netclass",
                "bonding",
                "infiniband",
                "schedstat",
                "cpufreq",
                "thermal_zone",
                "hwmon",
                "powersupplyclass",
                "edac",
                "mdadm",
                "systemd",
                "textfile",
            ]
        );
        // Every name `host.collectors` accepts builds a collector.
        let built: BTreeSet<&str> = names.iter().copied().collect();
        let known: BTreeSet<&str> = COLLECTORS.iter().map(|(name, _)| *name).collect();
        assert_eq!(built, known);
        let mut families: Vec<Family> = Vec::new();
        for collector in &list {
            assert_eq!(collector.timeout(), Duration::from_secs(5));
            if collector.name() == "systemd" {
                // Talks to systemd over D-Bus, not procfs: tests/it/systemd.rs runs it.
                continue;
            }
            let got = collector
                .collect()
                .unwrap_or_else(|err| panic!("{}: {err}", collector.name()));
            assert!(!got.is_empty(), "{} returned nothing", collector.name());
            families.extend(got);
        }
        let names: BTreeSet<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        for expected in [
            "node_cpu_seconds_total",
            "node_cpu_guest_seconds_total",
            "node_memory_MemTotal_bytes",
            "node_filesystem_size_bytes",
            "node_disk_reads_completed_total",
            "node_network_receive_bytes_total",
            "node_load1",
            "node_boot_time_seconds",
            "node_time_seconds",
            "node_timex_tick_seconds",
            "node_tcp_connection_states",
            "node_processes_pids",
            "node_interrupts_total",
            "node_uname_info",
            "node_pressure_io_stalled_seconds_total",
            "node_filefd_maximum",
            "node_vmstat_pgfault",
            "node_netstat_Tcp_ActiveOpens",
            "node_sockstat_TCP_mem_bytes",
            "node_softnet_times_squeezed_total",
            "node_arp_entries",
            "node_entropy_pool_size_bits",
            "node_nf_conntrack_stat_early_drop",
            "node_udp_queues",
            "node_network_receive_nohandler_total",
            "node_network_mtu_bytes",
            "node_bonding_active",
            "node_infiniband_port_data_received_bytes_total",
            "node_schedstat_running_seconds_total",
            "node_cpu_scaling_frequency_hertz",
            "node_thermal_zone_temp",
            "node_cooling_device_max_state",
            "node_hwmon_temp_celsius",
            "node_power_supply_info",
            "node_edac_correctable_errors_total",
            "node_md_disks",
        ] {
            assert!(names.contains(expected), "missing {expected}");
        }
        // No family name appears twice across collectors, and counters end in `_total`.
        assert_eq!(names.len(), families.len());
        for family in &families {
            if family.kind == Kind::Counter {
                assert!(family.name.ends_with("_total"), "{}", family.name);
            }
        }
    }

    #[test]
    fn the_textfile_collector_runs_last_and_only_reports_no_error_without_a_directory() {
        let list = collectors(&fixture_config());
        let textfile = list.last().expect("collectors");
        assert_eq!(textfile.name(), "textfile");
        let families = textfile.collect().expect("textfile never fails");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(names, ["node_textfile_scrape_error"]);
        assert_eq!(families[0].samples[0].value, 0.0);
    }

    #[test]
    fn host_collectors_switch_collectors_by_name() {
        let mut config = fixture_config();
        config.collectors = ["cpu", "textfile"].into_iter().collect();
        let names: Vec<String> = collectors(&config)
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        assert_eq!(names, ["cpu", "textfile"]);
    }

    #[tokio::test]
    async fn a_missing_procfs_fails_the_collectors_that_need_it() {
        let mut config = fixture_config();
        config.procfs = PathBuf::from("/nonexistent-proc");
        for collector in collectors(&config) {
            let result = collector.collect();
            match collector.name() {
                // Not read from procfs, or not applicable without it.
                "time" | "timex" | "uname" | "pressure" | "sockstat" | "conntrack"
                | "schedstat" | "cpufreq" | "thermal_zone" | "hwmon" | "powersupplyclass"
                | "edac" | "mdadm" | "netclass" | "bonding" | "infiniband" | "textfile" => {
                    assert!(result.is_ok(), "{}", collector.name())
                }
                // Not read from procfs: fails without a system bus, as on this test machine.
                "systemd" => assert!(
                    matches!(result, Err(crate::collect::Error::Bus { .. })),
                    "{result:?}"
                ),
                name => assert!(
                    matches!(result, Err(crate::collect::Error::Read { .. })),
                    "{name}: {result:?}"
                ),
            }
        }
    }
}
