//! `filefd`: allocated and maximum file handles from /proc/sys/fs/file-nr.

use super::procfs::parse_u64;
use crate::collect::Family;

/// Parses /proc/sys/fs/file-nr (`allocated unused maximum`).
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [allocated, _unused, maximum] = fields.as_slice() else {
        return Err(format!("expected 3 fields, found {}", fields.len()));
    };
    Ok(vec![
        Family::single_gauge(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            parse_u64(allocated, "allocated")? as f64,
        ),
        Family::single_gauge(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            parse_u64(maximum, "maximum")? as f64,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_captured_file_nr() {
        let families = parse(include_str!("fixtures/proc/sys/fs/file-nr")).expect("parses");
        assert_eq!(families[0].name, "node_filefd_allocated");
        assert_eq!(families[0].samples[0].value, 355.0);
        assert_eq!(families[1].name, "node_filefd_maximum");
        assert_eq!(families[1].samples[0].value, 2_466_183.0);
    }

    #[test]
    fn wrong_field_counts_fail() {
        assert!(parse("1 2").is_err());
        assert!(parse("1 2 3 4").is_err());
        assert!(parse("1 0 x").is_err());
    }
}
