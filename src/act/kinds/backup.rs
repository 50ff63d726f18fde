//! `backup: JOB`: runs a configured backup job through the same path as `warden backup run`
//! (the job's lock, verification, publication, drill and pruning).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use super::{ActionError, JobContext, Kind, Outcome, ParseContext, Registration, RunFuture};
use crate::backup::{BackupError, Progress, Trigger};
use crate::config::Problems;

/// The registration line in [`super::KINDS`].
pub const KIND: Registration = Registration {
    key: "backup",
    parse,
};

/// A backup action: the job's name.
#[derive(Debug)]
pub struct BackupAction {
    job: String,
}

fn parse(
    value: &Value,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let Some(job) = value.as_str() else {
        problems.push(path, "must be the name of a backup job");
        return None;
    };
    if !context.backups.iter().any(|b| b.name == job) {
        problems.push(path, format!("`{job}` names no configured backup job"));
        return None;
    }
    Some(Arc::new(BackupAction {
        job: job.to_owned(),
    }))
}

impl Kind for BackupAction {
    fn key(&self) -> &'static str {
        KIND.key
    }

    fn plan(&self, _labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        Ok(format!("run backup job {}", self.job))
    }

    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a> {
        Box::pin(async move {
            let Some(backups) = context.backups else {
                return Err(ActionError::Refused(
                    "the backup jobs are not available in this process".to_owned(),
                ));
            };
            let result = backups
                .run(
                    &self.job,
                    Trigger::Alert,
                    &context.cancel,
                    Arc::new(Progress::default()),
                )
                .await;
            match result {
                Ok(manifest) => Ok(Outcome {
                    summary: format!(
                        "backup {} of job {} verified and published ({} bytes)",
                        manifest.id, self.job, manifest.size_bytes
                    ),
                    ..Outcome::default()
                }),
                Err(BackupError::Cancelled) => Err(ActionError::Cancelled),
                Err(err) => Err(ActionError::failed(format!("backup job {}", self.job), err)),
            }
        })
    }
}
