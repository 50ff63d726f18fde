//! The "act" half of warden: alerts and schedules in, actions run once, results out as
//! metrics and an audit log.
//!
//! - [`payload`]: Alertmanager's webhook payload, decoded leniently, checked strictly.
//! - [`routing`]: which actions each alert triggers (per alert, in route order).
//! - [`queue`]: the durable job queue: group-committed ingest, dispatcher, schedules,
//!   recovery after a crash, retries.
//! - [`metrics`]: `warden_webhook_*` and `warden_action_*`.
//! - [`command`]: `warden actions list|run|history` and `warden alerts simulate`.
//! - [`kinds`]: what each action kind does (one file per kind, one registration line).

pub mod command;
pub mod kinds;
pub mod metrics;
pub mod payload;
pub mod placeholder;
pub mod queue;
pub mod routing;
