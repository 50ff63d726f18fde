//! A real Prometheus scraping warden, queried through its HTTP API.

use std::time::Duration;

use crate::support::Warden;
use crate::support::prometheus::Prometheus;

#[test]
fn prometheus_scrapes_warden_and_node_mixin_expressions_return_data() {
    let warden = Warden::start("");
    let prometheus = Prometheus::start(&format!(
        "  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        warden.addr
    ));
    let up = prometheus.wait_for_data("up{job=\"warden\"} == 1", Duration::from_secs(30));
    assert_eq!(up.len(), 1);

    // Expressions in the style of node-mixin's recording rules and dashboards.
    let expressions = [
        "1 - avg without (cpu) (sum without (mode) (rate(node_cpu_seconds_total{job=\"warden\", mode=~\"idle|iowait|steal\"}[5s])))",
        "1 - node_memory_MemAvailable_bytes{job=\"warden\"} / node_memory_MemTotal_bytes{job=\"warden\"}",
        "node_load1{job=\"warden\"} / count without (cpu) (count without (mode) (node_cpu_seconds_total{job=\"warden\"}))",
        "1 - node_filesystem_avail_bytes{job=\"warden\", fstype!=\"\", mountpoint=\"/\"} / node_filesystem_size_bytes{job=\"warden\", fstype!=\"\", mountpoint=\"/\"}",
        "rate(node_disk_io_time_seconds_total{job=\"warden\"}[5s])",
        "rate(node_network_receive_bytes_total{job=\"warden\", device=\"lo\"}[5s])",
        "node_time_seconds{job=\"warden\"} - node_boot_time_seconds{job=\"warden\"}",
        "rate(node_vmstat_pgmajfault{job=\"warden\"}[5s])",
        "warden_collector_success{job=\"warden\", collector=\"cpu\"} == 1",
    ];
    for expression in expressions {
        let result = prometheus.wait_for_data(expression, Duration::from_secs(30));
        assert!(!result.is_empty(), "{expression}");
    }

    // The scrape itself was clean: no error on the target, OpenMetrics negotiated.
    let targets = prometheus.targets();
    let target = targets
        .iter()
        .find(|t| t["labels"]["job"] == "warden")
        .expect("warden target");
    assert_eq!(target["health"], "up", "{target}");
    assert_eq!(target["lastError"], "", "{target}");
    assert!(
        prometheus.log().lines().all(|l| !l.contains("level=error")),
        "{}",
        prometheus.log()
    );
}

/// Prometheus owns the target labels `job` and `instance`: a scraped `job` label would be
/// renamed `exported_job`, and every rule would have to say so. The backup families say
/// `backup`, and no `warden_*` series carries an `exported_*` label once scraped.
#[test]
fn backup_series_carry_a_backup_label_that_prometheus_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nbackups:\n  - {{name: tools, kind: files, paths: [{}], destination: {}}}\n",
        src.display(),
        dir.path().join("out").display()
    ));
    let prometheus = Prometheus::start(&format!(
        "  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        warden.addr
    ));
    let runs = prometheus.wait_for_data(
        "warden_backup_runs_total{job=\"warden\", backup=\"tools\", result=\"success\"}",
        Duration::from_secs(30),
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    let renamed = prometheus.query(
        "{__name__=~\"warden_.+\", exported_job!=\"\"} or {__name__=~\"warden_.+\", exported_instance!=\"\"}",
    );
    assert!(renamed.is_empty(), "{renamed:?}");
    let all = prometheus.query("count({__name__=~\"warden_backup_.+\", backup=\"tools\"})");
    assert!(
        !all.is_empty(),
        "no warden_backup_* series with backup=\"tools\""
    );
}

/// The README's stale-backup rule, read from the README itself, evaluated by a real
/// Prometheus: a job without a schedule (expected interval 0) never fires it, though the
/// comparison alone would fire for it.
#[test]
fn the_readme_stale_backup_rule_fires_only_for_scheduled_jobs() {
    let readme = include_str!("../../README.md");
    let marker = "so one rule serves every scheduled job: `";
    let start = readme.find(marker).expect("the rule in the README") + marker.len();
    let expression = &readme[start..start + readme[start..].find('`').unwrap()];

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nbackups:\n  - {{name: nightly, kind: files, paths: [{src}], destination: {out1}, schedule: '0 3 * * *'}}\n  - {{name: manual, kind: files, paths: [{src}], destination: {out2}}}\n",
        src = src.display(),
        out1 = dir.path().join("out1").display(),
        out2 = dir.path().join("out2").display(),
    ));
    let prometheus = Prometheus::start(&format!(
        "  - job_name: warden\n    static_configs:\n      - targets: ['{}']\n",
        warden.addr
    ));
    prometheus.wait_for_data(
        "warden_backup_expected_interval_seconds{backup=\"manual\"}",
        Duration::from_secs(30),
    );
    let firing = prometheus.query(expression);
    let backups: Vec<&str> = firing
        .iter()
        .filter_map(|s| s["metric"]["backup"].as_str())
        .collect();
    assert!(!backups.contains(&"manual"), "{expression}: {firing:?}");
    let unguarded = expression
        .split(" and ")
        .next()
        .expect("the comparison before the guard");
    let without_guard = prometheus.query(unguarded);
    assert!(
        without_guard
            .iter()
            .any(|s| s["metric"]["backup"] == "manual"),
        "the guard is what keeps the unscheduled job out: {without_guard:?}"
    );
}
