//! `netdev`: per-interface counters from /proc/net/dev, named as node_exporter 1.5's
//! `netdev_linux.go` names its /proc/net/dev statistics:
//! `node_network_<direction>_<statistic>_total{device}`.

use regex::Regex;

use super::procfs::parse_u64;
use crate::collect::Family;

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
}
