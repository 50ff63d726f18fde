//! `warden serve` as a process: scraping, content negotiation, timeouts, auth and shutdown.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, Warden, value, warden_bin};

#[test]
fn serves_both_formats_with_identical_sample_names() {
    let warden = Warden::start("");
    let text = warden.get("/metrics", &[("accept", "text/plain")]);
    assert_eq!(text.status, 200);
    assert!(
        text.header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let openmetrics = warden.get(
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
    );
    assert!(
        openmetrics
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0")
    );
    assert!(openmetrics.body.ends_with("# EOF\n"));

    let names = |body: &str| -> std::collections::BTreeSet<String> {
        support::samples(body)
            .into_iter()
            .map(|(name, _, _)| name)
            .collect()
    };
    let (text_names, om_names) = (names(&text.body), names(&openmetrics.body));
    assert_eq!(text_names, om_names, "sample names differ between formats");
    assert!(text_names.contains("node_cpu_seconds_total"));
    assert!(text_names.contains("node_memory_MemTotal_bytes"));
}

#[test]
fn promtool_finds_no_problem_in_warden_only_families() {
    let promtool = support::require_tool("promtool", "prometheus");
    let warden = Warden::start("");
    let body = warden.get("/metrics", &[]).body;
    let problems = promtool_check(&promtool, &body);
    // node_exporter's compatible names are checked against node_exporter's own output in
    // node_exporter.rs; everything else warden emits must be clean.
    let ours: Vec<&String> = problems
        .iter()
        .filter(|p| !p.starts_with("node_"))
        .collect();
    assert!(ours.is_empty(), "promtool problems: {ours:#?}");
}

/// Runs `promtool check metrics` on an exposition and returns its problem lines.
pub fn promtool_check(promtool: &std::path::Path, body: &str) -> Vec<String> {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("error while linting"),
        "promtool could not parse the exposition: {text}"
    );
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_hanging_collector_times_out_and_the_scrape_still_answers() {
    // A procfs whose `stat` is a FIFO without a writer: opening it blocks forever, like a read
    // from a hung filesystem. Everything else links to the real /proc. Both `cpu` and `stat`
    // read that file; collectors listed before them answer even in the first scrape.
    let (fake, fifo) = hung_procfs();

    let warden = Warden::start(&format!(
        "host:\n  procfs: {}\n  timeout: 1s\n  filesystem: {{stat_timeout: 200ms}}\nweb: {{shutdown_grace: 2s}}\n",
        fake.path().display()
    ));
    let started = Instant::now();
    let response = warden.get("/metrics", &[]);
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    // A liveness bound, not a performance figure: the hung collector's timeout is 1 s.
    assert!(elapsed < Duration::from_secs(5), "scrape took {elapsed:?}");
    let body = &response.body;
    assert_eq!(
        value(body, "warden_collector_success", &[("collector", "cpu")]),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        value(
            body,
            "warden_collector_success",
            &[("collector", "meminfo")]
        ),
        Some(1.0)
    );

    assert!(value(body, "node_memory_MemTotal_bytes", &[]).unwrap() > 0.0);
    assert!(value(body, "node_cpu_seconds_total", &[]).is_none());

    let landing = warden.get("/", &[]).body;
    assert!(landing.contains("timed out"), "{landing}");

    // Later scrapes do not park one more thread each on the hung file: the stuck collector is
    // skipped at once, says why, and no longer delays the others.
    for _ in 0..3 {
        let started = Instant::now();
        let body = warden.get("/metrics", &[]).body;
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        for (collector, success) in [
            ("cpu", 0.0),
            ("stat", 0.0),
            ("vmstat", 1.0),
            ("process", 1.0),
        ] {
            assert_eq!(
                value(
                    &body,
                    "warden_collector_success",
                    &[("collector", collector)]
                ),
                Some(success),
                "{collector}"
            );
        }
    }
    let landing = warden.get("/", &[]).body;
    assert!(
        landing.contains("an earlier run of cpu has not returned"),
        "{landing}"
    );

    // Shutdown is bounded even though two threads are still blocked in the read: they are
    // abandoned and named in the log.
    let mut warden = warden;
    let status = warden.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}: {}", warden.stderr());
    assert!(
        warden
            .stderr()
            .contains("Abandoning collector threads still blocked"),
        "{}",
        warden.stderr()
    );
    release(&fifo);
}

/// A procfs directory linking to the real /proc, except that `stat` is a FIFO without a writer:
/// opening it blocks, like a read from a hung filesystem.
pub fn hung_procfs() -> (tempfile::TempDir, std::path::PathBuf) {
    let fake = tempfile::tempdir().unwrap();
    for entry in [
        "meminfo",
        "diskstats",
        "net",
        "loadavg",
        "pressure",
        "sys",
        "vmstat",
        "1",
        "mounts",
        "self",
    ] {
        std::os::unix::fs::symlink(format!("/proc/{entry}"), fake.path().join(entry)).unwrap();
    }
    let fifo = fake.path().join("stat");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    (fake, fifo)
}

/// Unblocks every reader of a FIFO from `hung_procfs`, so abandoned threads can finish.
pub fn release(fifo: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: with no reader left (warden exited), a plain open would wait forever.
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(fifo);
}

#[test]
fn bearer_token_from_file_guards_everything_but_healthz() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0ken-from-file\n").unwrap();
    let warden = Warden::start(&format!(
        "web:\n  bearer_token_file: {}\n",
        token_file.display()
    ));
    assert_eq!(warden.get("/metrics", &[]).status, 401);
    assert_eq!(
        warden
            .get("/metrics", &[("authorization", "Bearer wrong")])
            .status,
        401
    );
    assert_eq!(
        warden
            .get("/metrics", &[("authorization", "Bearer t0ken-from-file")])
            .status,
        200
    );
    assert_eq!(warden.get("/healthz", &[]).status, 200);
    assert_eq!(warden.get("/readyz", &[]).status, 401);
    assert_eq!(
        warden
            .get("/readyz", &[("authorization", "Bearer t0ken-from-file")])
            .status,
        200
    );
    assert!(
        !warden.stderr().contains("t0ken-from-file"),
        "the token reached the log"
    );
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut warden = Warden::start("");
    assert_eq!(warden.get("/metrics", &[]).status, 200);
    let status = warden.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit status {status}: {}",
        warden.stderr()
    );
    assert!(
        warden.stderr().contains("Shutting down"),
        "{}",
        warden.stderr()
    );
}

#[test]
fn a_second_warden_on_the_same_state_dir_is_refused() {
    let warden = Warden::start("");
    let config = warden.path().join("warden.yml");
    let port = support::free_port();
    let output = Command::new(warden_bin())
        .args(["serve", "--config"])
        .arg(&config)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is in use by another warden"), "{stderr}");
}

#[test]
fn landing_page_lists_collectors_after_a_scrape() {
    let warden = Warden::start("");
    let _ = warden.get("/metrics", &[]);
    let page = warden.get("/", &[]);
    assert_eq!(page.status, 200);
    for needle in [
        "/metrics",
        "/healthz",
        "/readyz",
        "<td>cpu</td><td class=\"state good\">ok</td>",
        "<td>process</td><td class=\"state good\">ok</td>",
    ] {
        assert!(page.body.contains(needle), "missing {needle}");
    }
}

/// glibc would give each of warden's threads that allocates a malloc arena of its own: a
/// 64 MiB reservation each (mostly `---p`), whose touched pages stay resident. warden caps
/// them at one, so no such reservation appears however many threads have scraped.
#[cfg(target_env = "gnu")]
#[test]
fn every_thread_allocates_from_one_malloc_arena() {
    let warden = Warden::start("");
    for _ in 0..5 {
        assert_eq!(warden.get("/metrics", &[]).status, 200);
    }
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", warden.pid())).unwrap();
    let arenas: Vec<&str> = maps
        .lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some((start, end)) = fields[0].split_once('-') else {
                return false;
            };
            let size =
                u64::from_str_radix(end, 16).unwrap() - u64::from_str_radix(start, 16).unwrap();
            // Anonymous, inaccessible and at least half an arena's reservation.
            fields.len() == 5 && fields[1] == "---p" && size >= 32 << 20
        })
        .collect();
    assert!(
        arenas.is_empty(),
        "malloc arenas beyond the main one:\n{}",
        arenas.join("\n")
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let mut warden = Warden::start("log: {format: json, level: info}\n");
    let _ = warden.get("/metrics", &[]);
    warden.terminate(Duration::from_secs(15));
    let stderr = warden.stderr();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "{stderr}");
    for line in lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        assert!(
            object["level"].is_string() && object["message"].is_string(),
            "{line}"
        );
    }
}
