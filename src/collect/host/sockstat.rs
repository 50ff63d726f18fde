//! `sockstat`: socket counts from /proc/net/sockstat and /proc/net/sockstat6, named as
//! node_exporter 1.5's `sockstat_linux.go` names them: `node_sockstat_<PROTOCOL>_<key>` for
//! each `PROTOCOL: key value ...` line (`inuse`, `orphan`, `tw`, `alloc`, `mem`, `memory`),
//! `node_sockstat_<PROTOCOL>_mem_bytes` for `mem` (pages) times the page size, and
//! `node_sockstat_sockets_used` from the IPv4 file's `sockets: used N`. All gauges.
//!
//! A kernel without IPv6 has no sockstat6; that file is skipped (so is sockstat, as upstream,
//! though a Linux kernel always has it).

use std::collections::BTreeSet;

use super::procfiles::ProcFiles;
use crate::collect::family::intern;
use crate::collect::{Error, Family};

/// The keys node_exporter exports, in its order.
const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// Reads both files; the page size converts `mem` pages to bytes.
pub(super) fn collect(files: &ProcFiles, page_size: u64) -> Result<Vec<Family>, Error> {
    let mut families = files
        .optional("net/sockstat", |text| parse(text, false, page_size))?
        .unwrap_or_default();
    if let Some(v6) = files.optional("net/sockstat6", |text| parse(text, true, page_size))? {
        families.extend(v6);
    }
    // A protocol named in both files (or twice in one) would give one family twice.
    let mut seen = BTreeSet::new();
    for family in &families {
        if !seen.insert(family.name.as_ref()) {
            return Err(Error::Parse {
                path: "net/sockstat{,6}".to_owned(),
                reason: format!("{} appears twice", family.name),
            });
        }
    }
    Ok(families)
}

/// Parses one sockstat file. `sockets: used N` is exported from the IPv4 file only.
pub(super) fn parse(text: &str, ipv6: bool, page_size: u64) -> Result<Vec<Family>, String> {
    let mut families = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        let (Some(protocol), Some(_), Some(_)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("malformed sockstat line {line:?}"));
        };
        let protocol = protocol.strip_suffix(':').unwrap_or(protocol);
        if protocol.is_empty()
            || !protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(format!("protocol {protocol:?} is not a metric name part"));
        }
        let values = parse_pairs(line.split_ascii_whitespace().skip(1))
            .map_err(|reason| format!("{protocol}: {reason}"))?;
        if protocol == "sockets" {
            if !ipv6 {
                let used = value_of(&values, "used").unwrap_or(0);
                families.push(Family::single_gauge(
                    "node_sockstat_sockets_used",
                    "Number of IPv4 sockets in use.",
                    used as f64,
                ));
            }
            continue;
        }
        for key in KEYS {
            // `inuse` is exported even when the line lacks it (as 0), like upstream.
            let value = match value_of(&values, key) {
                Some(value) => value,
                None if key == "inuse" => 0,
                None => continue,
            };
            families.push(gauge(protocol, key, value as f64));
        }
        if let Some(pages) = value_of(&values, "mem") {
            families.push(gauge(
                protocol,
                "mem_bytes",
                pages as f64 * page_size as f64,
            ));
        }
    }
    Ok(families)
}

fn gauge(protocol: &str, key: &str, value: f64) -> Family {
    Family::single_gauge(
        intern(&format!("node_sockstat_{protocol}_{key}")),
        intern(&format!("Number of {protocol} sockets in state {key}.")),
        value,
    )
}

/// `key value key value ...`; a repeated key keeps its last value.
fn parse_pairs<'a>(
    mut fields: impl Iterator<Item = &'a str>,
) -> Result<Vec<(&'a str, i64)>, String> {
    let mut pairs: Vec<(&str, i64)> = Vec::new();
    while let Some(key) = fields.next() {
        let value = fields
            .next()
            .ok_or_else(|| format!("odd number of fields: {key:?} has no value"))?;
        let value: i64 = value
            .parse()
            .map_err(|_| format!("{key}: {value:?} is not an integer"))?;
        pairs.retain(|(k, _)| *k != key);
        pairs.push((key, value));
    }
    Ok(pairs)
}

fn value_of(pairs: &[(&str, i64)], key: &str) -> Option<i64> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::{files_in, gauge_value as value};
    use crate::collect::host::tests::fixture_proc;

    #[test]
    fn parses_the_captured_sockstat_files() {
        let families = collect(&files_in(&fixture_proc()), 4096).expect("parses");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_sockstat_sockets_used",
                "node_sockstat_TCP_inuse",
                "node_sockstat_TCP_orphan",
                "node_sockstat_TCP_tw",
                "node_sockstat_TCP_alloc",
                "node_sockstat_TCP_mem",
                "node_sockstat_TCP_mem_bytes",
                "node_sockstat_UDP_inuse",
                "node_sockstat_UDP_mem",
                "node_sockstat_UDP_mem_bytes",
                "node_sockstat_UDPLITE_inuse",
                "node_sockstat_RAW_inuse",
                "node_sockstat_FRAG_inuse",
                "node_sockstat_FRAG_memory",
                "node_sockstat_TCP6_inuse",
                "node_sockstat_UDP6_inuse",
                "node_sockstat_UDPLITE6_inuse",
                "node_sockstat_RAW6_inuse",
                "node_sockstat_FRAG6_inuse",
                "node_sockstat_FRAG6_memory",
            ]
        );
        // sockets: used 28 / TCP: inuse 1 orphan 0 tw 3 alloc 1 mem 295
        assert_eq!(value(&families, "node_sockstat_sockets_used"), Some(28.0));
        assert_eq!(value(&families, "node_sockstat_TCP_inuse"), Some(1.0));
        assert_eq!(value(&families, "node_sockstat_TCP_tw"), Some(3.0));
        assert_eq!(value(&families, "node_sockstat_TCP_mem"), Some(295.0));
        assert_eq!(
            value(&families, "node_sockstat_TCP_mem_bytes"),
            Some(295.0 * 4096.0)
        );
        assert_eq!(value(&families, "node_sockstat_TCP6_inuse"), Some(0.0));
        let tcp = families
            .iter()
            .find(|f| f.name == "node_sockstat_TCP_inuse")
            .expect("TCP_inuse");
        assert_eq!(tcp.help, "Number of TCP sockets in state inuse.");
    }

    #[test]
    fn sockets_used_is_exported_from_the_ipv4_file_only() {
        let text = "sockets: used 7\nTCP6: inuse 2 mem 3\n";
        let v4 = parse(text, false, 100).expect("parses");
        let v6 = parse(text, true, 100).expect("parses");
        assert_eq!(value(&v4, "node_sockstat_sockets_used"), Some(7.0));
        assert_eq!(value(&v6, "node_sockstat_sockets_used"), None);
        assert_eq!(value(&v6, "node_sockstat_TCP6_mem_bytes"), Some(300.0));
        // Unknown keys are ignored; a missing inuse is 0.
        let families = parse("XDP: foo 1 mem 2\n", false, 1).expect("parses");
        assert_eq!(value(&families, "node_sockstat_XDP_inuse"), Some(0.0));
        assert_eq!(value(&families, "node_sockstat_XDP_foo"), None);
    }

    #[test]
    fn missing_files_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = files_in(dir.path());
        assert!(collect(&files, 4096).expect("no files").is_empty());
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        std::fs::write(dir.path().join("net/sockstat"), "TCP: inuse 1\n").expect("write");
        let families = collect(&files, 4096).expect("v4 only");
        assert_eq!(value(&families, "node_sockstat_TCP_inuse"), Some(1.0));
    }

    #[test]
    fn malformed_files_fail() {
        for text in [
            "TCP: inuse\n",
            "TCP: inuse 1 mem\n",
            "TCP: inuse x\n",
            "\n",
            "T-CP: inuse 1\n",
            ": inuse 1\n",
        ] {
            assert!(parse(text, false, 4096).is_err(), "{text:?}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        std::fs::write(dir.path().join("net/sockstat"), "TCP: inuse 1\n").expect("write");
        std::fs::write(dir.path().join("net/sockstat6"), "TCP: inuse 1\n").expect("write");
        assert!(collect(&files_in(dir.path()), 4096).is_err());
    }
}
