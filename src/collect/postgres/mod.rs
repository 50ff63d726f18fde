//! PostgreSQL: postgres_exporter's metric names and labels, plus a `server` label, read over
//! **one long-lived connection per configured server**.
//!
//! Each server has one task, [`Server::run`], that owns the connection: it connects lazily
//! with `application_name=warden`, `statement_timeout`, `lock_timeout` and read-only
//! transactions, reconnects with backoff when the connection drops, refreshes the statistics
//! every `interval` (database sizes every `size_interval`, because `pg_database_size` reads
//! every file of every database), and runs the user queries and run queues that target the
//! server, one statement at a time: each user statement must be one query returning rows, and
//! runs in a read-only transaction with the session discarded after it (`run_job`). Scrapes
//! never touch the database: they read the last snapshot, so they answer at once, and with
//! `pg_up 0` while the server is down, and two Prometheus replicas do not double the load on
//! the database.
//!
//! A statement past its timeout is cancelled on the server (a PostgreSQL cancel request), not
//! just abandoned; `statement_timeout` backs that up.

pub mod error;
mod stats;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, SimpleQueryMessage};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use super::sql::{Cell, Executor, MAX_ROWS, QueryError, QueryFuture, Rows};
use super::{CollectFuture, Collector, ErrorChain, Family};
use crate::config::PostgresConfig;
use error::{Endpoint, PgError, SessionError};

/// The first reconnect delay; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Idle time before TCP keepalive probes start on the connection.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// Queued user statements per server; more are refused rather than piling up behind a slow one.
const JOB_QUEUE: usize = 64;

/// What the scrape reads: the connection state and the last statistics.
#[derive(Debug, Default)]
struct Snapshot {
    up: bool,
    stats: Vec<Family>,
    sizes: Vec<Family>,
}

/// What the status page shows about a server, kept by its task.
#[derive(Debug, Clone, Default)]
pub struct Health {
    /// Whether the last refresh on a connection worked.
    pub connected: bool,
    /// Since when it has been connected, or down; `None` before the first attempt finished.
    pub since: Option<SystemTime>,
    /// The last failure to connect or to answer, with the whole chain of causes (the DSN and
    /// its password are never part of it), and when it happened.
    pub last_error: Option<(SystemTime, String)>,
}

impl Health {
    /// Records the state, moving `since` when it changes.
    fn set(&mut self, connected: bool) {
        if self.since.is_none() || self.connected != connected {
            self.since = Some(SystemTime::now());
        }
        self.connected = connected;
    }

    /// Records a failure.
    fn failed(&mut self, error: String) {
        self.last_error = Some((SystemTime::now(), error));
    }
}

/// A statement to run for a user query or run queue.
struct Job {
    sql: String,
    timeout: Duration,
    reply: oneshot::Sender<Result<Rows, QueryError>>,
}

/// One configured PostgreSQL server: its connection task, its snapshot and its job queue.
pub struct Server {
    config: PostgresConfig,
    snapshot: Mutex<Snapshot>,
    jobs: mpsc::Sender<Job>,
    queue: Mutex<Option<mpsc::Receiver<Job>>>,
    /// The session's `statement_timeout`: the longest timeout of anything run on it.
    statement_timeout: Duration,
    /// Set once the first connection attempt (and, when connected, refresh) has finished.
    tried: AtomicBool,
    /// The connection state and last error, for the status page.
    health: Mutex<Health>,
    /// The TLS connector, used as the DSN's `sslmode` says (and for cancel requests).
    tls: MakeRustlsConnect,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Server {
    /// A server that has not connected yet; `longest_timeout` is the longest timeout of the
    /// user queries that will run on it.
    pub fn new(config: PostgresConfig, longest_timeout: Duration) -> Arc<Self> {
        let (jobs, queue) = mpsc::channel(JOB_QUEUE);
        // check-config read the CA file already; if it went away since, the Mozilla roots are
        // still trusted and the reason is logged.
        let tls = tls::connector(config.ca_file.as_deref()).unwrap_or_else(|err| {
            tracing::error!(server = %config.name, error = %crate::collect::ErrorChain(&err), "Cannot load the CA file; trusting the public roots only.");
            tls::public_roots()
        });
        let statement_timeout = statement_timeout(&config, longest_timeout);
        Arc::new(Server {
            config,
            snapshot: Mutex::default(),
            jobs,
            queue: Mutex::new(Some(queue)),
            statement_timeout,
            tried: AtomicBool::new(false),
            health: Mutex::default(),
            tls,
        })
    }

    /// Whether the first connection attempt, and the first refresh if it connected, are done.
    pub fn has_tried(&self) -> bool {
        self.tried.load(Ordering::Acquire)
    }

    /// The connection state and last error as the server's task last saw them.
    pub fn health(&self) -> Health {
        lock(&self.health).clone()
    }

    /// The configured name (the `server` label).
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Owns the connection until `shutdown`: connects, refreshes, runs jobs, reconnects.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut queue) = lock(&self.queue).take() else {
            return;
        };
        let mut backoff = MIN_BACKOFF;
        while !shutdown.is_cancelled() {
            // The whole startup (TCP, authentication, parameters) is bounded: `connect_timeout`
            // covers only the TCP connect, and a server that accepts and then stalls must not
            // wedge this task. Jobs arriving meanwhile wait for it (their runner's own limit
            // still applies); they fail at once only while waiting to retry.
            let (pg, endpoint) = self.session_config();
            tracing::debug!(
                server = %self.config.name,
                address = %endpoint.address,
                database = %endpoint.database,
                user = endpoint.user.as_deref().unwrap_or(""),
                tls = endpoint.tls,
                timeout = ?self.config.timeout,
                "Connecting to PostgreSQL."
            );
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return,
                attempt = tokio::time::timeout(self.config.timeout, pg.connect(self.tls.clone())) => attempt,
            };
            let healthy = match attempt {
                Ok(Ok((client, connection))) => {
                    tracing::info!(server = %self.config.name, address = %endpoint.address, "Connected to PostgreSQL.");
                    self.serve(&client, connection, &endpoint, &mut queue, &shutdown)
                        .await
                }
                Ok(Err(err)) => {
                    let err = SessionError::Connect {
                        endpoint,
                        source: PgError::from(err),
                    };
                    tracing::warn!(server = %self.config.name, error = %ErrorChain(&err), retry_in = ?backoff, "Cannot connect to PostgreSQL.");
                    lock(&self.health).failed(ErrorChain(&err).to_string());
                    false
                }
                Err(_) => {
                    tracing::warn!(server = %self.config.name, address = %endpoint.address, timeout = ?self.config.timeout, retry_in = ?backoff, "PostgreSQL did not complete the connection in time.");
                    lock(&self.health).failed(format!(
                        "{endpoint} did not complete the connection within {:?}",
                        self.config.timeout
                    ));
                    false
                }
            };
            self.set_down();
            self.tried.store(true, Ordering::Release);
            if healthy {
                // A session that worked and then dropped: reconnect at once, from the start.
                backoff = MIN_BACKOFF;
                continue;
            }
            let sleep = tokio::time::sleep(backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    () = &mut sleep => break,
                    () = shutdown.cancelled() => return,
                    Some(job) = queue.recv() => self.refuse(job),
                }
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Fails a job at once because the server is not connected.
    fn refuse(&self, job: Job) {
        let _ = job.reply.send(Err(QueryError::Unavailable(format!(
            "postgres/{} is not connected",
            self.config.name
        ))));
    }

    /// The session's connection settings (the DSN plus warden's own) and where it goes.
    fn session_config(&self) -> (tokio_postgres::Config, Endpoint) {
        session_config(&self.config, self.statement_timeout)
    }

    /// Serves one connection until it breaks or shutdown.
    async fn serve(
        &self,
        client: &Client,
        connection: impl Future<Output = Result<(), tokio_postgres::Error>> + Send,
        endpoint: &Endpoint,
        queue: &mut mpsc::Receiver<Job>,
        shutdown: &CancellationToken,
    ) -> bool {
        // Whether a refresh has succeeded on this connection.
        let mut healthy = false;
        let connection = async move {
            match connection.await {
                Ok(()) => {
                    tracing::warn!(server = %endpoint.server, address = %endpoint.address, "PostgreSQL closed the connection.");
                    lock(&self.health).failed(format!("{endpoint} closed the connection"));
                }
                Err(err) => {
                    let err = SessionError::Closed {
                        endpoint: endpoint.clone(),
                        source: PgError::from(err),
                    };
                    tracing::warn!(server = %endpoint.server, error = %ErrorChain(&err), "PostgreSQL connection closed.");
                    lock(&self.health).failed(ErrorChain(&err).to_string());
                }
            }
        };
        tokio::pin!(connection);
        let mut stats_tick = tokio::time::interval(self.config.interval);
        let mut size_tick = tokio::time::interval(self.config.size_interval);
        for tick in [&mut stats_tick, &mut size_tick] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            // The connection future drives the socket; every statement below is raced against
            // it, so a dropped connection ends the statement and this loop.
            let work = async {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => Step::Stop,
                    _ = stats_tick.tick() => Step::Stats,
                    _ = size_tick.tick() => Step::Sizes,
                    Some(job) = queue.recv() => Step::Job(job),
                }
            };
            let step = tokio::select! {
                () = &mut connection => return healthy,
                step = work => step,
            };
            let done = async {
                match step {
                    Step::Stop => false,
                    Step::Stats => {
                        let stats =
                            stats::collect(client, &self.tls, &self.config, self.config.timeout)
                                .await;
                        let connected = stats.connected;
                        {
                            let mut snapshot = lock(&self.snapshot);
                            snapshot.up = connected;
                            snapshot.stats = stats.families;
                        }
                        {
                            let mut health = lock(&self.health);
                            health.set(connected);
                            if let Some(error) = stats.error {
                                health.failed(error);
                            }
                        }
                        self.tried.store(true, Ordering::Release);
                        // A session that cannot answer the first query (a dead peer, a stuck
                        // backend) is replaced rather than kept.
                        connected
                    }
                    Step::Sizes => {
                        if let Some(sizes) = stats::sizes(client, &self.tls, &self.config).await {
                            lock(&self.snapshot).sizes = sizes;
                        }
                        true
                    }
                    // The runner stopped waiting (its own limit passed): do not run it late.
                    Step::Job(job) if job.reply.is_closed() => true,
                    Step::Job(job) => {
                        let result = run_job(client, &self.tls, &job.sql, job.timeout).await;
                        let _ = job.reply.send(result);
                        true
                    }
                }
            };
            let keep_going = tokio::select! {
                () = &mut connection => return healthy,
                keep_going = done => keep_going,
            };
            if !keep_going {
                return healthy;
            }
            healthy |= lock(&self.snapshot).up;
        }
    }

    fn set_down(&self) {
        lock(&self.health).set(false);
        let mut snapshot = lock(&self.snapshot);
        snapshot.up = false;
        snapshot.stats.clear();
        snapshot.sizes.clear();
    }

    /// The families a scrape reports: `pg_up` always, the statistics while connected.
    fn families(&self) -> Vec<Family> {
        let snapshot = lock(&self.snapshot);
        let mut up = Family::gauge(
            "pg_up",
            "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
        );
        up.push(
            [("server", self.config.name.clone())],
            if snapshot.up { 1.0 } else { 0.0 },
        );
        let mut families = vec![up];
        if snapshot.up {
            families.extend(snapshot.stats.iter().cloned());
            families.extend(snapshot.sizes.iter().cloned());
        }
        families
    }
}

enum Step {
    Stop,
    Stats,
    Sizes,
    Job(Job),
}

/// Runs one simple-query statement, cancelling it on the server at `timeout`.
async fn run_statement(
    client: &Client,
    tls: &MakeRustlsConnect,
    sql: &str,
    timeout: Duration,
) -> Result<Rows, QueryError> {
    let query = async {
        client
            .simple_query(sql)
            .await
            .map(rows)
            .map_err(|err| QueryError::Postgres(err.into()))
    };
    cancel_at(client, tls, timeout, query).await
}

/// A connection's settings: the DSN plus warden's own (`application_name=warden`, the
/// statement and lock timeouts, read-only transactions, ISO dates in UTC), and where it goes.
fn session_config(
    config: &PostgresConfig,
    statement_timeout: Duration,
) -> (tokio_postgres::Config, Endpoint) {
    // The DSN parsed at config time; parsing again cannot fail, and a failure would only
    // mean "cannot connect".
    let mut pg: tokio_postgres::Config = config.dsn.expose_secret().parse().unwrap_or_default();
    // warden's settings go after any `options` the DSN carries (search_path, say). ISO dates
    // in UTC are what the timestamp parser reads, whatever the server's defaults are; no
    // notices (user SQL may raise them; nothing reads them).
    let options = format!(
        "{} -c statement_timeout={} -c lock_timeout={} -c default_transaction_read_only=on \
         -c DateStyle=ISO -c TimeZone=UTC -c IntervalStyle=postgres -c client_min_messages=error",
        pg.get_options().unwrap_or_default(),
        statement_timeout.as_millis(),
        config.timeout.as_millis().min(1000)
    );
    pg.application_name("warden")
        .connect_timeout(config.timeout)
        // A peer that vanished (host crash, failover) is noticed within a minute rather
        // than after the kernel's two-hour keepalive default.
        .keepalives_idle(KEEPALIVE_IDLE)
        .tcp_user_timeout(config.timeout.max(KEEPALIVE_IDLE))
        .options(options.trim_start());
    let endpoint = Endpoint::new(&config.name, &pg);
    (pg, endpoint)
}

/// The session's `statement_timeout`: the database-size query gets SIZE_TIMEOUT_FACTOR ×
/// timeout, and nothing may be cut short by the session limit before the client-side cancel.
fn statement_timeout(config: &PostgresConfig, longest_timeout: Duration) -> Duration {
    (config.timeout * stats::SIZE_TIMEOUT_FACTOR).max(longest_timeout) + Duration::from_secs(1)
}

/// Runs user SQL read-only, then resets the session.
///
/// The SQL is first parsed and described as a prepared statement (the extended protocol),
/// which refuses several statements in one string, and a statement without result columns
/// (`SET ROLE`, `BEGIN`, `COMMIT`, `CREATE`, `LISTEN` ...) is refused before it runs. The one
/// query then runs between `BEGIN READ ONLY` and `COMMIT` (`ROLLBACK` when it failed), its
/// rows read as text up to [`MAX_ROWS`], and `DISCARD ALL` afterwards drops whatever functions
/// it called left on the shared session: settings made with `set_config`, a role, advisory
/// locks, temporary tables, prepared statements, `LISTEN`.
async fn run_job(
    client: &Client,
    tls: &MakeRustlsConnect,
    sql: &str,
    timeout: Duration,
) -> Result<Rows, QueryError> {
    let result = run_read_only(client, tls, sql, timeout).await;
    if let Err(err) = client.batch_execute("DISCARD ALL").await {
        tracing::warn!(error = %ErrorChain(&PgError::from(err)), "Cannot reset the session after a query.");
    }
    // DISCARD ALL also deallocated the driver's cached type-lookup statements.
    client.clear_type_cache();
    result
}

/// `BEGIN READ ONLY`, the one query, `COMMIT` (or `ROLLBACK` after a failure).
async fn run_read_only(
    client: &Client,
    tls: &MakeRustlsConnect,
    sql: &str,
    timeout: Duration,
) -> Result<Rows, QueryError> {
    let pg = |err: tokio_postgres::Error| QueryError::Postgres(err.into());
    client.batch_execute("BEGIN READ ONLY").await.map_err(pg)?;
    let result = cancel_at(client, tls, timeout, read_query(client, tls, sql)).await;
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    match client.batch_execute(end).await {
        Ok(()) => result,
        Err(err) if result.is_ok() => Err(pg(err)),
        Err(err) => {
            tracing::warn!(error = %ErrorChain(&PgError::from(err)), "Cannot roll back after a failed query.");
            result
        }
    }
}

/// Runs `work` (statements on `client`) under `timeout`; past it, cancels the statement on
/// the server and waits (up to `timeout` more) for it to end, so the next statement does not
/// queue behind it.
async fn cancel_at<T>(
    client: &Client,
    tls: &MakeRustlsConnect,
    timeout: Duration,
    work: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, QueryError> {
    tokio::pin!(work);
    match tokio::time::timeout(timeout, &mut work).await {
        Ok(result) => result,
        Err(_) => {
            cancel(client, tls).await;
            let _ = tokio::time::timeout(timeout, &mut work).await;
            Err(QueryError::Timeout(timeout))
        }
    }
}

/// Sends a cancel request for whatever the session is running.
async fn cancel(client: &Client, tls: &MakeRustlsConnect) {
    if let Err(err) = client.cancel_token().cancel_query(tls.clone()).await {
        tracing::warn!(error = %ErrorChain(&PgError::from(err)), "Cannot send a cancel request to PostgreSQL.");
    }
}

/// Checks that `sql` is one query returning rows, then runs it and reads at most
/// [`MAX_ROWS`] rows; past that the statement is cancelled and the rest read and dropped, so a
/// huge result never sits in memory (the caller's row check then fails the query).
async fn read_query(
    client: &Client,
    tls: &MakeRustlsConnect,
    sql: &str,
) -> Result<Rows, QueryError> {
    let statement = client.prepare(sql).await.map_err(|err| {
        let multiple = err.as_db_error().is_some_and(|db| {
            *db.code() == tokio_postgres::error::SqlState::SYNTAX_ERROR
                && db.message().contains("multiple commands")
        });
        if multiple {
            QueryError::NotOneStatement(err.into())
        } else {
            QueryError::Postgres(err.into())
        }
    })?;
    if statement.columns().is_empty() {
        return Err(QueryError::NotAQuery);
    }
    drop(statement);
    // The simple-query protocol returns every value as text, which is what the value parser
    // reads; the statement is known to be exactly one.
    let stream = client
        .simple_query_raw(sql)
        .await
        .map_err(|err| QueryError::Postgres(err.into()))?;
    tokio::pin!(stream);
    let mut next = async || {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(stream.as_mut(), cx))
            .await
            .transpose()
            .map_err(|err| QueryError::Postgres(err.into()))
    };
    let mut out = Rows::default();
    while let Some(message) = next().await? {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                out.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if out.rows.len() == MAX_ROWS {
                    // Enough to know the result is too large: stop the server, and read
                    // (without keeping) what it sent before the cancel landed.
                    cancel(client, tls).await;
                    while let Ok(Some(_)) = next().await {}
                    break;
                }
                out.rows.push(
                    (0..row.len())
                        .map(|i| {
                            row.get(i)
                                .map_or(Cell::Null, |text| Cell::Text(text.to_owned()))
                        })
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Why a [`Session`] could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The CA file could not be loaded.
    #[error("cannot use ca_file")]
    CaFile(#[source] tls::Error),
    /// The server refused or failed the connection; the whole cause (the server's message
    /// and SQLSTATE, or the I/O error) and where, never the password.
    #[error(transparent)]
    Failed(#[from] SessionError),
    /// The connection (TCP, TLS, authentication) did not complete in time.
    #[error("{endpoint} did not complete the connection within {timeout:?}")]
    TimedOut {
        /// Where.
        endpoint: Endpoint,
        /// The limit: the entry's `timeout`.
        timeout: Duration,
    },
}

/// One connection opened on demand, outside any server task, for a one-off check
/// (`warden check-config --connect`). It has the collector's session settings, and runs
/// statements exactly as the server task runs user queries: one at a time, read-only,
/// cancelled at their timeout, the session discarded after each.
pub struct Session {
    client: tokio::sync::Mutex<Client>,
    tls: MakeRustlsConnect,
    connection: tokio::task::JoinHandle<()>,
}

impl Session {
    /// Connects to `config`'s server within its `timeout`; `longest_timeout` is the longest
    /// timeout of the statements that will run.
    ///
    /// # Errors
    /// [`ConnectError`] with the whole cause (address, server message, SQLSTATE).
    pub async fn connect(
        config: &PostgresConfig,
        longest_timeout: Duration,
    ) -> Result<Session, ConnectError> {
        let tls = tls::connector(config.ca_file.as_deref()).map_err(ConnectError::CaFile)?;
        let (pg, endpoint) = session_config(config, statement_timeout(config, longest_timeout));
        let attempt = tokio::time::timeout(config.timeout, pg.connect(tls.clone())).await;
        let (client, connection) = match attempt {
            Ok(Ok(connected)) => connected,
            Ok(Err(cause)) => {
                return Err(ConnectError::Failed(SessionError::Connect {
                    endpoint,
                    source: PgError::from(cause),
                }));
            }
            Err(_) => {
                return Err(ConnectError::TimedOut {
                    endpoint,
                    timeout: config.timeout,
                });
            }
        };
        let connection = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Session {
            client: tokio::sync::Mutex::new(client),
            tls,
            connection,
        })
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Executor for Session {
    fn query(&self, sql: String, timeout: Duration) -> QueryFuture<'_> {
        Box::pin(async move {
            let client = self.client.lock().await;
            run_job(&client, &self.tls, &sql, timeout).await
        })
    }
}

/// The first result set of a simple query as rows of text cells.
pub(crate) fn rows(messages: Vec<SimpleQueryMessage>) -> Rows {
    let mut out = Rows::default();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) if out.columns.is_empty() => {
                out.columns = columns.iter().map(|c| c.name().to_owned()).collect();
            }
            SimpleQueryMessage::Row(row) => {
                if out.columns.is_empty() {
                    out.columns = row.columns().iter().map(|c| c.name().to_owned()).collect();
                }
                out.rows.push(
                    (0..row.len())
                        .map(|i| match row.get(i) {
                            Some(text) => Cell::Text(text.to_owned()),
                            None => Cell::Null,
                        })
                        .collect(),
                );
            }
            // The first result set is complete; later statements' results are ignored.
            SimpleQueryMessage::CommandComplete(_) if !out.columns.is_empty() => break,
            _ => {}
        }
    }
    out
}

/// The scrape side of a server: reads its snapshot.
pub struct PostgresCollector {
    server: Arc<Server>,
    name: String,
}

impl PostgresCollector {
    /// The collector for `server`; its `collector` label is `postgres/NAME`.
    pub fn new(server: Arc<Server>) -> Self {
        let name = format!("postgres/{}", server.name());
        PostgresCollector { server, name }
    }
}

impl Collector for PostgresCollector {
    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn collect(&self) -> CollectFuture<'_> {
        Box::pin(async move { Ok(self.server.families()) })
    }
}

/// Runs user statements on a server's connection.
pub struct PostgresExecutor(pub Arc<Server>);

impl Executor for PostgresExecutor {
    fn query(&self, sql: String, timeout: Duration) -> QueryFuture<'_> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let unavailable =
                || QueryError::Unavailable(format!("postgres/{} is not running", self.0.name()));
            self.0
                .jobs
                .try_send(Job {
                    sql,
                    timeout,
                    reply,
                })
                .map_err(|err| match err {
                    mpsc::error::TrySendError::Full(_) => QueryError::Unavailable(format!(
                        "postgres/{}: {JOB_QUEUE} statements already queued",
                        self.0.name()
                    )),
                    mpsc::error::TrySendError::Closed(_) => unavailable(),
                })?;
            answer.await.map_err(|_| unavailable())?
        })
    }
}
