//! The netlink message framing shared by warden's dumps: rtnetlink `RTM_GETLINK` (netdev,
//! netclass) and `NETLINK_SOCK_DIAG` (udp_queues). A dump's reply is one or more datagrams of
//! `nlmsghdr`-framed messages ending in `NLMSG_DONE`; [`walk`] checks the framing and hands each
//! data message to its parser.

/// `sizeof(struct nlmsghdr)`.
pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NLMSG_NOOP: u16 = 1;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
/// A request, and a dump of every object.
pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_DUMP: u16 = 0x300;
/// The dump changed while it was read: its content is inconsistent.
pub(super) const NLM_F_DUMP_INTR: u16 = 0x10;

/// Why a reply cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// The kernel answered with this errno (`NLMSG_ERROR`, or `NLMSG_DONE` of a failed dump).
    Kernel(i32),
    /// Not what the kernel sends for the request.
    Malformed(String),
}

/// Walks the messages in `bytes` (one or more datagrams of the reply to request `seq`), handing
/// each data message's type and payload to `each`; `Ok(true)` once `NLMSG_DONE` ends the dump.
///
/// # Errors
/// A message that overruns the data, of another request, or of a dump interrupted by a change;
/// an error reply; `each`'s error.
pub(super) fn walk(
    mut bytes: &[u8],
    seq: u32,
    mut each: impl FnMut(u16, &[u8]) -> Result<(), Reply>,
) -> Result<bool, Reply> {
    let malformed = |reason: String| Err(Reply::Malformed(reason));
    while !bytes.is_empty() {
        if bytes.len() < NLMSG_HDRLEN {
            return malformed(format!("{} bytes left: no message header", bytes.len()));
        }
        let length = u32_at(bytes, 0) as usize;
        let kind = u16_at(bytes, 4);
        let flags = u16_at(bytes, 6);
        let message_seq = u32_at(bytes, 8);
        if length < NLMSG_HDRLEN || length > bytes.len() {
            return malformed(format!(
                "message length {length} of {} bytes left",
                bytes.len()
            ));
        }
        if message_seq != seq {
            return malformed(format!("reply to request {message_seq}, not {seq}"));
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            return malformed("dump interrupted by a change: inconsistent".to_owned());
        }
        let payload = &bytes[NLMSG_HDRLEN..length];
        match kind {
            NLMSG_NOOP => {}
            NLMSG_DONE | NLMSG_ERROR => {
                // An `int` error code (0: success), which NLMSG_DONE may omit.
                let code = match payload.get(..4) {
                    Some(_) => u32_at(payload, 0) as i32,
                    None if kind == NLMSG_DONE => 0,
                    None => return malformed("error message without its code".to_owned()),
                };
                if code < 0 {
                    return Err(Reply::Kernel(code.saturating_neg()));
                }
                if kind == NLMSG_DONE {
                    return Ok(true);
                }
            }
            kind => each(kind, payload)?,
        }
        bytes = &bytes[align(length).min(bytes.len())..];
    }
    Ok(false)
}

/// `NLMSG_ALIGN` / `RTA_ALIGN`: the next multiple of 4.
pub(super) fn align(length: usize) -> usize {
    length.saturating_add(3) & !3
}

/// The native-endian `u16` at `offset`; the caller checked the bounds.
pub(super) fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_ne_bytes([bytes[offset], bytes[offset + 1]])
}

/// The native-endian `u32` at `offset`; the caller checked the bounds.
pub(super) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes([
        bytes[offset],
        bytes[offset + 1],
        bytes[offset + 2],
        bytes[offset + 3],
    ])
}

/// Test helpers shared by the parsers built on [`walk`].
#[cfg(test)]
pub(super) mod testing {
    use super::NLMSG_HDRLEN;

    /// One netlink message of request 1: header, then `payload`.
    pub(in crate::collect::host) fn message(kind: u16, flags: u16, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&1_u32.to_ne_bytes());
        bytes.extend_from_slice(&0_u32.to_ne_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    /// Feeds `finished` (whether a parse of the bytes ended the dump) every proper prefix of
    /// `dump`, none of which may finish it, then 20,000 copies with one byte changed, which
    /// must not panic.
    pub(in crate::collect::host) fn damaged_dumps(
        dump: &[u8],
        mut finished: impl FnMut(&[u8]) -> bool,
    ) {
        for end in 0..dump.len() {
            assert!(!finished(&dump[..end]), "{end} bytes");
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let mut bytes = dump.to_vec();
            let at = state as usize % bytes.len();
            bytes[at] = (state >> 8) as u8;
            let _ = finished(&bytes);
        }
    }
}
