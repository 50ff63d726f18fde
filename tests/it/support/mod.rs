//! Shared fixtures: a running warden, an HTTP client, free ports and required tools.

pub mod alertmanager;
pub mod anchors;
pub mod full;
pub mod http;
pub mod postgres;
pub mod prometheus;
pub mod s3;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The warden binary cargo built for these tests.
pub fn warden_bin() -> &'static str {
    env!("CARGO_BIN_EXE_warden")
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// The path of a system tool, or a panic naming the package that provides it.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    let candidates = [
        PathBuf::from("/usr/bin").join(name),
        PathBuf::from("/usr/local/bin").join(name),
        PathBuf::from("/usr/sbin").join(name),
    ];
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "`{name}` is required by this test but is not installed; install it with: \
         sudo apt-get install -y {package}   (scripts/test.sh does this when run as root)"
    );
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `limit` with `what`.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How to start warden beyond its config: a wrapper command (`prlimit …`), extra arguments,
/// and the readiness check (plain `GET /healthz` when absent).
#[derive(Default)]
pub struct Launch {
    /// A command warden's own command line is appended to.
    pub wrapper: Vec<String>,
    /// Arguments after `serve --config FILE`.
    pub args: Vec<String>,
    /// True once warden answers.
    pub ready: Option<Box<dyn Fn(SocketAddr) -> bool>>,
}

/// A `warden serve` child process on a free loopback port with its own state directory.
pub struct Warden {
    child: Option<Child>,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Holds the state directory and config file.
    pub dir: TempDir,
    stderr_path: PathBuf,
}

impl Warden {
    /// Starts warden with `extra_config` appended to a config that sets `listen` and
    /// `state_dir`, and waits until `/healthz` answers.
    pub fn start(extra_config: &str) -> Warden {
        Warden::start_with(extra_config, &Launch::default())
    }

    /// Starts warden as [`Warden::start`] does, with the extras of `launch`.
    pub fn start_with(extra_config: &str, launch: &Launch) -> Warden {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = format!(
            "listen: {addr}\nstate_dir: {}\n{extra_config}",
            dir.path().join("state").display()
        );
        let config_path = dir.path().join("warden.yml");
        std::fs::write(&config_path, config).unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let mut command = match launch.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(warden_bin());
                command
            }
            None => Command::new(warden_bin()),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(&launch.args)
            .env("RUST_LOG", "warden=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut warden = Warden {
            child: Some(child),
            addr,
            dir,
            stderr_path,
        };
        wait_for(Duration::from_secs(20), "warden to answer /healthz", || {
            if let Some(status) = warden.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("warden exited early with {status}: {}", warden.stderr());
            }
            let ready = match &launch.ready {
                Some(ready) => ready(addr),
                None => http::get(addr, "/healthz", &[]).is_ok_and(|r| r.status == 200),
            };
            ready.then_some(())
        });
        warden
    }

    /// Everything warden has logged so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// The pid of the warden process: the one whose command line names this instance's
    /// directory (its config file is in it). Started through a wrapper, it may be the wrapper's.
    pub fn pid(&self) -> u32 {
        let needle = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains(&needle))
            })
            .expect("warden's process")
    }

    /// `GET path`, panicking on transport errors.
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> http::Response {
        http::get(self.addr, path, headers).unwrap_or_else(|err| panic!("GET {path}: {err}"))
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("already stopped");
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        wait_for(limit, "warden to exit after SIGTERM", || {
            child.try_wait().unwrap()
        })
    }

    /// Kills warden with SIGKILL, as a crash or the OOM killer would.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("already stopped");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts warden again on the same config and state (after [`Warden::kill`] or
    /// [`Warden::terminate`]), and waits until `/healthz` answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        let stderr = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.stderr_path)
            .unwrap();
        let child = Command::new(warden_bin())
            .args(["serve", "--config"])
            .arg(self.dir.path().join("warden.yml"))
            .env("RUST_LOG", "warden=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr;
        wait_for(
            Duration::from_secs(20),
            "warden to answer /healthz again",
            || {
                if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                    panic!("warden exited early with {status}: {}", self.stderr());
                }
                http::get(addr, "/healthz", &[])
                    .is_ok_and(|r| r.status == 200)
                    .then_some(())
            },
        );
    }

    /// The directory holding the config and state.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Warden {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One parsed sample line: name, label pairs, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// The sample lines of an exposition, comments skipped.
pub fn samples(body: &str) -> Vec<Sample> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(parse_sample)
        .collect()
}

/// Samples keyed by name and sorted labels, for comparing two expositions series by series.
pub type Series = std::collections::BTreeMap<(String, Vec<(String, String)>), f64>;

/// The samples of the families `keep` accepts (by sample name), as [`Series`].
pub fn series(body: &str, keep: impl Fn(&str) -> bool) -> Series {
    samples(body)
        .into_iter()
        .filter(|(name, _, _)| keep(name))
        .map(|(name, mut labels, value)| {
            labels.sort();
            ((name, labels), value)
        })
        .collect()
}

/// The `# TYPE` of each family.
pub fn types(body: &str) -> std::collections::BTreeMap<String, String> {
    body.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
        .collect()
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line
        .rsplit_once(' ')
        .unwrap_or_else(|| panic!("bad sample line {line:?}"));
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("bad value in {line:?}"));
    let Some((name, labels)) = series.split_once('{') else {
        return (series.to_owned(), Vec::new(), value);
    };
    let labels = labels.strip_suffix('}').unwrap();
    let mut pairs = Vec::new();
    let mut rest = labels;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").unwrap();
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, next)) = chars.next() {
                        value.push(match next {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i;
                    break;
                }
                other => value.push(other),
            }
        }
        pairs.push((key.trim_start_matches(',').to_owned(), value));
        rest = after[end + 1..].trim_start_matches(',');
    }
    (name.to_owned(), pairs, value)
}

/// The value of the sample with this name and these label pairs, if present.
pub fn value(body: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(body).into_iter().find_map(|(n, l, v)| {
        let matches = n == name
            && labels
                .iter()
                .all(|(k, want)| l.iter().any(|(lk, lv)| lk == k && lv == want));
        matches.then_some(v)
    })
}

/// `text` without ANSI colour sequences (`ESC [ ... m`), so log lines can be matched as
/// `key=value` whether or not warden coloured them.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
