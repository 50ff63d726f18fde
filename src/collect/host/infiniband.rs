//! `infiniband`: InfiniBand adapters and their ports from sysfs `class/infiniband`, as
//! node_exporter 1.5's `infiniband_linux.go` (through procfs 0.8's `sysfs.InfiniBandClass`):
//! `node_infiniband_info{device,board_id,firmware_version,hca_type}`,
//! `node_infiniband_{state_id,physical_state_id,rate_bytes_per_second}{device,port}` and a
//! counter per port counter file the kernel has (`counters/*`, `counters_ext/*`; the data
//! counters count 4-byte words and are exported in bytes).
//!
//! No `class/infiniband` (no adapter, or the module is not loaded) is no output and success. A
//! counter that reads `N/A (no PMA)` has no sample, as in node_exporter; any other value that
//! is not a number fails the collection, as there.

use super::netclass::{parse_uint, unreported};
use super::procfiles::ProcFiles;
use crate::collect::{Error, Family};

/// A port counter: (directory, file, family, help, multiplier to bytes).
type Counter = (&'static str, &'static str, &'static str, &'static str, u64);

/// The counters, in node_exporter's order.
const COUNTERS: [Counter; 30] = [
    (
        "counters_ext",
        "port_multicast_rcv_packets",
        "node_infiniband_legacy_multicast_packets_received_total",
        "Number of multicast packets received",
        1,
    ),
    (
        "counters_ext",
        "port_multicast_xmit_packets",
        "node_infiniband_legacy_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted",
        1,
    ),
    (
        "counters_ext",
        "port_rcv_data_64",
        "node_infiniband_legacy_data_received_bytes_total",
        "Number of data octets received on all links",
        4,
    ),
    (
        "counters_ext",
        "port_rcv_packets_64",
        "node_infiniband_legacy_packets_received_total",
        "Number of data packets received on all links",
        1,
    ),
    (
        "counters_ext",
        "port_unicast_rcv_packets",
        "node_infiniband_legacy_unicast_packets_received_total",
        "Number of unicast packets received",
        1,
    ),
    (
        "counters_ext",
        "port_unicast_xmit_packets",
        "node_infiniband_legacy_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted",
        1,
    ),
    (
        "counters_ext",
        "port_xmit_data_64",
        "node_infiniband_legacy_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        4,
    ),
    (
        "counters_ext",
        "port_xmit_packets_64",
        "node_infiniband_legacy_packets_transmitted_total",
        "Number of data packets received on all links",
        1,
    ),
    (
        "counters",
        "excessive_buffer_overrun_errors",
        "node_infiniband_excessive_buffer_overrun_errors_total",
        "Number of times that OverrunErrors consecutive flow control update periods occurred, \
         each having at least one overrun error.",
        1,
    ),
    (
        "counters",
        "link_downed",
        "node_infiniband_link_downed_total",
        "Number of times the link failed to recover from an error state and went down",
        1,
    ),
    (
        "counters",
        "link_error_recovery",
        "node_infiniband_link_error_recovery_total",
        "Number of times the link successfully recovered from an error state",
        1,
    ),
    (
        "counters",
        "local_link_integrity_errors",
        "node_infiniband_local_link_integrity_errors_total",
        "Number of times that the count of local physical errors exceeded the threshold \
         specified by LocalPhyErrors.",
        1,
    ),
    (
        "counters",
        "multicast_rcv_packets",
        "node_infiniband_multicast_packets_received_total",
        "Number of multicast packets received (including errors)",
        1,
    ),
    (
        "counters",
        "multicast_xmit_packets",
        "node_infiniband_multicast_packets_transmitted_total",
        "Number of multicast packets transmitted (including errors)",
        1,
    ),
    (
        "counters",
        "port_rcv_constraint_errors",
        "node_infiniband_port_constraint_errors_received_total",
        "Number of packets received on the switch physical port that are discarded",
        1,
    ),
    (
        "counters",
        "port_xmit_constraint_errors",
        "node_infiniband_port_constraint_errors_transmitted_total",
        "Number of packets not transmitted from the switch physical port",
        1,
    ),
    (
        "counters",
        "port_rcv_data",
        "node_infiniband_port_data_received_bytes_total",
        "Number of data octets received on all links",
        4,
    ),
    (
        "counters",
        "port_xmit_data",
        "node_infiniband_port_data_transmitted_bytes_total",
        "Number of data octets transmitted on all links",
        4,
    ),
    (
        "counters",
        "port_rcv_discards",
        "node_infiniband_port_discards_received_total",
        "Number of inbound packets discarded by the port because the port is down or congested",
        1,
    ),
    (
        "counters",
        "port_xmit_discards",
        "node_infiniband_port_discards_transmitted_total",
        "Number of outbound packets discarded by the port because the port is down or congested",
        1,
    ),
    (
        "counters",
        "port_rcv_errors",
        "node_infiniband_port_errors_received_total",
        "Number of packets containing an error that were received on this port",
        1,
    ),
    (
        "counters",
        "port_rcv_packets",
        "node_infiniband_port_packets_received_total",
        "Number of packets received on all VLs by this port (including errors)",
        1,
    ),
    (
        "counters",
        "port_xmit_packets",
        "node_infiniband_port_packets_transmitted_total",
        "Number of packets transmitted on all VLs from this port (including errors)",
        1,
    ),
    (
        "counters",
        "port_xmit_wait",
        "node_infiniband_port_transmit_wait_total",
        "Number of ticks during which the port had data to transmit but no data was sent \
         during the entire tick",
        1,
    ),
    (
        "counters",
        "unicast_rcv_packets",
        "node_infiniband_unicast_packets_received_total",
        "Number of unicast packets received (including errors)",
        1,
    ),
    (
        "counters",
        "unicast_xmit_packets",
        "node_infiniband_unicast_packets_transmitted_total",
        "Number of unicast packets transmitted (including errors)",
        1,
    ),
    (
        "counters",
        "port_rcv_remote_physical_errors",
        "node_infiniband_port_receive_remote_physical_errors_total",
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the \
         port.",
        1,
    ),
    (
        "counters",
        "port_rcv_switch_relay_errors",
        "node_infiniband_port_receive_switch_relay_errors_total",
        "Number of packets that could not be forwarded by the switch.",
        1,
    ),
    (
        "counters",
        "symbol_error",
        "node_infiniband_symbol_error_total",
        "Number of minor link errors detected on one or more physical lanes.",
        1,
    ),
    (
        "counters",
        "VL15_dropped",
        "node_infiniband_vl15_dropped_total",
        "Number of incoming VL15 packets dropped due to resource limitations.",
        1,
    ),
];

/// Reads every adapter and port under `class/infiniband`.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let Some(devices) = files.entries("class/infiniband")? else {
        return Ok(Vec::new());
    };
    let mut info = Family::gauge(
        "node_infiniband_info",
        "Non-numeric data from /sys/class/infiniband/<device>, value is always 1.",
    );
    let mut state = Family::gauge(
        "node_infiniband_state_id",
        "State of the InfiniBand port (0: no change, 1: down, 2: init, 3: armed, 4: active, 5: \
         act defer)",
    );
    let mut physical_state = Family::gauge(
        "node_infiniband_physical_state_id",
        "Physical state of the InfiniBand port (0: no change, 1: sleep, 2: polling, 3: disable, \
         4: shift, 5: link up, 6: link error recover, 7: phytest)",
    );
    let mut rate = Family::gauge(
        "node_infiniband_rate_bytes_per_second",
        "Maximum signal transfer rate",
    );
    let mut counters: Vec<Family> = COUNTERS
        .iter()
        .map(|(_, _, name, help, _)| Family::counter(*name, *help))
        .collect();
    for device in devices {
        let dir = format!("class/infiniband/{device}");
        let text = |t: &str| Ok(t.trim().to_owned());
        let board_id = files.required(&format!("{dir}/board_id"), text)?;
        let firmware = files.required(&format!("{dir}/fw_ver"), text)?;
        let hca_type = files
            .optional(&format!("{dir}/hca_type"), text)?
            .unwrap_or_default();
        info.push(
            [
                ("device", device.clone()),
                ("board_id", board_id),
                ("firmware_version", firmware),
                ("hca_type", hca_type),
            ],
            1.0,
        );
        let ports = files.entries(&format!("{dir}/ports"))?.unwrap_or_default();
        for port in ports {
            if port.parse::<u32>().is_err() {
                return Err(Error::Parse {
                    path: format!("{dir}/ports/{port}"),
                    reason: "a port is not a number".to_owned(),
                });
            }
            let port_dir = format!("{dir}/ports/{port}");
            let labels = || [("device", device.clone()), ("port", port.clone())];
            let state_id = files.required(&format!("{port_dir}/state"), parse_state)?;
            let physical_id = files.required(&format!("{port_dir}/phys_state"), parse_state)?;
            let bytes = files.required(&format!("{port_dir}/rate"), parse_rate)?;
            state.push(labels(), f64::from(state_id));
            physical_state.push(labels(), f64::from(physical_id));
            rate.push(labels(), bytes as f64);
            for (family, (subdir, file, _, _, words)) in counters.iter_mut().zip(&COUNTERS) {
                if let Some(value) = counter(files, &format!("{port_dir}/{subdir}/{file}"))? {
                    family.push(labels(), value.wrapping_mul(*words) as f64);
                }
            }
        }
    }
    let mut families = vec![info, state, physical_state, rate];
    families.extend(counters);
    families.retain(|family| !family.samples.is_empty());
    Ok(families)
}

/// A port counter; `None` when it is unreadable (as netclass's attributes) or `N/A (no PMA)`.
fn counter(files: &ProcFiles, relative: &str) -> Result<Option<u64>, Error> {
    let parsed = files.required(relative, |text| {
        let text = text.trim();
        if text.contains("N/A (no PMA)") {
            return Ok(None);
        }
        parse_uint(text)
            .map(Some)
            .ok_or_else(|| format!("{text:?} is not an unsigned integer"))
    });
    match parsed {
        Err(Error::Read { source, .. }) if unreported(&source) => Ok(None),
        other => other,
    }
}

/// A port state, `ID: NAME` (`4: ACTIVE`): the ID.
fn parse_state(text: &str) -> Result<u32, String> {
    let mut parts = text.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(id), Some(_), None) => id
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a state number", id.trim())),
        _ => Err(format!("{text:?} is not 'ID: NAME'")),
    }
}

/// A port rate, `<Gb/s> Gb/sec (<width> <speed>)`, in bytes per second (as procfs computes it,
/// from a 32-bit float).
fn parse_rate(text: &str) -> Result<u64, String> {
    let Some((gigabits, _)) = text.split_once(' ') else {
        return Err(format!("{text:?} is not '<rate> Gb/sec ...'"));
    };
    let gigabits: f32 = gigabits
        .trim()
        .parse()
        .map_err(|_| format!("{gigabits:?} is not a rate"))?;
    if !gigabits.is_finite() || gigabits < 0.0 {
        return Err(format!("{gigabits} is not a rate"));
    }
    Ok((f64::from(gigabits) * 125_000_000.0) as u64)
}

/// The fuzz driver's entry (`host::fuzzing`): the text as a port state and as a port rate.
pub(super) fn fuzz(text: &str) -> Result<u64, String> {
    let state = parse_state(text);
    parse_rate(text).or(state.map(u64::from))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    fn value(families: &[Family], name: &str, port: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("device", "mlx4_0"), ("port", port)])
    }

    #[test]
    fn reads_the_hand_made_adapter() {
        let families = collect(&files_in(&fixture_sys())).expect("collects");
        let info = &families[0];
        assert_eq!(info.name, "node_infiniband_info");
        assert_eq!(info.samples.len(), 1);
        let labels: Vec<(&str, &str)> = info.samples[0]
            .labels
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        assert_eq!(
            labels,
            [
                ("device", "mlx4_0"),
                ("board_id", "MT_1090120019"),
                ("firmware_version", "2.42.5000"),
                ("hca_type", "MT4099"),
            ]
        );
        for (name, port, expected) in [
            ("node_infiniband_state_id", "1", Some(4.0)),
            ("node_infiniband_state_id", "2", Some(1.0)),
            ("node_infiniband_physical_state_id", "1", Some(5.0)),
            ("node_infiniband_physical_state_id", "2", Some(3.0)),
            ("node_infiniband_rate_bytes_per_second", "1", Some(5e9)),
            (
                "node_infiniband_rate_bytes_per_second",
                "2",
                Some(312_500_000.0),
            ),
            (
                "node_infiniband_port_data_received_bytes_total",
                "1",
                Some(8_884_894_436.0),
            ),
            (
                "node_infiniband_legacy_data_transmitted_bytes_total",
                "1",
                Some(106_036_453_180.0),
            ),
            (
                "node_infiniband_port_packets_received_total",
                "1",
                Some(87_169_372.0),
            ),
            ("node_infiniband_link_downed_total", "1", Some(1.0)),
            (
                "node_infiniband_port_transmit_wait_total",
                "1",
                Some(3599.0),
            ),
            ("node_infiniband_vl15_dropped_total", "2", Some(0.0)),
            // N/A (no PMA) on port 1; no counters_ext on port 2.
            ("node_infiniband_port_discards_received_total", "1", None),
            (
                "node_infiniband_port_discards_received_total",
                "2",
                Some(0.0),
            ),
            ("node_infiniband_legacy_packets_received_total", "2", None),
            ("node_infiniband_unicast_packets_received_total", "2", None),
        ] {
            assert_eq!(value(&families, name, port), expected, "{name}{{{port}}}");
        }
        let family = |name: &str| families.iter().find(|f| f.name == name).expect(name);
        assert_eq!(
            family("node_infiniband_symbol_error_total").kind,
            Kind::Counter
        );
        assert_eq!(family("node_infiniband_state_id").kind, Kind::Gauge);
        assert_eq!(
            family("node_infiniband_rate_bytes_per_second").help,
            "Maximum signal transfer rate"
        );
        // 4 gauges and all 30 counters have samples.
        assert_eq!(families.len(), 34);
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn no_adapter_is_no_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("ok").is_empty());
        std::fs::create_dir_all(dir.path().join("class/infiniband")).expect("mkdir");
        assert!(collect(&files_in(dir.path())).expect("ok").is_empty());
    }

    #[test]
    fn malformed_files_fail_without_panicking() {
        let good = |root: &Path| {
            write(
                root,
                "class/infiniband/hfi1_0/board_id",
                "HPE 100Gb 1-port OP101\n",
            );
            write(root, "class/infiniband/hfi1_0/fw_ver", "1.27.0\n");
            write(root, "class/infiniband/hfi1_0/ports/1/state", "4: ACTIVE\n");
            write(
                root,
                "class/infiniband/hfi1_0/ports/1/phys_state",
                "5: LinkUp\n",
            );
            write(
                root,
                "class/infiniband/hfi1_0/ports/1/rate",
                "100 Gb/sec (4X EDR)\n",
            );
        };
        let dir = tempfile::tempdir().expect("tempdir");
        good(dir.path());
        // No hca_type and no counters: info with an empty hca_type, no counters.
        let families = collect(&files_in(dir.path())).expect("collects");
        assert_eq!(families.len(), 4);
        assert_eq!(families[0].samples[0].labels[3].1, "");
        assert_eq!(families[3].samples[0].value, 12_500_000_000.0);
        for (file, text) in [
            ("ports/1/state", "ACTIVE\n"),
            ("ports/1/state", "x: ACTIVE\n"),
            ("ports/1/state", "4: A: B\n"),
            ("ports/1/phys_state", "\n"),
            ("ports/1/rate", "fast\n"),
            ("ports/1/rate", "NaN Gb/sec\n"),
            ("ports/1/rate", "-1 Gb/sec\n"),
            ("ports/1/counters/symbol_error", "many\n"),
            ("ports/x/state", "4: ACTIVE\n"),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            good(dir.path());
            write(dir.path(), &format!("class/infiniband/hfi1_0/{file}"), text);
            assert!(
                collect(&files_in(dir.path())).is_err(),
                "{file}: {text:?} accepted"
            );
        }
        let dir = tempfile::tempdir().expect("tempdir");
        good(dir.path());
        std::fs::remove_file(dir.path().join("class/infiniband/hfi1_0/fw_ver")).expect("rm");
        assert!(collect(&files_in(dir.path())).is_err());
    }

    #[test]
    fn rates_convert_as_procfs_does() {
        assert_eq!(parse_rate("40 Gb/sec (4X QDR)"), Ok(5_000_000_000));
        assert_eq!(parse_rate("2.5 Gb/sec (1X SDR)"), Ok(312_500_000));
        assert_eq!(parse_rate("56 Gb/sec (4X FDR)"), Ok(7_000_000_000));
        assert!(parse_rate("40").is_err());
    }
}
