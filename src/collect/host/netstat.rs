//! `netstat`: protocol counters from /proc/net/netstat, /proc/net/snmp and /proc/net/snmp6 as
//! `node_netstat_<Protocol>_<Field>`.
//!
//! As node_exporter's `netstat_linux.go`: netstat and snmp hold pairs of lines (`Tcp: A B` then
//! `Tcp: 1 2`), snmp6 one `Ip6InOctets 123` per line, split after the first `6`; every family is
//! untyped with help `Statistic <Protocol><Field>.`. A system with IPv6 disabled has no snmp6,
//! which is not a failure.
//!
//! The fields are node_exporter 1.5's default `--collector.netstat.fields` (matched by hand, it
//! runs on ~400 fields per scrape) plus three the Node Exporter Full dashboard reads and that
//! filter drops: `TcpExt_TCPOFOQueue`, `TcpExt_TCPRcvQDrop` and `Tcp_MaxConn`.

use super::procfiles::ProcFiles;
use crate::collect::family::intern;
use crate::collect::{Error, Family, Kind};

/// Whether `key` (`<Protocol>_<Field>`) is exported: node_exporter 1.5's default pattern
/// `^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|`
/// `TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|`
/// `OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|`
/// `RcvbufErrors|SndbufErrors))$`, or one of [`EXTRA_FIELDS`].
fn selected(key: &str) -> bool {
    if key.ends_with("_InErrors") || key.ends_with("_InErrs") {
        return true;
    }
    if let Some(field) = key.strip_prefix("TcpExt_")
        && (field.starts_with("Listen") || field.starts_with("Syncookies"))
    {
        return true;
    }
    matches!(
        key,
        "Ip_Forwarding"
            | "Ip6_InOctets"
            | "Ip6_OutOctets"
            | "IpExt_InOctets"
            | "IpExt_OutOctets"
            | "Icmp_InMsgs"
            | "Icmp_OutMsgs"
            | "Icmp6_InMsgs"
            | "Icmp6_OutMsgs"
            | "TcpExt_TCPSynRetrans"
            | "TcpExt_TCPTimeouts"
            | "Tcp_ActiveOpens"
            | "Tcp_InSegs"
            | "Tcp_OutSegs"
            | "Tcp_OutRsts"
            | "Tcp_PassiveOpens"
            | "Tcp_RetransSegs"
            | "Tcp_CurrEstab"
            | "Udp_InDatagrams"
            | "Udp_OutDatagrams"
            | "Udp_NoPorts"
            | "Udp_RcvbufErrors"
            | "Udp_SndbufErrors"
            | "Udp6_InDatagrams"
            | "Udp6_OutDatagrams"
            | "Udp6_NoPorts"
            | "Udp6_RcvbufErrors"
            | "Udp6_SndbufErrors"
    ) || EXTRA_FIELDS.contains(&key)
}

/// Fields beyond node_exporter's default filter, read by the Node Exporter Full dashboard.
const EXTRA_FIELDS: [&str; 3] = ["TcpExt_TCPOFOQueue", "TcpExt_TCPRcvQDrop", "Tcp_MaxConn"];

/// One selected field: `<Protocol>_<Field>`, where the protocol ends, and the value.
#[derive(Debug, PartialEq)]
struct Stat {
    key: String,
    protocol_len: usize,
    value: f64,
}

/// The selected fields of the files read so far; a field seen again replaces the earlier
/// value, as node_exporter's merge does.
#[derive(Debug, Default)]
struct Stats {
    stats: Vec<Stat>,
    /// Scratch for building keys without allocating for the fields not selected.
    key: String,
}

impl Stats {
    fn add(&mut self, protocol: &str, field: &str, value: &str) -> Result<(), String> {
        self.key.clear();
        self.key.push_str(protocol);
        self.key.push('_');
        self.key.push_str(field);
        if !selected(&self.key) {
            return Ok(());
        }
        let value: f64 = value
            .parse()
            .map_err(|_| format!("{protocol}{field}: {value:?} is not a number"))?;
        // A field seen again is pushed again; `into_families` keeps the last of each.
        self.stats.push(Stat {
            key: self.key.clone(),
            protocol_len: protocol.len(),
            value,
        });
        Ok(())
    }

    /// Parses /proc/net/netstat or /proc/net/snmp: a `Protocol: Field ...` line followed by a
    /// `Protocol: value ...` line with as many values, for each protocol.
    fn parse_pairs(&mut self, text: &str) -> Result<(), String> {
        let mut lines = text.lines().filter(|line| !line.trim().is_empty());
        while let Some(header) = lines.next() {
            let mut names = header.split_ascii_whitespace();
            let protocol = names
                .next()
                .and_then(|p| p.strip_suffix(':'))
                .ok_or_else(|| format!("line {header:?} does not start with `Protocol:`"))?;
            let values_line = lines
                .next()
                .ok_or_else(|| format!("{protocol}: field names without a line of values"))?;
            let mut values = values_line.split_ascii_whitespace();
            if values.next().and_then(|p| p.strip_suffix(':')) != Some(protocol) {
                return Err(format!(
                    "{protocol}: the values line {values_line:?} is for another protocol"
                ));
            }
            loop {
                match (names.next(), values.next()) {
                    (Some(name), Some(value)) => self.add(protocol, name, value)?,
                    (None, None) => break,
                    _ => return Err(format!("{protocol}: field and value counts differ")),
                }
            }
        }
        Ok(())
    }

    /// Parses /proc/net/snmp6: `Ip6InReceives 123` lines, the protocol ending at the first `6`.
    fn parse_snmp6(&mut self, text: &str) -> Result<(), String> {
        for line in text.lines() {
            let mut fields = line.split_ascii_whitespace();
            let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Some(six) = name.find('6') else {
                continue;
            };
            let (protocol, field) = name.split_at(six + 1);
            self.add(protocol, field, value)?;
        }
        Ok(())
    }

    /// One untyped family per field, sorted by name.
    fn into_families(mut self) -> Vec<Family> {
        // Sorted by name, the last value of a field seen twice first among its equals (a
        // stable sort of the reversed list), then one per name.
        self.stats.reverse();
        self.stats.sort_by(|a, b| a.key.cmp(&b.key));
        self.stats.dedup_by(|later, first| later.key == first.key);
        let mut text = String::new();
        self.stats
            .into_iter()
            .map(|stat| {
                let (protocol, field) = stat.key.split_at(stat.protocol_len);
                let field = &field[1..];
                text.clear();
                text.push_str("node_netstat_");
                text.push_str(&stat.key);
                let name = intern(&text);
                text.clear();
                text.push_str("Statistic ");
                text.push_str(protocol);
                text.push_str(field);
                text.push('.');
                let mut family = Family::new(name, intern(&text), Kind::Untyped);
                family.push_unlabelled(stat.value);
                family
            })
            .collect()
    }
}

/// The `netstat` collector's collection: `net/netstat` and `net/snmp` must exist, `net/snmp6`
/// is absent where IPv6 is disabled.
///
/// # Errors
/// A read error of a required file, or a parse error naming the file.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let mut stats = Stats::default();
    files.required("net/netstat", |text| stats.parse_pairs(text))?;
    files.required("net/snmp", |text| stats.parse_pairs(text))?;
    files.optional("net/snmp6", |text| stats.parse_snmp6(text))?;
    Ok(stats.into_families())
}

/// The fuzz driver's entry (`host::fuzzing`): the text as /proc/net/netstat (or snmp) and as
/// /proc/net/snmp6, then the families.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    let mut stats = Stats::default();
    let pairs = stats.parse_pairs(text);
    stats.parse_snmp6(text).or(pairs)?;
    Ok(stats.into_families())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(families: &[Family]) -> Vec<(&str, f64)> {
        families
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect()
    }

    /// node_exporter 1.5's default field pattern.
    const DEFAULT_PATTERN: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

    fn collect(procfs: &std::path::Path) -> Result<Vec<Family>, Error> {
        super::collect(&crate::collect::host::procfiles::tests::files_in(procfs))
    }

    #[test]
    fn reads_the_captured_files() {
        let families = collect(&super::super::tests::fixture_proc()).expect("collects");
        assert_eq!(
            values(&families),
            [
                ("node_netstat_Icmp6_InErrors", 2.0),
                ("node_netstat_Icmp6_InMsgs", 2.0),
                ("node_netstat_Icmp6_OutMsgs", 858.0),
                ("node_netstat_Icmp_InErrors", 0.0),
                ("node_netstat_Icmp_InMsgs", 3.0),
                ("node_netstat_Icmp_OutMsgs", 17.0),
                ("node_netstat_Ip6_InOctets", 256.0),
                ("node_netstat_Ip6_OutOctets", 64_320.0),
                ("node_netstat_IpExt_InOctets", 8_248_017_077.0),
                ("node_netstat_IpExt_OutOctets", 7_529_137_437.0),
                ("node_netstat_Ip_Forwarding", 1.0),
                ("node_netstat_TcpExt_ListenDrops", 112.0),
                ("node_netstat_TcpExt_ListenOverflows", 112.0),
                ("node_netstat_TcpExt_SyncookiesFailed", 0.0),
                ("node_netstat_TcpExt_SyncookiesRecv", 0.0),
                ("node_netstat_TcpExt_SyncookiesSent", 0.0),
                ("node_netstat_TcpExt_TCPOFOQueue", 2.0),
                ("node_netstat_TcpExt_TCPRcvQDrop", 0.0),
                ("node_netstat_TcpExt_TCPSynRetrans", 0.0),
                ("node_netstat_TcpExt_TCPTimeouts", 4.0),
                ("node_netstat_Tcp_ActiveOpens", 80_109.0),
                ("node_netstat_Tcp_CurrEstab", 0.0),
                ("node_netstat_Tcp_InErrs", 0.0),
                ("node_netstat_Tcp_InSegs", 11_440_988.0),
                ("node_netstat_Tcp_MaxConn", -1.0),
                ("node_netstat_Tcp_OutRsts", 4416.0),
                ("node_netstat_Tcp_OutSegs", 11_434_257.0),
                ("node_netstat_Tcp_PassiveOpens", 74_220.0),
                ("node_netstat_Tcp_RetransSegs", 440.0),
                ("node_netstat_Udp6_InDatagrams", 0.0),
                ("node_netstat_Udp6_InErrors", 0.0),
                ("node_netstat_Udp6_NoPorts", 0.0),
                ("node_netstat_Udp6_OutDatagrams", 0.0),
                ("node_netstat_Udp6_RcvbufErrors", 0.0),
                ("node_netstat_Udp6_SndbufErrors", 0.0),
                ("node_netstat_UdpLite6_InErrors", 0.0),
                ("node_netstat_UdpLite_InErrors", 0.0),
                ("node_netstat_Udp_InDatagrams", 3714.0),
                ("node_netstat_Udp_InErrors", 0.0),
                ("node_netstat_Udp_NoPorts", 1.0),
                ("node_netstat_Udp_OutDatagrams", 3720.0),
                ("node_netstat_Udp_RcvbufErrors", 0.0),
                ("node_netstat_Udp_SndbufErrors", 0.0),
            ]
        );
        assert!(families.iter().all(|f| f.kind == Kind::Untyped));
        assert!(families.iter().all(|f| f.samples[0].labels.is_empty()));
        let help = |name: &str| {
            families
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.help.to_string())
        };
        assert_eq!(
            help("node_netstat_Tcp_ActiveOpens").as_deref(),
            Some("Statistic TcpActiveOpens.")
        );
        assert_eq!(
            help("node_netstat_Icmp6_InMsgs").as_deref(),
            Some("Statistic Icmp6InMsgs.")
        );
    }

    #[test]
    fn the_default_pattern_matches_like_the_regex() {
        let re = regex::Regex::new(DEFAULT_PATTERN).expect("valid regex");
        let mut keys: Vec<String> = Vec::new();
        for file in ["netstat", "snmp"] {
            let text =
                std::fs::read_to_string(super::super::tests::fixture_proc().join("net").join(file))
                    .expect("fixture");
            for pair in text.lines().collect::<Vec<_>>().chunks(2) {
                let mut names = pair[0].split_ascii_whitespace();
                let protocol = names.next().expect("protocol").trim_end_matches(':');
                keys.extend(names.map(|n| format!("{protocol}_{n}")));
            }
        }
        keys.extend(
            [
                "_InErrors",
                "X_InErrs",
                "Foo_Bar_InErrors",
                "Ip_ForwardingX",
                "Ip4_InOctets",
                "Icmp6_InMsgs",
                "Icmp66_InMsgs",
                "TcpExt_Listen",
                "TcpExt_SyncookiesX",
                "TcpExtListenDrops",
                "Udp6_NoPorts",
                "UdpLite_NoPorts",
                "Tcp_InErrsX",
            ]
            .map(str::to_owned),
        );
        let mut selected_count = 0;
        for key in &keys {
            let extra = EXTRA_FIELDS.contains(&key.as_str());
            assert_eq!(selected(key), re.is_match(key) || extra, "{key}");
            selected_count += usize::from(selected(key));
        }
        assert!(selected_count > 20, "{selected_count}");
        for extra in EXTRA_FIELDS {
            assert!(
                !re.is_match(extra),
                "{extra} is already in the default filter"
            );
            assert!(
                keys.iter().any(|k| k == extra),
                "{extra} not in the fixture"
            );
        }
    }

    #[test]
    fn snmp6_names_split_after_the_first_six() {
        let mut stats = Stats::default();
        stats
            .parse_snmp6("Ip6InOctets 10\nUdpLite6InErrors\t3\nnosix 1\nIcmp6InMsgs\n\n")
            .expect("parses");
        let families = stats.into_families();
        assert_eq!(
            values(&families),
            [
                ("node_netstat_Ip6_InOctets", 10.0),
                ("node_netstat_UdpLite6_InErrors", 3.0),
            ]
        );
        assert_eq!(families[1].help, "Statistic UdpLite6InErrors.");
    }

    #[test]
    fn a_field_seen_again_keeps_the_last_value() {
        let mut stats = Stats::default();
        stats
            .parse_pairs("Tcp: ActiveOpens\nTcp: 1\nTcp: ActiveOpens CurrEstab\nTcp: 2 3\n")
            .expect("parses");
        assert_eq!(
            values(&stats.into_families()),
            [
                ("node_netstat_Tcp_ActiveOpens", 2.0),
                ("node_netstat_Tcp_CurrEstab", 3.0),
            ]
        );
    }

    #[test]
    fn malformed_pairs_fail_without_panicking() {
        for text in [
            "Tcp: ActiveOpens\n",
            "Tcp: ActiveOpens CurrEstab\nTcp: 1\n",
            "Tcp: ActiveOpens\nTcp: 1 2\n",
            "Tcp: ActiveOpens\nUdp: 1\n",
            "Tcp ActiveOpens\nTcp 1\n",
            ":\n",
            "Tcp: ActiveOpens\nTcp: x\n",
            "Tcp: ActiveOpens\n\u{0}\n",
        ] {
            assert!(Stats::default().parse_pairs(text).is_err(), "{text:?}");
        }
        // A bad value in a field not exported is not read.
        Stats::default()
            .parse_pairs("Tcp: RtoMin\nTcp: x\n")
            .expect("unselected fields are not parsed");
        assert!(Stats::default().parse_snmp6("Ip6InOctets x\n").is_err());
        Stats::default().parse_pairs("").expect("empty is fine");
        Stats::default()
            .parse_snmp6("6 6\n\u{ff} 6\n")
            .expect("no panic");
    }

    #[tokio::test]
    async fn a_missing_snmp6_is_not_a_failure_but_a_missing_snmp_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = dir.path().join("net");
        std::fs::create_dir(&net).expect("mkdir");
        std::fs::write(net.join("netstat"), "TcpExt: ListenDrops\nTcpExt: 4\n").expect("write");
        assert!(matches!(collect(dir.path()), Err(Error::Read { .. })));
        std::fs::write(net.join("snmp"), "Tcp: MaxConn\nTcp: -1\n").expect("write");
        assert_eq!(
            values(&collect(dir.path()).expect("collects")),
            [
                ("node_netstat_TcpExt_ListenDrops", 4.0),
                ("node_netstat_Tcp_MaxConn", -1.0),
            ]
        );
        std::fs::write(net.join("snmp6"), "Ip6InOctets 9\n").expect("write");
        assert_eq!(collect(dir.path()).expect("collects").len(), 3);
        std::fs::write(net.join("snmp"), "Tcp: MaxConn\n").expect("write");
        assert!(matches!(collect(dir.path()), Err(Error::Parse { .. })));
    }
}
