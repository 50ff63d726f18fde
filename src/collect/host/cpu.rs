//! `cpu`: per-CPU time by mode from the `cpuN` lines of /proc/stat.
//!
//! node_exporter 1.5 (`cpu_linux.go`) emits `node_cpu_seconds_total{cpu,mode}` for the eight
//! modes and, with `--collector.cpu.guest` (on by default), `node_cpu_guest_seconds_total` for
//! guest and guest_nice time. The aggregate `cpu` line is not exported.

use std::borrow::Cow;

use super::procfs::parse_u64;
use crate::collect::Family;
use crate::collect::family::intern;

/// The modes of `node_cpu_seconds_total`, in /proc/stat column order.
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// Columns of a `cpuN` line: the eight modes, then guest and guest_nice.
const COLUMNS: usize = 10;

/// The kernel's USER_HZ, the unit of /proc/stat times (node_exporter assumes 100).
pub(super) fn ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        hz => hz as f64,
    }
}

/// Parses /proc/stat into the two CPU time families.
pub(super) fn parse(text: &str, ticks_per_second: f64) -> Result<Vec<Family>, String> {
    let mut seconds = Family::counter(
        "node_cpu_seconds_total",
        "Seconds the CPUs spent in each mode.",
    );
    let mut guest = Family::counter(
        "node_cpu_guest_seconds_total",
        "Seconds the CPUs spent in guests (VMs) for each mode.",
    );
    for line in text.lines() {
        // Per-CPU lines are `cpu<N> ...`; the aggregate line is `cpu  ...`.
        let Some(rest) = line.strip_prefix("cpu") else {
            continue;
        };
        if !rest.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        let mut fields = rest.split_ascii_whitespace();
        let Some(cpu) = fields.next() else {
            continue;
        };
        // Older kernels have fewer columns; missing ones read as zero, as in node_exporter.
        let mut ticks = [0u64; COLUMNS];
        for (slot, field) in ticks.iter_mut().zip(fields) {
            *slot = parse_u64(field, "cpu time")?;
        }
        let cpu = intern(cpu);
        for (mode, value) in MODES.iter().zip(ticks) {
            seconds.push(
                [("cpu", cpu.clone()), ("mode", Cow::Borrowed(*mode))],
                value as f64 / ticks_per_second,
            );
        }
        guest.push(
            [("cpu", cpu.clone()), ("mode", Cow::Borrowed("user"))],
            ticks[8] as f64 / ticks_per_second,
        );
        guest.push(
            [("cpu", cpu), ("mode", Cow::Borrowed("nice"))],
            ticks[9] as f64 / ticks_per_second,
        );
    }
    Ok(vec![seconds, guest])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn value(family: &Family, cpu: &str, mode: &str) -> f64 {
        family
            .samples
            .iter()
            .find(|s| s.labels[0].1 == cpu && s.labels[1].1 == mode)
            .unwrap_or_else(|| panic!("no sample cpu={cpu} mode={mode}"))
            .value
    }

    #[test]
    fn parses_the_captured_proc_stat() {
        let text = include_str!("fixtures/proc/stat");
        let families = parse(text, 100.0).expect("parses");
        let [seconds, guest] = families.as_slice() else {
            panic!("two families expected");
        };
        assert_eq!(seconds.kind, Kind::Counter);
        // 2 CPUs × 8 modes; the aggregate line is skipped.
        assert_eq!(seconds.samples.len(), 16);
        assert_eq!(guest.samples.len(), 4);
        // cpu0 3946 0 1073 42969 663 0 14 11 0 0
        assert_eq!(value(seconds, "0", "user"), 39.46);
        assert_eq!(value(seconds, "0", "system"), 10.73);
        assert_eq!(value(seconds, "0", "idle"), 429.69);
        assert_eq!(value(seconds, "0", "iowait"), 6.63);
        assert_eq!(value(seconds, "0", "softirq"), 0.14);
        assert_eq!(value(seconds, "0", "steal"), 0.11);
        // cpu1 4840 0 1434 39123 3192 0 36 19 0 0
        assert_eq!(value(seconds, "1", "user"), 48.4);
        assert_eq!(value(seconds, "1", "iowait"), 31.92);
        assert_eq!(value(guest, "1", "user"), 0.0);
        assert_eq!(
            seconds.samples[0].labels[0].0, "cpu",
            "label names and order are cpu, mode"
        );
        assert_eq!(seconds.samples[0].labels[1].0, "mode");
    }

    #[test]
    fn guest_columns_and_short_lines() {
        let text = "cpu  1 2 3 4 5 6 7 8 9 10\n\
                    cpu0 100 200 300 400 500 600 700 800 900 1000\n\
                    cpu1 100 200 300 400\n";
        let families = parse(text, 100.0).expect("parses");
        assert_eq!(value(&families[0], "0", "steal"), 8.0);
        assert_eq!(value(&families[1], "0", "user"), 9.0);
        assert_eq!(value(&families[1], "0", "nice"), 10.0);
        // A 2.6-era line with four columns: the rest are zero.
        assert_eq!(value(&families[0], "1", "idle"), 4.0);
        assert_eq!(value(&families[0], "1", "iowait"), 0.0);
        assert_eq!(value(&families[1], "1", "nice"), 0.0);
    }

    #[test]
    fn user_hz_scales_ticks() {
        let families = parse("cpu0 250 0 0 0 0 0 0 0 0 0\n", 250.0).expect("parses");
        assert_eq!(value(&families[0], "0", "user"), 1.0);
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let err = parse("cpu0 1 x 3\n", 100.0).expect_err("must fail");
        assert!(err.contains("\"x\""), "{err}");
    }
}
