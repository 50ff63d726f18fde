//! warden's integration tests: one binary, real processes, loopback only.
//!
//! Tests that need a system tool (promtool, prometheus, prometheus-alertmanager, node_exporter) fail with the install
//! command when it is missing; `scripts/test.sh` installs them on Debian and Ubuntu.

#![allow(clippy::unwrap_used)]

mod actions;
mod actions_kinds;
mod alerts;
mod backup;
mod check_config;
mod cli;
mod community;
mod compat;
mod compose;
mod dashboards;
mod kit;
mod node_exporter;
mod postgres;
mod postgres_harness;
mod prometheus;
mod rules;
mod serve;
mod sqlite;
mod status_page;
mod support;
mod systemd;
mod web;
