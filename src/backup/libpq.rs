//! Running PostgreSQL's client tools (`pg_dump`, `pg_restore`) as child processes.
//!
//! The tools are found in Debian's `/usr/lib/postgresql/<version>/bin` (the newest version
//! first: a newer `pg_dump` can dump an older server, not the other way round), else on
//! `PATH`. They never go through a shell. Their environment is cleared and then given only
//! libpq's connection variables, built from the configured DSN. The password goes into a
//! passfile (mode 0600, in the state directory's private 0700 directory, removed afterwards)
//! named by `PGPASSFILE`, so it is in neither argv nor the environment, where `ps` could show
//! it.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio_postgres::config::{Host, SslMode};

use super::publish::Staged;
use super::{BackupError, Context};
use crate::config::PostgresConfig;

/// Where Debian installs each PostgreSQL version's binaries.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";

/// Why a PostgreSQL tool could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The tool is not installed.
    #[error(
        "`{name}` is not installed (looked in {DEBIAN_PG_LIB}/*/bin and on PATH); install it with: apt-get install postgresql-client"
    )]
    Missing {
        /// The tool's name.
        name: String,
    },
    /// The passfile could not be written.
    #[error("cannot write a passfile for the PostgreSQL tools")]
    Passfile(#[source] std::io::Error),
    /// The server's certificate must be verified and there are no roots to verify it with.
    #[error(
        "postgres/{server}: no CA certificates to verify the server with: set its ca_file, or install Debian's ca-certificates ({SYSTEM_ROOTS})"
    )]
    NoRoots {
        /// The configured server.
        server: String,
    },
}

/// The system's CA bundle (Debian's `ca-certificates`), which libpq is given to verify a
/// server when the configuration names no `ca_file`: the Mozilla list, as warden's own
/// connections use (through `webpki-roots`). libpq before 16 has no `sslrootcert=system`.
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The path of a PostgreSQL client tool.
///
/// # Errors
/// [`ToolError::Missing`] when it is nowhere to be found.
pub fn tool(name: &str) -> Result<PathBuf, ToolError> {
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(DEBIAN_PG_LIB)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let path = entry.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .collect();
    versions.sort();
    if let Some((_, path)) = versions.pop() {
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| ToolError::Missing {
            name: name.to_owned(),
        })
}

/// A connection for the client tools: libpq environment variables, and the passfile they
/// point at, removed when this is dropped.
#[derive(Debug)]
pub struct Connection {
    vars: Vec<(&'static str, OsString)>,
    passfile: Option<PathBuf>,
    /// The DSN's database.
    pub database: String,
}

impl Connection {
    /// The connection of `config`'s DSN, to `database` instead of the DSN's when given. The
    /// passfile, if the DSN has a password, goes in `dir` (the state directory's private one,
    /// whose next opener removes it if warden was killed).
    ///
    /// TLS is as strict as warden's own sessions, which always verify the certificate: the
    /// tools get `verify-full` whenever they use TLS. `sslmode=require` always uses it;
    /// `prefer` (the default) uses it when warden's own session to the server is encrypted
    /// (`encrypted`: the server offered TLS and its certificate passed), and plain text when
    /// the server offers no TLS, as warden's session did; libpq's own `prefer` and `require`
    /// would check no certificate, and `prefer` would fall back to plain text on any TLS
    /// failure. The roots are the entry's `ca_file`, else [`SYSTEM_ROOTS`].
    ///
    /// # Errors
    /// When the passfile cannot be written, or TLS needs roots and there are none.
    pub fn try_from_config(
        config: &PostgresConfig,
        database: Option<&str>,
        dir: &Path,
        encrypted: bool,
    ) -> Result<Connection, ToolError> {
        // Parsed at config time; a failure here cannot happen and would only mean defaults.
        let pg: tokio_postgres::Config = config.dsn.expose_secret().parse().unwrap_or_default();
        let mut vars: Vec<(&'static str, OsString)> = Vec::new();
        let hosts: Vec<String> = pg
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            vars.push(("PGHOST", hosts.join(",").into()));
        }
        let ports: Vec<String> = pg.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            vars.push(("PGPORT", ports.join(",").into()));
        }
        if let Some(user) = pg.get_user() {
            vars.push(("PGUSER", user.into()));
        }
        let database = database.unwrap_or(&config.database).to_owned();
        vars.push(("PGDATABASE", database.clone().into()));
        if let Some(options) = pg.get_options() {
            vars.push(("PGOPTIONS", options.into()));
        }
        if let Some(timeout) = pg.get_connect_timeout() {
            vars.push((
                "PGCONNECT_TIMEOUT",
                timeout.as_secs().max(1).to_string().into(),
            ));
        }
        let tls = match pg.get_ssl_mode() {
            SslMode::Disable => false,
            SslMode::Require => true,
            _ => encrypted,
        };
        if tls {
            let roots = match &config.ca_file {
                Some(ca) => ca.clone(),
                None if Path::new(SYSTEM_ROOTS).is_file() => PathBuf::from(SYSTEM_ROOTS),
                None => {
                    return Err(ToolError::NoRoots {
                        server: config.name.clone(),
                    });
                }
            };
            vars.push(("PGSSLMODE", "verify-full".into()));
            vars.push(("PGSSLROOTCERT", roots.into()));
        } else {
            vars.push(("PGSSLMODE", "disable".into()));
        }
        vars.push(("PGAPPNAME", "warden-backup".into()));
        // Messages in English, whatever the host's locale: they end up in warden's errors.
        vars.push(("LC_ALL", "C".into()));
        let passfile = match pg.get_password() {
            Some(password) => {
                let path = write_passfile(password, dir).map_err(ToolError::Passfile)?;
                vars.push(("PGPASSFILE", path.clone().into()));
                Some(path)
            }
            None => None,
        };
        Ok(Connection {
            vars,
            passfile,
            database,
        })
    }

    /// A command for `program` with a cleared environment holding only this connection.
    pub fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.env_clear();
        for (name, value) in &self.vars {
            command.env(name, value);
        }
        command
    }

    /// The connection without secrets, for manifests and messages.
    pub fn describe(&self) -> String {
        self.vars
            .iter()
            .filter(|(name, _)| matches!(*name, "PGHOST" | "PGPORT" | "PGUSER" | "PGDATABASE"))
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    name.trim_start_matches("PG").to_lowercase(),
                    value.to_string_lossy()
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some(path) = &self.passfile {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The start of a passfile's name, before the writing process's id.
const PASSFILE_PREFIX: &str = ".tmp-pgpass-";

/// The id of the process that wrote the passfile named `name`, if it is one.
pub(crate) fn passfile_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PASSFILE_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Writes a passfile matching every host, port, database and user, readable only by warden.
fn write_passfile(password: &[u8], dir: &Path) -> std::io::Result<PathBuf> {
    let mut escaped = Vec::with_capacity(password.len() + 8);
    for &byte in password {
        if byte == b'\\' || byte == b':' {
            escaped.push(b'\\');
        }
        escaped.push(byte);
    }
    let name = format!(
        "{PASSFILE_PREFIX}{}-{:x}",
        std::process::id(),
        std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            std::time::SystemTime::now()
        )
    );
    let path = dir.join(name);
    let mut file = super::publish::create_private(&path)?;
    let written = file
        .write_all(b"*:*:*:*:")
        .and_then(|()| file.write_all(&escaped))
        .and_then(|()| file.write_all(b"\n"));
    if let Err(err) = written {
        let _ = std::fs::remove_file(&path);
        return Err(err);
    }
    Ok(path)
}

/// The first line a tool prints for `--version`, e.g. `pg_dump (PostgreSQL) 15.18`.
pub fn version(program: &Path) -> String {
    Command::new(program)
        .env_clear()
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| program.display().to_string())
}

/// How often a running child is checked for exit, cancellation and progress.
const POLL: Duration = Duration::from_millis(20);

/// How much of a tool's stderr goes into an error message.
const STDERR_TAIL: usize = 2000;

/// Waits for a child, killing it when the context is cancelled; `on_poll` runs every
/// [`POLL`] (progress). Fails with the tool's stderr (from `log`) unless it exits 0.
pub(super) fn wait(
    mut child: Child,
    tool: &str,
    log: &Staged,
    context: &Context<'_>,
    on_poll: &dyn Fn(),
) -> Result<(), BackupError> {
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(err) => return Err(BackupError::io("wait for", Path::new(tool))(err)),
        }
        if context.cancel.is_cancelled() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BackupError::Cancelled);
        }
        on_poll();
        std::thread::sleep(POLL);
    };
    if status.success() {
        return Ok(());
    }
    #[cfg(unix)]
    let described = match std::os::unix::process::ExitStatusExt::signal(&status) {
        Some(signal) => format!("killed by signal {signal}"),
        None => status.to_string(),
    };
    #[cfg(not(unix))]
    let described = status.to_string();
    Err(BackupError::ToolFailed {
        tool: tool.to_owned(),
        status: described,
        stderr: stderr_tail(log.path()),
    })
}

fn stderr_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let text = text.trim();
    let start = text.len().saturating_sub(STDERR_TAIL);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    if text.is_empty() {
        "(no output)".to_owned()
    } else {
        text[start..].to_owned()
    }
}

/// Starts `program` with `args`, stdout and stderr going to `log`.
pub(super) fn spawn(
    connection: &Connection,
    program: &Path,
    args: &[&std::ffi::OsStr],
    log: &mut Staged,
) -> Result<Child, BackupError> {
    let path = log.path().to_owned();
    let file = log.file().map_err(BackupError::io("open log", &path))?;
    let stdout = file
        .try_clone()
        .map_err(BackupError::io("open log", &path))?;
    let stderr = file
        .try_clone()
        .map_err(BackupError::io("open log", &path))?;
    connection
        .command(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(BackupError::io("run", program))
}

pub(super) fn kill(mut child: Child) -> std::io::Result<()> {
    child.kill()?;
    child.wait().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dsn: &str) -> PostgresConfig {
        let text = format!("postgres:\n  - name: main\n    dsn: '{dsn}'\n");
        let config = crate::config::Config::try_from_yaml(
            &text,
            "t.yml",
            Path::new("."),
            &std::collections::HashMap::new(),
        )
        .unwrap();
        config.sources.postgres[0].clone()
    }

    #[test]
    fn the_password_goes_to_a_private_passfile_not_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let connection = Connection::try_from_config(
            &config("postgres://app:pa%3Ass%5C@db.example:5433/shop?sslmode=disable"),
            None,
            dir.path(),
            false,
        )
        .unwrap();
        let command = connection.command(Path::new("/bin/true"));
        let envs: Vec<(String, String)> = command
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.unwrap_or_default().to_string_lossy().into_owned(),
                )
            })
            .collect();
        assert!(envs.iter().all(|(_, v)| !v.contains("pa:ss")), "{envs:?}");
        let get = |name: &str| envs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(get("PGHOST").as_deref(), Some("db.example"));
        assert_eq!(get("PGPORT").as_deref(), Some("5433"));
        assert_eq!(get("PGDATABASE").as_deref(), Some("shop"));
        assert_eq!(get("PGSSLMODE").as_deref(), Some("disable"));
        let passfile = PathBuf::from(get("PGPASSFILE").unwrap());
        assert_eq!(
            std::fs::read_to_string(&passfile).unwrap(),
            "*:*:*:*:pa\\:ss\\\\\n"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&passfile).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(
            connection.describe(),
            "host=db.example port=5433 user=app database=shop"
        );
        drop(connection);
        assert!(!passfile.exists());
    }

    /// The tools verify the server's certificate whenever they use TLS, with the entry's
    /// `ca_file` or the system's roots; `prefer` follows what warden's own session found.
    #[test]
    fn tls_is_verify_full_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let env = |dsn: &str, ca: bool, encrypted: bool| {
            let mut pg = config(dsn);
            if ca {
                pg.ca_file = Some(PathBuf::from("/etc/warden/ca.pem"));
            }
            let connection = Connection::try_from_config(&pg, None, dir.path(), encrypted).unwrap();
            let command = connection.command(Path::new("/bin/true"));
            let get = |name: &str| {
                command
                    .get_envs()
                    .find(|(k, _)| *k == name)
                    .and_then(|(_, v)| v)
                    .map(|v| v.to_string_lossy().into_owned())
            };
            (get("PGSSLMODE"), get("PGSSLROOTCERT"))
        };
        let full = |roots: &str| (Some("verify-full".to_owned()), Some(roots.to_owned()));
        let plain = (Some("disable".to_owned()), None);
        let db = "postgres://app@db.example/shop";
        assert_eq!(
            env(&format!("{db}?sslmode=require"), true, false),
            full("/etc/warden/ca.pem")
        );
        assert_eq!(
            env(&format!("{db}?sslmode=require"), false, true),
            full(SYSTEM_ROOTS)
        );
        assert_eq!(env(db, true, true), full("/etc/warden/ca.pem"));
        assert_eq!(env(db, false, true), full(SYSTEM_ROOTS));
        assert_eq!(env(db, false, false), plain);
        assert_eq!(env(&format!("{db}?sslmode=disable"), true, true), plain);
    }
}
