//! `arp`: neighbour table entries per device from /proc/net/arp, as node_exporter 1.5's
//! `arp_linux.go`: `node_arp_entries{device}`, every entry counted whatever its flags.

use std::collections::BTreeMap;

use crate::collect::Family;

/// Columns of /proc/net/arp: IP address, HW type, Flags, HW address, Mask, Device.
const MIN_COLUMNS: usize = 6;

/// Parses /proc/net/arp: a header line (`IP address ...`), then one line per entry whose last
/// column is the device.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for line in text.lines() {
        let mut columns = 0;
        let mut first = None;
        let mut last = "";
        for column in line.split_ascii_whitespace() {
            first.get_or_insert(column);
            last = column;
            columns += 1;
        }
        if columns < MIN_COLUMNS {
            return Err(format!(
                "{columns} columns, expected at least {MIN_COLUMNS}, in line {line:?}"
            ));
        }
        if first != Some("IP") {
            *counts.entry(last).or_default() += 1;
        }
    }
    let mut family = Family::gauge("node_arp_entries", "ARP entries by device");
    for (device, count) in counts {
        family.push([("device", device.to_owned())], count as f64);
    }
    Ok(vec![family])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    #[test]
    fn parses_the_captured_arp_table() {
        let families = parse(include_str!("fixtures/proc/net/arp")).expect("parses");
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].kind, Kind::Gauge);
        assert_eq!(families[0].samples.len(), 1);
        assert_eq!(families[0].value(&[("device", "eth0")]), Some(1.0));
    }

    #[test]
    fn entries_are_counted_per_device() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    10.0.0.1         0x1         0x2         52:54:00:00:00:01     *        eth0\n\
                    10.0.0.2         0x1         0x0         00:00:00:00:00:00     *        eth0\n\
                    192.168.1.1      0x1         0x2         52:54:00:00:00:02     *        br-lan\n";
        let family = &parse(text).expect("parses")[0];
        assert_eq!(family.value(&[("device", "eth0")]), Some(2.0));
        assert_eq!(family.value(&[("device", "br-lan")]), Some(1.0));
        // Devices in order.
        assert_eq!(family.samples[0].labels[0].1, "br-lan");
        // Only the header: no samples.
        let header = text.lines().next().expect("header");
        assert!(parse(header).expect("parses")[0].samples.is_empty());
    }

    #[test]
    fn short_lines_fail() {
        assert!(
            parse("IP address HW type Flags HW address Mask Device\n10.0.0.1 0x1 eth0\n").is_err()
        );
        assert!(parse("\n").is_err());
    }
}
