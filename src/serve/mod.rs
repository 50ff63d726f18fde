//! The HTTP server.
//!
//! | endpoint | what |
//! |---|---|
//! | `GET /metrics` | every collector's families: OpenMetrics when the scraper asks for it, text format 0.0.4 otherwise |
//! | `GET /healthz` | 200 while the process serves requests |
//! | `GET /readyz` | 200 when ready to serve scrapes, 503 while shutting down |
//! | `GET /` | a small HTML page listing the endpoints and each collector's last status |
//! | `POST /alerts` | Alertmanager's webhook (when routes are configured): 200 once the resulting jobs are committed |
//!
//! With `web.bearer_token` set, every endpoint but `/healthz` and `/readyz` requires
//! `Authorization: Bearer <token>`. Scrapes beyond `web.max_concurrent_scrapes` get 503 at once
//! rather than queueing behind slow ones, and every request is bounded by
//! `web.request_timeout`. The server spawns no tasks of its own beyond axum's connections.

mod alerts;
mod auth;
mod landing;
mod metrics;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use secrecy::SecretString;
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
    /// The actions service, when routes are configured (`/alerts`).
    pub actions: Option<Arc<Actions>>,
    /// One permit per scrape allowed to run at once.
    scrape_permits: Semaphore,
    /// The bearer token required on protected endpoints, if any.
    bearer_token: Option<SecretString>,
    /// False once shutdown has begun.
    ready: AtomicBool,
    /// When the server started, for the landing page.
    started_at: SystemTime,
}

impl AppState {
    /// Shared state for the given configuration and collectors.
    pub fn new(
        config: &Config,
        collectors: Collectors,
        actions: Option<Arc<Actions>>,
    ) -> Arc<Self> {
        Arc::new(AppState {
            collectors,
            actions,
            scrape_permits: Semaphore::new(config.web.max_concurrent_scrapes),
            bearer_token: config.web.bearer_token.clone(),
            ready: AtomicBool::new(true),
            started_at: SystemTime::now(),
        })
    }

    /// Marks the server as shutting down: `/readyz` answers 503 from now on.
    pub fn set_shutting_down(&self) {
        self.ready.store(false, Ordering::Relaxed);
    }
}

/// The application's routes, ready to serve or to test with `oneshot`.
pub fn router(state: Arc<AppState>, config: &Config) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/", get(landing::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_bearer,
        ));
    // The webhook answers as soon as its jobs are committed and must not be cut off by the
    // scrape timeout: it sits outside that layer, with its own body limit.
    let webhook = Router::new()
        .route("/alerts", post(alerts::handler))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_bearer,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            alerts::count_unauthorized,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(protected)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.web.request_timeout,
        ))
        .merge(webhook)
        .with_state(state)
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
