//! `diskstats`: block device I/O counters from /proc/diskstats, named as node_exporter 1.5's
//! `diskstats_linux.go`.
//!
//! A line is `major minor name` followed by 11 fields (kernel < 4.18), 15 (with discards,
//! 4.18) or 17 (with flushes, 5.5). Families are emitted for the fields a line has, as node_exporter
//! does; lines with fewer than 11 fields (2.6-era partitions) are skipped like procfs skips
//! them. Sectors are always 512 bytes in this file, whatever the device's block size.

use regex::Regex;

use super::procfs::parse_u64;
use crate::collect::family::intern;
use crate::collect::{Family, Kind};

/// Bytes per sector in /proc/diskstats (kernel `SECTOR_SIZE`).
const SECTOR_BYTES: f64 = 512.0;
/// Ticks in /proc/diskstats are milliseconds.
const SECONDS_PER_TICK: f64 = 0.001;
/// Fewest fields after the device name that make a usable line.
const MIN_FIELDS: usize = 11;

/// One column: family name, help, kind and the factor that turns it into base units.
struct Column {
    name: &'static str,
    help: &'static str,
    kind: Kind,
    scale: f64,
}

const fn counter(name: &'static str, help: &'static str, scale: f64) -> Column {
    Column {
        name,
        help,
        kind: Kind::Counter,
        scale,
    }
}

/// The columns in file order, with node_exporter 1.5's names and help texts.
const COLUMNS: [Column; 17] = [
    counter(
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        1.0,
    ),
    counter(
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        1.0,
    ),
    counter(
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        SECTOR_BYTES,
    ),
    counter(
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        SECONDS_PER_TICK,
    ),
    counter(
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        1.0,
    ),
    counter(
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        1.0,
    ),
    counter(
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
    ),
    counter(
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        SECONDS_PER_TICK,
    ),
    Column {
        name: "node_disk_io_now",
        help: "The number of I/Os currently in progress.",
        kind: Kind::Gauge,
        scale: 1.0,
    },
    counter(
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        SECONDS_PER_TICK,
    ),
    counter(
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        SECONDS_PER_TICK,
    ),
    counter(
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        1.0,
    ),
    counter(
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        1.0,
    ),
    // node_exporter exports discarded sectors, not bytes.
    counter(
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        1.0,
    ),
    counter(
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        SECONDS_PER_TICK,
    ),
    counter(
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        1.0,
    ),
    counter(
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        SECONDS_PER_TICK,
    ),
];

/// Parses /proc/diskstats, skipping devices that match `exclude`.
pub(super) fn parse(text: &str, exclude: Option<&Regex>) -> Result<Vec<Family>, String> {
    let mut families: Vec<Family> = COLUMNS
        .iter()
        .map(|c| Family::new(c.name, c.help, c.kind))
        .collect();
    let mut values = [0u64; COLUMNS.len()];
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(_major), Some(_minor), Some(device)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if exclude.is_some_and(|re| re.is_match(device)) {
            continue;
        }
        let mut count = 0;
        for field in fields {
            if count == values.len() {
                break;
            }
            values[count] = parse_u64(field, device)?;
            count += 1;
        }
        if count < MIN_FIELDS {
            continue;
        }
        let device = intern(device);
        for ((family, column), value) in families.iter_mut().zip(&COLUMNS).zip(&values[..count]) {
            family.push([("device", device.clone())], *value as f64 * column.scale);
        }
    }
    families.retain(|f| !f.samples.is_empty());
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(families: &[Family], name: &str, device: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("device", device)])
    }

    fn default_exclude() -> Regex {
        Regex::new(crate::config::DEFAULT_DISK_DEVICE_EXCLUDE).expect("valid regex")
    }

    #[test]
    fn parses_the_captured_diskstats() {
        let text = include_str!("fixtures/proc/diskstats");
        let families = parse(text, Some(&default_exclude())).expect("parses");
        assert_eq!(families.len(), 17);
        // vda 33234 6788 3468930 144592 8235 23164 2549384 10421 0 37556 155896 4354 27 250952 837 1057 45
        let expect = [
            ("node_disk_reads_completed_total", 33234.0),
            ("node_disk_reads_merged_total", 6788.0),
            ("node_disk_read_bytes_total", 3_468_930.0 * 512.0),
            ("node_disk_read_time_seconds_total", 144.592),
            ("node_disk_writes_completed_total", 8235.0),
            ("node_disk_writes_merged_total", 23164.0),
            ("node_disk_written_bytes_total", 2_549_384.0 * 512.0),
            ("node_disk_write_time_seconds_total", 10.421),
            ("node_disk_io_now", 0.0),
            ("node_disk_io_time_seconds_total", 37.556),
            // node_exporter multiplies by 0.001 too, so values match it to the last bit.
            (
                "node_disk_io_time_weighted_seconds_total",
                155_896.0 * 0.001,
            ),
            ("node_disk_discards_completed_total", 4354.0),
            ("node_disk_discards_merged_total", 27.0),
            ("node_disk_discarded_sectors_total", 250_952.0),
            ("node_disk_discard_time_seconds_total", 0.837),
            ("node_disk_flush_requests_total", 1057.0),
            ("node_disk_flush_requests_time_seconds_total", 0.045),
        ];
        for (name, expected) in expect {
            assert_eq!(value(&families, name, "vda"), Some(expected), "{name}");
        }
        // loop* and zram* match the default exclude.
        for family in &families {
            assert_eq!(family.samples.len(), 1, "{}", family.name);
        }
        let io_now = families.iter().find(|f| f.name == "node_disk_io_now");
        assert_eq!(io_now.map(|f| f.kind), Some(Kind::Gauge));
    }

    #[test]
    fn without_exclude_every_device_is_reported() {
        let families = parse(include_str!("fixtures/proc/diskstats"), None).expect("parses");
        assert_eq!(families[0].samples.len(), 10);
    }

    #[test]
    fn older_kernels_have_fewer_families() {
        // Kernel 4.4: 11 fields, plus a 2.6-style partition line with 4 fields.
        let text = "   8       0 sda 100 2 300 4 5 6 700 8 1 10 11\n\
                    \x20  8       1 sda1 1 2 3 4\n";
        let families = parse(text, None).expect("parses");
        assert_eq!(families.len(), 11);
        assert_eq!(
            value(&families, "node_disk_written_bytes_total", "sda"),
            Some(700.0 * 512.0)
        );
        assert_eq!(
            value(&families, "node_disk_io_time_weighted_seconds_total", "sda"),
            Some(0.011)
        );
        assert_eq!(
            value(&families, "node_disk_reads_completed_total", "sda1"),
            None
        );
        assert!(!families.iter().any(|f| f.name.contains("discard")));

        // Kernel 4.18: discards but no flushes.
        let text = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15\n";
        let families = parse(text, None).expect("parses");
        assert_eq!(families.len(), 15);
        assert_eq!(
            value(&families, "node_disk_discard_time_seconds_total", "sda"),
            Some(0.015)
        );
        assert!(!families.iter().any(|f| f.name.contains("flush")));
    }

    #[test]
    fn extra_future_columns_are_ignored_and_garbage_fails() {
        let text = "8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19\n";
        let families = parse(text, None).expect("parses");
        assert_eq!(families.len(), 17);
        assert_eq!(
            value(
                &families,
                "node_disk_flush_requests_time_seconds_total",
                "sda"
            ),
            Some(0.017)
        );
        assert!(parse("8 0 sda 1 x 3 4 5 6 7 8 9 10 11\n", None).is_err());
    }
}
