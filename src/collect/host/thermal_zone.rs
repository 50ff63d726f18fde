//! `thermal_zone`: thermal zones and cooling devices from sysfs `class/thermal`, as
//! node_exporter 1.5's `thermal_zone_linux.go`: `node_thermal_zone_temp{zone,type}` (°C, from
//! `thermal_zoneN/temp` in m°C) and `node_cooling_device_{cur,max}_state{name,type}` from
//! `cooling_deviceN/` (Documentation/ABI/testing/sysfs-class-thermal). `zone` and `name` are
//! the entry's number.
//!
//! A zone whose sensor has no reading (`ENODATA`, a Wi-Fi card that is down) is skipped, as
//! upstream; no thermal class (most VMs) is no data, not a failure.

use super::procfiles::{ProcFiles, numbered, parse_number};
use crate::collect::{Error, Family};

/// Reads every thermal zone and cooling device.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    // Zones and cooling devices share the directory: listed once.
    let entries = files.entries("class/thermal")?.unwrap_or_default();
    let mut temp = Family::gauge("node_thermal_zone_temp", "Zone temperature in Celsius");
    for zone in numbered(&entries, "thermal_zone") {
        let dir = format!("class/thermal/thermal_zone{zone}");
        let millidegrees = match files.required(&format!("{dir}/temp"), parse_i64) {
            Err(Error::Read { source, .. })
                if source.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) =>
            {
                continue;
            }
            other => other?,
        };
        let kind = files.required(&format!("{dir}/type"), |t| Ok(t.trim().to_owned()))?;
        temp.push(
            [("zone", zone), ("type", kind)],
            millidegrees as f64 / 1000.0,
        );
    }
    let mut current = Family::gauge(
        "node_cooling_device_cur_state",
        "Current throttle state of the cooling device",
    );
    let mut maximum = Family::gauge(
        "node_cooling_device_max_state",
        "Maximum throttle state of the cooling device",
    );
    for device in numbered(&entries, "cooling_device") {
        let dir = format!("class/thermal/cooling_device{device}");
        let kind = files.required(&format!("{dir}/type"), |t| Ok(t.trim().to_owned()))?;
        let max = files.required(&format!("{dir}/max_state"), parse_i64)?;
        // -1 where the state is unknown (intel_powerclamp when idle injection is off).
        let cur = files.required(&format!("{dir}/cur_state"), parse_i64)?;
        current.push(
            [("name", device.clone()), ("type", kind.clone())],
            cur as f64,
        );
        maximum.push([("name", device), ("type", kind)], max as f64);
    }
    Ok([temp, current, maximum]
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect())
}

fn parse_i64(text: &str) -> Result<i64, String> {
    parse_number(text.trim(), "value")
}

/// The fuzz driver's entry (`host::fuzzing`).
pub(super) fn fuzz(text: &str) -> Result<i64, String> {
    parse_i64(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    #[test]
    fn reads_the_fixture_zones_and_cooling_devices() {
        let families = collect(&files_in(&fixture_sys())).expect("reads");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_thermal_zone_temp",
                "node_cooling_device_cur_state",
                "node_cooling_device_max_state",
            ]
        );
        let zones: Vec<(Vec<&str>, f64)> = families[0]
            .samples
            .iter()
            .map(|s| (s.labels.iter().map(|(_, v)| v.as_ref()).collect(), s.value))
            .collect();
        assert_eq!(
            zones,
            [
                (vec!["0", "acpitz"], 27.8),
                (vec!["1", "x86_pkg_temp"], 45.0),
                (vec!["10", "iwlwifi_1"], -2.5),
            ]
        );
        assert_eq!(families[0].samples[0].labels[0].0, "zone");
        let device = [("name", "1"), ("type", "intel_powerclamp")];
        assert_eq!(families[1].value(&device), Some(-1.0));
        assert_eq!(families[2].value(&device), Some(50.0));
        let device = [("name", "0"), ("type", "Processor")];
        assert_eq!(families[1].value(&device), Some(0.0));
        assert_eq!(families[2].value(&device), Some(3.0));
    }

    #[test]
    fn no_thermal_class_is_no_data_and_bad_attributes_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        let zone = dir.path().join("class/thermal/thermal_zone0");
        std::fs::create_dir_all(&zone).expect("mkdir");
        std::fs::write(zone.join("type"), "acpitz\n").expect("write");
        // No temp.
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        std::fs::write(zone.join("temp"), "hot\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
        std::fs::write(zone.join("temp"), "40000\n").expect("write");
        assert_eq!(collect(&files_in(dir.path())).expect("reads").len(), 1);
        let device = dir.path().join("class/thermal/cooling_device0");
        std::fs::create_dir_all(&device).expect("mkdir");
        std::fs::write(device.join("type"), "Fan\n").expect("write");
        std::fs::write(device.join("max_state"), "1\n").expect("write");
        std::fs::write(device.join("cur_state"), "\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
    }
}
