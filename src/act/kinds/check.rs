//! `then_check:` the health check the job queue runs after an action: did the restart work?
//!
//! ```yaml
//! then_check: {http: "http://127.0.0.1:8000/healthz", expect_status: 200,
//!              attempts: 3, delay: 10s, timeout: 5s}
//! then_check: {command: [/usr/local/bin/app-healthy, "{labels.instance}"], attempts: 5}
//! ```
//!
//! Exactly one of `http` (a `GET`, by the `http` kind's client) or `command` (the `command`
//! kind's short or long form). Each attempt waits `delay` first (a restarted service needs
//! time), then has `timeout`; the first healthy attempt ends the check. Cancellation stops
//! it at once (a running probe command's process group is terminated).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::command::CommandAction;
use super::http::{HttpAction, expect_status};
use super::{ActionError, JobContext, ParseContext};
use crate::config::Problems;

/// Attempts unless `attempts` says otherwise.
pub const DEFAULT_ATTEMPTS: u32 = 3;

/// The most `attempts` may allow.
pub const MAX_ATTEMPTS: u32 = 100;

/// The wait before each attempt unless `delay` says otherwise.
pub const DEFAULT_DELAY: &str = "10s";

/// Each attempt's limit unless `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: &str = "5s";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    http: Option<String>,
    expect_status: Option<Value>,
    command: Option<Value>,
    attempts: Option<u32>,
    #[serde(default, deserialize_with = "crate::config::lenient::duration")]
    delay: Option<String>,
    #[serde(default, deserialize_with = "crate::config::lenient::duration")]
    timeout: Option<String>,
}

#[derive(Debug)]
enum Probe {
    Http(HttpAction),
    Command(CommandAction),
}

/// A validated `then_check`.
#[derive(Debug)]
pub struct Check {
    probe: Probe,
    attempts: u32,
    delay: Duration,
    timeout: Duration,
}

impl Check {
    /// Parses the `then_check` mapping at `path`, recording every problem.
    pub fn parse(
        value: &Value,
        path: &str,
        context: &ParseContext<'_>,
        problems: &mut Problems,
    ) -> Option<Check> {
        let before = problems.0.len();
        let raw: RawCheck = super::deserialize(value, path, problems)?;
        let timeout = crate::config::duration(
            raw.timeout,
            DEFAULT_TIMEOUT,
            &format!("{path}.timeout"),
            problems,
        );
        let delay =
            crate::config::duration(raw.delay, DEFAULT_DELAY, &format!("{path}.delay"), problems);
        let attempts = raw.attempts.unwrap_or(DEFAULT_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&attempts) {
            problems.push(
                format!("{path}.attempts"),
                format!("must be from 1 to {MAX_ATTEMPTS}"),
            );
        }
        let probe = match (raw.http, raw.command) {
            (Some(url), None) => {
                let expect = expect_status(
                    raw.expect_status.as_ref(),
                    &format!("{path}.expect_status"),
                    problems,
                );
                HttpAction::probe(&url, expect, timeout, &format!("{path}.http"), problems)
                    .map(Probe::Http)
            }
            (None, Some(command)) => {
                if raw.expect_status.is_some() {
                    problems.push(
                        format!("{path}.expect_status"),
                        "applies to http checks only (a command is healthy when it exits 0)",
                    );
                }
                CommandAction::parse(&command, &format!("{path}.command"), context, problems)
                    .map(Probe::Command)
            }
            _ => {
                problems.push(path, "set exactly one of http and command");
                None
            }
        };
        if problems.0.len() > before {
            return None;
        }
        Some(Check {
            probe: probe?,
            attempts,
            delay,
            timeout,
        })
    }

    /// What the check would do, for dry runs.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] when a placeholder's value is refused.
    pub fn plan(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        let probe = match &self.probe {
            Probe::Http(http) => http.describe(labels)?,
            Probe::Command(command) => command.describe(labels)?,
        };
        Ok(format!(
            "check up to {} times, {} apart: {probe}",
            self.attempts,
            humantime::format_duration(self.delay)
        ))
    }

    /// Runs the attempts; the summary says which one was healthy ("healthy on attempt 2 of
    /// 3").
    ///
    /// # Errors
    /// [`ActionError::Cancelled`] on cancellation; after the last attempt,
    /// [`ActionError::Failed`] with the last attempt's reason as its cause.
    pub async fn run(&self, context: &JobContext<'_>) -> Result<String, ActionError> {
        let mut last = None;
        for attempt in 1..=self.attempts {
            tokio::select! {
                () = tokio::time::sleep(self.delay) => {}
                () = context.cancel.cancelled() => return Err(ActionError::Cancelled),
            }
            match self.attempt(context).await {
                Ok(()) => {
                    return Ok(format!("healthy on attempt {attempt} of {}", self.attempts));
                }
                Err(ActionError::Cancelled) if context.cancel.is_cancelled() => {
                    return Err(ActionError::Cancelled);
                }
                Err(ActionError::Cancelled) => {
                    last = Some(ActionError::Refused(format!(
                        "no answer within {}",
                        humantime::format_duration(self.timeout)
                    )));
                }
                // A refused placeholder fails every attempt alike.
                Err(err @ ActionError::Placeholder { .. }) => return Err(err),
                Err(err) => last = Some(err),
            }
        }
        Err(ActionError::failed(
            format!("unhealthy after {} attempts", self.attempts),
            last.unwrap_or_else(|| ActionError::Refused("no attempt ran".to_owned())),
        ))
    }

    /// One probe, stopped at `timeout` through a child token (so a probe command's process
    /// group is terminated, not abandoned).
    async fn attempt(&self, context: &JobContext<'_>) -> Result<(), ActionError> {
        let token: CancellationToken = context.cancel.child_token();
        let timer = {
            let token = token.clone();
            async move {
                tokio::time::sleep(self.timeout).await;
                token.cancel();
                std::future::pending::<()>().await;
            }
        };
        let probe = async {
            match &self.probe {
                Probe::Http(http) => http.execute(context.labels, &token).await.map(|_| ()),
                Probe::Command(command) => {
                    command.execute(context.labels, &token).await.map(|_| ())
                }
            }
        };
        tokio::select! {
            result = probe => result,
            () = timer => unreachable!("the timer never finishes"),
        }
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    fn parse_at(value: Value) -> Result<Check, Vec<String>> {
        super::super::testing::parse_with(|context, problems| {
            Check::parse(&value, "actions[0].then_check", context, problems)
        })
    }

    #[test]
    fn config_problems_have_key_paths() {
        let problems = parse_at(json!({"attempts": 0})).unwrap_err();
        assert_eq!(
            problems,
            [
                "actions[0].then_check.attempts: must be from 1 to 100",
                "actions[0].then_check: set exactly one of http and command",
            ]
        );
        let problems =
            parse_at(json!({"http": "http://h/", "command": ["/bin/true"]})).unwrap_err();
        assert_eq!(
            problems,
            ["actions[0].then_check: set exactly one of http and command"]
        );
        let problems =
            parse_at(json!({"command": ["/bin/true", "{x}"], "expect_status": 200})).unwrap_err();
        assert!(problems[0].starts_with("actions[0].then_check.expect_status: applies to http"));
        assert!(problems[1].starts_with("actions[0].then_check.command[1]: unknown placeholder"));
        let problems = parse_at(json!({"http": "ftp://h/", "delay": "x"})).unwrap_err();
        assert!(
            problems[0].starts_with("actions[0].then_check.delay"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("actions[0].then_check.http"),
            "{problems:?}"
        );
    }

    fn context<'a>(labels: &'a BTreeMap<String, String>) -> JobContext<'a> {
        JobContext::new(1, "check", labels)
    }

    #[tokio::test]
    async fn a_command_check_passes_on_the_first_healthy_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("count");
        // Healthy from the third call on.
        let script = format!(
            "n=$(cat {m} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {m}; [ $n -ge 3 ]",
            m = marker.display()
        );
        let check =
            parse_at(json!({"command": ["/bin/sh", "-c", script], "attempts": 4, "delay": "10ms"}))
                .unwrap();
        let labels = BTreeMap::new();
        assert_eq!(
            check.run(&context(&labels)).await.unwrap(),
            "healthy on attempt 3 of 4"
        );
    }

    #[tokio::test]
    async fn a_failing_check_reports_the_last_reason() {
        let check = parse_at(
            json!({"command": ["/bin/sh", "-c", "echo down >&2; exit 2"], "delay": "10ms"}),
        )
        .unwrap();
        let labels = BTreeMap::new();
        let err = check.run(&context(&labels)).await.unwrap_err();
        assert_eq!(err.to_string(), "unhealthy after 3 attempts");
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("exited with exit status: 2"), "{cause}");
    }

    #[tokio::test]
    async fn a_probe_past_its_timeout_is_stopped_and_cancel_ends_the_check() {
        let check = parse_at(json!({
            "command": ["/bin/sleep", "30"], "attempts": 2, "delay": "10ms", "timeout": "200ms",
        }))
        .unwrap();
        let labels = BTreeMap::new();
        let began = std::time::Instant::now();
        let err = check.run(&context(&labels)).await.unwrap_err();
        assert!(began.elapsed() < std::time::Duration::from_secs(3));
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert_eq!(cause, "no answer within 200ms");

        let job = context(&labels);
        job.cancel.cancel();
        assert!(matches!(check.run(&job).await, Err(ActionError::Cancelled)));
    }
}
