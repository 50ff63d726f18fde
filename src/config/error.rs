//! Configuration errors: every problem found, each with the key path it concerns.

use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path, such as `host.filesystem.stat_timeout` or `backups[2].name`; empty for the
    /// document as a whole.
    pub path: String,
    /// What is wrong, in lower case.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Multi-line messages (a regex parser's caret diagram) stay indented under their item.
        let message = self.message.replace('\n', "\n      ");
        if self.path.is_empty() {
            write!(f, "{message}")
        } else {
            write!(f, "{}: {message}", self.path)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML.
    #[error("config file {path} is not valid YAML: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, with the line and column.
        message: String,
    },
    /// The file is valid YAML but the configuration is not; every problem is listed.
    #[error("{}", Invalid(.problems))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct Invalid<'a>(&'a [Problem]);

impl fmt::Display for Invalid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        write!(
            f,
            "invalid configuration ({count} problem{}):",
            if count == 1 { "" } else { "s" }
        )?;
        for problem in self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while validating.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Whether a problem was recorded at `path` or below it (`postgres[0]` concerns
    /// `postgres[0].dsn`, but not `postgres[01]`). Checks derived from two values (a timeout
    /// against its interval) are skipped when either failed, so that one mistake is reported
    /// once and not again as a misleading comparison with a default.
    pub fn concerns(&self, path: &str) -> bool {
        self.0.iter().any(|p| {
            p.path
                .strip_prefix(path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }
}
