//! The shipped alert rules (`alert-rules/*.yml`): promtool's lint and unit tests
//! (`alert-rules/tests/*.test.yml`), the style rules mixtool's linter enforces (our own code),
//! runbook anchors in `docs/runbook.md`, test coverage of every alert, and that every metric
//! name a rule expression uses exists in warden's output with every source configured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::support::full::FullWarden;
use crate::support::{require_tool, samples};

/// Every `runbook_url` is this plus the lowercased alert name (GitHub's anchor of the
/// `## AlertName` heading in `docs/runbook.md`).
const RUNBOOK_URL: &str = "https://github.com/warden-monitoring/warden/blob/main/docs/runbook.md#";

/// Alerts without `for:`, with the reason. Each counts events over a range (`increase`,
/// `changes`) whose window already holds the alert; a `for` would only delay it.
const EVENT_ALERTS: &[(&str, &str)] = &[
    (
        "HostOomKillDetected",
        "an OOM kill is an event; increase(...[30m]) holds the alert for 30 minutes",
    ),
    (
        "PostgresRestarted",
        "a restart is an event; the 5-minute window after the start time holds the alert",
    ),
    (
        "BackupVerificationFailed",
        "a failed verification is an event; increase(...[1h]) holds the alert for an hour",
    ),
    (
        "WardenTooManyRestarts",
        "restarts are events; changes(...[15m]) holds the alert for 15 minutes",
    ),
    (
        "WardenActionFailing",
        "a failed job is an event; increase(...[30m]) holds the alert for 30 minutes",
    ),
    (
        "WardenActionLooping",
        "counts runs over the last hour; the window is the hold",
    ),
    (
        "WardenWebhookRejecting",
        "a rejected notification is an event; increase(...[15m]) holds the alert",
    ),
];

/// Names rules may use that Prometheus, not warden, produces.
const FROM_PROMETHEUS: &[&str] = &[
    "up",
    "scrape_duration_seconds",
    "ALERTS",
    "ALERTS_FOR_STATE",
];

/// Families warden exports only with hardware, settings or a topology the test machine and
/// its one throwaway PostgreSQL primary do not have, with the reason. Every other metric name
/// a rule uses must be in warden's output in `every_rule_metric_exists_in_warden_output`.
const NEEDS_SETUP: &[(&str, &str)] = &[];

/// The severities mixtool accepts.
const SEVERITIES: &[&str] = &["critical", "warning", "info"];

/// PromQL's functions and aggregation operators (Prometheus 2.42).
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count",
    "count_over_time",
    "count_values",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "exp",
    "floor",
    "group",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev",
    "stddev_over_time",
    "stdvar",
    "stdvar_over_time",
    "sum",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "topk",
    "vector",
    "year",
];

/// Keywords that are never metric names: set operators and modifiers.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start", "end",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: Option<String>,
    record: Option<String>,
    expr: String,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct TestFile {
    rule_files: Vec<String>,
    tests: Vec<TestGroup>,
}

#[derive(Deserialize)]
struct TestGroup {
    #[serde(default)]
    alert_rule_test: Vec<AlertRuleTest>,
}

#[derive(Deserialize)]
struct AlertRuleTest {
    alertname: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` whose names end with `suffix`, sorted.
fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|err| panic!("{dir}: {err}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {suffix} files in {dir}");
    out
}

fn rule_files() -> Vec<PathBuf> {
    files("alert-rules", ".yml")
}

fn test_files() -> Vec<PathBuf> {
    files("alert-rules/tests", ".test.yml")
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path) -> T {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Every rule of every shipped file, with the file's name and the group's.
fn all_rules() -> Vec<(String, String, Rule)> {
    rule_files()
        .iter()
        .flat_map(|path| {
            let file: RuleFile = parse(path);
            let name = file_name(path);
            file.groups.into_iter().flat_map(move |group| {
                let name = name.clone();
                group
                    .rules
                    .into_iter()
                    .map(move |rule| (name.clone(), group.name.clone(), rule))
            })
        })
        .collect()
}

fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Runs promtool with `args` in the repository root; fails on a non-zero exit or on any
/// output line that is not promtool's own success report.
fn promtool(promtool: &Path, args: &[String]) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {}: {}\n{text}",
        args.join(" "),
        output.status
    );
    let unexpected: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            !(line.is_empty()
                || line.starts_with("Checking ")
                || line.starts_with("Unit Testing: ")
                || line == &"SUCCESS"
                || (line.starts_with("SUCCESS: ") && line.ends_with(" rules found")))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool {} printed more than success: {unexpected:#?}",
        args.join(" ")
    );
}

#[test]
fn promtool_lints_and_unit_tests_the_shipped_rules() {
    let tool = require_tool("promtool", "prometheus");
    let mut check = vec![
        "check".to_owned(),
        "rules".to_owned(),
        "--lint-fatal".to_owned(),
    ];
    check.extend(rule_files().iter().map(|p| relative(p)));
    promtool(&tool, &check);
    let mut test = vec!["test".to_owned(), "rules".to_owned()];
    test.extend(test_files().iter().map(|p| relative(p)));
    promtool(&tool, &test);
}

/// The `## Name` headings of `docs/runbook.md`.
fn runbook_headings() -> BTreeSet<String> {
    let path = root().join("docs/runbook.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "{}: {err} (the runbook every rule's runbook_url points into)",
            path.display()
        )
    });
    text.lines()
        .filter_map(|line| line.strip_prefix("## "))
        .map(|h| h.trim().to_owned())
        .collect()
}

#[test]
fn shipped_rules_follow_the_style_rules_and_every_alert_is_tested() {
    let camel = regex::Regex::new(r"^([A-Z]+[a-z0-9]+)+$").unwrap();
    let summary_style = regex::Regex::new(r"^[A-Z].+\.$").unwrap();
    let events: BTreeMap<&str, &str> = EVENT_ALERTS.iter().copied().collect();
    let headings = runbook_headings();
    let mut problems = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut alerts: BTreeSet<String> = BTreeSet::new();
    let mut groups: BTreeMap<String, String> = BTreeMap::new();

    for path in rule_files() {
        let file: RuleFile = parse(&path);
        if file.groups.len() != 1 {
            problems.push(format!(
                "{}: {} groups, the convention is one per file",
                file_name(&path),
                file.groups.len()
            ));
        }
        for group in &file.groups {
            if !group.name.starts_with("warden-") {
                problems.push(format!(
                    "{}: group {:?} is not named warden-<area>",
                    file_name(&path),
                    group.name
                ));
            }
            if let Some(other) = groups.insert(group.name.clone(), file_name(&path)) {
                problems.push(format!(
                    "group {} in {other} and {}",
                    group.name,
                    file_name(&path)
                ));
            }
        }
    }

    for (file, _, rule) in all_rules() {
        let Some(name) = rule.alert.clone() else {
            problems.push(format!(
                "{file}: recording rule {:?}: the kit ships alerts only",
                rule.record
            ));
            continue;
        };
        let at = format!("{file}: {name}");
        // A second tier repeats nothing about the name and the runbook.
        let alerts_before = alerts.clone();
        alerts.insert(name.clone());
        if !camel.is_match(&name) && !alerts_before.contains(&name) {
            problems.push(format!("{at}: name is not CamelCase"));
        }
        let severity = rule.labels.get("severity").map(String::as_str);
        match severity {
            Some(s) if SEVERITIES.contains(&s) => {}
            other => problems.push(format!(
                "{at}: severity {other:?}, must be one of {SEVERITIES:?}"
            )),
        }
        if !seen.insert((name.clone(), severity.unwrap_or_default().to_owned())) {
            problems.push(format!("{at}: a second rule with severity {severity:?}"));
        }
        match rule.annotations.get("summary") {
            None => problems.push(format!("{at}: no summary")),
            Some(s) if s.contains("{{") => problems.push(format!("{at}: summary is templated")),
            Some(s) if !summary_style.is_match(s) => {
                problems.push(format!("{at}: summary {s:?} does not match ^[A-Z].+\\.$"))
            }
            Some(_) => {}
        }
        match rule.annotations.get("description") {
            None => problems.push(format!("{at}: no description")),
            Some(d) if !(d.contains("{{") && d.contains("}}")) => {
                problems.push(format!("{at}: description is not templated"))
            }
            Some(_) => {}
        }
        let want = format!("{RUNBOOK_URL}{}", name.to_lowercase());
        match rule.annotations.get("runbook_url") {
            Some(url) if *url == want => {}
            other => problems.push(format!("{at}: runbook_url {other:?}, want {want:?}")),
        }
        if !headings.contains(&name) && !alerts_before.contains(&name) {
            problems.push(format!("{at}: docs/runbook.md has no `## {name}` section"));
        }
        match (&rule.for_, events.get(name.as_str())) {
            (None, None) => problems.push(format!(
                "{at}: no `for:` (add one, or list it in EVENT_ALERTS with the reason)"
            )),
            (Some(f), Some(_)) => problems.push(format!(
                "{at}: has `for: {f}` but is listed in EVENT_ALERTS"
            )),
            _ => {}
        }
    }
    for event in events.keys() {
        if !alerts.contains(*event) {
            problems.push(format!("EVENT_ALERTS names {event}, which no rule defines"));
        }
    }

    // Every alert has at least three alert_rule_test cases, every test file loads existing
    // rule files, and every rule file is loaded by some test file.
    let mut cases: BTreeMap<String, usize> = BTreeMap::new();
    let mut tested_files: BTreeSet<PathBuf> = BTreeSet::new();
    for path in test_files() {
        let file: TestFile = parse(&path);
        for rules in &file.rule_files {
            let target = path.parent().unwrap().join(rules);
            match target.canonicalize() {
                Ok(found) => {
                    tested_files.insert(found);
                }
                Err(err) => {
                    problems.push(format!("{}: rule_files {rules}: {err}", file_name(&path)))
                }
            }
        }
        for case in file.tests.iter().flat_map(|t| &t.alert_rule_test) {
            *cases.entry(case.alertname.clone()).or_default() += 1;
        }
    }
    for path in rule_files() {
        if !tested_files.contains(&path.canonicalize().unwrap()) {
            problems.push(format!("{}: no test file loads it", file_name(&path)));
        }
    }
    for name in &alerts {
        let n = cases.get(name).copied().unwrap_or(0);
        if n < 3 {
            problems.push(format!(
                "{name}: {n} alert_rule_test case(s), at least 3 needed (fires, pending or below, resolves)"
            ));
        }
    }
    for name in cases.keys() {
        if !alerts.contains(name) {
            problems.push(format!("tests name alert {name}, which no rule defines"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in alert-rules/:\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "{} alerts, {} rules, {} alert_rule_test cases",
        alerts.len(),
        seen.len(),
        cases.values().sum::<usize>()
    );
}

/// The metric names a PromQL expression selects, or a description of what the tokenizer
/// could not read. Label matchers, label lists after `by`/`on`/…, range and subquery
/// durations, strings, numbers, functions and keywords are skipped; an identifier followed by
/// `(` must be a known function. `{__name__="x"}` counts as `x`.
fn metric_names(expr: &str) -> Result<BTreeSet<String>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let is_start = |c: char| c.is_ascii_alphabetic() || c == '_' || c == ':';
    let is_part = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let skip_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    // An aggregation's `by`/`without` clause starts at `j` (`sum by (x) (…)`).
    let followed_by_grouping = |j: usize| {
        let word: String = chars[j.min(chars.len())..]
            .iter()
            .take_while(|c| is_part(**c))
            .collect();
        let word = word.to_ascii_lowercase();
        word == "by" || word == "without"
    };
    // The index after the string literal opening at `j`.
    let skip_string = |j: usize| -> Result<usize, String> {
        let quote = chars[j];
        let mut k = j + 1;
        while k < chars.len() {
            if chars[k] == '\\' && quote != '`' {
                k += 2;
                continue;
            }
            if chars[k] == quote {
                return Ok(k + 1);
            }
            k += 1;
        }
        Err(format!("unterminated string at {j}"))
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(i)?;
        } else if c == '{' {
            // Label matchers; pick up a __name__ equality matcher.
            let mut k = i + 1;
            let mut body = String::new();
            while k < chars.len() && chars[k] != '}' {
                if matches!(chars[k], '"' | '\'' | '`') {
                    let end = skip_string(k)?;
                    body.extend(&chars[k..end]);
                    k = end;
                } else {
                    body.push(chars[k]);
                    k += 1;
                }
            }
            if k == chars.len() {
                return Err(format!("unclosed {{ at {i}"));
            }
            for matcher in body.split(',') {
                if let Some((label, value)) = matcher.split_once('=')
                    && label.trim() == "__name__"
                    && !value.starts_with('~')
                {
                    names.insert(value.trim().trim_matches(['"', '\'', '`']).to_owned());
                }
            }
            i = k + 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (1e9, 0x1f, 5m, 1.5).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
        } else if is_start(c) {
            let start = i;
            while i < chars.len() && is_part(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = skip_space(i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if chars.get(next) == Some(&'(') {
                    let close = chars[next..]
                        .iter()
                        .position(|&c| c == ')')
                        .ok_or_else(|| format!("unclosed label list after {word}"))?;
                    i = next + close + 1;
                }
                // group_left without a list, or `on` misread: nothing to skip.
            } else if KEYWORDS.contains(&lower.as_str()) {
                // `offset 5m`: the duration is skipped as a number.
            } else if chars.get(next) == Some(&'(') || followed_by_grouping(next) {
                if !FUNCTIONS.contains(&word.as_str()) {
                    return Err(format!("{word}( is not a PromQL function"));
                }
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    Ok(names)
}

#[test]
fn metric_names_reads_selectors_and_skips_everything_else() {
    let names = |e: &str| {
        metric_names(e)
            .unwrap()
            .into_iter()
            .collect::<Vec<String>>()
    };
    assert_eq!(
        names(
            "sum by (instance, server) (pg_stat_activity_count{state!~\"idle|x\"}) > 0.8 * \
             (pg_settings_max_connections - on(instance) group_left(server) foo_total)"
        ),
        [
            "foo_total",
            "pg_settings_max_connections",
            "pg_stat_activity_count"
        ]
    );
    assert_eq!(
        names(
            "time() - a_timestamp_seconds offset 5m > 1e9 and b unless on () absent_over_time(c{job=\"warden\", x='}'}[1h:5m])"
        ),
        ["a_timestamp_seconds", "b", "c"]
    );
    assert_eq!(
        names("rate(x[5m]) / ignoring (mode) sum without(cpu) (y) # z\n or {__name__=\"w\"}"),
        ["w", "x", "y"]
    );
    assert_eq!(
        names("max(node_load1) by (instance) > bool 2"),
        ["node_load1"]
    );
    assert!(metric_names("sum(foo_bar(x))").is_err());
}

#[test]
fn every_rule_metric_exists_in_warden_output_with_every_source_on() {
    let rules = all_rules();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (file, _, rule) in &rules {
        let name = rule
            .alert
            .clone()
            .or_else(|| rule.record.clone())
            .unwrap_or_default();
        match metric_names(&rule.expr) {
            Ok(names) => {
                for metric in names {
                    used.entry(metric)
                        .or_default()
                        .insert(format!("{file}: {name}"));
                }
            }
            Err(err) => problems.push(format!("{file}: {name}: cannot read expr: {err}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let full = FullWarden::start();
    let body = full.warden.get("/metrics", &[]).body;
    let exported: BTreeSet<String> = samples(&body).into_iter().map(|(n, _, _)| n).collect();
    let needs_setup: BTreeMap<&str, &str> = NEEDS_SETUP.iter().copied().collect();
    let mut notes = Vec::new();
    for (metric, users) in &used {
        if exported.contains(metric) || FROM_PROMETHEUS.contains(&metric.as_str()) {
            continue;
        }
        let users: Vec<&str> = users.iter().map(String::as_str).collect();
        match needs_setup.get(metric.as_str()) {
            Some(why) => notes.push(format!("{metric} ({}): {why}", users.join(", "))),
            None => problems.push(format!(
                "{metric}, used by {}, is not in warden's output",
                users.join(", ")
            )),
        }
    }
    for metric in needs_setup.keys() {
        if exported.contains(*metric) {
            problems.push(format!(
                "{metric} is in NEEDS_SETUP but warden exports it here: remove it from the list"
            ));
        }
        if !used.contains_key(*metric) {
            problems.push(format!("{metric} is in NEEDS_SETUP but no rule uses it"));
        }
    }
    if !notes.is_empty() {
        eprintln!(
            "metrics the rules use that this machine cannot produce:\n{}",
            notes.join("\n")
        );
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    eprintln!(
        "{} metric names in {} rules, all in warden's output or Prometheus' own",
        used.len(),
        rules.len()
    );
}
