//! `meminfo`: every /proc/meminfo field as a gauge, named as node_exporter 1.5's
//! `meminfo_linux.go` names them.
//!
//! `Field: N kB` becomes `node_memory_Field_bytes` = N × 1024; a field without a unit
//! (`HugePages_Total: 0`) becomes `node_memory_HugePages_Total`; a parenthesised part becomes
//! an underscore suffix (`Active(anon)` → `Active_anon`).

use crate::collect::Family;
use crate::collect::family::intern;

/// Parses /proc/meminfo into one gauge family per field.
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut families: Vec<Family> = Vec::with_capacity(64);
    let (mut name, mut help) = (String::new(), String::new());
    for line in text.lines() {
        let mut parts = line.split_ascii_whitespace();
        // Blank lines occur on some kernels (node_exporter's CentOS 6 workaround).
        let Some(key) = parts.next() else {
            continue;
        };
        let number = parts
            .next()
            .ok_or_else(|| format!("no value in line {line:?}"))?;
        let unit = parts.next();
        if parts.next().is_some() {
            return Err(format!("invalid line {line:?}"));
        }
        let mut value: f64 = number
            .parse()
            .map_err(|_| format!("{key} {number:?} is not a number"))?;
        let key = key.strip_suffix(':').unwrap_or(key);
        name.clear();
        name.push_str("node_memory_");
        push_field_name(&mut name, key);
        if unit.is_some() {
            // The kernel prints every unit as kB.
            value *= 1024.0;
            name.push_str("_bytes");
        }
        help.clear();
        help.push_str("Memory information field ");
        help.push_str(&name["node_memory_".len()..]);
        help.push('.');
        families.push(Family::single_gauge(intern(&name), intern(&help), value));
    }
    Ok(families)
}

/// Appends `Active(anon)` as `Active_anon`: node_exporter's `\((.*)\)` → `_${1}`, without a
/// regex.
fn push_field_name(out: &mut String, key: &str) {
    match (key.find('('), key.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            out.push_str(&key[..open]);
            out.push('_');
            out.push_str(&key[open + 1..close]);
            out.push_str(&key[close + 1..]);
        }
        _ => out.push_str(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn value(families: &[Family], name: &str) -> f64 {
        let family = families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert_eq!(family.kind, Kind::Gauge);
        family.samples[0].value
    }

    #[test]
    fn parses_the_captured_meminfo() {
        let families = parse(include_str!("fixtures/proc/meminfo")).expect("parses");
        // 54 lines, 54 distinct fields.
        assert_eq!(families.len(), 54);
        assert_eq!(
            value(&families, "node_memory_MemTotal_bytes"),
            24_684_096.0 * 1024.0
        );
        assert_eq!(
            value(&families, "node_memory_Active_anon_bytes"),
            1516.0 * 1024.0
        );
        assert_eq!(
            value(&families, "node_memory_Inactive_file_bytes"),
            543_796.0 * 1024.0
        );
        assert_eq!(value(&families, "node_memory_HugePages_Total"), 0.0);
        assert_eq!(
            value(&families, "node_memory_Hugepagesize_bytes"),
            2048.0 * 1024.0
        );
        assert_eq!(
            value(&families, "node_memory_VmallocTotal_bytes"),
            34_359_738_367.0 * 1024.0
        );
        let total = families
            .iter()
            .find(|f| f.name == "node_memory_MemTotal_bytes")
            .expect("MemTotal");
        assert_eq!(total.help, "Memory information field MemTotal_bytes.");
        assert!(families.iter().all(|f| !f.name.contains('(')));
    }

    #[test]
    fn field_names_follow_node_exporter() {
        let field_name = |key: &str| {
            let mut name = String::new();
            push_field_name(&mut name, key);
            name
        };
        assert_eq!(field_name("Active(anon)"), "Active_anon");
        assert_eq!(field_name("NFS_Unstable"), "NFS_Unstable");
        assert_eq!(field_name("Weird(x)y"), "Weird_xy");
    }

    #[test]
    fn blank_lines_are_skipped_and_bad_lines_fail() {
        let families = parse("MemFree: 1 kB\n\nHugePages_Free: 3\n").expect("parses");
        assert_eq!(families.len(), 2);
        assert_eq!(value(&families, "node_memory_HugePages_Free"), 3.0);
        assert!(parse("MemFree:\n").is_err());
        assert!(parse("MemFree: x kB\n").is_err());
        assert!(parse("MemFree: 1 kB extra\n").is_err());
    }
}
