//! Offsite copies of a job's backups: copying a new backup (its missing parents first) to each
//! of the job's `copies`, and listing, verifying, drilling and restoring from one.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::check::{check_checksum, check_kind, drill_check, verification_outcome};
use super::destination::Destination;
use super::manifest::{self, Manifest};
use super::s3::S3;
use super::{
    BackupError, Backups, Context, RestoreSummary, VerifyOutcome, chain_of, links, plan_retention,
    publish, unix,
};
use crate::config::{BackupConfig, CopyConfig};

impl Backups {
    /// Copies the verified backup of `manifest` to `copy`: streamed up, read back and compared
    /// with the manifest's SHA-256, the manifest put last; then prunes there by the copy's own
    /// retention. A failure is logged and counted (`warden_backup_copy_*`); the backup on the
    /// host stands either way.
    pub(super) fn copy_blocking(
        &self,
        context: &Context<'_>,
        copy: &CopyConfig,
        manifest: &Manifest,
    ) {
        let job = context.job;
        let started = std::time::Instant::now();
        let mut timings = (Duration::ZERO, Duration::ZERO);
        let result = (|| -> Result<u64, BackupError> {
            let s3 = S3::open(copy, context.runtime.clone())?;
            let removed = s3.remove_leftovers(job.kind.extensions());
            if !removed.is_empty() {
                tracing::warn!(job = %job.name, destination = %copy.name, objects = ?removed, "Removed what interrupted copies left behind.");
            }
            // An incremental backup's copy is only restorable with its parents there: those
            // the destination lacks (an earlier copy failed) go first, oldest first.
            let there = s3.read(&job.name, job.kind.extensions())?;
            let local = self.refresh_catalog(job)?;
            let chain = manifest::chain(&local, manifest).unwrap_or_else(|_| vec![manifest]);
            let mut sent = 0;
            for link in chain {
                if link.id != manifest.id && there.manifests.iter().any(|m| m.id == link.id) {
                    continue;
                }
                let upload = std::time::Instant::now();
                sent += s3.upload(&context.local.file(link), &link.file, context.cancel)?;
                timings.0 += upload.elapsed();
                let read_back = std::time::Instant::now();
                let (sha256, size) = s3.hash(&link.file, context.cancel)?;
                timings.1 += read_back.elapsed();
                let place = format!("the copy in {}", s3.location());
                if let Err(err) = check_checksum(link, &sha256, size, &place) {
                    let _ = s3.remove(&link.file);
                    return Err(err);
                }
                s3.write_manifest(link)?;
            }
            let held = s3.read(&job.name, job.kind.extensions())?;
            for problem in &held.problems {
                tracing::warn!(job = %job.name, destination = %copy.name, problem = %problem, "Skipping a manifest.");
            }
            let decisions = plan_retention(&held.manifests, &copy.retention, job.kind.as_ref());
            let doomed: Vec<&Manifest> = decisions
                .iter()
                .filter(|d| !d.keep)
                .filter_map(|d| held.manifests.iter().find(|m| m.id == d.id))
                .collect();
            s3.delete(&doomed)?;
            if !doomed.is_empty() {
                let ids: Vec<&str> = doomed.iter().map(|m| m.id.as_str()).collect();
                tracing::info!(job = %job.name, destination = %copy.name, removed = ?ids, "Pruned copies outside the retention policy.");
            }
            Ok(sent)
        })()
        // A timeout is a failed copy; a shutdown is not counted.
        .map_err(|err| context.explain(err));
        let bytes = match &result {
            Ok(sent) => {
                tracing::info!(
                    job = %job.name,
                    destination = %copy.name,
                    id = %manifest.id,
                    bytes = sent,
                    upload_seconds = format!("{:.3}", timings.0.as_secs_f64()),
                    read_back_seconds = format!("{:.3}", timings.1.as_secs_f64()),
                    "Copy stored and read back."
                );
                Some(*sent)
            }
            Err(BackupError::Cancelled) => return,
            Err(err) => {
                tracing::error!(job = %job.name, destination = %copy.name, id = %manifest.id, error = %crate::collect::ErrorChain(err), "Copy failed; the backup on the host stands.");
                None
            }
        };
        if let Err(err) = self.store.record_copy(
            &job.name,
            &copy.name,
            unix(Utc::now()),
            bytes,
            started.elapsed(),
        ) {
            tracing::error!(job = %job.name, error = %crate::collect::ErrorChain(&err), "Cannot record the copy.");
        }
    }

    pub(super) fn copy_config<'j>(
        &self,
        job: &'j BackupConfig,
        destination: &str,
    ) -> Result<&'j CopyConfig, BackupError> {
        job.copies
            .iter()
            .find(|c| c.name == destination)
            .ok_or_else(|| BackupError::UnknownDestination {
                job: job.name.clone(),
                destination: destination.to_owned(),
            })
    }

    /// Restores from the copy destination `copy`: the copy (`id`, else the newest verified) is
    /// downloaded into the job's directory, its SHA-256 compared with its manifest's and the
    /// kind's check run on it, then restored as a local backup would be. The job's directory
    /// may be gone (a lost disk): it is created again.
    pub(super) fn restore_copy(
        &self,
        context: &Context<'_>,
        copy: &CopyConfig,
        id: Option<&str>,
        target: &str,
        force: bool,
    ) -> Result<RestoreSummary, BackupError> {
        let job = context.job;
        let s3 = S3::open(copy, context.runtime.clone())?;
        let held = s3.read(&job.name, job.kind.extensions())?;
        let manifest = self.pick(job, &held.manifests, id)?;
        if !manifest.is_verified() {
            return Err(BackupError::NotVerified(format!(
                "the copy of backup {} failed its last verification; pick another",
                manifest.id
            )));
        }
        let chain = chain_of(&held.manifests, manifest)?;
        let (downloads, mut steps) = fetch_chain(context, &s3, &chain)?;
        let links = links(&chain, &downloads);
        let mut summary = job.kind.restore(&links, target, force, context)?;
        steps.append(&mut summary.steps);
        summary.steps = steps;
        summary.id = manifest.id.clone();
        Ok(summary)
    }

    /// A restore drill of a copy in `copy` (`id`, else the newest verified): downloaded into the
    /// job's directory, its SHA-256 and the kind's check, then drilled as a local backup
    /// would be; the result goes into the copy's manifest there.
    pub(super) fn drill_copy(
        &self,
        context: &Context<'_>,
        copy: &CopyConfig,
        id: Option<&str>,
    ) -> Result<Manifest, BackupError> {
        let job = context.job;
        let s3 = S3::open(copy, context.runtime.clone())?;
        let held = s3.read(&job.name, job.kind.extensions())?;
        let mut manifest = self.pick(job, &held.manifests, id)?.clone();
        let result = chain_of(&held.manifests, &manifest)
            .and_then(|chain| {
                let (downloads, _) = fetch_chain(context, &s3, &chain)?;
                job.kind.drill(&links(&chain, &downloads), context)
            })
            .map(|detail| format!("from {}: {detail}", s3.location()))
            .map_err(|err| context.explain(err));
        let (check, outcome) = drill_check(result)?;
        manifest.restore_test = Some(check);
        s3.write_manifest(&manifest)?;
        outcome.map(|()| manifest)
    }

    /// The backups of `job` held in its copy destination `destination`, newest first, read
    /// from the bucket.
    ///
    /// # Errors
    /// When the job or destination is unknown, or the bucket cannot be listed.
    pub async fn list_copies(
        self: &Arc<Self>,
        job: &str,
        destination: &str,
    ) -> Result<Vec<Manifest>, BackupError> {
        let config = self.job(job)?.clone();
        let copy = self.copy_config(&config, destination)?.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let s3 = S3::open(&copy, runtime)?;
            let scan = s3.read(&config.name, config.kind.extensions())?;
            for problem in &scan.problems {
                tracing::warn!(job = %config.name, destination = %copy.name, problem = %problem, "Skipping a manifest.");
            }
            Ok(scan.manifests)
        })
        .await
        .map_err(BackupError::Worker)?
    }

    /// Verifies the copies of `job` in `destination` again by reading each back and comparing
    /// its SHA-256 with its manifest (the bytes the host verified): `id`, or all. Each copy's
    /// manifest there records the result.
    ///
    /// # Errors
    /// When the job is busy or unknown, the destination or id is unknown, or the bucket
    /// cannot be read.
    pub async fn verify_copies(
        self: &Arc<Self>,
        job: &str,
        destination: &str,
        id: Option<String>,
        cancel: &CancellationToken,
    ) -> Result<Vec<VerifyOutcome>, BackupError> {
        let destination = destination.to_owned();
        self.operate(job, cancel, Arc::default(), move |backups, context| {
            let job = context.job;
            let copy = backups.copy_config(job, &destination)?;
            let s3 = S3::open(copy, context.runtime.clone())?;
            let held = s3.read(&job.name, job.kind.extensions())?;
            // One copy is verified with the chain it needs there, its full first.
            let chosen: Vec<Manifest> = match id.as_deref() {
                Some(id) => {
                    let picked = backups.pick(job, &held.manifests, Some(id))?;
                    match manifest::chain(&held.manifests, picked) {
                        Ok(chain) => chain.into_iter().cloned().collect(),
                        Err(_) => vec![picked.clone()],
                    }
                }
                None => held.manifests.clone(),
            };
            let mut outcomes = Vec::new();
            for mut manifest in chosen {
                context.check()?;
                let place = format!("the copy in {}", s3.location());
                let result = s3.hash(&manifest.file, context.cancel).and_then(|(sha256, size)| {
                    let line = check_checksum(&manifest, &sha256, size, &place)?;
                    let mut checks = vec![format!("{line} in {}", s3.location())];
                    if manifest.parent.is_some() {
                        let chain = chain_of(&held.manifests, &manifest)?;
                        checks.push(format!(
                            "chain complete there: the full {} and {} incrementals",
                            chain[0].id,
                            chain.len() - 1
                        ));
                    }
                    Ok(checks)
                });
                let outcome = verification_outcome(&mut manifest, result)?;
                if let Some(message) = &outcome.error {
                    tracing::error!(job = %job.name, destination = %copy.name, id = %manifest.id, error = %message, "Stored copy failed verification.");
                }
                s3.write_manifest(&manifest)?;
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })
        .await
    }
}

/// Downloads and checks every backup of `chain` from `s3` ([`fetch_copy`]); returns the
/// downloads (removed when dropped) and the checks passed.
fn fetch_chain(
    context: &Context<'_>,
    s3: &S3,
    chain: &[&Manifest],
) -> Result<(Vec<publish::Staged>, Vec<String>), BackupError> {
    let mut downloads = Vec::new();
    let mut steps = Vec::new();
    for link in chain {
        let (download, checks) = fetch_copy(context, s3, link)?;
        downloads.push(download);
        steps.extend(checks.into_iter().map(|line| match chain.len() {
            1 => line,
            _ => format!("{}: {line}", link.id),
        }));
    }
    Ok((downloads, steps))
}

/// Downloads the copy of `manifest` from `s3` into the job's directory and checks it, the
/// checksum first and then the kind's check, as [`check_stored`] does on the host. Returns
/// the download (removed when dropped) and the checks passed.
fn fetch_copy(
    context: &Context<'_>,
    s3: &S3,
    manifest: &Manifest,
) -> Result<(publish::Staged, Vec<String>), BackupError> {
    let (download, sha256, size) =
        s3.download(&manifest.file, context.local.dir(), context.cancel)?;
    let place = format!("the copy in {}", s3.location());
    let line = check_checksum(manifest, &sha256, size, &place)?;
    let mut checks = vec![format!("downloaded from {}: {line}", s3.location())];
    checks.extend(check_kind(context, manifest, download.path())?);
    Ok((download, checks))
}
