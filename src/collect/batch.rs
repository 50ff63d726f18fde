//! Blocking collectors, run one after another on a single thread per scrape.
//!
//! Most sources are a few short reads of procfs files. Running each on its own blocking-pool
//! thread would cost a thread hand-off and wake-up per collector per scrape, which is most of a
//! procfs scrape's CPU. So a scrape hands the whole list to one thread and waits for it under
//! the batch's timeout (the smallest of its collectors').
//!
//! That thread is the batch's own *lane*, kept between scrapes and parked while idle. A
//! blocking-pool thread would not do: tokio ends an idle pool thread after 10 s, so at
//! Prometheus' usual intervals of 15 s and more every scrape would start and end a thread,
//! which costs about as much CPU as a fifth of the scrape (BENCHMARKS.md). A scrape that finds
//! the lane busy (a concurrent scrape, or a collector hung on it) runs on a pool thread instead.
//!
//! Never on a runtime worker, even with another worker to spare: tokio's I/O and timer driver
//! is polled by whichever worker parks on it, and a worker that parks while another holds the
//! driver for a moment waits on a condition variable instead, woken only by new work. With the
//! run blocked in a hung read on one worker and the other parked that way, nothing drives the
//! timers or the sockets, so no scrape answers until the read returns (seen: a FIFO standing in
//! for /proc/stat stopped every scrape for good).
//!
//! A read can still hang (a procfs or mount on a dead filesystem). The scrape checks on the
//! thread when half its time is gone: a collector that has run that long is marked *stuck*, and
//! a fresh thread takes over the collectors not yet run, so the others still answer in this
//! scrape. Whatever is unfinished at the deadline reports a timeout. Later scrapes skip a stuck
//! collector (reporting [`Error::Stalled`]) until its call returns and clears the mark, so a
//! hung source parks one thread and never delays the others again.
//!
//! [`OwnThread`] runs a collector on its own thread instead, and the SQLite executor runs its
//! queries the same way; both go through `OneAtATime`, the same rule for one source: a
//! call stuck past its limit parks its thread, later callers are refused at once until it
//! returns.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, mpsc};
use std::time::{Duration, Instant};

use super::{CollectFuture, Collector, Error, Family, Outcome};

/// A source whose collection is short blocking work: reading procfs or sysfs files.
pub trait BlockingCollector: Send + Sync + 'static {
    /// The value of the `collector` label, unique among collectors.
    fn name(&self) -> &str;
    /// How long one collection may take before it counts as failed.
    fn timeout(&self) -> Duration;
    /// Reads the source and returns its families; runs on a blocking thread.
    fn collect(&self) -> Result<Vec<Family>, Error>;
}

/// A blocking collector run on its own blocking thread, under its own timeout, in parallel with
/// the others rather than in the batch: for database files, whose locks must not hold up the
/// host collectors.
///
/// One call runs at a time (`OneAtATime`): a scrape that finds the last call running waits
/// for it without holding a thread, and one that finds it running past the timeout (a hung
/// file) reports [`Error::Stalled`] at once, so a hung source parks one thread, not one per
/// scrape.
pub struct OwnThread<C> {
    collector: Arc<C>,
    calls: OneAtATime,
}

impl<C: BlockingCollector> OwnThread<C> {
    /// Runs `collector` on its own thread, one call at a time.
    pub fn new(collector: Arc<C>) -> Self {
        let calls = OneAtATime::new(collector.name());
        OwnThread { collector, calls }
    }
}

impl<C: BlockingCollector> Collector for OwnThread<C> {
    fn name(&self) -> &str {
        self.collector.name()
    }

    fn timeout(&self) -> Duration {
        self.collector.timeout()
    }

    fn collect(&self) -> CollectFuture<'_> {
        let inner = Arc::clone(&self.collector);
        Box::pin(async move {
            let turn = self
                .calls
                .enter(inner.timeout())
                .await
                .map_err(|_| Error::Stalled {
                    collector: inner.name().to_owned(),
                })?;
            tokio::task::spawn_blocking(move || {
                let result = inner.collect();
                drop(turn);
                result
            })
            .await
            .map_err(Error::Task)?
        })
    }
}

/// How long past its limit a call may run before `OneAtATime` takes it for stuck: the time
/// an interrupted call gets to wind down. An interrupted SQLite statement returns within
/// milliseconds; a second covers a loaded machine.
pub(crate) const STUCK_GRACE: Duration = Duration::from_secs(1);

/// Blocking calls on one source, one at a time, never queued behind a call that is stuck.
///
/// A caller waits (asynchronously, holding no thread) for the running call to return, but
/// only until that call has run [`STUCK_GRACE`] past its own limit: then the call is taken for hung (a read
/// blocked on a dead filesystem or a FIFO cannot be interrupted) and callers are refused at
/// once until it returns. Without this, each caller would park a blocking thread on the
/// source's lock, one more per scrape, until tokio's blocking pool ran out.
pub(crate) struct OneAtATime {
    /// What the log lines name.
    name: String,
    permit: Arc<tokio::sync::Semaphore>,
    running: Arc<Mutex<Running>>,
}

/// The call in progress, if any.
#[derive(Default)]
struct Running {
    /// When it started and how long it may take.
    since: Option<(Instant, Duration)>,
    /// Whether a caller was refused because of it (logged once, and its return logged).
    refused: bool,
}

/// The right to run one call; dropping it (when the call returns) lets the next one run.
pub(crate) struct Turn {
    name: String,
    running: Arc<Mutex<Running>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        running.since = None;
        if std::mem::take(&mut running.refused) {
            tracing::info!(
                source = %self.name,
                "A stuck call returned; calling it again."
            );
        }
    }
}

impl OneAtATime {
    /// Calls on the source `name` (used in log lines).
    pub(crate) fn new(name: &str) -> Self {
        OneAtATime {
            name: name.to_owned(),
            permit: Arc::new(tokio::sync::Semaphore::new(1)),
            running: Arc::default(),
        }
    }

    /// Waits for the turn of a call that may take `limit`. `Err` with how long the running
    /// call has run, at once, when that call is [`STUCK_GRACE`] past its own limit (stuck).
    pub(crate) async fn enter(&self, limit: Duration) -> Result<Turn, Duration> {
        let permit = loop {
            if let Ok(permit) = Arc::clone(&self.permit).try_acquire_owned() {
                break permit;
            }
            let since = lock(&self.running).since;
            let Some((started, its_limit)) = since else {
                // The running call is returning (its turn is being dropped).
                match Arc::clone(&self.permit).acquire_owned().await {
                    Ok(permit) => break permit,
                    Err(_) => continue,
                }
            };
            let stuck_at = started + its_limit + STUCK_GRACE;
            if Instant::now() >= stuck_at {
                let mut running = lock(&self.running);
                if !std::mem::replace(&mut running.refused, true) {
                    tracing::warn!(
                        source = %self.name,
                        running_for = ?started.elapsed(),
                        "A blocking call has not returned; refusing calls until it does."
                    );
                }
                return Err(started.elapsed());
            }
            tokio::select! {
                acquired = Arc::clone(&self.permit).acquire_owned() => {
                    if let Ok(permit) = acquired {
                        break permit;
                    }
                }
                () = tokio::time::sleep_until(stuck_at.into()) => {}
            }
        };
        lock(&self.running).since = Some((Instant::now(), limit));
        Ok(Turn {
            name: self.name.clone(),
            running: Arc::clone(&self.running),
            _permit: permit,
        })
    }
}

/// The blocking collectors and which of them are stuck.
pub(super) struct Batch {
    list: Arc<[Arc<dyn BlockingCollector>]>,
    /// Indices into `list` whose call has not returned since a scrape gave up on it.
    stuck: Arc<Mutex<HashSet<usize>>>,
    /// The kept thread, started by the first scrape; `None` when it could not be started.
    lane: OnceLock<Option<Lane>>,
}

/// One run of [`work`] for a scrape: from the collector list's start, or taking over after a
/// stuck collector (`generation`). `done` is dropped when the run returns.
struct Job {
    progress: Arc<Mutex<Progress>>,
    generation: u64,
    done: tokio::sync::oneshot::Sender<()>,
}

/// The batch's kept thread and whether a job holds it.
struct Lane {
    jobs: mpsc::Sender<Job>,
    busy: Arc<AtomicBool>,
}

impl Lane {
    /// Starts the thread inside the current runtime (collectors such as `systemd` run async
    /// calls on it). It ends when the batch, and with it the sending side, is dropped.
    fn start(
        list: Arc<[Arc<dyn BlockingCollector>]>,
        stuck: Arc<Mutex<HashSet<usize>>>,
    ) -> std::io::Result<Lane> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let busy = Arc::new(AtomicBool::new(false));
        let idle = Arc::clone(&busy);
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("warden-collect".into())
            .spawn(move || {
                let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
                while let Ok(job) = queue.recv() {
                    work(&list, &stuck, &job.progress, job.generation);
                    // Free before answering, so the scrape after this one finds the lane free.
                    idle.store(false, Ordering::Release);
                    drop(job.done);
                }
            })?;
        Ok(Lane { jobs, busy })
    }

    /// Hands `job` to the thread if no other job holds it; gives the job back otherwise.
    fn try_run(&self, job: Job) -> Result<(), Job> {
        if self
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(job);
        }
        self.jobs.send(job).map_err(|mpsc::SendError(job)| {
            self.busy.store(false, Ordering::Release);
            job
        })
    }
}

/// What one batch run has done so far; shared between its threads and the scrape.
struct Progress {
    results: Vec<Option<Outcome>>,
    /// The collector the current thread is running, and since when.
    current: Option<(usize, Instant)>,
    /// The thread generation the scrape still listens to; older threads stop after their
    /// current collector, and any thread stops once the scrape has given up.
    generation: u64,
    abandoned: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Batch {
    pub(super) fn new(list: Vec<Arc<dyn BlockingCollector>>) -> Self {
        Batch {
            list: list.into(),
            stuck: Arc::default(),
            lane: OnceLock::new(),
        }
    }

    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|c| c.name())
    }

    /// The names of the collectors whose call has not returned.
    pub(super) fn stuck(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.stuck)
            .iter()
            .map(|&i| self.list[i].name().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The batch's timeout: the smallest of its collectors'.
    pub(super) fn timeout(&self) -> Duration {
        self.list
            .iter()
            .map(|c| c.timeout())
            .min()
            .unwrap_or(Duration::ZERO)
    }

    /// Runs every collector once, waiting at most `limit`; one outcome per collector, in order.
    pub(super) async fn run(&self, limit: Duration) -> Vec<Outcome> {
        if self.list.is_empty() {
            return Vec::new();
        }
        let deadline = tokio::time::Instant::now() + limit;
        // A collector running longer than this is taken for hung. Half the budget leaves the
        // other half to the collectors after it.
        let stall_after = limit / 2;
        let progress = Arc::new(Mutex::new(Progress {
            results: (0..self.list.len()).map(|_| None).collect(),
            current: None,
            generation: 0,
            abandoned: false,
        }));
        let mut job = self.spawn(&progress, 0);
        let mut stall_check = tokio::time::Instant::now() + stall_after;
        loop {
            match tokio::time::timeout_at(stall_check.min(deadline), &mut job).await {
                // `work` catches collector panics, so a run whose `done` is dropped unanswered
                // has returned too (or the runtime is shutting down); the progress says what
                // is done either way.
                Ok(_) => break,
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    let mut state = lock(&progress);
                    state.abandoned = true;
                    if let Some((index, _)) = state.current {
                        self.mark_stuck(index, limit);
                    }
                    break;
                }
                Err(_) => {
                    let mut state = lock(&progress);
                    let Some((index, started)) = state.current else {
                        stall_check = tokio::time::Instant::now() + stall_after;
                        continue;
                    };
                    if started.elapsed() < stall_after {
                        stall_check = tokio::time::Instant::from_std(started + stall_after);
                        continue;
                    }
                    // Hung: leave it to its thread and hand the rest to a fresh one.
                    self.mark_stuck(index, stall_after);
                    state.results[index] = Some((stall_after, Err(Error::Timeout(stall_after))));
                    state.current = None;
                    state.generation += 1;
                    let generation = state.generation;
                    drop(state);
                    job = self.spawn(&progress, generation);
                    stall_check = tokio::time::Instant::now() + stall_after;
                }
            }
        }

        let mut progress = lock(&progress);
        progress
            .results
            .iter_mut()
            .map(|result| {
                result
                    .take()
                    .unwrap_or((Duration::ZERO, Err(Error::Timeout(limit))))
            })
            .collect()
    }

    /// Starts a run of the collectors not yet done: on the lane when it is free, on a pool
    /// thread otherwise. The receiver resolves when the run returns.
    fn spawn(
        &self,
        progress: &Arc<Mutex<Progress>>,
        generation: u64,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (done, finished) = tokio::sync::oneshot::channel();
        let job = Job {
            progress: Arc::clone(progress),
            generation,
            done,
        };
        let lane = self.lane.get_or_init(|| {
            Lane::start(Arc::clone(&self.list), Arc::clone(&self.stuck))
                .inspect_err(|err| {
                    tracing::warn!(
                        error = %err,
                        "Cannot start the collector thread; using the blocking pool."
                    );
                })
                .ok()
        });
        let job = match lane {
            Some(lane) => match lane.try_run(job) {
                Ok(()) => return finished,
                Err(job) => job,
            },
            None => job,
        };
        let (list, stuck) = (Arc::clone(&self.list), Arc::clone(&self.stuck));
        tokio::task::spawn_blocking(move || {
            work(&list, &stuck, &job.progress, job.generation);
            drop(job.done);
        });
        finished
    }

    fn mark_stuck(&self, index: usize, after: Duration) {
        lock(&self.stuck).insert(index);
        tracing::warn!(
            collector = self.list[index].name(),
            after = ?after,
            "Collector has not returned; skipping it until it does."
        );
    }
}

/// A blocking thread: runs the collectors that have no result yet, in order, recording each
/// outcome as it goes, until done or no longer listened to.
fn work(
    list: &[Arc<dyn BlockingCollector>],
    stuck: &Mutex<HashSet<usize>>,
    progress: &Mutex<Progress>,
    generation: u64,
) {
    for (index, collector) in list.iter().enumerate() {
        {
            let mut progress = lock(progress);
            if progress.abandoned || progress.generation != generation {
                return;
            }
            if progress.results[index].is_some() {
                continue;
            }
            if lock(stuck).contains(&index) {
                progress.results[index] = Some((
                    Duration::ZERO,
                    Err(Error::Stalled {
                        collector: collector.name().to_owned(),
                    }),
                ));
                continue;
            }
            progress.current = Some((index, Instant::now()));
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| collector.collect()))
            .unwrap_or_else(|_| {
                Err(Error::Panicked {
                    collector: collector.name().to_owned(),
                })
            });
        // Under the progress lock, so a scrape that gives up at this instant either sees the
        // result or marks the collector stuck before the mark is cleared here, never after.
        let mut progress = lock(progress);
        if progress.results[index].is_none() {
            progress.results[index] = Some((started.elapsed(), result));
        }
        if progress.generation == generation {
            progress.current = None;
        }
        if lock(stuck).remove(&index) {
            tracing::info!(
                collector = collector.name(),
                "Collector returned after being stuck; collecting it again."
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// Returns one family, or blocks until released when `gate` is set.
    struct Probe {
        name: &'static str,
        gate: Option<Mutex<mpsc::Receiver<()>>>,
        panics: bool,
        timeout: Duration,
    }

    impl BlockingCollector for Probe {
        fn name(&self) -> &str {
            self.name
        }
        fn timeout(&self) -> Duration {
            self.timeout
        }
        fn collect(&self) -> Result<Vec<Family>, Error> {
            if self.panics {
                panic!("probe panicked");
            }
            if let Some(gate) = &self.gate {
                let _ = lock(gate).recv();
            }
            Ok(vec![Family::single_gauge(self.name, "probe", 1.0)])
        }
    }

    fn probe(name: &'static str) -> Arc<dyn BlockingCollector> {
        Arc::new(Probe {
            name,
            gate: None,
            panics: false,
            timeout: Duration::from_millis(300),
        })
    }

    #[tokio::test]
    async fn runs_every_collector_in_order() {
        let batch = Batch::new(vec![probe("a"), probe("b")]);
        let outcomes = batch.run(Duration::from_secs(5)).await;
        let names: Vec<String> = outcomes
            .into_iter()
            .map(|(_, r)| r.unwrap()[0].name.to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(batch.timeout(), Duration::from_millis(300));
    }

    /// Records the thread each call runs on.
    #[derive(Default)]
    struct Threads(Mutex<Vec<std::thread::ThreadId>>);

    impl BlockingCollector for Threads {
        fn name(&self) -> &str {
            "threads"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn collect(&self) -> Result<Vec<Family>, Error> {
            lock(&self.0).push(std::thread::current().id());
            Ok(Vec::new())
        }
    }

    /// Scrapes further apart than the pool keeps an idle thread (10 s by default, 1 ms here)
    /// still run on the one kept thread, not on a thread started and ended per scrape.
    #[test]
    fn scrapes_run_on_one_kept_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_keep_alive(Duration::from_millis(1))
            .enable_all()
            .build()
            .unwrap();
        let threads = Arc::new(Threads::default());
        let batch = Batch::new(vec![Arc::clone(&threads) as Arc<dyn BlockingCollector>]);
        for _ in 0..3 {
            let outcomes = runtime.block_on(batch.run(Duration::from_secs(5)));
            assert!(outcomes[0].1.is_ok());
            std::thread::sleep(Duration::from_millis(50));
        }
        let seen = lock(&threads.0).clone();
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|id| *id == seen[0]), "threads: {seen:?}");
    }

    #[tokio::test]
    async fn a_panic_fails_only_its_collector() {
        let panicking = Arc::new(Probe {
            name: "bad",
            gate: None,
            panics: true,
            // Printing the panic's backtrace on a loaded machine can outlast half of a short
            // timeout, which would mark the collector stuck instead.
            timeout: Duration::from_secs(10),
        });
        let batch = Batch::new(vec![panicking, probe("good")]);
        let outcomes = batch.run(Duration::from_secs(5)).await;
        assert!(matches!(outcomes[0].1, Err(Error::Panicked { .. })));
        assert!(outcomes[1].1.is_ok());
    }

    #[tokio::test]
    async fn a_hung_collector_is_marked_stuck_skipped_and_cleared_on_return() {
        let (release, gate) = mpsc::channel();
        let hung = Arc::new(Probe {
            name: "hung",
            gate: Some(Mutex::new(gate)),
            panics: false,
            timeout: Duration::from_millis(300),
        });
        let batch = Batch::new(vec![probe("before"), hung, probe("after")]);

        let first = batch.run(Duration::from_millis(400)).await;
        assert!(first[0].1.is_ok(), "finished before the hang: kept");
        assert!(
            matches!(first[1].1, Err(Error::Timeout(_))),
            "{:?}",
            first[1].1
        );
        assert!(
            first[2].1.is_ok(),
            "a fresh thread took over after the stall"
        );

        let second = batch.run(Duration::from_millis(400)).await;
        assert!(second[0].1.is_ok());
        assert!(matches!(second[1].1, Err(Error::Stalled { .. })));
        assert!(
            second[2].1.is_ok(),
            "later collectors are no longer delayed"
        );

        release.send(()).unwrap();
        for _ in 0..100 {
            if lock(&batch.stuck).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            lock(&batch.stuck).is_empty(),
            "the returning call clears the mark"
        );
        release.send(()).unwrap();
        let third = batch.run(Duration::from_secs(5)).await;
        assert!(third.iter().all(|(_, r)| r.is_ok()));
    }

    /// A collector that counts its calls and blocks each until released.
    struct Hung {
        entered: std::sync::atomic::AtomicUsize,
        gate: Mutex<mpsc::Receiver<()>>,
    }

    impl BlockingCollector for Hung {
        fn name(&self) -> &str {
            "hung"
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(50)
        }
        fn collect(&self) -> Result<Vec<Family>, Error> {
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = lock(&self.gate).recv();
            Ok(vec![Family::single_gauge("hung", "probe", 1.0)])
        }
    }

    #[tokio::test]
    async fn own_thread_parks_one_thread_on_a_hung_call_and_recovers() {
        let (release, gate) = mpsc::channel();
        let hung = Arc::new(Hung {
            entered: Default::default(),
            gate: Mutex::new(gate),
        });
        let own = OwnThread::new(Arc::clone(&hung));
        // As `Collectors::gather` runs it: under the collector's timeout.
        let scrape = || tokio::time::timeout(own.timeout(), own.collect());
        assert!(scrape().await.is_err(), "the first call hangs: timed out");
        // Scrapes wait (holding no thread) until the call is past its limit and grace, then
        // are refused at once.
        let mut waited = 0;
        loop {
            match scrape().await {
                Err(_) if waited < 200 => waited += 1,
                Ok(Err(Error::Stalled { collector })) => {
                    assert_eq!(collector, "hung");
                    break;
                }
                other => panic!("{other:?}"),
            }
        }
        for _ in 0..20 {
            match scrape().await {
                Ok(Err(Error::Stalled { .. })) => {}
                other => panic!("refused at once, not queued: {other:?}"),
            }
        }
        let entered = || hung.entered.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(entered(), 1, "one thread parked, not one per scrape");

        release.send(()).unwrap();
        // The stuck call returns and the next scrape calls the collector again.
        let mut again = None;
        for _ in 0..200 {
            release.send(()).unwrap();
            match scrape().await {
                Ok(Ok(families)) => {
                    again = Some(families);
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        assert!(again.is_some(), "recovered after the call returned");
    }
}
