//! The command line: exit codes, check-config and `warden metrics`.

use std::process::Command;

use crate::support::warden_bin;

#[test]
fn invalid_config_exits_64_and_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(
        &path,
        "listen: 127.0.0.1:99999\nstate_dirr: /tmp/x\nweb:\n  request_timeout: forever\nhost:\n  timeout: 0s\n",
    )
    .unwrap();
    for args in [
        vec!["check-config"],
        vec!["serve", "--config"],
        vec!["metrics", "--config"],
    ] {
        let output = Command::new(warden_bin())
            .args(&args)
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        for needle in [
            "invalid configuration (4 problems)",
            "listen: `127.0.0.1:99999` is not a socket address",
            "state_dirr: unknown key",
            "web.request_timeout: `forever` is not a duration",
            "host.timeout: must be longer than zero",
        ] {
            assert!(
                stderr.contains(needle),
                "{args:?}: missing {needle:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn unreadable_or_malformed_files_exit_64() {
    let output = Command::new(warden_bin())
        .args(["check-config", "/nonexistent/warden.yml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("cannot read config file /nonexistent/warden.yml")
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yml");
    std::fs::write(&path, "host: {enabled: true\n").unwrap();
    let output = Command::new(warden_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not valid YAML"));
}

#[test]
fn valid_config_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.yml");
    std::fs::write(&path, "listen: 127.0.0.1:9798\nhost: {timeout: 3s}\n").unwrap();
    let output = Command::new(warden_bin())
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("configuration is valid"));
}

#[test]
fn version_flag_prints_the_version() {
    let output = Command::new(warden_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("warden {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn metrics_command_prints_one_collection() {
    let output = Command::new(warden_bin()).arg("metrics").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let body = String::from_utf8(output.stdout).unwrap();
    for family in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "process_resident_memory_bytes",
        "warden_build_info",
    ] {
        assert!(body.contains(&format!("\n{family}")), "missing {family}");
    }
    assert_eq!(
        crate::support::value(&body, "warden_collector_success", &[("collector", "cpu")]),
        Some(1.0)
    );
}

#[test]
fn metrics_command_exits_even_when_a_read_hangs() {
    let (fake, fifo) = crate::serve::hung_procfs();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("w.yml");
    std::fs::write(
        &config,
        format!(
            "host: {{procfs: {}, timeout: 1s, filesystem: {{stat_timeout: 200ms}}}}\n",
            fake.path().display()
        ),
    )
    .unwrap();
    let mut child = Command::new(warden_bin())
        .args(["metrics", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = crate::support::wait_for(
        std::time::Duration::from_secs(10),
        "warden metrics to exit",
        || child.try_wait().unwrap(),
    );
    crate::serve::release(&fifo);
    assert!(status.success(), "{status}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(
        crate::support::value(&out, "warden_collector_success", &[("collector", "cpu")]),
        Some(0.0)
    );
    assert_eq!(
        crate::support::value(
            &out,
            "warden_collector_success",
            &[("collector", "meminfo")]
        ),
        Some(1.0)
    );
}

/// Runs warden in `dir` with `args`, without WARDEN_CONFIG: (exit code, stdout, stderr).
fn warden_in(dir: &std::path::Path, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(warden_bin())
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_CONFIG")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn without_config_the_commands_say_so_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["backup", "list"][..],
        &["backup", "run", "pg-app"],
        &["actions", "list"],
        &["actions", "run", "x"],
    ] {
        let (code, _, stderr) = warden_in(dir.path(), args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("the built-in default configuration")
                && stderr.contains("warden.yml, /etc/warden/warden.yml"),
            "{args:?}: {stderr}"
        );
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was created in the working directory"
    );
}

#[test]
fn warden_yml_in_the_working_directory_is_found_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), "a").unwrap();
    std::fs::write(
        dir.path().join("warden.yml"),
        "state_dir: state\nbackups:\n  - {name: tools, kind: files, paths: [src], destination: out}\nactions:\n  - {name: backup-tools, backup: tools}\n",
    )
    .unwrap();

    // Listing reads; it creates neither the state directory nor the destination.
    let (code, stdout, stderr) = warden_in(dir.path(), &["backup", "list"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("JOB"), "{stdout}");
    assert!(
        !dir.path().join("state").exists(),
        "no state directory for a read-only command"
    );
    assert!(!dir.path().join("out").exists(), "no destination either");
    let (code, _, stderr) = warden_in(dir.path(), &["actions", "history"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("no history yet"), "{stderr}");
    assert!(!dir.path().join("state").exists());
    let (code, stdout, _) = warden_in(dir.path(), &["actions", "list"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("backup-tools"), "{stdout}");

    let (code, _, stderr) = warden_in(dir.path(), &["backup", "run", "pg-app"]);
    assert_ne!(code, Some(0));
    assert!(
        stderr.contains("no backup job named `pg-app` in warden.yml"),
        "{stderr}"
    );
    let (code, _, stderr) = warden_in(dir.path(), &["actions", "run", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no action named `nope` in warden.yml"),
        "{stderr}"
    );

    // A backup that ran is listed afterwards, from the same file.
    let (code, _, stderr) = warden_in(dir.path(), &["backup", "run", "tools"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, _) = warden_in(dir.path(), &["backup", "list", "--output", "json"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("\"tools\""), "{stdout}");
}

#[test]
fn serve_names_its_configuration_in_its_first_log_line() {
    let warden = crate::support::Warden::start("host: {enabled: false}\n");
    let first = warden
        .stderr()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    assert!(first.contains("Starting warden"), "{first}");
    assert!(first.contains("warden.yml"), "{first}");
}

/// Issue 9: log lines carry no ANSI colour when standard error is not a terminal, nor with
/// `NO_COLOR` set.
#[test]
fn logs_to_a_file_or_pipe_are_not_coloured() {
    let warden = crate::support::Warden::start("");
    let _ = warden.get("/metrics", &[]);
    let logged = warden.stderr();
    assert!(logged.contains("warden is serving."), "{logged}");
    assert!(
        !logged.contains("\x1b["),
        "colour in a log file: {logged:?}"
    );
    // A missing SQLite file is logged as a warning by `warden metrics`.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("w.yml");
    std::fs::write(
        &config,
        "host: {enabled: false}\nsqlite:\n  - {name: gone, path: missing.db}\n",
    )
    .unwrap();
    for no_color in [None, Some("1")] {
        let mut command = Command::new(warden_bin());
        command
            .args(["metrics", "--config"])
            .arg(&config)
            .env("RUST_LOG", "debug");
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("WARN"), "nothing logged: {stderr}");
        assert!(
            !stderr.contains("\x1b["),
            "colour with NO_COLOR={no_color:?}: {stderr:?}"
        );
    }
}

/// Issue 9: a second `serve` on a state directory in use says so once, and exits 1.
#[test]
fn state_directory_in_use_is_reported_once() {
    let first = crate::support::Warden::start("");
    let output = Command::new(warden_bin())
        .args(["serve", "--config"])
        .arg(first.path().join("warden.yml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.matches("is in use by another warden").count(),
        1,
        "{stderr}"
    );
}
