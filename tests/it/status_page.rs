//! The status page in a real browser: Debian's `chromium --headless` renders `/` of a running
//! warden to a PNG and dumps its DOM (issue 9).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Warden, require_tool, wait_for};

/// How long one headless Chromium run may take before the test gives up on it.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(90);

/// Runs `chromium --headless ARGS URL` with a throwaway profile, bounded by [`CHROMIUM_LIMIT`];
/// returns its standard output.
fn chromium(profile: &Path, args: &[String], url: &str) -> String {
    let binary = require_tool("chromium", "chromium");
    let out = profile.join("stdout.txt");
    let mut child = Command::new(binary)
        .args([
            "--headless",
            // Root in a container has no user namespace for the sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(CHROMIUM_LIMIT, "chromium --headless to finish", || {
            child.try_wait().unwrap()
        })
    }));
    let status = match status {
        Ok(status) => status,
        Err(panic) => {
            let _ = child.kill();
            let _ = child.wait();
            std::panic::resume_unwind(panic);
        }
    };
    assert!(status.success(), "chromium {args:?} exited with {status}");
    std::fs::read_to_string(out).unwrap()
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
}

#[test]
fn status_page_renders_in_a_real_browser() {
    require_tool("chromium", "chromium");
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE users(id INTEGER PRIMARY KEY); INSERT INTO users VALUES (1);")
        .unwrap();
    drop(conn);
    std::fs::create_dir(data.path().join("src")).unwrap();
    std::fs::write(data.path().join("src/notes.txt"), b"notes").unwrap();
    let d = data.path().display();
    let warden = Warden::start(&format!(
        "host: {{enabled: false}}\n\
         sqlite:\n  - {{name: app, path: {d}/app.db, integrity_interval: 1s}}\n  - {{name: gone, path: {d}/gone.db}}\n\
         backups:\n  - {{name: notes, kind: files, paths: [{d}/src], destination: {d}/out, schedule: '0 3 * * *'}}\n  - {{name: broken, kind: files, paths: [{d}/nowhere], destination: {d}/out2, schedule: '0 * * * *'}}\n"
    ));
    // The first integrity check runs a second after start-up; the scheduler runs the jobs
    // without a backup at once, and `broken`'s run fails.
    wait_for(
        Duration::from_secs(20),
        "the first integrity check and run",
        || {
            let body = warden.get("/status", &[]).body;
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            (json["sqlite"][0]["state"] == "ok" && json["backups"][1]["state"] == "failed")
                .then_some(())
        },
    );

    let url = format!("http://{}/", warden.addr);
    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("status.png");
    chromium(
        shots.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,1100".to_owned(),
        ],
        &url,
    );
    let bytes = std::fs::read(&png).unwrap_or_else(|err| panic!("no screenshot: {err}"));
    assert!(
        bytes.len() > 20_000,
        "a near-empty screenshot: {} bytes",
        bytes.len()
    );
    assert_eq!(png_size(&bytes), (1280, 1100));
    if let Ok(keep) = std::env::var("WARDEN_KEEP_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    let dom = chromium(shots.path(), &["--dump-dom".to_owned()], &url);
    for needle in [
        "warden status",
        "2 need attention",
        "gone</td><td class=\"state bad\">missing",
        "app</td><td class=\"state good\">ok",
        "notes</td><td class=\"state good\">ok",
        "broken</td><td class=\"state bad\">failed",
        " UTC",
        " ago)",
    ] {
        assert!(dom.contains(needle), "missing {needle} in the DOM:\n{dom}");
    }
}
