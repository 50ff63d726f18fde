//! `interrupts` (off by default, as in node_exporter): `node_interrupts_total{cpu,type,info,devices}`
//! from /proc/interrupts, as node_exporter 1.5's `interrupts_linux.go` reads it. The header
//! names one column per online CPU; `cpu` is the column's position. For a numbered interrupt
//! `type` is its number, `info` the column after the counts (the controller) and `devices`
//! the rest joined by single spaces; for a named one (`LOC`, `NMI`, ...) `info` is the whole
//! description and `devices` empty. Rows without a description (`ERR`, `MIS`, which have one
//! count) are skipped, and a repeated name keeps its last row, as upstream.

use crate::collect::Family;

/// Parses the file.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut lines = text.lines();
    let cpus = lines
        .next()
        .ok_or("empty /proc/interrupts")?
        .split_ascii_whitespace()
        .count();
    // (type, info, devices, counts), in file order.
    let mut rows: Vec<(&str, String, String, Vec<f64>)> = Vec::new();
    for line in lines {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        if parts.len() < cpus + 2 {
            continue;
        }
        let name = parts[0].strip_suffix(':').unwrap_or(parts[0]);
        let counts = parts[1..=cpus]
            .iter()
            .map(|value| {
                value
                    .parse::<f64>()
                    .map_err(|_| format!("{name}: count {value:?} is not a number"))
            })
            .collect::<Result<Vec<f64>, String>>()?;
        let (info, devices) = if name.parse::<i64>().is_ok() {
            (parts[cpus + 1].to_owned(), parts[cpus + 2..].join(" "))
        } else {
            (parts[cpus + 1..].join(" "), String::new())
        };
        rows.retain(|(existing, ..)| *existing != name);
        rows.push((name, info, devices, counts));
    }
    let mut family = Family::counter("node_interrupts_total", "Interrupt details.");
    for (name, info, devices, counts) in rows {
        for (cpu, count) in counts.into_iter().enumerate() {
            family.push(
                [
                    ("cpu", cpu.to_string()),
                    ("type", name.to_owned()),
                    ("info", info.clone()),
                    ("devices", devices.clone()),
                ],
                count,
            );
        }
    }
    Ok(vec![family])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn value(families: &[Family], cpu: &str, kind: &str) -> Option<f64> {
        families[0].value(&[("cpu", cpu), ("type", kind)])
    }

    fn labels(families: &[Family], cpu: &str, kind: &str) -> Vec<(String, String)> {
        let sample = families[0]
            .samples
            .iter()
            .find(|s| s.labels[0].1 == cpu && s.labels[1].1 == kind)
            .expect("sample");
        sample
            .labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_the_captured_file() {
        let text =
            std::fs::read_to_string(crate::collect::host::tests::fixture_proc().join("interrupts"))
                .expect("fixture");
        let families = parse(&text).expect("parses");
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].name, "node_interrupts_total");
        assert_eq!(families[0].help, "Interrupt details.");
        assert_eq!(families[0].kind, Kind::Counter);
        // 19 numbered and 16 named rows with two CPUs; ERR and MIS have no description.
        assert_eq!(families[0].samples.len(), 2 * (35 - 2));
        assert_eq!(value(&families, "1", "26"), Some(1635.0));
        assert_eq!(value(&families, "0", "LOC"), Some(4833880.0));
        assert_eq!(value(&families, "1", "LOC"), Some(4855164.0));
        assert_eq!(value(&families, "0", "ERR"), None);
        assert_eq!(
            labels(&families, "0", "28"),
            [
                ("cpu".to_owned(), "0".to_owned()),
                ("type".to_owned(), "28".to_owned()),
                ("info".to_owned(), "PCI-MSIX-0000:00:01.0".to_owned()),
                ("devices".to_owned(), "0-edge virtio0-config".to_owned()),
            ]
        );
        assert_eq!(
            labels(&families, "1", "NMI")[2..],
            [
                ("info".to_owned(), "Non-maskable interrupts".to_owned()),
                ("devices".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn edge_rows() {
        let text = "           CPU0       CPU1       CPU2\n\
                    \x20 0:         45          0          0   IO-APIC   2-edge      timer\n\
                    \x20 8:          0          0          1   IO-APIC   8-edge\n\
                    \x20 9:          0          0          0   IO-APIC\n\
                    NMI:          1          2          3\n\
                    LOC:         10         20         30   Local timer interrupts\n\
                    LOC:         11         21         31   Local timer interrupts\n\
                    ERR:          7\n\
                    MIS:          0\n\
                    \n";
        let families = parse(text).expect("parses");
        // timer with a device, IRQ 8 with one word after the controller, IRQ 9 with none
        // (empty devices), LOC; NMI without a description is a short row, skipped like ERR
        // and MIS.
        assert_eq!(families[0].samples.len(), 4 * 3);
        assert_eq!(labels(&families, "2", "0")[3].1, "2-edge timer");
        assert_eq!(labels(&families, "2", "8")[2].1, "IO-APIC");
        assert_eq!(labels(&families, "2", "8")[3].1, "8-edge");
        assert_eq!(value(&families, "0", "9"), Some(0.0));
        assert_eq!(labels(&families, "0", "9")[3].1, "");
        assert_eq!(value(&families, "0", "NMI"), None);
        // A repeated name keeps its last row.
        assert_eq!(value(&families, "2", "LOC"), Some(31.0));
        assert_eq!(
            families[0]
                .samples
                .iter()
                .filter(|s| s.labels[1].1 == "LOC")
                .count(),
            3
        );
    }

    #[test]
    fn malformed_files() {
        assert!(parse("").is_err());
        assert!(parse("  CPU0\n 1:  x  IO-APIC  1-edge  i8042\n").is_err());
        // Only a header: an empty family.
        let families = parse("  CPU0 CPU1\n").expect("parses");
        assert!(families[0].samples.is_empty());
        // A header without CPUs: every row's info and devices are its fields.
        let families = parse("\nLOC: Local timer\n").expect("parses");
        assert!(families[0].samples.is_empty());
    }
}
