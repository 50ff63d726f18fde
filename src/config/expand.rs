//! `${NAME}` expansion in string values.
//!
//! Expansion works on the parsed YAML tree, never on the raw text, so a value containing YAML
//! syntax (`#`, `: `, a newline) stays one string. Keys are not expanded.
//!
//! - `${NAME}` is replaced by the variable's value; an unset variable is an error.
//! - `${NAME:-fallback}` uses `fallback` when the variable is unset or empty.
//! - `$$` is a literal `$`. Any other `$` is kept as it is.

use serde_json::Value;

/// Where variables come from: the process environment, or a map in tests.
pub trait Env {
    /// The value of a variable, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Expands every string in the tree in place, returning `(path, message)` for each failure.
pub fn expand_tree(value: &mut Value, env: &dyn Env) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    walk(value, String::new(), env, &mut problems);
    problems
}

fn walk(value: &mut Value, path: String, env: &dyn Env, problems: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.push((path, message)),
        },
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{index}]"), env, problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(item, child, env, problems);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Expands one string.
///
/// # Errors
/// Names the variable that is unset, or describes the malformed reference.
pub fn expand(text: &str, env: &dyn Env) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(
                    "unterminated `${`: add the closing `}` (write `$$` for a literal `$`)"
                        .to_owned(),
                );
            };
            let reference = &body[..end];
            let (name, fallback) = match reference.split_once(":-") {
                Some((name, fallback)) => (name, Some(fallback)),
                None => (reference, None),
            };
            if !is_variable_name(name) {
                // The value may be a DSN with a password around or inside the braces: say
                // where, never what.
                let at = text.len() - rest.len() + at;
                return Err(format!(
                    "the `${{…}}` at byte {at} is not a variable reference: a name is letters, digits and `_`, not starting with a digit (write `$$` for a literal `$`)"
                ));
            }
            match (env.var(name), fallback) {
                (Some(value), Some(fallback)) if value.is_empty() => out.push_str(fallback),
                (Some(value), _) => out.push_str(&value),
                (None, Some(fallback)) => out.push_str(fallback),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (use `${{{name}:-default}}` for a fallback)"
                    ));
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::from([
            ("HOST".to_owned(), "db.internal".to_owned()),
            ("EMPTY".to_owned(), String::new()),
            ("TRICKY".to_owned(), "a: b # c\nd".to_owned()),
        ])
    }

    #[test]
    fn replaces_set_variables() {
        assert_eq!(
            expand("postgres://${HOST}:5432", &env()).unwrap(),
            "postgres://db.internal:5432"
        );
    }

    #[test]
    fn values_with_yaml_syntax_stay_one_string() {
        assert_eq!(expand("${TRICKY}", &env()).unwrap(), "a: b # c\nd");
    }

    #[test]
    fn fallback_applies_when_unset_or_empty() {
        assert_eq!(expand("${NOPE:-x}", &env()).unwrap(), "x");
        assert_eq!(expand("${EMPTY:-y}", &env()).unwrap(), "y");
        assert_eq!(expand("${HOST:-z}", &env()).unwrap(), "db.internal");
    }

    #[test]
    fn dollar_escapes_and_lone_dollars() {
        assert_eq!(expand("$${HOST}", &env()).unwrap(), "${HOST}");
        assert_eq!(expand("cost $5", &env()).unwrap(), "cost $5");
        assert_eq!(expand("end$", &env()).unwrap(), "end$");
    }

    #[test]
    fn unset_variable_is_named() {
        let err = expand("${MISSING_VAR}", &env()).unwrap_err();
        assert!(err.contains("MISSING_VAR is not set"), "{err}");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(
            expand("${HOST", &env())
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand("${1X}", &env())
                .unwrap_err()
                .contains("at byte 0 is not a variable reference")
        );
    }

    /// A value around a malformed reference is often a DSN with a password in it.
    #[test]
    fn malformed_references_are_not_quoted() {
        for text in [
            "postgres://app:${hunter2 pw}@db/app",
            "postgres://app:pw@db/app?x=${PASS:-s3cr}${bad name:-hunter2}",
        ] {
            let err = expand(text, &env()).unwrap_err();
            assert!(!err.contains("hunter2") && !err.contains("s3cr"), "{err}");
        }
        let err = expand("postgres://app:${hunter2 pw}@db", &env()).unwrap_err();
        assert!(err.contains("at byte 15"), "{err}");
    }

    #[test]
    fn tree_expansion_reports_paths() {
        let mut tree = serde_json::json!({"a": {"b": ["${HOST}", "${NOPE}"]}, "c": "${ALSO_NOPE}"});
        let problems = expand_tree(&mut tree, &env());
        assert_eq!(tree["a"]["b"][0], "db.internal");
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["a.b[1]", "c"]);
    }
}
