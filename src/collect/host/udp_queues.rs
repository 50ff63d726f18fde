//! `udp_queues`: bytes queued in UDP sockets' send and receive buffers, summed over the
//! sockets of /proc/net/udp and /proc/net/udp6, as node_exporter 1.5's `udp_queues_linux.go`:
//! `node_udp_queues{ip="v4"|"v6",queue="tx"|"rx"}`.
//!
//! With `host.procfs` at the real /proc the sums come from two `NETLINK_SOCK_DIAG` dumps
//! ([`sockdiag`]: the same values as the files, at half their cost) over a socket kept between
//! scrapes. A dump that fails closes the socket and that scrape reads the files; a socket that
//! cannot be opened (a seccomp filter, a kernel without sock_diag) or a kernel that refuses
//! the dump (no `udp_diag`: `ENOENT`) leaves the files for good, with a debug log naming the
//! error. Any other procfs root (fixtures, another host's tree) is read as files.
//!
//! A kernel without IPv6 has no udp6: skipped (an AF_INET6 dump there answers with no
//! sockets, so the dump is asked for only once net/udp6 has been seen). Neither file is a read
//! error (node_exporter reports "no data", its collector success 0).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rustix::net::AddressFamily;

use super::procfiles::ProcFiles;
use super::procfs::read_error;
use super::sockdiag::{self, IPPROTO_UDP, Queues, Socket};
use crate::collect::{Error, ErrorChain, Family};

/// Columns node_exporter requires in a socket line (up to the inode).
const MIN_COLUMNS: usize = 10;

/// The `host.procfs` whose network namespace is this process's: only then do the dumps
/// describe the sockets its files list.
const LIVE_PROCFS: &str = "/proc";

/// What the collector keeps between scrapes: the sock_diag socket, and whether IPv6 exists.
#[derive(Debug, Default)]
pub(in crate::collect::host) struct Held {
    netlink: Mutex<Netlink>,
    /// Set once net/udp6 has been seen: IPv6, once there, stays (its module cannot be
    /// unloaded).
    ipv6: AtomicBool,
}

/// The state of the sock_diag source.
#[derive(Debug, Default)]
enum Netlink {
    /// No socket now: the next scrape opens one.
    #[default]
    Closed,
    /// A socket just opened or whose last dump succeeded.
    Open(Socket),
    /// The socket cannot be opened or the kernel refuses the dump: files only.
    Unusable,
}

impl Held {
    /// Whether net/udp6 exists under the root of `files` (looked up until it does).
    fn ipv6(&self, files: &ProcFiles) -> bool {
        if self.ipv6.load(Ordering::Relaxed) {
            return true;
        }
        let exists = files.root().join("net/udp6").exists();
        if exists {
            self.ipv6.store(true, Ordering::Relaxed);
        }
        exists
    }
}

/// The queues of both families, from sock_diag when it serves, else from the files.
pub(super) fn collect(files: &ProcFiles, held: &Held) -> Result<Vec<Family>, Error> {
    let (v4, v6) = match from_netlink(files, held) {
        Some(queues) => queues,
        None => from_files(files)?,
    };
    Ok(families(v4, v6))
}

/// `node_udp_queues` with the families present.
fn families(v4: Option<Queues>, v6: Option<Queues>) -> Vec<Family> {
    let mut family = Family::gauge(
        "node_udp_queues",
        "Number of allocated memory in the kernel for UDP datagrams in bytes.",
    );
    for (ip, queues) in [("v4", v4), ("v6", v6)] {
        if let Some(queues) = queues {
            family.push(
                [("ip", ip.to_owned()), ("queue", "tx".to_owned())],
                queues.tx as f64,
            );
            family.push(
                [("ip", ip.to_owned()), ("queue", "rx".to_owned())],
                queues.rx as f64,
            );
        }
    }
    vec![family]
}

type Both = (Option<Queues>, Option<Queues>);

/// Both files' sums; either may be absent, not both.
fn from_files(files: &ProcFiles) -> Result<Both, Error> {
    let v4 = files.optional("net/udp", parse)?;
    let v6 = files.optional("net/udp6", parse)?;
    if v4.is_none() && v6.is_none() {
        // Both absent: report the IPv4 file's read error.
        files.required("net/udp", parse)?;
    }
    Ok((v4, v6))
}

/// The sums from sock_diag dumps (IPv6's only where net/udp6 exists); `None` when the files
/// are to be read instead (another procfs root, or sock_diag failed or is unusable).
fn from_netlink(files: &ProcFiles, held: &Held) -> Option<Both> {
    if files.root() != Path::new(LIVE_PROCFS) {
        return None;
    }
    let mut netlink = held.netlink.lock().unwrap_or_else(PoisonError::into_inner);
    if matches!(*netlink, Netlink::Closed) {
        *netlink = match Socket::open() {
            Ok(socket) => Netlink::Open(socket),
            Err(source) => {
                let err = read_error(Path::new("a NETLINK_SOCK_DIAG socket"), source);
                tracing::debug!(error = %ErrorChain(&err), "udp_queues: no sock_diag, reading /proc/net/udp and udp6");
                Netlink::Unusable
            }
        };
    }
    let Netlink::Open(socket) = &mut *netlink else {
        return None;
    };
    let mut dump = |family, name: &str| {
        socket.queues(family, IPPROTO_UDP).map_err(|source| {
            let refused = refused(&source);
            let what = format!("sock_diag dump of UDP sockets over {name}");
            (read_error(Path::new(&what), source), refused)
        })
    };
    let dumped = dump(AddressFamily::INET, "AF_INET").and_then(|v4| {
        let v6 = if held.ipv6(files) {
            Some(dump(AddressFamily::INET6, "AF_INET6")?)
        } else {
            None
        };
        Ok((Some(v4), v6))
    });
    match dumped {
        Ok(queues) => Some(queues),
        Err((err, refused)) => {
            tracing::debug!(error = %ErrorChain(&err), refused, "udp_queues: sock_diag failed, reading /proc/net/udp and udp6");
            *netlink = if refused {
                Netlink::Unusable
            } else {
                Netlink::Closed
            };
            None
        }
    }
}

/// Whether a dump's error means this kernel or process will never serve it: no handler for
/// the family or protocol, or not allowed.
fn refused(err: &std::io::Error) -> bool {
    use rustix::io::Errno;
    [
        Errno::NOENT,
        Errno::OPNOTSUPP,
        Errno::PROTONOSUPPORT,
        Errno::AFNOSUPPORT,
        Errno::PERM,
        Errno::ACCESS,
        Errno::INVAL,
    ]
    .iter()
    .any(|errno| err.raw_os_error() == Some(errno.raw_os_error()))
}

/// Parses a header line, then `sl: local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout
/// inode ...` per socket (queues in hexadecimal).
fn parse(text: &str) -> Result<Queues, String> {
    let mut sums = Queues::default();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < MIN_COLUMNS {
            return Err(format!(
                "{} columns, expected at least {MIN_COLUMNS}, in line {line:?}",
                fields.len()
            ));
        }
        let (tx, rx) = fields[4]
            .split_once(':')
            .ok_or_else(|| format!("no tx_queue:rx_queue in line {line:?}"))?;
        sums.tx = sums.tx.wrapping_add(hex(tx, "tx_queue")?);
        sums.rx = sums.rx.wrapping_add(hex(rx, "rx_queue")?);
    }
    Ok(sums)
}

fn hex(field: &str, what: &str) -> Result<u64, String> {
    u64::from_str_radix(field, 16).map_err(|_| format!("{what}: {field:?} is not hexadecimal"))
}

/// The fuzz driver's entry (`host::fuzzing`): one file's text through the parser.
pub(super) fn fuzz(text: &str) -> Result<Vec<Family>, String> {
    parse(text).map(|_| Vec::new())
}

/// The fuzz driver's entry for a sock_diag dump reply: its sums as the IPv4 samples.
pub(super) fn fuzz_sockdiag(bytes: &[u8]) -> Result<Vec<Family>, String> {
    sockdiag::fuzz(bytes).map(|v4| families(Some(v4), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::family::Kind;
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_proc;

    /// The collector with nothing held: a fixture root is read as files.
    fn collect_files(files: &ProcFiles) -> Result<Vec<Family>, Error> {
        let held = Held::default();
        let families = collect(files, &held);
        assert!(matches!(
            *held.netlink.lock().expect("lock"),
            Netlink::Closed
        ));
        families
    }

    /// On this machine the dumps sum what /proc/net/udp and udp6 list. Per family, one socket
    /// on loopback holds unread datagrams (its receive queue) and another a corked one
    /// (`MSG_MORE`: held in its send queue); the dumps run between two readings of the files,
    /// again until those two agree (other sockets of the host may change meanwhile).
    #[test]
    fn the_dumps_sum_what_proc_lists_on_this_machine() {
        let mut sockets = Vec::new();
        for address in ["127.0.0.1:0", "[::1]:0"] {
            let unread = std::net::UdpSocket::bind(address).expect("bind");
            let to = unread.local_addr().expect("addr");
            for _ in 0..3 {
                unread.send_to(&[7; 100], to).expect("send");
            }
            let corked = std::net::UdpSocket::bind(address).expect("bind");
            let to = rustix::net::SocketAddrAny::from(to);
            rustix::net::sendto(&corked, &[8; 100], rustix::net::SendFlags::MORE, &to)
                .expect("send corked");
            sockets.extend([unread, corked]);
        }
        let files = files_in(Path::new(LIVE_PROCFS));
        let held = Held::default();
        for _ in 0..20 {
            let before = from_files(&files).expect("reads the files");
            let dumped = from_netlink(&files, &held).expect("sock_diag serves");
            let after = from_files(&files).expect("reads the files");
            if before != after {
                continue;
            }
            assert_eq!(dumped, before);
            let (Some(v4), Some(v6)) = dumped else {
                panic!("both families: {dumped:?}");
            };
            for queues in [v4, v6] {
                assert!(queues.rx >= 300 && queues.tx >= 100, "{queues:?}");
            }
            return;
        }
        panic!("/proc/net/udp{{,6}} changed between every two readings");
    }

    /// The collector keeps its socket on the live /proc and exports the four samples.
    #[test]
    fn the_live_collector_keeps_its_socket() {
        let files = files_in(Path::new(LIVE_PROCFS));
        let held = Held::default();
        for _ in 0..2 {
            let families = collect(&files, &held).expect("collects");
            assert_eq!(families[0].samples.len(), 4);
            assert!(matches!(
                *held.netlink.lock().expect("lock"),
                Netlink::Open(_)
            ));
        }
    }

    /// IPv6 is looked up until net/udp6 is seen, then taken as there.
    #[test]
    fn ipv6_is_latched_once_udp6_is_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = files_in(dir.path());
        let held = Held::default();
        assert!(!held.ipv6(&files));
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        std::fs::write(dir.path().join("net/udp6"), "header\n").expect("write");
        assert!(held.ipv6(&files));
        std::fs::remove_file(dir.path().join("net/udp6")).expect("rm");
        assert!(held.ipv6(&files));
    }

    #[test]
    fn refusals_are_told_from_passing_failures() {
        assert!(refused(&std::io::Error::from_raw_os_error(2))); // ENOENT
        assert!(refused(&std::io::Error::from_raw_os_error(1))); // EPERM
        assert!(!refused(&std::io::Error::from_raw_os_error(11))); // EAGAIN: a timeout
        assert!(!refused(&std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "truncated"
        )));
    }

    #[test]
    fn sums_the_captured_queues() {
        let families = collect_files(&files_in(&fixture_proc())).expect("reads");
        assert_eq!(families.len(), 1);
        let family = &families[0];
        assert_eq!(family.kind, Kind::Gauge);
        assert_eq!(family.samples.len(), 4);
        // Three 100-byte datagrams queued on one IPv4 socket (0x9C0 with overhead), one
        // 50-byte datagram on an IPv6 one (0x340).
        assert_eq!(family.value(&[("ip", "v4"), ("queue", "rx")]), Some(2496.0));
        assert_eq!(family.value(&[("ip", "v4"), ("queue", "tx")]), Some(0.0));
        assert_eq!(family.value(&[("ip", "v6"), ("queue", "rx")]), Some(832.0));
        assert_eq!(family.value(&[("ip", "v6"), ("queue", "tx")]), Some(0.0));
    }

    #[test]
    fn sums_over_sockets() {
        let text = "header\n\
                    1: 0100007F:0035 00000000:0000 07 00000010:00000001 00:00000000 00000000 0 0 1 2 0 0\n\
                    2: 0100007F:0036 00000000:0000 07 00000020:000000FF 00:00000000 00000000 0 0 2 2 0 0\n";
        assert_eq!(
            parse(text),
            Ok(Queues {
                tx: 0x30,
                rx: 0x100
            })
        );
        assert_eq!(parse("header only\n"), Ok(Queues::default()));
        assert_eq!(parse(""), Ok(Queues::default()));
    }

    #[test]
    fn without_ipv6_only_v4_and_without_both_a_read_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            collect_files(&files_in(dir.path())),
            Err(Error::Read { .. })
        ));
        std::fs::create_dir(dir.path().join("net")).expect("mkdir");
        std::fs::write(dir.path().join("net/udp"), "header\n").expect("write");
        let families = collect_files(&files_in(dir.path())).expect("reads");
        assert_eq!(families[0].samples.len(), 2);
        assert_eq!(families[0].value(&[("ip", "v6")]), None);
    }

    #[test]
    fn malformed_lines_fail() {
        let line = |queues: &str| {
            format!("h\n1: 0100007F:0035 00000000:0000 07 {queues} 00:00000000 00000000 0 0 1\n")
        };
        assert!(parse(&line("00000000:00000000")).is_ok());
        assert!(parse(&line("00000000")).is_err());
        assert!(parse(&line("0000000x:00000000")).is_err());
        assert!(parse(&line("00000000:")).is_err());
        assert!(parse("h\n1: 0100007F:0035 00000000:0000 07 0:0\n").is_err());
    }
}
