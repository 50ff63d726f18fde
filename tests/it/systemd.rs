//! The `systemd` collector against a real systemd, compared live with node_exporter 1.5.
//!
//! PID 1 of the test machines is not systemd, so the test starts a systemd user manager
//! (`systemd --user`) of its own: in a private mount namespace with a tmpfs on `/run` (where it
//! checks `/run/systemd/system` for "booted with systemd", without touching the host's `/run`),
//! with `XDG_RUNTIME_DIR` in a temporary directory. Its `dbus.socket` unit listens on
//! `$XDG_RUNTIME_DIR/bus` and starts a dbus-daemon on first use, and the manager registers
//! `org.freedesktop.systemd1` there, the same interface the system manager has on the system
//! bus. warden and node_exporter are pointed at that bus with `DBUS_SYSTEM_BUS_ADDRESS`.
//! The manager loads three units of the test's: a oneshot service that fails (so the system
//! state is `degraded`), and a timer with the service it triggers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::serve::promtool_check;
use crate::support::anchors::Exporter;
use crate::support::{self, Launch, Warden, require_tool, value, wait_for};

/// node_exporter's default `--collector.systemd.unit-exclude` (Debian's package adds
/// `target`; warden keeps upstream's default, so node_exporter is given it explicitly).
const UPSTREAM_UNIT_EXCLUDE: &str = r".+\.(automount|device|mount|scope|slice)";

const UNITS: &[(&str, &str)] = &[
    (
        "warden-test-failed.service",
        "[Service]\nType=oneshot\nExecStart=/bin/false\n\n[Install]\nWantedBy=default.target\n",
    ),
    (
        "warden-test-tick.timer",
        "[Timer]\nOnActiveSec=1s\n\n[Install]\nWantedBy=default.target\n",
    ),
    (
        "warden-test-tick.service",
        "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    ),
];

/// A `systemd --user` manager with its own bus; stopped (SIGTERM, so it stops its dbus-daemon
/// too) on drop.
struct UserManager {
    child: Child,
    dir: tempfile::TempDir,
    busctl: PathBuf,
}

impl UserManager {
    fn start() -> UserManager {
        let systemd = require_tool("systemd", "systemd");
        let busctl = require_tool("busctl", "systemd");
        let unshare = require_tool("unshare", "util-linux");
        assert!(
            Path::new("/usr/lib/systemd/user/dbus.socket").exists(),
            "the user bus units are required by this test but not installed; install them with: \
             sudo apt-get install -y dbus-user-session   (scripts/test.sh does this when run as root)"
        );
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).unwrap();
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
        let units = dir.path().join("config/systemd/user");
        let wants = units.join("default.target.wants");
        std::fs::create_dir_all(&wants).unwrap();
        for (name, text) in UNITS {
            std::fs::write(units.join(name), text).unwrap();
            if text.contains("WantedBy=default.target") {
                std::os::unix::fs::symlink(units.join(name), wants.join(name)).unwrap();
            }
        }
        std::fs::create_dir(dir.path().join("home")).unwrap();
        let log = std::fs::File::create(dir.path().join("systemd.log")).unwrap();
        // unshare and sh both exec, so the child is the manager itself.
        let child = Command::new(unshare)
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec {} --user",
                systemd.display()
            ))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", dir.path().join("home"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let manager = UserManager { child, dir, busctl };
        // Up once the failed unit has made the state `degraded` and the timer has fired.
        wait_for(Duration::from_secs(30), "systemd --user to settle", || {
            let state = manager.busctl(&[
                "get-property",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1",
                "org.freedesktop.systemd1.Manager",
                "SystemState",
            ]);
            let fired = manager.busctl(&[
                "get-property",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1/unit/warden_2dtest_2dtick_2etimer",
                "org.freedesktop.systemd1.Timer",
                "LastTriggerUSec",
            ]);
            let tick = manager.busctl(&[
                "get-property",
                "org.freedesktop.systemd1",
                "/org/freedesktop/systemd1/unit/warden_2dtest_2dtick_2eservice",
                "org.freedesktop.systemd1.Unit",
                "ActiveState",
            ]);
            (state.as_deref() == Some("s \"degraded\"")
                && fired.is_some_and(|f| f.starts_with("t ") && f != "t 0")
                && tick.as_deref() == Some("s \"inactive\""))
            .then_some(())
        });
        manager
    }

    /// The bus address, as `DBUS_SYSTEM_BUS_ADDRESS` takes it.
    fn address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("run/bus").display())
    }

    /// `busctl --address=… ARGS`: its trimmed output, or `None` when it fails.
    fn busctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new(&self.busctl)
            .arg(format!("--address={}", self.address()))
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        for _ in 0..100 {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// warden with only the `systemd` host collector on, on the bus at `address`.
fn warden_on(address: &str) -> Warden {
    Warden::start_with(
        "host:\n  collectors: {systemd: true}\n",
        &Launch {
            wrapper: vec![
                "env".to_owned(),
                format!("DBUS_SYSTEM_BUS_ADDRESS={address}"),
            ],
            ..Launch::default()
        },
    )
}

fn node_exporter_on(address: &str) -> Exporter {
    let binary = require_tool("prometheus-node-exporter", "prometheus-node-exporter");
    Exporter::start(
        binary,
        &[
            "--collector.disable-defaults".to_owned(),
            "--collector.systemd".to_owned(),
            format!("--collector.systemd.unit-exclude={UPSTREAM_UNIT_EXCLUDE}"),
        ],
        &[("DBUS_SYSTEM_BUS_ADDRESS", address.to_owned())],
    )
}

/// The `node_systemd_*` samples.
fn systemd_samples(body: &str) -> support::Series {
    support::series(body, |name| name.starts_with("node_systemd_"))
}

/// `# HELP` and `# TYPE` lines of the `node_systemd_*` families.
fn systemd_metadata(body: &str) -> Vec<String> {
    let mut lines: Vec<String> = body
        .lines()
        .filter(|l| l.starts_with("# HELP node_systemd_") || l.starts_with("# TYPE node_systemd_"))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn systemd_families_match_node_exporter_on_a_real_systemd() {
    let manager = UserManager::start();
    let address = manager.address();
    let warden = warden_on(&address);
    let node_exporter = node_exporter_on(&address);

    // Both read the same manager; retried in case a unit changes state between the scrapes.
    let mut last = None;
    for _ in 0..5 {
        let theirs = node_exporter.scrape();
        // Text format 0.0.4, as node_exporter's, so the metadata lines compare as text.
        let ours = warden.get("/metrics", &[]).body;
        let same = systemd_samples(&ours) == systemd_samples(&theirs);
        last = Some((ours, theirs));
        if same {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ours, theirs) = last.unwrap();
    assert_eq!(
        value(
            &ours,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        Some(1.0),
        "{}",
        warden.stderr()
    );
    assert_eq!(
        value(
            &theirs,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        Some(1.0)
    );
    let (ours_samples, theirs_samples) = (systemd_samples(&ours), systemd_samples(&theirs));
    let differences: Vec<String> = ours_samples
        .keys()
        .chain(theirs_samples.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|key| ours_samples.get(*key) != theirs_samples.get(*key))
        .map(|key| {
            format!(
                "{} {:?}: warden {:?}, node_exporter {:?}",
                key.0,
                key.1,
                ours_samples.get(key),
                theirs_samples.get(key)
            )
        })
        .collect();
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(systemd_metadata(&ours), systemd_metadata(&theirs));
    // promtool finds nothing in the systemd families beyond what it finds in node_exporter's
    // (both declare `node_systemd_socket_refused_connections_total` a gauge).
    let promtool = require_tool("promtool", "prometheus");
    let accepted: std::collections::BTreeSet<String> =
        promtool_check(&promtool, &theirs).into_iter().collect();
    let extra: Vec<String> = promtool_check(&promtool, &ours)
        .into_iter()
        .filter(|p| p.contains("node_systemd_") && !accepted.contains(p))
        .collect();
    assert!(extra.is_empty(), "{extra:#?}");

    // What the comparison covered: every default family, with the test's own units in it.
    let families: std::collections::BTreeSet<&str> =
        ours_samples.keys().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        families.into_iter().collect::<Vec<_>>(),
        [
            "node_systemd_socket_accepted_connections_total",
            "node_systemd_socket_current_connections",
            "node_systemd_socket_refused_connections_total",
            "node_systemd_system_running",
            "node_systemd_timer_last_trigger_seconds",
            "node_systemd_unit_state",
            "node_systemd_units",
            "node_systemd_version",
        ]
    );
    let failed = [
        ("name", "warden-test-failed.service"),
        ("state", "failed"),
        ("type", "oneshot"),
    ];
    assert_eq!(value(&ours, "node_systemd_unit_state", &failed), Some(1.0));
    assert_eq!(value(&ours, "node_systemd_system_running", &[]), Some(0.0));
    let fired = value(
        &ours,
        "node_systemd_timer_last_trigger_seconds",
        &[("name", "warden-test-tick.timer")],
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - 300.0..=now).contains(&fired), "{fired} vs {now}");
}

#[test]
fn without_a_bus_the_collector_fails_as_node_exporters_does_and_says_so_once() {
    let dir = tempfile::tempdir().unwrap();
    let address = format!(
        "unix:path={}",
        dir.path().join("system_bus_socket").display()
    );
    let warden = warden_on(&address);
    let node_exporter = node_exporter_on(&address);
    let theirs = node_exporter.scrape();
    assert_eq!(
        value(
            &theirs,
            "node_scrape_collector_success",
            &[("collector", "systemd")]
        ),
        Some(0.0)
    );
    for _ in 0..3 {
        let ours = warden.get("/metrics", &[]).body;
        assert_eq!(
            value(
                &ours,
                "node_scrape_collector_success",
                &[("collector", "systemd")]
            ),
            Some(0.0)
        );
        assert!(!ours.contains("node_systemd_"), "{ours}");
    }
    let log = warden.stderr();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("systemd"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(&address) && warnings[0].contains("cannot connect"),
        "{}",
        warnings[0]
    );
}
