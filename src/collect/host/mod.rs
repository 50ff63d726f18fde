//! Host metrics with node_exporter's names, types and labels.
//!
//! (Placeholder while the collectors are written; see the helper's work.)

use std::sync::Arc;

use super::Collector;
use crate::config::HostConfig;

/// The host collectors for this configuration, one per node_exporter collector name.
pub fn collectors(_config: &HostConfig) -> Vec<Arc<dyn Collector>> {
    Vec::new()
}
