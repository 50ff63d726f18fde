//! `stat`: boot time, context switches, forks, interrupts and process states from /proc/stat,
//! as node_exporter 1.5's `stat_linux.go`.

use super::procfs::parse_u64;
use crate::collect::Family;

/// Parses /proc/stat into the `stat` families; lines the kernel does not print are left out.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut families = Vec::with_capacity(6);
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(key), Some(first)) = (fields.next(), fields.next()) else {
            continue;
        };
        let family = match key {
            "btime" => Family::single_gauge(
                "node_boot_time_seconds",
                "Node boot time, in unixtime.",
                value(first, key)?,
            ),
            "ctxt" => counter(
                "node_context_switches_total",
                "Total number of context switches.",
                value(first, key)?,
            ),
            "processes" => counter(
                "node_forks_total",
                "Total number of forks.",
                value(first, key)?,
            ),
            // The first number of the `intr` line is the total; per-IRQ counts follow.
            "intr" => counter(
                "node_intr_total",
                "Total number of interrupts serviced.",
                value(first, key)?,
            ),
            "procs_running" => Family::single_gauge(
                "node_procs_running",
                "Number of processes in runnable state.",
                value(first, key)?,
            ),
            "procs_blocked" => Family::single_gauge(
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                value(first, key)?,
            ),
            _ => continue,
        };
        families.push(family);
    }
    Ok(families)
}

fn value(field: &str, key: &str) -> Result<f64, String> {
    parse_u64(field, key).map(|v| v as f64)
}

fn counter(name: &'static str, help: &'static str, value: f64) -> Family {
    let mut family = Family::counter(name, help);
    family.push_unlabelled(value);
    family
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn get<'a>(families: &'a [Family], name: &str) -> &'a Family {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn parses_the_captured_proc_stat() {
        let families = parse(include_str!("fixtures/proc/stat")).expect("parses");
        let expect = [
            ("node_boot_time_seconds", Kind::Gauge, 1_795_559_293.0),
            ("node_context_switches_total", Kind::Counter, 312_239.0),
            ("node_forks_total", Kind::Counter, 5854.0),
            ("node_intr_total", Kind::Counter, 179_059.0),
            ("node_procs_running", Kind::Gauge, 1.0),
            ("node_procs_blocked", Kind::Gauge, 0.0),
        ];
        assert_eq!(families.len(), expect.len());
        for (name, kind, value) in expect {
            let family = get(&families, name);
            assert_eq!(family.kind, kind, "{name}");
            assert_eq!(family.samples.len(), 1, "{name}");
            assert_eq!(family.samples[0].value, value, "{name}");
            assert!(family.samples[0].labels.is_empty());
        }
    }

    #[test]
    fn a_bad_number_is_an_error() {
        assert!(parse("ctxt 12x\n").is_err());
    }
}
