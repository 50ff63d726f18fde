//! warden: one binary per host that exports host and database metrics for Prometheus and turns
//! Alertmanager alerts into verified actions.
//!
//! # Layout
//! - [`config`]: the YAML configuration, validated into typed values before anything starts.
//! - [`collect`]: the collector framework and the metric sources (host, process).
//! - [`serve`]: the HTTP server: `/metrics`, `/healthz`, `/readyz` and the landing page.
//! - [`app`]: wires the parts together for `warden serve` and `warden metrics`, with one
//!   cancellation tree and a bounded shutdown.
//! - [`telemetry`]: log output.

pub mod app;
pub mod collect;
pub mod config;
pub mod serve;
pub mod telemetry;
