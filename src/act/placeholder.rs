//! Templates with named placeholders: the only way alert data reaches an action.
//!
//! A template such as `restart {labels.instance}` is parsed when the configuration loads:
//! only the `labels.` namespace exists, `{{` and `}}` stand for literal braces, and anything
//! else in braces is a configuration problem. At run time each placeholder's value must match
//! the action's pattern ([`DEFAULT_PATTERN`] unless the kind's section sets
//! `placeholder_pattern:`), compiled anchored at both ends.
//!
//! Alert labels are attacker-influenced (anyone who can post to Alertmanager shapes them), so
//! whatever the pattern says a value is also refused when it
//! - is empty or longer than [`MAX_VALUE_LEN`] bytes,
//! - starts with `-` (it would become an option of the program it is passed to),
//! - has a path segment `..` (`..`, `../x`, `x/../y`, `x/..`),
//! - contains NUL, a newline or a carriage return.
//!
//! A refused value is never echoed: the error gives its length and the code point and byte
//! offset of its first character outside the default pattern's set.

use std::collections::BTreeMap;

use regex::Regex;

use crate::act::kinds::ActionError;
use crate::config::Problems;

/// The pattern a value must match unless the action sets `placeholder_pattern:`: host names,
/// `host:port` instances, job and service names, paths.
pub const DEFAULT_PATTERN: &str = "[A-Za-z0-9_.:/@-]{1,128}";

/// The longest value accepted whatever the pattern: a bound on argv and URL sizes.
pub const MAX_VALUE_LEN: usize = 1024;

/// The only placeholder namespace.
const NAMESPACE: &str = "labels.";

/// A compiled, anchored value pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    regex: Regex,
    /// As configured, for messages.
    text: String,
}

impl Pattern {
    /// Compiles `text` (or [`DEFAULT_PATTERN`]) anchored at both ends, recording a problem at
    /// `path` when it does not compile.
    pub fn parse(text: Option<&str>, path: &str, problems: &mut Problems) -> Pattern {
        let text = text.unwrap_or(DEFAULT_PATTERN);
        match Regex::new(&format!("^(?:{text})$")) {
            Ok(regex) => Pattern {
                regex,
                text: text.to_owned(),
            },
            Err(err) => {
                problems.push(path, format!("not a regular expression: {err}"));
                Pattern::default()
            }
        }
    }

    /// Checks one value for the placeholder written `placeholder`.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] saying why, without the value.
    pub fn check(&self, placeholder: &str, value: &str) -> Result<(), ActionError> {
        let refuse = |reason: String| {
            Err(ActionError::Placeholder {
                placeholder: placeholder.to_owned(),
                reason,
            })
        };
        let described = describe(value);
        if value.is_empty() {
            return refuse("the value is empty".to_owned());
        }
        if value.len() > MAX_VALUE_LEN {
            return refuse(format!(
                "the value ({described}) is longer than {MAX_VALUE_LEN} bytes"
            ));
        }
        if let Some((at, c)) = value
            .char_indices()
            .find(|(_, c)| matches!(c, '\0' | '\n' | '\r'))
        {
            return refuse(format!(
                "the value ({described}) contains {} at byte {at}",
                code_point(c)
            ));
        }
        if value.starts_with('-') {
            return refuse(format!(
                "the value ({described}) starts with `-` and could pass as an option"
            ));
        }
        if value.split('/').any(|segment| segment == "..") {
            return refuse(format!("the value ({described}) has a `..` path segment"));
        }
        if !self.regex.is_match(value) {
            return refuse(format!(
                "the value ({described}) does not match the pattern `{}`",
                self.text
            ));
        }
        Ok(())
    }
}

impl Default for Pattern {
    fn default() -> Pattern {
        Pattern {
            regex: Regex::new(&format!("^(?:{DEFAULT_PATTERN})$")).expect("the default compiles"),
            text: DEFAULT_PATTERN.to_owned(),
        }
    }
}

/// A value's length and its first character outside the default set, safe to print.
fn describe(value: &str) -> String {
    let unusual = value.char_indices().find(|(_, c)| {
        !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '-'))
    });
    match unusual {
        Some((at, c)) => format!(
            "{} bytes, first unusual character {} at byte {at}",
            value.len(),
            code_point(c)
        ),
        None => format!("{} bytes", value.len()),
    }
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A label's name.
    Label(String),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`, recording a problem at `path` for an unknown namespace, a bad label
    /// name, an unclosed `{` or a lone `}`.
    pub fn parse(text: &str, path: &str, problems: &mut Problems) -> Option<Template> {
        match Template::try_from_text(text) {
            Ok(template) => Some(template),
            Err(message) => {
                problems.push(path, message);
                None
            }
        }
    }

    /// Parses `text`; the error says what is wrong.
    ///
    /// # Errors
    /// A message for an unknown namespace, a bad label name, an unclosed `{` or a lone `}`.
    pub fn try_from_text(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                literal.push('{');
                rest = after;
            } else if let Some(after) = tail.strip_prefix("}}") {
                literal.push('}');
                rest = after;
            } else if tail.starts_with('}') {
                return Err(format!(
                    "lone `}}` at byte {}: write `}}}}` for a literal brace",
                    text.len() - tail.len()
                ));
            } else {
                let Some(end) = tail.find('}') else {
                    return Err(format!(
                        "unclosed `{{` at byte {}: write `{{{{` for a literal brace",
                        text.len() - tail.len()
                    ));
                };
                let inner = &tail[1..end];
                let Some(name) = inner.strip_prefix(NAMESPACE) else {
                    return Err(format!(
                        "unknown placeholder `{{{inner}}}`: only {{labels.NAME}} exists \
                         (write `{{{{` for a literal brace)"
                    ));
                };
                if !is_label_name(name) {
                    return Err(format!(
                        "`{{{inner}}}`: `{name}` is not a label name (letters, digits and `_`)"
                    ));
                }
                if !literal.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Label(name.to_owned()));
                rest = &tail[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Template { parts })
    }

    /// Whether the template has any placeholder.
    pub fn has_placeholders(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Label(_)))
    }

    /// The labels the template names.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Label(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Renders the template with checked values, as they are.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] for a missing label or a refused value.
    pub fn render(
        &self,
        labels: &BTreeMap<String, String>,
        pattern: &Pattern,
    ) -> Result<String, ActionError> {
        self.render_with(labels, pattern, |value, out| out.push_str(value))
    }

    /// Renders the template with checked values passed through `encode` (URLs
    /// percent-encode them).
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] for a missing label or a refused value.
    pub fn render_with(
        &self,
        labels: &BTreeMap<String, String>,
        pattern: &Pattern,
        encode: impl Fn(&str, &mut String),
    ) -> Result<String, ActionError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Label(name) => {
                    let placeholder = format!("{{{NAMESPACE}{name}}}");
                    let Some(value) = labels.get(name) else {
                        return Err(ActionError::Placeholder {
                            placeholder,
                            reason: format!("the alert has no label `{name}`"),
                        });
                    };
                    pattern.check(&placeholder, value)?;
                    encode(value, &mut out);
                }
            }
        }
        Ok(out)
    }
}

impl std::fmt::Display for Template {
    /// The template as it would be written (braces escaped).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(&text.replace('{', "{{").replace('}', "}}"))?,
                Part::Label(name) => write!(f, "{{{NAMESPACE}{name}}}")?,
            }
        }
        Ok(())
    }
}

/// A Prometheus label name.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for URL paths and query
/// values.
pub fn percent_encode(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn template(text: &str) -> Template {
        Template::try_from_text(text).unwrap()
    }

    fn render(text: &str, value: &str) -> Result<String, ActionError> {
        template(text).render(&labels(&[("instance", value)]), &Pattern::default())
    }

    fn reason(result: Result<String, ActionError>) -> String {
        match result {
            Err(ActionError::Placeholder { reason, .. }) => reason,
            other => panic!("expected a placeholder error, got {other:?}"),
        }
    }

    #[test]
    fn renders_labels_and_escaped_braces() {
        assert_eq!(
            render("host={labels.instance} {{x}}", "db-1:5432").unwrap(),
            "host=db-1:5432 {x}"
        );
        assert_eq!(
            template("{{labels.instance}}").to_string(),
            "{{labels.instance}}"
        );
        assert!(!template("{{labels.instance}}").has_placeholders());
        assert_eq!(
            template("a{labels.x}b{labels.y}")
                .labels()
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn malformed_templates_are_config_problems() {
        for (text, expected) in [
            ("{annotations.summary}", "unknown placeholder"),
            ("{labels}", "unknown placeholder"),
            ("{env.HOME}", "unknown placeholder"),
            ("{labels.in-stance}", "not a label name"),
            ("{labels.}", "not a label name"),
            ("restart {labels.instance", "unclosed `{`"),
            ("a } b", "lone `}`"),
        ] {
            let err = Template::try_from_text(text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let mut problems = Problems::default();
        assert!(Template::parse("{x}", "actions[3].command[1]", &mut problems).is_none());
        assert_eq!(problems.0[0].path, "actions[3].command[1]");
    }

    #[test]
    fn missing_labels_are_named() {
        let err = template("{labels.job}").render(&labels(&[]), &Pattern::default());
        assert_eq!(reason(err), "the alert has no label `job`");
    }

    #[test]
    fn hostile_values_are_refused_without_being_echoed() {
        for value in [
            "a;rm -rf /",
            "a|b",
            "a&b",
            "$(id)",
            "`id`",
            "a<b",
            "a>b",
            "(x)",
            "a b",
            "a\tb",
        ] {
            let reason = reason(render("{labels.instance}", value));
            assert!(reason.contains("does not match"), "{value:?}: {reason}");
            assert!(!reason.contains(value), "{value:?} echoed: {reason}");
        }
        assert!(reason(render("{labels.instance}", "a;b")).contains("U+003B at byte 1"));
        assert!(reason(render("{labels.instance}", "a\nb")).contains("U+000A at byte 1"));
        assert!(reason(render("{labels.instance}", "a\0b")).contains("U+0000"));
        assert!(reason(render("{labels.instance}", "-rf")).contains("starts with `-`"));
        for traversal in ["..", "../etc", "a/../b", "a/..", "/.."] {
            assert!(
                reason(render("{labels.instance}", traversal)).contains("`..`"),
                "{traversal}"
            );
        }
        assert!(render("{labels.instance}", "a..b").is_ok());
        assert!(render("{labels.instance}", "v1.2..3").is_ok());
        let long = "a".repeat(10 * 1024);
        let why = reason(render("{labels.instance}", &long));
        assert!(why.contains("10240 bytes"), "{why}");
        assert!(why.len() < 200);
        assert!(render("{labels.instance}", &"a".repeat(128)).is_ok());
        assert!(render("{labels.instance}", &"a".repeat(129)).is_err());
        assert_eq!(
            reason(render("{labels.instance}", "")),
            "the value is empty"
        );
    }

    #[test]
    fn a_custom_pattern_is_anchored_and_the_hard_rules_still_apply() {
        let mut problems = Problems::default();
        let pattern = Pattern::parse(Some("[a-z]+|[0-9]+"), "p", &mut problems);
        assert!(problems.0.is_empty());
        let render =
            |value: &str| template("{labels.x}").render(&labels(&[("x", value)]), &pattern);
        assert!(render("abc").is_ok());
        assert!(render("123").is_ok());
        // Without anchoring, `abc1` or `x;1` would match one alternative.
        assert!(render("abc1").is_err());
        assert!(render("x;1").is_err());
        let loose = Pattern::parse(Some(".*"), "p", &mut problems);
        let render = |value: &str| template("{labels.x}").render(&labels(&[("x", value)]), &loose);
        assert!(render("a b;c").is_ok());
        assert!(render("-x").is_err());
        assert!(render("a\nb").is_err());
        assert!(render("../x").is_err());
        assert!(render(&"a".repeat(MAX_VALUE_LEN + 1)).is_err());
        Pattern::parse(
            Some("("),
            "actions[0].command.placeholder_pattern",
            &mut problems,
        );
        assert_eq!(problems.0[0].path, "actions[0].command.placeholder_pattern");
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_characters() {
        let mut out = String::new();
        percent_encode("db-1:5432/x@y", &mut out);
        assert_eq!(out, "db-1%3A5432%2Fx%40y");
    }

    proptest! {
        #[test]
        fn accepted_values_hold_no_shell_or_control_characters(
            value in "[ -~\\n\\t\\r\\x00]{0,40}|[A-Za-z0-9_.:/@;|&$()`<> -]{0,40}"
        ) {
            if let Ok(rendered) = render("{labels.instance}", &value) {
                prop_assert_eq!(&rendered, &value);
                for c in rendered.chars() {
                    prop_assert!(!c.is_whitespace() && !c.is_control(), "{:?}", rendered);
                    prop_assert!(!";|&$()`<>\\\"'*?[]{}!#~".contains(c), "{:?}", rendered);
                }
                prop_assert!(!rendered.starts_with('-'));
                prop_assert!(!rendered.split('/').any(|s| s == ".."));
            }
        }

        #[test]
        fn templates_round_trip_through_display(text in "[a-z{}. ]{0,30}") {
            if let Ok(parsed) = Template::try_from_text(&text) {
                let again = Template::try_from_text(&parsed.to_string()).unwrap();
                prop_assert_eq!(parsed, again);
            }
        }
    }
}
