//! `conntrack`: connection tracking table size and statistics, as node_exporter 1.5's
//! `conntrack_linux.go`: `node_nf_conntrack_entries` and `node_nf_conntrack_entries_limit`
//! from /proc/sys/net/netfilter/nf_conntrack_{count,max}, and `node_nf_conntrack_stat_*`
//! (gauges, summed over CPUs) from /proc/net/stat/nf_conntrack.
//!
//! Without the nf_conntrack module those files do not exist: that is "not applicable", so the
//! collection succeeds with whatever exists (nothing, usually) and says so once at debug level.
//! node_exporter reports the same as "no data" (its collector success 0).

use std::sync::atomic::{AtomicBool, Ordering};

use super::procfiles::ProcFiles;
use super::procfs::parse_u64;
use crate::collect::{Error, Family};

/// The statistics node_exporter exports: (column in the header, family, help).
const STATS: [(&str, &str, &str); 8] = [
    (
        "found",
        "node_nf_conntrack_stat_found",
        "Number of searched entries which were successful.",
    ),
    (
        "invalid",
        "node_nf_conntrack_stat_invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "node_nf_conntrack_stat_ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        "insert",
        "node_nf_conntrack_stat_insert",
        "Number of entries inserted into the list.",
    ),
    (
        "insert_failed",
        "node_nf_conntrack_stat_insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "node_nf_conntrack_stat_drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "node_nf_conntrack_stat_early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size \
         was reached.",
    ),
    (
        "search_restart",
        "node_nf_conntrack_stat_search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// Reads the table size, limit and statistics; `logged_absent` is set once the module's
/// absence has been logged.
pub(super) fn collect(files: &ProcFiles, logged_absent: &AtomicBool) -> Result<Vec<Family>, Error> {
    let mut families = Vec::with_capacity(2 + STATS.len());
    let count = files.optional("sys/net/netfilter/nf_conntrack_count", parse_number)?;
    let max = files.optional("sys/net/netfilter/nf_conntrack_max", parse_number)?;
    let stats = files.optional("net/stat/nf_conntrack", parse_stat)?;
    if let Some(count) = count {
        families.push(Family::single_gauge(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            count as f64,
        ));
    }
    if let Some(max) = max {
        families.push(Family::single_gauge(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            max as f64,
        ));
    }
    if let Some(sums) = stats {
        for ((_, name, help), sum) in STATS.iter().zip(sums) {
            families.push(Family::single_gauge(*name, *help, sum as f64));
        }
    }
    if families.is_empty() && !logged_absent.swap(true, Ordering::Relaxed) {
        tracing::debug!(
            "No connection tracking statistics; the nf_conntrack module is not loaded."
        );
    }
    Ok(families)
}

/// One decimal number, surrounding whitespace allowed.
fn parse_number(text: &str) -> Result<u64, String> {
    parse_u64(text.trim(), "value")
}

/// Parses /proc/net/stat/nf_conntrack: a header naming the columns, then one line of
/// hexadecimal counters per CPU. Returns the [`STATS`] columns summed over CPUs.
fn parse_stat(text: &str) -> Result<[u64; STATS.len()], String> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| "no header line".to_owned())?
        .split_ascii_whitespace()
        .collect();
    let mut columns = [0usize; STATS.len()];
    for (column, (name, _, _)) in columns.iter_mut().zip(STATS) {
        *column = header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("no {name} column in the header"))?;
    }
    let mut sums = [0u64; STATS.len()];
    for line in lines {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() != header.len() {
            return Err(format!(
                "{} fields, the header names {}, in line {line:?}",
                fields.len(),
                header.len()
            ));
        }
        for ((sum, column), (name, _, _)) in sums.iter_mut().zip(columns).zip(STATS) {
            let field = fields[column];
            let value = u64::from_str_radix(field, 16)
                .map_err(|_| format!("{name}: {field:?} is not a hexadecimal number"))?;
            *sum = sum.wrapping_add(value);
        }
    }
    Ok(sums)
}

/// The fuzz driver's entry (`host::fuzzing`): the text as the statistics file and as a count.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    let count = parse_number(text);
    parse_stat(text).or(count.map(|_| [0; STATS.len()]))?;
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::{files_in, gauge_value as value};
    use crate::collect::host::tests::fixture_proc;

    #[test]
    fn reads_the_captured_files() {
        let families = collect(&files_in(&fixture_proc()), &AtomicBool::new(false)).expect("reads");
        assert_eq!(families.len(), 10);
        assert_eq!(value(&families, "node_nf_conntrack_entries"), Some(5.0));
        assert_eq!(
            value(&families, "node_nf_conntrack_entries_limit"),
            Some(262_144.0)
        );
        assert_eq!(value(&families, "node_nf_conntrack_stat_found"), Some(0.0));
        assert_eq!(
            value(&families, "node_nf_conntrack_stat_search_restart"),
            Some(0.0)
        );
    }

    #[test]
    fn statistics_are_summed_over_cpus_by_column_name() {
        // Kernel 5.x layout (`searched`, `delete_list` where newer kernels have `clashres`,
        // `chainlength`).
        let text = "entries searched found new invalid ignore delete delete_list insert \
                    insert_failed drop early_drop icmp_error expect_new expect_create \
                    expect_delete search_restart\n\
                    00000001 00000000 00000002 00000000 00000003 00000004 00000000 00000000 \
                    00000005 00000006 00000007 00000008 00000000 00000000 00000000 00000000 \
                    00000009\n\
                    00000001 00000000 00000010 00000000 00000000 00000000 00000000 00000000 \
                    00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 \
                    000000ff\n";
        assert_eq!(parse_stat(text), Ok([0x12, 3, 4, 5, 6, 7, 8, 0x108]));
        let header = text.lines().next().expect("header");
        assert_eq!(parse_stat(header), Ok([0; 8]));
    }

    #[test]
    fn an_absent_module_is_no_data_and_no_failure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let logged = AtomicBool::new(false);
        assert!(
            collect(&files_in(dir.path()), &logged)
                .expect("no data")
                .is_empty()
        );
        assert!(logged.load(Ordering::Relaxed));
        // The sysctls without the statistics file.
        let netfilter = dir.path().join("sys/net/netfilter");
        std::fs::create_dir_all(&netfilter).expect("mkdir");
        std::fs::write(netfilter.join("nf_conntrack_count"), "3\n").expect("write");
        std::fs::write(netfilter.join("nf_conntrack_max"), "65536\n").expect("write");
        let families = collect(&files_in(dir.path()), &logged).expect("reads");
        assert_eq!(families.len(), 2);
        assert_eq!(value(&families, "node_nf_conntrack_entries"), Some(3.0));
        assert_eq!(
            value(&families, "node_nf_conntrack_entries_limit"),
            Some(65_536.0)
        );
    }

    #[test]
    fn malformed_files_fail() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("entries found\n1 2\n").is_err());
        let header = STATS.map(|(name, _, _)| name).join(" ");
        assert!(parse_stat(&format!("{header}\n0 0 0 0 0 0 0\n")).is_err());
        assert!(parse_stat(&format!("{header}\n0 0 0 0 0 0 0 zz\n")).is_err());
        assert!(parse_stat(&format!("{header}\n0 0 0 0 0 0 0 0\n")).is_ok());
        assert!(parse_number("x").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let netfilter = dir.path().join("sys/net/netfilter");
        std::fs::create_dir_all(&netfilter).expect("mkdir");
        std::fs::write(netfilter.join("nf_conntrack_count"), "-1\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path()), &AtomicBool::new(false)),
            Err(Error::Parse { .. })
        ));
    }
}
