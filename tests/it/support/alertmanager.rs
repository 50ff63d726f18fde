//! Real Alertmanager processes (Debian's `prometheus-alertmanager`) on free loopback ports,
//! alone or as a peered pair, each sending to one webhook receiver with intervals of seconds
//! so that repeats happen while a test watches.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::{free_port, http, require_tool, value, wait_for};

/// Alertmanager's route timing in these tests: a new group is sent at once, a changed one
/// within a second, and a firing one again every two seconds (`repeat_interval`), so that
/// warden sees the re-sends a real deployment sees every few hours.
const ROUTE_TIMING: &str = "group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 2s";

/// Gossip settings for a peered pair: fast gossip so the pair settles in about a second, and
/// a short peer timeout so the second peer sends (or decides not to) soon after the first.
const CLUSTER_FLAGS: [&str; 4] = [
    "--cluster.gossip-interval=50ms",
    "--cluster.pushpull-interval=1s",
    "--cluster.peer-timeout=1s",
    "--cluster.settle-timeout=5s",
];

/// Where Alertmanager's webhook receiver sends, and how it authenticates.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The webhook URL (`https://127.0.0.1:PORT/alerts`).
    pub url: String,
    /// `http_config.basic_auth`: user and password.
    pub basic_auth: Option<(String, String)>,
    /// `http_config.tls_config.ca_file`.
    pub ca_file: Option<PathBuf>,
}

impl Receiver {
    /// The receiver's YAML (the `receivers:` list with one entry named `warden`).
    fn yaml(&self) -> String {
        let mut http_config = Vec::new();
        if let Some((user, password)) = &self.basic_auth {
            http_config.push(format!(
                "basic_auth: {{username: '{user}', password: '{password}'}}"
            ));
        }
        if let Some(ca) = &self.ca_file {
            http_config.push(format!("tls_config: {{ca_file: '{}'}}", ca.display()));
        }
        let http_config = if http_config.is_empty() {
            String::new()
        } else {
            format!(
                "        http_config:\n{}",
                http_config
                    .iter()
                    .map(|line| format!("          {line}\n"))
                    .collect::<String>()
            )
        };
        format!(
            "receivers:\n  - name: warden\n    webhook_configs:\n      - url: '{}'\n        send_resolved: true\n{http_config}",
            self.url
        )
    }
}

/// One Alertmanager child process with its own config and storage.
pub struct Alertmanager {
    child: Child,
    /// Where its API listens (plain HTTP).
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Alertmanager {
    /// Starts one Alertmanager without clustering, sending to `receiver`.
    pub fn start(receiver: &Receiver) -> Alertmanager {
        let mut am = Alertmanager::spawn(receiver, None);
        am.wait_ready();
        am
    }

    /// Starts two Alertmanagers gossiping with each other on loopback, both sending to
    /// `receiver`, as an HA pair is deployed.
    pub fn start_pair(receiver: &Receiver) -> (Alertmanager, Alertmanager) {
        let gossip: [SocketAddr; 2] =
            [0, 1].map(|_| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let mut first = Alertmanager::spawn(receiver, Some((gossip[0], gossip[1])));
        let mut second = Alertmanager::spawn(receiver, Some((gossip[1], gossip[0])));
        first.wait_ready();
        second.wait_ready();
        for am in [&first, &second] {
            wait_for(
                Duration::from_secs(30),
                "both Alertmanagers to see each other",
                || (am.metric("alertmanager_cluster_members", &[]) == Some(2.0)).then_some(()),
            );
        }
        (first, second)
    }

    /// Starts one Alertmanager without clustering on this whole configuration file.
    pub fn start_config(config: &str) -> Alertmanager {
        let mut am = Alertmanager::spawn_config(config, None);
        am.wait_ready();
        am
    }

    /// Writes the config, checks it with `amtool check-config` and starts the process;
    /// `cluster` is (own gossip address, peer's).
    fn spawn(receiver: &Receiver, cluster: Option<(SocketAddr, SocketAddr)>) -> Alertmanager {
        let config = format!(
            "route:\n  receiver: warden\n  group_by: [alertname]\n  {ROUTE_TIMING}\n{}",
            receiver.yaml()
        );
        Alertmanager::spawn_config(&config, cluster)
    }

    /// [`Alertmanager::spawn`] on a whole configuration file.
    fn spawn_config(config: &str, cluster: Option<(SocketAddr, SocketAddr)>) -> Alertmanager {
        let binary = require_tool("prometheus-alertmanager", "prometheus-alertmanager");
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        check_config(&config_path, config);
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=debug");
        match cluster {
            None => {
                command.arg("--cluster.listen-address=");
            }
            Some((own, peer)) => {
                command
                    .arg(format!("--cluster.listen-address={own}"))
                    .arg(format!("--cluster.advertise-address={own}"))
                    .arg(format!("--cluster.peer={peer}"))
                    .args(CLUSTER_FLAGS);
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Alertmanager { child, addr, dir }
    }

    fn wait_ready(&mut self) {
        wait_for(
            Duration::from_secs(30),
            "alertmanager to become ready",
            || {
                if let Some(status) = self.child.try_wait().unwrap() {
                    panic!("alertmanager exited early with {status}: {}", self.log());
                }
                http::get(self.addr, "/-/ready", &[])
                    .ok()
                    .filter(|r| r.status == 200)
            },
        );
    }

    /// Alertmanager's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// Posts alerts (as Prometheus does) to `/api/v2/alerts`.
    pub fn post_alerts(&self, alerts: &[Value]) {
        let body = Value::Array(alerts.to_vec()).to_string();
        let response = http::post_json(self.addr, "/api/v2/alerts", &[], &body)
            .unwrap_or_else(|err| panic!("POST /api/v2/alerts: {err}"));
        assert_eq!(
            response.status,
            200,
            "POST /api/v2/alerts: {}\n{}",
            response.body,
            self.log()
        );
    }

    /// One sample of its `/metrics`, when present.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        http::get(self.addr, "/metrics", &[])
            .ok()
            .and_then(|r| value(&r.body, name, labels))
    }

    /// `alertmanager_notifications_total{integration="webhook"}`: attempts to send, failed
    /// ones included.
    pub fn webhook_notifications(&self) -> f64 {
        self.metric(
            "alertmanager_notifications_total",
            &[("integration", "webhook")],
        )
        .unwrap_or(0.0)
    }

    /// `alertmanager_notifications_failed_total{integration="webhook"}`.
    pub fn webhook_failures(&self) -> f64 {
        self.metric(
            "alertmanager_notifications_failed_total",
            &[("integration", "webhook")],
        )
        .unwrap_or(0.0)
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `amtool check-config FILE`, panicking with its output (and the config) when it fails.
fn check_config(path: &Path, config: &str) {
    let amtool = require_tool("amtool", "prometheus-alertmanager");
    let output = Command::new(amtool)
        .arg("check-config")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "amtool check-config refused the config:\n{config}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// One alert as Prometheus posts it: labels, a summary annotation, `startsAt`, and `endsAt`
/// when given (in the past, it resolves the alert).
pub fn alert(labels: &[(&str, &str)], starts_at: &str, ends_at: Option<&str>) -> Value {
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect();
    let mut alert = json!({
        "labels": labels,
        "annotations": {"summary": "posted by warden's integration tests"},
        "startsAt": starts_at,
        "generatorURL": "http://127.0.0.1:9090/graph",
    });
    if let Some(ends_at) = ends_at {
        alert["endsAt"] = Value::from(ends_at);
    }
    alert
}
