//! The deploy files and the compose stack: the shipped files validate with their own tools
//! (promtool, amtool, warden check-config, systemd-analyze, docker-compose config), Grafana's
//! provisioning is consistent with the compose file, and `docker-compose up` brings up
//! PostgreSQL, warden, Prometheus and Alertmanager and closes the backup loop.
//!
//! No registry is reachable on the test machines, so `scripts/docker-images.sh` builds the
//! compose file's images from Debian's packages under the exact names it uses, and the warden
//! image is the Dockerfile's `prebuilt` stage packaging this test's binary (the from-source
//! stage needs `rust:1.95-bookworm`, which cannot be pulled here). Grafana has no Debian
//! package and therefore no stand-in: its service is left out of `up`, and its provisioning
//! is checked statically. A test override only shortens timings (scrape and evaluation
//! intervals, the rules' `for:`, Alertmanager's group timings) through copies of the shipped
//! files; the shipped files are never edited.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::prometheus::encode_query;
use crate::support::{self, free_port, http, require_tool, wait_for};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(command: &mut Command) -> Output {
    let described = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {described}: {e}"))
}

fn run_ok(command: &mut Command) -> String {
    let described = format!("{command:?}");
    let output = run(command);
    assert!(
        output.status.success(),
        "{described} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with every match of `pattern` replaced, failing when nothing matched (so a change
/// to the shipped file cannot silently turn the override into a no-op).
fn shorten(text: &str, pattern: &str, replacement: &str, what: &str) -> String {
    let re = regex::Regex::new(pattern).unwrap();
    assert!(re.is_match(text), "{what}: no `{pattern}` to shorten");
    re.replace_all(text, replacement).into_owned()
}

const ACTIONABLE: [&str; 6] = [
    "BackupStale",
    "BackupNeverSucceeded",
    "PostgresTooManyConnections",
    "PostgresIdleInTransaction",
    "SqliteWalTooLarge",
    "HostFilesystemAlmostOutOfSpace",
];

#[test]
fn deploy_files_validate() {
    let repo = repo();
    let dir = TempDir::new().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "test-token\n").unwrap();

    // Prometheus: the shipped file with the compose paths pointed at this checkout.
    let promtool = require_tool("promtool", "prometheus");
    let shipped = std::fs::read_to_string(repo.join("deploy/prometheus.yml")).unwrap();
    assert!(
        shipped.contains("job_name: warden"),
        "the rules need job=\"warden\""
    );
    let local = shipped
        .replace("/run/secrets/warden/warden-token", token.to_str().unwrap())
        .replace(
            "/etc/prometheus/rules/*.yml",
            repo.join("alert-rules/*.yml").to_str().unwrap(),
        );
    let config = dir.path().join("prometheus.yml");
    std::fs::write(&config, local).unwrap();
    let out = run_ok(
        Command::new(&promtool)
            .arg("check")
            .arg("config")
            .arg(&config),
    );
    assert!(out.contains("SUCCESS"), "promtool: {out}");
    let prometheus = yaml(&repo.join("deploy/prometheus.yml"));
    let jobs: Vec<&str> = prometheus["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["job_name"].as_str())
        .collect();
    assert_eq!(jobs, ["warden", "prometheus", "alertmanager"]);
    assert_eq!(
        prometheus["scrape_configs"][0]["authorization"]["credentials_file"],
        "/run/secrets/warden/warden-token"
    );

    // Alertmanager: syntax, the routing of every actionable alert and of the others.
    let amtool = require_tool("amtool", "prometheus-alertmanager");
    let am_config = repo.join("deploy/alertmanager.yml");
    run_ok(Command::new(&amtool).arg("check-config").arg(&am_config));
    let route = |labels: &[&str]| {
        run_ok(
            Command::new(&amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", am_config.display()))
                .args(labels),
        )
        .trim()
        .to_owned()
    };
    for alert in ACTIONABLE {
        assert_eq!(
            route(&[&format!("alertname={alert}"), "severity=warning"]),
            "warden,people",
            "{alert} must reach warden and people"
        );
    }
    assert_eq!(route(&["alertname=HostHighCpuLoad"]), "people");
    assert_eq!(
        route(&["alertname=WardenDown", "severity=critical"]),
        "people"
    );
    let am = yaml(&am_config);
    let warden_receiver = am["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "warden")
        .expect("a receiver named warden");
    let webhook = &warden_receiver["webhook_configs"][0];
    assert_eq!(webhook["url"], "http://warden:9798/alerts");
    assert_eq!(webhook["send_resolved"], true);
    assert_eq!(
        webhook["http_config"]["authorization"]["credentials_file"],
        "/run/secrets/warden/warden-token"
    );
    let inhibit = &am["inhibit_rules"][0];
    assert_eq!(inhibit["source_matchers"][0], "alertname=\"WardenDown\"");
    assert_eq!(inhibit["target_matchers"][0], "severity=~\"warning|info\"");
    assert_eq!(inhibit["equal"][0], "instance");

    // warden's two configurations, with their secret files present.
    let dsn = dir.path().join("forecast.dsn");
    std::fs::write(
        &dsn,
        "postgres://warden:pw@127.0.0.1:5432/ts_forecast_system\n",
    )
    .unwrap();
    run_ok(
        Command::new(support::warden_bin())
            .arg("check-config")
            .arg(repo.join("deploy/warden.example.yml"))
            .env("WARDEN_TOKEN_FILE", &token)
            .env("FORECAST_DSN_FILE", &dsn),
    );
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("warden-token"), "t\n").unwrap();
    std::fs::write(
        secrets.join("warden.dsn"),
        "postgres://warden:pw@postgres:5432/app?sslmode=disable\n",
    )
    .unwrap();
    let compose_config = std::fs::read_to_string(repo.join("deploy/compose/warden.yml"))
        .unwrap()
        .replace("/run/secrets/warden", secrets.to_str().unwrap());
    let compose_warden = dir.path().join("compose-warden.yml");
    std::fs::write(&compose_warden, compose_config).unwrap();
    run_ok(
        Command::new(support::warden_bin())
            .arg("check-config")
            .arg(&compose_warden),
    );

    // Every actionable alert has a route in both configurations.
    for file in ["deploy/warden.example.yml", "deploy/compose/warden.yml"] {
        let routes = yaml(&repo.join(file))["routes"].clone();
        for alert in ACTIONABLE {
            assert!(
                routes
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["matchers"].to_string().contains(alert)),
                "{file}: no route for {alert}"
            );
        }
    }

    // The systemd unit, with ExecStart pointing at this build.
    let analyze = require_tool("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(repo.join("deploy/warden.service"))
        .unwrap()
        .replace("/usr/local/bin/warden", support::warden_bin());
    let unit_path = dir.path().join("warden.service");
    std::fs::write(&unit_path, unit).unwrap();
    let out = run(Command::new(analyze).arg("verify").arg(&unit_path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("warden.service:"),
        "systemd-analyze verify: {stderr}"
    );
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

#[test]
fn compose_file_and_grafana_provisioning_are_consistent() {
    let repo = repo();
    let compose_bin = require_tool("docker-compose", "docker-compose");
    let out = run_ok(
        Command::new(&compose_bin)
            .arg("-f")
            .arg(repo.join("docker-compose.yml"))
            .arg("config"),
    );
    let resolved: Value = serde_saphyr::from_str(&out).unwrap();
    let services = resolved["services"].as_object().unwrap();
    for name in [
        "secrets",
        "postgres",
        "warden",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    assert_eq!(services["postgres"]["image"], "postgres:15-bookworm");
    assert_eq!(services["prometheus"]["image"], "prom/prometheus:v2.42.0");
    assert_eq!(
        services["alertmanager"]["image"],
        "prom/alertmanager:v0.25.0"
    );
    assert_eq!(services["warden"]["image"], "warden:latest");

    // Published ports only on loopback; every bind-mounted source exists in the repository.
    let compose = yaml(&repo.join("docker-compose.yml"));
    let mut mounts = std::collections::BTreeMap::new();
    for (name, service) in compose["services"].as_object().unwrap() {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(port.starts_with("127.0.0.1:${"), "{name}: port {port}");
        }
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let volume = volume.as_str().unwrap();
            let (source, rest) = volume.split_once(':').unwrap();
            let target = rest.split(':').next().unwrap();
            if let Some(relative) = source.strip_prefix("./") {
                assert!(
                    repo.join(relative).exists(),
                    "{name}: mounts {source}, which does not exist"
                );
                mounts.insert(target.to_owned(), repo.join(relative));
            }
        }
    }

    // Grafana: the datasource the dashboards expect, the provider's path where compose mounts
    // the dashboards, and the home dashboard is the overview.
    let datasources = yaml(&repo.join("grafana/provisioning/datasources/prometheus.yaml"));
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["uid"], "prometheus");
    assert_eq!(datasource["type"], "prometheus");
    assert_eq!(datasource["url"], "http://prometheus:9090");
    let providers = yaml(&repo.join("grafana/provisioning/dashboards/warden.yaml"));
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    let dashboards_dir = mounts
        .get(path)
        .unwrap_or_else(|| panic!("compose mounts nothing at the provider's path {path}"));
    assert!(
        mounts.contains_key("/etc/grafana/provisioning/datasources")
            && mounts.contains_key("/etc/grafana/provisioning/dashboards")
    );
    let home =
        compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
            .as_str()
            .unwrap();
    let home_file = dashboards_dir.join(home.strip_prefix(&format!("{path}/")).unwrap());
    let home_json: Value =
        serde_json::from_str(&std::fs::read_to_string(&home_file).unwrap()).unwrap();
    assert_eq!(home_json["uid"], "warden-overview");
    let mut count = 0;
    for entry in std::fs::read_dir(dashboards_dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(
                !text.contains("\"uid\": \"${DS_") && !text.contains("__inputs"),
                "{}: not provisioning-ready",
                file.display()
            );
            let json: Value = serde_json::from_str(&text).unwrap();
            let datasource_variable = json["templating"]["list"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["type"] == "datasource")
                .unwrap_or_else(|| panic!("{}: no datasource variable", file.display()));
            assert_eq!(datasource_variable["query"], "prometheus");
            count += 1;
        }
    }
    assert!(count >= 6, "{count} dashboards");
}

/// The Docker engine and the compose command, or a failure that says what to install.
fn docker_ready() -> PathBuf {
    let advice = "install Debian's engine and start it: apt-get install -y docker.io \
                  docker-compose debootstrap && (dockerd >/var/log/dockerd.log 2>&1 &) \
                  (scripts/test.sh does both when run as root)";
    let docker = which("docker").unwrap_or_else(|()| panic!("no `docker` command: {advice}"));
    let info = Command::new(&docker)
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker info ({e}): {advice}"));
    assert!(
        info.status.success(),
        "the Docker engine cannot be reached ({}): {advice}",
        String::from_utf8_lossy(&info.stderr).trim()
    );
    which("docker-compose").unwrap_or_else(|()| panic!("no `docker-compose` command: {advice}"))
}

/// Every test stack's project name starts with this, then the test process's pid and `x`.
const PROJECT_PREFIX: &str = "wardenit";

/// Takes down the stacks of earlier test runs whose process is gone without its clean-up
/// (killed by Ctrl-C or a CI timeout): their containers, networks and volumes.
fn remove_leftover_stacks(compose_bin: &Path) {
    let out = run(Command::new("docker").args([
        "ps",
        "-a",
        "--filter",
        "label=com.docker.compose.project",
        "--format",
        "{{.Label \"com.docker.compose.project\"}}",
    ]));
    let projects: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|name| name.starts_with(PROJECT_PREFIX))
        .map(str::to_owned)
        .collect();
    for project in projects {
        let pid = project[PROJECT_PREFIX.len()..]
            .split('x')
            .next()
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            continue;
        }
        eprintln!("compose: removing the leftover stack {project}");
        let _ = run(Command::new(compose_bin)
            .arg("--no-ansi")
            .args(["-p", &project, "-f"])
            .arg(repo().join("docker-compose.yml"))
            .args(["down", "-v", "--remove-orphans", "--timeout", "5"]));
    }
}

/// A compose project, taken down with its volumes when dropped.
struct Stack {
    compose: PathBuf,
    project: String,
    override_file: PathBuf,
    env: Vec<(&'static str, String)>,
    _dir: TempDir,
}

impl Stack {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.compose);
        command
            .arg("--no-ansi")
            .arg("-p")
            .arg(&self.project)
            .arg("-f")
            .arg(repo().join("docker-compose.yml"))
            .arg("-f")
            .arg(&self.override_file)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    fn compose(&self, args: &[&str]) -> String {
        run_ok(self.command().args(args))
    }

    fn port(&self, name: &str) -> SocketAddr {
        let port = &self.env.iter().find(|(k, _)| *k == name).unwrap().1;
        format!("127.0.0.1:{port}").parse().unwrap()
    }

    fn healthy(&self, service: &str) -> bool {
        let id = self.compose(&["ps", "-q", service]);
        let out = run(Command::new("docker")
            .args(["inspect", "-f", "{{.State.Health.Status}}"])
            .arg(id.trim()));
        String::from_utf8_lossy(&out.stdout).trim() == "healthy"
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let logs = run(self.command().args(["logs", "--no-color", "--tail", "60"]));
            eprintln!(
                "compose logs of {}:\n{}",
                self.project,
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        let _ = run(self
            .command()
            .args(["down", "-v", "--remove-orphans", "--timeout", "5"]));
    }
}

fn api(addr: SocketAddr, path: &str) -> Option<Value> {
    let response = http::get(addr, path, &[]).ok()?;
    (response.status == 200)
        .then(|| serde_json::from_str(&response.body).ok())
        .flatten()
}

fn query(addr: SocketAddr, promql: &str) -> Vec<Value> {
    api(
        addr,
        &format!("/api/v1/query?query={}", encode_query(promql)),
    )
    .and_then(|v| v["data"]["result"].as_array().cloned())
    .unwrap_or_default()
}

/// Prometheus' alerts named `name` with label backup="pg-app", with their state.
fn backup_alerts(prometheus: SocketAddr, name: &str) -> Vec<Value> {
    api(prometheus, "/api/v1/alerts")
        .and_then(|v| v["data"]["alerts"].as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name && a["labels"]["backup"] == "pg-app")
        .collect()
}

#[test]
fn compose_stack_starts_and_closes_the_backup_loop() {
    let started = Instant::now();
    let compose_bin = docker_ready();
    let repo = repo();

    // 1. The registry's images, from Debian's packages (cached between runs).
    let images = Instant::now();
    run_ok(&mut Command::new(repo.join("scripts/docker-images.sh")));
    eprintln!(
        "compose: scripts/docker-images.sh took {:.1} s",
        images.elapsed().as_secs_f64()
    );

    // 2. warden's image: the Dockerfile's `prebuilt` stage packaging this test's binary.
    let context = TempDir::new().unwrap();
    std::fs::copy(repo.join("Dockerfile"), context.path().join("Dockerfile")).unwrap();
    std::fs::copy(support::warden_bin(), context.path().join("warden")).unwrap();
    let build = Instant::now();
    run_ok(
        Command::new("docker")
            .args(["build", "-q", "--target", "prebuilt"])
            .args(["--build-arg", "WARDEN_BINARY=warden", "-t", "warden:latest"])
            .arg(context.path()),
    );
    eprintln!(
        "compose: warden image (prebuilt stage) built in {:.1} s",
        build.elapsed().as_secs_f64()
    );
    let user = run_ok(Command::new("docker").args([
        "image",
        "inspect",
        "-f",
        "{{.Config.User}}",
        "warden:latest",
    ]));
    assert!(
        !user.trim().is_empty() && !user.trim().starts_with("0") && user.trim() != "root",
        "the image runs as `{}`",
        user.trim()
    );
    let uid = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "id",
        "warden:latest",
        "-u",
    ]));
    assert_ne!(uid.trim(), "0", "warden's container runs as root");
    let tools = run_ok(Command::new("docker").args([
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "sh",
        "warden:latest",
        "-c",
        "pg_dump --version && pg_restore --version && warden --version",
    ]));
    assert!(tools.contains("pg_dump (PostgreSQL) 15"), "{tools}");
    assert!(tools.contains("pg_restore (PostgreSQL) 15"), "{tools}");

    // 3. The override: copies of the shipped Prometheus, rule and Alertmanager files with
    // shorter timings, nothing else.
    let dir = TempDir::new().unwrap();
    let shipped = |path: &str| std::fs::read_to_string(repo.join(path)).unwrap();
    let prometheus_yml = shorten(
        &shorten(
            &shipped("deploy/prometheus.yml"),
            r"(scrape|evaluation)_interval: \S+",
            "${1}_interval: 1s",
            "prometheus.yml",
        ),
        r"scrape_timeout: \S+",
        "scrape_timeout: 1s",
        "prometheus.yml",
    );
    std::fs::write(dir.path().join("prometheus.yml"), prometheus_yml).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let mut rule_files = 0;
    let for_clause = regex::Regex::new(r"(?m)^(\s+)for: \S+").unwrap();
    for entry in std::fs::read_dir(repo.join("alert-rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let short = for_clause.replace_all(&text, "${1}for: 2s");
            std::fs::write(rules.join(path.file_name().unwrap()), short.as_ref()).unwrap();
            rule_files += 1;
        }
    }
    assert!(
        std::fs::read_to_string(rules.join("backups.yml"))
            .is_ok_and(|t| t.contains("alert: BackupStale")),
        "alert-rules/backups.yml must define BackupStale ({rule_files} rule files)"
    );
    let alertmanager_yml = shorten(
        &shorten(
            &shipped("deploy/alertmanager.yml"),
            r"group_wait: \S+",
            "group_wait: 1s",
            "alertmanager.yml",
        ),
        r"group_interval: \S+",
        "group_interval: 2s",
        "alertmanager.yml",
    );
    std::fs::write(dir.path().join("alertmanager.yml"), alertmanager_yml).unwrap();
    let override_file = dir.path().join("override.yml");
    let d = dir.path().display();
    std::fs::write(
        &override_file,
        format!(
            "# Test timings only (tests/it/compose.rs), and no restarts: a test run killed\n\
             # before its clean-up must not leave containers that come back with dockerd.\n\
             services:\n  \
               postgres:\n    restart: \"no\"\n  \
               warden:\n    restart: \"no\"\n  \
               prometheus:\n    restart: \"no\"\n    volumes:\n      \
                 - {d}/prometheus.yml:/etc/prometheus/prometheus.yml:ro\n      \
                 - {d}/rules:/etc/prometheus/rules:ro\n  \
               alertmanager:\n    restart: \"no\"\n    volumes:\n      \
                 - {d}/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro\n"
        ),
    )
    .unwrap();
    // Prometheus and Alertmanager run as nobody.
    run_ok(Command::new("chmod").arg("-R").arg("a+rX").arg(dir.path()));

    remove_leftover_stacks(&compose_bin);
    let project = format!(
        "{PROJECT_PREFIX}{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let stack = Stack {
        compose: compose_bin,
        project,
        override_file,
        env: vec![
            ("WARDEN_PORT", free_port().to_string()),
            ("PROMETHEUS_PORT", free_port().to_string()),
            ("ALERTMANAGER_PORT", free_port().to_string()),
            ("GRAFANA_PORT", free_port().to_string()),
        ],
        _dir: dir,
    };
    let resolved = stack.compose(&["config"]);
    assert!(
        resolved.contains("/rules:/etc/prometheus/rules:ro"),
        "{resolved}"
    );
    assert!(
        !resolved.contains("alert-rules:/etc/prometheus/rules"),
        "{resolved}"
    );

    // 4. A failed nightly backup: PostgreSQL is initialised, then down when warden starts, so
    // the start-up run of the never-run scheduled job `pg-app` fails. (A scheduled job that
    // never ran runs at start-up, so "never ran" alone is not stale for long.)
    let up = Instant::now();
    stack.compose(&["up", "-d", "--no-build", "postgres"]);
    wait_for(Duration::from_secs(120), "postgres healthy", || {
        stack.healthy("postgres").then_some(())
    });
    stack.compose(&["stop", "postgres"]);
    stack.compose(&["up", "-d", "--no-build", "--no-deps", "warden"]);
    let token = stack.compose(&[
        "exec",
        "-T",
        "warden",
        "cat",
        "/run/secrets/warden/warden-token",
    ]);
    let bearer = format!("Bearer {}", token.trim());
    let warden_addr = stack.port("WARDEN_PORT");
    let warden_metric = |name: &str, labels: &[(&str, &str)]| {
        let response = http::get(
            warden_addr,
            "/metrics",
            &[("Authorization", bearer.as_str())],
        )
        .ok()?;
        (response.status == 200)
            .then(|| support::value(&response.body, name, labels))
            .flatten()
    };
    wait_for(
        Duration::from_secs(60),
        "the start-up backup of pg-app to fail",
        || {
            warden_metric(
                "warden_backup_runs_total",
                &[("backup", "pg-app"), ("result", "failure")],
            )
            .filter(|v| *v >= 1.0)
        },
    );
    assert_eq!(
        warden_metric(
            "warden_backup_last_success_timestamp_seconds",
            &[("backup", "pg-app")]
        ),
        Some(0.0)
    );
    // warden's configuration as mounted, with the generated secrets, passes its own check.
    stack.compose(&[
        "exec",
        "-T",
        "warden",
        "warden",
        "check-config",
        "/etc/warden/warden.yml",
    ]);

    // 5. PostgreSQL is back; warden reconnects over the compose network.
    stack.compose(&["start", "postgres"]);
    wait_for(Duration::from_secs(120), "postgres healthy again", || {
        stack.healthy("postgres").then_some(())
    });
    wait_for(Duration::from_secs(60), "warden's pg_up 1", || {
        warden_metric("pg_up", &[("server", "app")]).filter(|v| *v == 1.0)
    });

    // 6. Prometheus and Alertmanager.
    stack.compose(&[
        "up",
        "-d",
        "--no-build",
        "--no-deps",
        "prometheus",
        "alertmanager",
    ]);
    let prometheus = stack.port("PROMETHEUS_PORT");
    let alertmanager = stack.port("ALERTMANAGER_PORT");
    let targets = wait_for(Duration::from_secs(90), "every target up", || {
        let targets = api(prometheus, "/api/v1/targets")?["data"]["activeTargets"]
            .as_array()?
            .clone();
        let up: Vec<String> = targets
            .iter()
            .filter(|t| t["health"] == "up")
            .filter_map(|t| t["labels"]["job"].as_str().map(str::to_owned))
            .collect();
        (targets.len() == 3 && up.len() == 3).then_some(up)
    });
    eprintln!(
        "compose: stack up, targets {targets:?} up after {:.1} s",
        up.elapsed().as_secs_f64()
    );
    wait_for(Duration::from_secs(30), "pg_up 1 in Prometheus", || {
        query(prometheus, r#"pg_up{job="warden",server="app"} == 1"#)
            .first()
            .cloned()
    });
    let rule_groups = api(prometheus, "/api/v1/rules").unwrap()["data"]["groups"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        rule_groups >= rule_files,
        "{rule_groups} rule groups loaded"
    );

    // 7. The closed loop: BackupStale fires, Alertmanager posts to warden, warden backs up,
    // the alert resolves.
    let loop_started = Instant::now();
    wait_for(
        Duration::from_secs(90),
        "BackupStale firing for pg-app",
        || {
            backup_alerts(prometheus, "BackupStale")
                .iter()
                .any(|a| a["state"] == "firing")
                .then_some(())
        },
    );
    let fired = Instant::now();
    eprintln!(
        "compose: BackupStale firing {:.1} s after Prometheus started evaluating",
        (fired - loop_started).as_secs_f64()
    );
    let mut seen_in_alertmanager = false;
    wait_for(
        Duration::from_secs(120),
        "pg-app backed up and BackupStale resolved",
        || {
            if !seen_in_alertmanager {
                let path = format!(
                    "/api/v2/alerts?filter={}",
                    encode_query(r#"alertname="BackupStale""#)
                );
                seen_in_alertmanager = api(alertmanager, &path)
                    .and_then(|v| v.as_array().cloned())
                    .is_some_and(|alerts| alerts.iter().any(|a| a["labels"]["backup"] == "pg-app"));
            }
            let fresh = query(
                prometheus,
                r#"warden_backup_last_success_timestamp_seconds{backup="pg-app"} > 0"#,
            );
            (!fresh.is_empty() && backup_alerts(prometheus, "BackupStale").is_empty()).then_some(())
        },
    );
    let resolved_at = Instant::now();
    eprintln!(
        "compose: BackupStale for pg-app: firing to resolved in {:.1} s (seen in Alertmanager: {seen_in_alertmanager})",
        (resolved_at - fired).as_secs_f64()
    );
    // Alertmanager's webhook reached warden, which ran the backup action.
    let firing = warden_metric("warden_webhook_alerts_total", &[("status", "firing")]);
    assert!(
        firing.is_some_and(|v| v >= 1.0),
        "webhook alerts: {firing:?}"
    );
    let action = warden_metric(
        "warden_action_runs_total",
        &[("action", "backup-pg-app"), ("result", "success")],
    );
    assert!(
        action.is_some_and(|v| v >= 1.0),
        "backup action runs: {action:?}"
    );
    let am_metrics = http::get(alertmanager, "/metrics", &[]).unwrap().body;
    let sent = support::value(
        &am_metrics,
        "alertmanager_notifications_total",
        &[("integration", "webhook")],
    );
    assert!(
        sent.is_some_and(|v| v >= 1.0),
        "Alertmanager webhook notifications: {sent:?}"
    );
    eprintln!(
        "compose: whole test {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
