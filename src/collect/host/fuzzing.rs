//! Entry points for the fuzz driver (`crates/fuzz`, through [`crate::fuzzing`]): each host
//! parser of procfs and sysfs text, the rtnetlink and sock_diag reply parsers, TZif data and the
//! textfile parser, one function per file format. Each runs the parser (and what the collector
//! builds from its result) on arbitrary input and returns the families the collector would
//! export, empty when the parser refuses the input. Not part of warden's interface.

use super::{
    arp, conntrack, cpu, diskstats, entropy, filefd, filesystem, infiniband, interrupts, loadavg,
    mdadm, meminfo, netclass, netdev, netstat, pressure, processes, procfiles, schedstat, sockstat,
    softnet, stat, tcpstat, textfile, thermal_zone, time, udp_queues, vmstat,
};
use crate::collect::Family;

/// What a parser made of its input: the families the collector would export, or why it refused
/// the input.
pub type Parsed = Result<Vec<Family>, String>;

/// /proc/stat for the `cpu` collector (100 ticks per second).
pub fn cpu(text: &str) -> Parsed {
    cpu::parse(text, 100.0)
}

/// /proc/stat for the `stat` collector.
pub fn stat(text: &str) -> Parsed {
    stat::parse(text)
}

/// /proc/meminfo.
pub fn meminfo(text: &str) -> Parsed {
    meminfo::parse(text)
}

/// /proc/diskstats, no device excluded.
pub fn diskstats(text: &str) -> Parsed {
    diskstats::parse(text, None)
}

/// /proc/net/dev, no device excluded.
pub fn netdev(text: &str) -> Parsed {
    netdev::parse(text, None)
}

/// /proc/loadavg.
pub fn loadavg(text: &str) -> Parsed {
    loadavg::parse(text)
}

/// /proc/vmstat.
pub fn vmstat(text: &str) -> Parsed {
    vmstat::parse(text)
}

/// /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6.
pub fn netstat(text: &str) -> Parsed {
    netstat::fuzz(text)
}

/// /proc/net/sockstat and sockstat6.
pub fn sockstat(text: &str) -> Parsed {
    let mut families = sockstat::parse(text, false, 4096)?;
    families.extend(sockstat::parse(text, true, 4096)?);
    Ok(families)
}

/// /proc/net/softnet_stat.
pub fn softnet(text: &str) -> Parsed {
    softnet::parse(text)
}

/// /proc/net/arp.
pub fn arp(text: &str) -> Parsed {
    arp::parse(text)
}

/// /proc/net/stat/nf_conntrack and the nf_conntrack_count/max files.
pub fn conntrack(text: &str) -> Parsed {
    conntrack::fuzz(text)
}

/// /proc/net/udp and udp6.
pub fn udp_queues(text: &str) -> Parsed {
    udp_queues::fuzz(text)
}

/// /proc/pressure/{cpu,io,memory}.
pub fn pressure(text: &str) -> Parsed {
    pressure::fuzz(text)
}

/// /proc/sys/fs/file-nr.
pub fn filefd(text: &str) -> Parsed {
    filefd::parse(text)
}

/// /proc/mdstat.
pub fn mdadm(text: &str) -> Parsed {
    mdadm::fuzz(text)
}

/// /proc/interrupts.
pub fn interrupts(text: &str) -> Parsed {
    interrupts::parse(text)
}

/// /proc/net/tcp and tcp6.
pub fn tcpstat(text: &str) -> Parsed {
    tcpstat::fuzz(text)
}

/// /proc/schedstat.
pub fn schedstat(text: &str) -> Parsed {
    schedstat::fuzz(text)
}

/// /proc/1/mounts (or /proc/mounts) through the default filters.
pub fn filesystem(text: &str) -> Parsed {
    filesystem::fuzz(text)
}

/// /proc/PID/stat and /proc/PID/task/TID/stat.
pub fn processes(text: &str) -> Parsed {
    processes::fuzz(text)
}

/// One-number files: entropy_avail, thermal zone temperatures, sysfs attributes (as an
/// unsigned, signed and floating-point number) and InfiniBand port state and rate.
pub fn sysfs_values(text: &str) -> Parsed {
    let _ = netclass::parse_uint(text);
    let _ = procfiles::parse_number::<u64>(text, "value");
    let _ = procfiles::parse_number::<i64>(text, "value");
    let _ = procfiles::parse_number::<f64>(text, "value");
    let _ = thermal_zone::fuzz(text);
    let _ = entropy::fuzz(text);
    infiniband::fuzz(text).map(|_| Vec::new())
}

/// A textfile collector directory's files, separated by form feeds.
pub fn textfile(data: &[u8]) -> Parsed {
    textfile::fuzz(data)
}

/// An rtnetlink `RTM_GETLINK` dump reply, and the `netdev` families of its links.
pub fn netlink(data: &[u8]) -> Parsed {
    netclass::fuzz_netlink(data).and_then(|links| netdev::from_links(&links, None))
}

/// A `NETLINK_SOCK_DIAG` dump reply of UDP sockets, summed as `udp_queues` does.
pub fn sockdiag(data: &[u8]) -> Parsed {
    udp_queues::fuzz_sockdiag(data)
}

/// A TZif file (/etc/localtime) or a POSIX TZ rule.
pub fn time(data: &[u8]) -> Parsed {
    time::fuzz(data)
}
