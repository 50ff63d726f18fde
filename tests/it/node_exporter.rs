//! Compatibility with Debian's node_exporter, run live on the same host.

use std::collections::{BTreeMap, BTreeSet};

use crate::serve::promtool_check;
use crate::support::anchors::Exporter;
use crate::support::{self, Warden, require_tool, value};

/// The families the foundation issue requires, each of which both exporters must emit.
const REQUIRED: &[&str] = &[
    "node_cpu_seconds_total",
    "node_memory_MemTotal_bytes",
    "node_memory_MemFree_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_Buffers_bytes",
    "node_memory_Cached_bytes",
    "node_memory_SwapTotal_bytes",
    "node_memory_SwapFree_bytes",
    "node_filesystem_size_bytes",
    "node_filesystem_free_bytes",
    "node_filesystem_avail_bytes",
    "node_filesystem_files",
    "node_filesystem_files_free",
    "node_filesystem_readonly",
    "node_filesystem_device_error",
    "node_disk_reads_completed_total",
    "node_disk_writes_completed_total",
    "node_disk_read_bytes_total",
    "node_disk_written_bytes_total",
    "node_disk_read_time_seconds_total",
    "node_disk_write_time_seconds_total",
    "node_disk_io_time_seconds_total",
    "node_disk_io_time_weighted_seconds_total",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_network_receive_packets_total",
    "node_network_transmit_packets_total",
    "node_network_receive_errs_total",
    "node_network_transmit_errs_total",
    "node_network_receive_drop_total",
    "node_network_transmit_drop_total",
    "node_load1",
    "node_load5",
    "node_load15",
    "node_boot_time_seconds",
    "node_time_seconds",
    "node_uname_info",
    "node_filefd_allocated",
    "node_filefd_maximum",
    "node_vmstat_oom_kill",
    "node_vmstat_pgmajfault",
    "node_sockstat_sockets_used",
    "node_sockstat_TCP_inuse",
    "node_sockstat_TCP_mem_bytes",
    "node_softnet_processed_total",
    "node_entropy_available_bits",
    "node_udp_queues",
    "node_network_receive_nohandler_total",
    "node_network_up",
    "node_network_info",
    "node_network_carrier",
    "node_network_mtu_bytes",
    "node_network_flags",
    "node_network_iface_id",
    "node_network_protocol_type",
    "node_network_transmit_queue_length",
];

/// Family name → (type, label-name sets seen).
fn shape(body: &str) -> BTreeMap<String, (String, BTreeSet<Vec<String>>)> {
    let types = support::types(body);
    let mut out: BTreeMap<String, (String, BTreeSet<Vec<String>>)> = BTreeMap::new();
    for (name, labels, _) in support::samples(body) {
        if !name.starts_with("node_")
            || name.starts_with("node_scrape_")
            || name.starts_with("node_exporter_")
        {
            continue;
        }
        let kind = types
            .get(&name)
            .cloned()
            .unwrap_or_else(|| "untyped".to_owned());
        let mut keys: Vec<String> = labels.into_iter().map(|(k, _)| k).collect();
        keys.sort();
        out.entry(name)
            .or_insert_with(|| (kind, BTreeSet::new()))
            .1
            .insert(keys);
    }
    out
}

#[test]
fn family_names_types_and_labels_match_node_exporter() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let theirs = shape(&node_exporter.scrape());
    let ours = shape(&warden.get("/metrics", &[]).body);

    let mut problems = Vec::new();
    for name in REQUIRED {
        if !theirs.contains_key(*name) {
            problems.push(format!(
                "{name}: node_exporter does not emit it on this host"
            ));
        }
        if !ours.contains_key(*name) {
            problems.push(format!("{name}: warden does not emit it"));
        }
    }
    for (name, (kind, label_sets)) in &ours {
        match theirs.get(name) {
            None => problems.push(format!(
                "{name}: emitted by warden but not by node_exporter"
            )),
            Some((their_kind, their_labels)) => {
                if kind != their_kind {
                    problems.push(format!(
                        "{name}: type {kind}, node_exporter says {their_kind}"
                    ));
                }
                if label_sets != their_labels {
                    problems.push(format!(
                        "{name}: labels {label_sets:?}, node_exporter has {their_labels:?}"
                    ));
                }
            }
        }
    }
    // Every meminfo field node_exporter exports, warden exports too.
    for name in theirs.keys().filter(|n| n.starts_with("node_memory_")) {
        if !ours.contains_key(name) {
            problems.push(format!("{name}: node_exporter has it, warden does not"));
        }
    }
    assert!(
        problems.is_empty(),
        "differences from node_exporter:\n{}",
        problems.join("\n")
    );
}

/// netstat fields whose values both exporters read from the same file: (name, whether it only
/// grows). A counter warden reads between two node_exporter scrapes lies between their values.
const NETSTAT_VALUES: &[(&str, bool)] = &[
    ("node_netstat_Ip_Forwarding", false),
    ("node_netstat_Tcp_MaxConn", false),
    ("node_netstat_Tcp_ActiveOpens", true),
    ("node_netstat_Tcp_PassiveOpens", true),
    ("node_netstat_Tcp_InSegs", true),
    ("node_netstat_Tcp_OutSegs", true),
    ("node_netstat_IpExt_InOctets", true),
    ("node_netstat_Udp_InDatagrams", true),
    ("node_netstat_Icmp_InMsgs", true),
];

/// node_exporter's scrape just before warden's, warden's, and node_exporter's just after: a
/// value both read from the same file lies between node_exporter's two.
struct Bracketed {
    before: String,
    ours: String,
    after: String,
}

fn bracketed(node_exporter: &Exporter, warden: &Warden) -> Bracketed {
    let before = node_exporter.scrape();
    let ours = warden.get("/metrics", &[]).body;
    let after = node_exporter.scrape();
    Bracketed {
        before,
        ours,
        after,
    }
}

#[test]
fn netstat_values_match_node_exporter_within_one_scrape() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let Bracketed {
        before,
        ours,
        after,
    } = bracketed(&node_exporter, &warden);
    let mut problems = Vec::new();
    for &(name, grows) in NETSTAT_VALUES {
        let (Some(low), Some(got), Some(high)) = (
            value(&before, name, &[]),
            value(&ours, name, &[]),
            value(&after, name, &[]),
        ) else {
            problems.push(format!("{name}: missing from one of the scrapes"));
            continue;
        };
        let ok = if grows {
            low <= got && got <= high
        } else {
            low == got && got == high
        };
        if !ok {
            problems.push(format!(
                "{name}: warden {got}, node_exporter {low} before and {high} after"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The netclass collector's samples (`node_network_*` families that are not netdev's
/// statistics).
fn netclass_samples(body: &str) -> support::Series {
    support::series(body, |name| {
        (name.starts_with("node_network_")
            && !name.starts_with("node_network_receive_")
            && !name.starts_with("node_network_transmit_"))
            || name == "node_network_transmit_queue_length"
    })
}

/// netclass reads the same sysfs attributes as node_exporter: every series node_exporter
/// reports unchanged across warden's scrape (gauges such as `up`, `carrier`, `mtu_bytes`,
/// `flags`, `speed_bytes`, and `info`'s labels) warden reports with the same value, counters lie
/// between node_exporter's two readings, and warden has no series node_exporter lacks (an
/// interface that came or went between the scrapes aside).
#[test]
fn netclass_values_match_node_exporter() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let scrapes = bracketed(&node_exporter, &warden);
    let before = netclass_samples(&scrapes.before);
    let ours = netclass_samples(&scrapes.ours);
    let after = netclass_samples(&scrapes.after);
    for name in [
        "node_network_up",
        "node_network_mtu_bytes",
        "node_network_flags",
        "node_network_info",
    ] {
        assert!(
            before.keys().any(|(n, _)| n == name),
            "{name}: node_exporter reports none"
        );
    }
    let mut problems = Vec::new();
    let mut compared = 0;
    for (key, &low) in &before {
        let Some(&high) = after.get(key) else {
            continue;
        };
        compared += 1;
        let (name, labels) = key;
        let got = ours.get(key).copied();
        let ok = match got {
            Some(got) if name.ends_with("_total") => low <= got && got <= high,
            Some(got) => low != high || got == low,
            None => false,
        };
        if !ok {
            problems.push(format!(
                "{name}{labels:?}: warden {got:?}, node_exporter {low} before and {high} after"
            ));
        }
    }
    for (key, got) in &ours {
        if !before.contains_key(key) && !after.contains_key(key) {
            problems.push(format!(
                "{key:?}: warden {got}, node_exporter has no such series"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // lo and this machine's interface, each with up, info, mtu_bytes, flags and more.
    assert!(compared >= 20, "only {compared} series compared");
}

#[test]
fn promtool_reports_nothing_beyond_what_it_reports_on_node_exporter() {
    let promtool = require_tool("promtool", "prometheus");
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let accepted: BTreeSet<String> = promtool_check(&promtool, &node_exporter.scrape())
        .into_iter()
        .collect();
    let ours = promtool_check(&promtool, &warden.get("/metrics", &[]).body);
    let extra: Vec<&String> = ours.iter().filter(|p| !accepted.contains(*p)).collect();
    assert!(
        extra.is_empty(),
        "promtool problems node_exporter does not have: {extra:#?}"
    );
}

/// `# HELP` lines by family, as written (escaped).
fn helps(body: &str) -> BTreeMap<String, String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, help)| (name.to_owned(), help.to_owned()))
        .collect()
}

/// The textfile collector's samples: (name, sorted labels) → value, NaN written as a string
/// so that it compares equal.
fn textfile_samples(body: &str) -> BTreeMap<(String, Vec<(String, String)>), String> {
    support::samples(body)
        .into_iter()
        .filter(|(name, _, _)| name.starts_with("app_") || name.starts_with("node_textfile_"))
        .map(|(name, mut labels, value)| {
            labels.sort();
            ((name, labels), format!("{value:?}"))
        })
        .collect()
}

/// The same textfile directory, read by node_exporter and by warden: the same samples (values,
/// label sets with node_exporter's empty-label padding, the histogram's added `+Inf` bucket,
/// the mtimes, the error gauge), help texts and types, except what README's textfile section
/// lists: a counter without `_total` and a summary are declared untyped.
#[test]
fn textfile_output_matches_node_exporter() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/collect/host/fixtures/textfile");
    let dir = tempfile::tempdir().unwrap();
    // e_conflict.prom is left out: node_exporter drops only its clashing series, warden the
    // whole file (unit-tested in src/collect/host/textfile).
    for file in [
        "a_basic.prom",
        "b_merge.prom",
        "c_timestamp.prom",
        "d_syntax.prom",
        "notes.txt",
    ] {
        std::fs::copy(fixtures.join(file), dir.path().join(file)).unwrap();
    }
    let directory = dir.path().display().to_string();
    let node_exporter = Exporter::start(
        require_tool("prometheus-node-exporter", "prometheus-node-exporter"),
        &[
            "--collector.disable-defaults".to_owned(),
            "--collector.textfile".to_owned(),
            format!("--collector.textfile.directory={directory}"),
        ],
        &[],
    );
    let warden = Warden::start(&format!(
        "host:\n  textfile: {{directory: '{directory}'}}\n"
    ));
    let theirs = node_exporter.scrape();
    let ours = warden.get("/metrics", &[]).body;

    let their_samples = textfile_samples(&theirs);
    assert!(
        their_samples.len() > 20,
        "node_exporter read too little:\n{theirs}"
    );
    assert_eq!(
        textfile_samples(&ours),
        their_samples,
        "\nwarden:\n{ours}\nnode_exporter:\n{theirs}"
    );
    let (their_types, our_types) = (support::types(&theirs), support::types(&ours));
    let (their_helps, our_helps) = (helps(&theirs), helps(&ours));
    let mut problems = Vec::new();
    for (name, kind) in their_types
        .iter()
        .filter(|(n, _)| n.starts_with("app_") || n.starts_with("node_textfile_"))
    {
        let expected = match kind.as_str() {
            "summary" => "untyped",
            "counter" if !name.ends_with("_total") => "untyped",
            other => other,
        };
        if our_types.get(name).map(String::as_str) != Some(expected) {
            problems.push(format!(
                "{name}: type {:?}, expected {expected} (node_exporter: {kind})",
                our_types.get(name)
            ));
        }
        if our_helps.get(name) != their_helps.get(name) {
            problems.push(format!(
                "{name}: help {:?}, node_exporter {:?}",
                our_helps.get(name),
                their_helps.get(name)
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // promtool finds nothing in warden's textfile output that it does not find in
    // node_exporter's.
    let promtool = require_tool("promtool", "prometheus");
    let accepted: BTreeSet<String> = promtool_check(&promtool, &theirs).into_iter().collect();
    let extra: Vec<String> = promtool_check(&promtool, &ours)
        .into_iter()
        .filter(|p| p.starts_with("app_") || p.starts_with("node_textfile_"))
        .filter(|p| !accepted.contains(p))
        .collect();
    assert!(extra.is_empty(), "promtool: {extra:#?}");
}

/// Differences in the `# TYPE` and `# HELP` lines of the families starting with `prefix`, which
/// both outputs must have.
fn declaration_differences(theirs: &str, ours: &str, prefix: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (what, their_map, our_map) in [
        ("type", support::types(theirs), support::types(ours)),
        ("help", helps(theirs), helps(ours)),
    ] {
        let pick = |map: &BTreeMap<String, String>| -> BTreeMap<String, String> {
            map.iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .map(|(name, text)| (name.clone(), text.clone()))
                .collect()
        };
        let (their_map, our_map) = (pick(&their_map), pick(&our_map));
        if their_map.is_empty() || their_map != our_map {
            problems.push(format!(
                "{prefix}* {what}: warden {our_map:?}, node_exporter {their_map:?}"
            ));
        }
    }
    problems
}

/// timex families that only change when the clock's discipline changes (a leap second, an NTP
/// daemon starting or switching mode), and those that drift between two reads, with how far.
const TIMEX_EXACT: &[&str] = &[
    "node_timex_sync_status",
    "node_timex_status",
    "node_timex_loop_time_constant",
    "node_timex_tick_seconds",
    "node_timex_pps_frequency_hertz",
    "node_timex_pps_jitter_seconds",
    "node_timex_pps_shift_seconds",
    "node_timex_pps_stability_hertz",
    "node_timex_pps_jitter_total",
    "node_timex_pps_calibration_total",
    "node_timex_pps_error_total",
    "node_timex_pps_stability_exceeded_total",
    "node_timex_tai_offset_seconds",
];
const TIMEX_DRIFTING: &[(&str, f64)] = &[
    ("node_timex_offset_seconds", 0.01),
    ("node_timex_frequency_adjustment_ratio", 1e-6),
    // Grows by 500 ppm of the time between the reads, and is reset by NTP updates.
    ("node_timex_maxerror_seconds", 0.1),
    ("node_timex_estimated_error_seconds", 0.1),
];

/// The same adjtimex(2) reading through both exporters: the discipline's state equal (it did
/// not change between node_exporter's two scrapes around warden's), the drifting values close.
#[test]
fn timex_values_match_node_exporter_within_one_scrape() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let Bracketed {
        before,
        ours,
        after,
    } = bracketed(&node_exporter, &warden);
    let mut problems = Vec::new();
    let tolerances = TIMEX_EXACT
        .iter()
        .map(|name| (*name, 0.0))
        .chain(TIMEX_DRIFTING.iter().copied());
    problems.extend(declaration_differences(&before, &ours, "node_timex_"));
    for (name, tolerance) in tolerances {
        let (Some(low), Some(got), Some(high)) = (
            value(&before, name, &[]),
            value(&ours, name, &[]),
            value(&after, name, &[]),
        ) else {
            problems.push(format!("{name}: missing from one of the scrapes"));
            continue;
        };
        if tolerance == 0.0 && low != high {
            // The discipline changed during the test; nothing to compare.
            continue;
        }
        let near = |theirs: f64| (got - theirs).abs() <= tolerance;
        if !(near(low) || near(high) || (low.min(high) <= got && got <= low.max(high))) {
            problems.push(format!(
                "{name}: warden {got}, node_exporter {low} before and {high} after"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `node_tcp_connection_states{state}` from one exporter's output: label → value.
fn tcp_states(body: &str) -> BTreeMap<String, f64> {
    support::samples(body)
        .into_iter()
        .filter(|(name, _, _)| name == "node_tcp_connection_states")
        .filter_map(|(_, labels, value)| {
            let state = labels.into_iter().find(|(k, _)| k == "state")?.1;
            Some((state, value))
        })
        .collect()
}

/// The sum of the listening TCP sockets' backlog limits (`ss`'s Send-Q for a listener), which
/// node_exporter's netlink reading adds to `tx_queued_bytes` and procfs does not.
fn listen_backlogs() -> f64 {
    let out = std::process::Command::new("ss")
        .args(["-Hltn"])
        .output()
        .expect("ss runs");
    assert!(out.status.success(), "ss: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(2)?.parse::<f64>().ok())
        .sum()
}

/// With sockets held open in known states (three listeners, two loopback connections, one
/// with 1000 bytes unread), both exporters count the same sockets per state and the same
/// queued bytes, in a moment when node_exporter's scrapes before and after warden's agree (other
/// tests open connections meanwhile, so it tries a few times); `time_wait`, which every scrape
/// moves, within a few. `tx_queued_bytes` differs by the listeners' backlogs, as README says.
#[test]
fn tcpstat_values_match_node_exporter_within_one_scrape() {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut connections = Vec::new();
    for listener in &listeners[..2] {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        connections.push((client, server));
    }
    connections[0].0.write_all(&[7; 1000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));

    let node_exporter = Exporter::node();
    let warden = Warden::start("host:\n  collectors: {tcpstat: true}\n");
    let problems = declaration_differences(
        &node_exporter.scrape(),
        &warden.get("/metrics", &[]).body,
        "node_tcp_",
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let mut last = String::new();
    for _ in 0..10 {
        let mut before = tcp_states(&node_exporter.scrape());
        let backlogs = listen_backlogs();
        let mut ours = tcp_states(&warden.get("/metrics", &[]).body);
        let mut after = tcp_states(&node_exporter.scrape());
        // Every scrape's own connection ends in TIME_WAIT, so that count moves all the time:
        // warden's lies near node_exporter's two.
        let waits: Vec<f64> = [&mut before, &mut ours, &mut after]
            .into_iter()
            .map(|states| states.remove("time_wait").unwrap_or(0.0))
            .collect();
        let (low, high) = (waits[0].min(waits[2]), waits[0].max(waits[2]));
        if waits[1] < low - 3.0 || waits[1] > high + 3.0 {
            last = format!(
                "time_wait: warden {}, node_exporter {low}..{high}",
                waits[1]
            );
            continue;
        }
        if before != after {
            last = format!("node_exporter changed between scrapes: {before:?} → {after:?}");
            continue;
        }
        assert!(ours["listen"] >= 3.0, "{ours:?}");
        assert!(ours["established"] >= 4.0, "{ours:?}");
        assert!(ours["rx_queued_bytes"] >= 1000.0, "{ours:?}");
        let mut expected = before.clone();
        if let Some(tx) = expected.get_mut("tx_queued_bytes") {
            *tx -= backlogs;
        }
        if ours == expected {
            return;
        }
        last = format!("warden {ours:?}, node_exporter {before:?} (listen backlogs {backlogs})");
    }
    panic!("no agreement in 10 tries; last: {last}");
}

/// The process counts of both exporters: the limits equal, the counts near node_exporter's
/// two scrapes around warden's (other tests start and end processes meanwhile).
#[test]
fn processes_values_match_node_exporter_within_one_scrape() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("host:\n  collectors: {processes: true}\n");
    let Bracketed {
        before,
        ours,
        after,
    } = bracketed(&node_exporter, &warden);
    let mut problems = Vec::new();
    for name in [
        "node_processes_max_processes",
        "node_processes_max_threads",
        "node_processes_pids",
        "node_processes_threads",
    ] {
        let (Some(low), Some(got), Some(high)) = (
            value(&before, name, &[]),
            value(&ours, name, &[]),
            value(&after, name, &[]),
        ) else {
            problems.push(format!("{name}: missing from one of the scrapes"));
            continue;
        };
        let slack = if name.contains("max_") {
            0.0
        } else {
            (0.1 * high.max(low)).max(10.0)
        };
        if got < low.min(high) - slack || got > low.max(high) + slack {
            problems.push(format!(
                "{name}: warden {got}, node_exporter {low} before and {high} after"
            ));
        }
    }
    problems.extend(declaration_differences(&before, &ours, "node_processes_"));
    // Most processes sleep: both see sleepers.
    for body in [&before, &ours] {
        if value(body, "node_processes_state", &[("state", "S")]).unwrap_or(0.0) < 1.0 {
            problems.push("no sleeping process counted".to_owned());
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `node_interrupts_total` from one exporter's output.
fn interrupt_samples(body: &str) -> support::Series {
    support::series(body, |name| name == "node_interrupts_total")
}

/// Both exporters read /proc/interrupts into the same series (labels equal), each count
/// between node_exporter's scrapes before and after warden's.
#[test]
fn interrupts_values_match_node_exporter_within_one_scrape() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("host:\n  collectors: {interrupts: true}\n");
    let scrapes = bracketed(&node_exporter, &warden);
    let (before, ours, after) = (
        interrupt_samples(&scrapes.before),
        interrupt_samples(&scrapes.ours),
        interrupt_samples(&scrapes.after),
    );
    let mut problems = declaration_differences(&scrapes.before, &scrapes.ours, "node_interrupts_");
    assert!(
        before.len() > 10,
        "node_exporter read too little: {before:?}"
    );
    let keys = |map: &support::Series| -> Vec<Vec<(String, String)>> {
        map.keys().map(|(_, labels)| labels.clone()).collect()
    };
    if keys(&ours) != keys(&before) {
        problems.push(format!(
            "series differ: warden {:?}, node_exporter {:?}",
            keys(&ours),
            keys(&before)
        ));
    }
    for (key, got) in &ours {
        let (Some(low), Some(high)) = (before.get(key), after.get(key)) else {
            continue;
        };
        let labels = &key.1;
        if got < low || got > high {
            problems.push(format!(
                "{labels:?}: warden {got}, node_exporter {low} before and {high} after"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The hardware collectors' families, which this VM lacks the hardware for.
const HARDWARE_PREFIXES: &[&str] = &[
    "node_schedstat_",
    "node_cpu_frequency_",
    "node_cpu_scaling_frequency_",
    "node_thermal_zone_",
    "node_cooling_device_",
    "node_hwmon_",
    "node_power_supply_",
    "node_edac_",
    "node_md_",
];

/// node_exporter and warden read the same fixture procfs and sysfs (src/collect/host/fixtures):
/// the hardware collectors give the same samples, types and help texts.
#[test]
fn hardware_collectors_match_node_exporter_on_the_fixture_trees() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/collect/host/fixtures");
    let (proc, sys) = (fixtures.join("proc"), fixtures.join("sys"));
    let collectors = [
        "schedstat",
        "cpufreq",
        "thermal_zone",
        "hwmon",
        "powersupplyclass",
        "edac",
        "mdadm",
    ];
    let mut args = vec![
        "--collector.disable-defaults".to_owned(),
        format!("--path.procfs={}", proc.display()),
        format!("--path.sysfs={}", sys.display()),
    ];
    args.extend(collectors.iter().map(|c| format!("--collector.{c}")));
    let node_exporter = Exporter::start(
        require_tool("prometheus-node-exporter", "prometheus-node-exporter"),
        &args,
        &[],
    );
    let warden = Warden::start(&format!(
        "host:\n  procfs: '{}'\n  sysfs: '{}'\n",
        proc.display(),
        sys.display()
    ));
    let (theirs, ours) = (node_exporter.scrape(), warden.get("/metrics", &[]).body);
    let hardware = |name: &str| HARDWARE_PREFIXES.iter().any(|p| name.starts_with(p));
    let samples = |body: &str| -> BTreeSet<String> {
        support::samples(body)
            .into_iter()
            .filter(|(name, _, _)| hardware(name))
            .map(|(name, mut labels, value)| {
                labels.sort();
                format!("{name}{labels:?} {value:?}")
            })
            .collect()
    };
    let their_samples = samples(&theirs);
    assert!(
        their_samples.len() > 60,
        "node_exporter read too little:\n{theirs}"
    );
    assert_eq!(samples(&ours), their_samples);
    let described = |body: &str| -> BTreeMap<String, (String, Option<String>)> {
        let helps = helps(body);
        support::types(body)
            .into_iter()
            .filter(|(name, _)| hardware(name))
            .map(|(name, kind)| {
                let help = helps.get(&name).cloned();
                (name, (kind, help))
            })
            .collect()
    };
    assert_eq!(described(&ours), described(&theirs));
    let promtool = require_tool("promtool", "prometheus");
    let accepted: BTreeSet<String> = promtool_check(&promtool, &theirs).into_iter().collect();
    let extra: Vec<String> = promtool_check(&promtool, &ours)
        .into_iter()
        .filter(|p| hardware(p) && !accepted.contains(p))
        .collect();
    assert!(extra.is_empty(), "promtool: {extra:#?}");
}
