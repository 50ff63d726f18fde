//! `warden backup run|list|verify|drill|restore|prune`: the command line of the backup
//! subsystem, with human-readable tables or `--output json`, and progress on a terminal.
//!
//! Exit codes (beyond main's 0, 1, 2 and 64):
//! - [`EXIT_BUSY`] (3): the job is busy with another operation;
//! - [`EXIT_NOT_VERIFIED`] (4): a backup failed verification or a drill failed;
//! - [`EXIT_REFUSED`] (5): a restore target was refused (not empty without `--force`, or
//!   not acceptable);
//! - [`EXIT_NOT_ROLLED_BACK`] (6): a restore failed and the previous state could not be put
//!   back (the message says where the safety copy is).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use super::manifest::Manifest;
use super::{BackupError, Backups, Progress, Trigger};

/// The job is busy.
pub const EXIT_BUSY: u8 = 3;
/// Verification or a drill failed.
pub const EXIT_NOT_VERIFIED: u8 = 4;
/// A restore target was refused.
pub const EXIT_REFUSED: u8 = 5;
/// A restore failed and the previous state could not be put back: act now.
pub const EXIT_NOT_ROLLED_BACK: u8 = 6;
/// Any other failure.
pub const EXIT_FAILURE: u8 = 1;

/// How often progress is redrawn on a terminal.
const PROGRESS_TICK: Duration = Duration::from_millis(500);

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// What `warden backup` does.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Run a backup of JOB now: produce, verify, publish, then drill and prune as configured.
    Run {
        /// The job.
        job: String,
    },
    /// List the complete backups of JOB (or of every job), newest first.
    List {
        /// The job; every job when left out.
        job: Option<String>,
        /// List the copies in this copy destination of JOB (a `copies` name) instead, read
        /// from the bucket.
        #[arg(long = "from", value_name = "DESTINATION", requires = "job")]
        from: Option<String>,
    },
    /// Verify stored backups again (checksum and the kind's check): ID, or all of JOB's.
    Verify {
        /// The job.
        job: String,
        /// The backup; every backup of the job when left out.
        id: Option<String>,
        /// Verify the copies in this copy destination instead: each is read back and its
        /// SHA-256 compared with its manifest's.
        #[arg(long = "from", value_name = "DESTINATION")]
        from: Option<String>,
    },
    /// Run a restore drill: restore ID (default: the newest verified) into a scratch
    /// database, file or directory, compare with the manifest, and remove the scratch copy.
    Drill {
        /// The job.
        job: String,
        /// The backup.
        id: Option<String>,
        /// Drill a copy in this copy destination instead (downloaded first); the result goes
        /// into the copy's manifest there.
        #[arg(long = "from", value_name = "DESTINATION")]
        from: Option<String>,
    },
    /// Restore ID (default: the newest verified) to TARGET: a database name (postgres), a
    /// file (sqlite) or a new directory (files).
    Restore {
        /// The job.
        job: String,
        /// The backup.
        id: Option<String>,
        /// Where to restore to.
        #[arg(long = "to", value_name = "TARGET")]
        to: String,
        /// Replace a target that holds data (a safety copy is taken first and put back if the
        /// restore fails).
        #[arg(long)]
        force: bool,
        /// Restore from this copy destination (a `copies` name) instead of the job's directory,
        /// which may be gone.
        #[arg(long = "from", value_name = "DESTINATION")]
        from: Option<String>,
    },
    /// Apply JOB's retention policy. Only says what it would delete unless --apply is given.
    Prune {
        /// The job.
        job: String,
        /// Say what would be deleted, delete nothing (the default).
        #[arg(long, conflicts_with = "apply")]
        dry_run: bool,
        /// Delete what the policy does not keep.
        #[arg(long)]
        apply: bool,
    },
}

impl BackupCommand {
    /// Whether the command only reads: it then creates no state directory.
    pub fn is_read_only(&self) -> bool {
        matches!(self, BackupCommand::List { .. })
    }
}

/// Runs one backup command; returns the process exit code.
pub async fn execute(
    backups: Arc<Backups>,
    command: BackupCommand,
    output: Output,
    cancel: CancellationToken,
) -> u8 {
    match run(&backups, command, output, &cancel).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("warden: {}", crate::collect::ErrorChain(&err));
            exit_code(&err)
        }
    }
}

fn exit_code(err: &BackupError) -> u8 {
    match err {
        BackupError::AlreadyRunning(_) => EXIT_BUSY,
        BackupError::NotVerified(_) | BackupError::Broken { .. } | BackupError::DrillFailed(_) => {
            EXIT_NOT_VERIFIED
        }
        BackupError::TargetNotEmpty { .. } | BackupError::BadTarget { .. } => EXIT_REFUSED,
        BackupError::Files(super::files::FilesError::TargetNotEmpty { .. }) => EXIT_REFUSED,
        BackupError::Files(super::files::FilesError::TargetNotOwned { .. }) => EXIT_REFUSED,
        BackupError::Files(super::files::FilesError::UnsafeEntry { .. }) => EXIT_REFUSED,
        BackupError::RestoreFailed {
            rolled_back: false, ..
        } => EXIT_NOT_ROLLED_BACK,
        BackupError::RestoreFailed { cause, .. } => exit_code(cause),
        _ => EXIT_FAILURE,
    }
}

async fn run(
    backups: &Arc<Backups>,
    command: BackupCommand,
    output: Output,
    cancel: &CancellationToken,
) -> Result<u8, BackupError> {
    match command {
        BackupCommand::Run { job } => {
            let progress = Arc::new(Progress::default());
            let ticker = show_progress(Arc::clone(&progress));
            let result = backups.run(&job, Trigger::Command, cancel, progress).await;
            ticker.abort();
            clear_progress();
            let manifest = result?;
            print_manifests(&[manifest], output);
            Ok(0)
        }
        BackupCommand::List { job, from } => {
            let manifests = match (job, from) {
                (Some(job), Some(from)) => backups.list_copies(&job, &from).await?,
                (job, _) => backups.list(job.as_deref())?,
            };
            print_manifests(&manifests, output);
            Ok(0)
        }
        BackupCommand::Verify { job, id, from } => {
            let outcomes = match from {
                Some(from) => backups.verify_copies(&job, &from, id, cancel).await?,
                None => backups.verify(&job, id, cancel).await?,
            };
            match output {
                Output::Json => {
                    let rows: Vec<serde_json::Value> =
                        outcomes.iter().map(|o| with_job(&job, o)).collect();
                    println!("{}", json(&rows));
                }
                Output::Table => {
                    let rows: Vec<Vec<String>> = outcomes
                        .iter()
                        .map(|o| {
                            vec![
                                o.id.clone(),
                                if o.ok { "ok".into() } else { "FAILED".into() },
                                o.error.clone().unwrap_or_else(|| o.checks.join("; ")),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "RESULT", "DETAIL"], &rows);
                }
            }
            Ok(if outcomes.iter().all(|o| o.ok) {
                0
            } else {
                EXIT_NOT_VERIFIED
            })
        }
        BackupCommand::Drill { job, id, from } => {
            let manifest = match backups.drill(&job, id, from, cancel).await {
                Ok(manifest) => manifest,
                // A drill that found the backup wanting exits 4, as a failed verification; one
                // that could not run (PostgreSQL down, a tool missing) exits with its error.
                Err(err) if err.is_drill_finding() => {
                    eprintln!("warden: {}", crate::collect::ErrorChain(&err));
                    return Ok(EXIT_NOT_VERIFIED);
                }
                Err(err) => return Err(err),
            };
            match output {
                Output::Json => {
                    let report = manifest.restore_test.as_ref().map(|check| DrillReport {
                        job: &manifest.job,
                        id: &manifest.id,
                        check,
                    });
                    println!("{}", json(&report));
                }
                Output::Table => {
                    let detail = manifest
                        .restore_test
                        .as_ref()
                        .map_or(String::new(), |c| c.detail.clone());
                    println!("{}: restore drill passed: {detail}", manifest.id);
                }
            }
            Ok(0)
        }
        BackupCommand::Restore {
            job,
            id,
            to,
            force,
            from,
        } => {
            let progress = Arc::new(Progress::default());
            let ticker = show_progress(Arc::clone(&progress));
            let result = backups
                .restore(&job, id, to, force, from, cancel, progress)
                .await;
            ticker.abort();
            clear_progress();
            let summary = result?;
            match output {
                Output::Json => println!("{}", json(&with_job(&job, &summary))),
                Output::Table => {
                    println!("restored backup {} to {}", summary.id, summary.target);
                    for step in &summary.steps {
                        println!("  - {step}");
                    }
                    if let Some(safety) = &summary.safety_copy {
                        println!(
                            "the previous content is kept at {safety}; remove it once satisfied"
                        );
                    }
                }
            }
            Ok(0)
        }
        BackupCommand::Prune { job, apply, .. } => {
            let decisions = backups.prune(&job, !apply, cancel).await?;
            match output {
                Output::Json => {
                    let rows: Vec<serde_json::Value> = decisions
                        .iter()
                        .map(|d| {
                            serde_json::json!({
                                "job": job,
                                "id": d.id,
                                "finished_at": super::manifest::format_time(d.finished),
                                "keep": d.keep,
                                "reasons": d.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                                "deleted": apply && !d.keep,
                            })
                        })
                        .collect();
                    println!("{}", json(&rows));
                }
                Output::Table => {
                    let verb = if apply { "deleted" } else { "would delete" };
                    let rows: Vec<Vec<String>> = decisions
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.clone(),
                                super::manifest::format_time(d.finished),
                                if d.keep { "keep".into() } else { verb.into() },
                                d.reasons
                                    .iter()
                                    .map(|r| r.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", "),
                            ]
                        })
                        .collect();
                    print_table(&["ID", "FINISHED", "DECISION", "WHY"], &rows);
                    if !apply && decisions.iter().any(|d| !d.keep) {
                        println!("dry run: nothing was deleted; pass --apply to delete");
                    }
                }
            }
            Ok(0)
        }
    }
}

/// `backup drill --output json`: the drill's check with the backup it drilled.
#[derive(serde::Serialize)]
struct DrillReport<'a> {
    job: &'a str,
    id: &'a str,
    #[serde(flatten)]
    check: &'a super::manifest::Check,
}

/// `value` as a JSON object with a `job` member added, so every `--output json` names the
/// job as well as the backup.
fn with_job<T: serde::Serialize>(job: &str, value: &T) -> serde_json::Value {
    let mut value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    if let serde_json::Value::Object(map) = &mut value {
        map.insert("job".to_owned(), serde_json::Value::String(job.to_owned()));
    }
    value
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned())
}

fn print_manifests(manifests: &[Manifest], output: Output) {
    match output {
        Output::Json => println!("{}", json(&manifests)),
        Output::Table => {
            let rows: Vec<Vec<String>> = manifests
                .iter()
                .map(|m| {
                    vec![
                        m.job.clone(),
                        m.id.clone(),
                        m.finished_at.clone(),
                        human_bytes(m.size_bytes),
                        if m.verification.ok {
                            "ok".into()
                        } else {
                            "FAILED".into()
                        },
                        match &m.restore_test {
                            Some(check) if check.ok => check.at.clone(),
                            Some(_) => "FAILED".into(),
                            None => "-".into(),
                        },
                        m.parent.clone().unwrap_or_else(|| "-".into()),
                        m.file.clone(),
                    ]
                })
                .collect();
            print_table(
                &[
                    "JOB", "ID", "FINISHED", "SIZE", "VERIFIED", "DRILL", "PARENT", "FILE",
                ],
                &rows,
            );
        }
    }
}

fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", text.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Sizes in binary units, as `ls -h` prints them.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Redraws bytes written and the rate on stderr while a long operation runs, when stderr is a
/// terminal.
fn show_progress(progress: Arc<Progress>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let began = Instant::now();
        loop {
            tokio::time::sleep(PROGRESS_TICK).await;
            let bytes = progress.bytes();
            let rate = bytes as f64 / began.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r\x1b[K{} written, {}/s",
                human_bytes(bytes),
                human_bytes(rate as u64)
            );
        }
    })
}

fn clear_progress() {
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }
}
