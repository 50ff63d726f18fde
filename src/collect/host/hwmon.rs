//! `hwmon`: hardware sensors from sysfs `class/hwmon` (what lm-sensors shows), as node_exporter
//! 1.5's `hwmon_linux.go`. Each `hwmonN` directory (and its `device/`, where older drivers put
//! their attributes) has files `<type><N>_<property>` (Documentation/hwmon/sysfs-interface.rst);
//! each sensor `<type><N>` becomes samples `{chip,sensor}` of families named from its type and
//! properties, in base units: `node_hwmon_temp_celsius` (`temp1_input`),
//! `node_hwmon_temp_{crit,max,...}_celsius`, `node_hwmon_in_volts`, `node_hwmon_fan_rpm`,
//! `node_hwmon_curr_amps`, `node_hwmon_power_<property>_watt`,
//! `node_hwmon_energy_joule_total`, `node_hwmon_humidity`, `..._alarm`, `..._beep_enabled`, and
//! `node_hwmon_<type>_<property>` unscaled for the rest. `<type><N>_label` gives
//! `node_hwmon_sensor_label{chip,sensor,label}`, the `name` file
//! `node_hwmon_chip_names{chip,chip_name}`.
//!
//! `chip` is stable across boots: the `device` symlink's target as `<bus>_<device>`
//! (`platform_coretemp_0`, `pci0000:00_0000:00:18_3`), else the cleaned `name`, else `hwmonN`.
//! A file that cannot be read or is not a number is skipped (broken drivers return `EAGAIN`,
//! `EIO`); no hwmon class (most VMs) is no data, not a failure.

use std::collections::{BTreeMap, HashSet};

use super::procfiles::ProcFiles;
use crate::collect::family::Kind;
use crate::collect::{Error, Family};

/// The sensor types node_exporter reads.
const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// Sensor (`temp1`) → property (`input`, `crit`, `""` for a bare `pwm1`) → raw value.
type Sensors = BTreeMap<String, BTreeMap<String, String>>;

/// The families being built, by name, each with the (chip, sensor) pairs it has.
#[derive(Default)]
struct Output {
    families: BTreeMap<String, (Family, HashSet<Vec<String>>)>,
}

impl Output {
    /// Adds a sample; the first help and type of a name win, and a repeated series is dropped.
    fn push(
        &mut self,
        name: String,
        help: String,
        kind: Kind,
        labels: [(&'static str, String); 2],
        value: f64,
    ) {
        let (family, seen) = self
            .families
            .entry(name.clone())
            .or_insert_with(|| (Family::new(name, help, kind), HashSet::new()));
        if seen.insert(labels.iter().map(|(_, v)| v.clone()).collect()) {
            family.push(labels, value);
        }
    }
}

/// Reads every hwmon chip.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let Some(entries) = files.entries("class/hwmon")? else {
        return Ok(Vec::new());
    };
    let mut out = Output::default();
    let mut labels: Vec<(String, String, String)> = Vec::new();
    for entry in entries {
        let dir = format!("class/hwmon/{entry}");
        if !files.is_dir(&dir) {
            continue;
        }
        let chip = chip(files, &dir, &entry);
        let mut sensors = Sensors::new();
        read_sensors(files, &dir, &mut sensors)?;
        let device = format!("{dir}/device");
        if files.is_dir(&device) {
            read_sensors(files, &device, &mut sensors)?;
        }
        if let Some(name) = chip_name(files, &dir) {
            out.push(
                "node_hwmon_chip_names".to_owned(),
                "Annotation metric for human-readable chip names".to_owned(),
                Kind::Gauge,
                [("chip", chip.clone()), ("chip_name", name)],
                1.0,
            );
        }
        for (sensor, properties) in &sensors {
            if let Some(label) = properties.get("label") {
                labels.push((chip.clone(), sensor.clone(), label.clone()));
            }
            sensor_samples(&mut out, &chip, sensor, properties);
        }
    }
    let mut families: Vec<Family> = out.families.into_values().map(|(f, _)| f).collect();
    if !labels.is_empty() {
        let mut family =
            Family::gauge("node_hwmon_sensor_label", "Label for given chip and sensor");
        for (chip, sensor, label) in labels {
            family.push([("chip", chip), ("sensor", sensor), ("label", label)], 1.0);
        }
        families.push(family);
    }
    Ok(families)
}

/// Adds the values of one sensor's properties.
fn sensor_samples(
    out: &mut Output,
    chip: &str,
    sensor: &str,
    properties: &BTreeMap<String, String>,
) {
    let labels = || [("chip", chip.to_owned()), ("sensor", sensor.to_owned())];
    let bare = properties.get("").map(String::as_str);
    let number = |text: Option<&str>| text.and_then(|t| t.parse::<f64>().ok());
    let Some((kind, _, _)) = split_file_name(sensor) else {
        return;
    };
    let mut gauge = |name: &str, help: &str, value: f64| {
        out.push(
            name.to_owned(),
            help.to_owned(),
            Kind::Gauge,
            labels(),
            value,
        );
    };
    match kind {
        "beep_enable" => {
            let on = if bare == Some("1") { 1.0 } else { 0.0 };
            gauge("node_hwmon_beep_enabled", "Hardware beep enabled", on);
            return;
        }
        "vrm" => {
            if let Some(value) = number(bare) {
                gauge(
                    "node_hwmon_voltage_regulator_version",
                    "Hardware voltage regulator",
                    value,
                );
            }
            return;
        }
        "update_interval" => {
            if let Some(value) = number(bare) {
                gauge(
                    "node_hwmon_update_interval_seconds",
                    "Hardware monitor update interval",
                    value * 0.001,
                );
            }
            return;
        }
        _ => {}
    }
    for (element, text) in properties {
        if element == "label" {
            continue;
        }
        let Some(value) = number(Some(text)) else {
            continue;
        };
        let mut name = format!("node_hwmon_{kind}");
        if element == "input" {
            if bare.is_some() {
                name.push_str("_input");
            }
        } else if !element.is_empty() {
            name.push('_');
            name.push_str(&clean(element));
        }
        let (name, help, kind, value) = describe(kind, element, name, value);
        out.push(name, help, kind, labels(), value);
    }
}

/// node_exporter's family name suffix, help, type and scaling for property `element` of a
/// sensor of type `kind`; `name` is the family name before a unit suffix.
fn describe(kind: &str, element: &str, name: String, value: f64) -> (String, String, Kind, f64) {
    let gauge = |name: String, help: String, value: f64| (name, help, Kind::Gauge, value);
    match (kind, element) {
        (_, "fault" | "alarm") => gauge(
            name,
            format!("Hardware sensor {element} status ({kind})"),
            value,
        ),
        (_, "beep") => gauge(
            name + "_enabled",
            "Hardware monitor sensor has beeping enabled".to_owned(),
            value,
        ),
        ("in" | "cpu", _) => gauge(
            name + "_volts",
            format!("Hardware monitor for voltage ({element})"),
            value * 0.001,
        ),
        ("temp", _) if element != "type" => {
            let element = if element.is_empty() { "input" } else { element };
            gauge(
                name + "_celsius",
                format!("Hardware monitor for temperature ({element})"),
                value * 0.001,
            )
        }
        ("curr", _) => gauge(
            name + "_amps",
            format!("Hardware monitor for current ({element})"),
            value * 0.001,
        ),
        ("energy", _) => (
            name + "_joule_total",
            format!("Hardware monitor for joules used so far ({element})"),
            Kind::Counter,
            value / 1_000_000.0,
        ),
        ("power", "accuracy") => gauge(
            name,
            "Hardware monitor power meter accuracy, as a ratio".to_owned(),
            value / 1_000_000.0,
        ),
        ("power", "average_interval" | "average_interval_min" | "average_interval_max") => gauge(
            name + "_seconds",
            format!("Hardware monitor power usage update interval ({element})"),
            value * 0.001,
        ),
        ("power", _) => gauge(
            name + "_watt",
            format!("Hardware monitor for power usage in watts ({element})"),
            value / 1_000_000.0,
        ),
        ("humidity", _) => gauge(
            name,
            format!(
                "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the \
                 humidity as a percentage) ({element})"
            ),
            value / 1_000_000.0,
        ),
        ("fan", "input" | "min" | "max" | "target") => gauge(
            name + "_rpm",
            format!("Hardware monitor for fan revolutions per minute ({element})"),
            value,
        ),
        _ => gauge(
            name,
            format!("Hardware monitor {kind} element {element}"),
            value,
        ),
    }
}

/// Reads the sensor files in `dir` into `sensors`; unreadable files are skipped.
fn read_sensors(files: &ProcFiles, dir: &str, sensors: &mut Sensors) -> Result<(), Error> {
    for file in files.entries(dir)?.unwrap_or_default() {
        let Some((kind, number, property)) = split_file_name(&file) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&kind) {
            continue;
        }
        let Ok(value) = files.required(&format!("{dir}/{file}"), |t| {
            Ok(t.trim_matches('\n').to_owned())
        }) else {
            continue;
        };
        sensors
            .entry(format!("{kind}{number}"))
            .or_default()
            .insert(property.to_owned(), value);
    }
    Ok(())
}

/// Splits `temp1_crit_alarm` into (`temp`, 1, `crit_alarm`) as node_exporter's
/// `^([^0-9]+)([0-9]*)?(_(.+))?$`: the type is all before the first digit, a missing number is
/// 0, and a name that does not fit (`temp1x`, `fan1_`) is not a sensor file.
fn split_file_name(name: &str) -> Option<(&str, u64, &str)> {
    let type_end = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    let (kind, rest) = name.split_at(type_end);
    if kind.is_empty() {
        return None;
    }
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, rest) = rest.split_at(digits_end);
    let number = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    let property = match rest.strip_prefix('_') {
        None if rest.is_empty() => "",
        Some(property) if !property.is_empty() => property,
        _ => return None,
    };
    Some((kind, number, property))
}

/// node_exporter's stable chip name for hwmon directory `dir` (class entry `entry`).
fn chip(files: &ProcFiles, dir: &str, entry: &str) -> String {
    if let Some(device) = files.canonical(&format!("{dir}/device")) {
        let name = device.file_name().map(|n| clean(&n.to_string_lossy()));
        let bus = device
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| clean(&n.to_string_lossy()));
        match (bus, name) {
            (Some(bus), Some(name)) if !bus.is_empty() && !name.is_empty() => {
                return format!("{bus}_{name}");
            }
            (_, Some(name)) if !name.is_empty() => return name,
            _ => {}
        }
    }
    if let Some(name) = chip_name(files, dir) {
        return name;
    }
    let real = files.canonical(dir);
    let last = real
        .as_deref()
        .and_then(|p| p.file_name())
        .map(|n| clean(&n.to_string_lossy()))
        .unwrap_or_else(|| clean(entry));
    if last.is_empty() { clean(entry) } else { last }
}

/// The chip's `name` file, cleaned, when it has one.
fn chip_name(files: &ProcFiles, dir: &str) -> Option<String> {
    let name = files
        .required(&format!("{dir}/name"), |t| Ok(clean(t)))
        .ok()?;
    (!name.is_empty()).then_some(name)
}

/// node_exporter's `cleanMetricName`: lower case, anything but `[a-z0-9:_]` as `_`, no
/// leading or trailing `_`.
fn clean(name: &str) -> String {
    let replaced: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | ':' | '_' => c,
            _ => '_',
        })
        .collect();
    replaced.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    /// Every sample as `name{label values} value`, sorted.
    fn render(families: &[Family]) -> Vec<String> {
        let mut lines: Vec<String> = families
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(move |s| {
                    let labels: Vec<String> =
                        s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                    format!("{}{{{}}} {}", f.name, labels.join(","), s.value)
                })
            })
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn reads_the_fixture_chips() {
        let families = collect(&files_in(&fixture_sys())).expect("reads");
        let c0 = r#"chip="platform_coretemp_0""#;
        let c1 = r#"chip="platform_nct6775_656""#;
        let c2 = r#"chip="power_meter""#;
        let c3 = r#"chip="hwmon3""#;
        let mut expected: Vec<String> = [
            format!(r#"node_hwmon_chip_names{{{c0},chip_name="coretemp"}} 1"#),
            format!(r#"node_hwmon_chip_names{{{c1},chip_name="nct6775"}} 1"#),
            format!(r#"node_hwmon_chip_names{{{c2},chip_name="power_meter"}} 1"#),
            format!(r#"node_hwmon_temp_celsius{{{c0},sensor="temp1"}} 45"#),
            format!(r#"node_hwmon_temp_crit_celsius{{{c0},sensor="temp1"}} 100"#),
            format!(r#"node_hwmon_temp_max_celsius{{{c0},sensor="temp1"}} 80"#),
            format!(r#"node_hwmon_temp_crit_alarm_celsius{{{c0},sensor="temp1"}} 0"#),
            format!(r#"node_hwmon_temp_celsius{{{c0},sensor="temp2"}} 43"#),
            format!(r#"node_hwmon_temp_crit_celsius{{{c0},sensor="temp2"}} 100"#),
            format!(r#"node_hwmon_temp_max_celsius{{{c0},sensor="temp2"}} 80"#),
            format!(r#"node_hwmon_temp_crit_alarm_celsius{{{c0},sensor="temp2"}} 0"#),
            format!(r#"node_hwmon_sensor_label{{{c0},sensor="temp1",label="Package id 0"}} 1"#),
            format!(r#"node_hwmon_sensor_label{{{c0},sensor="temp2",label="Core 0"}} 1"#),
            format!(r#"node_hwmon_in_volts{{{c1},sensor="in0"}} 1.04"#),
            format!(r#"node_hwmon_in_min_volts{{{c1},sensor="in0"}} 0"#),
            format!(r#"node_hwmon_in_max_volts{{{c1},sensor="in0"}} 1.744"#),
            format!(r#"node_hwmon_in_alarm{{{c1},sensor="in0"}} 0"#),
            format!(r#"node_hwmon_in_beep_enabled{{{c1},sensor="in0"}} 0"#),
            format!(r#"node_hwmon_sensor_label{{{c1},sensor="in0",label="Vcore"}} 1"#),
            format!(r#"node_hwmon_fan_rpm{{{c1},sensor="fan1"}} 1078"#),
            format!(r#"node_hwmon_fan_min_rpm{{{c1},sensor="fan1"}} 0"#),
            format!(r#"node_hwmon_fan_alarm{{{c1},sensor="fan1"}} 0"#),
            format!(r#"node_hwmon_fan_div{{{c1},sensor="fan1"}} 8"#),
            format!(r#"node_hwmon_fan_pulses{{{c1},sensor="fan1"}} 2"#),
            format!(r#"node_hwmon_pwm{{{c1},sensor="pwm1"}} 153"#),
            format!(r#"node_hwmon_pwm_enable{{{c1},sensor="pwm1"}} 5"#),
            format!(r#"node_hwmon_intrusion_alarm{{{c1},sensor="intrusion0"}} 1"#),
            format!(r#"node_hwmon_beep_enabled{{{c1},sensor="beep_enable0"}} 1"#),
            format!(r#"node_hwmon_cpu_vid_volts{{{c1},sensor="cpu0"}} 1.1"#),
            format!(r#"node_hwmon_temp_celsius{{{c1},sensor="temp7"}} 30"#),
            format!(r#"node_hwmon_temp_type{{{c1},sensor="temp7"}} 4"#),
            format!(r#"node_hwmon_temp_offset_celsius{{{c1},sensor="temp7"}} 0"#),
            format!(r#"node_hwmon_power_average_watt{{{c2},sensor="power1"}} 12.5"#),
            format!(r#"node_hwmon_power_average_interval_seconds{{{c2},sensor="power1"}} 1"#),
            format!(r#"node_hwmon_power_accuracy{{{c2},sensor="power1"}} 0.095"#),
            format!(r#"node_hwmon_energy_joule_total{{{c2},sensor="energy1"}} 1234.56789"#),
            format!(r#"node_hwmon_curr_amps{{{c2},sensor="curr1"}} 1.5"#),
            format!(r#"node_hwmon_humidity{{{c2},sensor="humidity1"}} 0.0455"#),
            format!(r#"node_hwmon_update_interval_seconds{{{c2},sensor="update_interval0"}} 1"#),
            format!(r#"node_hwmon_voltage_regulator_version{{{c2},sensor="vrm0"}} 9.1"#),
            format!(r#"node_hwmon_temp_celsius{{{c3},sensor="temp1"}} 25"#),
        ]
        .into_iter()
        .collect();
        expected.sort();
        assert_eq!(render(&families), expected);
        let family = |name: &str| families.iter().find(|f| f.name == name).expect(name);
        assert_eq!(family("node_hwmon_energy_joule_total").kind, Kind::Counter);
        assert_eq!(family("node_hwmon_fan_rpm").kind, Kind::Gauge);
        assert_eq!(
            family("node_hwmon_temp_crit_celsius").help,
            "Hardware monitor for temperature (crit)"
        );
        assert_eq!(
            family("node_hwmon_fan_alarm").help,
            "Hardware sensor alarm status (fan)"
        );
        assert_eq!(
            family("node_hwmon_fan_div").help,
            "Hardware monitor fan element div"
        );
    }

    #[test]
    fn file_names_split_as_node_exporter_splits_them() {
        assert_eq!(split_file_name("temp1_input"), Some(("temp", 1, "input")));
        assert_eq!(
            split_file_name("temp1_crit_alarm"),
            Some(("temp", 1, "crit_alarm"))
        );
        assert_eq!(split_file_name("pwm1"), Some(("pwm", 1, "")));
        assert_eq!(split_file_name("temp01_input"), Some(("temp", 1, "input")));
        assert_eq!(split_file_name("beep_enable"), Some(("beep_enable", 0, "")));
        assert_eq!(
            split_file_name("temp1_auto_point1_pwm"),
            Some(("temp", 1, "auto_point1_pwm"))
        );
        for bad in [
            "",
            "1temp",
            "temp1x",
            "fan1_",
            "temp99999999999999999999999_input",
        ] {
            assert_eq!(split_file_name(bad), None, "{bad:?}");
        }
        assert_eq!(clean("Power Meter\n"), "power_meter");
        assert_eq!(clean("0000:00:18.3"), "0000:00:18_3");
        assert_eq!(clean("--"), "");
    }

    #[test]
    fn no_hwmon_class_is_no_data_and_bad_values_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        let chip = dir.path().join("class/hwmon/hwmon0");
        std::fs::create_dir_all(chip.join("temp3_input")).expect("mkdir");
        std::fs::write(chip.join("temp1_input"), "hot\n").expect("write");
        std::fs::write(chip.join("temp2_input"), [0xff, 0xfe]).expect("write");
        std::fs::write(chip.join("fan1_input"), "").expect("write");
        std::fs::write(chip.join("in0_input"), "1200\n").expect("write");
        std::fs::write(chip.join("name"), "\n").expect("write");
        std::fs::write(dir.path().join("class/hwmon/not_a_dir"), "x").expect("write");
        let families = collect(&files_in(dir.path())).expect("reads");
        assert_eq!(
            render(&families),
            [r#"node_hwmon_in_volts{chip="hwmon0",sensor="in0"} 1.2"#]
        );
    }
}
