//! An ephemeral PostgreSQL cluster on a free loopback port, started with the system's `initdb`
//! and `pg_ctl`, or those in `$WARDEN_TEST_PG_BIN` (the PostgreSQL matrix of
//! scripts/pg-matrix.sh).
//!
//! Each test gets its own cluster in a temporary directory under `/tmp` (short enough for the
//! Unix socket path limit and traversable by every user). PostgreSQL refuses to run as root, so
//! when the tests run as root every PostgreSQL binary runs as the `postgres` OS user through
//! `runuser` (or `su`), and the directory is handed to that user. Missing binaries fail the
//! test with the install command; nothing is skipped.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::{NamedTempFile, TempDir};

use super::{free_port, require_tool};

/// The cluster's superuser, and the OS user PostgreSQL runs as when the tests run as root.
const SUPERUSER: &str = "postgres";

/// How often `start` picks a new port when the one it chose was taken in the meantime.
const START_ATTEMPTS: u32 = 4;

/// Seconds `pg_ctl -w` waits for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "30";

/// Lines of the server log quoted in a failure message.
const LOG_TAIL_LINES: usize = 40;

/// The `application_name` of connections made by [`Postgres::psql`], so tests looking at
/// `pg_stat_activity` can tell them apart from warden's.
pub const PSQL_APPLICATION_NAME: &str = "warden-test-psql";

/// Settings appended to `postgresql.conf`: loopback only, a private socket directory, no
/// durability (a test cluster is thrown away, so fsync only costs time), and passwords stored
/// for scram-sha-256 (PostgreSQL 13 stores md5 hashes by default, which scram cannot check).
const SETTINGS: &str = "
# Added by warden's test harness (tests/it/support/postgres.rs).
listen_addresses = '127.0.0.1'
password_encryption = 'scram-sha-256'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 30
shared_buffers = 16MB
";

/// A running PostgreSQL cluster that lives as long as this value.
pub struct Postgres {
    /// Holds the data directory, the socket directory and the server log.
    dir: TempDir,
    port: u16,
    /// The directory holding `initdb`, `pg_ctl` and `postgres`.
    bin: PathBuf,
    psql: PathBuf,
    runner: Runner,
    superuser: String,
}

/// How PostgreSQL binaries are run: directly, or as the `postgres` user when we are root.
#[derive(Clone)]
enum Runner {
    Direct,
    Runuser(PathBuf),
    Su(PathBuf),
}

impl Runner {
    fn detect() -> Runner {
        if !rustix::process::geteuid().is_root() {
            return Runner::Direct;
        }
        let find = |name: &str, dirs: &[&str]| {
            dirs.iter()
                .map(|dir| Path::new(dir).join(name))
                .find(|path| path.is_file())
        };
        if let Some(runuser) = find("runuser", &["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) {
            return Runner::Runuser(runuser);
        }
        if let Some(su) = find("su", &["/usr/bin", "/bin"]) {
            return Runner::Su(su);
        }
        panic!(
            "the tests run as root, so PostgreSQL must run as the `{SUPERUSER}` user, but neither \
             `runuser` nor `su` is installed; install them with: sudo apt-get install -y util-linux"
        );
    }

    /// A command that runs `program` as the right user; append its arguments with `arg`.
    fn command(&self, program: &Path) -> Command {
        match self {
            Runner::Direct => Command::new(program),
            Runner::Runuser(runuser) => {
                let mut command = Command::new(runuser);
                command.args(["-u", SUPERUSER, "--"]).arg(program);
                command
            }
            Runner::Su(su) => {
                // The program and its arguments stay separate argv entries: `sh -c` gets them
                // as `$0` and `$@`, so nothing is parsed by a shell. `--` keeps su from taking
                // the program's options (`-D`, `-U`) as its own.
                let mut command = Command::new(su);
                command
                    .args(["-s", "/bin/sh", "-c", "exec \"$0\" \"$@\"", "--", SUPERUSER])
                    .arg(program);
                command
            }
        }
    }

    fn is_root(&self) -> bool {
        !matches!(self, Runner::Direct)
    }
}

impl Postgres {
    /// Creates a cluster with `initdb` (trust auth, superuser `postgres`), starts it on a free
    /// loopback port and waits until it accepts connections.
    pub fn start() -> Postgres {
        let began = Instant::now();
        let bin = server_bin_dir();
        let psql = if bin.join("psql").is_file() {
            bin.join("psql")
        } else {
            require_tool("psql", "postgresql-client")
        };
        let runner = Runner::detect();
        let dir = tempfile::Builder::new()
            .prefix("warden-pg-")
            .tempdir_in("/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        if runner.is_root() {
            hand_over(dir.path());
        }
        let mut postgres = Postgres {
            dir,
            port: free_port(),
            bin,
            psql,
            runner,
            superuser: SUPERUSER.to_owned(),
        };
        postgres.initdb();
        let mut attempt = 1;
        loop {
            match postgres.try_start() {
                Ok(()) => break,
                Err(failure) if failure.port_taken && attempt < START_ATTEMPTS => {
                    attempt += 1;
                    postgres.port = free_port();
                }
                Err(failure) => panic!("{}", failure.message),
            }
        }
        postgres.wait_until_accepting();
        eprintln!(
            "postgres: cluster in {} on 127.0.0.1:{} ready in {:?}",
            postgres.dir.path().display(),
            postgres.port,
            began.elapsed()
        );
        postgres
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the superuser, e.g.
    /// `postgres://postgres@127.0.0.1:5433/app`.
    pub fn dsn(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.superuser, self.port
        )
    }

    /// Runs `sql` (one or more statements) in `database` and returns the rows it printed, one
    /// per line with `|` between columns, trimmed. Panics with psql's stderr on any error.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.try_psql(database, sql).unwrap_or_else(|err| {
            panic!("psql failed in database {database:?} running:\n{sql}\n{err}")
        })
    }

    /// Creates a database owned by the superuser.
    pub fn create_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_identifier(name)),
        );
    }

    /// Creates a login role with a password that must be given over TCP (scram-sha-256); the
    /// superuser keeps trust authentication. `password` must not contain `'`.
    pub fn create_password_user(&self, user: &str, password: &str) {
        assert!(!password.contains('\''), "keep the test password simple");
        self.psql(
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN PASSWORD '{password}'",
                quote_identifier(user)
            ),
        );
        // The first matching line wins: prepend. Rewriting in place keeps the file's owner.
        let hba = self.data_dir().join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!("host all {user} 127.0.0.1/32 scram-sha-256\n{rules}"),
        )
        .unwrap();
        self.psql("postgres", "SELECT pg_reload_conf()");
        // The postmaster reloads asynchronously; new backends read the rules it loaded.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Requires a password (scram-sha-256) over TCP from every role but the superuser, which
    /// the harness's own `psql` keeps using without one; reloads the server's configuration.
    /// For tests of a wrong password: create the role with `... LOGIN PASSWORD '...'`.
    pub fn require_passwords(&self) {
        let hba = format!(
            "# Written by warden's test harness (tests/it/support/postgres.rs).\n\
             local all all trust\n\
             host all {SUPERUSER} 127.0.0.1/32 trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        );
        // Writing over the file keeps its owner, so this works when we are root too.
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba).unwrap();
        let rules = self.psql(
            "postgres",
            "SELECT pg_reload_conf(); SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL",
        );
        assert!(rules.ends_with('0'), "pg_hba.conf has errors: {rules}");
        // The postmaster rereads pg_hba.conf on the signal; new sessions then use it.
        std::thread::sleep(Duration::from_millis(500));
    }

    /// Stops the server with `pg_ctl stop -m fast` and waits; the cluster stays on disk.
    pub fn stop(&self) {
        let mut command = self.runner.command(&self.bin.join("pg_ctl"));
        command.arg("-D").arg(self.data_dir()).args([
            "-m",
            "fast",
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
            "stop",
        ]);
        let output = self.output(command);
        if !output.status.success() {
            panic!(
                "pg_ctl stop failed ({}):\n{}\n{}",
                output.status,
                describe(&output),
                self.log_tail(0)
            );
        }
    }

    /// Starts the stopped server again on the same port, so a test can check that warden
    /// reconnects.
    pub fn restart(&self) {
        if let Err(failure) = self.try_start() {
            panic!("restarting on the same port failed: {}", failure.message);
        }
        self.wait_until_accepting();
    }

    /// Starts a long-lived `psql` on `database` and sends it `sql_lines`; send more with
    /// [`PsqlSession::send`]. Useful for holding a session open, e.g. idle in transaction.
    /// The session's `application_name` is unique; see [`PsqlSession::application_name`].
    pub fn spawn_psql_session(&self, database: &str, sql_lines: &[&str]) -> PsqlSession {
        static SESSIONS: AtomicUsize = AtomicUsize::new(1);
        let application_name = format!("test-session-{}", SESSIONS.fetch_add(1, Ordering::Relaxed));
        let output = tempfile::Builder::new()
            .prefix("psql-session-")
            .suffix(".log")
            .tempfile_in(self.dir.path())
            .unwrap();
        let mut command = self.psql_command(database, &application_name);
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(output.as_file().try_clone().unwrap())
            .stderr(output.as_file().try_clone().unwrap());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("could not run {command:?}: {err}"));
        let stdin = child.stdin.take();
        let session = PsqlSession {
            child,
            stdin,
            output,
            application_name,
        };
        for line in sql_lines {
            session.send(line);
        }
        session
    }

    /// The server log written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn initdb(&self) {
        let mut command = self.runner.command(&self.bin.join("initdb"));
        command
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            // Skipping fsync makes initdb several times faster; the cluster is thrown away.
            .arg("--no-sync")
            .arg("-D")
            .arg(self.data_dir());
        let output = self.output(command);
        if !output.status.success() {
            panic!("initdb failed ({}):\n{}", output.status, describe(&output));
        }
        // Appending keeps the file's owner, so this works when we are root too.
        let sock = self.dir.path().join("sock");
        let mut settings = SETTINGS.to_owned();
        writeln!(
            settings,
            "unix_socket_directories = '{}'",
            sock.display().to_string().replace('\'', "''")
        )
        .unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("postgresql.conf"))
            .unwrap();
        conf.write_all(settings.as_bytes()).unwrap();
    }

    /// `pg_ctl start -w` on `self.port`.
    fn try_start(&self) -> Result<(), StartFailure> {
        let log_offset = std::fs::metadata(self.log_path()).map_or(0, |m| m.len());
        let mut command = self.runner.command(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS])
            // pg_ctl hands this string to postgres; the port is the only option that can change
            // between attempts, everything else is in postgresql.conf.
            .arg("-o")
            .arg(format!("-c port={}", self.port))
            .arg("start");
        let output = self.output(command);
        if output.status.success() {
            return Ok(());
        }
        let log = self.log_tail(log_offset);
        Err(StartFailure {
            port_taken: log.contains("already in use"),
            message: format!(
                "pg_ctl start on 127.0.0.1:{} failed ({}):\n{}\n{log}",
                self.port,
                output.status,
                describe(&output)
            ),
        })
    }

    /// Waits until a query succeeds; `pg_ctl -w` has normally done this already.
    fn wait_until_accepting(&self) {
        let mut last_error = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            match self.try_psql("postgres", "SELECT 1") {
                Ok(_) => return,
                Err(err) => last_error = err,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postgres on 127.0.0.1:{} did not accept connections within 10s: {last_error}\n{}",
            self.port,
            self.log_tail(0)
        );
    }

    fn psql_command(&self, database: &str, application_name: &str) -> Command {
        let conninfo = [
            ("host", "127.0.0.1"),
            ("port", &self.port.to_string()),
            ("user", &self.superuser),
            ("dbname", database),
            ("application_name", application_name),
            ("connect_timeout", "10"),
        ]
        .iter()
        .map(|(key, value)| format!("{key}={}", quote_conninfo(value)))
        .collect::<Vec<_>>()
        .join(" ");
        let mut command = self.runner.command(&self.psql);
        // -X: no ~/.psqlrc; -A -t -q: bare rows, no headers, footers or command tags.
        command
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(conninfo);
        command
    }

    fn try_psql(&self, database: &str, sql: &str) -> Result<String, String> {
        let mut command = self.psql_command(database, PSQL_APPLICATION_NAME);
        command
            .current_dir(self.dir.path())
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("could not run {command:?}: {err}"));
        let mut stdin = child.stdin.take().unwrap();
        // psql may exit before reading everything (ON_ERROR_STOP); its stderr says why.
        let _ = stdin.write_all(sql.as_bytes());
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(format!(
                "psql exited with {}: {}",
                output.status,
                describe(&output)
            ))
        }
    }

    /// Runs a PostgreSQL tool to completion from inside the cluster directory (the `postgres`
    /// user may not be able to enter the test's working directory).
    fn output(&self, mut command: Command) -> Output {
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("could not run {command:?}: {err}"))
    }

    /// The last lines of the server log written after `offset` bytes.
    fn log_tail(&self, offset: u64) -> String {
        let log = self.log();
        let from = usize::try_from(offset).unwrap_or(usize::MAX).min(log.len());
        let recent = log.get(from..).unwrap_or(&log);
        let lines: Vec<&str> = recent.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
        format!(
            "--- server log ({}) ---\n{}",
            self.log_path().display(),
            tail.join("\n")
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let mut command = self.runner.command(&self.bin.join("pg_ctl"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "-t", PG_CTL_TIMEOUT_SECS, "stop"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = command.status();
    }
}

/// Why `pg_ctl start` failed, and whether another port might help.
struct StartFailure {
    port_taken: bool,
    message: String,
}

/// A long-lived `psql` reading statements from a pipe. Dropping it ends the session.
pub struct PsqlSession {
    child: Child,
    stdin: Option<ChildStdin>,
    /// psql's stdout and stderr, interleaved.
    output: NamedTempFile,
    application_name: String,
}

impl PsqlSession {
    /// Sends one line (a newline is added); psql runs each statement once its `;` arrives.
    pub fn send(&self, sql: &str) {
        let mut stdin = self.stdin.as_ref().expect("psql session already closed");
        let result = stdin
            .write_all(format!("{sql}\n").as_bytes())
            .and_then(|()| stdin.flush());
        if let Err(err) = result {
            panic!(
                "psql session has gone ({err}); its output:\n{}",
                self.output()
            );
        }
    }

    /// Everything psql has printed so far, stdout and stderr interleaved.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.output.path()).unwrap_or_default()
    }

    /// The session's `application_name`, for finding it in `pg_stat_activity`.
    pub fn application_name(&self) -> &str {
        &self.application_name
    }
}

impl Drop for PsqlSession {
    fn drop(&mut self) {
        // End of input makes psql exit; a signal is the fallback. When we are root the child is
        // `runuser`, which passes SIGTERM on to psql (SIGKILL would orphan psql).
        drop(self.stdin.take());
        let exited = |child: &mut Child, limit: Duration| {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        };
        if exited(&mut self.child, Duration::from_secs(2)) {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if !exited(&mut self.child, Duration::from_secs(5)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The environment variable naming the directory of the server binaries to test against (the
/// PostgreSQL matrix, scripts/pg-matrix.sh, sets it to each version in turn).
pub const PG_BIN_ENV: &str = "WARDEN_TEST_PG_BIN";

/// `$WARDEN_TEST_PG_BIN` when set, else the newest `/usr/lib/postgresql/<version>/bin` (Debian's
/// layout), else a `PATH` directory holding both `initdb` and `pg_ctl`.
fn server_bin_dir() -> PathBuf {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|dir| !dir.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            has_tools(&dir),
            "{PG_BIN_ENV}={} holds no `initdb` and `pg_ctl`; install the versions of the \
             PostgreSQL matrix with scripts/pg-versions.sh",
            dir.display()
        );
        return dir;
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|dir| has_tools(dir)) {
        return dir;
    }
    panic!(
        "PostgreSQL server binaries are required by this test (`initdb` and `pg_ctl`, looked for \
         in /usr/lib/postgresql/*/bin and on PATH); install them with: \
         sudo apt-get install -y postgresql   (scripts/test.sh does this when run as root)"
    );
}

/// Gives the cluster directory to the `postgres` user, which runs the server when we are root.
fn hand_over(dir: &Path) {
    let chown = require_tool("chown", "coreutils");
    let output = Command::new(chown)
        .args(["-R", &format!("{SUPERUSER}:{SUPERUSER}")])
        .arg(dir)
        .output()
        .unwrap();
    if !output.status.success() {
        panic!(
            "could not give {} to the `{SUPERUSER}` user, which PostgreSQL runs as when the \
             tests run as root (is the user missing? it comes with: \
             sudo apt-get install -y postgresql): {}",
            dir.display(),
            describe(&output)
        );
    }
}

/// A process's stdout and stderr, for failure messages.
fn describe(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout).trim_end(),
        String::from_utf8_lossy(&output.stderr).trim_end()
    )
}

/// `name` as an SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `value` as a libpq connection-string value.
fn quote_conninfo(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}
