//! The HTTP server.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /metrics` | every collector's families: OpenMetrics when the scraper asks for it, text format 0.0.4 otherwise |
//! | `GET /healthz` | 200 while the process serves requests |
//! | `GET /readyz` | 200 when ready to serve scrapes, 503 while shutting down |
//! | `GET /` | the status page: each source's state and last error, each backup job's newest verified backup against its schedule, the action queue and last outcomes (HTML and CSS, no script) |
//! | `GET /status` | the same facts as JSON, for scripts |
//! | `POST /alerts` | Alertmanager's webhook (when actions are configured): 200 once the resulting jobs are committed |
//!
//! **Authentication** (`auth.rs`): with `web.bearer_token` or basic-auth users configured,
//! every endpoint but `/healthz` requires a credential; either kind is accepted when both are
//! configured. **Limits**: scrapes beyond `web.max_concurrent_scrapes` get 503 at once rather
//! than queueing behind slow ones; `/metrics`, `/readyz`, `/` and `/status` are bounded by
//! `web.request_timeout`; a web-config `rate_limit` answers 429 beyond its token bucket;
//! `http_server_config.headers` are added to every response.
//!
//! **Router shape**: [`router`] takes `extra` routes (the Alertmanager webhook) that are merged
//! *inside* authentication but *outside* the request timeout, so a slow commit is not cut off
//! half-way; pass `Router::new()` for none. **Serving**: [`server::Server`] runs the accept
//! loop (TLS, connection cap, header/idle/handshake timeouts, graceful drain); it spawns one
//! task per connection and nothing else.

mod alerts;
mod auth;
mod landing;
mod metrics;
mod rate_limit;
pub mod server;
pub mod status;
mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::extract::Request;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

use crate::act::queue::Actions;
use crate::collect::Collectors;
use crate::config::Config;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The collectors a scrape runs.
    pub collectors: Collectors,
    /// The actions service, when actions are configured (`/alerts`).
    pub actions: Option<Arc<Actions>>,
    /// One permit per scrape allowed to run at once.
    scrape_permits: Semaphore,
    /// The credentials required on protected endpoints, if any.
    auth: auth::Authenticator,
    /// The web-config file's request rate limit, if any.
    rate_limit: Option<rate_limit::RateLimiter>,
    /// Headers added to every response.
    headers: Vec<(HeaderName, HeaderValue)>,
    /// False once shutdown has begun.
    ready: AtomicBool,
    /// When the server started, for the status page.
    started_at: SystemTime,
    /// The sources whose background tasks the status page reads.
    watched: status::Watched,
}

impl AppState {
    /// Shared state for the given configuration and collectors; `watched` are the sources the
    /// status page reports on.
    pub fn new(
        config: &Config,
        collectors: Collectors,
        actions: Option<Arc<Actions>>,
        watched: status::Watched,
    ) -> Arc<Self> {
        Arc::new(AppState {
            collectors,
            actions,
            scrape_permits: Semaphore::new(config.web.max_concurrent_scrapes),
            auth: auth::Authenticator::new(&config.web),
            rate_limit: config.web.rate_limit.map(rate_limit::RateLimiter::new),
            // Validation checked names and values; an entry that still fails is skipped.
            headers: config
                .web
                .headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::from_bytes(name.as_bytes()).ok()?,
                        HeaderValue::from_str(value).ok()?,
                    ))
                })
                .collect(),
            ready: AtomicBool::new(true),
            started_at: SystemTime::now(),
            watched,
        })
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn set_shutting_down(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }
}

/// The webhook's route, for [`router`]'s `extra`: it answers as soon as its jobs are
/// committed, with its own body limit (`webhook.max_body_bytes`).
pub fn webhook_routes() -> Router<Arc<AppState>> {
    Router::new().route("/alerts", axum::routing::post(alerts::handler))
}

/// The application's routes, ready to serve or to test with `oneshot`. `extra` routes are
/// authenticated like the others but not bound by `web.request_timeout` (see the module doc).
pub fn router(state: Arc<AppState>, config: &Config, extra: Router<Arc<AppState>>) -> Router {
    let bounded = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/readyz", get(readyz))
        .route("/", get(landing::handler))
        .route("/status", get(landing::json))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.web.request_timeout,
        ));
    let protected = bounded
        .merge(extra)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_auth,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(protected)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            limit_and_add_headers,
        ))
        .with_state(state)
}

/// Applies the rate limit (429, as exporter-toolkit) and adds the configured headers to every
/// response, refusals included.
async fn limit_and_add_headers(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match &state.rate_limit {
        Some(limiter) if !limiter.try_acquire() => {
            (StatusCode::TOO_MANY_REQUESTS, "too many requests\n").into_response()
        }
        _ => next.run(request).await,
    };
    for (name, value) in &state.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

async fn readyz(State(state): State<Arc<AppState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

#[cfg(test)]
mod tests;
