//! `warden actions list|run|history` and `warden alerts simulate`: the command line of the
//! actions subsystem, with tables or `--output json`.
//!
//! `warden actions run` queues a job through the same store and queue as an alert. When a
//! `warden serve` holds the state directory, that process runs it and this command waits
//! for the result; otherwise this command takes the directory's lock and runs the job itself.
//!
//! Exit codes (beyond main's 0, 1, 2 and 64): [`EXIT_ACTION_FAILED`] (7) when the job ran and
//! failed, timed out, or was interrupted or cancelled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::payload::Payload;
use super::queue::{ActError, Actions};
use super::routing;
use crate::backup::command::Output;
use crate::collect::ErrorChain;
use crate::store::jobs::{JobRow, JobState};

/// The job ran and did not succeed.
pub const EXIT_ACTION_FAILED: u8 = 7;
/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;
/// How often `actions run` looks at a job another process runs.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// What `warden actions` does.
#[derive(Debug, Subcommand)]
pub enum ActionsCommand {
    /// List the configured actions: kind, limits, schedule.
    List,
    /// Run NAME now through the job queue (as an alert would), and wait for its result.
    Run {
        /// The action.
        name: String,
    },
    /// The newest jobs with their results (or the audit log with --audit).
    History {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show the audit log (notifications and every decision) instead of jobs.
        #[arg(long)]
        audit: bool,
    },
}

/// What `warden alerts` does.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Show which routes and actions a webhook payload would trigger, and what each action
    /// would do, without queueing or running anything.
    Simulate {
        /// A file holding an Alertmanager webhook payload (JSON).
        file: PathBuf,
    },
}

/// Runs `command`; returns the exit code.
pub async fn execute(
    actions: Arc<Actions>,
    command: ActionsCommand,
    output: Output,
    lock: impl FnOnce() -> Option<std::fs::File>,
    cancel: CancellationToken,
) -> u8 {
    match command {
        ActionsCommand::List => {
            list(actions.config(), output);
            0
        }
        ActionsCommand::History { limit, audit } => history(&actions, limit, audit, output),
        ActionsCommand::Run { name } => run(&actions, &name, output, lock, cancel).await,
    }
}

/// `warden actions list`: needs no store.
pub fn list(config: &crate::config::ActConfig, output: Output) {
    let rows: Vec<serde_json::Value> = config
        .actions
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "kind": a.kind.key(),
                "plan": a.kind.plan(&BTreeMap::new()).unwrap_or_else(|err| format!("(with alert labels) {err}")),
                "timeout": humantime::format_duration(a.timeout).to_string(),
                "retries": a.retries,
                "dry_run": a.dry_run,
                "idempotent": a.idempotent,
                "schedule": a.schedule.as_ref().map(|s| s.as_str().to_owned()),
                "max_concurrent": a.max_concurrent,
            })
        })
        .collect();
    match output {
        Output::Json => println!("{}", serde_json::Value::Array(rows)),
        Output::Table => {
            println!(
                "{:<20} {:<8} {:<9} {:<7} {:<16} WHAT",
                "NAME", "KIND", "TIMEOUT", "RETRIES", "SCHEDULE"
            );
            for row in rows {
                let text = |k: &str| row[k].as_str().unwrap_or("-").to_owned();
                let dry = if row["dry_run"] == true {
                    " (dry run)"
                } else {
                    ""
                };
                println!(
                    "{:<20} {:<8} {:<9} {:<7} {:<16} {}{dry}",
                    text("name"),
                    text("kind"),
                    text("timeout"),
                    row["retries"].to_string(),
                    text("schedule"),
                    text("plan"),
                );
            }
        }
    }
}

fn history(actions: &Actions, limit: usize, audit: bool, output: Output) -> u8 {
    if audit {
        let entries = match actions.store().audit_log(limit) {
            Ok(entries) => entries,
            Err(err) => {
                eprintln!("warden: {}", ErrorChain(&err));
                return EXIT_FAILURE;
            }
        };
        match output {
            Output::Json => println!("{}", serde_json::to_string(&entries).unwrap_or_default()),
            Output::Table => {
                println!(
                    "{:<8} {:<24} {:<13} {:<20} {:<6} DETAIL",
                    "ID", "AT", "EVENT", "ACTION", "JOB"
                );
                for e in entries {
                    println!(
                        "{:<8} {:<24} {:<13} {:<20} {:<6} {}",
                        e.id,
                        time(e.at),
                        e.event,
                        e.action.as_deref().unwrap_or("-"),
                        e.job.map_or("-".to_owned(), |j| j.to_string()),
                        e.detail
                    );
                }
            }
        }
        return 0;
    }
    let jobs = match actions.store().history(limit) {
        Ok(jobs) => jobs,
        Err(err) => {
            eprintln!("warden: {}", ErrorChain(&err));
            return EXIT_FAILURE;
        }
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string(&jobs).unwrap_or_default()),
        Output::Table => {
            println!(
                "{:<6} {:<20} {:<11} {:<8} {:<3} {:<24} {:>9}  RESULT",
                "JOB", "ACTION", "STATE", "TRIGGER", "TRY", "STARTED", "SECONDS"
            );
            for job in &jobs {
                println!(
                    "{:<6} {:<20} {:<11} {:<8} {:<3} {:<24} {:>9}  {}",
                    job.id,
                    job.action,
                    job.state.as_str(),
                    job.trigger,
                    job.attempt,
                    job.started.map_or("-".to_owned(), time),
                    match (job.started, job.finished) {
                        (Some(s), Some(f)) => format!("{:.2}", f - s),
                        _ => "-".to_owned(),
                    },
                    result_text(job)
                );
            }
        }
    }
    0
}

fn result_text(job: &JobRow) -> String {
    let mut text = job
        .error
        .clone()
        .or_else(|| job.summary.clone())
        .unwrap_or_default();
    if let Some(code) = job.exit_code {
        text = format!("exit {code}: {text}");
    }
    text
}

/// Unix seconds as RFC 3339 (UTC, milliseconds).
fn time(seconds: f64) -> String {
    chrono::DateTime::from_timestamp_millis((seconds * 1000.0) as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

async fn run(
    actions: &Arc<Actions>,
    name: &str,
    output: Output,
    lock: impl FnOnce() -> Option<std::fs::File>,
    cancel: CancellationToken,
) -> u8 {
    // Take the state directory before queueing: if no `warden serve` holds it, this process
    // runs the job and no server can start and take it meanwhile.
    let held = lock();
    let id = match actions.enqueue(name, "manual").await {
        Ok(id) => id,
        Err(err @ ActError::UnknownAction { .. }) => {
            eprintln!("warden: {err}");
            return EXIT_FAILURE;
        }
        Err(err) => {
            eprintln!("warden: cannot queue the run: {}", ErrorChain(&err));
            return EXIT_FAILURE;
        }
    };
    let job = if held.is_some() {
        match actions.run_queued(id, cancel).await {
            Ok(job) => job,
            Err(err) => {
                eprintln!("warden: {}", ErrorChain(&err));
                return EXIT_FAILURE;
            }
        }
    } else {
        eprintln!(
            "warden: job {id} queued; the running `warden serve` runs it, waiting for its result"
        );
        wait_for(actions, id, cancel).await
    };
    drop(held);
    let Some(job) = job else {
        eprintln!("warden: job {id} is gone from the store");
        return EXIT_FAILURE;
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string(&job).unwrap_or_default()),
        Output::Table => {
            println!("job {} ({}): {}", job.id, job.action, job.state.as_str());
            let text = result_text(&job);
            if !text.is_empty() {
                println!("{text}");
            }
            if let Some(out) = job.output.as_deref().filter(|o| !o.is_empty()) {
                println!("--- output (tail) ---\n{out}");
            }
        }
    }
    if job.state == JobState::Succeeded {
        0
    } else {
        EXIT_ACTION_FAILED
    }
}

/// Polls job `id` until it is final; on Ctrl-C returns what is known.
async fn wait_for(actions: &Actions, id: i64, cancel: CancellationToken) -> Option<JobRow> {
    loop {
        let job = actions.store().job(id).ok().flatten();
        let done = job
            .as_ref()
            .is_none_or(|j| !matches!(j.state, JobState::Queued | JobState::Running));
        if done || cancel.is_cancelled() {
            return job;
        }
        tokio::select! {
            () = tokio::time::sleep(WAIT_POLL) => {}
            () = cancel.cancelled() => {}
        }
    }
}

/// `warden alerts simulate`: routes the payload and prints the decisions; returns the exit
/// code (1 when the file is not a payload).
pub fn simulate(config: &crate::config::Config, file: &std::path::Path, output: Output) -> u8 {
    let body = match std::fs::read(file) {
        Ok(body) => body,
        Err(err) => {
            eprintln!("warden: cannot read {}: {err}", file.display());
            return EXIT_FAILURE;
        }
    };
    let payload = match Payload::try_from_slice(&body) {
        Ok(payload) => payload,
        Err(err) => {
            eprintln!("warden: {}: {err}", file.display());
            return EXIT_FAILURE;
        }
    };
    let (_, decisions) = routing::route(&config.act, &payload);
    let mut rows = Vec::new();
    for (alert, decision) in payload.alerts.iter().zip(&decisions) {
        let actions: Vec<serde_json::Value> = decision
            .actions
            .iter()
            .map(|(route, name)| {
                let action = config.act.action(name);
                let plan = action.map(|a| a.kind.plan(&alert.labels));
                json!({
                    "route": route,
                    "action": name,
                    "dry_run": action.is_some_and(|a| a.dry_run),
                    "would": plan.as_ref().and_then(|p| p.as_ref().ok()),
                    "refused": plan.as_ref().and_then(|p| p.as_ref().err()).map(|e| ErrorChain(e).to_string()),
                })
            })
            .collect();
        let why = match decision.outcome {
            "filtered" => format!(
                "its {} label does not match webhook.instance_pattern",
                config.act.webhook.instance_label
            ),
            "unmatched" => "no route matched".to_owned(),
            _ => "queued once per (fingerprint, startsAt, status, action), unless a route's cooldown for this label set is running".to_owned(),
        };
        rows.push(json!({
            "alertname": decision.alertname,
            "fingerprint": decision.fingerprint,
            "status": decision.status,
            "outcome": decision.outcome,
            "why": why,
            "cancels_queued_jobs": decision.cancels_queued,
            "actions": actions,
        }));
    }
    match output {
        Output::Json => println!("{}", serde_json::Value::Array(rows)),
        Output::Table => {
            if payload.truncated_alerts > 0 {
                println!(
                    "note: Alertmanager left {} alerts out of this payload (max_alerts)",
                    payload.truncated_alerts
                );
            }
            for row in rows {
                println!(
                    "{} {} [{}]: {} ({})",
                    row["alertname"].as_str().unwrap_or(""),
                    row["fingerprint"].as_str().unwrap_or(""),
                    row["status"].as_str().unwrap_or(""),
                    row["outcome"].as_str().unwrap_or(""),
                    row["why"].as_str().unwrap_or("")
                );
                if row["cancels_queued_jobs"] == true {
                    println!("  cancels this alert's queued jobs");
                }
                for action in row["actions"].as_array().into_iter().flatten() {
                    let what = match (&action["would"], &action["refused"]) {
                        (serde_json::Value::String(w), _) => w.clone(),
                        (_, serde_json::Value::String(r)) => format!("would fail: {r}"),
                        _ => "unknown action".to_owned(),
                    };
                    let dry = if action["dry_run"] == true {
                        " (dry run)"
                    } else {
                        ""
                    };
                    println!(
                        "  route {} → action {}{dry}: {what}",
                        action["route"].as_str().unwrap_or(""),
                        action["action"].as_str().unwrap_or(""),
                    );
                }
            }
        }
    }
    0
}
