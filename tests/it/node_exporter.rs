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

#[test]
fn netstat_values_match_node_exporter_within_one_scrape() {
    let node_exporter = Exporter::node();
    let warden = Warden::start("");
    let before = node_exporter.scrape();
    let ours = warden.get("/metrics", &[]).body;
    let after = node_exporter.scrape();
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
