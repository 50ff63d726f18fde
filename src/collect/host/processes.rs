//! `processes` (off by default, as in node_exporter): process and thread counts as node_exporter
//! 1.5's `processes_linux.go` reports them. `node_processes_pids` counts the numeric entries of
//! procfs whose `stat` could be read, `node_processes_state{state}` counts them by the state
//! letter of their `stat`, `node_processes_threads` sums their `num_threads`, and
//! `node_processes_threads_state{thread_state}` counts `<pid>/task/<tid>/stat` by state (the
//! main thread counted with its process's state). The limits come from
//! `sys/kernel/{threads-max,pid_max}`.
//!
//! A process or thread that exits between the listing and the read (its file gone, or `ESRCH`)
//! is skipped, as upstream; any other error fails the collection.

use std::collections::BTreeMap;

use super::procfiles::ProcFiles;
use super::procfs::parse_u64;
use crate::collect::{Error, Family};

/// `ESRCH`: reading a `stat` of a process being reaped.
const ESRCH: i32 = 3;

/// Counts over every process.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    pids: u64,
    threads: u64,
    states: BTreeMap<String, u64>,
    thread_states: BTreeMap<String, u64>,
}

/// Reads the limits and every process's `stat` and its tasks'.
pub(super) fn collect(files: &ProcFiles) -> Result<Vec<Family>, Error> {
    let counts = count(files)?;
    let max_threads = files.required("sys/kernel/threads-max", limit)?;
    let max_pids = files.required("sys/kernel/pid_max", limit)?;

    let mut families = vec![
        Family::single_gauge(
            "node_processes_threads",
            "Allocated threads in system",
            counts.threads as f64,
        ),
        Family::single_gauge(
            "node_processes_max_threads",
            "Limit of threads in the system",
            max_threads as f64,
        ),
    ];
    let mut states = Family::gauge("node_processes_state", "Number of processes in each state.");
    for (state, count) in &counts.states {
        states.push([("state", state.clone())], *count as f64);
    }
    let mut thread_states = Family::gauge(
        "node_processes_threads_state",
        "Number of threads in each state.",
    );
    for (state, count) in &counts.thread_states {
        thread_states.push([("thread_state", state.clone())], *count as f64);
    }
    families.extend([
        states,
        thread_states,
        Family::single_gauge("node_processes_pids", "Number of PIDs", counts.pids as f64),
        Family::single_gauge(
            "node_processes_max_processes",
            "Number of max PIDs limit",
            max_pids as f64,
        ),
    ]);
    Ok(families)
}

fn limit(text: &str) -> Result<u64, String> {
    parse_u64(text.trim(), "limit")
}

/// Whether `err` means the process or thread exited while being read.
fn vanished(err: &Error) -> bool {
    matches!(err, Error::Read { source, .. }
        if source.kind() == std::io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH))
}

/// Ok(None) for a vanished process or thread, as upstream skips them.
fn skip_vanished<T>(result: Result<T, Error>) -> Result<Option<T>, Error> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(err) if vanished(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

fn count(files: &ProcFiles) -> Result<Counts, Error> {
    let mut counts = Counts::default();
    let names = files.entries("")?.unwrap_or_default();
    for pid in names.iter().filter(|name| is_number(name)) {
        let Some(stat) = skip_vanished(files.required(&format!("{pid}/stat"), parse_stat))? else {
            continue;
        };
        counts.pids += 1;
        counts.threads += stat.threads;
        *counts.states.entry(stat.state.clone()).or_default() += 1;
        let Some(tasks) = skip_vanished(files.entries(&format!("{pid}/task")))?.flatten() else {
            continue;
        };
        for tid in tasks.iter().filter(|name| is_number(name)) {
            let state = if tid == pid {
                stat.state.clone()
            } else {
                match skip_vanished(files.required(&format!("{pid}/task/{tid}/stat"), parse_stat))?
                {
                    Some(thread) => thread.state,
                    None => continue,
                }
            };
            *counts.thread_states.entry(state).or_default() += 1;
        }
    }
    Ok(counts)
}

fn is_number(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

/// The fields read from a `stat` line.
#[derive(Debug, PartialEq)]
struct Stat {
    state: String,
    threads: u64,
}

/// `pid (comm) state ppid ... num_threads ...`: the command may hold spaces and parentheses,
/// so the fields are counted from its last `)`. `num_threads` is the 20th field.
fn parse_stat(text: &str) -> Result<Stat, String> {
    let (_, rest) = text
        .rsplit_once(')')
        .ok_or_else(|| format!("no command in stat {text:?}"))?;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // Fields after the command start at the 3rd (state); num_threads is the 20th.
    let (Some(state), Some(threads)) = (fields.first(), fields.get(17)) else {
        return Err(format!(
            "{} fields after the command, expected at least 18",
            fields.len()
        ));
    };
    Ok(Stat {
        state: (*state).to_owned(),
        threads: parse_u64(threads, "num_threads")?,
    })
}

/// The fuzz driver's entry (`host::fuzzing`): the text as a /proc/PID/stat file.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    parse_stat(text).map(|_| Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::procfiles::tests::{files_in, gauge_value};
    use crate::collect::host::tests::fixture_proc;

    fn labelled(families: &[Family], name: &str) -> Vec<(String, f64)> {
        let family = families.iter().find(|f| f.name == name).expect(name);
        family
            .samples
            .iter()
            .map(|s| (s.labels[0].1.to_string(), s.value))
            .collect()
    }

    #[test]
    fn counts_the_captured_processes() {
        // init (17 threads), kthreadd, a kworker (idle) and node_exporter (5 threads).
        let families = collect(&files_in(&fixture_proc())).expect("parses");
        let names: Vec<&str> = families.iter().map(|f| f.name.as_ref()).collect();
        assert_eq!(
            names,
            [
                "node_processes_threads",
                "node_processes_max_threads",
                "node_processes_state",
                "node_processes_threads_state",
                "node_processes_pids",
                "node_processes_max_processes",
            ]
        );
        assert_eq!(gauge_value(&families, "node_processes_pids"), Some(4.0));
        assert_eq!(gauge_value(&families, "node_processes_threads"), Some(24.0));
        assert_eq!(
            gauge_value(&families, "node_processes_max_threads"),
            Some(192724.0)
        );
        assert_eq!(
            gauge_value(&families, "node_processes_max_processes"),
            Some(32768.0)
        );
        assert_eq!(
            labelled(&families, "node_processes_state"),
            [("I".to_owned(), 1.0), ("S".to_owned(), 3.0)]
        );
        assert_eq!(
            labelled(&families, "node_processes_threads_state"),
            [("I".to_owned(), 1.0), ("S".to_owned(), 23.0)]
        );
    }

    fn stat_line(pid: u32, comm: &str, state: char, threads: u32) -> String {
        format!(
            "{pid} ({comm}) {state} 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 {threads} 0 100 0 0\n"
        )
    }

    #[test]
    fn thread_states_come_from_each_task_and_odd_commands_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let write = |path: &str, text: &str| {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        };
        write("sys/kernel/threads-max", "100\n");
        write("sys/kernel/pid_max", "4194304\n");
        // A process whose command has spaces and parentheses, with three threads: the main
        // thread counted with the process's state (R), one sleeping, one in disk sleep.
        write("7/stat", &stat_line(7, "a) (b c", 'R', 3));
        write("7/task/7/stat", &stat_line(7, "a) (b c", 'S', 3));
        write("7/task/8/stat", &stat_line(8, "worker", 'S', 3));
        write("7/task/9/stat", &stat_line(9, "worker", 'D', 3));
        // A zombie without a task directory, a directory that is no pid, and a pid whose stat
        // is gone (it exited between the listing and the read).
        write("12/stat", &stat_line(12, "dead", 'Z', 1));
        write("self-ish/stat", &stat_line(1, "x", 'R', 1));
        std::fs::create_dir(root.join("13")).expect("mkdir");
        // A thread that exited after the task listing.
        std::fs::create_dir_all(root.join("7/task/10")).expect("mkdir");

        let families = collect(&files_in(root)).expect("parses");
        assert_eq!(gauge_value(&families, "node_processes_pids"), Some(2.0));
        assert_eq!(gauge_value(&families, "node_processes_threads"), Some(4.0));
        assert_eq!(
            labelled(&families, "node_processes_state"),
            [("R".to_owned(), 1.0), ("Z".to_owned(), 1.0)]
        );
        assert_eq!(
            labelled(&families, "node_processes_threads_state"),
            [
                ("D".to_owned(), 1.0),
                ("R".to_owned(), 1.0),
                ("S".to_owned(), 1.0)
            ]
        );
    }

    #[test]
    fn bad_stats_and_missing_limits_fail() {
        for text in [
            "",
            "7 (x S 1",
            "7 (x) S 1 1 1",
            "7 (x) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 many 0",
        ] {
            assert!(parse_stat(text).is_err(), "{text:?}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("7")).expect("mkdir");
        std::fs::write(dir.path().join("7/stat"), "7 (x) S 1\n").expect("write");
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Parse { .. })
        ));
        std::fs::remove_dir_all(dir.path().join("7")).expect("rm");
        // No processes, but no limits either.
        assert!(matches!(
            collect(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        std::fs::create_dir_all(dir.path().join("sys/kernel")).expect("mkdir");
        std::fs::write(dir.path().join("sys/kernel/threads-max"), "lots\n").expect("write");
        std::fs::write(dir.path().join("sys/kernel/pid_max"), "10\n").expect("write");
        assert!(collect(&files_in(dir.path())).is_err());
    }

    #[test]
    fn reads_this_machine() {
        let families = collect(&files_in(std::path::Path::new("/proc"))).expect("reads /proc");
        let pids = gauge_value(&families, "node_processes_pids").expect("pids");
        let threads = gauge_value(&families, "node_processes_threads").expect("threads");
        assert!(pids >= 1.0 && threads >= pids, "{pids} {threads}");
    }
}
