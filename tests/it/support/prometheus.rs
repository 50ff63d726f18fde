//! A real Prometheus server on a free loopback port, with its HTTP API.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::{free_port, http, require_tool, wait_for};

/// A `prometheus` child process with its own config and storage.
pub struct Prometheus {
    child: Child,
    /// Where its web API listens.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus with this `scrape_configs` YAML (a list) and a 1 s global interval.
    pub fn start(scrape_configs: &str) -> Prometheus {
        Prometheus::start_config(&format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"
        ))
    }

    /// Starts Prometheus with this whole configuration file, checked first with
    /// `promtool check config` (which also checks the rule files it names).
    pub fn start_config(config: &str) -> Prometheus {
        let binary = require_tool("prometheus", "prometheus");
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        check_config(&config_path, config);
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut prometheus = Prometheus { child, addr, dir };
        wait_for(
            Duration::from_secs(30),
            "prometheus to become ready",
            || {
                if let Some(status) = prometheus.child.try_wait().unwrap() {
                    panic!("prometheus exited with {status}: {}", prometheus.log());
                }
                http::get(addr, "/-/ready", &[])
                    .ok()
                    .filter(|r| r.status == 200)
            },
        );
        prometheus
    }

    /// Prometheus' own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant query and returns the `data.result` vector.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        self.try_query(promql)
            .unwrap_or_else(|err| panic!("query {promql}: {err}"))
    }

    /// Runs an instant query: the `data.result` vector, or Prometheus' answer when it is not a
    /// success (a parse error is `400` with `errorType: bad_data`).
    pub fn try_query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let path = format!("/api/v1/query?query={}", encode_query(promql));
        let response = http::get(self.addr, &path, &[]).map_err(|err| err.to_string())?;
        let json: Value = serde_json::from_str(&response.body)
            .map_err(|err| format!("{err}: {}", response.body))?;
        if response.status != 200 || json["status"] != "success" {
            return Err(format!("HTTP {}: {}", response.status, response.body));
        }
        Ok(json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    /// The active targets from `/api/v1/targets`.
    pub fn targets(&self) -> Vec<Value> {
        let response = http::get(self.addr, "/api/v1/targets", &[]).unwrap();
        let json: Value = serde_json::from_str(&response.body).unwrap();
        json["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The alerts its rules hold now, pending and firing, from `/api/v1/alerts`.
    pub fn alerts(&self) -> Vec<Value> {
        let response = http::get(self.addr, "/api/v1/alerts", &[]).unwrap();
        assert_eq!(
            response.status, 200,
            "GET /api/v1/alerts: {}",
            response.body
        );
        let json: Value = serde_json::from_str(&response.body).unwrap();
        json["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `promql` returns at least one series, and returns them.
    pub fn wait_for_data(&self, promql: &str, limit: Duration) -> Vec<Value> {
        wait_for(limit, &format!("data for {promql}"), || {
            let result = self.query(promql);
            (!result.is_empty()).then_some(result)
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check config FILE`, panicking with its output (and the config) when it fails.
fn check_config(path: &std::path::Path, config: &str) {
    let promtool = require_tool("promtool", "prometheus");
    let output = Command::new(promtool)
        .args(["check", "config"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool check config refused the config:\n{config}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Percent-encodes a query string value.
pub fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}
