//! Backup kinds: what a job backs up, and how.
//!
//! A kind is one file plus one line in [`KINDS`]. The file owns everything about the kind:
//! which of a job's keys it takes and how they parse ([`Registration`]), how a backup is
//! produced, what its own check of a backup file is, how a restore drill and a restore go, and
//! the extensions of the files it writes. What every kind shares (staging, hashing, the
//! manifest, publishing, locking, retention, the catalog, timeouts and cancellation) is
//! [`super::Backups`]'s, so a kind never deals with them.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifest::Manifest;
use super::{BackupError, Context, Expected, Produced, RestoreSummary, files, postgres, sqlite};
use crate::config::{IncrementalConfig, Problems, RawBackup, Sources, Target};

/// Every kind, by the `kind` value that selects it.
pub(crate) const KINDS: &[Registration] = &[postgres::KIND, sqlite::KIND, files::KIND];

/// One kind's entry in [`KINDS`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registration {
    /// The `kind` value (`postgres`, `sqlite`, `files`); also the manifest's.
    pub name: &'static str,
    /// The kind-specific keys of a job ([`KEYS`]) this kind takes; a job that sets another is
    /// refused, with the kinds that take it named.
    pub keys: &'static [&'static str],
    /// Parses a job's kind-specific keys; `path` is the job's key path (`backups[2]`). Records
    /// every problem and returns `None` when there was one that leaves no kind to build.
    pub parse: ParseFn,
}

/// A kind's parser: the job's raw keys, its key path, what it may refer to, and where
/// problems go.
pub(crate) type ParseFn =
    fn(&RawBackup, &str, &ParseContext<'_>, &mut Problems) -> Option<Arc<dyn Kind>>;

/// What a kind's configuration may refer to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ParseContext<'a> {
    /// The directory relative paths are read from (the config file's).
    pub base: &'a Path,
    /// The configured PostgreSQL and SQLite sources (`source: postgres/main`).
    pub sources: &'a Sources,
}

/// Whether a job's raw keys set one key.
type IsSet = fn(&RawBackup) -> bool;

/// The keys of a job that belong to some kinds only, and whether `raw` sets each.
pub(crate) const KEYS: &[(&str, IsSet)] = &[
    ("source", |raw| raw.source.is_some()),
    ("paths", |raw| !raw.paths.is_empty()),
    ("include", |raw| !raw.include.is_empty()),
    ("exclude", |raw| !raw.exclude.is_empty()),
    ("compression", |raw| raw.compression.is_some()),
    ("level", |raw| raw.level.is_some()),
    ("incremental", |raw| raw.incremental.is_some()),
    ("verify.required_tables", |raw| {
        !raw.verify.required_tables.is_empty()
    }),
    ("verify.integrity_check", |raw| {
        raw.verify.integrity_check.is_some()
    }),
];

/// Parses a job's `kind` and its kind-specific keys. A key the kind does not take is a problem
/// naming the kinds that do.
pub(crate) fn parse(
    raw: &RawBackup,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let Some(registration) = KINDS.iter().find(|k| k.name == raw.kind) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        problems.push(
            format!("{path}.kind"),
            format!("`{}` is not one of: {}", raw.kind, names.join(", ")),
        );
        return None;
    };
    for (key, set) in KEYS {
        if set(raw) && !registration.keys.contains(key) {
            let takers: Vec<&str> = KINDS
                .iter()
                .filter(|k| k.keys.contains(key))
                .map(|k| k.name)
                .collect();
            problems.push(
                format!("{path}.{key}"),
                format!(
                    "is for kind {}, not {}",
                    takers.join(" and "),
                    registration.name
                ),
            );
        }
    }
    (registration.parse)(raw, path, context, problems)
}

/// The entry of `entries` that a database kind's `source: KIND/NAME` names.
pub(crate) fn source<'a, T>(
    raw: &RawBackup,
    path: &str,
    kind: &str,
    entries: &'a [T],
    name: impl Fn(&T) -> &str,
    problems: &mut Problems,
) -> Option<&'a T> {
    let Some(text) = raw.source.as_deref() else {
        problems.push(
            format!("{path}.source"),
            format!("missing: name the {kind} entry to back up, as {kind}/NAME"),
        );
        return None;
    };
    let Some(wanted) = text
        .strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        problems.push(
            format!("{path}.source"),
            format!("`{text}` is not a {kind} target such as {kind}/NAME"),
        );
        return None;
    };
    let found = entries.iter().find(|entry| name(entry) == wanted);
    if found.is_none() {
        problems.push(
            format!("{path}.source"),
            format!("`{text}` names no configured {kind} entry"),
        );
    }
    found
}

/// One backup of the chain a restore or drill applies: its manifest and its (already
/// checksummed) file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link<'a> {
    pub manifest: &'a Manifest,
    pub path: &'a Path,
}

/// The one backup of a chain, for a kind without incrementals.
pub(crate) fn single<'a>(chain: &[Link<'a>]) -> Result<Link<'a>, BackupError> {
    match chain {
        [link] => Ok(*link),
        [.., tip] => Err(BackupError::BrokenChain(format!(
            "backup {} names a parent, but its kind makes no incremental backups",
            tip.manifest.id
        ))),
        [] => Err(BackupError::BrokenChain("no backup given".to_owned())),
    }
}

/// One kind of backup, configured for one job. Every method but the accessors runs on the
/// operation's blocking thread, under the job's lock, with the job's timeout and cancellation
/// in `context` (check [`Context::check`] or `context.cancel` between steps; return
/// [`BackupError::Cancelled`] when it fires).
pub(crate) trait Kind: Debug + Send + Sync {
    /// The `kind` value (the registration's name).
    fn name(&self) -> &'static str;

    /// Every extension a backup file of this kind may have (without the dot). The manifest
    /// scan accepts only files named `ID.EXTENSION`, and leftover cleanup removes only those.
    fn extensions(&self) -> &'static [&'static str];

    /// The configured source the job backs up, if it is one (`postgres/main`).
    fn source(&self) -> Option<Target>;

    /// The files and directories the job reads; none may hold a backup destination.
    fn reads(&self) -> &[PathBuf];

    /// Writes a new backup into a staged file in the job's destination, with what its
    /// manifest records (tool, source, row or file counts). `held` is what the destination
    /// holds, newest first (an incremental backup's parent is among them).
    fn produce(&self, context: &Context<'_>, held: &[Manifest]) -> Result<Produced, BackupError>;

    /// How the job makes incremental backups, for a kind that does; retention keeps their
    /// parents.
    fn incremental(&self) -> Option<&IncrementalConfig> {
        None
    }

    /// The kind's own check of a backup file, beyond the checksum: one line per check passed,
    /// or [`BackupError::NotVerified`] for a backup found wanting. Any other error means the
    /// check could not be made.
    fn verify(
        &self,
        path: &Path,
        expected: &Expected<'_>,
        context: &Context<'_>,
    ) -> Result<Vec<String>, BackupError>;

    /// Restores the backup at the end of `chain` (its full first, then each incremental;
    /// one backup for a kind without incrementals) into a scratch place, compares it with its
    /// manifest, removes the scratch copy, and describes what matched.
    fn drill(&self, chain: &[Link<'_>], context: &Context<'_>) -> Result<String, BackupError>;

    /// Restores the backup at the end of `chain` into `target`. A target holding data is
    /// refused unless `force` (where the kind can keep a safety copy).
    fn restore(
        &self,
        chain: &[Link<'_>],
        target: &str,
        force: bool,
        context: &Context<'_>,
    ) -> Result<RestoreSummary, BackupError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_keys_known() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert!(
                KINDS[..i].iter().all(|k| k.name != kind.name),
                "{} registered twice",
                kind.name
            );
            for key in kind.keys {
                assert!(
                    KEYS.iter().any(|(k, _)| k == key),
                    "{}: `{key}` is not in KEYS",
                    kind.name
                );
            }
        }
    }
}
