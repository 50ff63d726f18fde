//! The kernel's socket tables through `NETLINK_SOCK_DIAG`: one `SOCK_DIAG_BY_FAMILY` dump
//! (`inet_diag_req_v2`) per address family lists a protocol's sockets as `inet_diag_msg`
//! records, without the text formatting of /proc/net/udp and the second walk of the hash table
//! that procfs makes for the read that sees the end of the file (about half the cost here).
//!
//! For UDP, `udp_diag_get_info` (net/ipv4/udp_diag.c) fills `idiag_rqueue` with
//! `udp_rqueue_get(sk)` and `idiag_wqueue` with `sk_wmem_alloc_get(sk)`, the values
//! /proc/net/udp and udp6 print as `rx_queue` and `tx_queue` (`udp4_format_sock`,
//! `__ip6_dgram_sock_seq_show`), over the same sockets: the family's sockets of this network
//! namespace, in every state. The `int`s /proc prints with `%08X` are the `__u32`s here, so sums
//! in `u64` agree bit for bit.
//!
//! The kernel registers the AF_INET6 handler whether or not it has IPv6: a kernel without it
//! answers an AF_INET6 dump with no sockets rather than an error, so whether IPv6 exists is for
//! the caller to decide.
//!
//! The request and the replies are plain byte handling, as netclass's rtnetlink code: nothing
//! beyond `nlmsghdr`, `inet_diag_req_v2` and the fixed part of `inet_diag_msg` is used.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, sendto, socket_with,
};

pub(super) use super::nlmsg::Reply;
use super::nlmsg::{NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, u32_at, walk};

// linux/netlink.h and linux/sock_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;

// linux/inet_diag.h: `inet_diag_req_v2` is family, protocol, extensions, padding, the states
// bit mask, then `inet_diag_sockid` (48 bytes, all zero: no port or address filter).
const INET_DIAG_REQ_V2_LEN: usize = 56;
const REQUEST_LEN: usize = NLMSG_HDRLEN + INET_DIAG_REQ_V2_LEN;
/// Every TCP_* state bit: UDP sockets are TCP_CLOSE (unconnected) or TCP_ESTABLISHED.
const ALL_STATES: u32 = u32::MAX;
/// `inet_diag_msg`: family, state, timer, retrans, `inet_diag_sockid` (48 bytes), then the
/// `__u32`s expires, rqueue, wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;
const IDIAG_RQUEUE: usize = 56;
const IDIAG_WQUEUE: usize = 60;

/// The IP protocol number of UDP (`IPPROTO_UDP`).
pub(super) const IPPROTO_UDP: u8 = 17;

/// A bound on one dump's replies, against a kernel (or a test) that never ends it.
const MAX_DUMP_BYTES: usize = 64 << 20;
/// The kernel fills a dump reply up to the reader's buffer, at most 32 KiB.
const RECV_BUFFER: usize = 32 << 10;
/// How long a reply may take before the dump is abandoned.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes queued, summed over sockets.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Queues {
    /// `idiag_wqueue`: /proc/net/udp's `tx_queue`.
    pub(super) tx: u64,
    /// `idiag_rqueue`: /proc/net/udp's `rx_queue`.
    pub(super) rx: u64,
}

/// A `NETLINK_SOCK_DIAG` socket, kept between dumps, with the sequence number of its last
/// request and the buffer replies are read into.
#[derive(Debug)]
pub(super) struct Socket {
    fd: OwnedFd,
    seq: u32,
    buffer: Vec<u8>,
}

impl Socket {
    /// A new socket, bound by the kernel on first send.
    ///
    /// # Errors
    /// The socket's creation (no netlink, no sock_diag, or a seccomp filter refusing it), or
    /// setting its receive timeout.
    pub(super) fn open() -> io::Result<Socket> {
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        set_socket_timeout(&fd, Timeout::Recv, Some(RECV_TIMEOUT))?;
        Ok(Socket {
            fd,
            seq: 0,
            buffer: vec![0; RECV_BUFFER],
        })
    }

    /// The queues of every `protocol` socket of `family` (`AF_INET` or `AF_INET6`) in this
    /// network namespace, summed, from one dump. After an error the socket may hold unread
    /// replies: the caller drops it.
    ///
    /// # Errors
    /// The socket's, a kernel error reply (its errno kept, e.g. `ENOENT` without `udp_diag`),
    /// or a reply that is malformed, of another request, interrupted or truncated
    /// (`InvalidData`).
    pub(super) fn queues(&mut self, family: AddressFamily, protocol: u8) -> io::Result<Queues> {
        self.seq = self.seq.wrapping_add(1);
        sendto(
            &self.fd,
            &request(self.seq, family, protocol),
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        let family = family.as_raw() as u8;
        let mut sums = Queues::default();
        let mut total = 0;
        loop {
            let (read, length) = recv(&self.fd, &mut self.buffer[..], RecvFlags::TRUNC)?;
            if length > read {
                return Err(invalid(format!(
                    "reply of {length} bytes truncated to {read}"
                )));
            }
            total += read;
            if read == 0 || total > MAX_DUMP_BYTES {
                return Err(invalid(format!(
                    "dump ended without NLMSG_DONE after {total} bytes"
                )));
            }
            match parse(&self.buffer[..read], self.seq, family, &mut sums) {
                Ok(true) => return Ok(sums),
                Ok(false) => {}
                Err(Reply::Kernel(errno)) => return Err(io::Error::from_raw_os_error(errno)),
                Err(Reply::Malformed(reason)) => return Err(invalid(reason)),
            }
        }
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// `SOCK_DIAG_BY_FAMILY` with `NLM_F_DUMP` for `family`'s `protocol` sockets in every state,
/// no extension attributes asked.
fn request(seq: u32, family: AddressFamily, protocol: u8) -> [u8; REQUEST_LEN] {
    let mut message = [0; REQUEST_LEN];
    message[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    message[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0: the kernel.
    message[16] = family.as_raw() as u8;
    message[17] = protocol;
    message[20..24].copy_from_slice(&ALL_STATES.to_ne_bytes());
    message
}

/// Parses the netlink messages in `bytes` (one or more datagrams of the reply to request `seq`
/// for address family `family`), adding each socket's queues to `sums`; `Ok(true)` once
/// `NLMSG_DONE` ends the dump.
///
/// # Errors
/// A message that overruns the data or is too short for its type, a message of another request
/// or family or of an unexpected type, an error reply, an interrupted dump.
pub(super) fn parse(bytes: &[u8], seq: u32, family: u8, sums: &mut Queues) -> Result<bool, Reply> {
    walk(bytes, seq, |kind, payload| {
        if kind != SOCK_DIAG_BY_FAMILY {
            return Err(Reply::Malformed(format!("unexpected message type {kind}")));
        }
        if payload.len() < INET_DIAG_MSG_LEN {
            return Err(Reply::Malformed(format!(
                "inet_diag_msg of {} bytes",
                payload.len()
            )));
        }
        if payload[0] != family {
            return Err(Reply::Malformed(format!(
                "a socket of family {}, not {family}",
                payload[0]
            )));
        }
        sums.rx = sums
            .rx
            .wrapping_add(u64::from(u32_at(payload, IDIAG_RQUEUE)));
        sums.tx = sums
            .tx
            .wrapping_add(u64::from(u32_at(payload, IDIAG_WQUEUE)));
        Ok(())
    })
}

/// The fuzz driver's entry (`host::fuzzing`): `bytes` as a dump reply to the request the first
/// message answers, for the family its first socket has.
pub(super) fn fuzz(bytes: &[u8]) -> Result<Queues, String> {
    let seq = bytes.get(8..12).map_or(0, |_| u32_at(bytes, 8));
    let family = bytes.get(NLMSG_HDRLEN).copied().unwrap_or(0);
    let mut sums = Queues::default();
    match parse(bytes, seq, family, &mut sums) {
        Ok(_) => Ok(sums),
        Err(Reply::Kernel(errno)) => Err(format!("kernel error {errno}")),
        Err(Reply::Malformed(reason)) => Err(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::nlmsg::testing::{damaged_dumps, message};
    use crate::collect::host::nlmsg::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, u16_at};

    /// `SOCK_DIAG_BY_FAMILY` dumps of UDP sockets captured on this kernel (6.18, x86_64:
    /// little-endian), replies to request 1, all datagrams concatenated. /proc/net/udp then
    /// listed three sockets with `tx_queue:rx_queue` 0:0x340, 0:0x9C0 and 0x340:0, udp6 two
    /// with 0:0x340 and 0x900:0: unread datagrams of 10, 3 × 100 and 50 bytes, and corked ones
    /// (`MSG_MORE`, not yet sent) of 100 and 1000 bytes.
    const UDP4: &[u8] = include_bytes!("fixtures/sockdiag/udp4_dump.bin");
    const UDP6: &[u8] = include_bytes!("fixtures/sockdiag/udp6_dump.bin");

    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;

    #[cfg(target_endian = "little")]
    #[test]
    fn sums_the_captured_dumps_as_proc_showed_them() {
        let mut sums = Queues::default();
        assert_eq!(parse(UDP4, 1, AF_INET, &mut sums), Ok(true));
        assert_eq!(
            sums,
            Queues {
                tx: 0x340,
                rx: 0x340 + 0x9C0
            }
        );
        let mut sums = Queues::default();
        assert_eq!(parse(UDP6, 1, AF_INET6, &mut sums), Ok(true));
        assert_eq!(
            sums,
            Queues {
                tx: 0x900,
                rx: 0x340
            }
        );
        // The same bytes are no answer for the other family or another request.
        for (seq, family) in [(1, AF_INET6), (2, AF_INET)] {
            assert!(matches!(
                parse(UDP4, seq, family, &mut Queues::default()),
                Err(Reply::Malformed(_))
            ));
        }
    }

    #[test]
    fn the_request_asks_for_a_dump_of_every_state() {
        let message = request(7, AddressFamily::INET6, IPPROTO_UDP);
        assert_eq!(u32_at(&message, 0) as usize, message.len());
        assert_eq!(message.len(), 72);
        assert_eq!(u16_at(&message, 4), SOCK_DIAG_BY_FAMILY);
        assert_eq!(u16_at(&message, 6), 0x301);
        assert_eq!(u32_at(&message, 8), 7);
        assert_eq!(&message[16..18], &[10, 17]);
        assert_eq!(u32_at(&message, 20), u32::MAX);
        assert!(message[24..].iter().all(|&b| b == 0));
    }

    /// An IPv4 socket's `inet_diag_msg` with these queues.
    fn socket(rqueue: u32, wqueue: u32) -> Vec<u8> {
        let mut payload = vec![0; INET_DIAG_MSG_LEN];
        payload[0] = AF_INET;
        payload[IDIAG_RQUEUE..IDIAG_RQUEUE + 4].copy_from_slice(&rqueue.to_ne_bytes());
        payload[IDIAG_WQUEUE..IDIAG_WQUEUE + 4].copy_from_slice(&wqueue.to_ne_bytes());
        message(SOCK_DIAG_BY_FAMILY, 2, &payload)
    }

    #[test]
    fn sums_wrap_as_the_proc_parser_does_and_errors_keep_their_errno() {
        let mut bytes = socket(u32::MAX, 5);
        bytes.extend(socket(1, 6));
        let mut sums = Queues::default();
        assert_eq!(parse(&bytes, 1, AF_INET, &mut sums), Ok(false));
        assert_eq!(
            sums,
            Queues {
                tx: 11,
                rx: 1 << 32
            }
        );
        bytes.extend(message(NLMSG_DONE, 2, &0_i32.to_ne_bytes()));
        assert_eq!(parse(&bytes, 1, AF_INET, &mut Queues::default()), Ok(true));
        assert_eq!(
            parse(&message(NLMSG_DONE, 2, &[]), 1, AF_INET, &mut sums),
            Ok(true)
        );
        // ENOENT: no udp_diag handler.
        assert_eq!(
            parse(
                &message(NLMSG_DONE, 2, &(-2_i32).to_ne_bytes()),
                1,
                AF_INET,
                &mut sums
            ),
            Err(Reply::Kernel(2))
        );
        assert_eq!(
            parse(
                &message(NLMSG_ERROR, 0, &(-22_i32).to_ne_bytes()),
                1,
                AF_INET,
                &mut sums
            ),
            Err(Reply::Kernel(22))
        );
    }

    #[test]
    fn malformed_replies_are_refused() {
        let good = socket(1, 2);
        let mut short_length = good.clone();
        short_length[..4].copy_from_slice(&8_u32.to_ne_bytes());
        let mut long_length = good.clone();
        long_length[..4].copy_from_slice(&1000_u32.to_ne_bytes());
        let mut other_family = good.clone();
        other_family[NLMSG_HDRLEN] = AF_INET6;
        for (what, bytes) in [
            ("a header cut short", good[..10].to_vec()),
            ("a length below the header's", short_length),
            ("a length beyond the data", long_length),
            ("another family's socket", other_family),
            ("another request's reply", {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&2_u32.to_ne_bytes());
                b
            }),
            (
                "an interrupted dump",
                message(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP_INTR, &good[NLMSG_HDRLEN..]),
            ),
            ("an error without its code", message(NLMSG_ERROR, 0, &[])),
            ("an unexpected type", message(16, 0, &[0; 16])),
            (
                "a short inet_diag_msg",
                message(SOCK_DIAG_BY_FAMILY, 0, &[AF_INET; 60]),
            ),
        ] {
            assert!(
                matches!(
                    parse(&bytes, 1, AF_INET, &mut Queues::default()),
                    Err(Reply::Malformed(_))
                ),
                "{what}"
            );
        }
    }

    /// Every prefix and many corruptions of the captured dump: errors or partial sums, never a
    /// panic, and never a finished dump from less than all of it.
    #[test]
    fn truncated_and_corrupted_dumps_never_panic() {
        damaged_dumps(UDP4, |bytes| {
            parse(bytes, 1, AF_INET, &mut Queues::default()) == Ok(true)
        });
    }

    /// One socket answers dump after dump with the next sequence number; one left with unread
    /// replies fails its next dump.
    #[test]
    fn the_socket_serves_dump_after_dump() {
        let mut socket = Socket::open().expect("a NETLINK_SOCK_DIAG socket");
        for seq in 1..=3 {
            socket
                .queues(AddressFamily::INET, IPPROTO_UDP)
                .expect("dump");
            assert_eq!(socket.seq, seq);
        }
        sendto(
            &socket.fd,
            &request(socket.seq + 1, AddressFamily::INET, IPPROTO_UDP),
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .expect("send");
        socket.seq += 1;
        let err = socket
            .queues(AddressFamily::INET, IPPROTO_UDP)
            .expect_err("the unread replies come first");
        assert!(err.to_string().contains("reply to request"), "{err}");
    }
}
