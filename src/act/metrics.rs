//! The `warden_webhook_*` and `warden_action_*` families.
//!
//! Counters live in memory (they restart at zero with the process, as Prometheus expects of
//! counters); the last success and failure times are read back from the store at start-up,
//! so "stale" rules do not fire after a restart. Every configured action has every series
//! from start-up. The queue depth is read from the store at each scrape, so jobs queued by
//! `warden actions run` in another process count too.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::queue::Actions;
use crate::collect::{self, BlockingCollector, Family, HistogramSample};

/// `warden_action_duration_seconds` buckets: from a quick SQL statement to an hour-long backup.
const DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];

/// How a notification was answered: the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationResult {
    /// 200: every resulting job committed.
    Accepted,
    /// 400: not a webhook payload, or a wrong version.
    Invalid,
    /// 413: above `webhook.max_body_bytes`.
    TooLarge,
    /// 401: no or wrong credentials.
    Unauthorized,
    /// 503: the store could not commit; Alertmanager retries.
    Unavailable,
}

impl NotificationResult {
    /// Every value, in declaration order: `value as usize` indexes the counters.
    const ALL: [NotificationResult; 5] = [
        NotificationResult::Accepted,
        NotificationResult::Invalid,
        NotificationResult::TooLarge,
        NotificationResult::Unauthorized,
        NotificationResult::Unavailable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            NotificationResult::Accepted => "accepted",
            NotificationResult::Invalid => "invalid",
            NotificationResult::TooLarge => "too_large",
            NotificationResult::Unauthorized => "unauthorized",
            NotificationResult::Unavailable => "unavailable",
        }
    }
}

/// How a job ended: the `result` label of `warden_action_runs_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunResult {
    /// The action (and its check) succeeded.
    Success,
    /// It failed.
    Failure,
    /// It ran past its timeout and was stopped.
    Timeout,
    /// warden stopped while it ran.
    Interrupted,
    /// A dry run: nothing was done.
    DryRun,
}

impl RunResult {
    /// Every value, in declaration order: `value as usize` indexes the counters.
    const ALL: [RunResult; 5] = [
        RunResult::Success,
        RunResult::Failure,
        RunResult::Timeout,
        RunResult::Interrupted,
        RunResult::DryRun,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Failure => "failure",
            RunResult::Timeout => "timeout",
            RunResult::Interrupted => "interrupted",
            RunResult::DryRun => "dry_run",
        }
    }
}

/// Why an action was not queued: the `reason` label of `warden_action_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// The same firing was already seen (HA duplicate, retry, repeat_interval).
    Deduplicated,
    /// Within its route's cooldown.
    Cooldown,
    /// Queued, then cancelled because the alert resolved.
    Resolved,
}

impl SkipReason {
    /// Every value, in declaration order: `value as usize` indexes the counters.
    const ALL: [SkipReason; 3] = [
        SkipReason::Deduplicated,
        SkipReason::Cooldown,
        SkipReason::Resolved,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SkipReason::Deduplicated => "deduplicated",
            SkipReason::Cooldown => "cooldown",
            SkipReason::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Default, Clone)]
struct PerAction {
    runs: [u64; 5],
    skipped: [u64; 3],
    running: u64,
    last_success: f64,
    last_failure: f64,
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

/// The counters and gauges; shared by the webhook handler and the job runner.
#[derive(Debug)]
pub struct ActionMetrics {
    notifications: [AtomicU64; 5],
    alerts: [AtomicU64; 2],
    truncated: AtomicU64,
    actions: Mutex<BTreeMap<String, PerAction>>,
}

impl ActionMetrics {
    /// Series for each of `actions`, with last outcomes from the store: (action, last
    /// success, last failure).
    pub fn new<'a>(
        actions: impl IntoIterator<Item = &'a str>,
        last: &[(String, f64, f64)],
    ) -> ActionMetrics {
        let mut map: BTreeMap<String, PerAction> = actions
            .into_iter()
            .map(|a| (a.to_owned(), PerAction::default()))
            .collect();
        for (action, success, failure) in last {
            if let Some(entry) = map.get_mut(action) {
                entry.last_success = *success;
                entry.last_failure = *failure;
            }
        }
        ActionMetrics {
            notifications: Default::default(),
            alerts: Default::default(),
            truncated: AtomicU64::new(0),
            actions: Mutex::new(map),
        }
    }

    fn with<T>(&self, action: &str, f: impl FnOnce(&mut PerAction) -> T) -> Option<T> {
        let mut map = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        map.get_mut(action).map(f)
    }

    /// Counts a notification by how it was answered.
    pub fn notification(&self, result: NotificationResult) {
        self.notifications[result as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted notification's alerts and truncated alerts.
    pub fn alerts(&self, firing: u64, resolved: u64, truncated: u64) {
        self.alerts[0].fetch_add(firing, Ordering::Relaxed);
        self.alerts[1].fetch_add(resolved, Ordering::Relaxed);
        self.truncated.fetch_add(truncated, Ordering::Relaxed);
    }

    /// Counts an action not queued.
    pub fn skipped(&self, action: &str, reason: SkipReason) {
        self.with(action, |a| a.skipped[reason as usize] += 1);
    }

    /// A job of `action` started running.
    pub fn started(&self, action: &str) {
        self.with(action, |a| a.running += 1);
    }

    /// A job of `action` ended at `now` (Unix seconds) after `duration`.
    pub fn finished(&self, action: &str, result: RunResult, duration: Duration, now: f64) {
        self.with(action, |a| {
            a.running = a.running.saturating_sub(1);
            a.runs[result as usize] += 1;
            match result {
                RunResult::Success | RunResult::DryRun => a.last_success = now,
                RunResult::Failure | RunResult::Timeout | RunResult::Interrupted => {
                    a.last_failure = now
                }
            }
            let seconds = duration.as_secs_f64();
            let bucket = DURATION_BUCKETS
                .iter()
                .position(|b| seconds <= *b)
                .unwrap_or(DURATION_BUCKETS.len());
            a.buckets[bucket] += 1;
            a.sum += seconds;
            a.count += 1;
        });
    }

    /// A job found running at start-up: its process died, so it counts as interrupted now.
    pub fn interrupted_at_start(&self, action: &str) {
        let now = crate::act::queue::unix_now();
        self.with(action, |a| {
            a.runs[RunResult::Interrupted as usize] += 1;
            a.last_failure = now;
        });
    }

    /// The families, with the queue depth read by the caller.
    pub fn families(&self, queue_depth: u64) -> Vec<Family> {
        let mut notifications = Family::counter(
            "warden_webhook_notifications_total",
            "Webhook notifications by how they were answered: accepted (200, jobs committed), invalid (400), too_large (413), unauthorized (401), unavailable (503, the store could not commit).",
        );
        for (result, n) in NotificationResult::ALL.iter().zip(&self.notifications) {
            notifications.push(
                [("result", result.as_str().to_owned())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        let mut alerts = Family::counter(
            "warden_webhook_alerts_total",
            "Alerts in accepted notifications, by status.",
        );
        for (status, n) in ["firing", "resolved"].iter().zip(&self.alerts) {
            alerts.push(
                [("status", (*status).to_owned())],
                n.load(Ordering::Relaxed) as f64,
            );
        }
        let truncated = {
            let mut f = Family::counter(
                "warden_webhook_truncated_alerts_total",
                "Alerts Alertmanager left out of notifications (the receiver's max_alerts).",
            );
            f.push_unlabelled(self.truncated.load(Ordering::Relaxed) as f64);
            f
        };
        let mut runs = Family::counter(
            "warden_action_runs_total",
            "Finished jobs by action and result: success, failure, timeout, interrupted, dry_run.",
        );
        let mut skipped = Family::counter(
            "warden_action_skipped_total",
            "Actions not run, by reason: deduplicated (the same firing again), cooldown, resolved (cancelled while queued).",
        );
        let mut running = Family::gauge(
            "warden_action_running",
            "Jobs of the action running now in this process.",
        );
        let mut last_success = Family::gauge(
            "warden_action_last_success_timestamp_seconds",
            "When a job of the action last succeeded; 0 if never.",
        );
        let mut last_failure = Family::gauge(
            "warden_action_last_failure_timestamp_seconds",
            "When a job of the action last failed, timed out or was interrupted; 0 if never.",
        );
        let mut duration = Family::histogram(
            "warden_action_duration_seconds",
            "How long the action's jobs ran, check included.",
        );
        let map = self.actions.lock().unwrap_or_else(PoisonError::into_inner);
        for (name, a) in map.iter() {
            for (result, n) in RunResult::ALL.iter().zip(a.runs) {
                runs.push(
                    [
                        ("action", name.clone()),
                        ("result", result.as_str().to_owned()),
                    ],
                    n as f64,
                );
            }
            for (reason, n) in SkipReason::ALL.iter().zip(a.skipped) {
                skipped.push(
                    [
                        ("action", name.clone()),
                        ("reason", reason.as_str().to_owned()),
                    ],
                    n as f64,
                );
            }
            running.push([("action", name.clone())], a.running as f64);
            last_success.push([("action", name.clone())], a.last_success);
            last_failure.push([("action", name.clone())], a.last_failure);
            let bounds = DURATION_BUCKETS.iter().copied().chain([f64::INFINITY]);
            duration.histograms.push(HistogramSample {
                labels: vec![(Cow::Borrowed("action"), name.clone())],
                buckets: bounds.zip(a.buckets).collect(),
                sum: a.sum,
                count: a.count,
            });
        }
        drop(map);
        let depth = Family::single_gauge(
            "warden_action_queue_depth",
            "Jobs waiting to run (including retries waiting for their backoff).",
            queue_depth as f64,
        );
        vec![
            notifications,
            alerts,
            truncated,
            runs,
            skipped,
            running,
            last_success,
            last_failure,
            duration,
            depth,
        ]
    }
}

/// The collector: the families above, with the queue depth from the store.
pub struct ActionCollector {
    actions: Arc<Actions>,
    timeout: Duration,
}

impl ActionCollector {
    /// Reports on `actions`; a scrape gives up after `timeout`.
    pub fn new(actions: Arc<Actions>, timeout: Duration) -> Arc<Self> {
        Arc::new(ActionCollector { actions, timeout })
    }
}

impl BlockingCollector for ActionCollector {
    fn name(&self) -> &str {
        "actions"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, collect::Error> {
        let depth = self
            .actions
            .store()
            .queue_depth()
            .map_err(collect::Error::Store)?;
        Ok(self.actions.metrics().families(depth))
    }
}
