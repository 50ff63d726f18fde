//! netclass's live source: one rtnetlink `RTM_GETLINK` dump gives most of what sysfs reports per
//! device, in a few system calls instead of ~23 file reads per device (node_exporter ≥ 1.6 has
//! the same netlink mode). What netlink lacks (`addr_assign_type`, `dev_id`,
//! `name_assign_type`, `speed`, `duplex`) is still read from sysfs, each attribute opened
//! relative to the device's directory.
//!
//! Each value is what `net/core/net-sysfs.c` would show (see [`device`]): `operstate` is
//! `IFLA_OPERSTATE` (the kernel already reports "down" for a device that is not running, as sysfs
//! does), `carrier` and `dormant` exist only while the device runs (`IFF_UP`, sysfs's
//! `netif_running`; `dormant` is `IFF_DORMANT`, which the kernel sets in `ifi_flags` exactly when
//! running and `netif_dormant`), `iflink` is `IFLA_LINK` or, absent, the device's own index
//! (the kernel omits it when they are equal), sysfs's `flags` (the raw `dev->flags`) is
//! `ifi_flags` without the bits `dev_get_flags` computes (`IFF_RUNNING`, `IFF_LOWER_UP`,
//! `IFF_DORMANT`) and with `IFF_PROMISC`/`IFF_ALLMULTI` set from their counts
//! (`IFLA_PROMISCUITY`, `IFLA_ALLMULTI`; a kernel without these has `flags` read from sysfs),
//! numbers sysfs prints with `%d` are reinterpreted as signed, and `address`/`broadcast` are
//! formatted as `%*phC` (absent when the address length is 0, as sysfs's empty text).
//!
//! A dump that asks for statistics carries each device's `IFLA_STATS64` ([`Stats64`]), which the
//! `netdev` collector reads through its own [`LinkSocket`] in place of /proc/net/dev.
//!
//! The request, the replies and the parser are plain byte handling here: nothing beyond
//! `nlmsghdr`, `ifinfomsg` and `rtattr` is needed, which a crate for the whole protocol would
//! not make simpler.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::collect::host::handoff::Handoff;
use rustix::fs::{Mode, OFlags};
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, recv, sendto, socket_with,
};

use super::{Device, parse_int, unreported};
use crate::collect::Error;
use crate::collect::host::nlmsg::{
    NLM_F_DUMP, NLM_F_REQUEST, NLMSG_HDRLEN, Reply, align, u16_at, u32_at, walk,
};
use crate::collect::host::procfs::read_error;

/// The `host.sysfs` whose devices are this process's network namespace's: only then does
/// netlink describe the same devices.
pub(super) const LIVE_SYSFS: &str = "/sys";

// linux/netlink.h and linux/rtnetlink.h.
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const IFINFOMSG_LEN: usize = 16;
/// Leaves out the IPv6 and VF statistics (`IFLA_AF_SPEC`'s `IFLA_INET6_STATS` and
/// `IFLA_INET6_ICMP6STATS`, a quarter of the dump here) and, since Linux 6.19 ("rtnetlink: honor
/// RTEXT_FILTER_SKIP_STATS in IFLA_STATS"), `IFLA_STATS` and `IFLA_STATS64`.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
/// `NLA_F_NESTED | NLA_F_NET_BYTEORDER` are not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

// linux/if_link.h.
const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_LINK: u16 = 5;
const IFLA_TXQLEN: u16 = 13;
const IFLA_STATS64: u16 = 23;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_LINKMODE: u16 = 17;
const IFLA_IFALIAS: u16 = 20;
const IFLA_GROUP: u16 = 27;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_PROMISCUITY: u16 = 30;
const IFLA_CARRIER: u16 = 33;
const IFLA_CARRIER_CHANGES: u16 = 35;
const IFLA_CARRIER_UP_COUNT: u16 = 47;
const IFLA_CARRIER_DOWN_COUNT: u16 = 48;
const IFLA_ALLMULTI: u16 = 61;

// linux/if.h.
const IFF_UP: u32 = 0x1;
const IFF_PROMISC: u32 = 0x100;
const IFF_ALLMULTI: u32 = 0x200;
const IFF_RUNNING: u32 = 0x40;
const IFF_LOWER_UP: u32 = 0x1_0000;
const IFF_DORMANT: u32 = 0x2_0000;

/// `operstates[]` of net-sysfs.c, indexed by `IF_OPER_*`.
const OPERSTATES: [&str; 7] = [
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
];

/// A bound on one dump's replies, against a kernel (or a test) that never ends it.
const MAX_DUMP_BYTES: usize = 64 << 20;
/// The kernel fills a dump reply up to the reader's buffer, at most 32 KiB.
const RECV_BUFFER: usize = 32 << 10;

/// `struct rtnl_link_stats64` of linux/if_link.h (the order of its fields), up to `rx_nohandler`:
/// what /proc/net/dev prints (`dev_seq_printf_stats` of net/core/net-procfs.c derives its columns
/// from the same `dev_get_stats`) and sysfs's `statistics/rx_nohandler`. Fields the kernel added
/// later (`rx_otherhost_dropped`) are not read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(in crate::collect::host) struct Stats64 {
    pub(in crate::collect::host) rx_packets: u64,
    pub(in crate::collect::host) tx_packets: u64,
    pub(in crate::collect::host) rx_bytes: u64,
    pub(in crate::collect::host) tx_bytes: u64,
    pub(in crate::collect::host) rx_errors: u64,
    pub(in crate::collect::host) tx_errors: u64,
    pub(in crate::collect::host) rx_dropped: u64,
    pub(in crate::collect::host) tx_dropped: u64,
    pub(in crate::collect::host) multicast: u64,
    pub(in crate::collect::host) collisions: u64,
    pub(in crate::collect::host) rx_length_errors: u64,
    pub(in crate::collect::host) rx_over_errors: u64,
    pub(in crate::collect::host) rx_crc_errors: u64,
    pub(in crate::collect::host) rx_frame_errors: u64,
    pub(in crate::collect::host) rx_fifo_errors: u64,
    pub(in crate::collect::host) rx_missed_errors: u64,
    pub(in crate::collect::host) tx_aborted_errors: u64,
    pub(in crate::collect::host) tx_carrier_errors: u64,
    pub(in crate::collect::host) tx_fifo_errors: u64,
    pub(in crate::collect::host) tx_heartbeat_errors: u64,
    pub(in crate::collect::host) tx_window_errors: u64,
    pub(in crate::collect::host) rx_compressed: u64,
    pub(in crate::collect::host) tx_compressed: u64,
    /// Since Linux 4.6; `None` in the shorter struct of earlier kernels.
    pub(in crate::collect::host) rx_nohandler: Option<u64>,
}

/// The fields every kernel's `rtnl_link_stats64` has (2.6.35 to 4.5: up to `tx_compressed`).
const STATS64_FIELDS: usize = 23;

impl Stats64 {
    /// An `IFLA_STATS64` payload: at least [`STATS64_FIELDS`] native-endian `u64`s, with
    /// `rx_nohandler` when there is a 24th.
    fn parse(value: &[u8]) -> Result<Stats64, String> {
        if value.len() < STATS64_FIELDS * 8 {
            return Err(format!(
                "IFLA_STATS64 of {} bytes, below the {} of its oldest form",
                value.len(),
                STATS64_FIELDS * 8
            ));
        }
        let field = |i: usize| u64_at(value, i * 8);
        Ok(Stats64 {
            rx_packets: field(0),
            tx_packets: field(1),
            rx_bytes: field(2),
            tx_bytes: field(3),
            rx_errors: field(4),
            tx_errors: field(5),
            rx_dropped: field(6),
            tx_dropped: field(7),
            multicast: field(8),
            collisions: field(9),
            rx_length_errors: field(10),
            rx_over_errors: field(11),
            rx_crc_errors: field(12),
            rx_frame_errors: field(13),
            rx_fifo_errors: field(14),
            rx_missed_errors: field(15),
            tx_aborted_errors: field(16),
            tx_carrier_errors: field(17),
            tx_fifo_errors: field(18),
            tx_heartbeat_errors: field(19),
            tx_window_errors: field(20),
            rx_compressed: field(21),
            tx_compressed: field(22),
            rx_nohandler: (value.len() >= (STATS64_FIELDS + 1) * 8).then(|| field(STATS64_FIELDS)),
        })
    }
}

/// One `RTM_NEWLINK` message: `ifinfomsg` and the attributes netclass and netdev use (`None`
/// when absent).
#[derive(Debug, Clone, Default, PartialEq)]
pub(in crate::collect::host) struct Link {
    pub(super) index: i32,
    pub(super) kind: u16,
    pub(super) flags: u32,
    pub(in crate::collect::host) name: String,
    pub(super) address: Option<Vec<u8>>,
    pub(super) broadcast: Option<Vec<u8>>,
    pub(super) mtu: Option<u32>,
    pub(super) link: Option<u32>,
    pub(super) txqlen: Option<u32>,
    pub(super) operstate: Option<u8>,
    pub(super) link_mode: Option<u8>,
    pub(super) alias: Option<Vec<u8>>,
    pub(super) group: Option<u32>,
    pub(super) promiscuity: Option<u32>,
    pub(super) carrier: Option<u8>,
    pub(super) carrier_changes: Option<u32>,
    pub(super) carrier_up: Option<u32>,
    pub(super) carrier_down: Option<u32>,
    pub(super) allmulti: Option<u32>,
    pub(in crate::collect::host) stats: Option<Stats64>,
}

/// The most devices whose attribute files stay open between scrapes (at most six descriptors
/// each); the devices beyond are opened on every scrape, so a host with thousands of virtual
/// interfaces does not run into its descriptor limit.
const MAX_HELD_DEVICES: usize = 32;

/// The sysfs attribute files of each device, kept open between scrapes and read again from
/// offset 0 (sysfs calls the attribute's `show` on every read from the start, as `poll(2)`
/// users rely on): a scrape then reads them without the opens and closes, a third of their cost.
///
/// A device is known by its name and interface index together, as the dump reports them: a
/// renamed device, or a new one under an old name, is a new entry, so a held file never answers
/// for another device (an open sysfs file follows its device across a rename). Entries of
/// devices the dump no longer reports are closed; a held file whose read fails otherwise than by
/// the kernel not reporting the value (`ENODEV` once its device is gone) is opened again.
///
/// The rtnetlink socket is kept too ([`LinkSocket`], without statistics).
#[derive(Debug)]
pub(in crate::collect::host) struct Held {
    devices: Mutex<HashMap<(i32, String), DeviceFiles>>,
    socket: LinkSocket,
    /// The dump netdev took earlier in the scrape, used instead of a dump of its own.
    handoff: Arc<LinkHandoff>,
}

impl Default for Held {
    fn default() -> Self {
        Held::new(Arc::default())
    }
}

impl Held {
    /// Files and a socket to hold, and the dumps netdev leaves in `handoff`.
    pub(in crate::collect::host) fn new(handoff: Arc<LinkHandoff>) -> Self {
        Held {
            devices: Mutex::default(),
            socket: LinkSocket::new(Statistics::Skipped),
            handoff,
        }
    }
}

/// A dump netdev leaves for netclass, which runs after it in the same scrape: one
/// `RTM_GETLINK` dump (about 23 µs here, most of it the kernel summing each device's per-CPU
/// IPv6 statistics) serves both collectors.
pub(in crate::collect::host) type LinkHandoff = Handoff<Arc<Vec<Link>>>;

/// Whether a dump asks for the links' statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::collect::host) enum Statistics {
    /// [`RTEXT_FILTER_SKIP_STATS`]: no IPv6 or VF statistics, and no `IFLA_STATS64` on a
    /// kernel that honours the flag there too.
    Skipped,
    /// Everything, `IFLA_STATS64` included (what `ip link` and node_exporter ask for).
    Included,
}

/// An rtnetlink socket kept between dumps, with the sequence number of its last request: a
/// scrape then dumps without the socket's creation and close. A dump that fails in any way
/// closes it (whatever it left unread goes with it), and the next dump opens another.
#[derive(Debug)]
pub(in crate::collect::host) struct LinkSocket {
    socket: Mutex<Option<(OwnedFd, u32)>>,
    statistics: Statistics,
}

impl LinkSocket {
    /// A socket, opened on its first dump, whose dumps ask for `statistics`.
    pub(in crate::collect::host) fn new(statistics: Statistics) -> Self {
        LinkSocket {
            socket: Mutex::default(),
            statistics,
        }
    }

    /// Every link of this network namespace, from one `RTM_GETLINK` dump (see [`dump`]).
    ///
    /// # Errors
    /// The socket's, or a reply that is malformed, an error, interrupted or truncated.
    pub(in crate::collect::host) fn dump(&self) -> io::Result<Vec<Link>> {
        let mut socket = self
            .socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dump(&mut socket, self.statistics)
    }

    /// Leaves the socket with the replies of a request never read, as a dump cut short would:
    /// the next dump fails on them.
    #[cfg(test)]
    pub(in crate::collect::host) fn leave_replies_unread(&self) -> io::Result<()> {
        let mut socket = self.socket.lock().expect("lock");
        if socket.is_none() {
            dump(&mut socket, self.statistics)?;
        }
        if let Some((fd, seq)) = socket.as_mut() {
            *seq = seq.wrapping_add(1);
            sendto(
                &*fd,
                &request(*seq, self.statistics),
                SendFlags::empty(),
                &SocketAddrNetlink::new(0, 0),
            )?;
        }
        Ok(())
    }
}

/// One device's directory and the attribute files opened in it so far.
#[derive(Debug)]
struct DeviceFiles {
    dir: OwnedFd,
    files: Vec<(&'static str, OwnedFd)>,
}

impl DeviceFiles {
    /// Device `name`'s directory under `class` (opened once per scrape, on first need, into
    /// `class_dir`), with no attribute open yet; `None` when it is no directory (gone since the
    /// listing, or a regular file).
    fn open(
        class_dir: &mut Option<OwnedFd>,
        class: &Path,
        name: &str,
    ) -> Result<Option<DeviceFiles>, Error> {
        let class_dir = match class_dir {
            Some(dir) => dir,
            None => class_dir.insert(
                rustix::fs::open(
                    class,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|errno| read_error(class, errno.into()))?,
            ),
        };
        match rustix::fs::openat(
            &*class_dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => Ok(Some(DeviceFiles {
                dir,
                files: Vec::new(),
            })),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Ok(None),
            Err(errno) => Err(read_error(&class.join(name), errno.into())),
        }
    }

    /// Attribute `name`'s text, trimmed: through the file opened for it earlier when there is
    /// one and it reads, else through a new one, kept with the others.
    fn read(&mut self, name: &'static str, buffer: &mut Vec<u8>) -> io::Result<Option<String>> {
        if let Some(at) = self.files.iter().position(|(held, _)| *held == name) {
            match pread_all(&self.files[at].1, buffer) {
                Ok(()) => return Ok(text(buffer)),
                Err(errno) if unreported(&io::Error::from(errno)) => return Ok(None),
                Err(_) => {
                    self.files.swap_remove(at);
                }
            }
        }
        let file = match rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(file) => file,
            Err(errno) => return unreported_or(errno),
        };
        let read = pread_all(&file, buffer);
        self.files.push((name, file));
        match read {
            Ok(()) => Ok(text(buffer)),
            Err(errno) => unreported_or(errno),
        }
    }
}

/// `None` for an error that means the kernel does not report the attribute now, else the error.
fn unreported_or(errno: rustix::io::Errno) -> io::Result<Option<String>> {
    let err = io::Error::from(errno);
    if unreported(&err) { Ok(None) } else { Err(err) }
}

/// The trimmed text of `buffer`; `None` when it is not UTF-8.
fn text(buffer: &[u8]) -> Option<String> {
    std::str::from_utf8(buffer)
        .ok()
        .map(|text| text.trim().to_owned())
}

/// The devices `names` (entries of `<sysfs>/class/net`, sorted) that the dump reports, with what
/// netlink lacks read from `<sysfs>/class/net/<name>/` through the files `held` keeps open. A
/// name netlink does not report (a regular file such as `bonding_masters`, a device gone since
/// the listing) is no device.
///
/// # Errors
/// The dump's failure (the caller then reads sysfs alone), or a sysfs read failing otherwise
/// than by the kernel not reporting the attribute.
pub(super) fn devices(sysfs: &Path, names: Vec<String>, held: &Held) -> Result<Vec<Device>, Error> {
    let dump_error = |source| read_error(Path::new("rtnetlink RTM_GETLINK"), source);
    let links = match held.handoff.take() {
        Some(links) => links,
        None => Arc::new(held.socket.dump().map_err(dump_error)?),
    };
    let by_name: HashMap<&str, &Link> = links.iter().map(|l| (l.name.as_str(), l)).collect();
    let class = sysfs.join("class/net");
    let mut class_dir: Option<OwnedFd> = None;
    let mut held = held
        .devices
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    held.retain(|(index, name), _| {
        by_name
            .get(name.as_str())
            .is_some_and(|l| l.index == *index)
    });
    let mut buffer = Vec::with_capacity(4096);
    let mut devices = Vec::with_capacity(names.len());
    for name in names {
        let Some(link) = by_name.get(name.as_str()) else {
            continue;
        };
        let key = (link.index, name);
        // Beyond the cap a device's files are opened for this scrape only, dropped after it.
        let mut unheld;
        let files = match held.get_mut(&key) {
            Some(files) => files,
            None => {
                let Some(files) = DeviceFiles::open(&mut class_dir, &class, &key.1)? else {
                    continue;
                };
                if held.len() < MAX_HELD_DEVICES {
                    held.entry(key.clone()).or_insert(files)
                } else {
                    unheld = files;
                    &mut unheld
                }
            }
        };
        let name = &key.1;
        let read = |attribute: &'static str| {
            files
                .read(attribute, &mut buffer)
                .map_err(|source| read_error(&class.join(name).join(attribute), source))
        };
        devices.push(device(name.clone(), link, read)?);
    }
    Ok(devices)
}

/// Reads all of `file` from offset 0 into `buffer`, replacing its content. A read shorter than
/// asked is the end: a sysfs attribute is one page at most, all of which the first read of a
/// page returns, so one read suffices (a second, to see end of file, would cost as much again
/// on a machine where system calls are dear).
fn pread_all(file: &OwnedFd, buffer: &mut Vec<u8>) -> rustix::io::Result<()> {
    buffer.clear();
    loop {
        if buffer.capacity() - buffer.len() < 4096 {
            buffer.reserve(4096);
        }
        let asked = buffer.capacity() - buffer.len();
        let offset = buffer.len() as u64;
        if rustix::io::pread(file, rustix::buffer::spare_capacity(&mut *buffer), offset)? < asked {
            return Ok(());
        }
    }
}

/// Device `name`'s attributes from its `link` record and, for what netlink lacks, `sysfs`
/// (an attribute's trimmed text, `None` when unreported). Pure but for `sysfs`.
fn device(
    name: String,
    link: &Link,
    mut sysfs: impl FnMut(&'static str) -> Result<Option<String>, Error>,
) -> Result<Device, Error> {
    let mut device = Device::new(name);
    let running = link.flags & IFF_UP != 0;
    device.operstate = link
        .operstate
        .and_then(|state| OPERSTATES.get(usize::from(state)))
        .map_or_else(String::new, |state| (*state).to_owned());
    device.address = link.address.as_deref().map(mac).unwrap_or_default();
    device.broadcast = link.broadcast.as_deref().map(mac).unwrap_or_default();
    device.ifalias = link
        .alias
        .as_deref()
        .and_then(|alias| std::str::from_utf8(alias).ok())
        .map(|alias| alias.trim().to_owned())
        .unwrap_or_default();
    // `%d` of an unsigned field.
    let signed = |value: Option<u32>| value.map(|v| i64::from(v as i32));
    device.set("ifindex", Some(i64::from(link.index)));
    device.set(
        "iflink",
        Some(i64::from(link.link.map_or(link.index, |l| l as i32))),
    );
    device.set("type", Some(i64::from(link.kind)));
    device.set("link_mode", link.link_mode.map(i64::from));
    device.set("mtu", signed(link.mtu));
    device.set("tx_queue_len", signed(link.txqlen));
    device.set("netdev_group", signed(link.group));
    device.set("carrier_changes", signed(link.carrier_changes));
    device.set("carrier_up_count", signed(link.carrier_up));
    device.set("carrier_down_count", signed(link.carrier_down));
    if running {
        device.set("carrier", link.carrier.map(|c| i64::from(c != 0)));
        device.set("dormant", Some(i64::from(link.flags & IFF_DORMANT != 0)));
    }
    let flags = match (link.promiscuity, link.allmulti) {
        (Some(promiscuity), Some(allmulti)) => {
            let mut flags = link.flags
                & !(IFF_PROMISC | IFF_ALLMULTI | IFF_RUNNING | IFF_LOWER_UP | IFF_DORMANT);
            if promiscuity != 0 {
                flags |= IFF_PROMISC;
            }
            if allmulti != 0 {
                flags |= IFF_ALLMULTI;
            }
            Some(i64::from(flags))
        }
        _ => sysfs("flags")?.as_deref().and_then(parse_int),
    };
    device.set("flags", flags);
    for attribute in ["addr_assign_type", "dev_id", "name_assign_type"] {
        let value = sysfs(attribute)?.as_deref().and_then(parse_int);
        device.set(attribute, value);
    }
    // Both are EINVAL while the device is not running: no need to ask.
    if running {
        device.duplex = sysfs("duplex")?.unwrap_or_default();
        let speed = sysfs("speed")?.as_deref().and_then(parse_int);
        device.set("speed", speed);
    }
    Ok(device)
}

/// `%*phC`: lowercase hexadecimal bytes joined by colons.
fn mac(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 3);
    for (i, byte) in bytes.iter().enumerate() {
        if i > 0 {
            text.push(':');
        }
        const HEX: &[u8; 16] = b"0123456789abcdef";
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

/// Every link of this network namespace, from one `RTM_GETLINK` dump asking for `statistics`
/// over `socket` (with the sequence number of its last request), which is opened when there is
/// none and closed when the dump fails.
///
/// # Errors
/// The socket's, or a reply that is malformed, an error, interrupted or truncated.
fn dump(socket: &mut Option<(OwnedFd, u32)>, statistics: Statistics) -> io::Result<Vec<Link>> {
    let (fd, seq) = match socket.take() {
        Some((fd, seq)) => (fd, seq.wrapping_add(1)),
        None => {
            let fd = socket_with(
                AddressFamily::NETLINK,
                SocketType::RAW,
                SocketFlags::CLOEXEC,
                None, // NETLINK_ROUTE
            )?;
            set_socket_timeout(&fd, Timeout::Recv, Some(Duration::from_secs(2)))?;
            (fd, 1)
        }
    };
    sendto(
        &fd,
        &request(seq, statistics),
        SendFlags::empty(),
        &SocketAddrNetlink::new(0, 0),
    )?;
    let links = receive(fd.as_fd(), seq)?;
    *socket = Some((fd, seq));
    Ok(links)
}

fn receive(socket: std::os::fd::BorrowedFd<'_>, seq: u32) -> io::Result<Vec<Link>> {
    let mut buffer = vec![0_u8; RECV_BUFFER];
    let mut links = Vec::new();
    let mut total = 0;
    loop {
        let (read, length) = recv(socket, &mut buffer[..], RecvFlags::TRUNC)?;
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
        if parse(&buffer[..read], seq, &mut links).map_err(invalid)? {
            return Ok(links);
        }
    }
}

fn invalid(reason: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, reason)
}

/// `RTM_GETLINK` with `NLM_F_DUMP` for every family; with [`Statistics::Skipped`], an
/// `IFLA_EXT_MASK` of [`RTEXT_FILTER_SKIP_STATS`].
fn request(seq: u32, statistics: Statistics) -> Vec<u8> {
    let mask = statistics == Statistics::Skipped;
    let length = NLMSG_HDRLEN + IFINFOMSG_LEN + if mask { 8 } else { 0 };
    let mut message = Vec::with_capacity(length);
    message.extend_from_slice(&(length as u32).to_ne_bytes());
    message.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    message.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    message.extend_from_slice(&seq.to_ne_bytes());
    message.extend_from_slice(&0_u32.to_ne_bytes()); // pid: the kernel
    message.extend_from_slice(&[0; IFINFOMSG_LEN]); // AF_UNSPEC, every index
    if mask {
        message.extend_from_slice(&8_u16.to_ne_bytes());
        message.extend_from_slice(&IFLA_EXT_MASK.to_ne_bytes());
        message.extend_from_slice(&RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
    }
    message
}

/// Parses the netlink messages in `bytes` (one or more datagrams of the reply to request `seq`),
/// appending each link to `links`; `Ok(true)` once `NLMSG_DONE` ends the dump.
///
/// # Errors
/// A message or attribute that overruns its container or is too short for its type, a message
/// of another request or of an unexpected type, an error reply, an interrupted dump.
pub(in crate::collect::host) fn parse(
    bytes: &[u8],
    seq: u32,
    links: &mut Vec<Link>,
) -> Result<bool, String> {
    let done = walk(bytes, seq, |kind, payload| match kind {
        RTM_NEWLINK => {
            links.push(parse_link(payload).map_err(Reply::Malformed)?);
            Ok(())
        }
        other => Err(Reply::Malformed(format!("unexpected message type {other}"))),
    });
    done.map_err(|reply| match reply {
        Reply::Kernel(errno) => format!("kernel error: {}", io::Error::from_raw_os_error(errno)),
        Reply::Malformed(reason) => reason,
    })
}

/// One `RTM_NEWLINK` payload: `ifinfomsg`, then attributes.
fn parse_link(payload: &[u8]) -> Result<Link, String> {
    if payload.len() < IFINFOMSG_LEN {
        return Err(format!("link message of {} bytes", payload.len()));
    }
    let mut link = Link {
        kind: u16_at(payload, 2),
        index: u32_at(payload, 4) as i32,
        flags: u32_at(payload, 8),
        ..Link::default()
    };
    let mut name = None;
    let mut rest = &payload[IFINFOMSG_LEN..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(format!("{} bytes left: no attribute header", rest.len()));
        }
        let length = usize::from(u16_at(rest, 0));
        let kind = u16_at(rest, 2) & NLA_TYPE_MASK;
        if length < 4 || length > rest.len() {
            return Err(format!(
                "attribute {kind}: length {length} of {} bytes left",
                rest.len()
            ));
        }
        let value = &rest[4..length];
        let u32_value = || match value.try_into() {
            Ok(bytes) => Ok(Some(u32::from_ne_bytes(bytes))),
            Err(_) => Err(format!("attribute {kind}: {} bytes, not 4", value.len())),
        };
        let u8_value = || match value {
            [byte] => Ok(Some(*byte)),
            _ => Err(format!("attribute {kind}: {} bytes, not 1", value.len())),
        };
        match kind {
            IFLA_IFNAME => name = Some(String::from_utf8_lossy(c_string(value)).into_owned()),
            IFLA_ADDRESS => link.address = Some(value.to_vec()),
            IFLA_BROADCAST => link.broadcast = Some(value.to_vec()),
            IFLA_IFALIAS => link.alias = Some(c_string(value).to_vec()),
            IFLA_MTU => link.mtu = u32_value()?,
            IFLA_LINK => link.link = u32_value()?,
            IFLA_TXQLEN => link.txqlen = u32_value()?,
            IFLA_GROUP => link.group = u32_value()?,
            IFLA_PROMISCUITY => link.promiscuity = u32_value()?,
            IFLA_ALLMULTI => link.allmulti = u32_value()?,
            IFLA_CARRIER_CHANGES => link.carrier_changes = u32_value()?,
            IFLA_CARRIER_UP_COUNT => link.carrier_up = u32_value()?,
            IFLA_CARRIER_DOWN_COUNT => link.carrier_down = u32_value()?,
            IFLA_OPERSTATE => link.operstate = u8_value()?,
            IFLA_LINKMODE => link.link_mode = u8_value()?,
            IFLA_CARRIER => link.carrier = u8_value()?,
            IFLA_STATS64 => {
                link.stats = Some(
                    Stats64::parse(value)
                        .map_err(|reason| format!("link {}: {reason}", link.index))?,
                )
            }
            _ => {}
        }
        rest = &rest[align(length).min(rest.len())..];
    }
    link.name = name.ok_or_else(|| format!("link {} without IFLA_IFNAME", link.index))?;
    Ok(link)
}

/// A string attribute up to its terminating NUL.
fn c_string(value: &[u8]) -> &[u8] {
    value.split(|&b| b == 0).next().unwrap_or_default()
}

/// The native-endian `u64` at `offset`; the caller checked the bounds.
fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_ne_bytes(word)
}

/// The fuzz driver's entry (`host::fuzzing`): `bytes` as a dump reply to the request the first
/// message answers.
pub(super) fn fuzz(bytes: &[u8]) -> Result<Vec<Link>, String> {
    let seq = bytes.get(8..12).map_or(0, |_| u32_at(bytes, 8));
    let mut links = Vec::new();
    parse(bytes, seq, &mut links)?;
    Ok(links)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::host::nlmsg::testing::{damaged_dumps, message};
    use crate::collect::host::nlmsg::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR};
    use crate::collect::host::procfiles::tests::files_in;
    use crate::collect::host::tests::fixture_sys;

    /// A `RTM_GETLINK` dump captured on the machine the sysfs fixture's eth0, lo, ifb0 and ifb1
    /// come from (x86_64: little-endian), replies to request 1, all datagrams concatenated.
    const DUMP: &[u8] = include_bytes!("../fixtures/rtnetlink/getlink_dump.bin");

    fn captured() -> Vec<Link> {
        let mut links = Vec::new();
        assert_eq!(parse(DUMP, 1, &mut links), Ok(true));
        links
    }

    /// Reads the sysfs fixture's attributes, as [`read_at`] does.
    fn fixture_attribute(name: &str) -> impl FnMut(&str) -> Result<Option<String>, Error> {
        let dir = fixture_sys().join("class/net").join(name);
        move |attribute| match std::fs::read_to_string(dir.join(attribute)) {
            Ok(text) => Ok(Some(text.trim().to_owned())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(read_error(&dir.join(attribute), err)),
        }
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_the_captured_dump() {
        let links = captured();
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0", "docker0"]);
        let eth0 = &links[3];
        assert_eq!((eth0.index, eth0.kind), (4, 1));
        assert_eq!(eth0.flags & (IFF_UP | IFF_RUNNING | IFF_LOWER_UP), 0x1_0041);
        assert_eq!(
            eth0.address.as_deref().map(mac).as_deref(),
            Some("02:fc:00:00:00:01")
        );
        assert_eq!(
            eth0.broadcast.as_deref().map(mac).as_deref(),
            Some("ff:ff:ff:ff:ff:ff")
        );
        assert_eq!(
            (eth0.mtu, eth0.txqlen, eth0.group),
            (Some(1400), Some(1000), Some(0))
        );
        assert_eq!(
            (eth0.operstate, eth0.carrier, eth0.link),
            (Some(6), Some(1), None)
        );
        assert_eq!((eth0.promiscuity, eth0.allmulti), (Some(0), Some(0)));
        assert_eq!(links[1].operstate, Some(2)); // ifb0: down
        let stats = eth0.stats.expect("IFLA_STATS64");
        assert_eq!(
            (
                stats.rx_bytes,
                stats.rx_packets,
                stats.tx_bytes,
                stats.tx_packets
            ),
            (2_021_509_880, 56_830, 3_054_719, 36_435)
        );
        assert_eq!(stats.rx_nohandler, Some(0));
        assert_eq!(links[4].stats.map(|s| s.tx_dropped), Some(5)); // docker0
    }

    /// netclass's request asks the kernel to skip statistics, netdev's does not.
    #[test]
    fn requests_skip_statistics_or_not() {
        let skipped = request(7, Statistics::Skipped);
        let included = request(7, Statistics::Included);
        assert_eq!(u32_at(&skipped, 0) as usize, skipped.len());
        assert_eq!(u32_at(&included, 0) as usize, included.len());
        assert_eq!(skipped.len(), NLMSG_HDRLEN + IFINFOMSG_LEN + 8);
        // The same header but for the length, the same ifinfomsg, then the mask.
        assert_eq!(skipped[4..included.len()], included[4..]);
        let mask = &skipped[included.len()..];
        assert_eq!((u16_at(mask, 0), u16_at(mask, 2)), (8, IFLA_EXT_MASK));
        assert_eq!(u32_at(mask, 4), RTEXT_FILTER_SKIP_STATS);
        assert_eq!(u32_at(&included, 8), 7);
    }

    /// `IFLA_STATS64` words land in `rtnl_link_stats64`'s fields in the order of
    /// linux/if_link.h; `rx_nohandler` is the 24th, absent from the 23 words of kernels before
    /// 4.6; words after it (`rx_otherhost_dropped`) are ignored; fewer than 23 are an error.
    #[test]
    fn stats64_fields_follow_if_link_h() {
        let stats_of = |words: u64| {
            let value: Vec<u8> = (1..=words).flat_map(u64::to_ne_bytes).collect();
            let name = attribute(IFLA_IFNAME, b"eth9\0");
            let bytes = message(
                RTM_NEWLINK,
                0,
                &link_payload(&[name, attribute(IFLA_STATS64, &value)]),
            );
            let mut links = Vec::new();
            parse(&bytes, 1, &mut links).map(|_| links[0].stats)
        };
        let expected = Stats64 {
            rx_packets: 1,
            tx_packets: 2,
            rx_bytes: 3,
            tx_bytes: 4,
            rx_errors: 5,
            tx_errors: 6,
            rx_dropped: 7,
            tx_dropped: 8,
            multicast: 9,
            collisions: 10,
            rx_length_errors: 11,
            rx_over_errors: 12,
            rx_crc_errors: 13,
            rx_frame_errors: 14,
            rx_fifo_errors: 15,
            rx_missed_errors: 16,
            tx_aborted_errors: 17,
            tx_carrier_errors: 18,
            tx_fifo_errors: 19,
            tx_heartbeat_errors: 20,
            tx_window_errors: 21,
            rx_compressed: 22,
            tx_compressed: 23,
            rx_nohandler: Some(24),
        };
        assert_eq!(stats_of(25), Ok(Some(expected)));
        assert_eq!(stats_of(24), Ok(Some(expected)));
        assert_eq!(
            stats_of(23),
            Ok(Some(Stats64 {
                rx_nohandler: None,
                ..expected
            }))
        );
        let err = stats_of(22).expect_err("too short");
        assert!(err.contains("IFLA_STATS64 of 176 bytes"), "{err}");
    }

    /// The mapping gives for each captured link what the sysfs fixture, captured alongside,
    /// shows: every value and label.
    #[cfg(target_endian = "little")]
    #[test]
    fn the_captured_links_are_what_sysfs_showed() {
        let links = captured();
        let names = ["eth0", "ifb0", "ifb1", "lo"];
        let expected =
            super::super::from_sysfs(&files_in(&fixture_sys()), names.map(String::from).to_vec())
                .expect("reads the fixture");
        for (name, expected) in names.iter().zip(&expected) {
            let link = links.iter().find(|l| l.name == *name).expect(name);
            let got = device((*name).to_owned(), link, fixture_attribute(name)).expect("maps");
            assert_eq!(&got, expected, "{name}");
        }
    }

    #[test]
    fn the_mapping_follows_sysfs_semantics() {
        let up = Link {
            index: 7,
            kind: 1,
            // UP, BROADCAST, RUNNING, MULTICAST, LOWER_UP, DORMANT: as dev_get_flags reports.
            flags: 0x1 | 0x2 | 0x40 | 0x1000 | 0x1_0000 | 0x2_0000,
            name: "wlan0".to_owned(),
            address: Some(vec![0xa0, 0x36, 0x9f, 0, 0x0b, 0xff]),
            alias: Some(b"  uplink \n".to_vec()),
            mtu: Some(u32::MAX),
            link: Some(3),
            operstate: Some(5),
            carrier: Some(1),
            promiscuity: Some(2),
            allmulti: Some(0),
            ..Link::default()
        };
        let mut asked = Vec::new();
        let mapped = device("wlan0".to_owned(), &up, |attribute| {
            asked.push(attribute.to_owned());
            Ok(match attribute {
                "speed" => Some("1000".to_owned()),
                "duplex" => Some("full".to_owned()),
                "dev_id" => Some("0x2".to_owned()),
                _ => None,
            })
        })
        .expect("maps");
        assert_eq!(
            asked,
            [
                "addr_assign_type",
                "dev_id",
                "name_assign_type",
                "duplex",
                "speed"
            ]
        );
        let value = |file: &str| {
            let slot = ATTRIBUTES_AND_SPEED
                .iter()
                .position(|f| *f == file)
                .expect(file);
            mapped.values[slot]
        };
        assert_eq!(mapped.operstate, "dormant");
        assert_eq!(mapped.address, "a0:36:9f:00:0b:ff");
        assert_eq!(mapped.broadcast, "");
        assert_eq!(mapped.ifalias, "uplink");
        assert_eq!(mapped.duplex, "full");
        // Promiscuous by count, RUNNING, LOWER_UP and DORMANT not in dev->flags.
        assert_eq!(value("flags"), Some(0x1103));
        assert_eq!(value("dormant"), Some(1));
        assert_eq!(value("carrier"), Some(1));
        assert_eq!(value("iflink"), Some(3));
        assert_eq!(value("ifindex"), Some(7));
        assert_eq!(value("mtu"), Some(-1)); // %d
        assert_eq!(value("speed"), Some(1000));
        assert_eq!(value("dev_id"), Some(2));
        assert_eq!(value("addr_assign_type"), None);
        assert_eq!(value("tx_queue_len"), None);

        // Down: no carrier, dormant, speed or duplex, and no sysfs read for the last two; no
        // IFLA_ALLMULTI (an older kernel): flags from sysfs.
        let down = Link {
            flags: 0x1002,
            operstate: Some(9),
            allmulti: None,
            alias: Some(vec![0xff, 0xfe]),
            link: None,
            ..up
        };
        let mut asked = Vec::new();
        let mapped = device("wlan0".to_owned(), &down, |attribute| {
            asked.push(attribute.to_owned());
            Ok((attribute == "flags").then(|| "0x1302".to_owned()))
        })
        .expect("maps");
        assert_eq!(
            asked,
            ["flags", "addr_assign_type", "dev_id", "name_assign_type"]
        );
        let value = |file: &str| {
            let slot = ATTRIBUTES_AND_SPEED
                .iter()
                .position(|f| *f == file)
                .expect(file);
            mapped.values[slot]
        };
        assert_eq!(
            (mapped.operstate.as_str(), mapped.ifalias.as_str()),
            ("", "")
        );
        assert_eq!(value("flags"), Some(0x1302));
        assert_eq!(
            (value("carrier"), value("dormant"), value("speed")),
            (None, None, None)
        );
        assert_eq!(value("iflink"), Some(7));
    }

    const ATTRIBUTES_AND_SPEED: [&str; 17] = [
        "addr_assign_type",
        "carrier",
        "carrier_changes",
        "carrier_up_count",
        "carrier_down_count",
        "dev_id",
        "dormant",
        "flags",
        "ifindex",
        "iflink",
        "link_mode",
        "mtu",
        "name_assign_type",
        "netdev_group",
        "tx_queue_len",
        "type",
        "speed",
    ];

    fn attribute(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut bytes = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(value);
        bytes.resize(align(bytes.len()), 0);
        bytes
    }

    fn link_payload(attributes: &[Vec<u8>]) -> Vec<u8> {
        let mut payload = vec![0; IFINFOMSG_LEN];
        payload[4..8].copy_from_slice(&9_i32.to_ne_bytes());
        for attribute in attributes {
            payload.extend_from_slice(attribute);
        }
        payload
    }

    #[test]
    fn malformed_replies_are_errors() {
        let name = attribute(IFLA_IFNAME, b"eth9\0");
        let good = message(RTM_NEWLINK, 0, &link_payload(std::slice::from_ref(&name)));
        let mut links = Vec::new();
        assert_eq!(parse(&good, 1, &mut links), Ok(false));
        assert_eq!(links[0].name, "eth9");
        assert_eq!(links[0].index, 9);
        let done = message(NLMSG_DONE, 0, &0_i32.to_ne_bytes());
        assert_eq!(parse(&done, 1, &mut Vec::new()), Ok(true));

        let mut short_length = good.clone();
        short_length[..4].copy_from_slice(&8_u32.to_ne_bytes());
        let mut long_length = good.clone();
        long_length[..4].copy_from_slice(&1000_u32.to_ne_bytes());
        for (what, bytes) in [
            ("a header cut short", good[..10].to_vec()),
            ("a length below the header's", short_length),
            ("a length beyond the data", long_length),
            ("another request's reply", {
                let mut b = good.clone();
                b[8..12].copy_from_slice(&2_u32.to_ne_bytes());
                b
            }),
            (
                "an interrupted dump",
                message(
                    RTM_NEWLINK,
                    NLM_F_DUMP_INTR,
                    &link_payload(std::slice::from_ref(&name)),
                ),
            ),
            ("an error", message(NLMSG_ERROR, 0, &(-1_i32).to_ne_bytes())),
            ("an error without its code", message(NLMSG_ERROR, 0, &[])),
            (
                "a failed dump",
                message(NLMSG_DONE, 0, &(-16_i32).to_ne_bytes()),
            ),
            ("an unexpected type", message(20, 0, &[0; 16])),
            ("a short ifinfomsg", message(RTM_NEWLINK, 0, &[0; 12])),
            (
                "a link without a name",
                message(RTM_NEWLINK, 0, &link_payload(&[])),
            ),
            (
                "an attribute cut short",
                message(RTM_NEWLINK, 0, &link_payload(&[name.clone(), vec![8, 0]])),
            ),
            (
                "an attribute length below its header",
                message(
                    RTM_NEWLINK,
                    0,
                    &link_payload(&[name.clone(), vec![2, 0, 4, 0]]),
                ),
            ),
            (
                "an attribute longer than the message",
                message(
                    RTM_NEWLINK,
                    0,
                    &link_payload(&[name.clone(), vec![40, 0, 4, 0]]),
                ),
            ),
            (
                "a u32 of 2 bytes",
                message(
                    RTM_NEWLINK,
                    0,
                    &link_payload(&[name.clone(), attribute(IFLA_MTU, &[1, 2])]),
                ),
            ),
            (
                "a u8 of 4 bytes",
                message(
                    RTM_NEWLINK,
                    0,
                    &link_payload(&[name.clone(), attribute(IFLA_CARRIER, &[1, 0, 0, 0])]),
                ),
            ),
        ] {
            assert!(parse(&bytes, 1, &mut Vec::new()).is_err(), "{what}");
        }
    }

    /// Every prefix and many corruptions of the captured dump: errors or partial results,
    /// never a panic, and never a finished dump from less than all of it.
    #[test]
    fn truncated_and_corrupted_dumps_never_panic() {
        damaged_dumps(DUMP, |bytes| parse(bytes, 1, &mut Vec::new()) == Ok(true));
    }

    /// On this machine, the netlink path and the sysfs path report the same devices with the
    /// same values (counters aside, which may move between the two readings).
    #[test]
    fn netlink_and_sysfs_agree_on_this_machine() {
        let (files, names) = live_devices();
        // Twice through one `Held`: opening the files, then reading the held ones again.
        let held = Held::default();
        let first = devices(files.root(), names.clone(), &held).expect("netlink dump");
        let by_netlink = devices(files.root(), names.clone(), &held).expect("netlink dump");
        assert!(
            !held.devices.lock().expect("lock").is_empty(),
            "files are held"
        );
        let by_sysfs = super::super::from_sysfs(&files, names).expect("sysfs");
        assert_eq!(strip_counters(first), strip_counters(by_netlink.clone()));
        assert!(!by_sysfs.is_empty());
        assert_eq!(strip_counters(by_netlink), strip_counters(by_sysfs));
    }

    /// The live sysfs and the entries of its `class/net`.
    fn live_devices() -> (crate::collect::host::procfiles::ProcFiles, Vec<String>) {
        let files = files_in(Path::new(LIVE_SYSFS));
        let names = files
            .entries("class/net")
            .expect("lists")
            .unwrap_or_default();
        (files, names)
    }

    /// Loopback's sysfs directory, present on every Linux machine.
    fn open_lo() -> OwnedFd {
        rustix::fs::open(
            "/sys/class/net/lo",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open lo")
    }

    /// `devices` without the counters, which may move between two readings.
    fn strip_counters(devices: Vec<Device>) -> Vec<Device> {
        devices
            .into_iter()
            .map(|mut device| {
                for counter in ["carrier_changes", "carrier_up_count", "carrier_down_count"] {
                    device.set(counter, None);
                }
                device
            })
            .collect()
    }

    /// In a scrape netdev dumps first and netclass uses that dump, once: its own socket stays
    /// unopened. The next netclass call, with nothing left, dumps on its own.
    #[test]
    fn netclass_uses_the_dump_netdev_left_once() {
        use crate::collect::BlockingCollector;
        let handoff = Arc::new(LinkHandoff::default());
        let netdev = crate::collect::host::netdev::Netdev::new(
            Duration::from_secs(5),
            Path::new("/proc"),
            Path::new(LIVE_SYSFS),
            None,
            Arc::clone(&handoff),
        );
        let held = Held::new(Arc::clone(&handoff));
        let (files, names) = live_devices();
        let own_socket_open = || held.socket.socket.lock().expect("lock").is_some();

        netdev.collect().expect("netdev collects");
        let from_netdev = devices(files.root(), names.clone(), &held).expect("devices");
        assert!(
            !own_socket_open(),
            "netclass dumped although netdev left a dump"
        );
        assert!(handoff.take().is_none(), "the dump is taken once");

        let own = devices(files.root(), names, &held).expect("devices");
        assert!(own_socket_open(), "with nothing left, netclass dumps");
        assert_eq!(strip_counters(from_netdev), strip_counters(own));
    }

    /// The socket is used again with the next sequence number; one left with unread replies
    /// fails its dump, is closed, and the next dump opens a clean one.
    #[test]
    fn the_socket_is_kept_and_a_confused_one_is_replaced() {
        let mut socket = None;
        let first = dump(&mut socket, Statistics::Skipped).expect("first dump");
        let seq = socket.as_ref().map(|(_, seq)| *seq);
        assert_eq!(seq, Some(1));
        let second = dump(&mut socket, Statistics::Skipped).expect("second dump, same socket");
        assert_eq!(socket.as_ref().map(|(_, seq)| *seq), Some(2));
        let names = |links: &[Link]| links.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&first), names(&second));

        // A request whose replies are never read, as a dump cut short would leave.
        let kept = LinkSocket {
            socket: Mutex::new(socket),
            statistics: Statistics::Skipped,
        };
        kept.leave_replies_unread().expect("send");
        let err = kept.dump().expect_err("the old replies come first");
        assert!(err.to_string().contains("reply to request"), "{err}");
        assert!(
            kept.socket.lock().expect("lock").is_none(),
            "the confused socket is closed"
        );
        assert_eq!(names(&kept.dump().expect("a new socket")), names(&first));
    }

    /// A held sysfs file reads the value of the moment: loopback's packet counter, read twice
    /// through one descriptor with packets sent in between, moves.
    #[test]
    fn a_held_sysfs_file_reads_the_current_value() {
        let dir = open_lo();
        let mut files = DeviceFiles {
            dir,
            files: Vec::new(),
        };
        let mut buffer = Vec::new();
        let mut packets = || -> u64 {
            files
                .read("statistics/tx_packets", &mut buffer)
                .expect("read")
                .expect("reported")
                .parse()
                .expect("a number")
        };
        let before = packets();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for _ in 0..10 {
            socket
                .send_to(b"x", socket.local_addr().expect("addr"))
                .expect("send");
        }
        let after = packets();
        assert!(after >= before + 10, "{before} then {after}");
        assert_eq!(files.files.len(), 1, "one descriptor, held");
    }

    /// Entries of devices the dump does not report under that name and index are closed.
    #[test]
    fn held_files_of_gone_or_renumbered_devices_are_closed() {
        let (files, names) = live_devices();
        let held = Held::default();
        let stale = open_lo();
        // "lo" under an index it does not have, and a device that does not exist.
        for key in [(-7, "lo".to_owned()), (1_000_000, "gone0".to_owned())] {
            let dir = rustix::io::dup(&stale).expect("dup");
            held.devices.lock().expect("lock").insert(
                key,
                DeviceFiles {
                    dir,
                    files: Vec::new(),
                },
            );
        }
        devices(files.root(), names, &held).expect("netlink dump");
        let keys: Vec<(i32, String)> = held.devices.lock().expect("lock").keys().cloned().collect();
        assert!(!keys.contains(&(-7, "lo".to_owned())), "{keys:?}");
        assert!(!keys.contains(&(1_000_000, "gone0".to_owned())), "{keys:?}");
        assert!(
            keys.iter().any(|(index, name)| name == "lo" && *index > 0),
            "{keys:?}"
        );
    }
}
