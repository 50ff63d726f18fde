//! warden's webhook behind real Alertmanagers (Debian's `prometheus-alertmanager`): over TLS
//! with basic auth, with `repeat_interval` re-sends, as a gossiping HA pair that may both
//! deliver, and through resolution. What is asserted is what warden promises whatever
//! Alertmanager does: one firing runs its action once.

use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{SecondsFormat, Utc};
use tempfile::TempDir;

use crate::support::alertmanager::{Alertmanager, Receiver, alert};
use crate::support::tls::{self, Pki, tls_launch, web_config};
use crate::support::{Warden, value};

/// The user Alertmanager authenticates as.
const USER: &str = "alertmanager";
/// Its password (never expected in warden's log).
const PASSWORD: &str = "am-s3cret-hook";
/// The longest any step may take; Alertmanager's intervals here are one or two seconds.
const WAIT: Duration = Duration::from_secs(60);
/// The alert the routes match.
const ALERTNAME: &str = "WardenBackupStale";

/// warden over TLS with basic auth, one `files` backup job `tools`, the action
/// `backup-tools` for the firing alert and `backup-tools-resolved` for its resolution.
struct Site {
    pki_dir: TempDir,
    _data: TempDir,
    warden: Warden,
}

impl Site {
    fn start() -> Site {
        let pki_dir = tempfile::tempdir().unwrap();
        let pki = Pki::generate(pki_dir.path(), "warden");
        let web = web_config(pki_dir.path(), USER, PASSWORD);
        let data = tempfile::tempdir().unwrap();
        let src = data.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("tool.sh"), "#!/bin/sh\necho tool\n").unwrap();
        let config = format!(
            "host: {{enabled: false}}\n\
             backups:\n  - {{name: tools, kind: files, paths: [{src}], destination: {out}}}\n\
             actions:\n  - {{name: backup-tools, backup: tools}}\n  - {{name: backup-tools-resolved, backup: tools}}\n\
             routes:\n  - {{match: {{alertname: {ALERTNAME}}}, actions: [backup-tools]}}\n  - {{match: {{alertname: {ALERTNAME}}}, status: resolved, actions: [backup-tools-resolved]}}\n",
            src = src.display(),
            out = data.path().join("out").display(),
        );
        let warden = Warden::start_with(
            &config,
            &tls_launch(
                &pki.ca(),
                vec![format!("--web.config.file={}", web.display())],
            ),
        );
        Site {
            pki_dir,
            _data: data,
            warden,
        }
    }

    /// Alertmanager's receiver for warden's `/alerts`, trusting the test CA, with or without
    /// the credentials.
    fn receiver(&self, with_credentials: bool) -> Receiver {
        Receiver {
            url: format!("https://{}/alerts", self.warden.addr),
            basic_auth: with_credentials.then(|| (USER.to_owned(), PASSWORD.to_owned())),
            ca_file: Some(self.pki_dir.path().join("ca.crt")),
        }
    }

    /// warden's `/metrics`, fetched over TLS with the credentials.
    fn metrics(&self) -> String {
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let authorization = format!("Basic {credentials}");
        let (response, _) = tls::get(
            self.warden.addr,
            &self.pki_dir.path().join("ca.crt"),
            "/metrics",
            &[("Authorization", &authorization)],
        )
        .unwrap_or_else(|err| panic!("GET /metrics over TLS: {err}\n{}", self.warden.stderr()));
        assert_eq!(response.status, 200, "{}", response.body);
        response.body
    }

    /// One sample of warden's `/metrics`; 0 when absent.
    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        value(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    /// Polls `check` every 100 ms for up to [`WAIT`]; on timeout, panics with `what`,
    /// warden's counters and log, and each Alertmanager's log.
    fn wait<T>(
        &self,
        ams: &[&Alertmanager],
        what: &str,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {WAIT:?} waiting for {what}\n{}",
                    self.diagnostics(ams)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// warden's action counters and log, and each Alertmanager's counters and log.
    fn diagnostics(&self, ams: &[&Alertmanager]) -> String {
        let counters: String = self
            .metrics()
            .lines()
            .filter(|l| {
                l.starts_with("warden_webhook_")
                    || l.starts_with("warden_action_runs")
                    || l.starts_with("warden_action_skipped")
                    || l.starts_with("warden_backup_runs")
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let mut out = format!(
            "--- warden counters\n{counters}--- warden stderr\n{}",
            self.warden.stderr()
        );
        for (i, am) in ams.iter().enumerate() {
            out.push_str(&format!(
                "--- alertmanager {i}: {} webhook notifications, {} failed\n{}",
                am.webhook_notifications(),
                am.webhook_failures(),
                am.log()
            ));
        }
        out
    }

    /// `warden_action_runs_total{action, result="success"}`.
    fn successes(&self, action: &str) -> f64 {
        self.metric(
            "warden_action_runs_total",
            &[("action", action), ("result", "success")],
        )
    }

    /// Waits until `action` has succeeded `n` times.
    fn wait_successes(&self, ams: &[&Alertmanager], action: &str, n: f64) {
        self.wait(ams, &format!("{action} to succeed {n} time(s)"), || {
            (self.successes(action) >= n).then_some(())
        });
    }

    /// Asserts that each action ran as often as given, with no other outcome, and that the
    /// backup job ran as often as they did together.
    fn assert_runs(&self, ams: &[&Alertmanager], expected: &[(&str, f64)]) {
        let metrics = self.metrics();
        let mut total = 0.0;
        for (action, n) in expected {
            for result in ["success", "failure", "timeout", "interrupted", "dry_run"] {
                let got = value(
                    &metrics,
                    "warden_action_runs_total",
                    &[("action", action), ("result", result)],
                )
                .unwrap_or(0.0);
                let want = if result == "success" { *n } else { 0.0 };
                assert_eq!(
                    got,
                    want,
                    "warden_action_runs_total{{action=\"{action}\", result=\"{result}\"}}\n{}",
                    self.diagnostics(ams)
                );
            }
            total += n;
        }
        let backups = value(
            &metrics,
            "warden_backup_runs_total",
            &[("backup", "tools"), ("result", "success")],
        )
        .unwrap_or(0.0);
        assert_eq!(
            backups,
            total,
            "warden_backup_runs_total{{backup=\"tools\", result=\"success\"}}\n{}",
            self.diagnostics(ams)
        );
    }
}

/// An RFC 3339 time `offset` from now (negative: in the past).
fn at(offset: chrono::Duration) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn one_firing_runs_once_through_alertmanager_over_tls_whatever_it_resends() {
    let site = Site::start();
    let am = Alertmanager::start(&site.receiver(true));
    let ams = [&am];
    let starts_at = at(chrono::Duration::seconds(-60));
    am.post_alerts(&[alert(
        &[("alertname", ALERTNAME), ("instance", "host-a")],
        &starts_at,
        None,
    )]);
    site.wait_successes(&ams, "backup-tools", 1.0);

    // Alertmanager sends the group again every repeat_interval (2 s): each re-send is
    // accepted and deduplicated, and nothing runs again.
    let sent = am.webhook_notifications();
    assert!(sent >= 1.0, "{}", site.diagnostics(&ams));
    site.wait(&ams, "two re-sends beyond the first", || {
        (am.webhook_notifications() >= sent + 2.0).then_some(())
    });
    let accepted = site.wait(&ams, "warden to accept the re-sends", || {
        let accepted = site.metric(
            "warden_webhook_notifications_total",
            &[("result", "accepted")],
        );
        (accepted >= 3.0).then_some(accepted)
    });
    let deduplicated = site.metric(
        "warden_action_skipped_total",
        &[("action", "backup-tools"), ("reason", "deduplicated")],
    );
    assert!(
        deduplicated >= 1.0 && deduplicated >= accepted - 1.0,
        "{deduplicated} deduplicated for {accepted} accepted\n{}",
        site.diagnostics(&ams)
    );
    assert_eq!(am.webhook_failures(), 0.0, "{}", site.diagnostics(&ams));
    site.assert_runs(
        &ams,
        &[("backup-tools", 1.0), ("backup-tools-resolved", 0.0)],
    );

    // The same route without credentials: 401, which Alertmanager does not retry within a
    // flush but tries again at each group_interval; nothing runs. Another instance, so that
    // it would be a new firing if it got through.
    let anonymous = Alertmanager::start(&site.receiver(false));
    let ams = [&am, &anonymous];
    anonymous.post_alerts(&[alert(
        &[("alertname", ALERTNAME), ("instance", "host-b")],
        &starts_at,
        None,
    )]);
    site.wait(&ams, "a refused notification", || {
        let refused = site.metric(
            "warden_webhook_notifications_total",
            &[("result", "unauthorized")],
        );
        (refused >= 1.0 && anonymous.webhook_failures() >= 1.0).then_some(())
    });
    assert!(
        anonymous.log().contains("401"),
        "Alertmanager's log does not name the 401\n{}",
        site.diagnostics(&ams)
    );
    site.assert_runs(
        &ams,
        &[("backup-tools", 1.0), ("backup-tools-resolved", 0.0)],
    );
    let stderr = site.warden.stderr();
    assert!(!stderr.contains(PASSWORD), "the password reached the log");
}

/// Prometheus sends every alert to every Alertmanager of an HA pair. The pair gossips its
/// notification log, and the second peer holds back for `--cluster.peer-timeout` (1 s here)
/// to see whether the first delivered; whether it then delivers too depends on gossip timing,
/// and Alertmanager's design accepts duplicates ("at-least-once"). So this test asserts what
/// warden guarantees, not how many deliveries occurred: at least two notifications (the
/// repeats alone ensure that), and one run.
#[test]
fn an_ha_pair_sending_the_same_alert_runs_the_action_once() {
    let site = Site::start();
    let (first, second) = Alertmanager::start_pair(&site.receiver(true));
    let ams = [&first, &second];
    let firing = alert(
        &[("alertname", ALERTNAME), ("instance", "host-a")],
        &at(chrono::Duration::seconds(-60)),
        None,
    );
    first.post_alerts(std::slice::from_ref(&firing));
    second.post_alerts(std::slice::from_ref(&firing));
    site.wait_successes(&ams, "backup-tools", 1.0);
    site.wait(&ams, "at least two accepted notifications", || {
        (site.metric(
            "warden_webhook_notifications_total",
            &[("result", "accepted")],
        ) >= 2.0)
            .then_some(())
    });
    // Give the second peer a few repeat intervals to deliver too; it may legitimately not.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline
        && (first.webhook_notifications() == 0.0 || second.webhook_notifications() == 0.0)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "HA pair: the first peer sent {} notification(s), the second {}",
        first.webhook_notifications(),
        second.webhook_notifications()
    );
    let deduplicated = site.metric(
        "warden_action_skipped_total",
        &[("action", "backup-tools"), ("reason", "deduplicated")],
    );
    assert!(deduplicated >= 1.0, "{}", site.diagnostics(&ams));
    site.assert_runs(
        &ams,
        &[("backup-tools", 1.0), ("backup-tools-resolved", 0.0)],
    );

    // Both peers deliver the resolution too: the resolved route runs once, and the second
    // copy cancels nothing the first one queued.
    let resolved = alert(
        &[("alertname", ALERTNAME), ("instance", "host-a")],
        firing["startsAt"].as_str().unwrap(),
        Some(&at(chrono::Duration::seconds(-1))),
    );
    first.post_alerts(std::slice::from_ref(&resolved));
    second.post_alerts(std::slice::from_ref(&resolved));
    site.wait_successes(&ams, "backup-tools-resolved", 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let resolutions = site.wait(&ams, "both peers' resolutions, or 10 s", || {
        let n = site.metric("warden_webhook_alerts_total", &[("status", "resolved")]);
        (n >= 2.0 || Instant::now() >= deadline).then_some(n)
    });
    eprintln!("HA pair: warden received the resolution {resolutions} time(s)");
    site.assert_runs(
        &ams,
        &[("backup-tools", 1.0), ("backup-tools-resolved", 1.0)],
    );
}

#[test]
fn a_resolved_alert_runs_the_resolved_route_once() {
    let site = Site::start();
    let am = Alertmanager::start(&site.receiver(true));
    let ams = [&am];
    let labels = [("alertname", ALERTNAME), ("instance", "host-a")];
    let starts_at = at(chrono::Duration::seconds(-60));
    am.post_alerts(&[alert(&labels, &starts_at, None)]);
    site.wait_successes(&ams, "backup-tools", 1.0);

    // Prometheus resolves an alert by sending it with endsAt in the past.
    am.post_alerts(&[alert(
        &labels,
        &starts_at,
        Some(&at(chrono::Duration::seconds(-1))),
    )]);
    site.wait_successes(&ams, "backup-tools-resolved", 1.0);
    assert!(
        site.metric("warden_webhook_alerts_total", &[("status", "resolved")]) >= 1.0,
        "{}",
        site.diagnostics(&ams)
    );
    // A resolved group is not repeated; a few group intervals later nothing more has run.
    let sent = am.webhook_notifications();
    std::thread::sleep(Duration::from_secs(4));
    site.assert_runs(
        &ams,
        &[("backup-tools", 1.0), ("backup-tools-resolved", 1.0)],
    );
    assert_eq!(
        am.webhook_notifications(),
        sent,
        "Alertmanager kept sending a resolved group\n{}",
        site.diagnostics(&ams)
    );
}
