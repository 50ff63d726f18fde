//! `vmstat`: selected /proc/vmstat fields as `node_vmstat_<field>`.
//!
//! node_exporter 1.5 keeps the fields matching `--collector.vmstat.fields`, by default
//! `^(oom_kill|pgpg|pswp|pg.*fault).*`, and declares them untyped; so does this module. The
//! default pattern is matched by hand: it runs on ~190 lines per scrape.

use crate::collect::family::intern;
use crate::collect::{Family, Kind};

/// Whether node_exporter's default field pattern `^(oom_kill|pgpg|pswp|pg.*fault).*` matches.
fn selected(field: &str) -> bool {
    field.starts_with("oom_kill")
        || field.starts_with("pgpg")
        || field.starts_with("pswp")
        || field
            .strip_prefix("pg")
            .is_some_and(|rest| rest.contains("fault"))
}

/// Parses /proc/vmstat into one untyped family per selected field.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut families = Vec::with_capacity(8);
    for line in text.lines() {
        // Every selected field starts with `o` or `p`: most lines end here.
        if !matches!(line.as_bytes().first(), Some(b'o' | b'p')) {
            continue;
        }
        let Some((field, value)) = line.split_once(' ') else {
            continue;
        };
        if !selected(field) {
            continue;
        }
        let value: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{field} {value:?} is not a number"))?;
        let mut family = Family::new(
            intern(&format!("node_vmstat_{field}")),
            intern(&format!("/proc/vmstat information field {field}.")),
            Kind::Untyped,
        );
        family.push_unlabelled(value);
        families.push(family);
    }
    Ok(families)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_captured_vmstat() {
        let families = parse(include_str!("fixtures/proc/vmstat")).expect("parses");
        let got: Vec<(&str, f64)> = families
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect();
        assert_eq!(
            got,
            [
                ("node_vmstat_pgpgin", 1_734_465.0),
                ("node_vmstat_pgpgout", 1_274_692.0),
                ("node_vmstat_pswpin", 0.0),
                ("node_vmstat_pswpout", 0.0),
                ("node_vmstat_pgfault", 4_089_441.0),
                ("node_vmstat_pgmajfault", 1137.0),
                ("node_vmstat_oom_kill", 0.0),
            ]
        );
        assert!(families.iter().all(|f| f.kind == Kind::Untyped));
        assert_eq!(families[4].help, "/proc/vmstat information field pgfault.");
    }

    #[test]
    fn the_default_pattern_matches_like_the_regex() {
        let re = regex::Regex::new("^(oom_kill|pgpg|pswp|pg.*fault).*").expect("valid regex");
        for field in [
            "oom_kill",
            "pgpgin",
            "pswpout",
            "pgfault",
            "pgmajfault",
            "pgmajfault_s",
            "pgdemote_kswapd",
            "pg",
            "nr_free_pages",
            "thp_fault_alloc",
            "pgsteal_fault",
            "xpgfault",
            "oom_kil",
        ] {
            assert_eq!(selected(field), re.is_match(field), "{field}");
        }
    }

    #[test]
    fn a_bad_value_fails() {
        assert!(parse("pgfault many\n").is_err());
    }
}
