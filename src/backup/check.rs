//! Checking backups: a stored backup against its manifest (checksum first, then the kind's
//! check), a new one (both side by side), and how a verification's or a drill's result is
//! recorded.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::manifest::{Check, Manifest, Verification, format_time};
use super::{BackupError, Context, Expected, VerifyOutcome, publish};

/// Checks a published backup against its manifest: the checksum first, then the kind's check.
/// One after the other, not side by side as for a new backup: a stored file may have been
/// replaced, and the kind's check parses it (an archive's headers, a database's pages), which
/// only a file known to be the one warden wrote is safe to feed.
pub(super) fn check_stored(
    context: &Context<'_>,
    manifest: &Manifest,
) -> Result<Vec<String>, BackupError> {
    let path = context.local.file(manifest);
    let cancel = context.cancel;
    let (sha256, size) = publish::sha256_file(&path, &|| cancel.is_cancelled())
        .map_err(BackupError::io("read", &path))?;
    let mut checks = vec![check_checksum(manifest, &sha256, size, "the file")?];
    checks.extend(check_kind(context, manifest, &path)?);
    Ok(checks)
}

/// Checks every backup of `chain` on the host ([`check_stored`]); returns their files.
pub(super) fn check_chain(
    context: &Context<'_>,
    chain: &[&Manifest],
) -> Result<Vec<PathBuf>, BackupError> {
    chain
        .iter()
        .map(|link| {
            check_stored(context, link)?;
            Ok(context.local.file(link))
        })
        .collect()
}

/// Whether bytes with `sha256` and `size` are the ones `manifest` records; `place` names
/// where they were read (`the file`, `the copy in s3://…`). Returns the check's line.
pub(super) fn check_checksum(
    manifest: &Manifest,
    sha256: &str,
    size: u64,
    place: &str,
) -> Result<String, BackupError> {
    if sha256 != manifest.sha256 || size != manifest.size_bytes {
        return Err(BackupError::NotVerified(format!(
            "checksum mismatch: the manifest records SHA-256 {} over {} bytes, {place} has {sha256} over {size}",
            manifest.sha256, manifest.size_bytes
        )));
    }
    Ok(format!("sha256 {sha256} over {size} bytes"))
}

/// Writes a verification's result into `manifest` and says it as an outcome. Only a failed
/// check marks a backup failed (retention then treats it as not a backup); anything else (a
/// tool missing, an I/O error, cancellation) says nothing about the backup and is returned,
/// with the manifest as it was.
pub(super) fn verification_outcome(
    manifest: &mut Manifest,
    result: Result<Vec<String>, BackupError>,
) -> Result<VerifyOutcome, BackupError> {
    let (checks, error) = match result {
        Ok(checks) => (checks, None),
        Err(err) if !err.is_verification_failure() => return Err(err),
        Err(err) => (
            Vec::new(),
            Some(crate::collect::ErrorChain(&err).to_string()),
        ),
    };
    manifest.verification = Verification {
        ok: error.is_none(),
        checked_at: format_time(Utc::now()),
        checks: checks.clone(),
        error: error.clone(),
    };
    Ok(VerifyOutcome {
        id: manifest.id.clone(),
        ok: error.is_none(),
        checks,
        error,
    })
}

/// A finished drill's result as its manifest records it, and the drill's own result. A drill
/// that could not run (not [`BackupError::is_drill_finding`], cancellation included) has
/// nothing to record and is returned as the error.
pub(super) fn drill_check(
    result: Result<String, BackupError>,
) -> Result<(Check, Result<(), BackupError>), BackupError> {
    match result {
        Ok(detail) => Ok((
            Check {
                ok: true,
                at: format_time(Utc::now()),
                detail,
            },
            Ok(()),
        )),
        Err(err) if !err.is_drill_finding() => Err(err),
        Err(err) => Ok((
            Check {
                ok: false,
                at: format_time(Utc::now()),
                detail: crate::collect::ErrorChain(&err).to_string(),
            },
            Err(err),
        )),
    }
}

/// The kind's check of the file at `path`, which holds the bytes `manifest` describes.
pub(super) fn check_kind(
    context: &Context<'_>,
    manifest: &Manifest,
    path: &Path,
) -> Result<Vec<String>, BackupError> {
    let recorded: Vec<String> = manifest.tables.keys().cloned().collect();
    let expected = Expected {
        required_tables: &recorded,
        files: manifest.files.as_ref(),
        compression: manifest.compression.as_deref(),
    };
    context.job.kind.verify(path, &expected, context)
}

/// A file's hex SHA-256 and size, or why it could not be read.
type Hashed = std::io::Result<(String, u64)>;

/// The SHA-256 of a new backup at `path` and the kind's check of it, run side by side: both
/// only read the file the run just wrote, and one after the other they would double the
/// verification's wall time (a 1 GiB SQLite copy needs a hash pass and an integrity check
/// pass).
pub(super) fn hash_and_check(
    path: &Path,
    expected: &Expected<'_>,
    context: &Context<'_>,
) -> (Hashed, Result<Vec<String>, BackupError>) {
    std::thread::scope(|scope| {
        let cancel = context.cancel;
        let hasher = scope.spawn(move || publish::sha256_file(path, &|| cancel.is_cancelled()));
        let checks = context.job.kind.verify(path, expected, context);
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the hashing thread panicked")));
        (hashed, checks)
    })
}
