//! `uname`: `node_uname_info` from the uname(2) system call, labelled as node_exporter 1.5.

#[cfg(target_os = "linux")]
use std::ffi::CStr;
#[cfg(target_os = "linux")]
use std::time::Duration;

use crate::collect::Family;
#[cfg(target_os = "linux")]
use crate::collect::{BlockingCollector, Error};

/// The `uname` collector.
#[cfg(target_os = "linux")]
pub(super) struct Uname {
    timeout: Duration,
}

#[cfg(target_os = "linux")]
impl Uname {
    /// A `uname` collector.
    pub(super) fn new(timeout: Duration) -> Self {
        Uname { timeout }
    }
}

#[cfg(target_os = "linux")]
impl BlockingCollector for Uname {
    fn name(&self) -> &str {
        "uname"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        let uname = rustix::system::uname();
        Ok(vec![info(&Fields {
            domainname: text(uname.domainname()),
            machine: text(uname.machine()),
            nodename: text(uname.nodename()),
            release: text(uname.release()),
            sysname: text(uname.sysname()),
            version: text(uname.version()),
        })])
    }
}

#[cfg(target_os = "linux")]
fn text(value: &CStr) -> String {
    value.to_string_lossy().into_owned()
}

/// The uname fields, named as node_exporter's labels.
#[derive(Debug, Clone, Default)]
pub(super) struct Fields {
    pub(super) domainname: String,
    pub(super) machine: String,
    pub(super) nodename: String,
    pub(super) release: String,
    pub(super) sysname: String,
    pub(super) version: String,
}

/// `node_uname_info{domainname,machine,nodename,release,sysname,version} 1`.
pub(super) fn info(fields: &Fields) -> Family {
    let mut family = Family::gauge(
        "node_uname_info",
        "Labeled system information as provided by the uname system call.",
    );
    family.push(
        [
            ("domainname", fields.domainname.clone()),
            ("machine", fields.machine.clone()),
            ("nodename", fields.nodename.clone()),
            ("release", fields.release.clone()),
            ("sysname", fields.sysname.clone()),
            ("version", fields.version.clone()),
        ],
        1.0,
    );
    family
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_this_kernel() {
        let families = Uname::new(Duration::from_secs(1))
            .collect()
            .expect("collects");
        let sample = &families[0].samples[0];
        let names: Vec<&str> = sample.labels.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(
            names,
            [
                "domainname",
                "machine",
                "nodename",
                "release",
                "sysname",
                "version"
            ]
        );
        assert_eq!(sample.labels[4].1, "Linux");
        assert_eq!(
            sample.labels[3].1,
            std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .expect("osrelease")
                .trim()
        );
        assert_eq!(sample.value, 1.0);
    }
}
