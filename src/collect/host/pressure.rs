//! `pressure`: pressure stall information (PSI) totals from /proc/pressure.
//!
//! `some total=` becomes `node_pressure_<resource>_waiting_seconds_total` and `full total=`
//! `..._stalled_seconds_total` (µs → s), as node_exporter's `pressure_linux.go`: cpu exports
//! only "some" (node_exporter 1.5 ignores the "full" line newer kernels print for cpu), irq
//! (kernel 6.1+, newer node_exporter) only "full". A kernel without PSI has no
//! /proc/pressure: that is "not applicable", so the collection succeeds with no families and
//! says so once at debug level.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::procfs::{ReadBuffer, parse_error, parse_u64};
use crate::collect::{BlockingCollector, Error, Family};

/// A PSI resource: file name, and the families for its "some" and "full" lines.
struct Resource {
    file: &'static str,
    some: Option<(&'static str, &'static str)>,
    full: Option<(&'static str, &'static str)>,
}

const RESOURCES: [Resource; 4] = [
    Resource {
        file: "cpu",
        some: Some((
            "node_pressure_cpu_waiting_seconds_total",
            "Total time in seconds that processes have waited for CPU time",
        )),
        full: None,
    },
    Resource {
        file: "io",
        some: Some((
            "node_pressure_io_waiting_seconds_total",
            "Total time in seconds that processes have waited due to IO congestion",
        )),
        full: Some((
            "node_pressure_io_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IO congestion",
        )),
    },
    Resource {
        file: "memory",
        some: Some((
            "node_pressure_memory_waiting_seconds_total",
            "Total time in seconds that processes have waited for memory",
        )),
        full: Some((
            "node_pressure_memory_stalled_seconds_total",
            "Total time in seconds no process could make progress due to memory congestion",
        )),
    },
    Resource {
        file: "irq",
        some: None,
        full: Some((
            "node_pressure_irq_stalled_seconds_total",
            "Total time in seconds no process could make progress due to IRQ congestion",
        )),
    },
];

/// The `pressure` collector.
pub(super) struct Pressure {
    timeout: Duration,
    state: Arc<State>,
}

struct State {
    dir: PathBuf,
    buffer: ReadBuffer,
    /// Set once "PSI unavailable" has been logged.
    logged_unavailable: AtomicBool,
}

impl Pressure {
    /// A collector reading `<procfs>/pressure/*`.
    pub(super) fn new(procfs: &Path, timeout: Duration) -> Self {
        Pressure {
            timeout,
            state: Arc::new(State {
                dir: procfs.join("pressure"),
                buffer: ReadBuffer::default(),
                logged_unavailable: AtomicBool::new(false),
            }),
        }
    }
}

impl BlockingCollector for Pressure {
    fn name(&self) -> &str {
        "pressure"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        self.state.collect()
    }
}

impl State {
    fn collect(&self) -> Result<Vec<Family>, Error> {
        let mut families = Vec::with_capacity(6);
        let mut found = 0;
        for resource in &RESOURCES {
            let path = self.dir.join(resource.file);
            let result = self.buffer.with_file(&path, |text| {
                let totals = parse(text).map_err(|reason| parse_error(&path, reason))?;
                push_totals(resource, totals, &mut families);
                Ok(())
            });
            match result {
                Ok(()) => found += 1,
                // Not every kernel has every resource (irq is 6.1+), and a kernel built with PSI
                // but booted with psi=0 answers EOPNOTSUPP (node_exporter treats both alike).
                Err(Error::Read { source, .. })
                    if source.kind() == io::ErrorKind::NotFound
                        || source.raw_os_error()
                            == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {}
                Err(err) => return Err(err),
            }
        }
        if found == 0 && !self.logged_unavailable.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                path = %self.dir.display(),
                "Pressure information is unavailable; it needs Linux 4.20+ with CONFIG_PSI."
            );
        }
        Ok(families)
    }
}

fn push_totals(resource: &Resource, totals: Totals, families: &mut Vec<Family>) {
    for (desc, total) in [(resource.some, totals.some), (resource.full, totals.full)] {
        if let (Some((name, help)), Some(micros)) = (desc, total) {
            let mut family = Family::counter(name, help);
            family.push_unlabelled(micros as f64 / 1e6);
            families.push(family);
        }
    }
}

/// The `total=` values of a PSI file, in microseconds.
#[derive(Debug, Default, PartialEq)]
struct Totals {
    some: Option<u64>,
    full: Option<u64>,
}

/// Parses `some avg10=0.00 avg60=0.00 avg300=0.00 total=123` / `full ...` lines.
fn parse(text: &str) -> Result<Totals, String> {
    let mut totals = Totals::default();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let slot = match fields.next() {
            Some("some") => &mut totals.some,
            Some("full") => &mut totals.full,
            _ => continue,
        };
        let total = fields
            .find_map(|f| f.strip_prefix("total="))
            .ok_or_else(|| format!("no total in line {line:?}"))?;
        *slot = Some(parse_u64(total, "total")?);
    }
    Ok(totals)
}

/// The fuzz driver's entry (`host::fuzzing`): one PSI file's text through the parser and the
/// families of the first resource.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    let mut families = Vec::new();
    push_totals(&RESOURCES[0], parse(text)?, &mut families);
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn values(families: &[Family]) -> Vec<(&str, f64)> {
        families
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect()
    }

    #[test]
    fn parses_psi_lines() {
        let totals = parse(include_str!("fixtures/proc/pressure/io")).expect("parses");
        assert_eq!(
            totals,
            Totals {
                some: Some(30_678_633),
                full: Some(30_201_210)
            }
        );
        assert!(parse("some avg10=0.00\n").is_err());
        assert!(parse("full total=x\n").is_err());
    }

    #[test]
    fn reads_the_captured_pressure_dir() {
        let pressure = Pressure::new(&super::super::tests::fixture_proc(), Duration::from_secs(1));
        let families = pressure.state.collect().expect("collects");
        assert_eq!(
            values(&families),
            [
                ("node_pressure_cpu_waiting_seconds_total", 7.45768),
                ("node_pressure_io_waiting_seconds_total", 30.678633),
                ("node_pressure_io_stalled_seconds_total", 30.20121),
                ("node_pressure_memory_waiting_seconds_total", 0.0),
                ("node_pressure_memory_stalled_seconds_total", 0.0),
            ]
        );
        assert!(families.iter().all(|f| f.kind == Kind::Counter));
    }

    #[test]
    fn irq_exports_only_full_and_cpu_only_some() {
        let dir = tempfile::tempdir().expect("tempdir");
        let psi = dir.path().join("pressure");
        std::fs::create_dir(&psi).expect("mkdir");
        let line = |kind: &str, total: u64| {
            format!("{kind} avg10=0.00 avg60=0.00 avg300=0.00 total={total}\n")
        };
        std::fs::write(psi.join("cpu"), line("some", 1_000_000) + &line("full", 7)).expect("write");
        std::fs::write(psi.join("irq"), line("full", 2_500_000)).expect("write");
        let pressure = Pressure::new(dir.path(), Duration::from_secs(1));
        let families = pressure.state.collect().expect("collects");
        assert_eq!(
            values(&families),
            [
                ("node_pressure_cpu_waiting_seconds_total", 1.0),
                ("node_pressure_irq_stalled_seconds_total", 2.5),
            ]
        );
    }

    #[tokio::test]
    async fn a_kernel_without_psi_is_not_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pressure = Pressure::new(dir.path(), Duration::from_secs(1));
        let families = pressure.collect().expect("not applicable is success");
        assert!(families.is_empty());
        assert!(pressure.state.logged_unavailable.load(Ordering::Relaxed));
        // Still fine the second time.
        assert!(pressure.collect().expect("succeeds").is_empty());
    }

    #[tokio::test]
    async fn an_unreadable_file_is_a_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let psi = dir.path().join("pressure");
        std::fs::create_dir_all(psi.join("cpu")).expect("mkdir");
        let pressure = Pressure::new(dir.path(), Duration::from_secs(1));
        assert!(matches!(pressure.collect(), Err(Error::Read { .. })));
    }
}
