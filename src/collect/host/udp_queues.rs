//! `udp_queues`: bytes queued in UDP sockets' send and receive buffers, summed over the
//! sockets of /proc/net/udp and /proc/net/udp6, as node_exporter 1.5's `udp_queues_linux.go`:
//! `node_udp_queues{ip="v4"|"v6",queue="tx"|"rx"}`.
//!
//! A kernel without IPv6 has no udp6: skipped. Neither file is a read error (node_exporter
//! reports "no data", its collector success 0).

use super::procfiles::ProcFiles;
use crate::collect::{Error, Family};

/// Columns node_exporter requires in a socket line (up to the inode).
const MIN_COLUMNS: usize = 10;

/// Reads both files.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let v4 = files.optional("net/udp", parse)?;
    let v6 = files.optional("net/udp6", parse)?;
    if v4.is_none() && v6.is_none() {
        // Both absent: report the IPv4 file's read error.
        files.required("net/udp", parse)?;
    }
    let mut family = Family::gauge(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
    );
    for (ip, queues) in [("v4", v4), ("v6", v6)] {
        if let Some(queues) = queues {
            family.push(
                [("ip", ip.to_owned()), ("queue", "tx".to_owned())],
                queues.tx as f64,
            );
            family.push(
                [("ip", ip.to_owned()), ("queue", "rx".to_owned())],
                queues.rx as f64,
            );
        }
    }
    Ok(vec![family])
}

/// Queued bytes summed over sockets.
#[derive(Debug, Default, PartialEq)]
struct Queues {
    tx: u64,
    rx: u64,
}

/// Parses a header line, then `sl: local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout
/// inode ...` per socket (queues in hexadecimal).
fn parse(text: &str) -> Result<Queues, String> {
    let mut sums = Queues::default();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < MIN_COLUMNS {
            return Err(format!(
                "{} columns, expected at least {MIN_COLUMNS}, in line {line:?}",
                fields.len()
            ));
        }
        let (tx, rx) = fields[4]
            .split_once(':')
            .ok_or_else(|| format!("no tx_queue:rx_queue in line {line:?}"))?;
        sums.tx = sums.tx.wrapping_add(hex(tx, "tx_queue")?);
        sums.rx = sums.rx.wrapping_add(hex(rx, "rx_queue")?);
    }
    Ok(sums)
}

fn hex(field: &str, what: &str) -> Result<u64, String> {
    u64::from_str_radix(field, 16).map_err(|_| format!("{what}: {field:?} is not hexadecimal"))
}

/// The fuzz driver's entry (`host::fuzzing`): one file's text through the parser.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    parse(text).map(|_| Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    #[test]
    fn sums_the_captured_queues() {
        let families = collect(&files_in(&fixture_proc())).expect("reads");
        assert_eq!(families.len(), 1);
        let family = &families[0];
        assert_eq!(family.kind, Kind::Gauge);
        assert_eq!(family.samples.len(), 4);
        // Three 100-byte datagrams queued on one IPv4 socket (0x9C0 with overhead), one
        // 50-byte datagram on an IPv6 one (0x340).
        assert_eq!(family.value(&[("ip", "v4"), ("queue", "rx")]), Some(2496.0));
        assert_eq!(family.value(&[("ip", "v4"), ("queue", "tx")]), Some(0.0));
        assert_eq!(family.value(&[("ip", "v6"), ("queue", "rx")]), Some(832.0));
        assert_eq!(family.value(&[("ip", "v6"), ("queue", "tx")]), Some(0.0));
    }

    #[test]
    fn sums_over_sockets() {
        let text = "header\n\
                    1: 0100007F:0035 00000000:0000 07 00000010:00000001 00:00000000 00000000 0 0 1 2 0 0\n\
                    2: 0100007F:0036 00000000:0000 07 00000020:000000FF 00:00000000 00000000 0 0 2 2 0 0\n";
        assert_eq!(
            parse(text),
            Ok(Queues {
                tx: 0x30,
                rx: 0x100
            })
        );
        assert_eq!(parse("header only\n"), Ok(Queues::default()));
        assert_eq!(parse(""), Ok(Queues::default()));
    }

    #[test]
    fn without_ipv6_only_v4_and_without_both_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        std::fs::write(dir.path().join("net/udp"), "header\n").expect("write");
        let families = collect(&files_in(dir.path())).expect("reads");
        assert_eq!(families[0].samples.len(), 2);
        assert_eq!(families[0].value(&[("ip", "v6")]), None);
    }

    #[test]
    fn malformed_lines_fail() {
        let line = |queues: &str| {
            format!("h\n1: 0100007F:0035 00000000:0000 07 {queues} 00:00000000 00000000 0 0 1\n")
        };
        assert!(parse(&line("00000000:00000000")).is_ok());
        assert!(parse(&line("00000000")).is_err());
        assert!(parse(&line("0000000x:00000000")).is_err());
        assert!(parse(&line("00000000:")).is_err());
        assert!(parse("h\n1: 0100007F:0035 00000000:0000 07 0:0\n").is_err());
    }
}
