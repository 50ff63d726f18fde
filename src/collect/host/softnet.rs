//! `softnet`: per-CPU packet processing counters from /proc/net/softnet_stat, as node_exporter
//! 1.5's `softnet_linux.go`: `node_softnet_{processed,dropped,times_squeezed}_total{cpu}` from
//! the first three (hexadecimal, 32-bit) columns.
//!
//! The `cpu` label is the CPU number the kernel prints in column 13 (Linux 5.10+), as newer
//! node_exporter does, and the line number on older kernels, as 1.5 always does. The two agree
//! unless a CPU is offline: the kernel leaves offline CPUs out, so line numbers would shift.

use crate::collect::Family;

/// node_exporter's minimum column count (kernels since 2.6 print at least 9).
const MIN_COLUMNS: usize = 9;
/// Column of the CPU number, on kernels that print it.
const CPU_COLUMN: usize = 12;

/// Parses /proc/net/softnet_stat.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut processed = Family::counter(
        "node_softnet_processed_total",
        "Number of processed packets",
    );
    let mut dropped = Family::counter("node_softnet_dropped_total", "Number of dropped packets");
    let mut squeezed = Family::counter(
        "node_softnet_times_squeezed_total",
        "Number of times processing packets ran out of quota",
    );
    for (line_number, line) in text.lines().enumerate() {
        let columns: Vec<&str> = line.split_ascii_whitespace().collect();
        if columns.len() < MIN_COLUMNS {
            return Err(format!(
                "line {}: {} columns, expected at least {MIN_COLUMNS}",
                line_number + 1,
                columns.len()
            ));
        }
        let cpu = match columns.get(CPU_COLUMN) {
            Some(field) => hex_u32(field, "cpu")?,
            None => u32::try_from(line_number).map_err(|_| "too many lines".to_owned())?,
        }
        .to_string();
        processed.push(
            [("cpu", cpu.clone())],
            hex_u32(columns[0], "processed")?.into(),
        );
        dropped.push(
            [("cpu", cpu.clone())],
            hex_u32(columns[1], "dropped")?.into(),
        );
        squeezed.push([("cpu", cpu)], hex_u32(columns[2], "time_squeeze")?.into());
    }
    Ok(vec![processed, dropped, squeezed])
}

fn hex_u32(field: &str, what: &str) -> Result<u32, String> {
    u32::from_str_radix(field, 16)
        .map_err(|_| format!("{what}: {field:?} is not a 32-bit hexadecimal number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn value(families: &[Family], name: &str, cpu: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("cpu", cpu)])
    }

    #[test]
    fn parses_the_captured_softnet_stat() {
        let families = parse(include_str!("fixtures/proc/net/softnet_stat")).expect("parses");
        assert!(families.iter().all(|f| f.kind == Kind::Counter));
        assert!(families.iter().all(|f| f.samples.len() == 2));
        // 0086ddd0 00000000 00000007 ... / 0029db3b 00000000 00000006 ...
        let processed = "node_softnet_processed_total";
        assert_eq!(value(&families, processed, "0"), Some(8_838_608.0));
        assert_eq!(value(&families, processed, "1"), Some(2_743_099.0));
        assert_eq!(
            value(&families, "node_softnet_dropped_total", "0"),
            Some(0.0)
        );
        let squeezed = "node_softnet_times_squeezed_total";
        assert_eq!(value(&families, squeezed, "0"), Some(7.0));
        assert_eq!(value(&families, squeezed, "1"), Some(6.0));
    }

    #[test]
    fn the_cpu_is_the_kernels_number_where_it_prints_one() {
        // CPU 1 offline: the second line is CPU 2.
        let text = "00000001 00000002 00000003 0 0 0 0 0 0 0 0 0 00000000 0 0\n\
                    ffffffff 00000005 00000006 0 0 0 0 0 0 0 0 0 00000002 0 0\n";
        let families = parse(text).expect("parses");
        let processed = "node_softnet_processed_total";
        assert_eq!(value(&families, processed, "0"), Some(1.0));
        assert_eq!(value(&families, processed, "2"), Some(f64::from(u32::MAX)));
        assert_eq!(
            value(&families, "node_softnet_dropped_total", "2"),
            Some(5.0)
        );
        assert_eq!(
            value(&families, "node_softnet_times_squeezed_total", "2"),
            Some(6.0)
        );
        // Older kernels (9 to 11 columns): the line number.
        let families = parse("a 0 0 0 0 0 0 0 0\nb 0 0 0 0 0 0 0 0 0 0\n").expect("parses");
        assert_eq!(value(&families, processed, "0"), Some(10.0));
        assert_eq!(value(&families, processed, "1"), Some(11.0));
    }

    #[test]
    fn malformed_lines_fail() {
        assert!(parse("0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse("x 0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse("100000000 0 0 0 0 0 0 0 0\n").is_err());
        assert!(parse("0 0 0 0 0 0 0 0 0 0 0 0 zz\n").is_err());
        assert!(parse("\n").is_err());
        assert_eq!(parse("").expect("empty")[0].samples.len(), 0);
    }
}
