//! Backups through the `warden backup` command line and `warden serve`, on real directories,
//! SQLite files and a throwaway PostgreSQL cluster: round trips, drills, retention, the
//! manifest rebuild, metrics after each step, and the faults (bad DSN, pg_dump killed,
//! warden killed, a full disk, a flipped byte, a malicious archive).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use crate::support::postgres::Postgres;
use crate::support::{Warden, value, wait_for, warden_bin};

/// A directory holding a config file, the state directory and backup destinations.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(body: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let setup = Setup {
            config: dir.path().join("warden.yml"),
            dir,
        };
        setup.write_config(body);
        setup
    }

    /// Writes the config: `state_dir` and host metrics off, then `body`, where `@/` stands
    /// for this setup's directory.
    fn write_config(&self, body: &str) {
        let text = format!("state_dir: @/state\nhost: {{enabled: false}}\n{body}")
            .replace("@/", &format!("{}/", self.path().display()));
        std::fs::write(&self.config, text).unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `warden backup ARGS --config FILE`.
    fn backup(&self, args: &[&str]) -> Output {
        Command::new(warden_bin())
            .arg("backup")
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `warden backup ARGS`, which must succeed; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.backup(args);
        assert!(
            output.status.success(),
            "warden backup {args:?} failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// `warden backup list JOB --output json`.
    fn list(&self, job: &str) -> Vec<serde_json::Value> {
        let text = self.ok(&["list", job, "--output", "json"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&text).unwrap()
    }

    /// Rewrites the row count a backup's manifest (in `@/out`) records for `table`, so a
    /// restore's check against it fails or passes on purpose.
    fn set_recorded_rows(&self, backup: &serde_json::Value, table: &str, rows: u64) {
        let path = self
            .path()
            .join("out")
            .join(format!("{}.manifest.json", backup["id"].as_str().unwrap()));
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        manifest["tables"][table] = serde_json::json!(rows);
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    }

    /// One collection with `warden metrics`.
    fn metrics(&self) -> String {
        let output = Command::new(warden_bin())
            .args(["metrics", "--config"])
            .arg(&self.config)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    }
}

fn metric(body: &str, name: &str, job: &str) -> f64 {
    value(body, name, &[("backup", job)])
        .unwrap_or_else(|| panic!("no {name}{{job={job}}} in:\n{body}"))
}

fn runs(body: &str, job: &str, result: &str) -> f64 {
    value(
        body,
        "warden_backup_runs_total",
        &[("backup", job), ("result", result)],
    )
    .unwrap_or_else(|| panic!("no runs_total {job} {result}"))
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The names in a directory, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every file under `dir` with its content (symlinks as `-> target`), relative paths.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let kind = entry.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if kind.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("tools/nested")).unwrap();
    std::fs::create_dir_all(root.join("cache")).unwrap();
    std::fs::write(root.join("tools/a.json"), br#"{"name":"a"}"#).unwrap();
    std::fs::write(root.join("tools/nested/b.json"), br#"{"name":"b"}"#).unwrap();
    std::fs::write(root.join("audit.jsonl"), b"{\"n\":1}\n{\"n\":2}\n").unwrap();
    std::fs::write(root.join("scratch.tmp"), b"skip me").unwrap();
    std::fs::write(root.join("cache/big"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("tools/a.json", root.join("current.json")).unwrap();
}

#[test]
fn files_back_up_verify_prune_restore_and_survive_a_lost_state_directory() {
    let setup = Setup::new(
        "backups:\n  - name: tools\n    kind: files\n    paths: [@/src]\n    exclude: ['*.tmp', '**/cache']\n    destination: @/out\n    retention: {keep_last: 2}\n    verify: {restore_test: true}\n",
    );
    let src = setup.path().join("src");
    make_tree(&src);
    let out = setup.path().join("out");

    // Before any run, every series exists with 0.
    let body = setup.metrics();
    for name in [
        "warden_backup_last_success_timestamp_seconds",
        "warden_backup_last_failure_timestamp_seconds",
        "warden_backup_last_verified_timestamp_seconds",
        "warden_backup_restore_test_last_success_timestamp_seconds",
        "warden_backup_retained",
        "warden_backup_running",
        "warden_backup_expected_interval_seconds",
        "warden_backup_restore_test_expected_interval_seconds",
        "warden_backup_last_size_bytes",
    ] {
        assert_eq!(metric(&body, name, "tools"), 0.0, "{name}");
    }
    assert_eq!(runs(&body, "tools", "success"), 0.0);

    for _ in 0..3 {
        setup.ok(&["run", "tools"]);
    }
    let list = setup.list("tools");
    assert_eq!(list.len(), 2, "keep_last 2 pruned the oldest: {list:#?}");
    let newest = &list[0];
    assert_eq!(newest["verification"]["ok"], true);
    assert_eq!(newest["files"]["files"], 3, "{newest:#?}");
    assert_eq!(newest["files"]["symlinks"], 1);
    assert_eq!(newest["compression"], "zstd");
    assert_eq!(newest["restore_test"]["ok"], true, "{newest:#?}");
    let body = setup.metrics();
    assert_eq!(runs(&body, "tools", "success"), 3.0);
    assert_eq!(metric(&body, "warden_backup_retained", "tools"), 2.0);
    let finished = chrono::DateTime::parse_from_rfc3339(newest["finished_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis() as f64
        / 1000.0;
    assert_eq!(
        metric(
            &body,
            "warden_backup_last_success_timestamp_seconds",
            "tools"
        ),
        finished
    );
    assert_eq!(
        metric(
            &body,
            "warden_backup_last_verified_timestamp_seconds",
            "tools"
        ),
        finished
    );
    assert_eq!(
        metric(&body, "warden_backup_last_size_bytes", "tools"),
        newest["size_bytes"].as_f64().unwrap()
    );

    // Round trip into a new directory: the same tree, minus what was excluded.
    let restored = setup.path().join("restored");
    let stdout = setup.ok(&["restore", "tools", "--to", restored.to_str().unwrap()]);
    assert!(stdout.contains("counts match the manifest"), "{stdout}");
    let inner = restored.join(src.strip_prefix("/").unwrap());
    let mut expected = tree(&src);
    expected.retain(|k, _| !k.ends_with(".tmp") && !k.starts_with("cache"));
    assert_eq!(tree(&inner), expected);
    // A non-empty directory is refused.
    let refused = setup.backup(&["restore", "tools", "--to", restored.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));

    // One flipped byte in the newest backup: verify fails, the metrics say so, and pruning
    // keeps the good copy.
    let file = out.join(newest["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let verify = setup.backup(&["verify", "tools"]);
    assert_eq!(verify.status.code(), Some(4), "{}", stderr(&verify));
    let verify_out = String::from_utf8_lossy(&verify.stdout);
    assert!(verify_out.contains("checksum mismatch"), "{verify_out}");
    let body = setup.metrics();
    let older = &list[1];
    let older_finished =
        chrono::DateTime::parse_from_rfc3339(older["finished_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0;
    assert_eq!(
        metric(
            &body,
            "warden_backup_last_verified_timestamp_seconds",
            "tools"
        ),
        older_finished
    );
    assert_eq!(metric(&body, "warden_backup_corrupt", "tools"), 1.0);
    assert_eq!(
        metric(&body, "warden_backup_verify_failures_total", "tools"),
        1.0
    );
    // A drill of the corrupt copy fails, and says so in its own series.
    assert_eq!(
        metric(
            &body,
            "warden_backup_restore_test_last_failure_timestamp_seconds",
            "tools"
        ),
        0.0
    );
    let drill = setup.backup(&["drill", "tools", newest["id"].as_str().unwrap()]);
    assert!(!drill.status.success(), "{}", stderr(&drill));
    assert!(
        metric(
            &setup.metrics(),
            "warden_backup_restore_test_last_failure_timestamp_seconds",
            "tools"
        ) > 0.0
    );
    // The corrupt copy is kept while no newer verified backup exists; restore picks the
    // newest verified one.
    let dry = setup.ok(&["prune", "tools", "--apply"]);
    assert!(dry.contains("kept: no newer verified backup"), "{dry}");
    assert_eq!(setup.list("tools").len(), 2);
    let again = setup.path().join("again");
    let stdout = setup.ok(&["restore", "tools", "--to", again.to_str().unwrap()]);
    assert!(
        stdout.contains(older["id"].as_str().unwrap()),
        "the older, good copy is restored: {stdout}"
    );
    // The next run prunes the corrupt copy and keep_last 2 keeps the good older one.
    setup.ok(&["run", "tools"]);
    let left = setup.list("tools");
    assert_eq!(left.len(), 2, "{left:#?}");
    assert_eq!(left[1]["id"], older["id"], "the good copy is kept");
    assert!(left.iter().all(|m| m["id"] != newest["id"]));
    let newest_finished =
        chrono::DateTime::parse_from_rfc3339(left[0]["finished_at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis() as f64
            / 1000.0;

    // The state store is lost: the catalog and the metrics come back from the manifests.
    std::fs::remove_dir_all(setup.path().join("state")).unwrap();
    let list = setup.list("tools");
    assert_eq!(list.len(), 2);
    let body = setup.metrics();
    assert_eq!(
        metric(
            &body,
            "warden_backup_last_success_timestamp_seconds",
            "tools"
        ),
        newest_finished
    );
    assert!(
        metric(
            &body,
            "warden_backup_restore_test_last_success_timestamp_seconds",
            "tools"
        ) > 0.0,
        "the drill's result is in the manifests too"
    );
    assert_eq!(metric(&body, "warden_backup_retained", "tools"), 2.0);
    assert_eq!(metric(&body, "warden_backup_corrupt", "tools"), 0.0);
}

/// Fills a real 2 MiB tmpfs when this process may mount one (root, outside a container that
/// forbids it); otherwise warden's debug-build seam fails writes past 2 MiB with ENOSPC, the
/// same error through the same path. Which one ran is printed.
#[test]
fn a_full_disk_fails_the_run_and_leaves_nothing() {
    let setup = Setup::new(
        "backups:\n  - {name: big, kind: files, paths: [@/src], destination: @/small, level: 1}\n",
    );
    let src = setup.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Random bytes do not compress: 6 MiB cannot fit in 2 MiB.
    let mut noise = vec![0u8; 6 << 20];
    let mut state = 0x9e3779b97f4a7c15u64;
    for byte in noise.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(src.join("noise"), &noise).unwrap();
    let small = setup.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let mounted = rustix::process::geteuid().is_root()
        && Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
            .arg(&small)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
    let _unmount = mounted.then(|| Unmount(small.clone()));
    let output = if mounted {
        eprintln!("full disk: a 2 MiB tmpfs");
        setup.backup(&["run", "big"])
    } else {
        eprintln!("full disk: cannot mount a tmpfs here; warden's write seam fails after 2 MiB");
        Command::new(warden_bin())
            .args(["backup", "run", "big", "--config"])
            .arg(&setup.config)
            .env("WARDEN_TEST_DISK_FULL_AFTER", (2u64 << 20).to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("No space left on device"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        names(&small),
        [".warden.lock"],
        "the temporary file is removed"
    );
    assert!(setup.list("big").is_empty());
    let body = setup.metrics();
    assert_eq!(runs(&body, "big", "failure"), 1.0);
    assert!(metric(&body, "warden_backup_last_failure_timestamp_seconds", "big") > 0.0);
    assert_eq!(
        metric(&body, "warden_backup_last_success_timestamp_seconds", "big"),
        0.0
    );
}

/// A `files` backup whose archive holds an entry escaping the target, published with a
/// correct checksum: restore refuses it and writes nothing outside the target.
#[test]
fn a_malicious_archive_is_refused_on_restore() {
    let setup =
        Setup::new("backups:\n  - {name: evil, kind: files, paths: [@/src], destination: @/out}\n");
    let out = setup.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for (case, entry) in [
        ("dotdot", "../escaped"),
        ("absolute", "/tmp/warden-escaped-abs"),
    ] {
        for old in names(&out) {
            let _ = std::fs::remove_file(out.join(old));
        }
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        let name = entry.as_bytes();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_cksum();
        builder.append(&header, &b"evil"[..]).unwrap();
        let archive = zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
        let id = "20261201T030000Z-0bad";
        let file = format!("{id}.tar.zst");
        std::fs::write(out.join(&file), &archive).unwrap();
        let manifest = serde_json::json!({
            "format": 1, "id": id, "job": "evil", "kind": "files", "file": file,
            "started_at": "2026-12-01T03:00:00.000Z", "finished_at": "2026-12-01T03:00:01.000Z",
            "duration_seconds": 1.0, "size_bytes": archive.len(),
            "sha256": hex::encode(Sha256::digest(&archive)),
            "tool": "crafted", "source": "crafted",
            "files": {"files": 1, "dirs": 0, "symlinks": 0, "bytes": 4},
            "compression": "zstd",
            "verification": {"ok": true, "checked_at": "2026-12-01T03:00:01.000Z", "checks": []},
            "warden_version": "0"
        });
        std::fs::write(
            out.join(format!("{id}.manifest.json")),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let target = setup.path().join(format!("restore-{case}"));
        let output = setup.backup(&["restore", "evil", "--to", target.to_str().unwrap()]);
        assert!(!output.status.success(), "{case}: restore accepted it");
        let message = stderr(&output);
        assert!(
            message.contains(entry),
            "{case}: the entry is named: {message}"
        );
        assert!(!setup.path().join("escaped").exists());
        assert!(!Path::new("/tmp/warden-escaped-abs").exists());
    }
}

fn create_app_db(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode = wal;
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE tutorials (id INTEGER PRIMARY KEY, title TEXT);",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    for i in 0..2000 {
        tx.execute(
            "INSERT INTO users (name) VALUES (?1)",
            [format!("user-{i}")],
        )
        .unwrap();
    }
    tx.execute("INSERT INTO tutorials (title) VALUES ('intro')", [])
        .unwrap();
    tx.commit().unwrap();
    conn
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn sqlite_backs_up_under_a_writer_drills_and_restores_with_a_copy_aside() {
    let setup = Setup::new(
        "sqlite:\n  - {name: app, path: @/app.db}\nbackups:\n  - name: app-db\n    kind: sqlite\n    source: sqlite/app\n    destination: @/out\n    verify: {required_tables: [users, tutorials], restore_test: true}\n",
    );
    let db = setup.path().join("app.db");
    let conn = create_app_db(&db);
    // A writer keeps committing while the backup runs; it is never blocked for long.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let db = db.clone();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let conn = Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let mut writes = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.execute("INSERT INTO tutorials (title) VALUES ('more')", [])
                    .unwrap();
                writes += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            writes
        })
    };
    setup.ok(&["run", "app-db"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);

    let list = setup.list("app-db");
    assert_eq!(list.len(), 1);
    let backup = &list[0];
    assert_eq!(backup["tables"]["users"], 2000);
    let tutorials = backup["tables"]["tutorials"].as_u64().unwrap();
    assert!(tutorials >= 1);
    assert_eq!(backup["restore_test"]["ok"], true, "{backup:#?}");
    let body = setup.metrics();
    assert!(
        metric(
            &body,
            "warden_backup_restore_test_last_success_timestamp_seconds",
            "app-db"
        ) > 0.0
    );

    // The copy is one self-contained file that opens read-only and passes its check.
    let copy = setup
        .path()
        .join("out")
        .join(backup["file"].as_str().unwrap());
    let opened =
        Connection::open_with_flags(&copy, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mode: String = opened
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    assert_eq!(count(&opened, "tutorials") as u64, tutorials);
    drop(opened);

    // A table added to required_tables later does not fail the backups made before it: they
    // are checked against the tables their manifests recorded.
    setup.write_config(
        "sqlite:\n  - {name: app, path: @/app.db}\nbackups:\n  - name: app-db\n    kind: sqlite\n    source: sqlite/app\n    destination: @/out\n    verify: {required_tables: [users, tutorials, user_progress], restore_test: true}\n",
    );
    setup.ok(&["verify", "app-db"]);

    // Restore over the live file: refused without --force, then done with a copy aside.
    conn.execute("DELETE FROM users", []).unwrap();
    let refused = setup.backup(&["restore", "app-db", "--to", db.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    let stdout = setup.ok(&["restore", "app-db", "--to", db.to_str().unwrap(), "--force"]);
    assert!(stdout.contains("integrity_check: ok"), "{stdout}");
    assert_eq!(
        count(&conn, "users"),
        2000,
        "the application's connection sees the restore"
    );
    let aside: Vec<String> = names(setup.path())
        .into_iter()
        .filter(|n| n.starts_with("app.db.before-restore-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", names(setup.path()));
    let saved = Connection::open(setup.path().join(&aside[0])).unwrap();
    assert_eq!(
        count(&saved, "users"),
        0,
        "the copy aside holds what was there"
    );
    // A restore whose check fails puts the file back as it was.
    conn.execute("DELETE FROM users WHERE id > 10", []).unwrap();
    setup.set_recorded_rows(backup, "users", 1);
    let failed = setup.backup(&["restore", "app-db", "--to", db.to_str().unwrap(), "--force"]);
    assert_eq!(failed.status.code(), Some(4), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("the previous state is in place"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(count(&conn, "users"), 10);
    setup.set_recorded_rows(backup, "users", 2000);
    // A new file restores without --force.
    let fresh = setup.path().join("fresh.db");
    setup.ok(&["restore", "app-db", "--to", fresh.to_str().unwrap()]);
    assert_eq!(count(&Connection::open(&fresh).unwrap(), "users"), 2000);
}

fn pg_config(postgres: &Postgres, extra_verify: &str) -> String {
    format!(
        "postgres:\n  - {{name: main, dsn: '{}?sslmode=disable'}}\nbackups:\n  - name: pg\n    kind: postgres\n    source: postgres/main\n    destination: @/out\n    verify: {{required_tables: [users, runs]{extra_verify}}}\n",
        postgres.dsn("app")
    )
}

fn create_app(postgres: &Postgres) {
    postgres.create_database("app");
    postgres.psql(
        "app",
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE runs (id int PRIMARY KEY, status text NOT NULL);
         CREATE TABLE big (id int PRIMARY KEY);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 500) g;
         INSERT INTO runs SELECT g, 'completed' FROM generate_series(1, 70) g;",
    );
}

#[test]
fn postgres_round_trip_drill_and_a_safe_forced_restore() {
    let postgres = Postgres::start();
    create_app(&postgres);
    let setup = Setup::new(&pg_config(&postgres, ", restore_test: true"));
    setup.ok(&["run", "pg"]);
    let list = setup.list("pg");
    assert_eq!(list.len(), 1);
    let backup = &list[0];
    assert_eq!(backup["tables"]["users"], 500);
    assert_eq!(backup["tables"]["runs"], 70);
    assert!(
        backup["tool"]
            .as_str()
            .unwrap()
            .starts_with("pg_dump (PostgreSQL)")
    );
    assert!(backup["server_version"].as_str().is_some());
    assert!(
        !backup["source"].as_str().unwrap().contains("password"),
        "no secret in the manifest"
    );
    assert_eq!(backup["restore_test"]["ok"], true, "{backup:#?}");
    // The drill dropped its scratch database.
    assert_eq!(
        postgres.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'warden_drill_%'"
        ),
        "0"
    );
    let body = setup.metrics();
    assert!(
        metric(
            &body,
            "warden_backup_restore_test_last_success_timestamp_seconds",
            "pg"
        ) > 0.0
    );
    assert!(metric(&body, "warden_backup_last_success_timestamp_seconds", "pg") > 0.0);

    // Into a new database: same rows, ANALYZE run.
    let stdout = setup.ok(&["restore", "pg", "--to", "copy"]);
    assert!(
        stdout.contains("ANALYZE") && stdout.contains("took the name copy"),
        "{stdout}"
    );
    assert_eq!(postgres.psql("copy", "SELECT count(*) FROM users"), "500");
    assert_eq!(postgres.psql("copy", "SELECT count(*) FROM runs"), "70");

    // Over the live database: refused without --force; with it, a safety dump first.
    postgres.psql("app", "DELETE FROM users WHERE id > 100");
    let refused = setup.backup(&["restore", "pg", "--to", "app"]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert_eq!(postgres.psql("app", "SELECT count(*) FROM users"), "100");
    // The database keeps its owner; an application session on it is ended for the swap.
    postgres.psql(
        "postgres",
        "CREATE ROLE app_owner; ALTER DATABASE app OWNER TO app_owner",
    );
    let session = postgres.spawn_psql_session("app", &["SELECT 1;"]);
    let stdout = setup.ok(&["restore", "pg", "--to", "app", "--force"]);
    drop(session);
    assert!(stdout.contains("safety dump of app"), "{stdout}");
    assert!(stdout.contains("the previous app dropped"), "{stdout}");
    assert_eq!(
        postgres.psql(
            "postgres",
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'app'"
        ),
        "app_owner"
    );
    assert_eq!(postgres.psql("app", "SELECT count(*) FROM users"), "500");
    assert_eq!(
        postgres.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'warden%'"
        ),
        "0",
        "no scratch database is left"
    );
    let safety: Vec<String> = names(&setup.path().join("out"))
        .into_iter()
        .filter(|n| n.starts_with("safety-app-"))
        .collect();
    assert_eq!(safety.len(), 1);
    // A restore that fails its check leaves the database as it was: the manifest is edited to
    // expect other row counts, so the restored copy does not match it.
    postgres.psql("app", "DELETE FROM users WHERE id > 100");
    setup.set_recorded_rows(backup, "users", 999);
    let failed = setup.backup(&["restore", "pg", "--to", "app", "--force"]);
    assert_eq!(failed.status.code(), Some(4), "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("the previous state is in place"),
        "{}",
        stderr(&failed)
    );
    assert_eq!(postgres.psql("app", "SELECT count(*) FROM users"), "100");
    assert_eq!(
        postgres.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'warden%'"
        ),
        "0",
        "the unfinished copy is dropped"
    );
    // A name PostgreSQL would cut short is refused before anything happens.
    let bad = setup.backup(&["restore", "pg", "--to", &"x".repeat(64)]);
    assert_eq!(bad.status.code(), Some(5), "{}", stderr(&bad));
    assert!(
        stderr(&bad).contains("at most 63 bytes"),
        "{}",
        stderr(&bad)
    );
    // Any other name is a name: quoted, never run as SQL.
    let odd = "app; DROP TABLE users";
    setup.set_recorded_rows(backup, "users", 500);
    setup.ok(&["restore", "pg", "--to", odd]);
    assert_eq!(postgres.psql("app", "SELECT count(*) FROM users"), "100");
    assert_eq!(
        postgres.psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'app; DROP TABLE users'"
        ),
        "1"
    );
}

/// A drill that cannot reach PostgreSQL says why and exits 1: the backup keeps the drill
/// result it had, and no failed drill is counted.
#[test]
fn a_drill_that_cannot_reach_postgres_changes_nothing() {
    let postgres = Postgres::start();
    create_app(&postgres);
    let setup = Setup::new(&pg_config(&postgres, ", restore_test: true"));
    setup.ok(&["run", "pg"]);
    let before = setup.list("pg");
    assert_eq!(before[0]["restore_test"]["ok"], true, "{before:#?}");
    postgres.stop();
    let drill = setup.backup(&["drill", "pg"]);
    assert_eq!(drill.status.code(), Some(1), "{}", stderr(&drill));
    assert!(
        stderr(&drill).contains("cannot connect to postgres/main"),
        "{}",
        stderr(&drill)
    );
    let after = setup.list("pg");
    assert_eq!(after[0]["restore_test"], before[0]["restore_test"]);
    let body = setup.metrics();
    assert_eq!(
        metric(
            &body,
            "warden_backup_restore_test_last_failure_timestamp_seconds",
            "pg"
        ),
        0.0
    );
}

/// The pids of running `pg_dump` processes writing into `dir`.
fn pg_dumps_into(dir: &Path) -> Vec<i32> {
    let needle = format!("--file={}", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains("pg_dump") && cmdline.contains(&needle)).then_some(pid)
        })
        .collect()
}

/// Starts `warden backup run pg` of `setup` while a psql session holds a lock on table `big`,
/// so pg_dump waits: the session (dropping it releases the lock), warden, and pg_dump's pid.
fn run_with_pg_dump_waiting(
    postgres: &Postgres,
    setup: &Setup,
    piped: bool,
) -> (
    crate::support::postgres::PsqlSession,
    std::process::Child,
    i32,
) {
    let session = postgres.spawn_psql_session(
        "app",
        &["BEGIN;", "LOCK TABLE big IN ACCESS EXCLUSIVE MODE;"],
    );
    let output = || if piped { Stdio::piped() } else { Stdio::null() };
    let child = Command::new(warden_bin())
        .args(["backup", "run", "pg", "--config"])
        .arg(&setup.config)
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    let out = setup.path().join("out");
    let pid = wait_for(Duration::from_secs(20), "pg_dump to start", || {
        pg_dumps_into(&out).first().copied()
    });
    (session, child, pid)
}

/// The environment of process `pid`.
fn environ(pid: i32) -> BTreeMap<String, String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    String::from_utf8_lossy(&raw)
        .split('\0')
        .filter_map(|var| var.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn kill(pid: i32) {
    let pid = rustix::process::Pid::from_raw(pid).unwrap();
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

/// The password reaches `pg_dump` through a passfile in the state directory's private (0700)
/// directory, never in the destination (synced offsite, possibly a CIFS or NFS mount); one a
/// killed warden left is removed by the next start.
#[test]
fn the_passfile_stays_in_the_private_directory() {
    let postgres = Postgres::start();
    create_app(&postgres);
    postgres.psql(
        "postgres",
        "CREATE ROLE dumper LOGIN SUPERUSER PASSWORD 'pa:ss-s3cret'",
    );
    postgres.require_passwords();
    let dsn = format!(
        "postgres://dumper:pa%3Ass-s3cret@127.0.0.1:{}/app?sslmode=disable",
        postgres.port()
    );
    let setup = Setup::new(&format!(
        "postgres:\n  - {{name: main, dsn: '{dsn}'}}\nbackups:\n  - {{name: pg, kind: postgres, source: postgres/main, destination: @/out}}\n"
    ));
    let out = setup.path().join("out");
    let private = setup.path().join("state/private");
    // pg_dump waits on a lock, so its environment can be read while it runs.
    let (session, mut child, pid) = run_with_pg_dump_waiting(&postgres, &setup, false);
    let passfile = PathBuf::from(
        environ(pid)
            .remove("PGPASSFILE")
            .expect("pg_dump has a PGPASSFILE"),
    );
    assert_eq!(
        passfile.parent(),
        Some(private.as_path()),
        "{}",
        passfile.display()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{mode:o}");
    }
    assert!(
        names(&out).iter().all(|n| !n.contains("pgpass")),
        "{:?}",
        names(&out)
    );
    // warden killed: its passfile stays until the next start removes it.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(passfile.exists());
    kill(pid);
    drop(session);
    setup.ok(&["run", "pg"]);
    assert!(!passfile.exists(), "the next start removed the passfile");
    let entries: Vec<_> = std::fs::read_dir(&private).unwrap().collect();
    assert!(entries.is_empty(), "{entries:?}");
}

/// With TLS on the server, pg_dump and pg_restore verify its certificate as warden's own
/// sessions do: `verify-full` with the entry's `ca_file`, under the default `prefer` too
/// (libpq's `prefer` would take any certificate, and fall back to plain text).
#[test]
fn the_postgres_tools_verify_the_server_certificate() {
    let postgres = Postgres::start();
    create_app(&postgres);
    let tls = crate::postgres::tls_files();
    let file = |name: &str| tls.path().join(name).display().to_string();
    postgres.psql(
        "postgres",
        &format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'; ALTER SYSTEM SET ssl_key_file = '{}'; ALTER SYSTEM SET ssl = on; SELECT pg_reload_conf();",
            file("server.pem"),
            file("server.key")
        ),
    );
    let setup = Setup::new(&format!(
        "postgres:\n  - {{name: main, dsn: '{}', ca_file: {}}}\nbackups:\n  - {{name: pg, kind: postgres, source: postgres/main, destination: @/out, verify: {{restore_test: true}}}}\n",
        postgres.dsn("app"),
        file("ca.pem")
    ));
    // pg_dump waits on a lock, so its environment and its session can be read.
    let (session, child, pid) = run_with_pg_dump_waiting(&postgres, &setup, true);
    let environ = environ(pid);
    assert_eq!(
        environ.get("PGSSLMODE").map(String::as_str),
        Some("verify-full")
    );
    assert_eq!(environ.get("PGSSLROOTCERT"), Some(&file("ca.pem")));
    let encrypted = wait_for(Duration::from_secs(10), "pg_dump's session", || {
        let row = postgres.psql(
            "postgres",
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'warden-backup' AND a.wait_event_type = 'Lock'",
        );
        (row != "0|").then_some(row)
    });
    assert_eq!(
        encrypted, "1|t",
        "pg_dump's session waiting on the lock is encrypted"
    );
    drop(session);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let list = setup.list("pg");
    assert_eq!(list[0]["restore_test"]["ok"], true, "{list:#?}");
}

#[test]
fn postgres_faults_publish_nothing_and_keep_earlier_backups() {
    let postgres = Postgres::start();
    create_app(&postgres);
    let setup = Setup::new(&pg_config(&postgres, ""));
    let out = setup.path().join("out");
    setup.ok(&["run", "pg"]);
    let first = setup.list("pg");
    assert_eq!(first.len(), 1);
    let published = names(&out);

    // pg_dump killed mid-run: a session holds a lock so pg_dump waits on it.
    let (session, child, pid) = run_with_pg_dump_waiting(&postgres, &setup, true);
    // A second trigger while the job runs is refused, not queued.
    let busy = setup.backup(&["run", "pg"]);
    assert_eq!(busy.status.code(), Some(3), "{}", stderr(&busy));
    assert!(stderr(&busy).contains("is busy"), "{}", stderr(&busy));
    kill(pid);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("pg_dump failed (killed by signal 9)"),
        "{}",
        stderr(&output)
    );
    assert_eq!(names(&out), published, "nothing new, nothing lost");
    assert_eq!(setup.list("pg").len(), 1);

    // warden itself killed mid-run: no partial backup is listed, the leftovers go.
    let mut child = Command::new(warden_bin())
        .args(["backup", "run", "pg", "--config"])
        .arg(&setup.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(20), "pg_dump to start", || {
        pg_dumps_into(&out).first().copied()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        names(&out).iter().any(|n| n.starts_with(".tmp-")),
        "a leftover: {:?}",
        names(&out)
    );
    drop(session);
    // The orphaned pg_dump finishes (or not) on its own; either way nothing is listed.
    wait_for(
        Duration::from_secs(20),
        "the orphaned pg_dump to exit",
        || pg_dumps_into(&out).is_empty().then_some(()),
    );
    let list = setup.list("pg");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], first[0]["id"]);
    assert_eq!(
        names(&out),
        published,
        "the next start removed the leftovers"
    );
    let body = setup.metrics();
    assert_eq!(runs(&body, "pg", "success"), 1.0);
    assert_eq!(
        runs(&body, "pg", "failure"),
        1.0,
        "the killed warden never recorded its run"
    );

    // A DSN pointing nowhere: the run fails at once with a clear error.
    let dead = format!(
        "postgres:\n  - {{name: main, dsn: 'postgres://postgres:hunter2@127.0.0.1:{}/app?sslmode=disable&connect_timeout=2'}}\nbackups:\n  - {{name: pg, kind: postgres, source: postgres/main, destination: @/out}}\n",
        crate::support::free_port()
    );
    setup.write_config(&dead);
    let output = setup.backup(&["run", "pg"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("connect to postgres/main"), "{message}");
    assert!(
        message.contains("Connection refused (os error 111)"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password leaked: {message}"
    );
    assert_eq!(names(&out), published);
}

#[test]
fn serve_runs_an_overdue_job_at_start_up_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src);
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nbackups:\n  - {{name: tools, kind: files, paths: [{}], destination: {}, schedule: '0 3 * * *', verify: {{restore_test: true}}}}\n",
        src.display(),
        dir.path().join("out").display()
    ));
    let body = wait_for(Duration::from_secs(30), "the overdue run to finish", || {
        let body = warden.get("/metrics", &[]).body;
        let succeeded = value(
            &body,
            "warden_backup_runs_total",
            &[("backup", "tools"), ("result", "success")],
        ) == Some(1.0);
        // The run is counted just before the job is marked free.
        let idle = value(&body, "warden_backup_running", &[("backup", "tools")]) == Some(0.0);
        (succeeded && idle).then_some(body)
    });
    assert_eq!(
        metric(&body, "warden_backup_expected_interval_seconds", "tools"),
        86400.0
    );
    // Every run is drilled, so drills are as frequent as the runs.
    assert_eq!(
        metric(
            &body,
            "warden_backup_restore_test_expected_interval_seconds",
            "tools"
        ),
        86400.0
    );
    assert!(
        metric(
            &body,
            "warden_backup_last_success_timestamp_seconds",
            "tools"
        ) > 0.0
    );
    assert_eq!(metric(&body, "warden_backup_retained", "tools"), 1.0);
    assert_eq!(metric(&body, "warden_backup_running", "tools"), 0.0);
    let stderr = warden.stderr();
    assert!(stderr.contains("Backup verified and published"), "{stderr}");
    // The new families pass promtool's lint.
    let promtool = crate::support::require_tool("promtool", "prometheus");
    let problems: Vec<String> = crate::serve::promtool_check(&promtool, &body)
        .into_iter()
        .filter(|p| p.starts_with("warden_backup"))
        .collect();
    assert!(problems.is_empty(), "promtool problems: {problems:#?}");
}

#[test]
fn a_run_past_its_timeout_is_cancelled_and_publishes_nothing() {
    let setup = Setup::new(
        "backups:\n  - {name: slow, kind: files, paths: [@/src], destination: @/out, compression: gzip, level: 9, timeout: 300ms}\n",
    );
    let src = setup.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Text that gzip -9 works hard on: far more than 300 ms of compression.
    let line = b"2026-12-01T03:00:00Z INFO request served path=/api/v1/items status=200 ms=12\n";
    let mut text = Vec::with_capacity(64 << 20);
    let mut i = 0u64;
    while text.len() < 64 << 20 {
        text.extend_from_slice(line);
        text.extend_from_slice(i.to_string().as_bytes());
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    std::fs::write(src.join("app.log"), &text).unwrap();
    let output = setup.backup(&["run", "slow"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("timed out after 300ms"),
        "{}",
        stderr(&output)
    );
    assert_eq!(names(&setup.path().join("out")), [".warden.lock"]);
    let body = setup.metrics();
    assert_eq!(
        runs(&body, "slow", "failure"),
        1.0,
        "a timeout is a failure"
    );
    assert_eq!(metric(&body, "warden_backup_retained", "slow"), 0.0);
}

/// `warden backup run` says why it cannot connect, and where it tried: the server's SQLSTATE
/// and message, or the refused address; never the password.
#[test]
fn postgres_connect_failures_name_their_cause_without_the_password() {
    let postgres = Postgres::start();
    create_app(&postgres);
    postgres.psql(
        "postgres",
        "CREATE ROLE warden LOGIN PASSWORD 'right-s3cret'",
    );
    postgres.require_passwords();
    let port = postgres.port();
    let nowhere = crate::support::free_port();
    let setup = Setup::new("");
    let cases = [
        (
            format!("postgres://warden:wr0ng-s3cret@127.0.0.1:{port}/app"),
            format!(
                "cannot connect to postgres/main at 127.0.0.1:{port} (database app, user warden): \
                 FATAL 28P01: password authentication failed for user \"warden\""
            ),
        ),
        (
            format!("postgres://warden:right-s3cret@127.0.0.1:{nowhere}/app"),
            format!(
                "cannot connect to postgres/main at 127.0.0.1:{nowhere} (database app, user warden): \
                 error connecting to server: Connection refused (os error 111)"
            ),
        ),
        (
            format!("postgres://warden:right-s3cret@127.0.0.1:{port}/nope"),
            format!(
                "cannot connect to postgres/main at 127.0.0.1:{port} (database nope, user warden): \
                 FATAL 3D000: database \"nope\" does not exist"
            ),
        ),
    ];
    for (dsn, expected) in cases {
        setup.write_config(&format!(
            "postgres:\n  - {{name: main, dsn: '{dsn}?sslmode=disable'}}\nbackups:\n  - {{name: pg, kind: postgres, source: postgres/main, destination: @/out}}\n"
        ));
        let output = setup.backup(&["run", "pg"]);
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        let message = stderr(&output);
        assert!(
            message.contains(&expected),
            "expected {expected:?} in:\n{message}"
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        for secret in ["wr0ng-s3cret", "right-s3cret"] {
            assert!(
                !message.contains(secret) && !stdout.contains(secret),
                "the password {secret} leaked:\n{stdout}\n{message}"
            );
        }
    }
}

/// The recommended role, not a superuser: the restore ANALYZEs only what it restored, so no
/// wall of "only superuser can analyze" warnings; and a target with a hyphen, a legal
/// PostgreSQL name, is restored into (quoted in SQL, passed to pg_restore as a connection
/// string).
#[test]
fn postgres_restore_as_a_non_superuser_into_a_hyphenated_name() {
    let postgres = Postgres::start();
    postgres.psql("postgres", "CREATE ROLE app_owner LOGIN CREATEDB");
    postgres.psql("postgres", "CREATE DATABASE app OWNER app_owner");
    postgres.psql(
        "app",
        "SET ROLE app_owner;
         CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);
         CREATE TABLE runs (id int PRIMARY KEY, status text NOT NULL);
         INSERT INTO users SELECT g, 'u' || g FROM generate_series(1, 500) g;
         INSERT INTO runs SELECT g, 'completed' FROM generate_series(1, 70) g;",
    );
    let setup = Setup::new(&format!(
        "postgres:\n  - {{name: main, dsn: 'postgres://app_owner@127.0.0.1:{}/app?sslmode=disable'}}\nbackups:\n  - name: pg\n    kind: postgres\n    source: postgres/main\n    destination: @/out\n    verify: {{required_tables: [users, runs], restore_test: true}}\n",
        postgres.port()
    ));
    let run = setup.backup(&["run", "pg"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let restore = setup.backup(&["restore", "pg", "--to", "my-app"]);
    let (out, err) = (String::from_utf8_lossy(&restore.stdout), stderr(&restore));
    assert!(restore.status.success(), "{out}\n{err}");
    assert!(out.contains("took the name my-app"), "{out}");
    assert!(out.contains("ANALYZE of the 2 restored relations"), "{out}");
    for output in [&run, &restore] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        );
        assert!(
            !text.contains("only superuser can analyze") && !text.contains("WARNING"),
            "warnings at the default log level:\n{text}"
        );
    }
    assert_eq!(postgres.psql("my-app", "SELECT count(*) FROM users"), "500");
    assert_eq!(
        postgres.psql(
            "my-app",
            "SELECT count(*) FROM pg_stat_user_tables WHERE last_analyze IS NOT NULL"
        ),
        "2",
        "the restored tables were analyzed"
    );
    // Replacing it works the same way (renamed aside, swapped, dropped).
    let again = setup.backup(&["restore", "pg", "--to", "my-app", "--force"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        names(&setup.path().join("out"))
            .iter()
            .any(|n| n.starts_with("safety-my-app-")),
        "{:?}",
        names(&setup.path().join("out"))
    );
    // warden's own prefix is still refused.
    let refused = setup.backup(&["restore", "pg", "--to", "warden_x"]);
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
}

/// Issue 9: every `--output json` of `warden backup` names the job and the backup.
#[test]
fn json_outputs_name_the_job_and_the_backup() {
    let setup = Setup::new(
        "backups:\n  - {name: notes, kind: files, paths: [@/src], destination: @/out}\n",
    );
    std::fs::create_dir_all(setup.path().join("src")).unwrap();
    std::fs::write(setup.path().join("src/a.txt"), b"a").unwrap();
    let run: serde_json::Value =
        serde_json::from_str(&setup.ok(&["run", "notes", "--output", "json"])).unwrap();
    let id = run[0]["id"].as_str().unwrap().to_owned();

    let drill: serde_json::Value =
        serde_json::from_str(&setup.ok(&["drill", "notes", "--output", "json"])).unwrap();
    assert_eq!(drill["job"], "notes", "{drill:#}");
    assert_eq!(drill["id"], id.as_str(), "{drill:#}");
    assert_eq!(drill["ok"], true, "{drill:#}");
    assert!(
        drill["at"].is_string() && drill["detail"].is_string(),
        "{drill:#}"
    );

    let verify: serde_json::Value =
        serde_json::from_str(&setup.ok(&["verify", "notes", "--output", "json"])).unwrap();
    assert_eq!(verify[0]["job"], "notes", "{verify:#}");
    assert_eq!(verify[0]["id"], id.as_str(), "{verify:#}");

    let to = setup.path().join("restored");
    let restore: serde_json::Value = serde_json::from_str(&setup.ok(&[
        "restore",
        "notes",
        "--to",
        to.to_str().unwrap(),
        "--output",
        "json",
    ]))
    .unwrap();
    assert_eq!(restore["job"], "notes", "{restore:#}");
    assert_eq!(restore["id"], id.as_str(), "{restore:#}");

    let prune: serde_json::Value =
        serde_json::from_str(&setup.ok(&["prune", "notes", "--output", "json"])).unwrap();
    assert_eq!(prune[0]["job"], "notes", "{prune:#}");
    assert_eq!(prune[0]["id"], id.as_str(), "{prune:#}");
}

/// A files job with an offsite copy in `server`'s bucket `backups`, keeping `copy_keep` there
/// and 3 on the host; credentials from files (`@/key`, `@/secret`).
fn copy_setup(server: &crate::support::s3::S3Server, bucket: &str, copy_keep: u32) -> Setup {
    use crate::support::s3::{KEY_ID, SECRET};
    let setup = Setup::new(&format!(
        "backups:\n  - name: notes\n    kind: files\n    paths: [@/src]\n    destination: @/out\n    retention: {{keep_last: 3}}\n    copies:\n      - name: offsite\n        s3: {{endpoint: '{}', bucket: {bucket}, prefix: hosts/db1, path_style: true, access_key_id_file: @/key, secret_access_key_file: @/secret}}\n        retention: {{keep_last: {copy_keep}}}\n",
        server.endpoint()
    ));
    std::fs::create_dir(setup.path().join("src")).unwrap();
    std::fs::write(
        setup.path().join("src/notes.txt"),
        b"minutes of the meeting",
    )
    .unwrap();
    std::fs::write(setup.path().join("key"), KEY_ID).unwrap();
    std::fs::write(setup.path().join("secret"), format!("{SECRET}\n")).unwrap();
    setup
}

fn copy_metric(body: &str, name: &str) -> f64 {
    value(
        body,
        name,
        &[("backup", "notes"), ("destination", "offsite")],
    )
    .unwrap_or_else(|| panic!("no {name}{{backup=notes,destination=offsite}} in:\n{body}"))
}

/// A verified backup is copied to S3 (rclone serve s3, SigV4 checked), read back, its manifest
/// put last; the copy lists from the bucket, verifies, keeps its own retention, and a flipped
/// byte in the stored object fails verification with exit 4.
#[test]
fn copies_reach_the_bucket_verified_and_a_flipped_byte_is_found() {
    let server = crate::support::s3::S3Server::start();
    let setup = copy_setup(&server, "backups", 1);
    let body = setup.metrics();
    assert_eq!(
        copy_metric(&body, "warden_backup_copy_last_success_timestamp_seconds"),
        0.0,
        "present from start-up"
    );
    setup.ok(&["run", "notes"]);
    let local = setup.list("notes");
    let copied: Vec<serde_json::Value> = serde_json::from_str(
        &setup.ok(&["list", "notes", "--from", "offsite", "--output", "json"]),
    )
    .unwrap();
    assert_eq!(copied.len(), 1, "{copied:#?}");
    assert_eq!(copied[0]["id"], local[0]["id"]);
    assert_eq!(copied[0]["sha256"], local[0]["sha256"]);
    let objects = names(&server.bucket().join("hosts/db1"));
    let id = local[0]["id"].as_str().unwrap();
    assert_eq!(
        objects,
        [format!("{id}.manifest.json"), format!("{id}.tar.zst")],
        "the object and its manifest, nothing else"
    );
    let body = setup.metrics();
    assert!(copy_metric(&body, "warden_backup_copy_last_success_timestamp_seconds") > 0.0);
    assert_eq!(
        copy_metric(&body, "warden_backup_copy_last_size_bytes"),
        local[0]["size_bytes"].as_f64().unwrap()
    );
    assert_eq!(copy_metric(&body, "warden_backup_copy_failures_total"), 0.0);
    setup.ok(&["verify", "notes", "--from", "offsite"]);
    let check = Command::new(warden_bin())
        .args(["check-config", "--connect"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", stderr(&check));

    // Each destination keeps by its own policy: one in the bucket, three on the host.
    setup.ok(&["run", "notes"]);
    setup.ok(&["run", "notes"]);
    assert_eq!(setup.list("notes").len(), 3);
    let copied: Vec<serde_json::Value> = serde_json::from_str(
        &setup.ok(&["list", "notes", "--from", "offsite", "--output", "json"]),
    )
    .unwrap();
    assert_eq!(copied.len(), 1);
    assert_eq!(copied[0]["id"], setup.list("notes")[0]["id"]);
    assert_eq!(names(&server.bucket().join("hosts/db1")).len(), 2);

    // A flipped byte in the stored object.
    let object = server
        .bucket()
        .join("hosts/db1")
        .join(copied[0]["file"].as_str().unwrap());
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let verify = setup.backup(&["verify", "notes", "--from", "offsite"]);
    assert_eq!(verify.status.code(), Some(4), "{}", stderr(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("checksum mismatch"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// Wrong credentials and a missing bucket fail the copy, not the backup on the host, with
/// a message that names the bucket and the server's reason and never the secret; both are
/// counted.
#[test]
fn copies_fail_clearly_without_the_secret() {
    let server = crate::support::s3::S3Server::start();
    let setup = copy_setup(&server, "backups", 2);
    let secret = "not-the-right-s3cret";
    std::fs::write(setup.path().join("secret"), secret).unwrap();
    let run = setup.backup(&["run", "notes"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let log = stderr(&run);
    assert!(log.contains("Copy failed"), "{log}");
    assert!(log.contains("s3://backups/hosts/db1/"), "{log}");
    assert!(log.contains("403 Forbidden"), "{log}");
    assert!(!log.contains(secret), "the secret leaked: {log}");
    assert_eq!(
        setup.list("notes").len(),
        1,
        "the backup on the host stands"
    );
    let body = setup.metrics();
    assert_eq!(copy_metric(&body, "warden_backup_copy_failures_total"), 1.0);
    assert!(copy_metric(&body, "warden_backup_copy_last_failure_timestamp_seconds") > 0.0);
    assert_eq!(
        copy_metric(&body, "warden_backup_copy_last_success_timestamp_seconds"),
        0.0
    );
    let check = Command::new(warden_bin())
        .args(["check-config", "--connect"])
        .arg(&setup.config)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(!check.status.success(), "{said}");
    assert!(said.contains("backups[0].copies[0].s3"), "{said}");
    assert!(
        said.contains("403 Forbidden") && !said.contains(secret),
        "{said}"
    );
    let list = setup.backup(&["list", "notes", "--from", "offsite"]);
    assert_eq!(list.status.code(), Some(1));
    assert!(
        stderr(&list).contains("cannot list s3://backups/hosts/db1/"),
        "{}",
        stderr(&list)
    );
    assert!(!stderr(&list).contains(secret));

    let missing = copy_setup(&server, "no-such-bucket", 2);
    let run = missing.backup(&["run", "notes"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("s3://no-such-bucket/hosts/db1/"),
        "{}",
        stderr(&run)
    );
    assert!(stderr(&run).contains("404 Not Found"), "{}", stderr(&run));
    let unknown = missing.backup(&["list", "notes", "--from", "elsewhere"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("job `notes` has no copy destination `elsewhere`"),
        "{}",
        stderr(&unknown)
    );
}

/// With the host's backup directories gone, every kind restores from its offsite copy: the
/// object is downloaded, its SHA-256 and the kind's check pass, and the data comes back.
#[test]
fn every_kind_restores_from_its_copy_with_the_host_directory_gone() {
    use crate::support::s3::{KEY_ID, SECRET};
    let server = crate::support::s3::S3Server::start();
    let postgres = Postgres::start();
    create_app(&postgres);
    let copy = |prefix: &str| {
        format!(
            "    copies:\n      - name: offsite\n        s3: {{endpoint: '{}', bucket: backups, prefix: {prefix}, path_style: true, access_key_id_file: @/key, secret_access_key_file: @/secret}}\n",
            server.endpoint()
        )
    };
    let setup = Setup::new(&format!(
        "postgres:\n  - {{name: main, dsn: '{}?sslmode=disable'}}\nsqlite:\n  - {{name: app, path: @/app.db}}\nbackups:\n  - name: pg\n    kind: postgres\n    source: postgres/main\n    destination: @/out/pg\n    verify: {{required_tables: [users]}}\n{}  - name: db\n    kind: sqlite\n    source: sqlite/app\n    destination: @/out/db\n{}  - name: notes\n    kind: files\n    paths: [@/src]\n    destination: @/out/notes\n{}",
        postgres.dsn("app"),
        copy("pg"),
        copy("db"),
        copy("notes")
    ));
    std::fs::write(setup.path().join("key"), KEY_ID).unwrap();
    std::fs::write(setup.path().join("secret"), SECRET).unwrap();
    make_tree(&setup.path().join("src"));
    let conn = Connection::open(setup.path().join("app.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 321)
         INSERT INTO users(name) SELECT 'u' || i FROM n;",
    )
    .unwrap();
    drop(conn);
    for job in ["pg", "db", "notes"] {
        setup.ok(&["run", job]);
    }
    std::fs::remove_dir_all(setup.path().join("out")).unwrap();
    for job in ["pg", "db", "notes"] {
        assert!(
            setup.list(job).is_empty(),
            "{job}: nothing left on the host"
        );
    }

    let stdout = setup.ok(&["restore", "pg", "--from", "offsite", "--to", "fromcopy"]);
    assert!(
        stdout.contains("downloaded from s3://backups/pg"),
        "{stdout}"
    );
    assert_eq!(
        postgres.psql("fromcopy", "SELECT count(*) FROM users"),
        "500"
    );

    let restored_db = setup.path().join("restored.db");
    setup.ok(&[
        "restore",
        "db",
        "--from",
        "offsite",
        "--to",
        restored_db.to_str().unwrap(),
    ]);
    let count: i64 = Connection::open(&restored_db)
        .unwrap()
        .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 321);

    let restored = setup.path().join("restored");
    setup.ok(&[
        "restore",
        "notes",
        "--from",
        "offsite",
        "--to",
        restored.to_str().unwrap(),
    ]);
    let source = setup.path().join("src");
    let inside = restored.join(source.strip_prefix("/").unwrap());
    assert_eq!(tree(&inside), tree(&source));
    // Drills of the copies: the result goes into each copy's manifest in the bucket.
    for job in ["db", "notes"] {
        setup.ok(&["drill", job, "--from", "offsite"]);
        let copied: Vec<serde_json::Value> = serde_json::from_str(
            &setup.ok(&["list", job, "--from", "offsite", "--output", "json"]),
        )
        .unwrap();
        assert_eq!(copied[0]["restore_test"]["ok"], true, "{copied:#?}");
    }
    // Nothing downloaded is left behind.
    assert!(
        names(&setup.path().join("out/notes"))
            .iter()
            .all(|n| n == ".warden.lock"),
        "{:?}",
        names(&setup.path().join("out/notes"))
    );
}

/// The S3 server dies in the middle of an upload: the backup on the host stands, the copy is
/// counted as failed, and the bucket lists nothing (no object, no manifest) once it is back.
#[test]
fn a_server_killed_mid_upload_leaves_nothing_listed() {
    // 2 MiB/s: a 24 MiB backup takes about 12 s to send.
    let mut server = crate::support::s3::S3Server::start_with(&["--bwlimit", "2M"]);
    let setup = copy_setup(&server, "backups", 2);
    let mut noise = vec![0u8; 24 << 20];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for chunk in noise.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(setup.path().join("src/noise.bin"), noise).unwrap();
    let child = Command::new(warden_bin())
        .args(["backup", "run", "notes", "--config"])
        .arg(&setup.config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The local backup is published before the copy starts.
    wait_for(Duration::from_secs(30), "the backup on the host", || {
        names(&setup.path().join("out"))
            .iter()
            .any(|n| n.ends_with(".manifest.json"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    server.kill();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("Copy failed"),
        "{}",
        stderr(&output)
    );
    server.restart();
    let copied: Vec<serde_json::Value> = serde_json::from_str(
        &setup.ok(&["list", "notes", "--from", "offsite", "--output", "json"]),
    )
    .unwrap();
    assert!(copied.is_empty(), "{copied:#?}");
    let prefix = server.bucket().join("hosts/db1");
    let left: Vec<String> = if prefix.exists() {
        names(&prefix)
    } else {
        Vec::new()
    };
    assert!(
        left.iter().all(|n| !n.ends_with(".manifest.json")),
        "{left:?}"
    );
    let body = setup.metrics();
    assert_eq!(copy_metric(&body, "warden_backup_copy_failures_total"), 1.0);
    assert_eq!(
        copy_metric(&body, "warden_backup_copy_last_success_timestamp_seconds"),
        0.0
    );
    assert_eq!(setup.list("notes").len(), 1);
    // The next run copies again, and removes anything the cut-off upload left.
    setup.ok(&["run", "notes"]);
    let copied: Vec<serde_json::Value> = serde_json::from_str(
        &setup.ok(&["list", "notes", "--from", "offsite", "--output", "json"]),
    )
    .unwrap();
    assert_eq!(copied.len(), 1);
    // Objects only: the parts of the cut-off multipart upload are the server's (rclone keeps
    // them in a hidden directory, S3 until a lifecycle rule aborts the upload) and are no
    // object to list or delete.
    let objects: Vec<String> = names(&prefix)
        .into_iter()
        .filter(|n| !n.starts_with(".rclone_temp_multipart"))
        .collect();
    assert_eq!(objects.len(), 2, "{objects:?}");
}

/// The `parent`'s id of a listed backup, if it is an incremental one.
fn parent(backup: &serde_json::Value) -> Option<&str> {
    backup["parent"].as_str()
}

#[test]
fn incremental_chains_restore_verify_prune_and_start_over_when_broken() {
    let setup = Setup::new(
        "backups:\n  - name: inc\n    kind: files\n    paths: [@/src]\n    destination: @/out\n    retention: {keep_last: 1}\n    incremental: {full_every: 3, retention: {keep_last: 1}}\n    verify: {restore_test: true}\n",
    );
    let src = setup.path().join("src");
    make_tree(&src);
    let out = setup.path().join("out");
    let restore_matches = |name: &str| {
        let target = setup.path().join(name);
        let stdout = setup.ok(&["restore", "inc", "--to", target.to_str().unwrap()]);
        assert!(stdout.contains("counts match the manifest"), "{stdout}");
        assert_eq!(
            tree(&target.join(src.strip_prefix("/").unwrap())),
            tree(&src),
            "{stdout}"
        );
        stdout
    };

    setup.ok(&["run", "inc"]);
    let full = setup.list("inc").remove(0);
    assert_eq!(parent(&full), None, "the first run is a full: {full:#?}");
    assert_eq!(full["tree"], full["files"]);

    // Changed, deleted and new files: the incremental holds only those.
    std::fs::write(src.join("tools/a.json"), br#"{"name":"a","v":2}"#).unwrap();
    std::fs::remove_file(src.join("audit.jsonl")).unwrap();
    std::fs::write(src.join("new.txt"), b"new").unwrap();
    setup.ok(&["run", "inc"]);
    let first = setup.list("inc").remove(0);
    assert_eq!(parent(&first), full["id"].as_str(), "{first:#?}");
    assert_eq!(first["files"]["files"], 2, "{first:#?}");
    assert_eq!(first["files"]["deleted"], 1, "{first:#?}");
    assert!(
        first["size_bytes"].as_u64().unwrap() < full["size_bytes"].as_u64().unwrap(),
        "{first:#?}"
    );
    assert_eq!(
        first["restore_test"]["ok"], true,
        "the drill applies the chain: {first:#?}"
    );
    let stdout = restore_matches("restored1");
    assert!(
        stdout.contains("a full and 1 incrementals applied"),
        "{stdout}"
    );

    // Nothing changed: directories only. keep_last 1 for both levels keeps the chain whole.
    setup.ok(&["run", "inc"]);
    let list = setup.list("inc");
    assert_eq!(
        list.len(),
        3,
        "the newest incremental needs both others: {list:#?}"
    );
    assert_eq!(parent(&list[0]), first["id"].as_str());
    assert_eq!(list[0]["files"]["files"], 0);
    restore_matches("restored2");
    let prune = setup.ok(&["prune", "inc"]);
    assert!(prune.contains("needed by a kept incremental"), "{prune}");
    let verify = setup.ok(&["verify", "inc", list[0]["id"].as_str().unwrap()]);
    assert!(verify.contains("chain complete"), "{verify}");
    assert_eq!(
        verify.matches("sha256").count(),
        3,
        "the whole chain is read: {verify}"
    );

    // full_every 3: the fourth run is a full; the fifth builds on it, and the old chain goes.
    // A killed run's staged index does not stand in the way.
    let private = setup.path().join("state/private/incremental");
    std::fs::write(private.join(".tmp-inc.index"), b"cut short").unwrap();
    setup.ok(&["run", "inc"]);
    assert_eq!(names(&private), vec!["inc.index"]);
    let second_full = setup.list("inc").remove(0);
    assert_eq!(parent(&second_full), None, "{second_full:#?}");
    std::fs::write(src.join("tools/nested/b.json"), br#"{"name":"b","v":2}"#).unwrap();
    setup.ok(&["run", "inc"]);
    let list = setup.list("inc");
    let ids: Vec<&str> = list.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(list.len(), 2, "{ids:?}");
    assert_eq!(parent(&list[0]), second_full["id"].as_str());
    restore_matches("restored3");

    // The full is deleted by hand: the incremental fails verification, and the next run is
    // a full that says why.
    for name in names(&out) {
        if name.starts_with(second_full["id"].as_str().unwrap()) {
            std::fs::remove_file(out.join(name)).unwrap();
        }
    }
    let verify = setup.backup(&["verify", "inc"]);
    assert_eq!(verify.status.code(), Some(4), "{}", stderr(&verify));
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(text.contains("is missing"), "{text}");
    let run = setup.backup(&["run", "inc"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("incremental chain cannot go on"),
        "{}",
        stderr(&run)
    );
    assert_eq!(parent(&setup.list("inc")[0]), None);
    restore_matches("restored4");

    // A lost state directory loses the file index: a full again, then incrementals.
    std::fs::remove_dir_all(setup.path().join("state")).unwrap();
    setup.ok(&["run", "inc"]);
    assert_eq!(parent(&setup.list("inc")[0]), None);
    std::fs::write(src.join("later.txt"), b"later").unwrap();
    setup.ok(&["run", "inc"]);
    let newest = setup.list("inc").remove(0);
    assert!(parent(&newest).is_some(), "{newest:#?}");
    assert_eq!(newest["files"]["files"], 1, "{newest:#?}");
    restore_matches("restored5");
}

/// An incremental chain in the bucket: a copy that failed is made up for by the next run (an
/// incremental's parents go first), and with the host's directory gone the chain restores and
/// drills from the bucket alone.
#[test]
fn an_incremental_chain_restores_from_its_copy_with_the_host_directory_gone() {
    let mut server = crate::support::s3::S3Server::start();
    let setup = copy_setup(&server, "backups", 10);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(
            "    retention: {keep_last: 3}\n",
            "    retention: {keep_last: 3}\n    incremental: {full_every: 10}\n",
        ),
    )
    .unwrap();
    let src = setup.path().join("src");
    setup.ok(&["run", "notes"]);
    let list_copies = || -> Vec<serde_json::Value> {
        serde_json::from_str(&setup.ok(&["list", "notes", "--from", "offsite", "--output", "json"]))
            .unwrap()
    };
    assert_eq!(list_copies().len(), 1);

    // The server is down for the second run: the incremental stands on the host only.
    server.kill();
    std::fs::write(src.join("agenda.txt"), b"1. backups").unwrap();
    setup.ok(&["run", "notes"]);
    let second = setup.list("notes").remove(0);
    assert!(second["parent"].is_string(), "{second:#?}");
    server.restart();

    std::fs::write(src.join("notes.txt"), b"minutes, amended").unwrap();
    setup.ok(&["run", "notes"]);
    let copies = list_copies();
    let ids: Vec<&str> = copies.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(
        copies.len(),
        3,
        "the missed incremental went up first: {ids:?}"
    );
    assert!(ids.contains(&second["id"].as_str().unwrap()), "{ids:?}");

    std::fs::remove_dir_all(setup.path().join("out")).unwrap();
    let restored = setup.path().join("restored");
    let stdout = setup.ok(&[
        "restore",
        "notes",
        "--from",
        "offsite",
        "--to",
        restored.to_str().unwrap(),
    ]);
    assert!(
        stdout.contains("a full and 2 incrementals applied"),
        "{stdout}"
    );
    assert_eq!(
        tree(&restored.join(src.strip_prefix("/").unwrap())),
        tree(&src)
    );
    setup.ok(&["drill", "notes", "--from", "offsite"]);
    assert_eq!(list_copies()[0]["restore_test"]["ok"], true);

    // Verifying the newest copy reads its chain there; without its parent it fails.
    let newest = list_copies()[0]["id"].as_str().unwrap().to_owned();
    let verify = setup.ok(&["verify", "notes", &newest, "--from", "offsite"]);
    assert!(verify.contains("chain complete there"), "{verify}");
    assert_eq!(verify.matches("sha256").count(), 3, "{verify}");
    let bucket = server.bucket().join("hosts/db1");
    for name in names(&bucket) {
        if name.starts_with(second["id"].as_str().unwrap()) {
            std::fs::remove_file(bucket.join(name)).unwrap();
        }
    }
    let verify = setup.backup(&["verify", "notes", &newest, "--from", "offsite"]);
    assert_eq!(verify.status.code(), Some(4), "{}", stderr(&verify));
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("is missing"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}
