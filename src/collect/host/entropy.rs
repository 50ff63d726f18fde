//! `entropy`: the kernel's entropy estimate and pool size from /proc/sys/kernel/random, as
//! node_exporter 1.5's `entropy_linux.go`: `node_entropy_available_bits` and
//! `node_entropy_pool_size_bits`. Both files are needed (Linux 5.18+ reports a constant 256
//! for both).

use super::procfiles::ProcFiles;
use super::procfs::parse_u64;
use crate::collect::{Error, Family};

/// Reads `entropy_avail` and `poolsize`.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let available = files.required("sys/kernel/random/entropy_avail", parse)?;
    let pool_size = files.required("sys/kernel/random/poolsize", parse)?;
    Ok(vec![
        Family::single_gauge(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            available as f64,
        ),
        Family::single_gauge(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            pool_size as f64,
        ),
    ])
}

/// One decimal number, surrounding whitespace allowed.
fn parse(text: &str) -> Result<u64, String> {
    parse_u64(text.trim(), "value")
}

/// The fuzz driver's entry (`host::fuzzing`).
pub(super) fn fuzz(text: &str) -> Result<u64, String> {
    parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    #[test]
    fn reads_the_captured_files() {
        let families = collect(&files_in(&fixture_proc())).expect("reads");
        assert_eq!(families[0].name, "node_entropy_available_bits");
        assert_eq!(families[0].kind, Kind::Gauge);
        assert_eq!(families[0].value(&[]), Some(256.0));
        assert_eq!(families[1].name, "node_entropy_pool_size_bits");
        assert_eq!(families[1].value(&[]), Some(256.0));
    }

    #[test]
    fn bad_or_missing_files_fail() {
        assert_eq!(parse(" 3771\n"), Ok(3771));
        assert!(parse("").is_err());
        assert!(parse("-1\n").is_err());
        assert!(parse("1 2\n").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let random = dir.path().join("sys/kernel/random");
        std::fs::create_dir_all(&random).expect("mkdir");
        std::fs::write(random.join("entropy_avail"), "256\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        std::fs::write(random.join("poolsize"), "x\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
    }
}
