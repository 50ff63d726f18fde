//! `powersupplyclass`: batteries, mains adapters and UPSes from sysfs `class/power_supply`, as
//! node_exporter 1.5's `powersupplyclass_linux.go`: `node_power_supply_<attribute>
//! {power_supply}` for each numeric attribute the supply has (Documentation/ABI/testing/
//! sysfs-class-power; µA, µV, µWh, µW as A, V, Wh, W; tenths of °C as °C) and
//! `node_power_supply_info{power_supply,...}` with its text attributes as labels.
//!
//! An attribute the driver cannot report now (`EOPNOTSUPP`, `EINVAL`, `ENODATA`) is left out;
//! no power supply class is no data, not a failure.

use super::procfiles::{ProcFiles, parse_number};
use crate::collect::{Error, Family};

/// (file, metric suffix, divisor), in node_exporter's groups: plain, micro-units, tenths.
const NUMBERS: [(&str, &str, f64); 49] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        1e6,
    ),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        1e6,
    ),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// The text attributes that label `node_power_supply_info`, after `power_supply`.
const TEXTS: [&str; 11] = [
    "capacity_level",
    "charge_type",
    "health",
    "manufacturer",
    "model_name",
    "serial_number",
    "status",
    "technology",
    "type",
    "usb_type",
    "scope",
];

/// Reads every power supply.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let Some(supplies) = files.entries("class/power_supply")? else {
        return Ok(Vec::new());
    };
    let mut numbers = NUMBERS.map(|(_, suffix, _)| {
        Family::gauge(
            format!("node_power_supply_{suffix}"),
            format!("{suffix} value of /sys/class/power_supply/<power_supply>."),
        )
    });
    let mut info = Family::gauge(
        "node_power_supply_info",
        "info of /sys/class/power_supply/<power_supply>.",
    );
    for supply in supplies {
        let dir = format!("class/power_supply/{supply}");
        if !files.is_dir(&dir) {
            continue;
        }
        for ((file, _, divisor), family) in NUMBERS.iter().zip(&mut numbers) {
            let value = read(files, &format!("{dir}/{file}"), |t| {
                parse_number::<i64>(t, file)
            })?;
            if let Some(value) = value {
                family.push([("power_supply", supply.clone())], value as f64 / divisor);
            }
        }
        let mut labels = vec![("power_supply".into(), supply.clone())];
        for text in TEXTS {
            let value = read(files, &format!("{dir}/{text}"), |t| Ok(t.to_owned()))?;
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                labels.push((text.into(), value));
            }
        }
        info.push_labels(labels, 1.0);
    }
    Ok(numbers
        .into_iter()
        .chain([info])
        .filter(|f| !f.samples.is_empty())
        .collect())
}

/// An attribute, or `None` when the supply lacks it or cannot report it now (or, for text, it
/// is not UTF-8).
fn read<T>(
    files: &ProcFiles,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    match files.attribute(path, parse) {
        Err(Error::Read { source, .. })
            if source.kind() == std::io::ErrorKind::InvalidData
                || [
                    rustix::io::Errno::OPNOTSUPP,
                    rustix::io::Errno::INVAL,
                    rustix::io::Errno::NODATA,
                ]
                .iter()
                .any(|errno| source.raw_os_error() == Some(errno.raw_os_error())) =>
        {
            Ok(None)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    #[test]
    fn reads_the_fixture_battery_and_adapter() {
        let families = collect(&files_in(&fixture_sys())).expect("reads");
        let values: Vec<(&str, &str, f64)> = families
            .iter()
            .filter(|f| f.name != "node_power_supply_info")
            .flat_map(|f| {
                f.samples
                    .iter()
                    .map(move |s| (f.name.as_ref(), s.labels[0].1.as_ref(), s.value))
            })
            .collect();
        assert_eq!(
            values,
            [
                ("node_power_supply_capacity", "BAT0", 86.0),
                ("node_power_supply_cyclecount", "BAT0", 123.0),
                ("node_power_supply_online", "AC", 1.0),
                ("node_power_supply_present", "BAT0", 1.0),
                ("node_power_supply_energy_full", "BAT0", 45.0),
                ("node_power_supply_energy_full_design", "BAT0", 57.0),
                ("node_power_supply_energy_watthour", "BAT0", 38.7),
                ("node_power_supply_voltage_min_design", "BAT0", 15.44),
                ("node_power_supply_voltage_volt", "BAT0", 16.511),
                ("node_power_supply_power_watt", "BAT0", 7.452),
                ("node_power_supply_temp_celsius", "BAT0", 29.6),
            ]
        );
        let info = families.last().expect("info");
        assert_eq!(info.name, "node_power_supply_info");
        let labels: Vec<Vec<(&str, &str)>> = info
            .samples
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    .collect()
            })
            .collect();
        assert_eq!(
            labels,
            [
                vec![("power_supply", "AC"), ("type", "Mains")],
                vec![
                    ("power_supply", "BAT0"),
                    ("capacity_level", "Normal"),
                    ("manufacturer", "SMP"),
                    ("model_name", "5B10W13930"),
                    ("serial_number", "4121"),
                    ("status", "Discharging"),
                    ("technology", "Li-poly"),
                    ("type", "Battery"),
                ],
            ]
        );
        assert_eq!(
            families[0].help,
            "capacity value of /sys/class/power_supply/<power_supply>."
        );
    }

    #[test]
    fn no_power_supply_is_no_data_and_a_bad_number_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        let supply = dir.path().join("class/power_supply/BAT1");
        std::fs::create_dir_all(&supply).expect("mkdir");
        std::fs::write(supply.join("model_name"), [0xff, b'\n']).expect("write");
        let families = collect(&files_in(dir.path())).expect("reads");
        assert_eq!(families.len(), 1);
        assert_eq!(families[0].samples[0].labels.len(), 1);
        std::fs::write(supply.join("capacity"), "full\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
    }
}
