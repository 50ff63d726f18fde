//! Entry points for the fuzz driver in `crates/fuzz` (see FUZZING.md): every parser of outside
//! input, each as a [`Target`] that takes arbitrary bytes. A target returns a short signature
//! of what the parser made of the input (which families, or which error), which the driver uses
//! to keep inputs that reached something new; a panic is a bug.
//!
//! Not part of warden's interface: the parsers stay private to their modules, which each give
//! this module one `fuzz` function.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::act::payload::{Payload, label_set_hash, redacted};
use crate::backup::archive::{ArchiveStats, extract_archive, verify_archive};
use crate::backup::manifest::{Manifest, is_id, parse_time};
use crate::collect::family::{Format, Snapshot, encode};
use crate::collect::host::fuzzing as host;
use crate::config::{Compression, Config};

/// One parser under test.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The target's name, also its corpus directory under `crates/fuzz/corpus/`.
    pub name: &'static str,
    /// Runs the parser on one input; returns a signature of the outcome.
    pub run: fn(&[u8]) -> u64,
}

/// Every target, in a fixed order.
pub const TARGETS: &[Target] = &[
    Target {
        name: "config",
        run: config,
    },
    Target {
        name: "payload",
        run: payload,
    },
    Target {
        name: "manifest",
        run: manifest,
    },
    Target {
        name: "archive_zstd",
        run: archive_zstd,
    },
    Target {
        name: "archive_gzip",
        run: archive_gzip,
    },
    Target {
        name: "archive_tar",
        run: archive_tar,
    },
    Target {
        name: "textfile",
        run: |d| families(host::textfile(d)),
    },
    Target {
        name: "netlink",
        run: |d| families(host::netlink(d)),
    },
    Target {
        name: "sockdiag",
        run: |d| families(host::sockdiag(d)),
    },
    Target {
        name: "time",
        run: |d| families(host::time(d)),
    },
    Target {
        name: "cpu",
        run: |d| families(host::cpu(&text(d))),
    },
    Target {
        name: "stat",
        run: |d| families(host::stat(&text(d))),
    },
    Target {
        name: "meminfo",
        run: |d| families(host::meminfo(&text(d))),
    },
    Target {
        name: "diskstats",
        run: |d| families(host::diskstats(&text(d))),
    },
    Target {
        name: "netdev",
        run: |d| families(host::netdev(&text(d))),
    },
    Target {
        name: "loadavg",
        run: |d| families(host::loadavg(&text(d))),
    },
    Target {
        name: "vmstat",
        run: |d| families(host::vmstat(&text(d))),
    },
    Target {
        name: "netstat",
        run: |d| families(host::netstat(&text(d))),
    },
    Target {
        name: "sockstat",
        run: |d| families(host::sockstat(&text(d))),
    },
    Target {
        name: "softnet",
        run: |d| families(host::softnet(&text(d))),
    },
    Target {
        name: "arp",
        run: |d| families(host::arp(&text(d))),
    },
    Target {
        name: "conntrack",
        run: |d| families(host::conntrack(&text(d))),
    },
    Target {
        name: "udp_queues",
        run: |d| families(host::udp_queues(&text(d))),
    },
    Target {
        name: "pressure",
        run: |d| families(host::pressure(&text(d))),
    },
    Target {
        name: "filefd",
        run: |d| families(host::filefd(&text(d))),
    },
    Target {
        name: "mdadm",
        run: |d| families(host::mdadm(&text(d))),
    },
    Target {
        name: "interrupts",
        run: |d| families(host::interrupts(&text(d))),
    },
    Target {
        name: "tcpstat",
        run: |d| families(host::tcpstat(&text(d))),
    },
    Target {
        name: "schedstat",
        run: |d| families(host::schedstat(&text(d))),
    },
    Target {
        name: "filesystem",
        run: |d| families(host::filesystem(&text(d))),
    },
    Target {
        name: "processes",
        run: |d| families(host::processes(&text(d))),
    },
    Target {
        name: "sysfs_values",
        run: |d| families(host::sysfs_values(&text(d))),
    },
];

/// The text a host parser sees. The collectors refuse a file that is not UTF-8; the lossy
/// conversion lets every input reach the parser.
fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

fn hash(value: impl Hash) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// An error message without its numbers and quoted excerpts of the input, so that one failure
/// path has one signature.
fn error_signature(message: &str) -> u64 {
    let mut shape = String::with_capacity(64);
    let mut quote = None;
    let mut escaped = false;
    for c in message.chars() {
        match (quote, c) {
            _ if escaped => escaped = false,
            (Some(_), '\\') => escaped = true,
            (Some(q), _) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '`') => quote = Some(c),
            (None, 'a'..='z' | 'A'..='Z' | ' ' | ':') => shape.push(c),
            (None, _) => {}
        }
        if shape.len() >= 48 {
            break;
        }
    }
    hash(("err", shape))
}

/// Encodes a parser's families in both exposition formats, as `/metrics` would, and returns
/// their number and their samples' (logarithmically) as the signature.
fn families(parsed: host::Parsed) -> u64 {
    match parsed {
        Err(message) => error_signature(&message),
        Ok(families) => {
            let samples: usize = families.iter().map(|f| f.samples.len()).sum();
            let shape = ((families.len() + 1).ilog2(), (samples + 1).ilog2());
            for format in [Format::OpenMetrics, Format::Text004] {
                let mut snapshot = Snapshot::with_capacity(families.len());
                snapshot.extend(families.iter().cloned());
                let _ = encode(snapshot, format);
            }
            hash(("ok", shape))
        }
    }
}

/// YAML → validated configuration, with no environment variables and `*_file` paths relative
/// to a directory that does not exist.
fn config(data: &[u8]) -> u64 {
    let env: HashMap<String, String> = HashMap::new();
    let base = Path::new("/nonexistent/warden-fuzz");
    match Config::try_from_yaml(&text(data), "fuzz.yml", base, &env) {
        Ok(config) => hash((
            "ok",
            config.act.actions.len(),
            config.backups.len(),
            config.sources.queries.len(),
        )),
        Err(err) => error_signature(&err.to_string()),
    }
}

/// The configuration whose routes payloads go through.
fn routing_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let yaml = include_str!("../crates/fuzz/routing.yml");
        let env: HashMap<String, String> = HashMap::new();
        Config::try_from_yaml(yaml, "routing.yml", Path::new("/"), &env)
            .unwrap_or_else(|err| panic!("crates/fuzz/routing.yml is invalid: {err}"))
    })
}

/// An Alertmanager webhook body: decoded and checked, then routed as `POST /alerts` does.
fn payload(data: &[u8]) -> u64 {
    match Payload::try_from_slice(data) {
        Err(err) => error_signature(&err.to_string()),
        Ok(payload) => {
            let _ = payload.receiver_name();
            for alert in &payload.alerts {
                let _ = label_set_hash(&alert.labels);
                let _ = redacted(&alert.labels);
            }
            let (_, decisions) = crate::act::routing::route(&routing_config().act, &payload);
            hash(("ok", payload.alerts.len().min(4), decisions.len().min(4)))
        }
    }
}

/// A backup manifest as `manifest::scan` reads it, with the checks it makes.
fn manifest(data: &[u8]) -> u64 {
    match serde_json::from_slice::<Manifest>(data) {
        Err(err) => error_signature(&err.to_string()),
        Ok(manifest) => {
            let _ = manifest.finished();
            let _ = manifest.restore_tested();
            let _ = manifest.path_in(Path::new("/backups"));
            let _ = parse_time(&manifest.started_at);
            hash((
                "ok",
                is_id(&manifest.id),
                manifest.is_verified(),
                manifest.files.is_some(),
            ))
        }
    }
}

fn archive_signature(result: Result<ArchiveStats, crate::backup::files::FilesError>) -> u64 {
    match result {
        Ok(stats) => hash((
            "ok",
            stats.files.min(4),
            stats.dirs.min(4),
            stats.symlinks.min(4),
        )),
        Err(err) => error_signature(&err.to_string()),
    }
}

/// A `.tar.zst` backup file, verified as a drill does.
fn archive_zstd(data: &[u8]) -> u64 {
    archive_signature(verify_archive(
        data,
        Compression::Zstd,
        &ArchiveStats::default(),
    ))
}

/// A `.tar.gz` backup file, verified as a drill does.
fn archive_gzip(data: &[u8]) -> u64 {
    archive_signature(verify_archive(
        data,
        Compression::Gzip,
        &ArchiveStats::default(),
    ))
}

/// The scratch directory `archive_tar` extracts into: `warden-fuzz-PID` under the temporary
/// directory. The driver removes it at the end.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("warden-fuzz-{}", std::process::id())))
}

/// A tar stream (the input, stored in gzip without compression so that mutations reach the
/// tar headers): verified, then restored into an empty directory. Panics if anything was
/// written outside that directory.
fn archive_tar(data: &[u8]) -> u64 {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    let gz = match gz.write_all(data).and_then(|()| gz.finish()) {
        Ok(gz) => gz,
        Err(err) => panic!("gzip into memory failed: {err}"),
    };
    let verified = archive_signature(verify_archive(
        gz.as_slice(),
        Compression::Gzip,
        &ArchiveStats::default(),
    ));
    let scratch = scratch_dir();
    let target = scratch.join("target");
    // Most inputs restore nothing: an empty target is removed with one call.
    if std::fs::remove_dir(&target).is_err() && target.exists() {
        let _ = std::fs::remove_dir_all(scratch);
    }
    if let Err(err) = std::fs::create_dir_all(scratch) {
        panic!("cannot create {}: {err}", scratch.display());
    }
    let restored = archive_signature(extract_archive(gz.as_slice(), Compression::Gzip, &target));
    let outside: Vec<_> = std::fs::read_dir(scratch)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|name| name != "target")
                .collect()
        })
        .unwrap_or_default();
    assert!(
        outside.is_empty(),
        "extraction wrote outside its target: {outside:?}"
    );
    hash((verified, restored))
}
