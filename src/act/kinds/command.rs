//! `command:` runs a program directly, never through a shell.
//!
//! ```yaml
//! command: [/usr/bin/systemctl, restart, "app@{labels.instance}"]     # the short form
//! command:
//!   argv: [/usr/local/bin/rotate, "--host={labels.instance}"]
//!   env: {APP_TOKEN: "${APP_TOKEN}"}   # only these, plus PATH and `inherit_env`
//!   inherit_env: [LANG]
//!   working_dir: /srv/app
//!   placeholder_pattern: '[a-z0-9-]{1,40}'
//!   output_limit: 64KiB
//! ```
//!
//! Safety (pitfalls 3, 4 and 9 of the remediation notes):
//! - argv is passed as is; a placeholder fills one argument (or an env value) and can never
//!   split it or start an option. The program itself (`argv[0]`) takes no placeholder: it is an
//!   absolute path, or a name resolved against [`SAFE_PATH`] when the configuration loads.
//! - The child's environment is cleared; it sees `PATH` ([`SAFE_PATH`] unless `env` sets it),
//!   the `inherit_env` names copied from warden's environment, and `env`.
//! - It runs in a new process group with stdin from `/dev/null`. stdout and stderr are read
//!   concurrently, each keeping only its last `output_limit` bytes, and any env value whose
//!   name looks secret ([`SECRET_NAME`]) is replaced by `[redacted]` before the output is
//!   stored anywhere.
//! - On cancellation (the action's timeout, shutdown) the whole group gets SIGTERM, then
//!   SIGKILL after [`KILL_GRACE`]: a script's children do not outlive it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::{ActionError, JobContext, Kind, Outcome, ParseContext, Registration, RunFuture};
use crate::act::placeholder::{Pattern, Template};
use crate::config::Problems;

/// The registration line in [`super::KINDS`].
pub const KIND: Registration = Registration {
    key: "command",
    parse,
};

/// The `PATH` a child gets unless `env` sets one, and where bare program names are looked
/// up: the system directories only, never the current directory or a user's.
pub const SAFE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a cancelled child's process group has between SIGTERM and SIGKILL: long enough
/// for a script to clean up, short next to any action timeout.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// Output kept per stream when `output_limit` is not set: enough for an error report, small
/// enough for the audit log.
pub const DEFAULT_OUTPUT_LIMIT: usize = 64 * 1024;

/// The largest `output_limit` accepted: the audit log stores the output.
pub const MAX_OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// How long the output is still read after the program exits: a background grandchild may
/// hold the pipes open forever.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Env names whose values are redacted from the output.
pub const SECRET_NAME: &str = "(?i)(pass|secret|token|key)";

/// Secret values shorter than this are not redacted: replacing every `1` or `on` in the
/// output would hide it all, and such a value protects nothing.
const MIN_REDACTED_LEN: usize = 4;

/// What replaces a secret in the output.
const REDACTED: &str = "[redacted]";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    argv: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    inherit_env: Vec<String>,
    working_dir: Option<String>,
    placeholder_pattern: Option<String>,
    output_limit: Option<Value>,
}

/// A validated command: the `command` kind, and `then_check`'s command probe.
pub struct CommandAction {
    program: PathBuf,
    args: Vec<Template>,
    env: Vec<EnvVar>,
    inherit_env: Vec<String>,
    working_dir: Option<PathBuf>,
    pattern: Pattern,
    output_limit: usize,
}

struct EnvVar {
    name: String,
    value: Template,
    secret: bool,
}

impl std::fmt::Debug for CommandAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Env values may be secrets: only their names are shown.
        f.debug_struct("CommandAction")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &self.env.iter().map(|e| &e.name).collect::<Vec<_>>())
            .field("inherit_env", &self.inherit_env)
            .field("working_dir", &self.working_dir)
            .field("pattern", &self.pattern)
            .field("output_limit", &self.output_limit)
            .finish()
    }
}

fn parse(
    value: &Value,
    path: &str,
    context: &ParseContext<'_>,
    problems: &mut Problems,
) -> Option<Arc<dyn Kind>> {
    let action = CommandAction::parse(value, path, context, problems)?;
    Some(Arc::new(action))
}

/// The secret-name pattern, compiled once.
fn secret_name() -> &'static Regex {
    static SECRET: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| Regex::new(SECRET_NAME).expect("the secret pattern compiles"))
}

impl CommandAction {
    /// Parses the short form (a list) or the long form (a mapping) at `path`, recording every
    /// problem.
    pub fn parse(
        value: &Value,
        path: &str,
        _context: &ParseContext<'_>,
        problems: &mut Problems,
    ) -> Option<CommandAction> {
        let before = problems.0.len();
        let (raw, argv_path) = if value.is_array() {
            let argv: Vec<String> = super::deserialize(value, path, problems)?;
            (
                RawCommand {
                    argv,
                    env: BTreeMap::new(),
                    inherit_env: Vec::new(),
                    working_dir: None,
                    placeholder_pattern: None,
                    output_limit: None,
                },
                path.to_owned(),
            )
        } else {
            let raw: RawCommand = super::deserialize(value, path, problems)?;
            (raw, format!("{path}.argv"))
        };
        let pattern = Pattern::parse(
            raw.placeholder_pattern.as_deref(),
            &format!("{path}.placeholder_pattern"),
            problems,
        );
        let Some((program, args)) = raw.argv.split_first() else {
            problems.push(argv_path, "must name a program to run");
            return None;
        };
        let program_path = format!("{argv_path}[0]");
        let program = if program.contains(['{', '}']) {
            problems.push(
                &program_path,
                "the program takes no placeholder: name it in full",
            );
            None
        } else {
            match resolve(program) {
                Ok(resolved) => Some(resolved),
                Err(message) => {
                    problems.push(&program_path, message);
                    None
                }
            }
        };
        let args: Vec<Option<Template>> = args
            .iter()
            .enumerate()
            .map(|(i, arg)| Template::parse(arg, &format!("{argv_path}[{}]", i + 1), problems))
            .collect();
        let mut env = Vec::new();
        for (name, value) in &raw.env {
            let at = format!("{path}.env.{name}");
            if !is_env_name(name) {
                problems.push(
                    &at,
                    "not an environment variable name (letters, digits and `_`)",
                );
                continue;
            }
            if let Some(value) = Template::parse(value, &at, problems) {
                env.push(EnvVar {
                    name: name.clone(),
                    value,
                    secret: secret_name().is_match(name),
                });
            }
        }
        for (i, name) in raw.inherit_env.iter().enumerate() {
            if !is_env_name(name) {
                problems.push(
                    format!("{path}.inherit_env[{i}]"),
                    "not an environment variable name (letters, digits and `_`)",
                );
            }
        }
        let working_dir = raw.working_dir.and_then(|dir| {
            if Path::new(&dir).is_absolute() {
                Some(PathBuf::from(dir))
            } else {
                problems.push(format!("{path}.working_dir"), "must be an absolute path");
                None
            }
        });
        let output_limit = match &raw.output_limit {
            None => DEFAULT_OUTPUT_LIMIT,
            Some(value) => match parse_size(value) {
                Some(size) if (1..=MAX_OUTPUT_LIMIT).contains(&size) => size,
                _ => {
                    problems.push(
                        format!("{path}.output_limit"),
                        "must be a size from 1 byte to 16MiB, such as 4096, 64KiB or 1MiB",
                    );
                    DEFAULT_OUTPUT_LIMIT
                }
            },
        };
        if problems.0.len() > before {
            return None;
        }
        Some(CommandAction {
            program: program?,
            args: args.into_iter().collect::<Option<Vec<_>>>()?,
            env,
            inherit_env: raw.inherit_env,
            working_dir,
            pattern,
            output_limit,
        })
    }

    /// The program's path, for messages.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The arguments with their placeholders filled.
    fn render_args(&self, labels: &BTreeMap<String, String>) -> Result<Vec<String>, ActionError> {
        self.args
            .iter()
            .map(|arg| arg.render(labels, &self.pattern))
            .collect()
    }

    /// What a run would do: the program, its arguments and the names of its env.
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] when a placeholder's value is refused.
    pub fn describe(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        let args = self.render_args(labels)?;
        for var in &self.env {
            var.value.render(labels, &self.pattern)?;
        }
        let mut text = format!("run {} {args:?}", self.program.display());
        let names: Vec<&str> = self
            .env
            .iter()
            .map(|e| e.name.as_str())
            .chain(self.inherit_env.iter().map(String::as_str))
            .collect();
        if !names.is_empty() {
            text.push_str(&format!(" with env {}", names.join(", ")));
        }
        if let Some(dir) = &self.working_dir {
            text.push_str(&format!(" in {}", dir.display()));
        }
        Ok(text)
    }

    /// Runs the program to completion, or until `cancel` (then its process group is
    /// terminated and [`ActionError::Cancelled`] returned).
    ///
    /// # Errors
    /// [`ActionError::Placeholder`] for a refused value, [`ActionError::Failed`] when the
    /// program cannot start, [`ActionError::Exited`] when it exits other than 0.
    pub async fn execute(
        &self,
        labels: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Outcome, ActionError> {
        let args = self.render_args(labels)?;
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&args)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut secrets = Vec::new();
        if !self.env.iter().any(|e| e.name == "PATH") {
            command.env("PATH", SAFE_PATH);
        }
        for name in &self.inherit_env {
            if let Some(value) = std::env::var_os(name) {
                if secret_name().is_match(name) {
                    secrets.push(value.to_string_lossy().into_owned());
                }
                command.env(name, value);
            }
        }
        for var in &self.env {
            let value = var.value.render(labels, &self.pattern)?;
            if var.secret {
                secrets.push(value.clone());
            }
            command.env(&var.name, value);
        }
        if let Some(dir) = &self.working_dir {
            command.current_dir(dir);
        }
        let redactor = Redactor::new(secrets);
        let window = self.output_limit + redactor.longest();

        let mut child = command
            .spawn()
            .map_err(|err| ActionError::failed(format!("start {}", self.program.display()), err))?;
        let stdout = Arc::new(Mutex::new(Tail::new(window)));
        let stderr = Arc::new(Mutex::new(Tail::new(window)));
        let mut readers = tokio::task::JoinSet::new();
        if let Some(pipe) = child.stdout.take() {
            readers.spawn(read_tail(pipe, Arc::clone(&stdout)));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.spawn(read_tail(pipe, Arc::clone(&stderr)));
        }
        let status = tokio::select! {
            status = child.wait() => status,
            () = cancel.cancelled() => {
                terminate_group(&mut child).await;
                drain(readers).await;
                return Err(ActionError::Cancelled);
            }
        };
        drain(readers).await;
        let status = status.map_err(|err| {
            ActionError::failed(format!("wait for {}", self.program.display()), err)
        })?;
        let output = render_output(&lock(&stdout), &lock(&stderr), self.output_limit, &redactor);
        if status.success() {
            return Ok(Outcome {
                summary: format!("{} {args:?} exited 0", self.program.display()),
                exit_code: Some(0),
                output,
            });
        }
        let described = match std::os::unix::process::ExitStatusExt::signal(&status) {
            Some(signal) => format!("signal {signal}"),
            None => status.to_string(),
        };
        Err(ActionError::Exited {
            what: self.program.display().to_string(),
            status: described,
            code: status.code(),
            output,
        })
    }
}

impl Kind for CommandAction {
    fn key(&self) -> &'static str {
        KIND.key
    }

    fn plan(&self, labels: &BTreeMap<String, String>) -> Result<String, ActionError> {
        self.describe(labels)
    }

    fn run<'a>(&'a self, context: &'a JobContext<'a>) -> RunFuture<'a> {
        Box::pin(self.execute(context.labels, &context.cancel))
    }
}

/// SIGTERM to the child's process group, up to [`KILL_GRACE`] for the leader to exit, then
/// SIGKILL to whatever is left of the group, and the leader reaped.
async fn terminate_group(child: &mut tokio::process::Child) {
    let Some(pid) = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    // The group's id is the leader's pid (`process_group(0)`); the leader is not reaped yet,
    // so the id cannot have been reused.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
    // Children that ignored SIGTERM, or outlived a leader that obeyed it.
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = child.wait().await;
}

/// Waits up to [`OUTPUT_DRAIN`] for the readers to see end of file, then stops them.
async fn drain(mut readers: tokio::task::JoinSet<()>) {
    let all = async { while readers.join_next().await.is_some() {} };
    if tokio::time::timeout(OUTPUT_DRAIN, all).await.is_err() {
        readers.abort_all();
    }
}

/// The last bytes of one stream.
#[derive(Debug)]
struct Tail {
    kept: Vec<u8>,
    dropped: u64,
    window: usize,
}

impl Tail {
    fn new(window: usize) -> Tail {
        Tail {
            kept: Vec::new(),
            dropped: 0,
            window,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.kept.extend_from_slice(bytes);
        if self.kept.len() > self.window {
            let excess = self.kept.len() - self.window;
            self.kept.drain(..excess);
            self.dropped += excess as u64;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read_tail(mut pipe: impl AsyncRead + Unpin, tail: Arc<Mutex<Tail>>) {
    let mut buffer = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => lock(&tail).push(&buffer[..n]),
        }
    }
}

/// Replaces secret values in output.
#[derive(Debug, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret containing another is replaced whole.
    secrets: Vec<Vec<u8>>,
}

impl Redactor {
    pub(crate) fn new(secrets: Vec<String>) -> Redactor {
        let mut secrets: Vec<Vec<u8>> = secrets
            .into_iter()
            .filter(|s| s.len() >= MIN_REDACTED_LEN)
            .map(String::into_bytes)
            .collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    fn longest(&self) -> usize {
        self.secrets.first().map_or(0, Vec::len)
    }

    /// The byte ranges of `text` holding a secret, sorted and merged.
    fn ranges(&self, text: &[u8]) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        for secret in &self.secrets {
            let mut at = 0;
            while at + secret.len() <= text.len() {
                if text[at..].starts_with(secret) {
                    ranges.push((at, at + secret.len()));
                    at += secret.len();
                } else {
                    at += 1;
                }
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// The last `limit` bytes (about) of `tail`, secrets replaced. A secret cut by the
    /// window's start is dropped with it: the window keeps [`Redactor::longest`] more bytes
    /// than shown, so any fragment lies in the part that is cut.
    fn tail_text(&self, tail: &Tail, limit: usize) -> (String, u64) {
        let text = &tail.kept;
        let ranges = self.ranges(text);
        let mut cut = text.len().saturating_sub(limit);
        if let Some(&(start, _)) = ranges
            .iter()
            .find(|&&(start, end)| start < cut && end > cut)
        {
            cut = start;
        }
        let mut out = Vec::with_capacity(text.len() - cut);
        let mut at = cut;
        for &(start, end) in ranges.iter().filter(|&&(_, end)| end > cut) {
            out.extend_from_slice(&text[at..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            at = end;
        }
        out.extend_from_slice(&text[at..]);
        (
            String::from_utf8_lossy(&out).into_owned(),
            tail.dropped + cut as u64,
        )
    }
}

impl Redactor {
    /// `text` with every secret replaced.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut tail = Tail::new(text.len());
        tail.push(text.as_bytes());
        self.tail_text(&tail, text.len()).0
    }
}

/// stdout's tail, then stderr's under a `stderr:` line; each says how much was left out.
fn render_output(stdout: &Tail, stderr: &Tail, limit: usize, redactor: &Redactor) -> String {
    let mut parts = Vec::new();
    for (name, tail) in [("stdout", stdout), ("stderr", stderr)] {
        let (text, dropped) = redactor.tail_text(tail, limit);
        if text.is_empty() && dropped == 0 {
            continue;
        }
        let mut part = String::new();
        if name == "stderr" {
            part.push_str("stderr:\n");
        }
        if dropped > 0 {
            part.push_str(&format!("[{dropped} earlier bytes left out]\n"));
        }
        part.push_str(text.trim_end());
        parts.push(part);
    }
    parts.join("\n")
}

/// Resolves a program: an absolute path to an executable file, or a bare name found in
/// [`SAFE_PATH`].
fn resolve(program: &str) -> Result<PathBuf, String> {
    let path = Path::new(program);
    if path.is_absolute() {
        return if is_executable(path) {
            Ok(path.to_owned())
        } else {
            Err(format!("{program} is not an executable file"))
        };
    }
    if program.is_empty() || program.contains('/') {
        return Err(format!(
            "`{program}` must be an absolute path or a program name found in {SAFE_PATH}"
        ));
    }
    SAFE_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| format!("`{program}` is not found in {SAFE_PATH}"))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A size: a number of bytes, or a number with a unit (`B`, `KiB`, `MiB`, `KB`, `MB`).
fn parse_size(value: &Value) -> Option<usize> {
    if let Some(n) = value.as_u64() {
        return usize::try_from(n).ok();
    }
    let text = value.as_str()?.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().ok()?;
    let unit = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        _ => return None,
    };
    number.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse_at(value: Value) -> Result<CommandAction, Vec<String>> {
        super::super::testing::parse_with(|context, problems| {
            CommandAction::parse(&value, "actions[3].command", context, problems)
        })
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn short_form_resolves_bare_names_against_the_safe_path() {
        let action = parse_at(json!(["sh", "-c", "x {labels.instance}"])).unwrap();
        assert!(action.program().is_absolute());
        assert!(
            SAFE_PATH
                .split(':')
                .any(|d| action.program().starts_with(d))
        );
        let plan = action.plan(&labels(&[("instance", "db-1")])).unwrap();
        assert!(plan.ends_with(r#"["-c", "x db-1"]"#), "{plan}");
    }

    #[test]
    fn config_problems_have_key_paths() {
        let problems = parse_at(json!(["no-such-program-warden", "{labels.x"])).unwrap_err();
        assert!(
            problems[0].starts_with("actions[3].command[0]: `no-such-program-warden` is not found"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("actions[3].command[1]: unclosed"),
            "{problems:?}"
        );
        let problems = parse_at(json!(["/bin/{labels.x}"])).unwrap_err();
        assert_eq!(
            problems,
            ["actions[3].command[0]: the program takes no placeholder: name it in full"]
        );
        let problems = parse_at(json!(["bin/sh"])).unwrap_err();
        assert!(
            problems[0].contains("must be an absolute path"),
            "{problems:?}"
        );
        let problems = parse_at(json!([])).unwrap_err();
        assert_eq!(problems, ["actions[3].command: must name a program to run"]);
        let problems = parse_at(json!({
            "argv": ["/bin/true", "{env.HOME}"],
            "env": {"BAD-NAME": "x", "OK": "{labels.}"},
            "inherit_env": ["PATH", "no way"],
            "working_dir": "relative",
            "placeholder_pattern": "(",
            "output_limit": "lots",
        }))
        .unwrap_err();
        let paths: Vec<&str> = problems
            .iter()
            .map(|p| p.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "actions[3].command.placeholder_pattern",
                "actions[3].command.argv[1]",
                "actions[3].command.env.BAD-NAME",
                "actions[3].command.env.OK",
                "actions[3].command.inherit_env[1]",
                "actions[3].command.working_dir",
                "actions[3].command.output_limit",
            ]
        );
        let problems = parse_at(json!({"argv": ["/bin/true"], "shell": true})).unwrap_err();
        assert!(
            problems[0].starts_with("actions[3].command.shell: unknown key `shell`"),
            "{problems:?}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&json!(4096)), Some(4096));
        assert_eq!(parse_size(&json!("64KiB")), Some(65536));
        assert_eq!(parse_size(&json!("1 MiB")), Some(1 << 20));
        assert_eq!(parse_size(&json!("2KB")), Some(2000));
        assert_eq!(parse_size(&json!("64 lots")), None);
        assert_eq!(parse_size(&json!("KiB")), None);
    }

    #[test]
    fn redaction_replaces_secrets_and_skips_short_values() {
        let redactor = Redactor::new(vec!["hunter22".into(), "on".into(), "hunter2".into()]);
        assert_eq!(
            redactor.redact("pw=hunter22 and hunter2; on"),
            "pw=[redacted] and [redacted]; on"
        );
        assert_eq!(Redactor::default().redact("hunter2"), "hunter2");
    }

    #[test]
    fn a_secret_cut_by_the_tail_window_leaves_no_fragment() {
        let redactor = Redactor::new(vec!["SECRETVALUE".into()]);
        let limit = 8;
        let mut tail = Tail::new(limit + redactor.longest());
        tail.push(b"xxxxxxxxxxxxxxxxSECRETVALUE-tail");
        let (text, dropped) = redactor.tail_text(&tail, limit);
        assert_eq!(text, "[redacted]-tail");
        assert_eq!(dropped, 16);
        let mut tail = Tail::new(limit + redactor.longest());
        tail.push(b"xxxxxxxxxxxxxxxxSECRETVALUE-tail-is-longer");
        let (text, _) = redactor.tail_text(&tail, limit);
        assert_eq!(text, "s-longer");
        // Where the cut falls inside a secret, the whole marker is kept.
        let mut tail = Tail::new(100);
        tail.push(b"aaSECRETVALUEbb");
        let (text, _) = redactor.tail_text(&tail, 5);
        assert_eq!(text, "[redacted]bb");
    }

    #[tokio::test]
    async fn output_is_bounded_redacted_and_split_by_stream() {
        let action = parse_at(json!({
            "argv": ["/bin/sh", "-c", "echo out $API_TOKEN; echo err $API_TOKEN >&2; head -c 100000 /dev/zero | tr '\\0' x; exit 3"],
            "env": {"API_TOKEN": "s3cr3t-token"},
            "output_limit": "1KiB",
        }))
        .unwrap();
        let err = action
            .execute(&BTreeMap::new(), &CancellationToken::new())
            .await
            .unwrap_err();
        let ActionError::Exited {
            code,
            output,
            status,
            ..
        } = err
        else {
            panic!("{err:?}");
        };
        assert_eq!(code, Some(3));
        assert!(status.contains('3'), "{status}");
        assert!(!output.contains("s3cr3t"), "{output}");
        assert!(output.contains("earlier bytes left out"), "{output}");
        assert!(output.contains("stderr:\nerr [redacted]"), "{output}");
        assert!(output.len() < 3000, "{}", output.len());
    }

    #[tokio::test]
    async fn a_refused_placeholder_runs_nothing() {
        let action = parse_at(json!(["/bin/echo", "{labels.instance}"])).unwrap();
        let err = action
            .execute(
                &labels(&[("instance", "$(reboot)")]),
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, ActionError::Placeholder { .. }), "{err:?}");
        assert!(action.plan(&labels(&[("instance", "-rf")])).is_err());
    }
}
