//! `loadavg`: the 1, 5 and 15 minute load averages from /proc/loadavg.

use crate::collect::Family;

/// Parses /proc/loadavg (`0.16 0.15 0.09 1/102 3696`).
pub(super) fn parse(text: &str) -> Result<Vec<Family>, String> {
    let mut fields = text.split_ascii_whitespace();
    let mut next = |what: &str| -> Result<f64, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("no {what} load average"))?;
        field
            .parse()
            .map_err(|_| format!("{what} load average {field:?} is not a number"))
    };
    let (one, five, fifteen) = (next("1m")?, next("5m")?, next("15m")?);
    Ok(vec![
        Family::single_gauge("node_load1", "1m load average.", one),
        Family::single_gauge("node_load5", "5m load average.", five),
        Family::single_gauge("node_load15", "15m load average.", fifteen),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_captured_loadavg() {
        let families = parse(include_str!("fixtures/proc/loadavg")).expect("parses");
        let got: Vec<(&str, f64)> = families
            .iter()
            .map(|f| (f.name.as_ref(), f.samples[0].value))
            .collect();
        assert_eq!(
            got,
            [
                ("node_load1", 0.87),
                ("node_load5", 0.40),
                ("node_load15", 0.18)
            ]
        );
    }

    #[test]
    fn short_or_bad_input_fails() {
        assert!(parse("0.1 0.2").is_err());
        assert!(parse("0.1 x 0.3").is_err());
        assert!(parse("").is_err());
    }
}
