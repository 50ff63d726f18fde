//! The `postgres` kind: `pg_dump --format=custom`, checked with `pg_restore --list`, drilled
//! into a scratch database, restored with a safety dump first.
//!
//! The dump and the row counts recorded in the manifest come from one snapshot: warden opens a
//! repeatable-read transaction, exports its snapshot, and hands it to `pg_dump --snapshot`
//! while it counts the key tables in the same transaction. The drill can then compare the
//! restored counts with the manifest exactly, even while the application writes.
//!
//! `pg_dump` writes the archive itself (to the staged temporary file): a custom-format archive
//! written to a seekable file carries the data offsets that `pg_restore --jobs` and selective
//! restores need, which a dump streamed through a pipe lacks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest;
use tokio_postgres::Client;

use super::kind::{self, Kind, Link, ParseContext, Registration, single};
use super::libpq::{self, Connection, kill, spawn, wait};
use super::manifest::Manifest;
use super::publish::Staged;
use super::session::{block, connect, count_rows, encrypted, quote_ident, sql_error};
use super::{BackupError, Context, Expected, Produced, RestoreSummary};
use crate::collect::ErrorChain;
use crate::collect::postgres::error::PgError;
use crate::config::{PostgresConfig, Problems, RawBackup, Target};

/// The `postgres` kind: `source: postgres/NAME` and the tables a dump must hold.
pub(crate) const KIND: Registration = Registration {
    name: "postgres",
    keys: &["source", "verify.required_tables"],
    parse,
};

/// The extension of a dump.
const EXTENSIONS: &[&str] = &["dump"];

/// The `postgres` kind for one job: the configured server whose database it dumps.
#[derive(Debug)]
struct Postgres(PostgresConfig);

fn parse(
    raw: &RawBackup,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let entries = &context.sources.postgres;
    let pg = kind::source(raw, path, KIND.name, entries, |p| &p.name, problems)?;
    Some(Arc::new(Postgres(pg.clone())))
}

impl Kind for Postgres {
    fn name(&self) -> &'static str {
        KIND.name
    }

    fn extensions(&self) -> &'static [&'static str] {
        EXTENSIONS
    }

    fn source(&self) -> Option<Target> {
        Some(Target::Postgres(self.0.name.clone()))
    }

    fn reads(&self) -> &[PathBuf] {
        &[]
    }

    fn produce(&self, context: &Context<'_>, _held: &[Manifest]) -> Result<Produced, BackupError> {
        dump(&self.0, context)
    }

    fn verify(
        &self,
        path: &Path,
        expected: &Expected<'_>,
        _context: &Context<'_>,
    ) -> Result<Vec<String>, BackupError> {
        verify(path, expected.required_tables)
    }

    fn drill(&self, chain: &[Link<'_>], context: &Context<'_>) -> Result<String, BackupError> {
        let Link { manifest, path } = single(chain)?;
        drill(&self.0, manifest, path, context)
    }

    fn restore(
        &self,
        chain: &[Link<'_>],
        target: &str,
        force: bool,
        context: &Context<'_>,
    ) -> Result<RestoreSummary, BackupError> {
        let Link { manifest, path } = single(chain)?;
        restore(&self.0, manifest, path, target, force, context)
    }
}

/// Dumps the DSN's database into a staged file in the job's destination.
fn dump(pg: &PostgresConfig, context: &Context<'_>) -> Result<Produced, BackupError> {
    let job = context.job;
    let pg_dump = libpq::tool("pg_dump")?;
    let client = block(context, connect(pg, None))?;
    let encrypted = block(context, encrypted(&client))?;
    let connection = Connection::try_from_config(pg, None, context.private, encrypted)?;
    let (server_version, snapshot) = block(context, async {
        let version: String = client
            .query_one("SHOW server_version", &[])
            .await
            .map_err(sql_error("read server_version"))?
            .get(0);
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(sql_error("begin the snapshot transaction"))?;
        let snapshot: Option<String> = match client
            .query_one("SELECT pg_export_snapshot()", &[])
            .await
        {
            Ok(row) => Some(row.get(0)),
            Err(err) => {
                tracing::warn!(job = %job.name, error = %ErrorChain(&PgError::from(err)), "Cannot export a snapshot; row counts are left out of the manifest.");
                None
            }
        };
        Ok((version, snapshot))
    })?;

    let mut staged = Staged::create(&job.destination, &format!("{}.dump", context.id))
        .map_err(BackupError::io("create a file in", &job.destination))?;
    staged
        .close()
        .map_err(BackupError::io("sync", staged.path()))?;
    let mut log = Staged::create(&job.destination, &format!("{}.log", context.id))
        .map_err(BackupError::io("create a file in", &job.destination))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "--format=custom".into(),
        "--no-password".into(),
        format!("--file={}", staged.path().display()).into(),
    ];
    if let Some(snapshot) = &snapshot {
        args.push(format!("--snapshot={snapshot}").into());
    }
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let child = spawn(&connection, &pg_dump, &args, &mut log)?;
    // The counts run while pg_dump dumps, in the transaction whose snapshot it uses.
    let counts = if snapshot.is_some() {
        match block(context, count_rows(&client, &job.verify.required_tables)) {
            Ok(counts) => counts,
            Err(err) => {
                let _ = kill(child);
                return Err(err);
            }
        }
    } else {
        BTreeMap::new()
    };
    let staged_path = staged.path().to_owned();
    wait(child, "pg_dump", &log, context, &|| {
        if let Ok(meta) = std::fs::metadata(&staged_path) {
            context.progress.set(meta.len());
        }
    })?;
    // The snapshot had to live until pg_dump finished with it.
    let _ = block(context, async {
        client
            .batch_execute("COMMIT")
            .await
            .map_err(sql_error("end the snapshot transaction"))
    });
    Ok(Produced {
        staged,
        extension: EXTENSIONS[0],
        tool: libpq::version(&pg_dump),
        server_version: Some(server_version),
        source: format!("postgres/{} ({})", pg.name, connection.describe()),
        tables: counts,
        files: None,
        compression: None,
        streamed_sha256: None,
        parent: None,
        tree: None,
        state: None,
    })
}

/// The entries `pg_restore --list` prints for an archive: `(description, schema, name)`.
fn table_of_contents(path: &Path) -> Result<Vec<(String, String, String)>, BackupError> {
    let pg_restore = libpq::tool("pg_restore")?;
    let output = std::process::Command::new(&pg_restore)
        .env_clear()
        .env("LC_ALL", "C")
        .arg("--list")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(BackupError::io("run", &pg_restore))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BackupError::NotVerified(format!(
            "pg_restore --list failed ({}): {}",
            output.status,
            stderr.trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut entries = Vec::new();
    for line in text.lines() {
        if line.starts_with(';') || line.trim().is_empty() {
            continue;
        }
        // `3375; 0 16390 TABLE DATA public pgbench_accounts postgres`
        let Some((_, rest)) = line.split_once("; ") else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        if words.len() < 3 {
            continue;
        }
        let (description, tail) = if words.len() >= 5 && words[2] == "TABLE" && words[3] == "DATA" {
            ("TABLE DATA".to_owned(), &words[4..])
        } else {
            (words[2].to_owned(), &words[3..])
        };
        let schema = tail.first().copied().unwrap_or("-").to_owned();
        let name = tail.get(1).copied().unwrap_or("").to_owned();
        entries.push((description, schema, name));
    }
    Ok(entries)
}

fn has_table(entries: &[(String, String, String)], table: &str) -> bool {
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    entries.iter().any(|(description, s, n)| {
        description == "TABLE" && n == name && schema.is_none_or(|schema| schema == s)
    })
}

/// `pg_restore --list` reads the archive's table of contents; every table in `required` must
/// be in it.
fn verify(path: &Path, required: &[String]) -> Result<Vec<String>, BackupError> {
    let entries = table_of_contents(path)?;
    if entries.is_empty() {
        return Err(BackupError::NotVerified(
            "pg_restore --list shows an empty archive".to_owned(),
        ));
    }
    let missing: Vec<&String> = required
        .iter()
        .filter(|t| !has_table(&entries, t))
        .collect();
    if !missing.is_empty() {
        return Err(BackupError::NotVerified(format!(
            "required tables missing from the dump: {}",
            missing
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let tables = entries.iter().filter(|(d, _, _)| d == "TABLE").count();
    let mut checks = vec![format!(
        "pg_restore --list: {} entries, {tables} tables",
        entries.len()
    )];
    if !required.is_empty() {
        checks.push(format!("required tables present: {}", required.join(", ")));
    }
    Ok(checks)
}

/// Runs `pg_restore` of `path` into `database`, in one transaction, stopping at the first
/// error.
fn pg_restore(
    pg: &PostgresConfig,
    database: &str,
    path: &Path,
    owners: bool,
    encrypted: bool,
    context: &Context<'_>,
) -> Result<(), BackupError> {
    let pg_restore = libpq::tool("pg_restore")?;
    let connection = Connection::try_from_config(pg, Some(database), context.private, encrypted)?;
    let mut log = Staged::create(
        &context.job.destination,
        &format!("{}.restore.log", context.id),
    )
    .map_err(BackupError::io(
        "create a file in",
        &context.job.destination,
    ))?;
    let mut args: Vec<std::ffi::OsString> = vec![
        "--no-password".into(),
        "--exit-on-error".into(),
        "--single-transaction".into(),
        // A connection string, so that no name (one with `=`, say) is taken for one.
        format!("--dbname=dbname={}", conninfo_value(database)).into(),
    ];
    if !owners {
        args.push("--no-owner".into());
        args.push("--no-privileges".into());
    }
    args.push(path.into());
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let child = spawn(&connection, &pg_restore, &args, &mut log)?;
    wait(child, "pg_restore", &log, context, &|| {})
}

/// What a database of warden's own is for; its name starts `warden_<purpose>_<job>_`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scratch {
    /// A restore drill's scratch database.
    Drill,
    /// A restore's new copy, before it replaces the target.
    Restore,
    /// The target's previous content, renamed aside while the new copy takes its name.
    Before,
}

impl Scratch {
    /// The name prefix of this purpose's databases for `job`: the job's name cleaned and cut
    /// short, and a hash of the whole name, so two jobs never share a prefix.
    fn prefix(self, job: &str) -> String {
        let purpose = match self {
            Scratch::Drill => "drill",
            Scratch::Restore => "restore",
            Scratch::Before => "before",
        };
        let clean: String = job
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(16)
            .collect();
        let digest = sha2::Sha256::digest(job.as_bytes());
        let hash = hex::encode(&digest[..3]);
        format!("warden_{purpose}_{clean}_{hash}_")
    }

    /// A database name no one else uses: the prefix and the operation's id (at most 63
    /// bytes, PostgreSQL's limit).
    fn name(self, job: &str, id: &str) -> String {
        format!(
            "{}{}",
            self.prefix(job),
            id.to_lowercase().replace('-', "_")
        )
    }
}

/// Whether `suffix` is an operation id as [`Scratch::name`] writes it
/// (`20261201t030000z_ab12`).
fn is_id_suffix(suffix: &str) -> bool {
    let b = suffix.as_bytes();
    b.len() == 21
        && b[8] == b't'
        && b[15] == b'z'
        && b[16] == b'_'
        && super::manifest::is_id(&format!(
            "{}T{}Z-{}",
            &suffix[..8],
            &suffix[9..15],
            &suffix[17..]
        ))
}

/// Drops the databases of `purpose` that an operation on `job` killed before it could clean
/// up left behind. Only called holding the job's lock, so none of them is in use.
async fn drop_stale(client: &Client, purpose: Scratch, job: &str) -> Result<(), BackupError> {
    let prefix = purpose.prefix(job);
    let rows = client
        .query(
            "SELECT datname FROM pg_catalog.pg_database WHERE left(datname, length($1)) = $1",
            &[&prefix],
        )
        .await
        .map_err(sql_error("list leftover scratch databases"))?;
    for row in rows {
        let name: String = row.get(0);
        // Only names this purpose made for this job: the prefix, then an operation's id.
        if !is_id_suffix(name.get(prefix.len()..).unwrap_or("")) {
            continue;
        }
        tracing::warn!(database = %name, "Dropping a scratch database an interrupted operation left behind.");
        drop_database(client, &name).await?;
    }
    Ok(())
}

async fn drop_database(client: &Client, name: &str) -> Result<(), BackupError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(sql_error("read server_version_num"))?
        .get(0);
    let force = if version >= 130000 {
        " WITH (FORCE)"
    } else {
        ""
    };
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {}{force}",
            quote_ident(name)
        ))
        .await
        .map_err(sql_error(format!("drop database {name}")))
}

/// Restores the backup into a scratch database, compares the key tables' row counts with
/// the manifest, and drops the scratch database whatever happened.
fn drill(
    pg: &PostgresConfig,
    manifest: &Manifest,
    path: &Path,
    context: &Context<'_>,
) -> Result<String, BackupError> {
    let scratch = Scratch::Drill.name(&context.job.name, &context.id);
    let admin = block(context, connect(pg, None))?;
    let encrypted = block(context, encrypted(&admin))?;
    block(context, async {
        drop_stale(&admin, Scratch::Drill, &context.job.name).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&scratch)))
            .await
            .map_err(sql_error(format!("create scratch database {scratch}")))
    })?;
    let result = (|| {
        pg_restore(pg, &scratch, path, false, encrypted, context)?;
        let client = block(context, connect(pg, Some(&scratch)))?;
        let tables: Vec<String> = manifest.tables.keys().cloned().collect();
        let counts = block(context, count_rows(&client, &tables))?;
        let restored_tables: i64 = block(context, async {
            Ok(client
                .query_one(
                    "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
                    &[],
                )
                .await
                .map_err(sql_error("count restored tables"))?
                .get(0))
        })?;
        compare_counts(&manifest.tables, &counts)?;
        Ok(format!(
            "restored into scratch database {scratch}: {restored_tables} tables; row counts match the manifest ({})",
            describe_counts(&counts)
        ))
    })();
    // The scratch database goes whatever happened; a failure to drop it is logged, and the
    // drill's own result stands.
    let dropped = context.runtime.block_on(drop_database(&admin, &scratch));
    if let Err(err) = dropped {
        tracing::error!(database = %scratch, error = %ErrorChain(&err), "Cannot drop the drill's scratch database; drop it by hand.");
    }
    result
}

/// Fails unless the restored counts equal the manifest's.
pub(crate) fn compare_counts(
    expected: &BTreeMap<String, u64>,
    found: &BTreeMap<String, u64>,
) -> Result<(), BackupError> {
    let differences: Vec<String> = expected
        .iter()
        .filter(|(table, count)| found.get(*table) != Some(count))
        .map(|(table, count)| {
            format!(
                "{table}: manifest {count}, restored {}",
                found
                    .get(table)
                    .map_or("missing".to_owned(), u64::to_string)
            )
        })
        .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(BackupError::DrillFailed(differences.join("; ")))
    }
}

pub(crate) fn describe_counts(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "no key tables configured".to_owned();
    }
    counts
        .iter()
        .map(|(t, n)| format!("{t} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `database` exists, and whether it holds any user relation.
async fn target_state(
    pg: &PostgresConfig,
    admin: &Client,
    database: &str,
) -> Result<(bool, bool), BackupError> {
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(sql_error("look up the target database"))?
        .is_some();
    if !exists {
        return Ok((false, false));
    }
    let client = connect(pg, Some(database)).await?;
    // Data is any relation, large object, function or schema of the users' own.
    let objects: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
                        AND n.nspname NOT LIKE 'pg_toast%'
                        AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f'))
                  + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)
                  + (SELECT count(*) FROM pg_catalog.pg_proc p
                       JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
                  + (SELECT count(*) FROM pg_catalog.pg_namespace
                      WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
                        AND nspname NOT LIKE 'pg_%')",
            &[],
        )
        .await
        .map_err(sql_error("inspect the target database"))?
        .get(0);
    Ok((true, objects > 0))
}

/// ANALYZEs the restored database: all of it as a superuser; otherwise only the relations
/// the role owns in the users' schemas (all that it restored), because a database-wide
/// ANALYZE by anyone else warns once for every catalog it may not touch. Says what it did.
async fn analyze(client: &Client, superuser: bool) -> Result<String, BackupError> {
    if superuser {
        client
            .batch_execute("ANALYZE")
            .await
            .map_err(sql_error("analyze the restored database"))?;
        return Ok("ANALYZE".to_owned());
    }
    let rows = client
        .query(
            "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname)
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'm', 'p')
                AND c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user)
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_%'
              ORDER BY 1",
            &[],
        )
        .await
        .map_err(sql_error("list the restored relations"))?;
    let relations: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    if relations.is_empty() {
        return Ok("ANALYZE: no relations restored".to_owned());
    }
    client
        .batch_execute(&format!("ANALYZE {}", relations.join(", ")))
        .await
        .map_err(sql_error("analyze the restored relations"))?;
    Ok(format!(
        "ANALYZE of the {} restored relations",
        relations.len()
    ))
}

/// Whether the session's role is a superuser (it can then restore owners and privileges).
async fn is_superuser(client: &Client) -> Result<bool, BackupError> {
    Ok(client
        .query_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(sql_error("look up the role"))?
        .get(0))
}

/// Ends the other sessions on `database` and renames it, retrying while sessions come back.
async fn rename_database(client: &Client, from: &str, to: &str) -> Result<(), BackupError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&from],
            )
            .await
            .map_err(sql_error(format!("end the sessions on {from}")))?;
        match client
            .batch_execute(&format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            ))
            .await
        {
            Ok(()) => return Ok(()),
            Err(err) if attempt >= ATTEMPTS => {
                return Err(sql_error(format!("rename database {from} to {to}"))(err));
            }
            Err(_) => attempt += 1,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// PostgreSQL's limit on a name's length, in bytes (`NAMEDATALEN - 1`); a longer name is
/// silently truncated by the server, which would restore into another database.
const MAX_NAME_BYTES: usize = 63;

/// Whether PostgreSQL accepts `name` as a database name unchanged: 1 to 63 bytes, no NUL.
/// Anything else goes (`my-app`, spaces, quotes): it is always quoted as an identifier in SQL
/// and handed to the tools in a connection string, never through a shell.
fn check_database_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("a database name cannot be empty")
    } else if name.len() > MAX_NAME_BYTES {
        Err("a database name is at most 63 bytes")
    } else if name.contains('\0') {
        Err("a database name cannot contain a NUL byte")
    } else {
        Ok(())
    }
}

/// `value` as a libpq connection-string value: single-quoted, `\` and `'` escaped.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A database name as part of a file name: letters, digits, `-`, `_` and `.` kept, anything
/// else (`/` above all) as `_`.
fn file_name_part(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Restores into the database `target`. A database holding relations is refused without
/// `force`; with it, a safety dump of it is taken first. The backup is restored into a new
/// database beside the target, ANALYZEd and its row counts checked; only then does it take
/// the target's name (the old database is renamed aside, its sessions ended, and dropped once
/// the swap is done). A failure before the swap leaves the target as it was; a failure
/// during it renames the old database back.
fn restore(
    pg: &PostgresConfig,
    manifest: &Manifest,
    path: &Path,
    target: &str,
    force: bool,
    context: &Context<'_>,
) -> Result<RestoreSummary, BackupError> {
    if let Err(reason) = check_database_name(target) {
        return Err(BackupError::BadTarget {
            target: target.to_owned(),
            reason: reason.to_owned(),
        });
    }
    if target.starts_with("warden_") {
        return Err(BackupError::BadTarget {
            target: target.to_owned(),
            reason: "names starting `warden_` are warden's scratch databases".to_owned(),
        });
    }
    let job = &context.job.name;
    let mut summary = RestoreSummary {
        target: format!("postgres/{} database {target}", pg.name),
        ..RestoreSummary::default()
    };
    // The admin session must not be on the target: a database in use cannot be renamed.
    let admin_db = match (pg.database == target, target == "postgres") {
        (false, _) => pg.database.as_str(),
        (true, false) => "postgres",
        (true, true) => "template1",
    };
    let admin = block(context, connect(pg, Some(admin_db)))?;
    let encrypted = block(context, encrypted(&admin))?;
    let (exists, has_data) = block(context, target_state(pg, &admin, target))?;
    if has_data && !force {
        return Err(BackupError::TargetNotEmpty {
            target: format!("database {target}"),
            hint: "pass --force to replace it (a safety dump is taken first, and the database is replaced only once the restored copy has been checked)",
        });
    }
    let (superuser, owner, like) = block(context, async {
        drop_stale(&admin, Scratch::Restore, job).await?;
        let leftovers = admin
            .query(
                "SELECT datname FROM pg_catalog.pg_database WHERE left(datname, length($1)) = $1",
                &[&Scratch::Before.prefix(job)],
            )
            .await
            .map_err(sql_error("list earlier restores' databases"))?;
        for row in leftovers {
            let name: String = row.get(0);
            tracing::warn!(database = %name, "An earlier restore left the previous database under this name; check it and drop it by hand.");
        }
        let superuser = is_superuser(&admin).await?;
        let Some(row) = admin
            .query_opt(
                "SELECT pg_catalog.pg_get_userbyid(datdba), pg_catalog.pg_encoding_to_char(encoding),
                        datcollate, datctype
                 FROM pg_catalog.pg_database WHERE datname = $1",
                &[&target],
            )
            .await
            .map_err(sql_error("look up the target database"))?
        else {
            return Ok((superuser, None, String::new()));
        };
        // The replacement keeps the target's owner (only a superuser may give a database
        // away) and its encoding and collation.
        let literal = |text: String| format!("'{}'", text.replace('\'', "''"));
        let owner: String = row.get(0);
        let like = format!(
            " TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            literal(row.get(1)),
            literal(row.get(2)),
            literal(row.get(3))
        );
        Ok((superuser, superuser.then_some(owner), like))
    })?;
    if has_data {
        let file = context.job.destination.join(format!(
            "safety-{}-{}.dump",
            file_name_part(target),
            context.id
        ));
        safety_dump(pg, target, &file, encrypted, context)?;
        summary
            .steps
            .push(format!("safety dump of {target}: {}", file.display()));
        summary.safety_copy = Some(file.display().to_string());
    }

    // The new copy, checked before it replaces anything.
    let scratch = Scratch::Restore.name(job, &context.id);
    let checked = (|| -> Result<Vec<String>, BackupError> {
        let owned_by = owner.as_deref().map_or_else(String::new, |owner| {
            format!(" OWNER {}", quote_ident(owner))
        });
        block(context, async {
            admin
                .batch_execute(&format!(
                    "CREATE DATABASE {}{owned_by}{like}",
                    quote_ident(&scratch)
                ))
                .await
                .map_err(sql_error(format!("create database {scratch}")))
        })?;
        pg_restore(pg, &scratch, path, superuser, encrypted, context)?;
        let mut steps = vec![format!(
            "pg_restore of {} into a new database ({})",
            manifest.file,
            if superuser {
                "owners and privileges restored"
            } else {
                "owned by the restoring role: it is not a superuser"
            }
        )];
        let client = block(context, connect(pg, Some(&scratch)))?;
        let analyzed = block(context, analyze(&client, superuser))?;
        steps.push(analyzed);
        let tables: Vec<String> = manifest.tables.keys().cloned().collect();
        let counts = block(context, count_rows(&client, &tables))?;
        compare_counts(&manifest.tables, &counts).map_err(|err| match err {
            BackupError::DrillFailed(message) => {
                BackupError::NotVerified(format!("restored row counts differ: {message}"))
            }
            other => other,
        })?;
        steps.push(format!(
            "row counts match the manifest: {}",
            describe_counts(&counts)
        ));
        Ok(steps)
    })();
    // Cleaning up and swapping must finish even if the restore was cancelled.
    let never = tokio_util::sync::CancellationToken::new();
    let finish = context.under(&never);
    let mut steps = match checked {
        Ok(steps) => steps,
        Err(err) => {
            if let Err(drop_err) = block(&finish, drop_database(&admin, &scratch)) {
                tracing::error!(database = %scratch, error = %ErrorChain(&drop_err), "Cannot drop the unfinished restore; drop it by hand.");
            }
            return Err(BackupError::RestoreFailed {
                cause: Box::new(err),
                rolled_back: true,
                safety_copy: summary.safety_copy,
            });
        }
    };
    summary.steps.append(&mut steps);

    let before = Scratch::Before.name(job, &context.id);
    // A fresh session for the swap: the first one sat idle through the whole restore.
    let admin = match block(&finish, connect(pg, Some(admin_db))) {
        Ok(admin) => admin,
        Err(err) => {
            // Nothing has been renamed; the next restore drops the unswapped copy.
            return Err(BackupError::RestoreFailed {
                cause: Box::new(err),
                rolled_back: true,
                safety_copy: summary.safety_copy,
            });
        }
    };
    let swapped = block(&finish, async {
        if exists {
            rename_database(&admin, target, &before).await?;
        }
        rename_database(&admin, &scratch, target).await?;
        Ok(())
    });
    if let Err(err) = swapped {
        // Whatever the error said, the catalog says where each database is now.
        let (rolled_back, where_kept) = block(&finish, async {
            let present = |name: String| {
                let admin = &admin;
                async move {
                    admin
                        .query_opt(
                            "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                            &[&name],
                        )
                        .await
                        .map(|row| row.is_some())
                        .map_err(sql_error("look up the databases after the swap"))
                }
            };
            if exists && present(before.clone()).await? && !present(target.to_owned()).await? {
                // The old database is aside and nothing took its name: put it back.
                if let Err(back) = rename_database(&admin, &before, target).await {
                    tracing::error!(database = %before, error = %ErrorChain(&back), "Cannot rename the previous database back; do it by hand.");
                    return Ok((false, Some(format!("database {before}"))));
                }
            }
            if present(scratch.clone()).await? {
                drop_database(&admin, &scratch).await?;
            }
            Ok::<_, BackupError>((present(target.to_owned()).await? || !exists, None))
        })
        .unwrap_or((false, Some(format!("database {before} or {scratch}"))));
        return Err(BackupError::RestoreFailed {
            cause: Box::new(err),
            rolled_back,
            safety_copy: where_kept.or(summary.safety_copy),
        });
    }
    summary
        .steps
        .push(format!("the restored database took the name {target}"));
    if exists {
        match block(&finish, drop_database(&admin, &before)) {
            Ok(()) => summary.steps.push(format!("the previous {target} dropped")),
            Err(err) => {
                tracing::warn!(database = %before, error = %ErrorChain(&err), "Cannot drop the previous database; drop it by hand.");
                summary
                    .steps
                    .push(format!("the previous {target} is kept as {before}"));
            }
        }
    }
    Ok(summary)
}

/// `pg_dump` of `database` into `file` (created 0600), fsynced.
fn safety_dump(
    pg: &PostgresConfig,
    database: &str,
    file: &Path,
    encrypted: bool,
    context: &Context<'_>,
) -> Result<(), BackupError> {
    let pg_dump = libpq::tool("pg_dump")?;
    let connection = Connection::try_from_config(pg, Some(database), context.private, encrypted)?;
    super::publish::create_private(file).map_err(BackupError::io("create", file))?;
    let mut log = Staged::create(
        &context.job.destination,
        &format!("{}.safety.log", context.id),
    )
    .map_err(BackupError::io(
        "create a file in",
        &context.job.destination,
    ))?;
    let args: Vec<std::ffi::OsString> = vec![
        "--format=custom".into(),
        "--no-password".into(),
        format!("--file={}", file.display()).into(),
    ];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let child = spawn(&connection, &pg_dump, &args, &mut log)?;
    if let Err(err) = wait(child, "pg_dump (safety dump)", &log, context, &|| {}) {
        let _ = std::fs::remove_file(file);
        return Err(err);
    }
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io("sync", file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_identifiers_within_postgres_limit() {
        let name = Scratch::Drill.name("pg-main.v2", "20261201T030000Z-ab12");
        assert!(name.starts_with("warden_drill_pg_main_v2_"), "{name}");
        assert!(name.ends_with("_20261201t030000z_ab12"), "{name}");
        assert!(crate::config::is_identifier(&name));
        assert!(is_id_suffix(
            &name[Scratch::Drill.prefix("pg-main.v2").len()..]
        ));
        // Jobs whose cleaned names coincide, or where one is the other's prefix, never share
        // a prefix.
        for (a, b) in [("pg-main", "pg_main"), ("App", "app"), ("pg", "pg-2")] {
            let (pa, pb) = (Scratch::Drill.prefix(a), Scratch::Drill.prefix(b));
            assert!(!pa.starts_with(&pb) && !pb.starts_with(&pa), "{pa} {pb}");
        }
        assert!(!is_id_suffix("2_20261201t030000z_ab12"));
        for purpose in [Scratch::Drill, Scratch::Restore, Scratch::Before] {
            let longest = purpose.name(&"j".repeat(64), "20261201T030000Z-ab12");
            assert!(longest.len() <= 63, "{longest}");
            assert!(longest.starts_with(&purpose.prefix(&"j".repeat(64))));
        }
    }

    #[test]
    fn every_name_postgres_accepts_is_a_target() {
        for name in [
            "my-app",
            "app",
            "My App",
            "a\"b",
            "x=y",
            "é",
            &"n".repeat(63),
        ] {
            assert_eq!(check_database_name(name), Ok(()), "{name}");
        }
        assert!(check_database_name("").is_err());
        assert!(check_database_name(&"n".repeat(64)).is_err());
        // 32 two-byte characters: 64 bytes.
        assert!(check_database_name(&"é".repeat(32)).is_err());
        assert!(check_database_name("a\0b").is_err());
    }

    #[test]
    fn names_reach_the_tools_and_files_safely() {
        assert_eq!(conninfo_value("my-app"), "'my-app'");
        assert_eq!(conninfo_value(r"it's\x"), r"'it\'s\\x'");
        assert_eq!(file_name_part("my-app"), "my-app");
        assert_eq!(file_name_part("../a b"), ".._a_b");
    }

    #[test]
    fn required_tables_match_with_or_without_schema() {
        let entries = vec![
            ("TABLE".to_owned(), "public".to_owned(), "users".to_owned()),
            (
                "TABLE DATA".to_owned(),
                "public".to_owned(),
                "users".to_owned(),
            ),
        ];
        assert!(has_table(&entries, "users"));
        assert!(has_table(&entries, "public.users"));
        assert!(!has_table(&entries, "app.users"));
        assert!(!has_table(&entries, "runs"));
    }

    #[test]
    fn count_differences_are_named() {
        let expected = BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 1)]);
        let found = BTreeMap::from([("a".to_owned(), 3)]);
        let err = compare_counts(&expected, &found).unwrap_err().to_string();
        assert!(err.contains("b: manifest 1, restored missing"), "{err}");
        assert!(compare_counts(&expected, &expected).is_ok());
    }
}
