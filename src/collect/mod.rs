//! The collector framework and one module per metric source.
//!
//! A source implements [`Collector`] (async, for network sources) or [`BlockingCollector`]
//! (short blocking reads such as procfs). A scrape runs the async collectors in parallel, each
//! under its own timeout, and the blocking collectors one after another on one thread kept for
//! them (see [`batch`] for why one thread, and how a hung read is contained). Timeouts shrink
//! to fit Prometheus' scrape timeout when the scraper sends one. What they return is merged into one
//! [`Snapshot`]. A collector that fails, panics or hangs costs only its own families: it reports
//! `warden_collector_success{collector} 0` and every other collector still answers. Nothing here
//! spawns long-lived tasks; work runs per scrape.
//!
//! Modules:
//! - [`batch`]: running the blocking collectors;
//! - [`family`]: the metric model and its encoding;
//! - [`host`]: node_exporter-compatible host metrics;
//! - [`process`]: warden's own `process_*` metrics.

pub mod batch;
pub mod family;
pub mod host;
pub mod postgres;
pub mod process;
pub mod query;
pub mod sql;
pub mod sqlite;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;

use batch::Batch;
pub use batch::{BlockingCollector, OwnThread};
pub use family::{Family, Format, HistogramSample, Kind, Snapshot};

/// The future a collector returns.
pub type CollectFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Family>, Error>> + Send + 'a>>;

/// A source of metrics, read once per scrape.
pub trait Collector: Send + Sync + 'static {
    /// The value of the `collector` label, unique among collectors.
    fn name(&self) -> &str;
    /// How long one collection may take before it counts as failed.
    fn timeout(&self) -> Duration;
    /// Reads the source and returns its families.
    fn collect(&self) -> CollectFuture<'_>;
}

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file under `/proc` or `/sys` could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file had content this parser does not understand.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// An earlier run of this collector is still blocked (a hung filesystem); it is skipped
    /// until that run returns.
    #[error("an earlier run of {collector} has not returned; skipped until it does")]
    Stalled {
        /// The collector.
        collector: String,
    },
    /// The collector panicked.
    #[error("collector {collector} panicked")]
    Panicked {
        /// The collector.
        collector: String,
    },
    /// The collection did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// A service on D-Bus (systemd, for the `systemd` collector) could not be queried.
    #[error("D-Bus at {address}: {reason}")]
    Bus {
        /// The bus address, e.g. `unix:path=/run/dbus/system_bus_socket`.
        address: String,
        /// What failed.
        reason: String,
    },
    /// warden's state store could not be read.
    #[error("cannot read the state store")]
    Store(#[source] crate::store::StoreError),
    /// The collection task panicked or was cancelled.
    #[error("collector task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// What the landing page shows about a collector's last run.
#[derive(Debug, Clone)]
pub struct Status {
    /// Whether the last run succeeded.
    pub success: bool,
    /// How long the last run took.
    pub duration: Duration,
    /// When the last run finished.
    pub finished_at: SystemTime,
    /// The last error, if the last run failed.
    pub error: Option<String>,
}

/// One collector's run: how long it took and what it returned.
type Outcome = (Duration, Result<Vec<Family>, Error>);

/// Scrape time left over for encoding and the network when Prometheus sends its scrape timeout
/// (the same offset sql_exporter uses), or a tenth of a shorter timeout.
const SCRAPE_TIMEOUT_OFFSET: Duration = Duration::from_millis(500);

/// The set of configured collectors and their last status.
pub struct Collectors {
    /// The blocking collectors, run in order on one thread per scrape. (Two lanes, each half of
    /// the list on its own thread, cut the latency when the host collectors took about 3 ms;
    /// at about 0.7 ms the second thread's hand-offs cost more CPU than the wait they saved.)
    blocking: Batch,
    list: Vec<Arc<dyn Collector>>,
    status: Mutex<HashMap<String, Status>>,
    /// The collectors also reported as node_exporter reports its own
    /// (`node_scrape_collector_*`): the host collectors, which carry node_exporter's names.
    node_scrape: HashSet<String>,
    /// How many families the last scrape had: the next snapshot's index is sized for them
    /// rather than grown (and rehashed) family by family.
    families_hint: AtomicUsize,
}

impl std::fmt::Debug for Collectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collectors")
            .field("names", &self.names())
            .finish()
    }
}

impl Collectors {
    /// A framework running the given blocking and async collectors.
    pub fn new(blocking: Vec<Arc<dyn BlockingCollector>>, list: Vec<Arc<dyn Collector>>) -> Self {
        Collectors {
            blocking: Batch::new(blocking),
            list,
            status: Mutex::new(HashMap::new()),
            node_scrape: HashSet::new(),
            families_hint: AtomicUsize::new(0),
        }
    }

    /// Also reports these collectors in node_exporter's `node_scrape_collector_success` and
    /// `node_scrape_collector_duration_seconds`, which node-mixin and the "Node Exporter Full"
    /// dashboard read. `warden_collector_*` keeps reporting every collector.
    #[must_use]
    pub fn with_node_scrape(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.node_scrape = names.into_iter().collect();
        self
    }

    /// Adds an async collector after the others.
    pub fn add(&mut self, collector: Arc<dyn Collector>) {
        self.list.push(collector);
    }

    /// The collectors' names, in output order: blocking collectors first.
    pub fn names(&self) -> Vec<String> {
        self.blocking_names()
            .chain(self.list.iter().map(|c| c.name()))
            .map(str::to_owned)
            .collect()
    }

    /// The collectors whose last call has not returned.
    pub fn stuck(&self) -> Vec<String> {
        let mut names = self.blocking.stuck();
        names.sort();
        names
    }

    /// The blocking collectors' names, in list order.
    fn blocking_names(&self) -> impl Iterator<Item = &str> {
        self.blocking.names()
    }

    /// The last status of each collector that has run.
    pub fn statuses(&self) -> HashMap<String, Status> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Runs every collector in parallel and returns the merged snapshot, including
    /// `warden_collector_*` and `warden_build_info`.
    ///
    /// `scrape_timeout` is Prometheus' `X-Prometheus-Scrape-Timeout-Seconds`, when sent: no
    /// collector is given longer than that, less a small offset.
    pub async fn gather(&self, scrape_timeout: Option<Duration>) -> Snapshot {
        let budget = scrape_timeout.map(|t| t.saturating_sub(SCRAPE_TIMEOUT_OFFSET.min(t / 10)));
        let within = |timeout: Duration| budget.map_or(timeout, |b| b.min(timeout));
        let (blocking, concurrent) = tokio::join!(
            self.blocking.run(within(self.blocking.timeout())),
            self.run_concurrent(within)
        );

        let mut snapshot = Snapshot::with_capacity(self.families_hint.load(Ordering::Relaxed));
        let all = blocking.len() + concurrent.len();
        let node = self.node_scrape.len();
        let mut success = Family::gauge(
            "warden_collector_success",
            "Whether the collector's last run succeeded (1) or failed (0).",
        )
        .with_capacity(all);
        let mut duration = Family::gauge(
            "warden_collector_duration_seconds",
            "How long the collector's last run took.",
        )
        .with_capacity(all);
        let mut node_success = Family::gauge(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
        )
        .with_capacity(node);
        let mut node_duration = Family::gauge(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
        )
        .with_capacity(node);
        let names = self
            .blocking_names()
            .chain(self.list.iter().map(|c| c.name()));
        let outcomes = blocking.into_iter().chain(concurrent);
        for (name, (elapsed, result)) in names.zip(outcomes) {
            let ok = result.is_ok();
            let value = if ok { 1.0 } else { 0.0 };
            // Collector names are a fixed set: built once per process, not four times a scrape.
            let label = family::intern(name);
            success.push([("collector", label.clone())], value);
            duration.push([("collector", label.clone())], elapsed.as_secs_f64());
            if self.node_scrape.contains(name) {
                node_success.push([("collector", label.clone())], value);
                node_duration.push([("collector", label)], elapsed.as_secs_f64());
            }
            let error = match result {
                Ok(families) => {
                    snapshot.extend(families);
                    None
                }
                Err(err) => Some(err),
            };
            self.record(name, elapsed, error);
        }
        snapshot.extend([success, duration, build_info()]);
        if !self.node_scrape.is_empty() {
            snapshot.extend([node_duration, node_success]);
        }
        self.families_hint
            .store(snapshot.families().len(), Ordering::Relaxed);
        snapshot
    }

    /// Runs the async collectors in parallel, each under `within(its timeout)`; one outcome per
    /// collector, in order.
    async fn run_concurrent(&self, within: impl Fn(Duration) -> Duration) -> Vec<Outcome> {
        let mut tasks = JoinSet::new();
        let mut task_index = HashMap::new();
        for (index, collector) in self.list.iter().enumerate() {
            let collector = Arc::clone(collector);
            let limit = within(collector.timeout());
            let handle = tasks.spawn(async move {
                let started = Instant::now();
                let result = match tokio::time::timeout(limit, collector.collect()).await {
                    Ok(result) => result,
                    Err(_) => Err(Error::Timeout(limit)),
                };
                (index, started.elapsed(), result)
            });
            task_index.insert(handle.id(), index);
        }
        let mut results: Vec<Option<Outcome>> = (0..self.list.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, elapsed, result)) => results[index] = Some((elapsed, result)),
                // A collector that panicked: its task id leads back to its index.
                Err(err) => {
                    if let Some(&index) = task_index.get(&err.id()) {
                        results[index] = Some((Duration::ZERO, Err(Error::Task(err))));
                    }
                }
            }
        }
        // Every spawned task reports exactly once, through its result or its join error.
        results
            .into_iter()
            .map(|r| r.unwrap_or((Duration::ZERO, Err(Error::Timeout(Duration::ZERO)))))
            .collect()
    }

    /// Stores a collector's status, logging a failure when the collector changes state so a
    /// persistent failure is not logged on every scrape.
    fn record(&self, name: &str, elapsed: Duration, error: Option<Error>) {
        let Ok(mut status) = self.status.lock() else {
            return;
        };
        let was_ok = status.get(name).is_none_or(|s| s.success);
        match &error {
            Some(err) if was_ok => {
                tracing::warn!(collector = name, error = %ErrorChain(err), "Collector failed.")
            }
            Some(err) => {
                tracing::debug!(collector = name, error = %ErrorChain(err), "Collector still failing.")
            }
            None if !was_ok => tracing::info!(collector = name, "Collector recovered."),
            None => {}
        }
        let now = Status {
            success: error.is_none(),
            duration: elapsed,
            finished_at: SystemTime::now(),
            error: error.map(|e| ErrorChain(&e).to_string()),
        };
        // Replaced in place: the name is copied once, not on every scrape.
        match status.get_mut(name) {
            Some(last) => *last = now,
            None => {
                status.insert(name.to_owned(), now);
            }
        }
    }
}

/// `warden_build_info`: version and build facts, value 1.
fn build_info() -> Family {
    let mut family = Family::gauge(
        "warden_build_info",
        "A metric with a constant '1' value labelled by version and build facts of warden.",
    );
    family.push(
        [
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("rustversion", env!("WARDEN_RUSTC_VERSION").to_owned()),
            ("os", std::env::consts::OS.to_owned()),
            ("arch", std::env::consts::ARCH.to_owned()),
        ],
        1.0,
    );
    family
}

/// Displays an error with its chain of causes, `a: b: c`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blocking collector returning one gauge named after itself, recording its name and
    /// thread when it runs.
    struct Named {
        name: &'static str,
        runs: Arc<Mutex<Vec<(&'static str, std::thread::ThreadId)>>>,
    }

    impl BlockingCollector for Named {
        fn name(&self) -> &str {
            self.name
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(10)
        }
        fn collect(&self) -> Result<Vec<Family>, Error> {
            let mut runs = self.runs.lock().expect("unpoisoned");
            runs.push((self.name, std::thread::current().id()));
            Ok(vec![Family::single_gauge(self.name, "test", 1.0)])
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_collectors_run_in_list_order_on_one_thread() {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let names = ["a", "b", "c", "d", "e"];
        let blocking = names
            .iter()
            .map(|&name| {
                let runs = Arc::clone(&runs);
                Arc::new(Named { name, runs }) as Arc<dyn BlockingCollector>
            })
            .collect();
        let collectors = Collectors::new(blocking, Vec::new());
        assert_eq!(collectors.names(), names);
        for _ in 0..3 {
            runs.lock().expect("unpoisoned").clear();
            let snapshot = collectors.gather(None).await;
            let order: Vec<&str> = snapshot
                .families()
                .iter()
                .map(|f| f.name.as_ref())
                .filter(|name| names.contains(name))
                .collect();
            assert_eq!(order, names);
            let runs = runs.lock().expect("unpoisoned");
            let ran: Vec<&str> = runs.iter().map(|(name, _)| *name).collect();
            assert_eq!(ran, names);
            assert!(
                runs.iter().all(|(_, thread)| *thread == runs[0].1),
                "one scrape's blocking collectors ran on several threads: {runs:?}"
            );
        }
    }
}
