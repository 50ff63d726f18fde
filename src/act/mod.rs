//! The "act" half of warden: alerts and schedules in, actions run once, results out as
//! metrics and an audit log.
//!
//! - [`kinds`]: what each action kind does (one file per kind, one registration line).

pub mod kinds;
pub mod placeholder;
