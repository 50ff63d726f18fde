//! The webhook and the job queue through a real warden process: authentication, bad input,
//! duplicates, a store that cannot commit, and the command line.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Warden, http, value, wait_for, warden_bin};

const TOKEN: &str = "s3cret-token-for-tests";

/// A warden with a bearer token, one files backup job, an action running it, and a route.
fn warden_with_backup_action(extra: &str) -> Warden {
    // Relative paths are read from the config file's directory, which the fixture owns.
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nweb: {{bearer_token: {TOKEN}}}\nbackups:\n  - {{name: tools, kind: files, paths: [src], destination: out}}\nactions:\n  - {{name: backup-tools, backup: tools}}\nroutes:\n  - match: {{alertname: WardenBackupStale}}\n    actions: [backup-tools]\n{extra}"
    ));
    let src = warden.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "a").unwrap();
    warden
}

fn alert(alertname: &str, fingerprint: &str, status: &str, labels: Value) -> Value {
    let mut all = json!({"alertname": alertname});
    if let (Some(all), Some(extra)) = (all.as_object_mut(), labels.as_object()) {
        for (k, v) in extra {
            all.insert(k.clone(), v.clone());
        }
    }
    json!({
        "status": status,
        "labels": all,
        "annotations": {"summary": "test"},
        "startsAt": "2026-12-02T07:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": fingerprint,
    })
}

fn payload(alerts: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "receiver": "warden\\.hook",
        "status": "firing",
        "alerts": alerts,
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": "{}:{alertname=\"WardenBackupStale\"}",
        "truncatedAlerts": 0,
    }))
    .unwrap()
}

fn post(warden: &Warden, body: &[u8], token: Option<&str>) -> http::Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    http::post(warden.addr, "/alerts", &headers, body).unwrap()
}

fn metric(warden: &Warden, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let auth = format!("Bearer {TOKEN}");
    let body = warden.get("/metrics", &[("Authorization", &auth)]).body;
    value(&body, name, labels)
}

fn runs(warden: &Warden, result: &str) -> f64 {
    metric(
        warden,
        "warden_action_runs_total",
        &[("action", "backup-tools"), ("result", result)],
    )
    .unwrap_or(-1.0)
}

#[test]
fn bad_input_is_refused_with_the_right_status_and_nothing_runs() {
    let warden = warden_with_backup_action("");
    let good = payload(vec![alert("WardenBackupStale", "f1", "firing", json!({}))]);

    assert_eq!(post(&warden, &good, None).status, 401);
    assert_eq!(post(&warden, &good, Some("wrong")).status, 401);

    let huge = vec![b' '; 2 << 20];
    assert_eq!(post(&warden, &huge, Some(TOKEN)).status, 413);

    let invalid = post(&warden, b"{\"version\": \"4\", \"alerts\": [", Some(TOKEN));
    assert_eq!(invalid.status, 400);
    let error: Value = serde_json::from_str(&invalid.body).unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("not an Alertmanager webhook payload")
    );

    let wrong_version = String::from_utf8(good.clone())
        .unwrap()
        .replace("\"version\":\"4\"", "\"version\":\"3\"");
    let response = post(&warden, wrong_version.as_bytes(), Some(TOKEN));
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(response.body.contains("version"), "{}", response.body);

    let bad_status = payload(vec![
        alert("WardenBackupStale", "f1", "firing", json!({})),
        alert("WardenBackupStale", "f2", "exploded", json!({})),
    ]);
    let response = post(&warden, &bad_status, Some(TOKEN));
    assert_eq!(response.status, 400);
    assert!(
        response.body.contains("alerts[1].status"),
        "{}",
        response.body
    );

    // Hostile label values are data: they are routed (no route uses them here) and stored,
    // never run.
    let hostile = payload(vec![alert(
        "Other",
        "f3",
        "firing",
        json!({"instance": "$(touch /tmp/warden-pwned); rm -rf / ../../etc/passwd\n\u{0}", "x": "a".repeat(4000)}),
    )]);
    assert_eq!(post(&warden, &hostile, Some(TOKEN)).status, 200);
    assert!(!std::path::Path::new("/tmp/warden-pwned").exists());

    let counts = |result: &str| {
        metric(
            &warden,
            "warden_webhook_notifications_total",
            &[("result", result)],
        )
        .unwrap()
    };
    assert_eq!(counts("unauthorized"), 2.0);
    assert_eq!(counts("too_large"), 1.0);
    assert_eq!(counts("invalid"), 3.0);
    assert_eq!(counts("accepted"), 1.0);
    assert_eq!(runs(&warden, "success"), 0.0, "{}", warden.stderr());
    let depth = metric(&warden, "warden_action_queue_depth", &[]).unwrap();
    assert_eq!(depth, 0.0);
}

#[test]
fn duplicates_run_once_and_thousands_of_alerts_fit_one_payload() {
    let warden = warden_with_backup_action("    cooldown: 1h\n");
    let one = payload(vec![alert("WardenBackupStale", "dup", "firing", json!({}))]);
    // Concurrent deliveries of one alert, as HA peers and retries make them.
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let addr = warden.addr;
            let body = one.clone();
            std::thread::spawn(move || {
                let auth = format!("Bearer {TOKEN}");
                http::post(addr, "/alerts", &[("Authorization", &auth)], &body)
                    .unwrap()
                    .status
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), 200);
    }
    wait_for(Duration::from_secs(30), "the backup action to run", || {
        (runs(&warden, "success") == 1.0).then_some(())
    });
    assert_eq!(
        metric(
            &warden,
            "warden_action_skipped_total",
            &[("action", "backup-tools"), ("reason", "deduplicated")]
        ),
        Some(31.0)
    );

    // The same alert firing anew (a new startsAt): not a duplicate, but the route's cooldown
    // for its label set holds it back.
    let again = String::from_utf8(one.clone())
        .unwrap()
        .replace("2026-12-02T07:00:00.000Z", "2026-12-02T08:00:00.000Z");
    assert_eq!(post(&warden, again.as_bytes(), Some(TOKEN)).status, 200);
    assert_eq!(
        metric(
            &warden,
            "warden_action_skipped_total",
            &[("action", "backup-tools"), ("reason", "cooldown")]
        ),
        Some(1.0)
    );

    // 3,000 alerts in one payload, none routed: one commit, nothing runs.
    let many: Vec<Value> = (0..3000)
        .map(|i| {
            alert(
                "Unrouted",
                &format!("m{i}"),
                "firing",
                json!({"i": i.to_string()}),
            )
        })
        .collect();
    let response = post(&warden, &payload(many), Some(TOKEN));
    assert_eq!(response.status, 200, "{}", response.body);
    let answer: Value = serde_json::from_str(&response.body).unwrap();
    assert_eq!(answer["alerts"], 3000);
    assert_eq!(answer["queued"], json!([]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(runs(&warden, "success"), 1.0);
}

#[test]
fn a_store_that_cannot_commit_answers_503_and_acknowledges_nothing() {
    let warden = warden_with_backup_action("");
    let store = warden.path().join("state").join("warden.db");
    // Another process holds the store's write lock longer than warden's busy timeout: the
    // commit fails, as it would on a full or read-only disk.
    let blocker = rusqlite::Connection::open(&store).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = payload(vec![alert(
        "WardenBackupStale",
        "blocked",
        "firing",
        json!({}),
    )]);
    let response = post(&warden, &body, Some(TOKEN));
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(
        !response.body.contains("warden.db"),
        "internals stay hidden: {}",
        response.body
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert_eq!(
        metric(
            &warden,
            "warden_webhook_notifications_total",
            &[("result", "unavailable")]
        ),
        Some(1.0)
    );
    // Nothing was acknowledged, so nothing was queued; Alertmanager's retry then goes through.
    assert_eq!(runs(&warden, "success"), 0.0);
    assert_eq!(post(&warden, &body, Some(TOKEN)).status, 200);
    wait_for(
        Duration::from_secs(30),
        "the retried notification's run",
        || (runs(&warden, "success") == 1.0).then_some(()),
    );
    assert!(
        warden.stderr().contains("Cannot commit"),
        "the failure is logged: {}",
        warden.stderr()
    );
}

#[test]
fn the_command_line_runs_simulates_and_shows_history() {
    let mut warden = warden_with_backup_action("");
    let config = warden.path().join("warden.yml");
    let body = payload(vec![
        alert("WardenBackupStale", "sim1", "firing", json!({})),
        alert("Unrouted", "sim2", "firing", json!({})),
    ]);
    let payload_file = warden.path().join("payload.json");
    std::fs::write(&payload_file, &body).unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new(warden_bin())
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (code, out, _) = cli(&[
        "alerts",
        "simulate",
        payload_file.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(code, Some(0));
    let decisions: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(decisions[0]["outcome"], "matched");
    assert_eq!(decisions[0]["actions"][0]["action"], "backup-tools");
    assert_eq!(decisions[0]["actions"][0]["would"], "run backup job tools");
    assert_eq!(decisions[1]["outcome"], "unmatched");
    assert_eq!(
        runs(&warden, "success"),
        0.0,
        "simulate has no side effects"
    );

    // While warden serves, `actions run` queues the job and the server runs it.
    let (code, out, err) = cli(&["actions", "run", "backup-tools"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("succeeded"), "{out}");
    assert_eq!(runs(&warden, "success"), 1.0);

    // Without a server, the command runs it itself.
    warden.terminate(Duration::from_secs(15));
    let (code, out, err) = cli(&["actions", "run", "backup-tools", "--output", "json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let job: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["trigger"], "manual");

    let (code, _, err) = cli(&["actions", "run", "no-such-action"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no action named `no-such-action`"), "{err}");

    let (code, out, _) = cli(&["actions", "history", "--output", "json"]);
    assert_eq!(code, Some(0));
    let jobs: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    let (code, out, _) = cli(&["actions", "history", "--audit", "--limit", "100"]);
    assert_eq!(code, Some(0));
    for event in ["queued", "started", "finished"] {
        assert!(out.contains(event), "{event} in {out}");
    }
}

/// Writes an executable script (the test's stand-in for a service or a probe; warden runs it
/// by its absolute path, never through a shell of its own).
fn script(path: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn history(warden: &Warden) -> Vec<Value> {
    let output = Command::new(warden_bin())
        .args([
            "actions", "history", "--limit", "100", "--output", "json", "--config",
        ])
        .arg(warden.path().join("warden.yml"))
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&output.stderr)))
}

fn audit(warden: &Warden) -> String {
    let output = Command::new(warden_bin())
        .args([
            "actions", "history", "--audit", "--limit", "1000", "--config",
        ])
        .arg(warden.path().join("warden.yml"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn after_kill_9_queued_jobs_run_and_the_running_one_is_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("after-ran");
    let mut warden = Warden::start(&format!(
        "host: {{enabled: false}}\nmax_concurrent_actions: 2\nactions:\n  - {{name: slow, command: [/bin/sleep, '20']}}\n  - {{name: slow-idem, command: [/bin/sleep, '1'], idempotent: true}}\n  - {{name: after, command: [/usr/bin/touch, {marker}]}}\nroutes:\n  - {{match: {{alertname: Slow}}, actions: [slow]}}\n  - {{match: {{alertname: SlowIdem}}, actions: [slow-idem]}}\n  - {{match: {{alertname: After}}, actions: [after]}}\n",
        marker = marker.display()
    ));
    let body = payload(vec![
        alert("Slow", "k1", "firing", json!({})),
        alert("SlowIdem", "k2", "firing", json!({})),
        alert("After", "k3", "firing", json!({})),
    ]);
    let response = post(&warden, &body, None);
    assert_eq!(response.status, 200, "{}", response.body);
    // Two slots: both slow jobs run, `after` waits in the queue.
    wait_for(Duration::from_secs(10), "two jobs running", || {
        let jobs = history(&warden);
        let running = jobs.iter().filter(|j| j["state"] == "running").count();
        let queued = jobs.iter().filter(|j| j["state"] == "queued").count();
        (running == 2 && queued == 1).then_some(())
    });
    warden.kill();
    assert!(!marker.exists());

    warden.restart();
    wait_for(
        Duration::from_secs(20),
        "the queued job and the retry to finish",
        || {
            let jobs = history(&warden);
            let done = jobs
                .iter()
                .all(|j| j["state"] != "queued" && j["state"] != "running");
            (done && jobs.len() == 4).then_some(jobs)
        },
    );
    assert!(marker.exists(), "the queued job ran after the restart");
    let jobs = history(&warden);
    let of =
        |action: &str| -> Vec<&Value> { jobs.iter().filter(|j| j["action"] == action).collect() };
    let slow = of("slow");
    assert_eq!(slow.len(), 1, "not idempotent: not run again: {jobs:?}");
    assert_eq!(slow[0]["state"], "interrupted");
    let idem = of("slow-idem");
    assert_eq!(idem.len(), 2, "{jobs:?}");
    assert!(idem.iter().any(|j| j["state"] == "interrupted"));
    assert!(
        idem.iter()
            .any(|j| j["state"] == "succeeded" && j["trigger"] == "retry")
    );
    assert_eq!(of("after")[0]["state"], "succeeded");
    let log = audit(&warden);
    assert!(log.contains("interrupted"), "{log}");
    assert!(log.contains("found running at start-up"), "{log}");
    let interrupted = value(
        &warden.get("/metrics", &[]).body,
        "warden_action_runs_total",
        &[("action", "slow"), ("result", "interrupted")],
    );
    assert_eq!(interrupted, Some(1.0));
}

#[test]
fn a_restart_with_a_health_check_passes_on_the_second_attempt_or_fails_after_three() {
    let dir = tempfile::tempdir().unwrap();
    let restart = dir.path().join("restart.sh");
    let probe = dir.path().join("probe.sh");
    let never = dir.path().join("never.sh");
    let count = dir.path().join("probes");
    script(
        &restart,
        &format!("echo started >> {}/starts", dir.path().display()),
    );
    // Healthy from the second probe on: the service needs a moment after its restart.
    script(
        &probe,
        &format!(
            "echo x >> {c}; [ $(wc -l < {c}) -ge 2 ]",
            c = count.display()
        ),
    );
    script(&never, "echo 'not healthy' >&2; exit 1");
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nactions:\n  - name: restart-app\n    command: [{restart}]\n    then_check: {{command: [{probe}], attempts: 3, delay: 100ms}}\n  - name: restart-broken\n    command: [{restart}]\n    then_check: {{command: [{never}], attempts: 3, delay: 100ms}}\nroutes:\n  - {{match: {{alertname: AppDown}}, actions: [restart-app]}}\n  - {{match: {{alertname: BrokenDown}}, actions: [restart-broken]}}\n",
        restart = restart.display(),
        probe = probe.display(),
        never = never.display(),
    ));
    let body = payload(vec![
        alert("AppDown", "h1", "firing", json!({})),
        alert("BrokenDown", "h2", "firing", json!({})),
    ]);
    assert_eq!(post(&warden, &body, None).status, 200);
    let runs = |action: &str, result: &str| {
        value(
            &warden.get("/metrics", &[]).body,
            "warden_action_runs_total",
            &[("action", action), ("result", result)],
        )
    };
    wait_for(Duration::from_secs(20), "both restarts to finish", || {
        (runs("restart-app", "success") == Some(1.0)
            && runs("restart-broken", "failure") == Some(1.0))
        .then_some(())
    });
    let jobs = history(&warden);
    let app = jobs.iter().find(|j| j["action"] == "restart-app").unwrap();
    assert!(
        app["summary"]
            .as_str()
            .unwrap()
            .contains("healthy on attempt 2 of 3"),
        "{app}"
    );
    let broken = jobs
        .iter()
        .find(|j| j["action"] == "restart-broken")
        .unwrap();
    let error = broken["error"].as_str().unwrap();
    assert!(error.contains("then_check"), "{error}");
    assert!(error.contains("3"), "the attempts are named: {error}");
    let failed_at = value(
        &warden.get("/metrics", &[]).body,
        "warden_action_last_failure_timestamp_seconds",
        &[("action", "restart-broken")],
    )
    .unwrap();
    assert!(failed_at > 0.0);
}

#[test]
fn dry_runs_and_refused_placeholders_run_nothing_and_the_families_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("touched");
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\nactions:\n  - {{name: rehearse, command: [/usr/bin/touch, {marker}], dry_run: true}}\n  - {{name: note, command: [/usr/bin/touch, '{dir}/{{labels.instance}}']}}\nroutes:\n  - {{match: {{alertname: Rehearse}}, actions: [rehearse]}}\n  - {{match: {{alertname: Note}}, actions: [note]}}\n",
        marker = marker.display(),
        dir = dir.path().display(),
    ));
    let hostile = [
        "$(touch /tmp/warden-pwned)",
        "a;b",
        "../../etc/passwd",
        "-rf",
        "line\nbreak",
        "nul\u{0}byte",
    ];
    let mut alerts = vec![alert("Rehearse", "d1", "firing", json!({}))];
    for (i, value) in hostile.iter().enumerate() {
        alerts.push(alert(
            "Note",
            &format!("n{i}"),
            "firing",
            json!({"instance": value}),
        ));
    }
    alerts.push(alert(
        "Note",
        "ok",
        "firing",
        json!({"instance": "db1:9100"}),
    ));
    assert_eq!(post(&warden, &payload(alerts), None).status, 200);
    let runs = |action: &str, result: &str| {
        value(
            &warden.get("/metrics", &[]).body,
            "warden_action_runs_total",
            &[("action", action), ("result", result)],
        )
    };
    wait_for(Duration::from_secs(20), "every job to finish", || {
        (runs("rehearse", "dry_run") == Some(1.0)
            && runs("note", "failure") == Some(hostile.len() as f64)
            && runs("note", "success") == Some(1.0))
        .then_some(())
    });
    assert!(!marker.exists(), "a dry run does nothing");
    assert!(
        dir.path().join("db1:9100").exists(),
        "a clean value is used"
    );
    assert!(!std::path::Path::new("/tmp/warden-pwned").exists());
    let created: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        created.len(),
        1,
        "only the clean value made a file: {created:?}"
    );
    for job in history(&warden) {
        if job["action"] == "note" && job["state"] == "failed" {
            let error = job["error"].as_str().unwrap();
            assert!(error.contains("placeholder {labels.instance}"), "{error}");
            assert!(
                !error.contains("warden-pwned") && !error.contains("passwd"),
                "never echoed: {error}"
            );
        }
        if job["action"] == "rehearse" {
            assert!(
                job["summary"].as_str().unwrap().starts_with("dry run"),
                "{job}"
            );
        }
    }
    let promtool = crate::support::require_tool("promtool", "prometheus");
    let problems = crate::serve::promtool_check(&promtool, &warden.get("/metrics", &[]).body);
    assert!(problems.is_empty(), "promtool problems: {problems:#?}");
}
