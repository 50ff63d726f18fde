use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;
use crate::collect::{Format, Snapshot, family};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/collect/host/fixtures/textfile")
}

/// A directory holding copies of the named fixtures.
fn dir_with(files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for file in files {
        std::fs::copy(fixtures().join(file), dir.path().join(file)).expect("copy");
    }
    dir
}

fn collect(dir: &Path) -> Vec<Family> {
    Textfile::new(Some(dir.to_owned()), Duration::from_secs(5))
        .collect()
        .expect("never fails")
}

fn find<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(LabelName, String)> {
    pairs
        .iter()
        .map(|(n, v)| (LabelName::Owned((*n).to_owned()), (*v).to_owned()))
        .collect()
}

fn error_of(text: &str) -> String {
    match parse(text.as_bytes()) {
        Err(err) => err.to_string(),
        Ok(families) => panic!("{text:?} parsed: {families:?}"),
    }
}

#[test]
fn the_fixture_files_parse_as_node_exporter_reads_them() {
    let families =
        parse(&std::fs::read(fixtures().join("a_basic.prom")).expect("read")).expect("parses");
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "app_jobs_total",
            "app_restarts",
            "app_queue_depth",
            "app_last_run_timestamp_seconds",
            "app_shared",
            "app_not_a_number",
            "app_duration_seconds",
            "app_latency_seconds"
        ]
    );
    let jobs = &families[0];
    assert_eq!(
        jobs.help.as_deref(),
        Some("Jobs run, by \"result\" \\ and a\nsecond line.")
    );
    assert_eq!(jobs.kind, TextKind::Counter);
    let depth = &families[2];
    let values: Vec<(&str, f64)> = depth
        .series
        .iter()
        .map(|s| match s.value {
            Value::Simple(v) => (s.labels[0].1.as_ref(), v),
            _ => panic!("not simple"),
        })
        .collect();
    assert_eq!(
        values,
        [
            ("a \"quoted\" name", 12.5),
            ("back\\slash", -1000.0),
            ("new\nline", f64::INFINITY)
        ]
    );
    assert_eq!(families[3].kind, TextKind::Untyped);
    assert_eq!(families[3].help, None);
    let histogram = &families[6];
    assert_eq!(histogram.series.len(), 2);
    assert_eq!(
        histogram.series[1].value,
        Value::Histogram {
            sum: 1.25,
            count: 3.0,
            buckets: vec![(1.0, 2.0)]
        }
    );
    assert_eq!(
        families[7].series[0].value,
        Value::Summary {
            sum: 12.0,
            count: 40.0,
            quantiles: vec![(0.5, 0.2), (0.99, 0.9)]
        }
    );
}

#[test]
fn the_fixture_directory_exports_the_good_files_and_flags_the_rest() {
    let dir = fixtures();
    let families = collect(&dir);
    let file = |name: &str| dir.join(name).display().to_string();

    let jobs = find(&families, "app_jobs_total");
    assert_eq!(jobs.kind, Kind::Counter);
    assert_eq!(jobs.help, "Jobs run, by \"result\" \\ and a\nsecond line.");
    // Padded with the family's other label names, sorted, as node_exporter exports them.
    assert_eq!(
        jobs.samples[0].labels.as_slice(),
        labels(&[("reason", ""), ("result", "ok")])
            .into_iter()
            .map(|(name, value)| (name, value.into()))
            .collect::<Vec<_>>()
    );
    assert_eq!(jobs.samples[0].value, 42.0);
    // A counter without `_total` is declared untyped, as warden declares every such counter.
    let restarts = find(&families, "app_restarts");
    assert_eq!(restarts.kind, Kind::Untyped);
    assert_eq!(
        restarts.help,
        format!("Metric read from {}", file("a_basic.prom"))
    );
    // Merged across files; e_conflict.prom declares it a counter and is skipped.
    let depth = find(&families, "app_queue_depth");
    assert_eq!(depth.kind, Kind::Gauge);
    assert_eq!(depth.samples.len(), 4);
    assert_eq!(depth.value(&[("queue", "b")]), Some(3.0));
    assert_eq!(depth.value(&[("queue", "e")]), None);
    assert!(!families.iter().any(|f| f.name == "app_other"));
    let shared = find(&families, "app_shared");
    assert_eq!(
        shared.help,
        format!(
            "Metric read from {}, {}",
            file("a_basic.prom"),
            file("b_merge.prom")
        )
    );
    assert!(
        find(&families, "app_not_a_number").samples[0]
            .value
            .is_nan()
    );

    let histogram = find(&families, "app_duration_seconds");
    assert_eq!(histogram.kind, Kind::Histogram);
    assert_eq!(
        histogram.histograms[0].buckets,
        [(0.1, 1), (1.0, 3), (10.0, 2), (f64::INFINITY, 1)]
    );
    assert_eq!(histogram.histograms[0].count, 7);
    // No +Inf bucket in the file: it is the count's remainder.
    assert_eq!(
        histogram.histograms[1].buckets,
        [(1.0, 2), (f64::INFINITY, 1)]
    );
    // A summary becomes three untyped families with the samples node_exporter exposes.
    let quantiles = find(&families, "app_latency_seconds");
    assert_eq!(quantiles.kind, Kind::Untyped);
    assert_eq!(quantiles.help, "Request latency.");
    assert_eq!(quantiles.value(&[("quantile", "0.99")]), Some(0.9));
    assert_eq!(
        find(&families, "app_latency_seconds_sum").samples[0].value,
        12.0
    );
    assert_eq!(
        find(&families, "app_latency_seconds_count").samples[0].value,
        40.0
    );

    // Timestamps, syntax errors and the clash each skip their whole file.
    for name in ["app_stamped", "app_fine", "app_broken"] {
        assert!(!families.iter().any(|f| f.name == name), "{name}");
    }
    let mtimes = find(&families, "node_textfile_mtime_seconds");
    let files: Vec<&str> = mtimes
        .samples
        .iter()
        .map(|s| s.labels[0].1.as_ref())
        .collect();
    assert_eq!(files, [file("a_basic.prom"), file("b_merge.prom")]);
    let modified = std::fs::metadata(dir.join("a_basic.prom"))
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as f64;
    assert_eq!(mtimes.samples[0].value, modified);
    assert_eq!(
        find(&families, "node_textfile_scrape_error").samples[0].value,
        1.0
    );
}

#[test]
fn good_files_alone_report_no_error() {
    let dir = dir_with(&["a_basic.prom", "b_merge.prom", "notes.txt"]);
    let families = collect(dir.path());
    assert_eq!(
        find(&families, "node_textfile_scrape_error").samples[0].value,
        0.0
    );
    assert_eq!(
        find(&families, "node_textfile_mtime_seconds").samples.len(),
        2
    );
}

#[test]
fn a_missing_directory_is_a_scrape_error_not_a_failure() {
    let families = collect(Path::new("/nonexistent-textfile-dir"));
    assert_eq!(
        find(&families, "node_textfile_scrape_error").samples[0].value,
        1.0
    );
    assert!(
        find(&families, "node_textfile_mtime_seconds")
            .samples
            .is_empty()
    );
}

#[test]
fn an_empty_directory_exports_only_the_error_gauge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut snapshot = Snapshot::default();
    snapshot.extend(collect(dir.path()));
    let out = family::encode(snapshot, Format::Text004);
    assert_eq!(
        out,
        "# HELP node_textfile_scrape_error 1 if there was an error opening or reading a file, 0 otherwise\n\
         # TYPE node_textfile_scrape_error gauge\n\
         node_textfile_scrape_error 0.0\n"
    );
}

#[test]
fn a_subdirectory_named_like_a_file_is_an_error() {
    let dir = dir_with(&["b_merge.prom"]);
    std::fs::create_dir(dir.path().join("sub.prom")).expect("mkdir");
    std::fs::write(dir.path().join("sub.prom/x.prom"), "inner 1\n").expect("write");
    let families = collect(dir.path());
    assert!(!families.iter().any(|f| f.name == "inner"));
    assert_eq!(
        find(&families, "node_textfile_scrape_error").samples[0].value,
        1.0
    );
    assert_eq!(find(&families, "app_shared").samples.len(), 1);
}

#[test]
fn the_encoded_output_reads_back_the_same() {
    let dir = dir_with(&["a_basic.prom", "b_merge.prom"]);
    let mut snapshot = Snapshot::default();
    snapshot.extend(collect(dir.path()));
    let out = family::encode(snapshot, Format::Text004);
    let reread = parse(out.as_bytes()).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    let depth = reread
        .iter()
        .find(|f| f.name == "app_queue_depth")
        .expect("depth");
    assert_eq!(depth.series.len(), 4);
    let jobs = reread
        .iter()
        .find(|f| f.name == "app_jobs_total")
        .expect("jobs");
    assert_eq!(
        jobs.help.as_deref(),
        Some("Jobs run, by \"result\" \\ and a\nsecond line.")
    );
    let histogram = reread
        .iter()
        .find(|f| f.name == "app_duration_seconds")
        .expect("histogram");
    assert_eq!(
        histogram.series[1].value,
        Value::Histogram {
            sum: 1.25,
            count: 3.0,
            buckets: vec![(1.0, 2.0), (f64::INFINITY, 3.0)]
        }
    );
}

#[test]
fn what_the_format_allows_parses() {
    for text in [
        "",
        "\n\n",
        "   \t",
        "x 1\n  \t",
        "# just a comment\n",
        "#\n",
        "# HELP\n",
        "# HELP x\n",
        "# HELP x \n",
        "# TYPE x\n",
        "# OTHER x y\n",
        "x{} 1\n",
        "x{a=\"1\",} 1\n",
        "x { a = \"1\" , b=\"2\" } 1\n",
        "x\t1\n",
        "x:y_z 1\n",
        "x +Inf\n",
        "x -Inf\n",
        "x nan\n",
        "x 1e-400\n",
        "x .5\n",
        "x 5.\n",
        "# TYPE x COUNTER\nx 1\n",
        "x{a=\"\\\\\\\"\\n\"} 1\n",
        "x{a=\"λ\"} 1\n",
        "x 1 -5\n",
        "# TYPE h histogram\nh_bucket 1\n",
        "# TYPE s summary\ns{quantile=\"NaN\"} 1\n",
    ] {
        if let Err(err) = parse(text.as_bytes()) {
            panic!("{text:?}: {err}");
        }
    }
    // A HELP without text, or a TYPE-less family, is the same as none.
    let families = parse(b"# HELP x \nx 1\n").expect("parses");
    assert_eq!(families[0].help, None);
    assert_eq!(families[0].kind, TextKind::Untyped);
    // Timestamps parse (and then skip the file).
    let families = parse(b"x 1 1700000000000\n").expect("parses");
    assert_eq!(families[0].series[0].timestamp, Some(1_700_000_000_000));
    // A family with HELP or TYPE only has no samples and is left out.
    assert!(parse(b"# TYPE x gauge\n").expect("parses").is_empty());
    // A histogram's `_sum` before its TYPE line is its own family.
    let families = parse(b"h_sum 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n").expect("parses");
    assert_eq!(families.len(), 2);
}

#[test]
fn malformed_input_fails_with_node_exporters_reasons() {
    for (text, reason) in [
        ("x 1", "line 1: unexpected end of input stream"),
        ("x 1\ny 2", "line 2: unexpected end of input stream"),
        ("# comment", "unexpected end of input stream"),
        ("x 1 \n", "expected integer as timestamp, got \"\""),
        ("x\n", "expected float as value, got \"\""),
        ("x y\n", "expected float as value, got \"y\""),
        ("x 0x10\n", "expected float as value"),
        ("x 1_000\n", "expected float as value"),
        ("x -nan\n", "expected float as value"),
        ("x 1e400\n", "expected float as value"),
        ("x 1\r\n", "expected float as value"),
        ("x 1 2 3\n", "spurious string after timestamp: \" 3\""),
        ("x 1 1.5\n", "expected integer as timestamp, got \"1.5\""),
        ("1x 1\n", "invalid metric name"),
        ("{a=\"b\"} 1\n", "invalid metric name"),
        ("# HELP 1x y\n", "invalid metric name in comment"),
        (
            "# HELP x y\n# HELP x z\n",
            "line 2: second HELP line for metric name \"x\"",
        ),
        (
            "# TYPE x gauge\n# TYPE x gauge\n",
            "second TYPE line for metric name \"x\"",
        ),
        ("x 1\n# TYPE x gauge\n", "or TYPE reported after samples"),
        ("# TYPE x gauges\n", "unknown metric type \"gauges\""),
        ("# TYPE x gauge \n", "unknown metric type \"gauge \""),
        ("# HELP x a\\tb\n", "invalid escape sequence '\\t'"),
        ("# HELP x a\\\n", "invalid escape sequence"),
        ("x{a=\"\\t\"} 1\n", "invalid escape sequence '\\t'"),
        ("x{a=\"b} 1\n", "contains unescaped new-line"),
        ("x{a=\"b\\", "unexpected end of input stream"),
        ("x{1a=\"b\"} 1\n", "invalid label name for metric \"x\""),
        ("x{a:b=\"c\"} 1\n", "expected '=' after label name"),
        ("x{a} 1\n", "expected '=' after label name"),
        ("x{a=b} 1\n", "expected '\"' at start of label value"),
        (
            "x{a=\"b\" c=\"d\"} 1\n",
            "unexpected end of label value \"b\"",
        ),
        (
            "x{__name__=\"y\"} 1\n",
            "label name \"__name__\" is reserved",
        ),
        (
            "x{a=\"1\",a=\"2\"} 1\n",
            "duplicate label names for metric \"x\"",
        ),
        ("x{a=\"\u{ff}\"} 1\n", "x{a=\"\u{ff}\"} 1\n"),
        (
            "# TYPE s summary\ns{quantile=\"x\"} 1\n",
            "expected float as value for 'quantile' label, got \"x\"",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"\"} 1\n",
            "expected float as value for 'le' label",
        ),
    ] {
        if text == reason {
            continue; // Valid: non-ASCII label values are fine.
        }
        let err = error_of(text);
        assert!(err.contains(reason), "{text:?}: {err}");
    }
    // Invalid UTF-8 in a label value.
    let err = parse(b"x{a=\"\xff\"} 1\n").expect_err("not UTF-8");
    assert!(err.message.contains("not valid UTF-8"), "{err}");
    // Line numbers count every line.
    assert_eq!(
        error_of("\n# c\nx 1\nbad!\n"),
        "text format parsing error in line 4: expected float as value, got \"!\""
    );
}

/// Merges each text into a fresh collector state, file by file; the error of the first file
/// that fails.
fn merge(files: &[&str]) -> Result<Vec<Family>, (usize, String)> {
    let mut merged = Merged::default();
    for (index, text) in files.iter().enumerate() {
        let families = parse(text.as_bytes()).map_err(|e| (index, e.to_string()))?;
        merged
            .add(&format!("f{index}.prom"), families)
            .map_err(|e| (index, e))?;
    }
    Ok(merged.finish())
}

#[test]
fn files_merge_when_they_agree_and_clash_otherwise() {
    let ok = merge(&[
        "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\n",
        "# TYPE x gauge\nx{a=\"2\"} 2\n",
        "# HELP x X.\nx{a=\"3\"} 3\n# TYPE x gauge\n",
    ]);
    // The third file's TYPE comes after its samples: a parse error there.
    assert_eq!(ok.expect_err("TYPE after samples").0, 2);
    let families = merge(&[
        "# HELP x X.\n# TYPE x gauge\nx{a=\"1\"} 1\n",
        "# TYPE x gauge\nx{a=\"2\"} 2\n",
    ])
    .expect("merges");
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].help, "X.");
    assert_eq!(families[0].samples.len(), 2);

    for (files, reason) in [
        (
            &["# TYPE x gauge\nx 1\n", "# TYPE x counter\nx{a=\"b\"} 1\n"][..],
            "x is a counter here but a gauge in an earlier file",
        ),
        (
            &["# TYPE x gauge\nx 1\n", "x{a=\"b\"} 1\n"][..],
            "x is a untyped here but a gauge",
        ),
        (
            &["# HELP x A.\nx 1\n", "# HELP x B.\nx{a=\"b\"} 1\n"][..],
            "x has the help \"B.\" here but \"A.\"",
        ),
        (
            &["x{a=\"b\"} 1\n", "x{a=\"b\"} 2\n"][..],
            "x{a=\"b\"} is defined twice",
        ),
        (&["x{a=\"b\"} 1\nx{a=\"b\"} 2\n"][..], "is defined twice"),
        // Padding makes `x` and `x{a=""}` the same series.
        (
            &["x{a=\"b\"} 1\nx{a=\"\"} 1\nx 2\n"][..],
            "x{a=\"\"} is defined twice",
        ),
        (
            &["# TYPE h histogram\nh_count 1\n", "h_bucket 1\n"][..],
            "h_bucket uses the name h_bucket, which is also h's",
        ),
        (
            &["h_sum 1\n# TYPE h histogram\nh_count 1\n"][..],
            "which is also h_sum's",
        ),
        (
            &["# TYPE s summary\ns_count 1\n", "s_sum 1\n"][..],
            "s_sum is a untyped here but a summary",
        ),
        (
            &["# TYPE c_total counter\nc_total 1\n", "c 1\n"][..],
            "c uses the name c, which is also c_total's",
        ),
        (
            &["warden_collector_success 1\n"][..],
            "a name warden exports itself",
        ),
        (
            &["node_textfile_scrape_error 0\n"][..],
            "a name warden exports itself",
        ),
        (
            &["# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\nh_count 2\n"][..],
            "h: bucket le=2 counts 1, fewer than the bucket below (2)",
        ),
        (
            &["# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_count 1\n"][..],
            "h: _count 1 is less than the highest bucket (2)",
        ),
        (
            &["# TYPE h histogram\nh_bucket{le=\"1\"} 1.5\n"][..],
            "h: bucket le=1 1.5 is not a non-negative integer",
        ),
        (
            &["# TYPE h histogram\nh_count -1\n"][..],
            "h: _count -1 is not a non-negative integer",
        ),
        (
            &["# TYPE s summary\ns_count{a=\"b\"} NaN\n"][..],
            "s{a=\"b\"}: _count NaN is not a non-negative integer",
        ),
    ] {
        match merge(files) {
            Ok(families) => panic!("{files:?} merged: {families:?}"),
            Err((index, err)) => {
                assert_eq!(index, files.len() - 1, "{files:?}: {err}");
                assert!(err.contains(reason), "{files:?}: {err}");
            }
        }
    }
}

#[test]
fn a_clashing_file_adds_nothing() {
    let mut merged = Merged::default();
    merged
        .add("a", parse(b"# TYPE x gauge\nx 1\n").expect("parses"))
        .expect("merges");
    let clash = parse(b"y 1\n# TYPE x counter\nx{a=\"b\"} 1\n").expect("parses");
    assert!(merged.add("b", clash).is_err());
    let families = merged.finish();
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].samples.len(), 1);
}

#[test]
fn summaries_sort_quantiles_and_keep_the_last_of_a_duplicate() {
    let families = merge(&[
        "# TYPE s summary\ns{quantile=\"0.9\"} 3\ns{quantile=\"0.1\"} 1\ns{quantile=\"0.9\"} 4\ns_count 2\n",
    ])
    .expect("merges");
    let quantiles: Vec<(&str, f64)> = families[0]
        .samples
        .iter()
        .map(|s| (s.labels[0].1.as_ref(), s.value))
        .collect();
    assert_eq!(quantiles, [("0.1", 1.0), ("0.9", 4.0)]);
    assert_eq!(families[2].samples[0].value, 2.0);
}

#[test]
fn floats_format_as_go_does() {
    for (value, text) in [
        (0.5, "0.5"),
        (0.99, "0.99"),
        (1.0, "1"),
        (0.0, "0"),
        (-2.5, "-2.5"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (123_456.0, "123456"),
        (1e6, "1e+06"),
        (1.5e21, "1.5e+21"),
        (1e-100, "1e-100"),
        (f64::INFINITY, "+Inf"),
        (f64::NEG_INFINITY, "-Inf"),
        (f64::NAN, "NaN"),
    ] {
        assert_eq!(go_float(value), text, "{value}");
    }
}

#[test]
fn a_file_over_the_size_limit_is_skipped() {
    let dir = dir_with(&["b_merge.prom"]);
    let big = File::create(dir.path().join("big.prom")).expect("create");
    big.set_len(MAX_FILE_BYTES + 1).expect("sparse file");
    let (families, problems) =
        Textfile::new(Some(dir.path().to_owned()), Duration::from_secs(5)).read();
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0]
            .1
            .contains("larger than the limit of 10485760 bytes"),
        "{problems:?}"
    );
    assert_eq!(find(&families, "app_shared").samples.len(), 1);
}

#[test]
fn samples_beyond_the_scrape_limit_skip_the_file_that_passes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = |prefix: &str, n: usize| -> String {
        (0..n)
            .map(|i| format!("{prefix}{{i=\"{i}\"}} 1\n"))
            .collect()
    };
    std::fs::write(dir.path().join("a.prom"), lines("a", MAX_SAMPLES - 10)).expect("write");
    std::fs::write(dir.path().join("b.prom"), lines("b", 11)).expect("write");
    std::fs::write(dir.path().join("c.prom"), lines("c", 10)).expect("write");
    let (families, problems) =
        Textfile::new(Some(dir.path().to_owned()), Duration::from_secs(5)).read();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].0.ends_with("b.prom"));
    assert!(
        problems[0].1.contains("past the limit of 100000 samples"),
        "{problems:?}"
    );
    assert_eq!(find(&families, "a").samples.len(), MAX_SAMPLES - 10);
    assert_eq!(find(&families, "c").samples.len(), 10);
}

#[test]
fn problems_are_logged_once_until_they_change() {
    let dir = dir_with(&["d_syntax.prom"]);
    let collector = Textfile::new(Some(dir.path().to_owned()), Duration::from_secs(5));
    collector.collect().expect("never fails");
    let logged = collector.logged.lock().expect("lock").clone();
    assert_eq!(logged.len(), 1);
    std::fs::remove_file(dir.path().join("d_syntax.prom")).expect("remove");
    collector.collect().expect("never fails");
    assert!(collector.logged.lock().expect("lock").is_empty());
}

/// Lines made of the format's own characters, so generated input reaches deep into the parser.
fn exposition_like() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec![
        "x",
        "x_sum",
        "x_count",
        "x_bucket",
        "x_total",
        "y",
        " ",
        "\t",
        "{",
        "}",
        "=",
        ",",
        "\"",
        "\\",
        "\\n",
        "\\\"",
        "le",
        "quantile",
        "a",
        "1",
        "0.5",
        "+Inf",
        "-1",
        "NaN",
        "1e400",
        "# HELP ",
        "# TYPE ",
        "counter",
        "gauge",
        "histogram",
        "summary",
        "untyped",
        "\n",
        "__name__",
        "λ",
        "123456789012",
    ]);
    prop::collection::vec(token, 0..60).prop_map(|tokens| tokens.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_text_parses_or_fails_without_panicking(text in ".*") {
        if let Ok(families) = parse(text.as_bytes()) {
            let _ = Merged::default().add("f", families);
        }
    }

    #[test]
    fn any_bytes_parse_or_fail_without_panicking(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(families) = parse(&bytes) {
            let _ = Merged::default().add("f", families);
        }
    }

    #[test]
    fn exposition_like_text_never_panics_and_what_merges_encodes_validly(
        first in exposition_like(),
        second in exposition_like(),
    ) {
        let mut merged = Merged::default();
        for (name, text) in [("a", &first), ("b", &second)] {
            if let Ok(families) = parse(text.as_bytes()) {
                let _ = merged.add(name, families);
            }
        }
        let mut snapshot = Snapshot::default();
        snapshot.extend(merged.finish());
        let out = family::encode(snapshot, Format::Text004);
        // What warden writes, its own parser reads back.
        prop_assert!(parse(out.as_bytes()).is_ok(), "{}", out);
    }
}
