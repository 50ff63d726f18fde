//! `edac`: memory error counts from sysfs `devices/system/edac/mc/mcN` (ECC memory controllers;
//! Documentation/ABI/testing/sysfs-devices-edac), as node_exporter 1.5's `edac_linux.go`:
//! `node_edac_{correctable,uncorrectable}_errors_total{controller}` from `ce_count`/`ue_count`
//! and `node_edac_csrow_{correctable,uncorrectable}_errors_total{controller,csrow}` from each
//! `csrowM/`, plus `csrow="unknown"` from the controller's `{ce,ue}_noinfo_count`.
//!
//! No EDAC driver (machines without ECC, VMs) is no data, not a failure; a controller missing
//! one of its counts fails the collection, as upstream.

use super::procfiles::{ProcFiles, parse_number};
use crate::collect::{Error, Family};

const MC: &str = "devices/system/edac/mc";

/// Reads every memory controller's counts.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let mut correctable = Family::counter(
        "node_edac_correctable_errors_total",
        "Total correctable memory errors.",
    );
    let mut uncorrectable = Family::counter(
        "node_edac_uncorrectable_errors_total",
        "Total uncorrectable memory errors.",
    );
    let mut row_correctable = Family::counter(
        "node_edac_csrow_correctable_errors_total",
        "Total correctable memory errors for this csrow.",
    );
    let mut row_uncorrectable = Family::counter(
        "node_edac_csrow_uncorrectable_errors_total",
        "Total uncorrectable memory errors for this csrow.",
    );
    let count = |path: String| files.required(&path, |t| parse_number::<u64>(t.trim(), "count"));
    for mc in files.numbered(MC, "mc")? {
        let dir = format!("{MC}/mc{mc}");
        let controller = || ("controller", mc.clone());
        let unknown = || ("csrow", "unknown".to_owned());
        correctable.push([controller()], count(format!("{dir}/ce_count"))? as f64);
        let noinfo = count(format!("{dir}/ce_noinfo_count"))?;
        row_correctable.push([controller(), unknown()], noinfo as f64);
        uncorrectable.push([controller()], count(format!("{dir}/ue_count"))? as f64);
        let noinfo = count(format!("{dir}/ue_noinfo_count"))?;
        row_uncorrectable.push([controller(), unknown()], noinfo as f64);
        for row in files.numbered(&dir, "csrow")? {
            let ce = count(format!("{dir}/csrow{row}/ce_count"))?;
            let ue = count(format!("{dir}/csrow{row}/ue_count"))?;
            row_correctable.push([controller(), ("csrow", row.clone())], ce as f64);
            row_uncorrectable.push([controller(), ("csrow", row)], ue as f64);
        }
    }
    Ok([
        correctable,
        row_correctable,
        uncorrectable,
        row_uncorrectable,
    ]
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
    fn reads_the_fixture_controllers() {
        let families = collect(&files_in(&fixture_sys())).expect("reads");
        let values: Vec<(&str, Vec<&str>, f64)> = families
            .iter()
            .flat_map(|f| {
                f.samples.iter().map(move |s| {
                    let labels = s.labels.iter().map(|(_, v)| v.as_ref()).collect();
                    (f.name.as_ref(), labels, s.value)
                })
            })
            .collect();
        let ce = "node_edac_correctable_errors_total";
        let row_ce = "node_edac_csrow_correctable_errors_total";
        let ue = "node_edac_uncorrectable_errors_total";
        let row_ue = "node_edac_csrow_uncorrectable_errors_total";
        assert_eq!(
            values,
            [
                (ce, vec!["0"], 3.0),
                (ce, vec!["1"], 0.0),
                (row_ce, vec!["0", "unknown"], 0.0),
                (row_ce, vec!["0", "0"], 2.0),
                (row_ce, vec!["0", "1"], 1.0),
                (row_ce, vec!["1", "unknown"], 0.0),
                (ue, vec!["0"], 0.0),
                (ue, vec!["1"], 1.0),
                (row_ue, vec!["0", "unknown"], 0.0),
                (row_ue, vec!["0", "0"], 0.0),
                (row_ue, vec!["0", "1"], 0.0),
                (row_ue, vec!["1", "unknown"], 1.0),
            ]
        );
        assert_eq!(families[2].samples[0].labels[0].0, "controller");
    }

    #[test]
    fn no_edac_is_no_data_and_a_missing_or_bad_count_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        let mc = dir.path().join(MC).join("mc0");
        std::fs::create_dir_all(&mc).expect("mkdir");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        for (file, value) in [
            ("ce_count", "1\n"),
            ("ce_noinfo_count", "0\n"),
            ("ue_count", "-1\n"),
            ("ue_noinfo_count", "0\n"),
        ] {
            std::fs::write(mc.join(file), value).expect("write");
        }
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
        std::fs::write(mc.join("ue_count"), "0\n").expect("write");
        assert_eq!(collect(&files_in(dir.path())).expect("reads").len(), 4);
    }
}
