//! `mdadm`: Linux software RAID arrays from /proc/mdstat, as node_exporter 1.5's
//! `mdadm_linux.go`: per array (`device`), `node_md_disks_required`,
//! `node_md_disks{state="active"|"failed"|"spare"}`,
//! `node_md_state{state="active"|"inactive"|"recovering"|"resync"|"check"}` (1 for the
//! array's state, 0 for the others), `node_md_blocks` and `node_md_blocks_synced` (all blocks
//! unless a resync, recovery or check is running; 0 while one is pending).
//!
//! Each array is a line `mdN : <state> [<level>] <disk>[n][(F)|(S)] ...`, a status line
//! `<blocks> blocks ... [<required>/<active>] [UU_]`, an optional `bitmap:` line and an
//! optional progress line. No md driver (no such file) is no data, not a failure.

use super::procfiles::ProcFiles;
use super::procfs::parse_u64;
use crate::collect::{Error, Family};

/// One array, as read.
#[derive(Debug, PartialEq)]
struct Array<'a> {
    name: &'a str,
    /// `active`, `inactive`, or the running `recovering`/`resyncing`/`checking`.
    state: &'a str,
    required: u64,
    active: u64,
    failed: u64,
    spare: u64,
    blocks: u64,
    synced: u64,
}

/// Reads /proc/mdstat, when the kernel has it.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    Ok(files
        .optional("mdstat", |text| parse(text).map(|arrays| families(&arrays)))?
        .unwrap_or_default())
}

fn families(arrays: &[Array]) -> Vec<Family> {
    if arrays.is_empty() {
        return Vec::new();
    }
    let mut required = Family::gauge("node_md_disks_required", "Total number of disks of device.");
    let mut disks = Family::gauge(
        "node_md_disks",
        "Number of active/failed/spare disks of device.",
    );
    let mut state = Family::gauge("node_md_state", "Indicates the state of md-device.");
    let mut blocks = Family::gauge("node_md_blocks", "Total number of blocks on device.");
    let mut synced = Family::gauge(
        "node_md_blocks_synced",
        "Number of blocks synced on device.",
    );
    for array in arrays {
        let device = || ("device", array.name.to_owned());
        required.push([device()], array.required as f64);
        for (label, count) in [
            ("active", array.active),
            ("failed", array.failed),
            ("spare", array.spare),
        ] {
            disks.push([device(), ("state", label.to_owned())], count as f64);
        }
        for (label, read_as) in [
            ("active", "active"),
            ("inactive", "inactive"),
            ("recovering", "recovering"),
            ("resync", "resyncing"),
            ("check", "checking"),
        ] {
            let value = if array.state == read_as { 1.0 } else { 0.0 };
            state.push([device(), ("state", label.to_owned())], value);
        }
        blocks.push([device()], array.blocks as f64);
        synced.push([device()], array.synced as f64);
    }
    vec![required, disks, state, blocks, synced]
}

/// Parses the arrays of /proc/mdstat.
fn parse(text: &str) -> Result<Vec<Array<'_>>, String> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut arrays = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let [name, _, state, ..] = fields[..] else {
            return Err(format!("array line {line:?} has fewer than 3 fields"));
        };
        if lines.len() <= i + 3 {
            return Err(format!("{name}: too few lines"));
        }
        let status = lines[i + 1];
        let blocks = parse_u64(
            status.split_ascii_whitespace().next().unwrap_or(""),
            &format!("{name} blocks"),
        )?;
        let (required, active) = if line.contains("raid0") || line.contains("linear") {
            let disks = line.matches('[').count() as u64;
            (disks, disks)
        } else if line.contains("inactive") {
            (0, 0)
        } else {
            disk_counts(status).ok_or_else(|| format!("{name}: no [n/m] [U_] in {status:?}"))?
        };
        let progress = if lines[i + 2].contains("bitmap") {
            lines[i + 3]
        } else {
            lines[i + 2]
        };
        let running = [
            ("recovery", "recovering"),
            ("check", "checking"),
            ("resync", "resyncing"),
        ]
        .into_iter()
        .find(|(word, _)| progress.contains(word));
        let (state, synced) = match running {
            None => (state, blocks),
            Some((_, running)) if progress.contains("PENDING") || progress.contains("DELAYED") => {
                (running, 0)
            }
            Some((_, running)) => (
                running,
                synced_blocks(progress)
                    .ok_or_else(|| format!("{name}: no (n/m) in {progress:?}"))?,
            ),
        };
        arrays.push(Array {
            name,
            state,
            required,
            active,
            failed: line.matches("(F)").count() as u64,
            spare: line.matches("(S)").count() as u64,
            blocks,
            synced,
        });
    }
    Ok(arrays)
}

/// (required, active) from the last `[n/m] [U_...]` of a status line that has `N blocks `.
fn disk_counts(status: &str) -> Option<(u64, u64)> {
    let after_blocks = status.find(" blocks ")?;
    let rest = &status[after_blocks..];
    rest.match_indices('[').rev().find_map(|(at, _)| {
        let (counts, tail) = rest[at + 1..].split_once("] [")?;
        let (required, active) = counts.split_once('/')?;
        let map = tail.split_once(']')?.0;
        let valid = !map.is_empty() && map.bytes().all(|b| b == b'U' || b == b'_');
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (valid && digits(required) && digits(active))
            .then(|| Some((required.parse().ok()?, active.parse().ok()?)))
            .flatten()
    })
}

/// The blocks done from a progress line's first `(done/total)`.
fn synced_blocks(progress: &str) -> Option<u64> {
    progress.match_indices('(').find_map(|(at, _)| {
        let (done, rest) = progress[at + 1..].split_once('/')?;
        let total = rest.split_once(')')?.0;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(done) && digits(total))
            .then(|| done.parse().ok())
            .flatten()
    })
}

/// The fuzz driver's entry (`host::fuzzing`): /proc/mdstat text through the parser and the
/// families.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    parse(text).map(|arrays| families(&arrays))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    /// An array as (name, state, [required, active, failed, spare], blocks, synced).
    fn summary<'a>(array: &Array<'a>) -> (&'a str, &'a str, [u64; 4], u64, u64) {
        let counts = [array.required, array.active, array.failed, array.spare];
        (array.name, array.state, counts, array.blocks, array.synced)
    }

    #[test]
    fn parses_the_fixture_arrays() {
        let text = std::fs::read_to_string(fixture_proc().join("mdstat")).expect("fixture");
        assert_eq!(
            parse(&text)
                .expect("parses")
                .iter()
                .map(summary)
                .collect::<Vec<_>>(),
            [
                ("md1", "active", [2, 2, 0, 0], 976_629_760, 976_629_760),
                ("md2", "resyncing", [3, 3, 0, 0], 3_906_764_800, 555_093_380),
                ("md3", "recovering", [2, 1, 1, 0], 488_254_464, 61_519_872),
                ("md4", "active", [2, 2, 0, 0], 1_953_260_544, 1_953_260_544),
                (
                    "md5",
                    "inactive",
                    [0, 0, 0, 1],
                    1_953_382_400,
                    1_953_382_400
                ),
            ]
        );
        let families = collect(&files_in(&fixture_proc())).expect("reads");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_md_disks_required",
                "node_md_disks",
                "node_md_state",
                "node_md_blocks",
                "node_md_blocks_synced"
            ]
        );
        fn md3(state: &str) -> [(&str, &str); 2] {
            [("device", "md3"), ("state", state)]
        }
        assert_eq!(families[1].value(&md3("failed")), Some(1.0));
        assert_eq!(families[2].value(&md3("recovering")), Some(1.0));
        assert_eq!(families[2].value(&md3("active")), Some(0.0));
        assert_eq!(
            families[2].value(&[("device", "md2"), ("state", "resync")]),
            Some(1.0)
        );
        assert_eq!(families[2].samples.len(), 25);
        assert_eq!(families[4].value(&[("device", "md2")]), Some(555_093_380.0));
    }

    #[test]
    fn no_arrays_or_no_file_is_no_data() {
        let none = "Personalities : \nunused devices: <none>\n";
        assert_eq!(parse(none), Ok(Vec::new()));
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
        std::fs::write(dir.path().join("mdstat"), none).expect("write");
        assert!(collect(&files_in(dir.path())).expect("no data").is_empty());
    }

    #[test]
    fn a_pending_resync_has_nothing_synced_and_malformed_text_fails() {
        let pending = "md0 : active raid1 sdb1[1] sda1[0]\n      1000 blocks super 1.2 [2/2] [UU]\n      \
                       resync=PENDING\n\n";
        let arrays = parse(pending).expect("parses");
        assert_eq!((arrays[0].state, arrays[0].synced), ("resyncing", 0));
        for text in [
            "md0 : active\n",
            "md0 :\n\n\n\n",
            "md0 : active raid1 sda1[0]\n      x blocks [1/1] [U]\n\n\n",
            "md0 : active raid1 sda1[0]\n      100 blocks [1/1]\n\n\n",
            "md0 : active raid1 sda1[0]\n      100 blocks [1/1] [UX]\n\n\n",
            "md0 : active raid1 sda1[0]\n      100 blocks [1/1] [U]\n      resync = 5% (x/100)\n\n",
        ] {
            assert!(parse(text).is_err(), "{text:?}");
        }
    }
}
