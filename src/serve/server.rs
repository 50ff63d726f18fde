//! The accept loop: TCP (optionally TLS) connections served over HTTP/1.1 by hyper, bounded.
//!
//! - **Connection cap** (`web.max_connections`): a permit is taken *before* `accept`, so at the
//!   cap the loop stops accepting and new connections wait in the kernel's listen backlog (as
//!   Go's `netutil.LimitListener` does) instead of costing a descriptor each; they are served
//!   as earlier ones close. Closed would be the alternative, but then a scrape arriving during
//!   a burst fails outright instead of waiting a moment.
//! - **Header-read timeout** (`web.header_read_timeout`): hyper closes a connection whose
//!   request headers have not all arrived in time. hyper starts the timer when it waits for a
//!   request, so it also bounds the wait for the next request on a kept-alive connection.
//! - **Idle timeout** (`web.idle_timeout`): a connection on which no byte is read or written
//!   for that long is closed (a stalled upload, a client that stopped reading).
//! - **TLS handshake timeout** (`web.tls_handshake_timeout`), TCP keepalive
//!   ([`TCP_KEEPALIVE_TIME`]) so dead peers are found, `TCP_NODELAY`.
//! - **Accept errors** such as EMFILE do not spin the loop: it sleeps [`ACCEPT_ERROR_BACKOFF`]
//!   and logs once until an accept succeeds again.
//! - **Graceful shutdown**: on cancellation the listener closes, idle connections close, and
//!   requests in flight finish; the caller bounds the wait by `web.shutdown_grace`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::tls;
pub use super::tls::TlsError;
use crate::config::WebConfig;

/// How long the loop pauses after an accept error that is not about one connection (EMFILE,
/// ENFILE, ENOBUFS): long enough not to spin, short enough to resume soon after a descriptor
/// frees up.
pub const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// Idle time before the kernel sends TCP keepalive probes, and the time between probes: a peer
/// that vanished is found within a few minutes instead of holding a connection slot for hours.
pub const TCP_KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);

/// A bound listener and what it serves.
pub struct Server {
    listener: TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    tls_handshake_timeout: Duration,
}

impl Server {
    /// Serves `app` on `listener` with the limits and TLS of `web`.
    ///
    /// # Errors
    /// When the TLS configuration cannot be built (a file changed since validation).
    pub fn try_new(listener: TcpListener, app: Router, web: &WebConfig) -> Result<Self, TlsError> {
        let tls = web.tls.as_ref().map(tls::acceptor).transpose()?;
        Ok(Server {
            listener,
            app,
            tls,
            limits: Limits {
                max_connections: web.max_connections,
                header_read_timeout: web.header_read_timeout,
                idle_timeout: web.idle_timeout,
                tls_handshake_timeout: web.tls_handshake_timeout,
            },
        })
    }

    /// Accepts and serves connections until `shutdown` is cancelled, then waits for the open
    /// ones to finish their requests and close.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.limits.max_connections));
        let graceful = GracefulShutdown::new();
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Some(self.limits.header_read_timeout));
        let mut failing = false;
        loop {
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => {
                    failing = false;
                    pair
                }
                Err(err) if is_per_connection(&err) => continue,
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "Cannot accept connections; retrying.");
                        failing = true;
                    }
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            };
            configure_socket(&stream);
            let connection = Connection {
                http: http.clone(),
                app: self.app.clone(),
                watcher: graceful.watcher(),
                limits: self.limits,
            };
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tls {
                    None => connection.serve(stream).await,
                    Some(acceptor) => {
                        let timeout = connection.limits.tls_handshake_timeout;
                        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => connection.serve(stream).await,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed.");
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                        }
                    }
                }
            });
        }
        drop(self.listener);
        graceful.shutdown().await;
    }
}

/// Errors that concern only the connection being accepted: the next accept may succeed at once.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

fn configure_socket(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_TIME)
        .with_interval(TCP_KEEPALIVE_INTERVAL);
    if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %err, "Cannot enable TCP keepalive.");
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    http: http1::Builder,
    app: Router,
    watcher: Watcher,
    limits: Limits,
}

impl Connection {
    async fn serve<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: io,
            activity: Arc::clone(&activity),
        });
        let connection = self
            .http
            .serve_connection(io, TowerToHyperService::new(self.app));
        let connection = self.watcher.watch(connection);
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "Connection ended with an error.");
                }
            }
            () = activity.idle_for(self.limits.idle_timeout) => {
                tracing::debug!(idle = ?self.limits.idle_timeout, "Closing an idle connection.");
            }
        }
    }
}

/// When bytes last moved on a connection.
struct Activity {
    start: Instant,
    /// Milliseconds since `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = self.start.elapsed().as_millis() as u64;
        self.last.store(elapsed, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let deadline = self.start + last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An I/O stream that records activity on every read or write that moves bytes.
struct Tracked<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Tracked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Tracked<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_for_waits_from_the_last_activity() {
        let activity = Activity::new();
        let limit = Duration::from_secs(10);
        tokio::time::advance(Duration::from_secs(6)).await;
        activity.touch();
        let started = Instant::now();
        activity.idle_for(limit).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
