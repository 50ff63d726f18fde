//! The `actions`, `routes` and `webhook` sections: what alerts and schedules may trigger.
//!
//! Every action has the common keys below and exactly one kind key, whose value the kind's own
//! file parses (`act::kinds`): a new kind needs no change here.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use super::raw::{RawRoute, RawWebhook};
use super::{BackupConfig, Problems, Schedule, Sources, duration};
use crate::act::kinds::check::Check;
use crate::act::kinds::{self, Kind, ParseContext};

/// The keys every action may have besides its kind key.
const COMMON_KEYS: &[&str] = &[
    "name",
    "timeout",
    "retries",
    "retry_backoff",
    "dry_run",
    "idempotent",
    "schedule",
    "max_concurrent",
    "then_check",
];
/// The most retries an action may ask for: a failing action is retried with doubling
/// backoff, so ten already spans hours.
pub const MAX_RETRIES: u64 = 10;
/// The default body limit of `POST /alerts`: Alertmanager's payloads are a few kilobytes per
/// alert, so 1 MiB holds hundreds of alerts.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
/// The largest body limit `webhook.max_body_bytes` may set.
pub const MAX_BODY_BYTES: u64 = 64 << 20;
/// The default limit on actions running at once in this process.
pub const DEFAULT_MAX_CONCURRENT_ACTIONS: usize = 4;
/// The most actions `max_concurrent_actions` may allow at once.
pub const MAX_CONCURRENT_ACTIONS: usize = 64;
/// The default placeholder-free label the fleet filter reads.
pub const DEFAULT_INSTANCE_LABEL: &str = "instance";

/// One validated action.
#[derive(Debug, Clone)]
pub struct ActionConfig {
    /// The name routes and the command line use; the `action` label.
    pub name: String,
    /// What it does.
    pub kind: Arc<dyn Kind>,
    /// The longest one attempt may take; the kind is cancelled then.
    pub timeout: Duration,
    /// How many times a failed attempt is tried again.
    pub retries: u32,
    /// The wait before the first retry; it doubles for each further one.
    pub retry_backoff: Duration,
    /// When set, jobs only record what they would do.
    pub dry_run: bool,
    /// Whether a run interrupted by a crash or shutdown may simply be run again.
    pub idempotent: bool,
    /// When set, the action also runs on this schedule without an alert.
    pub schedule: Option<Schedule>,
    /// How many jobs of this action may run at once.
    pub max_concurrent: usize,
    /// A health check run after a successful attempt; the job fails when it does.
    pub then_check: Option<Arc<Check>>,
}

/// Which alert status a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// Firing alerts only (the default).
    Firing,
    /// Resolved alerts only.
    Resolved,
    /// Both.
    Any,
}

impl StatusFilter {
    /// Whether an alert with `status` passes.
    pub fn accepts(self, status: &str) -> bool {
        match self {
            StatusFilter::Firing => status == "firing",
            StatusFilter::Resolved => status == "resolved",
            StatusFilter::Any => true,
        }
    }
}

/// How a matcher compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `=~` (anchored)
    Regex,
    /// `!~` (anchored)
    NotRegex,
}

/// One label matcher, with Alertmanager's semantics: a missing label reads as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub label: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or pattern as written.
    pub value: String,
    regex: Option<Regex>,
}

impl Matcher {
    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.label).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Regex, Some(re)) => re.is_match(value),
            (MatchOp::NotRegex, Some(re)) => !re.is_match(value),
            // Regex matchers always carry their compiled pattern.
            (MatchOp::Regex | MatchOp::NotRegex, None) => false,
        }
    }

    fn try_new(label: &str, op: MatchOp, value: &str) -> Result<Matcher, String> {
        if !is_label_name(label) {
            return Err(format!("`{label}` is not a label name"));
        }
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|err| format!("not a regular expression: {err}"))?,
            ),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            label: label.to_owned(),
            op,
            value: value.to_owned(),
            regex,
        })
    }

    /// Parses Alertmanager's matcher syntax: `name="value"`, `name!="value"`, `name=~"re"`,
    /// `name!~"re"`, the value quoted (with `\"` and `\\` escapes) or bare.
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn try_from_text(text: &str) -> Result<Matcher, String> {
        let text = text.trim();
        let position = text
            .find(['=', '!'])
            .ok_or_else(|| format!("`{text}` has no operator (=, !=, =~ or !~)"))?;
        let (label, rest) = text.split_at(position);
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Regex, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRegex, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEqual, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Equal, v)
        } else {
            return Err(format!("`{text}` has no operator (=, !=, =~ or !~)"));
        };
        let value = unquote(value.trim())?;
        Matcher::try_new(label.trim(), op, &value)
    }
}

/// A matcher value without its quotes and escapes.
fn unquote(value: &str) -> Result<String, String> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| format!("`{value}` lacks its closing quote"))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => return Err(format!("`{value}` ends in a lone backslash")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Prometheus' label-name rule.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// One validated route.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Its `name`, or `routes[N]`: the audit log and cooldowns key on it.
    pub name: String,
    /// Every matcher must match.
    pub matchers: Vec<Matcher>,
    /// Which alert status it takes.
    pub status: StatusFilter,
    /// The actions it triggers, by name, in order.
    pub actions: Vec<String>,
    /// After triggering an action for an alert's label set, the same route does not trigger
    /// it again for that label set within this time.
    pub cooldown: Option<Duration>,
    /// Whether later routes are still evaluated after this one matched.
    pub continue_matching: bool,
}

/// The `webhook` section.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `POST /alerts` bodies above this get 413.
    pub max_body_bytes: usize,
    /// The label the fleet filter reads.
    pub instance_label: String,
    /// When set, only alerts whose instance label matches (anchored) are acted on; the
    /// others are recorded as filtered. A fleet's wardens can then share one receiver.
    pub instance_pattern: Option<Regex>,
    /// How long the audit log, finished jobs and dedup keys are kept.
    pub audit_retention: Duration,
}

/// The validated `actions`, `routes` and `webhook` sections.
#[derive(Debug, Clone)]
pub struct ActConfig {
    /// The actions, in file order.
    pub actions: Vec<ActionConfig>,
    /// The routes, in evaluation order.
    pub routes: Vec<RouteConfig>,
    /// The webhook's limits and fleet filter.
    pub webhook: WebhookConfig,
    /// How many actions may run at once in this process.
    pub max_concurrent_actions: usize,
}

impl ActConfig {
    /// Whether `/alerts` is served: some route exists to act on alerts.
    pub fn webhook_enabled(&self) -> bool {
        !self.routes.is_empty()
    }

    /// The action named `name`.
    pub fn action(&self, name: &str) -> Option<&ActionConfig> {
        self.actions.iter().find(|a| a.name == name)
    }
}

/// Everything `validate` needs besides the raw sections.
pub(super) struct Inputs<'a> {
    pub sources: &'a Sources,
    pub backups: &'a [BackupConfig],
    pub base: &'a Path,
}

/// Validates the three sections, recording every problem.
pub(super) fn validate(
    actions: Vec<Map<String, Value>>,
    routes: Vec<RawRoute>,
    webhook: RawWebhook,
    max_concurrent_actions: Option<u64>,
    inputs: &Inputs<'_>,
    problems: &mut Problems,
) -> ActConfig {
    let context = ParseContext {
        base: inputs.base,
        sources: inputs.sources,
        backups: inputs.backups,
    };
    let mut names = HashSet::new();
    let mut validated = Vec::new();
    for (i, map) in actions.iter().enumerate() {
        let path = format!("actions[{i}]");
        if let Some(name) = map.get("name").and_then(Value::as_str)
            && !names.insert(name.to_owned())
        {
            problems.push(format!("{path}.name"), format!("`{name}` is used twice"));
        }
        if let Some(action) = validate_action(map, &path, &context, problems) {
            validated.push(action);
        }
    }
    let known: HashSet<&str> = actions
        .iter()
        .filter_map(|m| m.get("name").and_then(Value::as_str))
        .collect();
    let routes = routes
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| validate_route(raw, i, &known, problems))
        .collect();
    ActConfig {
        actions: validated,
        routes,
        webhook: validate_webhook(webhook, problems),
        max_concurrent_actions: super::bounded_count(
            max_concurrent_actions,
            DEFAULT_MAX_CONCURRENT_ACTIONS,
            MAX_CONCURRENT_ACTIONS,
            "max_concurrent_actions",
            problems,
        ),
    }
}

fn validate_action(
    map: &Map<String, Value>,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<ActionConfig> {
    let before = problems.0.len();
    for key in map.keys() {
        let known =
            COMMON_KEYS.contains(&key.as_str()) || kinds::KINDS.iter().any(|k| k.key == key);
        if !known {
            problems.push(
                format!("{path}.{key}"),
                format!(
                    "unknown key; an action has {} and one kind: {}",
                    COMMON_KEYS.join(", "),
                    kinds::keys()
                ),
            );
        }
    }
    let name = match map.get("name") {
        Some(Value::String(name)) if is_identifier_like(name) => name.clone(),
        Some(Value::String(name)) => {
            problems.push(
                format!("{path}.name"),
                format!("`{name}` must be 1 to 64 letters, digits, `_` or `-`"),
            );
            String::new()
        }
        Some(_) => {
            problems.push(format!("{path}.name"), "must be a string");
            String::new()
        }
        None => {
            problems.push(format!("{path}.name"), "missing key");
            String::new()
        }
    };
    let text = |key: &str, problems: &mut Problems| -> Option<String> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) if key.ends_with("timeout") || key.ends_with("backoff") => {
                problems.push(
                    format!("{path}.{key}"),
                    format!("`{n}` needs a unit, such as {n}s or {n}m"),
                );
                None
            }
            Some(_) => {
                problems.push(format!("{path}.{key}"), "must be a string");
                None
            }
        }
    };
    let flag = |key: &str, problems: &mut Problems| -> bool {
        match map.get(key) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => {
                problems.push(format!("{path}.{key}"), "must be true or false");
                false
            }
        }
    };
    let count = |key: &str, default: u64, max: u64, problems: &mut Problems| -> u64 {
        let value = match map.get(key) {
            None | Some(Value::Null) => return default,
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        match value {
            Some(n) if n <= max => n,
            _ => {
                problems.push(
                    format!("{path}.{key}"),
                    format!("must be a whole number from 0 to {max}"),
                );
                default
            }
        }
    };
    let timeout_text = text("timeout", problems);
    let timeout = duration(timeout_text, "10m", &format!("{path}.timeout"), problems);
    let backoff_text = text("retry_backoff", problems);
    let retry_backoff = duration(
        backoff_text,
        "30s",
        &format!("{path}.retry_backoff"),
        problems,
    );
    let retries = count("retries", 0, MAX_RETRIES, problems) as u32;
    let max_concurrent = count("max_concurrent", 1, MAX_CONCURRENT_ACTIONS as u64, problems);
    if max_concurrent == 0 {
        problems.push(format!("{path}.max_concurrent"), "must be at least 1");
    }
    let schedule = text("schedule", problems).and_then(|text| {
        Schedule::try_from_text(&text)
            .map_err(|err| {
                problems.push(
                    format!("{path}.schedule"),
                    format!("`{text}` is not a cron schedule: {err}"),
                )
            })
            .ok()
    });
    let dry_run = flag("dry_run", problems);
    let idempotent = flag("idempotent", problems);
    let kind = kinds::parse(map, path, context, problems);
    let then_check = map
        .get("then_check")
        .and_then(|value| Check::parse(value, &format!("{path}.then_check"), context, problems))
        .map(Arc::new);
    if problems.0.len() > before {
        return None;
    }
    Some(ActionConfig {
        name,
        kind: kind?,
        timeout,
        retries,
        retry_backoff,
        dry_run,
        idempotent,
        schedule,
        max_concurrent: max_concurrent.max(1) as usize,
        then_check,
    })
}

/// Action and route names: metric label values and audit keys, so short and plain.
fn is_identifier_like(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn validate_route(
    raw: RawRoute,
    i: usize,
    actions: &HashSet<&str>,
    problems: &mut Problems,
) -> Option<RouteConfig> {
    let path = format!("routes[{i}]");
    let before = problems.0.len();
    let name = match raw.name {
        Some(name) if is_identifier_like(&name) => name,
        Some(name) => {
            problems.push(
                format!("{path}.name"),
                format!("`{name}` must be 1 to 64 letters, digits, `_` or `-`"),
            );
            name
        }
        None => path.clone(),
    };
    let mut matchers = Vec::new();
    for (label, value) in &raw.match_equal {
        match Matcher::try_new(label, MatchOp::Equal, value) {
            Ok(m) => matchers.push(m),
            Err(err) => problems.push(format!("{path}.match.{label}"), err),
        }
    }
    for (label, value) in &raw.match_re {
        match Matcher::try_new(label, MatchOp::Regex, value) {
            Ok(m) => matchers.push(m),
            Err(err) => problems.push(format!("{path}.match_re.{label}"), err),
        }
    }
    for (j, text) in raw.matchers.iter().enumerate() {
        match Matcher::try_from_text(text) {
            Ok(m) => matchers.push(m),
            Err(err) => problems.push(format!("{path}.matchers[{j}]"), err),
        }
    }
    if matchers.is_empty() && problems.0.len() == before {
        problems.push(
            &path,
            "has no matchers: a route must say which alerts it takes (match, match_re or matchers)",
        );
    }
    let status = match raw.status.as_deref() {
        None | Some("firing") => StatusFilter::Firing,
        Some("resolved") => StatusFilter::Resolved,
        Some("any") => StatusFilter::Any,
        Some(other) => {
            problems.push(
                format!("{path}.status"),
                format!("`{other}` is not one of: firing, resolved, any"),
            );
            StatusFilter::Firing
        }
    };
    if raw.actions.is_empty() {
        problems.push(format!("{path}.actions"), "must name at least one action");
    }
    for (j, action) in raw.actions.iter().enumerate() {
        if !actions.contains(action.as_str()) {
            problems.push(
                format!("{path}.actions[{j}]"),
                format!("`{action}` names no configured action"),
            );
        }
    }
    let cooldown = raw
        .cooldown
        .map(|text| duration(Some(text), "1s", &format!("{path}.cooldown"), problems));
    if problems.0.len() > before {
        return None;
    }
    Some(RouteConfig {
        name,
        matchers,
        status,
        actions: raw.actions,
        cooldown,
        continue_matching: raw.continue_matching.unwrap_or(false),
    })
}

fn validate_webhook(raw: RawWebhook, problems: &mut Problems) -> WebhookConfig {
    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if (1024..=MAX_BODY_BYTES).contains(&n) => n,
        Some(_) => {
            problems.push(
                "webhook.max_body_bytes",
                format!("must be from 1024 to {MAX_BODY_BYTES}"),
            );
            DEFAULT_MAX_BODY_BYTES
        }
    };
    let instance_label = raw
        .instance_label
        .unwrap_or_else(|| DEFAULT_INSTANCE_LABEL.to_owned());
    if !is_label_name(&instance_label) {
        problems.push(
            "webhook.instance_label",
            format!("`{instance_label}` is not a label name"),
        );
    }
    let instance_pattern = raw.instance_pattern.and_then(|text| {
        Regex::new(&format!("^(?:{text})$"))
            .map_err(|err| {
                problems.push(
                    "webhook.instance_pattern",
                    format!("not a regular expression: {err}"),
                )
            })
            .ok()
    });
    WebhookConfig {
        max_body_bytes: max_body_bytes as usize,
        instance_label,
        instance_pattern,
        audit_retention: duration(
            raw.audit_retention,
            "30d",
            "webhook.audit_retention",
            problems,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matchers_follow_alertmanager_syntax() {
        let m = Matcher::try_from_text(r#"instance=~"db[12]:.*""#).unwrap();
        assert!(m.matches(&labels(&[("instance", "db1:9187")])));
        assert!(
            !m.matches(&labels(&[("instance", "xdb1:9187")])),
            "anchored"
        );
        let m = Matcher::try_from_text(r#"severity!="info""#).unwrap();
        assert!(m.matches(&labels(&[])), "a missing label reads as empty");
        assert!(!m.matches(&labels(&[("severity", "info")])));
        let m = Matcher::try_from_text(r#"job!~"node|pg""#).unwrap();
        assert!(m.matches(&labels(&[("job", "nodes")])));
        assert!(!m.matches(&labels(&[("job", "pg")])));
        let m = Matcher::try_from_text(r#"summary="say \"hi\"""#).unwrap();
        assert_eq!(m.value, "say \"hi\"");
        let m = Matcher::try_from_text("alertname=Bare").unwrap();
        assert_eq!((m.op, m.value.as_str()), (MatchOp::Equal, "Bare"));
        for bad in ["nolabel", "1x=\"a\"", "a=~\"(\"", "a=\"open"] {
            assert!(Matcher::try_from_text(bad).is_err(), "{bad}");
        }
    }
}
