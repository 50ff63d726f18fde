//! `bonding`: configured and active slaves of each Linux bonding interface, as node_exporter
//! 1.5's `bonding_linux.go`: `node_bonding_slaves{master}` and `node_bonding_active{master}`
//! (a slave is active when its `bonding_slave/mii_status` is `up`).
//!
//! The masters are listed in sysfs `class/net/bonding_masters`, each master's slaves in
//! `<master>/bonding/slaves`, and a slave's state under `<master>/lower_<slave>` (or
//! `slave_<slave>` on older kernels). Without the bonding module `bonding_masters` does not
//! exist: no output, and success. A master or slave that disappears between the listing and
//! its read (a bond being reconfigured) is left out, where node_exporter reports no data at all.

use super::procfiles::ProcFiles;
use crate::collect::{Error, Family};

/// Reads every bonding master's slave counts.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let Some(masters) = files.optional("class/net/bonding_masters", words)? else {
        return Ok(Vec::new());
    };
    let mut slaves_family = Family::gauge(
        "node_bonding_slaves",
        "Number of configured slaves per bonding interface.",
    );
    let mut active_family = Family::gauge(
        "node_bonding_active",
        "Number of active slaves per bonding interface.",
    );
    for master in masters {
        let Some(slaves) = files.optional(&format!("class/net/{master}/bonding/slaves"), words)?
        else {
            continue;
        };
        let (mut configured, mut active) = (0u32, 0u32);
        for slave in slaves {
            let status = |prefix: &str| {
                files.optional(
                    &format!("class/net/{master}/{prefix}_{slave}/bonding_slave/mii_status"),
                    |text| Ok(text.trim() == "up"),
                )
            };
            let up = match status("lower")? {
                Some(up) => up,
                None => match status("slave")? {
                    Some(up) => up,
                    None => continue,
                },
            };
            configured += 1;
            active += u32::from(up);
        }
        slaves_family.push([("master", master.clone())], f64::from(configured));
        active_family.push([("master", master)], f64::from(active));
    }
    if slaves_family.samples.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![slaves_family, active_family])
}

/// The whitespace-separated words of a sysfs list.
fn words(text: &str) -> Result<Vec<String>, String> {
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    fn value(families: &[Family], name: &str, master: &str) -> Option<f64> {
        families
            .iter()
            .find(|f| f.name == name)?
            .value(&[("master", master)])
    }

    #[test]
    fn counts_the_hand_made_bonds_slaves() {
        let families = collect(&files_in(&fixture_sys())).expect("collects");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(names, ["node_bonding_slaves", "node_bonding_active"]);
        // bond0: enp4s0 up (lower_ link), enp5s0 down (older slave_ link); bond1: no slaves.
        assert_eq!(value(&families, "node_bonding_slaves", "bond0"), Some(2.0));
        assert_eq!(value(&families, "node_bonding_active", "bond0"), Some(1.0));
        assert_eq!(value(&families, "node_bonding_slaves", "bond1"), Some(0.0));
        assert_eq!(value(&families, "node_bonding_active", "bond1"), Some(0.0));
        assert_eq!(families[0].samples.len(), 2);
    }

    fn write(root: &Path, relative: &str, text: &str) {
        let path = root.join(relative);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn no_bonding_module_is_no_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("ok").is_empty());
        write(dir.path(), "class/net/bonding_masters", "\n");
        assert!(collect(&files_in(dir.path())).expect("ok").is_empty());
    }

    #[test]
    fn vanished_masters_and_slaves_are_left_out_and_bad_files_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "class/net/bonding_masters", "gone bond0\n");
        write(dir.path(), "class/net/bond0/bonding/slaves", "a b gone\n");
        write(
            dir.path(),
            "class/net/bond0/lower_a/bonding_slave/mii_status",
            "up\n",
        );
        write(
            dir.path(),
            "class/net/bond0/lower_b/bonding_slave/mii_status",
            "going back\n",
        );
        let families = collect(&files_in(dir.path())).expect("collects");
        assert_eq!(value(&families, "node_bonding_slaves", "gone"), None);
        assert_eq!(value(&families, "node_bonding_slaves", "bond0"), Some(2.0));
        assert_eq!(value(&families, "node_bonding_active", "bond0"), Some(1.0));
        // A directory where the status file should be is a read failure.
        std::fs::create_dir_all(
            dir.path()
                .join("class/net/bond0/lower_gone/bonding_slave/mii_status"),
        )
        .expect("mkdir");
        assert!(collect(&files_in(dir.path())).is_err());
    }
}
