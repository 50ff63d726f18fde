//! `cpufreq`: CPU frequencies from sysfs `devices/system/cpu/cpuN/cpufreq/`, as node_exporter
//! 1.5's `cpufreq_linux.go`: `node_cpu_frequency_{hertz,min_hertz,max_hertz}{cpu}` from
//! `cpuinfo_{cur,min,max}_freq` and `node_cpu_scaling_frequency_{hertz,min_hertz,max_hertz}{cpu}`
//! from `scaling_{cur,min,max}_freq` (kHz in sysfs, Hz here). 1.5 has no governor metric.
//!
//! Each attribute the kernel lacks, or that only root may read (`cpuinfo_cur_freq`), is left
//! out; a machine without cpufreq (most VMs) has none, which is not a failure.

use super::procfiles::{ProcFiles, parse_number};
use crate::collect::{Error, Family};

/// (attribute, family, help), in node_exporter's order.
const FREQUENCIES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

/// Reads every CPU's frequencies.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let mut families = FREQUENCIES.map(|(_, name, help)| Family::gauge(name, help));
    for cpu in files.numbered("devices/system/cpu", "cpu")? {
        // One look for the directory rather than a failed open per attribute (most VMs).
        let directory = format!("devices/system/cpu/cpu{cpu}/cpufreq");
        if !files.is_dir(&directory) {
            continue;
        }
        for ((attribute, _, _), family) in FREQUENCIES.iter().zip(&mut families) {
            let path = format!("{directory}/{attribute}");
            if let Some(khz) = files.attribute(&path, |t| parse_number::<u64>(t, attribute))? {
                family.push([("cpu", cpu.clone())], khz as f64 * 1000.0);
            }
        }
    }
    Ok(families
        .into_iter()
        .filter(|f| !f.samples.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    #[test]
    fn reads_the_fixture_frequencies() {
        let families = collect(&files_in(&fixture_sys())).expect("reads");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(names, FREQUENCIES.map(|(_, name, _)| name));
        let value = |name: &str, cpu: &str| {
            let family = families.iter().find(|f| f.name == name).expect(name);
            family.value(&[("cpu", cpu)])
        };
        // Only cpu0 has `cpuinfo_cur_freq`; cpu2 has no cpufreq directory.
        assert_eq!(
            value("node_cpu_frequency_hertz", "0"),
            Some(2_199_998_000.0)
        );
        assert_eq!(value("node_cpu_frequency_hertz", "1"), None);
        assert_eq!(
            value("node_cpu_frequency_min_hertz", "1"),
            Some(800_000_000.0)
        );
        assert_eq!(
            value("node_cpu_frequency_max_hertz", "0"),
            Some(4_700_000_000.0)
        );
        assert_eq!(
            value("node_cpu_scaling_frequency_hertz", "0"),
            Some(2_200_013_000.0)
        );
        assert_eq!(
            value("node_cpu_scaling_frequency_hertz", "1"),
            Some(3_899_972_000.0)
        );
        assert_eq!(
            value("node_cpu_scaling_frequency_min_hertz", "1"),
            Some(800_000_000.0)
        );
        assert_eq!(
            value("node_cpu_scaling_frequency_max_hertz", "1"),
            Some(4_700_000_000.0)
        );
        assert!(families.iter().all(|f| f.samples.len() <= 2));
        assert_eq!(families[0].help, "Current cpu thread frequency in hertz.");
    }

    #[test]
    fn no_cpufreq_is_no_data_and_a_bad_value_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        let cpufreq = dir.path().join("devices/system/cpu/cpu0/cpufreq");
        std::fs::create_dir_all(&cpufreq).expect("mkdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        std::fs::write(cpufreq.join("scaling_cur_freq"), "fast\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
    }
}
