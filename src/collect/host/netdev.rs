//! `netdev`: per-interface counters from /proc/net/dev, named as node_exporter 1.5's
//! `netdev_linux.go` names its /proc/net/dev statistics:
//! `node_network_<direction>_<statistic>_total{device}`.
//!
//! node_exporter 1.5 reads the statistics over netlink by default, which adds
//! `node_network_receive_nohandler_total`; /proc/net/dev lacks that column, so [`NoHandler`] reads
//! it from sysfs `class/net/<device>/statistics/rx_nohandler` for each device exported.

use std::io;
use std::path::PathBuf;

use regex::Regex;

use super::procfs::{ReadBuffer, parse_u64};
use crate::collect::{Error, Family};

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

/// Parses /proc/net/dev, skipping interfaces that match `exclude`.
pub(super) fn parse(text: &str, exclude: Option<&Regex>) -> Result<Vec<Family>, String> {
    let mut families: Vec<Family> = COLUMNS
        .iter()
        .map(|(name, help)| Family::counter(*name, *help))
        .collect();
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
        let mut nohandler = Family::counter(
            "node_network_receive_nohandler_total",
            "Network device statistic receive_nohandler.",
        );
        let devices = families.first().map_or(&[][..], |f| f.samples.as_slice());
        for sample in devices {
            let Some((_, device)) = sample.labels.iter().find(|(name, _)| name == "device") else {
                continue;
            };
            let path = self
                .sysfs
                .join("class/net")
                .join(device)
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
    use super::*;
    use crate::collect::family::Kind;

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
            .map(|s| s.labels[0].1.as_str())
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
