//! `cleanup:` deletes old files under one directory: the runbook's disk clean-up without
//! `find -delete`.
//!
//! ```yaml
//! cleanup:
//!   root: /var/log/app
//!   patterns: ["*.log.*", "**/*.gz"]   # relative to root; `*` stays within one directory
//!   older_than: 7d
//!   keep_newest: 5        # of all matching files, by mtime; default 0
//!   max_files: 1000       # deleted per run; default 1000
//!   dry_run_list: false   # true: list what would go, delete nothing
//! ```
//!
//! Safety (pitfall 16 of the remediation notes; logrotate's rules):
//! - The root is absolute, not `/`, without `..`, and not a symlink (opened `O_NOFOLLOW`).
//! - The walk never follows a symlink and never deletes one; it stays on the root's
//!   filesystem (`st_dev`), and skips files with more than one hard link (deleting one name
//!   frees nothing, and the other name may be outside the root).
//! - Only regular files matching a pattern, older than `older_than`, are deleted, oldest
//!   first, never the `keep_newest` newest matching files, at most `max_files` per run.
//! - Each delete re-opens the path from the root's descriptor one directory at a time with
//!   `O_NOFOLLOW | O_DIRECTORY`, checks the file is still the one found (device and inode),
//!   and unlinks it relative to its directory's descriptor: a directory swapped for a symlink
//!   while the walk ran cannot redirect the delete.
//!
//! The work runs in a blocking task and checks for cancellation between entries.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{ActionError, JobContext, Kind, Outcome, ParseContext, Registration, RunFuture};
use crate::config::Problems;

/// The registration line in [`super::KINDS`].
pub const KIND: Registration = Registration {
    key: "cleanup",
    parse,
};

/// Files deleted per run unless `max_files` says otherwise.
pub const DEFAULT_MAX_FILES: u64 = 1000;

/// The most `max_files` may allow: a bound on one run's work and on its listing.
pub const MAX_FILES: u64 = 100_000;

/// Paths listed in a dry run's output at most.
const LISTED: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCleanup {
    root: String,
    patterns: Vec<String>,
    #[serde(deserialize_with = "crate::config::lenient::required_duration")]
    older_than: String,
    keep_newest: Option<u64>,
    max_files: Option<u64>,
    dry_run_list: Option<bool>,
}

/// A validated `cleanup` action.
#[derive(Debug, Clone)]
pub struct CleanupAction {
    root: PathBuf,
    patterns: Vec<String>,
    globs: GlobSet,
    older_than: Duration,
    keep_newest: usize,
    max_files: usize,
    list_only: bool,
}

fn parse(
    value: &Value,
    path: &str,
    _context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let before = problems.0.len();
    let raw: RawCleanup = super::deserialize(value, path, problems)?;
    let root = PathBuf::from(&raw.root);
    let root_path = format!("{path}.root");
    if !root.is_absolute() {
        problems.push(&root_path, "must be an absolute path");
    } else if root.parent().is_none() {
        problems.push(&root_path, "must not be `/`");
    } else if root
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        problems.push(&root_path, "must not contain `.` or `..`");
    } else if std::fs::symlink_metadata(&root).is_ok_and(|m| m.file_type().is_symlink()) {
        problems.push(&root_path, "is a symlink: name the directory itself");
    }
    if raw.patterns.is_empty() {
        problems.push(format!("{path}.patterns"), "must list at least one glob");
    }
    let mut builder = GlobSetBuilder::new();
    for (i, pattern) in raw.patterns.iter().enumerate() {
        let at = format!("{path}.patterns[{i}]");
        if pattern.starts_with('/') || pattern.split('/').any(|part| part == "..") {
            problems.push(&at, "must be relative to root, without `..`");
            continue;
        }
        match GlobBuilder::new(pattern).literal_separator(true).build() {
            Ok(glob) => {
                builder.add(glob);
            }
            Err(err) => problems.push(&at, format!("not a glob: {err}")),
        }
    }
    let older_than = crate::config::duration(
        Some(raw.older_than),
        "1d",
        &format!("{path}.older_than"),
        problems,
    );
    let max_files = raw.max_files.unwrap_or(DEFAULT_MAX_FILES);
    if !(1..=MAX_FILES).contains(&max_files) {
        problems.push(
            format!("{path}.max_files"),
            format!("must be from 1 to {MAX_FILES}"),
        );
    }
    let globs = builder.build();
    if problems.0.len() > before {
        return None;
    }
    Some(Arc::new(CleanupAction {
        root,
        patterns: raw.patterns,
        globs: globs.ok()?,
        older_than,
        keep_newest: usize::try_from(raw.keep_newest.unwrap_or(0)).unwrap_or(usize::MAX),
        max_files: usize::try_from(max_files).unwrap_or(usize::MAX),
        list_only: raw.dry_run_list.unwrap_or(false),
    }))
}

/// A matching regular file found by the walk.
#[derive(Debug, Clone)]
struct Found {
    /// Relative to the root.
    relative: PathBuf,
    modified: i64,
    size: u64,
    dev: u64,
    ino: u64,
}

/// What a walk and delete did.
#[derive(Debug, Default)]
struct Report {
    matched: usize,
    deleted: Vec<Found>,
    bytes: u64,
    /// Eligible but left for the next run by `max_files`.
    left: usize,
    skipped_symlinks: usize,
    failures: Vec<String>,
}

/// Why a cleanup stopped.
enum Stop {
    Cancelled,
    Root(std::io::Error),
}

fn open_dir(dirfd: impl std::os::fd::AsFd, name: &OsStr) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

impl CleanupAction {
    fn work(&self, cancel: &CancellationToken) -> Result<Report, Stop> {
        let root = rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| Stop::Root(err.into()))?;
        let root_dev = rustix::fs::fstat(&root)
            .map_err(|err| Stop::Root(err.into()))?
            .st_dev;
        let mut report = Report::default();
        let mut matched = Vec::new();
        // Directories still to read: (relative path, descriptor).
        let mut pending: Vec<(PathBuf, OwnedFd)> = vec![(PathBuf::new(), root)];
        while let Some((dir_path, dir)) = pending.pop() {
            let Ok(mut entries) = rustix::fs::Dir::read_from(&dir) else {
                continue;
            };
            while let Some(entry) = entries.read() {
                if cancel.is_cancelled() {
                    return Err(Stop::Cancelled);
                }
                let Ok(entry) = entry else { break };
                let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
                if name == "." || name == ".." {
                    continue;
                }
                let Ok(stat) = rustix::fs::statat(&dir, &name, AtFlags::SYMLINK_NOFOLLOW) else {
                    continue;
                };
                let relative = dir_path.join(&name);
                match FileType::from_raw_mode(stat.st_mode) {
                    FileType::Symlink => report.skipped_symlinks += 1,
                    FileType::Directory if stat.st_dev == root_dev => {
                        if let Ok(sub) = open_dir(&dir, &name) {
                            pending.push((relative, sub));
                        }
                    }
                    FileType::RegularFile
                        if stat.st_dev == root_dev
                            && stat.st_nlink == 1
                            && self.globs.is_match(&relative) =>
                    {
                        matched.push(Found {
                            relative,
                            modified: stat.st_mtime,
                            size: u64::try_from(stat.st_size).unwrap_or(0),
                            dev: stat.st_dev,
                            ino: stat.st_ino,
                        });
                    }
                    _ => {}
                }
            }
        }
        report.matched = matched.len();
        // Newest first: the first `keep_newest` stay whatever their age.
        matched.sort_by(|a, b| {
            b.modified
                .cmp(&a.modified)
                .then(a.relative.cmp(&b.relative))
        });
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let cutoff =
            now.saturating_sub(i64::try_from(self.older_than.as_secs()).unwrap_or(i64::MAX));
        let mut eligible: Vec<Found> = matched
            .into_iter()
            .skip(self.keep_newest)
            .filter(|f| f.modified < cutoff)
            .collect();
        eligible.reverse(); // oldest first
        report.left = eligible.len().saturating_sub(self.max_files);
        eligible.truncate(self.max_files);
        let root = rustix::fs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| Stop::Root(err.into()))?;
        for found in eligible {
            if cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            if self.list_only {
                report.bytes += found.size;
                report.deleted.push(found);
                continue;
            }
            match delete(&root, root_dev, &found) {
                Ok(()) => {
                    report.bytes += found.size;
                    report.deleted.push(found);
                }
                Err(err) => report
                    .failures
                    .push(format!("{}: {err}", found.relative.display())),
            }
        }
        Ok(report)
    }

    fn summary(&self, report: &Report) -> String {
        let verb = if self.list_only {
            "would delete"
        } else {
            "deleted"
        };
        let mut text = format!(
            "{verb} {} file{} ({} bytes) of {} matching under {}",
            report.deleted.len(),
            if report.deleted.len() == 1 { "" } else { "s" },
            report.bytes,
            report.matched,
            self.root.display()
        );
        if report.left > 0 {
            text.push_str(&format!(
                "; {} more left for the next run (max_files {})",
                report.left, self.max_files
            ));
        }
        if report.skipped_symlinks > 0 {
            text.push_str(&format!("; {} symlinks skipped", report.skipped_symlinks));
        }
        text
    }
}

/// Deletes `found` relative to `root`, opening each directory on the way without following
/// symlinks or leaving the filesystem, and only if the name still holds the same file.
fn delete(root: &OwnedFd, root_dev: u64, found: &Found) -> std::io::Result<()> {
    let mut components: Vec<OsString> = found
        .relative
        .components()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let name = components
        .pop()
        .ok_or_else(|| std::io::Error::other("empty path"))?;
    let mut dir: Option<OwnedFd> = None;
    for component in &components {
        let next = match &dir {
            None => open_dir(root, component)?,
            Some(parent) => open_dir(parent, component)?,
        };
        if rustix::fs::fstat(&next)?.st_dev != root_dev {
            return Err(std::io::Error::other("moved to another filesystem"));
        }
        dir = Some(next);
    }
    let parent = dir.as_ref().unwrap_or(root);
    let stat = rustix::fs::statat(parent, &name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile
        || stat.st_dev != found.dev
        || stat.st_ino != found.ino
    {
        return Err(std::io::Error::other("replaced since the walk; left alone"));
    }
    rustix::fs::unlinkat(parent, &name, AtFlags::empty())?;
    Ok(())
}

impl Kind for CleanupAction {
    fn key(&self) -> &'static str {
        KIND.key
    }

    fn plan(&self, _labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        Ok(format!(
            "{} files under {} matching {} older than {}, keeping the {} newest, at most {}",
            if self.list_only { "list" } else { "delete" },
            self.root.display(),
            self.patterns.join(", "),
            humantime::format_duration(self.older_than),
            self.keep_newest,
            self.max_files
        ))
    }

    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a> {
        Box::pin(async move {
            let action = self.clone();
            let cancel = context.cancel.clone();
            let result = tokio::task::spawn_blocking(move || {
                let result = action.work(&cancel);
                (action, result)
            })
            .await
            .map_err(|err| ActionError::failed("clean up", err))?;
            let (action, result) = result;
            let report = match result {
                Ok(report) => report,
                Err(Stop::Cancelled) => return Err(ActionError::Cancelled),
                Err(Stop::Root(err)) => {
                    return Err(ActionError::failed(
                        format!(
                            "open {} (a directory, not a symlink)",
                            action.root.display()
                        ),
                        err,
                    ));
                }
            };
            let summary = action.summary(&report);
            if !report.failures.is_empty() {
                return Err(ActionError::Refused(format!(
                    "{summary}; {} could not be deleted, first: {}",
                    report.failures.len(),
                    report.failures[0]
                )));
            }
            let output = if action.list_only {
                report
                    .deleted
                    .iter()
                    .take(LISTED)
                    .map(|f| f.relative.display().to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                String::new()
            };
            Ok(Outcome {
                summary,
                exit_code: None,
                output,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn build(value: Value) -> Result<Arc<dyn Kind>, Vec<String>> {
        super::super::testing::parse_with(|context, problems| {
            parse(&value, "actions[2].cleanup", context, problems)
        })
    }

    async fn run(kind: &dyn Kind) -> Result<Outcome, ActionError> {
        let labels = BTreeMap::new();
        let context = JobContext::new(1, "cleanup", &labels);
        kind.run(&context).await
    }

    /// Creates `path` with `size` bytes and an mtime `age` ago.
    fn file(path: &Path, size: usize, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; size]).unwrap();
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn config_problems_have_key_paths() {
        let problems = build(json!({
            "root": "/",
            "patterns": ["/etc/*", "../x", "a[", "*.log"],
            "older_than": "forever",
            "max_files": 0,
            "extra": 1,
        }))
        .unwrap_err();
        assert_eq!(
            problems,
            [
                "actions[2].cleanup.extra: unknown key `extra`, expected one of `root`, `patterns`, `older_than`, `keep_newest`, `max_files`, `dry_run_list`"
            ]
        );
        let problems = build(json!({
            "root": "/",
            "patterns": ["/etc/*", "../x", "a[", "*.log"],
            "older_than": "forever",
            "max_files": 0,
        }))
        .unwrap_err();
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "actions[2].cleanup.root",
                "actions[2].cleanup.patterns[0]",
                "actions[2].cleanup.patterns[1]",
                "actions[2].cleanup.patterns[2]",
                "actions[2].cleanup.older_than",
                "actions[2].cleanup.max_files",
            ],
            "{problems:?}"
        );
        let problems =
            build(json!({"root": "var/log", "patterns": [], "older_than": "1d"})).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let problems = build(json!({"root": "/var/../etc", "patterns": ["*"], "older_than": "1d"}))
            .unwrap_err();
        assert!(problems[0].contains("`..`"), "{problems:?}");
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        symlink(dir.path(), &link).unwrap();
        let problems =
            build(json!({"root": link, "patterns": ["*"], "older_than": "1d"})).unwrap_err();
        assert!(problems[0].contains("is a symlink"), "{problems:?}");
    }

    #[tokio::test]
    async fn deletes_only_old_matching_regular_files_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        file(&outside.path().join("secret.log.1"), 10, 30 * DAY);
        file(&outside.path().join("deep/x.gz"), 10, 30 * DAY);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("logs");
        file(&root.join("app.log.1"), 100, 10 * DAY);
        file(&root.join("app.log.2"), 200, 20 * DAY);
        file(&root.join("app.log.3"), 300, DAY / 2); // too young
        file(&root.join("app.log"), 50, 30 * DAY); // no pattern matches
        file(&root.join("sub/app.log.9"), 7, 30 * DAY); // `*` stays at the top
        file(&root.join("sub/old.gz"), 1000, 30 * DAY);
        file(&root.join("sub/deeper/older.gz"), 2000, 40 * DAY);
        // Links out of the root: to a file, to a directory, and a link named like a match.
        symlink(outside.path().join("secret.log.1"), root.join("evil.log.1")).unwrap();
        symlink(outside.path(), root.join("linked")).unwrap();
        symlink(outside.path().join("deep/x.gz"), root.join("sub/link.gz")).unwrap();
        // A hard-linked file is left alone.
        file(&root.join("hard.log.1"), 5, 30 * DAY);
        std::fs::hard_link(root.join("hard.log.1"), dir.path().join("other-name")).unwrap();

        let action = build(json!({
            "root": root,
            "patterns": ["*.log.*", "**/*.gz"],
            "older_than": "7d",
        }))
        .unwrap();
        let outcome = run(action.as_ref()).await.unwrap();
        assert_eq!(
            outcome.summary,
            format!(
                "deleted 4 files (3300 bytes) of 5 matching under {}; 3 symlinks skipped",
                root.display()
            )
        );
        for gone in [
            "app.log.1",
            "app.log.2",
            "sub/old.gz",
            "sub/deeper/older.gz",
        ] {
            assert!(!root.join(gone).exists(), "{gone}");
        }
        for kept in ["app.log.3", "app.log", "sub/app.log.9", "hard.log.1"] {
            assert!(root.join(kept).exists(), "{kept}");
        }
        for link in ["evil.log.1", "linked", "sub/link.gz"] {
            assert!(root.join(link).symlink_metadata().is_ok(), "{link}");
        }
        assert!(outside.path().join("secret.log.1").exists());
        assert!(outside.path().join("deep/x.gz").exists());
    }

    #[tokio::test]
    async fn keep_newest_max_files_and_dry_run_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        for i in 1..=6u32 {
            file(&root.join(format!("b.{i}.gz")), 10, DAY * (10 + i));
        }
        let listing = build(json!({
            "root": root, "patterns": ["*.gz"], "older_than": "1d",
            "keep_newest": 2, "max_files": 3, "dry_run_list": true,
        }))
        .unwrap();
        let outcome = run(listing.as_ref()).await.unwrap();
        assert!(
            outcome
                .summary
                .starts_with("would delete 3 files (30 bytes) of 6 matching"),
            "{}",
            outcome.summary
        );
        assert!(outcome.summary.contains("1 more left for the next run"));
        // Oldest first: b.6, b.5, b.4; b.1 and b.2 are the newest two.
        assert_eq!(outcome.output, "b.6.gz\nb.5.gz\nb.4.gz");
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 6);

        let deleting = build(json!({
            "root": root, "patterns": ["*.gz"], "older_than": "1d", "keep_newest": 2,
        }))
        .unwrap();
        run(deleting.as_ref()).await.unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["b.1.gz", "b.2.gz"]);
    }

    #[test]
    fn a_directory_swapped_for_a_symlink_does_not_redirect_the_delete() {
        let outside = tempfile::tempdir().unwrap();
        file(&outside.path().join("victim.gz"), 10, 30 * DAY);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        file(&root.join("sub/victim.gz"), 10, 30 * DAY);
        let root_fd =
            rustix::fs::open(&root, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let stat = rustix::fs::stat(root.join("sub/victim.gz")).unwrap();
        let found = Found {
            relative: PathBuf::from("sub/victim.gz"),
            modified: stat.st_mtime,
            size: 10,
            dev: stat.st_dev,
            ino: stat.st_ino,
        };
        // After the walk found it, `sub` becomes a symlink to a directory outside.
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        symlink(outside.path(), root.join("sub")).unwrap();
        let root_dev = rustix::fs::fstat(&root_fd).unwrap().st_dev;
        assert!(delete(&root_fd, root_dev, &found).is_err());
        assert!(outside.path().join("victim.gz").exists());
    }
}
