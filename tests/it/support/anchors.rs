//! The anchor exporters (Debian's node_exporter and postgres_exporter) as child processes, for
//! side-by-side comparisons.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::postgres::Postgres;
use super::{free_port, http, require_tool, wait_for};

/// The example queries file of Debian's prometheus-postgres-exporter package.
pub const DEBIAN_QUERIES: &str =
    "/usr/share/doc/prometheus-postgres-exporter/examples/queries.yaml";

/// node_exporter 1.5's default `--collector.netstat.fields` plus the three fields warden exports
/// beyond it (`TcpExt_TCPOFOQueue`, `TcpExt_TCPRcvQDrop`, `Tcp_MaxConn`), so the comparison
/// covers those too.
const NETSTAT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors)|TcpExt_(TCPOFOQueue|TCPRcvQDrop)|Tcp_MaxConn)$";

/// An exporter child process answering `/metrics` on a loopback port.
pub struct Exporter {
    child: Child,
    addr: SocketAddr,
}

impl Exporter {
    pub fn start(binary: std::path::PathBuf, args: &[String], env: &[(&str, String)]) -> Exporter {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(&binary)
            .arg(format!("--web.listen-address={addr}"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let exporter = Exporter { child, addr };
        wait_for(
            Duration::from_secs(20),
            &format!("{} to answer", binary.display()),
            || {
                http::get(addr, "/metrics", &[])
                    .ok()
                    .filter(|r| r.status == 200)
            },
        );
        exporter
    }

    /// node_exporter restricted to the collectors warden implements (`host::COLLECTORS`), as
    /// node_exporter.rs runs it.
    pub fn node() -> Exporter {
        let binary = require_tool("prometheus-node-exporter", "prometheus-node-exporter");
        let mut args = vec!["--collector.disable-defaults".to_owned()];
        // Every host collector warden has, opt-in ones included (their tests turn them on in
        // warden), except systemd: it needs a system bus, so systemd.rs gives it one.
        for (collector, _) in warden::collect::host::COLLECTORS {
            if *collector != "systemd" {
                args.push(format!("--collector.{collector}"));
            }
        }
        args.push(format!("--collector.netstat.fields={NETSTAT_FIELDS}"));
        Exporter::start(binary, &args, &[])
    }

    /// postgres_exporter on database `app` of `pg`, with the queries file Debian ships (0.11
    /// has `pg_stat_user_tables_*` and `pg_postmaster_start_time_seconds` only from there).
    pub fn postgres(pg: &Postgres) -> Exporter {
        let binary = require_tool(
            "prometheus-postgres-exporter",
            "prometheus-postgres-exporter",
        );
        let dsn = format!(
            "postgresql://postgres@127.0.0.1:{}/app?sslmode=disable",
            pg.port()
        );
        let queries = std::path::Path::new(DEBIAN_QUERIES);
        let args: Vec<String> = if queries.is_file() {
            vec![format!("--extend.query-path={DEBIAN_QUERIES}")]
        } else {
            Vec::new()
        };
        Exporter::start(binary, &args, &[("DATA_SOURCE_NAME", dsn)])
    }

    /// The address it answers `/metrics` on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn scrape(&self) -> String {
        http::get(self.addr, "/metrics", &[]).unwrap().body
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
