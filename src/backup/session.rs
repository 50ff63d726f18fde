//! warden's own PostgreSQL sessions for the `postgres` backup kind (not the collector's
//! read-only ones): connecting with the job's DSN, whether the session is encrypted (what
//! `pg_dump` and `pg_restore` then use), driving the connection with the server's notices at
//! debug level, running a query from the operation's blocking thread under its cancellation,
//! quoting names, and counting rows.

use std::collections::BTreeMap;
use std::time::Duration;

use secrecy::ExposeSecret;
use tokio_postgres::{Client, NoTls};

use super::{BackupError, Context};
use crate::collect::ErrorChain;
use crate::collect::postgres::error::{Endpoint, PgError};
use crate::config::PostgresConfig;

/// The longest a connection attempt of warden's own session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// A client session of warden's own (not the collector's read-only one), to `database`.
///
/// The server's notices (an ANALYZE skipping what the role does not own, a DROP ... IF EXISTS
/// of nothing) go to the debug log: they are PostgreSQL talking to itself, not warden's news.
pub(super) async fn connect(
    pg: &PostgresConfig,
    database: Option<&str>,
) -> Result<Client, BackupError> {
    let mut config: tokio_postgres::Config = pg.dsn.expose_secret().parse().unwrap_or_default();
    if let Some(database) = database {
        config.dbname(database);
    }
    config
        .application_name("warden-backup")
        .connect_timeout(pg.timeout.max(CONNECT_TIMEOUT));
    let endpoint = Endpoint::new(&pg.name, &config);
    tracing::debug!(
        server = %pg.name,
        address = %endpoint.address,
        database = %endpoint.database,
        user = endpoint.user.as_deref().unwrap_or(""),
        tls = endpoint.tls,
        timeout = ?pg.timeout.max(CONNECT_TIMEOUT),
        "Connecting to PostgreSQL."
    );
    let failed = |err: tokio_postgres::Error| BackupError::Postgres {
        action: format!("connect to {endpoint}"),
        source: err.into(),
    };
    let client = if matches!(
        config.get_ssl_mode(),
        tokio_postgres::config::SslMode::Disable
    ) {
        let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(drive(connection, endpoint.clone()));
        client
    } else {
        let tls =
            crate::collect::postgres::tls::connector(pg.ca_file.as_deref()).map_err(|source| {
                BackupError::CaFile {
                    server: pg.name.clone(),
                    source,
                }
            })?;
        let (client, connection) = config.connect(tls).await.map_err(failed)?;
        tokio::spawn(drive(connection, endpoint.clone()));
        client
    };
    Ok(client)
}

/// Whether `client`'s session is encrypted: what the PostgreSQL tools then use (see
/// [`Connection::try_from_config`]).
pub(super) async fn encrypted(client: &Client) -> Result<bool, BackupError> {
    let row = client
        .query_one(
            "SELECT coalesce((SELECT ssl FROM pg_catalog.pg_stat_ssl WHERE pid = pg_catalog.pg_backend_pid()), false)",
            &[],
        )
        .await
        .map_err(sql_error("read whether the session is encrypted"))?;
    Ok(row.get(0))
}

/// Drives a session's connection until it ends, logging the server's notices at debug level
/// and a broken connection at debug level too (the statement running on it fails and says so).
async fn drive<S, T>(mut connection: tokio_postgres::Connection<S, T>, endpoint: Endpoint)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
        match message {
            Ok(tokio_postgres::AsyncMessage::Notice(notice)) => {
                tracing::debug!(server = %endpoint.server, database = %endpoint.database, notice = %PgNotice(&notice), "PostgreSQL notice.");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(server = %endpoint.server, database = %endpoint.database, error = %ErrorChain(&PgError::from(err)), "PostgreSQL session ended.");
                return;
            }
        }
    }
}

/// A notice as `WARNING 01000: message`.
struct PgNotice<'a>(&'a tokio_postgres::error::DbError);

impl std::fmt::Display for PgNotice<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.0.severity(),
            self.0.code().code(),
            self.0.message()
        )
    }
}

/// Runs `future` on the runtime from this blocking thread, giving up when cancelled.
pub(super) fn block<T>(
    context: &Context<'_>,
    future: impl Future<Output = Result<T, BackupError>>,
) -> Result<T, BackupError> {
    context.runtime.block_on(async {
        tokio::select! {
            result = future => result,
            () = context.cancel.cancelled() => Err(BackupError::Cancelled),
        }
    })
}

pub(super) fn sql_error(
    action: impl Into<String>,
) -> impl FnOnce(tokio_postgres::Error) -> BackupError {
    let action = action.into();
    move |err| BackupError::Postgres {
        action,
        source: err.into(),
    }
}

/// One name (a database or a role) as a quoted SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.table` or `table` as a quoted SQL identifier, for PostgreSQL and SQLite alike. Names
/// are validated (at config time, or from a manifest by the caller); quotes are doubled anyway.
pub(crate) fn quote(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// Counts the rows of each table over `client`.
pub(super) async fn count_rows(
    client: &Client,
    tables: &[String],
) -> Result<BTreeMap<String, u64>, BackupError> {
    let mut counts = BTreeMap::new();
    for table in tables {
        let row = client
            .query_one(&format!("SELECT count(*) FROM {}", quote(table)), &[])
            .await
            .map_err(sql_error(format!("count the rows of {table}")))?;
        let count: i64 = row.get(0);
        counts.insert(table.clone(), count.max(0) as u64);
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_schemas_apart() {
        assert_eq!(quote("users"), "\"users\"");
        assert_eq!(quote("app.users"), "\"app\".\"users\"");
        assert_eq!(quote_ident("my \"db\""), "\"my \"\"db\"\"\"");
    }
}
