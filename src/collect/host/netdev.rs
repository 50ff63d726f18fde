//! `netdev`: per-interface counters, named as node_exporter 1.5's `netdev_linux.go` names its
//! /proc/net/dev statistics: `node_network_<direction>_<statistic>_total{device}`, and
//! `node_network_receive_nohandler_total`, which node_exporter 1.5 adds by reading the
//! statistics over netlink by default.
//!
//! When `host.procfs` and `host.sysfs` are the live `/proc` and `/sys`, every value comes from
//! one rtnetlink `RTM_GETLINK` dump over a kept socket (netclass's client, [`LinkSocket`]): each
//! device's `IFLA_STATS64` is the `rtnl_link_stats64` from which the kernel prints /proc/net/dev
//! (see [`columns`]) and sysfs `statistics/rx_nohandler`, in a few system calls instead of the
//! read of /proc/net/dev and one sysfs file per device. The dump asks for statistics
//! ([`Statistics::Included`]): netclass's `RTEXT_FILTER_SKIP_STATS` drops `IFLA_STATS64` too
//! since Linux 6.19. Under another root (a fixture, another
//! host's tree mounted in a container), which this process's netlink does not describe, or when
//! the dump fails, /proc/net/dev is parsed ([`parse`]) and [`NoHandler`] reads
//! `class/net/<device>/statistics/rx_nohandler` under the sysfs root for each device exported.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::netclass::{Link, LinkHandoff, LinkSocket, Statistics, Stats64};
use super::procfs::{ReadBuffer, parse_error, parse_u64};
use crate::collect::family::intern;
use crate::collect::{BlockingCollector, Error, Family};

/// The procfs and sysfs roots whose devices are this process's network namespace's: only then
/// does netlink describe the same devices.
const LIVE_ROOTS: (&str, &str) = ("/proc", "/sys");

/// The `netdev` collector: the rtnetlink dump under the live roots, /proc/net/dev and sysfs
/// otherwise or when the dump fails.
pub(super) struct Netdev {
    timeout: Duration,
    exclude: Option<Regex>,
    /// `<procfs>/net/dev`.
    net_dev: PathBuf,
    buffer: ReadBuffer,
    nohandler: NoHandler,
    /// Under the live roots only.
    socket: Option<LinkSocket>,
    /// Where each dump is left for netclass, which runs later in the scrape.
    handoff: Arc<LinkHandoff>,
}

impl Netdev {
    /// The collector reading under `procfs` and `sysfs`, skipping the devices matching
    /// `exclude` (`host.network.device_exclude`), and leaving each dump in `handoff`.
    pub(super) fn new(
        timeout: Duration,
        procfs: &Path,
        sysfs: &Path,
        exclude: Option<Regex>,
        handoff: Arc<LinkHandoff>,
    ) -> Self {
        let live = (procfs, sysfs) == (Path::new(LIVE_ROOTS.0), Path::new(LIVE_ROOTS.1));
        Netdev {
            timeout,
            exclude,
            net_dev: procfs.join("net/dev"),
            buffer: ReadBuffer::default(),
            nohandler: NoHandler::new(sysfs.to_owned()),
            socket: live.then(|| LinkSocket::new(Statistics::Included)),
            handoff,
        }
    }

    /// From /proc/net/dev and sysfs.
    fn read_files(&self) -> Result<Vec<Family>, Error> {
        let families = self.buffer.with_file(&self.net_dev, |text| {
            parse(text, self.exclude.as_ref()).map_err(|reason| parse_error(&self.net_dev, reason))
        })?;
        Ok(self.nohandler.add_to(families))
    }
}

impl BlockingCollector for Netdev {
    fn name(&self) -> &str {
        "netdev"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        if let Some(socket) = &self.socket {
            let families = socket.dump().and_then(|links| {
                let links = Arc::new(links);
                let families = from_links(&links, self.exclude.as_ref())
                    .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason));
                self.handoff.leave(links);
                families
            });
            match families {
                Ok(families) => return Ok(families),
                Err(err) => tracing::debug!(
                    error = %err,
                    "netdev: rtnetlink RTM_GETLINK dump failed, reading /proc/net/dev and sysfs"
                ),
            }
        }
        self.read_files()
    }
}

/// The 16 columns of /proc/net/dev, as `(name, help)`.
const COLUMNS: [(&str, &str); 16] = [
    (
        "node_network_receive_bytes_total",
        "Network device statistic receive_bytes.",
    ),
    (
        "node_network_receive_packets_total",
        "Network device statistic receive_packets.",
    ),
    (
        "node_network_receive_errs_total",
        "Network device statistic receive_errs.",
    ),
    (
        "node_network_receive_drop_total",
        "Network device statistic receive_drop.",
    ),
    (
        "node_network_receive_fifo_total",
        "Network device statistic receive_fifo.",
    ),
    (
        "node_network_receive_frame_total",
        "Network device statistic receive_frame.",
    ),
    (
        "node_network_receive_compressed_total",
        "Network device statistic receive_compressed.",
    ),
    (
        "node_network_receive_multicast_total",
        "Network device statistic receive_multicast.",
    ),
    (
        "node_network_transmit_bytes_total",
        "Network device statistic transmit_bytes.",
    ),
    (
        "node_network_transmit_packets_total",
        "Network device statistic transmit_packets.",
    ),
    (
        "node_network_transmit_errs_total",
        "Network device statistic transmit_errs.",
    ),
    (
        "node_network_transmit_drop_total",
        "Network device statistic transmit_drop.",
    ),
    (
        "node_network_transmit_fifo_total",
        "Network device statistic transmit_fifo.",
    ),
    (
        "node_network_transmit_colls_total",
        "Network device statistic transmit_colls.",
    ),
    (
        "node_network_transmit_carrier_total",
        "Network device statistic transmit_carrier.",
    ),
    (
        "node_network_transmit_compressed_total",
        "Network device statistic transmit_compressed.",
    ),
];

/// The families of [`COLUMNS`], without samples.
fn column_families() -> Vec<Family> {
    COLUMNS
        .iter()
        .map(|(name, help)| Family::counter(*name, *help))
        .collect()
}

/// `node_network_receive_nohandler_total`, without samples.
fn nohandler_family() -> Family {
    Family::counter(
        "node_network_receive_nohandler_total",
        "Network device statistic receive_nohandler.",
    )
}

/// The families of the dumped `links` not matching `exclude`, in the dump's order:
/// [`COLUMNS`] as /proc/net/dev would print them, then `node_network_receive_nohandler_total`
/// for the links whose kernel reports `rx_nohandler` (left out when none does).
///
/// # Errors
/// A link without `IFLA_STATS64` (which every kernel since 2.6.35 sends).
pub(super) fn from_links(links: &[Link], exclude: Option<&Regex>) -> Result<Vec<Family>, String> {
    let mut families = column_families();
    let mut nohandler = nohandler_family();
    for link in links {
        if exclude.is_some_and(|re| re.is_match(&link.name)) {
            continue;
        }
        let Some(stats) = &link.stats else {
            return Err(format!("{}: no IFLA_STATS64", link.name));
        };
        let device = intern(&link.name);
        for (family, value) in families.iter_mut().zip(columns(stats)) {
            family.push([("device", device.clone())], value as f64);
        }
        if let Some(value) = stats.rx_nohandler {
            nohandler.push([("device", device)], value as f64);
        }
    }
    if !nohandler.samples.is_empty() {
        families.push(nohandler);
    }
    Ok(families)
}

/// The 16 columns /proc/net/dev prints for `stats`, in [`COLUMNS`]' order: the sums of
/// `dev_seq_printf_stats` (net/core/net-procfs.c), in its wrapping `u64` arithmetic.
fn columns(stats: &Stats64) -> [u64; COLUMNS.len()] {
    let sum = |values: &[u64]| values.iter().fold(0_u64, |sum, v| sum.wrapping_add(*v));
    [
        stats.rx_bytes,
        stats.rx_packets,
        stats.rx_errors,
        sum(&[stats.rx_dropped, stats.rx_missed_errors]),
        stats.rx_fifo_errors,
        sum(&[
            stats.rx_length_errors,
            stats.rx_over_errors,
            stats.rx_crc_errors,
            stats.rx_frame_errors,
        ]),
        stats.rx_compressed,
        stats.multicast,
        stats.tx_bytes,
        stats.tx_packets,
        stats.tx_errors,
        stats.tx_dropped,
        stats.tx_fifo_errors,
        stats.collisions,
        sum(&[
            stats.tx_carrier_errors,
            stats.tx_aborted_errors,
            stats.tx_window_errors,
            stats.tx_heartbeat_errors,
        ]),
        stats.tx_compressed,
    ]
}

/// Parses /proc/net/dev, skipping interfaces that match `exclude`.
pub(super) fn parse(text: &str, exclude: Option<&Regex>) -> Result<Vec<Family>, String> {
    let mut families = column_families();
    let mut values = [0u64; COLUMNS.len()];
    // Two header lines, then `  name: 16 numbers`. Interface names cannot contain ':'.
    for line in text.lines().skip(2) {
        let Some((device, numbers)) = line.split_once(':') else {
            return Err(format!("no interface name in line {line:?}"));
        };
        let device = device.trim();
        if exclude.is_some_and(|re| re.is_match(device)) {
            continue;
        }
        let mut count = 0;
        for field in numbers.split_ascii_whitespace() {
            if count == values.len() {
                return Err(format!("{device}: more than {} columns", values.len()));
            }
            values[count] = parse_u64(field, device)?;
            count += 1;
        }
        if count != values.len() {
            return Err(format!(
                "{device}: {count} columns, expected {}",
                values.len()
            ));
        }
        for (family, value) in families.iter_mut().zip(values) {
            family.push([("device", device.to_owned())], value as f64);
        }
    }
    Ok(families)
}

/// Reads `rx_nohandler` under a sysfs root for the devices /proc/net/dev listed.
pub(super) struct NoHandler {
    sysfs: PathBuf,
    buffer: ReadBuffer,
}

impl NoHandler {
    /// Reads under `sysfs`.
    pub(super) fn new(sysfs: PathBuf) -> Self {
        NoHandler {
            sysfs,
            buffer: ReadBuffer::default(),
        }
    }

    /// `families` (from [`parse`]) with `node_network_receive_nohandler_total` for each of their
    /// devices whose `rx_nohandler` reads as a number. A device without the file (a kernel
    /// before 4.6, sysfs not mounted) or whose read fails has no sample; the family is left
    /// out when no device has one.
    pub(super) fn add_to(&self, mut families: Vec<Family>) -> Vec<Family> {
        let mut nohandler = nohandler_family();
        let devices = families.first().map_or(&[][..], |f| f.samples.as_slice());
        for sample in devices {
            let Some((_, device)) = sample.labels.iter().find(|(name, _)| name == "device") else {
                continue;
            };
            let path = self
                .sysfs
                .join("class/net")
                .join(device.as_ref())
                .join("statistics/rx_nohandler");
            let read =
                self.buffer.with_file(
                    &path,
                    |text| Ok(parse_u64(text.trim(), "rx_nohandler").ok()),
                );
            match read {
                Ok(Some(value)) => nohandler.push([("device", device.clone())], value as f64),
                Ok(None) => tracing::debug!(path = %path.display(), "rx_nohandler is not a number"),
                Err(Error::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
                Err(err) => tracing::debug!(%err, "rx_nohandler unreadable"),
            }
        }
        if !nohandler.samples.is_empty() {
            families.push(nohandler);
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::netclass::parse_links;

    /// An `RTM_GETLINK` dump (the collector's request, replies to request 1), /proc/net/dev and each
    /// device's sysfs `statistics/rx_nohandler` (`<device> <value>` lines) captured together on
    /// one machine (kernel 6.18, x86_64): the dump taken before and after the two reads, and
    /// the same both times.
    const DUMP: &[u8] = include_bytes!("fixtures/rtnetlink/getlink_stats.bin");
    const NET_DEV: &str = include_str!("fixtures/rtnetlink/getlink_stats.net_dev");
    const RX_NOHANDLER: &str = include_str!("fixtures/rtnetlink/getlink_stats.rx_nohandler");

    /// `family`'s values by device.
    fn by_device(family: &Family) -> BTreeMap<String, f64> {
        family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.to_string(), s.value))
            .collect()
    }

    /// The families the collector exports, read from the live /proc and /sys as under another
    /// root.
    fn live_files() -> Vec<Family> {
        let text = std::fs::read_to_string("/proc/net/dev").expect("reads /proc/net/dev");
        NoHandler::new(PathBuf::from("/sys")).add_to(parse(&text, None).expect("parses"))
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn the_captured_dump_gives_what_proc_net_dev_and_sysfs_showed() {
        let mut links = Vec::new();
        assert_eq!(parse_links(DUMP, 1, &mut links), Ok(true));
        for exclude in [
            None,
            Some(Regex::new("^(lo|docker0)$").expect("valid regex")),
        ] {
            let mut families = from_links(&links, exclude.as_ref()).expect("every link has stats");
            let nohandler = families.pop().expect("families");
            assert_eq!(nohandler, {
                let mut family = nohandler_family();
                for line in RX_NOHANDLER.lines() {
                    let (device, value) = line.split_once(' ').expect("device value");
                    if !exclude.as_ref().is_some_and(|re| re.is_match(device)) {
                        family.push([("device", device.to_owned())], value.parse().expect("u64"));
                    }
                }
                // The files' listing is sorted, the dump by index.
                family
                    .samples
                    .sort_by_key(|s| links.iter().position(|l| l.name == s.labels[0].1));
                family
            });
            // Every family, device, value, and the order of both.
            assert_eq!(families, parse(NET_DEV, exclude.as_ref()).expect("parses"));
        }
        let families = from_links(&links, None).expect("stats");
        let value = |name: &str, device: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .and_then(|f| f.value(&[("device", device)]))
        };
        assert_eq!(
            value("node_network_receive_bytes_total", "eth0"),
            Some(2_312_637_045.0)
        );
        assert_eq!(
            value("node_network_transmit_drop_total", "docker0"),
            Some(6.0)
        );
    }

    /// Each column is `dev_seq_printf_stats`'s field or sum of fields, in wrapping arithmetic.
    #[test]
    fn every_stats64_field_lands_in_its_column() {
        // Field `i` of rtnl_link_stats64 is 2^i: each column's value names its fields.
        let stats = Stats64 {
            rx_packets: 1 << 0,
            tx_packets: 1 << 1,
            rx_bytes: 1 << 2,
            tx_bytes: 1 << 3,
            rx_errors: 1 << 4,
            tx_errors: 1 << 5,
            rx_dropped: 1 << 6,
            tx_dropped: 1 << 7,
            multicast: 1 << 8,
            collisions: 1 << 9,
            rx_length_errors: 1 << 10,
            rx_over_errors: 1 << 11,
            rx_crc_errors: 1 << 12,
            rx_frame_errors: 1 << 13,
            rx_fifo_errors: 1 << 14,
            rx_missed_errors: 1 << 15,
            tx_aborted_errors: 1 << 16,
            tx_carrier_errors: 1 << 17,
            tx_fifo_errors: 1 << 18,
            tx_heartbeat_errors: 1 << 19,
            tx_window_errors: 1 << 20,
            rx_compressed: 1 << 21,
            tx_compressed: 1 << 22,
            rx_nohandler: Some(1 << 23),
        };
        let bits = |fields: &[u32]| fields.iter().map(|i| 1_u64 << i).sum::<u64>();
        let expected = [
            ("receive_bytes", bits(&[2])),
            ("receive_packets", bits(&[0])),
            ("receive_errs", bits(&[4])),
            ("receive_drop", bits(&[6, 15])),
            ("receive_fifo", bits(&[14])),
            ("receive_frame", bits(&[10, 11, 12, 13])),
            ("receive_compressed", bits(&[21])),
            ("receive_multicast", bits(&[8])),
            ("transmit_bytes", bits(&[3])),
            ("transmit_packets", bits(&[1])),
            ("transmit_errs", bits(&[5])),
            ("transmit_drop", bits(&[7])),
            ("transmit_fifo", bits(&[18])),
            ("transmit_colls", bits(&[9])),
            ("transmit_carrier", bits(&[16, 17, 19, 20])),
            ("transmit_compressed", bits(&[22])),
            ("receive_nohandler", bits(&[23])),
        ];
        let mut link = Link::default();
        link.name = "eth9".to_owned();
        link.stats = Some(stats);
        let families = from_links(std::slice::from_ref(&link), None).expect("stats");
        assert_eq!(families.len(), expected.len());
        for (family, (statistic, value)) in families.iter().zip(expected) {
            assert_eq!(family.name, format!("node_network_{statistic}_total"));
            assert_eq!(
                family.help,
                format!("Network device statistic {statistic}.")
            );
            assert_eq!(family.kind, Kind::Counter);
            assert_eq!(
                family.value(&[("device", "eth9")]),
                Some(value as f64),
                "{statistic}"
            );
        }

        // The kernel's u64 sums wrap.
        link.stats = Some(Stats64 {
            rx_dropped: u64::MAX,
            rx_missed_errors: 2,
            ..stats
        });
        let families = from_links(std::slice::from_ref(&link), None).expect("stats");
        assert_eq!(families[3].value(&[("device", "eth9")]), Some(1.0));
    }

    #[test]
    fn links_without_rx_nohandler_or_stats() {
        let mut old = Link::default();
        old.name = "eth0".to_owned();
        old.stats = Some(Stats64 {
            rx_bytes: 7,
            ..Stats64::default()
        });
        // A kernel before 4.6: no rx_nohandler, no family, as without the sysfs file.
        let families = from_links(std::slice::from_ref(&old), None).expect("stats");
        assert_eq!(families.len(), 16);
        assert_eq!(families[0].value(&[("device", "eth0")]), Some(7.0));
        // No devices at all.
        assert_eq!(from_links(&[], None).expect("no links").len(), 16);
        // A link without IFLA_STATS64 fails the dump's reading (the collector reads the files).
        old.stats = None;
        let err = from_links(&[old], None).expect_err("no stats");
        assert_eq!(err, "eth0: no IFLA_STATS64");
    }

    /// On this machine, every value of the dump lies between two reads of /proc/net/dev (and of
    /// the sysfs `rx_nohandler` files), one before the dump and one after.
    #[test]
    fn the_live_dump_lies_between_two_reads_of_the_files() {
        let before = live_files();
        let dumped = from_links(
            &LinkSocket::new(Statistics::Included).dump().expect("dump"),
            None,
        )
        .expect("stats");
        let after = live_files();
        let names =
            |families: &[Family]| families.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&dumped), names(&before));
        assert_eq!(names(&dumped), names(&after));
        let mut compared = 0;
        for ((dumped, before), after) in dumped.iter().zip(&before).zip(&after) {
            let (before, after) = (by_device(before), by_device(after));
            for (device, value) in by_device(dumped) {
                // A device added or removed meanwhile is in one read only.
                let (Some(low), Some(high)) = (before.get(&device), after.get(&device)) else {
                    continue;
                };
                assert!(
                    *low <= value && value <= *high,
                    "{} {device}: {low} <= {value} <= {high}",
                    dumped.name
                );
                compared += 1;
            }
        }
        // At least loopback's 17 values.
        assert!(compared >= 17, "{compared}");
    }

    /// The live roots dump over a kept socket, which a failed dump leaves for the files; any
    /// other root reads the files.
    #[test]
    fn the_collector_dumps_under_the_live_roots_only_and_falls_back_to_the_files() {
        let timeout = Duration::from_secs(5);
        let live = Netdev::new(
            timeout,
            Path::new("/proc"),
            Path::new("/sys"),
            None,
            Arc::default(),
        );
        let socket = live.socket.as_ref().expect("a socket under the live roots");
        let devices = |families: &[Family]| by_device(&families[0]).into_keys().collect::<Vec<_>>();
        let dumped = live.collect().expect("collects");
        assert_eq!(devices(&dumped), devices(&live_files()));

        // A socket left with unread replies fails its dump: the files answer, with the same
        // families.
        socket.leave_replies_unread().expect("request");
        let fallen_back = live.collect().expect("reads the files");
        let names =
            |families: &[Family]| families.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&fallen_back), names(&dumped));
        assert_eq!(devices(&fallen_back), devices(&dumped));
        socket.dump().expect("the next dump opens a new socket");

        let fixture = Netdev::new(
            timeout,
            &crate::collect::host::tests::fixture_proc(),
            Path::new("/sys"),
            Some(Regex::new("^lo$").expect("valid regex")),
            Arc::default(),
        );
        assert!(fixture.socket.is_none());
        let families = fixture.collect().expect("reads the fixture");
        assert_eq!(
            families[..16],
            parse(
                include_str!("fixtures/proc/net/dev"),
                fixture.exclude.as_ref()
            )
            .expect("parses")
        );
        assert!(
            Netdev::new(
                timeout,
                Path::new("/proc"),
                &crate::collect::host::tests::fixture_sys(),
                None,
                Arc::default(),
            )
            .socket
            .is_none()
        );
    }

    fn value(families: &[Family], name: &str, device: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("device", device)])
    }

    #[test]
    fn parses_the_captured_net_dev() {
        let lo = Regex::new("^lo$").expect("valid regex");
        let families = parse(include_str!("fixtures/proc/net/dev"), Some(&lo)).expect("parses");
        assert_eq!(families.len(), 16);
        assert!(families.iter().all(|f| f.kind == Kind::Counter));
        // eth0: 131461266 4440 0 ... | 234256 2512 ...
        assert_eq!(
            value(&families, "node_network_receive_bytes_total", "eth0"),
            Some(131_461_266.0)
        );
        assert_eq!(
            value(&families, "node_network_receive_packets_total", "eth0"),
            Some(4440.0)
        );
        assert_eq!(
            value(&families, "node_network_transmit_bytes_total", "eth0"),
            Some(234_256.0)
        );
        assert_eq!(
            value(&families, "node_network_transmit_packets_total", "eth0"),
            Some(2512.0)
        );
        assert_eq!(
            value(&families, "node_network_receive_bytes_total", "ifb0"),
            Some(0.0)
        );
        assert_eq!(
            value(&families, "node_network_receive_bytes_total", "lo"),
            None
        );
        assert_eq!(families[0].samples.len(), 3);
    }

    #[test]
    fn every_column_lands_in_its_family() {
        let text = "h1\nh2\n  eth9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let families = parse(text, None).expect("parses");
        for (i, (name, _)) in COLUMNS.iter().enumerate() {
            assert_eq!(
                value(&families, name, "eth9"),
                Some((i + 1) as f64),
                "{name}"
            );
        }
        // Large counters leave no space after the colon on some kernels.
        let text =
            "h1\nh2\nveth1234567:18446744073709551615 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let families = parse(text, None).expect("parses");
        assert_eq!(
            value(&families, "node_network_receive_bytes_total", "veth1234567"),
            Some(u64::MAX as f64)
        );
    }

    #[test]
    fn malformed_lines_fail() {
        assert!(parse("h1\nh2\neth0 1 2\n", None).is_err());
        assert!(parse("h1\nh2\neth0: 1 2 3\n", None).is_err());
        assert!(
            parse(
                "h1\nh2\neth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n",
                None
            )
            .is_err()
        );
    }

    #[test]
    fn receive_nohandler_comes_from_sysfs_for_the_exported_devices() {
        let sysfs = crate::collect::host::tests::fixture_sys();
        let families = parse(include_str!("fixtures/proc/net/dev"), None).expect("parses");
        let families = NoHandler::new(sysfs).add_to(families);
        assert_eq!(families.len(), 17);
        let nohandler = families.last().expect("families");
        assert_eq!(nohandler.name, "node_network_receive_nohandler_total");
        assert_eq!(nohandler.kind, Kind::Counter);
        assert_eq!(
            nohandler.help,
            "Network device statistic receive_nohandler."
        );
        // Only /proc/net/dev's devices: the fixture's sysfs enp3s0 (17) is not one of them.
        let devices: Vec<&str> = nohandler
            .samples
            .iter()
            .map(|s| s.labels[0].1.as_ref())
            .collect();
        assert_eq!(devices, ["lo", "ifb0", "ifb1", "eth0"]);
        assert!(nohandler.samples.iter().all(|s| s.value == 0.0));
    }

    #[test]
    fn receive_nohandler_is_left_out_where_sysfs_has_no_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = |device: &str| {
            let path = dir.path().join("class/net").join(device).join("statistics");
            std::fs::create_dir_all(&path).expect("mkdir");
            path.join("rx_nohandler")
        };
        std::fs::write(stats("eth0"), "42\n").expect("write");
        std::fs::write(stats("eth1"), "many\n").expect("write");
        std::fs::create_dir(stats("eth2")).expect("mkdir");
        let text = "h1\nh2\n\
            eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
            eth1: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
            eth2: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n\
            eth3: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";
        let no_handler = NoHandler::new(dir.path().to_owned());
        let families = no_handler.add_to(parse(text, None).expect("parses"));
        let nohandler = families.last().expect("families");
        assert_eq!(nohandler.name, "node_network_receive_nohandler_total");
        assert_eq!(nohandler.samples.len(), 1);
        assert_eq!(nohandler.value(&[("device", "eth0")]), Some(42.0));
        // No sysfs at all: the family is left out.
        let no_handler = NoHandler::new(dir.path().join("missing"));
        assert_eq!(
            no_handler.add_to(parse(text, None).expect("parses")).len(),
            16
        );
        // No devices.
        assert_eq!(
            no_handler
                .add_to(parse("h1\nh2\n", None).expect("parses"))
                .len(),
            16
        );
    }
}
