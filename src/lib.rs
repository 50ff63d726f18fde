//! warden: one binary per host that exports host and database metrics for Prometheus and turns
//! Alertmanager alerts into verified actions.
//!
//! # Layout
//! - [`act`]: the Alertmanager webhook's half: routes alerts to actions, runs them from a
//!   durable job queue, and reports results as metrics and an audit log.
//! - [`config`]: the YAML configuration, validated into typed values before anything starts.
//! - [`collect`]: the collector framework and the metric sources (host, process).
//! - [`backup`]: backup jobs (postgres, sqlite, files): run, verify, drill, prune, restore,
//!   on schedule and on demand; a backup counts only once verified.
//! - [`store`]: warden's own state, an embedded SQLite database (run counters, schedules,
//!   the backup catalog rebuilt from manifests).
//! - [`serve`]: the HTTP server: `/metrics`, `/healthz`, `/readyz` and the landing page.
//! - [`check`]: `warden check-config --connect`: contacts the databases, tools and
//!   destinations the configuration names and reports every problem with its key path.
//! - [`app`]: wires the parts together for `warden serve` and `warden metrics`, with one
//!   cancellation tree and a bounded shutdown.
//! - [`telemetry`]: log output.
//!
//! `fuzzing` (hidden) gives the fuzz driver in `crates/fuzz` one entry per parser of outside
//! input; it is not part of the interface.

pub mod act;
pub mod app;
pub mod backup;
pub mod check;
pub mod collect;
pub mod config;
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod fuzzing;
pub mod serve;
pub mod store;
pub mod telemetry;
