//! A safe, read-only `adjtimex(2)`: the kernel clock's state as plain integers.
//!
//! warden forbids unsafe code, and neither rustix nor nix wrap `adjtimex`; this crate holds the
//! one call. It only reads (`modes` 0), which needs no privilege.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

/// The kernel clock's state: the fields of `struct timex` (see adjtimex(2)) and the call's
/// return value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timex {
    /// The clock state the call returned: `TIME_OK` (0) to `TIME_ERROR` (5, not synchronized).
    pub state: i32,
    /// Time offset, in microseconds, or nanoseconds when `status` has `STA_NANO`.
    pub offset: i64,
    /// Frequency offset, in parts per million with a 16-bit fraction (scaled by 65536).
    pub freq: i64,
    /// Maximum error, in microseconds.
    pub maxerror: i64,
    /// Estimated error, in microseconds.
    pub esterror: i64,
    /// Clock command/status bits (`STA_*`).
    pub status: i64,
    /// PLL time constant.
    pub constant: i64,
    /// Clock precision, in microseconds.
    pub precision: i64,
    /// Clock frequency tolerance, in ppm with a 16-bit fraction.
    pub tolerance: i64,
    /// Microseconds between clock ticks.
    pub tick: i64,
    /// PPS frequency, in ppm with a 16-bit fraction.
    pub ppsfreq: i64,
    /// PPS jitter, in microseconds, or nanoseconds with `STA_NANO`.
    pub jitter: i64,
    /// PPS interval duration, in seconds as a power of two.
    pub shift: i64,
    /// PPS stability, in ppm with a 16-bit fraction.
    pub stabil: i64,
    /// PPS count of jitter limit exceeded events.
    pub jitcnt: i64,
    /// PPS count of calibration intervals.
    pub calcnt: i64,
    /// PPS count of calibration errors.
    pub errcnt: i64,
    /// PPS count of stability limit exceeded events.
    pub stbcnt: i64,
    /// TAI offset, in seconds.
    pub tai: i64,
}

/// `STA_NANO`: `offset` and `jitter` are in nanoseconds rather than microseconds.
pub const STA_NANO: i64 = 0x2000;

/// `TIME_ERROR`: the clock is not synchronized.
pub const TIME_ERROR: i32 = 5;

/// Reads the kernel clock's state with `adjtimex(2)` and `modes` 0, changing nothing.
///
/// # Errors
/// The call's error (`EPERM` would only come from a write; a read-only call does not fail on
/// Linux in practice). Unsupported on systems other than Linux.
pub fn read() -> std::io::Result<Timex> {
    imp::read()
}

#[cfg(target_os = "linux")]
mod imp {
    use super::Timex;

    #[allow(
        clippy::useless_conversion,
        reason = "`c_long` is `i64` only on 64-bit targets"
    )]
    pub(super) fn read() -> std::io::Result<Timex> {
        // SAFETY: `libc::timex` is a C struct of integers (and a `timeval` of integers, plus
        // padding), for which all-zero bytes are a valid value; zero `modes` asks the kernel to
        // only read. `adjtimex` writes within the struct behind the exclusive pointer, which
        // is valid and aligned for the whole call, and keeps no reference to it.
        let (state, buf) = unsafe {
            let mut buf: libc::timex = std::mem::zeroed();
            let state = libc::adjtimex(&mut buf);
            (state, buf)
        };
        if state < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Timex {
            state,
            offset: i64::from(buf.offset),
            freq: i64::from(buf.freq),
            maxerror: i64::from(buf.maxerror),
            esterror: i64::from(buf.esterror),
            status: i64::from(buf.status),
            constant: i64::from(buf.constant),
            precision: i64::from(buf.precision),
            tolerance: i64::from(buf.tolerance),
            tick: i64::from(buf.tick),
            ppsfreq: i64::from(buf.ppsfreq),
            jitter: i64::from(buf.jitter),
            shift: i64::from(buf.shift),
            stabil: i64::from(buf.stabil),
            jitcnt: i64::from(buf.jitcnt),
            calcnt: i64::from(buf.calcnt),
            errcnt: i64::from(buf.errcnt),
            stbcnt: i64::from(buf.stbcnt),
            tai: i64::from(buf.tai),
        })
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Timex;

    pub(super) fn read() -> std::io::Result<Timex> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn reads_the_clock_without_privilege() {
        let timex = read().expect("adjtimex reads");
        assert!((0..=TIME_ERROR).contains(&timex.state), "{timex:?}");
        // The tick is 1e6 / HZ microseconds: 10000 at HZ=100, 1000 at HZ=1000.
        assert!((1000..=10_000).contains(&timex.tick), "{timex:?}");
        assert!(timex.tolerance > 0, "{timex:?}");
        // Reading twice changes nothing the kernel does not change itself.
        let again = read().expect("adjtimex reads");
        assert_eq!((again.tick, again.tai), (timex.tick, timex.tai));
    }
}
