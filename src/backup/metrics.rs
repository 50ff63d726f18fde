//! The `warden_backup_*` families, read from the state store at each scrape.
//!
//! Every configured job has every series from start-up, 0 meaning never. The values come
//! from the catalog (rebuilt from the manifests, so they survive a lost state directory) and
//! the job records; runs by another warden process (`warden backup run`) show up at the next
//! scrape because both write the same store.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Backups;
use crate::collect::{self, BlockingCollector, Family};
use crate::store::RunOutcome;

/// The collector of backup metrics.
pub struct BackupCollector {
    backups: Arc<Backups>,
    timeout: Duration,
}

impl BackupCollector {
    /// Reports on `backups`' jobs; a scrape gives up after `timeout`.
    pub fn new(backups: Arc<Backups>, timeout: Duration) -> Arc<Self> {
        Arc::new(BackupCollector { backups, timeout })
    }
}

impl BlockingCollector for BackupCollector {
    fn name(&self) -> &str {
        "backups"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, collect::Error> {
        let mut success = Family::gauge(
            "warden_backup_last_success_timestamp_seconds",
            "When the job's newest backup finished (every backup is verified before it is published); 0 if none.",
        );
        let mut failure = Family::gauge(
            "warden_backup_last_failure_timestamp_seconds",
            "When the last failed run of the job ended; 0 if none.",
        );
        let mut duration = Family::gauge(
            "warden_backup_last_duration_seconds",
            "How long the job's last run took, verification included.",
        );
        let mut size = Family::gauge(
            "warden_backup_last_size_bytes",
            "The size of the job's newest backup.",
        );
        let mut verified = Family::gauge(
            "warden_backup_last_verified_timestamp_seconds",
            "When the newest backup whose last verification passed finished; 0 if none.",
        );
        let mut drill = Family::gauge(
            "warden_backup_restore_test_last_success_timestamp_seconds",
            "When the job's last passing restore drill ran; 0 if none.",
        );
        let mut drill_failure = Family::gauge(
            "warden_backup_restore_test_last_failure_timestamp_seconds",
            "When the job's last failing restore drill ended; 0 if none.",
        );
        let mut runs = Family::counter(
            "warden_backup_runs_total",
            "Backup runs by result: success (published and verified), failure, skipped (the job was busy).",
        );
        let mut count = Family::gauge(
            "warden_backup_retained",
            "Complete backups of the job on disk.",
        );
        let mut corrupt = Family::gauge(
            "warden_backup_corrupt",
            "Backups of the job on disk whose last verification failed.",
        );
        let mut verify_failures = Family::counter(
            "warden_backup_verify_failures_total",
            "Verifications of stored backups that failed.",
        );
        let mut running = Family::gauge(
            "warden_backup_running",
            "1 while this warden runs an operation on the job.",
        );
        let mut interval = Family::gauge(
            "warden_backup_expected_interval_seconds",
            "The time between two scheduled runs of the job; 0 when it has no schedule.",
        );
        let mut drill_interval = Family::gauge(
            "warden_backup_restore_test_expected_interval_seconds",
            "The time between two scheduled restore drills of the job (its restore_test_schedule, or the backup schedule when each run is drilled); 0 when none is scheduled.",
        );
        let mut copy_success = Family::gauge(
            "warden_backup_copy_last_success_timestamp_seconds",
            "When the last copy of the job's backups to the destination was stored and read back whole; 0 if none.",
        );
        let mut copy_failure = Family::gauge(
            "warden_backup_copy_last_failure_timestamp_seconds",
            "When the last copy to the destination failed; 0 if none.",
        );
        let mut copy_failures = Family::counter(
            "warden_backup_copy_failures_total",
            "Copies to the destination that failed.",
        );
        let mut copy_size = Family::gauge(
            "warden_backup_copy_last_size_bytes",
            "The bytes of the last copy stored in the destination.",
        );
        let mut copy_duration = Family::gauge(
            "warden_backup_copy_last_duration_seconds",
            "How long the last copy to the destination took, upload and read-back.",
        );
        let store = self.backups.store();
        let now = Utc::now();
        for job in self.backups.jobs() {
            let record = store.job(&job.name).map_err(collect::Error::Store)?;
            let summary = store.summary(&job.name).map_err(collect::Error::Store)?;
            let label = || [("backup", job.name.clone())];
            success.push(label(), summary.newest_finished);
            failure.push(label(), record.last_failure);
            duration.push(label(), record.last_duration);
            size.push(label(), summary.newest_size as f64);
            verified.push(label(), summary.newest_verified_finished);
            drill.push(label(), summary.restore_tested.max(record.drill_success));
            drill_failure.push(label(), record.drill_failure);
            count.push(label(), summary.count as f64);
            corrupt.push(label(), summary.failed_verification as f64);
            verify_failures.push(label(), record.verify_failures as f64);
            for (outcome, n) in RunOutcome::ALL.iter().zip(record.runs) {
                runs.push(
                    [
                        ("backup", job.name.clone()),
                        ("result", outcome.as_str().to_owned()),
                    ],
                    n as f64,
                );
            }
            running.push(
                label(),
                if self.backups.is_busy(&job.name) {
                    1.0
                } else {
                    0.0
                },
            );
            interval.push(
                label(),
                job.schedule
                    .as_ref()
                    .map_or(0.0, |s| s.interval(now).as_secs_f64()),
            );
            let drill_schedule = if job.verify.restore_test {
                job.verify
                    .restore_test_schedule
                    .as_ref()
                    .or(job.schedule.as_ref())
            } else {
                None
            };
            drill_interval.push(
                label(),
                drill_schedule.map_or(0.0, |s| s.interval(now).as_secs_f64()),
            );
            for copy in &job.copies {
                let record = store
                    .copy(&job.name, &copy.name)
                    .map_err(collect::Error::Store)?;
                let labels = || {
                    [
                        ("backup", job.name.clone()),
                        ("destination", copy.name.clone()),
                    ]
                };
                copy_success.push(labels(), record.last_success);
                copy_failure.push(labels(), record.last_failure);
                copy_failures.push(labels(), record.failures as f64);
                copy_size.push(labels(), record.last_bytes as f64);
                copy_duration.push(labels(), record.last_duration);
            }
        }
        Ok(vec![
            success,
            failure,
            duration,
            size,
            verified,
            drill,
            drill_failure,
            runs,
            count,
            corrupt,
            verify_failures,
            running,
            interval,
            drill_interval,
            copy_success,
            copy_failure,
            copy_failures,
            copy_size,
            copy_duration,
        ])
    }
}
