//! `systemd` (off by default): unit states from systemd over D-Bus, as node_exporter 1.5's
//! `systemd_linux.go` with its default flags.
//!
//! Each scrape connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else
//! `unix:path=/run/dbus/system_bus_socket`, as sd-bus does), reads the manager's `Version`,
//! `ListUnits` and `SystemState`, and for the units that pass the filter (name matches
//! `.+`, does not match `.+\.(automount|device|mount|scope|slice)`, and is loaded) the
//! `Service.Type` of services, `Timer.LastTriggerUSec` of timers and `Socket.NAccepted`,
//! `NConnections`, `NRefused` of sockets. That gives node_exporter's default families:
//! `node_systemd_version`, `node_systemd_units` (every unit, unfiltered),
//! `node_systemd_unit_state` (one sample per state, 1 for the current one),
//! `node_systemd_timer_last_trigger_seconds`, `node_systemd_socket_*` and
//! `node_systemd_system_running`. The start-time, tasks and restart families are behind
//! node_exporter flags that are off by default, so they are not exported.
//!
//! Without a bus the collection fails (node_exporter's `node_scrape_collector_success` is 0
//! there too) with an error naming the address; the registry logs a failure once, not per
//! scrape.
//!
//! The collector is a [`BlockingCollector`] on the batch's blocking thread: it drives zbus's
//! async API on warden's own tokio runtime with `Handle::block_on` (from a scoped thread, so it
//! never blocks a thread that drives the runtime), the whole collection bounded by the
//! collector's timeout. A connection per scrape, as node_exporter does, so a
//! restarted bus needs no reconnection logic.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::collect::{BlockingCollector, Error, Family};

/// sd-bus's system bus when `DBUS_SYSTEM_BUS_ADDRESS` is unset.
const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";

/// node_exporter's `--collector.systemd.unit-include` default, anchored as it anchors it.
static UNIT_INCLUDE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^(?:.+)$").expect("valid regex"));
/// node_exporter's `--collector.systemd.unit-exclude` default, anchored as it anchors it.
static UNIT_EXCLUDE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:.+\.(automount|device|mount|scope|slice))$").expect("valid regex")
});

/// The states node_exporter gives a `node_systemd_unit_state` sample each, in its order.
const UNIT_STATES: [&str; 5] = ["active", "activating", "deactivating", "inactive", "failed"];

/// The first systemd version with the `SystemState` property and `LastTriggerUSec`.
const MIN_VERSION_SYSTEM_STATE: f64 = 212.0;

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// One entry of the manager's `ListUnits` answer, as far as node_exporter uses it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Unit {
    pub name: String,
    pub load_state: String,
    pub active_state: String,
    /// The unit's object path, for its properties.
    pub path: String,
}

/// A socket unit's connection counts; `None` where the property could not be read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SocketCounts {
    pub accepted: u32,
    pub current: Option<u32>,
    pub refused: Option<u32>,
}

/// What one scrape read from systemd.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    /// The manager's `Version`, unquoted; `None` when it could not be read.
    pub version: Option<String>,
    /// Every unit `ListUnits` returned.
    pub units: Vec<Unit>,
    /// The filtered units' `Type` (services and mounts only), by unit name.
    pub types: BTreeMap<String, String>,
    /// The filtered timers' `LastTriggerUSec`, by unit name.
    pub timers: BTreeMap<String, u64>,
    /// The filtered sockets' counts, by unit name.
    pub sockets: BTreeMap<String, SocketCounts>,
    /// The manager's `SystemState`, read on systemd 212 and later.
    pub system_state: Option<String>,
}

/// node_exporter's numeric version: the first run of three or more digits, with an optional
/// fraction (`252.38-1~deb12u1` → 252.38); 0 when there is none.
pub(super) fn version_number(version: &str) -> f64 {
    static NUMBER: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"[0-9]{3,}(\.[0-9]+)?").expect("valid regex"));
    NUMBER
        .find(version)
        .and_then(|m| m.as_str().parse().ok())
        .unwrap_or(0.0)
}

/// The units node_exporter reports one by one: included, not excluded, and loaded.
pub(super) fn filter(units: &[Unit]) -> impl Iterator<Item = &Unit> {
    units.iter().filter(|unit| {
        UNIT_INCLUDE.is_match(&unit.name)
            && !UNIT_EXCLUDE.is_match(&unit.name)
            && unit.load_state == "loaded"
    })
}

/// The families of one snapshot, in node_exporter's names, types and help texts.
pub(super) fn families(snapshot: &Snapshot) -> Vec<Family> {
    let mut out = Vec::new();
    // node_exporter exports the version even when it could not be read: 0 and "".
    let (number, label) = match snapshot.version.as_deref() {
        Some(version) if version_number(version) != 0.0 => {
            (version_number(version), version.to_owned())
        }
        _ => (0.0, String::new()),
    };
    let mut version = Family::gauge("node_systemd_version", "Detected systemd version");
    version.push([("version", label)], number);
    out.push(version);

    let mut summary: BTreeMap<&str, f64> = UNIT_STATES.iter().map(|s| (*s, 0.0)).collect();
    for unit in &snapshot.units {
        *summary.entry(unit.active_state.as_str()).or_default() += 1.0;
    }
    let mut units = Family::gauge("node_systemd_units", "Summary of systemd unit states");
    for (state, count) in summary {
        units.push([("state", state.to_owned())], count);
    }
    out.push(units);

    let mut unit_state = Family::gauge("node_systemd_unit_state", "Systemd unit");
    for unit in filter(&snapshot.units) {
        let kind = snapshot.types.get(&unit.name).cloned().unwrap_or_default();
        for state in UNIT_STATES {
            unit_state.push(
                [
                    ("name", unit.name.clone()),
                    ("state", state.to_owned()),
                    ("type", kind.clone()),
                ],
                if unit.active_state == state { 1.0 } else { 0.0 },
            );
        }
    }
    out.push(unit_state);

    let mut timers = Family::gauge(
        "node_systemd_timer_last_trigger_seconds",
        "Seconds since epoch of last trigger.",
    );
    for (name, usec) in &snapshot.timers {
        timers.push([("name", name.clone())], *usec as f64 / 1e6);
    }
    out.push(timers);

    let mut accepted = Family::counter(
        "node_systemd_socket_accepted_connections_total",
        "Total number of accepted socket connections",
    );
    let mut current = Family::gauge(
        "node_systemd_socket_current_connections",
        "Current number of socket connections",
    );
    // A gauge despite its name, as node_exporter declares it.
    let mut refused = Family::gauge(
        "node_systemd_socket_refused_connections_total",
        "Total number of refused socket connections",
    );
    for (name, counts) in &snapshot.sockets {
        accepted.push([("name", name.clone())], f64::from(counts.accepted));
        if let Some(value) = counts.current {
            current.push([("name", name.clone())], f64::from(value));
            // node_exporter reads `NRefused` only after `NConnections` succeeded.
            if let Some(value) = counts.refused {
                refused.push([("name", name.clone())], f64::from(value));
            }
        }
    }
    out.extend([accepted, current, refused]);

    if let Some(state) = &snapshot.system_state {
        out.push(Family::single_gauge(
            "node_systemd_system_running",
            "Whether the system is operational (see 'systemctl is-system-running')",
            if state == "running" { 1.0 } else { 0.0 },
        ));
    }
    out.retain(|family| !family.samples.is_empty());
    out
}

/// The `systemd` collector: one D-Bus connection per scrape to `address`.
pub struct Systemd {
    address: String,
    timeout: Duration,
}

impl Systemd {
    /// A collector for the system bus: `DBUS_SYSTEM_BUS_ADDRESS`, else sd-bus's default.
    pub fn new(timeout: Duration) -> Self {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .ok()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| DEFAULT_SYSTEM_BUS.to_owned());
        Systemd { address, timeout }
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::Bus {
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }

    async fn snapshot(&self) -> Result<Snapshot, Error> {
        let connection = zbus::connection::Builder::address(self.address.as_str())
            .map_err(|err| self.error(format_args!("invalid address: {err}")))?
            .method_timeout(self.timeout)
            .build()
            .await
            .map_err(|err| self.error(format_args!("cannot connect: {err}")))?;
        let bus = Bus(&connection);
        let mut snapshot = Snapshot {
            // As node_exporter: an unreadable version is reported as 0, not as a failure.
            version: bus
                .property::<String>(MANAGER_PATH, MANAGER, "Version")
                .await
                .ok(),
            ..Snapshot::default()
        };
        let version = snapshot.version.as_deref().map_or(0.0, version_number);

        type ListedUnit = (
            String,
            String,
            String,
            String,
            String,
            String,
            OwnedObjectPath,
            u32,
            String,
            OwnedObjectPath,
        );
        let listed: Vec<ListedUnit> = connection
            .call_method(Some(SYSTEMD), MANAGER_PATH, Some(MANAGER), "ListUnits", &())
            .await
            .and_then(|reply| reply.body().deserialize())
            .map_err(|err| self.error(format_args!("ListUnits failed: {err}")))?;
        snapshot.units = listed
            .into_iter()
            .map(|(name, _, load_state, active_state, _, _, path, ..)| Unit {
                name,
                load_state,
                active_state,
                path: path.as_str().to_owned(),
            })
            .collect();

        for unit in filter(&snapshot.units) {
            let (name, path) = (&unit.name, unit.path.as_str());
            let type_interface = if name.ends_with(".service") {
                Some("org.freedesktop.systemd1.Service")
            } else if name.ends_with(".mount") {
                Some("org.freedesktop.systemd1.Mount")
            } else {
                None
            };
            if let Some(interface) = type_interface {
                // An unreadable type is "", as node_exporter has it.
                if let Ok(kind) = bus.property::<String>(path, interface, "Type").await {
                    snapshot.types.insert(name.clone(), kind);
                }
            }
            if name.ends_with(".timer") && version >= MIN_VERSION_SYSTEM_STATE {
                let timer = "org.freedesktop.systemd1.Timer";
                if let Ok(usec) = bus.property::<u64>(path, timer, "LastTriggerUSec").await {
                    snapshot.timers.insert(name.clone(), usec);
                }
            }
            if name.ends_with(".socket") {
                let socket = "org.freedesktop.systemd1.Socket";
                let Ok(accepted) = bus.property::<u32>(path, socket, "NAccepted").await else {
                    continue;
                };
                let current = bus.property::<u32>(path, socket, "NConnections").await.ok();
                let refused = match current {
                    Some(_) => bus.property::<u32>(path, socket, "NRefused").await.ok(),
                    None => None,
                };
                snapshot.sockets.insert(
                    name.clone(),
                    SocketCounts {
                        accepted,
                        current,
                        refused,
                    },
                );
            }
        }

        if version >= MIN_VERSION_SYSTEM_STATE {
            snapshot.system_state = Some(
                bus.property::<String>(MANAGER_PATH, MANAGER, "SystemState")
                    .await
                    .map_err(|err| self.error(format_args!("cannot read SystemState: {err}")))?,
            );
        }
        Ok(snapshot)
    }
}

/// Property reads from systemd on one connection.
struct Bus<'c>(&'c zbus::Connection);

impl Bus<'_> {
    async fn property<T>(&self, path: &str, interface: &str, name: &str) -> zbus::Result<T>
    where
        T: TryFrom<OwnedValue>,
        T::Error: Into<zbus::Error>,
    {
        let reply = self
            .0
            .call_method(
                Some(SYSTEMD),
                path,
                Some(PROPERTIES),
                "Get",
                &(interface, name),
            )
            .await?;
        let value: OwnedValue = reply.body().deserialize()?;
        T::try_from(value).map_err(Into::into)
    }
}

impl BlockingCollector for Systemd {
    fn name(&self) -> &str {
        "systemd"
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn collect(&self) -> Result<Vec<Family>, Error> {
        // The batch runs collectors on a blocking thread inside warden's runtime. The D-Bus
        // calls run on that runtime from a thread of their own, since `block_on` panics on a
        // thread that is already driving a runtime (a test calling this from an async task).
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| self.error("no tokio runtime to run the D-Bus calls on"))?;
        let snapshot = std::thread::scope(|scope| {
            scope
                // The timer is made inside the runtime: `async` defers it to `block_on`.
                .spawn(|| {
                    runtime.block_on(async {
                        tokio::time::timeout(self.timeout, self.snapshot()).await
                    })
                })
                .join()
        })
        .map_err(|_| Error::Panicked {
            collector: self.name().to_owned(),
        })?
        .map_err(|_| Error::Timeout(self.timeout))??;
        Ok(families(&snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;

    fn unit(name: &str, load_state: &str, active_state: &str) -> Unit {
        Unit {
            name: name.to_owned(),
            load_state: load_state.to_owned(),
            active_state: active_state.to_owned(),
            path: format!(
                "/org/freedesktop/systemd1/unit/{}",
                name.replace('.', "_2e")
            ),
        }
    }

    fn samples(families: &[Family], name: &str) -> Vec<(Vec<String>, f64)> {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .samples
            .iter()
            .map(|s| {
                (
                    s.labels.iter().map(|(_, v)| v.to_string()).collect(),
                    s.value,
                )
            })
            .collect()
    }

    #[test]
    fn the_version_number_is_node_exporters() {
        assert_eq!(version_number("252.38-1~deb12u1"), 252.38);
        assert_eq!(version_number("systemd 245 (245.4-4ubuntu3)"), 245.0);
        assert_eq!(version_number("v99"), 0.0);
        assert_eq!(version_number(""), 0.0);
    }

    #[test]
    fn the_filter_drops_excluded_types_and_units_not_loaded() {
        let units = [
            unit("ssh.service", "loaded", "active"),
            unit("-.mount", "loaded", "active"),
            unit("dev-vda.device", "loaded", "activating"),
            unit("init.scope", "loaded", "active"),
            unit("user.slice", "loaded", "active"),
            unit("proc-sys-fs-binfmt_misc.automount", "loaded", "active"),
            unit("blockdev@dev-vda.target", "not-found", "inactive"),
            unit("dbus.socket", "loaded", "active"),
            unit("apt-daily.timer", "loaded", "active"),
            // Excluded only as a whole name: a service named like a mount is kept.
            unit("mount.service", "loaded", "inactive"),
        ];
        let kept: Vec<&str> = filter(&units).map(|u| u.name.as_str()).collect();
        assert_eq!(
            kept,
            [
                "ssh.service",
                "dbus.socket",
                "apt-daily.timer",
                "mount.service"
            ]
        );
    }

    #[test]
    fn a_snapshot_becomes_node_exporters_families() {
        let snapshot = Snapshot {
            version: Some("252.38-1~deb12u1".to_owned()),
            units: vec![
                unit("ssh.service", "loaded", "active"),
                unit("broken.service", "loaded", "failed"),
                unit("-.slice", "loaded", "active"),
                unit("gone.service", "not-found", "inactive"),
                unit("dbus.socket", "loaded", "active"),
                unit("apt-daily.timer", "loaded", "active"),
                unit("odd.service", "loaded", "reloading"),
            ],
            types: [
                ("ssh.service".to_owned(), "notify".to_owned()),
                ("broken.service".to_owned(), "oneshot".to_owned()),
            ]
            .into(),
            timers: [("apt-daily.timer".to_owned(), 1_700_000_000_123_456)].into(),
            sockets: [(
                "dbus.socket".to_owned(),
                SocketCounts {
                    accepted: 7,
                    current: Some(2),
                    refused: Some(1),
                },
            )]
            .into(),
            system_state: Some("degraded".to_owned()),
        };
        let families = families(&snapshot);
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_systemd_version",
                "node_systemd_units",
                "node_systemd_unit_state",
                "node_systemd_timer_last_trigger_seconds",
                "node_systemd_socket_accepted_connections_total",
                "node_systemd_socket_current_connections",
                "node_systemd_socket_refused_connections_total",
                "node_systemd_system_running",
            ]
        );
        let kinds: Vec<Kind> = families.iter().map(|f| f.kind).collect();
        assert_eq!(kinds[4], Kind::Counter);
        assert!(
            kinds
                .iter()
                .enumerate()
                .all(|(i, k)| i == 4 || *k == Kind::Gauge)
        );

        assert_eq!(
            samples(&families, "node_systemd_version"),
            [(vec!["252.38-1~deb12u1".to_owned()], 252.38)]
        );
        // Every unit counts, filtered or not; a state beyond the five gets its own sample.
        let units: Vec<(String, f64)> = samples(&families, "node_systemd_units")
            .into_iter()
            .map(|(labels, value)| (labels[0].clone(), value))
            .collect();
        assert_eq!(
            units,
            [
                ("activating".to_owned(), 0.0),
                ("active".to_owned(), 4.0),
                ("deactivating".to_owned(), 0.0),
                ("failed".to_owned(), 1.0),
                ("inactive".to_owned(), 1.0),
                ("reloading".to_owned(), 1.0),
            ]
        );
        let state = samples(&families, "node_systemd_unit_state");
        // Five filtered units (no slice, no unit not loaded), five states each.
        assert_eq!(state.len(), 25);
        let ssh: Vec<_> = state
            .iter()
            .filter(|(l, _)| l[0] == "ssh.service")
            .collect();
        assert_eq!(
            ssh.iter()
                .map(|(l, v)| (l[1].as_str(), l[2].as_str(), *v))
                .collect::<Vec<_>>(),
            [
                ("active", "notify", 1.0),
                ("activating", "notify", 0.0),
                ("deactivating", "notify", 0.0),
                ("inactive", "notify", 0.0),
                ("failed", "notify", 0.0),
            ]
        );
        let one = |name: &str| -> Vec<(&str, f64)> {
            state
                .iter()
                .filter(|(l, v)| l[0] == name && *v == 1.0)
                .map(|(l, v)| (l[1].as_str(), *v))
                .collect()
        };
        assert_eq!(one("broken.service"), [("failed", 1.0)]);
        assert_eq!(one("odd.service"), [], "no sample is 1 for another state");
        assert!(
            state
                .iter()
                .any(|(l, _)| l[0] == "dbus.socket" && l[2].is_empty())
        );
        assert_eq!(
            samples(&families, "node_systemd_timer_last_trigger_seconds"),
            [(vec!["apt-daily.timer".to_owned()], 1_700_000_000.123_456)]
        );
        for (family, value) in [
            ("node_systemd_socket_accepted_connections_total", 7.0),
            ("node_systemd_socket_current_connections", 2.0),
            ("node_systemd_socket_refused_connections_total", 1.0),
        ] {
            assert_eq!(
                samples(&families, family),
                [(vec!["dbus.socket".to_owned()], value)]
            );
        }
        assert_eq!(
            samples(&families, "node_systemd_system_running"),
            [(vec![], 0.0)]
        );
    }

    #[test]
    fn missing_properties_are_left_out_as_node_exporter_leaves_them() {
        let snapshot = Snapshot {
            version: None,
            units: vec![unit("a.socket", "loaded", "active")],
            sockets: [(
                "a.socket".to_owned(),
                SocketCounts {
                    accepted: 3,
                    current: None,
                    refused: Some(9),
                },
            )]
            .into(),
            ..Snapshot::default()
        };
        let families = families(&snapshot);
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_systemd_version",
                "node_systemd_units",
                "node_systemd_unit_state",
                "node_systemd_socket_accepted_connections_total",
            ]
        );
        assert_eq!(
            samples(&families, "node_systemd_version"),
            [(vec![String::new()], 0.0)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn without_a_bus_the_collection_fails_naming_the_address() {
        let dir = tempfile::tempdir().expect("tempdir");
        let address = format!("unix:path={}", dir.path().join("no_bus").display());
        let collector = Systemd {
            address: address.clone(),
            timeout: Duration::from_secs(5),
        };
        let err = tokio::task::spawn_blocking(move || collector.collect())
            .await
            .expect("join")
            .expect_err("no bus");
        let text = err.to_string();
        assert!(text.contains(&address), "{text}");
        assert!(text.contains("cannot connect"), "{text}");
    }

    #[tokio::test]
    async fn called_from_an_async_task_it_does_not_panic() {
        let collector = Systemd {
            address: "unix:path=/nonexistent/bus".to_owned(),
            timeout: Duration::from_secs(5),
        };
        assert!(matches!(collector.collect(), Err(Error::Bus { .. })));
    }

    #[test]
    fn without_a_runtime_it_fails_instead_of_panicking() {
        let collector = Systemd::new(Duration::from_secs(1));
        assert!(matches!(collector.collect(), Err(Error::Bus { .. })));
    }
}
