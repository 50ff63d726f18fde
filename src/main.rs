//! The `warden` command line: parse arguments, set up logging, load and validate the
//! configuration, and hand over to the library.
//!
//! Exit codes:
//! - 0: success;
//! - 1: warden failed while running (cannot bind, state directory in use, …);
//! - 2: the command line is wrong;
//! - 7: `warden actions run`: the job ran and did not succeed;
//! - 3, 4, 5: `warden backup`: the job is busy, a backup failed verification, a restore
//!   target was refused (see `warden::backup::command`);
//! - 64: the configuration is invalid (every problem is listed on standard error).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use warden::act::command::{ActionsCommand, AlertsCommand};
use warden::backup::command::{BackupCommand, Output};
use warden::config::{self, Config, LogFormat, ProcessEnv};

/// Exit code for an invalid configuration (EX_USAGE from sysexits.h).
const EXIT_INVALID_CONFIG: u8 = 64;
/// Exit code for a failure while running.
const EXIT_FAILURE: u8 = 1;
/// How long exiting waits for blocking threads after the work is done: only threads stuck in a
/// hung read are still running then, and they are abandoned.
const RUNTIME_SHUTDOWN_LIMIT: Duration = Duration::from_millis(200);

/// Host and database exporter for Prometheus that also acts on Alertmanager alerts.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
    /// Log format; overrides log.format in the config.
    #[arg(long, global = true, value_parser = ["text", "json"], env = "WARDEN_LOG_FORMAT")]
    log_format: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve /metrics and the other endpoints until SIGTERM or SIGINT.
    Serve {
        /// The configuration file; without one, ./warden.yml or /etc/warden/warden.yml when
        /// present, else the built-in default.
        #[arg(long, short, env = "WARDEN_CONFIG")]
        config: Option<PathBuf>,
        /// The address to listen on; overrides `listen` in the config.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// An exporter-toolkit web-config file (TLS, basic auth, headers, rate limit);
        /// overrides `web.config_file` in the config.
        #[arg(long = "web.config.file", value_name = "FILE")]
        web_config_file: Option<PathBuf>,
    },
    /// Validate a configuration file and list every problem; with --connect, also contact
    /// the databases, tools and backup destinations it names.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
        /// After validating, connect to each source, run each query and run queue once, and
        /// check pg_dump, pg_restore and each backup destination. Without it nothing is
        /// contacted.
        #[arg(long)]
        connect: bool,
    },
    /// Collect once and print the exposition (text format 0.0.4) to standard output.
    Metrics {
        /// The configuration file; without one, ./warden.yml or /etc/warden/warden.yml when
        /// present, else the built-in default.
        #[arg(long, short, env = "WARDEN_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run, list, verify, drill, restore and prune the configured backups.
    Backup {
        /// The configuration file; without one, ./warden.yml or /etc/warden/warden.yml when
        /// present, else the built-in default.
        #[arg(long, short, env = "WARDEN_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: BackupCommand,
    },
    /// List and run the configured actions, and read the job history and audit log.
    Actions {
        /// The configuration file; without one, ./warden.yml or /etc/warden/warden.yml when
        /// present, else the built-in default.
        #[arg(long, short, env = "WARDEN_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: ActionsCommand,
    },
    /// Work with Alertmanager webhook payloads.
    Alerts {
        /// The configuration file; without one, ./warden.yml or /etc/warden/warden.yml when
        /// present, else the built-in default.
        #[arg(long, short, env = "WARDEN_CONFIG", global = true)]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, value_enum, default_value = "table", global = true)]
        output: Output,
        #[command(subcommand)]
        command: AlertsCommand,
    },
}

fn main() -> ExitCode {
    // Before any thread starts: one malloc arena for all of them (see the crate's docs).
    mallopt::limit_arenas(1);
    let args = Args::parse();
    let config_path = match &args.command {
        Command::Serve { config, .. }
        | Command::Metrics { config }
        | Command::Backup { config, .. }
        | Command::Actions { config, .. }
        | Command::Alerts { config, .. } => config.clone(),
        Command::CheckConfig { file, .. } => Some(file.clone()),
    };
    let web_config_file = match &args.command {
        Command::Serve {
            web_config_file, ..
        } => web_config_file.as_deref(),
        _ => None,
    };
    let loaded = load(config_path.as_deref()).and_then(|mut config| {
        if let Some(file) = web_config_file {
            config.override_web_config_file(file)?;
        }
        Ok(config)
    });
    let mut config = match loaded {
        Ok(config) => config,
        Err(err) => {
            eprintln!("warden: {}", warden::collect::ErrorChain(&err));
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    if let Some(format) = args.log_format.as_deref() {
        config.log.format = if format == "json" {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
    }
    warden::telemetry::init(config.log.format, &config.log.level);

    match args.command {
        Command::CheckConfig {
            file,
            connect: false,
        } => {
            println!("{}: configuration is valid", file.display());
            ExitCode::SUCCESS
        }
        Command::CheckConfig {
            file,
            connect: true,
        } => {
            let mut valid = false;
            let exit = run(async {
                valid = warden::check::execute(&file, &config).await;
                Ok(())
            });
            match exit {
                exit if exit != ExitCode::SUCCESS => exit,
                _ if valid => ExitCode::SUCCESS,
                _ => ExitCode::from(EXIT_INVALID_CONFIG),
            }
        }
        Command::Metrics { .. } => run(async move {
            print!("{}", warden::app::metrics_once(&config).await);
            Ok(())
        }),
        Command::Backup { .. } if config.backups.is_empty() => {
            eprintln!("warden: no backup jobs are configured in {}", config.origin);
            ExitCode::from(EXIT_FAILURE)
        }
        Command::Actions { .. } if config.act.actions.is_empty() => {
            eprintln!("warden: no actions are configured in {}", config.origin);
            ExitCode::from(EXIT_FAILURE)
        }
        Command::Actions {
            command: ActionsCommand::List,
            output,
            ..
        } => {
            warden::act::command::list(&config.act, output);
            ExitCode::SUCCESS
        }
        Command::Actions {
            command: ActionsCommand::History { .. },
            ..
        } if !config.state_dir.exists() => {
            eprintln!(
                "warden: no history yet: the state directory {} does not exist (warden has not run with {})",
                config.state_dir.display(),
                config.origin
            );
            ExitCode::SUCCESS
        }
        Command::Backup {
            command, output, ..
        } => {
            let mut code = 0;
            let exit = run(async {
                // Listing reads the destinations' manifests; it creates no state directory.
                let backups = if command.is_read_only() && !config.state_dir.exists() {
                    warden::backup::Backups::open_read_only(&config)?
                } else {
                    warden::backup::Backups::open(&config)?
                };
                let cancel = CancellationToken::new();
                tokio::spawn(warden::app::cancel_on_signal(cancel.clone()));
                code = warden::backup::command::execute(backups, command, output, cancel).await;
                Ok(())
            });
            if exit == ExitCode::SUCCESS {
                ExitCode::from(code)
            } else {
                exit
            }
        }
        Command::Alerts {
            command: AlertsCommand::Simulate { file },
            output,
            ..
        } => ExitCode::from(warden::act::command::simulate(&config, &file, output)),
        Command::Actions {
            command, output, ..
        } => {
            let mut code = 0;
            let exit = run(async {
                let backups = if config.backups.is_empty() {
                    None
                } else {
                    Some(warden::backup::Backups::open(&config)?)
                };
                let actions = warden::act::queue::Actions::open(&config, backups)?;
                let cancel = CancellationToken::new();
                tokio::spawn(warden::app::cancel_on_signal(cancel.clone()));
                let state_dir = config.state_dir.clone();
                code = warden::act::command::execute(
                    actions,
                    command,
                    output,
                    move || warden::app::try_lock_state_dir(&state_dir),
                    cancel,
                )
                .await;
                Ok(())
            });
            if exit == ExitCode::SUCCESS {
                ExitCode::from(code)
            } else {
                exit
            }
        }
        Command::Serve { listen, .. } => {
            if let Some(listen) = listen {
                config.listen = listen;
            }
            run(async move {
                let shutdown = CancellationToken::new();
                tokio::spawn(warden::app::cancel_on_signal(shutdown.clone()));
                warden::app::serve(config, shutdown).await?;
                Ok(())
            })
        }
    }
}

/// Loads `--config` (or `WARDEN_CONFIG`), else the first of `config::SEARCH_PATHS` that
/// exists, else the built-in default.
fn load(path: Option<&std::path::Path>) -> Result<Config, config::Error> {
    match config::locate(path) {
        Some(path) => Config::try_from_file(&path, &ProcessEnv),
        None => Ok(Config::default()),
    }
}

/// How long an idle blocking-pool thread is kept. tokio's 10 s would end the thread an OwnThread
/// collector (SQLite, actions) used at every scrape at intervals of 15 s and more, and start one
/// for the next: about a fifth of a scrape's CPU (BENCHMARKS.md, "Host parity"). Longer than the
/// 5 minutes past which Prometheus marks a series stale, so longer than any useful interval. An
/// idle thread sleeps until then; it does not wake.
const BLOCKING_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(600);

/// Runs the future on a multi-threaded runtime and maps its error to an exit code.
fn run(future: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("warden: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let result = runtime.block_on(future);
    // Blocking threads still stuck in a hung read (reported when shutdown began) would keep a
    // plain drop of the runtime waiting forever; the grace period has already been spent.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_LIMIT);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Logging is set up and writes to standard error: one line there, in the configured
            // format (JSON lines stay parseable), not a second copy by eprintln.
            tracing::error!(error = format!("{err:#}"), "warden stopped.");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
