//! `tcpstat` (off by default, as in node_exporter): `node_tcp_connection_states{state}`, the
//! number of TCP sockets in each state, plus the bytes queued in them under the pseudo-states
//! `rx_queued_bytes` and `tx_queued_bytes`, summed over IPv4 and IPv6, as node_exporter 1.5's
//! `tcpstat_linux.go` names them.
//!
//! node_exporter 1.5 asks the kernel over netlink (`inet_diag`); warden reads the same sockets
//! from /proc/net/tcp and /proc/net/tcp6 (a kernel without IPv6 has no tcp6: skipped). The
//! state counts and `rx_queued_bytes` agree. `tx_queued_bytes` differs by listening sockets:
//! `inet_diag` reports a listener's backlog limit as its write queue, which node_exporter adds
//! to the sum, while procfs reports the bytes actually unsent (0 for a listener), which warden
//! sums. As upstream, a state no socket is in is left out, and so are the two queue samples
//! when there is no socket at all.

use super::procfiles::ProcFiles;
use crate::collect::{Error, Family};

/// The kernel's TCP states (`include/net/tcp_states.h`), by number, with node_exporter's label.
const STATES: [(u8, &str); 11] = [
    (1, "established"),
    (2, "syn_sent"),
    (3, "syn_recv"),
    (4, "fin_wait1"),
    (5, "fin_wait2"),
    (6, "time_wait"),
    (7, "close"),
    (8, "close_wait"),
    (9, "last_ack"),
    (10, "listen"),
    (11, "closing"),
];

/// Socket counts by state and queue sums.
#[derive(Debug, Default, PartialEq)]
struct Stats {
    /// Sockets per state number (index 0 and numbers beyond the table: `unknown`).
    by_state: [u64; 12],
    unknown: u64,
    sockets: u64,
    rx: u64,
    tx: u64,
}

/// Reads /proc/net/tcp (required) and /proc/net/tcp6 (when present).
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let mut stats = Stats::default();
    files.required("net/tcp", |text| parse(text, &mut stats))?;
    files.optional("net/tcp6", |text| parse(text, &mut stats))?;
    Ok(vec![family(&stats)])
}

fn family(stats: &Stats) -> Family {
    let mut family = Family::gauge("node_tcp_connection_states", "Number of connection states.");
    for (number, label) in STATES {
        let count = stats.by_state[usize::from(number)];
        if count > 0 {
            family.push([("state", label.to_owned())], count as f64);
        }
    }
    if stats.unknown > 0 {
        family.push([("state", "unknown".to_owned())], stats.unknown as f64);
    }
    if stats.sockets > 0 {
        family.push([("state", "rx_queued_bytes".to_owned())], stats.rx as f64);
        family.push([("state", "tx_queued_bytes".to_owned())], stats.tx as f64);
    }
    family
}

/// Adds one file's sockets to `stats`: a header line, then
/// `sl: local remote st tx_queue:rx_queue ...` per socket (state and queues in hexadecimal).
fn parse(text: &str, stats: &mut Stats) -> Result<(), String> {
    for line in text.lines().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_ascii_whitespace().skip(3);
        let (Some(state), Some(queues)) = (fields.next(), fields.next()) else {
            return Err(format!("too few columns in line {line:?}"));
        };
        let state = u8::from_str_radix(state, 16)
            .map_err(|_| format!("state {state:?} is not a hexadecimal byte"))?;
        let (tx, rx) = queues
            .split_once(':')
            .ok_or_else(|| format!("queues {queues:?} are not tx:rx"))?;
        let hex = |field: &str| {
            u64::from_str_radix(field, 16)
                .map_err(|_| format!("queue {field:?} is not hexadecimal"))
        };
        let (tx, rx) = (hex(tx)?, hex(rx)?);
        match stats.by_state.get_mut(usize::from(state)) {
            Some(count) if state != 0 => *count += 1,
            _ => stats.unknown += 1,
        }
        stats.sockets += 1;
        stats.tx = stats.tx.saturating_add(tx);
        stats.rx = stats.rx.saturating_add(rx);
    }
    Ok(())
}

/// The fuzz driver's entry (`host::fuzzing`): one file's text through the parser and the family.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    let mut stats = Stats::default();
    parse(text, &mut stats).map(|()| vec![family(&stats)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    fn samples(family: &Family) -> Vec<(String, f64)> {
        family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.to_string(), s.value))
            .collect()
    }

    fn pairs(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
        expected
            .iter()
            .map(|(l, v)| ((*l).to_owned(), *v))
            .collect()
    }

    #[test]
    fn counts_the_captured_sockets() {
        // tcp: 2 listening, 22 in TIME_WAIT; tcp6: a listener and both ends of a connection,
        // one with 700 (0x2BC) bytes unread.
        let families = collect(&files_in(&fixture_proc())).expect("parses");
        assert_eq!(families.len(), 1);
        let family = &families[0];
        assert_eq!(family.name, "node_tcp_connection_states");
        assert_eq!(family.help, "Number of connection states.");
        assert_eq!(family.kind, crate::collect::family::Kind::Gauge);
        assert_eq!(
            samples(family),
            pairs(&[
                ("established", 2.0),
                ("time_wait", 22.0),
                ("listen", 3.0),
                ("rx_queued_bytes", 700.0),
                ("tx_queued_bytes", 0.0),
            ])
        );
    }

    #[test]
    fn a_missing_tcp6_is_skipped_and_a_missing_tcp_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = files_in(dir.path());
        assert!(matches!(collect(&files), Err(Error::Read { .. })));
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        let header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when\n";
        std::fs::write(
            dir.path().join("net/tcp"),
            format!(
                "{header}   0: 0100007F:1F90 0100007F:C350 01 00000010:00000020 00:00000000\n   1: 0100007F:C350 0100007F:1F90 08 00000001:00000000 00:00000000\n"
            ),
        )
        .expect("write");
        let families = collect(&files).expect("v4 only");
        assert_eq!(
            samples(&families[0]),
            pairs(&[
                ("established", 1.0),
                ("close_wait", 1.0),
                ("rx_queued_bytes", 32.0),
                ("tx_queued_bytes", 17.0),
            ])
        );
        // No sockets at all: an empty family, no queue samples.
        std::fs::write(dir.path().join("net/tcp"), header).expect("write");
        let families = collect(&files).expect("header only");
        assert!(families[0].samples.is_empty());
    }

    #[test]
    fn every_state_has_its_label_and_others_are_unknown() {
        let mut text = String::from("header\n");
        for state in 0..=13 {
            text.push_str(&format!(
                "   0: 0100007F:1F90 0100007F:C350 {state:02X} 00000000:00000000\n"
            ));
        }
        let mut stats = Stats::default();
        parse(&text, &mut stats).expect("parses");
        let got = samples(&family(&stats));
        let labels: Vec<&str> = got.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(
            labels,
            [
                "established",
                "syn_sent",
                "syn_recv",
                "fin_wait1",
                "fin_wait2",
                "time_wait",
                "close",
                "close_wait",
                "last_ack",
                "listen",
                "closing",
                "unknown",
                "rx_queued_bytes",
                "tx_queued_bytes",
            ]
        );
        // States 0, 12 and 13 (NEW_SYN_RECV, BOUND_INACTIVE) are not in the table.
        assert_eq!(got[11].1, 3.0);
    }

    #[test]
    fn malformed_lines_fail() {
        for line in [
            "   0: 0100007F:1F90 0100007F:C350",
            "   0: 0100007F:1F90 0100007F:C350 01",
            "   0: 0100007F:1F90 0100007F:C350 ZZ 00000000:00000000",
            "   0: 0100007F:1F90 0100007F:C350 100 00000000:00000000",
            "   0: 0100007F:1F90 0100007F:C350 01 0000000000000000",
            "   0: 0100007F:1F90 0100007F:C350 01 00000000:-1",
            "   0: 0100007F:1F90 0100007F:C350 01 :",
        ] {
            let mut stats = Stats::default();
            assert!(
                parse(&format!("header\n{line}\n"), &mut stats).is_err(),
                "{line}"
            );
        }
        // Huge queues saturate rather than overflow.
        let mut stats = Stats::default();
        let line = "0: a b 01 FFFFFFFFFFFFFFFF:0\n";
        parse(&format!("h\n{line}{line}"), &mut stats).expect("parses");
        assert_eq!(stats.tx, u64::MAX);
    }
}
