//! Routes: which actions an alert triggers, decided per alert (never per group) from the
//! configuration alone. The store then applies dedup and cooldowns in the same transaction
//! that queues the jobs (`store::jobs::ingest`).

use std::collections::BTreeMap;

use serde_json::json;

use super::payload::{Alert, Payload, label_set_hash, redacted};
use crate::config::{ActConfig, RouteConfig};
use crate::store::jobs::{Intent, NewJob, Notification};

/// What routing made of one alert, for `warden alerts simulate` and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlertDecision {
    /// The alert's fingerprint.
    pub fingerprint: String,
    /// Its `alertname` label.
    pub alertname: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// What happens: `filtered` (not this instance), `unmatched`, or `matched`.
    pub outcome: &'static str,
    /// (route, action) pairs it triggers.
    pub actions: Vec<(String, String)>,
    /// Whether its queued jobs are cancelled (it resolved).
    pub cancels_queued: bool,
}

/// Routes every alert of `payload` and returns the store's work plus a decision per alert.
pub fn route(config: &ActConfig, payload: &Payload) -> (Notification, Vec<AlertDecision>) {
    let mut intents = Vec::new();
    let mut decisions = Vec::with_capacity(payload.alerts.len());
    for alert in &payload.alerts {
        decisions.push(route_alert(config, alert, &mut intents));
    }
    let audit = json!({
        "receiver": payload.receiver_name(),
        "status": payload.status,
        "group_key": payload.group_key,
        "truncated_alerts": payload.truncated_alerts,
        "alerts": payload.alerts.iter().map(|a| json!({
            "fingerprint": a.fingerprint,
            "status": a.status,
            "starts_at": a.starts_at,
            "labels": redacted(&a.labels),
        })).collect::<Vec<_>>(),
    })
    .to_string();
    (Notification { audit, intents }, decisions)
}

fn route_alert(config: &ActConfig, alert: &Alert, intents: &mut Vec<Intent>) -> AlertDecision {
    let alertname = alert.labels.get("alertname").cloned().unwrap_or_default();
    let mut decision = AlertDecision {
        fingerprint: alert.fingerprint.clone(),
        alertname: alertname.clone(),
        status: alert.status.clone(),
        outcome: "unmatched",
        actions: Vec::new(),
        cancels_queued: false,
    };
    let note = |reason: &str| {
        json!({
            "fingerprint": alert.fingerprint,
            "alertname": alertname,
            "status": alert.status,
            "reason": reason,
        })
        .to_string()
    };
    if let Some(pattern) = &config.webhook.instance_pattern {
        let instance = alert
            .labels
            .get(&config.webhook.instance_label)
            .map_or("", String::as_str);
        if !pattern.is_match(instance) {
            decision.outcome = "filtered";
            intents.push(Intent::Note {
                event: "filtered",
                detail: note("the instance label does not match webhook.instance_pattern"),
            });
            return decision;
        }
    }
    if alert.status == "resolved" {
        decision.cancels_queued = true;
        intents.push(Intent::CancelQueued {
            fingerprint: alert.fingerprint.clone(),
            // Three fields: never equal to a run's key, which ends in its action.
            dedup_key: format!("{}|{}|resolved", alert.fingerprint, alert.starts_at),
        });
    }
    let labels_json = serde_json::to_string(&alert.labels).unwrap_or_else(|_| "{}".to_owned());
    for route in &config.routes {
        if !route.status.accepts(&alert.status)
            || !route.matchers.iter().all(|m| m.matches(&alert.labels))
        {
            continue;
        }
        decision.outcome = "matched";
        for action in &route.actions {
            decision.actions.push((route.name.clone(), action.clone()));
            intents.push(Intent::Run {
                job: NewJob {
                    action: action.clone(),
                    trigger: "alert",
                    route: Some(route.name.clone()),
                    fingerprint: Some(alert.fingerprint.clone()),
                    labels: labels_json.clone(),
                    attempt: 1,
                    retry_of: None,
                    not_before: 0.0,
                },
                dedup_key: format!(
                    "{}|{}|{}|{action}",
                    alert.fingerprint, alert.starts_at, alert.status
                ),
                cooldown: route
                    .cooldown
                    .map(|d| (cooldown_key(route, action, &alert.labels), d.as_secs_f64())),
                detail: json!({
                    "route": route.name,
                    "fingerprint": alert.fingerprint,
                    "alertname": alertname,
                    "status": alert.status,
                    "starts_at": alert.starts_at,
                })
                .to_string(),
            });
        }
        if !route.continue_matching {
            break;
        }
    }
    if decision.outcome == "unmatched" {
        intents.push(Intent::Note {
            event: "unmatched",
            detail: note("no route matched"),
        });
    }
    decision
}

/// (route, action, label set): the label set hashed, so the key stays short whatever the
/// labels.
fn cooldown_key(route: &RouteConfig, action: &str, labels: &BTreeMap<String, String>) -> String {
    format!(
        "{}|{action}|{}",
        route.name,
        hex::encode(&label_set_hash(labels)[..16])
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, ProcessEnv};
    use crate::store::jobs::{self, JobStore, Verdict};

    fn config(yaml: &str) -> Config {
        Config::try_from_yaml(yaml, "test", std::path::Path::new("."), &ProcessEnv).unwrap()
    }

    fn payload(alerts: &str) -> Payload {
        Payload::try_from_slice(format!(r#"{{"version": "4", "alerts": [{alerts}]}}"#).as_bytes())
            .unwrap()
    }

    const ACTIONS: &str = "backups:\n  - {name: db, kind: files, paths: [/etc/hostname], destination: /tmp/warden-routing-test}\nactions:\n  - {name: a, backup: db}\n  - {name: b, backup: db}\n";

    #[test]
    fn routes_per_alert_in_order_with_continue_and_status() {
        let config = config(&format!(
            "{ACTIONS}routes:\n  - {{matchers: ['alertname=\"X\"', 'severity=~\"warn.*\"'], actions: [a], continue: true}}\n  - {{match: {{alertname: X}}, actions: [b]}}\n  - {{match: {{alertname: X}}, actions: [a]}}\n  - {{match: {{alertname: Y}}, status: resolved, actions: [b]}}\n"
        ));
        let p = payload(
            r#"{"status": "firing", "labels": {"alertname": "X", "severity": "warning"}, "startsAt": "t1", "fingerprint": "f1"},
               {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "t2", "fingerprint": "f2"},
               {"status": "firing", "labels": {"alertname": "Y"}, "startsAt": "t3", "fingerprint": "f3"},
               {"status": "resolved", "labels": {"alertname": "Y"}, "startsAt": "t4", "fingerprint": "f4"}"#,
        );
        let (notification, decisions) = route(&config.act, &p);
        let pairs = |i: usize| -> Vec<&str> {
            decisions[i]
                .actions
                .iter()
                .map(|(_, a)| a.as_str())
                .collect()
        };
        assert_eq!(pairs(0), ["a", "b"], "continue, then the first match stops");
        assert_eq!(
            pairs(1),
            ["b"],
            "severity missing: the first route does not match"
        );
        assert_eq!(decisions[2].outcome, "unmatched", "firing Y has no route");
        assert_eq!(pairs(3), ["b"]);
        assert!(decisions[3].cancels_queued);
        let runs = notification
            .intents
            .iter()
            .filter(|i| matches!(i, Intent::Run { .. }))
            .count();
        assert_eq!(runs, 4);
    }

    #[test]
    fn the_instance_filter_keeps_other_hosts_alerts_out() {
        let config = config(&format!(
            "{ACTIONS}routes:\n  - {{match: {{alertname: X}}, actions: [a]}}\nwebhook: {{instance_pattern: 'db1(:[0-9]+)?'}}\n"
        ));
        let p = payload(
            r#"{"status": "firing", "labels": {"alertname": "X", "instance": "db1:9100"}, "startsAt": "t", "fingerprint": "f1"},
               {"status": "firing", "labels": {"alertname": "X", "instance": "db10:9100"}, "startsAt": "t", "fingerprint": "f2"},
               {"status": "firing", "labels": {"alertname": "X"}, "startsAt": "t", "fingerprint": "f3"}"#,
        );
        let (_, decisions) = route(&config.act, &p);
        let outcomes: Vec<&str> = decisions.iter().map(|d| d.outcome).collect();
        assert_eq!(outcomes, ["matched", "filtered", "filtered"]);
    }

    #[test]
    fn cooldown_keys_differ_by_label_set_only() {
        let config = config(&format!(
            "{ACTIONS}routes:\n  - {{match: {{alertname: X}}, actions: [a], cooldown: 1h}}\n"
        ));
        let p = payload(
            r#"{"status": "firing", "labels": {"alertname": "X", "i": "1"}, "startsAt": "t1", "fingerprint": "f1"},
               {"status": "firing", "labels": {"alertname": "X", "i": "1"}, "startsAt": "t2", "fingerprint": "f1"},
               {"status": "firing", "labels": {"alertname": "X", "i": "2"}, "startsAt": "t1", "fingerprint": "f2"}"#,
        );
        let (notification, _) = route(&config.act, &p);
        let keys: Vec<String> = notification
            .intents
            .iter()
            .filter_map(|i| match i {
                Intent::Run { cooldown, .. } => cooldown.as_ref().map(|(k, s)| {
                    assert_eq!(*s, 3600.0);
                    k.clone()
                }),
                _ => None,
            })
            .collect();
        assert_eq!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
    }

    #[test]
    fn a_second_copy_of_a_resolution_leaves_the_resolved_route_s_job_queued() {
        // Both peers of an HA pair deliver the resolution, and Alertmanager retries one whose
        // answer it did not see. The first copy cancels the firing job and queues the
        // resolved route's; a later copy must not cancel that one.
        let config = config(&format!(
            "{ACTIONS}routes:\n  - {{match: {{alertname: X}}, actions: [a]}}\n  - {{match: {{alertname: X}}, status: resolved, actions: [b]}}\n"
        ));
        let alert = |status: &str| {
            payload(&format!(
                r#"{{"status": "{status}", "labels": {{"alertname": "X"}}, "startsAt": "t1", "fingerprint": "f1"}}"#
            ))
        };
        let dir = tempfile::tempdir().unwrap();
        let store = JobStore::open(dir.path()).unwrap();
        let mut conn = jobs::connect(dir.path()).unwrap();
        let (firing, _) = route(&config.act, &alert("firing"));
        let (resolved, _) = route(&config.act, &alert("resolved"));
        let verdicts = jobs::ingest(&mut conn, &[&firing, &resolved], 1.0).unwrap();
        assert!(matches!(verdicts[0][..], [Verdict::Queued(_)]));
        assert!(
            matches!(&verdicts[1][..], [Verdict::Cancelled(a), Verdict::Queued(_)] if a == &["a"]),
            "{verdicts:?}"
        );
        let again = jobs::ingest(&mut conn, &[&resolved], 2.0).unwrap();
        assert!(
            matches!(&again[0][..], [Verdict::Cancelled(a), Verdict::Deduplicated] if a.is_empty()),
            "{again:?}"
        );
        let job = store
            .claim(&["a", "b"], 3.0)
            .unwrap()
            .expect("b is still queued");
        assert_eq!(job.action, "b");
    }
}
