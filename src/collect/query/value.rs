//! Turning result cells into sample values and label values.
//!
//! PostgreSQL's simple-query protocol returns every value as text, SQLite returns typed values;
//! both go through the same rules here so a query means the same on either.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

use crate::collect::sql::Cell;

/// A cell as a sample value: numbers, numeric text, booleans as 1/0. NULL and other text are
/// errors, described for the log.
pub fn number(cell: &Cell) -> Result<f64, String> {
    match cell {
        Cell::Int(v) => Ok(*v as f64),
        Cell::Float(v) => Ok(*v),
        Cell::Text(text) => match text.trim() {
            "t" | "true" => Ok(1.0),
            "f" | "false" => Ok(0.0),
            "NaN" => Ok(f64::NAN),
            "Infinity" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            trimmed => trimmed
                .parse()
                .map_err(|_| format!("holds {text:?}, which is not a number")),
        },
        Cell::Null => Err("is NULL".to_owned()),
    }
}

/// A cell as Unix seconds: a number is taken as Unix seconds already; text may be RFC 3339,
/// PostgreSQL's `2026-11-24 23:16:07.123+00`, or a zone-less date and time (read as UTC).
/// NULL (no such row, as in `min()` over nothing) is 0, the convention for "never".
pub fn timestamp(cell: &Cell) -> Result<f64, String> {
    match cell {
        Cell::Null => Ok(0.0),
        Cell::Int(v) => Ok(*v as f64),
        Cell::Float(v) => Ok(*v),
        Cell::Text(text) => {
            let trimmed = text.trim();
            if let Ok(seconds) = trimmed.parse::<f64>() {
                return Ok(seconds);
            }
            parse_time(trimmed).ok_or_else(|| format!("holds {text:?}, which is not a timestamp"))
        }
    }
}

fn parse_time(text: &str) -> Option<f64> {
    let seconds = |dt: DateTime<chrono::FixedOffset>| {
        dt.timestamp() as f64 + f64::from(dt.timestamp_subsec_nanos()) / 1e9
    };
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(seconds(dt));
    }
    // PostgreSQL's text output: a space separator and an offset of `+00`, `+05:30` or `-08`.
    for format in [
        "%Y-%m-%d %H:%M:%S%.f%#z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(text, format) {
            return Some(seconds(dt));
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, format) {
            let utc = naive.and_utc();
            return Some(utc.timestamp() as f64 + f64::from(utc.timestamp_subsec_nanos()) / 1e9);
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp() as f64)
}

/// A cell as a label value; NULL is the empty string, which Prometheus treats as no label.
pub fn label(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        Cell::Int(v) => v.to_string(),
        Cell::Float(v) => v.to_string(),
        Cell::Text(t) => t.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> Cell {
        Cell::Text(t.to_owned())
    }

    #[test]
    fn numbers_from_every_cell_kind() {
        assert_eq!(number(&Cell::Int(3)), Ok(3.0));
        assert_eq!(number(&Cell::Float(0.5)), Ok(0.5));
        assert_eq!(number(&text("12.25")), Ok(12.25));
        assert_eq!(number(&text("t")), Ok(1.0));
        assert!(
            number(&text("twelve"))
                .unwrap_err()
                .contains("not a number")
        );
        assert_eq!(number(&Cell::Null), Err("is NULL".to_owned()));
    }

    #[test]
    fn timestamps_in_the_formats_databases_print() {
        let expected = 1_796_022_000.0; // 2026-11-30T07:00:00Z
        for form in [
            "2026-11-30T07:00:00Z",
            "2026-11-30T09:00:00+02:00",
            "2026-11-30 07:00:00+00",
            "2026-11-30 12:30:00+05:30",
            "2026-11-29 23:00:00-08",
            "2026-11-30 07:00:00",
            "2026-11-30T07:00:00",
        ] {
            assert_eq!(timestamp(&text(form)), Ok(expected), "{form}");
        }
        assert_eq!(
            timestamp(&text("2026-11-30 07:00:00.250+00")),
            Ok(expected + 0.25)
        );
        assert_eq!(timestamp(&Cell::Int(1_700_000_000)), Ok(1_700_000_000.0));
        assert_eq!(timestamp(&text("1700000000.5")), Ok(1_700_000_000.5));
        assert_eq!(timestamp(&Cell::Null), Ok(0.0));
        assert!(timestamp(&text("yesterday")).is_err());
    }

    #[test]
    fn labels_are_text() {
        assert_eq!(label(&Cell::Null), "");
        assert_eq!(label(&Cell::Int(7)), "7");
        assert_eq!(label(&text("http")), "http");
    }
}
