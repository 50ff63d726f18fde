//! Wires the parts together for `warden serve` and `warden metrics`.
//!
//! `serve` owns the one cancellation tree: SIGTERM or SIGINT cancels the root token, the HTTP
//! server drains its connections, and shutdown waits at most `web.shutdown_grace` before it
//! abandons what is still running and says so.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::collections::HashMap;
use std::time::Duration;

use tracing::Instrument;

use crate::act::metrics::ActionCollector;
use crate::act::queue::Actions;
use crate::backup::Backups;
use crate::backup::metrics::BackupCollector;
use crate::collect::postgres::{PostgresCollector, PostgresExecutor, Server};
use crate::collect::query::{QueriesCollector, RunQueue, Runner, UserQuery};
use crate::collect::sql::Executor;
use crate::collect::sqlite::{SqliteCollector, SqliteExecutor};
use crate::collect::{
    self, BlockingCollector, Collector, Collectors, Format, OwnThread, process::ProcessCollector,
};
use crate::config::Config;
use crate::config::{Sources, Target};
use crate::serve::{self, AppState};

/// The lock file that keeps two wardens off one state directory.
const LOCK_FILE: &str = "warden.lock";

/// Why warden could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory could not be created or locked.
    #[error("cannot use state directory {path}")]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Another warden holds the state directory.
    #[error("state directory {path} is in use by another warden (pid {pid})")]
    StateDirInUse {
        /// The directory.
        path: PathBuf,
        /// The pid recorded by the other warden.
        pid: String,
    },
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server failed")]
    Serve(#[source] std::io::Error),
    /// `/alerts` would accept actions from anyone who can reach the address.
    #[error(
        "refusing to serve /alerts on {addr} without authentication: anyone who can reach it could trigger actions; set web.bearer_token_file or web.basic_auth_users, or listen on a loopback address"
    )]
    UnauthenticatedWebhook {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// The actions' job store could not be opened.
    #[error("cannot open the job queue")]
    Store(#[source] crate::store::StoreError),
    /// The listener's TLS could not be set up.
    #[error("cannot set up TLS for the listener")]
    Tls(#[from] serve::server::TlsError),
    /// The backup jobs' store could not be opened.
    #[error(transparent)]
    Backups(#[from] crate::backup::BackupError),
}

/// Every collector the configuration enables, in scrape order, with the background tasks of
/// the database sources started on `tracker` under `shutdown`. `backups` adds the
/// `warden_backup_*` families when it has jobs.
pub fn start(
    config: &Config,
    backups: Option<&Arc<Backups>>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Started {
    let mut blocking: Vec<Arc<dyn BlockingCollector>> = collect::host::collectors(&config.host);
    let host_names: Vec<String> = blocking.iter().map(|c| c.name().to_owned()).collect();
    // The process collector runs in the same batch as the host collectors, under the same limit.
    blocking.push(Arc::new(ProcessCollector::new(config.host.timeout)));
    let mut concurrent: Vec<Arc<dyn Collector>> = Vec::new();
    let mut executors: HashMap<Target, Arc<dyn Executor>> = HashMap::new();
    let sources = &config.sources;

    let mut servers = Vec::new();
    let mut sqlite = Vec::new();
    for pg in &sources.postgres {
        let target = Target::Postgres(pg.name.clone());
        let longest = longest_timeout(sources, &target);
        let server = Server::new(pg.clone(), longest);
        tracker.spawn(
            Arc::clone(&server)
                .run(shutdown.child_token())
                .instrument(tracing::info_span!("postgres", server = %pg.name)),
        );
        concurrent.push(Arc::new(PostgresCollector::new(Arc::clone(&server))));
        executors.insert(target, Arc::new(PostgresExecutor(Arc::clone(&server))));
        servers.push(server);
    }
    for db in &sources.sqlite {
        let collector = SqliteCollector::new(db.clone());
        collector.spawn_integrity(shutdown.child_token(), tracker);
        sqlite.push(Arc::clone(&collector));
        concurrent.push(Arc::new(OwnThread::new(collector)));
        executors.insert(Target::Sqlite(db.name.clone()), SqliteExecutor::new(db));
    }

    let jobs = sources
        .queries
        .iter()
        .map(|q| (q.target.clone(), UserQuery::boxed(q.clone())))
        .chain(
            sources
                .run_queues
                .iter()
                .map(|q| (q.target.clone(), RunQueue::boxed(q.clone()))),
        );
    let mut runners = Vec::new();
    for (target, job) in jobs {
        // Validation guarantees every target names a configured source.
        let Some(executor) = executors.get(&target) else {
            continue;
        };
        let runner = Runner::new(job, Arc::clone(executor));
        tracker.spawn(Arc::clone(&runner).run(shutdown.child_token()));
        runners.push(runner);
    }
    if !runners.is_empty() {
        concurrent.push(Arc::new(QueriesCollector::new(runners.clone())));
    }
    if let Some(backups) = backups.filter(|b| !b.jobs().is_empty()) {
        // Its own thread: the store may wait briefly on another process's write, which must
        // not hold up the host collectors.
        concurrent.push(Arc::new(OwnThread::new(BackupCollector::new(
            Arc::clone(backups),
            config.host.timeout,
        ))));
    }
    Started {
        collectors: Collectors::new(blocking, concurrent).with_node_scrape(host_names),
        servers,
        sqlite,
        runners,
    }
}

/// The longest timeout of the queries and run queues on a target: the session's
/// `statement_timeout` must not cut them short.
fn longest_timeout(sources: &Sources, target: &Target) -> Duration {
    let queries = sources
        .queries
        .iter()
        .filter(|q| q.target == *target)
        .map(|q| q.timeout);
    let queues = sources
        .run_queues
        .iter()
        .filter(|q| q.target == *target)
        .map(|q| q.timeout);
    queries.chain(queues).max().unwrap_or_default()
}

/// What [`start`] built.
pub struct Started {
    /// Every collector.
    pub collectors: Collectors,
    servers: Vec<Arc<Server>>,
    sqlite: Vec<Arc<SqliteCollector>>,
    runners: Vec<Arc<Runner>>,
}

impl Started {
    /// Waits until every PostgreSQL server has tried once and every query has run once, or
    /// `limit` has passed (for `warden metrics`, which reports one collection).
    pub async fn first_results(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            let servers = self.servers.iter().all(|s| s.has_tried());
            let runners = self.runners.iter().all(|r| r.has_run());
            if servers && runners {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Collects once and returns the exposition in text format 0.0.4 (`warden metrics`). Database
/// sources get one connection attempt and one run of each query, bounded by their timeouts.
pub async fn metrics_once(config: &Config) -> String {
    let tracker = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let backups = open_backups(config).await;
    let started = start(config, backups.as_ref(), &tracker, &shutdown);
    started.first_results(first_results_limit(config)).await;
    let snapshot = started.collectors.gather(None).await;
    shutdown.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    collect::family::encode(snapshot, Format::Text004)
}

/// The backup jobs over the state store, when any are configured; a store that cannot be
/// opened is logged and leaves the backup families out.
async fn open_backups(config: &Config) -> Option<Arc<Backups>> {
    if config.backups.is_empty() {
        return None;
    }
    let config = config.clone();
    match tokio::task::spawn_blocking(move || Backups::open(&config)).await {
        Ok(Ok(backups)) => Some(backups),
        Ok(Err(err)) => {
            tracing::error!(error = %collect::ErrorChain(&err), "Cannot open the backup catalog.");
            None
        }
        Err(_) => None,
    }
}

/// How long `warden metrics` waits for the database sources: their longest timeout, twice (a
/// connection attempt, then the statements), plus a second.
fn first_results_limit(config: &Config) -> Duration {
    let s = &config.sources;
    let longest = s
        .postgres
        .iter()
        .map(|p| p.timeout)
        .chain(s.queries.iter().map(|q| q.timeout))
        .chain(s.run_queues.iter().map(|q| q.timeout))
        .max()
        .unwrap_or_default();
    longest * 2 + Duration::from_secs(1)
}

/// Runs the server until `shutdown` is cancelled (`warden serve`).
///
/// # Errors
/// Fails if the state directory cannot be taken, the address cannot be bound, or the server
/// stops with an I/O error.
pub async fn serve(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    tracing::info!(config = %config.origin, version = env!("CARGO_PKG_VERSION"), "Starting warden.");
    refuse_open_webhook(&config)?;
    let _lock = lock_state_dir(&config.state_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(Error::Serve)?;
    if !local.ip().is_loopback() && !config.web.authenticates() {
        tracing::warn!(
            listen = %local,
            "Listening beyond loopback without authentication (web.bearer_token or basic-auth users): anyone who can reach this address can read the metrics."
        );
    }
    let tracker = TaskTracker::new();
    let backups = if config.backups.is_empty() {
        None
    } else {
        let owned = config.clone();
        let opened = tokio::task::spawn_blocking(move || Backups::open(&owned))
            .await
            .map_err(|err| Error::Serve(std::io::Error::other(err)))??;
        crate::backup::scheduler::spawn(&opened, &tracker, &shutdown);
        Some(opened)
    };
    let actions = if config.act.actions.is_empty() {
        None
    } else {
        let owned = config.clone();
        let backups = backups.clone();
        let opened = tokio::task::spawn_blocking(move || Actions::open(&owned, backups))
            .await
            .map_err(|err| Error::Serve(std::io::Error::other(err)))?
            .map_err(Error::Store)?;
        opened.spawn(&tracker, &shutdown);
        Some(opened)
    };
    let mut started = start(&config, backups.as_ref(), &tracker, &shutdown);
    if let Some(actions) = &actions {
        started
            .collectors
            .add(Arc::new(OwnThread::new(ActionCollector::new(
                Arc::clone(actions),
                config.host.timeout,
            ))));
    }
    let watched = serve::status::Watched {
        servers: started.servers,
        sqlite: started.sqlite,
        runners: started.runners,
        backups,
    };
    let state = AppState::new(&config, started.collectors, actions, watched);
    let app_state = Arc::clone(&state);
    let app = serve::router(Arc::clone(&state), &config, serve::webhook_routes());
    let server = serve::server::Server::try_new(listener, app, &config.web)?;
    let server = tracker.spawn(server.run(shutdown.child_token()));
    tracker.close();
    tracing::info!(
        listen = %local,
        tls = config.web.tls.is_some(),
        state_dir = %config.state_dir.display(),
        "warden is serving."
    );

    shutdown.cancelled().await;
    state.set_shutting_down();
    tracing::info!(grace = ?config.web.shutdown_grace, "Shutting down.");
    if tokio::time::timeout(config.web.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            grace = ?config.web.shutdown_grace,
            "Shutdown did not complete within the grace period; abandoning open requests."
        );
        log_stuck(&app_state);
        return Ok(());
    }
    log_stuck(&app_state);
    server
        .await
        .map_err(|err| Error::Serve(std::io::Error::other(err)))
}

/// Refuses, before anything binds, to serve `/alerts` beyond loopback without
/// authentication: anyone who could reach the port could trigger actions (robusta#2174).
fn refuse_open_webhook(config: &Config) -> Result<(), Error> {
    if config.act.webhook_enabled()
        && !config.listen.ip().is_loopback()
        && !config.web.authenticates()
    {
        return Err(Error::UnauthenticatedWebhook {
            addr: config.listen,
        });
    }
    Ok(())
}

/// Names the collectors whose threads are still blocked; exiting abandons them.
fn log_stuck(state: &AppState) {
    let stuck = state.collectors.stuck();
    if !stuck.is_empty() {
        tracing::warn!(collectors = ?stuck, "Abandoning collector threads still blocked in a read.");
    }
}

/// Takes the state directory's lock when no other warden holds it (`warden actions run`
/// then runs its job itself); `None` when one does, or when it cannot be taken.
pub fn try_lock_state_dir(dir: &Path) -> Option<File> {
    lock_state_dir(dir).ok()
}

/// Creates the state directory and takes an exclusive lock on it for the life of the process.
fn lock_state_dir(dir: &Path) -> Result<File, Error> {
    let state_err = |source| Error::StateDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(state_err)?;
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(state_err)?;
    if let Err(errno) =
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
    {
        if errno == rustix::io::Errno::WOULDBLOCK {
            let pid = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .trim()
                .to_owned();
            return Err(Error::StateDirInUse {
                path: dir.to_owned(),
                pid,
            });
        }
        return Err(state_err(errno.into()));
    }
    file.set_len(0).map_err(state_err)?;
    std::io::Write::write_all(&mut &file, format!("{}\n", std::process::id()).as_bytes())
        .map_err(state_err)?;
    Ok(file)
}

/// Resolves when SIGTERM or SIGINT arrives; cancels `token` then.
pub async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "Cannot listen for SIGTERM.");
                return;
            }
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("Received SIGTERM."),
            _ = tokio::signal::ctrl_c() => tracing::info!("Received SIGINT."),
            () = token.cancelled() => return,
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Received Ctrl-C."),
            () = token.cancelled() => return,
        }
    }
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_beyond_loopback_need_authentication() {
        let yaml = |listen: &str, web: &str| {
            format!(
                "listen: '{listen}'\n{web}backups:\n  - {{name: b, kind: files, paths: [/etc/hostname], destination: /tmp/warden-app-test}}\nactions:\n  - {{name: a, backup: b}}\nroutes:\n  - {{match: {{alertname: X}}, actions: [a]}}\n"
            )
        };
        let config = |listen: &str, web: &str| {
            Config::try_from_yaml(
                &yaml(listen, web),
                "test",
                Path::new("."),
                &crate::config::ProcessEnv,
            )
            .unwrap()
        };
        for open in ["0.0.0.0:9798", "[::]:9798", "192.0.2.10:9798"] {
            let err = refuse_open_webhook(&config(open, "")).unwrap_err();
            assert!(err.to_string().contains("without authentication"), "{err}");
        }
        refuse_open_webhook(&config("127.0.0.1:9798", "")).unwrap();
        refuse_open_webhook(&config("[::1]:9798", "")).unwrap();
        refuse_open_webhook(&config("0.0.0.0:9798", "web: {bearer_token: t}\n")).unwrap();
    }

    #[test]
    fn a_second_warden_cannot_take_the_state_dir() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock_state_dir(dir.path()).unwrap();
        match lock_state_dir(dir.path()) {
            Err(Error::StateDirInUse { pid, .. }) => {
                assert_eq!(pid, std::process::id().to_string())
            }
            other => panic!("expected StateDirInUse, got {other:?}"),
        }
        drop(first);
        lock_state_dir(dir.path()).unwrap();
    }
}
