//! The durable job queue and its runner: [`Actions`].
//!
//! Notifications are routed in memory, then handed to one writer thread that commits them in
//! groups: every notification that arrives while a transaction is being written joins the
//! next one, so one fsync acknowledges many (`store::jobs::ingest`). The webhook answers only
//! after its notification's transaction is durable.
//!
//! Tasks (spawned by [`Actions::spawn`] on the app's tracker, each under a child of the root
//! token):
//! - the dispatcher: takes the oldest due job whose action has a free slot (per-action
//!   `max_concurrent`, global `max_concurrent_actions`) and runs it; woken by new jobs and
//!   finished ones, and every second for jobs queued by another process;
//! - one scheduler per action with a `schedule`;
//! - the pruner: drops audit entries, finished jobs and dedup keys past
//!   `webhook.audit_retention`, hourly.
//!
//! At start-up, jobs a killed warden left `running` are marked interrupted and, when their
//! action is `idempotent`, queued again; queued jobs simply run.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::kinds::{ActionError, JobContext, Outcome};
use super::metrics::{ActionMetrics, RunResult, SkipReason};
use super::payload::Payload;
use super::routing::{self, AlertDecision};
use crate::backup::Backups;
use crate::collect::ErrorChain;
use crate::config::{ActConfig, ActionConfig, Config};
use crate::store::StoreError;
use crate::store::jobs::{self, Ended, JobRow, JobState, JobStore, NewJob, Notification, Verdict};

/// The most notifications committed in one transaction.
const MAX_BATCH: usize = 256;
/// Notifications waiting for the writer before the webhook waits for room.
const INGEST_QUEUE: usize = 4096;
/// How often the dispatcher looks for jobs queued by another process.
const POLL: Duration = Duration::from_secs(1);
/// How long a kind may take to stop after its timeout before the job is recorded anyway.
const CANCEL_GRACE: Duration = Duration::from_secs(30);
/// How often old audit entries are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why the queue could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ActError {
    /// The store could not commit; nothing was queued.
    #[error("the state store could not commit")]
    Store(#[source] Arc<StoreError>),
    /// The writer thread is gone (shutdown).
    #[error("the state store's writer has stopped")]
    WriterGone,
    /// No such action.
    #[error("no action named `{action}` in {origin}")]
    UnknownAction {
        /// The name asked for.
        action: String,
        /// Where the configuration came from.
        origin: String,
    },
}

/// What an accepted notification led to.
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    /// Per alert: what routing decided.
    pub decisions: Vec<AlertDecision>,
    /// The jobs queued.
    pub queued: Vec<i64>,
}

struct IngestRequest {
    notification: Notification,
    reply: oneshot::Sender<Result<Vec<Verdict>, Arc<StoreError>>>,
}

/// The actions service: configuration, store, metrics and slots.
pub struct Actions {
    config: ActConfig,
    /// Where the configuration came from, for "no action named …".
    origin: String,
    store: Arc<JobStore>,
    ingest: mpsc::Sender<IngestRequest>,
    wake: Notify,
    metrics: ActionMetrics,
    backups: Option<Arc<Backups>>,
    global: Arc<Semaphore>,
    per_action: HashMap<String, Arc<Semaphore>>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Actions {
    /// Opens the job store in the state directory and starts the writer thread. `backups`
    /// serves the `backup` kind.
    ///
    /// # Errors
    /// When the store cannot be opened.
    pub fn open(
        config: &Config,
        backups: Option<Arc<Backups>>,
    ) -> Result<Arc<Actions>, StoreError> {
        let store = Arc::new(JobStore::open(&config.state_dir)?);
        let conn = jobs::connect(&config.state_dir)?;
        let (ingest, receiver) = mpsc::channel(INGEST_QUEUE);
        let path = config.state_dir.join(crate::store::STORE_FILE);
        let gate = store.write_gate();
        std::thread::Builder::new()
            .name("warden-ingest".to_owned())
            .spawn(move || write_loop(conn, receiver, path, gate))
            .map_err(|source| StoreError::Dir {
                path: config.state_dir.clone(),
                source,
            })?;
        let act = &config.act;
        let last = store.last_outcomes()?;
        let metrics = ActionMetrics::new(act.actions.iter().map(|a| a.name.as_str()), &last);
        let per_action = act
            .actions
            .iter()
            .map(|a| (a.name.clone(), Arc::new(Semaphore::new(a.max_concurrent))))
            .collect();
        Ok(Arc::new(Actions {
            config: act.clone(),
            origin: config.origin.to_string(),
            store,
            ingest,
            wake: Notify::new(),
            metrics,
            backups,
            global: Arc::new(Semaphore::new(act.max_concurrent_actions)),
            per_action,
        }))
    }

    /// The job store.
    pub fn store(&self) -> &JobStore {
        &self.store
    }

    /// The counters.
    pub fn metrics(&self) -> &ActionMetrics {
        &self.metrics
    }

    /// The configuration.
    pub fn config(&self) -> &ActConfig {
        &self.config
    }

    /// Routes `payload` and commits what it asks for; returns once the transaction is
    /// durable.
    ///
    /// # Errors
    /// [`ActError::Store`] when the store could not commit: nothing was queued, and the
    /// webhook answers 503 so that Alertmanager retries.
    pub async fn accept(&self, payload: &Payload) -> Result<Accepted, ActError> {
        let (notification, decisions) = routing::route(&self.config, payload);
        let runs: Vec<Option<String>> = notification
            .intents
            .iter()
            .map(|intent| match intent {
                jobs::Intent::Run { job, .. } => Some(job.action.clone()),
                _ => None,
            })
            .collect();
        let (reply, answer) = oneshot::channel();
        self.ingest
            .send(IngestRequest {
                notification,
                reply,
            })
            .await
            .map_err(|_| ActError::WriterGone)?;
        let verdicts = answer
            .await
            .map_err(|_| ActError::WriterGone)?
            .map_err(ActError::Store)?;
        let firing = payload
            .alerts
            .iter()
            .filter(|a| a.status == "firing")
            .count() as u64;
        let resolved = payload.alerts.len() as u64 - firing;
        self.metrics
            .alerts(firing, resolved, payload.truncated_alerts);
        if payload.truncated_alerts > 0 {
            tracing::warn!(
                truncated = payload.truncated_alerts,
                group = %payload.group_key.escape_debug(),
                "Alertmanager left alerts out of a notification (the receiver's max_alerts); they were not routed."
            );
        }
        let mut queued = Vec::new();
        for (verdict, action) in verdicts.iter().zip(&runs) {
            match (verdict, action) {
                (Verdict::Queued(id), _) => queued.push(*id),
                (Verdict::Deduplicated, Some(action)) => {
                    self.metrics.skipped(action, SkipReason::Deduplicated)
                }
                (Verdict::CooledDown, Some(action)) => {
                    self.metrics.skipped(action, SkipReason::Cooldown)
                }
                (Verdict::Cancelled(cancelled), _) => {
                    for action in cancelled {
                        self.metrics.skipped(action, SkipReason::Resolved);
                    }
                }
                _ => {}
            }
        }
        if !queued.is_empty() {
            self.wake.notify_one();
        }
        Ok(Accepted { decisions, queued })
    }

    /// Queues a run of `action` (`warden actions run`, a schedule); returns the job's id.
    ///
    /// # Errors
    /// An unknown action, or the store failing.
    pub async fn enqueue(&self, action: &str, trigger: &'static str) -> Result<i64, ActError> {
        if self.config.action(action).is_none() {
            return Err(ActError::UnknownAction {
                action: action.to_owned(),
                origin: self.origin.clone(),
            });
        }
        let store = Arc::clone(&self.store);
        let job = NewJob {
            action: action.to_owned(),
            trigger,
            attempt: 1,
            labels: "{}".to_owned(),
            ..NewJob::default()
        };
        let id = blocking(move || {
            store.enqueue(
                &job,
                unix_now(),
                &serde_json::json!({"trigger": job.trigger}).to_string(),
            )
        })
        .await
        .map_err(|err| ActError::Store(Arc::new(err)))?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Starts the dispatcher, the schedulers and the pruner on `tracker`; first marks jobs
    /// left running by a killed warden as interrupted and queues the idempotent ones again.
    /// Only `warden serve`, holding the state directory's lock, calls this.
    pub fn spawn(self: &Arc<Self>, tracker: &TaskTracker, shutdown: &CancellationToken) {
        let this = Arc::clone(self);
        let token = shutdown.child_token();
        let inner = tracker.clone();
        tracker.spawn(async move {
            this.recover().await;
            let dispatcher = Arc::clone(&this);
            inner.spawn(dispatcher.dispatch(inner.clone(), token.clone()));
            for action in &this.config.actions {
                if action.schedule.is_some() {
                    inner.spawn(Arc::clone(&this).schedule(action.name.clone(), token.clone()));
                }
            }
            inner.spawn(Arc::clone(&this).prune(token));
        });
    }

    async fn recover(&self) {
        let known: Vec<String> = self.config.actions.iter().map(|a| a.name.clone()).collect();
        let store = Arc::clone(&self.store);
        let orphans = blocking(move || {
            let names: Vec<&str> = known.iter().map(String::as_str).collect();
            store.cancel_unknown(&names, unix_now())
        })
        .await;
        match orphans {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                jobs = n,
                "Cancelled queued jobs whose action is no longer configured."
            ),
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "Cannot check the queue for removed actions.")
            }
        }
        let store = Arc::clone(&self.store);
        let interrupted = match blocking(move || store.interrupted_at_start(unix_now())).await {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "Cannot recover the job queue.");
                return;
            }
        };
        for job in interrupted {
            let idempotent = self
                .config
                .action(&job.action)
                .is_some_and(|a| a.idempotent);
            tracing::warn!(
                job = job.id,
                action = %job.action,
                retried = idempotent,
                "A job was running when warden stopped; it is marked interrupted."
            );
            self.metrics.interrupted_at_start(&job.action);
            if idempotent {
                let retry = retry_of(&job, 0.0);
                let store = Arc::clone(&self.store);
                let detail =
                    serde_json::json!({"retry_of": job.id, "reason": "interrupted, idempotent"})
                        .to_string();
                if let Err(err) = blocking(move || store.enqueue(&retry, unix_now(), &detail)).await
                {
                    tracing::error!(job = job.id, error = %ErrorChain(&err), "Cannot queue the interrupted job again.");
                }
            }
        }
        self.wake.notify_one();
    }

    /// The dispatcher loop.
    async fn dispatch(self: Arc<Self>, tracker: TaskTracker, shutdown: CancellationToken) {
        loop {
            let global = tokio::select! {
                permit = Arc::clone(&self.global).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                () = shutdown.cancelled() => return,
            };
            let eligible: Vec<String> = self
                .per_action
                .iter()
                .filter(|(_, slots)| slots.available_permits() > 0)
                .map(|(name, _)| name.clone())
                .collect();
            if eligible.is_empty() {
                // Every action is at its `max_concurrent`: nothing can be claimed before a job
                // ends, and an ending job wakes this loop. Asking the store anyway reads every
                // queued job twice (the claim finds none of them eligible, then the count),
                // once per job started while a backlog drains.
                drop(global);
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(POLL) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            let store = Arc::clone(&self.store);
            let now = unix_now();
            let claimed = blocking(move || {
                let names: Vec<&str> = eligible.iter().map(String::as_str).collect();
                let job = store.claim(&names, now)?;
                // When the next job is due matters only when none was due now; the query
                // reads every queued job, so running it per claim made draining a backlog
                // quadratic.
                let next = match job {
                    Some(_) => None,
                    None => store.next_due(now)?,
                };
                Ok::<_, StoreError>((job, next))
            })
            .await;
            match claimed {
                Ok((Some(job), _)) => {
                    let Some(slot) = self
                        .per_action
                        .get(&job.action)
                        .and_then(|s| Arc::clone(s).try_acquire_owned().ok())
                    else {
                        // Not configured any more: recorded as failed at once.
                        let this = Arc::clone(&self);
                        tracker.spawn(async move {
                            this.execute(job, None, global, CancellationToken::new())
                                .await
                        });
                        continue;
                    };
                    let this = Arc::clone(&self);
                    let token = shutdown.clone();
                    tracker
                        .spawn(async move { this.execute(job, Some(slot), global, token).await });
                }
                Ok((None, next)) => {
                    drop(global);
                    let wait = next
                        .map(|due| Duration::from_secs_f64((due - now).max(0.01)))
                        .unwrap_or(POLL)
                        .min(POLL);
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
                Err(err) => {
                    drop(global);
                    tracing::error!(error = %ErrorChain(&err), "Cannot take a job from the queue.");
                    tokio::select! {
                        () = tokio::time::sleep(POLL) => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Runs queued job `id` in this process (`warden actions run` when no `warden serve`
    /// holds the state directory); `None` when it was no longer queued.
    ///
    /// # Errors
    /// When the store fails.
    pub async fn run_queued(
        self: &Arc<Self>,
        id: i64,
        shutdown: CancellationToken,
    ) -> Result<Option<JobRow>, StoreError> {
        let store = Arc::clone(&self.store);
        let Some(job) = blocking(move || store.claim_id(id, unix_now())).await? else {
            return Ok(None);
        };
        let global = Arc::clone(&self.global)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let slot = self
            .per_action
            .get(&job.action)
            .and_then(|s| Arc::clone(s).try_acquire_owned().ok());
        Arc::clone(self).execute(job, slot, global, shutdown).await;
        let store = Arc::clone(&self.store);
        blocking(move || store.job(id)).await
    }

    /// Runs one claimed job to its end and records it.
    async fn execute(
        self: Arc<Self>,
        job: JobRow,
        slot: Option<OwnedSemaphorePermit>,
        global: OwnedSemaphorePermit,
        shutdown: CancellationToken,
    ) {
        let started = Instant::now();
        let finish = match (self.config.action(&job.action), slot.is_some()) {
            (Some(action), true) => {
                self.metrics.started(&action.name);
                let labels: BTreeMap<String, String> =
                    serde_json::from_str(&job.labels).unwrap_or_default();
                let context = JobContext {
                    job: job.id,
                    action: &action.name,
                    labels: &labels,
                    cancel: shutdown.child_token(),
                    backups: self.backups.as_ref(),
                };
                attempt(action, &context, &shutdown).await
            }
            _ => Finish::Failed(ActionError::Refused(format!(
                "action `{}` is no longer configured",
                job.action
            ))),
        };
        let duration = started.elapsed();
        let now = unix_now();
        let action = self.config.action(&job.action);
        let retry = match (&finish, action) {
            (Finish::Failed(_) | Finish::TimedOut(_), Some(a)) if job.attempt <= a.retries => {
                let backoff = a.retry_backoff.as_secs_f64() * 2f64.powi(job.attempt as i32 - 1);
                Some(retry_of(&job, now + backoff))
            }
            (Finish::Interrupted, Some(a)) if a.idempotent => Some(retry_of(&job, 0.0)),
            _ => None,
        };
        let (ended, result) = finish.into_ended(duration);
        log_end(&job, &ended, result, retry.as_ref());
        // The store first: once the metrics say a job ended, its history says so too.
        let store = Arc::clone(&self.store);
        let id = job.id;
        if let Err(err) = blocking(move || store.finish(id, &ended, retry.as_ref(), now)).await {
            tracing::error!(job = id, error = %ErrorChain(&err), "Cannot record how the job ended.");
        }
        if action.is_some() && slot.is_some() {
            self.metrics.finished(&job.action, result, duration, now);
        }
        drop(slot);
        drop(global);
        self.wake.notify_one();
    }

    /// Queues `action` at each firing of its schedule.
    async fn schedule(self: Arc<Self>, action: String, shutdown: CancellationToken) {
        let Some(schedule) = self.config.action(&action).and_then(|a| a.schedule.clone()) else {
            return;
        };
        loop {
            let now = chrono::Utc::now();
            let Some(next) = schedule.next_after(now) else {
                return;
            };
            let wait = (next - now).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return,
            }
            match self.enqueue(&action, "schedule").await {
                Ok(id) => tracing::info!(action, job = id, "Scheduled run queued."),
                Err(err) => {
                    tracing::error!(action, error = %ErrorChain(&err), "Cannot queue the scheduled run.")
                }
            }
        }
    }

    /// Drops what is older than the audit retention, hourly.
    async fn prune(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let store = Arc::clone(&self.store);
            let retention = self.config.webhook.audit_retention.as_secs_f64();
            let now = unix_now();
            match blocking(move || store.prune(now - retention, now)).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "Pruned the audit log."),
                Err(err) => {
                    tracing::error!(error = %ErrorChain(&err), "Cannot prune the audit log.")
                }
            }
            tokio::select! {
                () = tokio::time::sleep(PRUNE_EVERY) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// The job that retries `job`, due at `not_before`.
fn retry_of(job: &JobRow, not_before: f64) -> NewJob {
    NewJob {
        action: job.action.clone(),
        trigger: "retry",
        route: job.route.clone(),
        fingerprint: job.fingerprint.clone(),
        labels: job.labels.clone(),
        attempt: job.attempt + 1,
        retry_of: Some(job.id),
        not_before,
    }
}

/// How one attempt ended.
enum Finish {
    Success(Outcome),
    DryRun(Outcome),
    Failed(ActionError),
    TimedOut(Duration),
    Interrupted,
}

impl Finish {
    fn into_ended(self, duration: Duration) -> (Ended, RunResult) {
        let mut ended = Ended {
            duration_seconds: duration.as_secs_f64(),
            ..Ended::default()
        };
        let result = match self {
            Finish::Success(outcome) => {
                record_outcome(&mut ended, outcome);
                RunResult::Success
            }
            Finish::DryRun(outcome) => {
                record_outcome(&mut ended, outcome);
                RunResult::DryRun
            }
            Finish::Failed(err) => {
                ended.state = Some(JobState::Failed);
                if let ActionError::Exited { code, output, .. } = &err {
                    ended.exit_code = *code;
                    ended.output = (!output.is_empty()).then(|| output.clone());
                }
                ended.error = Some(ErrorChain(&err).to_string());
                RunResult::Failure
            }
            Finish::TimedOut(limit) => {
                ended.state = Some(JobState::Failed);
                ended.error = Some(format!(
                    "timed out after {} and was stopped",
                    humantime::format_duration(limit)
                ));
                RunResult::Timeout
            }
            Finish::Interrupted => {
                ended.state = Some(JobState::Interrupted);
                ended.error = Some("warden shut down while the job was running".to_owned());
                RunResult::Interrupted
            }
        };
        (ended, result)
    }
}

fn record_outcome(ended: &mut Ended, outcome: Outcome) {
    ended.state = Some(JobState::Succeeded);
    ended.exit_code = outcome.exit_code;
    ended.summary = Some(outcome.summary);
    ended.output = (!outcome.output.is_empty()).then_some(outcome.output);
}

/// Runs the action once (or only plans it, for a dry run) under its timeout.
async fn attempt(
    action: &ActionConfig,
    context: &JobContext<'_>,
    shutdown: &CancellationToken,
) -> Finish {
    if action.dry_run {
        return match action.kind.plan(context.labels) {
            Ok(plan) => Finish::DryRun(Outcome {
                summary: format!("dry run, nothing done: {plan}"),
                ..Outcome::default()
            }),
            Err(err) => Finish::Failed(err),
        };
    }
    let run = action.kind.run(context);
    tokio::pin!(run);
    let result = tokio::select! {
        result = &mut run => result,
        () = tokio::time::sleep(action.timeout) => {
            context.cancel.cancel();
            // The kind stops at cancellation (a child's process group is killed): wait for it
            // to clean up, within a bound.
            let _ = tokio::time::timeout(CANCEL_GRACE, &mut run).await;
            return Finish::TimedOut(action.timeout);
        }
    };
    let mut outcome = match result {
        Ok(outcome) => outcome,
        Err(ActionError::Cancelled) if shutdown.is_cancelled() => return Finish::Interrupted,
        Err(err) => return Finish::Failed(err),
    };
    // The runbook's "restart, wait for /health, up to 3 attempts": the check has its own
    // attempts, delays and per-attempt timeout, and stops at shutdown.
    if let Some(check) = &action.then_check {
        match check.run(context).await {
            Ok(healthy) => outcome.summary = format!("{}; then_check: {healthy}", outcome.summary),
            Err(ActionError::Cancelled) if shutdown.is_cancelled() => return Finish::Interrupted,
            Err(err) => {
                return Finish::Failed(ActionError::failed(
                    format!("then_check after: {}", outcome.summary),
                    err,
                ));
            }
        }
    }
    Finish::Success(outcome)
}

fn log_end(job: &JobRow, ended: &Ended, result: RunResult, retry: Option<&NewJob>) {
    let retry_in = retry.map(|r| (r.not_before - unix_now()).max(0.0).round());
    match result {
        RunResult::Success | RunResult::DryRun => tracing::info!(
            job = job.id,
            action = %job.action,
            result = result.as_str(),
            seconds = format!("{:.2}", ended.duration_seconds),
            summary = ended.summary.as_deref().unwrap_or(""),
            "Action succeeded."
        ),
        _ => tracing::warn!(
            job = job.id,
            action = %job.action,
            result = result.as_str(),
            attempt = job.attempt,
            retry_in_seconds = ?retry_in,
            error = ended.error.as_deref().unwrap_or(""),
            "Action failed."
        ),
    }
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(StoreError::Closed))
}

/// The writer thread: commits notifications in groups until every sender is gone.
fn write_loop(
    mut conn: rusqlite::Connection,
    mut receiver: mpsc::Receiver<IngestRequest>,
    path: PathBuf,
    gate: jobs::WriteGate,
) {
    let mut batch: Vec<IngestRequest> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = receiver.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let notifications: Vec<&Notification> = batch.iter().map(|r| &r.notification).collect();
        let committed = {
            let _turn = jobs::take_turn(&gate);
            jobs::ingest(&mut conn, &notifications, unix_now())
        };
        match committed {
            Ok(verdicts) => {
                for (request, verdicts) in batch.drain(..).zip(verdicts) {
                    let _ = request.reply.send(Ok(verdicts));
                }
            }
            Err(source) => {
                let err = Arc::new(StoreError::Sqlite {
                    path: path.clone(),
                    source,
                });
                tracing::error!(error = %ErrorChain(&*err), notifications = batch.len(), "Cannot commit notifications; answering 503 so that Alertmanager retries.");
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(Arc::clone(&err)));
                }
            }
        }
    }
}
