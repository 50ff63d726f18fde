//! The JSON manifest written beside each backup, and reading a destination's manifests back.
//!
//! A backup is `ID.EXT`; its manifest is `ID.manifest.json`, written after the backup has been
//! verified and published. A backup without a manifest was never completed and is never
//! listed. The manifests are the source of truth: the catalog in the state store is rebuilt
//! from them, so losing the state directory loses no backup history.

use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::publish::{TEMP_PREFIX, write_atomic};

/// The manifest format this warden writes.
pub const FORMAT: u32 = 1;
/// The suffix of manifest files.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What is recorded about one completed backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format version.
    pub format: u32,
    /// The backup's id: its start time (UTC) and a random suffix.
    pub id: String,
    /// The job that made it.
    pub job: String,
    /// `postgres`, `sqlite` or `files`.
    pub kind: String,
    /// The backup file's name in the destination.
    pub file: String,
    /// When the run started (RFC 3339, UTC).
    pub started_at: String,
    /// When the backup was complete and verified (RFC 3339, UTC); retention orders by this.
    pub finished_at: String,
    /// How long the run took, verification included.
    pub duration_seconds: f64,
    /// The backup file's size.
    pub size_bytes: u64,
    /// The backup file's SHA-256, in hex.
    pub sha256: String,
    /// The tool that made it, with its version.
    pub tool: String,
    /// The database server's version, for the database kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// What was backed up (no secrets).
    pub source: String,
    /// Row counts of the key tables (database kinds), taken from the backup's own snapshot.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, u64>,
    /// What a `files` archive holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<FileCounts>,
    /// The compression of a `files` archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// The backup an incremental `files` backup holds the changes since (its id); none for a
    /// full one. Restoring it applies the chain from its full up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// What the whole tree held at this backup, which restoring its chain gives (incremental
    /// `files` jobs; for a full it is `files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<FileCounts>,
    /// The last verification's result.
    pub verification: Verification,
    /// The last restore drill's result, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_test: Option<Check>,
    /// The warden version that wrote the backup.
    pub warden_version: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The counts of a `files` archive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCounts {
    /// Regular files.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links (recorded, not followed).
    pub symlinks: u64,
    /// Bytes of regular file content.
    pub bytes: u64,
    /// Paths an incremental archive records as deleted since its parent.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: u64,
}

/// The result of verifying a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether every check passed.
    pub ok: bool,
    /// When it was checked (RFC 3339, UTC).
    pub checked_at: String,
    /// The checks that passed, in order.
    pub checks: Vec<String>,
    /// What failed, if something did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of a restore drill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// Whether it passed.
    pub ok: bool,
    /// When it ran (RFC 3339, UTC).
    pub at: String,
    /// What it compared, or what failed.
    pub detail: String,
}

impl Manifest {
    /// When the backup finished; the Unix epoch if the manifest's time does not parse.
    pub fn finished(&self) -> DateTime<Utc> {
        parse_time(&self.finished_at).unwrap_or_default()
    }

    /// Whether the backup is currently verified good.
    pub fn is_verified(&self) -> bool {
        self.verification.ok
    }

    /// When the last passing restore drill ran, if one did.
    pub fn restore_tested(&self) -> Option<DateTime<Utc>> {
        self.restore_test
            .as_ref()
            .filter(|check| check.ok)
            .and_then(|check| parse_time(&check.at))
    }

    /// The manifest's path in `destination`.
    pub fn path_in(&self, destination: &Path) -> PathBuf {
        destination.join(self.name())
    }

    /// Writes the manifest atomically into `destination`.
    ///
    /// # Errors
    /// The I/O error of writing it.
    pub fn write(&self, destination: &Path) -> std::io::Result<()> {
        write_atomic(&self.path_in(destination), &self.to_json()?)
    }

    /// The manifest's own name: `ID.manifest.json`.
    pub fn name(&self) -> String {
        format!("{}{MANIFEST_SUFFIX}", self.id)
    }

    /// The manifest as it is stored: pretty JSON with a final newline.
    ///
    /// # Errors
    /// When it cannot be encoded (never, for the types it holds).
    pub fn to_json(&self) -> std::io::Result<Vec<u8>> {
        let mut json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        json.push(b'\n');
        Ok(json)
    }
}

/// The chain restoring `tip` applies, its full first: `tip`'s parent, that one's parent, and
/// so on, found in `manifests`. A parent that is missing or failed its last verification
/// breaks the chain; the message says which.
///
/// # Errors
/// The chain is broken, or its parents form a loop.
pub fn chain<'m>(
    manifests: &'m [Manifest],
    tip: &'m Manifest,
) -> Result<Vec<&'m Manifest>, String> {
    let mut chain = vec![tip];
    let mut at = tip;
    while let Some(parent) = &at.parent {
        if chain.len() > manifests.len() {
            return Err(format!("the parents of backup {} form a loop", tip.id));
        }
        let Some(found) = manifests.iter().find(|m| m.id == *parent) else {
            return Err(format!("backup {}'s parent {parent} is missing", at.id));
        };
        if !found.is_verified() {
            return Err(format!(
                "backup {}'s parent {parent} failed its last verification",
                at.id
            ));
        }
        chain.push(found);
        at = found;
    }
    chain.reverse();
    Ok(chain)
}

/// A time as written in manifests: RFC 3339, UTC, milliseconds.
pub fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses a manifest time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A new backup id for a run starting at `started`: `YYYYMMDDTHHMMSSZ-xxxx`, sortable by
/// time, with a random suffix so two runs in one second do not collide.
pub fn new_id(started: DateTime<Utc>) -> String {
    let random = std::collections::hash_map::RandomState::new()
        .hash_one((started.timestamp_nanos_opt(), std::process::id()));
    format!(
        "{}-{:04x}",
        started.format("%Y%m%dT%H%M%SZ"),
        random & 0xffff
    )
}

/// Whether `id` has the shape [`new_id`] produces; ids from the command line must, so they
/// cannot name paths.
pub fn is_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() == 21
        && bytes[..8].iter().all(u8::is_ascii_digit)
        && bytes[8] == b'T'
        && bytes[9..15].iter().all(u8::is_ascii_digit)
        && bytes[15] == b'Z'
        && bytes[16] == b'-'
        && bytes[17..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// What a destination holds: its complete backups, and what could not be read.
#[derive(Debug, Default)]
pub struct Scan {
    /// Complete backups (manifest and file present), newest first.
    pub manifests: Vec<Manifest>,
    /// Manifests that could not be used, with why.
    pub problems: Vec<String>,
}

/// Reads every manifest of `job` in `destination`, whose backup files have one of
/// `extensions` (its kind's). A missing directory holds no backups.
pub fn scan(destination: &Path, job: &str, extensions: &[&str]) -> Scan {
    let mut scan = Scan::default();
    let entries = match std::fs::read_dir(destination) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return scan,
        Err(err) => {
            scan.problems
                .push(format!("cannot read {}: {err}", destination.display()));
            return scan;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) || !name.ends_with(MANIFEST_SUFFIX) {
            continue;
        }
        let path = entry.path();
        let manifest: Manifest = match std::fs::read(&path)
            .map_err(|err| err.to_string())
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| err.to_string()))
        {
            Ok(manifest) => manifest,
            Err(err) => {
                scan.problems
                    .push(format!("{}: unreadable manifest: {err}", path.display()));
                continue;
            }
        };
        if let Err(problem) = check(&manifest, &name, job, extensions) {
            scan.problems.push(format!("{}: {problem}", path.display()));
            continue;
        }
        if !destination.join(&manifest.file).is_file() {
            scan.problems.push(format!(
                "{}: its backup file `{}` is missing",
                path.display(),
                manifest.file
            ));
            continue;
        }
        scan.manifests.push(manifest);
    }
    sort(&mut scan.manifests);
    scan
}

/// Whether the manifest stored as `name` belongs to `job` and names a file of its own (`ID.EXT`
/// with one of the kind's `extensions`): a planted manifest must not make prune delete
/// someone else's file. Says why not.
pub fn check(
    manifest: &Manifest,
    name: &str,
    job: &str,
    extensions: &[&str],
) -> Result<(), String> {
    if manifest.job != job || !is_id(&manifest.id) || name != manifest.name() {
        return Err(format!(
            "manifest of job `{}`, id `{}`, does not belong here",
            manifest.job, manifest.id
        ));
    }
    let named = extensions
        .iter()
        .any(|ext| manifest.file == format!("{}.{ext}", manifest.id));
    if !named {
        return Err(format!(
            "names the file `{}`, not one of its own",
            manifest.file
        ));
    }
    Ok(())
}

/// Whether `name` is a backup file warden named (`ID.EXTENSION`, with one of the kind's
/// `extensions`) whose manifest is missing (`has` says whether a name is present where it
/// lies): what an interrupted run or copy leaves.
pub fn is_orphan(name: &str, extensions: &[&str], has: impl Fn(&str) -> bool) -> bool {
    extensions.iter().any(|ext| {
        name.strip_suffix(&format!(".{ext}"))
            .is_some_and(|id| is_id(id) && !has(&format!("{id}{MANIFEST_SUFFIX}")))
    })
}

/// Orders manifests newest first by their recorded finish time, then id.
pub fn sort(manifests: &mut [Manifest]) {
    manifests.sort_by(|a, b| b.finished().cmp(&a.finished()).then(b.id.cmp(&a.id)));
}

/// Removes what interrupted runs left in `destination`: temporary files, and backup files
/// warden named (`ID.EXTENSION`, with one of the job's kind's `extensions`) but never
/// completed with a manifest. Only call it holding the job's lock. Returns the removed names.
pub fn remove_leftovers(destination: &Path, extensions: &[&str]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(destination) else {
        return Vec::new();
    };
    let entries: Vec<(String, bool)> = entries
        .flatten()
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect();
    let names: Vec<&String> = entries.iter().map(|(name, _)| name).collect();
    let mut removed = Vec::new();
    for (name, is_dir) in &entries {
        let orphan = !is_dir && is_orphan(name, extensions, |m| names.iter().any(|n| *n == m));
        if !name.starts_with(TEMP_PREFIX) && !orphan {
            continue;
        }
        let path = destination.join(name);
        // Scratch directories of interrupted drills are temporary too.
        let gone = if *is_dir {
            super::publish::remove_tree(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(name.clone());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(job: &str, id: &str, finished: &str) -> Manifest {
        Manifest {
            format: FORMAT,
            id: id.to_owned(),
            job: job.to_owned(),
            kind: "files".to_owned(),
            file: format!("{id}.tar.zst"),
            started_at: finished.to_owned(),
            finished_at: finished.to_owned(),
            duration_seconds: 1.0,
            size_bytes: 3,
            sha256: "00".to_owned(),
            tool: "test".to_owned(),
            server_version: None,
            source: "test".to_owned(),
            tables: BTreeMap::new(),
            files: None,
            compression: Some("zstd".to_owned()),
            parent: None,
            tree: None,
            verification: Verification {
                ok: true,
                checked_at: finished.to_owned(),
                checks: vec!["sha256".to_owned()],
                error: None,
            },
            restore_test: None,
            warden_version: "test".to_owned(),
        }
    }

    #[test]
    fn ids_have_one_shape() {
        let id = new_id(parse_time("2026-12-01T03:00:00Z").unwrap());
        assert!(id.starts_with("20261201T030000Z-"), "{id}");
        assert!(is_id(&id));
        for bad in [
            "",
            "../x",
            "20261201T030000Z-zzzz",
            "20261201T030000Z-abcd/..",
        ] {
            assert!(!is_id(bad), "{bad}");
        }
    }

    #[test]
    fn scan_lists_complete_backups_by_finish_time_and_cleanup_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The older id finished later: order follows the recorded finish time.
        let a = manifest("job", "20261201T030000Z-aaaa", "2026-12-01T05:00:00.000Z");
        let b = manifest("job", "20261201T040000Z-bbbb", "2026-12-01T04:30:00.000Z");
        for m in [&a, &b] {
            std::fs::write(d.join(&m.file), b"abc").unwrap();
            m.write(d).unwrap();
        }
        // Leftovers: a temporary file, and a backup file without a manifest.
        std::fs::write(d.join(".tmp-20261201T050000Z-cccc.tar.zst"), b"x").unwrap();
        std::fs::write(d.join("20261201T050000Z-cccc.tar.zst"), b"x").unwrap();
        // Not warden's: left alone.
        std::fs::write(d.join("notes.txt"), b"x").unwrap();
        // A manifest whose file is gone is reported, not listed.
        let c = manifest("job", "20261201T060000Z-dddd", "2026-12-01T06:00:00.000Z");
        c.write(d).unwrap();
        std::fs::write(d.join("broken.manifest.json"), b"{").unwrap();

        // A file with another kind's extension is not this job's.
        std::fs::write(d.join("20261201T050000Z-eeee.dump"), b"x").unwrap();
        let scan = scan(d, "job", &["tar.zst", "tar.gz"]);
        let ids: Vec<_> = scan.manifests.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, [a.id.as_str(), b.id.as_str()]);
        assert_eq!(scan.problems.len(), 2, "{:?}", scan.problems);

        let mut removed = remove_leftovers(d, &["tar.zst", "tar.gz"]);
        removed.sort();
        assert_eq!(
            removed,
            [
                ".tmp-20261201T050000Z-cccc.tar.zst",
                "20261201T050000Z-cccc.tar.zst"
            ]
        );
        assert!(d.join("notes.txt").exists());
        assert!(d.join("20261201T050000Z-eeee.dump").exists());
        assert!(d.join(&a.file).exists() && d.join(&b.file).exists());
    }
}
