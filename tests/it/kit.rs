//! The monitoring kit end to end, with real processes on loopback: the shipped alert rules in
//! a real Prometheus scraping warden, the shipped Alertmanager routing posting to warden's
//! webhook, and warden's actions fixing what the rule saw, so that the alert resolves by itself.
//!
//! The shipped files are read, never edited: a test override shortens only timings (every
//! rule's `for`, the evaluation and scrape intervals, Alertmanager's group timings) and points
//! the `warden` receiver at this test's warden.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::sqlite::create_tutorial_db;
use crate::support::alertmanager::Alertmanager;
use crate::support::postgres::Postgres;
use crate::support::prometheus::Prometheus;
use crate::support::{Warden, value, wait_for};

/// The bearer token Alertmanager sends and warden expects, as in the shipped wiring (a file on
/// both sides).
const TOKEN: &str = "kit-test-token-5e1f0c2b9a";

/// How long a loop may take from the rule firing to the alert resolving.
const LOOP_LIMIT: Duration = Duration::from_secs(90);

/// A path inside the repository.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Reads a shipped YAML file as JSON.
fn shipped_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(repo(path))
        .unwrap_or_else(|err| panic!("reading the shipped {path}: {err}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|err| panic!("parsing the shipped {path}: {err}"))
}

/// Copies every shipped rule file into `dir`, changing only timings: each `for` becomes 1 s and
/// `keep_firing_for` goes, so that a test sees in seconds what takes minutes in production.
/// JSON is YAML to Prometheus, so the copies are written as JSON. Returns the copies.
fn rules_with_short_timings(dir: &Path) -> Vec<PathBuf> {
    let mut copies = Vec::new();
    let mut names: Vec<PathBuf> = std::fs::read_dir(repo("alert-rules"))
        .expect("the shipped alert-rules/ directory")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml"))
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no alert-rules/*.yml shipped");
    for path in names {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let mut rules = shipped_yaml(&format!("alert-rules/{name}"));
        for group in rules["groups"].as_array_mut().expect("groups") {
            for rule in group["rules"].as_array_mut().expect("rules") {
                let rule = rule.as_object_mut().unwrap();
                if rule.contains_key("for") {
                    rule.insert("for".to_owned(), json!("1s"));
                }
                rule.remove("keep_firing_for");
            }
        }
        let copy = dir.join(format!("{name}.json"));
        std::fs::write(&copy, rules.to_string()).unwrap();
        copies.push(copy);
    }
    copies
}

/// The shipped `deploy/alertmanager.yml` with the test's changes only: the `warden` receiver
/// posts to `webhook` with the token from `token_file`, and every route's group timings are
/// seconds.
fn alertmanager_config(webhook: &str, token_file: &Path) -> String {
    let mut config = shipped_yaml("deploy/alertmanager.yml");
    shorten_route_timings(&mut config["route"]);
    let receivers = config["receivers"].as_array_mut().expect("receivers");
    let warden = receivers
        .iter_mut()
        .find(|r| r["name"] == "warden")
        .expect("the shipped alertmanager.yml has a receiver named warden");
    let hooks = warden["webhook_configs"]
        .as_array_mut()
        .expect("the warden receiver is a webhook");
    assert_eq!(hooks.len(), 1, "one webhook for warden: {hooks:?}");
    let hook = &mut hooks[0];
    assert_eq!(hook["send_resolved"], true, "warden needs resolved alerts");
    hook["url"] = json!(webhook);
    hook["http_config"]["authorization"]["credentials_file"] = json!(token_file);
    config.to_string()
}

/// Sets short group timings on a route and all its children.
fn shorten_route_timings(route: &mut Value) {
    let route = route.as_object_mut().expect("a route is a map");
    route.insert("group_wait".to_owned(), json!("0s"));
    route.insert("group_interval".to_owned(), json!("1s"));
    route.insert("repeat_interval".to_owned(), json!("1m"));
    if let Some(children) = route.get_mut("routes").and_then(Value::as_array_mut) {
        for child in children {
            shorten_route_timings(child);
        }
    }
}

/// Prometheus with the shipped rules (short timings), scraping `warden` every second under
/// `job="warden"` and sending to `alertmanager`.
fn prometheus(dir: &Path, warden: &Warden, alertmanager: &Alertmanager) -> Prometheus {
    let rule_files: Vec<String> = rules_with_short_timings(dir)
        .iter()
        .map(|p| format!("'{}'", p.display()))
        .collect();
    Prometheus::start_config(&format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files: [{}]\n\
         alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}']\n\
         scrape_configs:\n  - job_name: warden\n    authorization:\n      credentials: '{TOKEN}'\n    static_configs:\n      - targets: ['{}']\n",
        rule_files.join(", "),
        alertmanager.addr,
        warden.addr,
    ))
}

/// The state of `alertname` in Prometheus for series carrying `label`=`value`: `pending`,
/// `firing`, or `None` when it holds no such alert.
fn alert_state(prometheus: &Prometheus, alertname: &str, label: (&str, &str)) -> Option<String> {
    prometheus
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == alertname && a["labels"][label.0] == label.1)
        .map(|a| a["state"].as_str().unwrap_or_default().to_owned())
        .max_by_key(|state| state == "firing")
}

/// Writes the shared bearer token to a file, as the deployment does, and returns its path.
fn token_file(dir: &Path) -> PathBuf {
    let path = dir.join("token");
    std::fs::write(&path, TOKEN).unwrap();
    path
}

/// Starts Alertmanager on the shipped routing and Prometheus on the shipped rules around
/// `warden`, then waits for `alertname` to fire and resolve, and for Alertmanager to tell
/// warden of the resolution (`send_resolved` in the shipped file); returns the time between
/// firing and resolving. Alertmanager and Prometheus live until the resolved notification has
/// arrived: stopping them as soon as Prometheus drops the alert raced that notification.
fn close_loop(
    dir: &Path,
    warden: &Warden,
    token_file: &Path,
    alertname: &str,
    label: (&str, &str),
) -> Duration {
    let alertmanager = Alertmanager::start_config(&alertmanager_config(
        &format!("http://{}/alerts", warden.addr),
        token_file,
    ));
    let prometheus = prometheus(dir, warden, &alertmanager);
    let took = fired_then_resolved(&prometheus, &alertmanager, warden, alertname, label);
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    wait_for(
        Duration::from_secs(60),
        "warden to receive the resolved notification",
        || {
            let body = warden.get("/metrics", &headers).body;
            (value(
                &body,
                "warden_webhook_alerts_total",
                &[("status", "resolved")],
            )
            .unwrap_or(0.0)
                >= 1.0)
                .then_some(())
        },
    );
    took
}

/// Waits for an alert to fire and then to resolve, and returns the time between the two.
fn fired_then_resolved(
    prometheus: &Prometheus,
    alertmanager: &Alertmanager,
    warden: &Warden,
    alertname: &str,
    label: (&str, &str),
) -> Duration {
    let began = Instant::now();
    wait_for(
        Duration::from_secs(60),
        &format!("{alertname} to fire"),
        || {
            if alert_state(prometheus, alertname, label).as_deref() == Some("firing") {
                return Some(());
            }
            if began.elapsed() > Duration::from_secs(58) {
                eprintln!(
                "backup series: {:?}\nalerts: {:#?}\nprometheus log:\n{}",
                prometheus.query("{__name__=~\"warden_backup_(expected_interval|last_verified_timestamp)_seconds\"}"),
                prometheus.alerts(),
                prometheus.log()
            );
            }
            None
        },
    );
    let fired = Instant::now();
    wait_for(LOOP_LIMIT, &format!("{alertname} to resolve"), || {
        if alert_state(prometheus, alertname, label).is_none() {
            return Some(());
        }
        if fired.elapsed() > LOOP_LIMIT - Duration::from_secs(1) {
            eprintln!(
                "alertmanager log:\n{}\nwarden log:\n{}",
                alertmanager.log(),
                warden.stderr()
            );
        }
        None
    });
    fired.elapsed()
}

/// The closed loop: a backup job that has never run (it has no schedule: warden runs a
/// scheduled one at start-up) makes `BackupStale` fire;
/// Alertmanager posts it to warden; warden runs the backup; the last-success time turns fresh;
/// the alert resolves, and Alertmanager tells warden so.
#[test]
fn stale_backup_alert_makes_warden_back_up_and_then_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let db = dir.path().join("tutorial.db");
    drop(create_tutorial_db(&db, "WAL"));
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\n\
         web: {{bearer_token_file: {token}}}\n\
         sqlite:\n  - {{name: tutorial, path: {db}}}\n\
         backups:\n  - name: tutorial-db\n    kind: sqlite\n    source: sqlite/tutorial\n    destination: {dest}\n    verify: {{required_tables: [users, tutorials, user_progress]}}\n\
         actions:\n  - {{name: backup-tutorial-db, backup: tutorial-db, timeout: 5m, idempotent: true}}\n\
         routes:\n  - name: backup-stale\n    matchers: ['alertname=~\"BackupStale|BackupNeverSucceeded\"', 'backup=\"tutorial-db\"']\n    actions: [backup-tutorial-db]\n    cooldown: 1h\n",
        token = token.display(),
        db = db.display(),
        dest = dir.path().join("backups").display(),
    ));
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let last_success = |warden: &Warden| {
        value(
            &warden.get("/metrics", &headers).body,
            "warden_backup_last_success_timestamp_seconds",
            &[("backup", "tutorial-db")],
        )
    };
    assert_eq!(last_success(&warden), Some(0.0), "the job has never run");

    let took = close_loop(
        dir.path(),
        &warden,
        &token,
        "BackupStale",
        ("backup", "tutorial-db"),
    );
    eprintln!(
        "closed loop: BackupStale fired, warden backed up, the alert resolved {:.1} s after firing",
        took.as_secs_f64()
    );

    let body = warden.get("/metrics", &headers).body;
    let fresh = value(
        &body,
        "warden_backup_last_success_timestamp_seconds",
        &[("backup", "tutorial-db")],
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(now - fresh < 120.0, "last success {fresh} is not fresh");
    assert!(
        value(
            &body,
            "warden_action_runs_total",
            &[("action", "backup-tutorial-db"), ("result", "success")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{body}"
    );
    let rejected = value(
        &warden.get("/metrics", &headers).body,
        "warden_webhook_notifications_total",
        &[("result", "unauthorized")],
    )
    .unwrap_or(0.0);
    assert_eq!(rejected, 0.0, "Alertmanager's credentials were refused");
}

/// The remediation loop: idle sessions crowd PostgreSQL towards `max_connections`, so
/// `PostgresTooManyConnections` fires; warden's `terminate_idle` ends them; the alert resolves.
#[test]
fn too_many_connections_alert_makes_warden_end_idle_sessions_and_then_resolves() {
    let pg = Postgres::start();
    pg.create_database("app");
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path());
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\n\
         web: {{bearer_token_file: {token}}}\n\
         postgres:\n  - {{name: main, dsn: '{dsn}', interval: 1s, timeout: 1s}}\n\
         actions:\n  - name: end-idle\n    sql: {{target: postgres/main, terminate_idle: {{older_than: 1s, max_sessions: 50, states: [idle]}}}}\n    timeout: 1m\n\
         routes:\n  - name: pg-connections\n    matchers: ['alertname=\"PostgresTooManyConnections\"']\n    actions: [end-idle]\n    cooldown: 10s\n",
        token = token.display(),
        dsn = pg.dsn("app"),
    ));
    // The harness cluster has max_connections 30 and 3 reserved: the warning tier is at
    // 80 % of 27, so 22 idle sessions cross it whatever warden's own connection does.
    let sessions: Vec<_> = (0..22)
        .map(|_| pg.spawn_psql_session("app", &["SELECT 1;"]))
        .collect();
    let took = close_loop(
        dir.path(),
        &warden,
        &token,
        "PostgresTooManyConnections",
        ("server", "main"),
    );
    eprintln!(
        "remediation loop: PostgresTooManyConnections fired, warden ended the idle sessions, the alert resolved {:.1} s after firing",
        took.as_secs_f64()
    );
    let left = pg.psql(
        "app",
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'test-session-%'",
    );
    assert_eq!(left.trim(), "0", "idle sessions left: {left}");
    let auth = format!("Bearer {TOKEN}");
    assert!(
        value(
            &warden
                .get("/metrics", &[("Authorization", auth.as_str())])
                .body,
            "warden_action_runs_total",
            &[("action", "end-idle"), ("result", "success")]
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    drop(sessions);
}
