//! `schedstat`: per-CPU scheduler statistics from /proc/schedstat, as node_exporter 1.5's
//! `schedstat_linux.go`: `node_schedstat_running_seconds_total{cpu}` (time spent running
//! tasks), `node_schedstat_waiting_seconds_total{cpu}` (time tasks spent waiting to run) and
//! `node_schedstat_timeslices_total{cpu}`, the 7th, 8th and 9th numbers of each `cpuN` line
//! (nanoseconds, nanoseconds, count; Documentation/scheduler/sched-stats.rst). The `domainN`,
//! `version` and `timestamp` lines are not read.
//!
//! A kernel built without `CONFIG_SCHEDSTATS` has no such file: no data, not a failure.

use std::collections::BTreeSet;

use super::procfiles::ProcFiles;
use super::procfs::parse_u64;
use crate::collect::{Error, Family};

/// Reads /proc/schedstat, when the kernel has it.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    Ok(files.optional("schedstat", parse)?.unwrap_or_default())
}

/// Parses the file's `cpuN` lines.
fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut running = Family::counter(
        "node_schedstat_running_seconds_total",
        "Number of seconds CPU spent running a process.",
    );
    let mut waiting = Family::counter(
        "node_schedstat_waiting_seconds_total",
        "Number of seconds spent by processing waiting for this CPU.",
    );
    let mut timeslices = Family::counter(
        "node_schedstat_timeslices_total",
        "Number of timeslices executed by CPU.",
    );
    let mut seen = BTreeSet::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(cpu) = fields
            .next()
            .and_then(|first| first.strip_prefix("cpu"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let numbers: Vec<&str> = fields.collect();
        let [_, _, _, _, _, _, run, wait, slices, ..] = numbers[..] else {
            return Err(format!("cpu{cpu}: {} numbers, expected 9", numbers.len()));
        };
        if !seen.insert(cpu) {
            return Err(format!("cpu{cpu} appears twice"));
        }
        let (run, wait, slices) = (
            parse_u64(run, "running")?,
            parse_u64(wait, "waiting")?,
            parse_u64(slices, "timeslices")?,
        );
        running.push([("cpu", cpu.to_owned())], run as f64 / 1e9);
        waiting.push([("cpu", cpu.to_owned())], wait as f64 / 1e9);
        timeslices.push([("cpu", cpu.to_owned())], slices as f64);
    }
    if seen.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![running, waiting, timeslices])
}

/// The fuzz driver's entry (`host::fuzzing`).
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    #[test]
    fn reads_the_cpu_lines() {
        let families = collect(&files_in(&fixture_proc())).expect("reads");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_schedstat_running_seconds_total",
                "node_schedstat_waiting_seconds_total",
                "node_schedstat_timeslices_total",
            ]
        );
        assert!(families.iter().all(|f| f.kind == Kind::Counter));
        assert!(families.iter().all(|f| f.samples.len() == 2));
        // cpu1 0 0 0 0 0 0 2180563278404 248977203071 3119867
        let cpu1 = [("cpu", "1")];
        assert_eq!(families[0].value(&cpu1), Some(2_180_563_278_404.0 / 1e9));
        assert_eq!(families[1].value(&cpu1), Some(248_977_203_071.0 / 1e9));
        assert_eq!(families[2].value(&cpu1), Some(3_119_867.0));
        assert_eq!(
            families[0].value(&[("cpu", "0")]),
            Some(2_361_934_564_866.0 / 1e9)
        );
    }

    #[test]
    fn an_absent_file_is_no_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
    }

    #[test]
    fn malformed_cpu_lines_fail() {
        for text in [
            "cpu0 0 0 0 0 0 0 1 2\n",
            "cpu0 0 0 0 0 0 0 1 2 x\n",
            "cpu0 0 0 0 0 0 0 1 -2 3\n",
            "cpu0 0 0 0 0 0 0 1 2 3\ncpu0 0 0 0 0 0 0 1 2 3\n",
            "cpu0\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
        // Other lines, and `cpu` words that are not a CPU, are skipped.
        assert_eq!(parse("version 15\ncpux 1\ndomain0 3 1 2\n"), Ok(Vec::new()));
    }
}
