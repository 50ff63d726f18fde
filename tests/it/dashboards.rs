//! The shipped Grafana dashboards (`grafana/dashboards/*.json`) and provisioning
//! (`grafana/provisioning/`): the dashboard-linter rules, every query parsed by promtool,
//! Grafana's own types (grafana-foundation-sdk, checked by the TypeScript compiler), and every
//! panel query answered with data by a real Prometheus scraping warden with every source on.
//!
//! Queries that can only have data in situations this test cannot create are listed with a
//! reason in `grafana/dashboards/.lint-exclusions.yml`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::full::{FullWarden, NOTE_ALERT};
use crate::support::prometheus::{Prometheus, encode_query};
use crate::support::{http, require_tool, value, wait_for};

/// Where the dashboards live, relative to the crate root.
const DASHBOARD_DIR: &str = "grafana/dashboards";

/// The exclusion file's path, relative to the crate root.
const EXCLUSIONS: &str = "grafana/dashboards/.lint-exclusions.yml";

/// Panel types that must carry `fieldConfig.defaults.unit`.
const UNIT_PANELS: &[&str] = &[
    "stat",
    "gauge",
    "bargauge",
    "timeseries",
    "table",
    "state-timeline",
    "status-history",
];

/// Grafana's built-in variables (always defined).
const BUILTIN_VARIABLES: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
    "__dashboard",
    "__name",
    "__org",
    "__user",
    "__timeFilter",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One dashboard file.
struct Dashboard {
    file: String,
    json: Value,
}

impl Dashboard {
    fn uid(&self) -> &str {
        self.json["uid"].as_str().unwrap_or("?")
    }
}

fn load_dashboards() -> Vec<Dashboard> {
    let dir = root().join(DASHBOARD_DIR);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let json = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
            Dashboard {
                file: path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            }
        })
        .collect()
}

/// Every panel, rows' nested panels included.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        out.push(panel);
        for inner in panel["panels"].as_array().into_iter().flatten() {
            out.push(inner);
        }
    }
    out
}

fn variables(dashboard: &Value) -> &[Value] {
    dashboard["templating"]["list"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Where a query comes from.
#[derive(Clone, Debug, PartialEq)]
enum Origin {
    Panel { id: u64, ref_id: String },
    Variable(String),
    Annotation(String),
}

/// One PromQL expression of a dashboard, as written (variables not substituted).
#[derive(Clone, Debug)]
struct Query {
    uid: String,
    file: String,
    title: String,
    origin: Origin,
    expr: String,
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.origin {
            Origin::Panel { id, ref_id } => write!(
                f,
                "{} panel {id} \"{}\" target {ref_id}",
                self.file, self.title
            ),
            Origin::Variable(name) => write!(f, "{} variable ${name}", self.file),
            Origin::Annotation(name) => write!(f, "{} annotation \"{name}\"", self.file),
        }
    }
}

/// The selector inside `label_values(selector, label)`, if the query has one.
fn label_values_selector(query: &str) -> Option<String> {
    let start = query.find("label_values(")? + "label_values(".len();
    let inner = &query[start..query.rfind(')')?];
    let comma = inner.rfind(',')?;
    Some(inner[..comma].trim().to_owned())
}

fn variable_query(variable: &Value) -> Option<String> {
    let query = &variable["query"];
    query["query"]
        .as_str()
        .or_else(|| query.as_str())
        .map(str::to_owned)
}

/// Every target expression, every variable's label_values() selector and every annotation
/// expression of a dashboard.
fn queries(dashboard: &Dashboard) -> Vec<Query> {
    let d = &dashboard.json;
    let mut out = Vec::new();
    let base = |origin: Origin, title: &str, expr: &str| Query {
        uid: dashboard.uid().to_owned(),
        file: dashboard.file.clone(),
        title: title.to_owned(),
        origin,
        expr: expr.to_owned(),
    };
    for panel in panels(d) {
        let title = panel["title"].as_str().unwrap_or("");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let origin = Origin::Panel {
                id: panel["id"].as_u64().unwrap_or(0),
                ref_id: target["refId"].as_str().unwrap_or("?").to_owned(),
            };
            out.push(base(origin, title, target["expr"].as_str().unwrap_or("")));
        }
    }
    for variable in variables(d) {
        if variable["type"] != "query" {
            continue;
        }
        let name = variable["name"].as_str().unwrap_or("?");
        if let Some(selector) = variable_query(variable).and_then(|q| label_values_selector(&q)) {
            out.push(base(Origin::Variable(name.to_owned()), name, &selector));
        }
    }
    for annotation in d["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            let name = annotation["name"].as_str().unwrap_or("?");
            out.push(base(Origin::Annotation(name.to_owned()), name, expr));
        }
    }
    out
}

/// Replaces Grafana variables (`$var`, `${var}`, `${var:fmt}`, `[[var]]`) by `value(name)`.
fn substitute(expr: &str, value: &dyn Fn(&str) -> String) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::new();
    let mut rest = expr;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("[[")
            && let Some(end) = after.find("]]")
        {
            let name = after[..end].split(':').next().unwrap_or("");
            out.push_str(&value(name));
            rest = &after[end + 2..];
        } else if let Some(after) = rest.strip_prefix("${")
            && let Some(end) = after.find('}')
        {
            let name = after[..end].split(':').next().unwrap_or("");
            out.push_str(&value(name));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('$')
            && after.starts_with(ident)
        {
            let end = after.find(|c: char| !ident(c)).unwrap_or(after.len());
            out.push_str(&value(&after[..end]));
            rest = &after[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The variable names an expression references.
fn referenced_variables(expr: &str) -> BTreeSet<String> {
    let names = std::cell::RefCell::new(BTreeSet::new());
    substitute(expr, &|name| {
        names.borrow_mut().insert(name.to_owned());
        String::new()
    });
    names.into_inner()
}

/// dashboard-linter's substitution for parsing: time variables become durations, every other
/// variable a placeholder string.
fn substitute_for_parse(expr: &str) -> String {
    substitute(expr, &|name| match name {
        "__rate_interval" => "5m".to_owned(),
        "__interval" => "1m".to_owned(),
        "__range" => "1h".to_owned(),
        "__range_s" => "3600".to_owned(),
        "__range_ms" | "__interval_ms" => "3600000".to_owned(),
        "__from" | "__to" => "1594671549254".to_owned(),
        other => format!("bgludgvy_{other}"),
    })
}

/// A metric selector found in an expression: its name (may be empty) and its matchers.
#[derive(Debug)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
];
const AGGREGATORS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

fn matching(text: &[char], open_at: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = open_at;
    while i < text.len() {
        let c = text[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(text, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i;
            }
        }
        i += 1;
    }
    text.len()
}

/// The index after the string literal starting at `i`.
fn skip_string(text: &[char], i: usize) -> usize {
    let quote = text[i];
    let mut j = i + 1;
    while j < text.len() && text[j] != quote {
        if text[j] == '\\' && quote != '`' {
            j += 1;
        }
        j += 1;
    }
    j + 1
}

fn parse_matchers(inner: &str) -> Vec<(String, String, String)> {
    let chars: Vec<char> = inner.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < chars.len() && "=!~".contains(chars[i]) {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        if i >= chars.len() || label.is_empty() {
            break;
        }
        let end = skip_string(&chars, i);
        let value: String = chars[i + 1..(end - 1).min(chars.len())].iter().collect();
        out.push((label, op, value));
        i = end;
    }
    out
}

/// The metric selectors of a PromQL expression (lexically: identifiers that are not functions,
/// keywords or label lists, and brace groups).
fn selectors(expr: &str) -> Vec<Selector> {
    let text: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let next_non_space = |from: usize| {
        let mut j = from;
        while j < text.len() && text[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < text.len() {
        let c = text[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&text, i);
        } else if c == '[' {
            i = matching(&text, i, '[', ']') + 1;
        } else if c == '{' {
            let end = matching(&text, i, '{', '}');
            let inner: String = text[i + 1..end.min(text.len())].iter().collect();
            out.push(Selector {
                name: String::new(),
                matchers: parse_matchers(&inner),
            });
            i = end + 1;
        } else if c.is_ascii_digit() || c == '.' {
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || "_:".contains(text[i])) {
                i += 1;
            }
            let word: String = text[start..i].iter().collect();
            let j = next_non_space(i);
            let lower = word.to_ascii_lowercase();
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                if j < text.len() && text[j] == '(' {
                    i = matching(&text, j, '(', ')') + 1;
                }
            } else if KEYWORDS.contains(&lower.as_str()) || AGGREGATORS.contains(&word.as_str()) {
                // an operator or an aggregation: not a selector
            } else if j < text.len() && text[j] == '(' {
                // a function call
            } else if j < text.len() && text[j] == '{' {
                let end = matching(&text, j, '{', '}');
                let inner: String = text[j + 1..end.min(text.len())].iter().collect();
                out.push(Selector {
                    name: word,
                    matchers: parse_matchers(&inner),
                });
                i = end + 1;
            } else {
                out.push(Selector {
                    name: word,
                    matchers: Vec::new(),
                });
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The range of each rate()/irate()/increase() call (`None` when it has none).
fn rate_ranges(expr: &str) -> Vec<(String, Option<String>)> {
    let text: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i] == '"' || text[i] == '\'' || text[i] == '`' {
            i = skip_string(&text, i);
            continue;
        }
        if text[i].is_ascii_alphabetic() && (i == 0 || !text[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == '_') {
                i += 1;
            }
            let word: String = text[start..i].iter().collect();
            if ["rate", "irate", "increase"].contains(&word.as_str())
                && i < text.len()
                && text[i] == '('
            {
                let end = matching(&text, i, '(', ')');
                let inner: String = text[i + 1..end.min(text.len())].iter().collect();
                let range = inner
                    .rfind('[')
                    .map(|open| inner[open + 1..].split(']').next().unwrap_or("").to_owned());
                out.push((word, range));
            }
            continue;
        }
        i += 1;
    }
    out
}

/// The dashboard-linter's target rules for one expression.
fn lint_expr(query: &Query, defined: &BTreeSet<String>, problems: &mut Vec<String>) {
    let expr = &query.expr;
    if expr.trim().is_empty() {
        problems.push(format!("{query}: empty expr"));
        return;
    }
    for name in referenced_variables(expr) {
        if !defined.contains(&name) && !BUILTIN_VARIABLES.contains(&name.as_str()) {
            problems.push(format!("{query}: undefined variable ${name}"));
        }
    }
    // The job and instance variables select by warden_build_info's labels themselves.
    let is_base_variable =
        matches!(&query.origin, Origin::Variable(n) if n == "job" || n == "instance");
    let found = selectors(expr);
    if found.is_empty() && !expr.contains("time()") {
        problems.push(format!("{query}: no metric selector in `{expr}`"));
    }
    for selector in found {
        let has = |label: &str, var: &str| {
            selector.matchers.iter().any(|(l, op, v)| {
                l == label && op == "=~" && (v == &format!("${var}") || v == &format!("${{{var}}}"))
            })
        };
        if !is_base_variable && !has("job", "job") {
            problems.push(format!(
                "{query}: selector `{}` lacks job=~\"$job\" in `{expr}`",
                selector.name
            ));
        }
        if !is_base_variable && !has("instance", "instance") {
            problems.push(format!(
                "{query}: selector `{}` lacks instance=~\"$instance\" in `{expr}`",
                selector.name
            ));
        }
    }
    for (function, range) in rate_ranges(expr) {
        if range.as_deref() != Some("$__rate_interval") {
            problems.push(format!(
                "{query}: {function}() must use [$__rate_interval], has {range:?} in `{expr}`"
            ));
        }
    }
}

fn is_datasource_variable_ref(value: &Value) -> bool {
    value["type"] == "prometheus" && value["uid"] == "${datasource}"
}

/// The structure lint (dashboard-linter's rules and the project's conventions) for one
/// dashboard; `others` are the uids of the other dashboards it should link to.
fn lint(dashboard: &Dashboard, others: &[String]) -> Vec<String> {
    let d = &dashboard.json;
    let file = &dashboard.file;
    let mut problems = Vec::new();
    let mut fail = |p: String| problems.push(format!("{file}: {p}"));

    // Top level.
    if !d["id"].is_null() {
        fail(format!("\"id\" must be null, is {}", d["id"]));
    }
    let uid = d["uid"].as_str().unwrap_or("");
    if !(8..=40).contains(&uid.len())
        || !uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        fail(format!("uid {uid:?} must be 8-40 of [A-Za-z0-9_-]"));
    }
    if !d["title"].as_str().unwrap_or("").starts_with("warden / ") {
        fail(format!(
            "title {} must start with \"warden / \"",
            d["title"]
        ));
    }
    if !d["tags"]
        .as_array()
        .is_some_and(|t| t.contains(&json!("warden")))
    {
        fail("tags must include \"warden\"".to_owned());
    }
    if d["schemaVersion"] != 39 {
        fail(format!(
            "schemaVersion must be 39, is {}",
            d["schemaVersion"]
        ));
    }
    if d["editable"] != true {
        fail("editable must be true".to_owned());
    }
    if d["time"]["from"] != "now-6h" || d["time"]["to"] != "now" {
        fail(format!("time must be now-6h..now, is {}", d["time"]));
    }
    if d["refresh"] != "30s" {
        fail(format!("refresh must be 30s, is {}", d["refresh"]));
    }
    for key in ["__inputs", "__requires", "__elements"] {
        if d.get(key).is_some() {
            fail(format!("{key} is for exports, not provisioned files"));
        }
    }

    // Links to the other dashboards: a tag link covering "warden", or one link per dashboard.
    let links = d["links"].as_array().cloned().unwrap_or_default();
    let by_tag = links.iter().any(|l| {
        l["type"] == "dashboards"
            && l["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("warden")))
    });
    let urls: Vec<&str> = links.iter().filter_map(|l| l["url"].as_str()).collect();
    let missing: Vec<&String> = others
        .iter()
        .filter(|o| !urls.iter().any(|u| u.contains(&format!("/d/{o}"))))
        .collect();
    if !by_tag && !missing.is_empty() {
        fail(format!(
            "no links to {missing:?} (nor a dashboards link by tag warden)"
        ));
    }

    // Variables.
    let vars = variables(d);
    let datasources: Vec<&Value> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    if datasources.len() != 1
        || datasources[0]["name"] != "datasource"
        || datasources[0]["query"] != "prometheus"
    {
        fail("exactly one datasource variable `datasource` with query prometheus".to_owned());
    }
    for (name, query) in [
        ("job", "label_values(warden_build_info, job)"),
        (
            "instance",
            "label_values(warden_build_info{job=~\"$job\"}, instance)",
        ),
    ] {
        match vars.iter().find(|v| v["name"] == name) {
            None => fail(format!("no `{name}` variable")),
            Some(v) => {
                if variable_query(v).as_deref() != Some(query) {
                    fail(format!("variable {name}: query must be `{query}`"));
                }
                if v["multi"] != true || v["includeAll"] != true || v["allValue"] != ".+" {
                    fail(format!(
                        "variable {name}: must be multi, includeAll, allValue \".+\""
                    ));
                }
            }
        }
    }
    let defined: BTreeSet<String> = vars
        .iter()
        .filter_map(|v| v["name"].as_str().map(str::to_owned))
        .collect();
    for v in vars.iter().filter(|v| v["type"] == "query") {
        if !is_datasource_variable_ref(&v["datasource"]) {
            fail(format!(
                "variable {}: datasource must be {{type: prometheus, uid: ${{datasource}}}}",
                v["name"]
            ));
        }
        if variable_query(v).is_some_and(|q| !q.contains("label_values(")) {
            fail(format!(
                "variable {}: only label_values() queries",
                v["name"]
            ));
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, i64, i64, i64, i64)> = Vec::new();
    for panel in panels(d) {
        let id = panel["id"].as_u64();
        let title = panel["title"].as_str().unwrap_or("");
        let name = format!("panel {} \"{title}\"", panel["id"]);
        match id {
            None => fail(format!("{name}: id must be an integer")),
            Some(id) if !ids.insert(id) => fail(format!("{name}: duplicate id")),
            Some(_) => {}
        }
        if title.trim().is_empty() {
            fail(format!("{name}: no title"));
        }
        let kind = panel["type"].as_str().unwrap_or("");
        let grid = &panel["gridPos"];
        let (x, y, w, h) = (
            grid["x"].as_i64().unwrap_or(-1),
            grid["y"].as_i64().unwrap_or(-1),
            grid["w"].as_i64().unwrap_or(0),
            grid["h"].as_i64().unwrap_or(0),
        );
        if x < 0 || y < 0 || w <= 0 || h <= 0 || x + w > 24 {
            fail(format!(
                "{name}: gridPos {grid} must have x+w <= 24 and positive w, h"
            ));
        }
        for &(other, ox, oy, ow, oh) in &boxes {
            if x < ox + ow && ox < x + w && y < oy + oh && oy < y + h {
                fail(format!("{name}: gridPos overlaps panel {other}"));
            }
        }
        boxes.push((id.unwrap_or(0), x, y, w, h));
        if kind == "row" {
            if panel.get("datasource").is_some()
                && !is_datasource_variable_ref(&panel["datasource"])
            {
                fail(format!("{name}: datasource must be ${{datasource}}"));
            }
            continue;
        }
        if panel["description"]
            .as_str()
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            fail(format!("{name}: no description"));
        }
        if !is_datasource_variable_ref(&panel["datasource"]) {
            fail(format!(
                "{name}: datasource must be {{\"type\":\"prometheus\",\"uid\":\"${{datasource}}\"}}, is {}",
                panel["datasource"]
            ));
        }
        if UNIT_PANELS.contains(&kind)
            && panel["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .unwrap_or("")
                .is_empty()
        {
            fail(format!("{name}: no fieldConfig.defaults.unit"));
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() && kind != "text" {
            fail(format!("{name}: no targets"));
        }
        let mut refs = BTreeSet::new();
        for target in &targets {
            let ref_id = target["refId"].as_str().unwrap_or("");
            if ref_id.is_empty() || !refs.insert(ref_id.to_owned()) {
                fail(format!(
                    "{name}: target refId {ref_id:?} missing or repeated"
                ));
            }
            if target.get("datasource").is_some()
                && !is_datasource_variable_ref(&target["datasource"])
            {
                fail(format!(
                    "{name}: target {ref_id} datasource must be ${{datasource}}"
                ));
            }
        }
    }
    for annotation in d["annotations"]["list"].as_array().into_iter().flatten() {
        if annotation.get("expr").is_some()
            && !is_datasource_variable_ref(&annotation["datasource"])
        {
            fail(format!(
                "annotation {}: datasource must be ${{datasource}}",
                annotation["name"]
            ));
        }
    }

    // Queries.
    for query in queries(dashboard) {
        lint_expr(&query, &defined, &mut problems);
    }
    problems
}

fn lint_all(dashboards: &[Dashboard]) -> Vec<String> {
    let uids: Vec<String> = dashboards.iter().map(|d| d.uid().to_owned()).collect();
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for d in dashboards {
        if !seen.insert(d.uid()) {
            problems.push(format!("{}: uid {} used twice", d.file, d.uid()));
        }
        let others: Vec<String> = uids.iter().filter(|u| *u != d.uid()).cloned().collect();
        problems.extend(lint(d, &others));
    }
    problems
}

#[test]
fn dashboards_pass_the_structure_lint() {
    let dashboards = load_dashboards();
    let problems = lint_all(&dashboards);
    assert!(
        problems.is_empty(),
        "{} dashboard lint problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    let panel_count: usize = dashboards
        .iter()
        .map(|d| {
            panels(&d.json)
                .iter()
                .filter(|p| p["type"] != "row")
                .count()
        })
        .sum();
    eprintln!(
        "dashboard lint: {} dashboards, {panel_count} panels, {} queries: no problems",
        dashboards.len(),
        dashboards.iter().map(|d| queries(d).len()).sum::<usize>()
    );

    // The lint catches what it is for: each mutation of a good dashboard is reported.
    let good = &dashboards[0];
    let others: Vec<String> = dashboards[1..].iter().map(|d| d.uid().to_owned()).collect();
    let first_panel = panels(&good.json)
        .iter()
        .position(|p| p["type"] != "row" && p["targets"].is_array())
        .unwrap();
    let mutations: Vec<(&str, Mutation)> = vec![
        (
            "lacks job=~\"$job\"",
            Box::new(|d| set_first_expr(d, first_panel, "sum(up{instance=~\"$instance\"})")),
        ),
        (
            "must use [$__rate_interval]",
            Box::new(|d| {
                set_first_expr(
                    d,
                    first_panel,
                    "rate(up{job=~\"$job\",instance=~\"$instance\"}[5m])",
                )
            }),
        ),
        (
            "undefined variable $nope",
            Box::new(|d| {
                set_first_expr(
                    d,
                    first_panel,
                    "up{job=~\"$job\",instance=~\"$instance\",x=\"$nope\"}",
                )
            }),
        ),
        (
            "no fieldConfig.defaults.unit",
            Box::new(|d| {
                let p = nth_panel(d, first_panel);
                p["type"] = json!("stat");
                p["fieldConfig"]["defaults"]
                    .as_object_mut()
                    .unwrap()
                    .remove("unit");
            }),
        ),
        (
            "datasource must be",
            Box::new(|d| nth_panel(d, first_panel)["datasource"] = json!("Prometheus")),
        ),
        (
            "x+w <= 24",
            Box::new(|d| nth_panel(d, first_panel)["gridPos"]["x"] = json!(20)),
        ),
        (
            "no description",
            Box::new(|d| nth_panel(d, first_panel)["description"] = json!("")),
        ),
        ("\"id\" must be null", Box::new(|d| d["id"] = json!(7))),
    ];
    for (expected, mutate) in mutations {
        let mut json = good.json.clone();
        mutate(&mut json);
        let mutant = Dashboard {
            file: good.file.clone(),
            json,
        };
        let problems = lint(&mutant, &others);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "a mutation should be reported as {expected:?}; got {problems:#?}"
        );
    }
}

/// A change to a dashboard's JSON, for the self-tests.
type Mutation<'a> = Box<dyn Fn(&mut Value) + 'a>;

/// The `n`th panel of `panels()` order, mutable.
fn nth_panel(d: &mut Value, n: usize) -> &mut Value {
    let mut index = 0;
    let list = d["panels"].as_array_mut().unwrap();
    for panel in list.iter_mut() {
        if index == n {
            return panel;
        }
        index += 1;
        let inner = panel["panels"].as_array().map_or(0, Vec::len);
        if n < index + inner {
            return &mut panel["panels"][n - index];
        }
        index += inner;
    }
    panic!("no panel {n}");
}

fn set_first_expr(d: &mut Value, panel: usize, expr: &str) {
    nth_panel(d, panel)["targets"][0]["expr"] = json!(expr);
}

#[test]
fn selector_lexer_finds_selectors_and_rate_ranges() {
    let found = selectors(
        "sum by (instance, le) (rate(a_bucket{job=~\"$job\"}[$__rate_interval])) / on (instance) group_left(x) b or vector(0) > bool 1",
    );
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a_bucket", "b"]);
    assert_eq!(
        found[0].matchers,
        [("job".to_owned(), "=~".to_owned(), "$job".to_owned())]
    );
    assert_eq!(
        rate_ranges("increase(x[5m]) + rate(y{a=\"]\"}[$__rate_interval])"),
        [
            ("increase".to_owned(), Some("5m".to_owned())),
            ("rate".to_owned(), Some("$__rate_interval".to_owned()))
        ]
    );
    assert_eq!(
        substitute_for_parse("rate(x{i=~\"${instance:regex}\",j=~\"[[job]]\"}[$__rate_interval])"),
        "rate(x{i=~\"bgludgvy_instance\",j=~\"bgludgvy_job\"}[5m])"
    );
}

/// Runs `promtool check rules` on `exprs` written as recording rules; the failures, by index.
fn promtool_failures(exprs: &[String]) -> Result<(), String> {
    let promtool = require_tool("promtool", "prometheus");
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dash:query_{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let path = dir.path().join("dashboards.yml");
    std::fs::write(&path, rules).unwrap();
    let output = Command::new(promtool)
        .arg("check")
        .arg("rules")
        .arg(&path)
        .output()
        .unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[test]
fn every_dashboard_query_parses_with_promtool() {
    let all: Vec<Query> = load_dashboards().iter().flat_map(queries).collect();
    let exprs: Vec<String> = all.iter().map(|q| substitute_for_parse(&q.expr)).collect();
    if let Err(output) = promtool_failures(&exprs) {
        // Name each query that fails on its own.
        let failing: Vec<String> = all
            .iter()
            .zip(&exprs)
            .filter_map(|(q, e)| {
                promtool_failures(std::slice::from_ref(e))
                    .err()
                    .map(|out| format!("{q}: `{e}`\n{out}"))
            })
            .collect();
        panic!(
            "promtool rejects dashboard queries:\n{}\n(whole run: {output})",
            failing.join("\n")
        );
    }
    eprintln!("promtool: {} dashboard queries parse", exprs.len());
    // And it is a real check: an unbalanced query fails.
    let broken = substitute_for_parse(
        "sum(rate(up{job=~\"$job\",instance=~\"$instance\"}[$__rate_interval])",
    );
    let err = promtool_failures(&[broken]).expect_err("an unbalanced query must fail");
    assert!(err.contains("unclosed left parenthesis"), "{err}");
}

/// The grafana-foundation-sdk and TypeScript, as `scripts/grafana-schema.sh` installs them.
struct SchemaTools {
    node: PathBuf,
    tsc: PathBuf,
    sdk: PathBuf,
}

fn schema_tools() -> SchemaTools {
    let node = require_tool("node", "nodejs");
    let cache = std::env::var_os("WARDEN_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/warden-test")
        });
    let dir = cache.join("grafana-schema/node_modules");
    let tsc = dir.join("typescript/bin/tsc");
    let sdk = dir.join("@grafana/grafana-foundation-sdk/dist");
    assert!(
        tsc.is_file() && sdk.join("dashboard/index.d.ts").is_file(),
        "Grafana's dashboard types are not installed in {}: run scripts/grafana-schema.sh \
         (npm install --prefix {} typescript@5.9.3 @grafana/grafana-foundation-sdk@0.0.21; \
         needs npm: apt-get install -y npm)",
        dir.display(),
        cache.join("grafana-schema").display()
    );
    SchemaTools { node, tsc, sdk }
}

/// Type-checks each (name, dashboard JSON text) against Grafana's types; errors by name.
fn grafana_type_errors(
    tools: &SchemaTools,
    files: &[(String, String)],
) -> BTreeMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let check = root().join("tests/it/grafana/grafana-check");
    let mut names = Vec::new();
    for (i, (_, text)) in files.iter().enumerate() {
        // One line of prefix, so that line numbers in errors are the JSON file's.
        let source = format!(
            "import type {{ GrafanaDashboard as D }} from {}; export const dashboard: D = {text}",
            serde_json::to_string(&check.display().to_string()).unwrap()
        );
        let name = format!("d{i}.ts");
        std::fs::write(dir.path().join(&name), source).unwrap();
        names.push(name);
    }
    let tsconfig = json!({
        "compilerOptions": {
            "strict": true, "noEmit": true, "target": "es2022", "module": "esnext",
            "moduleResolution": "bundler", "skipLibCheck": true, "types": [],
            "paths": {"@grafana/grafana-foundation-sdk/*": [format!("{}/*/index.d.ts", tools.sdk.display())]}
        },
        "files": names,
    });
    std::fs::write(dir.path().join("tsconfig.json"), tsconfig.to_string()).unwrap();
    let output = Command::new(&tools.node)
        .arg(&tools.tsc)
        .args(["-p", "tsconfig.json", "--pretty", "false"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in stdout.lines().filter(|l| l.contains("error TS")) {
        let owner = names
            .iter()
            .position(|n| line.starts_with(n.as_str()))
            .map(|i| files[i].0.clone())
            .unwrap_or_else(|| "(setup)".to_owned());
        let message = names
            .iter()
            .fold(line.to_owned(), |l, n| l.replacen(n.as_str(), "", 1));
        errors.entry(owner).or_default().push(message);
    }
    assert!(
        output.status.success() || !errors.is_empty(),
        "tsc failed without errors: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    errors
}

#[test]
fn dashboards_match_grafanas_own_types() {
    let tools = schema_tools();
    let dashboards = load_dashboards();
    let mut files: Vec<(String, String)> = dashboards
        .iter()
        .map(|d| {
            let text = std::fs::read_to_string(root().join(DASHBOARD_DIR).join(&d.file)).unwrap();
            (d.file.clone(), text)
        })
        .collect();
    // Mutants of the first dashboard that Grafana would reject, each of which must fail.
    let good = &dashboards[0].json;
    let first = panels(good)
        .iter()
        .position(|p| p["type"] != "row" && p["fieldConfig"]["defaults"]["unit"].is_string())
        .unwrap();
    let mutants: Vec<(&str, &str, Mutation)> = vec![
        (
            "unknown panel type",
            "'\"graph-old\"' is not assignable",
            Box::new(|d| nth_panel(d, first)["type"] = json!("graph-old")),
        ),
        (
            "unknown unit",
            "'Unit | undefined'",
            Box::new(|d| nth_panel(d, first)["fieldConfig"]["defaults"]["unit"] = json!("seconds")),
        ),
        (
            "datasource named, not referenced",
            "'DatasourceRef'",
            Box::new(|d| nth_panel(d, first)["datasource"] = json!("Prometheus")),
        ),
        (
            "datasource uid that does not exist",
            "'DatasourceUid | undefined'",
            Box::new(|d| nth_panel(d, first)["datasource"]["uid"] = json!("Prometheus")),
        ),
        (
            "unknown field config key",
            "'\"unitt\"' does not exist",
            Box::new(|d| nth_panel(d, first)["fieldConfig"]["defaults"]["unitt"] = json!("s")),
        ),
        (
            "gridPos of the wrong type",
            "not assignable to type 'number'",
            Box::new(|d| nth_panel(d, first)["gridPos"]["w"] = json!("12")),
        ),
        (
            "exported __inputs",
            "'\"__inputs\"' does not exist",
            Box::new(|d| d["__inputs"] = json!([])),
        ),
    ];
    for (what, _, mutate) in &mutants {
        let mut json = good.clone();
        mutate(&mut json);
        files.push((
            format!("mutant: {what}"),
            serde_json::to_string_pretty(&json).unwrap(),
        ));
    }
    let started = Instant::now();
    let errors = grafana_type_errors(&tools, &files);
    let real: Vec<String> = errors
        .iter()
        .filter(|(name, _)| !name.starts_with("mutant: "))
        .flat_map(|(name, e)| e.iter().map(move |e| format!("{name}{e}")))
        .collect();
    assert!(
        real.is_empty(),
        "dashboards that Grafana's types (grafana-foundation-sdk) reject:\n{}",
        real.join("\n")
    );
    for (what, expected, _) in &mutants {
        let name = format!("mutant: {what}");
        let found = errors.get(&name).cloned().unwrap_or_default();
        assert!(
            found.iter().any(|e| e.contains(expected)),
            "the type check should reject a dashboard with {what} ({expected}); it said {found:#?}"
        );
    }
    eprintln!(
        "grafana types: {} dashboards accepted, {} mutants rejected, in {:?}",
        dashboards.len(),
        mutants.len(),
        started.elapsed()
    );
}

/// One entry of the exclusion file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exclusion {
    dashboard: String,
    #[serde(default)]
    panel: Option<u64>,
    #[serde(default, rename = "ref")]
    ref_id: Option<String>,
    #[serde(default)]
    annotation: Option<String>,
    #[serde(default)]
    variable: Option<String>,
    reason: String,
}

impl Exclusion {
    fn covers(&self, query: &Query) -> bool {
        self.dashboard == query.uid
            && match &query.origin {
                Origin::Panel { id, ref_id } => {
                    self.panel == Some(*id) && self.ref_id.as_ref().is_none_or(|r| r == ref_id)
                }
                Origin::Annotation(name) => self.annotation.as_ref() == Some(name),
                Origin::Variable(name) => self.variable.as_ref() == Some(name),
            }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExclusionFile {
    exclusions: Vec<Exclusion>,
}

fn load_exclusions(all: &[Query]) -> Vec<Exclusion> {
    let text = std::fs::read_to_string(root().join(EXCLUSIONS)).unwrap();
    let file: ExclusionFile =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{EXCLUSIONS}: {e}"));
    for e in &file.exclusions {
        assert!(
            e.reason.trim().len() >= 10,
            "{EXCLUSIONS}: {e:?} needs a reason"
        );
        assert!(
            all.iter().any(|q| e.covers(q)),
            "{EXCLUSIONS}: {e:?} matches no query of the dashboards"
        );
    }
    file.exclusions
}

#[test]
fn exclusions_name_existing_queries_with_reasons() {
    let all: Vec<Query> = load_dashboards().iter().flat_map(queries).collect();
    let exclusions = load_exclusions(&all);
    for e in &exclusions {
        eprintln!("excluded from the data check: {e:?}");
    }
}

/// Runs an API query; the `data.result` array or the error.
fn api_query(addr: SocketAddr, path: &str) -> Result<Vec<Value>, String> {
    let response = http::get(addr, path, &[]).map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_str(&response.body).map_err(|e| e.to_string())?;
    if json["status"] != "success" {
        return Err(format!("{}: {}", json["errorType"], json["error"]));
    }
    Ok(json["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// An Alertmanager webhook notification for `alertname`.
fn notification(alertname: &str) -> String {
    json!({
        "receiver": "warden", "status": "firing", "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"), "truncatedAlerts": 0,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": alertname, "severity": "info"},
            "annotations": {"summary": "Dashboard test."},
            "startsAt": "2026-12-02T07:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus/graph", "fingerprint": "d45b0a2d00000001",
        }],
    })
    .to_string()
}

#[test]
fn every_dashboard_query_returns_data_from_warden_with_every_source() {
    let started = Instant::now();
    let all: Vec<Query> = load_dashboards().iter().flat_map(queries).collect();
    let exclusions = load_exclusions(&all);

    let full = FullWarden::start();
    let warden = &full.warden;
    let dir = tempfile::tempdir().unwrap();

    // Prometheus scrapes warden every second under job="warden", with one alert that always
    // fires so that the ALERTS panels have something to show.
    let rules = dir.path().join("always-firing.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: dashboard-test\n    rules:\n      - alert: DashboardTestAlwaysFiring\n        expr: up{job=\"warden\"} == 1\n        labels: {severity: info}\n        annotations: {summary: Always fires.}\n",
    )
    .unwrap();
    let prometheus = Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        rules.display(),
        warden.addr,
    ));
    let range_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    prometheus.wait_for_data("up{job=\"warden\"} == 1", Duration::from_secs(20));

    // An alert through the webhook runs the action while Prometheus watches.
    let response = http::post_json(warden.addr, "/alerts", &[], &notification(NOTE_ALERT)).unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    wait_for(Duration::from_secs(20), "the action to succeed", || {
        let body = warden.get("/metrics", &[]).body;
        (value(
            &body,
            "warden_action_runs_total",
            &[("action", "note"), ("result", "success")],
        ) == Some(1.0))
        .then_some(())
    });
    // Enough scrapes after the run for every rate window and the alert.
    std::thread::sleep(Duration::from_secs(6));
    prometheus.wait_for_data(
        "ALERTS{alertstate=\"firing\",job=\"warden\"}",
        Duration::from_secs(10),
    );

    let instance = warden.addr.to_string();
    let vars: BTreeMap<String, Value> = load_dashboards()
        .iter()
        .flat_map(|d| variables(&d.json).to_vec())
        .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v)))
        .collect();
    let live = |expr: &str| {
        substitute(expr, &|name| match name {
            "__rate_interval" => "10s".to_owned(),
            "__interval" => "2s".to_owned(),
            "__range" => "1m".to_owned(),
            "__range_s" => "60".to_owned(),
            "job" => "warden".to_owned(),
            "instance" => instance.clone(),
            "datasource" => "prometheus".to_owned(),
            other => vars
                .get(other)
                .and_then(|v| v["allValue"].as_str())
                .unwrap_or(".+")
                .to_owned(),
        })
    };
    let now = range_start + started.elapsed().as_secs_f64();
    let (mut with_data, mut excluded) = (0, 0);
    let mut per_file: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut empty = Vec::new();
    let mut failed = Vec::new();
    for query in &all {
        let expr = live(&query.expr);
        let path = match query.origin {
            // Annotations are range queries: the action ran during the window.
            Origin::Annotation(_) => format!(
                "/api/v1/query_range?query={}&start={range_start}&end={}&step=1",
                encode_query(&expr),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64()
                    .max(now)
            ),
            _ => format!("/api/v1/query?query={}", encode_query(&expr)),
        };
        per_file.entry(&query.file).or_default().0 += 1;
        match api_query(prometheus.addr, &path) {
            Err(e) => failed.push(format!("{query}: `{expr}`: {e}")),
            Ok(result) if !result.is_empty() => {
                with_data += 1;
                per_file.entry(&query.file).or_default().1 += 1;
            }
            Ok(_) if exclusions.iter().any(|e| e.covers(query)) => excluded += 1,
            Ok(_) => empty.push(format!("{query}: `{expr}`")),
        }
    }
    eprintln!(
        "dashboard queries against warden with every source: {} queries, {with_data} with data, {excluded} excluded, {} empty, {} failed ({:?})",
        all.len(),
        empty.len(),
        failed.len(),
        started.elapsed()
    );
    for (file, (total, data)) in &per_file {
        eprintln!("  {file}: {total} queries, {data} with data");
    }
    assert!(
        failed.is_empty(),
        "queries Prometheus rejects:\n{}",
        failed.join("\n")
    );
    assert!(
        empty.is_empty(),
        "queries without data (fix them, or list them with a reason in {EXCLUSIONS}):\n{}\nwarden's log tail: {}",
        empty.join("\n"),
        warden
            .stderr()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn provisioning_points_grafana_at_prometheus_and_the_dashboards() {
    let read = |path: &str| -> Value {
        let text = std::fs::read_to_string(root().join(path)).unwrap();
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let sources = read("grafana/provisioning/datasources/prometheus.yaml");
    assert_eq!(sources["apiVersion"], 1);
    let list = sources["datasources"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{sources}");
    let prometheus = &list[0];
    assert_eq!(prometheus["type"], "prometheus");
    // The uid the dashboards' schema check accepts, and what `datasource` resolves to.
    assert_eq!(prometheus["uid"], "prometheus");
    assert_eq!(prometheus["url"], "http://prometheus:9090");
    assert_eq!(prometheus["access"], "proxy");
    assert_eq!(prometheus["isDefault"], true);
    assert_eq!(prometheus["jsonData"]["timeInterval"], "15s");

    let providers = read("grafana/provisioning/dashboards/warden.yaml");
    assert_eq!(providers["apiVersion"], 1);
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"], "file");
    assert_eq!(
        provider["options"]["path"],
        "/var/lib/grafana/dashboards/warden"
    );

    // Every dashboard selects its datasource through the variable, of the provisioned type.
    for d in load_dashboards() {
        let var = variables(&d.json)
            .iter()
            .find(|v| v["type"] == "datasource")
            .cloned()
            .unwrap_or_default();
        assert_eq!(var["query"], prometheus["type"], "{}", d.file);
    }
}
