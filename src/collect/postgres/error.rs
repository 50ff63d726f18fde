//! PostgreSQL failures as an operator needs to read them: the server's severity, SQLSTATE and
//! message, or the I/O cause (`Connection refused (os error 111)`), and where warden tried to
//! connect, never the DSN or its password.
//!
//! tokio-postgres' own `Display` says only `db error` or `error connecting to server` and
//! leaves the rest to `source()`, where a server error has no SQLSTATE. [`PgError`] keeps the
//! driver's error and shows it whole, so any chain printer (`ErrorChain`, anyhow's `{:#}`)
//! prints the cause. [`Endpoint`] is the context added around it.

use std::fmt;

use tokio_postgres::config::{Host, SslMode};

/// PostgreSQL's default port, used when the DSN names none.
const DEFAULT_PORT: u16 = 5432;

/// A tokio-postgres error displayed whole: `FATAL 28P01: password authentication failed for
/// user "warden"` for a server error (with its detail and hint), the driver's own message
/// otherwise, with the I/O or TLS cause as `source()`.
#[derive(Debug)]
pub struct PgError(tokio_postgres::Error);

impl PgError {
    /// The driver's error.
    pub fn inner(&self) -> &tokio_postgres::Error {
        &self.0
    }

    /// The server's SQLSTATE, when the server sent the error.
    pub fn code(&self) -> Option<&str> {
        self.0.as_db_error().map(|db| db.code().code())
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(err: tokio_postgres::Error) -> Self {
        PgError(err)
    }
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(
                    f,
                    "{} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                )?;
                if let Some(detail) = db.detail() {
                    write!(f, " (detail: {detail})")?;
                }
                if let Some(hint) = db.hint() {
                    write!(f, " (hint: {hint})")?;
                }
                Ok(())
            }
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // A server error is all in the message above; anything else has its cause below
        // (the I/O error of a refused connection, the TLS error of a failed handshake).
        match self.0.as_db_error() {
            Some(_) => None,
            None => std::error::Error::source(&self.0),
        }
    }
}

/// Where a session goes, for messages: `postgres/app at 127.0.0.1:5432 (database app, user
/// warden)`. Built from the parsed DSN; it never holds the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The configured server name.
    pub server: String,
    /// Each `host:port` (or socket path) the DSN lists, comma-separated.
    pub address: String,
    /// The database.
    pub database: String,
    /// The role, when the DSN names one.
    pub user: Option<String>,
    /// The DSN's `sslmode`, in libpq's words.
    pub tls: &'static str,
}

impl Endpoint {
    /// The endpoint of `config` for the server called `server`.
    pub fn new(server: &str, config: &tokio_postgres::Config) -> Endpoint {
        Endpoint {
            server: server.to_owned(),
            address: address(config),
            database: config.get_dbname().unwrap_or_default().to_owned(),
            user: config.get_user().map(str::to_owned),
            tls: match config.get_ssl_mode() {
                SslMode::Disable => "disable",
                SslMode::Require => "require",
                _ => "prefer",
            },
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "postgres/{} at {} (database {}",
            self.server, self.address, self.database
        )?;
        if let Some(user) = &self.user {
            write!(f, ", user {user}")?;
        }
        f.write_str(")")
    }
}

/// Each host and port the DSN lists, as `host:port` (`[::1]:5432`, or a socket's path),
/// comma-separated: the addresses tokio-postgres tries, in order.
pub fn address(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let port = |i: usize| {
        ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT)
    };
    let hostaddrs = config.get_hostaddrs();
    let hosts = config.get_hosts();
    let mut out = Vec::new();
    for i in 0..hosts.len().max(hostaddrs.len()) {
        let port = port(i);
        // `hostaddr` is what tokio-postgres dials when both are given.
        let text = match (hostaddrs.get(i), hosts.get(i)) {
            (Some(std::net::IpAddr::V6(ip)), _) => format!("[{ip}]:{port}"),
            (Some(ip), _) => format!("{ip}:{port}"),
            (None, Some(Host::Tcp(name))) if name.contains(':') => format!("[{name}]:{port}"),
            (None, Some(Host::Tcp(name))) => format!("{name}:{port}"),
            #[cfg(unix)]
            (None, Some(Host::Unix(dir))) => format!("{}/.s.PGSQL.{port}", dir.display()),
            (None, None) => continue,
        };
        out.push(text);
    }
    if out.is_empty() {
        "(no host in the DSN)".to_owned()
    } else {
        out.join(", ")
    }
}

/// Why the collector's session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The connection (TCP, TLS, authentication, startup) failed.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// Where.
        endpoint: Endpoint,
        /// The driver's error.
        #[source]
        source: PgError,
    },
    /// An established connection ended with an error (server shut down, network lost).
    #[error("lost the connection to {endpoint}")]
    Closed {
        /// Where.
        endpoint: Endpoint,
        /// The driver's error.
        #[source]
        source: PgError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(dsn: &str) -> tokio_postgres::Config {
        dsn.parse().unwrap()
    }

    #[test]
    fn endpoint_names_host_port_database_and_user_but_no_password() {
        let config = parse("postgres://warden:s3cret@db.example:6432/app?sslmode=require");
        let endpoint = Endpoint::new("app", &config);
        let text = endpoint.to_string();
        assert_eq!(
            text,
            "postgres/app at db.example:6432 (database app, user warden)"
        );
        assert_eq!(endpoint.tls, "require");
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn addresses_cover_defaults_ipv6_sockets_and_lists() {
        assert_eq!(
            address(&parse("host=localhost dbname=app")),
            "localhost:5432"
        );
        assert_eq!(address(&parse("postgres://[::1]:5433/app")), "[::1]:5433");
        assert_eq!(
            address(&parse("host=/run/postgresql port=5433")),
            "/run/postgresql/.s.PGSQL.5433"
        );
        assert_eq!(address(&parse("host=a,b port=5433,5434")), "a:5433, b:5434");
        assert_eq!(
            address(&parse("host=db hostaddr=10.0.0.5 port=5433")),
            "10.0.0.5:5433"
        );
    }
}
