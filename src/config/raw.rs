//! The configuration as written: serde structs that mirror the YAML, with unknown keys rejected.
//!
//! Leaves that need parsing (durations, addresses, regular expressions) stay strings here and
//! are checked in [`super::validate`], so that every bad value is reported in one run.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<String>,
    pub state_dir: Option<String>,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub web: RawWeb,
    #[serde(default)]
    pub host: RawHost,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeb {
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<String>,
    pub max_concurrent_scrapes: Option<u64>,
    pub request_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub enabled: Option<bool>,
    pub timeout: Option<String>,
    pub procfs: Option<String>,
    pub sysfs: Option<String>,
    #[serde(default)]
    pub filesystem: RawFilesystem,
    #[serde(default)]
    pub disk: RawDevices,
    #[serde(default)]
    pub network: RawDevices,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilesystem {
    pub mount_points_exclude: Option<String>,
    pub fs_types_exclude: Option<String>,
    pub stat_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevices {
    pub device_exclude: Option<String>,
}
